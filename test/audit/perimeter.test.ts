// The perimeter checks (audit/perimeter.ts) against a modelled network: a cloud firewall in front of a
// host whose UFW the check opens. Each check passes when the modelled perimeter is the declared one,
// fails (not crashes) on a hole in it, skips with the reason where it cannot look, and always undoes
// what it changed on the host. The live proof is test/e2e/hcloud.test.ts (the lab's API double).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cidrContains, perimeterAllows, portClosedByPerimeter } from "../../audit/perimeter";
import { runAudit } from "../../audit/run";
import type { Attacker, AuditTarget, CommandResult, Probe } from "../../audit/types";
import { parseConfigOrThrow, type StackConfig } from "../../components/config";
import { cloudFirewallRules, SSH_PORT } from "../../components/posture";
import { existingConfig, prodConfig, prodWith } from "../fixtures";

const ok = (stdout = ""): CommandResult => ({ code: 0, stdout, stderr: "" });

/**
 * A host behind a perimeter: `allow(source, port)` is the cloud firewall as it really is (maybe not
 * as declared); UFW is modelled as open only for the ports the check inserted; a listener answers
 * once the check started one. Every command the check ran is recorded.
 */
function model(config: StackConfig, allow: (source: string, port: number) => boolean, opts: { ufwIgnoresInsert?: boolean } = {}) {
    const ufwOpen = new Set<number>();
    const listening = new Set<number>([SSH_PORT]);
    const commands: string[] = [];
    const inside = {
        sh(cmd: string): CommandResult {
            commands.push(cmd);
            let m: RegExpExecArray | null;
            if (cmd === "sudo -n ufw show added") return ok("Added user rules (see 'ufw status' for running firewall):\nufw limit 22/tcp\n");
            if ((m = /ufw insert 1 allow (\d+)\/tcp/.exec(cmd)) && !opts.ufwIgnoresInsert) ufwOpen.add(Number(m[1]));
            if ((m = /http\.server --bind 0\.0\.0\.0 (\d+)/.exec(cmd))) listening.add(Number(m[1]));
            if ((m = /dev\/tcp\/127\.0\.0\.1\/(\d+)/.exec(cmd))) return { code: listening.has(Number(m[1])) ? 0 : 1, stdout: "", stderr: "" };
            if ((m = /systemctl stop citadel-audit-perimeter-(\d+)/.exec(cmd))) listening.delete(Number(m[1]));
            if ((m = /ufw delete allow (\d+)\/tcp/.exec(cmd))) ufwOpen.delete(Number(m[1]));
            return ok();
        },
    };
    const probeAt = (source: string, describe: string): Probe => ({
        describe,
        python(script) {
            const [, , port] = /create_connection\(\("([^"]+)", (\d+)\)/.exec(script) ?? [];
            const p = Number(port);
            // The perimeter drops silently; past it, UFW (opened by the check) and a listener decide.
            const res = !allow(source, p) ? { open: false, err: "TimeoutError" } : ufwOpen.has(p) && listening.has(p) ? { open: true, err: "" } : { open: false, err: "ConnectionRefusedError" };
            return ok(JSON.stringify(res));
        },
    });
    let outsiders = 0;
    const outsiderIp = "198.51.100.7";
    const target: AuditTarget = {
        stack: "t",
        config,
        address: "192.0.2.10",
        sshHost: "192.0.2.10",
        sshPort: SSH_PORT,
        exposureTcp: [22, 80, 443],
        sites: [],
        probe: probeAt(config.admin.sourceIps[0]?.split("/")[0] ?? "203.0.113.1", "admin probe"),
        outsider: (): Attacker => {
            outsiders++;
            return { address: outsiderIp, probe: probeAt(outsiderIp, `outsider ${outsiderIp}`), remove: () => outsiders-- };
        },
        inside,
    };
    return { target, ufwOpen, listening, commands, outsidersLeft: () => outsiders };
}

/** The declared cloud firewall as the perimeter. */
const declared = (c: StackConfig) => (source: string, port: number) => perimeterAllows(cloudFirewallRules(c), source, port);

const perimeterOf = async (t: AuditTarget) => Object.fromEntries((await runAudit(t, { attack: true, only: ["atk-perimeter"] })).checks.map((c) => [c.id, c]));

describe("audit: perimeter checks (target hcloud)", () => {
    const c = prodConfig();

    it("reads the declared rules: SSH only from admin.sourceIps (anywhere when empty), the app ports from nobody", () => {
        const rules = cloudFirewallRules(c);
        assert.ok(c.admin.sourceIps.length > 0);
        const inside = c.admin.sourceIps.find((x) => !x.includes(":"))!.split("/")[0];
        assert.equal(perimeterAllows(rules, inside, SSH_PORT), true);
        assert.equal(perimeterAllows(rules, "198.51.100.7", SSH_PORT), false);
        assert.equal(perimeterAllows(rules, "198.51.100.7", 443), true);
        assert.equal(portClosedByPerimeter(rules, c.firewall.denyPorts), c.firewall.denyPorts.from);
        const open = cloudFirewallRules(parseConfigOrThrow(prodWith({ admin: { ...c.admin, sourceIps: [] } })));
        assert.equal(perimeterAllows(open, "198.51.100.7", SSH_PORT), true);
        assert.equal(cidrContains("172.30.99.0/25", "172.30.99.127"), true);
        assert.equal(cidrContains("172.30.99.0/25", "172.30.99.250"), false);
        assert.equal(cidrContains("::/0", "172.30.99.250"), false);
    });

    it("pass on the declared perimeter; every change to the host undone, the outsider removed", async () => {
        const m = model(c, declared(c));
        const r = await perimeterOf(m.target);
        assert.equal(r["atk-perimeter-ssh"].result, "pass", r["atk-perimeter-ssh"].evidence);
        assert.equal(r["atk-perimeter-port"].result, "pass", r["atk-perimeter-port"].evidence);
        assert.match(r["atk-perimeter-ssh"].evidence, /dropped/);
        assert.deepEqual([...m.ufwOpen], []);
        assert.deepEqual([...m.listening], [SSH_PORT]);
        assert.equal(m.outsidersLeft(), 0);
        assert.ok(m.commands.includes(`sudo -n ufw insert 1 allow ${SSH_PORT}/tcp`), "SSH was not opened in UFW: the drop could be UFW's");
    });

    it("fail (not crash) on a hole in the perimeter: SSH from anywhere, the app port open", async () => {
        const port = c.firewall.denyPorts.from;
        const m = model(c, (s, p) => p === SSH_PORT || p === port || declared(c)(s, p));
        const r = await perimeterOf(m.target);
        for (const id of ["atk-perimeter-ssh", "atk-perimeter-port"]) {
            assert.equal(r[id].result, "fail", r[id].evidence);
            assert.ok(!r[id].crashed, r[id].evidence);
        }
        assert.equal(r["atk-perimeter-ssh"].drift[0].actual, "open");
        assert.deepEqual([...m.ufwOpen], [], "a failing check must undo too");
        assert.deepEqual([...m.listening], [SSH_PORT]);
    });

    it("a refusal is no drop: the packet reached the host, so the perimeter let it through", async () => {
        const port = c.firewall.denyPorts.from;
        // The perimeter lets the port through and the host's UFW still rejects it: a refusal, not a drop.
        const m = model(c, (s, p) => p === port || declared(c)(s, p), { ufwIgnoresInsert: true });
        const r = await perimeterOf(m.target);
        assert.equal(r["atk-perimeter-port"].result, "fail", r["atk-perimeter-port"].evidence);
        assert.match(r["atk-perimeter-port"].drift[0].actual, /^refused .*reached the host/);
    });

    it("with admin.sourceIps empty, SSH from the outsider must be open (as declared)", async () => {
        const open = parseConfigOrThrow(prodWith({ admin: { ...c.admin, sourceIps: [] } }));
        const good = await perimeterOf(model(open, declared(open)).target);
        assert.equal(good["atk-perimeter-ssh"].result, "pass", good["atk-perimeter-ssh"].evidence);
        // Declared open to the world, but the perimeter drops the outsider: drift the other way.
        const closed = await perimeterOf(model(open, (s, p) => !(p === SSH_PORT && s === "198.51.100.7") && declared(open)(s, p)).target);
        assert.equal(closed["atk-perimeter-ssh"].result, "fail", closed["atk-perimeter-ssh"].evidence);
        assert.equal(closed["atk-perimeter-ssh"].drift[0].actual, "dropped");
    });

    it("skip with the reason: no cloud firewall on target existing; no source outside admin.sourceIps", async () => {
        const e = existingConfig();
        const r = await perimeterOf(model(e, () => true).target);
        for (const id of ["atk-perimeter-ssh", "atk-perimeter-port"]) assert.match(r[id].evidence, /no cloud firewall for target existing/);
        const m = model(c, declared(c));
        const noOutsider = await perimeterOf({ ...m.target, outsider: undefined });
        assert.equal(noOutsider["atk-perimeter-ssh"].result, "skip");
        assert.match(noOutsider["atk-perimeter-ssh"].evidence, /no source outside citadel:admin.sourceIps/);
        assert.equal(noOutsider["atk-perimeter-port"].result, "pass", "the app port is checked from the admin probe alone");
    });

    it("without an attack run they do not touch the host", async () => {
        const m = model(c, declared(c));
        const r = await runAudit(m.target, { only: ["atk-perimeter"] });
        assert.deepEqual(r.checks.map((x) => x.result), ["skip", "skip"]);
        assert.deepEqual(m.commands, []);
    });
});
