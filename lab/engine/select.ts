// The Pulumi CLI this checkout runs, as lab/engine/select.sh decides (a `pulumi` on PATH, else the lab build).
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

/**
 * Why the selected Pulumi CLI is unavailable, or false when it is there. The e2e files skip on it (and
 * fail under CI=true); the bench stops on it.
 */
export function pulumiMissing(): string | false {
    const r = spawnSync("bash", [path.join(__dirname, "select.sh")], { encoding: "utf8" });
    if (r.status !== 0) return (r.stderr ?? "").trim() || "lab/engine/select.sh failed";
    const [kind, bin] = r.stdout.trim().split(" ");
    if (kind === "built" && !fs.existsSync(bin)) return "no pulumi on PATH and the lab engine is not built (run: bash lab/prereqs.sh engine)";
    return false;
}
