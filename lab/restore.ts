// `npm run restore -- [--identity KEY] [--backup ID] [--force]`: citadel restore on the local VPS, with
// the lab's engine for the stack outputs, the VPS's own SSH port and (by default) the lab operator's
// age key (lab/backup-target.ts). Product code (restore/) knows nothing of the lab.
import * as fs from "node:fs";
import { runRestoreCli } from "../restore/cli";
import { readLabStackOutputs } from "./audit";
import { labBackupTarget, localConfig } from "./local";
import { HARNESS_KEY } from "./vps/common";
import { vpsInfo } from "./vps/vps";
import { LOCAL_VPS } from "./local";

export function labRestoreHooks() {
    return {
        readOutputs: () => readLabStackOutputs("local"),
        config: () => {
            const c = localConfig(fs.readFileSync(`${HARNESS_KEY}.pub`, "utf8").trim());
            const info = vpsInfo(LOCAL_VPS);
            if (c.existing && info) c.existing.port = info.sshPort;
            return c;
        },
    };
}

if (require.main === module) {
    const argv = process.argv.slice(2);
    const identity = argv.includes("--identity") ? [] : ["--identity", labBackupTarget()?.ageKeyPath ?? ""];
    runRestoreCli(["--stack", "local", ...identity, ...argv], labRestoreHooks()).then((code) => process.exit(code));
}
