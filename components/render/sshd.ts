// sshd hardening: a drop-in that wins over cloud-init's, plus the root script that installs it safely.
//
// Source policy (RoboAgency "SSH Hardening"): PermitRootLogin no, PasswordAuthentication no,
// PubkeyAuthentication yes, MaxAuthTries 3, ClientAliveInterval 300, ClientAliveCountMax 2. The rest is
// dev-sec ssh-hardening's baseline where it is safe for a single-admin Docker host, and the
// algorithm lists come from citadel:ssh (already restricted to strong choices by the config schema).
import { MONITORING_UIS, SSHD_ROLLBACK_DIR, SSHD_ROLLBACK_UNIT } from "../posture/facts";
import type { StackConfig } from "../config";
import { sha256 } from "./script";
import { renderTemplate, hostLib } from "./template";
import type { HostFile, HostScript } from "./types";

/**
 * sshd keeps the FIRST value it reads for most keywords, and Debian's sshd_config starts with
 * `Include /etc/ssh/sshd_config.d/*.conf` (read in lexical order). "01-" sorts before cloud-init's
 * `50-cloud-init.conf` (which may say `PasswordAuthentication yes`), so these values win.
 */
export const SSHD_DROPIN_PATH = "/etc/ssh/sshd_config.d/01-citadel-hardening.conf";

/** Host keys sshd may use: ed25519 and RSA (≥ 3072 bit, regenerated as 4096 if smaller). */
export const SSHD_HOST_KEYS = ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"];

export interface SshdSetting {
    /** sshd_config keyword as written in the file. */
    keyword: string;
    value: string;
    /** Why (rendered as a comment above the line). */
    why?: string;
    /**
     * The line `sshd -T` prints when this setting is in effect (compared case-insensitively), or
     * null when -T spells it differently and it is not worth a check. Default: "<keyword> <value>".
     */
    effective?: string | null;
}

export interface SshdSection {
    title: string;
    settings: SshdSetting[];
}

/** The drop-in's content as data: one table drives both the file and the post-install `sshd -T` check. */
export function sshdSections(c: StackConfig): SshdSection[] {
    const s = c.ssh;
    return [
        {
            title: "Authentication: keys only, one named admin, never root",
            settings: [
                { keyword: "PermitRootLogin", value: "no", why: "source policy; Citadel's admin is a sudo user" },
                { keyword: "PubkeyAuthentication", value: "yes" },
                { keyword: "AuthenticationMethods", value: "publickey", why: "offer nothing but public keys" },
                { keyword: "PasswordAuthentication", value: "no", why: "source policy: key-only SSH" },
                { keyword: "KbdInteractiveAuthentication", value: "no", why: "PAM prompts would be passwords by another name" },
                { keyword: "PermitEmptyPasswords", value: "no" },
                // Debian's default, stated: only PAM's session phase tells the host that a source has just
                // logged in with a valid key (the hook that exempts it from UFW's SSH limit, render/firewall.ts).
                { keyword: "UsePAM", value: "yes", why: "the SSH limit's exemption hook runs in PAM's session phase" },
                { keyword: "HostbasedAuthentication", value: "no" },
                { keyword: "IgnoreRhosts", value: "yes" },
                { keyword: "IgnoreUserKnownHosts", value: "yes" },
                { keyword: "GSSAPIAuthentication", value: "no" },
                { keyword: "KerberosAuthentication", value: "no" },
                { keyword: "StrictModes", value: "yes", why: "refuse keys in group/world-writable files" },
                { keyword: "AllowUsers", value: c.admin.user, why: "only the deploy user (citadel:admin.user) may log in" },
                { keyword: "MaxAuthTries", value: String(s.maxAuthTries), why: "source policy: 3" },
                { keyword: "LoginGraceTime", value: String(s.loginGraceTime) },
                { keyword: "MaxStartups", value: s.maxStartups, why: "start:rate:full — drop unauthenticated floods early" },
                { keyword: "MaxSessions", value: String(s.maxSessions) },
            ],
        },
        {
            title: "Idle sessions: source policy ClientAliveInterval 300 / ClientAliveCountMax 2",
            settings: [
                { keyword: "ClientAliveInterval", value: String(s.clientAliveInterval) },
                { keyword: "ClientAliveCountMax", value: String(s.clientAliveCountMax) },
                { keyword: "TCPKeepAlive", value: "no", why: "the encrypted ClientAlive messages above replace spoofable TCP keepalives" },
            ],
        },
        {
            title: "No forwarding or tunnels (the Pulumi docker provider runs `docker system dial-stdio`, a plain command)",
            settings: [
                { keyword: "X11Forwarding", value: "no" },
                { keyword: "AllowAgentForwarding", value: "no" },
                ...tcpForwarding(c),
                { keyword: "AllowStreamLocalForwarding", value: "no" },
                { keyword: "GatewayPorts", value: "no" },
                { keyword: "PermitTunnel", value: "no" },
                { keyword: "PermitUserEnvironment", value: "no" },
                { keyword: "PermitUserRC", value: "no" },
            ],
        },
        {
            title: "Cryptography (citadel:ssh; clean under ssh-audit)",
            settings: [
                { keyword: "KexAlgorithms", value: s.kexAlgorithms.join(",") },
                { keyword: "Ciphers", value: s.ciphers.join(",") },
                { keyword: "MACs", value: s.macs.join(",") },
                { keyword: "HostKeyAlgorithms", value: s.hostKeyAlgorithms.join(",") },
                // Listing the keys also stops Debian's openssh-server postinst from re-creating the
                // ECDSA key on the next (unattended) upgrade: it creates exactly the HostKey files named.
                ...SSHD_HOST_KEYS.map((k) => ({ keyword: "HostKey", value: k })),
                { keyword: "RekeyLimit", value: "512M 1h", effective: "rekeylimit 536870912 3600" },
            ],
        },
        {
            title: "Logging and information leaks",
            settings: [
                { keyword: "LogLevel", value: "VERBOSE", why: "logs key fingerprints and failed attempts for CrowdSec/fail2ban" },
                { keyword: "SyslogFacility", value: "AUTH" },
                { keyword: "UseDNS", value: "no" },
                { keyword: "DebianBanner", value: "no", why: "do not announce the distribution's patch level", effective: null /* not printed by sshd -T */ },
                { keyword: "Compression", value: "no" },
                { keyword: "PrintLastLog", value: "yes" },
            ],
        },
    ];
}

/** The `sshd -T` lines that must appear once the drop-in is live (lower-case keyword, value). */
export function sshdExpectedEffective(c: StackConfig): string[] {
    const out: string[] = [];
    for (const section of sshdSections(c)) {
        for (const st of section.settings) {
            if (st.effective === null) continue;
            out.push(st.effective ?? `${st.keyword.toLowerCase()} ${st.value}`);
        }
    }
    return out;
}

/** The drop-in file text. Values are schema-checked (user name, numbers, allow-listed algorithms). */
export function renderSshdDropin(c: StackConfig): string {
    return renderTemplate("sshd/01-citadel-hardening.conf.hbs", { sections: sshdSections(c) });
}

const rollbackFacts = (c: StackConfig) => ({ rollbackDir: SSHD_ROLLBACK_DIR, rollbackUnit: SSHD_ROLLBACK_UNIT, rollbackSeconds: c.ssh.rollbackSeconds, dropinPath: SSHD_DROPIN_PATH });

/** Runs the rollback at boot while it is armed: the transient timer does not survive a reboot. */
export function renderSshdRollbackBootUnit(): HostFile {
    const content = renderTemplate("sshd/sshd-rollback-boot.service.hbs", { dir: SSHD_ROLLBACK_DIR });
    return { path: `/etc/systemd/system/${SSHD_ROLLBACK_UNIT}-boot.service`, content, mode: "0644", owner: "root", group: "root" };
}

/** What the rollback timer runs when no new connection confirmed the new drop-in in time. */
export function renderSshdRollback(c: StackConfig): HostFile {
    const content = renderTemplate("sshd/sshd-rollback.sh.hbs", { dir: SSHD_ROLLBACK_DIR, unit: SSHD_ROLLBACK_UNIT, seconds: c.ssh.rollbackSeconds, dropinPath: SSHD_DROPIN_PATH });
    return { path: `${SSHD_ROLLBACK_DIR}/rollback.sh`, content, mode: "0700", owner: "root", group: "root" };
}

export function renderSshd(c: StackConfig): HostScript {
    const dropin: HostFile = { path: SSHD_DROPIN_PATH, content: renderSshdDropin(c), mode: "0644", owner: "root", group: "root" };
    const rollback = renderSshdRollback(c);
    const bootUnit = renderSshdRollbackBootUnit();
    const script = renderTemplate("sshd/sshd.sh.hbs", {
        lib: hostLib(),
        adminUser: c.admin.user,
        dropin: dropin.content,
        expected: sshdExpectedEffective(c).join("\n"),
        hostKeys: SSHD_HOST_KEYS,
        rollback: rollback.content,
        bootUnit: bootUnit.content,
        bootUnitPath: bootUnit.path,
        ...rollbackFacts(c),
    });
    return {
        name: "sshd",
        description: `sshd: key-only login for ${c.admin.user}, no root, strong algorithms (drop-in ${SSHD_DROPIN_PATH}), weak host keys and DH moduli removed; reloaded with a ${c.ssh.rollbackSeconds} s rollback armed`,
        script,
        files: [dropin, rollback, bootUnit],
    };
}

/** Dials of the sshd-confirm step before it fails (see renderSshdConfirm). */
export const SSHD_CONFIRM_DIAL_TRIES = 6;

/**
 * The confirmation half of the sshd step: run on its own NEW connection after the reload (a separate
 * remote command that waits for the sshd step), it disarms the rollback. Its script names the sshd
 * step's hash, so it re-runs whenever that step does.
 */
export function renderSshdConfirm(c: StackConfig, sshd: HostScript = renderSshd(c)): HostScript {
    const script = renderTemplate("sshd/sshd-confirm.sh.hbs", {
        lib: hostLib(),
        stepHash: sha256(sshd.script),
        dropinSha256: sha256(renderSshdDropin(c)),
        ...rollbackFacts(c),
    });
    return {
        name: "sshd-confirm",
        description: `sshd: a new SSH connection after the reload confirms the drop-in and disarms the rollback (else the host restores the previous one within ${c.ssh.rollbackSeconds} s)`,
        script,
        files: [],
        // The host is up and its sshd was reloaded a moment ago: a refused handshake is the new
        // drop-in locking us out, not a boot. Six dials (about 20 s) say so, where the two minutes
        // of a booting server's retries only delay the failure the rollback answers anyway.
        dialTries: SSHD_CONFIRM_DIAL_TRIES,
    };
}

/**
 * No TCP forwarding, except with monitoring: local forwards (ssh -L) to exactly the Prometheus and
 * Alertmanager UIs on the internal monitoring network, so the one tunnel command reaches them and
 * nothing else (no remote forwards, no other destination).
 */
function tcpForwarding(c: StackConfig): { keyword: string; value: string; why?: string }[] {
    if (!c.monitoring.enabled) return [{ keyword: "AllowTcpForwarding", value: "no" }];
    return [
        { keyword: "AllowTcpForwarding", value: "local", why: "only `ssh -L` to the monitoring UIs below (README: the tunnel command)" },
        { keyword: "PermitOpen", value: MONITORING_UIS.join(" ") },
    ];
}
