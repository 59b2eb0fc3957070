// Every script Citadel pushes to a host, for several configs, checked by shellcheck; the command
// wrapper and the secret-file delivery run for real (the latter in a private mount namespace, so
// this machine's /etc is never touched).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parseConfigOrThrow, StackConfig } from "../../components/config";
import { posture, type HostStepPosture } from "../../components/posture";
import { secretFileScript } from "../../components/render/secret-file";
import { sudoScript } from "../../components/render/script";
import { backupConfig, existingConfig, prodConfig, prodRaw } from "../fixtures";
import { requireTool, run, tmpDir, shellcheck } from "../tools";

function variants(): [string, StackConfig][] {
    const f2b = prodRaw();
    f2b["citadel:intrusion"] = JSON.stringify({ engine: "fail2ban", ignoreIps: ["192.0.2.0/24"] });
    const open = prodRaw();
    open["citadel:admin"] = JSON.stringify({ ...JSON.parse(open["citadel:admin"]), sourceIps: [] });
    open["citadel:postgres"] = JSON.stringify({ enabled: false });
    open["citadel:redis"] = JSON.stringify({ enabled: false });
    open["citadel:apps"] = JSON.stringify(JSON.parse(open["citadel:apps"]).map((a: any) => ({ ...a, data: false, secrets: (a.secrets ?? []).filter((s: string) => !/postgres|redis/.test(s)) })));
    return [
        ["prod", prodConfig()],
        ["existing", existingConfig()],
        ["fail2ban", parseConfigOrThrow(f2b)],
        ["ssh-open-no-data", parseConfigOrThrow(open)],
        ["backup", backupConfig()],
    ];
}

/** shellcheck over every step of a posture; the steps it rejects, with shellcheck's words. */
function shellcheckSteps(sc: string, steps: HostStepPosture[]): string[] {
    const failed: string[] = [];
    for (const step of steps) {
        // SC1001: shell-quote escapes ':' as '\:' (correct, merely unusual); see template.ts.
        const r = shellcheck(sc, step.script, ["-e", "SC1001"]);
        if (r.code !== 0) failed.push(`${step.name}:\n${r.stdout}${r.stderr}`);
    }
    return failed;
}

describe("host scripts: shellcheck over every step the posture declares (the steps pulumi up runs)", () => {
    for (const [name, c] of variants()) {
        it(`${name}: every host step is shellcheck-clean`, (t) => {
            const sc = requireTool(t, "shellcheck");
            if (!sc) return;
            const steps = posture(c).hostSteps;
            // Both kinds are covered: rendered scripts and the secret-file writers.
            assert.ok(steps.some((s) => s.kind === "secret-file") && steps.some((s) => s.name === "container-limits"), steps.map((s) => s.name).join(" "));
            assert.deepEqual(shellcheckSteps(sc, steps), []);
        });
    }

    it("a step added to the posture is checked too (a fixture step with an unquoted expansion fails)", (t) => {
        const sc = requireTool(t, "shellcheck");
        if (!sc) return;
        const steps = posture(prodConfig()).hostSteps;
        const added: HostStepPosture = { ...steps[0], name: "fixture-added-step", script: '#!/usr/bin/env bash\nset -euo pipefail\nf=$1\nrm -rf $f/*\n' };
        const failed = shellcheckSteps(sc, [...steps, added]);
        assert.equal(failed.length, 1, failed.join("\n"));
        assert.match(failed[0], /^fixture-added-step:[\s\S]*SC2086/);
    });
});

describe("host scripts: the remote command wrapper", () => {
    it("delivers the script byte-exact through the quoted here-document", () => {
        const script = ["set -euo pipefail", `x='$HOME \`id\` "q"'`, 'printf "%s|" "$x" "$#"', "echo"].join("\n");
        // The wrapper runs `sudo -n /bin/bash -s`; this machine has no sudo and runs as root already.
        const wrapped = sudoScript(script).replace(/^sudo -n /, "");
        const r = run("bash", ["-c", wrapped]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, '$HOME `id` "q"|0|\n');
    });

    it("refuses a script that would end its own here-document", () => {
        assert.throws(() => sudoScript("echo a\nCITADEL_SCRIPT\nrm -rf /"), /would end its here-document/);
    });
});

describe("secret files: written from stdin as 0400, owned by their reader", () => {
    it("writes the value byte-exact, root-only directories, and rotates in place", (t) => {
        if (!requireTool(t, "unshare")) return;
        const dir = tmpDir();
        const value = "s3cr3t with spaces $(id) `x` \\n no newline";
        const script = secretFileScript("api", "jwtSecret", 10001);
        const probe = [
            "set -e",
            "mkdir -p /etc/citadel && mount -t tmpfs tmpfs /etc/citadel",
            'bash "$3" < "$1"',
            "ino1=$(stat -c %i /etc/citadel/secrets/api/jwtSecret)",
            'bash "$3" < "$2"',
            // A running container's bind mount follows the inode: a rotation must keep it.
            '[ "$(stat -c %i /etc/citadel/secrets/api/jwtSecret)" = "$ino1" ] && echo same-inode',
            "stat -c '%a %u %g %n' /etc/citadel/secrets /etc/citadel/secrets/api /etc/citadel/secrets/api/jwtSecret",
            "ls -A /etc/citadel/secrets/api",
            "cat /etc/citadel/secrets/api/jwtSecret",
        ].join("\n");
        fs.writeFileSync(path.join(dir, "v1"), "first-value");
        fs.writeFileSync(path.join(dir, "v2"), value);
        fs.writeFileSync(path.join(dir, "script.sh"), script);
        try {
            const r = run("unshare", ["-m", "--propagation", "private", "bash", "-c", probe, "probe", path.join(dir, "v1"), path.join(dir, "v2"), path.join(dir, "script.sh")]);
            assert.equal(r.code, 0, r.stderr);
            const lines = r.stdout.split("\n");
            assert.ok(lines.includes("700 0 0 /etc/citadel/secrets"), r.stdout);
            assert.ok(lines.includes("700 0 0 /etc/citadel/secrets/api"), r.stdout);
            assert.ok(lines.includes("400 10001 0 /etc/citadel/secrets/api/jwtSecret"), r.stdout);
            assert.ok(lines.includes("jwtSecret"), "no temp files left behind");
            assert.ok(lines.includes("same-inode"), "the rotation replaced the file (a new inode): running containers would keep reading the old value");
            assert.ok(!lines.some((l) => l.startsWith(".tmp.")), "temp file left behind");
            assert.ok(r.stdout.endsWith(value), "second write (rotation) replaced the value byte-exact");
            assert.ok(!r.stdout.split("citadel: secret file").join("").includes("first-value"));
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe("secret files read once at start: a changed value reaches the running reader", () => {
    // Alertmanager reads alertmanager.yml (the receivers' URLs, a secret file) at start. The step that
    // writes it sends the running container SIGHUP when the value changed, and only then. Run here
    // against the real Alertmanager (Debian's): `docker` is a stand-in that answers `inspect` with
    // "running" and turns `kill --signal HUP` into a SIGHUP to that Alertmanager, recording each call.
    it("a rotated receiver URL: the file is rewritten in place, Alertmanager gets SIGHUP and serves the new configuration; an unchanged value sends nothing", async (t) => {
        if (!requireTool(t, "unshare") || !requireTool(t, "prometheus-alertmanager") || !requireTool(t, "curl")) return;
        const { posture } = await import("../../components/posture");
        const { freePort } = await import("../tools");
        const file = posture(prodConfig()).secretFiles.find((f) => f.content === "alertmanager-config");
        assert.ok(file?.reloadOnChange, "alertmanager.yml is declared as reloaded on change");
        const dir = tmpDir();
        const port = await freePort();
        const config = (url: string) => `route:\n  receiver: ops\nreceivers:\n  - name: ops\n    webhook_configs:\n      - url: ${url}\n`;
        fs.writeFileSync(path.join(dir, "v1"), config("https://hooks.example.com/old-token-1111"));
        fs.writeFileSync(path.join(dir, "v2"), config("https://hooks.example.com/new-token-2222"));
        fs.writeFileSync(path.join(dir, "script.sh"), secretFileScript(file.consumer, file.name, 0, file.reloadOnChange));
        fs.mkdirSync(path.join(dir, "bin"));
        fs.writeFileSync(
            path.join(dir, "bin", "docker"),
            `#!/bin/bash\necho "$*" >> ${JSON.stringify(path.join(dir, "docker-calls"))}\ncase "$1" in\n  inspect) echo true ;;\n  kill) [ "$2 $3 $4" = "--signal HUP ${file.reloadOnChange}" ] && kill -HUP "$(cat ${JSON.stringify(path.join(dir, "am.pid"))})" ;;\n  *) exit 99 ;;\nesac\n`,
            { mode: 0o755 },
        );
        const status = `curl -fsS http://127.0.0.1:${port}/api/v2/status`;
        const probe = [
            "set -e",
            "mkdir -p /etc/citadel && mount -t tmpfs tmpfs /etc/citadel",
            `export PATH="$1/bin:$PATH"`,
            'bash "$1/script.sh" < "$1/v1"',
            `prometheus-alertmanager --config.file=${file.path} --storage.path="$1/data" --web.listen-address=127.0.0.1:${port} --cluster.listen-address= >"$1/am.log" 2>&1 & echo $! > "$1/am.pid"`,
            `for _ in $(seq 1 100); do ${status} >/dev/null 2>&1 && break; sleep 0.1; done`,
            `${status} | grep -o 'old-token-1111' | head -1`,
            "ino1=$(stat -c %i " + file.path + ")",
            'bash "$1/script.sh" < "$1/v2"',
            // The reload is asynchronous: wait (bounded) for the new configuration to be served.
            `for _ in $(seq 1 50); do ${status} | grep -q 'new-token-2222' && break; sleep 0.1; done`,
            `${status} | grep -o 'new-token-2222' | head -1`,
            '[ "$(stat -c %i ' + file.path + ')" = "$ino1" ] && echo same-inode',
            'echo "calls-before-unchanged: $(grep -c "^kill" "$1/docker-calls")"',
            'bash "$1/script.sh" < "$1/v2"',
            'echo "calls-after-unchanged: $(grep -c "^kill" "$1/docker-calls")"',
            'kill "$(cat "$1/am.pid")"; wait || true',
        ].join("\n");
        try {
            const r = run("unshare", ["-m", "--propagation", "private", "bash", "-c", probe, "probe", dir], { timeout: 60_000 });
            assert.equal(r.code, 0, r.stderr + fs.readFileSync(path.join(dir, "am.log"), "utf8").slice(-2000));
            const lines = r.stdout.split("\n");
            assert.ok(lines.includes("old-token-1111"), `Alertmanager did not start with the first value:\n${r.stdout}`);
            assert.ok(lines.includes("new-token-2222"), `Alertmanager still serves the old receiver after the rewrite:\n${r.stdout}`);
            assert.ok(lines.includes("same-inode"), "the file was replaced, not rewritten in place");
            assert.match(r.stdout, /reloads its configuration \(SIGHUP\): the value changed/);
            assert.ok(lines.includes("calls-before-unchanged: 1"), r.stdout);
            assert.ok(lines.includes("calls-after-unchanged: 1"), "an unchanged value sent another SIGHUP");
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
