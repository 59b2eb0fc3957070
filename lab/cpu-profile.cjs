// Loaded with NODE_OPTIONS=--require (Node 20 refuses --cpu-prof there): a CPU profile of the Pulumi
// program's own process (the language host's `@pulumi/pulumi/cmd/run`, no other node process), written
// to $CITADEL_CPU_PROFILE_DIR/<pid>.cpuprofile when it exits. lab/noop-profile.ts reads it.
"use strict";
const dir = process.env.CITADEL_CPU_PROFILE_DIR;
if (dir && process.argv.some((a) => /@pulumi\/pulumi\/cmd\/run(\/index\.js)?$/.test(a))) {
    const inspector = require("node:inspector");
    const fs = require("node:fs");
    const path = require("node:path");
    const session = new inspector.Session();
    session.connect();
    session.post("Profiler.enable");
    session.post("Profiler.setSamplingInterval", { interval: 200 });
    session.post("Profiler.start");
    // The in-process inspector answers synchronously, so the profile is written before exit ends.
    process.on("exit", () =>
        session.post("Profiler.stop", (err, res) => {
            if (err) return;
            fs.mkdirSync(dir, { recursive: true });
            fs.writeFileSync(path.join(dir, `${process.pid}.cpuprofile`), JSON.stringify(res.profile));
        }),
    );
}
