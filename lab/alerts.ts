// `npm run alerts -- test --stack local`: the product's `citadel alerts test` with the lab's engine
// state and the local VPS as target (as lab/audit.ts does for the audit).
import { runAlertsCli } from "../alerts/cli";
import { localTarget, readLabStackOutputs, removeProbe } from "./audit";

if (require.main === module) {
    runAlertsCli(process.argv.slice(2), {
        readOutputs: readLabStackOutputs,
        target: (stack, outputs) => (stack === "local" ? localTarget(outputs) : undefined),
    }).then((code) => {
        removeProbe();
        process.exit(code);
    });
}
