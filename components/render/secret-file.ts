// The root script that writes one secret file from stdin: the value never appears in the script,
// its argv or its environment. Pure (tested on its own in a private mount namespace).
import { SECRET_FILE_MODE, SECRETS_DIR, secretFilePath } from "../posture/facts";
import { shellQuote } from "./template";

export function secretFileScript(consumer: string, name: string, uid: number): string {
    const path = secretFilePath(consumer, name);
    const dir = `${SECRETS_DIR}/${consumer}`;
    return [
        "set -euo pipefail",
        "umask 077",
        `install -d -m 0700 -o root -g root ${shellQuote(SECRETS_DIR)} ${shellQuote(dir)}`,
        `tmp=$(mktemp ${shellQuote(dir + "/.tmp.XXXXXX")})`,
        // The value arrives on stdin and is written byte-exact.
        `cat > "$tmp"`,
        `chown ${uid}:0 "$tmp" && chmod ${SECRET_FILE_MODE} "$tmp"`,
        `mv -f "$tmp" ${shellQuote(path)}`,
        `echo "citadel: secret file ${path} written (owner uid ${uid}, mode ${SECRET_FILE_MODE})"`,
    ].join("\n");
}
