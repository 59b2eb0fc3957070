// Rotation (issue 11 part 3) under Pulumi mocks and in the posture: forced epochs, the previous JWT
// secret and the encryption keyring as their own generations, the order in which a rotation reaches
// the database and the apps, and the config errors of citadel:secrets.rotateNow / keepPrevious.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { isSecret, ofType, props, recordProps, recorded, settle, valueOf } from "./mocks";
import { Secrets, generations, keyringJson } from "../../components/secrets";
import { parseConfig, parseConfigOrThrow } from "../../components/config";
import { containerRef, posture, secretSpecs } from "../../components/posture";
import { prodRaw, prodWith } from "../fixtures";

/** The prod example with citadel:secrets keys added (its apiKeys kept). */
const withSecrets = (secrets: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    prodWith({ secrets: { ...JSON.parse(prodRaw()["citadel:secrets"] ?? "{}"), ...secrets }, ...extra });

const NOW = new Date("2026-11-23T12:00:00Z");
const BYTES = "random:index/randomBytes:RandomBytes";

async function secretsFor(overrides: Record<string, unknown>) {
    recorded.length = 0;
    props.length = 0;
    const c = parseConfigOrThrow(withSecrets(overrides));
    const s = new Secrets("secrets", { specs: secretSpecs(c), rotationAnchor: c.secrets.rotationAnchor, now: NOW }, { transformations: [recordProps] });
    await settle();
    return s;
}

describe("rotation: generations of the versioned secrets", () => {
    it("keeps the current and `previous` older generations, never below epoch 0", () => {
        assert.deepEqual(generations(3, 1), [3, 2]);
        assert.deepEqual(generations(0, 1), [0]);
        assert.deepEqual(generations(5, 2), [5, 4, 3]);
        assert.deepEqual(generations(1, 0), [1]);
    });

    it("rotateNow adds to the computed epoch; the previous JWT secret is the generation before it", async () => {
        const s = await secretsFor({ rotateNow: { jwtSecret: 1, postgresPassword: 2 } });
        // 2026-01-01 → 2026-11-23: 3 quarters (+1 forced), 1 half-year (+2 forced).
        assert.equal(s.epochs.jwtSecret, 4);
        assert.equal(s.epochs["postgresPassword-api"], 3, "rotateNow.postgresPassword rotates every app's own value");
        assert.equal(s.epochs.postgresSuperuserPassword, 1, "rotateNow names one secret only");
        const names = ofType(BYTES).map((r) => r.name).filter((n) => n.startsWith("jwtSecret"));
        assert.deepEqual(names.sort(), ["jwtSecret-e3", "jwtSecret-e4"]);
        const gen = (name: string) => props.find((p) => p.name === name)!.resource as unknown as { hex: pulumi.Output<string> };
        assert.equal(await valueOf(s.values.jwtSecret), await valueOf(gen("jwtSecret-e4").hex));
        assert.equal(await valueOf(s.values.jwtSecretPrevious), await valueOf(gen("jwtSecret-e3").hex));
        assert.notEqual(await valueOf(s.values.jwtSecretPrevious), await valueOf(s.values.jwtSecret));
        assert.ok(await isSecret(s.values.jwtSecretPrevious));
    });

    it("keepPrevious.jwtSecret 0 (after a leak): the previous file carries the current secret", async () => {
        const s = await secretsFor({ keepPrevious: { jwtSecret: 0 } });
        assert.deepEqual(ofType(BYTES).map((r) => r.name).filter((n) => n.startsWith("jwtSecret")), ["jwtSecret-e3"]);
        assert.equal(await valueOf(s.values.jwtSecretPrevious), await valueOf(s.values.jwtSecret));
    });

    it("the keyring: new data under the current id, `keepPrevious` older keys kept for reading, base64 by epoch", async () => {
        const s = await secretsFor({ rotateNow: { apiEncryptionKey: 3 }, keepPrevious: { apiEncryptionKey: 2 } });
        assert.equal(s.epochs.apiEncryptionKey, 3);
        assert.deepEqual(ofType(BYTES).map((r) => r.name).filter((n) => n.startsWith("apiEncryptionKey")).sort(), ["apiEncryptionKey-e1", "apiEncryptionKey-e2", "apiEncryptionKey-e3"]);
        for (const r of ofType(BYTES).filter((x) => x.name.startsWith("apiEncryptionKey"))) assert.equal(r.inputs.length, 32);
        const ring = JSON.parse(String(await valueOf(s.values.apiEncryptionKeyring)));
        assert.equal(ring.current, "3");
        assert.deepEqual(Object.keys(ring.keys).sort(), ["1", "2", "3"]);
        assert.ok(await isSecret(s.values.apiEncryptionKeyring));
        assert.equal(keyringJson(2, { 2: "b", 1: "a" }), '{"current":"2","keys":{"1":"a","2":"b"}}');
    });

    it("a generation never changes once made: keepers are ignored, and the current one adopts the old plain-named resource", () => {
        const gen = props.find((p) => p.name === "apiEncryptionKey-e3")!;
        const opts = gen.opts as pulumi.CustomResourceOptions;
        assert.deepEqual(opts.ignoreChanges, ["keepers"]);
        assert.deepEqual(opts.aliases, [{ name: "apiEncryptionKey" }]);
        assert.deepEqual((props.find((p) => p.name === "apiEncryptionKey-e2")!.opts as pulumi.CustomResourceOptions).aliases, []);
    });
});

describe("rotation: the order pulumi up applies it in", () => {
    const m = posture(parseConfigOrThrow(prodWith({})));
    const step = m.hostSteps.find((s) => s.name === "postgres-roles");
    const x = (name: string) => m.containers.find((c) => c.name === name)!;

    it("postgres-roles runs once the postgres container and every password file it reads are there", () => {
        assert.ok(step, "no postgres-roles step");
        assert.deepEqual(step.after.sort(), [containerRef("postgres"), "secret-api-postgresPassword", "secret-postgres-postgresSuperuserPassword"].sort());
        assert.match(step.script, /docker exec -i -u postgres "\$container" psql/);
        assert.match(step.script, /ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT :connlimit PASSWORD :'pw';/);
        assert.match(step.script, /readonly apps=\( api api \/etc\/citadel\/secrets\/api\/postgresPassword 47\)/);
        assert.doesNotMatch(step.script, /PGPASSWORD|-e [A-Z_]*PASS/, "no password in the environment");
    });

    it("apps on the data network start after the passwords are set and Redis has its new ACL; Postgres is not re-created", () => {
        assert.ok(x("app-api").after.includes("postgres-roles"));
        assert.ok(x("app-api").after.includes(containerRef("redis")));
        assert.ok(!x("app-web").after.includes("postgres-roles"), "an app without data does not wait for the database");
        assert.deepEqual(x("postgres").rotatesWith, [], "Postgres keeps running: its passwords change by ALTER ROLE");
        assert.deepEqual(x("redis").rotatesWith, ["redisPassword-api"], "Redis loads its new ACL by being re-created");
        assert.deepEqual(x("app-api").rotatesWith, ["jwtSecret", "apiEncryptionKey", "postgresPassword-api", "redisPassword-api", "internalApiKey"], "an app rotates with its own values");
    });

    it("pg_hba: the superuser by peer on the socket only; every network connection hostssl + SCRAM", () => {
        const hba = m.hostSteps.find((s) => s.name === "postgres-config")!.files.find((f) => f.path.endsWith("pg_hba.conf"))!.content;
        const rules = hba.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(/\s+/).join(" "));
        assert.deepEqual(rules.slice(0, 2), ["local all postgres peer", "local all all scram-sha-256"]);
        assert.ok(rules.filter((r) => r.startsWith("host")).every((r) => /^hostssl .* scram-sha-256$|reject$/.test(r)), rules.join("\n"));
    });
});

describe("rotation: config errors name the key and the fix", () => {
    const errors = (secrets: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
        const r = parseConfig(withSecrets(secrets, extra));
        return r.ok ? [] : r.errors;
    };

    it("rotateNow of a secret the stack does not generate, with a near match", () => {
        const e = errors({ rotateNow: { jwtSecre: 1 } });
        assert.equal(e.length, 1, e.join("\n"));
        assert.match(e[0], /citadel:secrets\.rotateNow\.jwtSecre/);
        assert.match(e[0], /did you mean "jwtSecret"\?/);
        const off = errors({ rotateNow: { redisPassword: 1 } }, { redis: { enabled: false } });
        assert.ok(off.some((x) => /citadel:secrets\.rotateNow\.redisPassword: "redisPassword" is not a secret this stack generates/.test(x)), off.join("\n"));
    });

    it("rotateNow must be a whole number ≥ 0; keepPrevious within its bounds", () => {
        assert.match(errors({ rotateNow: { jwtSecret: -1 } }).join("\n"), /citadel:secrets\.rotateNow\.jwtSecret: -1 is below the minimum 0/);
        assert.match(errors({ rotateNow: { jwtSecret: 1.5 } }).join("\n"), /citadel:secrets\.rotateNow\.jwtSecret: expected a whole number/);
        assert.match(errors({ keepPrevious: { jwtSecret: 2 } }).join("\n"), /citadel:secrets\.keepPrevious\.jwtSecret: 2 is above the maximum 1/);
        assert.match(errors({ keepPrevious: { apiEncryptionKey: 11 } }).join("\n"), /citadel:secrets\.keepPrevious\.apiEncryptionKey: 11 is above the maximum 10/);
        assert.match(errors({ keepPrevious: { apiKey: 1 } }).join("\n"), /citadel:secrets\.keepPrevious.*apiKey/);
    });

    it("defaults: one previous JWT secret, two old encryption keys, nothing forced", () => {
        const c = parseConfigOrThrow(prodWith({}));
        assert.deepEqual(c.secrets.keepPrevious, { jwtSecret: 1, apiEncryptionKey: 2 });
        assert.deepEqual(c.secrets.rotateNow, {});
    });
});

