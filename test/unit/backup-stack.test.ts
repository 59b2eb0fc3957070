// The backup layer under Pulumi mocks: the target's key travels only as a secret on the secret-file
// step's stdin (never in a command, trigger or any other input), the backup step is the Backup
// component's and waits for the key file and the data containers.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { isSecret, props, recordProps, recorded, settle, valueOf } from "./mocks";
import { Citadel } from "../../components/stack";
import { backupConfig } from "../fixtures";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nBACKUPKEYCANARY\n-----END OPENSSH PRIVATE KEY-----\n";

function strings(v: unknown, out: string[] = []): string[] {
    if (typeof v === "string") out.push(v);
    else if (Array.isArray(v)) v.forEach((x) => strings(x, out));
    else if (v && typeof v === "object") Object.values(v).forEach((x) => strings(x, out));
    return out;
}

describe("stack with backups (mocks)", () => {
    it("the key is a secret on one step's stdin and nowhere else; the backup step waits for it and the data", async () => {
        recorded.length = 0;
        props.length = 0;
        const citadel = new Citadel(
            "bk",
            { config: backupConfig(), privateKey: pulumi.secret("-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n"), privateKeyPath: "/k", now: new Date("2026-11-23T12:00:00Z"), backupCredentials: { sshKey: KEY } },
            { transformations: [recordProps] },
        );
        await valueOf(pulumi.output(citadel.outputs));
        await settle();
        const file = props.find((p) => p.name === "secret-backup-sshKey");
        assert.ok(file, props.map((p) => p.name).join(" "));
        assert.ok(await isSecret(pulumi.output(file.props.stdin)));
        assert.equal(await valueOf(file.props.stdin), KEY);
        const leaks = recorded.filter((r) => !(r.name === "secret-backup-sshKey") && strings(r.inputs).some((s) => s.includes("BACKUPKEYCANARY")));
        assert.deepEqual(leaks.map((r) => r.name), []);
        const fileInputs = recorded.find((r) => r.name === "secret-backup-sshKey")!;
        assert.ok(!String(fileInputs.inputs.create).includes("BACKUPKEYCANARY"));
        assert.ok(!strings(await valueOf(pulumi.output(citadel.outputs))).some((s) => s.includes("BACKUPKEYCANARY")), "not in the outputs");
        const step = props.find((p) => p.name === "backup" && p.type === "command:remote:Command");
        assert.ok(step);
        const urn = String(await valueOf(step.resource.urn));
        assert.match(urn, /citadel:backup:Backup\$command:remote:Command::backup$/);
        assert.match(String(await valueOf(step.props.create)), /citadel: backup|CITADEL_AREA=backup/);
    });
});
