// The postgres-passwords host step, run for real: Debian's Postgres with the rendered pg_hba.conf and
// postgresql.conf, the step's own script with a stand-in `docker exec` that runs the command as the
// postgres OS user against that server's socket (peer), password files rewritten as a rotation does.
// After the step the app role logs in over TLS with the new password only; the superuser's password
// changed too; the superuser is reachable by peer on the socket and never over the network.
import assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import { renderPgHba, renderPostgresConf, renderPostgresPasswordsScript, postgresTlsFunction } from "../../components/render/data";
import { prodConfig } from "../fixtures";
import { freePort, requireRoot, requireTool, run, RunResult, tmpDir, waitFor } from "../tools";

/** Generated passwords are [A-Za-z0-9]{40}, like @pulumi/random's with special: false. */
const password = (): string => randomBytes(60).toString("base64").replace(/[^A-Za-z0-9]/g, "").slice(0, 40);

function pgBin(t: TestContext): string | undefined {
    const root = "/usr/lib/postgresql";
    const majors = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, "bin", "postgres"))) : [];
    if (!majors.length) {
        t.skip("Debian's postgresql is not installed (apt-get install postgresql)");
        return undefined;
    }
    return path.join(root, majors.sort((a, b) => Number(b) - Number(a))[0], "bin");
}

/** `docker exec [-i] -u postgres postgres CMD...` → CMD as the postgres OS user, the container's socket dir swapped for the test's. */
const DOCKER_SHIM = `#!/bin/bash
set -euo pipefail
printf '%s\\n' "$*" >>"$SHIM_LOG"
[ "\${1:-}" = exec ] || { echo "docker-shim: only exec" >&2; exit 125; }
shift
[ "$1" = -i ] && shift
[ "$1" = -u ] && [ "$2" = postgres ] || { echo "docker-shim: exec must be -u postgres" >&2; exit 125; }
shift 2
[ "$1" = postgres ] || { echo "docker-shim: no such container $1" >&2; exit 125; }
shift
args=()
for a in "$@"; do args+=("\${a//\\/var\\/run\\/postgresql/$SHIM_SOCKDIR}"); done
exec setpriv --reuid postgres --regid postgres --init-groups env -i PATH="$SHIM_PGBIN:/usr/bin:/bin" PGPORT="$SHIM_PORT" LANG=C.UTF-8 "\${args[@]}"
`;

describe("postgres-passwords: rotation applied to a live server", () => {
    it("sets the app role's and the superuser's passwords from the files, over the socket by peer; old password refused", async (t) => {
        if (!requireRoot(t, "runs Postgres as the postgres user, mount namespaces")) return;
        const bin = pgBin(t);
        const psqlBin = requireTool(t, "psql");
        if (!bin || !psqlBin || !requireTool(t, "unshare") || !requireTool(t, "openssl")) return;
        const c = prodConfig();
        const dir = tmpDir("citadel-pgpw-");
        t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
        fs.chmodSync(dir, 0o755);
        const pgUid = Number(run("id", ["-u", "postgres"]).stdout.trim());
        const pgGid = Number(run("id", ["-g", "postgres"]).stdout.trim());
        const asPg = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): RunResult =>
            run("setpriv", ["--reuid", "postgres", "--regid", "postgres", "--init-groups", "--", cmd, ...args], { env: { PATH: `${bin}:/usr/bin:/bin`, LANG: "C.UTF-8", ...env }, timeout: 60_000 });

        // A cluster whose superuser is `postgres` (as in the image), TLS from the step's own function.
        const data = path.join(dir, "data");
        const sock = path.join(dir, "sock");
        fs.mkdirSync(sock);
        fs.mkdirSync(data);
        fs.chownSync(sock, pgUid, pgGid);
        fs.chownSync(data, pgUid, pgGid);
        const firstSu = password();
        fs.writeFileSync(path.join(dir, "su0"), firstSu);
        fs.chownSync(path.join(dir, "su0"), pgUid, pgGid);
        const init = asPg("initdb", ["-D", data, "-U", "postgres", "--auth=scram-sha-256", `--pwfile=${path.join(dir, "su0")}`, "-E", "UTF8"]);
        assert.equal(init.code, 0, init.stderr);
        const tls = path.join(dir, "tls");
        const mk = run("bash", ["-c", `set -euo pipefail\n${postgresTlsFunction()}\ncitadel_pg_tls "$1" "$2"`, "tls", tls, `${pgUid}:${pgGid}`]);
        assert.equal(mk.code, 0, mk.stderr);
        fs.writeFileSync(path.join(dir, "postgresql.conf"), renderPostgresConf(c));
        fs.writeFileSync(path.join(dir, "pg_hba.conf"), renderPgHba(c));
        const port = await freePort();
        const log = path.join(dir, "server.log");
        const out = fs.openSync(log, "a");
        const server: ChildProcess = spawn(
            "setpriv",
            ["--reuid", "postgres", "--regid", "postgres", "--init-groups", "--", path.join(bin, "postgres"), "-D", data,
                "-c", `config_file=${path.join(dir, "postgresql.conf")}`, "-c", `hba_file=${path.join(dir, "pg_hba.conf")}`,
                "-c", `ssl_cert_file=${tls}/server.crt`, "-c", `ssl_key_file=${tls}/server.key`,
                "-c", "listen_addresses=127.0.0.1", "-c", `port=${port}`, "-c", `unix_socket_directories=${sock}`],
            { env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" }, stdio: ["ignore", out, out] },
        );
        t.after(async () => {
            if (server.exitCode === null) {
                server.kill("SIGTERM");
                await new Promise((r) => server.once("exit", r));
            }
        });
        const ready = await waitFor(() => run(path.join(bin, "pg_isready"), ["-h", "127.0.0.1", "-p", String(port)]).code === 0, 30_000);
        assert.ok(ready, `postgres did not start:\n${fs.readFileSync(log, "utf8")}`);

        // The superuser by peer on the socket: no password asked of the postgres OS user...
        const peer = asPg("psql", ["-X", "-At", "-h", sock, "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", "select current_user"], { PGPASSWORD: "" });
        assert.equal(peer.code, 0, peer.stderr);
        assert.equal(peer.stdout.trim(), "postgres");
        const oldApp = password();
        const mkRole = asPg("psql", ["-X", "-v", "ON_ERROR_STOP=1", "-h", sock, "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", `create role ${c.postgres.user} login password '${oldApp}'`, "-c", `create database ${c.postgres.database} owner ${c.postgres.user}`]);
        assert.equal(mkRole.code, 0, mkRole.stderr);
        // ...but another OS user cannot claim the superuser there (peer), and nobody over the network.
        const nobody = run("setpriv", ["--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--", path.join(bin, "psql"), "-X", "-h", sock, "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", "select 1"], { env: { PATH: "/usr/bin:/bin", PGPASSWORD: firstSu } });
        assert.notEqual(nobody.code, 0);
        assert.match(nobody.stderr, /Peer authentication failed for user "postgres"|Permission denied/);
        const psql = (user: string, db: string, pw: string): RunResult =>
            run(psqlBin, ["-X", "-At", "-c", "select current_user", `host=127.0.0.1 port=${port} dbname=${db} user=${user} sslmode=require`], { env: { ...process.env, PGPASSWORD: pw, PGCONNECT_TIMEOUT: "5" }, timeout: 20_000 });
        assert.equal(psql(c.postgres.user, c.postgres.database, oldApp).code, 0, "the app role logs in with its first password");
        const suNet = psql("postgres", "postgres", firstSu);
        assert.notEqual(suNet.code, 0);
        assert.match(suNet.stderr, /pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "postgres"/);

        // Rotation: new files, then the step (its own script, paths of this sandbox).
        const step = renderPostgresPasswordsScript(c);
        const secrets = path.join(dir, "secrets");
        fs.mkdirSync(secrets, { mode: 0o700 });
        const newApp = password();
        const newSu = password();
        fs.writeFileSync(path.join(secrets, "postgresPassword"), newApp, { mode: 0o400 });
        fs.writeFileSync(path.join(secrets, "postgresSuperuserPassword"), newSu, { mode: 0o400 });
        const script = step.script.replaceAll("/etc/citadel/secrets/postgres/", `${secrets}/`);
        assert.notEqual(script, step.script, "the step reads the host's password files");
        const shimDir = path.join(dir, "shim");
        fs.mkdirSync(shimDir);
        fs.writeFileSync(path.join(shimDir, "docker"), DOCKER_SHIM, { mode: 0o755 });
        fs.writeFileSync(path.join(dir, "step.sh"), script);
        const shimLog = path.join(dir, "docker.log");
        const runStep = (): RunResult =>
            run("unshare", ["--mount", "--fork", "--", "bash", "-c", 'set -e; mount --make-rprivate /; mount --bind "$1" /usr/local/sbin; exec bash "$2"', "sb", shimDir, path.join(dir, "step.sh")], {
                env: { ...process.env, SHIM_LOG: shimLog, SHIM_SOCKDIR: sock, SHIM_PGBIN: bin, SHIM_PORT: String(port) },
                timeout: 120_000,
            });
        for (let i = 0; i < 2; i++) {
            const r = runStep();
            assert.equal(r.code, 0, `run ${i + 1}:\n${r.stdout}\n${r.stderr}`);
            assert.match(r.stdout, /citadel: postgres: passwords of roles app and postgres set from the secret files/);
        }
        // No password ever on a command line (the shim logged every docker argv).
        const argv = fs.readFileSync(shimLog, "utf8");
        assert.match(argv, /^exec -i -u postgres postgres psql /m);
        for (const pw of [newApp, newSu]) assert.ok(!argv.includes(pw), "a password reached docker's argv");
        assert.ok(!fs.readFileSync(log, "utf8").includes(newApp), "a password reached the server log");

        // The app role: the new password only. The superuser: its verifier changed to the new one.
        assert.equal(psql(c.postgres.user, c.postgres.database, newApp).code, 0, "the new app password is accepted");
        const stale = psql(c.postgres.user, c.postgres.database, oldApp);
        assert.notEqual(stale.code, 0, "the old app password must be refused after the rotation");
        assert.match(stale.stderr, /password authentication failed for user "app"/);
        const suCheck = run("setpriv", ["--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--", psqlBin, "-X", "-At", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", "select 1"], { env: { PATH: "/usr/bin:/bin", PGPASSWORD: newSu, PGSSLMODE: "require" } });
        assert.match(suCheck.stderr, /pg_hba\.conf rejects/, "still no superuser over the network, whatever its password");
        const scram = asPg("psql", ["-X", "-At", "-h", sock, "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", "select rolname, rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname in ('postgres', 'app') order by 1"]);
        assert.equal(scram.stdout.trim(), "app|t\npostgres|t");

        // A failing ALTER ROLE (its role does not exist) stops the step; neither the step's output nor the
        // server's log (the journal on the host, kept 90 days) shows the password it tried to set.
        const ghost = renderPostgresPasswordsScript({ ...c, postgres: { ...c.postgres, user: "ghost" } });
        fs.writeFileSync(path.join(dir, "step.sh"), ghost.script.replaceAll("/etc/citadel/secrets/postgres/", `${secrets}/`));
        const failed = runStep();
        assert.notEqual(failed.code, 0, "ALTER ROLE of a missing role must fail the step");
        assert.match(failed.stderr, /role "ghost" does not exist/);
        assert.match(failed.stderr, /ALTER ROLE failed; the database keeps its previous passwords/);
        const serverLog = fs.readFileSync(log, "utf8");
        assert.match(serverLog, /role "ghost" does not exist/, "the server logged the failure itself");
        for (const pw of [newApp, newSu]) {
            assert.ok(!`${failed.stdout}${failed.stderr}`.includes(pw), "a password reached the failed step's output");
            assert.ok(!serverLog.includes(pw), "a password reached the server log with the failed statement");
        }
        fs.writeFileSync(path.join(dir, "step.sh"), script);

        // A file that is not a generated password stops the step before psql runs.
        fs.chmodSync(path.join(secrets, "postgresPassword"), 0o600);
        fs.writeFileSync(path.join(secrets, "postgresPassword"), "x'; drop database app; --");
        const before = fs.readFileSync(shimLog, "utf8").length;
        const bad = runStep();
        assert.notEqual(bad.code, 0);
        assert.match(bad.stderr, /does not hold a generated password/);
        assert.equal(fs.readFileSync(shimLog, "utf8").length, before, "psql never ran");
        assert.equal(psql(c.postgres.user, c.postgres.database, newApp).code, 0, "the password in effect is unchanged");
    });
});
