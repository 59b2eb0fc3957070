// The host steps, in the order `pulumi up` runs them, each with what it waits for. The components
// create exactly these steps with exactly these dependencies; `npm run render` writes them; the
// shellcheck test checks every one of them.
import type { StackConfig } from "../config";
import { renderBackup } from "../render/backup";
import { renderGatewayScript } from "../render/caddy";
import { renderGatewayImageScript } from "../render/gateway-image";
import { postgresApps, renderPostgresRolesScript, renderPostgresScript, renderRedisScript } from "../render/data";
import { dataNetworkName } from "./facts";
import { renderFirewall } from "../render/firewall";
import { exposurePosture } from "./exposure";
import { renderHostBaseline } from "../render/host";
import { renderIntrusion } from "../render/intrusion";
import { renderMonitoringScript } from "../render/monitoring";
import { MONITORING_NETWORK, PROMETHEUS_CONTAINER } from "./facts";
import { renderContainerLimits } from "../render/limits";
import { secretFileScript } from "../render/secret-file";
import { renderSshd, renderSshdConfirm, sshdExpectedEffective } from "../render/sshd";
import type { HostScript } from "../render/types";
import { BACKUP_CONSUMER } from "./facts";
import type { ContainerPosture, HostStepPosture, SecretFilePosture, StepLayer } from "./types";

/** How each rendered step checks its files with the real consumer before it switches. */
const VALIDATION: Record<string, string> = {
    firewall: "refuses unless this SSH session stays allowed; ufw --dry-run and iptables-restore --test before any change; SSH rules added first",
    sshd: "refuses unless the admin has a key; sshd -t and sshd -T on the staged drop-in before reload; rollback on failure; a rollback timer armed before the reload restores the previous drop-in unless sshd-confirm disarms it",
    "sshd-confirm": "a new SSH connection opened after the reload (login, sudo) disarms the rollback; fails if the host already rolled back",
    sysctl: "sysctl --load of the file; every value read back (values a container cannot set are reported, not applied)",
    "unattended-upgrades": "apt-config parses the staged files before they are installed (all or nothing)",
    journald: "systemd-journald restarted with the new file; the previous one restored if it does not come back",
    "os-baseline": "modprobe --show-depends reads the staged module file (each module resolves to /bin/false) before it is installed; every file written atomically",
    auditd: "the unit's container condition installed before the package (its postinst starts auditd); augenrules --load, then every watch read back from auditctl -l; in a container the rules are installed, not loaded (the kernel's audit is the host's)",
    docker: "dockerd --validate where available, else a restart with rollback of daemon.json; docker.service enabled for boot",
    intrusion: "crowdsec -t / bouncer -t (or fail2ban-client -t) on a staged copy before switching",
    "gateway-image": "docker build of exactly the embedded images/caddy files, bounded in time (the Dockerfile's own build checks the rate-limit module is in); the tag must carry the inputs' hash afterwards; skipped when it already does",
    "gateway-config": "caddy validate with the image's own Caddy in a throw-away container without network",
    "postgres-config": "a throw-away Postgres boots with the staged files (TLS only, scram-sha-256) before they are installed",
    "postgres-roles": "every password file is read by bash and checked for the generated alphabet before psql sees any; waits until the server answers on its socket; ON_ERROR_STOP",
    "redis-config": "a throw-away Redis loads the staged redis.conf and ACL before they are installed",
    "container-limits": "the live limit is read from docker inspect first; docker update only where it differs",
    backup: "age reads the recipients, systemd-analyze the calendar (at least daily) and the units, rclone reaches the target with the pinned host key and the key file, before any file is installed",
    "monitoring-config": "promtool check config (and the rules it loads) with the Prometheus image's own promtool in a throw-away container without network; the metrics writer runs once before its timer is enabled",
};

export const imageRef = (container: string): string => `image:${container}`;
export const containerRef = (container: string): string => `container:${container}`;
export const networkRef = (network: string): string => `network:${network}`;

function scriptStep(s: HostScript, layer: StepLayer, after: string[], extra: Partial<HostStepPosture> = {}): HostStepPosture {
    return { name: s.name, layer, description: s.description, kind: "script", script: s.script, files: s.files, ...(s.sources ? { sources: s.sources } : {}), ...(s.packages ? { packages: s.packages } : {}), ...(s.dialTries ? { dialTries: s.dialTries } : {}), after, validation: VALIDATION[s.name] ?? "", ...extra };
}

function secretStep(f: SecretFilePosture, after: string[]): HostStepPosture {
    return {
        name: f.step,
        layer: "secrets",
        description: `secret file ${f.path} (${f.mode}, owner uid ${f.ownerUid}) for ${f.readers.join(", ")}, written from stdin`,
        kind: "secret-file",
        script: secretFileScript(f.consumer, f.name, f.ownerUid, f.reloadOnChange),
        files: [],
        after,
        validation: "staged in a temporary file in the same root-only directory (owner and mode set first); a new file is renamed into place, an existing one rewritten in place only when its content differs (running readers keep their bind mount)",
        secretFile: f.path,
    };
}

/**
 * The steps in run order. The chain firewall → sshd → baseline → intrusion can never lock the
 * operator out (SSH is allowed before UFW is enabled; sshd validates before reload); the container
 * layers start once Docker and intrusion detection are up.
 */
export function hostStepsPosture(c: StackConfig, containers: ContainerPosture[], secretFiles: SecretFilePosture[]): HostStepPosture[] {
    const steps: HostStepPosture[] = [];
    const add = (s: HostStepPosture) => {
        steps.push(s);
        return s.name;
    };
    const firewall = add(scriptStep(renderFirewall(c), "firewall", []));
    const sshdScript = renderSshd(c);
    const sshd = add(scriptStep(sshdScript, "baseline", [firewall]));
    // Its own remote command, so its own new SSH connection: the proof the reloaded sshd lets us in.
    let previous = add(scriptStep(renderSshdConfirm(c, sshdScript), "baseline", [sshd]));
    // One chain: each installs packages, and dpkg's lock is one at a time anyway.
    for (const s of renderHostBaseline(c)) previous = add(scriptStep(s, "baseline", [previous]));
    // Its last step (auditd) runs after Docker's: waiting for it is waiting for the whole baseline.
    const baseline = previous;

    const hostSecrets = secretFiles.filter((f) => f.consumer === "host").map((f) => add(secretStep(f, [baseline])));
    const intrusion = add(scriptStep(renderIntrusion(c), "intrusion", [baseline, ...hostSecrets]));
    // Everything that runs containers waits for the baseline (Docker included) and for intrusion detection to be up.
    const ready = [baseline, intrusion];
    for (const f of secretFiles.filter((x) => x.consumer !== "host")) add(secretStep(f, ready));

    // Images wait until Docker and intrusion detection are up; a container waits for its own config
    // step and secret files; the gateway also for the apps it sends traffic to.
    for (const x of containers) {
        x.imageAfter = [...ready];
        x.after = [...ready, ...secretFiles.filter((f) => f.readers.includes(x.name)).map((f) => f.step)];
    }
    const byRole = (role: ContainerPosture["role"]) => containers.find((x) => x.role === role);
    const postgres = byRole("postgres");
    if (postgres) postgres.after.push(add(scriptStep(renderPostgresScript(c, postgres.image), "data", [...ready, imageRef(postgres.name)])));
    const redis = byRole("redis");
    if (redis) redis.after.push(add(scriptStep(renderRedisScript(c, redis.image), "data", [...ready, imageRef(redis.name)])));
    // Rotation order: new secret files → the apps' roles and the database's passwords set from them
    // (postgres-roles) and Redis re-created with its new ACL → only then the apps that use them are
    // (re)started.
    const dataApps = containers.filter((x) => x.role === "app" && x.networks.some((n) => n.network === dataNetworkName(x.app ?? "")));
    if (postgres) {
        // The superuser's file, and each app's own password file the step sets its role from.
        const appFiles = new Set(postgresApps(c).map((a) => a.passwordFile));
        const files = secretFiles.filter((f) => f.readers.includes(postgres.name) || appFiles.has(f.path)).map((f) => f.step);
        const roles = add(scriptStep(renderPostgresRolesScript(c), "credentials", [containerRef(postgres.name), ...files]));
        for (const app of dataApps) app.after.push(roles);
    }
    if (redis) for (const app of dataApps) app.after.push(containerRef(redis.name));
    const gateway = byRole("gateway");
    if (gateway) {
        // Built on the host before the image resource reads it (that resource waits for this step).
        if (gateway.build) gateway.imageAfter.push(add(scriptStep(renderGatewayImageScript(c, gateway.image), "gateway", [...ready])));
        gateway.after.push(add(scriptStep(renderGatewayScript(c, gateway.image), "gateway", [imageRef(gateway.name)])));
        gateway.after.push(...containers.filter((x) => x.role === "app").map((x) => containerRef(x.name)));
    }

    // Backups: once the data services run and the target's key file is written.
    const backup = renderBackup(c);
    if (backup) {
        const keyFiles = secretFiles.filter((f) => f.consumer === BACKUP_CONSUMER).map((f) => f.step);
        const data = containers.filter((x) => x.role === "postgres" || x.role === "redis").map((x) => containerRef(x.name));
        add(scriptStep(backup, "backup", [...ready, ...keyFiles, ...data]));
    }

    // Monitoring: its config step needs the Prometheus image (promtool) and the monitoring network
    // (CrowdSec binds the bridge's address); Prometheus, the exporters wait for their files.
    const prometheus = containers.find((x) => x.name === PROMETHEUS_CONTAINER);
    if (prometheus) {
        const declared = {
            ufwRules: exposurePosture(c).ufw.rules,
            sshdExpected: sshdExpectedEffective(c),
            containers: containers.map((x) => x.name),
            secretFiles: secretFiles.map((f) => ({ path: f.path, ownerUid: f.ownerUid })),
        };
        const step = add(scriptStep(renderMonitoringScript(c, prometheus.image, declared), "monitoring", [...ready, imageRef(prometheus.name), networkRef(MONITORING_NETWORK)]));
        for (const x of containers.filter((y) => y.role === "monitoring" && y.secretMounts.length === 0)) x.after.push(step);
    }

    // The Docker provider cannot set a pids limit; this step does, and re-runs whenever a container
    // is re-created (their ids are triggers).
    add(
        scriptStep(
            renderContainerLimits(containers.map((x) => ({ name: x.name, pids: x.pids }))),
            "limits",
            containers.map((x) => containerRef(x.name)),
            { rerunWith: containers.map((x) => x.name) },
        ),
    );
    return steps;
}
