// The Docker audit rules (CIS Docker 1.1.3-1.1.18) judged by a real kernel: the lab VPS shares this
// machine's kernel, which refuses audit rules from a container, so lab/auditd-vm.ts boots Debian 12's
// own kernel under qemu (no KVM) with Debian's auditctl. One boot:
//  - as at boot, before containerd made /run/containerd: every rule loads but the watch inside that
//    directory (its parent is missing), and that one is the last line, since the first failing line
//    stops auditctl -R (a reorder would leave rules unloaded until containerd starts);
//  - once /run/containerd exists (containerd's unit loads the rules again): every rule, listed back;
//  - a file with a permission auditctl does not know is refused (the control that a load can fail).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderDockerAuditRules } from "../../components/render/auditd";
import { AUDITD_VM_TOOLS, bootAuditctl, BROKEN_AUDIT_RULE } from "../../lab/auditd-vm";
import { requireTools } from "../tools";

describe("the Docker audit rules in a real kernel (qemu)", () => {
    it("at boot every rule but the one inside /run/containerd loads; once containerd runs, all of them; a broken file is refused", (t) => {
        if (!requireTools(t, ...AUDITD_VM_TOOLS)) return;
        const rules = renderDockerAuditRules();
        const declared = rules.split("\n").filter((l) => l.startsWith("-"));
        assert.ok(declared.length >= 15, `too few rules rendered:\n${rules}`);
        const insideContainerd = declared.filter((l) => l.startsWith("-w /run/containerd/"));
        assert.ok(insideContainerd.length > 0, "the containerd socket's watch is declared");
        const vm = bootAuditctl(rules, BROKEN_AUDIT_RULE);
        assert.ok(vm.refused, `the control: auditctl accepted "${BROKEN_AUDIT_RULE.trim()}"\n${vm.console}`);
        // At boot: all but the watches whose parent does not exist yet.
        assert.deepEqual([...vm.boot.listed].sort(), declared.filter((l) => !insideContainerd.includes(l)).sort(), `at boot, in ${vm.kernel}:\n${vm.console}`);
        // Once containerd runs: the whole file loads and is listed back.
        assert.equal(vm.containerd.rc, 0, `auditctl -R refused the rendered rules in ${vm.kernel}:\n${vm.console}`);
        assert.deepEqual([...vm.containerd.listed].sort(), [...declared].sort(), `auditctl -l in ${vm.kernel} is not the rendered file:\n${vm.console}`);
    });

    it("the fault: the watches inside /run/containerd moved first → at boot auditctl stops at line 1 and no rule after it loads", (t) => {
        if (!requireTools(t, ...AUDITD_VM_TOOLS)) return;
        const lines = renderDockerAuditRules().split("\n");
        const inside = lines.filter((l) => l.startsWith("-w /run/containerd/"));
        const vm = bootAuditctl([...inside, ...lines.filter((l) => !inside.includes(l))].join("\n"), BROKEN_AUDIT_RULE);
        assert.notEqual(vm.boot.rc, 0, vm.console);
        assert.match(vm.boot.output, /error in line 1 of/, vm.console);
        assert.deepEqual(vm.boot.listed, [], `a failing first line must leave the rest unloaded at boot:\n${vm.console}`);
        // Undone once containerd runs (its unit loads them again): every rule.
        assert.equal(vm.containerd.listed.length, lines.filter((l) => l.startsWith("-")).length, vm.console);
    });
});
