// One converged local VPS for an e2e file: Docker started if needed, the local stack converged by
// the real engine (lab/local.ts up), and a release that destroys it and stops only the dockerd this
// session started. Each e2e file names its own VPS (CITADEL_VPS_NAME) before importing this.
import { dockerReady, ensureDockerd, stopDockerd } from "../../lab/vps/dockerd";
import { down, up } from "../../lab/local";

export interface LabSession {
    info: Awaited<ReturnType<typeof up>>["info"];
    config: Awaited<ReturnType<typeof up>>["config"];
    /** Destroys the stack and removes the VPS (unless `keep`), then stops a dockerd this session started. */
    release(keep?: boolean): Promise<void>;
}

export async function convergeLabVps(opts: { quiet?: boolean; sets?: string[] } = {}): Promise<LabSession> {
    const startedDockerd = !dockerReady();
    await ensureDockerd();
    const prev = process.env.CITADEL_QUIET;
    if (opts.quiet) process.env.CITADEL_QUIET = "1";
    let converged;
    try {
        converged = await up(opts.sets);
    } finally {
        if (prev === undefined) delete process.env.CITADEL_QUIET;
        else process.env.CITADEL_QUIET = prev;
    }
    return {
        info: converged.info,
        config: converged.config,
        async release(keep = false) {
            if (!keep) await down();
            if (startedDockerd) await stopDockerd({ onlyIfIdle: true });
        },
    };
}
