// The local VPS harness: a Debian 12 container booted by cloud-init with the user-data the hcloud
// target renders, then checked over REAL SSH with the host key pinned out of band.
// Run: npx tsx --test test/vps/vps.test.ts   (first run builds the images: ~2 min, cached after)
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parseConfigOrThrow } from "../../components/config";
import { renderCloudInit } from "../../components/render/cloudinit";
import { stopDockerd } from "../../lab/vps/dockerd";
import { BASE_IMAGE, VPS_IMAGE, debianMirror, debianSources, ensureVpsImage, parseDeb822Sources, parseOneLineSources, renderVpsSources } from "../../lab/vps/image";
import { LAB_NETWORK, VpsInfo, knownHostsLine, loadImages, startVps, stopVps } from "../../lab/vps/vps";
import { makeKeyPair, prodRaw, prodWith } from "../fixtures";
import { freePort, requireDocker, requireTool, run, RunResult, tmpDir } from "../tools";

const NAME = `citadel-test-${process.pid}`;
const PROBE = `citadel-test-probe-${process.pid}`;

describe("local VPS image inputs", () => {
    // Fictional mirrors (example.* is reserved): the parser is what is under test, not the network.
    const deb822 = [
        "Types: deb deb-src",
        "# a comment",
        "URIs: http://mirror.example/debian",
        "Suites: bookworm bookworm-updates",
        "Components: main contrib",
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
        "",
        "Types: deb",
        "URIs: http://mirror.example/debian-security",
        "Suites: bookworm-security",
        "Components: main",
        "",
        "Types: deb",
        "Enabled: no",
        "URIs: http://disabled.example/debian",
        "Suites: bookworm",
        "Components: main",
        "",
        "Types: deb",
        "URIs: https://vendor.example/apt",
        "Suites: nodistro",
        "Components: main",
        "Signed-By: /usr/share/keyrings/vendor.gpg",
    ].join("\n");
    const oneLine = "# deb http://old.example/debian bookworm main\ndeb [arch=amd64] http://other.example/debian bookworm main\ndeb-src http://other.example/debian bookworm main\n";

    it("picks the mirror from this machine's own apt sources (deb822 and one-line), never a vendor repo", () => {
        const parsed = parseDeb822Sources(deb822);
        assert.equal(parsed.length, 3, "the Enabled: no stanza is skipped");
        const debian = debianSources(parsed);
        assert.deepEqual(debian.map((s) => s.uris[0]), ["http://mirror.example/debian", "http://mirror.example/debian-security"]);
        assert.equal(debianMirror(debian), "http://mirror.example/debian");
        assert.match(renderVpsSources(debian), /^Suites: bookworm-security$/m);
        assert.doesNotMatch(renderVpsSources(debian), /vendor|disabled/);

        const one = parseOneLineSources(oneLine);
        assert.deepEqual(one, [{ uris: ["http://other.example/debian"], suites: ["bookworm"], components: ["main"], signedBy: undefined }]);
        assert.equal(debianMirror(debianSources(one)), "http://other.example/debian");
        assert.throws(() => debianMirror(debianSources(parseDeb822Sources(deb822.split("\n\n")[3]))), /no "bookworm main" Debian source/);
    });

    it("finds a Debian mirror on this machine", () => {
        assert.match(debianMirror(), /^https?:\/\/\S+$/);
    });
});

describe("local VPS (Debian 12 + systemd + cloud-init NoCloud, real SSH)", { timeout: 25 * 60_000 }, () => {
    it("boots with the hcloud user-data and behaves like a fresh server", async (t) => {
        for (const bin of ["ssh", "ssh-keygen", "docker", "zstd"]) if (!requireTool(t, bin)) return;
        const docker = await requireDocker(t);
        if (!docker) return;
        const dir = tmpDir("citadel-vps-");
        t.after(async () => {
            run("docker", ["rm", "--force", PROBE], { timeout: 60_000 });
            await stopVps(NAME);
            if (docker.started) await stopDockerd({ onlyIfIdle: true });
            fs.rmSync(dir, { recursive: true, force: true });
        });

        const img = await ensureVpsImage();
        t.diagnostic(
            `image ${img.tag}: ${img.action} in ${img.seconds} s` + (img.base ? `; base ${img.base.tag}: ${img.base.action} in ${img.base.seconds} s` : ""),
        );

        await t.test("the image carries no identity: no host keys, no users, no machine-id, no cloud-init state", () => {
            const r = run("docker", ["run", "--rm", "--network", "none", VPS_IMAGE, "sh", "-c",
                "ls /etc/ssh/ssh_host_* 2>/dev/null; awk -F: '$3 >= 1000 && $3 < 65534 {print \"user:\" $1}' /etc/passwd; " +
                "ls /etc/ssh/sshd_config.d/; wc -c < /etc/machine-id; ls -d /var/lib/cloud 2>/dev/null; true"], { timeout: 60_000 });
            assert.equal(r.code, 0, r.stderr);
            assert.equal(r.stdout.trim(), "0", `unexpected identity in ${VPS_IMAGE}:\n${r.stdout}`);
        });

        // The REAL user-data: the prod example with the admin's keys replaced by a test key.
        const key = makeKeyPair(dir);
        const admin = { ...(JSON.parse(prodRaw()["citadel:admin"]) as Record<string, unknown>), sshPublicKeys: [key.publicKey] };
        const config = parseConfigOrThrow(prodWith({ admin }));
        const user = config.admin.user;
        // Its engine's store seeded with one image (lab/vps/image-seed.ts), as the e2e VPSes are with the stack's.
        const info: VpsInfo = await startVps({ name: NAME, userData: renderCloudInit(config), sshPort: await freePort(), seedImages: [BASE_IMAGE] });
        t.diagnostic(`booted to ssh-ready in ${info.bootSeconds} s; ${info.address} on ${LAB_NETWORK}; ssh 127.0.0.1:${info.sshPort}`);
        assert.match(info.hostKey, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5[A-Za-z0-9+/=]+$/);

        // The host key is pinned from `docker exec` (out of band): ssh must refuse any other.
        const knownHosts = path.join(dir, "known_hosts");
        fs.writeFileSync(knownHosts, knownHostsLine(info) + "\n");
        const baseOpts = (kh: string) => [
            "-p", String(info.sshPort),
            "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${kh}`, "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "IdentitiesOnly=yes", "-F", "/dev/null",
        ];
        const ssh = (login: string, cmd: string, timeout = 60_000): RunResult =>
            run("ssh", ["-i", key.privateKeyPath, ...baseOpts(knownHosts), `${login}@127.0.0.1`, cmd], { timeout });

        await t.test("the admin logs in with its key; the pinned host key is the one sshd presents", () => {
            const r = ssh(user, "id -un");
            assert.equal(r.code, 0, r.stderr);
            assert.equal(r.stdout.trim(), user);

            const wrong = makeKeyPair(dir, "other_host_key");
            const wrongKh = path.join(dir, "known_hosts.wrong");
            fs.writeFileSync(wrongKh, `[127.0.0.1]:${info.sshPort} ${wrong.publicKey.split(" ").slice(0, 2).join(" ")}\n`);
            const m = run("ssh", ["-i", key.privateKeyPath, ...baseOpts(wrongKh), `${user}@127.0.0.1`, "true"]);
            assert.notEqual(m.code, 0, "ssh accepted a host key that is not the VPS's");
            assert.match(m.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
        });

        await t.test("passwordless sudo from cloud-init's sudo rule", () => {
            const r = ssh(user, "sudo -n true && sudo -n id -u");
            assert.equal(r.code, 0, r.stderr);
            assert.equal(r.stdout.trim(), "0");
        });

        await t.test("root cannot log in with the same key (disable_root)", () => {
            const r = ssh("root", "echo ROOT_SHELL_OPENED");
            assert.notEqual(r.code, 0);
            assert.doesNotMatch(r.stdout, /ROOT_SHELL_OPENED/);
        });

        await t.test("password authentication is not offered (ssh_pwauth: false)", () => {
            const r = run("ssh", ["-v", ...baseOpts(knownHosts), "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=keyboard-interactive,password", `${user}@127.0.0.1`, "true"]);
            assert.notEqual(r.code, 0);
            const offered = /Authentications that can continue: (\S+)/.exec(r.stderr)?.[1];
            assert.equal(offered, "publickey", r.stderr);
            const eff = ssh(user, "sudo -n /usr/sbin/sshd -T | grep -E '^(passwordauthentication|kbdinteractiveauthentication) '");
            assert.equal(eff.code, 0, eff.stderr);
            assert.match(eff.stdout, /^passwordauthentication no$/m);
        });

        await t.test("systemd reaches running (or degraded without ssh/cloud-init failures)", () => {
            const r = ssh(user, "systemctl is-system-running --wait", 90_000);
            const state = r.stdout.trim();
            assert.ok(["running", "degraded"].includes(state), `system state: ${state} ${r.stderr}`);
            if (state === "degraded") {
                const failed = ssh(user, "systemctl --failed --no-legend --plain").stdout;
                t.diagnostic(`degraded; failed units:\n${failed}`);
                assert.doesNotMatch(failed, /^(ssh|sshd|cloud-init|cloud-init-local|cloud-config|cloud-final)\.service/m);
            }
            const ci = ssh(user, "cloud-init status --long");
            assert.match(ci.stdout, /^status: done$/m, ci.stdout);
        });

        await t.test("its own Docker engine starts, and images from this machine load into it", async () => {
            const r = ssh(user, "sudo -n systemctl start docker && sudo -n docker info --format '{{.ServerVersion}} {{.Driver}}'", 120_000);
            assert.equal(r.code, 0, r.stderr);
            assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+\S* overlay2$/);
            // The seeded image is there before any load, the very build this machine has.
            const here = run("docker", ["image", "inspect", "--format", "{{.Id}}", BASE_IMAGE]).stdout.trim();
            const seeded = ssh(user, `sudo -n docker image inspect --format '{{.Id}}' ${BASE_IMAGE}`);
            assert.equal(seeded.code, 0, `not in the seeded store: ${seeded.stderr}`);
            assert.equal(seeded.stdout.trim(), here);
            // A missing one still loads (the seed only saves time).
            const extra = `citadel/vps-test-extra:${randomBytes(3).toString("hex")}`;
            run("docker", ["tag", BASE_IMAGE, extra]);
            try {
                await loadImages(NAME, [BASE_IMAGE, extra]);
                assert.equal(ssh(user, `sudo -n docker image inspect --format '{{.Id}}' ${extra}`).stdout.trim(), here);
            } finally {
                run("docker", ["rmi", extra]);
            }
            const c = ssh(user, `sudo -n docker run --rm --network none ${BASE_IMAGE} cat /etc/debian_version`, 120_000);
            assert.equal(c.code, 0, c.stderr);
            assert.match(c.stdout.trim(), /^12\.\d+$/);
        });

        await t.test("ports are published on 127.0.0.1 only, and the VPS is reachable on citadel-lab", () => {
            const ports = JSON.parse(run("docker", ["inspect", "--format", "{{json .NetworkSettings.Ports}}", NAME]).stdout) as Record<string, Array<{ HostIp: string }>>;
            for (const [p, binds] of Object.entries(ports)) for (const b of binds ?? []) assert.equal(b.HostIp, "127.0.0.1", `${p} bound to ${b.HostIp}`);
            // A second container on the lab network ("attacker" in later tests) sees sshd at info.address.
            const r = run("docker", ["run", "--rm", "--name", PROBE, "--network", LAB_NETWORK, BASE_IMAGE, "bash", "-c", `exec 3<>/dev/tcp/${info.address}/22 && head -c 8 <&3`], { timeout: 60_000 });
            assert.equal(r.code, 0, r.stderr);
            assert.equal(r.stdout, "SSH-2.0-");
        });
    });
});
