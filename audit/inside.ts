// Checks from inside: over SSH as the admin user with `sudo -n`, the host key pinned. Each compares
// the live value with the one the stack declares (the same renderer functions `pulumi up` uses).
import { credentialInValue, SECRET_LOOKING_RE, type StackConfig } from "../components/config";
import { BACKUP_MAX_AGE_HOURS, BACKUP_STATUS_PATH, BACKUP_TIMER, DATA_UID, GATEWAY_CONTAINER, GATEWAY_PORTS, posture, SECRETS_DIR, secretFilePath } from "../components/posture";
import { appContainerName, dataNetworkName, IPV6_FORWARD_KEY, postgresDatabaseOf, postgresRoleOf, redisKeyPrefixOf, redisUserOf } from "../components/posture/facts";
import { accessLogRolling, CADDY_LOG_DIR_HOST, CADDYFILE_CONTAINER_PATH, sizeBytes } from "../components/render/caddy";
import { postgresApps, POSTGRES_CONTAINER, REDIS_ACL_CONTAINER_PATH, REDIS_CONTAINER, redisClients } from "../components/render/data";
import { dockerUserDrift, dockerUserRules, FORWARD6_CHAIN, FORWARD6_JUMP, forward6Rules, PUBLIC6_NAT_CHAIN, public6Drift } from "../components/render/firewall";
import {
    CADDY_ACCESS_LOG,
    CITADEL_SSH_REPLACES,
    CROWDSEC_ACQUISITION,
    crowdsecFiles,
    crowdsecWhitelist,
    CROWDSEC_WHITELIST,
    hubLink,
    PRIVATE_RANGES_WHITELIST,
} from "../components/render/intrusion";
import { sshdExpectedEffective } from "../components/render/sshd";
import { auditdFiles, auditWatchLine, DOCKER_AUDIT_WATCHES } from "../components/render/auditd";
import { shellQuote } from "../components/render/template";
import { AuditTarget, CheckDef, CommandResult, Drift, fromDrift, skip, Verdict } from "./types";

/** A command that must work; its failure is itself the finding. */
function must(t: AuditTarget, cmd: string, timeoutMs?: number): string {
    const r = t.inside.sh(cmd, { timeoutMs });
    if (r.code !== 0) throw new Error(`\`${cmd.slice(0, 80)}\` failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-300)}`);
    return r.stdout;
}

import { LOGIN_DEFS_PATH, loginDefsSettings, osBaselineFiles, osBaselinePackages, osBaselineUndeclared, sysctlEntries, type SysctlEntry } from "../components/render/host";
import { sha256 } from "../components/render/script";
const inSshd: CheckDef = {
    id: "in-sshd",
    title: "sshd -T shows every declared setting (keys only, no root, limits, algorithms)",
    group: "inside",
    run(t) {
        // -C gives a connection context so Match blocks are applied as for a real client.
        const out = must(t, `sudo -n sshd -T -C user=${t.config.admin.user},host=audit.invalid,addr=203.0.113.9`);
        const live = new Map(out.split("\n").map((l) => l.trim().toLowerCase()).filter(Boolean).map((l) => [l.split(" ")[0], l] as const));
        const all = new Set(out.split("\n").map((l) => l.trim().toLowerCase()));
        const drift: Drift[] = [];
        for (const want of sshdExpectedEffective(t.config)) {
            const w = want.toLowerCase();
            if (all.has(w)) continue;
            drift.push({ what: w.split(" ")[0], expected: w, actual: live.get(w.split(" ")[0]) ?? "(not set)" });
        }
        return fromDrift(drift, `${sshdExpectedEffective(t.config).length} settings as declared`);
    },
};

const inUfw: CheckDef = {
    id: "in-ufw",
    title: "UFW active, default deny incoming, rules exactly as declared",
    group: "inside",
    run(t) {
        const status = must(t, "sudo -n ufw status verbose");
        const added = must(t, "sudo -n ufw show added");
        const drift: Drift[] = [];
        if (!/^Status: active/m.test(status)) drift.push({ what: "ufw", expected: "Status: active", actual: status.split("\n")[0] });
        const defaults = /^Default: (.*)$/m.exec(status)?.[1] ?? "(none)";
        if (!/deny \(incoming\)/.test(defaults)) drift.push({ what: "ufw default", expected: "deny (incoming)", actual: defaults });
        const live = added.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("ufw "));
        const declared = posture(t.config).exposure.ufw.rules;
        for (const d of declared) if (!live.includes(d)) drift.push({ what: "ufw rule", expected: d, actual: "(missing)" });
        for (const l of live) if (!declared.includes(l)) drift.push({ what: "ufw rule", expected: "(not declared)", actual: l });
        return fromDrift(drift, `active, ${defaults}; ${live.length} rules as declared`);
    },
};

const inDockerUser: CheckDef = {
    id: "in-docker-user",
    title: `DOCKER-USER carries the declared block (published ports other than ${GATEWAY_PORTS.join("/")} dropped) behind the CrowdSec ban rule`,
    group: "inside",
    run(t) {
        // In order, rule for rule; with CrowdSec, its ban rule must come first (a `ufw reload` used to
        // flush it from here, and banned addresses reached Caddy). Outside = any non-Docker interface.
        const bans = t.config.intrusion.engine === "crowdsec";
        const drift: Drift[] = dockerUserDrift(must(t, "sudo -n iptables -S DOCKER-USER"), 4, bans);
        // IPv6: the same policy in mangle's FORWARD (Docker 20.10's ip6tables has no IPv6 DOCKER-USER
        // hook). The firewall step installs it whether or not IPv6 is served (citadel:host.docker.ipv6).
        const block4 = `the declared block in order (${dockerUserRules(4).length} rules)${bans ? " behind the CrowdSec ban rule" : ""}`;
        // A kernel without IPv6 has nothing to filter (the firewall step skips IPv6 there too).
        if (t.inside.sh("sudo -n ip6tables -S INPUT").code !== 0) return fromDrift(drift, `${block4}; no IPv6 on this host (ip6tables -S INPUT fails)`);
        const live6 = t.inside.sh(`sudo -n ip6tables -t mangle -S ${FORWARD6_CHAIN}`);
        if (live6.code !== 0) drift.push({ what: `ip6tables mangle ${FORWARD6_CHAIN}`, expected: `${forward6Rules().length} rules`, actual: `(missing: ${(live6.stderr || live6.stdout).trim().slice(0, 120)})` });
        else drift.push(...dockerUserDrift(live6.stdout, 6, bans, FORWARD6_CHAIN));
        if (t.inside.sh(`sudo -n ip6tables -t mangle -C FORWARD -j ${FORWARD6_CHAIN}`).code !== 0)
            drift.push({ what: "ip6tables mangle FORWARD", expected: FORWARD6_JUMP, actual: "(missing: IPv6 to the containers is not filtered)" });
        // IPv6 to the sites: Citadel's DNAT to the gateway where served, none where not.
        const served = t.config.host.docker.ipv6;
        const nat = t.inside.sh(`sudo -n ip6tables -t nat -S ${PUBLIC6_NAT_CHAIN}`);
        const pre = t.inside.sh("sudo -n ip6tables -t nat -S PREROUTING");
        const output = t.inside.sh("sudo -n ip6tables -t nat -S OUTPUT");
        const fwd = t.inside.sh(`cat /proc/sys/${IPV6_FORWARD_KEY.replace(/\./g, "/")}`);
        drift.push(...public6Drift(served, nat.code === 0 ? nat.stdout : undefined, pre.stdout, output.stdout, fwd.stdout.trim()));
        const six = served ? `; ${GATEWAY_PORTS.join("/")} DNATed to the gateway (nat ${PUBLIC6_NAT_CHAIN}), IPv6 forwarding on` : "; no IPv6 DNAT (not served)";
        return fromDrift(drift, `${block4}; IPv6: the same in mangle ${FORWARD6_CHAIN}, jumped to from FORWARD${six}`);
    },
};

const inIntrusion: CheckDef = {
    id: "in-intrusion",
    title: "intrusion engine running with its sources (sshd journal, Caddy log) and its firewall bouncer",
    group: "inside",
    run(t) {
        const drift: Drift[] = [];
        if (t.config.intrusion.engine === "fail2ban") {
            const st = t.inside.sh("sudo -n fail2ban-client status");
            if (st.code !== 0) return { result: "fail", evidence: "fail2ban-client status failed", drift: [{ what: "fail2ban", expected: "running", actual: (st.stderr || st.stdout).trim().slice(0, 200) }] };
            const jails = /Jail list:\s*(.*)/.exec(st.stdout)?.[1] ?? "";
            if (!/\bsshd\b/.test(jails)) drift.push({ what: "fail2ban jails", expected: "sshd", actual: jails });
            return fromDrift(drift, `fail2ban jails: ${jails}`);
        }
        const active = t.inside.sh("systemctl is-active crowdsec crowdsec-firewall-bouncer").stdout.trim().split("\n");
        if (active[0] !== "active") drift.push({ what: "crowdsec.service", expected: "active", actual: active[0] ?? "?" });
        if (active[1] !== "active") drift.push({ what: "crowdsec-firewall-bouncer.service", expected: "active", actual: active[1] ?? "?" });
        const acquis = t.inside.sh(`sudo -n cat ${CROWDSEC_ACQUISITION}`).stdout;
        if (!/_SYSTEMD_UNIT=ssh\.service/.test(acquis)) drift.push({ what: "acquisition", expected: "journalctl _SYSTEMD_UNIT=ssh.service", actual: "(absent)" });
        if (!acquis.includes(CADDY_LOG_DIR_HOST)) drift.push({ what: "acquisition", expected: `${CADDY_LOG_DIR_HOST}/access.log (type caddy)`, actual: "(absent)" });
        // Who may never be banned: the hub's private-range whitelist as declared, and Citadel's own list.
        const hubWhitelist = hubLink(PRIVATE_RANGES_WHITELIST).link;
        const hubOn = t.inside.sh(`sudo -n test -e ${hubWhitelist} -o -L ${hubWhitelist}`).code === 0;
        if (hubOn !== t.config.intrusion.whitelistPrivateRanges)
            drift.push({ what: `${hubWhitelist} (citadel:intrusion.whitelistPrivateRanges)`, expected: t.config.intrusion.whitelistPrivateRanges ? "enabled" : "absent", actual: hubOn ? "enabled" : "absent" });
        // Every file the step writes, as rendered (the step's own list; the whitelist, which may have to
        // be absent, is judged below): without the acquisition's force_inotify a log created after
        // CrowdSec's start is never read, without the postoverflow an IPv6 client of the HTTP scenarios
        // is banned per address, without the Caddy parser some requests reach no HTTP scenario.
        for (const f of crowdsecFiles(t.config).filter((x) => x.path !== CROWDSEC_WHITELIST)) {
            const live = t.inside.sh(`sudo -n cat ${f.path}`);
            if (live.code !== 0 || live.stdout !== f.content) drift.push({ what: f.path, expected: "as rendered", actual: live.code !== 0 ? "absent" : "different content" });
        }
        // The hub's per-key SSH scenarios Citadel replaces stay absent: a `cscli collections upgrade
        // crowdsecurity/sshd` would put them back and ban operators again.
        for (const item of CITADEL_SSH_REPLACES) {
            const link = hubLink(item).link;
            if (t.inside.sh(`sudo -n test -e ${link} -o -L ${link}`).code === 0) drift.push({ what: link, expected: `absent (${item.id} counts every rejected key: Citadel's scenarios replace it)`, actual: "enabled" });
        }
        const ownWant = crowdsecWhitelist(t.config);
        const ownLive = t.inside.sh(`sudo -n cat ${CROWDSEC_WHITELIST}`);
        const ownHas = ownLive.code === 0 ? ownLive.stdout : undefined;
        if ((ownWant ?? "") !== (ownHas ?? ""))
            drift.push({ what: CROWDSEC_WHITELIST, expected: ownWant ? "the rendered ignoreIps whitelist" : "absent", actual: ownHas === undefined ? "absent" : "different content" });
        if (active[0] === "active") {
            // The local API answers only while crowdsec runs: a registered, non-revoked bouncer that pulled decisions.
            const b = t.inside.sh("sudo -n cscli bouncers list -o json");
            let bouncers: { name: string; revoked: boolean; last_pull?: string }[] = [];
            try {
                bouncers = JSON.parse(b.stdout || "[]") ?? [];
            } catch {
                /* reported below */
            }
            const live = bouncers.filter((x) => !x.revoked && x.last_pull);
            if (live.length === 0) drift.push({ what: "bouncer", expected: "registered, pulling decisions", actual: b.code === 0 ? "none" : (b.stderr || "cscli failed").trim().slice(0, 120) });
            const metrics = t.inside.sh("sudo -n cscli metrics -o json").stdout;
            if (!/journalctl-_SYSTEMD_UNIT=ssh\.service/.test(metrics)) drift.push({ what: "acquisition metrics", expected: "sshd journal read", actual: "no reads" });
            // The HTTP scenarios see only what CrowdSec tails: once Caddy has written its access log,
            // crowdsec holds it open (a log it did not find at start and does not watch would stay unread).
            // Exit 3: no log yet; 4: no crowdsec process to look at; 1: not open. Caddy rolls its log
            // and the tail reopens the new one within a poll (250 ms): look twice before calling it drift.
            const probe = `sudo -n sh -c 'test -e ${CADDY_ACCESS_LOG} || exit 3; pid=$(systemctl show -p MainPID --value crowdsec); [ "$pid" -gt 0 ] 2>/dev/null || exit 4; ls -l /proc/$pid/fd | grep -qF " -> ${CADDY_ACCESS_LOG}"'`;
            let tailed = t.inside.sh(probe);
            if (tailed.code === 1) tailed = t.inside.sh(`sleep 1; ${probe}`);
            if (tailed.code === 1) drift.push({ what: CADDY_ACCESS_LOG, expected: "tailed by crowdsec", actual: "not open in crowdsec" });
            else if (tailed.code !== 0 && tailed.code !== 3)
                drift.push({ what: CADDY_ACCESS_LOG, expected: "tailed by crowdsec", actual: tailed.code === 4 ? "no crowdsec main process" : `could not look (exit ${tailed.code}): ${tailed.stderr.trim().slice(0, 120)}` });
        }
        return fromDrift(drift, "crowdsec + bouncer active; sources: sshd journal, Caddy access log; bouncer pulling");
    },
};

/** needrestart's effective restart mode: its needrestart.conf (which reads conf.d) evaluated as needrestart does. */
const NEEDRESTART_MODE_PROBE = 'my $f = "/etc/needrestart/needrestart.conf"; -e $f or die "needrestart is not installed\\n"; our %nrconf; our $LOGPREF = ""; do $f; die $@ if $@; print $nrconf{restart} // "i"';

const inUpgrades: CheckDef = {
    id: "in-upgrades",
    title: "unattended security upgrades enabled (APT periodic + timers), services restarted after library fixes (needrestart), reboot window for kernel fixes",
    group: "inside",
    run(t) {
        const want = t.config.host.unattendedUpgrades.enabled;
        if (!want) return skip("citadel:host.unattendedUpgrades.enabled is false (declared off)");
        const dump = must(t, "apt-config dump APT::Periodic");
        const get = (k: string) => new RegExp(`^APT::Periodic::${k} "([^"]*)";`, "m").exec(dump)?.[1] ?? "(unset)";
        const drift: Drift[] = [];
        for (const k of ["Update-Package-Lists", "Unattended-Upgrade"]) if (get(k) !== "1") drift.push({ what: `APT::Periodic::${k}`, expected: "1", actual: get(k) });
        const pkg = t.inside.sh("dpkg-query -W -f='${Status}' unattended-upgrades").stdout;
        if (!/install ok installed/.test(pkg)) drift.push({ what: "package unattended-upgrades", expected: "installed", actual: pkg || "(absent)" });
        const timer = t.inside.sh("systemctl is-enabled apt-daily-upgrade.timer").stdout.trim();
        if (timer !== "enabled") drift.push({ what: "apt-daily-upgrade.timer", expected: "enabled", actual: timer || "(absent)" });
        // Fixes that need a restart or a reboot: the reboot window as apt reads it, needrestart's mode as it reads it.
        const u = t.config.host.unattendedUpgrades;
        const uu = must(t, "apt-config dump Unattended-Upgrade");
        const uget = (k: string) => new RegExp(`^Unattended-Upgrade::${k} "([^"]*)";`, "m").exec(uu)?.[1] ?? "(unset)";
        for (const [k, v] of [["Automatic-Reboot", String(u.autoReboot)], ["Automatic-Reboot-Time", u.autoRebootTime]] as const) {
            if (uget(k) !== v) drift.push({ what: `Unattended-Upgrade::${k}`, expected: v, actual: uget(k) });
        }
        const nr = t.inside.sh(`sudo -n perl -e ${shellQuote(NEEDRESTART_MODE_PROBE)}`);
        const mode = u.restartServices === "auto" ? "a" : "l";
        if (nr.code !== 0 || nr.stdout.trim() !== mode) drift.push({ what: "needrestart restart mode", expected: `${mode} (citadel:host.unattendedUpgrades.restartServices ${u.restartServices})`, actual: (nr.stdout.trim() || nr.stderr.trim()).slice(0, 120) || "(unreadable)" });
        const pending = t.inside.sh("test -e /var/run/reboot-required && stat -c %Y /var/run/reboot-required").stdout.trim();
        const since = pending ? ` (reboot pending since ${new Date(Number(pending) * 1000).toISOString()})` : "";
        return fromDrift(drift, `Update-Package-Lists 1, Unattended-Upgrade 1, apt-daily-upgrade.timer enabled; reboot ${u.autoReboot ? `at ${u.autoRebootTime}` : "off"}; needrestart ${mode}${since}`);
    },
};

// ---------------------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------------------

interface DeclaredContainer {
    name: string;
    user: string;
    memoryMb: number;
    cpus: number;
    pids: number;
    capAdd: string[];
    networks: string[];
}

/** What the stack declares for each container: the posture's containers (components/posture). */
export function declaredContainers(c: StackConfig): DeclaredContainer[] {
    return posture(c).containers.map((x) => ({
        name: x.name,
        user: x.user,
        memoryMb: x.memoryMb,
        cpus: Number(x.cpus),
        pids: x.pids,
        capAdd: x.capAdd,
        networks: x.networks.map((n) => n.network),
    }));
}

/** The subset of `docker inspect` the checks read. */
interface Inspect {
    Name: string;
    State: { Running: boolean; Status: string; Pid?: number };
    Config: { User: string; Env: string[] | null };
    HostConfig: { LogConfig?: { Type: string }; ReadonlyRootfs: boolean; CapDrop: string[] | null; CapAdd: string[] | null; SecurityOpt: string[] | null; Memory: number; NanoCpus: number; PidsLimit: number | null; Privileged: boolean };
    NetworkSettings: { Networks: Record<string, unknown> };
}

/** The config's own rule: such a name must be a *_FILE pointer, never a value. */
export { SECRET_LOOKING_RE };

/** Every container (running or not: a stopped rogue one may restart), inspected once per audit run. */
const inspectCache = new WeakMap<AuditTarget, Inspect[]>();
function containers(t: AuditTarget): Inspect[] {
    const hit = inspectCache.get(t);
    if (hit) return hit;
    const ids = must(t, "sudo -n docker ps -aq").trim();
    const list: Inspect[] = ids ? JSON.parse(must(t, `sudo -n docker inspect ${ids.split("\n").join(" ")}`)) : [];
    inspectCache.set(t, list);
    return list;
}
export function forgetContainers(t: AuditTarget): void {
    inspectCache.delete(t);
}
const cname = (i: Inspect) => i.Name.replace(/^\//, "");

/** A per-container check over every container on the host (declared or not: a rogue one is judged too). */
function perContainer(id: string, title: string, judge: (i: Inspect, d: DeclaredContainer | undefined) => Drift[], ok: string): CheckDef {
    return {
        id,
        title,
        group: "inside",
        run(t) {
            const decl = declaredContainers(t.config);
            const drift: Drift[] = [];
            const list = containers(t);
            for (const i of list) drift.push(...judge(i, decl.find((d) => d.name === cname(i))).map((x) => ({ ...x, what: `${cname(i)}: ${x.what}` })));
            return fromDrift(drift, `${list.length} containers: ${ok}`);
        },
    };
}

const inInventory: CheckDef = {
    id: "in-containers-inventory",
    title: "running containers are exactly the declared ones",
    group: "inside",
    run(t) {
        const all = containers(t);
        const running = all.filter((i) => i.State.Running).map(cname).sort();
        const declared = declaredContainers(t.config).map((d) => d.name).sort();
        const drift: Drift[] = [
            ...declared.filter((d) => !running.includes(d)).map((d) => ({ what: d, expected: "running", actual: all.find((i) => cname(i) === d)?.State.Status ?? "(absent)" })),
            ...all.filter((i) => !declared.includes(cname(i))).map((i) => ({ what: cname(i), expected: "(not declared)", actual: i.State.Status })),
        ];
        return fromDrift(drift, `running: ${running.join(", ")}`);
    },
};

const inUser = perContainer(
    "in-container-user",
    "every container runs as its declared non-root uid:gid",
    (i, d) => {
        const u = i.Config.User || "(image default: root)";
        const drift: Drift[] = [];
        if (!/^[1-9][0-9]*(:[1-9][0-9]*)?$/.test(i.Config.User)) drift.push({ what: "user", expected: d?.user ?? "non-root numeric uid:gid", actual: u });
        else if (d && i.Config.User !== d.user) drift.push({ what: "user", expected: d.user, actual: u });
        if (i.HostConfig.Privileged) drift.push({ what: "privileged", expected: "false", actual: "true" });
        return drift;
    },
    "non-root as declared",
);

const inReadonly = perContainer(
    "in-container-readonly",
    "every container has a read-only root filesystem",
    (i) => (i.HostConfig.ReadonlyRootfs ? [] : [{ what: "ReadonlyRootfs", expected: "true", actual: "false" }]),
    "read-only roots",
);

const inPrivileges = perContainer(
    "in-container-privileges",
    "every container: CapDrop ALL, only declared CapAdd, no-new-privileges",
    (i, d) => {
        const drift: Drift[] = [];
        const drop = (i.HostConfig.CapDrop ?? []).join(",");
        if (drop !== "ALL") drift.push({ what: "CapDrop", expected: "ALL", actual: drop || "(none)" });
        const add = (i.HostConfig.CapAdd ?? []).map((c) => c.replace(/^CAP_/, "")).sort().join(",");
        const want = (d?.capAdd ?? []).slice().sort().join(",");
        if (add !== want) drift.push({ what: "CapAdd", expected: want || "(none)", actual: add || "(none)" });
        if (!(i.HostConfig.SecurityOpt ?? []).some((o) => /^no-new-privileges(:true|=true)?$/.test(o))) drift.push({ what: "SecurityOpt", expected: "no-new-privileges:true", actual: (i.HostConfig.SecurityOpt ?? []).join(",") || "(none)" });
        return drift;
    },
    "capabilities dropped, no-new-privileges",
);

const inLimits = perContainer(
    "in-container-limits",
    "every container: memory, CPU and pids limits as declared",
    (i, d) => {
        const h = i.HostConfig;
        const drift: Drift[] = [];
        const mem = d ? d.memoryMb * 1024 * 1024 : undefined;
        if (!(h.Memory > 0) || (mem && h.Memory !== mem)) drift.push({ what: "memory", expected: mem ? `${d!.memoryMb}m` : "a limit", actual: h.Memory ? `${h.Memory / 1048576}m` : "unlimited" });
        const cpu = d ? Math.round(d.cpus * 1e9) : undefined;
        if (!(h.NanoCpus > 0) || (cpu && h.NanoCpus !== cpu)) drift.push({ what: "cpus", expected: d ? String(d.cpus) : "a limit", actual: h.NanoCpus ? String(h.NanoCpus / 1e9) : "unlimited" });
        if (!(h.PidsLimit && h.PidsLimit > 0) || (d && h.PidsLimit !== d.pids)) drift.push({ what: "pids", expected: d ? String(d.pids) : "a limit", actual: h.PidsLimit ? String(h.PidsLimit) : "unlimited" });
        return drift;
    },
    "limits as declared",
);

const inNetworks = perContainer(
    "in-container-networks",
    "every container is on exactly its declared networks (data services internal only)",
    (i, d) => {
        const live = Object.keys(i.NetworkSettings.Networks ?? {}).sort().join(",");
        const want = d ? d.networks.slice().sort().join(",") : "(an undeclared container should not exist)";
        return live === want ? [] : [{ what: "networks", expected: want, actual: live || "(none)" }];
    },
    "networks as declared",
);

/**
 * A container's live env judged by the config's rules: a secret-looking name holding a value, or a
 * value that carries a credential under any name (the config's credentialInValue). The drift names
 * the variable and the reason, never the value (the report ends up in CI logs).
 */
export function envDrift(env: string[] | null): Drift[] {
    const drift: Drift[] = [];
    for (const e of env ?? []) {
        const at = e.indexOf("=");
        const n = at < 0 ? e : e.slice(0, at);
        const v = at < 0 ? "" : e.slice(at + 1);
        if (SECRET_LOOKING_RE.test(n) && !n.endsWith("_FILE")) {
            drift.push({ what: "env", expected: `${n}_FILE (a path to a secret file)`, actual: `${n}=<value hidden>` });
            continue;
        }
        const why = credentialInValue(v, n);
        if (why) drift.push({ what: "env", expected: `${n} without a credential (a secret file read from its *_FILE)`, actual: `${n}=<value hidden: ${why}>` });
    }
    return drift;
}

const inEnv = perContainer(
    "in-container-env",
    "no container has a secret-looking env var holding a value (only *_FILE pointers) or an env value carrying a credential",
    (i) => envDrift(i.Config.Env),
    "no secret-looking names or credential-carrying values in env",
);


/** Prints each one-line secret file (12+ bytes) whose value appears in `docker inspect` of a running container. */
const INSPECT_LEAKS = `set -eu
ids=$(docker ps -q)
[ -n "$ids" ] || exit 0
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
# shellcheck disable=SC2086 # one id per word
docker inspect $ids >"$d/inspect.json"
find ${SECRETS_DIR} -type f | while read -r f; do
    # One line (a final newline or none) of 12+ bytes: a multi-line file would make each line a pattern.
    if [ "$(grep -c '' "$f")" -le 1 ] && [ "$(stat -c %s "$f")" -ge 12 ] && grep -qF -f "$f" "$d/inspect.json"; then echo "$f"; fi
done`;

const inSecretFiles: CheckDef = {
    id: "in-secret-files",
    title: "secret files 0400 owned by their one consumer, directories 0700 root, values absent from docker inspect",
    group: "inside",
    run(t) {
        const c = t.config;
        const expected = new Map(posture(c).secretFiles.map((f) => [f.path, f.ownerUid] as const));
        const listing = must(t, `sudo -n find ${SECRETS_DIR} -printf '%p %U %G %m %y\\n'`);
        const live = new Map(listing.trim().split("\n").filter(Boolean).map((l) => { const [p, u, g, m, y] = l.split(" "); return [p, { u: Number(u), g: Number(g), m, y }] as const; }));
        const drift: Drift[] = [];
        for (const [p, uid] of expected) {
            const f = live.get(p);
            if (!f) drift.push({ what: p, expected: `file uid ${uid} mode 0400`, actual: "(missing)" });
            else if (f.u !== uid || f.m !== "400") drift.push({ what: p, expected: `uid ${uid} mode 0400`, actual: `uid ${f.u} mode 0${f.m}` });
        }
        for (const [p, f] of live) {
            if (f.y === "d" && (f.m !== "700" || f.u !== 0)) drift.push({ what: p, expected: "dir uid 0 mode 0700", actual: `uid ${f.u} mode 0${f.m}` });
            if (f.y === "f" && f.m !== "400") drift.push({ what: p, expected: "mode 0400", actual: `mode 0${f.m}` });
        }
        // Values compared on the host: a one-line secret found in any container's inspect output is a leak.
        // Each secret file is grep's pattern file (-f): the value never becomes an argument.
        const leaks = t.inside.sh(`sudo -n bash -c ${shellQuote(INSPECT_LEAKS)}`);
        for (const f of leaks.stdout.trim().split("\n").filter(Boolean)) drift.push({ what: "docker inspect", expected: "no secret value", actual: `value of ${f} present` });
        return fromDrift(drift, `${expected.size} secret files 0400 with the right owner; dirs 0700; no value in docker inspect`);
    },
};

// ---------------------------------------------------------------------------------------------
// Data services
// ---------------------------------------------------------------------------------------------

/** Where the throwaway psql finds its passfile. */
const AUDIT_PGPASS = "/run/citadel-audit/pgpass";

/**
 * A root script that writes a libpq passfile from a secret file into a private temporary directory
 * ($d/pgpass, 0400, owned by the data image's user), runs \`command\`, and removes it.
 */
export function pgPassfileRun(secretFile: string, command: string): string {
    return `set -eu
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
pw=$(<${secretFile})
pw=\${pw//\\\\/\\\\\\\\}
(umask 077 && printf '*:*:*:*:%s\\n' "\${pw//:/\\\\:}" >"$d/pgpass")
chown ${DATA_UID} "$d/pgpass"
chmod 0400 "$d/pgpass"
${command}`;
}

/**
 * psql from a throwaway container of the Postgres image on `app`'s own data network, as the app's
 * role, to `database`. The password reaches the client as a libpq passfile: 0400, owned by the
 * image's user, mounted read-only. Never an argument or an environment variable (docker inspect
 * shows those).
 */
function psqlAs(t: AuditTarget, app: string, database: string, sslmode: string, sql: string): CommandResult {
    const c = t.config;
    return t.inside.sh(
        `sudo -n bash -c ${shellQuote(pgPassfileRun(secretFilePath(app, "postgresPassword"), `docker run --rm --network ${dataNetworkName(app)} -v "$d/pgpass:${AUDIT_PGPASS}:ro" --entrypoint psql ${c.postgres.image} "host=${POSTGRES_CONTAINER} dbname=${database} user=${postgresRoleOf(app)} sslmode=${sslmode} connect_timeout=10 passfile=${AUDIT_PGPASS}" -tAc ${shellQuote(sql)}`))}`,
        { timeoutMs: 60_000 },
    );
}

const inPostgresTls: CheckDef = {
    id: "in-postgres-tls",
    title: "Postgres refuses a non-TLS connection and accepts an app's role over TLS",
    group: "inside",
    run(t) {
        const c = t.config;
        if (!c.postgres.enabled) return skip("citadel:postgres.enabled is false");
        const app = postgresApps(c)[0];
        if (!app) return skip("no app holds postgresPassword to connect with");
        const psql = (mode: string) => psqlAs(t, app.app, app.database, mode, "select ssl from pg_stat_ssl where pid = pg_backend_pid()");
        const plain = psql("disable");
        const tls = psql("require");
        const drift: Drift[] = [];
        if (plain.code === 0) drift.push({ what: "sslmode=disable", expected: "refused (hostssl only)", actual: `accepted (ssl=${plain.stdout.trim()})` });
        else if (!/no encryption|pg_hba/.test(plain.stderr)) drift.push({ what: "sslmode=disable", expected: "refused by pg_hba (no encryption)", actual: plain.stderr.trim().slice(0, 160) });
        if (tls.code !== 0 || tls.stdout.trim() !== "t") drift.push({ what: "sslmode=require", expected: "connected, ssl=t", actual: (tls.stdout.trim() || tls.stderr.trim()).slice(0, 160) });
        return fromDrift(drift, "plain refused (pg_hba: no encryption); TLS accepted, ssl=t");
    },
};

/**
 * redis-cli in the redis container, reading commands on stdin. As an app's user, the first line sent
 * is `AUTH user password`, the password read from the app's secret file by bash (no argument, no
 * env); its reply is taken off the output (and shown instead when it is not OK).
 */
function redisCli(t: AuditTarget, app: string | null, stdin: string): CommandResult {
    const cli = `docker exec -i ${REDIS_CONTAINER} redis-cli -h 127.0.0.1 --no-auth-warning`;
    if (!app) return t.inside.sh(`sudo -n ${cli}`, { stdin, timeoutMs: 30_000 });
    const script = `{ printf 'AUTH %s %s\\n' ${redisUserOf(app)} "$(<${secretFilePath(app, "redisPassword")})"; cat; } | ${cli}`;
    const r = t.inside.sh(`sudo -n bash -c ${shellQuote(script)}`, { stdin, timeoutMs: 30_000 });
    const [authReply = "", ...rest] = r.stdout.split("\n");
    return { ...r, stdout: authReply.trim() === "OK" ? rest.join("\n") : `AUTH: ${authReply.trim()}\n` };
}

const redisApps = (c: StackConfig) => redisClients(c).map((u) => u.app);

const inRedisAuth: CheckDef = {
    id: "in-redis-auth",
    title: "Redis refuses unauthenticated clients; each app's user authenticates",
    group: "inside",
    run(t) {
        if (!t.config.redis.enabled) return skip("citadel:redis.enabled is false");
        const drift: Drift[] = [];
        const anon = redisCli(t, null, "PING\n");
        if (!/NOAUTH|NOPERM|WRONGPASS/.test(anon.stdout + anon.stderr)) drift.push({ what: "PING without AUTH", expected: "NOAUTH", actual: (anon.stdout + anon.stderr).trim().slice(0, 120) });
        const apps = redisApps(t.config);
        if (!apps.length) return fromDrift(drift, "anonymous refused (no app holds redisPassword)");
        for (const app of apps) {
            const ok = redisCli(t, app, "PING\n");
            if (ok.stdout.trim() !== "PONG") drift.push({ what: `PING as ${redisUserOf(app)}`, expected: "PONG", actual: (ok.stdout + ok.stderr).trim().slice(0, 120) });
        }
        return fromDrift(drift, `anonymous: NOAUTH; ${apps.map(redisUserOf).join(", ")}: PONG`);
    },
};

const inRedisCommands: CheckDef = {
    id: "in-redis-commands",
    title: "Redis denies the disabled commands to the app users",
    group: "inside",
    run(t) {
        const c = t.config;
        if (!c.redis.enabled) return skip("citadel:redis.enabled is false");
        const app = redisApps(c)[0];
        if (!app) return skip("no app holds redisPassword to test with");
        const user = redisUserOf(app);
        // Probed live where that is harmless: FLUSHALL/FLUSHDB are only QUEUED inside MULTI and then
        // DISCARDed (an allowed one never runs; a denied one gets NOPERM at queue time), the others are
        // read-only forms. SHUTDOWN/MONITOR cannot be probed without harm (and are refused inside MULTI
        // before the ACL is consulted), so for those the ACL the container loaded is read instead.
        const safe: Record<string, string> = {
            FLUSHALL: "MULTI\nFLUSHALL\nDISCARD\n",
            FLUSHDB: "MULTI\nFLUSHDB\nDISCARD\n",
            KEYS: `KEYS ${redisKeyPrefixOf(app)}citadel-audit-none-*\n`,
            CONFIG: "CONFIG GET maxmemory\n",
            MODULE: "MODULE LIST\n",
            // Redis refuses DEBUG to every remote client unless enable-debug-command says otherwise; that
            // refusal (or NOPERM) both mean the app user cannot run it.
            DEBUG: "DEBUG HELP\n",
        };
        const cmds = [...new Set(c.redis.disabledCommands.map((x) => x.toUpperCase()))];
        const drift: Drift[] = [];
        const seen: string[] = [];
        let acl: string | undefined;
        for (const cmd of cmds) {
            if (safe[cmd]) {
                const r = redisCli(t, app, safe[cmd]);
                const out = r.stdout.split("\n").map((l) => l.trim()).filter(Boolean);
                const answer = (safe[cmd].startsWith("MULTI") ? out[1] : out[0]) ?? (r.stderr.trim() || "(no answer)");
                if (/NOPERM|command not allowed/i.test(answer)) seen.push(`${cmd} (live)`);
                else drift.push({ what: cmd, expected: "NOPERM", actual: answer.slice(0, 120) });
                continue;
            }
            acl ??= must(t, `sudo -n docker exec ${REDIS_CONTAINER} cat ${REDIS_ACL_CONTAINER_PATH}`);
            const line = acl.split("\n").find((l) => l.startsWith(`user ${user} `)) ?? "";
            const rules = line.split(/\s+/);
            if (rules.includes(`-${cmd.toLowerCase()}`) || rules.includes(`-@all`)) seen.push(`${cmd} (acl)`);
            else drift.push({ what: cmd, expected: `-${cmd.toLowerCase()} in the ${user} user's ACL`, actual: "(absent)" });
        }
        return fromDrift(drift, `denied to ${user}: ${seen.join(", ")}`);
    },
};

/**
 * One app cannot reach another's container, database or keys. Network: from inside each app's network
 * namespace (nsenter, the host's bash), a TCP connection to every address of every other app at its
 * port must fail, while the same connection from the gateway's namespace (which must reach every
 * app) succeeds: that calibration shows the probe can connect. Postgres: each app's role is refused
 * every other database (each other app's and `postgres`) and reads its own. Redis: each app's user
 * gets NOPERM on a key outside its prefix and an answer on one inside it. Each kind of probe runs as
 * one command on the host (in parallel where it waits on timeouts), so the check costs seconds.
 */
const inAppIsolation: CheckDef = {
    id: "in-app-isolation",
    title: "an app cannot connect to another app, its database or its Redis keys, nor use up the connections Postgres keeps for the others",
    group: "inside",
    run(t) {
        const c = t.config;
        const drift: Drift[] = [];
        const seen: string[] = [];
        const live = containers(t);
        const pidOf = (name: string) => live.find((i) => cname(i) === name && i.State.Running)?.State.Pid;
        const addrs = (name: string) => Object.values((live.find((i) => cname(i) === name)?.NetworkSettings.Networks ?? {}) as Record<string, { IPAddress?: string }>).map((n) => n.IPAddress).filter((a): a is string => !!a);

        // Network: every (source namespace, target address) pair in one script, 2 s per probe at most.
        const probes: { from: string; pid: number; to: string; hp: string }[] = [];
        const gw = pidOf(GATEWAY_CONTAINER);
        for (const b of c.apps) {
            const targets = addrs(appContainerName(b.name)).map((ip) => `${ip}:${b.port}`);
            if (!targets.length) {
                drift.push({ what: appContainerName(b.name), expected: "running with an address", actual: "(not running)" });
                continue;
            }
            const sources = [...(gw ? [{ from: GATEWAY_CONTAINER, pid: gw }] : []), ...c.apps.filter((a) => a.name !== b.name).flatMap((a) => (pidOf(appContainerName(a.name)) ? [{ from: a.name, pid: pidOf(appContainerName(a.name))! }] : []))];
            for (const s of sources) for (const hp of targets) probes.push({ ...s, to: b.name, hp });
        }
        if (probes.length) {
            const lines = probes.map((p, i) => `( nsenter -t ${p.pid} -n timeout 2 bash -c ${shellQuote(`exec 3<>/dev/tcp/${p.hp.replace(":", "/")}`)} 2>/dev/null && echo "${i} open" || echo "${i} closed" ) &`);
            const r = t.inside.sh(`sudo -n bash -c ${shellQuote(`${lines.join("\n")}\nwait`)}`, { timeoutMs: 60_000 });
            const open = new Map(r.stdout.split("\n").filter(Boolean).map((l) => [Number(l.split(" ")[0]), l.split(" ")[1] === "open"] as const));
            for (const b of c.apps) {
                const mine = probes.map((p, i) => ({ ...p, open: open.get(i) })).filter((p) => p.to === b.name);
                const cal = mine.filter((p) => p.from === GATEWAY_CONTAINER);
                if (cal.length && !cal.some((p) => p.open)) drift.push({ what: `${GATEWAY_CONTAINER} → ${b.name}:${b.port} (calibration)`, expected: "open", actual: "closed: the probe proves nothing" });
                for (const a of c.apps.filter((x) => x.name !== b.name)) {
                    const fromA = mine.filter((p) => p.from === a.name);
                    if (!fromA.length) continue;
                    const reached = fromA.filter((p) => p.open === true).map((p) => p.hp);
                    const unknown = fromA.filter((p) => p.open === undefined).map((p) => p.hp);
                    if (reached.length) drift.push({ what: `${a.name} → ${b.name}`, expected: "no connection", actual: `connected to ${reached.join(", ")}` });
                    else if (unknown.length) drift.push({ what: `${a.name} → ${b.name}`, expected: "no connection", actual: `no answer from the probe of ${unknown.join(", ")}: ${r.stderr.trim().slice(0, 120)}` });
                    else seen.push(`${a.name}↛${b.name}`);
                }
            }
        }

        // Postgres: one throwaway client per app, trying its own database and every other one.
        if (c.postgres.enabled) {
            const declared = postgresApps(c);
            const pgApps = declared.map((a) => a.app);
            // Each role's CONNECTION LIMIT (its share: it cannot use up another app's connections), read
            // as the superuser on the container's socket: an app at its limit could not read its own.
            const roles = declared.map((x) => `'${x.role}'`).join(", ");
            const lim = t.inside.sh(`sudo -n docker exec -u postgres ${POSTGRES_CONTAINER} psql -XtAc ${shellQuote(`select rolname || ' ' || rolconnlimit from pg_roles where rolname in (${roles})`)}`, { timeoutMs: 60_000 });
            const liveLimit = new Map(lim.stdout.split("\n").filter(Boolean).map((l) => l.trim().split(" ") as [string, string]));
            for (const x of declared) {
                const got = liveLimit.get(x.role);
                if (got === String(x.connectionLimit)) seen.push(`${x.app} ≤${x.connectionLimit} connections`);
                else drift.push({ what: `${x.app}: role ${x.role}'s CONNECTION LIMIT`, expected: String(x.connectionLimit), actual: got === "-1" ? "-1 (none: it can use up every app's connections)" : got ?? `(unread: ${(lim.stderr || lim.stdout).trim().slice(0, 120)})` });
            }
            for (const a of pgApps) {
                const dbs = [postgresDatabaseOf(a), "postgres", ...pgApps.filter((b) => b !== a).map(postgresDatabaseOf)];
                const loop = `for db in ${dbs.join(" ")}; do o=$(psql "host=${POSTGRES_CONTAINER} dbname=$db user=${postgresRoleOf(a)} sslmode=require connect_timeout=10 passfile=${AUDIT_PGPASS}" -XtAc "select current_user" 2>&1) && echo "$db ok $o" || echo "$db refused $(printf %s "$o" | tr '\\n' ' ')"; done`;
                const r = t.inside.sh(`sudo -n bash -c ${shellQuote(pgPassfileRun(secretFilePath(a, "postgresPassword"), `docker run --rm --network ${dataNetworkName(a)} -v "$d/pgpass:${AUDIT_PGPASS}:ro" --entrypoint bash ${c.postgres.image} -c ${shellQuote(loop)}`))}`, { timeoutMs: 120_000 });
                const out = new Map(r.stdout.split("\n").filter(Boolean).map((l) => [l.split(" ")[0], l.split(" ").slice(1).join(" ")] as const));
                const own = out.get(postgresDatabaseOf(a)) ?? "";
                // An app holding its whole share is refused one more session: its limit at work, not drift.
                if (/too many connections for role/.test(own)) seen.push(`${a} at its connection limit`);
                else if (own !== `ok ${postgresRoleOf(a)}`) drift.push({ what: `${a}: its own database`, expected: `connected as ${postgresRoleOf(a)}`, actual: (own || r.stderr.trim()).slice(0, 160) });
                for (const db of dbs.slice(1)) {
                    const got = out.get(db) ?? "";
                    if (got.startsWith("ok")) drift.push({ what: `${a}: database ${db}`, expected: "refused", actual: "connected" });
                    else if (!/pg_hba|permission denied/.test(got)) drift.push({ what: `${a}: database ${db}`, expected: "refused by pg_hba or CONNECT", actual: (got || r.stderr.trim()).slice(0, 160) });
                    else seen.push(`${a}↛db ${db}`);
                }
            }
        }

        // Redis: per app, one session: a SET in its own prefix, outside every prefix and in each other
        // app's, each queued in MULTI then DISCARDed (a permitted SET never runs; a denied one is
        // refused at queue time).
        if (c.redis.enabled) {
            const apps = redisApps(c);
            for (const a of apps) {
                const prefixes = [redisKeyPrefixOf(a), "citadel-audit:", ...apps.filter((b) => b !== a).map(redisKeyPrefixOf)];
                const r = redisCli(t, a, prefixes.map((p) => `MULTI\nSET ${p}citadel-audit-probe 1\nDISCARD\n`).join(""));
                const out = r.stdout.split("\n").map((l) => l.trim()).filter(Boolean);
                prefixes.forEach((prefix, i) => {
                    // Three answers per prefix: OK (MULTI), the SET's, OK (DISCARD).
                    const answer = out[i * 3 + 1] ?? (r.stderr.trim() || "(no answer)");
                    const ownKey = i === 0;
                    if (ownKey && answer !== "QUEUED") drift.push({ what: `${redisUserOf(a)}: SET ${prefix}…`, expected: "QUEUED (its own prefix)", actual: answer.slice(0, 120) });
                    else if (!ownKey && !/NOPERM/.test(answer)) drift.push({ what: `${redisUserOf(a)}: SET ${prefix}…`, expected: "NOPERM", actual: answer.slice(0, 120) });
                    else if (!ownKey) seen.push(`${redisUserOf(a)}↛${prefix}*`);
                });
            }
        }
        if (!drift.length && !seen.length) return skip("one app and no data clients: nothing to isolate");
        return fromDrift(drift, seen.join(", "));
    },
};

const inJournald: CheckDef = {
    id: "in-journald",
    title: "journald keeps persistent logs for the declared retention and size",
    group: "inside",
    run(t) {
        const j = t.config.host.journald;
        // The effective value is the last assignment across journald.conf and its drop-ins, in order.
        const text = must(t, "systemd-analyze cat-config systemd/journald.conf 2>/dev/null || cat /etc/systemd/journald.conf /etc/systemd/journald.conf.d/*.conf");
        const last = (k: string) => {
            let v = "(unset)";
            for (const l of text.split("\n")) {
                const m = new RegExp(`^\\s*${k}\\s*=\\s*(\\S*)`).exec(l);
                if (m) v = m[1];
            }
            return v;
        };
        const drift: Drift[] = [];
        for (const [k, want] of [["Storage", "persistent"], ["MaxRetentionSec", `${j.maxRetentionDays}d`], ["SystemMaxUse", j.systemMaxUse]] as const) {
            if (last(k) !== want) drift.push({ what: k, expected: want, actual: last(k) });
        }
        return fromDrift(drift, `Storage=persistent MaxRetentionSec=${j.maxRetentionDays}d SystemMaxUse=${j.systemMaxUse}`);
    },
};

/**
 * Each path's sha256 on the host, or "absent", in one round trip. With `sudo` the whole loop runs as
 * root: a file in a root-only directory cannot even be seen to exist by the admin.
 */
function hostSha256(t: AuditTarget, paths: string[], sudo = false): string[] {
    const loop = `for f in ${paths.map(shellQuote).join(" ")}; do if [ -e "$f" ]; then sha256sum < "$f" | cut -d' ' -f1; else echo absent; fi; done`;
    return must(t, sudo ? `sudo -n bash -c ${shellQuote(loop)}` : loop).trim().split("\n");
}

/** Declared files whose content on the host (hashes in the same order) is not the declared one. */
function declaredFileDrift(files: { path: string; content: string }[], hashes: string[]): Drift[] {
    return files.flatMap((f, i) => {
        const want = sha256(f.content);
        return hashes[i] === want ? [] : [{ what: f.path, expected: `as declared (sha256 ${want.slice(0, 12)})`, actual: hashes[i] === "absent" ? "absent" : `changed (sha256 ${(hashes[i] ?? "").slice(0, 12)})` }];
    });
}

const inOsBaseline: CheckDef = {
    id: "in-os-baseline",
    title: "the OS baseline as declared: the login notice, no core dumps for logins, the disabled kernel modules",
    group: "inside",
    run(t) {
        const o = t.config.host.os;
        const files = osBaselineFiles(t.config);
        const drift: Drift[] = [];
        // One round trip: each declared file's sha256 (or "absent"), then each Citadel file that must not be there.
        const undeclared = osBaselineUndeclared(t.config);
        const out = hostSha256(t, [...files.map((f) => f.path), ...undeclared]);
        drift.push(...declaredFileDrift(files, out));
        undeclared.forEach((p, i) => {
            if (out[files.length + i] !== "absent") drift.push({ what: p, expected: "absent (not declared)", actual: "present" });
        });
        // The limit a login session really gets (pam_limits), and each running container's main
        // process (daemon.json default-ulimits), not only the files.
        let live = "";
        let containersChecked = 0;
        if (!o.coreDumps) {
            live = must(t, "ulimit -Hc").trim();
            if (live !== "0") drift.push({ what: "core dump limit of a login session (ulimit -Hc)", expected: "0", actual: live });
            const lines = must(t, `sudo -n sh -c 'for c in $(docker ps -q); do printf "%s " "$(docker inspect -f "{{.Name}}" "$c")"; awk "/^Max core file size/ {print \\$6}" /proc/$(docker inspect -f "{{.State.Pid}}" "$c")/limits; done'`)
                .trim()
                .split("\n")
                .filter(Boolean);
            for (const l of lines) {
                const [name, hard] = l.trim().split(/\s+/);
                containersChecked++;
                if (hard !== "0") drift.push({ what: `core dump limit of container ${name.replace(/^\//, "")}`, expected: "0 (daemon.json default-ulimits; a container created before it keeps its limit until it is re-created)", actual: hard ?? "(unreadable)" });
            }
        }
        // login.defs: the value each declared key really has (shadow's getdef: the last line wins).
        const defs = loginDefsSettings(t.config);
        const values = must(t, `for k in ${defs.map((d) => d.key).join(" ")}; do awk -v k="$k" '$1 == k { v = $2 } END { print (v == "" ? "(unset)" : v) }' ${LOGIN_DEFS_PATH}; done`).trim().split("\n");
        defs.forEach((d, i) => {
            if (values[i] !== d.value) drift.push({ what: `${d.key} in ${LOGIN_DEFS_PATH}`, expected: d.value, actual: values[i] ?? "(unreadable)" });
        });
        // The packages of the declared knobs, and pam_tmpdir in the session stack (what gives a login its TMPDIR).
        const packages = osBaselinePackages(t.config);
        if (packages.length) {
            const states = must(t, `for p in ${packages.join(" ")}; do dpkg-query -W -f='\${Status}\n' "$p" 2>/dev/null || echo absent; done`).trim().split("\n");
            packages.forEach((p, i) => {
                if (states[i] !== "install ok installed") drift.push({ what: `package ${p}`, expected: "installed", actual: states[i] ?? "(unreadable)" });
            });
        }
        if (o.pamTmpdir && t.inside.sh("grep -qE '^session[[:space:]]+optional[[:space:]]+pam_tmpdir\\.so' /etc/pam.d/common-session").code !== 0) {
            drift.push({ what: "pam_tmpdir in /etc/pam.d/common-session", expected: "session optional pam_tmpdir.so", actual: "absent" });
        }
        return fromDrift(drift, `${files.length} files as declared${o.coreDumps ? "" : `, core dumps off (ulimit -Hc ${live}, ${containersChecked} containers at 0)`}, ${o.disabledModules.length} modules disabled, ${defs.map((d) => `${d.key} ${d.value}`).join(" ")}${packages.length ? `, ${packages.join(" ")} installed` : ""}${o.pamTmpdir ? ", pam_tmpdir on" : ""}`);
    },
};

const inAuditd: CheckDef = {
    id: "in-auditd",
    title: "auditd watches the Docker daemon, its configuration and binaries (CIS Docker 1.1.3-1.1.18): the rules file as declared and, on a server, every watch loaded",
    group: "inside",
    run(t) {
        if (!t.config.host.os.auditDocker) return skip("citadel:host.os.auditDocker is false: Citadel declares no audit rules");
        const drift: Drift[] = [];
        const files = auditdFiles(t.config);
        // The rules file is root-only (0640 root): read with sudo.
        drift.push(...declaredFileDrift(files, hostSha256(t, files.map((f) => f.path), true)));
        // The kernel's audit is the host's: in a container (the lab VPS) nothing can be loaded.
        if (t.inside.sh("systemd-detect-virt --container --quiet").code === 0) {
            const skipped = DOCKER_AUDIT_WATCHES.map((w) => ({ what: `CIS ${w.cis} ${w.path}`, reason: "not loadable in a container: the kernel's audit belongs to the machine underneath" }));
            return drift.length ? { ...fromDrift(drift, ""), skipped } : { result: "pass", evidence: `${files.length} files as declared; the ${skipped.length} watches cannot be loaded in this container (listed as skipped)`, skipped };
        }
        const live = new Set(must(t, "sudo -n auditctl -l").split("\n").map((l) => l.trim()));
        for (const w of DOCKER_AUDIT_WATCHES) {
            const line = auditWatchLine(w);
            if (!live.has(line)) drift.push({ what: `CIS ${w.cis} ${w.path}`, expected: line, actual: "not loaded (auditctl -l)" });
        }
        return fromDrift(drift, `${files.length} files as declared; ${DOCKER_AUDIT_WATCHES.length} watches loaded (auditctl -l)`);
    },
};

const inPackagesIntact: CheckDef = {
    id: "in-packages-intact",
    title: "every installed package's files match the checksums dpkg recorded (debsums; configuration files excluded: they are meant to change)",
    group: "inside",
    run(t) {
        if (!t.config.host.os.packageVerification) return skip("citadel:host.os.packageVerification is false: debsums is not part of the host");
        // -s: errors only. Bounded: a host with every package of the stack takes seconds.
        const r = t.inside.sh("sudo -n debsums -s 2>&1", { timeoutMs: 300_000 });
        const lines = r.stdout.split("\n").map((l) => l.trim()).filter(Boolean);
        if (r.code === 0 && lines.length === 0) return { result: "pass", evidence: "debsums -s: every file of every installed package as dpkg installed it" };
        const drift: Drift[] = lines.slice(0, 20).map((l) => {
            const m = /changed file (\S+) \(from (\S+) package\)/.exec(l) ?? /missing file (\S+) \(from (\S+) package\)/.exec(l);
            return m ? { what: m[1], expected: `as package ${m[2]} installed it`, actual: l.includes("missing") ? "missing" : "changed" } : { what: "debsums", expected: "no error", actual: l };
        });
        if (drift.length === 0) drift.push({ what: "debsums -s", expected: "exit 0", actual: `exit ${r.code}` });
        return fromDrift(drift, "", lines.length > 20 ? `${lines.length} lines, the first 20 shown` : "");
    },
};

/**
 * What a log store would need for the whole retention period at the rate seen so far, in bytes; undefined
 * under a day of history (a fresh host's install and boot noise is no rate to extrapolate).
 */
export function projectedUse(bytes: number, ageSec: number, retentionDays: number): number | undefined {
    if (ageSec < 86_400) return undefined;
    return (bytes * retentionDays * 86_400) / ageSec;
}

/** journalctl's sizes ("24.0M", "1.5G", "512B") in bytes. */
export function journalBytes(text: string): number | undefined {
    const m = /take up ([\d.]+)([BKMGT])/.exec(text);
    return m ? Number(m[1]) * 1024 ** "BKMGT".indexOf(m[2]) : undefined;
}

const mib = (b: number) => `${Math.round(b / 1024 ** 2)} MiB`;

const inLogRetention: CheckDef = {
    id: "in-log-retention",
    title: "security logs kept the retention period: Caddy's access log rolled daily and kept that long, Postgres/Redis logs in the journal, each store's budget enough at the current rate",
    group: "inside",
    run(t) {
        const c = t.config;
        const days = c.host.journald.maxRetentionDays;
        const drift: Drift[] = [];
        const notes: string[] = [];
        // 1. The data services log to the journal (its retention), not to size-capped json-file.
        for (const i of containers(t).filter((x) => [POSTGRES_CONTAINER, REDIS_CONTAINER].includes(cname(x)))) {
            const type = i.HostConfig.LogConfig?.Type ?? "(unknown)";
            if (type !== "journald") drift.push({ what: `${cname(i)} log driver`, expected: "journald", actual: type });
        }
        // 2. Caddy's access log as the gateway's own Caddy reads its Caddyfile.
        const want = accessLogRolling(c);
        const adapted = t.inside.sh(`sudo -n docker exec ${GATEWAY_CONTAINER} caddy adapt --config ${CADDYFILE_CONTAINER_PATH} --adapter caddyfile`);
        if (adapted.code !== 0) drift.push({ what: "Caddyfile", expected: "caddy adapt succeeds", actual: adapted.stderr.trim().slice(0, 160) });
        else {
            const logs = Object.values((JSON.parse(adapted.stdout) as { logging?: { logs?: Record<string, { writer?: Record<string, unknown> }> } }).logging?.logs ?? {});
            const files = logs.map((l) => l.writer).filter((w): w is Record<string, unknown> => w?.output === "file");
            if (files.length === 0) drift.push({ what: "access log", expected: "a file writer", actual: "(none)" });
            for (const w of files) {
                const got = { interval: Number(w.roll_interval ?? 0) / 3.6e12, keepDays: Number(w.roll_keep_days ?? 90), keep: Number(w.roll_keep ?? 10) };
                if (got.interval !== 24) drift.push({ what: `${String(w.filename)} roll_interval`, expected: "24h (a file per day)", actual: got.interval ? `${got.interval}h` : "(none: rolled by size only)" });
                if (got.keepDays !== days) drift.push({ what: `${String(w.filename)} roll_keep_for`, expected: `${days} days`, actual: `${got.keepDays} days` });
                if (got.keep < want.keep) drift.push({ what: `${String(w.filename)} roll_keep`, expected: `≥ ${want.keep} files`, actual: String(got.keep) });
            }
        }
        // 3. Budgets: at the rate seen so far, would the period fit? (Alerts before a store cuts into it.)
        const judge = (store: string, bytes: number, ageSec: number, budget: string, key: string) => {
            const need = projectedUse(bytes, ageSec, days);
            if (need === undefined) notes.push(`${store}: ${mib(bytes)}, under a day of history`);
            else if (need > sizeBytes(budget)) drift.push({ what: `${store} budget (${key})`, expected: `≥ ${mib(need)} for ${days} days at the rate of the last ${Math.round(ageSec / 86_400)} days`, actual: budget });
            else notes.push(`${store}: ${mib(need)} of ${budget} needed for ${days} days`);
        };
        const usage = journalBytes(must(t, "sudo -n journalctl --disk-usage"));
        const first = Number(must(t, "sudo -n sh -c 'journalctl -q -o short-unix --no-pager 2>/dev/null | head -n 1'").split(" ")[0]);
        const now = Number(must(t, "date +%s").trim());
        if (usage === undefined || !Number.isFinite(first)) drift.push({ what: "journal", expected: "disk usage and oldest entry readable", actual: "unreadable" });
        else judge("journal", usage, now - first, c.host.journald.systemMaxUse, "citadel:host.journald.systemMaxUse");
        const files = must(t, `sudo -n find ${CADDY_LOG_DIR_HOST} -type f -printf '%s %T@\\n'`).trim().split("\n").filter(Boolean).map((l) => l.split(" ").map(Number));
        if (files.length) judge("access log", files.reduce((a, [b]) => a + b, 0), now - Math.min(...files.map(([, m]) => m)), c.host.accessLog.maxUse, "citadel:host.accessLog.maxUse");
        return fromDrift(drift, `access log daily, kept ${days} days (roll_keep ≥ ${want.keep}); data services to the journal; ${notes.join("; ")}`);
    },
};

// ---------------------------------------------------------------------------------------------
// Kernel parameters
// ---------------------------------------------------------------------------------------------

/** One declared kernel parameter as read on the host: absent, or its value and whether root may write it. */
export type SysctlReading = { exists: false } | { exists: true; writable: boolean; value: string };

/** Reads each key as root: "key<TAB>0" when absent, else "key<TAB>1<TAB>writable(0|1)<TAB>value". */
export function sysctlReadScript(keys: string[]): string {
    return [
        `for k in ${keys.map((k) => `'${k.replace(/'/g, "")}'`).join(" ")}; do`,
        `  p=/proc/sys/$(printf %s "$k" | tr . /)`,
        `  if [ ! -e "$p" ]; then printf '%s\\t0\\n' "$k"; continue; fi`,
        `  w=0; [ -w "$p" ] && w=1`,
        `  if v=$(sysctl -n "$k" 2>/dev/null); then v=$(printf %s "$v" | tr -s '[:space:]' ' '); else v="(unreadable)"; fi`,
        `  printf '%s\\t1\\t%s\\t%s\\n' "$k" "$w" "$v"`,
        `done`,
    ].join("\n");
}

export function parseSysctlReadings(out: string): Map<string, SysctlReading> {
    const m = new Map<string, SysctlReading>();
    for (const l of out.split("\n")) {
        const [k, exists, w, ...v] = l.split("\t");
        if (!k || exists === undefined) continue;
        m.set(k, exists === "1" ? { exists: true, writable: w === "1", value: v.join("\t").trim() } : { exists: false });
    }
    return m;
}

const normSysctl = (v: string) => v.trim().split(/\s+/).join(" ");

/**
 * Declared kernel parameters vs the values in effect. A key this host cannot set is reported as
 * skipped, per key and with the reason, never as passed: an optional key its kernel lacks, or (in a
 * container) a read-only key whose kernel belongs to the machine underneath. Everything else must
 * hold the declared value; a required key that does not exist is drift (the host step refuses those).
 */
export function judgeSysctl(entries: SysctlEntry[], live: Map<string, SysctlReading>, container: string | undefined): Verdict {
    const drift: Drift[] = [];
    const skipped: { what: string; reason: string }[] = [];
    let held = 0;
    for (const e of entries) {
        const r = live.get(e.key);
        if (!r) {
            drift.push({ what: e.key, expected: e.value, actual: "(not read)" });
        } else if (!r.exists) {
            if (e.optional) skipped.push({ what: e.key, reason: "not in this kernel (optional key: the host step skips it too)" });
            else drift.push({ what: e.key, expected: e.value, actual: "(no such key in this kernel)" });
        } else if (normSysctl(r.value) === normSysctl(e.value)) {
            held++;
        } else if (!r.writable && container) {
            skipped.push({ what: e.key, reason: `read-only in this ${container} container: the kernel belongs to the machine underneath, which has ${r.value || "(empty)"} (declared ${e.value})` });
        } else {
            drift.push({ what: e.key, expected: e.value, actual: r.value || "(empty)" });
        }
    }
    const note = skipped.length ? `; ${skipped.length} not settable here (listed as skipped)` : "";
    if (drift.length) return { ...fromDrift(drift, "", `${held} of ${entries.length} in effect${note}`), skipped };
    if (held === 0) return { result: "skip", evidence: `none of the ${entries.length} declared keys can be set on this host`, skipped };
    return { result: "pass", evidence: `${held} of ${entries.length} declared kernel parameters in effect${note}`, skipped };
}

const inSysctl: CheckDef = {
    id: "in-sysctl",
    title: "kernel parameters in effect as declared (sysctl -n per key; unsettable keys skipped with the reason)",
    group: "inside",
    run(t) {
        const entries = sysctlEntries(t.config);
        const r = t.inside.sh("sudo -n bash -s", { stdin: sysctlReadScript(entries.map((e) => e.key)) });
        if (r.code !== 0) throw new Error(`reading the kernel parameters failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-300)}`);
        const out = r.stdout;
        // systemd-detect-virt prints "none" (exit 1) on a VM's or a machine's own kernel.
        const virt = t.inside.sh("systemd-detect-virt --container").stdout.trim();
        return judgeSysctl(entries, parseSysctlReadings(out), virt && virt !== "none" ? virt : undefined);
    },
};

// ---------------------------------------------------------------------------------------------
// Backups
// ---------------------------------------------------------------------------------------------

/** What the host says about its backups: the timer's state and the last run's status file. */
export interface BackupReading {
    timerEnabled: string;
    timerActive: string;
    onCalendar: string;
    /** The declared schedule as systemd normalizes it (systemd-analyze calendar). */
    declaredCalendar: string;
    status: { id?: string; time?: string; success?: boolean; error?: string | null; size?: number; lastSuccess?: { id: string; time: string } | null } | null;
}

export function backupReadScript(schedule: string): string {
    return [
        `printf 'declared=%s\\n' "$(systemd-analyze calendar ${shellQuote(schedule)} 2>/dev/null | sed -n 's/^ *Normalized form: *//p')"`,
        `printf 'enabled=%s\n' "$(systemctl is-enabled ${BACKUP_TIMER} 2>/dev/null || true)"`,
        `printf 'active=%s\n' "$(systemctl is-active ${BACKUP_TIMER} 2>/dev/null || true)"`,
        `printf 'calendar=%s\n' "$(systemctl show -P TimersCalendar ${BACKUP_TIMER} 2>/dev/null | head -n 1 || true)"`,
        `printf 'status='; if [ -r ${BACKUP_STATUS_PATH} ]; then jq -c . ${BACKUP_STATUS_PATH} 2>/dev/null || echo '"unreadable"'; else echo null; fi`,
    ].join("\n");
}

export function parseBackupReading(out: string): BackupReading {
    const kv = new Map(out.split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as const));
    let status: BackupReading["status"] = null;
    try {
        const j = JSON.parse(kv.get("status") ?? "null");
        status = j && typeof j === "object" ? j : null;
    } catch {
        status = null;
    }
    return { timerEnabled: kv.get("enabled") ?? "", timerActive: kv.get("active") ?? "", onCalendar: kv.get("calendar") ?? "", declaredCalendar: kv.get("declared") ?? "", status };
}

/**
 * Backups as declared: the timer enabled and running, the last run a success, the last good backup
 * at most BACKUP_MAX_AGE_HOURS old. Pure, so tests judge readings without a host.
 */
export function judgeBackup(c: StackConfig, r: BackupReading, now: Date): Verdict {
    const b = posture(c).backup;
    const hasData = c.postgres.enabled || c.redis.enabled;
    if (!b.enabled) {
        if (!hasData) return skip("no Postgres or Redis: nothing to back up");
        return { result: "fail", evidence: "backups are not declared", drift: [{ what: "citadel:backup.enabled", expected: "true (daily encrypted off-site backups)", actual: "false" }] };
    }
    const drift: Drift[] = [];
    if (r.timerEnabled !== "enabled") drift.push({ what: `${b.timer} enabled`, expected: "enabled", actual: r.timerEnabled || "(not installed)" });
    if (r.timerActive !== "active") drift.push({ what: `${b.timer} active`, expected: "active", actual: r.timerActive || "(not installed)" });
    if (r.timerActive === "active" && !r.onCalendar.includes(`OnCalendar=${r.declaredCalendar || b.schedule}`)) drift.push({ what: `${b.timer} schedule`, expected: `OnCalendar=${r.declaredCalendar || b.schedule}`, actual: r.onCalendar || "(none)" });
    const s = r.status;
    if (!s) {
        drift.push({ what: b.statusFile, expected: "the status of a backup run", actual: "(no run on this host yet)" });
    } else {
        if (s.success !== true) drift.push({ what: `last run ${s.id ?? "?"}`, expected: "success", actual: `failed: ${s.error ?? "(no error recorded)"}` });
        const last = s.lastSuccess?.time ? Date.parse(s.lastSuccess.time) : NaN;
        const hours = (now.getTime() - last) / 3_600_000;
        if (!Number.isFinite(hours)) drift.push({ what: "last good backup", expected: `within ${b.maxAgeHours} h`, actual: "(none)" });
        else if (hours > b.maxAgeHours) drift.push({ what: "last good backup", expected: `within ${b.maxAgeHours} h`, actual: `${s.lastSuccess?.id} (${hours.toFixed(1)} h ago)` });
    }
    const ok = s?.lastSuccess ? `timer ${b.schedule} active; last good backup ${s.lastSuccess.id} (${((now.getTime() - Date.parse(s.lastSuccess.time)) / 3_600_000).toFixed(1)} h ago, ${s.size ?? "?"} bytes)` : "";
    return fromDrift(drift, ok);
}

const inBackup: CheckDef = {
    id: "in-backup",
    title: `encrypted off-site backups: timer enabled and active, last run succeeded, last good backup within ${BACKUP_MAX_AGE_HOURS} h`,
    group: "inside",
    run(t) {
        const r = t.inside.sh("sudo -n bash -s", { stdin: backupReadScript(t.config.backup.schedule) });
        if (r.code !== 0) throw new Error(`reading the backup state failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-300)}`);
        return judgeBackup(t.config, parseBackupReading(r.stdout), new Date());
    },
};

export const INSIDE_CHECKS: CheckDef[] = [
    inSshd,
    inUfw,
    inDockerUser,
    inIntrusion,
    inUpgrades,
    inInventory,
    inUser,
    inReadonly,
    inPrivileges,
    inLimits,
    inNetworks,
    inEnv,
    inSecretFiles,
    inPostgresTls,
    inRedisAuth,
    inRedisCommands,
    inAppIsolation,
    inJournald,
    inOsBaseline,
    inPackagesIntact,
    inAuditd,
    inLogRetention,
    inSysctl,
    inBackup,
];

export type { Verdict };
