// The shape of the declared posture: plain data (JSON-serializable), no Pulumi, no secret values.
// `posture(config)` (index.ts) computes it; the components wire it into resources; the outputs,
// `npm run render` (posture.json), the audit, the review and the policy pack read it.
import type { HostFile } from "../render/types";
import type { SysctlEntry } from "../render/host";

export type Protocol = "tcp" | "udp";

/** One inbound rule of the Hetzner Cloud firewall (the provider's own field names). */
export interface CloudFirewallRule {
    direction: "in";
    protocol: "tcp" | "udp" | "icmp";
    port?: string;
    sourceIps: string[];
    description: string;
}

export interface ExposurePosture {
    /** What the Internet can open on the host: the gateway's ports and SSH. */
    openTcp: number[];
    openUdp: number[];
    ssh: {
        port: number;
        /** CIDRs allowed to reach SSH; empty means anywhere (then rate-limited and watched). */
        sources: string[];
        /** UFW `limit` (6 new connections in 30 s per address) when SSH is open to anywhere. */
        rateLimited: boolean;
    };
    /** Layer 0 (target hcloud): the Hetzner firewall attached at server creation; [] elsewhere. */
    cloudFirewall: CloudFirewallRule[];
    ufw: {
        /** The `ufw default` policies (DEFAULT_*_POLICY in /etc/default/ufw). */
        defaults: { key: string; value: string }[];
        /** Exactly the lines `ufw show added` must print, in order (SSH first). */
        rules: string[];
    };
    /** DOCKER-USER: only new inbound connections to these published ports reach a container. */
    dockerUser: { allowedTcp: number[]; logPrefix: string };
    /** App ports denied explicitly (tcp and udp), reached only through the gateway. */
    deniedPorts: { from: number; to: number };
    /** citadel:host.docker.ipv6: the gateway's ports reached over IPv6 too, by Citadel's DNAT to `gateway`. */
    ipv6: { served: boolean; gateway?: string };
}

export type StepLayer = "firewall" | "baseline" | "secrets" | "intrusion" | "data" | "credentials" | "gateway" | "monitoring" | "limits" | "backup";

/**
 * A host step: one idempotent root script pushed over SSH. `after` names what must exist first:
 * other steps by name, `image:<name>` (a container image on the host) or `container:<name>`. The
 * components wire exactly these dependencies, so the model is the order `pulumi up` runs.
 */
export interface HostStepPosture {
    /** Pulumi resource name (and the step's name in logs and `out/<stack>/steps/`). */
    name: string;
    layer: StepLayer;
    description: string;
    /** "script": the rendered script; "secret-file": writes one secret from stdin (never in argv). */
    kind: "script" | "secret-file";
    script: string;
    files: HostFile[];
    /** Repository files the script carries verbatim (render/types.ts HostScript.sources). */
    sources?: { name: string; sha256: string }[];
    after: string[];
    /** How the step checks its files with the real consumer before switching. */
    validation: string;
    /** secret-file steps: which file they write. */
    secretFile?: string;
    /** Re-run the step when these containers are re-created (their ids are triggers). */
    rerunWith?: string[];
    /** The Debian packages the step installs, one list per install, in order (render/types.ts HostScript.packages). */
    packages?: string[][];
    /** Dials before the step fails, when not the default (render/types.ts HostScript.dialTries). */
    dialTries?: number;
}

export interface NetworkAttachment {
    network: string;
    aliases: string[];
    /** A fixed address on the network (the monitoring network's members). */
    ipv4Address?: string;
    /** A fixed IPv6 address on the network (the gateway's, where IPv6 is served). */
    ipv6Address?: string;
}

export interface SecretMount {
    /** Host path of the 0400 file (SecretFilePosture.path). */
    source: string;
    /** Where the container reads it. */
    target: string;
    /** `<NAME>_FILE` pointer in the container's env, when the reader follows that convention. */
    env?: string;
}

export interface ContainerPosture {
    name: string;
    role: "gateway" | "postgres" | "redis" | "app" | "monitoring";
    /** The app's name (role app). */
    app?: string;
    image: string;
    /** Built on the host from images/caddy (the gateway with citadel:gateway.build). */
    build: boolean;
    /** With `build`: the Dockerfile's build arguments and the hash of all inputs (the built image's label). */
    buildFrom?: { args: Record<string, string>; inputsSha256: string; filesSha256: string };
    /** Numeric "uid:gid", never root. */
    user: string;
    uid: number;
    readOnly: boolean;
    noNewPrivileges: boolean;
    privileged: boolean;
    capDrop: string[];
    capAdd: string[];
    memoryMb: number;
    /** Docker's own spelling ("1.0", "0.5"), so a second `pulumi up` sees no change. */
    cpus: string;
    pids: number;
    tmpfs: string[];
    networks: NetworkAttachment[];
    /** hostIp: where the port listens ("0.0.0.0"; "::" in postures that published IPv6 through Docker; absent before IPv6, read as "0.0.0.0"). */
    publishedPorts: { internal: number; external: number; protocol: Protocol; hostIp?: string }[];
    secretMounts: SecretMount[];
    /** Other read-only or read-write bind mounts (configuration, logs). */
    binds: { source: string; target: string; readOnly: boolean }[];
    volumes: { name: string; target: string }[];
    /** Plain environment (names and non-secret values; secrets are files). */
    env: string[];
    command?: string[];
    healthcheck?: { test: string[]; interval: string; timeout: string; retries: number };
    /** Labels that re-create the container when what it reads changes (config hashes). */
    labels: Record<string, string>;
    /** The secrets whose rotation epoch labels the container (re-created on rotation). */
    rotatesWith: string[];
    /**
     * json-file (rotated by size: maxSize × maxFile), or journald for the data services, whose
     * authentication failures must be kept for the retention period (the journal's MaxRetentionSec).
     */
    logs: { driver: "json-file" | "journald"; maxSize: string; maxFile: number };
    /** What its image waits for (Docker installed, intrusion detection up). */
    imageAfter: string[];
    /** What the container waits for: its config step, its secret files, the containers behind it. */
    after: string[];
}

export interface NetworkPosture {
    name: string;
    /** Internal: no route out of the host. */
    internal: boolean;
    /** A fixed subnet and host-side bridge name (the monitoring network: UFW and CrowdSec name them). */
    subnet?: string;
    /** Where Docker picks dynamic addresses (the fixed ones stay outside it). */
    ipRange?: string;
    /** The bridge's address on the host (what the host's own services bind for the network). */
    gateway?: string;
    bridge?: string;
    /** An IPv6 subnet: the network is dual-stack (the public network with citadel:host.docker.ipv6). */
    ipv6Subnet?: string;
    ipv6Gateway?: string;
    /** Where Docker picks IPv6 addresses (the fixed ones lie outside it). */
    ipv6IpRange?: string;
    /** Docker driver options (the egress bridge: no traffic between its containers). */
    options?: Record<string, string>;
    /** Containers attached to it. */
    members: string[];
}

export interface SecretPosture {
    name: string;
    kind: "key256" | "key512" | "password";
    bits: number;
    rotationDays: number;
    /** citadel:secrets.rotateNow: periods added to the computed epoch (a forced rotation). */
    forcedEpochs: number;
    /** Versioned secrets (jwtSecret, apiEncryptionKey): older generations kept readable after a rotation. */
    previous?: number;
}

export interface SecretFilePosture {
    /** The generated secret it carries (or is derived from). */
    secret: string;
    /** "value": the secret itself; "redis-acl": Redis' ACL file with each app user's password's SHA-256 (redisUsers); "alertmanager-config": alertmanager.yml with the receivers' URLs. */
    content: "value" | "redis-acl" | "alertmanager-config";
    /** Directory name under the secrets tree: a container name's reader, or "host". */
    consumer: string;
    name: string;
    path: string;
    ownerUid: number;
    mode: string;
    /** Who reads it: containers, or "host" daemons. */
    readers: string[];
    /** The host step that writes it. */
    step: string;
    /**
     * A reader that reads the file once at start and reloads on SIGHUP (Alertmanager): when a changed
     * value is written, the running container gets SIGHUP, so a new value takes effect without a restart.
     */
    reloadOnChange?: string;
    /** The "redis-acl" file's users: each app's user, its key prefix and the secret its password is. */
    redisUsers?: { user: string; keyPrefix: string; secret: string }[];
}

export interface SitePosture {
    host: string;
    url: string;
    app: string;
    /** Where Caddy sends the site's requests: the app's alias and port on its edge network. */
    upstream: string;
    /** The response headers every answer of the site carries (errors included). */
    headers: Record<string, string>;
    /** Response headers the gateway removes. */
    removedHeaders: string[];
    rateLimit: { events: number; window: string; zone: string };
    tls: { protocols: string[]; hsts: { maxAge: number; includeSubDomains: boolean; preload: boolean } };
    redirectHttp: boolean;
}

export interface IntrusionPosture {
    engine: "crowdsec" | "fail2ban";
    /** What the engine reads. */
    sources: string[];
    banTimeSeconds: number;
    maxRetry: number;
    findTimeSeconds: number;
    /** Sources never banned. */
    exempt: string[];
    /** Where a ban is enforced. */
    enforcedIn: string[];
}

export interface HostBaselinePosture {
    sysctl: SysctlEntry[];
    sshdEffective: string[];
    journald: { maxRetentionDays: number; systemMaxUse: string };
    os: { banner: string; coreDumps: boolean; disabledModules: string[]; umask: string; passwordHashRounds: number; pamTmpdir: boolean; packageVerification: boolean; auditDocker: boolean };
    unattendedUpgrades: { enabled: boolean; autoReboot: boolean; autoRebootTime: string; restartServices: "auto" | "list"; applyAtConverge: boolean; applyTimeoutSeconds: number };
    dockerDaemon: Record<string, unknown>;
}

/** Metrics and alerts (posture/monitoring.ts). Receiver URLs are secrets and never appear here. */
export type MonitoringPosture =
    | { enabled: false }
    | {
          enabled: true;
          network: { name: string; subnet: string };
          scrapeIntervalSeconds: number;
          driftIntervalSeconds: number;
          /** The node exporter's textfile collector directory (drift, updates, reboot, restarts). */
          textfileDir: string;
          /** Every target Prometheus must scrape (job and address on the monitoring network). */
          targets: { job: string; target: string }[];
          rules: { alert: string; severity: string; summary: string; for?: string }[];
          thresholds: Record<string, unknown>;
          receivers: { name: string; kind: string; sendResolved: boolean }[];
          /** Where every alert goes; undefined: nowhere but Alertmanager's UI. */
          routeReceiver?: string;
          /** The UIs (fixed addresses on the monitoring network, never published) and the SSH tunnel that reaches them. */
          ui: { prometheus: string; alertmanager: string; tunnel: string };
      };

/** Where the host comes from. A change here on target hcloud replaces the server (a new host). */
export interface ServerPosture {
    target: "hcloud" | "existing";
    /** target hcloud: Hetzner's server name, type, image and location. */
    hcloud?: { serverName: string; serverType: string; image: string; location: string };
    /** target existing: the host Citadel connects to (its host key is pinned). */
    existing?: { address: string; port: number };
    /** The user-data a new server boots with (changing it replaces an hcloud server). */
    userDataSha256: string;
}

/** citadel:backup as declared: what is backed up, when, to whom it is readable, where, how long. */
export interface BackupPosture {
    enabled: boolean;
    /** systemd OnCalendar and RandomizedDelaySec of the timer. */
    schedule: string;
    randomizedDelay: string;
    /** Public keys the backups are encrypted to (age -R); the server holds no key that decrypts them. */
    recipients: string[];
    /** What each run streams through age (never a plaintext file on disk). */
    sources: string[];
    /** The target without credentials; `credentials` names the secret keys it reads (never values). */
    target?: { kind: "sftp"; url: string; host: string; port: number; user: string; path: string; hostKey: string; credentials: string[] };
    retention: { daily: number; weekly: number; monthly: number; days: number };
    service: string;
    timer: string;
    program: string;
    statusFile: string;
    /** The audit's limit for the age of the last good backup. */
    maxAgeHours: number;
    /** Whether the server's own credentials can delete what retention keeps, and what protects it then. */
    immutability: string;
}

export interface Posture {
    /** Bumped when the shape changes, so the review can refuse to compare across shapes. */
    version: 1;
    target: "hcloud" | "existing";
    server: ServerPosture;
    domain: string;
    adminUser: string;
    exposure: ExposurePosture;
    hostSteps: HostStepPosture[];
    containers: ContainerPosture[];
    networks: NetworkPosture[];
    volumes: string[];
    secrets: SecretPosture[];
    secretFiles: SecretFilePosture[];
    sites: SitePosture[];
    intrusion: IntrusionPosture;
    host: HostBaselinePosture;
    backup: BackupPosture;
    monitoring: MonitoringPosture;
}
