// One converged VPS shared by the e2e files that take the local stack as declared (argv, monitoring,
// audit, survival, sshd-rollback, interrupted, backup, local), when `npm test` runs them in one go: lab/test.sh sets
// CITADEL_E2E_SHARED_VPS and orders them so that argv (which watches /proc through a converge from
// scratch) comes first, backup (which throws the VPS away and rebuilds it) next to last and local
// (which ends with `pulumi destroy`) last. Each of those files
// imports this module first, before anything that reads CITADEL_VPS_NAME (lab/local does when it
// loads). The next file's `pulumi up` runs against the host the previous one left: a day-two
// converge, which is what an operator's host sees too. Files that change the declared stack
// (rotation's forced epochs) or use another target (hcloud) keep their own VPS.
//
// Run one file alone and nothing is shared: the file names its own VPS and removes it at the end.
// `tsx test/e2e/shared-vps.ts down` removes the shared VPS (lab/test.sh calls it before and after).

/** The shared VPS's name, when this run shares one. */
export const SHARED_VPS: string | undefined = process.env.CITADEL_E2E_SHARED_VPS || undefined;

// Ports of its own, apart from every e2e file's own VPS (each file's `??=` then keeps these).
if (SHARED_VPS) {
    process.env.CITADEL_VPS_NAME ??= SHARED_VPS;
    process.env.CITADEL_SSH_PORT ??= "2922";
    process.env.CITADEL_HTTP_PORT ??= "8780";
    process.env.CITADEL_HTTPS_PORT ??= "9243";
}

/** True when this process converges onto the shared VPS (then a file's release leaves it up). */
export function sharing(vpsName: string): boolean {
    return SHARED_VPS !== undefined && vpsName === SHARED_VPS;
}

async function main(args: string[]): Promise<void> {
    if (!["down", "start"].includes(args[0]) || !SHARED_VPS) {
        process.stderr.write("usage: CITADEL_E2E_SHARED_VPS=<name> tsx test/e2e/shared-vps.ts start|down [--stop-dockerd]\n");
        process.exitCode = 2;
        return;
    }
    const { dockerReady, ensureDockerd, stopDockerd } = await import("../../lab/vps/dockerd");
    // start: the engine comes up once, before the test files that run side by side. A file that had
    // started it itself would stop it when it ends, under another file's image build.
    if (args[0] === "start") await ensureDockerd();
    if (!dockerReady()) return; // no engine, so no VPS either
    const { containerState, ensureLabNetwork } = await import("../../lab/vps/vps");
    if (containerState(SHARED_VPS) !== undefined) {
        const { down } = await import("../../lab/local");
        await down();
    }
    // The lab network as the tests need it (with IPv6 since issue 13), made here once: replacing an
    // older one while the test files run side by side would pull it from under another file's VPS.
    if (args[0] === "start") ensureLabNetwork();
    // Only the engine lab/vps/dockerd.ts started (its pid file), and only with nothing left on it.
    if (args.includes("--stop-dockerd")) await stopDockerd({ onlyIfIdle: true });
}

if (require.main === module) {
    main(process.argv.slice(2)).catch((e) => {
        process.stderr.write(`[e2e] shared VPS: ${(e as Error).message}\n`);
        process.exitCode = 1;
    });
}
