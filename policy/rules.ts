// Citadel's hardening checklists as CrossGuard rules: they judge the resources `pulumi preview` /
// `pulumi up` is about to create — the stack's own and any a team adds beside them — by what they
// are (a Docker container, a Hetzner server or firewall, a remote command), not by who made them.
// Every fact (ports, the gateway's and the data services' names, "anywhere") comes from
// components/posture/facts.ts, the one place the components, the audit and this pack share.
//
// A value the engine cannot know yet (an ID, an IP, a scanned host key during preview) is left for
// `pulumi up`, where the same rule runs again with the value resolved: unknown is never a pass that
// sticks and never a violation that blocks a preview for nothing.
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as hcloud from "@pulumi/hcloud";
import type { Unwrap } from "@pulumi/pulumi";
import { credentialFinding, SECRET_LOOKING_RE } from "../components/config";
import {
    UnknownValueError,
    validateResourceOfType,
    type EnforcementLevel,
    type ReportViolation,
    type ResourceValidationPolicy,
    type StackValidationPolicy,
} from "@pulumi/policy";
import {
    ANYWHERE,
    DATA_NETWORK_PREFIX,
    DATA_UID,
    GATEWAY_CONTAINER,
    GATEWAY_PORTS,
    GATEWAY_UID,
    HTTP_PORT,
    HTTPS_PORT,
    POSTGRES_CONTAINER,
    REDIS_CONTAINER,
    SECRETS_MOUNT,
    SSH_PORT,
} from "../components/posture/facts";

// ---- Unknown values -------------------------------------------------------------------------
/** A value the engine does not know yet (preview): the rule that needs it is left for `pulumi up`. */
export const UNKNOWN: unique symbol = Symbol("unknown until pulumi up");
export type Maybe<T> = T | typeof UNKNOWN;

/** Reads a property through @pulumi/policy's proxy, which throws on a value unknown during preview. */
export function known<T>(read: () => T): Maybe<T> {
    try {
        return read();
    } catch (e) {
        if (e instanceof UnknownValueError) return UNKNOWN;
        throw e;
    }
}

/** The known elements of a list (an unknown list, or unknown elements, are skipped). */
function knownList<T>(read: () => T[] | undefined): T[] | typeof UNKNOWN {
    const list = known(read);
    if (list === UNKNOWN) return UNKNOWN;
    if (!list) return [];
    const out: T[] = [];
    for (let i = 0; i < list.length; i++) {
        const v = known(() => list[i]);
        if (v !== UNKNOWN) out.push(v);
    }
    return out;
}

// ---- Findings -------------------------------------------------------------------------------
/** What is wrong and how to fix it; the rule and the resource are added when it is reported. */
export interface Fault {
    fault: string;
    fix: string;
}

/** "<rule>: <resource> <fault> — fix: <fix>" (the engine prints the URN and the level beside it). */
export function violationMessage(rule: string, resource: string, f: Fault): string {
    return `${rule}: ${resource} ${f.fault} — fix: ${f.fix}`;
}

const report = (rule: string, resource: string, faults: Fault[], reportViolation: ReportViolation) => {
    for (const f of faults) reportViolation(violationMessage(rule, resource, f));
};

// ---- Docker containers ----------------------------------------------------------------------
/** A container's properties as the engine sends them (plain values; unknown ones throw, see known()). */
export type ContainerProps = Unwrap<docker.ContainerArgs>;

/** `docker container "api" (app-api)`: the Pulumi name, and the Docker name when it differs. */
export function containerLabel(resourceName: string, props: ContainerProps): string {
    const name = known(() => props.name);
    return typeof name === "string" && name !== resourceName ? `docker container "${resourceName}" (${name})` : `docker container "${resourceName}"`;
}

const isGateway = (props: ContainerProps): boolean => known(() => props.name) === GATEWAY_CONTAINER;

/** The only capability a Citadel container adds back: the gateway binds its ports (GATEWAY_PORTS, below 1024) as a non-root user. */
const GATEWAY_CAPABILITY = "NET_BIND_SERVICE";

export function nonRootFaults(c: ContainerProps): Fault[] {
    const user = known(() => c.user);
    if (user === UNKNOWN) return [];
    const fix = `set user to a non-root "uid:gid" (Citadel's own: ${GATEWAY_UID} for the gateway, ${DATA_UID} for the data services, the app's uid from citadel:apps)`;
    if (!user || !user.trim()) return [{ fault: "sets no user, so it runs as the image's default user (root for most images)", fix }];
    const uid = user.split(":")[0].trim();
    if (uid === "0" || uid === "root") return [{ fault: `runs as root (user "${user}")`, fix }];
    return [];
}

export function readOnlyRootFaults(c: ContainerProps): Fault[] {
    const ro = known(() => c.readOnly);
    if (ro === UNKNOWN || ro === true) return [];
    return [{ fault: "has a writable root filesystem", fix: "set readOnly: true and give the paths it writes a tmpfs (tmpfs: { \"/tmp\": \"rw,noexec,nosuid,nodev,size=64m\" }) or a volume" }];
}

export function capabilityFaults(c: ContainerProps): Fault[] {
    const drops = knownList(() => c.capabilities?.drops);
    const adds = knownList(() => c.capabilities?.adds);
    const out: Fault[] = [];
    if (drops !== UNKNOWN && !drops.some((d) => d.toUpperCase() === "ALL")) {
        out.push({ fault: "keeps Docker's default capabilities (capabilities.drops does not contain ALL)", fix: 'set capabilities: { drops: ["ALL"] } and add back only what the process proves it needs' });
    }
    if (adds !== UNKNOWN) {
        const allowed = isGateway(c) ? [GATEWAY_CAPABILITY] : [];
        const extra = adds.filter((a) => !allowed.includes(a.toUpperCase().replace(/^CAP_/, "")));
        if (extra.length) {
            out.push({
                fault: `adds back ${extra.join(", ")}`,
                fix: `remove capabilities.adds (only ${GATEWAY_CONTAINER} keeps ${GATEWAY_CAPABILITY}, to bind ${GATEWAY_PORTS.join("/")} as a non-root user)`,
            });
        }
    }
    return out;
}

export function noNewPrivilegesFaults(c: ContainerProps): Fault[] {
    const opts = knownList(() => c.securityOpts);
    if (opts === UNKNOWN) return [];
    if (opts.some((o) => /^no-new-privileges([:=]true)?$/i.test(o.trim()))) return [];
    return [{ fault: "lets its processes gain privileges (no no-new-privileges security option)", fix: 'set securityOpts: ["no-new-privileges:true"]' }];
}

export function resourceLimitFaults(c: ContainerProps): Fault[] {
    const out: Fault[] = [];
    const memory = known(() => c.memory);
    if (memory !== UNKNOWN && !(typeof memory === "number" && memory > 0)) {
        out.push({ fault: "has no memory limit", fix: "set memory (MB) and memorySwap to the same value (no swap)" });
    }
    const cpus = known(() => c.cpus);
    const quota = known(() => c.cpuQuota);
    if (cpus === UNKNOWN || quota === UNKNOWN) return out;
    const cpuLimited = (typeof cpus === "string" && Number(cpus) > 0) || (typeof quota === "number" && quota > 0);
    if (!cpuLimited) out.push({ fault: "has no CPU limit", fix: 'set cpus (e.g. "1.0") or cpuQuota with cpuPeriod' });
    return out;
}

export function privilegedFaults(c: ContainerProps): Fault[] {
    const p = known(() => c.privileged);
    if (p !== true) return [];
    return [{ fault: "runs privileged (every capability, every host device, no seccomp or AppArmor)", fix: "remove privileged: true; if one capability is truly needed, name it in capabilities.adds" }];
}

export function hostNamespaceFaults(c: ContainerProps): Fault[] {
    const modes: [string, Maybe<string | undefined>][] = [
        ["networkMode", known(() => c.networkMode)],
        ["pidMode", known(() => c.pidMode)],
        ["ipcMode", known(() => c.ipcMode)],
        ["usernsMode", known(() => c.usernsMode)],
    ];
    return modes
        .filter(([, v]) => v === "host")
        .map(([k]) => ({
            fault: `shares the host's ${k.replace(/Mode$/, "")} namespace (${k}: "host")`,
            fix: k === "networkMode" ? "remove networkMode and join Citadel's networks with networksAdvanced (the gateway reaches apps on their edge network)" : `remove ${k}: "host"`,
        }));
}

export function publishedPortFaults(c: ContainerProps): Fault[] {
    const out: Fault[] = [];
    const gateway = isGateway(c);
    const allowed = `only ${GATEWAY_CONTAINER} publishes ports, ${GATEWAY_PORTS.join(" and ")}/tcp; an app is reached through the gateway (a site in citadel:sites), a data service only on its internal network`;
    if (known(() => c.publishAllPorts) === true) out.push({ fault: "publishes every port its image exposes (publishAllPorts: true)", fix: `remove publishAllPorts: ${allowed}` });
    const ports = knownList(() => c.ports);
    if (ports === UNKNOWN) return out;
    for (let i = 0; i < ports.length; i++) {
        const p = ports[i];
        const external = known(() => p.external);
        const internal = known(() => p.internal);
        const ip = known(() => p.ip);
        const protocol = known(() => p.protocol);
        if (external === UNKNOWN || internal === UNKNOWN || ip === UNKNOWN || protocol === UNKNOWN) continue;
        const proto = protocol || "tcp";
        const spelled = `${ip || "0.0.0.0"}:${external ?? "<random>"}->${internal}/${proto}`;
        const ok = gateway && proto === "tcp" && typeof external === "number" && (GATEWAY_PORTS as readonly number[]).includes(external);
        if (!ok) out.push({ fault: `publishes ${spelled}`, fix: `remove this ports entry: ${allowed}` });
    }
    return out;
}

/** Findings for one "NAME=value" entry; the value itself is never repeated in a message. */
export function secretEnvFaults(entry: string): Fault[] {
    const eq = entry.indexOf("=");
    const name = eq < 0 ? entry : entry.slice(0, eq);
    const value = eq < 0 ? "" : entry.slice(eq + 1);
    const fileFix = `put the secret in a file mounted read-only under ${SECRETS_MOUNT} and pass ${name.replace(/_FILE$/, "")}_FILE=<that path> (Citadel's citadel:apps[].secrets does this)`;
    const out: Fault[] = [];
    if (/_FILE$/i.test(name)) {
        if (value && !value.startsWith("/")) out.push({ fault: `sets ${name} to something that is not a file path`, fix: `${name} must hold the path of the secret file, not the secret` });
    } else if (SECRET_LOOKING_RE.test(name) && value !== "") {
        out.push({ fault: `carries a secret in its environment (${name})`, fix: fileFix });
    }
    // The config's own rule for values (components/config/validators.ts credentialFinding).
    const found = credentialFinding(value, name);
    if (found) {
        switch (found.kind) {
            case "url":
                out.push({ fault: `carries a URL with credentials in its environment (${name})`, fix: `drop the user:password from the URL and ${fileFix}` });
                break;
            case "pem":
                out.push({ fault: `carries a PEM block (key or certificate) in its environment (${name})`, fix: fileFix });
                break;
            default:
                out.push({ fault: `carries a credential in its environment (${name}: ${found.reason})`, fix: fileFix });
        }
    }
    return out;
}

export function envFaults(c: ContainerProps): Fault[] {
    const envs = knownList(() => c.envs);
    if (envs === UNKNOWN) return [];
    return envs.flatMap((e) => (typeof e === "string" ? secretEnvFaults(e) : []));
}

function containerPolicy(name: string, description: string, enforcementLevel: EnforcementLevel, faults: (c: ContainerProps) => Fault[]): ResourceValidationPolicy {
    return {
        name,
        description,
        enforcementLevel,
        validateResource: validateResourceOfType(docker.Container, (c, args, reportViolation) => report(name, containerLabel(args.name, c), faults(c), reportViolation)),
    };
}

// ---- Hetzner Cloud --------------------------------------------------------------------------
export type FirewallRuleProps = { direction?: string; protocol?: string; port?: string; sourceIps?: string[] };

export function serverFirewallFaults(s: { firewallIds?: unknown }): Fault[] {
    const ids = known(() => s.firewallIds);
    if (ids === UNKNOWN) return [];
    if (Array.isArray(ids) && ids.length > 0) return [];
    return [{ fault: "is created without a cloud firewall (firewallIds is empty)", fix: "create an hcloud.Firewall with the allowed inbound rules and pass firewallIds: [firewall.id.apply(Number)]" }];
}

/** The TCP ports an inbound rule opens: "22" → [22], "80-85" → 80..85, "any"/none → "any". */
export function rulePorts(port: string | undefined): number[] | "any" {
    if (!port || port.trim().toLowerCase() === "any") return "any";
    const m = /^(\d+)(?:-(\d+))?$/.exec(port.trim());
    if (!m) return "any";
    const lo = Number(m[1]);
    const hi = m[2] ? Number(m[2]) : lo;
    if (hi - lo > 65535 || hi < lo) return "any";
    return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
}

const INBOUND_TCP = [SSH_PORT, HTTP_PORT, HTTPS_PORT];

function knownRules(f: { rules?: unknown }): FirewallRuleProps[] | typeof UNKNOWN {
    return knownList(() => f.rules as FirewallRuleProps[] | undefined);
}

function ruleLabel(r: FirewallRuleProps, i: number): string {
    const port = known(() => r.port);
    return `rule ${i} (${known(() => r.protocol) as string}${typeof port === "string" ? ` ${port}` : ""})`;
}

export function firewallInboundFaults(f: { rules?: unknown }): Fault[] {
    const rules = knownRules(f);
    if (rules === UNKNOWN) return [];
    const out: Fault[] = [];
    const fix = `remove the rule: the Internet reaches ${HTTP_PORT}/${HTTPS_PORT} (the gateway) and ${SSH_PORT} (SSH from the admin CIDRs) only; other services go through the gateway or an SSH tunnel`;
    rules.forEach((r, i) => {
        const direction = known(() => r.direction);
        const protocol = known(() => r.protocol);
        const port = known(() => r.port);
        if (direction === UNKNOWN || protocol === UNKNOWN || port === UNKNOWN || direction !== "in") return;
        if (protocol === "icmp") return;
        if (protocol !== "tcp") {
            out.push({ fault: `opens inbound ${protocol}${port ? ` ${port}` : ""} in ${ruleLabel(r, i)}`, fix });
            return;
        }
        const ports = rulePorts(port);
        if (ports === "any") {
            out.push({ fault: `opens every inbound TCP port in ${ruleLabel(r, i)}`, fix });
            return;
        }
        const extra = ports.filter((p) => !INBOUND_TCP.includes(p));
        if (extra.length) {
            const shown = extra.length > 3 ? `${extra[0]}-${extra[extra.length - 1]}` : extra.join(", ");
            out.push({ fault: `opens inbound TCP ${shown} in ${ruleLabel(r, i)}`, fix });
        }
    });
    return out;
}

export function firewallSshWorldFaults(f: { rules?: unknown }): Fault[] {
    const rules = knownRules(f);
    if (rules === UNKNOWN) return [];
    const out: Fault[] = [];
    rules.forEach((r, i) => {
        const direction = known(() => r.direction);
        const protocol = known(() => r.protocol);
        const port = known(() => r.port);
        const sources = knownList(() => r.sourceIps);
        if (direction !== "in" || protocol !== "tcp" || port === UNKNOWN || sources === UNKNOWN) return;
        const ports = rulePorts(port);
        if (ports !== "any" && !ports.includes(SSH_PORT)) return;
        const world = sources.filter((s) => (ANYWHERE as readonly string[]).includes(s));
        if (world.length) {
            out.push({
                fault: `opens SSH (${SSH_PORT}) to the whole Internet (${world.join(", ")}) in ${ruleLabel(r, i)}`,
                fix: "set citadel:admin.sourceIps to the admins' CIDRs (sshd, fail2ban/CrowdSec and key-only login still guard it meanwhile)",
            });
        }
    });
    return out;
}

// ---- Remote commands ------------------------------------------------------------------------
export function hostKeyFaults(r: { connection?: unknown }): Fault[] {
    const conn = known(() => r.connection as { hostKey?: unknown } | undefined);
    if (conn === UNKNOWN) return [];
    const hostKey = conn ? known(() => conn.hostKey) : undefined;
    if (hostKey === UNKNOWN) return [];
    if (typeof hostKey === "string" && hostKey.trim()) return [];
    return [
        {
            fault: "connects over SSH without a pinned host key (connection.hostKey is empty): whoever answers at that address gets the commands and the key",
            fix: "set connection.hostKey to the server's public host key (\"ssh-ed25519 AAAA...\"; Citadel scans it once at creation, see host-key-scan)",
        },
    ];
}

// ---- Rules across resources ----------------------------------------------------------------
// Whether a network is internal, or a container has a pids limit, depends on other resources. The
// engine's AnalyzeStack sends outputs, which a preview whose Docker provider is not configured yet
// (a fresh stack: the host does not exist) leaves empty; the inputs each resource was analyzed with
// are known. So the pack keeps what it has seen this run in an Inventory: networks as they are
// analyzed (before the containers that reference them: a container waits for its networks), and
// containers and remote commands for the end-of-run (stack) check.

/** The data services: by Docker name (facts), or by an image of the same name (the official images). */
const DATA_SERVICES = [POSTGRES_CONTAINER, REDIS_CONTAINER];
const DATA_IMAGE = new RegExp(`(^|/)(${DATA_SERVICES.join("|")})(:|@|$)`);

export function isDataService(c: ContainerProps): boolean {
    const name = known(() => c.name);
    const image = known(() => c.image);
    return (typeof name === "string" && DATA_SERVICES.includes(name)) || (typeof image === "string" && DATA_IMAGE.test(image));
}

/** What this run of the pack has seen so far. */
export class Inventory {
    /** Docker network name → internal (UNKNOWN while the engine does not know it). */
    readonly networks = new Map<string, Maybe<boolean | undefined>>();
    /** Containers by URN: how to name them, and their Docker name. */
    readonly containers = new Map<string, { label: string; name: Maybe<string | undefined> }>();
    /** The commands remote steps run (known ones). */
    readonly scripts: string[] = [];

    recordNetwork(n: { name?: unknown; internal?: unknown }): void {
        const name = known(() => n.name);
        if (typeof name === "string") this.networks.set(name, known(() => n.internal) as Maybe<boolean | undefined>);
    }
}

/**
 * The networks a container joins. The SDK (and upstream's provider) call the list `networksAdvanced`;
 * the lab's rebuilt Docker provider (lab/engine, bridge default naming) returns it from Check as
 * `networksAdvanceds`. Both are read, so the rule holds on either provider.
 */
function joinedNetworks(c: ContainerProps): { name: string }[] | typeof UNKNOWN {
    const raw = c as ContainerProps & { networksAdvanceds?: unknown };
    return knownList(() => (raw.networksAdvanced ?? raw.networksAdvanceds) as { name: string }[] | undefined);
}

export function dataNetworkFaults(c: ContainerProps, networks: ReadonlyMap<string, Maybe<boolean | undefined>>): Fault[] {
    if (!isDataService(c)) return [];
    const fix = `attach it only to an internal network (a docker.Network with internal: true, referenced by its name output; Citadel's are ${DATA_NETWORK_PREFIX}<app>, one per app) and publish no ports`;
    const joined = joinedNetworks(c);
    if (joined === UNKNOWN) return [];
    if (joined.length === 0) {
        const mode = known(() => c.networkMode);
        if (mode === UNKNOWN || mode === "none" || mode === "host") return []; // no network, or the host-network rule's finding
        return [{ fault: `is on Docker's default ${mode || "bridge"} network, which is not internal`, fix }];
    }
    const out: Fault[] = [];
    for (const n of joined) {
        const name = known(() => n.name);
        if (name === UNKNOWN || name === "none") continue;
        if (!networks.has(name)) out.push({ fault: `joins network ${name}, which this stack does not declare (as internal) before it`, fix });
        else {
            const internal = networks.get(name);
            if (internal !== UNKNOWN && internal !== true) out.push({ fault: `joins network ${name}, which is not internal (it has a route out and may be shared with published containers)`, fix });
        }
    }
    return out;
}

/** Whether one of the scripts sets this container's pids limit (`docker update --pids-limit`). */
export function pidsLimitFaults(name: string, scripts: readonly string[]): Fault[] {
    const word = new RegExp(`(^|[^A-Za-z0-9_.-])${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}([^A-Za-z0-9_.-]|$)`);
    if (scripts.some((s) => s.includes("--pids-limit") && word.test(s))) return [];
    return [
        {
            fault: "has no pids limit (Docker's Pulumi provider cannot set one, and no remote command of this stack runs docker update --pids-limit for it)",
            fix: "declare the container in the posture so the container-limits host step limits it, or run docker update --pids-limit for it in a host step",
        },
    ];
}

// ---- The pack -------------------------------------------------------------------------------
/** Every policy, sharing one Inventory (a fresh one per call: the tests start each case clean). */
export function makePolicies(inventory: Inventory = new Inventory()): (ResourceValidationPolicy | StackValidationPolicy)[] {
    const containers: ResourceValidationPolicy[] = [
        containerPolicy("container-non-root", "Docker containers run as a non-root user.", "mandatory", nonRootFaults),
        containerPolicy("container-read-only-root", "Docker containers have a read-only root filesystem.", "mandatory", readOnlyRootFaults),
        containerPolicy("container-drop-all-capabilities", `Docker containers drop every capability (${GATEWAY_CONTAINER} keeps ${GATEWAY_CAPABILITY}).`, "mandatory", capabilityFaults),
        containerPolicy("container-no-new-privileges", "Docker containers set no-new-privileges.", "mandatory", noNewPrivilegesFaults),
        containerPolicy("container-resource-limits", "Docker containers have a memory and a CPU limit.", "mandatory", resourceLimitFaults),
        containerPolicy("container-not-privileged", "Docker containers never run privileged.", "mandatory", privilegedFaults),
        containerPolicy("container-no-host-network", "Docker containers do not share the host's network (nor its pid, ipc or user namespace).", "mandatory", hostNamespaceFaults),
        containerPolicy("container-published-ports", `Only the gateway (${GATEWAY_CONTAINER}) publishes ports, and only ${GATEWAY_PORTS.join(" and ")}.`, "mandatory", publishedPortFaults),
        containerPolicy("container-no-secret-env", "No secret in a container's environment: secrets are files, passed as NAME_FILE pointers.", "mandatory", envFaults),
    ];
    const dataServices: ResourceValidationPolicy = {
        name: "data-services-internal-networks",
        description: `The data services (${DATA_SERVICES.join(", ")}) are only on internal Docker networks.`,
        enforcementLevel: "mandatory",
        validateResource: [
            validateResourceOfType(docker.Network, (n) => inventory.recordNetwork(n)),
            validateResourceOfType(docker.Container, (c, args, reportViolation) =>
                report("data-services-internal-networks", containerLabel(args.name, c), dataNetworkFaults(c, inventory.networks), reportViolation),
            ),
        ],
    };
    const pids: ResourceValidationPolicy & StackValidationPolicy = {
        name: "container-pids-limit",
        description: "Every container gets a pids limit from a host step (advisory: Docker's provider cannot set it).",
        enforcementLevel: "advisory",
        validateResource: [
            validateResourceOfType(docker.Container, (c, args) => {
                inventory.containers.set(args.urn, { label: containerLabel(args.name, c), name: known(() => c.name) });
            }),
            validateResourceOfType(command.remote.Command, (r) => {
                const create = known(() => r.create);
                if (typeof create === "string") inventory.scripts.push(create);
            }),
        ],
        validateStack: (_args, reportViolation) => {
            for (const [urn, c] of inventory.containers) {
                if (typeof c.name !== "string" || !c.name) continue;
                report("container-pids-limit", c.label, pidsLimitFaults(c.name, inventory.scripts), (m) => reportViolation(m, urn));
            }
        },
    };
    const hcloudPolicies: ResourceValidationPolicy[] = [
        {
            name: "server-firewall-attached",
            description: "Hetzner servers are created with a cloud firewall attached.",
            enforcementLevel: "mandatory",
            validateResource: validateResourceOfType(hcloud.Server, (s, args, reportViolation) => report("server-firewall-attached", `hcloud server "${args.name}"`, serverFirewallFaults(s), reportViolation)),
        },
        {
            name: "firewall-inbound-ports",
            description: `Hetzner firewalls open inbound only ${SSH_PORT} (SSH), ${HTTP_PORT}, ${HTTPS_PORT} and ICMP.`,
            enforcementLevel: "mandatory",
            validateResource: validateResourceOfType(hcloud.Firewall, (f, args, reportViolation) => report("firewall-inbound-ports", `hcloud firewall "${args.name}"`, firewallInboundFaults(f), reportViolation)),
        },
        {
            name: "firewall-ssh-not-world",
            description: "SSH is open only to the admins' CIDRs, not to the whole Internet.",
            enforcementLevel: "advisory",
            validateResource: validateResourceOfType(hcloud.Firewall, (f, args, reportViolation) => report("firewall-ssh-not-world", `hcloud firewall "${args.name}"`, firewallSshWorldFaults(f), reportViolation)),
        },
    ];
    const hostKey: ResourceValidationPolicy = {
        name: "command-host-key-pinned",
        description: "Remote commands (and remote copies) pin the server's SSH host key.",
        enforcementLevel: "mandatory",
        validateResource: [
            validateResourceOfType(command.remote.Command, (r, args, reportViolation) => report("command-host-key-pinned", `remote command "${args.name}"`, hostKeyFaults(r), reportViolation)),
            validateResourceOfType(command.remote.CopyToRemote, (r, args, reportViolation) => report("command-host-key-pinned", `remote copy "${args.name}"`, hostKeyFaults(r), reportViolation)),
        ],
    };
    return [...containers, dataServices, pids, ...hcloudPolicies, hostKey];
}
