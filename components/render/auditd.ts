// auditd watching the Docker daemon, its configuration and its binaries: the CIS Docker Benchmark's
// host audit rules (1.1.3–1.1.18), on the paths Debian 12's docker.io, containerd and runc use.
import type { StackConfig } from "../config";
import { stepPackages } from "../posture/facts";
import { renderTemplate, hostLib } from "./template";
import type { HostFile, HostScript } from "./types";

export const AUDIT_RULES_PATH = "/etc/audit/rules.d/citadel-docker.rules";
/** Keeps auditd from starting in a container, where the kernel's audit belongs to the host. */
export const AUDITD_DROPIN = "/etc/systemd/system/auditd.service.d/10-citadel.conf";
/** Loads the rules again once containerd runs (at boot auditd loads them before /run/containerd exists). */
export const CONTAINERD_DROPIN = "/etc/systemd/system/containerd.service.d/10-citadel-audit.conf";
/** The key every Citadel rule carries (`ausearch -k citadel-docker`). */
export const AUDIT_KEY = "citadel-docker";

/**
 * One watch per CIS item. Binaries: writes, executions and attribute changes (`wxa`; reads would log
 * every checksum run). Directories and configuration: writes and attribute changes (`wa`; a
 * directory watch covers its whole tree, and reads of /var/lib/docker are every container's I/O).
 * 1.1.13 (/etc/sysconfig/docker) is Red Hat's file: Debian's is /etc/default/docker (1.1.10).
 * The two under /run come last: at boot auditd loads the rules before containerd has made
 * /run/containerd, and a watch whose directory is missing fails and stops the lines after it
 * (containerd's drop-in loads them all again once it runs).
 */
export const DOCKER_AUDIT_WATCHES: { cis: string; path: string; perms: "wxa" | "wa" }[] = [
    { cis: "1.1.3", path: "/usr/sbin/dockerd", perms: "wxa" },
    { cis: "1.1.5", path: "/var/lib/docker", perms: "wa" },
    { cis: "1.1.6", path: "/etc/docker", perms: "wa" },
    { cis: "1.1.7", path: "/lib/systemd/system/docker.service", perms: "wa" },
    { cis: "1.1.9", path: "/lib/systemd/system/docker.socket", perms: "wa" },
    { cis: "1.1.10", path: "/etc/default/docker", perms: "wa" },
    { cis: "1.1.11", path: "/etc/docker/daemon.json", perms: "wa" },
    { cis: "1.1.12", path: "/etc/containerd/config.toml", perms: "wa" },
    { cis: "1.1.14", path: "/usr/bin/containerd", perms: "wxa" },
    { cis: "1.1.15", path: "/usr/bin/containerd-shim", perms: "wxa" },
    { cis: "1.1.16", path: "/usr/bin/containerd-shim-runc-v1", perms: "wxa" },
    { cis: "1.1.17", path: "/usr/bin/containerd-shim-runc-v2", perms: "wxa" },
    { cis: "1.1.18", path: "/usr/sbin/runc", perms: "wxa" },
    { cis: "1.1.4", path: "/run/containerd", perms: "wa" },
    { cis: "1.1.8", path: "/run/containerd/containerd.sock", perms: "wa" },
];

/** A watch as `auditctl -l` prints it back (so the step and the audit compare it verbatim). */
export const auditWatchLine = (w: (typeof DOCKER_AUDIT_WATCHES)[number]): string => `-w ${w.path} -p ${w.perms} -k ${AUDIT_KEY}`;

export function renderDockerAuditRules(): string {
    return [
        "## Citadel: the Docker daemon, its configuration and binaries (CIS Docker Benchmark 1.1.3-1.1.18).",
        "## Loaded by augenrules with the other files of this directory; search with: ausearch -k " + AUDIT_KEY,
        ...DOCKER_AUDIT_WATCHES.map((w) => `# CIS ${w.cis}\n${auditWatchLine(w)}`),
        "",
    ].join("\n");
}

const AUDITD_DROPIN_TEXT = `# Citadel: the kernel's audit belongs to the host, so auditd cannot run in a container (it fails
# there with "Operation not permitted"); on a server this condition is always true.
[Unit]
ConditionVirtualization=!container
`;

const CONTAINERD_DROPIN_TEXT = `# Citadel: auditd loads its rules at boot before containerd has made /run/containerd, so the watches
# there (CIS Docker 1.1.4, 1.1.8) fail; loading them again once containerd runs puts them all in place.
# "-": a failure here (no kernel audit, in a container) never stops containerd.
[Service]
ExecStartPost=-/sbin/augenrules --load
`;

/** In order: auditd's drop-in (before the package), containerd's, the rules. */
export function auditdFiles(c: StackConfig): HostFile[] {
    if (!c.host.os.auditDocker) return [];
    return [
        { path: AUDITD_DROPIN, content: AUDITD_DROPIN_TEXT, mode: "0644", owner: "root", group: "root" },
        { path: CONTAINERD_DROPIN, content: CONTAINERD_DROPIN_TEXT, mode: "0644", owner: "root", group: "root" },
        { path: AUDIT_RULES_PATH, content: renderDockerAuditRules(), mode: "0640", owner: "root", group: "root" },
    ];
}

/** Host step "auditd": after the Docker step, so every watched path exists when the rules load. */
export function renderAuditdStep(c: StackConfig): HostScript {
    const on = c.host.os.auditDocker;
    const files = auditdFiles(c);
    return {
        name: "auditd",
        description: on
            ? `auditd: ${DOCKER_AUDIT_WATCHES.length} watches on the Docker daemon, its configuration and binaries (CIS Docker 1.1.3-1.1.18), key ${AUDIT_KEY}`
            : "auditd: Citadel's Docker rules removed (citadel:host.os.auditDocker = false)",
        script: renderTemplate("host/auditd.sh.hbs", {
            lib: hostLib(),
            on,
            files,
            removable: [AUDIT_RULES_PATH, CONTAINERD_DROPIN, AUDITD_DROPIN],
            watches: DOCKER_AUDIT_WATCHES.map(auditWatchLine),
            packages: on ? stepPackages("auditd") : [],
        }),
        files,
        ...(on ? { packages: stepPackages("auditd") } : {}),
    };
}
