// The config schema: secure defaults, and a table of bad configs each rejected with a message that
// names the offending key and says how to fix it.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { configKey, credentialInValue, imageError, ipForwardError, parseConfig, parseConfigOrThrow, POSTGRES_MIN_MEMORY_MB, rawFromObject, sshPublicKeyError, StackConfig, tagOnlyImages, tagOnlyWarning } from "../../components/config";
import { existingRaw, prodConfig, prodRaw, prodWith } from "../fixtures";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMmWBSQBsZWnMjy8RjysXvzAuJKHcUNHWzwio6RClj/n ops@example.com";
const prod = () => JSON.parse(prodRaw()["citadel:admin"]);
const apps = () => JSON.parse(prodRaw()["citadel:apps"]);

describe("config: defaults", () => {
    it("fills secure defaults for everything the prod example leaves out", () => {
        const c = prodConfig();
        assert.equal(c.ssh.maxAuthTries, 3);
        assert.equal(c.ssh.clientAliveInterval, 300);
        assert.equal(c.ssh.clientAliveCountMax, 2);
        assert.deepEqual(c.firewall.denyPorts, { from: 8001, to: 8012 });
        assert.equal(c.firewall.sshRateLimit, true);
        assert.equal(c.gateway.adminApi, "off");
        assert.equal(c.gateway.hstsMaxAge, 31536000);
        assert.match(c.gateway.contentSecurityPolicy, /default-src 'self'/);
        assert.match(c.gateway.contentSecurityPolicy, /frame-ancestors 'none'/);
        assert.equal(c.intrusion.maxRetry, 3);
        assert.equal(c.intrusion.banTime, 3600);
        assert.deepEqual(c.secrets.rotationDays, { jwtSecret: 90, apiEncryptionKey: 365, postgresPassword: 182, redisPassword: 182, crowdsecBouncerKey: 365 });
        assert.equal(c.host.journald.maxRetentionDays, 90);
        assert.equal(c.host.unattendedUpgrades.enabled, true);
        for (const a of c.apps) {
            assert.notEqual(a.user.split(":")[0], "0");
            assert.equal(a.egress, false, `apps have no Internet egress unless they ask (${a.name})`);
        }
        assert.ok(c.redis.disabledCommands.includes("FLUSHALL") && c.redis.disabledCommands.includes("CONFIG"));
    });

    it("accepts the minimal config and defaults the target to hcloud", () => {
        const r = parseConfig(rawFromObject({ domain: "example.org", acmeEmail: "a@example.org", admin: { sshPublicKeys: [KEY] } }));
        assert.ok(r.ok, r.ok ? "" : r.errors.join("\n"));
        assert.equal(r.config.target, "hcloud");
        assert.deepEqual(r.config.admin.sourceIps, []);
        assert.equal(r.config.admin.user, "deploy");
    });

    it("always has citadel:hcloud after parsing (its defaults), also for target existing", () => {
        const minimal = parseConfigOrThrow(rawFromObject({ domain: "example.org", acmeEmail: "a@example.org", admin: { sshPublicKeys: [KEY] } }));
        assert.deepEqual(minimal.hcloud, { location: "fsn1", serverType: "cx22", image: "debian-12", serverName: "citadel" });
        const existing = parseConfigOrThrow(existingRaw());
        assert.equal(existing.target, "existing");
        assert.equal(existing.hcloud.location, "fsn1");
        const partial = parseConfigOrThrow(prodWith({ hcloud: { location: "hel1" } }));
        assert.deepEqual(partial.hcloud, { location: "hel1", serverType: "cx22", image: "debian-12", serverName: "citadel" });
    });

    it("fills an object's defaults from its fields when the object is partly given", () => {
        const c = parseConfigOrThrow(
            rawFromObject({ domain: "example.org", acmeEmail: "a@example.org", admin: { sshPublicKeys: [KEY] }, secrets: { rotationDays: { jwtSecret: 30 } }, host: { unattendedUpgrades: { autoReboot: true } } }),
        );
        assert.deepEqual(c.secrets.rotationDays, { jwtSecret: 30, apiEncryptionKey: 365, postgresPassword: 182, redisPassword: 182, crowdsecBouncerKey: 365 });
        assert.deepEqual(c.host.unattendedUpgrades, { enabled: true, autoReboot: true, restartServices: "auto", autoRebootTime: "04:00", applyAtConverge: true, applyTimeoutSeconds: 900 });
        assert.equal(c.host.docker.logMaxFile, 3);
        assert.equal(c.ssh.maxStartups, "10:30:60");
    });

    it("keeps IPv4 forwarding on: only \"1\" (trimmed) is accepted", () => {
        for (const v of ["1", " 1", "1 "]) assert.equal(ipForwardError(v), undefined, v);
        for (const v of ["0", "2", "01", "on", "1 1"]) assert.ok(ipForwardError(v), v);
        assert.ok(parseConfig(prodWith({ host: { sysctl: { "net.ipv4.ip_forward": "1 " } } })).ok);
    });

    it("keeps IPv6 forwarding on while the sites are served over IPv6 (the DNAT to the gateway needs it); with IPv6 off, an override is the operator's", () => {
        const r = parseConfig(prodWith({ host: { sysctl: { "net.ipv6.conf.all.forwarding": "0" } } }));
        assert.ok(!r.ok);
        assert.match(JSON.stringify(r), /citadel:host\.sysctl\[\\"net\.ipv6\.conf\.all\.forwarding\\"\]: must stay 1 \(not \\"0\\"\) while citadel:host\.docker\.ipv6 is true/);
        assert.ok(parseConfig(prodWith({ host: { sysctl: { "net.ipv6.conf.all.forwarding": "1" } } })).ok);
        assert.ok(parseConfig(prodWith({ host: { docker: { ipv6: false }, sysctl: { "net.ipv6.conf.all.forwarding": "0" } } })).ok);
    });

    it("refuses exactly what the renderers refuse (their throws are defence in depth)", async () => {
        const { sysctlEntries } = await import("../../components/render/host");
        const data = await import("../../components/render/data");
        assert.equal(data.POSTGRES_MIN_MEMORY_MB, POSTGRES_MIN_MEMORY_MB, "one minimum for the schema and the Postgres renderer");
        const base = prodConfig();
        const cases: [string, (c: StackConfig) => unknown, Record<string, unknown>][] = [];
        for (const v of ["1", "1 ", "0", "2", " 0"]) {
            cases.push([`ip_forward ${JSON.stringify(v)}`, sysctlEntries, { host: { sysctl: { "net.ipv4.ip_forward": v } } }]);
        }
        for (const memory of ["128m", "131072k", "131071k", "127m", "64m", "1g"]) {
            cases.push([`postgres ${memory}`, data.postgresTuning, { postgres: { ...base.postgres, resources: { memory, cpus: 1, pids: 100 } } }]);
        }
        for (const [maxMemory, memory] of [["192mb", "256m"], ["193mb", "256m"], ["1gb", "1g"], ["768mb", "1g"], ["769mb", "1g"]]) {
            cases.push([`redis ${maxMemory} in ${memory}`, data.renderRedisConf, { redis: { ...base.redis, maxMemory, resources: { memory, cpus: 0.5, pids: 128 } } }]);
        }
        for (const [what, render, overrides] of cases) {
            const parsed = parseConfig(prodWith(overrides));
            // The renderer gets the same values, with the schema bypassed.
            const unchecked = { ...base, ...overrides } as StackConfig;
            let threw = false;
            try {
                render(unchecked);
            } catch {
                threw = true;
            }
            assert.equal(!parsed.ok, threw, `${what}: schema ${parsed.ok ? "accepts" : "refuses"} but the renderer ${threw ? "throws" : "renders"}`);
        }
    });

    it("formats keys the way `pulumi config set --path` takes them", () => {
        assert.equal(configKey(["admin", "sourceIps", 1]), "citadel:admin.sourceIps[1]");
        assert.equal(configKey(["apps", 0, "env", "DB_PASSWORD"]), "citadel:apps[0].env.DB_PASSWORD");
        assert.equal(configKey(["host", "sysctl", "net.ipv4.ip_forward"]), 'citadel:host.sysctl["net.ipv4.ip_forward"]');
    });

    it("accepts RSA keys of 4096 bit and refuses 2048 bit", async () => {
        const { execFileSync } = await import("node:child_process");
        const fs = await import("node:fs");
        const { tmpDir } = await import("../tools");
        const dir = tmpDir();
        for (const bits of [2048, 4096]) {
            execFileSync("ssh-keygen", ["-q", "-t", "rsa", "-b", String(bits), "-N", "", "-f", `${dir}/rsa${bits}`]);
        }
        assert.match(sshPublicKeyError(fs.readFileSync(`${dir}/rsa2048.pub`, "utf8")) ?? "", /2048 bits; at least 3072/);
        assert.equal(sshPublicKeyError(fs.readFileSync(`${dir}/rsa4096.pub`, "utf8")), undefined);
        fs.rmSync(dir, { recursive: true });
    });
});

/** [what, config overrides on the prod example, the key the message must name, a fragment of the fix]. */
const BAD: [string, Record<string, unknown>, string, RegExp][] = [
    ["bad CIDR octet", { admin: { ...prod(), sourceIps: ["203.0.113.0/24", "10.0.0.300/24"] } }, "citadel:admin.sourceIps[1]", /"10.0.0.300\/24" is not a CIDR/],
    ["CIDR prefix too long", { admin: { ...prod(), sourceIps: ["10.0.0.0/33"] } }, "citadel:admin.sourceIps[0]", /not a CIDR/],
    ["CIDR of the whole Internet", { admin: { ...prod(), sourceIps: ["0.0.0.0/0"] } }, "citadel:admin.sourceIps[0]", /leave the list empty/],
    ["no public keys", { admin: { ...prod(), sshPublicKeys: [] } }, "citadel:admin.sshPublicKeys", /at least one public key/],
    ["DSA key", { admin: { ...prod(), sshPublicKeys: ["ssh-dss AAAAB3NzaC1kc3MAAACBAP"] } }, "citadel:admin.sshPublicKeys[0]", /ed25519/],
    ["truncated key", { admin: { ...prod(), sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"] } }, "citadel:admin.sshPublicKeys[0]", /copy the whole line/],
    ["private key pasted", { admin: { ...prod(), sshPublicKeys: ["-----BEGIN OPENSSH PRIVATE KEY-----"] } }, "citadel:admin.sshPublicKeys[0]", /not a supported key type|not an OpenSSH public key/],
    ["root as admin", { admin: { ...prod(), user: "root" } }, "citadel:admin.user", /root login is disabled/],
    ["admin user with spaces", { admin: { ...prod(), user: "dev ops" } }, "citadel:admin.user", /not a valid Unix user name/],
    ["typo in admin key", { admin: { ...prod(), sorceIps: [] } }, "citadel:admin.sorceIps", /did you mean "sourceIps"/],
    ["unknown top-level key", { domian: "example.com" }, "citadel:domian", /did you mean "domain"/],
    ["upper-case domain", { domain: "Example.com" }, "citadel:domain", /lower-case/],
    ["domain without dot", { domain: "localhost" }, "citadel:domain", /fully qualified/],
    ["bad e-mail", { acmeEmail: "ops-at-example.com" }, "citadel:acmeEmail", /not an e-mail address/],
    ["unknown target", { target: "aws" }, "citadel:target", /one of hcloud, existing/],
    ["existing without host", { target: "existing" }, "citadel:existing", /required when citadel:target is "existing"/],
    ["existing host key missing", { target: "existing", existing: { address: "203.0.113.10" } }, "citadel:existing.hostKey", /required/],
    ["existing ECDSA host key", { target: "existing", existing: { address: "203.0.113.10", hostKey: "ecdsa-sha2-nistp256 AAAA" } }, "citadel:existing.hostKey", /ed25519/],
    ["existing bad address", { target: "existing", existing: { address: "not a host", hostKey: KEY } }, "citadel:existing.address", /not an IP address or host name/],
    ["bad Hetzner location", { hcloud: { location: "mars1" } }, "citadel:hcloud.location", /not a Hetzner location/],
    ["non-Debian image", { hcloud: { image: "ubuntu-24.04" } }, "citadel:hcloud.image", /debian-12/],
    ["admin API on all interfaces", { gateway: { adminApi: "0.0.0.0:2019" } }, "citadel:gateway.adminApi", /use "off" or "localhost"/],
    ["gateway image latest", { gateway: { image: "caddy:latest" } }, "citadel:gateway.image", /pin a version tag or a digest/],
    ["CSP with a quote", { gateway: { contentSecurityPolicy: 'default-src "self"' } }, "citadel:gateway.contentSecurityPolicy", /may not contain quotes/],
    ["rate-limit window", { gateway: { rateLimit: { events: 10, window: "a minute" } } }, "citadel:gateway.rateLimit.window", /not a duration/],
    ["HSTS too short", { gateway: { hstsMaxAge: 3600 } }, "citadel:gateway.hstsMaxAge", /below the minimum 31536000/],
    ["ACME over http", { gateway: { acmeCa: "http://acme.example.com/directory" } }, "citadel:gateway.acmeCa", /https:\/\//],
    ["site for unknown app", { sites: [{ host: "www.example.com", app: "blog" }] }, "citadel:sites[0].app", /"blog" is not an app/],
    ["duplicate site host", { sites: [{ host: "www.example.com", app: "web" }, { host: "www.example.com", app: "api" }] }, "citadel:sites[1].host", /already served/],
    ["wildcard site", { sites: [{ host: "*.example.com", app: "web" }] }, "citadel:sites[0].host", /wildcard/],
    ["app image without tag", { apps: [{ ...apps()[0], image: "ghcr.io/example/web" }] }, "citadel:apps[0].image", /has no tag/],
    ["app running as root", { apps: [{ ...apps()[0], user: "0:0" }] }, "citadel:apps[0].user", /non-root/],
    ["secret in env", { apps: [{ ...apps()[0], env: { DB_PASSWORD: "hunter2" } }] }, "citadel:apps[0].env.DB_PASSWORD", /list a generated secret/],
    ["password in a URL", { apps: [{ ...apps()[0], env: { DATABASE_URL: "postgres://app:hunter2@postgres/app" } }] }, "citadel:apps[0].env.DATABASE_URL", /password in it .*citadel:apps\[0\]\.secrets .*<NAME>_FILE.*build the URL in the app/],
    ["Redis URL with only a password", { apps: [{ ...apps()[0], env: { CACHE_URL: "redis://:hunter2@redis:6379/0" } }] }, "citadel:apps[0].env.CACHE_URL", /password in it .*build the URL in the app/],
    ["secret in a URL query", { apps: [{ ...apps()[0], env: { WEBHOOK: "https://hooks.example.com/in?token=hunter2hunter2" } }] }, "citadel:apps[0].env.WEBHOOK", /secret in its query .*citadel:apps\[0\]\.secrets/],
    ["PEM private key in env", { apps: [{ ...apps()[0], env: { TLS_KEY_PEM: "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----" } }] }, "citadel:apps[0].env.TLS_KEY_PEM", /PEM block \(-----BEGIN PRIVATE KEY-----\).*citadel:apps\[0\]\.secrets/],
    ["Stripe live key", { apps: [{ ...apps()[0], env: { STRIPE: "sk_live_4eC39HqLyjWDarjtT1zdp7dc" } }] }, "citadel:apps[0].env.STRIPE", /Stripe secret key.*<NAME>_FILE/],
    ["GitHub token", { apps: [{ ...apps()[0], env: { GH_AUTH: "ghp_aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6" } }] }, "citadel:apps[0].env.GH_AUTH", /GitHub token/],
    ["Slack bot token", { apps: [{ ...apps()[0], env: { SLACK_BOT: "xoxb-123456789012-1234567890123-abcdefghijkl" } }] }, "citadel:apps[0].env.SLACK_BOT", /Slack token/],
    ["AWS access key id", { apps: [{ ...apps()[0], env: { AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE" } }] }, "citadel:apps[0].env.AWS_ACCESS_KEY_ID", /AWS access key id/],
    ["JWT in env", { apps: [{ ...apps()[0], env: { SERVICE_AUTH: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U" } }] }, "citadel:apps[0].env.SERVICE_AUTH", /JSON Web Token/],
    ["random base64 in env", { apps: [{ ...apps()[0], env: { SESSION_KEY: "uRm1lVgk+1q40NhlwsThFbLm1NsMIIG3ULB9YvGHgAc=" } }] }, "citadel:apps[0].env.SESSION_KEY", /random-looking token \(43 characters/],
    ["random hex in env", { apps: [{ ...apps()[0], env: { SIGNING_KEY: "d51787df979f012d5d1c222793f64f733d85d5567952528c87c0a5c249c825f3" } }] }, "citadel:apps[0].env.SIGNING_KEY", /random-looking hex token \(64 characters/],
    ["unknown secret", { apps: [apps()[0], { ...apps()[1], secrets: ["stripeKey"] }] }, "citadel:apps[1].secrets[0]", /citadel:secrets.apiKeys/],
    ["duplicate app name", { apps: [apps()[0], { ...apps()[1], name: "web" }] }, "citadel:apps[1].name", /must be unique/],
    ["reserved app name", { apps: [{ ...apps()[0], name: "postgres" }] }, "citadel:apps[0].name", /reserved/],
    ["app port out of range", { apps: [{ ...apps()[0], port: 70000 }] }, "citadel:apps[0].port", /above the maximum 65535/],
    ["app memory unit", { apps: [{ ...apps()[0], resources: { memory: "1GB", cpus: 1, pids: 100 } }] }, "citadel:apps[0].resources.memory", /not a memory size/],
    ["app with zero CPUs", { apps: [{ ...apps()[0], resources: { memory: "128m", cpus: 0, pids: 100 } }] }, "citadel:apps[0].resources.cpus", /above 0/],
    ["deny range includes 443", { firewall: { denyPorts: { from: 400, to: 500 } } }, "citadel:firewall.denyPorts", /includes port 443/],
    ["deny range reversed", { firewall: { denyPorts: { from: 8012, to: 8001 } } }, "citadel:firewall.denyPorts", /swap them/],
    ["unknown intrusion engine", { intrusion: { engine: "snort" } }, "citadel:intrusion.engine", /one of crowdsec, fail2ban/],
    ["fail2ban maxRetry 0", { intrusion: { maxRetry: 0 } }, "citadel:intrusion.maxRetry", /below the minimum 1/],
    ["weak SSH cipher", { ssh: { ciphers: ["3des-cbc"] } }, "citadel:ssh.ciphers[0]", /not an accepted cipher/],
    ["weak SSH MAC", { ssh: { macs: ["hmac-md5"] } }, "citadel:ssh.macs[0]", /not an accepted MAC/],
    ["MaxAuthTries too high", { ssh: { maxAuthTries: 10 } }, "citadel:ssh.maxAuthTries", /above the maximum 6/],
    ["rollback window too short for a confirming connection", { ssh: { rollbackSeconds: 10 } }, "citadel:ssh.rollbackSeconds", /below the minimum 30/],
    ["the shared role of earlier versions", { postgres: { enabled: true, user: "app" } }, "citadel:postgres.user", /was removed: one role shared by every app .*its own role and database, both named after the app/],
    ["the shared database of earlier versions", { postgres: { enabled: true, database: "app" } }, "citadel:postgres.database", /was removed: .*renames the old database to the app's/],
    ["a data app named like a Postgres database", { apps: [apps()[0], { ...apps()[1], name: "template1" }] }, "citadel:apps[1].name", /Postgres or Redis keeps for itself/],
    ["a data app named like Redis' default user", { apps: [apps()[0], { ...apps()[1], name: "default" }] }, "citadel:apps[1].name", /Postgres or Redis keeps for itself/],
    ["a database password for an app off the data network", { apps: [{ ...apps()[0], secrets: ["postgresPassword"] }, apps()[1]] }, "citadel:apps[0].secrets[0]", /only an app on a data network has: set citadel:apps\[0\]\.data to true/],
    ["redis command lower-case", { redis: { enabled: true, disabledCommands: ["flushall"] } }, "citadel:redis.disabledCommands[0]", /upper case/],
    ["secret of a disabled service", { redis: { enabled: false } }, "citadel:apps[1].secrets[3]", /redis.enabled/],
    ["rotation anchor not a date", { secrets: { rotationAnchor: "soon" } }, "citadel:secrets.rotationAnchor", /YYYY-MM-DD/],
    ["turning off IP forwarding", { host: { sysctl: { "net.ipv4.ip_forward": "0" } } }, 'citadel:host.sysctl["net.ipv4.ip_forward"]', /must stay 1 .*remove this override/],
    ["IP forwarding set to 2", { host: { sysctl: { "net.ipv4.ip_forward": "2" } } }, 'citadel:host.sysctl["net.ipv4.ip_forward"]', /must stay 1 \(not "2"\).*remove this override/],
    ["sysctl value with a line break", { host: { sysctl: { "kernel.sysrq": "0\nkernel.x = 1" } } }, 'citadel:host.sysctl["kernel.sysrq"]', /not a plain sysctl value/],
    ["Postgres under its minimum memory", { postgres: { enabled: true, resources: { memory: "64m", cpus: 1, pids: 100 } } }, "citadel:postgres.resources.memory", /at least 128m/],
    ["Postgres memory in k under the minimum", { postgres: { enabled: true, resources: { memory: "131071k", cpus: 1, pids: 100 } } }, "citadel:postgres.resources.memory", /at least 128m/],
    ["Redis maxMemory without headroom", { redis: { enabled: true, maxMemory: "256mb" } }, "citadel:redis.maxMemory", /at most 3\/4 of citadel:redis.resources.memory/],
    ["Redis memory unit", { redis: { enabled: true, maxMemory: "128m" } }, "citadel:redis.maxMemory", /not a Redis memory size \(e.g. 128mb\)/],
    ["ACME directory with a Caddy placeholder", { gateway: { acmeCa: "https://acme.example.com/{$HOME}" } }, "citadel:gateway.acmeCa", /may not contain quotes, backslashes, braces/],
    ["Permissions-Policy with a brace", { gateway: { permissionsPolicy: "camera=(){}" } }, "citadel:gateway.permissionsPolicy", /may not contain/],
    ["site CSP with a line break", { sites: [{ host: "www.example.com", app: "web", contentSecurityPolicy: "default-src 'self'\nrespond 200" }] }, "citadel:sites[0].contentSecurityPolicy", /line breaks/],
    ["two keys in one entry", { admin: { ...prod(), sshPublicKeys: [`${KEY}\n${KEY}`] } }, "citadel:admin.sshPublicKeys[0]", /one key per list entry/],
    ["MaxStartups rate above 100", { ssh: { maxStartups: "10:200:60" } }, "citadel:ssh.maxStartups", /percentage from 1 to 100/],
    ["MaxStartups start above full", { ssh: { maxStartups: "70:30:60" } }, "citadel:ssh.maxStartups", /start \(70\) is above full \(60\)/],
    ["existing on the hcloud target", { existing: { address: "203.0.113.10", hostKey: KEY } }, "citadel:existing", /only used with citadel:target "existing"/],
    ["rotation anchor that is no day", { secrets: { rotationAnchor: "2026-02-31" } }, "citadel:secrets.rotationAnchor", /YYYY-MM-DD/],
    ["rotation period 0", { secrets: { rotationDays: { jwtSecret: 0 } } }, "citadel:secrets.rotationDays.jwtSecret", /below the minimum 1/],
    ["API key named like a built-in", { secrets: { apiKeys: { jwtSecret: 90 } } }, "citadel:secrets.apiKeys.jwtSecret", /choose another name/],
    ["deny range partly given", { firewall: { denyPorts: { from: 9000 } } }, "citadel:firewall.denyPorts.to", /required/],
    ["unknown nested key", { host: { journald: { maxRetention: 30 } } }, "citadel:host.journald.maxRetention", /did you mean "maxRetentionDays"/],
    ["journald retention 0", { host: { journald: { maxRetentionDays: 0 } } }, "citadel:host.journald.maxRetentionDays", /below the minimum 1/],
    ["number where a list belongs", { sites: 5 }, "citadel:sites", /expected/],
    ["failed-login threshold 0", { monitoring: { thresholds: { failedSshLogins: { count: 0 } } } }, "citadel:monitoring.thresholds.failedSshLogins.count", /would alert on every evaluation .*use at least 1/],
    ["disk threshold 0", { monitoring: { thresholds: { diskPercent: 0 } } }, "citadel:monitoring.thresholds.diskPercent", /use at least 1/],
    ["disk threshold 100", { monitoring: { thresholds: { diskPercent: 100 } } }, "citadel:monitoring.thresholds.diskPercent", /above the maximum 99/],
    ["alert window not a duration", { monitoring: { thresholds: { bans: { window: "5 minutes" } } } }, "citadel:monitoring.thresholds.bans.window", /not a duration .*e.g. 30s, 5m/],
    ["receiver over plain http", { monitoring: { receivers: [{ name: "ops", url: "http://hooks.example.com/T0K3N" }] } }, "citadel:monitoring.receivers[0].url", /http:\/\/hooks.example.com\/\.\.\. is plain http.*use the receiver's https:\/\/ URL/],
    ["receiver that is not a web address", { monitoring: { receivers: [{ name: "ops", url: "hooks.example.com/x" }] } }, "citadel:monitoring.receivers[0].url", /is not a URL .*https:\/\//],
    ["receiver over ftp", { monitoring: { receivers: [{ name: "ops", url: "ftp://hooks.example.com/x" }] } }, "citadel:monitoring.receivers[0].url", /"ftp:" URLs cannot receive alerts; use an https:\/\/ URL/],
    ["unknown receiver kind", { monitoring: { receivers: [{ name: "ops", kind: "pager", url: "https://hooks.example.com/x" }] } }, "citadel:monitoring.receivers[0].kind", /one of webhook, slack, email/],
    ["email receiver pointing at a web address", { monitoring: { receivers: [{ name: "mail", kind: "email", to: "ops@example.com", from: "citadel@example.com", url: "https://hooks.example.com/x" }] } }, "citadel:monitoring.receivers[0].url", /is not an SMTP server \(value not shown\).*smtp:\/\/user:password@host:587/],
    ["email receiver without recipients", { monitoring: { receivers: [{ name: "mail", kind: "email", from: "citadel@example.com", url: "smtp://u:p@smtp.example.com:587" }] } }, "citadel:monitoring.receivers[0].to", /is required for an email receiver/],
    ["email receiver without a sender", { monitoring: { receivers: [{ name: "mail", kind: "email", to: "ops@example.com", url: "smtp://u:p@smtp.example.com:587" }] } }, "citadel:monitoring.receivers[0].from", /is required for an email receiver/],
    ["email recipient that is not an address", { monitoring: { receivers: [{ name: "mail", kind: "email", to: "ops@example.com, oncall", from: "citadel@example.com", url: "smtp://u:p@smtp.example.com:587" }] } }, "citadel:monitoring.receivers[0].to", /"oncall" is not an e-mail address.*comma-separated/],
    ["smtps on the STARTTLS port", { monitoring: { receivers: [{ name: "mail", kind: "email", to: "ops@example.com", from: "citadel@example.com", url: "smtps://u:p@smtp.example.com:587" }] } }, "citadel:monitoring.receivers[0].url", /smtps:\/\/smtp.example.com:587 is smtps:\/\/ on port 587.*port 465 only/],
    ["a webhook pointing at an SMTP server", { monitoring: { receivers: [{ name: "ops", url: "smtp://u:p@smtp.example.com:587" }] } }, "citadel:monitoring.receivers[0].url", /is an SMTP server but the receiver's kind is "webhook": set .*kind to "email"/],
    ["email password with a bad %-escape", { monitoring: { receivers: [{ name: "mail", kind: "email", to: "ops@example.com", from: "citadel@example.com", url: "smtp://u:pa%zz@smtp.example.com:587" }] } }, "citadel:monitoring.receivers[0].url", /bad %-escape \(value not shown\).*%25/],
    ["recipients on a webhook", { monitoring: { receivers: [{ name: "ops", to: "ops@example.com", url: "https://hooks.example.com/x" }] } }, "citadel:monitoring.receivers[0].to", /is only for an email receiver/],
    ["route to an unknown receiver", { monitoring: { receivers: [{ name: "ops", url: "https://hooks.example.com/x" }], route: { receiver: "pager" } } }, "citadel:monitoring.route.receiver", /"pager" is not a receiver \(known: ops\); add it to citadel:monitoring.receivers/],
    ["route without any receiver", { monitoring: { route: { receiver: "ops" } } }, "citadel:monitoring.route.receiver", /citadel:monitoring.receivers is empty/],
    ["two receivers of one name", { monitoring: { receivers: [{ name: "ops", url: "https://a.example.com/x" }, { name: "ops", url: "https://b.example.com/x" }] } }, "citadel:monitoring.receivers[1].name", /must be unique/],
    ["plain-http receivers on Hetzner", { monitoring: { allowPlainHttpReceivers: true } }, "citadel:monitoring.allowPlainHttpReceivers", /only for the local lab .*remove it/],
    ["drift audit every hour", { monitoring: { driftInterval: "1h" } }, "citadel:monitoring.driftInterval", /within 15 minutes; use at most 15m/],
    ["receivers with monitoring off", { monitoring: { enabled: false, receivers: [{ name: "ops", url: "https://a.example.com/x" }] } }, "citadel:monitoring.receivers", /enable monitoring or remove them/],
    ["typo in a threshold", { monitoring: { thresholds: { failedSshLogin: { count: 5 } } } }, "citadel:monitoring.thresholds.failedSshLogin", /did you mean "failedSshLogins"/],
];

/** Why the program failed to reject a row as the table says, or undefined when it did. */
function notRejected([what, overrides, key, fix]: (typeof BAD)[number]): string | undefined {
    const r = parseConfig(prodWith(overrides));
    if (r.ok) return `${what}: accepted`;
    const line = r.errors.find((e) => e.startsWith(`${key}:`));
    if (!line) return `${what}: no error names ${key}; got:\n${r.errors.join("\n")}`;
    if (!fix.test(line)) return `${what}: ${JSON.stringify(line)} does not say ${fix}`;
    return undefined;
}

/** Plain configuration that must pass the credential check (credentialInValue). */
const ORDINARY_ENV_VALUES = [
    "production", "info", "debug", "true", "false", "0", "8080", "postgres", "redis", "app.example.com", "en_US.UTF-8", "Europe/Berlin",
    "https://api.example.com/v1", "postgres://app@postgres:5432/app", "redis://redis:6379/0", "https://user@example.com/", "/var/lib/app/uploads",
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "application/x-www-form-urlencoded", "ghcr.io/example/api:2.0.1",
    "ghcr.io/example/api@sha256:4f8c3f2a9d1e6b7c0a5d8e2f1b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e", "550e8400-e29b-41d4-a716-446655440000",
    "feature-a,feature-b,new-checkout-flow", "--max-old-space-size=384 --enable-source-maps", "-Xmx512m -XX:+UseG1GC -Dspring.profiles.active=prod",
    "org.springframework.boot.autoconfigure.SpringBootApplication", "MyVeryLongCamelCaseIdentifierName2024", "/srv/data/Uploads2024/ProjectFilesArchive",
    "0000000000000000000000000000000000000000", "sk-learn", "desk-reservation-system-production-v2-eu-west", "[\"GET\",\"POST\"]",
];

describe("config: credentials in env values", () => {
    it("ordinary values pass", () => {
        for (const v of ORDINARY_ENV_VALUES) assert.equal(credentialInValue(v), undefined, v);
        const c = parseConfig(prodWith({ apps: [{ ...apps()[0], env: Object.fromEntries(ORDINARY_ENV_VALUES.map((v, i) => [`PLAIN_${i}`, v])) }, apps()[1]] }));
        assert.ok(c.ok, c.ok ? "" : c.errors.join("\n"));
    });

    it("a checksum named as one (official images ship PG_SHA256) is no key; the same hex under another name is", () => {
        const hex = "d51787df979f012d5d1c222793f64f733d85d5567952528c87c0a5c249c825f3";
        assert.equal(credentialInValue(hex, "PG_SHA256"), undefined);
        assert.equal(credentialInValue(hex, "REDIS_DOWNLOAD_SHA"), undefined);
        assert.match(credentialInValue(hex, "SIGNING") ?? "", /hex token/);
    });

    it("the error never contains the value", () => {
        for (const [, overrides] of BAD.filter(([what]) => /URL|PEM|Stripe|GitHub|Slack|AWS|JWT|random/.test(what))) {
            const env = (overrides.apps as { env: Record<string, string> }[])[0].env;
            const value = Object.values(env)[0];
            const r = parseConfig(prodWith(overrides));
            assert.ok(!r.ok);
            for (const e of r.errors) {
                assert.ok(!e.includes(value), e);
                assert.ok(!e.includes("hunter2"), e);
            }
        }
    });
});

describe("config: monitoring", () => {
    it("is on by default with the seed policy's failed-login threshold and no receiver", () => {
        const m = prodConfig().monitoring;
        assert.equal(m.enabled, true);
        assert.deepEqual(m.thresholds.failedSshLogins, { count: 10, window: "5m" });
        assert.equal(m.thresholds.tlsExpiryDays, 14);
        assert.equal(m.thresholds.diskPercent, 85);
        assert.deepEqual(m.receivers, []);
    });

    it("accepts http:// receivers only in the lab (target existing with allowPlainHttpReceivers)", async () => {
        const { existingRaw } = await import("../fixtures");
        const lab = { monitoring: { allowPlainHttpReceivers: true, receivers: [{ name: "lab", url: "http://172.30.99.5:9099/alerts" }] } };
        const r = parseConfig({ ...existingRaw(), ...rawFromObject(lab) });
        assert.ok(r.ok, r.ok ? "" : r.errors.join("\n"));
        const without = parseConfig({ ...existingRaw(), ...rawFromObject({ monitoring: { receivers: lab.monitoring.receivers } }) });
        assert.ok(!without.ok && without.errors.some((e) => e.startsWith("citadel:monitoring.receivers[0].url:")));
    });

    it("never shows a receiver URL's path or query (its token) in an error", () => {
        for (const url of ["http://hooks.example.com/services/T0K3NSECRET?key=abc", "hooks.example.com/T0K3NSECRET", "https://hooks.example.com/T0K3NSECRET with space"]) {
            const r = parseConfig(prodWith({ monitoring: { receivers: [{ name: "ops", url }] } }));
            assert.ok(!r.ok, url);
            for (const e of r.errors) assert.ok(!e.includes("T0K3NSECRET"), e);
        }
    });
});

describe("config: bad input is rejected with the key and the fix", () => {
    it("the prod example the rows start from is accepted", () => assert.ok(parseConfig(prodRaw()).ok));

    it("the program rejects every row of the table (at least 30) with an error naming its key and the fix", () => {
        const failures = BAD.map(notRejected).filter((f): f is string => f !== undefined);
        const rejected = BAD.length - failures.length;
        assert.deepEqual(failures, []);
        assert.ok(rejected >= 30, `only ${rejected} bad configs are rejected`);
    });

    for (const row of BAD) {
        it(row[0], () => {
            const why = notRejected(row);
            assert.equal(why, undefined, why);
        });
    }

    it("every error line names a citadel: key", () => {
        for (const [, overrides] of BAD) {
            const r = parseConfig(prodWith(overrides));
            for (const e of r.ok ? [] : r.errors) assert.match(e, /^citadel:[A-Za-z]/, e);
        }
    });
});

describe("config: images pinned by tag only (#13 finding 6)", () => {
    const prodKey = (k: string): any => JSON.parse(prodRaw()[`citadel:${k}`] ?? "{}");
    it("lists every pulled image without a digest, by its key; a digest takes it off; the built gateway is not pulled", () => {
        const c = parseConfigOrThrow(prodWith({}));
        const keys = tagOnlyImages(c).map((r) => r.key);
        assert.ok(keys.includes("citadel:apps[0].image") && keys.includes("citadel:apps[1].image"), keys.join(", "));
        assert.equal(keys.includes("citadel:gateway.image"), !c.gateway.build, "a gateway built on the host is tagged by the build, not pulled");
        const tagged = parseConfigOrThrow(prodWith({ postgres: { enabled: true, image: "postgres:16.15-bookworm" } }));
        assert.ok(tagOnlyImages(tagged).some((r) => r.key === "citadel:postgres.image"), "a tag-only Postgres image must be listed");
        const w = tagOnlyWarning(tagged) ?? "";
        assert.match(w, /images are pinned by tag only/);
        assert.match(w, /@sha256:<the digest you reviewed>/);
        // What the gateway build starts from is pulled too, when set.
        const from = parseConfigOrThrow(prodWith({ gateway: { ...prodKey("gateway"), buildFrom: { goImage: "golang:1.26.8-bookworm", baseImage: `debian:12.15-slim@sha256:${"c".repeat(64)}` } } }));
        const fromKeys = tagOnlyImages(from).map((r) => r.key);
        assert.ok(fromKeys.includes("citadel:gateway.buildFrom.goImage") && !fromKeys.includes("citadel:gateway.buildFrom.baseImage"), fromKeys.join(", "));
    });

    it("every default image is pinned by the digest of its index: with Postgres, Redis and monitoring on and the apps pinned, nothing is tag-only", () => {
        const apps = (prodKey("apps") as { image: string }[]).map((a) => ({ ...a, image: `${a.image}@sha256:${"a".repeat(64)}` }));
        const c = parseConfigOrThrow(prodWith({ apps, postgres: { enabled: true }, redis: { enabled: true }, monitoring: { ...prodKey("monitoring"), enabled: true } }));
        assert.ok(c.postgres.enabled && c.redis.enabled && c.monitoring.enabled);
        assert.deepEqual(tagOnlyImages(c), []);
        assert.equal(tagOnlyWarning(c), undefined);
        for (const image of [c.postgres.image, c.redis.image, ...Object.values(c.monitoring.images)]) {
            assert.match(image, /^[a-z0-9./-]+:[A-Za-z0-9_.-]+@sha256:[a-f0-9]{64}$/, "a default keeps its tag (what reviewers read) and adds the digest");
        }
    });

    it("the gateway build's own base images (images/caddy/Dockerfile's GO_IMAGE and BASE_IMAGE defaults) are pinned by digest", () => {
        const dockerfile = fs.readFileSync(path.join(__dirname, "..", "..", "images", "caddy", "Dockerfile"), "utf8");
        for (const arg of ["GO_IMAGE", "BASE_IMAGE"]) {
            const v = new RegExp(`^ARG ${arg}=(\\S+)$`, "m").exec(dockerfile)?.[1];
            assert.ok(v, `no default for ${arg}`);
            assert.equal(imageError(v), undefined, v);
            assert.match(v, /:[A-Za-z0-9_.-]+@sha256:[a-f0-9]{64}$/, `${arg} must be pinned by digest: ${v}`);
        }
    });
});
