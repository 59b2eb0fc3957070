// The facts every layer shares, each defined once: ports, container and network names, where secrets
// live, the uids that read them. The renderers, the components, the audit and the review import them
// from here; no other TypeScript file of the product writes one of these values as a literal.
// Pure: no Pulumi, no config.

// ---- Ports ---------------------------------------------------------------------------------
/** sshd on the host (the local VPS maps another host port to it; inside it is 22). */
export const SSH_PORT = 22;
export const HTTP_PORT = 80;
export const HTTPS_PORT = 443;
/** The only ports published to the Internet: the gateway (Caddy) on HTTP and HTTPS. */
export const GATEWAY_PORTS = [HTTP_PORT, HTTPS_PORT] as const;
/**
 * sshd confirm-or-revert: the sshd step arms a one-shot systemd timer (this unit) before it reloads
 * sshd; it puts the previous drop-in back unless a NEW SSH connection (the sshd-confirm step) disarms
 * it within `citadel:ssh.rollbackSeconds`.
 */
export const SSHD_ROLLBACK_UNIT = "citadel-sshd-rollback";
/** Root-only: the previous drop-in the rollback restores, its program, and what it last did. */
export const SSHD_ROLLBACK_DIR = "/var/lib/citadel/sshd-rollback";
/**
 * UFW's SSH `limit` (SSH open to the world) would close a deploy's own parallel SSH dials (the Docker
 * provider opens one per resource, without retry). A source that has just opened an SSH session, which
 * takes a valid key (passwords are off), is exempt for a while: a PAM session hook (this program) puts
 * its address in this kernel `recent` list, and a rule ahead of the limit accepts new SSH connections
 * from the sources in it. Strangers never get a session, so they stay limited.
 */
export const SSH_KEYED_LIST = "citadel-ssh-keyed";
/**
 * How long after its last session a key-authenticated source stays exempt: a day, so that the next
 * day's deploy (whose first SSH traffic may be a burst of Docker dials) still finds its address there.
 * It lifts the connection rate limit only: keys, MaxAuthTries, MaxStartups and the bans still apply.
 */
export const SSH_KEYED_SECONDS = 86400;
/**
 * The prefix length an IPv6 source is counted, rate-limited and banned by. A host (or an attacker)
 * usually holds a whole /64 and may use any of its 2^64 addresses: counted per /128, each new address
 * would start afresh, and a ban of one address would be walked around with the next.
 */
export const IPV6_SOURCE_PREFIX = 64;
/** IPv6's copy of the DOCKER-USER policy, in ip6tables' mangle table (render/firewall.ts says why). */
export const FORWARD6_CHAIN = "CITADEL-FORWARD6";
/**
 * IPv6 to the sites (citadel:host.docker.ipv6): Citadel's own DNAT of the host's GATEWAY_PORTS to the
 * gateway's fixed IPv6 address, in this chain of ip6tables' nat table (after6.rules declares it,
 * after.init hooks it into PREROUTING). Docker's own IPv6 NAT (ip6tables) is not used: it needs
 * `experimental` on Debian 12's 20.10, and with a port published on "::" as well as "0.0.0.0" the
 * Docker provider re-created the gateway at about every other `pulumi up` (README, citadel:host.docker.ipv6).
 */
export const PUBLIC6_NAT_CHAIN = "CITADEL-PUBLIC6";
/** The kernel switch that DNAT needs to reach the gateway (Docker turns it on for a dual-stack network). */
export const IPV6_FORWARD_KEY = "net.ipv6.conf.all.forwarding";
/** UFW's hook run after each load of its rules; Citadel's block in it puts the ban rules back. */
export const AFTER_INIT_PATH = "/etc/ufw/after.init";
/** The kernel `recent` list that counts new SSH connections per IPv6 /64 while SSH is limited. */
export const SSH_NET6_LIST = "citadel-ssh-net6";
/** Root-only record of the exempt sources (one empty file per address, its mtime the last session): UFW's after.init puts them back into the kernel list after a boot or a reload. */
export const SSH_KEYED_STATE_DIR = "/var/lib/citadel/ssh-keyed";
/** The PAM session hook (pam_exec, as root) that adds the session's source to SSH_KEYED_LIST. */
export const SSH_KEYED_HOOK = "/usr/local/sbin/citadel-ssh-keyed";
/**
 * The Debian packages each host step installs, in the order it installs them: each inner list is one
 * `ensure_packages` call (CrowdSec's bouncer registers itself in its postinst, so CrowdSec comes
 * first). The steps' scripts and the bench's host floor (lab/host-floor.ts) read them.
 */
export const STEP_PACKAGES = {
    firewall: [["ufw", "iptables"]],
    "unattended-upgrades": [["unattended-upgrades", "needrestart"]],
    // apparmor: without apparmor_parser dockerd runs containers with no AppArmor profile at all.
    // ca-certificates: TLS to registries. Both are only Recommends of docker.io, not installed.
    docker: [["docker.io", "apparmor", "ca-certificates"]],
    // sqlite3: sets the bouncer's key hash in the local API's database, where cscli wants it in argv.
    crowdsec: [["crowdsec"], ["crowdsec-firewall-bouncer", "ipset"], ["sqlite3"]],
    fail2ban: [["fail2ban", "python3-systemd"]],
    "postgres-config": [["openssl"]],
    backup: [["age", "rclone", "jq"]],
    auditd: [["auditd"]],
} as const satisfies Record<string, readonly (readonly string[])[]>;
/**
 * apt's package lists are not refreshed by every step: a step that finds them refreshed by Citadel
 * within this many minutes (and no apt source changed since) installs from them, and refreshes and
 * retries once if that install fails for want of a package or an archive (a mirror moved on). The
 * stamp is written after each refresh whose lists all downloaded.
 */
export const APT_LISTS = { stamp: "/var/lib/citadel/apt-lists.refreshed", maxAgeMinutes: 30 } as const;
/** A step's packages as the script and the model carry them (plain, mutable lists). */
export const stepPackages = (step: keyof typeof STEP_PACKAGES): string[][] => STEP_PACKAGES[step].map((g) => [...g]);
/** The os-baseline step's packages, each installed when its `citadel:host.os` knob is on. */
export const OS_BASELINE_PACKAGES = { pamTmpdir: "libpam-tmpdir", packageVerification: "debsums" } as const;
/** Caddy's admin API port: only ever on the gateway container's own loopback, never reachable. */
export const CADDY_ADMIN_PORT = 2019;
/** The gateway's healthcheck endpoint port: loopback inside its network namespace, never published. */
export const GATEWAY_HEALTH_PORT = 8079;
/** "Anywhere", as the cloud firewall and the outputs spell it. */
export const ANYWHERE = ["0.0.0.0/0", "::/0"] as const;

// ---- Containers ----------------------------------------------------------------------------
export const GATEWAY_CONTAINER = "citadel-gateway";
/** Also their DNS names on each app's data network (the apps connect to `postgres` and `redis`). */
export const POSTGRES_CONTAINER = "postgres";
export const REDIS_CONTAINER = "redis";
/** An app's container name; its DNS alias on its edge network is the app name itself. */
export const appContainerName = (app: string): string => `app-${app}`;

/** The host step that builds the gateway image on the host (citadel:gateway.build). */
export const GATEWAY_IMAGE_STEP = "gateway-image";
/** The label a built gateway image carries: the hash of its build inputs (context and arguments). */
export const GATEWAY_BUILD_LABEL = "org.citadel.build-sha256";
/** The longest a gateway build may take (a cold Go build of Caddy is about 2 minutes on 2 vCPUs). */
export const GATEWAY_BUILD_TIMEOUT_SECONDS = 1800;

/** uid/gid Caddy runs as in images/caddy/Dockerfile (owns the access-log directory on the host). */
export const GATEWAY_UID = 10001;
/** uid and gid of the server user in the official postgres and redis images. */
export const DATA_UID = 999;
/** The uid of host daemons' secret files (CrowdSec's bouncer key). */
export const ROOT_UID = 0;

// ---- Networks ------------------------------------------------------------------------------
/** The gateway's network: the published GATEWAY_PORTS and egress for ACME. */
export const PUBLIC_NETWORK = "citadel-public";
/**
 * The public network's IPv6 subnet (citadel:host.docker.ipv6): a unique local /64, never routed
 * outside the host. Citadel's DNAT (PUBLIC6_NAT_CHAIN) sends the host's GATEWAY_PORTS to the gateway's
 * address in it; the client's own address is kept (no proxy), as Docker's IPv4 NAT keeps it.
 */
export const PUBLIC_NETWORK_IPV6_SUBNET = "fd17:c1ad:e1::/64";
/**
 * Where Docker may pick IPv6 addresses in it (65536 of them), so nothing else can take the gateway's.
 * Not the upper half of the /64: Docker 20.10's allocator refuses a range that ends at the subnet's
 * last address ("invalid bit range", measured in the lab).
 */
export const PUBLIC_NETWORK_IPV6_DYNAMIC_RANGE = "fd17:c1ad:e1::1:0/112";
/** The gateway's fixed IPv6 address: what PUBLIC6_NAT_CHAIN's DNAT sends the host's GATEWAY_PORTS to. */
export const GATEWAY_IPV6 = "fd17:c1ad:e1::10";
/**
 * Its IPv4 subnet when it is dual-stack: declared too, because Docker lists the IPv4 subnet it would
 * pick by itself among the network's IPAM configs, and the provider (ipam_config: computed, force
 * new) would then re-create the network, and the gateway with it, at every `pulumi up`.
 */
export const PUBLIC_NETWORK_SUBNET = "172.29.249.0/24";
/** The bridges' addresses on the host, declared for the same reason (a gateway read back is a change too). */
export const PUBLIC_NETWORK_GATEWAY = "172.29.249.1";
export const PUBLIC_NETWORK_IPV6_GATEWAY = "fd17:c1ad:e1::1";
/** Where a published port listens: every IPv4 address (IPv6 reaches the gateway through PUBLIC6_NAT_CHAIN). */
export const ALL_IPV4 = "0.0.0.0";
/** One internal network per app, shared only with the gateway. */
export const edgeNetworkName = (app: string): string => `citadel-edge-${app}`;
/**
 * One internal network per app with `data: true`, shared only with Postgres and Redis (which join
 * every one of them, under their names): two apps never share a network, so neither can open a
 * connection to the other. Internal: no route out.
 */
export const DATA_NETWORK_PREFIX = "citadel-data-";
export const dataNetworkName = (app: string): string => `${DATA_NETWORK_PREFIX}${app}`;
/**
 * Outbound Internet for apps that opt in. Inter-container traffic is off on its bridge
 * (EGRESS_NETWORK_OPTIONS): the apps on it share a way out, not a way to each other.
 */
export const EGRESS_NETWORK = "citadel-egress";
/** Docker's bridge option that drops traffic between two containers on the same bridge. */
export const NO_ICC_OPTION = "com.docker.network.bridge.enable_icc";

// ---- Volumes -------------------------------------------------------------------------------
export const CADDY_DATA_VOLUME = "citadel-caddy-data";
export const CADDY_CONFIG_VOLUME = "citadel-caddy-config";
export const POSTGRES_DATA_VOLUME = "citadel-postgres-data";
export const REDIS_DATA_VOLUME = "citadel-redis-data";

// ---- Secrets -------------------------------------------------------------------------------
/** Root-only (0700) tree of secret files on the host: one directory per reader. */
export const SECRETS_DIR = "/etc/citadel/secrets";
/** Who reads the host daemons' secrets (the directory name under SECRETS_DIR). */
export const HOST_CONSUMER = "host";
/** Where a container finds its secret files (bind mounts, read-only). */
export const SECRETS_MOUNT = "/run/secrets";
/** Mode of every secret file: readable by its one owner only. */
export const SECRET_FILE_MODE = "0400";

/**
 * The secrets Citadel generates for itself, each named once: what kind of value, which rotation period
 * (citadel:secrets.rotationDays.<rotation>), when the stack needs it, and whether apps may list it
 * (citadel:apps[].secrets) or it is Citadel's own. Declared API keys (citadel:secrets.apiKeys) come
 * after these. The config's checks, the posture's secret specs and `citadel rotate` read this table.
 */
export const GENERATED_SECRETS = [
    { name: "jwtSecret", kind: "key512", rotation: "jwtSecret", needs: "always", apps: true },
    { name: "apiEncryptionKey", kind: "key256", rotation: "apiEncryptionKey", needs: "always", apps: true },
    // The superuser rotates with the apps' roles (the same period): the postgres-roles step sets them all.
    { name: "postgresSuperuserPassword", kind: "password", rotation: "postgresPassword", needs: "postgres", apps: false },
    // perApp: every app that lists it gets a value of its own (its own Postgres role, its own Redis user).
    { name: "postgresPassword", kind: "password", rotation: "postgresPassword", needs: "postgres", apps: true, perApp: true },
    { name: "redisPassword", kind: "password", rotation: "redisPassword", needs: "redis", apps: true, perApp: true },
    { name: "crowdsecBouncerKey", kind: "password", rotation: "crowdsecBouncerKey", needs: "crowdsec", apps: false },
] as const;
export type GeneratedSecret = (typeof GENERATED_SECRETS)[number];

/** The generated secrets each app gets its own value of: postgresPassword, redisPassword. */
export const PER_APP_SECRETS: readonly string[] = GENERATED_SECRETS.filter((s) => "perApp" in s && s.perApp).map((s) => s.name);
/**
 * The name of the value an app's secret file carries: its own for a per-app secret
 * (postgresPassword → postgresPassword-<app>), the stack's one otherwise. The file an app reads keeps
 * the plain name (POSTGRES_PASSWORD_FILE).
 */
export const appSecretValue = (secret: string, app: string): string => (PER_APP_SECRETS.includes(secret) ? `${secret}-${app}` : secret);

/**
 * An app's own identities on the data services: its Postgres role and database, its Redis ACL user
 * and the key (and channel) prefix that user is confined to. All are the app's name, so the config
 * has one name to review. These names are Postgres's and Redis's own and are refused as data app names.
 */
export const postgresRoleOf = (app: string): string => app;
export const postgresDatabaseOf = (app: string): string => app;
export const redisUserOf = (app: string): string => app;
export const redisKeyPrefixOf = (app: string): string => `${app}:`;
/** An app has its own Postgres role (and database) when it is on a data network and lists postgresPassword. */
export const postgresClient = (c: { postgres: { enabled: boolean } }, app: { data: boolean; secrets: readonly string[] }): boolean => app.data && c.postgres.enabled && app.secrets.includes("postgresPassword");
/** The apps with their own Postgres role: the roles step, pg_hba, the connection shares and the config check read this list. */
export const postgresClientApps = <A extends { data: boolean; secrets: readonly string[] }>(c: { postgres: { enabled: boolean }; apps: readonly A[] }): A[] => c.apps.filter((a) => postgresClient(c, a));
/** ... and its own Redis user when it lists redisPassword. */
export const redisClient = (c: { redis: { enabled: boolean } }, app: { data: boolean; secrets: readonly string[] }): boolean => app.data && c.redis.enabled && app.secrets.includes("redisPassword");
export const DATA_RESERVED_NAMES = ["postgres", "public", "none", "template0", "template1", "all", "sameuser", "samerole", "samegroup", "replication", "default"];

/** Derived secret files an app gets beside jwtSecret: the previous generation (JWT_SECRET_PREVIOUS_FILE). */
export const JWT_SECRET_PREVIOUS = "jwtSecretPrevious";
/** ... and beside apiEncryptionKey: the keyring JSON {current, keys: {id: base64}} (API_ENCRYPTION_KEYRING_FILE). */
export const API_ENCRYPTION_KEYRING = "apiEncryptionKeyring";
/** Which derived files come with a listed secret. */
export const COMPANION_SECRETS: Readonly<Record<string, readonly string[]>> = { jwtSecret: [JWT_SECRET_PREVIOUS], apiEncryptionKey: [API_ENCRYPTION_KEYRING] };

/**
 * Where a data app finds the Postgres server's certificate (self-signed, CN "postgres"), to verify the
 * server with (PGSSLROOTCERT, sslmode=verify-full). Not a secret: a read-only bind of the host's copy.
 */
export const POSTGRES_CA_CONTAINER_PATH = "/run/citadel/postgres-server.crt";

export function secretFilePath(consumer: string, name: string): string {
    return `${SECRETS_DIR}/${consumer}/${name}`;
}

export function secretMountPath(name: string): string {
    return `${SECRETS_MOUNT}/${name}`;
}

/** jwtSecret → JWT_SECRET_FILE: the `*_FILE` convention apps read their secrets by. */
export function secretEnvName(secret: string): string {
    return secret.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase() + "_FILE";
}

// ---- Logs ----------------------------------------------------------------------------------
/** Caddy's access logs: host directory (CrowdSec reads it) bind-mounted at the container directory. */
export const CADDY_LOG_DIR_HOST = "/var/log/citadel/caddy";
export const CADDY_LOG_DIR_CONTAINER = "/var/log/caddy";
export const CADDY_ACCESS_LOG_NAME = "access.log";
export const CADDY_ACCESS_LOG_HOST = `${CADDY_LOG_DIR_HOST}/${CADDY_ACCESS_LOG_NAME}`;

// ---- Backups -------------------------------------------------------------------------------
/** The systemd units that run the backup (a oneshot service and its timer). */
export const BACKUP_SERVICE = "citadel-backup.service";
export const BACKUP_TIMER = "citadel-backup.timer";
/** The backup program on the host (rendered from templates/backup/citadel-backup.sh.hbs). */
export const BACKUP_PROGRAM = "/usr/local/sbin/citadel-backup";
/** Non-secret backup configuration: the recipients (public keys), rclone.conf, the target's pinned host key. */
export const BACKUP_CONF_DIR = "/etc/citadel/backup";
/** The backup runs' state; status.json is what the audit (in-backup) and the operator read. */
export const BACKUP_STATE_DIR = "/var/lib/citadel/backup";
export const BACKUP_STATUS_PATH = `${BACKUP_STATE_DIR}/status.json`;
/** Who reads the backup target's credentials (the directory name under SECRETS_DIR): the root service. */
export const BACKUP_CONSUMER = "backup";
/** The audit fails when the last good backup is older than this (a daily run plus its randomized delay). */
export const BACKUP_MAX_AGE_HOURS = 26;
/** rclone's configuration of the target on the host: the backup program and `citadel restore` read it. */
export const BACKUP_RCLONE_CONF = `${BACKUP_CONF_DIR}/rclone.conf`;
/** The target's pinned host key, as rclone's known_hosts_file. */
export const BACKUP_KNOWN_HOSTS = `${BACKUP_CONF_DIR}/known_hosts`;
/** The SFTP target's private key: its name in citadel:backup.target and as a secret file of BACKUP_CONSUMER. */
export const BACKUP_SSH_KEY = "sshKey";
export const BACKUP_SSH_KEY_PATH = secretFilePath(BACKUP_CONSUMER, BACKUP_SSH_KEY);
/** The rclone remote name the backup program and the restore use (in BACKUP_RCLONE_CONF). */
export const BACKUP_REMOTE = "target";
/** The marker object that makes a backup complete (written last; it lists the objects and their sha256). */
export const BACKUP_MANIFEST = "manifest.json";
// ---- Monitoring ----------------------------------------------------------------------------
/** Prometheus, Alertmanager and the exporters meet on this internal network (no route out). */
export const MONITORING_NETWORK = "citadel-monitoring";
export const PROMETHEUS_CONTAINER = "citadel-prometheus";
export const ALERTMANAGER_CONTAINER = "citadel-alertmanager";
export const NODE_EXPORTER_CONTAINER = "citadel-node-exporter";
export const BLACKBOX_CONTAINER = "citadel-blackbox";
export const PROMETHEUS_PORT = 9090;
export const ALERTMANAGER_PORT = 9093;
export const NODE_EXPORTER_PORT = 9100;
export const BLACKBOX_PORT = 9115;
/** CrowdSec's own Prometheus endpoint (its default port). */
export const CROWDSEC_METRICS_PORT = 6060;
/** A metrics-only Caddy listener for Prometheus (the admin API stays on the gateway's loopback). */
export const GATEWAY_METRICS_PORT = 9180;
/** uid/gid the official Prometheus images run as ("nobody"); the local images use the same. */
export const MONITORING_UID = 65534;
/** The node exporter's textfile collector directory on the host (drift, updates, reboot, restarts). */
export const METRICS_TEXTFILE_DIR = "/var/lib/citadel/metrics";

/** Metric names Citadel's own host scripts write (textfile collector), each defined once. */
export const METRIC = {
    /** 1 when the drift check (label `check`, an audit id) passed at the last run, 0 when it drifted. */
    driftCheckOk: "citadel_drift_check_ok",
    /** When the in-host drift audit last finished. */
    driftLastRun: "citadel_drift_last_run_timestamp_seconds",
    /** Since when security updates have been pending (present only while some are). */
    securityUpdatesPendingSince: "citadel_security_updates_pending_since_timestamp_seconds",
    /** Number of pending security updates. */
    securityUpdatesPending: "citadel_security_updates_pending",
    /** Since when /run/reboot-required exists (present only while it does). */
    rebootRequiredSince: "citadel_reboot_required_since_timestamp_seconds",
    /** Docker's restart count per container (label `container`). */
    containerRestarts: "citadel_container_restarts_total",
    /** When the last good backup finished (0: none yet), written by every backup run. */
    backupLastSuccess: "citadel_backup_last_success_timestamp_seconds",
    /** 1 when the last backup run succeeded, 0 when it failed. */
    backupLastRunOk: "citadel_backup_last_run_success",
} as const;
/** The backup run's metrics (textfile collector), beside the drift and update metrics. */
export const BACKUP_METRICS_FILE = `${METRICS_TEXTFILE_DIR}/citadel-backup.prom`;
/**
 * The monitoring network's fixed subnet and bridge: Prometheus reaches the host's CrowdSec on the
 * bridge's address (the host side), and UFW allows exactly that port on exactly that interface.
 */
export const MONITORING_SUBNET = "172.29.250.0/24";
/**
 * Docker hands out addresses from this upper half only, so the fixed ones below never meet a taken
 * address (the bridge's own address is set to MONITORING_HOST_IP explicitly: with a range, Docker
 * would take the range's first address).
 */
export const MONITORING_DYNAMIC_RANGE = "172.29.250.128/25";
// "br-" like Docker's own bridge names: DOCKER-USER treats br-+ as inside (container to container),
// so Prometheus reaches Alertmanager and the exporters on it (15 characters at most: an interface name).
export const MONITORING_BRIDGE = "br-citadel-mon";
export const MONITORING_HOST_IP = "172.29.250.1";
/** The gateway's fixed address on the monitoring network: its metrics listener binds only there. */
export const MONITORING_GATEWAY_IP = "172.29.250.10";
/** Fixed addresses on the monitoring network: the SSH tunnel's PermitOpen names exactly these. */
export const MONITORING_PROMETHEUS_IP = "172.29.250.2";
export const MONITORING_ALERTMANAGER_IP = "172.29.250.3";
export const PROMETHEUS_DATA_VOLUME = "citadel-prometheus-data";
export const ALERTMANAGER_DATA_VOLUME = "citadel-alertmanager-data";
/** Prometheus' files on the host (prometheus.yml, the rules, blackbox.yml), mounted read-only. */
export const MONITORING_CONF_HOST_DIR = "/etc/citadel/monitoring";
/** The UIs: fixed addresses on the monitoring network, never published; sshd lets the admin forward to exactly these. */
export const PROMETHEUS_UI = `${MONITORING_PROMETHEUS_IP}:${PROMETHEUS_PORT}`;
export const ALERTMANAGER_UI = `${MONITORING_ALERTMANAGER_IP}:${ALERTMANAGER_PORT}`;
export const MONITORING_UIS = [PROMETHEUS_UI, ALERTMANAGER_UI];
