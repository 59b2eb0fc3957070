// The config schema: secure defaults, and a table of bad configs each rejected with a message that
// names the offending key and says how to fix it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { configKey, parseConfig, rawFromObject, sshPublicKeyError } from "../../components/config";
import { prodConfig, prodRaw, prodWith } from "../fixtures";

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
        assert.equal(c.gateway.adminApi, "localhost");
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
    ["postgres superuser as app role", { postgres: { enabled: true, user: "postgres" } }, "citadel:postgres.user", /superuser/],
    ["redis command lower-case", { redis: { enabled: true, disabledCommands: ["flushall"] } }, "citadel:redis.disabledCommands[0]", /upper case/],
    ["secret of a disabled service", { redis: { enabled: false } }, "citadel:apps[1].secrets[3]", /redis.enabled/],
    ["rotation anchor not a date", { secrets: { rotationAnchor: "soon" } }, "citadel:secrets.rotationAnchor", /YYYY-MM-DD/],
    ["turning off IP forwarding", { host: { sysctl: { "net.ipv4.ip_forward": "0" } } }, 'citadel:host.sysctl["net.ipv4.ip_forward"]', /Docker needs IPv4 forwarding/],
    ["journald retention 0", { host: { journald: { maxRetentionDays: 0 } } }, "citadel:host.journald.maxRetentionDays", /below the minimum 1/],
    ["number where a list belongs", { sites: 5 }, "citadel:sites", /expected/],
];

describe("config: bad input is rejected with the key and the fix", () => {
    it(`has a table of at least 30 cases (${BAD.length})`, () => assert.ok(BAD.length >= 30));
    for (const [what, overrides, key, fix] of BAD) {
        it(what, () => {
            const r = parseConfig(prodWith(overrides));
            assert.equal(r.ok, false, `${what}: accepted`);
            if (r.ok) return;
            const line = r.errors.find((e) => e.startsWith(`${key}:`));
            assert.ok(line, `${what}: no error names ${key}; got:\n${r.errors.join("\n")}`);
            assert.match(line, fix);
        });
    }
});
