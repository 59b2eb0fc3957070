// Wraps a rendered root script into the command string a remote.Command runs as the admin user.
//
// The script travels as a quoted here-document, so a reviewer reading a `pulumi preview` diff sees
// the script's own lines (and the files embedded in it) change, not an opaque hash.
import { createHash } from "node:crypto";

export const SCRIPT_DELIMITER = "CITADEL_SCRIPT";

export function sudoScript(script: string): string {
    if (script.split("\n").some((l) => l === SCRIPT_DELIMITER)) {
        throw new Error(`script contains the line ${SCRIPT_DELIMITER}, which would end its here-document`);
    }
    const body = script.endsWith("\n") ? script : script + "\n";
    return `sudo -n /bin/bash -s <<'${SCRIPT_DELIMITER}'\n${body}${SCRIPT_DELIMITER}\n`;
}

export function sha256(text: string): string {
    return createHash("sha256").update(text).digest("hex");
}
