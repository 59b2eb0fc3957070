// The audit rules Citadel renders, loaded by auditctl into a real kernel (issue 13, CIS Docker
// 1.1.3-1.1.18). The lab VPS is a container, whose kernel (this machine's) refuses audit rules from
// inside it, so the auditd step installs the file but cannot load it there. Here a throwaway VM does:
// Debian 12's own kernel (linux-image-amd64), booted by qemu without KVM (nested KVM refuses
// `-cpu host` here) from an initramfs holding busybox-static, Debian's auditctl and the rules file;
// its init loads the rules, lists them, tries a second file that must be refused, and powers off.
// test/render/auditd-vm.test.ts asserts on what it prints; `tsx lab/auditd-vm.ts` prints a summary.
//
// Needs qemu-system-x86 and busybox-static (lab/prereqs.sh); downloads the kernel, auditd and
// libauparse0 packages into .cache/auditd-vm (extracted, never installed).
import * as fs from "node:fs";
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
 * The .deb of a package (downloaded once into CACHE), its `members` (tar patterns) extracted under
 * CACHE/x/<name>: the kernel's package is mostly modules the VM never loads (400 MB extracted).
 */
function extracted(pkg: string, members: string): string {
    const dir = path.join(CACHE, "x", pkg);
    if (fs.existsSync(dir)) return dir;
    must("apt-get", ["download", pkg], { cwd: CACHE });
    const deb = fs.readdirSync(CACHE).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
    if (!deb) throw new Error(`apt-get download ${pkg} left no .deb in ${CACHE}`);
    fs.mkdirSync(`${dir}.tmp`, { recursive: true });
    must("sh", ["-c", 'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards "$3"', "sh", path.join(CACHE, deb), `${dir}.tmp`, members]);
    fs.renameSync(`${dir}.tmp`, dir);
    fs.rmSync(path.join(CACHE, deb));
    return dir;
}

/** The tools the VM needs on this machine. */
export const AUDITD_VM_TOOLS = ["qemu-system-x86_64", "busybox", "apt-get", "apt-cache", "dpkg-deb", "gzip"];

export interface AuditdVmRun {
    kernel: string;
    seconds: number;
    /** auditctl -R of the rules file exited 0. */
    loaded: boolean;
    /** What `auditctl -l` printed back, one rule a line. */
    listed: string[];
    /** auditctl -R of the second file exited non-zero. */
    refused: boolean;
    /** The VM's console, for a failure's message. */
    console: string;
}

/** Boots the VM once: `rules` loaded and listed, then `mustFail` tried (a file auditctl has to refuse). */
export function bootAuditctl(rules: string, mustFail: string): AuditdVmRun {
    for (const tool of AUDITD_VM_TOOLS) {
        if (run("sh", ["-c", `command -v ${tool}`]).code !== 0) throw new Error(`${tool} is missing (apt-get install qemu-system-x86 busybox-static)`);
    }
    fs.mkdirSync(CACHE, { recursive: true });
    // linux-image-amd64 is a metapackage: the image it depends on holds the kernel.
    const image = /Depends: (linux-image-[^\s]+)/.exec(must("apt-cache", ["depends", "linux-image-amd64"]))?.[1];
    if (!image) throw new Error("apt-cache depends linux-image-amd64 names no kernel image");
    const kernelDir = path.join(extracted(image, "./boot/vmlinuz-*"), "boot");
    const kernel = path.join(kernelDir, fs.readdirSync(kernelDir).find((f) => f.startsWith("vmlinuz-"))!);
    const auditd = extracted("auditd", "./sbin/auditctl");
    const auparse = extracted("libauparse0", "./lib/x86_64-linux-gnu/libauparse.so.0*");

    const root = path.join(CACHE, "root");
    fs.rmSync(root, { recursive: true, force: true });
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
# The directories a Docker host has (a watch needs its path's parent).
for p in $(sed -n 's/^-w \\([^ ]*\\) .*/\\1/p' /etc/citadel-docker.rules); do mkdir -p "$(dirname "$p")"; done
auditctl -D >/dev/null
echo "=== load"; auditctl -R /etc/citadel-docker.rules; echo "load rc=$?"
echo "=== list"; auditctl -l; echo "=== broken"; auditctl -R /etc/broken.rules; echo "broken rc=$?"; echo "=== end"
poweroff -f
`,
        { mode: 0o755 },
    );
    const initrd = path.join(CACHE, "initrd.gz");
    must("sh", ["-c", `cd "$1" && find . | busybox cpio -o -H newc 2>/dev/null | gzip >"$2"`, "sh", root, initrd]);

    const t = Date.now();
    const vm = run("qemu-system-x86_64", ["-accel", "tcg", "-m", "256", "-nographic", "-no-reboot", "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 audit=1 quiet panic=-1"], { timeout: 180_000 });
    const out = vm.stdout.replace(/\r/g, "");
    const section = (name: string) => (out.split(`=== ${name}\n`)[1] ?? "").split("=== ")[0];
    return {
        kernel: path.basename(kernel),
        seconds: (Date.now() - t) / 1000,
        loaded: /load rc=0/.test(section("load")),
        listed: section("list").split("\n").filter((l) => l.startsWith("-")),
        refused: /broken rc=[1-9]/.test(section("broken")),
        console: out.slice(-4000) + (vm.code === 0 ? "" : `\n(qemu exit ${vm.code}) ${vm.stderr.slice(-1000)}`),
    };
}

/** A permission auditctl does not know: the control that a load can fail. */
export const BROKEN_AUDIT_RULE = "-w /etc/docker -p wz -k citadel-docker\n";

if (require.main === module) {
    const rules = renderDockerAuditRules();
    const r = bootAuditctl(rules, BROKEN_AUDIT_RULE);
    const declared = rules.split("\n").filter((l) => l.startsWith("-w "));
    const same = r.listed.length === declared.length && declared.every((l) => r.listed.includes(l));
    console.log(`kernel ${r.kernel}, booted and powered off in ${r.seconds.toFixed(1)} s`);
    console.log(`rules loaded: ${r.loaded ? "yes" : "NO"}; auditctl -l gives back ${r.listed.length} of ${declared.length} declared rules${same ? "" : " (DIFFERENT)"}; a broken file refused: ${r.refused ? "yes" : "NO"}`);
    if (!r.loaded || !same || !r.refused) {
        console.log(r.console);
        process.exitCode = 1;
    }
}
