// The Docker audit rules (CIS Docker 1.1.3-1.1.18) judged by a real kernel: the lab VPS shares this
// machine's kernel, which refuses audit rules from a container, so lab/auditd-vm.ts boots Debian 12's
// own kernel under qemu (no KVM) with Debian's auditctl. One boot: the rendered file must load and
// every rule must be listed back by `auditctl -l`; a file with a permission auditctl does not know
// must be refused in the same kernel (the control that shows the load can fail).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderDockerAuditRules } from "../../components/render/auditd";
import { AUDITD_VM_TOOLS, bootAuditctl, BROKEN_AUDIT_RULE } from "../../lab/auditd-vm";
import { requireTools } from "../tools";

describe("the Docker audit rules in a real kernel (qemu)", () => {
    it("auditctl loads the rendered file and lists every rule back; a broken file is refused", (t) => {
        if (!requireTools(t, ...AUDITD_VM_TOOLS)) return;
        const rules = renderDockerAuditRules();
        const declared = rules.split("\n").filter((l) => l.startsWith("-"));
        assert.ok(declared.length >= 15, `too few rules rendered:\n${rules}`);
        const vm = bootAuditctl(rules, BROKEN_AUDIT_RULE);
        assert.ok(vm.refused, `the control: auditctl accepted "${BROKEN_AUDIT_RULE.trim()}"\n${vm.console}`);
        assert.ok(vm.loaded, `auditctl -R refused the rendered rules in ${vm.kernel}:\n${vm.console}`);
        assert.deepEqual([...vm.listed].sort(), [...declared].sort(), `auditctl -l in ${vm.kernel} is not the rendered file:\n${vm.console}`);
    });
});
