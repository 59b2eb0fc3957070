// End to end through the Hetzner front door: `pulumi up` of the hcloud stack (target hcloud) with
// the real engine and the real hcloud provider against the lab's Hetzner Cloud API double, which
// boots a local VPS from the server's user_data and enforces the cloud firewall in front of it.
//
//   up → audit passes, with its perimeter checks (from a lab source outside admin.sourceIps SSH is
//   dropped even when UFW allows it; an app port opened on the host stays dropped from outside) →
//   the perimeter checks fail on a hole in the cloud firewall (set through the API) → a second up
//   changes nothing → a wrong host key is refused → destroy → up again (a new server, a new pinned
//   key, the same exposure) → audit passes, the same verdict on every check as the first server's →
//   destroy leaves no VPS, no fake resource, no lab rule.
//
// Two converges, as few as that sequence allows. Run: npx tsx --test test/e2e/hcloud.test.ts
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import type { StackOutputs } from "../../audit/target";
import type { StackConfig } from "../../components/config";
import type { RunningDouble } from "../../lab/hcloud-double/run";
import { IN_CI, run, pulumiMissing } from "../tools";

// Our own VPS prefix: the double's servers are citadel-hcloud-<id>.
process.env.CITADEL_VPS_NAME ??= "citadel-hcloud";

const ROOT = path.resolve(__dirname, "..", "..");
let skip: string | false = pulumiMissing();
if (skip) {
    // no engine: nothing else matters
} else if (run("go", ["version"]).code !== 0) skip = "Go is not installed";
else if (run("nft", ["--version"]).code !== 0) skip = "nft is not installed";
if (IN_CI && skip) throw new Error(skip);

describe("e2e: the Hetzner path (hcloud target) against the lab's API double", { skip, timeout: 45 * 60_000 }, () => {
    let lab: typeof import("../../lab/hcloud");
    let hd: typeof import("../../lab/hcloud-double/run");
    let double: RunningDouble;
    let config: StackConfig;
    let publicKey: string;
    let first: StackOutputs;
    let firstVps = "";
    let startedDockerd = false;
    /** The first server's audit: the rebuild must give the same verdict on every check. */
    let firstAudit: import("../../audit/run").AuditReport | undefined;
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
    /**
     * Runs the whole audit against the converged server, with the attack group for its perimeter
     * checks (SSH from outside admin.sourceIps, an app port, each with UFW opened behind the cloud
     * firewall; the brute force and the burst skip: this target gives them no sources). Every check
     * must pass and the perimeter checks must have run.
     */
    const auditPasses = async (outputs: StackOutputs, log: string) => {
        const { runAudit, formatReport, failedIds } = await import("../../audit/run");
        const report = await runAudit(lab.hcloudTarget(config, outputs), { attack: true });
        fs.writeFileSync(path.join(lab.HCLOUD_LOG_DIR, log), formatReport(report));
        assert.deepEqual(failedIds(report), [], `audit failed; see ${logRel(log)}`);
        assert.ok(report.summary.pass >= 20, `only ${report.summary.pass} checks passed; see ${logRel(log)}`);
        for (const id of ["atk-perimeter-ssh", "atk-perimeter-port"]) assert.equal(report.checks.find((c) => c.id === id)?.result, "pass", `${id}; see ${logRel(log)}`);
        // The server's IPv6 address (the stack's address6 output, routed by the double) was scanned
        // too, through the cloud firewall and Citadel's DNAT: the sites only (SSH is for IPv4 admin sources).
        assert.ok(new RegExp(`^${lab.HCLOUD_IPV6_BASE.replace(/::\/48$/, "")}:[0-9a-f]+::1$`).test(outputs.address6 ?? ""), `the stack's address6 output ${outputs.address6} is not the ::1 of a /64 the double routes`);
        const ports = report.checks.find((c) => c.id === "out-ports")?.evidence ?? "";
        assert.ok(ports.includes(`IPv6 ${outputs.address6} open: 80,443 (`), `out-ports did not find exactly 80,443 over IPv6: ${ports}`);
        return report;
    };
    /** Nothing of the stack is left: no server/firewall/key in the double, no VPS, no nftables table, no /64 route. */
    const nothingLeft = async () => {
        assert.deepEqual(await lab.doubleResources(double), { servers: [], firewalls: [], ssh_keys: [] }, "resources left in the double");
        const vpses = run("docker", ["ps", "-a", "--format", "{{.Names}}"]).stdout.split("\n").filter((n) => new RegExp(`^${lab.HCLOUD_PREFIX}-[0-9]+$`).test(n));
        assert.deepEqual(vpses, [], "VPSes left");
        assert.deepEqual(hd.labRuleTables(lab.HCLOUD_PREFIX), [], "lab firewall rules left");
        assert.deepEqual(lab.routesWithin(lab.HCLOUD_IPV6_BASE), [], "routes of the servers' IPv6 /64s left");
    };

    before(async () => {
        lab = await import("../../lab/hcloud");
        hd = await import("../../lab/hcloud-double/run");
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
        if (double) {
            await lab.deleteAll(double).catch((e) => process.stderr.write(`cleanup: ${(e as Error).message}\n`));
            await double.stop();
        }
        await lab?.removeLeftovers();
        if (startedDockerd) await (await import("../../lab/vps/dockerd")).stopDockerd({ onlyIfIdle: true });
    });

    it("up created the server through the API: a VPS at the server's public IPv4, behind its firewall, its host key pinned by the scan", async (t) => {
        t.diagnostic(`first converge through the Hetzner path (server create, boot, images, whole posture): ${firstUpSeconds.toFixed(1)} s`);
        // An address from the double's pool (CITADEL_HCLOUD_POOL, "FIRST-LAST" in the lab subnet).
        const [lo, hi] = lab.HCLOUD_POOL.split("-").map((a) => Number(a.split(".")[3]));
        const m = /^172\.30\.99\.(\d+)$/.exec(first.address ?? "");
        assert.ok(m && Number(m[1]) >= lo && Number(m[1]) <= hi, `${first.address} is not in the pool ${lab.HCLOUD_POOL}`);
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

    it("the gateway runs the image built on the server (gateway.build, the default), not one the lab loaded", async () => {
        const { posture, GATEWAY_BUILD_LABEL, GATEWAY_CONTAINER } = await import("../../components/posture");
        const gw = posture(config).containers.find((x) => x.role === "gateway");
        assert.ok(gw?.build && gw.buildFrom, "the hcloud lab stack builds its gateway");
        assert.ok(!(await import("../../lab/local")).stackImages(config).includes(gw.image), "the lab must not hand the server the gateway image");
        const log = fs.readFileSync(path.join(lab.HCLOUD_LOG_DIR, "up.log"), "utf8");
        assert.match(log, new RegExp(`citadel: gateway-image: built ${gw.image.replace(/[.:/]/g, "\\$&")} in \\d+s`), `no build in ${logRel("up.log")}`);
        const inVps = (...args: string[]) => run("docker", ["exec", firstVps, "docker", ...args]).stdout.trim();
        assert.equal(inVps("image", "inspect", "--format", `{{index .Config.Labels "${GATEWAY_BUILD_LABEL}"}}`, gw.image), gw.buildFrom.inputsSha256);
        assert.equal(inVps("inspect", "--format", "{{.Image}}", GATEWAY_CONTAINER), inVps("image", "inspect", "--format", "{{.Id}}", gw.image), "the gateway runs the built image");
    });

    it("the audit passes against it", async () => {
        firstAudit = await auditPasses(first, "audit-first.txt");
    });

    it("perimeter: the audit's perimeter checks fail on a hole in the cloud firewall's rules (set through the API) and pass once it is undone", async () => {
        const { runAudit, formatReport } = await import("../../audit/run");
        const { portClosedByPerimeter } = await import("../../audit/perimeter");
        const { posture, SSH_PORT } = await import("../../components/posture");
        const target = lab.hcloudTarget(config, first);
        const perimeter = async (log: string) => {
            const r = await runAudit(target, { attack: true, only: ["atk-perimeter"] });
            fs.writeFileSync(path.join(lab.HCLOUD_LOG_DIR, log), formatReport(r));
            return Object.fromEntries(r.checks.map((c) => [c.id, c]));
        };
        const fw = ((await hd.api(double, "GET", "/firewalls")).json.firewalls as { id: number; rules: Record<string, unknown>[] }[])[0];
        // The fault: the declared port the perimeter keeps closed, and SSH, opened to anywhere.
        const port = portClosedByPerimeter(posture(config).exposure.cloudFirewall, config.firewall.denyPorts);
        assert.ok(port, "the posture leaves no app port closed at the perimeter");
        const hole = [SSH_PORT, port].map((p) => ({ direction: "in", protocol: "tcp", port: String(p), source_ips: ["0.0.0.0/0"], destination_ips: [], description: "fault" }));
        const setRules = async (rules: Record<string, unknown>[]) => {
            const r = await hd.api(double, "POST", `/firewalls/${fw.id}/actions/set_rules`, { rules });
            assert.equal(r.status, 201, JSON.stringify(r.json));
            for (const a of r.json.actions as { id: number }[]) assert.equal((await hd.waitAction(double, a.id)).status, "success");
        };
        await setRules([...fw.rules, ...hole]);
        try {
            const faulty = await perimeter("audit-perimeter-fault.txt");
            for (const id of ["atk-perimeter-ssh", "atk-perimeter-port"]) {
                assert.equal(faulty[id]?.result, "fail", `${id} did not catch the hole; see ${logRel("audit-perimeter-fault.txt")}`);
                assert.ok(!faulty[id].crashed, `${id} crashed instead of judging: ${faulty[id].evidence}`);
            }
            assert.match(faulty["atk-perimeter-ssh"].drift.map((d) => d.actual).join(), /open/);
            assert.match(faulty["atk-perimeter-port"].drift.map((d) => d.what).join(), new RegExp(`tcp/${port} from`));
        } finally {
            await setRules(fw.rules);
        }
        const undone = await perimeter("audit-perimeter-undone.txt");
        for (const id of ["atk-perimeter-ssh", "atk-perimeter-port"]) assert.equal(undone[id]?.result, "pass", `${id} after the rules were put back; see ${logRel("audit-perimeter-undone.txt")}`);
        // The checks undid their own changes to the host: no UFW hole, no listener left.
        const ufw = target.inside.sh("sudo -n ufw show added");
        assert.equal(ufw.code, 0, ufw.stderr);
        assert.doesNotMatch(ufw.stdout, new RegExp(`^ufw allow (${SSH_PORT}|${port})/tcp$`, "m"));
        assert.equal(target.inside.sh(`(exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null`).code, 1, `something still listens on ${port}`);
        assert.equal(run("docker", ["inspect", lab.HCLOUD_OUTSIDER]).code, 1, "the outsider container must be removed");
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
        const againAudit = await auditPasses(again, "audit-again.txt");
        // The same posture, as the audit sees it (not as the config says): every check, the same verdict.
        const verdicts = (r: import("../../audit/run").AuditReport) => Object.fromEntries(r.checks.map((c) => [c.id, c.result]));
        assert.ok(firstAudit, "the first server's audit did not run");
        assert.deepEqual(verdicts(againAudit), verdicts(firstAudit), "the rebuilt server's audit differs from the first's");
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
