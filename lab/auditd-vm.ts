// The audit rules Citadel renders, loaded by auditctl into a real kernel (issue 13, CIS Docker
// 1.1.3-1.1.18). The lab VPS is a container, whose kernel (this machine's) refuses audit rules from
// inside it, so the auditd step installs the file but cannot load it there. Here a throwaway VM does:
// Debian 12's own kernel (linux-image-amd64), booted by qemu without KVM (nested KVM refuses
// `-cpu host` here) from an initramfs holding busybox-static, Debian's auditctl and the rules file;
// its init loads the rules as at boot (no /run/containerd yet) and again once it exists, lists them
// each time, tries a file that must be refused, and powers off.
// test/render/auditd-vm.test.ts asserts on what it prints; `tsx lab/auditd-vm.ts` prints a summary.
//
// Needs qemu-system-x86 and busybox-static (lab/prereqs.sh); downloads the kernel, auditd and
// libauparse0 packages into .cache/auditd-vm (extracted, never installed).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renderDockerAuditRules } from "../components/render/auditd";
import { run } from "./vps/common";

const ROOT = path.resolve(__dirname, "..");
const CACHE = path.join(ROOT, ".cache", "auditd-vm");
const must = (cmd: string, args: string[], opts: { cwd?: string; timeout?: number } = {}): string => {
    const r = run(cmd, args, { timeout: opts.timeout ?? 300_000, cwd: opts.cwd });
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
    return r.stdout;
};

/**
 * The .deb of a package, its `members` (tar patterns) extracted under CACHE/x/<name> and kept: the
 * kernel's package is mostly modules the VM never loads (400 MB extracted). Each call downloads and
 * extracts in a directory of its own, then renames it into place, so two runs never share a half.
 */
function extracted(pkg: string, members: string): string {
    const dir = path.join(CACHE, "x", pkg);
    if (fs.existsSync(dir)) return dir;
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    const work = fs.mkdtempSync(`${dir}.tmp-`);
    try {
        must("apt-get", ["download", pkg], { cwd: work });
        const deb = fs.readdirSync(work).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
        if (!deb) throw new Error(`apt-get download ${pkg} left no .deb in ${work}`);
        const into = path.join(work, "x");
        fs.mkdirSync(into);
        must("sh", ["-c", 'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards "$3"', "sh", path.join(work, deb), into, members]);
        try {
            fs.renameSync(into, dir);
        } catch (e) {
            // Another run put it in place meanwhile: theirs is as good.
            if (!fs.existsSync(dir)) throw e;
        }
        return dir;
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

/** Kernel, auditctl and libauparse from Debian's packages (cached). */
function packages(): { kernel: string; auditd: string; auparse: string } {
    // linux-image-amd64 is a metapackage: the image it depends on holds the kernel.
    const image = /Depends: (linux-image-[^\s]+)/.exec(must("apt-cache", ["depends", "linux-image-amd64"]))?.[1];
    if (!image) throw new Error("apt-cache depends linux-image-amd64 names no kernel image");
    const kernelDir = path.join(extracted(image, "./boot/vmlinuz-*"), "boot");
    return {
        kernel: path.join(kernelDir, fs.readdirSync(kernelDir).find((f) => f.startsWith("vmlinuz-"))!),
        auditd: extracted("auditd", "./sbin/auditctl"),
        auparse: extracted("libauparse0", "./lib/x86_64-linux-gnu/libauparse.so.0*"),
    };
}

/**
 * packages(), once more after `apt-get update` if it failed: lists kept from an earlier day can name
 * a kernel the archive no longer has (a security update replaced it).
 */
function packagesFresh(): ReturnType<typeof packages> {
    try {
        return packages();
    } catch {
        must("apt-get", ["update", "-qq"], { timeout: 600_000 });
        return packages();
    }
}

/** The tools the VM needs on this machine. */
export const AUDITD_VM_TOOLS = ["qemu-system-x86_64", "busybox", "apt-get", "apt-cache", "dpkg-deb", "gzip"];

export interface AuditdVmRun {
    kernel: string;
    seconds: number;
    /** As at boot, before containerd made /run/containerd: auditctl -R's exit status and what it printed. */
    boot: { rc: number; output: string; listed: string[] };
    /** Once /run/containerd exists (containerd's unit loads the rules again): the same. */
    containerd: { rc: number; output: string; listed: string[] };
    /** auditctl -R of the `mustFail` file exited non-zero. */
    refused: boolean;
    /** The VM's console, for a failure's message. */
    console: string;
}

/**
 * Boots the VM once. As at boot: the directories a Docker host has before containerd runs (every
 * watch's parent but /run/containerd), `rules` loaded and listed. Then /run/containerd made and the
 * rules loaded again, as containerd's unit does. Last, `mustFail` tried (a file auditctl must refuse).
 */
export function bootAuditctl(rules: string, mustFail: string): AuditdVmRun {
    for (const tool of AUDITD_VM_TOOLS) {
        if (run("sh", ["-c", `command -v ${tool}`]).code !== 0) throw new Error(`${tool} is missing (apt-get install qemu-system-x86 busybox-static)`);
    }
    fs.mkdirSync(CACHE, { recursive: true });
    const { kernel, auditd, auparse } = packagesFresh();

    // This run's initramfs, in a directory of its own.
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "citadel-auditd-vm-"));
    try {
        const root = path.join(work, "root");
        for (const d of ["bin", "sbin", "proc", "sys", "dev", "etc", "lib/x86_64-linux-gnu", "lib64"]) fs.mkdirSync(path.join(root, d), { recursive: true });
        fs.copyFileSync(must("sh", ["-c", "command -v busybox"]).trim(), path.join(root, "bin", "busybox"));
        fs.copyFileSync(path.join(auditd, "sbin", "auditctl"), path.join(root, "sbin", "auditctl"));
        fs.chmodSync(path.join(root, "bin", "busybox"), 0o755);
        fs.chmodSync(path.join(root, "sbin", "auditctl"), 0o755);
        // auditctl's libraries: this machine's (the same Debian 12), libauparse from its package.
        for (const lib of ["libaudit.so.1", "libc.so.6", "libcap-ng.so.0"]) fs.copyFileSync(fs.realpathSync(`/lib/x86_64-linux-gnu/${lib}`), path.join(root, "lib/x86_64-linux-gnu", lib));
        fs.copyFileSync(fs.realpathSync(path.join(auparse, "lib/x86_64-linux-gnu/libauparse.so.0")), path.join(root, "lib/x86_64-linux-gnu/libauparse.so.0"));
        fs.copyFileSync(fs.realpathSync("/lib64/ld-linux-x86-64.so.2"), path.join(root, "lib64", "ld-linux-x86-64.so.2"));

        fs.writeFileSync(path.join(root, "etc", "citadel-docker.rules"), rules);
        fs.writeFileSync(path.join(root, "etc", "broken.rules"), mustFail);
        fs.writeFileSync(
            path.join(root, "init"),
            `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
# The directories a Docker host has at boot (a watch needs its path's parent), /run/containerd not yet.
for p in $(sed -n 's/^-w \\([^ ]*\\) .*/\\1/p' /etc/citadel-docker.rules); do d=$(dirname "$p"); case "$d" in /run/containerd*) ;; *) mkdir -p "$d" ;; esac; done
auditctl -D >/dev/null
echo "=== boot"; auditctl -R /etc/citadel-docker.rules 2>&1; echo "rc=$?"
echo "=== boot-list"; auditctl -l
mkdir -p /run/containerd; auditctl -D >/dev/null
echo "=== containerd"; auditctl -R /etc/citadel-docker.rules 2>&1; echo "rc=$?"
echo "=== containerd-list"; auditctl -l
echo "=== broken"; auditctl -R /etc/broken.rules; echo "broken rc=$?"; echo "=== end"
poweroff -f
`,
            { mode: 0o755 },
        );
        const initrd = path.join(work, "initrd.gz");
        must("sh", ["-c", `cd "$1" && find . | busybox cpio -o -H newc 2>/dev/null | gzip >"$2"`, "sh", root, initrd]);

        const t = Date.now();
        const vm = run("qemu-system-x86_64", ["-accel", "tcg", "-m", "256", "-nographic", "-no-reboot", "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 audit=1 quiet panic=-1"], { timeout: 180_000 });
        const out = vm.stdout.replace(/\r/g, "");
        const section = (name: string) => (out.split(`=== ${name}\n`)[1] ?? "").split("=== ")[0];
        const load = (name: string) => {
            const text = section(name);
            const rc = Number(/^rc=(\d+)$/m.exec(text)?.[1] ?? -1);
            return { rc, output: text.replace(/^rc=\d+$/m, "").trim(), listed: section(`${name}-list`).split("\n").filter((l) => l.startsWith("-")) };
        };
        return {
            kernel: path.basename(kernel),
            seconds: (Date.now() - t) / 1000,
            boot: load("boot"),
            containerd: load("containerd"),
            refused: /broken rc=[1-9]/.test(section("broken")),
            console: out.slice(-4000) + (vm.code === 0 ? "" : `\n(qemu exit ${vm.code}) ${vm.stderr.slice(-1000)}`),
        };
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

/** A permission auditctl does not know: the control that a load can fail. */
export const BROKEN_AUDIT_RULE = "-w /etc/docker -p wz -k citadel-docker\n";

if (require.main === module) {
    const rules = renderDockerAuditRules();
    const r = bootAuditctl(rules, BROKEN_AUDIT_RULE);
    const declared = rules.split("\n").filter((l) => l.startsWith("-w "));
    console.log(`kernel ${r.kernel}, booted and powered off in ${r.seconds.toFixed(1)} s`);
    console.log(`at boot (no /run/containerd): auditctl -R exit ${r.boot.rc}, ${r.boot.listed.length} of ${declared.length} rules listed${r.boot.output ? ` (${r.boot.output.split("\n")[0]})` : ""}`);
    console.log(`with /run/containerd: auditctl -R exit ${r.containerd.rc}, ${r.containerd.listed.length} of ${declared.length} rules listed; a broken file refused: ${r.refused ? "yes" : "NO"}`);
    if (r.containerd.rc !== 0 || r.containerd.listed.length !== declared.length || !r.refused) {
        console.log(r.console);
        process.exitCode = 1;
    }
}
