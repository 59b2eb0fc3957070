// The checks that span several keys: they run after every key parsed on its own (./schema.ts), and
// each issue names the key to change and how.
import type { z } from "zod";
import { backupChecks } from "./backup";
import type { StackConfig } from "./schema";
import { DATA_RESERVED_NAMES, GATEWAY_PORTS, GENERATED_SECRETS, IPV6_FORWARD_KEY, postgresClientApps, SSH_PORT, type GeneratedSecret } from "../posture/facts";
import { BUILTIN_SECRETS, INTERNAL_SECRETS, SECRET_LOOKING_RE, closest, credentialInValue, parsedUrl, postgresConnectionShareError, redisHeadroomError, show, urlOrigin } from "./validators";

/** All secret names a stack generates: the built-ins it needs plus the declared API keys. */
export function secretNames(c: Pick<StackConfig, "secrets">): string[] {
    return [...BUILTIN_SECRETS, ...Object.keys(c.secrets.apiKeys)];
}

/** Whether the stack needs a generated secret: its service is on. */
export function secretNeeded(s: GeneratedSecret, c: Pick<StackConfig, "postgres" | "redis" | "intrusion">): boolean {
    switch (s.needs) {
        case "always":
            return true;
        case "postgres":
            return c.postgres.enabled;
        case "redis":
            return c.redis.enabled;
        case "crowdsec":
            return c.intrusion.engine === "crowdsec";
    }
}

/** Every secret this stack generates (what citadel:secrets.rotateNow may name), in posture/containers.ts secretSpecs order. */
export function generatedSecretNames(c: Pick<StackConfig, "secrets" | "postgres" | "redis" | "intrusion">): string[] {
    return [...GENERATED_SECRETS.filter((s) => secretNeeded(s, c)).map((s) => s.name), ...Object.keys(c.secrets.apiKeys)];
}

/** Ports the host must keep open (SSH, HTTP, HTTPS): citadel:firewall.denyPorts may not cover them. */
const OPEN_PORTS = [SSH_PORT, ...GATEWAY_PORTS];

export function crossChecks(cfg: StackConfig, ctx: z.RefinementCtx): void {
    const add = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });

    // The gateway image built on the host: `docker build --tag` takes a name and tag, never a digest
    // (a digest names what a registry already holds); buildFrom only means something with a build.
    if (cfg.gateway.build && cfg.gateway.image.includes("@")) {
        add(["gateway", "image"], `${show(cfg.gateway.image)} has a digest, but the image is built on the host (gateway.build: true), which tags it by name: drop the @sha256:… part, or set gateway.build: false to run that digest as it is`);
    }
    if (!cfg.gateway.build && Object.values(cfg.gateway.buildFrom).some((v) => v !== undefined)) {
        add(["gateway", "buildFrom"], "is set but gateway.build is false (nothing is built): remove gateway.buildFrom, or set gateway.build: true");
    }

    // The server.
    if (cfg.target === "existing" && !cfg.existing) {
        add(["existing"], `is required when citadel:target is "existing": set address, port and hostKey (e.g. {"address": "203.0.113.10", "hostKey": "ssh-ed25519 AAAA..."})`);
    }
    if (cfg.target !== "existing" && cfg.existing) {
        add(["existing"], `is only used with citadel:target "existing"; remove it or set citadel:target to "existing"`);
    }

    // The firewall.
    const r = cfg.firewall.denyPorts;
    if (r.from > r.to) add(["firewall", "denyPorts"], `from (${r.from}) is above to (${r.to}); swap them`);
    for (const p of OPEN_PORTS) {
        if (p >= r.from && p <= r.to) add(["firewall", "denyPorts"], `the range ${r.from}-${r.to} includes port ${p}, which must stay open; deny a range of app ports only (e.g. 8001-8012)`);
    }

    // Apps and their secrets.
    const appNames = new Map<string, number>();
    cfg.apps.forEach((a, i) => {
        if (appNames.has(a.name)) add(["apps", i, "name"], `${show(a.name)} is already used by citadel:apps[${appNames.get(a.name)}]; app names must be unique`);
        else appNames.set(a.name, i);
    });
    const known = new Set(secretNames(cfg));
    cfg.apps.forEach((a, i) => {
        for (const [k, v] of Object.entries(a.env)) {
            const carries = credentialInValue(v, k);
            if (SECRET_LOOKING_RE.test(k) && !k.endsWith("_FILE")) {
                add(["apps", i, "env", k], `looks like a secret; secrets never go in the environment: list a generated secret in citadel:apps[${i}].secrets (it arrives as a file, announced by ${k}_FILE)`);
            } else if (carries) {
                // The value itself is never shown: this message ends up in CI logs.
                const url = carries.startsWith("a URL") ? "; for a URL, put the password in a secret and build the URL in the app (e.g. from DATABASE_HOST and POSTGRES_PASSWORD_FILE)" : "";
                add(["apps", i, "env", k], `the value carries a credential (${carries}; value not shown); secrets never go in the environment: list a generated secret in citadel:apps[${i}].secrets and read it from its <NAME>_FILE${url}`);
            }
        }
        a.secrets.forEach((s, j) => {
            if (!known.has(s)) add(["apps", i, "secrets", j], `${show(s)} is not a generated secret (known: ${[...known].join(", ")}); declare extra keys in citadel:secrets.apiKeys`);
            else if (s === "postgresPassword" && !cfg.postgres.enabled) add(["apps", i, "secrets", j], `postgresPassword is only generated when citadel:postgres.enabled is true; enable Postgres or remove it`);
            else if (s === "redisPassword" && !cfg.redis.enabled) add(["apps", i, "secrets", j], `redisPassword is only generated when citadel:redis.enabled is true; enable Redis or remove it`);
            else if ((s === "postgresPassword" || s === "redisPassword") && !a.data) add(["apps", i, "secrets", j], `${s} is the password of the app's own ${s === "postgresPassword" ? "Postgres role" : "Redis user"}, which only an app on a data network has: set citadel:apps[${i}].data to true, or remove it`);
        });
        // The app's name is its Postgres role and database and its Redis user: not one of theirs.
        if (a.data && DATA_RESERVED_NAMES.includes(a.name)) add(["apps", i, "name"], `${show(a.name)} is a name Postgres or Redis keeps for itself, and a data app's name is its role, database and Redis user: choose another name`);
        if (new Set(a.secrets).size !== a.secrets.length) add(["apps", i, "secrets"], `lists a secret twice; list each once`);
    });
    // Forced rotation: only a secret this stack generates can be rotated.
    const generated = generatedSecretNames(cfg);
    for (const k of Object.keys(cfg.secrets.rotateNow)) {
        if (!generated.includes(k)) {
            const near = closest(k, generated);
            add(["secrets", "rotateNow", k], `${show(k)} is not a secret this stack generates (${generated.join(", ")})${near ? `; did you mean ${show(near)}?` : ""}`);
        }
    }
    for (const k of Object.keys(cfg.secrets.apiKeys)) {
        if (BUILTIN_SECRETS.includes(k) || INTERNAL_SECRETS.includes(k)) add(["secrets", "apiKeys", k], `${show(k)} is a built-in secret; choose another name`);
    }

    // Sites.
    const hosts = new Map<string, number>();
    cfg.sites.forEach((s, i) => {
        if (hosts.has(s.host)) add(["sites", i, "host"], `${show(s.host)} is already served by citadel:sites[${hosts.get(s.host)}]; remove one of them`);
        else hosts.set(s.host, i);
        if (!appNames.has(s.app)) {
            const names = [...appNames.keys()];
            add(["sites", i, "app"], `${show(s.app)} is not an app (${names.length ? `known: ${names.join(", ")}` : "citadel:apps is empty"}); add it to citadel:apps or fix the name`);
        }
    });

    // Data services.
    if ((cfg.postgres.enabled || cfg.redis.enabled) && !cfg.apps.some((a) => a.data)) {
        add(["apps"], `Postgres/Redis are enabled but no app has "data": true, so nothing could reach them; set data: true on the app that uses them`);
    }
    cfg.apps.forEach((a, i) => {
        if (a.data && !cfg.postgres.enabled && !cfg.redis.enabled) add(["apps", i, "data"], `is true but neither citadel:postgres nor citadel:redis is enabled; set it to false or enable one`);
    });
    // IPv6 served: Citadel's DNAT to the gateway needs IPv6 forwarding, which UFW's sysctl file (this one)
    // would switch off again at every start and reload.
    const forward6 = cfg.host.sysctl[IPV6_FORWARD_KEY];
    if (cfg.host.docker.ipv6 && forward6 !== undefined && forward6.trim() !== "1") {
        add(["host", "sysctl", IPV6_FORWARD_KEY], `must stay 1 (not ${show(forward6)}) while citadel:host.docker.ipv6 is true: the sites reach the gateway over IPv6 by forwarding; remove this override, or set citadel:host.docker.ipv6 to false`);
    }
    // Each app's Postgres role gets an equal share of the connections (components/render/data.ts): at least one each.
    if (cfg.postgres.enabled) {
        const share = postgresConnectionShareError(cfg.postgres.resources.pids, postgresClientApps(cfg).length);
        if (share) add(["postgres", "resources", "pids"], share);
    }
    // The same rule as renderRedisConf (components/render/data.ts), before any resource exists.
    const headroom = redisHeadroomError(cfg.redis.maxMemory, cfg.redis.resources.memory);
    if (headroom) add(["redis", "maxMemory"], headroom);

    // Backups (./backup.ts).
    backupChecks(cfg, add);
    // Monitoring: receivers and the route.
    monitoringChecks(cfg, add);
}

function monitoringChecks(cfg: StackConfig, add: (path: (string | number)[], message: string) => void): void {
    const m = cfg.monitoring;
    const names = new Map<string, number>();
    m.receivers.forEach((r, i) => {
        if (names.has(r.name)) add(["monitoring", "receivers", i, "name"], `${show(r.name)} is already used by citadel:monitoring.receivers[${names.get(r.name)}]; receiver names must be unique`);
        else names.set(r.name, i);
        const url = parsedUrl(r.url);
        const smtp = url?.protocol === "smtp:" || url?.protocol === "smtps:";
        if (r.kind === "email") {
            if (!smtp) add(["monitoring", "receivers", i, "url"], `is not an SMTP server (value not shown): an email receiver's url is smtp://user:password@host:587 (STARTTLS, required) or smtps://user:password@host:465`);
            else if (url?.protocol === "smtps:" && url.port !== "" && url.port !== "465") {
                add(["monitoring", "receivers", i, "url"], `${urlOrigin(r.url)} is smtps:// on port ${url.port}: Alertmanager speaks TLS from the first byte on port 465 only; use smtps://...:465, or smtp://...:${url.port} if that port takes STARTTLS`);
            } else if (url && [url.username, url.password].some((p) => !percentDecodes(p))) {
                add(["monitoring", "receivers", i, "url"], `has a user or password with a bad %-escape (value not shown): write a literal % as %25, and @ : / as %40 %3A %2F`);
            }
            if (r.to === undefined) add(["monitoring", "receivers", i, "to"], `is required for an email receiver: the recipients, e.g. "ops@example.com"`);
            if (r.from === undefined) add(["monitoring", "receivers", i, "from"], `is required for an email receiver: the sender address, e.g. "citadel@example.com"`);
        } else {
            if (smtp) add(["monitoring", "receivers", i, "url"], `is an SMTP server but the receiver's kind is ${show(r.kind)}: set citadel:monitoring.receivers[${i}].kind to "email" (with to and from), or give an https:// URL`);
            for (const k of ["to", "from"] as const) {
                if (r[k] !== undefined) add(["monitoring", "receivers", i, k], `is only for an email receiver (this one's kind is ${show(r.kind)}): remove it, or set kind "email"`);
            }
        }
        // Only the origin is shown: the path and query of a webhook URL are its credential.
        if (r.url.startsWith("http://") && !m.allowPlainHttpReceivers) {
            add(["monitoring", "receivers", i, "url"], `${urlOrigin(r.url)}/... is plain http: alerts (and the URL's token) would cross the network in clear; use the receiver's https:// URL`);
        }
    });
    if (m.allowPlainHttpReceivers && cfg.target !== "existing") {
        add(["monitoring", "allowPlainHttpReceivers"], `is only for the local lab (citadel:target "existing"); on ${cfg.target} alerts must go to an https:// receiver: remove it`);
    }
    const route = m.route.receiver;
    if (route !== undefined && !names.has(route)) {
        const known = [...names.keys()];
        add(["monitoring", "route", "receiver"], `${show(route)} is not a receiver (${known.length ? `known: ${known.join(", ")}` : "citadel:monitoring.receivers is empty"}); add it to citadel:monitoring.receivers or fix the name`);
    }
    if (!m.enabled && m.receivers.length) add(["monitoring", "receivers"], `are set but citadel:monitoring.enabled is false, so nothing would send to them; enable monitoring or remove them`);
}

/** Whether a URL's user or password %-decodes (the renderer decodes them for Alertmanager). */
function percentDecodes(v: string): boolean {
    try {
        decodeURIComponent(v);
        return true;
    } catch {
        return false;
    }
}

/**
 * Every image the host pulls (not the gateway it builds, but what that build starts from) referenced by tag alone, with its config
 * key. A tag can be moved by whoever controls the registry, and a host that already has the image
 * never fetches it again (keepLocally): a digest is what makes an update a reviewed config change that
 * re-creates the container. Not an error: the program warns with the digest form to pin.
 */
export function tagOnlyImages(c: StackConfig): { key: string; image: string }[] {
    const refs: { key: string; image: string }[] = [
        ...(c.gateway.build ? [] : [{ key: "gateway.image", image: c.gateway.image }]),
        // The build pulls these (the Dockerfile's own defaults are pinned by digest).
        ...(c.gateway.build && c.gateway.buildFrom.goImage !== undefined ? [{ key: "gateway.buildFrom.goImage", image: c.gateway.buildFrom.goImage }] : []),
        ...(c.gateway.build && c.gateway.buildFrom.baseImage !== undefined ? [{ key: "gateway.buildFrom.baseImage", image: c.gateway.buildFrom.baseImage }] : []),
        ...(c.postgres.enabled ? [{ key: "postgres.image", image: c.postgres.image }] : []),
        ...(c.redis.enabled ? [{ key: "redis.image", image: c.redis.image }] : []),
        ...c.apps.map((a, i) => ({ key: `apps[${i}].image`, image: a.image })),
        ...(c.monitoring.enabled ? Object.entries(c.monitoring.images).map(([k, image]) => ({ key: `monitoring.images.${k}`, image })) : []),
    ];
    return refs.filter((r) => !r.image.includes("@sha256:")).map((r) => ({ key: `citadel:${r.key}`, image: r.image }));
}

/** The one warning for tag-only images (undefined when every image is pinned by digest). */
export function tagOnlyWarning(c: StackConfig): string | undefined {
    const refs = tagOnlyImages(c);
    if (!refs.length) return undefined;
    return (
        `${refs.length} image${refs.length === 1 ? " is" : "s are"} pinned by tag only, which a registry can move and a host never refreshes: ` +
        refs.map((r) => `${r.key} (${r.image})`).join(", ") +
        `. Pin each by digest, e.g. ${refs[0].image}@sha256:<the digest you reviewed> (docker buildx imagetools inspect ${refs[0].image}); an update is then a config change that re-creates the container.`
    );
}
