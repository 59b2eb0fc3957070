// Sites (what each HTTPS answer carries) and intrusion detection (what is watched, who is never
// banned, where a ban bites), as declared.
import type { StackConfig } from "../config";
import { rateLimitZone, sitePolicy } from "../render/caddy";
import { BOUNCER_CHAINS, CROWDSEC_PRIVATE_RANGES } from "../render/intrusion";
import { CADDY_ACCESS_LOG_HOST, SSH_PORT } from "./facts";
import type { IntrusionPosture, SitePosture } from "./types";

/** TLS versions the gateway accepts (templates/caddy/Caddyfile.hbs `protocols tls1.2 tls1.3`). */
export const TLS_PROTOCOLS = ["tls1.2", "tls1.3"];
/** Headers the gateway strips from every answer: they name the software behind the site. */
export const REMOVED_HEADERS = ["Server", "X-Powered-By", "Via"];

export function sitesPosture(c: StackConfig): SitePosture[] {
    const g = c.gateway;
    const apps = new Map(c.apps.map((a) => [a.name, a]));
    return c.sites.map((s) => {
        const app = apps.get(s.app);
        const rl = s.rateLimit ?? g.rateLimit;
        return {
            host: s.host,
            url: `https://${s.host}`,
            app: s.app,
            upstream: app ? `${app.name}:${app.port}` : "",
            headers: {
                "Strict-Transport-Security": `max-age=${g.hstsMaxAge}; includeSubDomains; preload`,
                "Content-Security-Policy": sitePolicy(c, s),
                "X-Content-Type-Options": "nosniff",
                "X-Frame-Options": "DENY",
                "Referrer-Policy": g.referrerPolicy,
                "Permissions-Policy": g.permissionsPolicy,
            },
            removedHeaders: [...REMOVED_HEADERS],
            rateLimit: { events: rl.events, window: rl.window, zone: rateLimitZone(s.host) },
            tls: { protocols: [...TLS_PROTOCOLS], hsts: { maxAge: g.hstsMaxAge, includeSubDomains: true, preload: true } },
            redirectHttp: true,
        };
    });
}

export function intrusionPosture(c: StackConfig): IntrusionPosture {
    const i = c.intrusion;
    switch (i.engine) {
        case "crowdsec":
            return {
                engine: "crowdsec",
                sources: ["journal: _SYSTEMD_UNIT=ssh.service", `file: ${CADDY_ACCESS_LOG_HOST} (caddy)`],
                banTimeSeconds: i.banTime,
                maxRetry: i.maxRetry,
                findTimeSeconds: i.findTime,
                exempt: [...(i.whitelistPrivateRanges ? CROWDSEC_PRIVATE_RANGES : ["127.0.0.1/32", "::1/128"]), ...i.ignoreIps],
                enforcedIn: [...BOUNCER_CHAINS],
            };
        case "fail2ban":
            return {
                engine: "fail2ban",
                sources: ["journal: sshd (backend systemd)"],
                banTimeSeconds: i.banTime,
                maxRetry: i.maxRetry,
                findTimeSeconds: i.findTime,
                exempt: ["127.0.0.1/8", "::1/128", ...i.ignoreIps],
                enforcedIn: [`INPUT (iptables-multiport, port ${SSH_PORT})`],
            };
        default: {
            const never: never = i.engine;
            throw new Error(`unknown intrusion engine ${String(never)}`);
        }
    }
}
