// Wires the declared posture (components/posture) into resources, in the order that can never lock
// the operator out: server → host firewall (SSH kept open) → sshd + baseline (Docker) → intrusion →
// networks → secret files → data, apps, gateway → container limits. Every component gets its slice
// of the posture and creates exactly that; the outputs are read off the same posture.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { Apps } from "./apps";
import { Backup } from "./backup";
import { StackConfig } from "./config";
import { DataServices } from "./data";
import { Gateway } from "./gateway";
import { HostBaseline, HostFirewall, Intrusion } from "./host";
import { Monitoring } from "./monitoring";
import { StepGraph, wireStep } from "./host-step";
import { Networks } from "./networks";
import { containerRef, networkRef, posture, sshSourceIps, type ContainerPosture, type HostStepPosture, type Posture } from "./posture";
import { renderCloudInit } from "./render/cloudinit";
import { postgresApps, renderRedisAcl } from "./render/data";
import { renderAlertmanagerConfig } from "./render/monitoring";
import { sha256 } from "./render/script";
import { GATEWAY_IMAGE_STEP } from "./posture/facts";
import { Secrets } from "./secrets";
import { Server } from "./server";

export interface CitadelArgs {
    config: StackConfig;
    /** The operator's private key (secret) for host steps. */
    privateKey: pulumi.Input<string>;
    /** Path of that key on the operator's machine, for Docker's SSH transport. */
    privateKeyPath: string;
    /** Clock for secret rotation (tests pin it). */
    now?: Date;
    /** The backup target's credentials (citadel:backup.target.sshKey), checked by loadProgramInputs. */
    backupCredentials?: Record<string, string>;
}

/** SSH options for Docker's ssh:// transport: the pinned host key and nothing else is accepted. */
export function dockerSshOpts(privateKeyPath: string, hostKey: string): string[] {
    return [
        "-i", privateKeyPath,
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        // No known_hosts file to go stale or be edited: the key comes from the stack itself.
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", `KnownHostsCommand=/bin/echo %H ${hostKey}`,
    ];
}

/** The non-secret stack outputs, all read off the posture (and the server's address and key). */
export function postureOutputs(m: Posture, epochs: Record<string, number>) {
    return {
        target: m.target,
        sshUser: m.adminUser,
        sites: m.sites.map((s) => s.url),
        exposure: { tcp: m.exposure.openTcp, udp: m.exposure.openUdp, sshSourceIps: sshSourceIps(m.exposure) },
        intrusionEngine: m.intrusion.engine,
        containers: m.containers.map((x) => x.name),
        secretRotation: Object.fromEntries(m.secrets.map((s) => [s.name, { epoch: epochs[s.name] ?? 0, rotationDays: s.rotationDays }])),
        caddyfileSha256: m.containers.find((x) => x.role === "gateway")?.labels["citadel.caddyfile-sha256"],
    };
}

export class Citadel extends pulumi.ComponentResource {
    public readonly server: Server;
    public readonly posture: Posture;
    public readonly outputs: Record<string, pulumi.Input<unknown>>;

    constructor(name: string, args: CitadelArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:index:Citadel", name, {}, opts);
        const c = args.config;
        const m = (this.posture = posture(c));
        const p = { parent: this };
        const graph = new StepGraph();
        const layer = (l: HostStepPosture["layer"]) => m.hostSteps.filter((s) => s.layer === l);
        const role = (...roles: ContainerPosture["role"][]) => m.containers.filter((x) => roles.includes(x.role));

        const secrets = new Secrets("secrets", { specs: m.secrets, rotationAnchor: c.secrets.rotationAnchor, now: args.now }, p);
        this.server = new Server(
            "server",
            { target: c.target, hcloud: c.hcloud, existing: c.existing, admin: c.admin, cloudFirewall: m.exposure.cloudFirewall, userData: renderCloudInit(c), privateKey: args.privateKey },
            p,
        );
        const conn = this.server.connection;

        new HostFirewall("firewall", { steps: layer("firewall"), connection: conn, graph }, p);
        const baseline = new HostBaseline("baseline", { steps: layer("baseline"), connection: conn, graph }, p);

        // Host daemons' secret files (the CrowdSec bouncer key), before the intrusion step reads them.
        const hostFiles = m.secretFiles.filter((f) => f.consumer === "host");
        for (const f of hostFiles) {
            const step = layer("secrets").find((s) => s.name === f.step);
            if (step) wireStep(step, conn, graph, { parent: this, secretValue: secrets.values[f.secret] });
        }
        // The intrusion script reads the bouncer key from its file, so its text does not change on
        // rotation: the (secret) hash of the key is an extra trigger that re-runs it and re-registers.
        const keyHashes = hostFiles.map((f) => pulumi.secret(secrets.values[f.secret].apply((k) => sha256(k))));
        new Intrusion("intrusion", { steps: layer("intrusion"), connection: conn, graph, extraTriggers: keyHashes }, p);

        const provider = new docker.Provider(
            "docker",
            {
                host: pulumi.interpolate`ssh://${conn.user}@${conn.host}:${conn.port}`,
                sshOpts: pulumi.output(conn.hostKey).apply((hk) => dockerSshOpts(args.privateKeyPath, hk)),
            },
            { parent: this, dependsOn: baseline.done },
        );
        const networks = new Networks("networks", { networks: m.networks }, { parent: this, providers: { docker: provider }, dependsOn: baseline.done });
        for (const [n, r] of Object.entries(networks.byName)) graph.add(networkRef(n), r);
        const common = { secretFiles: m.secretFiles, connection: conn, networks, provider, secrets, graph };
        // A container layer wires the steps its containers wait for (config steps, secret files).
        const own: HostStepPosture["layer"][] = ["secrets", "data", "gateway"];
        const stepsFor = (containers: ContainerPosture[]) => m.hostSteps.filter((s) => own.includes(s.layer) && containers.some((x) => x.after.includes(s.name)));
        const data = role("postgres", "redis");
        new DataServices("data", { ...common, containers: data, steps: stepsFor(data), redisAcl: (h) => renderRedisAcl(c, h) }, p);
        // The postgres-roles step reads the password files, so its text does not change on rotation:
        // the (secret) hash of every value is an extra trigger that re-runs it, and so is a re-created
        // postgres container (its roles must exist in whatever data directory it runs on).
        const pgPasswords = ["postgresSuperuserPassword", ...postgresApps(c).map((a) => a.secret)].filter((n) => secrets.values[n]).map((n) => secrets.values[n]);
        const pgHash = pulumi.secret(pulumi.all(pgPasswords).apply((vs) => sha256(vs.join("\n"))));
        const pgContainer = graph.get(data.filter((x) => x.role === "postgres").map((x) => containerRef(x.name))).map((r) => (r as docker.Container).id);
        const apps = role("app");
        // The roles step reads the apps' own password files, and the apps wait for it: it is wired
        // between the two.
        const roles = () => {
            for (const step of layer("credentials")) wireStep(step, conn, graph, { parent: this, extraTriggers: [pgHash, ...pgContainer] });
        };
        new Apps("apps", { ...common, containers: apps, steps: stepsFor(apps), betweenFilesAndContainers: roles }, p);
        const gateway = role("gateway");
        new Gateway("gateway", { ...common, containers: gateway, steps: stepsFor(gateway), buildStep: m.hostSteps.find((s) => s.name === GATEWAY_IMAGE_STEP) }, p);
        const monitoring = role("monitoring");
        if (monitoring.length) {
            // The receivers' URLs exist only here and in the secret file's stdin, as a Pulumi secret.
            const urls = Object.fromEntries(c.monitoring.receivers.map((r) => [r.name, r.url]));
            const alertmanagerConfig = pulumi.secret(pulumi.output(renderAlertmanagerConfig(c, urls)));
            new Monitoring("monitoring", { ...common, containers: monitoring, steps: [...stepsFor(monitoring), ...layer("monitoring")], alertmanagerConfig }, p);
        }

        // Backups, once the data services run (their credentials first, as root-only files).
        const backup = layer("backup");
        if (backup.length) new Backup("backup", { steps: backup, secretSteps: layer("secrets"), secretFiles: m.secretFiles, credentials: args.backupCredentials ?? {}, connection: conn, graph }, p);

        // The Docker provider cannot set a pids limit; this step does, and re-runs whenever a container is re-created.
        for (const step of layer("limits")) {
            const recreated = graph.get((step.rerunWith ?? []).map(containerRef)).map((r) => (r as docker.Container).id);
            wireStep(step, conn, graph, { parent: this, extraTriggers: recreated });
        }

        this.outputs = {
            ...postureOutputs(m, secrets.epochs),
            address: this.server.address,
            ...(this.server.address6 ? { address6: this.server.address6 } : {}),
            sshHostKey: this.server.hostKey,
        };
        this.registerOutputs(this.outputs);
    }
}
