// Host baseline beside the layers: kernel parameters, unattended security upgrades, journald
// retention, and the Docker engine's daemon.json. Each is one idempotent root script (HostScript).
import type { StackConfig } from "../config";
import { configKey, IP_FORWARD_KEY, ipForwardError } from "../config";
import { renderTemplate, hostLib } from "./template";
import type { HostFile, HostScript } from "./types";
import { GATEWAY_IPV6, OS_BASELINE_PACKAGES, stepPackages } from "../posture/facts";
import { renderAuditdStep } from "./auditd";

// ---------------------------------------------------------------------------------------------
// sysctl
// ---------------------------------------------------------------------------------------------

/**
 * sysctl.d files are applied in lexical order of their NAMES across /etc, /run and /usr/lib, and the
 * last value wins. "99-zz-" sorts after procps' 99-protect-links.conf (which would set
 * fs.protected_fifos back to 1) and Debian's 99-sysctl.conf (→ /etc/sysctl.conf).
 */
export const SYSCTL_PATH = "/etc/sysctl.d/99-zz-citadel.conf";

export interface SysctlEntry {
    key: string;
    value: string;
    /**
     * The key exists only with some kernel options (Yama, BPF, IPv6, ...). Written with sysctl.d's
     * leading "-" (ignore if absent) and skipped with a note by the script; other keys must exist.
     */
    optional: boolean;
    why?: string;
}

/** dev-sec os-hardening / KSPP-style defaults, minus what breaks a Docker host or could lock SSH out. */
export const SYSCTL_DEFAULTS: readonly SysctlEntry[] = [
    // Routing: Docker routes container traffic through the host, so forwarding stays ON.
    { key: "net.ipv4.ip_forward", value: "1", optional: false, why: "Docker needs forwarding (bridge networks, published ports)" },
    { key: "net.ipv4.conf.all.rp_filter", value: "1", optional: false, why: "drop packets with spoofed source addresses (strict reverse path)" },
    { key: "net.ipv4.conf.default.rp_filter", value: "1", optional: false },
    { key: "net.ipv4.conf.all.accept_source_route", value: "0", optional: false, why: "no source routing, no ICMP redirects" },
    { key: "net.ipv4.conf.default.accept_source_route", value: "0", optional: false },
    { key: "net.ipv4.conf.all.accept_redirects", value: "0", optional: false },
    { key: "net.ipv4.conf.default.accept_redirects", value: "0", optional: false },
    { key: "net.ipv4.conf.all.secure_redirects", value: "0", optional: false },
    { key: "net.ipv4.conf.default.secure_redirects", value: "0", optional: false },
    { key: "net.ipv4.conf.all.send_redirects", value: "0", optional: false },
    { key: "net.ipv4.conf.default.send_redirects", value: "0", optional: false },
    { key: "net.ipv4.conf.all.log_martians", value: "1", optional: false, why: "log impossible source addresses" },
    { key: "net.ipv4.conf.default.log_martians", value: "1", optional: false },
    { key: "net.ipv4.tcp_syncookies", value: "1", optional: false, why: "survive SYN floods" },
    { key: "net.ipv4.tcp_rfc1337", value: "1", optional: false, why: "TIME-WAIT assassination (RFC 1337)" },
    { key: "net.ipv4.icmp_echo_ignore_broadcasts", value: "1", optional: false, why: "no smurf amplification" },
    { key: "net.ipv4.icmp_ignore_bogus_error_responses", value: "1", optional: false },
    // IPv6 may be disabled at boot (ipv6.disable=1): optional. accept_ra is deliberately NOT touched:
    // hosts that get their IPv6 route by router advertisement would lose SSH over IPv6.
    { key: "net.ipv6.conf.all.accept_redirects", value: "0", optional: true, why: "IPv6: no redirects or source routing (accept_ra untouched: some hosts route by RA)" },
    { key: "net.ipv6.conf.default.accept_redirects", value: "0", optional: true },
    { key: "net.ipv6.conf.all.accept_source_route", value: "0", optional: true },
    { key: "net.ipv6.conf.default.accept_source_route", value: "0", optional: true },
    // Kernel information leaks and attack surface.
    { key: "kernel.kptr_restrict", value: "2", optional: false, why: "hide kernel pointers from everyone" },
    { key: "kernel.dmesg_restrict", value: "1", optional: false, why: "kernel log for root only" },
    { key: "kernel.randomize_va_space", value: "2", optional: false, why: "full ASLR" },
    { key: "fs.suid_dumpable", value: "0", optional: false, why: "no core dumps of setuid programs" },
    { key: "fs.protected_hardlinks", value: "1", optional: false, why: "classic /tmp link and FIFO attacks" },
    { key: "fs.protected_symlinks", value: "1", optional: false },
    { key: "fs.protected_fifos", value: "2", optional: false },
    { key: "fs.protected_regular", value: "2", optional: false },
    { key: "kernel.yama.ptrace_scope", value: "1", optional: true, why: "processes may only ptrace their descendants (Yama)" },
    { key: "kernel.unprivileged_bpf_disabled", value: "1", optional: true, why: "no eBPF for unprivileged users (1 = until reboot)" },
    { key: "net.core.bpf_jit_harden", value: "2", optional: true, why: "constant blinding in the BPF JIT" },
    { key: "kernel.perf_event_paranoid", value: "3", optional: true, why: "no perf events for unprivileged users (Debian kernels)" },
    { key: "kernel.sysrq", value: "0", optional: true, why: "no magic SysRq from the keyboard or serial console" },
    { key: "dev.tty.ldisc_autoload", value: "0", optional: true, why: "no autoloading of rare TTY line disciplines" },
    { key: "vm.unprivileged_userfaultfd", value: "0", optional: true, why: "userfaultfd only for privileged processes (use-after-free exploitation aid)" },
];

/** The defaults with citadel:host.sysctl applied (overrides replace a default's value; new keys are required). */
export function sysctlEntries(c: StackConfig): SysctlEntry[] {
    const overrides = c.host.sysctl;
    // The schema's own rule (components/config/validators.ts), re-checked as defence in depth.
    const forward = overrides[IP_FORWARD_KEY];
    const forwardError = forward === undefined ? undefined : ipForwardError(forward);
    if (forwardError) throw new Error(`${configKey(["host", "sysctl"])}: ${JSON.stringify(IP_FORWARD_KEY)} ${forwardError}`);
    const out = SYSCTL_DEFAULTS.map((e) =>
        overrides[e.key] !== undefined ? { ...e, value: overrides[e.key], optional: false, why: "from citadel:host.sysctl" } : { ...e },
    );
    for (const [key, value] of Object.entries(overrides)) {
        if (!SYSCTL_DEFAULTS.some((e) => e.key === key)) out.push({ key, value, optional: false, why: "from citadel:host.sysctl" });
    }
    return out;
}

export function renderSysctlConf(c: StackConfig): string {
    return renderTemplate("host/sysctl.conf.hbs", { path: SYSCTL_PATH, entries: sysctlEntries(c) });
}

function renderSysctlStep(c: StackConfig): HostScript {
    const file: HostFile = { path: SYSCTL_PATH, content: renderSysctlConf(c), mode: "0644", owner: "root", group: "root" };
    return {
        name: "sysctl",
        description: `sysctl: kernel and network hardening (${SYSCTL_PATH}), IPv4 forwarding kept on for Docker`,
        script: renderTemplate("host/sysctl.sh.hbs", { lib: hostLib(), path: file.path, content: file.content }),
        files: [file],
    };
}

// ---------------------------------------------------------------------------------------------
// unattended-upgrades
// ---------------------------------------------------------------------------------------------

/**
 * Citadel's own apt.conf.d files instead of editing the package's: 50unattended-upgrades is a dpkg
 * conffile (editing it makes its upgrades prompt, and unattended-upgrades holds such packages back)
 * and 20auto-upgrades is rewritten from debconf. apt reads apt.conf.d in lexical order and the later
 * scalar wins, so 21… overrides 20auto-upgrades; 52… `#clear`s the origin lists of 50… first.
 */
export const AUTO_UPGRADES_PATH = "/etc/apt/apt.conf.d/21citadel-auto-upgrades";
export const UNATTENDED_UPGRADES_PATH = "/etc/apt/apt.conf.d/52citadel-unattended-upgrades";

/** Debian-Security only (the package's default also takes point-release updates from plain "Debian"). */
export const SECURITY_ORIGIN_PATTERNS = [
    "origin=Debian,codename=${distro_codename}-security,label=Debian-Security",
    "origin=Debian,codename=${distro_codename},label=Debian-Security",
];

export function renderAutoUpgrades(c: StackConfig): string {
    return renderTemplate("host/21citadel-auto-upgrades.hbs", { enabled: c.host.unattendedUpgrades.enabled ? "1" : "0" });
}

/** needrestart's drop-in: its restart mode after upgrades (read by needrestart.conf's conf.d loop). */
export const NEEDRESTART_PATH = "/etc/needrestart/conf.d/citadel.conf";

export function renderNeedrestart(c: StackConfig): string {
    return renderTemplate("host/needrestart.conf.hbs", { mode: c.host.unattendedUpgrades.restartServices === "auto" ? "a" : "l" });
}

export function renderUnattendedUpgrades(c: StackConfig): string {
    const u = c.host.unattendedUpgrades;
    return renderTemplate("host/52citadel-unattended-upgrades.hbs", {
        origins: SECURITY_ORIGIN_PATTERNS,
        autoReboot: u.autoReboot ? "true" : "false",
        autoRebootTime: u.autoRebootTime,
    });
}

function renderUnattendedUpgradesStep(c: StackConfig): HostScript {
    const files: HostFile[] = [
        { path: AUTO_UPGRADES_PATH, content: renderAutoUpgrades(c), mode: "0644", owner: "root", group: "root" },
        { path: UNATTENDED_UPGRADES_PATH, content: renderUnattendedUpgrades(c), mode: "0644", owner: "root", group: "root" },
    ];
    const u = c.host.unattendedUpgrades;
    const packages = stepPackages("unattended-upgrades");
    // needrestart only with upgrades on (it acts after apt runs); its file is checked by perl, not apt-config.
    const needrestart: HostFile | undefined = u.enabled ? { path: NEEDRESTART_PATH, content: renderNeedrestart(c), mode: "0644", owner: "root", group: "root" } : undefined;
    return {
        name: "unattended-upgrades",
        description: u.enabled
            ? `unattended-upgrades: daily Debian-Security updates${u.applyAtConverge ? " (pending ones applied by this step)" : ""}, services on replaced libraries ${u.restartServices === "auto" ? "restarted" : "listed"} (needrestart), automatic reboot ${u.autoReboot ? `at ${u.autoRebootTime}` : "off"}`
            : "unattended-upgrades: disabled (citadel:host.unattendedUpgrades.enabled = false)",
        script: renderTemplate("host/unattended-upgrades.sh.hbs", {
            lib: hostLib(),
            packages,
            enabled: u.enabled,
            apply: u.enabled && u.applyAtConverge,
            applyTimeout: u.applyTimeoutSeconds,
            files,
            needrestart,
            origins: SECURITY_ORIGIN_PATTERNS.join("\n"),
        }),
        files: needrestart ? [...files, needrestart] : files,
        ...(u.enabled ? { packages } : {}),
    };
}

// ---------------------------------------------------------------------------------------------
// journald
// ---------------------------------------------------------------------------------------------

export const JOURNALD_PATH = "/etc/systemd/journald.conf.d/citadel.conf";

export function renderJournaldConf(c: StackConfig): string {
    const j = c.host.journald;
    // Time span "<n>d" in systemd.time(7) syntax; size in journald.conf(5) K/M/G syntax (schema-checked).
    return renderTemplate("host/journald.conf.hbs", { maxRetention: `${j.maxRetentionDays}d`, systemMaxUse: j.systemMaxUse });
}

function renderJournaldStep(c: StackConfig): HostScript {
    const file: HostFile = { path: JOURNALD_PATH, content: renderJournaldConf(c), mode: "0644", owner: "root", group: "root" };
    return {
        name: "journald",
        description: `journald: persistent logs kept ${c.host.journald.maxRetentionDays} days, at most ${c.host.journald.systemMaxUse}`,
        script: renderTemplate("host/journald.sh.hbs", {
            lib: hostLib(),
            path: file.path,
            content: file.content,
            maxRetention: `${c.host.journald.maxRetentionDays}d`,
        }),
        files: [file],
    };
}

// ---------------------------------------------------------------------------------------------
// OS baseline: login notice, core dumps, kernel modules (citadel:host.os)
// ---------------------------------------------------------------------------------------------

export const ISSUE_PATH = "/etc/issue";
export const ISSUE_NET_PATH = "/etc/issue.net";
/** pam_limits (Debian's /etc/pam.d/sshd and login) reads limits.d for every login session. */
export const CORE_LIMITS_PATH = "/etc/security/limits.d/10-citadel-coredump.conf";
/** systemd-coredump, when installed, handles services' crashes: it stores nothing. */
export const COREDUMP_CONF_PATH = "/etc/systemd/coredump.conf.d/10-citadel.conf";
export const MODPROBE_PATH = "/etc/modprobe.d/citadel-disabled-modules.conf";

/**
 * Citadel's own files of the step that this config does not declare (core dumps allowed again, no
 * modules disabled): the step removes them and the audit expects them absent, so turning a control
 * off really turns it off.
 */
export function osBaselineUndeclared(c: StackConfig): string[] {
    const declared = new Set(osBaselineFiles(c).map((f) => f.path));
    return [CORE_LIMITS_PATH, COREDUMP_CONF_PATH, MODPROBE_PATH].filter((p) => !declared.has(p));
}

/**
 * The files of the os-baseline step. /etc/issue and /etc/issue.net are conffiles of base-files:
 * dpkg only asks about them when Debian ships a different version of the file, which it has not
 * done within a release; should one replace the notice, in-os-baseline reports it and the step's
 * next run (its script changed) puts it back.
 */
export function osBaselineFiles(c: StackConfig): HostFile[] {
    const o = c.host.os;
    const f = (p: string, content: string): HostFile => ({ path: p, content, mode: "0644", owner: "root", group: "root" });
    const files = [f(ISSUE_PATH, `${o.banner.trimEnd()}\n\n`), f(ISSUE_NET_PATH, `${o.banner.trimEnd()}\n`)];
    if (!o.coreDumps) {
        files.push(f(CORE_LIMITS_PATH, renderTemplate("host/coredump-limits.conf.hbs", {})), f(COREDUMP_CONF_PATH, renderTemplate("host/coredump.conf.hbs", {})));
    }
    if (o.disabledModules.length > 0) files.push(f(MODPROBE_PATH, renderTemplate("host/modprobe.conf.hbs", { modules: o.disabledModules })));
    return files;
}

export const LOGIN_DEFS_PATH = "/etc/login.defs";

/**
 * The keys the os-baseline step sets in /etc/login.defs (a conffile of `login`, edited in place: it
 * has no drop-in directory), in order; the audit reads the same list.
 */
export function loginDefsSettings(c: StackConfig): { key: string; value: string }[] {
    const o = c.host.os;
    return [
        { key: "UMASK", value: o.umask },
        { key: "ENCRYPT_METHOD", value: "SHA512" },
        { key: "SHA_CRYPT_MIN_ROUNDS", value: String(o.passwordHashRounds) },
        { key: "SHA_CRYPT_MAX_ROUNDS", value: String(o.passwordHashRounds) },
    ];
}

/** The packages the os-baseline step installs (posture/facts.ts OS_BASELINE_PACKAGES), by its knobs. */
export function osBaselinePackages(c: StackConfig): string[] {
    const o = c.host.os;
    return (Object.keys(OS_BASELINE_PACKAGES) as (keyof typeof OS_BASELINE_PACKAGES)[]).filter((k) => o[k]).map((k) => OS_BASELINE_PACKAGES[k]);
}

function renderOsBaselineStep(c: StackConfig): HostScript {
    const o = c.host.os;
    const files = osBaselineFiles(c);
    const modprobeIndex = files.findIndex((x) => x.path === MODPROBE_PATH);
    const packages = osBaselinePackages(c);
    const extras = [`umask ${o.umask} and SHA512 with ${o.passwordHashRounds} rounds in ${LOGIN_DEFS_PATH}`, ...(o.pamTmpdir ? ["a private TMPDIR per login (libpam-tmpdir)"] : []), ...(o.packageVerification ? ["debsums for the audit's package check"] : [])];
    return {
        name: "os-baseline",
        description: `os-baseline: login notice in /etc/issue and /etc/issue.net, core dumps ${o.coreDumps ? "allowed" : "off"}, ${o.disabledModules.length} kernel modules never loaded, ${extras.join(", ")}`,
        script: renderTemplate("host/os-baseline.sh.hbs", {
            lib: hostLib(),
            files,
            removed: osBaselineUndeclared(c),
            modprobe: modprobeIndex >= 0 ? { index: modprobeIndex, modules: o.disabledModules } : undefined,
            packages: packages.length ? [packages] : [],
            pamTmpdir: o.pamTmpdir,
            loginDefs: loginDefsSettings(c),
            loginDefsPath: LOGIN_DEFS_PATH,
        }),
        files,
        ...(packages.length ? { packages: [packages] } : {}),
    };
}

// ---------------------------------------------------------------------------------------------
// Docker engine
// ---------------------------------------------------------------------------------------------

export const DOCKER_DAEMON_JSON_PATH = "/etc/docker/daemon.json";

/** dockerd's daemon.json as an object (serialized with JSON.stringify, never templated). */
export function dockerDaemonConfig(c: StackConfig): Record<string, unknown> {
    return {
        // Containers on the default bridge cannot talk to each other; Citadel's own networks are explicit.
        icc: false,
        // setuid binaries inside containers cannot gain privileges (source policy: no-new-privileges).
        "no-new-privileges": true,
        // Containers keep running while dockerd restarts (e.g. an unattended docker.io security update).
        "live-restore": true,
        // Published ports via iptables DNAT, not docker-proxy: apps and CrowdSec see real client IPs.
        "userland-proxy": false,
        "log-driver": "json-file",
        "log-opts": { "max-size": c.host.docker.logMaxSize, "max-file": String(c.host.docker.logMaxFile) },
        "ip-forward": true,
        iptables: true,
        // No ip6tables (nor the experimental it needs in 20.10): IPv6 reaches the gateway through
        // Citadel's own DNAT (citadel:host.docker.ipv6, render/firewall.ts).
        // docker.io's unit runs dockerd with LimitCORE=infinity, which every container inherits: a
        // crashed Postgres or app would write its memory, secrets included, into its working directory.
        ...(c.host.os.coreDumps ? {} : { "default-ulimits": { core: { Name: "core", Hard: 0, Soft: 0 } } }),
    };
}

/** The firewall's and the docker step's check that the host can serve IPv6 at all (expects IPV6_GATEWAY, empty where IPv6 is not served, and the lib). */
export function ipv6UsableCheck(): string {
    return renderTemplate("host/ipv6-usable.sh.hbs", {});
}

/** The docker step's check that IPv6 forwarding will not cost the host its IPv6 default route (expects IPV6_GATEWAY, empty where IPv6 is not served, and the lib). */
export function ipv6RaGuard(): string {
    return renderTemplate("host/ipv6-ra-guard.sh.hbs", {});
}

export function renderDockerDaemonJson(c: StackConfig): string {
    return JSON.stringify(dockerDaemonConfig(c), null, 2) + "\n";
}

/** GATEWAY_IPV6 where citadel:host.docker.ipv6 serves it, else "": a plain address, safe in single quotes in a script. */
export function servedGateway6(c: StackConfig): string {
    if (!/^[0-9a-f:]+$/.test(GATEWAY_IPV6)) throw new Error(`citadel: GATEWAY_IPV6 ${JSON.stringify(GATEWAY_IPV6)} is not a plain IPv6 address`);
    return c.host.docker.ipv6 ? GATEWAY_IPV6 : "";
}

function renderDockerStep(c: StackConfig): HostScript {
    const file: HostFile = { path: DOCKER_DAEMON_JSON_PATH, content: renderDockerDaemonJson(c), mode: "0644", owner: "root", group: "root" };
    return {
        name: "docker",
        description: `docker: Debian's docker.io with a hardened daemon.json (icc off, no-new-privileges, live-restore, no userland proxy, log rotation${c.host.docker.ipv6 ? "; the host checked for IPv6 serving: IPv6 NAT, no RA-learnt route lost to forwarding" : ""}); ${c.admin.user} in group docker`,
        script: renderTemplate("host/docker.sh.hbs", { lib: hostLib(), packages: stepPackages("docker"), path: file.path, content: file.content, adminUser: c.admin.user, gateway6: servedGateway6(c), ipv6Usable: ipv6UsableCheck(), raGuard: ipv6RaGuard() }),
        files: [file],
        packages: stepPackages("docker"),
    };
}

/** The host baseline steps, in the order they should run (docker last: it may take a while to install). */
export function renderHostBaseline(c: StackConfig): HostScript[] {
    return [renderSysctlStep(c), renderUnattendedUpgradesStep(c), renderJournaldStep(c), renderOsBaselineStep(c), renderDockerStep(c), renderAuditdStep(c)];
}
