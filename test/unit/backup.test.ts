// citadel:backup: bad config is refused with the key and the fix, credentials never reach the posture,
// the host step waits for what it needs, and the audit's in-backup judges readings both ways.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ageRecipientError, backupCredentials, parseConfig, parseConfigOrThrow } from "../../components/config";
import { posture } from "../../components/posture";
import { loadProgramInputs } from "../../components/program";
import { judgeBackup, parseBackupReading } from "../../audit/inside";
import { backupConfig, prodConfig, prodWith, TEST_AGE_RECIPIENT, TEST_BACKUP } from "../fixtures";

const errors = (backup: Record<string, unknown>): string[] => {
    const r = parseConfig(prodWith({ backup: { ...TEST_BACKUP, ...backup } }));
    return r.ok ? [] : r.errors;
};
const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

describe("citadel:backup config", () => {
    it("the documented defaults: off, daily with a 30 min delay, 7/5/12 kept (one year)", () => {
        const b = prodConfig().backup;
        assert.deepEqual({ enabled: b.enabled, schedule: b.schedule, randomizedDelay: b.randomizedDelay, retention: b.retention }, { enabled: false, schedule: "daily", randomizedDelay: "30min", retention: { daily: 7, weekly: 5, monthly: 12 } });
        assert.equal(posture(backupConfig()).backup.retention.days, 365);
    });

    it("a recipient that is not an age X25519 or ssh-ed25519 public key is refused, naming the entry", () => {
        assert.equal(ageRecipientError(TEST_AGE_RECIPIENT), undefined);
        const bad = TEST_AGE_RECIPIENT.slice(0, -1) + (TEST_AGE_RECIPIENT.endsWith("3") ? "4" : "3");
        assert.match(errors({ recipients: [bad] }).join("\n"), /^citadel:backup\.recipients\[0\]: "age1.*" is not an age recipient \(Invalid checksum/m);
        assert.match(errors({ recipients: ["AGE-SECRET-KEY-1QQQQ"] }).join("\n"), /^citadel:backup\.recipients\[0\]: this is an age PRIVATE key: never put it in the stack/m);
        assert.match(errors({ recipients: ["ssh-rsa AAAAB3NzaC1yc2E"] }).join("\n"), /^citadel:backup\.recipients\[0\]: "ssh-rsa" recipients are not accepted/m);
        assert.match(errors({ recipients: ["hello"] }).join("\n"), /^citadel:backup\.recipients\[0\]: "hello" is not an age recipient/m);
        assert.match(errors({ recipients: [] }).join("\n"), /^citadel:backup\.recipients: at least one public key is required/m);
    });

    it("retention below the policy's year is refused with the key and the fix", () => {
        assert.match(errors({ retention: { daily: 7, weekly: 5, monthly: 6 } }).join("\n"), /^citadel:backup\.retention: keeps backups for about 182 days; the policy asks for at least one year: keep at least 12 monthly/m);
        assert.deepEqual(errors({ retention: { daily: 400, weekly: 0, monthly: 0 } }), []);
    });

    it("a target URL that is not sftp://user@host/dir, carries a password, or lacks its pinned host key is refused", () => {
        assert.match(errors({ target: { url: "sftp://u:pw@host/dir", hostKey: TEST_BACKUP.target.hostKey } }).join("\n"), /^citadel:backup\.target\.url: the URL carries a password/m);
        assert.match(errors({ target: { url: "s3://s3.example.com/bucket", hostKey: TEST_BACKUP.target.hostKey } }).join("\n"), /^citadel:backup\.target\.url: S3 targets are not supported yet/m);
        assert.match(errors({ target: { url: "sftp://host/dir", hostKey: TEST_BACKUP.target.hostKey } }).join("\n"), /^citadel:backup\.target\.url: "sftp:\/\/host\/dir" is not a backup target/m);
        assert.match(errors({ target: { url: TEST_BACKUP.target.url } }).join("\n"), /^citadel:backup\.target\.hostKey: is required for an sftp target/m);
        assert.match(errors({ target: undefined }).join("\n"), /^citadel:backup\.target: is required when backups are enabled/m);
        assert.match(errors({ schedule: "daily; rm -rf /" }).join("\n"), /^citadel:backup\.schedule: "daily; rm -rf \/" is not a systemd calendar expression/m);
        assert.match(errors({ randomizedDelay: "5h" }).join("\n"), /^citadel:backup\.randomizedDelay: "5h" is above 2h/m);
        assert.match(errors({ targte: {} }).join("\n"), /^citadel:backup\.targte: is not a known setting; did you mean "target"\?/m);
    });

    it("a target without its credential stops the program before any resource, naming the key and the command that sets it", () => {
        const raw = prodWith({ backup: TEST_BACKUP });
        const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n";
        assert.throws(() => loadProgramInputs(raw, () => key), (e: Error) => {
            assert.match(e.message, /citadel:backup\.target\.sshKey: the sftp target sftp:\/\/u123456@u123456\.your-storagebox\.de:23\/citadel needs this credential; set it as a secret: pulumi config set --secret --path citadel:backup\.target\.sshKey < /);
            assert.match(e.message, /Nothing was changed\./);
            return true;
        });
        const ok = loadProgramInputs(prodWith({ backup: { ...TEST_BACKUP, target: { ...TEST_BACKUP.target, sshKey: KEY } } }), () => key);
        assert.deepEqual(Object.keys(ok.backupCredentials ?? {}), ["sshKey"]);
        const notKey = backupCredentials(parseConfigOrThrow(prodWith({ backup: { ...TEST_BACKUP, target: { ...TEST_BACKUP.target, sshKey: "hunter2" } } })).backup);
        assert.ok(!notKey.ok && /citadel:backup\.target\.sshKey: is not an unencrypted OpenSSH private key/.test(notKey.errors[0]));
    });

    it("the credential never reaches the posture (posture.json, steps, descriptions); its file is 0400 root and the step waits for it and the data", () => {
        const c = parseConfigOrThrow(prodWith({ backup: { ...TEST_BACKUP, target: { ...TEST_BACKUP.target, sshKey: KEY } } }));
        const m = posture(c);
        assert.ok(!JSON.stringify(m).includes("b3BlbnNzaC1rZXktdjEAAAAA"));
        const f = m.secretFiles.find((x) => x.consumer === "backup");
        assert.deepEqual(f && { path: f.path, uid: f.ownerUid, mode: f.mode }, { path: "/etc/citadel/secrets/backup/sshKey", uid: 0, mode: "0400" });
        const step = m.hostSteps.find((s) => s.name === "backup");
        // The baseline's last step (auditd, after Docker's): the whole baseline, Docker included.
        const baseline = m.hostSteps.filter((s) => s.layer === "baseline").at(-1)?.name;
        assert.equal(baseline, "auditd");
        assert.deepEqual(step?.after, [baseline, "intrusion", "secret-backup-sshKey", "container:postgres", "container:redis"]);
        assert.equal(m.hostSteps.filter((s) => s.layer === "backup").length, 1);
        assert.equal(posture(prodConfig()).hostSteps.some((s) => s.layer === "backup"), false, "no step while backups are off");
    });
});

describe("audit in-backup, judged on readings", () => {
    const c = backupConfig();
    const now = new Date("2026-12-02T12:00:00Z");
    const reading = (status: unknown, timer = { enabled: "enabled", active: "active" }) =>
        parseBackupReading(
            [`declared=*-*-* 00:00:00`, `enabled=${timer.enabled}`, `active=${timer.active}`, `calendar={ OnCalendar=*-*-* 00:00:00 ; next_elapse=Thu 2026-12-03 00:00:00 UTC }`, `status=${JSON.stringify(status)}`].join("\n"),
        );
    const good = { id: "20261202T001500Z", time: "2026-12-02T00:16:00Z", success: true, size: 4242, lastSuccess: { id: "20261202T001500Z", time: "2026-12-02T00:16:00Z" } };

    it("passes with the timer on and a good backup of last night", () => {
        const v = judgeBackup(c, reading(good), now);
        assert.equal(v.result, "pass", JSON.stringify(v));
        assert.match(v.evidence, /last good backup 20261202T001500Z \(11\.7 h ago, 4242 bytes\)/);
    });
    it("fails when the timer is stopped, the last run failed, the last good one is older than 26 h, or none ran", () => {
        assert.deepEqual(judgeBackup(c, reading(good, { enabled: "enabled", active: "inactive" }), now).drift?.map((d) => d.what), ["citadel-backup.timer active"]);
        const failed = judgeBackup(c, reading({ ...good, id: "20261202T101500Z", success: false, error: "dumping database app failed (exit 1)" }), now);
        assert.equal(failed.result, "fail");
        assert.match(failed.drift?.[0].actual ?? "", /failed: dumping database app failed/);
        const old = judgeBackup(c, reading({ ...good, lastSuccess: { id: "20261130T001500Z", time: "2026-11-30T00:16:00Z" } }), now);
        assert.match(old.drift?.[0].actual ?? "", /20261130T001500Z \(59\.7 h ago\)/);
        assert.match(judgeBackup(c, reading(null), now).drift?.[0].actual ?? "", /no run on this host yet/);
    });
    it("fails when a stack with data declares no backups; skips one without data", () => {
        assert.equal(judgeBackup(prodConfig(), reading(null), now).result, "fail");
        const noData = parseConfigOrThrow(prodWith({ postgres: { enabled: false }, redis: { enabled: false }, apps: [] , sites: [] }));
        assert.equal(judgeBackup(noData, reading(null), now).result, "skip");
    });
});
