// One converged local VPS for an e2e file: Docker started if needed, the local stack converged by
// the real engine (lab/local.ts up), and a release that destroys it and stops only the dockerd this
// session started. Each e2e file names its own VPS (CITADEL_VPS_NAME) before importing this, or
// shares one with the files before and after it (shared-vps.ts).
import assert from "node:assert/strict";
import * as https from "node:https";
import { GATEWAY_CONTAINER } from "../../components/posture";
import { dockerReady, ensureDockerd, stopDockerd } from "../../lab/vps/dockerd";
import { run } from "../tools";
import { down, LOCAL_VPS, up } from "../../lab/local";
import { sharing } from "./shared-vps";

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
            // The shared VPS stays for the next file (lab/test.sh removes it at the end), and so
            // does the engine it runs on.
            if (sharing(LOCAL_VPS)) {
                process.stderr.write(`[e2e] leaving the shared VPS ${LOCAL_VPS} converged for the next file\n`);
                return;
            }
            if (!keep) await down();
            if (startedDockerd) await stopDockerd({ onlyIfIdle: true });
        },
    };
}

export interface Reply {
    status: number;
    body: string;
}

/** HTTPS to the VPS's first site through the gateway, with Caddy's own CA pinned: what a client on the Internet sees. */
export interface SiteClient {
    call(method: string, path: string, body?: string, headers?: Record<string, string>, timeoutMs?: number): Promise<Reply>;
    /** The body of a 2xx answer; anything else fails the test with the status and body. */
    ok(method: string, path: string, body?: string, headers?: Record<string, string>): Promise<string>;
}

/** A client of the session's first site; reads Caddy's local CA out of the gateway (acmeCa internal). */
export function siteClient(session: Pick<LabSession, "info" | "config">): SiteClient {
    const ca = run("docker", ["exec", session.info.name, "docker", "exec", GATEWAY_CONTAINER, "cat", "/data/caddy/pki/authorities/local/root.crt"]);
    assert.equal(ca.code, 0, `the gateway's CA: ${ca.stderr}`);
    const host = session.config.sites[0].host;
    const call: SiteClient["call"] = (method, p, body, headers = {}, timeoutMs = 30_000) =>
        new Promise((resolve) => {
            const req = https.request({ host: "127.0.0.1", port: session.info.httpsPort, servername: host, method, path: p, ca: ca.stdout, headers: { host, ...headers }, timeout: timeoutMs }, (r) => {
                let data = "";
                r.on("data", (d) => (data += d));
                r.on("end", () => resolve({ status: r.statusCode ?? 0, body: data }));
            });
            req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
            req.on("error", (e) => resolve({ status: 0, body: String(e) }));
            if (body !== undefined) req.write(body);
            req.end();
        });
    return {
        call,
        async ok(method, p, body, headers) {
            const r = await call(method, p, body, headers);
            assert.ok(r.status >= 200 && r.status < 300, `${method} ${p}: ${r.status} ${r.body}`);
            return r.body;
        },
    };
}
