// The edge: the rendered Caddyfile judged by the Caddy that production runs (Caddy + caddy-ratelimit,
// built by images/caddy/build.sh into .cache/bin/caddy), then served for real on loopback.
//
// Behaviour runs use free high ports (http_port/https_port overrides), Caddy's local CA
// (gateway.acmeCa "internal"), an upstream Node server on 127.0.0.1, and clients that connect to
// 127.0.0.x directly with SNI/Host set: no DNS, no traffic off this machine.
import assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as path from "node:path";
import * as tls from "node:tls";
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import { parseConfigOrThrow, StackConfig } from "../../components/config";
import {
    CADDY_ACCESS_LOG_CONTAINER,
    CADDY_ACCESS_LOG_NAME,
    CADDY_LOG_DIR_HOST,
    CADDY_VERSION,
    CADDYFILE_HOST_PATH,
    GATEWAY_HEALTH_URL,
    GATEWAY_UID,
    rateLimitZone,
    accessLogRolling,
    renderCaddyfile,
    renderGatewayScript,
    sitePolicy,
} from "../../components/render/caddy";
import { shellQuote } from "../../components/render/template";
import { prodConfig, prodWith } from "../fixtures";
import { freePort, IN_CI, requireTool, run, tmpDir, waitFor, shellcheck } from "../tools";

const REPO = path.resolve(__dirname, "..", "..");
const CADDY_BIN = path.join(REPO, ".cache", "bin", "caddy");

/** The Caddy built from images/caddy (Debian's caddy lacks rate_limit, so PATH is not searched). */
function requireCaddy(t: TestContext): string | undefined {
    try {
        fs.accessSync(CADDY_BIN, fs.constants.X_OK);
        return CADDY_BIN;
    } catch {
        const msg = `${CADDY_BIN} not built (run: bash images/caddy/build.sh)`;
        if (IN_CI) throw new Error(msg);
        t.skip(msg);
        return undefined;
    }
}

function caddyEnv(dir: string): NodeJS.ProcessEnv {
    return { ...process.env, HOME: dir, XDG_DATA_HOME: path.join(dir, "data"), XDG_CONFIG_HOME: path.join(dir, "config") };
}

/**
 * `caddy validate` provisions the config, which opens the access-log file (/var/log/caddy/...). To
 * keep the production text byte-identical yet leave this machine's /var/log alone, it runs in a
 * private mount namespace with a tmpfs over /var/log.
 */
const PRIVATE_VAR_LOG = ["-m", "--propagation", "private", "--", "/bin/sh", "-c", 'mount -t tmpfs -o mode=0755 tmpfs /var/log && exec "$@"', "sh"];

function canUnshare(t: TestContext): boolean {
    if (process.getuid?.() === 0 && run("unshare", [...PRIVATE_VAR_LOG, "true"]).code === 0) return true;
    const msg = "needs root and mount namespaces (unshare -m) to validate without touching /var/log";
    if (IN_CI) throw new Error(msg);
    t.skip(msg);
    return false;
}

/** Writes the Caddyfile into a fresh dir and runs `caddy <cmd>` on it. */
function caddyOn(caddy: string, caddyfile: string, cmd: "validate" | "adapt") {
    const dir = tmpDir("citadel-caddy-");
    const file = path.join(dir, "Caddyfile");
    fs.writeFileSync(file, caddyfile);
    const args = [cmd, "--config", file, "--adapter", "caddyfile"];
    const r = cmd === "validate" ? run("unshare", [...PRIVATE_VAR_LOG, caddy, ...args], { env: caddyEnv(dir), timeout: 30_000 }) : run(caddy, args, { env: caddyEnv(dir), timeout: 30_000 });
    fs.rmSync(dir, { recursive: true, force: true });
    return r;
}

/** "1m" → nanoseconds, as Caddy's JSON stores durations. */
function durationNs(d: string): number {
    const m = /^(\d+)(ms|s|m|h)$/.exec(d);
    assert.ok(m, `bad duration ${d}`);
    const unit = { ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 }[m[2] as "ms" | "s" | "m" | "h"];
    return Number(m[1]) * unit;
}

/** Every object in a JSON tree with the given `handler`. */
function handlers(node: unknown, name: string, out: Record<string, unknown>[] = []): Record<string, unknown>[] {
    if (Array.isArray(node)) node.forEach((n) => handlers(n, name, out));
    else if (node && typeof node === "object") {
        const o = node as Record<string, unknown>;
        if (o.handler === name) out.push(o);
        Object.values(o).forEach((v) => handlers(v, name, out));
    }
    return out;
}

interface Route {
    match?: { host?: string[] }[];
    handle?: unknown[];
}
interface Server {
    listen: string[];
    routes?: Route[];
    automatic_https?: { disable?: boolean; disable_redirects?: boolean };
}
interface Adapted {
    admin?: { disabled?: boolean; listen?: string };
    apps: { http: { http_port?: number; servers: Record<string, Server> }; tls?: unknown };
}

/** The route serving `host`, in whichever server has it. */
function routeFor(j: Adapted, host: string): Route | undefined {
    for (const srv of Object.values(j.apps.http.servers)) {
        const r = srv.routes?.find((rt) => rt.match?.some((m) => m.host?.includes(host)));
        if (r) return r;
    }
    return undefined;
}

function checkAdapted(c: StackConfig, j: Adapted): void {
    // Admin API: disabled, or on the container's loopback only.
    if (c.gateway.adminApi === "off") assert.equal(j.admin?.disabled, true, "admin off must disable the admin API");
    else assert.equal(j.admin?.listen, "localhost:2019");
    const listeners = Object.values(j.apps.http.servers).flatMap((s) => s.listen);
    assert.ok(!JSON.stringify(j).includes("0.0.0.0:2019"), "nothing may mention 0.0.0.0:2019");
    assert.ok(!listeners.some((l) => l.endsWith(":2019")), `no HTTP server may listen on 2019: ${listeners.join(", ")}`);
    // HTTP→HTTPS is automatic; it must not be switched off anywhere.
    for (const [name, srv] of Object.entries(j.apps.http.servers)) {
        assert.notEqual(srv.automatic_https?.disable, true, `${name}: automatic HTTPS disabled`);
        assert.notEqual(srv.automatic_https?.disable_redirects, true, `${name}: HTTP→HTTPS redirects disabled`);
    }
    for (const s of c.sites) {
        const route = routeFor(j, s.host);
        assert.ok(route, `no route for ${s.host}`);
        const rl = handlers(route, "rate_limit");
        assert.equal(rl.length, 1, `${s.host}: expected one rate_limit handler`);
        const want = s.rateLimit ?? c.gateway.rateLimit;
        const zones = rl[0].rate_limits as Record<string, { key: string; max_events: number; window: number }>;
        assert.deepEqual(Object.keys(zones), [rateLimitZone(s.host)]);
        const z = Object.values(zones)[0];
        assert.equal(z.key, "{http.request.remote.host}");
        assert.equal(z.max_events, want.events, `${s.host}: events`);
        assert.equal(z.window, durationNs(want.window), `${s.host}: window`);
        const app = c.apps.find((a) => a.name === s.app)!;
        const proxy = handlers(route, "reverse_proxy");
        assert.deepEqual(
            proxy.map((p) => (p.upstreams as { dial: string }[]).map((u) => u.dial)),
            [[`${app.name}:${app.port}`]],
            `${s.host}: upstream`,
        );
    }
}

describe("Caddy build (images/caddy)", () => {
    it("go.mod pins the Caddy version the renderer and image tag name", () => {
        const gomod = fs.readFileSync(path.join(REPO, "images", "caddy", "go.mod"), "utf8");
        assert.match(gomod, new RegExp(`^\\s*github\\.com/caddyserver/caddy/v2 v${CADDY_VERSION.replace(/\./g, "\\.")}$`, "m"));
        assert.match(gomod, /^\s*github\.com\/mholt\/caddy-ratelimit v\S+$/m);
    });

    it("the built binary is that version and has the rate_limit handler", (t) => {
        const caddy = requireCaddy(t);
        if (!caddy) return;
        const v = run(caddy, ["version"]);
        assert.equal(v.code, 0, v.stderr);
        assert.match(v.stdout, new RegExp(`^v${CADDY_VERSION.replace(/\./g, "\\.")}\\b`));
        const mods = run(caddy, ["list-modules"]);
        assert.equal(mods.code, 0, mods.stderr);
        assert.ok(mods.stdout.split("\n").includes("http.handlers.rate_limit"), "http.handlers.rate_limit missing");
    });

    it("the Dockerfile builds the same module and runs it unprivileged with the renderer's contract", () => {
        const df = fs.readFileSync(path.join(REPO, "images", "caddy", "Dockerfile"), "utf8");
        // Base images are overridable (local VPS) and pinned by default (a version tag and its digest).
        assert.match(df, /^ARG GO_IMAGE=golang:\d+\.\d+\.\d+\S*@sha256:[a-f0-9]{64}$/m);
        assert.match(df, /^ARG BASE_IMAGE=debian:\d+\.\d+-slim@sha256:[a-f0-9]{64}$/m);
        assert.match(df, /^FROM \$\{GO_IMAGE\} AS build$/m);
        assert.match(df, /^FROM \$\{BASE_IMAGE\}$/m);
        assert.match(df, /^COPY go\.mod go\.sum \.\/$/m);
        assert.match(df, /^COPY main\.go \.\/$/m);
        assert.match(df, /go build -mod=readonly -trimpath/);
        assert.match(df, /setcap cap_net_bind_service=\+ep \/usr\/bin\/caddy/);
        assert.match(df, new RegExp(`^USER ${GATEWAY_UID}:${GATEWAY_UID}$`, "m"));
        assert.match(df, new RegExp(`useradd --system --uid ${GATEWAY_UID} --gid ${GATEWAY_UID}`));
        // validate opens the access log, so the log dir must be writable by Caddy inside the image too.
        assert.match(df, new RegExp(`chown ${GATEWAY_UID}:${GATEWAY_UID} /data /config ${path.dirname(CADDY_ACCESS_LOG_CONTAINER)}`));
        assert.match(df, /^ENV XDG_DATA_HOME=\/data \\\n\s+XDG_CONFIG_HOME=\/config$/m);
        assert.ok(df.includes(`"${GATEWAY_HEALTH_URL}"`), "HEALTHCHECK uses GATEWAY_HEALTH_URL");
        assert.ok(df.includes(`ENTRYPOINT ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]`));
    });

    it("build.sh is shellcheck-clean and skips an up-to-date binary", (t) => {
        if (!requireTool(t, "shellcheck") || !requireCaddy(t)) return;
        const sc = run("shellcheck", [path.join(REPO, "images", "caddy", "build.sh")]);
        assert.equal(sc.code, 0, sc.stdout + sc.stderr);
        const r = run("bash", [path.join(REPO, "images", "caddy", "build.sh")], { timeout: 30_000 });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /up to date/);
    });
});

describe("Caddyfile (rendered)", () => {
    it("prod config: caddy validate passes, adapt shows admin on loopback, every site rate-limited", (t) => {
        const caddy = requireCaddy(t);
        if (!caddy || !canUnshare(t)) return;
        const c = prodConfig();
        const text = renderCaddyfile(c);
        const v = caddyOn(caddy, text, "validate");
        assert.equal(v.code, 0, v.stderr);
        assert.match(v.stdout + v.stderr, /Valid configuration/);
        assert.doesNotMatch(v.stderr, /not formatted/, "rendered Caddyfile should be caddy-fmt clean");
        const a = caddyOn(caddy, text, "adapt");
        assert.equal(a.code, 0, a.stderr);
        const j = JSON.parse(a.stdout) as Adapted;
        checkAdapted(c, j);
        // Production listens on the standard ports; the test-only overrides are absent.
        assert.equal(j.apps.http.http_port, undefined);
        assert.doesNotMatch(text, /http_port|https_port|local_certs|acme_ca/);
        const https = Object.values(j.apps.http.servers).find((s) => s.listen.includes(":443"));
        assert.ok(https, "a server on :443");
        // The health endpoint: loopback only, plain HTTP.
        const health = new URL(GATEWAY_HEALTH_URL);
        const hs = Object.values(j.apps.http.servers).find((s) => s.listen.includes(`${health.hostname}:${health.port}`));
        assert.ok(hs, `a server bound to ${health.hostname}:${health.port} only`);
    });

    it("access log: a file per day kept maxRetentionDays, the count limit above what the period needs (caddy adapt)", (t) => {
        const caddy = requireCaddy(t);
        if (!caddy || !canUnshare(t)) return;
        for (const [days, maxUse] of [[90, "2G"], [30, "500M"]] as const) {
            const c = parseConfigOrThrow(prodWith({ host: { journald: { maxRetentionDays: days }, accessLog: { maxUse } } }));
            const text = renderCaddyfile(c);
            const v = caddyOn(caddy, text, "validate");
            assert.equal(v.code, 0, v.stderr);
            const a = caddyOn(caddy, text, "adapt");
            assert.equal(a.code, 0, a.stderr);
            const logs = Object.values((JSON.parse(a.stdout) as { logging: { logs: Record<string, { writer?: Record<string, unknown> }> } }).logging.logs);
            const files = logs.map((l) => l.writer).filter((w) => w?.output === "file");
            assert.ok(files.length > 0, "no file writer");
            for (const w of files) {
                // Time first: rolled daily (Caddy stores durations in ns), deleted after the period.
                assert.equal(w?.roll_interval, 24 * 3600 * 1e9, JSON.stringify(w));
                assert.equal(w?.roll_keep_days, days, JSON.stringify(w));
                // A day's file for every day of the period, plus the budget's worth of 100 MiB rolls.
                assert.equal(w?.roll_size_mb, 100);
                assert.ok(Number(w?.roll_keep) > days, `roll_keep ${String(w?.roll_keep)} would delete daily files before ${days} days`);
                assert.equal(w?.roll_keep, accessLogRolling(c).keep);
            }
            assert.equal(accessLogRolling(c).keep, days + 1 + Math.ceil((maxUse === "2G" ? 2048 : 500) / 100));
        }
    });

    it("request bodies: the gateway's limit on every site, a site's own where set (caddy adapt); the admin API off by default", (t) => {
        const caddy = requireCaddy(t);
        if (!caddy || !canUnshare(t)) return;
        const base = prodConfig();
        assert.equal(base.gateway.adminApi, "off", "nothing in the stack needs Caddy's admin API");
        assert.equal(base.gateway.maxRequestBody, "10MB");
        const [first, ...rest] = base.sites;
        const c = parseConfigOrThrow(prodWith({ gateway: { maxRequestBody: "2MB" }, sites: [{ ...first, maxRequestBody: "512KiB" }, ...rest] }));
        const text = renderCaddyfile(c);
        const v = caddyOn(caddy, text, "validate");
        assert.equal(v.code, 0, v.stderr);
        const a = caddyOn(caddy, text, "adapt");
        assert.equal(a.code, 0, a.stderr);
        const j = JSON.parse(a.stdout) as Adapted;
        assert.equal(j.admin?.disabled, true);
        const limits = (host: string) => [...JSON.stringify(routeFor(j, host)).matchAll(/"handler":"request_body","max_size":(\d+)/g)].map((m) => Number(m[1]));
        assert.deepEqual(limits(first.host), [512 * 1024]);
        for (const s of rest) assert.deepEqual(limits(s.host), [2_000_000], s.host);
        assert.throws(() => parseConfigOrThrow(prodWith({ gateway: { maxRequestBody: "10 megs" } })), /citadel:gateway\.maxRequestBody.*not a size/s);
    });

    it("adminApi off: validates, and the admin API is disabled", (t) => {
        const caddy = requireCaddy(t);
        if (!caddy || !canUnshare(t)) return;
        const c = parseConfigOrThrow(prodWith({ gateway: { adminApi: "off" } }));
        const text = renderCaddyfile(c);
        assert.match(text, /^\tadmin off$/m);
        const v = caddyOn(caddy, text, "validate");
        assert.equal(v.code, 0, v.stderr);
        const a = caddyOn(caddy, text, "adapt");
        assert.equal(a.code, 0, a.stderr);
        checkAdapted(c, JSON.parse(a.stdout) as Adapted);
    });

    it("acmeCa: a directory URL becomes acme_ca, internal becomes local_certs", (t) => {
        const caddy = requireCaddy(t);
        if (!caddy || !canUnshare(t)) return;
        const staging = "https://acme-staging-v02.api.letsencrypt.org/directory";
        const withUrl = renderCaddyfile(parseConfigOrThrow(prodWith({ gateway: { acmeCa: staging } })));
        assert.ok(withUrl.includes(`\tacme_ca "${staging}"\n`));
        const a = caddyOn(caddy, withUrl, "adapt");
        assert.equal(a.code, 0, a.stderr);
        assert.ok(a.stdout.includes(JSON.stringify(staging)), "adapted JSON names the configured CA");
        const internal = renderCaddyfile(parseConfigOrThrow(prodWith({ gateway: { acmeCa: "internal" } })));
        assert.match(internal, /^\tlocal_certs$/m);
        assert.equal(caddyOn(caddy, internal, "validate").code, 0);
    });

    it("a site CSP without frame-ancestors gets frame-ancestors 'none'", () => {
        const c = parseConfigOrThrow(
            prodWith({ sites: [{ host: "www.example.com", app: "web", contentSecurityPolicy: "default-src 'self'" }] }),
        );
        assert.equal(sitePolicy(c, c.sites[0]), "default-src 'self'; frame-ancestors 'none'");
        const prod = prodConfig();
        assert.equal(sitePolicy(prod, prod.sites[1]), "default-src 'none'; frame-ancestors 'none'");
    });

    it("text that would change Caddyfile syntax is refused even past the schema", () => {
        const c = prodConfig();
        const evil: StackConfig = { ...c, gateway: { ...c.gateway, acmeCa: "https://ca.example/{$HOME}" } };
        assert.throws(() => renderCaddyfile(evil), /not safe in a Caddyfile/);
        assert.throws(() => renderCaddyfile(c, { upstreamOverride: "x y:1" }), /host:port/);
        assert.throws(() => renderCaddyfile(c, { httpPort: 70000 }), /not a TCP port/);
    });
});

describe("gateway-config host step", () => {
    /**
     * Runs the script with its paths moved into `root` and a `docker` stub that runs the real Caddy
     * (built from the same module as the image) on the file the script would bind-mount.
     */
    function runScript(c: StackConfig, root: string, caddy: string, tamper?: (s: string) => string) {
        const hs = renderGatewayScript(c, c.gateway.image);
        let script = hs.script;
        const conf = path.join(root, "etc", "caddy", "Caddyfile");
        const logs = path.join(root, "log", "caddy");
        for (const [name, from, to] of [
            ["CADDYFILE", CADDYFILE_HOST_PATH, conf],
            ["LOG_DIR", CADDY_LOG_DIR_HOST, logs],
        ]) {
            const line = `\n${name}=${shellQuote(from)}\n`;
            assert.ok(script.includes(line), `script sets ${name}`);
            script = script.replace(line, `\n${name}=${shellQuote(to)}\n`);
        }
        if (tamper) script = tamper(script);
        const bin = path.join(root, "bin");
        fs.mkdirSync(bin, { recursive: true });
        const calls = path.join(root, "docker-calls.log");
        fs.writeFileSync(
            path.join(bin, "docker"),
            [
                "#!/bin/bash",
                "# test stub: `docker image inspect` succeeds; `docker run ... -v SRC:DST:ro ... caddy validate` runs the real caddy on SRC",
                `printf '%s\\n' "$*" >> ${shellQuote(calls)}`,
                'if [ "$1 $2" = "image inspect" ]; then exit 0; fi',
                'src=""; while [ $# -gt 0 ]; do case "$1" in -v) src="${2%%:*}"; shift 2;; validate) shift; break;; *) shift;; esac; done',
                `export HOME=${shellQuote(root)} XDG_DATA_HOME=${shellQuote(root)}/data XDG_CONFIG_HOME=${shellQuote(root)}/config`,
                `exec unshare -m --propagation private -- /bin/sh -c 'mount -t tmpfs -o mode=0755 tmpfs /var/log && exec "$@"' sh ${shellQuote(caddy)} validate --config "$src" --adapter caddyfile`,
            ].join("\n") + "\n",
            { mode: 0o755 },
        );
        // The host library pins PATH; the stub goes in front of it.
        const pathLine = /^PATH=(\S+)$/m;
        assert.match(script, pathLine);
        script = script.replace(pathLine, (_l, p: string) => `PATH=${shellQuote(bin)}:${p}`);
        const file = path.join(root, "gateway-config.sh");
        fs.writeFileSync(file, script);
        const r = run("bash", [file], { timeout: 60_000 });
        return { r, conf, logs, calls, script: hs };
    }

    it("is shellcheck-clean", (t) => {
        const sc = requireTool(t, "shellcheck");
        if (!sc) return;
        // SC1001: shell-quote writes `citadel/caddy\:2.x` (a harmless backslash before ':').
        const r = shellcheck(sc, renderGatewayScript(prodConfig(), prodConfig().gateway.image).script, ["-e", "SC1001"]);
        assert.equal(r.code, 0, r.stdout);
    });

    it("validates with the image's caddy, installs, is idempotent, and refuses a broken Caddyfile", (t) => {
        const caddy = requireCaddy(t);
        if (!caddy || !canUnshare(t)) return;
        const c = prodConfig();
        const root = tmpDir("citadel-gw-");
        t.after(() => fs.rmSync(root, { recursive: true, force: true }));

        const first = runScript(c, root, caddy);
        assert.equal(first.r.code, 0, first.r.stderr + first.r.stdout);
        assert.match(first.r.stdout, /Caddyfile installed/);
        assert.equal(fs.readFileSync(first.conf, "utf8"), first.script.files[0].content);
        const st = fs.statSync(first.conf);
        assert.equal(st.mode & 0o777, 0o644);
        assert.equal(st.uid, 0);
        const ls = fs.statSync(first.logs);
        assert.equal(ls.uid, GATEWAY_UID);
        assert.equal(ls.gid, GATEWAY_UID);
        assert.equal(ls.mode & 0o777, 0o750);
        const calls = fs.readFileSync(first.calls, "utf8");
        assert.match(calls, /^run --rm --pull never --network none .*--entrypoint caddy citadel\/caddy:\S+ validate --config \/etc\/caddy\/Caddyfile --adapter caddyfile$/m);

        const second = runScript(c, root, caddy);
        assert.equal(second.r.code, 0, second.r.stderr);
        assert.match(second.r.stdout, /citadel: gateway: unchanged/);

        const broken = runScript(parseConfigOrThrow(prodWith({ gateway: { adminApi: "off" } })), root, caddy, (s) =>
            s.replace("\treverse_proxy web:3000 {", "\treverse_proxyy web:3000 {"),
        );
        assert.notEqual(broken.r.code, 0);
        assert.match(broken.r.stderr, /citadel: gateway: the new Caddyfile failed `caddy validate`/);
        assert.match(broken.r.stderr, /reverse_proxyy/, "caddy's own message is shown");
        assert.equal(fs.readFileSync(first.conf, "utf8"), first.script.files[0].content, "live Caddyfile untouched");
    });
});

// ------------------------------------------------------------------------------------------------
// Behaviour on loopback
// ------------------------------------------------------------------------------------------------

interface Reply {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
}

const WWW = "www.citadel.test";
const API = "api.citadel.test";
const EVENTS = 5;

function httpsGet(port: number, host: string, ca: Buffer, opts: { path?: string; localAddress?: string; body?: Buffer } = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
        // Straight to 127.0.0.1: SNI and Host carry the site name, so no name is ever resolved.
        const req = https.request(
            { host: "127.0.0.1", port, path: opts.path ?? "/", method: opts.body ? "POST" : "GET", servername: host, headers: { host }, ca, localAddress: opts.localAddress, agent: false, timeout: 5000 },
            (res) => {
                let body = "";
                res.setEncoding("utf8");
                res.on("data", (d) => (body += d));
                res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
            },
        );
        req.on("timeout", () => req.destroy(new Error("timeout")));
        req.on("error", reject);
        req.end(opts.body);
    });
}

function httpGet(port: number, host: string, reqPath: string): Promise<Reply> {
    return new Promise((resolve, reject) => {
        const req = http.request({ host: "127.0.0.1", port, path: reqPath, headers: { host }, agent: false, timeout: 5000 }, (res) => {
            res.resume();
            res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: "" }));
        });
        req.on("timeout", () => req.destroy(new Error("timeout")));
        req.on("error", reject);
        req.end();
    });
}

/** A TLS handshake pinned to one protocol version; resolves with the negotiated version or the error. */
function handshake(port: number, ca: Buffer, version: tls.SecureVersion): Promise<{ ok: boolean; detail: string }> {
    return new Promise((resolve) => {
        // SECLEVEL=0 so that OpenSSL on the client side is willing to offer TLS 1.1 at all: the refusal
        // we want to see is the server's (a protocol_version alert), not our own.
        const s = tls.connect({ host: "127.0.0.1", port, servername: WWW, ca, minVersion: version, maxVersion: version, ciphers: "DEFAULT@SECLEVEL=0" });
        const timer = setTimeout(() => s.destroy(new Error("timeout")), 5000);
        s.once("secureConnect", () => {
            clearTimeout(timer);
            const v = s.getProtocol() ?? "?";
            s.end();
            resolve({ ok: true, detail: v });
        });
        s.once("error", (e: NodeJS.ErrnoException) => {
            clearTimeout(timer);
            resolve({ ok: false, detail: `${e.code ?? ""} ${e.message}` });
        });
    });
}

async function stopByPid(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    process.kill(child.pid, "SIGTERM");
    // Caddy drains connections for up to its grace_period (10 s) before it exits.
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 12_000)))]);
    clearTimeout(timer);
    if (!done && child.exitCode === null) {
        process.kill(child.pid, "SIGKILL");
        await exited;
    }
}

describe("Caddy on loopback", () => {
    it("serves the sites with HTTPS, security headers, redirects, TLS ≥ 1.2, rate limits and JSON access logs", async (t) => {
        const caddy = requireCaddy(t);
        if (!caddy) return;
        const dir = tmpDir("citadel-caddy-run-");
        const logDir = path.join(dir, "logs");
        fs.mkdirSync(logDir);
        const servers: http.Server[] = [];
        let proc: ChildProcess | undefined;
        let caddyLog = "";
        t.after(async () => {
            if (proc) await stopByPid(proc);
            for (const s of servers) s.close();
            fs.rmSync(dir, { recursive: true, force: true });
        });

        // The upstream app: answers 200 and tries to leak the headers the edge must replace or remove.
        const seen: http.IncomingHttpHeaders[] = [];
        const upstream = http.createServer((req, res) => {
            seen.push(req.headers);
            res.writeHead(200, {
                "content-type": "text/plain",
                server: "upstream-test/1.0",
                "x-powered-by": "Express",
                "content-security-policy": "default-src *",
                "x-frame-options": "ALLOWALL",
            });
            res.end(`hello from upstream for ${req.headers.host}`);
        });
        servers.push(upstream);
        await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", () => r()));
        const upstreamPort = (upstream.address() as import("node:net").AddressInfo).port;

        const c = parseConfigOrThrow(
            prodWith({
                domain: "citadel.test",
                gateway: { acmeCa: "internal", adminApi: "off", rateLimit: { events: EVENTS, window: "1m" } },
                sites: [
                    { host: WWW, app: "web" },
                    { host: API, app: "api", rateLimit: { events: 50, window: "1m" }, contentSecurityPolicy: "default-src 'none'", maxRequestBody: "1MB" },
                ],
            }),
        );
        const [httpPort, httpsPort, healthPort] = [await freePort(), await freePort(), await freePort()];
        const metricsPort = await freePort();
        const text = renderCaddyfile(c, { httpPort, httpsPort, healthPort, upstreamOverride: `127.0.0.1:${upstreamPort}`, logDir, metricsHost: "127.0.0.1", metricsPort });
        const file = path.join(dir, "Caddyfile");
        fs.writeFileSync(file, text);

        proc = spawn(caddy, ["run", "--config", file, "--adapter", "caddyfile"], { env: caddyEnv(dir), stdio: ["ignore", "pipe", "pipe"] });
        proc.stdout?.on("data", (d) => (caddyLog += d));
        proc.stderr?.on("data", (d) => (caddyLog += d));
        const rootCrt = path.join(dir, "data", "caddy", "pki", "authorities", "local", "root.crt");
        let ca = Buffer.alloc(0);
        const up = await waitFor(async () => {
            if (proc?.exitCode !== null) return true;
            if (!fs.existsSync(rootCrt)) return false;
            ca = fs.readFileSync(rootCrt);
            return (await handshake(httpsPort, ca, "TLSv1.3")).ok;
        }, 30_000);
        assert.ok(up && proc.exitCode === null, `caddy did not come up:\n${caddyLog}`);

        await t.test("HTTPS reaches the upstream through the proxy, with every security header", async () => {
            const r = await httpsGet(httpsPort, WWW, ca, { path: "/hello?x=1" });
            assert.equal(r.status, 200, r.body);
            assert.equal(r.body, `hello from upstream for ${WWW}`);
            const h = r.headers;
            assert.equal(h["strict-transport-security"], `max-age=${c.gateway.hstsMaxAge}; includeSubDomains; preload`);
            assert.equal(h["content-security-policy"], sitePolicy(c, c.sites[0]));
            assert.equal(h["x-content-type-options"], "nosniff");
            assert.equal(h["x-frame-options"], "DENY");
            assert.equal(h["referrer-policy"], c.gateway.referrerPolicy);
            assert.equal(h["permissions-policy"], c.gateway.permissionsPolicy);
            assert.equal(h["cross-origin-opener-policy"], "same-origin");
            assert.equal(h["server"], undefined, "no Server header (neither Caddy's nor the app's)");
            assert.equal(h["via"], undefined, "no Via header naming the proxy");
            assert.equal(h["x-powered-by"], undefined);
            // The app saw the real client and the original host.
            const last = seen[seen.length - 1];
            assert.equal(last.host, WWW);
            assert.equal(last["x-forwarded-for"], "127.0.0.1");
            assert.equal(last["x-forwarded-proto"], "https");
        });

        await t.test("a per-site CSP override is served on that site", async () => {
            const r = await httpsGet(httpsPort, API, ca);
            assert.equal(r.status, 200);
            assert.equal(r.headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
        });

        await t.test("plain HTTP redirects permanently to HTTPS", async () => {
            const r = await httpGet(httpPort, WWW, "/some/path?q=1");
            assert.ok([301, 308].includes(r.status), `status ${r.status}`);
            // Caddy redirects to the site's name and keeps path and query (it leaves out a non-default
            // https_port, which only this test uses).
            assert.match(r.headers.location ?? "", new RegExp(`^https://${WWW.replace(/\./g, "\\.")}(:${httpsPort})?/some/path\\?q=1$`));
        });

        await t.test("only TLS 1.2 and 1.3 are accepted", async () => {
            assert.deepEqual(await handshake(httpsPort, ca, "TLSv1.3"), { ok: true, detail: "TLSv1.3" });
            assert.deepEqual(await handshake(httpsPort, ca, "TLSv1.2"), { ok: true, detail: "TLSv1.2" });
            for (const old of ["TLSv1.1", "TLSv1"] as const) {
                const r = await handshake(httpsPort, ca, old);
                assert.equal(r.ok, false, `${old} was accepted`);
                // The server's refusal (an alert from the peer), not a client-side "no protocols".
                assert.match(r.detail, /alert protocol version/i, `${old}: ${r.detail}`);
            }
        });

        await t.test("the health endpoint answers on loopback over plain HTTP", async () => {
            const r = await httpGet(healthPort, "127.0.0.1", "/healthz");
            assert.equal(r.status, 200);
            const other = await httpGet(healthPort, "127.0.0.1", "/admin");
            assert.equal(other.status, 404);
        });

        await t.test("a request body over the site's limit gets 413, one under it reaches the app", async () => {
            // From an address of its own, so the rate-limit counts below stay exact.
            const big = await httpsGet(httpsPort, API, ca, { path: "/upload", body: Buffer.alloc(2_000_000, 97), localAddress: "127.0.0.9" });
            assert.equal(big.status, 413, big.body);
            const small = await httpsGet(httpsPort, API, ca, { path: "/upload", body: Buffer.alloc(100_000, 97), localAddress: "127.0.0.9" });
            assert.equal(small.status, 200, small.body);
        });

        await t.test("a burst beyond the limit gets 429 per client address and per site", async () => {
            // 127.0.0.2 has made no request yet: the first EVENTS pass, the next is refused.
            const statuses: number[] = [];
            let refused: Reply | undefined;
            for (let i = 0; i < EVENTS + 5 && !refused; i++) {
                const r = await httpsGet(httpsPort, WWW, ca, { localAddress: "127.0.0.2" });
                statuses.push(r.status);
                if (r.status === 429) refused = r;
            }
            assert.deepEqual(statuses, [...Array(EVENTS).fill(200), 429]);
            assert.ok(refused);
            assert.ok(Number(refused.headers["retry-after"]) > 0, "Retry-After on 429");
            assert.equal(refused.headers["strict-transport-security"], `max-age=${c.gateway.hstsMaxAge}; includeSubDomains; preload`, "headers on 429 too");
            assert.equal(refused.headers["x-frame-options"], "DENY");
            assert.equal(refused.headers["server"], undefined);
            assert.equal(refused.body, "429 Too Many Requests");
            // Another client address is still served, and so is the same address on another site.
            assert.equal((await httpsGet(httpsPort, WWW, ca, { localAddress: "127.0.0.3" })).status, 200);
            assert.equal((await httpsGet(httpsPort, API, ca, { localAddress: "127.0.0.2" })).status, 200);
            assert.equal((await httpsGet(httpsPort, WWW, ca, { localAddress: "127.0.0.2" })).status, 429);
        });

        await t.test("the access log is JSON with the client address", async () => {
            const logFile = path.join(logDir, CADDY_ACCESS_LOG_NAME);
            assert.equal(path.basename(CADDY_ACCESS_LOG_CONTAINER), CADDY_ACCESS_LOG_NAME);
            let entries: { request: { host: string; remote_ip: string; client_ip: string; uri: string }; status: number }[] = [];
            const found = await waitFor(() => {
                if (!fs.existsSync(logFile)) return false;
                entries = fs
                    .readFileSync(logFile, "utf8")
                    .split("\n")
                    .filter(Boolean)
                    .map((l) => JSON.parse(l));
                return entries.some((e) => e.status === 429);
            }, 5000);
            assert.ok(found, `no 429 entry in ${logFile}`);
            const ok = entries.find((e) => e.request.uri === "/hello?x=1");
            assert.ok(ok, "the first request is logged");
            assert.equal(ok.request.host, WWW);
            assert.equal(ok.request.remote_ip, "127.0.0.1");
            assert.equal(ok.request.client_ip, "127.0.0.1");
            assert.equal(ok.status, 200);
            const limited = entries.filter((e) => e.status === 429);
            assert.ok(limited.every((e) => e.request.client_ip === "127.0.0.2"), "only 127.0.0.2 was limited");
        });

        await t.test("the metrics listener counts each answer once by status code (the 401/403/429 alerts read it)", async () => {
            const logged = fs
                .readFileSync(path.join(logDir, CADDY_ACCESS_LOG_NAME), "utf8")
                .split("\n")
                .filter(Boolean)
                .map((l) => JSON.parse(l) as { status: number });
            const text = await new Promise<string>((resolve, reject) => {
                http.get({ host: "127.0.0.1", port: metricsPort, path: "/metrics" }, (res) => {
                    let b = "";
                    res.on("data", (d) => (b += d));
                    res.on("end", () => resolve(b));
                }).on("error", reject);
            });
            // Every series of the rules' metric with that code, summed over handlers: one count per request.
            const count = (code: number) =>
                text
                    .split("\n")
                    .filter((l) => l.startsWith("caddy_http_request_duration_seconds_count{") && l.includes(`code="${code}"`))
                    .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
            const inLog = (code: number) => logged.filter((e) => e.status === code).length;
            assert.ok(inLog(429) > 0, "the burst above logged 429s");
            assert.match(text, /caddy_http_request_duration_seconds_count/, `no HTTP metrics:\n${text.slice(0, 3000)}`);
            assert.equal(count(429), inLog(429), `429s: metrics ${count(429)}, access log ${inLog(429)}`);
        });
    });
});
