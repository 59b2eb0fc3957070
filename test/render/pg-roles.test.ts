// The postgres-roles host step, run for real: Debian's Postgres with the rendered pg_hba.conf and
// postgresql.conf, the step's own script with a stand-in `docker exec` that runs the command as the
// postgres OS user against that server's socket (peer). Two apps: each gets its own role and
// database, neither can connect to the other's database or read its rows (pg_hba.conf, then the
// CONNECT privilege, then table ownership, each shown to hold with the layer before it undone);
// a rotation leaves only the new password working; a removed app's role loses LOGIN; the superuser
// is reachable by peer on the socket and never over the network.
import assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import type { StackConfig } from "../../components/config";
import { renderPgHba, renderPostgresConf, renderPostgresRolesScript, postgresTlsFunction } from "../../components/render/data";
import { SECRETS_DIR } from "../../components/posture/facts";
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

describe("postgres-roles: a role and database per app, on a live server", () => {
    it("gives each app its own role and database, closed to the other; rotates; closes a removed app's role; never shows a password", async (t) => {
        if (!requireRoot(t, "runs Postgres as the postgres user, mount namespaces")) return;
        const bin = pgBin(t);
        const psqlBin = requireTool(t, "psql");
        if (!bin || !psqlBin || !requireTool(t, "unshare") || !requireTool(t, "openssl")) return;
        // Two data apps: the fixture's api and a second one.
        const base = prodConfig();
        const api = base.apps.find((a) => a.name === "api")!;
        const c: StackConfig = { ...base, apps: [...base.apps, { ...api, name: "notes", secrets: ["postgresPassword"] }] };
        const dir = tmpDir("citadel-pgroles-");
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
        const hbaPath = path.join(dir, "pg_hba.conf");
        fs.writeFileSync(path.join(dir, "postgresql.conf"), renderPostgresConf(c));
        fs.writeFileSync(hbaPath, renderPgHba(c));
        const port = await freePort();
        const log = path.join(dir, "server.log");
        const out = fs.openSync(log, "a");
        const server: ChildProcess = spawn(
            "setpriv",
            ["--reuid", "postgres", "--regid", "postgres", "--init-groups", "--", path.join(bin, "postgres"), "-D", data,
                "-c", `config_file=${path.join(dir, "postgresql.conf")}`, "-c", `hba_file=${hbaPath}`,
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
        const su = (sql: string): RunResult => asPg("psql", ["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", sock, "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", sql], { PGPASSWORD: "" });
        const reloadHba = (text: string) => {
            fs.writeFileSync(hbaPath, text);
            assert.equal(su("select pg_reload_conf()").code, 0);
        };

        // The superuser by peer on the socket; another OS user cannot claim it there, nobody over the network.
        assert.equal(su("select current_user").stdout.trim(), "postgres");
        const nobody = run("setpriv", ["--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--", path.join(bin, "psql"), "-X", "-h", sock, "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", "select 1"], { env: { PATH: "/usr/bin:/bin", PGPASSWORD: firstSu } });
        assert.notEqual(nobody.code, 0);
        assert.match(nobody.stderr, /Peer authentication failed for user "postgres"|Permission denied/);
        const psql = (user: string, db: string, pw: string, sql = "select current_user"): RunResult =>
            run(psqlBin, ["-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql, `host=127.0.0.1 port=${port} dbname=${db} user=${user} sslmode=require`], { env: { ...process.env, PGPASSWORD: pw, PGCONNECT_TIMEOUT: "5" }, timeout: 20_000 });

        // The password files where the step reads them (the apps' own files, the superuser's).
        const secrets = path.join(dir, "secrets");
        const writePw = (consumer: string, name: string, value: string) => {
            fs.mkdirSync(path.join(secrets, consumer), { recursive: true, mode: 0o700 });
            const f = path.join(secrets, consumer, name);
            if (fs.existsSync(f)) fs.chmodSync(f, 0o600);
            fs.writeFileSync(f, value, { mode: 0o400 });
        };
        const pw = { api: password(), notes: password(), su: password() };
        writePw("api", "postgresPassword", pw.api);
        writePw("notes", "postgresPassword", pw.notes);
        writePw("postgres", "postgresSuperuserPassword", pw.su);
        const shimDir = path.join(dir, "shim");
        fs.mkdirSync(shimDir);
        fs.writeFileSync(path.join(shimDir, "docker"), DOCKER_SHIM, { mode: 0o755 });
        const shimLog = path.join(dir, "docker.log");
        const stepFor = (cfg: StackConfig) => {
            const step = renderPostgresRolesScript(cfg);
            const script = step.script.replaceAll(`${SECRETS_DIR}/`, `${secrets}/`);
            assert.notEqual(script, step.script, "the step reads the host's password files");
            fs.writeFileSync(path.join(dir, "step.sh"), script);
        };
        const runStep = (): RunResult =>
            run("unshare", ["--mount", "--fork", "--", "bash", "-c", 'set -e; mount --make-rprivate /; mount --bind "$1" /usr/local/sbin; exec bash "$2"', "sb", shimDir, path.join(dir, "step.sh")], {
                env: { ...process.env, SHIM_LOG: shimLog, SHIM_SOCKDIR: sock, SHIM_PGBIN: bin, SHIM_PORT: String(port) },
                timeout: 120_000,
            });
        // An earlier version's shared role and database, with a row in it.
        assert.equal(su("create role app login password 'legacy-password-0123456789'").code, 0);
        assert.equal(su("create database app owner app").code, 0);
        const legacy = asPg("psql", ["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", sock, "-p", String(port), "-U", "postgres", "-d", "app", "-c", "set role app; create table legacy_t (v text); insert into legacy_t values ('kept-row')"], { PGPASSWORD: "" });
        assert.equal(legacy.code, 0, legacy.stderr);
        // Two apps: which one the old data is for cannot be told, so the step refuses before any change.
        stepFor(c);
        const ambiguous = runStep();
        assert.notEqual(ambiguous.code, 0, "two apps and one old database must be refused");
        assert.match(ambiguous.stderr, /databases owned by a role no app declares, from an earlier version's shared role \(database\|role\): app\|app\. .*REASSIGN OWNED BY .*Nothing was changed/);
        assert.equal(su("select count(*) from pg_roles where rolname in ('api', 'notes')").stdout.trim(), "0", "no role was made");
        // One app: the old database becomes its own, with everything in it; the shared role loses LOGIN.
        stepFor(base);
        const migrated = runStep();
        assert.equal(migrated.code, 0, `${migrated.stdout}\n${migrated.stderr}`);
        assert.match(migrated.stdout, /database app of the shared role app \(earlier versions\) is now api, owned by role api with everything in it; app can no longer log in/);
        assert.equal(psql("api", "api", pw.api, "select v from legacy_t").stdout.trim(), "kept-row");
        assert.match(psql("api", "api", pw.api, "insert into legacy_t values ('new-row') returning v").stdout, /^new-row$/m, "the app owns the moved table");
        assert.equal(su("select rolcanlogin from pg_roles where rolname = 'app'").stdout.trim(), "f");
        assert.equal(su("select count(*) from pg_database where datname = 'app'").stdout.trim(), "0");
        stepFor(c);
        for (let i = 0; i < 2; i++) {
            const r = runStep();
            assert.equal(r.code, 0, `run ${i + 1}:\n${r.stdout}\n${r.stderr}`);
            assert.match(r.stdout, /citadel: postgres: roles api,notes: LOGIN, each owning its own database; superuser password set from the secret file/);
            assert.doesNotMatch(r.stdout, /closed/);
        }
        // Each role: LOGIN and nothing else, owner of its own database, which PUBLIC cannot connect to.
        const roles = su("select rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls from pg_roles where rolname in ('api', 'notes') order by 1");
        assert.equal(roles.stdout.trim(), "api|t|f|f|f|f|f\nnotes|t|f|f|f|f|f");
        const dbs = su("select datname, pg_get_userbyid(datdba), has_database_privilege('public', datname, 'CONNECT') from pg_database where datname in ('api', 'notes') order by 1");
        assert.equal(dbs.stdout.trim(), "api|api|f\nnotes|notes|f");

        // Each app writes a row in its own database...
        assert.equal(psql("api", "api", pw.api, "create table t (v text); insert into t values ('api-row')").code, 0);
        assert.equal(psql("notes", "notes", pw.notes, "create table t (v text); insert into t values ('notes-row')").code, 0);
        assert.equal(psql("notes", "notes", pw.notes, "select v from t").stdout.trim(), "notes-row");
        // ...and cannot connect to the other's, nor to postgres: pg_hba.conf refuses the pair.
        for (const [user, db] of [["api", "notes"], ["notes", "api"], ["api", "postgres"]] as const) {
            const r = psql(user, db, pw[user]);
            assert.notEqual(r.code, 0, `${user} connected to database ${db}`);
            assert.match(r.stderr, new RegExp(`pg_hba\\.conf rejects connection for host "127\\.0\\.0\\.1", user "${user}", database "${db}"`));
        }
        // Layer 2, with layer 1 undone (a pg_hba.conf that lets every role reach every database):
        // CONNECT is still not granted. Layer 3, with CONNECT granted too: the rows are the owner's.
        const hba = fs.readFileSync(hbaPath, "utf8");
        reloadHba(`hostssl all all 127.0.0.1/32 scram-sha-256\n${hba}`);
        const noConnect = psql("api", "notes", pw.api, "select v from t");
        assert.notEqual(noConnect.code, 0);
        assert.match(noConnect.stderr, /permission denied for database "notes"/);
        assert.equal(su("grant connect on database notes to public").code, 0);
        const noRows = psql("api", "notes", pw.api, "select v from t");
        assert.notEqual(noRows.code, 0);
        assert.match(noRows.stderr, /permission denied for table t/);
        // The control: the same query as notes' owner reads the row, so the query itself is right.
        assert.equal(psql("notes", "notes", pw.notes, "select v from t").stdout.trim(), "notes-row");
        // A second run of the step puts CONNECT back to the owner only.
        assert.equal(runStep().code, 0);
        assert.match(psql("api", "notes", pw.api).stderr, /permission denied for database "notes"/);
        reloadHba(hba);

        // Rotation of api's password: the new one only; notes untouched.
        const oldApi = pw.api;
        pw.api = password();
        writePw("api", "postgresPassword", pw.api);
        assert.equal(runStep().code, 0);
        assert.equal(psql("api", "api", pw.api).stdout.trim(), "api");
        const stale = psql("api", "api", oldApi);
        assert.notEqual(stale.code, 0, "the old password must be refused after the rotation");
        assert.match(stale.stderr, /password authentication failed for user "api"/);
        assert.equal(psql("notes", "notes", pw.notes).stdout.trim(), "notes");
        const suNet = run("setpriv", ["--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--", psqlBin, "-X", "-At", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", "select 1"], { env: { PATH: "/usr/bin:/bin", PGPASSWORD: pw.su, PGSSLMODE: "require" } });
        assert.match(suNet.stderr, /pg_hba\.conf rejects/, "still no superuser over the network, whatever its password");
        const scram = su("select rolname, rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname in ('postgres', 'api', 'notes') order by 1");
        assert.equal(scram.stdout.trim(), "api|t\nnotes|t\npostgres|t");

        // No password ever on a command line (the shim logged every docker argv) or in the server's log.
        const argv = fs.readFileSync(shimLog, "utf8");
        assert.match(argv, /^exec -i -u postgres postgres psql /m);
        for (const v of [oldApi, pw.api, pw.notes, pw.su]) {
            assert.ok(!argv.includes(v), "a password reached docker's argv");
            assert.ok(!fs.readFileSync(log, "utf8").includes(v), "a password reached the server log");
        }

        // A failing ALTER ROLE (the superuser's session made read-only) stops the step; neither its
        // output nor the server's log (the journal on the host, kept 90 days) shows the password.
        assert.equal(su("alter role postgres set default_transaction_read_only = on").code, 0);
        const failed = runStep();
        assert.equal(su("begin read write; alter role postgres reset default_transaction_read_only; commit").code, 0);
        assert.notEqual(failed.code, 0, "a failing ALTER ROLE must fail the step");
        assert.match(failed.stderr, /read-only transaction/);
        assert.match(failed.stderr, /setting the roles failed/);
        const serverLog = fs.readFileSync(log, "utf8");
        assert.match(serverLog, /read-only transaction/, "the server logged the failure itself");
        for (const v of [pw.api, pw.notes, pw.su]) {
            assert.ok(!`${failed.stdout}${failed.stderr}`.includes(v), "a password reached the failed step's output");
            assert.ok(!serverLog.includes(v), "a password reached the server log with the failed statement");
        }

        // notes removed from the stack: its role loses LOGIN (shown with the old pg_hba.conf still in
        // place, so it is the role that refuses), its database and rows stay.
        stepFor(base);
        const removed = runStep();
        assert.equal(removed.code, 0, removed.stderr);
        assert.match(removed.stdout, /roles of apps no longer declared closed \(NOLOGIN; their databases stay\): notes/);
        assert.match(psql("notes", "notes", pw.notes).stderr, /role "notes" is not permitted to log in/);
        assert.equal(su("select rolcanlogin from pg_roles where rolname = 'notes'").stdout.trim(), "f");
        assert.equal(su("select count(*) from pg_database where datname = 'notes'").stdout.trim(), "1");
        assert.equal(psql("api", "api", pw.api).stdout.trim(), "api");

        // A file that is not a generated password stops the step before psql runs.
        writePw("api", "postgresPassword", "x'; drop database api; --");
        const before = fs.readFileSync(shimLog, "utf8").length;
        const bad = runStep();
        assert.notEqual(bad.code, 0);
        assert.match(bad.stderr, /does not hold a generated password/);
        assert.equal(fs.readFileSync(shimLog, "utf8").length, before, "psql never ran");
        assert.equal(psql("api", "api", pw.api).stdout.trim(), "api", "the password in effect is unchanged");
    });
});
