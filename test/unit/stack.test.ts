// The resource graph under Pulumi mocks: every layer present with its component parent, every
// security-relevant property set, and no generated secret anywhere but in secret inputs.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { FAKE_HOST_KEY, props, recordProps, recorded, SECRET_MARKER, settle, valueOf, isSecret, ofType, byName, Recorded } from "./mocks";
import { Citadel } from "../../components/stack";
import { loadProgramInputs } from "../../components/program";
import { existingConfig, existingRaw, prodConfig, prodRaw } from "../fixtures";
import { sha256 } from "../../components/render/script";
import { posture } from "../../components/posture";
import { HOST_DIAL_TRIES } from "../../components/host-step";
import { SSHD_CONFIRM_DIAL_TRIES } from "../../components/render/sshd";

const FAKE_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n";
const NOW = new Date("2026-11-23T12:00:00Z");

const T = {
    remote: "command:remote:Command",
    local: "command:local:Command",
    container: "docker:index/container:Container",
    network: "docker:index/network:Network",
    hServer: "hcloud:index/server:Server",
    hFirewall: "hcloud:index/firewall:Firewall",
    hKey: "hcloud:index/sshKey:SshKey",
    password: "random:index/randomPassword:RandomPassword",
    bytes: "random:index/randomBytes:RandomBytes",
};

interface Built {
    resources: Recorded[];
    props: typeof props;
    outputs: Record<string, unknown>;
    citadel: Citadel;
}

async function build(name: string, config = prodConfig()): Promise<Built> {
    recorded.length = 0;
    props.length = 0;
    const citadel = new Citadel(name, { config, privateKey: pulumi.secret(FAKE_PRIVATE_KEY), privateKeyPath: "/home/op/.ssh/id_ed25519", now: NOW }, { transformations: [recordProps] });
    const outputs = (await valueOf(pulumi.output(citadel.outputs))) as Record<string, unknown>;
    await settle();
    return { resources: [...recorded], props: [...props], outputs, citadel };
}

function deepStrings(v: unknown, out: string[] = []): string[] {
    if (typeof v === "string") out.push(v);
    else if (Array.isArray(v)) v.forEach((x) => deepStrings(x, out));
    else if (v && typeof v === "object") Object.values(v).forEach((x) => deepStrings(x, out));
    return out;
}

describe("stack: prod example (target hcloud)", () => {
    let b: Built;
    before(async () => {
        b = await build("prod");
    });

    it("registers every layer as a child of its component", async () => {
        const urns = await Promise.all(b.props.map((p) => valueOf(p.resource.urn)));
        const expect: [string, string][] = [
            ["citadel:server:Server$hcloud:index/server:Server", "server"],
            ["citadel:server:Server$hcloud:index/firewall:Firewall", "perimeter"],
            ["citadel:server:Server$command:local:Command", "host-key-scan"],
            ["citadel:host:Firewall$command:remote:Command", "firewall"],
            ["citadel:host:Baseline$command:remote:Command", "sshd"],
            ["citadel:host:Baseline$command:remote:Command", "sshd-confirm"],
            ["citadel:host:Baseline$command:remote:Command", "sysctl"],
            ["citadel:host:Baseline$command:remote:Command", "unattended-upgrades"],
            ["citadel:host:Baseline$command:remote:Command", "journald"],
            ["citadel:host:Baseline$command:remote:Command", "docker"],
            ["citadel:host:Intrusion$command:remote:Command", "intrusion"],
            ["citadel:secrets:Secrets$random:index/randomBytes:RandomBytes", "jwtSecret-e3"],
            ["citadel:index:Citadel$command:remote:Command", "postgres-roles"],
            ["citadel:network:Networks$docker:index/network:Network", "public"],
            ["citadel:edge:Gateway$docker:index/container:Container", "gateway"],
            ["citadel:edge:Gateway$command:remote:Command", "gateway-image"],
            ["citadel:edge:Gateway$command:remote:Command", "gateway-config"],
            ["citadel:data:DataServices$docker:index/container:Container", "postgres"],
            ["citadel:data:DataServices$docker:index/container:Container", "redis"],
            ["citadel:app:Apps$docker:index/container:Container", "web"],
            ["citadel:app:Apps$docker:index/container:Container", "api"],
            ["citadel:index:Citadel$command:remote:Command", "container-limits"],
        ];
        // Mocks build URNs from the direct parent's type: "<parent type>$<type>::<name>".
        for (const [typeChain, name] of expect) {
            assert.ok(
                urns.some((u) => u.endsWith(`::${typeChain}::${name}`)),
                `missing ${typeChain}::${name}; have:\n${urns.map((u) => u.split("::").slice(2).join("::")).join("\n")}`,
            );
        }
    });

    it("the gateway runs the image ID its build step printed; nothing pulls the built tag", () => {
        assert.equal(byName("docker:index/container:Container", "gateway").inputs.image, `sha256:${"1".repeat(64)}`);
        assert.ok(!recorded.some((r) => r.type === "docker:index/remoteImage:RemoteImage" && r.name === "caddy-image"), "a RemoteImage of the built tag would pull it when missing");
    });

    it("generates every secret the config needs, with rotation keepers", () => {
        const names = [...ofType(T.password), ...ofType(T.bytes)].map((r) => r.name).sort();
        // Versioned secrets: one resource per generation, named by its epoch (the current and the
        // previous JWT secret; the API key at epoch 0 has no older generation yet).
        assert.deepEqual(names, ["apiEncryptionKey-e0", "crowdsecBouncerKey", "internalApiKey", "jwtSecret-e2", "jwtSecret-e3", "postgresPassword-api", "postgresSuperuserPassword", "redisPassword-api"]);
        const jwt = byName(T.bytes, "jwtSecret-e3");
        assert.ok(jwt.inputs.length * 8 >= 256, "JWT secret ≥ 256 bit");
        assert.deepEqual(byName(T.bytes, "jwtSecret-e2").inputs.keepers, { rotationDays: "90", epoch: "2" });
        assert.equal(byName(T.bytes, "apiEncryptionKey-e0").inputs.length, 32, "API encryption key is 256 bit");
        // 2026-01-01 → 2026-11-23 is 326 days: 3 whole quarters (90 d), 1 half-year (182 d), 0 years.
        assert.deepEqual(jwt.inputs.keepers, { rotationDays: "90", epoch: "3" });
        assert.deepEqual(byName(T.password, "postgresPassword-api").inputs.keepers, { rotationDays: "182", epoch: "1" });
        assert.deepEqual(byName(T.bytes, "internalApiKey").inputs.keepers, { rotationDays: "365", epoch: "0" });
        assert.equal(byName(T.password, "postgresPassword-api").inputs.special, false);
        assert.ok(byName(T.password, "postgresPassword-api").inputs.length >= 32);
    });

    it("cloud perimeter: SSH from the admin CIDRs only, 80, 443 and ICMP; nothing else", () => {
        const fw = ofType(T.hFirewall)[0];
        const rules = fw.inputs.rules as any[];
        assert.deepEqual(rules.map((r) => `${r.direction}/${r.protocol}/${r.port ?? ""}`).sort(), ["in/icmp/", "in/tcp/22", "in/tcp/443", "in/tcp/80"]);
        assert.deepEqual(rules.find((r) => r.port === "22").sourceIps, ["203.0.113.0/24", "2001:db8:1234::/48"]);
        const server = ofType(T.hServer)[0];
        assert.equal(server.inputs.image, "debian-12");
        assert.equal(server.inputs.firewallIds.length, 1, "firewall attached at creation");
        assert.ok(Number.isInteger(server.inputs.firewallIds[0]), "Hetzner firewall ids are numbers");
        assert.equal(server.inputs.sshKeys.length, 1);
        assert.match(server.inputs.userData, /^#cloud-config\n/);
        assert.doesNotMatch(server.inputs.userData, new RegExp(SECRET_MARKER));
    });

    it("every host step runs over the pinned host key as the admin user, re-running on content change", () => {
        const steps = ofType(T.remote);
        assert.ok(steps.length >= 12, `only ${steps.length} remote commands`);
        for (const s of steps) {
            assert.equal(s.inputs.connection.hostKey, FAKE_HOST_KEY.split(" ").slice(0, 2).join(" "), `${s.name}: host key not pinned`);
            assert.equal(s.inputs.connection.user, "deploy");
            assert.match(s.inputs.create, /^sudo -n \/bin\/bash /, `${s.name}: not run through sudo`);
            if (!s.name.startsWith("secret-")) {
                const script = s.inputs.create.split("\n").slice(1, -2).join("\n") + "\n";
                assert.equal(s.inputs.triggers[0], sha256(script), `${s.name}: trigger is not the hash of its script`);
            }
            // A booting server gets two minutes of dials; the sshd confirmation, right after a reload, fails fast.
            assert.equal(s.inputs.connection.dialErrorLimit, s.name === "sshd-confirm" ? SSHD_CONFIRM_DIAL_TRIES : HOST_DIAL_TRIES, `${s.name}: dial tries`);
        }
        assert.ok(steps.some((s) => s.name === "sshd-confirm"));
    });

    it("a rotated bouncer key re-runs the intrusion step (secret hash trigger)", async () => {
        const step = b.props.find((p) => p.type === T.remote && p.name === "intrusion")!;
        const triggers = step.props.triggers as pulumi.Input<string>[];
        assert.equal(triggers.length, 2);
        assert.ok(await isSecret(pulumi.output(triggers[1])), "the key hash trigger is kept secret");
        assert.match(String(await valueOf(triggers[1])), /^[0-9a-f]{64}$/);
    });

    it("no generated secret appears in any command string, container env, label, user_data or stack output", () => {
        for (const r of b.resources) {
            if (r.type.startsWith("random:")) continue;
            const inputs = { ...r.inputs };
            if (r.name.startsWith("secret-")) delete inputs.stdin; // the one place a value may travel, checked below
            for (const s of deepStrings(inputs)) {
                assert.ok(!s.includes(SECRET_MARKER), `${r.type} ${r.name} carries a secret in plain inputs: ${s.slice(0, 80)}`);
            }
        }
        for (const s of deepStrings(b.outputs)) assert.ok(!s.includes(SECRET_MARKER), `stack output leaks: ${s}`);
    });

    it("secret files travel on stdin as Pulumi secrets, to 0400 files owned by their one reader", async () => {
        const files = b.props.filter((p) => p.type === T.remote && p.name.startsWith("secret-"));
        assert.deepEqual(files.map((f) => f.name).sort(), [
            "secret-api-apiEncryptionKey",
            "secret-api-apiEncryptionKeyring",
            "secret-api-internalApiKey",
            "secret-api-jwtSecret",
            "secret-api-jwtSecretPrevious",
            "secret-api-postgresPassword",
            "secret-api-redisPassword",
            "secret-citadel-alertmanager-alertmanager-yml",
            "secret-host-crowdsecBouncerKey",
            "secret-postgres-postgresSuperuserPassword",
            "secret-redis-users.acl",
        ]);
        for (const f of files) {
            assert.ok(await isSecret(pulumi.output(f.props.stdin)), `${f.name}: stdin is not a Pulumi secret`);
            if (f.name !== "secret-redis-users.acl" && f.name !== "secret-citadel-alertmanager-alertmanager-yml") {
                assert.match(String(await valueOf(f.props.stdin)), new RegExp(SECRET_MARKER), `${f.name}: stdin does not carry the value`);
            }
            const create = String(await valueOf(f.props.create));
            assert.match(create, /chmod 0400/);
            assert.ok(!create.includes(SECRET_MARKER));
        }
        const acl = String(await valueOf(files.find((f) => f.name === "secret-redis-users.acl")!.props.stdin));
        assert.doesNotMatch(acl, new RegExp(SECRET_MARKER), "the Redis ACL holds a hash, not the password");
        assert.match(acl, /^user api on #[0-9a-f]{64} resetkeys resetchannels ~api:\* &api:\* /m, "the app's own user, confined to its prefix");
    });

    it("containers: non-root, read-only, no-new-privileges, ALL caps dropped, limited, rotated logs", () => {
        const containers = ofType(T.container);
        assert.deepEqual(containers.map((c) => c.name).sort(), ["alertmanager", "api", "blackbox", "gateway", "node-exporter", "postgres", "prometheus", "redis", "web"]);
        for (const c of containers) {
            const i = c.inputs;
            assert.ok(i.user && !/^0(:|$)/.test(i.user) && !/^root/.test(i.user), `${c.name}: runs as root`);
            assert.equal(i.readOnly, true, `${c.name}: writable root fs`);
            assert.deepEqual(i.securityOpts, ["no-new-privileges:true"]);
            assert.deepEqual(i.capabilities.drops, ["ALL"]);
            assert.ok(i.memory > 0 && i.memorySwap === i.memory, `${c.name}: memory limit`);
            assert.ok(Number(i.cpus) > 0, `${c.name}: cpu limit`);
            // Docker reads "1" back as "1.0": anything else shows as drift on every `pulumi up`.
            assert.match(i.cpus, /^\d+\.\d+$/, `${c.name}: cpus in Docker's own form`);
            if (c.name === "postgres" || c.name === "redis") {
                // Their authentication failures stay the journal's retention period, not 3 × 10 MB.
                assert.equal(i.logDriver, "journald", `${c.name}: logs to the journal`);
                assert.deepEqual(i.logOpts, { tag: c.name });
            } else {
                assert.equal(i.logDriver, "json-file");
                assert.ok(i.logOpts["max-size"] && i.logOpts["max-file"]);
            }
            // The monitoring images have no probe program in common (the local ones carry no wget);
            // CitadelScrapeTargetDown and the audit's in-monitoring watch them instead.
            assert.ok(i.healthcheck || ["web", "prometheus", "alertmanager", "node-exporter", "blackbox"].includes(c.name), `${c.name}: no healthcheck`);
            for (const e of i.envs ?? []) assert.doesNotMatch(e, /^(?![A-Z_]*_FILE=)[A-Z_]*(PASSWORD|SECRET|TOKEN|KEY)[A-Z_]*=/, `${c.name}: secret-looking env ${e}`);
        }
        assert.deepEqual(byName(T.container, "gateway").inputs.capabilities.adds, ["NET_BIND_SERVICE"]);
        for (const c of containers.filter((x) => x.name !== "gateway")) {
            assert.deepEqual(c.inputs.capabilities.adds ?? [], [], `${c.name}: adds capabilities`);
        }
    });

    it("only the gateway publishes ports, and only 80 and 443 (IPv4: citadel:host.docker.ipv6 defaults off)", () => {
        for (const c of ofType(T.container)) {
            if (c.name === "gateway") {
                assert.deepEqual(c.inputs.ports.map((p: any) => `${p.ip}:${p.external}->${p.internal}/${p.protocol}`).sort(), ["0.0.0.0:443->443/tcp", "0.0.0.0:80->80/tcp"]);
            } else {
                assert.ok(!c.inputs.ports || c.inputs.ports.length === 0, `${c.name} publishes ports`);
            }
        }
    });

    it("networks: data and edge networks are internal; apps meet the gateway alone; data only with data apps", () => {
        const nets = Object.fromEntries(ofType(T.network).map((n) => [n.inputs.name, n.inputs]));
        assert.equal(nets["citadel-public"].internal, false);
        assert.equal(nets["citadel-edge-web"].internal, true);
        assert.equal(nets["citadel-edge-api"].internal, true);
        assert.equal(nets["citadel-data-api"].internal, true);
        assert.equal(nets["citadel-data-web"], undefined, "web has no data: true");
        assert.equal(nets["citadel-egress"], undefined, "no app asked for egress");
        const netsOf = (name: string) => byName(T.container, name).inputs.networksAdvanced.map((n: any) => n.name).sort();
        assert.deepEqual(netsOf("gateway"), ["citadel-edge-api", "citadel-edge-web", "citadel-monitoring", "citadel-public"]);
        // Monitoring: internal, with a fixed subnet; Prometheus and the exporters on it alone.
        assert.equal(nets["citadel-monitoring"].internal, true);
        assert.deepEqual(nets["citadel-monitoring"].ipamConfigs, [{ subnet: "172.29.250.0/24", ipRange: "172.29.250.128/25", gateway: "172.29.250.1" }]);
        for (const n of ["prometheus", "alertmanager", "node-exporter", "blackbox"]) assert.deepEqual(netsOf(n), ["citadel-monitoring"], n);
        assert.deepEqual(netsOf("web"), ["citadel-edge-web"]);
        assert.deepEqual(netsOf("api"), ["citadel-data-api", "citadel-edge-api"]);
        assert.deepEqual(netsOf("postgres"), ["citadel-data-api"]);
        assert.deepEqual(netsOf("redis"), ["citadel-data-api"]);
    });

    it("apps read secrets from files announced by *_FILE", () => {
        const api = byName(T.container, "api").inputs;
        assert.ok(api.envs.includes("JWT_SECRET_FILE=/run/secrets/jwtSecret"));
        assert.ok(api.envs.includes("JWT_SECRET_PREVIOUS_FILE=/run/secrets/jwtSecretPrevious"), "the previous JWT secret comes with jwtSecret");
        assert.ok(api.envs.includes("API_ENCRYPTION_KEYRING_FILE=/run/secrets/apiEncryptionKeyring"), "the keyring comes with apiEncryptionKey");
        assert.ok(api.envs.includes("POSTGRES_PASSWORD_FILE=/run/secrets/postgresPassword"));
        assert.ok(api.envs.includes("LOG_LEVEL=info"));
        const mount = api.mounts.find((m: any) => m.target === "/run/secrets/jwtSecret");
        assert.deepEqual(mount, { type: "bind", source: "/etc/citadel/secrets/api/jwtSecret", target: "/run/secrets/jwtSecret", readOnly: true });
    });

    it("Docker is reached over SSH with the pinned host key only", () => {
        const p = recorded.length ? b.resources.find((r) => r.type === "pulumi:providers:docker") : undefined;
        assert.ok(p, "no docker provider");
        assert.match(p.inputs.host, /^ssh:\/\/deploy@198\.51\.100\.7:22$/);
        const opts: string[] = JSON.parse(typeof p.inputs.sshOpts === "string" ? p.inputs.sshOpts : JSON.stringify(p.inputs.sshOpts));
        assert.ok(opts.includes("StrictHostKeyChecking=yes"));
        assert.ok(opts.some((o) => o.startsWith("KnownHostsCommand=") && o.includes(FAKE_HOST_KEY.split(" ")[1])));
    });

    it("stack outputs declare the exposure and name secrets without values", () => {
        assert.deepEqual(b.outputs.exposure, { tcp: [22, 80, 443], udp: [], sshSourceIps: ["203.0.113.0/24", "2001:db8:1234::/48"] });
        assert.deepEqual(b.outputs.sites, ["https://www.example.com", "https://api.example.com"]);
        assert.ok(Object.keys(b.outputs.secretRotation as object).includes("jwtSecret"));
    });
});

describe("stack: existing target", () => {
    let b: Built;
    before(async () => {
        b = await build("existing", existingConfig());
    });

    it("creates no Hetzner resources and pins the configured host key", () => {
        assert.equal(b.resources.filter((r) => r.type.startsWith("hcloud:")).length, 0);
        assert.equal(ofType(T.local).length, 0, "no trust-on-first-use scan for an existing host");
        for (const s of ofType(T.remote)) {
            assert.equal(s.inputs.connection.host, "127.0.0.1");
            assert.equal(s.inputs.connection.port, 2222);
            assert.match(s.inputs.connection.hostKey, /^ssh-ed25519 AAAA/);
        }
    });

    it("builds the same layers above the server", () => {
        const steps = ofType(T.remote).map((r) => r.name);
        for (const n of ["firewall", "sshd", "sysctl", "docker", "intrusion", "gateway-config", "container-limits"]) assert.ok(steps.includes(n), `missing ${n}`);
        assert.deepEqual(ofType(T.container).map((c) => c.name).sort(), ["alertmanager", "api", "blackbox", "gateway", "node-exporter", "postgres", "prometheus", "redis", "web"]);
    });
});

describe("stack: fail2ban instead of CrowdSec", () => {
    it("drops the bouncer key and still installs intrusion detection", async () => {
        const raw = prodRaw();
        raw["citadel:intrusion"] = JSON.stringify({ engine: "fail2ban" });
        const { parseConfigOrThrow } = await import("../../components/config");
        await build("f2b", parseConfigOrThrow(raw));
        assert.ok(!ofType(T.password).some((r) => r.name === "crowdsecBouncerKey"));
        const step = byName(T.remote, "intrusion");
        assert.match(step.inputs.create, /fail2ban/);
    });
});

describe("program inputs: bad config stops before any resource", () => {
    it("throws a RunError listing every problem by key, and registers nothing", () => {
        recorded.length = 0;
        const raw = existingRaw();
        raw["citadel:admin"] = JSON.stringify({ sshPublicKeys: [], sourceIps: ["10.0.0.300/24"] });
        assert.throws(
            () => loadProgramInputs(raw, () => FAKE_PRIVATE_KEY),
            (e: unknown) => {
                assert.ok(pulumi.RunError.isInstance(e), "not a RunError (Pulumi would print a stack trace)");
                const m = (e as Error).message;
                assert.match(m, /citadel:admin\.sshPublicKeys: at least one public key/);
                assert.match(m, /citadel:admin\.sourceIps\[0\]: "10\.0\.0\.300\/24" is not a CIDR/);
                assert.match(m, /nothing was changed/);
                return true;
            },
        );
        assert.equal(recorded.length, 0);
    });

    it("names citadel:admin.privateKeyPath when the key file is missing", () => {
        assert.throws(
            () => loadProgramInputs(existingRaw(), () => { throw Object.assign(new Error("nope"), { code: "ENOENT" }); }),
            /citadel:admin\.privateKeyPath: cannot read .*ENOENT/,
        );
    });

    it("returns the private key as a Pulumi secret", async () => {
        const inputs = loadProgramInputs(existingRaw(), () => FAKE_PRIVATE_KEY);
        assert.ok(await isSecret(pulumi.output(inputs.privateKey)));
    });
});

describe("stack: the resources are the posture, wired (components/posture)", () => {
    for (const [name, config] of [["prod", prodConfig()], ["existing", existingConfig()]] as const) {
        it(`${name}: exactly the posture's host steps run, with its scripts, and exactly its containers exist`, async () => {
            const b = await build(`posture-${name}`, config);
            const m = b.citadel.posture;
            const remote = ofType(T.remote);
            assert.deepEqual(remote.map((r) => r.name).sort(), m.hostSteps.map((s) => s.name).sort());
            for (const s of m.hostSteps.filter((x) => x.kind === "script")) {
                const r = remote.find((x) => x.name === s.name)!;
                assert.ok(String(r.inputs.create).includes(s.script.trim().split("\n").slice(-1)[0]), `${s.name}: the command is not the posture's script`);
                assert.equal(r.inputs.triggers[0], sha256(s.script), `${s.name}: trigger is not the script's hash`);
            }
            const containers = ofType(T.container);
            assert.deepEqual(containers.map((x) => x.inputs.name).sort(), m.containers.map((x) => x.name).sort());
            for (const x of m.containers) {
                const r = containers.find((y) => y.inputs.name === x.name)!;
                assert.equal(r.inputs.user, x.user);
                assert.equal(r.inputs.readOnly, true);
                assert.deepEqual(r.inputs.capabilities.adds, x.capAdd);
                assert.deepEqual(r.inputs.networksAdvanced.map((n: any) => n.name).sort(), x.networks.map((n) => n.network).sort());
            }
            assert.deepEqual(ofType(T.network).map((n) => [n.inputs.name, n.inputs.internal]).sort(), m.networks.map((n) => [n.name, n.internal]).sort());
            // The outputs are read off the same posture.
            assert.deepEqual(b.outputs.containers, m.containers.map((x) => x.name));
            assert.deepEqual((b.outputs.exposure as any).tcp, m.exposure.openTcp);
        });
    }

    it("every dependency a step names exists earlier in the posture (the order pulumi up runs)", () => {
        const m = posture(prodConfig());
        const seen = new Set<string>();
        const refs = new Set([...m.containers.map((x) => `image:${x.name}`), ...m.containers.map((x) => `container:${x.name}`), ...m.networks.map((n) => `network:${n.name}`)]);
        for (const s of m.hostSteps) {
            for (const a of s.after) assert.ok(seen.has(a) || refs.has(a), `${s.name} waits for ${a}, which is not an earlier step`);
            seen.add(s.name);
        }
        assert.deepEqual(m.hostSteps.slice(0, 4).map((s) => s.name), ["firewall", "sshd", "sshd-confirm", "sysctl"], "the firewall runs first, then sshd, confirmed on a new connection before anything else");
    });
});
