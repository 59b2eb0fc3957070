// The policy pack's rules (policy/rules.ts) called the way @pulumi/policy calls them: each resource
// through every policy's validateResource (typed validations answer "not applicable" to other
// types), then every validateStack. Each rule fails on its fault — with a message naming the rule,
// the resource and the fix — and passes on the fix; the shipped prod stack, built from the posture
// model exactly as the components build it, passes every rule.
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as hcloud from "@pulumi/hcloud";
import type { ResourceValidationArgs, ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy } from "@pulumi/policy";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { containerArgs } from "../../components/container";
import { posture } from "../../components/posture";
import { cloudFirewallRules } from "../../components/posture/exposure";
import { dataNetworkName, GATEWAY_CONTAINER, PUBLIC_NETWORK, REDIS_CONTAINER } from "../../components/posture/facts";
const DATA_NETWORK = dataNetworkName("api");
import { sudoScript } from "../../components/render/script";
import { makePolicies, rulePorts, secretEnvFaults } from "../../policy/rules";
import { prodConfig, prodWith, TEST_HOST_KEY } from "../fixtures";
import { parseConfigOrThrow } from "../../components/config";

type Policy = ResourceValidationPolicy | StackValidationPolicy;
type Props = Record<string, any>;
interface Res {
    type: string;
    name: string;
    props: Props;
}
interface Violation {
    policy: string;
    level: string;
    message: string;
    urn?: string;
}

const typeOf = (cls: unknown): string => (cls as { __pulumiType: string }).__pulumiType;
const CONTAINER = typeOf(docker.Container);
const NETWORK = typeOf(docker.Network);
const SERVER = typeOf(hcloud.Server);
const FIREWALL = typeOf(hcloud.Firewall);
const REMOTE = typeOf(command.remote.Command);
const COPY = typeOf(command.remote.CopyToRemote);
const urnOf = (r: Res) => `urn:pulumi:test::citadel::${r.type}::${r.name}`;

/** @pulumi/policy's own proxy and unknown sentinels (internal there; the engine's preview values). */
const proxy = require("@pulumi/policy/proxy") as { unknownCheckingProxy<T>(x: T): T; unknownStringValue: string; unknownArrayValue: string; unknownObjectValue: string };

class NotApplicable extends Error {}

/** Runs resources through the pack as the engine would: Analyze each in order, then AnalyzeStack. */
function analyze(resources: Res[], policies: Policy[] = makePolicies()): Violation[] {
    const out: Violation[] = [];
    const isType = (type: string) => (cls: unknown) => typeOf(cls) === type;
    for (const r of resources) {
        const props = proxy.unknownCheckingProxy(r.props);
        for (const p of policies) {
            if (!("validateResource" in p) || !p.validateResource) continue;
            const validations = Array.isArray(p.validateResource) ? p.validateResource : [p.validateResource];
            for (const v of validations) {
                const args = {
                    type: r.type,
                    props,
                    urn: urnOf(r),
                    name: r.name,
                    opts: { protect: false, ignoreChanges: [], aliases: [], customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 }, additionalSecretOutputs: [] },
                    stackTags: new Map(),
                    isType: isType(r.type),
                    asType: (cls: unknown) => (isType(r.type)(cls) ? props : undefined),
                    getConfig: () => ({}),
                    notApplicable: (reason?: string) => {
                        throw new NotApplicable(reason);
                    },
                } as unknown as ResourceValidationArgs;
                try {
                    v(args, (message: string, urn?: string) => out.push({ policy: p.name, level: p.enforcementLevel ?? "mandatory", message, urn: urn ?? urnOf(r) }));
                } catch (e) {
                    if (!(e instanceof NotApplicable)) throw e;
                }
            }
        }
    }
    for (const p of policies) {
        if (!("validateStack" in p) || typeof p.validateStack !== "function") continue;
        const args = { resources: [], stackTags: new Map(), getConfig: () => ({}), notApplicable: () => undefined as never } as unknown as StackValidationArgs;
        p.validateStack(args, (message: string, urn?: string) => out.push({ policy: p.name, level: p.enforcementLevel ?? "mandatory", message, urn }));
    }
    return out;
}

const only = (vs: Violation[], policy: string) => vs.filter((v) => v.policy === policy);
/** analyze() without the pids advisory, which any lone container (no host step here) earns. */
const check = (resources: Res[]) => analyze(resources).filter((v) => v.policy !== "container-pids-limit");

/** The shipped prod stack's resources, built from the posture as the components build them. */
function prodResources(config = prodConfig()): Res[] {
    const model = posture(config);
    const res: Res[] = model.networks.map((n) => ({ type: NETWORK, name: n.name.replace(/^citadel-/, ""), props: { name: n.name, driver: "bridge", internal: n.internal } }));
    const names = { network: (n: string) => n, volume: (v: string) => v };
    for (const x of model.containers) res.push({ type: CONTAINER, name: x.name.replace(/^(citadel-|app-)/, ""), props: containerArgs(x, "sha256:0123", names, {}) as Props });
    res.push({ type: FIREWALL, name: "perimeter", props: { name: "citadel-prod-perimeter", rules: cloudFirewallRules(config) } });
    res.push({ type: SERVER, name: "server", props: { name: "citadel-prod", firewallIds: [proxy.unknownStringValue] } });
    const connection = { host: "203.0.113.10", port: 22, user: "deploy", privateKey: "k", hostKey: TEST_HOST_KEY };
    for (const s of model.hostSteps) res.push({ type: REMOTE, name: s.name, props: { connection, create: sudoScript(s.script) } });
    return res;
}

/** A hardened app container, as the stack makes one; each test breaks one thing. */
function appContainer(): Res {
    return prodResources().find((r) => r.type === CONTAINER && r.props.name === "app-web")!;
}
const withProps = (r: Res, props: Props): Res => ({ ...r, props: { ...r.props, ...props } });

/** One rule: its fault fails (message: rule, resource, fix), the fix passes, no other rule fires. */
function faultAndFix(policy: string, faulty: Res[], fixed: Res[], expect: RegExp): void {
    const bad = check(faulty);
    assert.deepEqual([...new Set(bad.map((v) => v.policy))], [policy], `only ${policy} fires:\n${bad.map((v) => v.message).join("\n")}`);
    for (const v of bad) {
        assert.ok(v.message.startsWith(`${policy}: `), `names the rule: ${v.message}`);
        assert.match(v.message, / — fix: \S/, `names the fix: ${v.message}`);
        const subject = faulty[faulty.length - 1];
        assert.ok(v.message.includes(`"${subject.name}"`), `names the resource ${subject.name}: ${v.message}`);
    }
    assert.ok(bad.some((v) => expect.test(v.message)), `${bad.map((v) => v.message).join("\n")} !~ ${expect}`);
    assert.deepEqual(check(fixed), [], "the fix passes");
}

describe("policy pack: the shipped stack", () => {
    it("the prod example's containers, networks, firewall, server and host steps pass every rule", () => {
        assert.deepEqual(analyze(prodResources()), [], "not even the pids advisory: the container-limits step covers every container");
    });

    it("the pack has the rules, levels and names the README table lists", () => {
        const levels = Object.fromEntries(makePolicies().map((p) => [p.name, p.enforcementLevel]));
        const readme = fs.readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");
        const section = readme.slice(readme.indexOf("## Policy pack"));
        assert.ok(readme.includes("## Policy pack"), "README has a Policy pack section");
        for (const [name, level] of Object.entries(levels)) {
            assert.match(section, new RegExp(`\\| \`${name}\` \\| ${level} \\|`), `README row for ${name} (${level})`);
        }
        assert.equal(levels["container-pids-limit"], "advisory");
        assert.equal(levels["firewall-ssh-not-world"], "advisory");
        assert.equal(Object.values(levels).filter((l) => l === "mandatory").length, Object.keys(levels).length - 2);
    });

    it("policy/ is a pack of its own that borrows the repo's node_modules", () => {
        const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "policy", "package.json"), "utf8"));
        const root = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8"));
        assert.equal(pkg.dependencies, undefined, "no dependencies of its own: they resolve from the repo's node_modules");
        assert.equal(pkg.version, root.version);
        assert.ok(root.dependencies["@pulumi/policy"], "@pulumi/policy is a dependency of the repo");
        assert.match(fs.readFileSync(path.join(__dirname, "..", "..", "policy", "PulumiPolicy.yaml"), "utf8"), /^runtime: nodejs$/m);
    });
});

describe("policy pack: container rules", () => {
    const app = appContainer;

    it("container-non-root", () => {
        faultAndFix("container-non-root", [withProps(app(), { user: undefined })], [app()], /sets no user/);
        faultAndFix("container-non-root", [withProps(app(), { user: "0:0" })], [withProps(app(), { user: "10001:10001" })], /runs as root/);
        faultAndFix("container-non-root", [withProps(app(), { user: "root" })], [app()], /runs as root/);
    });

    it("container-read-only-root", () => {
        faultAndFix("container-read-only-root", [withProps(app(), { readOnly: false })], [withProps(app(), { readOnly: true })], /writable root filesystem/);
    });

    it("container-drop-all-capabilities: ALL dropped, only the gateway adds NET_BIND_SERVICE back", () => {
        faultAndFix("container-drop-all-capabilities", [withProps(app(), { capabilities: { drops: [] } })], [app()], /does not contain ALL/);
        faultAndFix("container-drop-all-capabilities", [withProps(app(), { capabilities: { drops: ["ALL"], adds: ["SYS_ADMIN"] } })], [app()], /adds back SYS_ADMIN/);
        faultAndFix("container-drop-all-capabilities", [withProps(app(), { capabilities: { drops: ["ALL"], adds: ["NET_BIND_SERVICE"] } })], [app()], /adds back NET_BIND_SERVICE/);
        const gateway = prodResources().find((r) => r.props.name === GATEWAY_CONTAINER)!;
        assert.deepEqual(gateway.props.capabilities.adds, ["NET_BIND_SERVICE"]);
        assert.deepEqual(analyze([gateway]).filter((v) => v.level === "mandatory"), []);
    });

    it("container-no-new-privileges", () => {
        faultAndFix("container-no-new-privileges", [withProps(app(), { securityOpts: [] })], [withProps(app(), { securityOpts: ["no-new-privileges"] })], /no-new-privileges/);
    });

    it("container-resource-limits: memory and CPU", () => {
        faultAndFix("container-resource-limits", [withProps(app(), { memory: undefined })], [app()], /no memory limit/);
        faultAndFix("container-resource-limits", [withProps(app(), { cpus: undefined })], [withProps(app(), { cpus: undefined, cpuQuota: 50000, cpuPeriod: 100000 })], /no CPU limit/);
    });

    it("container-not-privileged", () => {
        faultAndFix("container-not-privileged", [withProps(app(), { privileged: true })], [withProps(app(), { privileged: false })], /runs privileged/);
    });

    it("container-no-host-network (and the other host namespaces)", () => {
        faultAndFix("container-no-host-network", [withProps(app(), { networkMode: "host" })], [app()], /host's network namespace/);
        faultAndFix("container-no-host-network", [withProps(app(), { pidMode: "host" })], [app()], /host's pid namespace/);
    });

    it("container-published-ports: only the gateway, only 80 and 443", () => {
        faultAndFix("container-published-ports", [withProps(app(), { ports: [{ internal: 8001, external: 8001, ip: "0.0.0.0" }] })], [app()], /publishes 0\.0\.0\.0:8001->8001\/tcp/);
        faultAndFix("container-published-ports", [withProps(app(), { publishAllPorts: true })], [app()], /publishAllPorts/);
        const gateway = () => prodResources().find((r) => r.props.name === GATEWAY_CONTAINER)!;
        const gw = gateway();
        faultAndFix("container-published-ports", [withProps(gw, { ports: [...gw.props.ports, { internal: 2019, external: 2019 }] })], [gateway()], /publishes 0\.0\.0\.0:2019->2019\/tcp/);
        faultAndFix("container-published-ports", [withProps(gw, { ports: [{ internal: 443, external: 443, protocol: "udp" }] })], [gateway()], /443->443\/udp/);
    });

    it("container-no-secret-env: names like PASSWORD/TOKEN, URLs with credentials, PEM blocks; NAME_FILE pointers pass", () => {
        faultAndFix("container-no-secret-env", [withProps(app(), { envs: ["DB_PASSWORD=hunter2"] })], [withProps(app(), { envs: ["DB_PASSWORD_FILE=/run/secrets/dbPassword"] })], /secret in its environment \(DB_PASSWORD\)/);
        const leaks = analyze([withProps(app(), { envs: ["DB_PASSWORD=hunter2", "DATABASE_URL=postgres://app:s3cr3t@postgres/app"] })]);
        assert.ok(leaks.every((v) => !v.message.includes("hunter2") && !v.message.includes("s3cr3t")), "a message never repeats the secret");
        const faults = (e: string) => secretEnvFaults(e).map((f) => f.fault);
        assert.match(faults("DATABASE_URL=postgres://app:s3cr3t@postgres/app").join(), /URL with credentials/);
        assert.match(faults("CACHE_URL=redis://:s3cr3t@redis:6379").join(), /URL with credentials/);
        assert.match(faults("TLS_KEY=-----BEGIN PRIVATE KEY-----\nMIIE...").join(), /PEM block/);
        for (const name of ["API_KEY", "GITHUB_TOKEN", "JWT_SECRET", "STRIPE_APIKEY", "AWS_SECRET_ACCESS_KEY"]) assert.equal(faults(`${name}=x`).length, 1, name);
        assert.match(faults("JWT_SECRET_FILE=hunter2").join(), /not a file path/);
        for (const ok of ["JWT_SECRET_FILE=/run/secrets/jwtSecret", "LOG_LEVEL=info", "DATABASE_HOST=postgres", "API_KEY=", "HOMEPAGE=https://example.com/a@b", "NODE_ENV=production"]) assert.deepEqual(faults(ok), [], ok);
    });

    it("a value unknown during preview is left for pulumi up, never a violation", () => {
        const unknownUser = withProps(app(), { user: proxy.unknownStringValue, envs: proxy.unknownArrayValue, ports: [{ internal: 80, external: proxy.unknownStringValue }] });
        assert.deepEqual(check([unknownUser]), []);
    });
});

describe("policy pack: rules across resources", () => {
    const redis = (networks: unknown) => ({ type: CONTAINER, name: "cache", props: { ...appContainer().props, name: REDIS_CONTAINER, networksAdvanced: networks } });
    const net = (name: string, internal: boolean): Res => ({ type: NETWORK, name, props: { name, internal } });

    it("data-services-internal-networks: postgres/redis only on internal networks", () => {
        faultAndFix("data-services-internal-networks", [net(PUBLIC_NETWORK, false), redis([{ name: PUBLIC_NETWORK }])], [net(DATA_NETWORK, true), redis([{ name: DATA_NETWORK }])], /joins network citadel-public, which is not internal/);
        faultAndFix("data-services-internal-networks", [redis([{ name: "shared" }])], [net("shared", true), redis([{ name: "shared" }])], /does not declare/);
        faultAndFix("data-services-internal-networks", [redis(undefined)], [net(DATA_NETWORK, true), redis([{ name: DATA_NETWORK }])], /default bridge network/);
        // By image too, and under the rebuilt provider's property name (lab/engine's Docker bridge).
        const byImage: Res = { type: CONTAINER, name: "kv", props: { ...appContainer().props, name: "kv", image: "docker.io/library/redis:7.4", networksAdvanced: undefined, networksAdvanceds: [{ name: PUBLIC_NETWORK }] } };
        assert.match(only(check([net(PUBLIC_NETWORK, false), byImage]), "data-services-internal-networks")[0]?.message ?? "", /docker container "kv" joins network citadel-public/);
        // An app on the public network is not a data service.
        assert.deepEqual(only(check([net(PUBLIC_NETWORK, false), withProps(appContainer(), { networksAdvanced: [{ name: PUBLIC_NETWORK }] })]), "data-services-internal-networks"), []);
    });

    it("container-pids-limit (advisory): a container no host step limits", () => {
        const stray = withProps(appContainer(), { name: "app-stray" });
        const limits = (names: string[]): Res => ({ type: REMOTE, name: "limits", props: { connection: { host: "h", hostKey: TEST_HOST_KEY }, create: sudoScript(names.map((n) => `docker update --pids-limit 64 '${n}'`).join("\n")) } });
        const bad = analyze([stray, limits(["app-other"])]);
        assert.deepEqual(bad.map((v) => [v.policy, v.level]), [["container-pids-limit", "advisory"]]);
        assert.match(bad[0].message, /^container-pids-limit: docker container "web" \(app-stray\) has no pids limit .* — fix: /);
        assert.equal(bad[0].urn, urnOf(stray), "reported on the container");
        assert.deepEqual(analyze([stray, limits(["app-stray"])]), []);
        // The shipped container-limits step covers every container of the posture.
        assert.deepEqual(only(analyze(prodResources()), "container-pids-limit"), []);
    });
});

describe("policy pack: Hetzner and SSH rules", () => {
    const server = (firewallIds: unknown): Res => ({ type: SERVER, name: "server", props: { name: "citadel-prod", serverType: "cx22", firewallIds } });
    const firewall = (rules: Props[]): Res => ({ type: FIREWALL, name: "perimeter", props: { name: "perimeter", rules } });
    const prodRules = () => cloudFirewallRules(prodConfig());

    it("server-firewall-attached", () => {
        faultAndFix("server-firewall-attached", [server([])], [server([42])], /without a cloud firewall/);
        faultAndFix("server-firewall-attached", [server(undefined)], [server([proxy.unknownStringValue])], /firewallIds is empty/);
        assert.deepEqual(analyze([server(proxy.unknownArrayValue)]), [], "unknown during preview: judged at up");
    });

    it("firewall-inbound-ports: nothing beyond 22, 80, 443 and ICMP", () => {
        const mysql = { direction: "in", protocol: "tcp", port: "3306", sourceIps: ["0.0.0.0/0"] };
        faultAndFix("firewall-inbound-ports", [firewall([...prodRules(), mysql])], [firewall(prodRules())], /opens inbound TCP 3306 in rule 4/);
        faultAndFix("firewall-inbound-ports", [firewall([{ ...mysql, port: "8000-8012" }])], [firewall([{ ...mysql, port: "443" }])], /TCP 8000-8012/);
        faultAndFix("firewall-inbound-ports", [firewall([{ ...mysql, port: "any", sourceIps: ["198.51.100.0/24"] }])], [firewall([{ ...mysql, port: "80" }])], /every inbound TCP port/);
        faultAndFix("firewall-inbound-ports", [firewall([{ ...mysql, protocol: "udp", port: "443" }])], [firewall([{ ...mysql, protocol: "icmp", port: undefined }])], /inbound udp 443/);
        assert.deepEqual(analyze([firewall([{ ...mysql, direction: "out" }])]), [], "outbound rules are not inbound exposure");
        assert.deepEqual(rulePorts("80-82"), [80, 81, 82]);
        assert.equal(rulePorts(undefined), "any");
    });

    it("firewall-ssh-not-world (advisory): SSH from anywhere warns, the admin CIDRs pass", () => {
        const open = cloudFirewallRules(parseConfigOrThrow(prodWith({ admin: { ...prodConfig().admin, sourceIps: [] } })));
        const vs = analyze([firewall(open)]);
        assert.deepEqual(vs.map((v) => [v.policy, v.level]), [["firewall-ssh-not-world", "advisory"]]);
        assert.match(vs[0].message, /^firewall-ssh-not-world: hcloud firewall "perimeter" opens SSH \(22\) to the whole Internet \(0\.0\.0\.0\/0, ::\/0\) .* — fix: set citadel:admin\.sourceIps/);
        assert.deepEqual(analyze([firewall(prodRules())]), []);
    });

    it("command-host-key-pinned: remote commands and copies", () => {
        const cmd = (type: string, hostKey: unknown): Res => ({ type, name: "uptime", props: { connection: { host: "203.0.113.10", user: "deploy", privateKey: "k", hostKey }, create: "uptime" } });
        faultAndFix("command-host-key-pinned", [cmd(REMOTE, undefined)], [cmd(REMOTE, TEST_HOST_KEY)], /without a pinned host key/);
        faultAndFix("command-host-key-pinned", [cmd(REMOTE, "  ")], [cmd(REMOTE, TEST_HOST_KEY)], /connection\.hostKey is empty/);
        faultAndFix("command-host-key-pinned", [cmd(COPY, "")], [cmd(COPY, TEST_HOST_KEY)], /remote copy "uptime"/);
        assert.deepEqual(analyze([cmd(REMOTE, proxy.unknownStringValue)]), [], "a scanned key unknown during preview: judged at up");
        assert.deepEqual(analyze([{ type: REMOTE, name: "x", props: { connection: proxy.unknownObjectValue, create: "uptime" } }]), []);
    });
});
