// Layer 2, the edge: the Caddyfile and the host step that installs it.
//
// Source policies (RoboAgency "Caddy", DESIGN.md layer 2): automatic HTTPS with an ACME e-mail,
// HTTP→HTTPS, HSTS (1 year, includeSubDomains, preload), CSP, nosniff, frame-ancestors/X-Frame-Options,
// Referrer-Policy, Permissions-Policy, no Server header, JSON access logs, host routing, per-client
// rate limits. Deviation: the policy's `admin 0.0.0.0:2019` is never rendered — the admin API is
// "off" or on localhost inside the container (it would let anyone who reaches it reconfigure the edge).
//
// Every string interpolated here was validated by the config schema (host names, durations, header
// values without quotes/braces/backslashes); `caddyText` re-checks them as defence in depth, because
// the Caddyfile lexer substitutes `{$ENV}` and would end a quoted token at `"`.
import type { SiteConfig, StackConfig } from "../config";
import {
    CADDY_ACCESS_LOG_HOST,
    CADDY_ACCESS_LOG_NAME,
    CADDY_ADMIN_PORT,
    CADDY_LOG_DIR_CONTAINER,
    CADDY_LOG_DIR_HOST,
    GATEWAY_HEALTH_PORT,
    GATEWAY_METRICS_PORT,
    GATEWAY_UID,
    MONITORING_GATEWAY_IP,
} from "../posture/facts";
import { renderTemplate, hostLib } from "./template";
import type { HostFile, HostScript } from "./types";

/** Caddy version built by images/caddy (go.mod); the image tag should carry it. */
export const CADDY_VERSION = "2.11.9";
/** Suggested tag of the image built from images/caddy. */
export const CADDY_IMAGE_TAG = `citadel/caddy:${CADDY_VERSION}-ratelimit`;

export { CADDY_ACCESS_LOG_HOST, CADDY_ACCESS_LOG_NAME, CADDY_LOG_DIR_CONTAINER, CADDY_LOG_DIR_HOST, GATEWAY_HEALTH_PORT, GATEWAY_UID };
export const CADDY_ACCESS_LOG_CONTAINER = `${CADDY_LOG_DIR_CONTAINER}/${CADDY_ACCESS_LOG_NAME}`;

/** Where the Caddyfile lives on the host (bind-mounted read-only) and inside the container. */
export const CADDYFILE_HOST_PATH = "/etc/citadel/caddy/Caddyfile";
export const CADDYFILE_CONTAINER_PATH = "/etc/caddy/Caddyfile";


/**
 * The container healthcheck endpoint: loopback inside the gateway's network namespace, plain HTTP
 * (an IP with http:// gets neither a certificate nor a redirect), a port nothing publishes.
 */
export const GATEWAY_HEALTH_HOST = "127.0.0.1";
export const GATEWAY_HEALTH_PATH = "/healthz";
export const GATEWAY_HEALTH_URL = `http://${GATEWAY_HEALTH_HOST}:${GATEWAY_HEALTH_PORT}${GATEWAY_HEALTH_PATH}`;

/** Only the admin API's loopback address is ever rendered (never 0.0.0.0). */
export const CADDY_ADMIN_LISTEN = `localhost:${CADDY_ADMIN_PORT}`;

/** Overrides for tests and local runs on loopback. Production passes none. */
export interface CaddyRenderOptions {
    /** Global `http_port` (default 80). */
    httpPort?: number;
    /** Global `https_port` (default HTTPS_PORT). */
    httpsPort?: number;
    /** Send every site to this "host:port" instead of its app container (e.g. "127.0.0.1:41234"). */
    upstreamOverride?: string;
    /** Port of the loopback health endpoint (default GATEWAY_HEALTH_PORT). */
    healthPort?: number;
    /** Directory of the access log (default CADDY_LOG_DIR_CONTAINER). */
    logDir?: string;
    /** Address the metrics listener binds (default MONITORING_GATEWAY_IP, the gateway's on the monitoring network). */
    metricsHost?: string;
    /** Port of the metrics listener (default GATEWAY_METRICS_PORT). */
    metricsPort?: number;
}

/** The Caddyfile for the stack (production output when `opts` is omitted). */
export function renderCaddyfile(c: StackConfig, opts: CaddyRenderOptions = {}): string {
    const g = c.gateway;
    const apps = new Map(c.apps.map((a) => [a.name, a]));
    const upstreamOverride = opts.upstreamOverride === undefined ? undefined : checkUpstream(opts.upstreamOverride);
    const sites = c.sites.map((s) => {
        const app = apps.get(s.app);
        if (!app) throw new Error(`citadel:sites: ${JSON.stringify(s.host)} names app ${JSON.stringify(s.app)}, which is not in citadel:apps`);
        const rl = s.rateLimit ?? g.rateLimit;
        return {
            host: caddyText(s.host, "site host"),
            app: app.name,
            csp: caddyText(sitePolicy(c, s), "Content-Security-Policy"),
            zone: rateLimitZone(s.host),
            maxBody: caddyText(s.maxRequestBody ?? g.maxRequestBody, "request body size"),
            events: rl.events,
            window: caddyText(rl.window, "rate-limit window"),
            // The app's alias on its edge network (components/apps.ts) and its in-container port.
            upstream: upstreamOverride ?? `${app.name}:${app.port}`,
        };
    });
    const logDir = opts.logDir === undefined ? CADDY_LOG_DIR_CONTAINER : checkLogDir(opts.logDir);
    return renderTemplate("caddy/Caddyfile.hbs", {
        caddyVersion: CADDY_VERSION,
        email: caddyText(c.acmeEmail, "ACME e-mail"),
        adminListen: adminListen(g.adminApi),
        localCerts: g.acmeCa === "internal",
        acmeCa: g.acmeCa !== undefined && g.acmeCa !== "internal" ? caddyText(g.acmeCa, "ACME CA") : null,
        httpPort: opts.httpPort === undefined ? null : checkPort(opts.httpPort, "httpPort"),
        httpsPort: opts.httpsPort === undefined ? null : checkPort(opts.httpsPort, "httpsPort"),
        hstsMaxAge: g.hstsMaxAge,
        referrerPolicy: caddyText(g.referrerPolicy, "Referrer-Policy"),
        permissionsPolicy: caddyText(g.permissionsPolicy, "Permissions-Policy"),
        sites,
        logFile: `${logDir}/${CADDY_ACCESS_LOG_NAME}`,
        logRoll: accessLogRolling(c),
        health: { host: GATEWAY_HEALTH_HOST, port: opts.healthPort === undefined ? GATEWAY_HEALTH_PORT : checkPort(opts.healthPort, "healthPort") },
        metrics: c.monitoring.enabled
            ? { host: caddyText(opts.metricsHost ?? MONITORING_GATEWAY_IP, "metrics host"), port: opts.metricsPort === undefined ? GATEWAY_METRICS_PORT : checkPort(opts.metricsPort, "metricsPort") }
            : false,
    });
}

/** Bytes of a journald-style size ("2G", "500M", "64K"). */
export function sizeBytes(v: string): number {
    const m = /^([1-9][0-9]*)([KMG])$/.exec(v);
    if (!m) throw new Error(`${v} is not a size (e.g. 2G, 500M)`);
    return Number(m[1]) * 1024 ** (" KMG".indexOf(m[2]));
}

/**
 * How Caddy rolls the access log. Retention is a time: a file per day (so no entry sits in the live file
 * longer than a day), each kept citadel:host.journald.maxRetentionDays days. The count limit, which
 * Caddy always applies (0 means its default of 10), is set above what that period needs: one file per
 * day plus the budget's worth of size-rolled files, so only the budget (the audit alerts before it
 * is reached, in-log-retention) could ever cut into the period, never the count.
 */
export function accessLogRolling(c: StackConfig): { sizeMiB: number; interval: string; keep: number; keepFor: string; keepDays: number } {
    const sizeMiB = 100;
    const days = c.host.journald.maxRetentionDays;
    return { sizeMiB, interval: "24h", keep: days + 1 + Math.ceil(sizeBytes(c.host.accessLog.maxUse) / (sizeMiB * 1024 ** 2)), keepFor: `${days * 24}h`, keepDays: days };
}

/** "off" → no admin API; "localhost" → loopback of the container only. Exhaustive over the schema's modes. */
function adminListen(mode: StackConfig["gateway"]["adminApi"]): string | null {
    switch (mode) {
        case "off":
            return null;
        case "localhost":
            return CADDY_ADMIN_LISTEN;
        default: {
            const never: never = mode;
            throw new Error(`unknown admin API mode ${String(never)}`);
        }
    }
}

/**
 * The site's CSP (its override or the gateway's). X-Frame-Options DENY is only honoured by old
 * browsers; CSP `frame-ancestors` is the standard, so it is added when an override leaves it out.
 */
export function sitePolicy(c: StackConfig, s: SiteConfig): string {
    const csp = (s.contentSecurityPolicy ?? c.gateway.contentSecurityPolicy).trim().replace(/;\s*$/, "");
    return /(^|;)\s*frame-ancestors\s/i.test(csp) ? csp : `${csp}; frame-ancestors 'none'`;
}

/** caddy-ratelimit keeps zone state in a process-wide pool keyed by zone name: one name per site. */
export function rateLimitZone(host: string): string {
    return `site_${host.replace(/[^a-z0-9]/g, "_")}`;
}

// Characters that change the meaning of Caddyfile text: quotes end tokens, braces open blocks or
// placeholders ({$ENV} is substituted at parse time), backslash escapes, back-ticks quote, line
// breaks end directives.
const CADDY_UNSAFE = /["\\{}`\r\n]/;

function caddyText(v: string, what: string): string {
    if (CADDY_UNSAFE.test(v)) throw new Error(`${what} ${JSON.stringify(v)} contains a character that is not safe in a Caddyfile`);
    return v;
}

function checkPort(p: number, what: string): number {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`${what} ${p} is not a TCP port`);
    return p;
}

function checkUpstream(v: string): string {
    const m = /^([a-z0-9.-]+|\[[0-9a-f:]+\]):([0-9]{1,5})$/i.exec(v);
    if (!m) throw new Error(`upstreamOverride ${JSON.stringify(v)} is not "host:port"`);
    checkPort(Number(m[2]), "upstreamOverride port");
    return v;
}

function checkLogDir(v: string): string {
    if (!/^\/[A-Za-z0-9._/-]*$/.test(v) || v.includes("..")) throw new Error(`logDir ${JSON.stringify(v)} is not a plain absolute path`);
    return v.replace(/\/+$/, "");
}

/**
 * Host step "gateway-config": installs the Caddyfile at CADDYFILE_HOST_PATH (0644 root) and the
 * access-log directory (GATEWAY_UID, 0750), after the image's own Caddy validated the new file in a
 * throw-away container without network. The gateway container itself is created afterwards by the
 * Docker provider, which re-creates it when the Caddyfile's hash changes.
 */
export function renderGatewayScript(c: StackConfig, image: string): HostScript {
    const caddyfile: HostFile = { path: CADDYFILE_HOST_PATH, content: renderCaddyfile(c), mode: "0644", owner: "root", group: "root" };
    const script = renderTemplate("caddy/gateway-config.sh.hbs", {
        lib: hostLib(),
        image,
        caddyfilePath: CADDYFILE_HOST_PATH,
        caddyfileContainerPath: CADDYFILE_CONTAINER_PATH,
        logDir: CADDY_LOG_DIR_HOST,
        uid: GATEWAY_UID,
        caddyfile: caddyfile.content,
    });
    return {
        name: "gateway-config",
        description: `gateway: Caddyfile for ${c.sites.map((s) => s.host).join(", ") || "no sites"} at ${CADDYFILE_HOST_PATH} (validated with ${image}), access logs in ${CADDY_LOG_DIR_HOST}`,
        script,
        files: [caddyfile],
    };
}
