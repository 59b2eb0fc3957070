// End to end through the Hetzner front door: `pulumi up` of the hcloud stack (target hcloud) with
// the real engine and the real hcloud provider against the lab's Hetzner Cloud API double, which
// boots a local VPS from the server's user_data and enforces the cloud firewall in front of it.
//
//   up → audit passes → perimeter checks (from a lab source outside admin.sourceIps SSH is dropped
//   even when UFW allows it; a port opened on the host stays closed from outside) → a second up
//   changes nothing → a wrong host key is refused → destroy → up again (a new server, a new pinned
//   key, the same exposure) → audit passes → destroy leaves no VPS, no fake resource, no lab rule.
//
// Two converges, as few as that sequence allows. Run: npx tsx --test test/e2e/hcloud.test.ts
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import type { StackOutputs } from "../../audit/target";
import type { Probe } from "../../audit/types";
import type { StackConfig } from "../../components/config";
import type { RunningDouble } from "../../lab/hcloud-double/run";
import { IN_CI, run } from "../tools";

// Our own VPS prefix: the double's servers are citadel-hcloud-<id>.
process.env.CITADEL_VPS_NAME ??= "citadel-hcloud";

const ROOT = path.resolve(__dirname, "..", "..");
let skip: string | false = false;
if (!fs.existsSync(path.join(ROOT, ".cache", "engine", "bin", "pulumi"))) skip = "engine not built (bash lab/engine/build.sh)";
else if (run("go", ["version"]).code !== 0) skip = "Go is not installed";
else if (run("nft", ["--version"]).code !== 0) skip = "nft is not installed";
if (IN_CI && skip) throw new Error(skip);

/** A lab address outside the stack's admin sources (172.30.99.0/25) and the double's pool. */
const OUTSIDER_IP = "172.30.99.250";

describe("e2e: the Hetzner path (hcloud target) against the lab's API double", { skip, timeout: 45 * 60_000 }, () => {
    let lab: typeof import("../../lab/hcloud");
    let hd: typeof import("../../lab/hcloud-double/run");
    let outside: typeof import("../../audit/outside");
    let double: RunningDouble;
    let config: StackConfig;
    let publicKey: string;
    let first: StackOutputs;
    let firstVps = "";
    let startedDockerd = false;
    /** Seconds of the first converge (server created through the API, booted, whole posture). */
    let firstUpSeconds = 0;
    const logRel = (name: string) => path.relative(ROOT, path.join(lab.HCLOUD_LOG_DIR, name));
    const pulumi = (args: string[], log: string) => lab.pulumiHcloud(double, publicKey, args, log);
    const up = async (log: string) => assert.equal(await pulumi(["up", "--yes", "--non-interactive", "--skip-preview"], log), 0, `pulumi up failed; see ${logRel(log)}`);
    const vpsOf = async (address: string) => {
        const servers = (await hd.api(double, "GET", "/servers")).json.servers as { id: number; public_net: { ipv4: { ip: string } } }[];
        const s = servers.find((x) => x.public_net.ipv4.ip === address);
        assert.ok(s, `no server of the double has the stack's address ${address}`);
        return { id: s.id, vps: `${lab.HCLOUD_PREFIX}-${s.id}` };
    };
    /** Runs the whole audit (no attacks) against the converged server; every check must pass. */
    const auditPasses = async (outputs: StackOutputs, log: string) => {
        const { runAudit, formatReport, failedIds } = await import("../../audit/run");
        const report = await runAudit(lab.hcloudTarget(config, outputs));
        fs.writeFileSync(path.join(lab.HCLOUD_LOG_DIR, log), formatReport(report));
        assert.deepEqual(failedIds(report), [], `audit failed; see ${logRel(log)}`);
        assert.ok(report.summary.pass >= 20, `only ${report.summary.pass} checks passed; see ${logRel(log)}`);
        return report;
    };
    /** Nothing of the stack is left: no server/firewall/key in the double, no VPS, no nftables table. */
    const nothingLeft = async () => {
        assert.deepEqual(await lab.doubleResources(double), { servers: [], firewalls: [], ssh_keys: [] }, "resources left in the double");
        const vpses = run("docker", ["ps", "-a", "--format", "{{.Names}}"]).stdout.split("\n").filter((n) => new RegExp(`^${lab.HCLOUD_PREFIX}-[0-9]+$`).test(n));
        assert.deepEqual(vpses, [], "VPSes left");
        assert.deepEqual(hd.labRuleTables(lab.HCLOUD_PREFIX), [], "lab firewall rules left");
    };

    before(async () => {
        lab = await import("../../lab/hcloud");
        hd = await import("../../lab/hcloud-double/run");
        outside = await import("../../audit/outside");
        const { dockerReady } = await import("../../lab/vps/dockerd");
        startedDockerd = !dockerReady();
        const started = await lab.startHcloudLab();
        ({ double, config, publicKey } = started);
        process.env.CITADEL_QUIET = "1";
        // A fresh stack state: the double starts empty.
        const t0 = Date.now();
        assert.equal(await lab.pulumiHcloud(double, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview"], "up.log", { reset: true }), 0, `first pulumi up failed; see ${logRel("up.log")}`);
        firstUpSeconds = (Date.now() - t0) / 1000;
        first = await lab.hcloudOutputs(double, publicKey);
    });

    after(async () => {
        const { removeProbe } = await import("../../lab/audit");
        removeProbe(lab?.HCLOUD_PROBE);
        run("docker", ["rm", "-f", `${lab?.HCLOUD_PREFIX}-outsider`]);
        if (double) {
            await lab.deleteAll(double).catch((e) => process.stderr.write(`cleanup: ${(e as Error).message}\n`));
            await double.stop();
        }
        await lab?.removeLeftovers();
        if (startedDockerd) await (await import("../../lab/vps/dockerd")).stopDockerd({ onlyIfIdle: true });
    });

    it("up created the server through the API: a VPS at the server's public IPv4, behind its firewall, its host key pinned by the scan", async (t) => {
        t.diagnostic(`first converge through the Hetzner path (server create, boot, images, whole posture): ${firstUpSeconds.toFixed(1)} s`);
        assert.match(first.address ?? "", /^172\.30\.99\.20[0-9]$/);
        const names = await lab.doubleResources(double);
        assert.deepEqual(names, { servers: ["citadel"], firewalls: ["citadel-perimeter"], ssh_keys: ["citadel-admin-0"] });
        const { vps } = await vpsOf(first.address!);
        firstVps = vps;
        const ip = run("docker", ["inspect", "--format", `{{(index .NetworkSettings.Networks "citadel-lab").IPAddress}}`, vps]).stdout.trim();
        assert.equal(ip, first.address);
        // TOFU: the key the scan pinned is the VPS's own (read out of band).
        const key = run("docker", ["exec", vps, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.trim().split(/\s+/).slice(0, 2).join(" ");
        assert.equal(first.sshHostKey, key);
        assert.ok(hd.labRuleTables(vps).length === 1, "the perimeter's nftables table is missing");
    });

    it("the audit passes against it", async () => {
        await auditPasses(first, "audit-first.txt");
    });

    it("perimeter: SSH from outside admin.sourceIps and a port opened on the host stay dropped, even when UFW allows them", async () => {
        const address = first.address!;
        const { id } = await vpsOf(address);
        const fw = ((await hd.api(double, "GET", "/firewalls")).json.firewalls as { id: number }[])[0];
        const target = lab.hcloudTarget(config, first);
        const name = `${lab.HCLOUD_PREFIX}-outsider`;
        run("docker", ["rm", "-f", name]);
        const started = run("docker", ["run", "-d", "--name", name, "--network", "citadel-lab", "--ip", OUTSIDER_IP, "--entrypoint", "sleep", "citadel/vps:12", "900"]);
        assert.equal(started.code, 0, started.stderr);
        const outsider: Probe = { describe: `container ${name} (${OUTSIDER_IP})`, python: (script, timeoutMs) => run("docker", ["exec", name, "python3", "-c", script], { timeout: timeoutMs }) };
        const dropped = { open: false, err: "TimeoutError" };
        const open = { open: true, err: "" };
        // The faults: UFW told to allow SSH from anywhere and 8001 (before its own deny rules), and a
        // listener on 8001 on the host.
        const fault = target.inside.sh("sudo -n ufw insert 1 allow 22/tcp && sudo -n ufw insert 1 allow 8001/tcp && (sudo -n systemd-run --unit citadel-e2e-8001 python3 -m http.server --bind 0.0.0.0 8001 >/dev/null)");
        assert.equal(fault.code, 0, fault.stderr);
        try {
            const local = target.inside.sh("for i in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/8001) 2>/dev/null && echo open && exit 0; sleep 0.1; done; echo closed");
            assert.equal(local.stdout.trim(), "open", "control: nothing listens on 8001 on the host");
            assert.deepEqual(outside.tcpOpen(outsider, address, 22), dropped, "SSH from outside admin.sourceIps, allowed by UFW");
            assert.deepEqual(outside.tcpOpen(target.probe, address, 8001), dropped, "8001 from a lab source, allowed by UFW");
            assert.deepEqual(outside.tcpOpen(outsider, address, 8001), dropped, "8001 from outside, allowed by UFW");
            // Control: without the cloud firewall the same faults are open, so the perimeter is what drops.
            const removed = await hd.api(double, "POST", `/firewalls/${fw.id}/actions/remove_from_resources`, { remove_from: [{ type: "server", server: { id } }] });
            assert.equal(removed.status, 201, JSON.stringify(removed.json));
            try {
                assert.deepEqual(outside.tcpOpen(outsider, address, 22), open, "control: with the perimeter removed, UFW's hole lets SSH in");
                assert.deepEqual(outside.tcpOpen(target.probe, address, 8001), open, "control: with the perimeter removed, 8001 answers");
            } finally {
                const applied = await hd.api(double, "POST", `/firewalls/${fw.id}/actions/apply_to_resources`, { apply_to: [{ type: "server", server: { id } }] });
                assert.equal(applied.status, 201, JSON.stringify(applied.json));
            }
            assert.deepEqual(outside.tcpOpen(outsider, address, 22), dropped, "SSH from outside once the perimeter is back");
        } finally {
            const undo = target.inside.sh("sudo -n systemctl stop citadel-e2e-8001; sudo -n ufw delete allow 8001/tcp; sudo -n ufw delete allow 22/tcp");
            run("docker", ["rm", "-f", name]);
            assert.equal(undo.code, 0, undo.stderr);
        }
    });

    it("a second pulumi up changes nothing", async () => {
        await up("up-second.log");
        assert.equal(await pulumi(["stack", "history", "--json", "--page-size", "1"], "history-second.json"), 0);
        const text = fs.readFileSync(path.join(lab.HCLOUD_LOG_DIR, "history-second.json"), "utf8");
        const last = (JSON.parse(text.slice(text.indexOf("["))) as { kind: string; result: string; resourceChanges?: Record<string, number> }[])[0];
        assert.equal(last?.kind, "update");
        assert.equal(last.result, "succeeded");
        assert.equal(await pulumi(["stack", "export", "--file", path.join(lab.HCLOUD_LOG_DIR, "state-second.json")], "export-second.log"), 0);
        const inState = (JSON.parse(fs.readFileSync(path.join(lab.HCLOUD_LOG_DIR, "state-second.json"), "utf8")) as { deployment: { resources: { urn: string }[] } }).deployment.resources
            .map((r) => r.urn)
            .filter((urn) => !/::pulumi:providers:[^:]+::default(_|$)/.test(urn));
        assert.ok(inState.some((u) => u.includes("hcloud:index/server:Server")), "no hcloud server in the state");
        assert.deepEqual(last.resourceChanges, { same: inState.length }, `see ${logRel("up-second.log")}`);
    });

    it("pulumi refresh reads the server, firewall and key back from the double as they are", async () => {
        type State = { deployment: { resources: { urn: string; type: string; outputs?: Record<string, unknown> }[] } };
        // The outputs of the hcloud resources, less the bridge's own bookkeeping (raw state delta).
        const hcloudOf = (file: string) =>
            Object.fromEntries(
                (JSON.parse(fs.readFileSync(path.join(lab.HCLOUD_LOG_DIR, file), "utf8")) as State).deployment.resources
                    .filter((r) => r.type.startsWith("hcloud:index/"))
                    .map((r) => [r.type, Object.fromEntries(Object.entries(r.outputs ?? {}).filter(([k]) => k !== "__pulumi_raw_state_delta"))]),
            ) as Record<string, Record<string, unknown>>;
        const before = hcloudOf("state-second.json");
        assert.equal(Object.keys(before).length, 3, `hcloud resources in the state: ${Object.keys(before).join(", ")}`);
        assert.equal(await pulumi(["refresh", "--yes", "--non-interactive", "--skip-preview"], "refresh.log"), 0, `see ${logRel("refresh.log")}`);
        assert.equal(await pulumi(["stack", "export", "--file", path.join(lab.HCLOUD_LOG_DIR, "state-refreshed.json")], "export-refreshed.log"), 0);
        const after = hcloudOf("state-refreshed.json");
        const fw = "hcloud:index/firewall:Firewall";
        const server = "hcloud:index/server:Server";
        // Two things are new to the state, and both are what Hetzner answers too: the firewall's
        // (computed) apply_to now lists the server it was attached to at the server's creation, and
        // a server without labels reads back as {} where the create left null.
        assert.deepEqual(after[fw].applyTos, [{ labelSelector: "", server: Number(before[server].id) }]);
        assert.ok(before[server].labels === null || JSON.stringify(before[server].labels) === "{}");
        assert.deepEqual(after[server].labels, {});
        assert.deepEqual({ ...after, [fw]: { ...after[fw], applyTos: [] }, [server]: { ...after[server], labels: before[server].labels } }, before, "refresh changed what the double reported at create");
    });

    it("a wrong host key at a later step is refused, not re-pinned", async () => {
        const { vps } = await vpsOf(first.address!);
        const sh = (cmd: string) => run("docker", ["exec", vps, "bash", "-c", cmd], { timeout: 60_000 });
        const swap = sh("set -e; mkdir -p /root/keep; cp -a /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub /root/keep/; rm -f /etc/ssh/ssh_host_ed25519_key*; ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key; systemctl restart ssh");
        assert.equal(swap.code, 0, swap.stderr);
        try {
            assert.notEqual(sh("cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split(/\s+/)[1], first.sshHostKey!.split(/\s+/)[1], "the key did not change");
            // The firewall step re-run (what an operator does after drift): it must not reach the host.
            const urn = `urn:pulumi:${lab.HCLOUD_STACK}::citadel::citadel:index:Citadel$citadel:host:Firewall$command:remote:Command::firewall`;
            const code = await pulumi(["up", "--yes", "--non-interactive", "--skip-preview", "--replace", urn], "up-wrong-key.log");
            const log = fs.readFileSync(path.join(lab.HCLOUD_LOG_DIR, "up-wrong-key.log"), "utf8");
            assert.notEqual(code, 0, `up succeeded against a swapped host key; see ${logRel("up-wrong-key.log")}`);
            assert.match(log, /host key mismatch/, `no host key refusal in ${logRel("up-wrong-key.log")}`);
            const after = await lab.hcloudOutputs(double, publicKey);
            assert.equal(after.sshHostKey, first.sshHostKey, "the pinned key changed");
        } finally {
            const back = sh("set -e; cp -a /root/keep/ssh_host_ed25519_key /root/keep/ssh_host_ed25519_key.pub /etc/ssh/; systemctl restart ssh");
            assert.equal(back.code, 0, back.stderr);
        }
    });

    it("pulumi destroy removes the server, its VPS, the firewall and its rules, and the key", async () => {
        assert.equal(await pulumi(["destroy", "--yes", "--non-interactive", "--skip-preview"], "destroy.log"), 0, `see ${logRel("destroy.log")}`);
        await nothingLeft();
    });

    it("up from scratch: a new server with a new pinned key and the same posture; the audit passes", async (t) => {
        const t0 = Date.now();
        await up("up-again.log");
        t.diagnostic(`converge from scratch: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        const again = await lab.hcloudOutputs(double, publicKey);
        const { vps } = await vpsOf(again.address!);
        assert.notEqual(vps, firstVps, "not a new server");
        assert.notEqual(again.sshHostKey, first.sshHostKey, "a new server must have a new host key");
        const key = run("docker", ["exec", vps, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.trim().split(/\s+/).slice(0, 2).join(" ");
        assert.equal(again.sshHostKey, key, "the new key is the new VPS's own");
        assert.deepEqual(again.exposure, first.exposure);
        // A rebuilt server makes no backup of its own while converging: the target still holds the
        // old server's, which a restore may need (an empty database must not become the newest one).
        // The operator's step after a rebuild (restore if needed, then a backup) is this run; until
        // then in-backup fails with "no run on this host yet".
        const backupRun = lab.hcloudTarget(config, again).inside.sh("sudo -n systemctl start citadel-backup.service", { timeoutMs: 300_000 });
        assert.equal(backupRun.code, 0, `the rebuilt server's first backup: ${backupRun.stderr}`);
        await auditPasses(again, "audit-again.txt");
    });

    it("destroy leaves no VPS, no resource in the double and no lab rule", async () => {
        assert.equal(await pulumi(["destroy", "--yes", "--non-interactive", "--skip-preview"], "destroy-again.log"), 0, `see ${logRel("destroy-again.log")}`);
        await nothingLeft();
    });

    it("bad input gets the API's own clear error: a wrong token, an unknown server type, a duplicate SSH key name", async () => {
        const failing = async (log: string, expect: RegExp, opts: { token?: string; sets?: string[] } = {}) => {
            const code = await lab.pulumiHcloud({ endpoint: double.endpoint, token: opts.token ?? double.token }, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview"], log, { sets: opts.sets });
            const text = fs.readFileSync(path.join(lab.HCLOUD_LOG_DIR, log), "utf8");
            assert.notEqual(code, 0, `up succeeded; see ${logRel(log)}`);
            assert.match(text, expect, `see ${logRel(log)}`);
            return text;
        };
        // Nothing can be created with a wrong token.
        await failing("up-wrong-token.log", /unable to authenticate \(unauthorized/, { token: "f".repeat(64) });
        assert.deepEqual(await lab.doubleResources(double), { servers: [], firewalls: [], ssh_keys: [] });
        // The server type is checked by the API (Citadel's schema only checks its form).
        await failing("up-bad-server-type.log", /server type cx999 not found/, { sets: ["citadel:hcloud.serverType=cx999"] });
        assert.deepEqual((await lab.doubleResources(double)).servers, [], "a server was created");
        // A key of that name already in the project (another key).
        assert.equal(await pulumi(["destroy", "--yes", "--non-interactive", "--skip-preview"], "destroy-bad-server-type.log"), 0);
        const other = run("bash", ["-c", "d=$(mktemp -d) && ssh-keygen -q -t ed25519 -N '' -f $d/k && cat $d/k.pub && rm -rf $d"]).stdout.trim();
        const taken = await hd.api(double, "POST", "/ssh_keys", { name: "citadel-admin-0", public_key: other });
        assert.equal(taken.status, 201, JSON.stringify(taken.json));
        await failing("up-duplicate-key.log", /SSH key with the same name already exists: citadel-admin-0 \(uniqueness_error/);
        assert.equal((await hd.api(double, "DELETE", `/ssh_keys/${taken.json.ssh_key.id}`)).status, 204);
        assert.equal(await pulumi(["destroy", "--yes", "--non-interactive", "--skip-preview"], "destroy-bad-input.log"), 0);
        await nothingLeft();
    });
});
