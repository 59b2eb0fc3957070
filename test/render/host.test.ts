// Host baseline scripts and the files they embed, judged by their real consumers: shellcheck, dockerd,
// the running kernel's /proc/sys, systemd-journald's own key table, apt-config.
//
// Scripts that only write files run for real inside a private mount namespace where a temp copy of
// their config directory is bind-mounted over the real one (and /proc/sys is read-only), so this
// machine's configuration and kernel are never changed.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import { parseConfigOrThrow, StackConfig } from "../../components/config";
import { AUDIT_RULES_PATH, AUDITD_DROPIN, CONTAINERD_DROPIN, DOCKER_AUDIT_WATCHES, renderDockerAuditRules } from "../../components/render/auditd";
import {
    AUTO_UPGRADES_PATH,
    CORE_LIMITS_PATH,
    LOGIN_DEFS_PATH,
    loginDefsSettings,
    COREDUMP_CONF_PATH,
    ISSUE_NET_PATH,
    ISSUE_PATH,
    MODPROBE_PATH,
    DOCKER_DAEMON_JSON_PATH,
    dockerDaemonConfig,
    ipv6RaGuard,
    ipv6UsableCheck,
    JOURNALD_PATH,
    NEEDRESTART_PATH,
    renderHostBaseline,
    SECURITY_ORIGIN_PATTERNS,
    SYSCTL_PATH,
    sysctlEntries,
    UNATTENDED_UPGRADES_PATH,
} from "../../components/render/host";
import { renderFirewall } from "../../components/render/firewall";
import { renderSshd } from "../../components/render/sshd";
import { hostLib } from "../../components/render/template";
import type { HostScript } from "../../components/render/types";
import { prodConfig, prodWith } from "../fixtures";
import { IN_CI, requireDocker, requireTool, run, RunResult, tmpDir, waitFor, requireRoot as requireRootAs, shellcheck } from "../tools";
import { stopDockerd } from "../../lab/vps/dockerd";
import { ensureVpsImage, VPS_IMAGE } from "../../lab/vps/image";

const requireRoot = (t: TestContext): boolean => requireRootAs(t, "mount namespaces");

const step = (c: StackConfig, name: string): HostScript => {
    const s = renderHostBaseline(c).find((x) => x.name === name);
    assert.ok(s, `no host step ${name}`);
    return s;
};
const fileOf = (s: HostScript, p: string): string => {
    const f = s.files.find((x) => x.path === p);
    assert.ok(f, `${s.name} has no file ${p}`);
    return f.content;
};

/** Config variants that exercise every branch of the templates. */
const variants = (): StackConfig[] => [
    prodConfig(),
    parseConfigOrThrow(
        prodWith({
            host: {
                unattendedUpgrades: { enabled: false, autoReboot: true, autoRebootTime: "03:30" },
                journald: { maxRetentionDays: 30, systemMaxUse: "500M" },
                sysctl: { "net.ipv4.tcp_syncookies": "1", "vm.swappiness": "10" },
                docker: { logMaxSize: "50m", logMaxFile: 5 },
            },
        }),
    ),
];

/**
 * Runs `bash script` with each of `binds` (temp dir → real path) bind-mounted and /proc/sys read-only.
 */
function runInSandbox(script: string, binds: Record<string, string>): RunResult {
    const dir = tmpDir("citadel-script-");
    try {
        const file = path.join(dir, "step.sh");
        fs.writeFileSync(file, script);
        const setup =
            'file=$1; shift; while [ $# -gt 0 ]; do mount --bind "$2" "$1" || exit 99; shift 2; done; ' +
            'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec bash "$file"';
        const pairs = Object.entries(binds).flat();
        return run("unshare", ["-m", "--propagation", "private", "--", "/bin/sh", "-c", setup, "sh", file, ...pairs], { timeout: 60_000 });
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** A temp copy of a real config directory (symlinks kept), to bind-mount over it. */
function copyDir(real: string): string {
    const dir = tmpDir("citadel-etc-");
    fs.chmodSync(dir, 0o755);
    if (fs.existsSync(real)) {
        const r = run("cp", ["-a", `${real}/.`, dir]);
        assert.equal(r.code, 0, r.stderr);
    }
    return dir;
}

// -----------------------------------------------------------------------------------------------

describe("host scripts: shellcheck", () => {
    it("every script of renderSshd and renderHostBaseline is shellcheck-clean", (t) => {
        const sc = requireTool(t, "shellcheck");
        if (!sc) return;
        for (const c of variants()) {
            for (const s of [renderSshd(c), ...renderHostBaseline(c)]) {
                const r = shellcheck(sc, s.script);
                assert.equal(r.code, 0, `${s.name}:\n${r.stdout}${r.stderr}`);
                assert.match(s.script, /^#!\/usr\/bin\/env bash\n(#.*\n)*set -euo pipefail\n/, `${s.name} must start with set -euo pipefail`);
            }
        }
    });

    it("steps are named as the lead wires them", () => {
        assert.deepEqual(
            renderHostBaseline(prodConfig()).map((s) => s.name),
            ["sysctl", "unattended-upgrades", "journald", "os-baseline", "docker", "auditd"],
        );
    });
});

describe("docker: daemon.json", () => {
    const c = prodConfig();
    const content = fileOf(step(c, "docker"), DOCKER_DAEMON_JSON_PATH);

    it("IPv6 (citadel:host.docker.ipv6): served by default, and never through Docker's own IPv6 NAT (no ip6tables, no experimental), on or off", () => {
        assert.equal(c.host.docker.ipv6, true);
        const off = parseConfigOrThrow(prodWith({ host: { docker: { ipv6: false } } }));
        for (const x of [c, off]) {
            const parsed = JSON.parse(fileOf(step(x, "docker"), DOCKER_DAEMON_JSON_PATH));
            assert.equal(parsed.ip6tables, undefined);
            assert.equal(parsed.experimental, undefined);
        }
        // The step's own checks follow the setting.
        assert.match(step(c, "docker").script, /^IPV6_GATEWAY='fd17:c1ad:e1::10'$/m);
        assert.match(step(off, "docker").script, /^IPV6_GATEWAY=''$/m);
    });

    it("stops before daemon.json when the IPv6 default route comes from router advertisements with accept_ra 1 (real ip, in a network namespace); accept_ra 2 or IPv6 off passes", (t) => {
        if (!requireRoot(t) || !requireTool(t, "unshare")) return;
        const guard = (nat: string, ra: number) =>
            run("unshare", ["-n", "bash", "-c", `set -euo pipefail
CITADEL_AREA=docker
${hostLib()}
ip link add ra0 type veth peer name ra1 && ip link set ra0 up && ip link set ra1 up
echo ${ra} > /proc/sys/net/ipv6/conf/ra0/accept_ra
ip -6 route add default via fe80::1 dev ra0 proto ra
IPV6_GATEWAY=${nat}
${ipv6RaGuard()}
echo guard passed`]);
        const refused = guard("'fd17:c1ad:e1::10'", 1);
        assert.notEqual(refused.code, 0, refused.stdout);
        assert.match(refused.stderr, /IPv6 default route on ra0 is learnt from router advertisements \(accept_ra=1\).*net\.ipv6\.conf\.ra0\.accept_ra = 2.*citadel:host\.docker\.ipv6/);
        for (const [nat, ra] of [["'fd17:c1ad:e1::10'", 2], ["''", 1]] as const) {
            const ok = guard(nat, ra);
            assert.equal(ok.code, 0, `${nat} accept_ra=${ra}: ${ok.stderr}`);
            assert.match(ok.stdout, /guard passed/);
        }
    });

    it("a host without IPv6 stops the firewall and docker steps before either changes anything, with the key to set (real bash, /proc/sys/net/ipv6 hidden in a mount namespace)", (t) => {
        if (!requireRoot(t) || !requireTool(t, "unshare")) return;
        const check = ipv6UsableCheck();
        const fw = renderFirewall(c).script;
        // In both steps, ahead of their first change (the firewall's /etc/default/ufw edit, the docker step's daemon.json).
        assert.ok(fw.includes(check) && fw.indexOf(check) < fw.indexOf("IPV6=yes in /etc/default/ufw"), "the firewall step checks first");
        const docker = step(c, "docker").script;
        assert.ok(docker.includes(check) && docker.indexOf(check) < docker.indexOf("install_file \"$new\""), "the docker step checks first");
        const run6 = (gateway: string) =>
            run("unshare", ["-m", "--propagation", "private", "bash", "-c", `set -euo pipefail
mount -t tmpfs none /proc/sys/net 2>/dev/null || mount --bind "$(mktemp -d)" /proc/sys/net
CITADEL_AREA=firewall
${hostLib()}
IPV6_GATEWAY=${gateway}
${check}
echo check passed`]);
        const refused = run6("'fd17:c1ad:e1::10'");
        assert.notEqual(refused.code, 0, refused.stdout);
        assert.match(refused.stderr, /no usable IPv6 .*set citadel:host\.docker\.ipv6 to false/);
        const v4only = run6("''");
        assert.equal(v4only.code, 0, v4only.stderr);
        assert.match(v4only.stdout, /check passed/);
    });

    it("is the serialized object with the hardening settings", () => {
        const parsed = JSON.parse(content);
        assert.deepEqual(parsed, dockerDaemonConfig(c));
        assert.equal(parsed.icc, false);
        assert.equal(parsed["no-new-privileges"], true);
        assert.equal(parsed["live-restore"], true);
        assert.equal(parsed["userland-proxy"], false);
        assert.equal(parsed["log-driver"], "json-file");
        assert.deepEqual(parsed["log-opts"], { "max-size": c.host.docker.logMaxSize, "max-file": String(c.host.docker.logMaxFile) });
        assert.equal(parsed["ip-forward"], true);
        assert.equal(parsed.iptables, true);
        // No core dumps from containers (docker.io's unit would give them LimitCORE=infinity)...
        assert.deepEqual(parsed["default-ulimits"], { core: { Name: "core", Hard: 0, Soft: 0 } });
        // ...unless citadel:host.os.coreDumps allows them.
        assert.equal(dockerDaemonConfig(parseConfigOrThrow(prodWith({ host: { os: { coreDumps: true } } })))["default-ulimits"], undefined);
    });

    /**
     * Debian 12's dockerd 20.10 has no `--validate` (added in 23.0), so the check is the real thing:
     * dockerd starts with the file in its own mount + network namespace (private /run, /etc/docker,
     * data and exec roots), or refuses it.
     */
    const startDockerd = (dir: string, config: string) =>
        spawn(
            "unshare",
            [
                "-m", "-n", "--propagation", "private", "--", "/bin/sh", "-c",
                'mount --bind "$1/etc-docker" /etc/docker && mount -t tmpfs -o mode=0755 tmpfs /run && ip link set lo up && exec dockerd --config-file "$2" --data-root "$1/data" --exec-root "$1/exec" -H "unix://$1/docker.sock" --pidfile "$1/docker.pid"',
                "sh", dir, config,
            ],
            { stdio: ["ignore", "ignore", fs.openSync(path.join(dir, "dockerd.log"), "a")] },
        );

    it("dockerd accepts it: starts, and the settings are in effect", async (t) => {
        if (!requireRoot(t) || !requireTool(t, "dockerd") || !requireTool(t, "docker") || !requireTool(t, "unshare") || !requireTool(t, "iptables")) return;
        const dir = tmpDir("citadel-dockerd-");
        fs.mkdirSync(path.join(dir, "etc-docker"));
        const cfg = path.join(dir, "daemon.json");
        fs.writeFileSync(cfg, content);
        if (run("dockerd", ["--help"]).stdout.includes("--validate")) {
            const v = run("dockerd", ["--validate", "--config-file", cfg]);
            assert.equal(v.code, 0, v.stderr);
        }
        const d = startDockerd(dir, cfg);
        try {
            const docker = (...args: string[]) => run("docker", ["-H", `unix://${dir}/docker.sock`, ...args], { timeout: 10_000 });
            const up = await waitFor(() => d.exitCode === null && docker("info", "--format", "{{.ServerVersion}}").stdout.trim() !== "", 30_000);
            assert.ok(up, `dockerd did not come up:\n${fs.readFileSync(path.join(dir, "dockerd.log"), "utf8").slice(-3000)}`);
            const info = JSON.parse(docker("info", "--format", "{{json .}}").stdout);
            assert.equal(info.LoggingDriver, "json-file");
            assert.equal(info.LiveRestoreEnabled, true);
            // icc=false: dockerd drops bridge-internal forwarding; ip-forward: on in its namespace.
            const fwd = run("nsenter", ["-t", String(d.pid), "-n", "iptables", "-S", "FORWARD"]);
            assert.match(fwd.stdout, /-A FORWARD -i docker0 -o docker0 -j DROP/, fwd.stdout + fwd.stderr);
            const ipf = run("nsenter", ["-t", String(d.pid), "-n", "cat", "/proc/sys/net/ipv4/ip_forward"]);
            assert.equal(ipf.stdout.trim(), "1");
        } finally {
            if (d.exitCode === null) {
                d.kill("SIGTERM");
                await waitFor(() => d.exitCode !== null || d.signalCode !== null, 20_000);
            }
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("dockerd rejects corrupted variants (so the check has teeth)", async (t) => {
        if (!requireRoot(t) || !requireTool(t, "dockerd") || !requireTool(t, "unshare")) return;
        const obj = dockerDaemonConfig(c);
        const corrupted: Record<string, string> = {
            "wrong type": JSON.stringify({ ...obj, icc: "no" }),
            "unknown key": JSON.stringify({ ...obj, "no-new-privilege": true }),
            truncated: content.slice(0, content.length / 2),
        };
        for (const [what, text] of Object.entries(corrupted)) {
            const dir = tmpDir("citadel-dockerd-");
            fs.mkdirSync(path.join(dir, "etc-docker"));
            const cfg = path.join(dir, "daemon.json");
            fs.writeFileSync(cfg, text);
            const d = startDockerd(dir, cfg);
            try {
                const exited = await waitFor(() => d.exitCode !== null, 15_000);
                assert.ok(exited, `dockerd kept running with a ${what} daemon.json`);
                assert.notEqual(d.exitCode, 0);
                assert.match(fs.readFileSync(path.join(dir, "dockerd.log"), "utf8"), /unable to configure the Docker daemon with file/, what);
            } finally {
                if (d.exitCode === null) {
                    d.kill("SIGTERM");
                    await waitFor(() => d.exitCode !== null || d.signalCode !== null, 20_000);
                }
                fs.rmSync(dir, { recursive: true, force: true });
            }
        }
    });
});

describe("sysctl", () => {
    const c = prodConfig();
    const s = step(c, "sysctl");
    const content = fileOf(s, SYSCTL_PATH);
    const lines = content.split("\n").filter((l) => l.trim() && !l.startsWith("#"));
    const parsed = lines.map((l) => {
        const m = /^(-?)([a-z0-9_.-]+) = (.+)$/i.exec(l);
        assert.ok(m, `not a sysctl.d line: ${l}`);
        return { optional: m[1] === "-", key: m[2], value: m[3] };
    });

    it("keeps IPv4 forwarding on for Docker and hardens the rest", () => {
        const get = (k: string) => parsed.find((p) => p.key === k);
        assert.equal(get("net.ipv4.ip_forward")?.value, "1");
        for (const [k, v] of Object.entries({
            "net.ipv4.conf.all.rp_filter": "1",
            "net.ipv4.conf.all.accept_redirects": "0",
            "net.ipv4.conf.all.send_redirects": "0",
            "net.ipv4.conf.all.accept_source_route": "0",
            "net.ipv4.tcp_syncookies": "1",
            "net.ipv4.conf.all.log_martians": "1",
            "kernel.kptr_restrict": "2",
            "kernel.dmesg_restrict": "1",
            "kernel.yama.ptrace_scope": "1",
            "fs.protected_hardlinks": "1",
            "fs.protected_symlinks": "1",
            "fs.protected_fifos": "2",
            "fs.protected_regular": "2",
            "kernel.unprivileged_bpf_disabled": "1",
        })) {
            assert.equal(get(k)?.value, v, k);
        }
        assert.equal(new Set(parsed.map((p) => p.key)).size, parsed.length, "duplicate keys");
    });

    it("every required key exists in this kernel's /proc/sys (read-only check)", () => {
        const missingRequired = parsed.filter((p) => !p.optional && !fs.existsSync(`/proc/sys/${p.key.replace(/\./g, "/")}`));
        assert.deepEqual(missingRequired, []);
        const skipped = parsed.filter((p) => p.optional && !fs.existsSync(`/proc/sys/${p.key.replace(/\./g, "/")}`)).map((p) => p.key);
        if (skipped.length) note(`optional keys this kernel lacks (skipped by the script): ${skipped.join(", ")}`);
    });

    it("sorts after every other sysctl.d file on this machine, so its values win", () => {
        const mine = path.basename(SYSCTL_PATH);
        for (const dir of ["/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"]) {
            if (!fs.existsSync(dir)) continue;
            for (const f of fs.readdirSync(dir).filter((x) => x.endsWith(".conf"))) assert.ok(f < mine, `${dir}/${f} is applied after ${mine}`);
        }
    });

    it("citadel:host.sysctl overrides win, new keys are required, ip_forward=0 is refused", () => {
        const o = parseConfigOrThrow(prodWith({ host: { sysctl: { "kernel.kptr_restrict": "1", "vm.swappiness": "10" } } }));
        const e = sysctlEntries(o);
        assert.equal(e.find((x) => x.key === "kernel.kptr_restrict")?.value, "1");
        assert.deepEqual(e.find((x) => x.key === "vm.swappiness"), { key: "vm.swappiness", value: "10", optional: false, why: "from citadel:host.sysctl" });
        // The config schema refuses this too; the renderer holds the line on its own.
        const bad: StackConfig = { ...o, host: { ...o.host, sysctl: { "net.ipv4.ip_forward": "0" } } };
        assert.throws(() => renderHostBaseline(bad), /ip_forward" must stay 1/);
    });

    it("script: refuses an unknown key and leaves /etc/sysctl.d untouched", (t) => {
        if (!requireRoot(t) || !requireTool(t, "unshare") || !requireTool(t, "sysctl")) return;
        const bad = parseConfigOrThrow(prodWith({ host: { sysctl: { "net.ipv4.tcp_no_such_knob": "1" } } }));
        const etc = copyDir("/etc/sysctl.d");
        try {
            const before = fs.readdirSync(etc).sort();
            const r = runInSandbox(step(bad, "sysctl").script, { "/etc/sysctl.d": etc });
            assert.equal(r.code, 1, r.stdout + r.stderr);
            assert.match(r.stderr, /citadel: sysctl: unknown kernel parameter\(s\): net\.ipv4\.tcp_no_such_knob/);
            assert.deepEqual(fs.readdirSync(etc).sort(), before);
        } finally {
            fs.rmSync(etc, { recursive: true, force: true });
        }
    });

    it("script: installs the file, applies with sysctl --system, judges by the running values", (t) => {
        if (!requireRoot(t) || !requireTool(t, "unshare") || !requireTool(t, "sysctl")) return;
        const etc = copyDir("/etc/sysctl.d");
        try {
            // /proc/sys is read-only in the sandbox, so nothing can apply. In a container the script
            // must only warn (the kernel is the host's); on a VM it must fail and name the keys.
            const container = run("systemd-detect-virt", ["--container", "--quiet"]).code === 0;
            const first = runInSandbox(s.script, { "/etc/sysctl.d": etc });
            assert.equal(fs.readFileSync(path.join(etc, path.basename(SYSCTL_PATH)), "utf8"), content);
            assert.match(first.stdout, /citadel: sysctl: installed \/etc\/sysctl\.d\/99-zz-citadel\.conf/);
            if (container) {
                assert.equal(first.code, 0, first.stdout + first.stderr);
                assert.match(first.stderr, /in a container the kernel belongs to the host; not in effect here: .*=/);
                const second = runInSandbox(s.script, { "/etc/sysctl.d": etc });
                assert.equal(second.code, 0, second.stdout + second.stderr);
                assert.match(second.stdout, /citadel: sysctl: unchanged/);
                assert.doesNotMatch(second.stdout, /installed/);
            } else {
                assert.equal(first.code, 1, first.stdout + first.stderr);
                assert.match(first.stderr, /not in effect after sysctl --system: /);
            }
        } finally {
            fs.rmSync(etc, { recursive: true, force: true });
        }
    });
});

// node:test has no per-test note outside a context; diagnostics go to stderr.
function note(msg: string): void {
    process.stderr.write(`# ${msg}\n`);
}

describe("journald", () => {
    const c = prodConfig();
    const s = step(c, "journald");
    const content = fileOf(s, JOURNALD_PATH);

    it("sets persistent storage, retention from citadel:host.journald and a size cap", () => {
        assert.match(content, /^\[Journal\]$/m);
        assert.match(content, /^Storage=persistent$/m);
        assert.match(content, new RegExp(`^MaxRetentionSec=${c.host.journald.maxRetentionDays}d$`, "m"));
        assert.match(content, new RegExp(`^SystemMaxUse=${c.host.journald.systemMaxUse}$`, "m"));
    });

    it("every key is one systemd-journald parses, every value has its syntax", (t) => {
        const journald = ["/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald"].find((p) => fs.existsSync(p));
        if (!journald) {
            if (IN_CI) throw new Error("systemd-journald not found");
            t.skip("systemd-journald not found");
            return;
        }
        if (!requireTool(t, "systemd-analyze")) return;
        // journald's config parser is a gperf table compiled into the binary: "Journal.<Key>".
        const table = new Set(fs.readFileSync(journald).toString("latin1").match(/Journal\.[A-Za-z]+/g) ?? []);
        assert.ok(table.has("Journal.Storage"), "could not read journald's key table");
        const settings = content.split("\n").filter((l) => /^[A-Za-z]+=/.test(l)).map((l) => l.split("=", 2) as [string, string]);
        assert.ok(settings.length >= 4);
        for (const [k, v] of settings) {
            assert.ok(table.has(`Journal.${k}`), `journald does not know ${k}=`);
            if (k.endsWith("Sec")) {
                const r = run("systemd-analyze", ["timespan", v]);
                assert.equal(r.code, 0, `${k}=${v}: ${r.stderr}`);
            }
        }
        const get = (k: string) => settings.find(([x]) => x === k)?.[1];
        assert.ok(["volatile", "persistent", "auto", "none"].includes(get("Storage") ?? ""));
        assert.match(get("SystemMaxUse") ?? "", /^[0-9]+[KMGT]?$/);
        // And the check can fail:
        assert.ok(!table.has("Journal.MaxRetentionDays"));
        assert.notEqual(run("systemd-analyze", ["timespan", "90days-ish"]).code, 0);
    });

    it("script: installs the drop-in once, then reports unchanged", (t) => {
        if (!requireRoot(t) || !requireTool(t, "unshare")) return;
        const etc = copyDir("/etc/systemd");
        try {
            const first = runInSandbox(s.script, { "/etc/systemd": etc });
            assert.equal(first.code, 0, first.stdout + first.stderr);
            assert.match(first.stdout, /citadel: journald: installed \/etc\/systemd\/journald\.conf\.d\/citadel\.conf/);
            const installed = path.join(etc, "journald.conf.d", "citadel.conf");
            assert.equal(fs.readFileSync(installed, "utf8"), content);
            assert.equal(fs.statSync(installed).mode & 0o777, 0o644);
            const second = runInSandbox(s.script, { "/etc/systemd": etc });
            assert.equal(second.code, 0, second.stdout + second.stderr);
            assert.match(second.stdout, /citadel: journald: unchanged/);
        } finally {
            fs.rmSync(etc, { recursive: true, force: true });
        }
    });
});

/**
 * A throwaway container of the lab's Debian 12 server image (no systemd: a step's own work only),
 * removed after the test; returns a runner for scripts inside it as root, or undefined when skipped.
 */
async function serverImageContainer(t: TestContext, what: string): Promise<((script: string) => RunResult) | undefined> {
    if (!requireRootAs(t, "a Docker engine")) return undefined;
    const engine = await requireDocker(t);
    if (!engine) return undefined;
    await ensureVpsImage();
    const name = `citadel-test-${what}-${randomBytes(4).toString("hex")}`;
    t.after(async () => {
        run("docker", ["rm", "--force", name], { timeout: 60_000 });
        if (engine.started) await stopDockerd({ onlyIfIdle: true });
    });
    const up = run("docker", ["run", "--detach", "--name", name, "--entrypoint", "sleep", VPS_IMAGE, "infinity"], { timeout: 60_000 });
    assert.equal(up.code, 0, up.stderr);
    return (script: string) => run("docker", ["exec", "-i", name, "bash", "-s"], { input: script, timeout: 15 * 60_000 });
}

describe("os-baseline: login notice, core dumps, kernel modules", () => {
    it("bad values name the key and the fix", () => {
        assert.throws(() => parseConfigOrThrow(prodWith({ host: { os: { banner: "Authorized use only \\l" } } })), /citadel:host\.os\.banner.*backslash, which agetty reads as an escape/s);
        assert.throws(() => parseConfigOrThrow(prodWith({ host: { os: { banner: "  " } } })), /citadel:host\.os\.banner.*is empty/s);
        assert.throws(() => parseConfigOrThrow(prodWith({ host: { os: { disabledModules: ["dccp", "usb storage"] } } })), /citadel:host\.os\.disabledModules.*is not a kernel module name/s);
        assert.throws(() => parseConfigOrThrow(prodWith({ host: { os: { umask: "020" } } })), /citadel:host\.os\.umask.*lets every account write the files others create: use 027/s);
        assert.throws(() => parseConfigOrThrow(prodWith({ host: { os: { umask: "27" } } })), /citadel:host\.os\.umask.*is not an octal umask/s);
        assert.throws(() => parseConfigOrThrow(prodWith({ host: { os: { passwordHashRounds: 1000 } } })), /citadel:host\.os\.passwordHashRounds/);
    });

    it("the step in a Debian 12 server image with kmod: installs, is unchanged, repairs, refuses a module file modprobe misreads, removes what is no longer declared", { timeout: 10 * 60_000 }, async (t) => {
        const inside = await serverImageContainer(t, "os-baseline");
        if (!inside) return;
        // A server has kmod (the lab image does not: it never loads modules): the step's modprobe check runs.
        const kmod = inside("set -e; apt-get -qq update >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get -qq install --no-install-recommends kmod >/dev/null; command -v modprobe");
        assert.equal(kmod.code, 0, kmod.stdout + kmod.stderr);
        const read = (p: string) => inside(`cat ${p}`).stdout;
        const c = prodConfig();
        const s = step(c, "os-baseline");
        assert.deepEqual(s.files.map((f) => f.path), [ISSUE_PATH, ISSUE_NET_PATH, CORE_LIMITS_PATH, COREDUMP_CONF_PATH, MODPROBE_PATH]);

        const first = inside(s.script);
        assert.equal(first.code, 0, first.stdout + first.stderr);
        for (const f of s.files) {
            assert.match(first.stdout, new RegExp(`installed ${f.path.replace(/\./g, "\\.")}`));
            assert.equal(read(f.path), f.content, f.path);
        }
        assert.match(read(ISSUE_NET_PATH), /Authorized access only/);
        // What the kernel would do on a load request, read by modprobe from the installed file.
        for (const m of c.host.os.disabledModules) assert.match(inside(`modprobe --show-depends ${m}`).stdout, /^install \/bin\/false/m, m);

        // login.defs: each declared key set once (Debian's commented examples replaced in place), the
        // knobs' packages installed, pam_tmpdir in the session stack: a login's TMPDIR is its own.
        assert.match(first.stdout, /set in \/etc\/login\.defs: UMASK 027, ENCRYPT_METHOD SHA512, SHA_CRYPT_MIN_ROUNDS 65536, SHA_CRYPT_MAX_ROUNDS 65536/);
        const defs = read(LOGIN_DEFS_PATH);
        for (const d of loginDefsSettings(c)) assert.deepEqual(defs.split("\n").filter((l) => l.split(/\s+/)[0] === d.key), [`${d.key}\t${d.value}`], d.key);
        assert.doesNotMatch(defs, /^#[ \t]*SHA_CRYPT_MIN_ROUNDS/m, "the commented example was replaced, not duplicated");
        assert.equal(inside("dpkg-query -W -f='${Status}\n' libpam-tmpdir debsums").stdout, "install ok installed\ninstall ok installed\n");
        assert.equal(inside("su -s /bin/bash -c 'echo $TMPDIR' nobody").stdout.trim(), "/tmp/user/65534");
        // What the hashing rounds do: a SHA-512 hash that the shadow tools make from login.defs carries
        // them. (A password set through PAM, passwd's way, is yescrypt: Debian 12's pam_unix.)
        const hashOf = (how: string) => inside(`echo 'citadel-rounds:not-a-real-password' | ${how} && getent shadow citadel-rounds | cut -d: -f2 | cut -d'$' -f2,3`).stdout.trim();
        inside("useradd -M citadel-rounds");
        assert.equal(hashOf("chpasswd -c SHA512"), "6$rounds=65536");
        assert.match(hashOf("chpasswd"), /^y\$/);

        const second = inside(s.script);
        assert.equal(second.code, 0, second.stdout + second.stderr);
        assert.match(second.stdout, /citadel: os-baseline: unchanged/);

        // An operator put Debian's umask back and took pam_tmpdir out: the next run restores both.
        inside(`sed -i 's/^UMASK.*/UMASK\t\t022/' ${LOGIN_DEFS_PATH} && pam-auth-update --disable tmpdir`);
        assert.equal(inside("su -s /bin/bash -c 'echo ${TMPDIR:-unset}' nobody").stdout.trim(), "unset");
        const restored = inside(s.script);
        assert.equal(restored.code, 0, restored.stdout + restored.stderr);
        assert.match(restored.stdout, /pam_tmpdir enabled in the session stacks/);
        assert.match(restored.stdout, /set in \/etc\/login\.defs/);
        assert.equal(read(LOGIN_DEFS_PATH), defs);

        // An upgrade (or an operator) put Debian's notice back: the next run restores the declared one.
        inside(`echo 'Debian GNU/Linux 12' > ${ISSUE_NET_PATH}`);
        const repaired = inside(s.script);
        assert.match(repaired.stdout, /installed \/etc\/issue\.net/);
        assert.equal(read(ISSUE_NET_PATH), s.files[1].content);

        // A module file modprobe misreads (a typo in a line) is refused before it is installed.
        const before = read(MODPROBE_PATH);
        const broken = inside(s.script.replace("install dccp /bin/false", "instal dccp /bin/false"));
        assert.notEqual(broken.code, 0);
        assert.match(broken.stderr, /modprobe does not read the staged module file as intended for dccp/);
        assert.equal(read(MODPROBE_PATH), before, "the live file changed");

        // Allowing core dumps and no module list removes Citadel's files (turning a control off is real).
        const off = step(parseConfigOrThrow(prodWith({ host: { os: { coreDumps: true, disabledModules: [] } } })), "os-baseline");
        assert.deepEqual(off.files.map((f) => f.path), [ISSUE_PATH, ISSUE_NET_PATH]);
        const r = inside(off.script);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        for (const p of [CORE_LIMITS_PATH, COREDUMP_CONF_PATH, MODPROBE_PATH]) {
            assert.match(r.stdout, new RegExp(`removed ${p.replace(/\./g, "\\.")} \\(no longer declared\\)`));
            assert.equal(inside(`test -e ${p}`).code, 1, p);
        }
    });
});

describe("auditd: the CIS Docker Benchmark's watches (1.1.3-1.1.18)", () => {
    it("one watch per CIS item with its key; binaries watched for writes, runs and attributes, the rest for writes and attributes", () => {
        const rules = renderDockerAuditRules();
        const cis = [...rules.matchAll(/^# CIS (\S+)$/gm)].map((m) => m[1]);
        // The two under /run last: at boot they fail until containerd runs, and a failed line stops the rest.
        assert.deepEqual(cis, ["1.1.3", "1.1.5", "1.1.6", "1.1.7", "1.1.9", "1.1.10", "1.1.11", "1.1.12", "1.1.14", "1.1.15", "1.1.16", "1.1.17", "1.1.18", "1.1.4", "1.1.8"]);
        for (const l of rules.split("\n").filter((x) => x.startsWith("-w "))) assert.match(l, /^-w \/\S+ -p (wxa|wa) -k citadel-docker$/, l);
    });

    it("the step in a Debian 12 server image: the unit's condition before the package, the rules installed, not loaded in a container; unchanged; off removes them", { timeout: 10 * 60_000 }, async (t) => {
        const inside = await serverImageContainer(t, "auditd");
        if (!inside) return;
        const s = step(prodConfig(), "auditd");
        assert.deepEqual(s.files.map((f) => f.path), [AUDITD_DROPIN, CONTAINERD_DROPIN, AUDIT_RULES_PATH]);
        const first = inside(s.script);
        assert.equal(first.code, 0, first.stdout + first.stderr);
        assert.match(first.stdout, /installed auditd/);
        assert.match(first.stdout, /rules not loaded here: a container cannot use the kernel's audit/);
        for (const f of s.files) assert.equal(inside(`cat ${f.path}`).stdout, f.content, f.path);
        // The package's rules directory stays root-only.
        assert.equal(inside(`stat -c %a ${path.dirname(AUDIT_RULES_PATH)} ${AUDIT_RULES_PATH}`).stdout, "750\n640\n");
        // Every watched file is where Debian 12's docker.io, containerd and runc put it; the runtime
        // directories (made when Docker runs) have their parent (a watch needs its directory).
        for (const w of DOCKER_AUDIT_WATCHES) {
            const runtime = w.path.startsWith("/run/") || w.path === "/var/lib/docker" || w.path === "/etc/docker/daemon.json";
            assert.equal(inside(`test -e ${runtime ? path.dirname(w.path.replace("/containerd.sock", "")) : w.path}`).code, 0, `CIS ${w.cis} ${w.path}`);
        }
        // auditctl itself refuses here (no kernel audit in a container): why the step does not load.
        assert.match(inside("auditctl -l 2>&1").stdout, /must be root|Operation not permitted/);
        const second = inside(s.script);
        assert.equal(second.code, 0, second.stdout + second.stderr);
        assert.match(second.stdout, /citadel: auditd: unchanged/);

        const off = step(parseConfigOrThrow(prodWith({ host: { os: { auditDocker: false } } })), "auditd");
        assert.deepEqual(off.files, []);
        const r = inside(off.script);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        for (const p of [AUDIT_RULES_PATH, CONTAINERD_DROPIN, AUDITD_DROPIN]) {
            assert.match(r.stdout, new RegExp(`removed ${p.replace(/\./g, "\\.")}`));
            assert.equal(inside(`test -e ${p}`).code, 1, p);
        }
    });
});

describe("unattended-upgrades: the pending Debian-Security updates applied by the step (a Debian 12 server image)", () => {
    it("the step names and installs what is pending; with applyAtConverge off it leaves them; a second run finds none", { timeout: 20 * 60_000 }, async (t) => {
        // The lab's server image: Debian 12 as built from the archive's release, behind Debian-Security.
        const inside = await serverImageContainer(t, "upgrades");
        if (!inside) return;
        const scriptOf = (apply: boolean) => step(parseConfigOrThrow(prodWith({ host: { unattendedUpgrades: { applyAtConverge: apply } } })), "unattended-upgrades").script;
        // What unattended-upgrade itself would still install (its dry run, on fresh package lists).
        const pending = () => {
            const r = inside("set -e; apt-get -qq update >/dev/null; unattended-upgrade --dry-run -v 2>&1");
            assert.equal(r.code, 0, r.stdout + r.stderr);
            return /No packages found that can be upgraded unattended/.test(r.stdout) ? "" : r.stdout;
        };

        // Control: the same step with applyAtConverge off configures upgrades and installs nothing now.
        const off = inside(scriptOf(false));
        assert.equal(off.code, 0, off.stdout + off.stderr);
        assert.doesNotMatch(off.stdout, /applied|Debian-Security update pending/);
        assert.match(pending(), /Packages that will be upgraded: \S/, "the image has no pending security update: this test cannot tell");

        const first = inside(scriptOf(true));
        assert.equal(first.code, 0, first.stdout + first.stderr);
        const applied = /citadel: unattended-upgrades: applied Debian-Security updates: (\d+) packages installed at a new version: (.*)$/m.exec(first.stdout);
        assert.ok(applied, first.stdout + first.stderr);
        t.diagnostic(`applied ${applied[1]}: ${applied[2]}`);
        assert.doesNotMatch(first.stderr, /warning/);
        // Each named package is installed at the named version.
        for (const item of applied[2].split(", ")) {
            const [pkg, version] = item.split(" ");
            const q = inside(`dpkg-query -W -f='\${Version}' ${pkg}`);
            assert.equal(q.stdout, version, item);
        }
        // The second run's own unattended-upgrade finds nothing left (what the nightly run would see).
        const second = inside(scriptOf(true));
        assert.equal(second.code, 0, second.stdout + second.stderr);
        assert.match(second.stdout, /citadel: unattended-upgrades: no Debian-Security update pending/);
        assert.match(second.stdout, /citadel: unattended-upgrades: unchanged/);
    });
});

describe("unattended-upgrades", () => {
    // What Debian's package ships (abridged): plain "Debian" point releases too, and 20auto-upgrades from debconf.
    const DEBIAN_50 = [
        "Unattended-Upgrade::Origins-Pattern {",
        '        "origin=Debian,codename=${distro_codename},label=Debian";',
        '        "origin=Debian,codename=${distro_codename},label=Debian-Security";',
        '        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";',
        "};",
        "",
    ].join("\n");
    const DEBIAN_20 = 'APT::Periodic::Update-Package-Lists "0";\nAPT::Periodic::Unattended-Upgrade "0";\n';

    /** apt-config dump with exactly these apt.conf.d parts (APT_CONFIG is read before the parts dir). */
    function aptDump(parts: Record<string, string>): RunResult {
        const dir = tmpDir("citadel-apt-");
        try {
            fs.mkdirSync(path.join(dir, "parts"));
            for (const [name, text] of Object.entries(parts)) fs.writeFileSync(path.join(dir, "parts", name), text);
            fs.writeFileSync(path.join(dir, "apt.conf"), `Dir::Etc::Parts "${dir}/parts";\n`);
            return run("apt-config", ["dump"], { env: { ...process.env, APT_CONFIG: path.join(dir, "apt.conf") } });
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    }
    const values = (dump: string, key: string) =>
        dump
            .split("\n")
            .map((l) => new RegExp(`^${key.replace(/[:]/g, "\\:")}(?:::)? "(.*)";$`).exec(l)?.[1])
            .filter((v): v is string => v !== undefined && v !== "");

    for (const c of variants()) {
        const u = c.host.unattendedUpgrades;
        const s = step(c, "unattended-upgrades");
        it(`apt reads our files after Debian's: security origins only, periodic ${u.enabled ? "on" : "off"}, reboot ${u.autoReboot ? "on" : "off"}`, (t) => {
            if (!requireTool(t, "apt-config")) return;
            const r = aptDump({
                "20auto-upgrades": DEBIAN_20,
                [path.basename(AUTO_UPGRADES_PATH)]: fileOf(s, AUTO_UPGRADES_PATH),
                "50unattended-upgrades": DEBIAN_50,
                [path.basename(UNATTENDED_UPGRADES_PATH)]: fileOf(s, UNATTENDED_UPGRADES_PATH),
            });
            assert.equal(r.code, 0, r.stderr);
            assert.equal(r.stderr, "");
            assert.deepEqual(values(r.stdout, "Unattended-Upgrade::Origins-Pattern"), SECURITY_ORIGIN_PATTERNS);
            assert.ok(values(r.stdout, "Unattended-Upgrade::Origins-Pattern").every((o) => o.includes("label=Debian-Security")));
            const on = u.enabled ? "1" : "0";
            assert.deepEqual(values(r.stdout, "APT::Periodic::Unattended-Upgrade"), [on]);
            assert.deepEqual(values(r.stdout, "APT::Periodic::Update-Package-Lists"), [on]);
            assert.deepEqual(values(r.stdout, "Unattended-Upgrade::Automatic-Reboot"), [String(u.autoReboot)]);
            assert.deepEqual(values(r.stdout, "Unattended-Upgrade::Automatic-Reboot-Time"), [u.autoRebootTime]);
            assert.ok(values(r.stdout, "DPkg::Options").includes("--force-confold") || values(r.stdout, "Dpkg::Options").includes("--force-confold"));
        });
    }

    it("secure defaults: reboot in the window when a kernel needs it, even with users logged in (apt-config)", (t) => {
        if (!requireTool(t, "apt-config")) return;
        const c = parseConfigOrThrow(prodWith({}));
        assert.equal(c.host.unattendedUpgrades.autoReboot, true);
        assert.equal(c.host.unattendedUpgrades.restartServices, "auto");
        const r = aptDump({ "50unattended-upgrades": DEBIAN_50, [path.basename(UNATTENDED_UPGRADES_PATH)]: fileOf(step(c, "unattended-upgrades"), UNATTENDED_UPGRADES_PATH) });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(values(r.stdout, "Unattended-Upgrade::Automatic-Reboot"), ["true"]);
        assert.deepEqual(values(r.stdout, "Unattended-Upgrade::Automatic-Reboot-WithUsers"), ["true"]);
        assert.deepEqual(values(r.stdout, "Unattended-Upgrade::Automatic-Reboot-Time"), [c.host.unattendedUpgrades.autoRebootTime]);
    });

    it("needrestart's own config loader (Debian's needrestart.conf) reads the restart mode, no hints, Docker left to the reboot", (t) => {
        if (!requireTool(t, "perl") || !requireTool(t, "apt-get") || !requireTool(t, "dpkg-deb")) return;
        // Debian's package, unpacked (not installed: its apt hook would act on this machine's apt runs).
        const cache = path.resolve(__dirname, "..", "..", ".cache", "debs");
        fs.mkdirSync(cache, { recursive: true });
        let deb = fs.readdirSync(cache).find((f) => /^needrestart_.*\.deb$/.test(f));
        if (!deb) {
            const d = run("apt-get", ["download", "needrestart"], { cwd: cache, timeout: 120_000 });
            deb = fs.readdirSync(cache).find((f) => /^needrestart_.*\.deb$/.test(f));
            if (!deb) {
                if (IN_CI) assert.fail(`apt-get download needrestart: ${d.stderr}`);
                t.skip(`needrestart's package could not be downloaded: ${d.stderr.trim().slice(-200)}`);
                return;
            }
        }
        const dir = tmpDir("citadel-needrestart-");
        try {
            const x = run("dpkg-deb", ["-x", path.join(cache, deb), path.join(dir, "pkg")]);
            assert.equal(x.code, 0, x.stderr);
            const conf = fs.readFileSync(path.join(dir, "pkg", "etc", "needrestart", "needrestart.conf"), "utf8");
            assert.ok(conf.includes("/etc/needrestart/conf.d"), "Debian's needrestart.conf no longer reads conf.d");
            const effective = (drop: string) => {
                // The same file with its conf.d directory moved here; everything else as needrestart runs it.
                fs.rmSync(path.join(dir, "conf.d"), { recursive: true, force: true });
                fs.mkdirSync(path.join(dir, "conf.d"));
                fs.writeFileSync(path.join(dir, "conf.d", path.basename(NEEDRESTART_PATH)), drop);
                fs.writeFileSync(path.join(dir, "needrestart.conf"), conf.replaceAll("/etc/needrestart/conf.d", path.join(dir, "conf.d")));
                const probe = String.raw`our %nrconf; our $LOGPREF = ""; do $ARGV[0]; die $@ if $@; my @o = grep { "containerd.service" =~ $_ } keys %{$nrconf{override_rc}}; print join(" ", $nrconf{restart}, $nrconf{kernelhints}, $nrconf{ucodehints}, scalar(@o), map { $nrconf{override_rc}{$_} } @o)`;
                return run("perl", ["-e", probe, path.join(dir, "needrestart.conf")]);
            };
            for (const [mode, letter] of [["auto", "a"], ["list", "l"]] as const) {
                const c = parseConfigOrThrow(prodWith({ host: { unattendedUpgrades: { restartServices: mode } } }));
                const r = effective(fileOf(step(c, "unattended-upgrades"), NEEDRESTART_PATH));
                assert.equal(r.code, 0, r.stderr);
                // restart mode, kernel hints, microcode hints, then containerd.service's override: never restarted.
                assert.equal(r.stdout, `${letter} 0 0 1 0`);
            }
            // The check has teeth: a broken drop-in makes needrestart.conf die, as needrestart would.
            const broken = effective("$nrconf{restart} = 'a'\n$nrconf{kernelhints} = 0;\n");
            assert.notEqual(broken.code, 0);
            assert.match(broken.stderr, /Error parsing/);
            // Off with unattended upgrades: no needrestart file at all.
            const off = step(parseConfigOrThrow(prodWith({ host: { unattendedUpgrades: { enabled: false } } })), "unattended-upgrades");
            assert.ok(!off.files.some((f) => f.path === NEEDRESTART_PATH));
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("apt-config rejects a broken variant (so the script's check has teeth)", (t) => {
        if (!requireTool(t, "apt-config")) return;
        const good = fileOf(step(prodConfig(), "unattended-upgrades"), UNATTENDED_UPGRADES_PATH);
        // A value without its ";", as a bad edit would leave it.
        const broken = good.replace('Unattended-Upgrade::MinimalSteps "true";', 'Unattended-Upgrade::MinimalSteps "true"');
        assert.notEqual(broken, good);
        const r = aptDump({ "52citadel-unattended-upgrades": broken });
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /E: Syntax error/);
    });

    it("script (disabled variant, no package install): installs both files once, then unchanged", (t) => {
        if (!requireRoot(t) || !requireTool(t, "unshare") || !requireTool(t, "apt-config")) return;
        const c = parseConfigOrThrow(prodWith({ host: { unattendedUpgrades: { enabled: false } } }));
        const s = step(c, "unattended-upgrades");
        const etc = copyDir("/etc/apt");
        try {
            const first = runInSandbox(s.script, { "/etc/apt": etc });
            assert.equal(first.code, 0, first.stdout + first.stderr);
            for (const f of s.files) {
                assert.match(first.stdout, new RegExp(`installed ${f.path}`));
                assert.equal(fs.readFileSync(path.join(etc, "apt.conf.d", path.basename(f.path)), "utf8"), f.content);
            }
            assert.doesNotMatch(first.stderr, /warning/);
            const second = runInSandbox(s.script, { "/etc/apt": etc });
            assert.equal(second.code, 0, second.stdout + second.stderr);
            assert.match(second.stdout, /citadel: unattended-upgrades: unchanged/);
            // A later file that adds a non-security origin is reported.
            fs.writeFileSync(path.join(etc, "apt.conf.d", "90local"), 'Unattended-Upgrade::Origins-Pattern { "origin=Debian,codename=${distro_codename},label=Debian"; };\n');
            const third = runInSandbox(s.script, { "/etc/apt": etc });
            assert.equal(third.code, 0, third.stdout + third.stderr);
            assert.match(third.stderr, /warning: a later apt\.conf\.d file changes the upgrade origins/);
        } finally {
            fs.rmSync(etc, { recursive: true, force: true });
        }
    });
});
