// Postgres and Redis configuration, judged by the real servers (Debian's postgresql 15 and
// redis-server 7.0) on 127.0.0.1 only, and the host steps run for real in a sandbox.
//
// The host steps validate with `docker run <image> ...`. Here a stand-in `docker` (SHIM below) runs
// that command in a private mount and network namespace whose root is an overlay of this machine's
// own / — Debian's postgres/redis binaries play the image — with the same bind mounts, tmpfs,
// read-only root and uid; it refuses options it does not know. The steps themselves run in a mount
// namespace where /etc is an overlay, so they write /etc/citadel/... for real without touching the
// machine's /etc. Every server a test starts is stopped by PID in t.after.
import assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import { DEFAULT_POSTGRES_IMAGE, DEFAULT_REDIS_IMAGE, parseConfigOrThrow, StackConfig } from "../../components/config";
import {
    DATA_UID,
    POSTGRES_LEGACY_INITDB_HOST_DIR,
    postgresApps,
    POSTGRES_SUPERUSER_RESERVED,
    postgresTlsFunction,
    postgresTuning,
    redisAclUsers,
    REDIS_ISOLATION_DENIED,
    renderPgHba,
    renderPostgresConf,
    renderPostgresRolesScript,
    renderPostgresScript,
    renderPostgresValidator,
    renderRedisAcl,
    renderRedisConf,
    renderRedisScript,
    renderRedisValidator,
} from "../../components/render/data";
import { POSTGRES_CONTAINER, secretFilePath } from "../../components/posture/facts";
import { prodConfig, prodRaw, prodWith } from "../fixtures";
import { freePort, reEscape, requireTool, run, RunResult, tmpDir, waitFor, requireRoot as requireRootAs, shellcheck } from "../tools";

/** The default image as it appears in a log line (by digest: components/config/default-images.ts). */
const PG_IMAGE_RE = reEscape(DEFAULT_POSTGRES_IMAGE);
const REDIS_IMAGE_RE = reEscape(DEFAULT_REDIS_IMAGE);

const sha256hex = (s: string): string => createHash("sha256").update(s).digest("hex");
/** Generated passwords are [A-Za-z0-9] (the postgres-roles step refuses anything else in a password file). */
const password = (): string => randomBytes(60).toString("base64").replace(/[^A-Za-z0-9]/g, "").slice(0, 40);

/** The prod example with a second data app, "notes", beside "api": each gets its own role, database and Redis user. */
function twoDataApps(): StackConfig {
    const apps = JSON.parse(prodRaw()["citadel:apps"]) as Array<Record<string, unknown>>;
    const api = apps.find((a) => a.name === "api");
    assert.ok(api, "the prod example has the data app api");
    return parseConfigOrThrow(prodWith({ apps: [...apps, { ...api, name: "notes", secrets: ["postgresPassword", "redisPassword"] }] }));
}

const requireRoot = (t: TestContext): boolean => requireRootAs(t, "runs servers as other users, mount namespaces");

/** Debian's PostgreSQL bin directory (the newest installed major), or a skip/fail like requireTool. */
function requirePgBin(t: TestContext): string | undefined {
    const root = "/usr/lib/postgresql";
    const majors = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, "bin", "postgres"))) : [];
    majors.sort((a, b) => Number(b) - Number(a));
    if (majors.length) return path.join(root, majors[0], "bin");
    requireTool(t, "postgres", "install Debian's postgresql: bash lab/prereqs.sh");
    return undefined;
}

function idOf(user: string): { uid: number; gid: number } | undefined {
    const u = run("id", ["-u", user]);
    const g = run("id", ["-g", user]);
    if (u.code !== 0 || g.code !== 0) return undefined;
    return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/** Starts a long-running server; t.after stops it by PID (TERM, then KILL after 10 s). */
function startServer(t: TestContext, cmd: string, args: string[], opts: { cwd?: string; log: string; env?: NodeJS.ProcessEnv }): ChildProcess {
    const out = fs.openSync(opts.log, "a");
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["ignore", out, out] });
    fs.closeSync(out);
    t.after(async () => {
        if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
        process.kill(child.pid, "SIGTERM");
        const timer = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 10_000));
        if ((await Promise.race([exited, timer])) === "timeout") {
            process.kill(child.pid, "SIGKILL");
            await exited;
        }
    });
    return child;
}

const exited = (p: ChildProcess): boolean => p.exitCode !== null || p.signalCode !== null;

// ---------------------------------------------------------------------------------------------
// Pure properties of the rendered files
// ---------------------------------------------------------------------------------------------

describe("data renderers", () => {
    it("pg_hba.conf: no trust/ident, peer only for the superuser on the socket, every TCP line is hostssl+scram or reject", () => {
        const hbaRules = (c: StackConfig): string[][] => renderPgHba(c).split("\n").filter((l) => l.trim() && !l.trim().startsWith("#")).map((l) => l.trim().split(/\s+/));
        const rules = hbaRules(prodConfig());
        assert.ok(rules.length >= 5);
        for (const r of rules) {
            const method = r[r.length - 1];
            if (method === "peer") {
                assert.equal(r.join(" "), "local all postgres peer");
                continue;
            }
            assert.ok(["local", "hostssl", "hostnossl"].includes(r[0]), `unexpected connection type in ${r.join(" ")}`);
            // The one peer line: the superuser on the container's own socket (docker exec -u postgres).
            if (method === "peer") assert.equal(r.join(" "), "local all postgres peer");
            else assert.ok(["scram-sha-256", "reject"].includes(method), `unexpected method in ${r.join(" ")}`);
            if (r[0] === "hostnossl") assert.equal(method, "reject");
        }
        // The prod example's one data app with postgresPassword: its own role on its own database.
        assert.deepEqual(postgresApps(prodConfig()).map((a) => [a.role, a.database]), [["api", "api"]]);
        assert.ok(rules.some((r) => r.join(" ") === "hostssl api api 0.0.0.0/0 scram-sha-256"));
        assert.ok(rules.some((r) => r.join(" ") === "hostssl api api ::/0 scram-sha-256"));
        // Two data apps: one line pair each, and no line lets one app's role reach the other's database.
        const accepted = (c: StackConfig) => hbaRules(c).filter((r) => r[0] === "hostssl" && r[r.length - 1] === "scram-sha-256").map((r) => r.slice(1, 4).join(" "));
        assert.deepEqual(accepted(twoDataApps()).sort(), ["api api 0.0.0.0/0", "api api ::/0", "notes notes 0.0.0.0/0", "notes notes ::/0"]);
        // The last lines still refuse everything else, whatever came before.
        assert.deepEqual(hbaRules(twoDataApps()).slice(-2).map((r) => r.join(" ")), ["hostssl all all 0.0.0.0/0 reject", "hostssl all all ::/0 reject"]);
    });

    it("each app's role gets an equal share of the connections the superuser's reserve leaves; more apps than connections is refused, naming the key", () => {
        const withPg = (a: Record<string, unknown>) => ({ ...a, data: true, secrets: [...new Set([...((a.secrets as string[]) ?? []), "postgresPassword"])] });
        const two = parseConfigOrThrow(prodWith({ apps: [...(JSON.parse(prodRaw()["citadel:apps"]) as Record<string, unknown>[]).map(withPg), withPg({ name: "notes", image: "ghcr.io/example/notes:1", port: 3000 })] }));
        const apps = postgresApps(two);
        assert.ok(apps.length >= 2, "two or more apps use Postgres");
        const max = Number(/^max_connections = (\d+)$/m.exec(renderPostgresConf(two))![1]);
        assert.match(renderPostgresConf(two), new RegExp(`^superuser_reserved_connections = ${POSTGRES_SUPERUSER_RESERVED}$`, "m"));
        for (const a of apps) assert.equal(a.connectionLimit, Math.floor((max - POSTGRES_SUPERUSER_RESERVED) / apps.length));
        assert.ok(apps.reduce((n, a) => n + a.connectionLimit, 0) <= max - POSTGRES_SUPERUSER_RESERVED, "the shares never add up to more than there is");
        // The step sets it: the role script carries each app's limit.
        assert.match(renderPostgresRolesScript(two).script, new RegExp(`CONNECTION LIMIT :connlimit`));
        // 40 pids leave Postgres 10 connections, 7 for apps: eight apps cannot each have one. The config
        // check says so, naming the key and the fix, before anything renders.
        const pg = JSON.parse(prodRaw()["citadel:postgres"]) as Record<string, unknown>;
        const apps8 = Array.from({ length: 8 }, (_, i) => withPg({ name: ["web", "api"][i] ?? `a${i}`, image: "ghcr.io/example/a:1", port: 3000 }));
        assert.throws(() => parseConfigOrThrow(prodWith({ postgres: { ...pg, resources: { memory: "512m", cpus: 1, pids: 40 } }, apps: apps8 })), /citadel:postgres\.resources\.pids: 40 pids give Postgres 10 connections, 7 for apps: fewer than one for each of the 8 apps that use it; raise it to at least 41/);
        // With the pids it names, the same apps pass, one connection each at least.
        const raised = parseConfigOrThrow(prodWith({ postgres: { ...pg, resources: { memory: "512m", cpus: 1, pids: 41 } }, apps: apps8 }));
        assert.equal(postgresApps(raised)[0].connectionLimit, 1);
    });

    it("memory settings follow the container limit; too little memory is refused", () => {
        const big = parseConfigOrThrow(prodWith({ postgres: { enabled: true, resources: { memory: "2g", cpus: 1, pids: 256 } } }));
        assert.match(renderPostgresConf(big), /^shared_buffers = 512MB$/m);
        assert.equal(postgresTuning(big).effectiveCacheSizeMb, 1024);
        const t = postgresTuning(prodConfig());
        assert.ok(t.maxConnections * t.workMemMb <= 512 / 4, "all connections' work_mem within a quarter of the limit");
        // The schema refuses it before any resource exists; the renderer still refuses it (defence in depth).
        assert.throws(() => parseConfigOrThrow(prodWith({ postgres: { enabled: true, resources: { memory: "64m", cpus: 1, pids: 256 } } })), /citadel:postgres\.resources\.memory: "64m" is too little/);
        const tiny = structuredClone(prodConfig());
        tiny.postgres.resources.memory = "64m";
        assert.throws(() => renderPostgresConf(tiny), /citadel:postgres\.resources\.memory: "64m" is too little/);
    });

    it("users.acl: one user per app, confined to its key prefix, carrying only the SHA-256; refuses anything else", () => {
        const c = twoDataApps();
        const users = redisAclUsers(c);
        assert.deepEqual(users, [{ user: "api", keyPrefix: "api:" }, { user: "notes", keyPrefix: "notes:" }]);
        assert.deepEqual(redisAclUsers(prodConfig()), [{ user: "api", keyPrefix: "api:" }], "web has no data: no Redis user");
        const pws = users.map(() => password());
        const acl = renderRedisAcl(c, users.map((u, i) => ({ ...u, passwordSha256Hex: sha256hex(pws[i]) })));
        for (const pw of pws) assert.ok(!acl.includes(pw));
        const lines = acl.split("\n").filter((l) => l.trim());
        assert.equal(lines.length, 3, acl);
        assert.match(lines[0], /^user default off resetpass resetkeys resetchannels -@all$/);
        // Every denied command, for every user: the ones that reach past a prefix and the configured ones, once each.
        const denied = [...REDIS_ISOLATION_DENIED, ...c.redis.disabledCommands].map((x) => x.toLowerCase());
        for (const x of ["flushall", "keys", "scan", "pubsub", "function|flush"]) assert.ok(denied.includes(x), `${x} is denied`);
        users.forEach((u, i) => {
            const line = lines.find((l) => l.startsWith(`user ${u.user} `));
            assert.ok(line, `no ACL line for ${u.user}`);
            const m = /^user (\S+) on #([0-9a-f]{64}) resetkeys resetchannels ~(\S+) &(\S+) \+@all -@admin((?: -\S+)*)$/.exec(line);
            assert.ok(m, line);
            assert.deepEqual(m.slice(1, 5), [u.user, sha256hex(pws[i]), `${u.keyPrefix}*`, `${u.keyPrefix}*`]);
            const minus = m[5].trim().split(" ").map((x) => x.replace(/^-/, ""));
            assert.deepEqual([...minus].sort(), [...new Set(denied)].sort(), `${u.user}: the denied commands, each once`);
        });
        assert.doesNotMatch(acl, /[~&]\*/, "no user reaches every key or channel");
        const hashed = (h: string) => [{ ...users[0], passwordSha256Hex: sha256hex(pws[0]) }, { ...users[1], passwordSha256Hex: h }];
        assert.throws(() => renderRedisAcl(c, hashed(pws[1])), /64 lower-case hex/);
        assert.throws(() => renderRedisAcl(c, hashed(sha256hex(pws[1]).toUpperCase())), /64 lower-case hex/);
    });

    it("maxmemory must leave headroom in the container", () => {
        assert.throws(() => parseConfigOrThrow(prodWith({ redis: { enabled: true, maxMemory: "250mb" } })), /citadel:redis\.maxMemory: "250mb" leaves too little headroom/);
        const c = structuredClone(prodConfig());
        c.redis.maxMemory = "250mb";
        assert.throws(() => renderRedisConf(c), /citadel:redis\.maxMemory: "250mb" leaves too little headroom/);
    });
});

// ---------------------------------------------------------------------------------------------
// shellcheck: the host steps and every script they embed
// ---------------------------------------------------------------------------------------------

describe("data scripts: shellcheck", () => {
    it("postgres-config, redis-config, the checks, the role script and the TLS function are clean", (t) => {
        const sc = requireTool(t, "shellcheck");
        if (!sc) return;
        const c = prodConfig();
        const scripts: Record<string, string> = {
            "postgres-config.sh": renderPostgresScript(c, c.postgres.image).script,
            "redis-config.sh": renderRedisScript(c, c.redis.image).script,
            "pg-validate.sh": renderPostgresValidator(),
            "redis-validate.sh": renderRedisValidator(),
            "postgres-roles.sh": renderPostgresRolesScript(twoDataApps()).script,
            "pg-tls.sh": "#!/usr/bin/env bash\n" + postgresTlsFunction(),
        };
        for (const [name, text] of Object.entries(scripts)) {
            const r = shellcheck(sc, text, ["-S", "style"]);
            assert.equal(r.code, 0, `${name}:\n${r.stdout}${r.stderr}`);
        }
    });
});

// ---------------------------------------------------------------------------------------------
// Redis: the rendered redis.conf and users.acl in a real redis-server on 127.0.0.1
// ---------------------------------------------------------------------------------------------

describe("redis: real server", () => {
    it("shuts out anonymous clients, admits each app by its own password to its own keys only, denies the dangerous commands", async (t) => {
        const server = requireTool(t, "redis-server");
        const cli = requireTool(t, "redis-cli");
        if (!server || !cli) return;
        const c = twoDataApps();
        const [api, notes] = redisAclUsers(c);
        assert.deepEqual([api?.user, notes?.user], ["api", "notes"]);
        const dir = tmpDir("citadel-redis-");
        t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
        const pw = password();
        const notesPw = password();
        const conf = path.join(dir, "redis.conf");
        const acl = path.join(dir, "users.acl");
        fs.writeFileSync(conf, renderRedisConf(c));
        fs.writeFileSync(acl, renderRedisAcl(c, [{ ...api, passwordSha256Hex: sha256hex(pw) }, { ...notes, passwordSha256Hex: sha256hex(notesPw) }]), { mode: 0o400 });
        const port = await freePort();
        // Paths and the listener are overridden after the file (later directives win); the working
        // directory stands in for the container's /data.
        const redis = startServer(t, server, [conf, "--port", String(port), "--bind", "127.0.0.1", "--aclfile", acl], { cwd: dir, log: path.join(dir, "redis.log") });

        const cmd = (args: string[], auth?: { user: string; pass: string }): RunResult =>
            run(cli, ["-h", "127.0.0.1", "-p", String(port), "--no-auth-warning", ...(auth ? ["--user", auth.user, "--pass", auth.pass] : []), ...args], { timeout: 10_000 });
        const as = (user: string, pass: string) => (...args: string[]): string => {
            const r = cmd(args, { user, pass });
            return (r.stdout + r.stderr).trim();
        };
        const app = as(api.user, pw);
        const other = as(notes.user, notesPw);
        const up = await waitFor(() => exited(redis) || /NOAUTH|PONG/.test(cmd(["PING"]).stdout), 10_000);
        assert.ok(up && !exited(redis), `redis-server did not come up:\n${fs.readFileSync(path.join(dir, "redis.log"), "utf8")}`);

        // Anonymous: nothing, not even PING.
        assert.match(cmd(["PING"]).stdout, /^NOAUTH Authentication required/);
        assert.match(cmd(["GET", "x"]).stdout, /^NOAUTH/);
        // Wrong password, and the default user with a guess, are both refused.
        const wrong = cmd(["PING"], { user: api.user, pass: pw + "x" });
        assert.match(wrong.stdout + wrong.stderr, /WRONGPASS/);
        const dflt = cmd(["PING"], { user: "default", pass: pw });
        assert.match(dflt.stdout + dflt.stderr, /WRONGPASS/);
        // Each user has its own password: the other app's does not open it.
        const swapped = cmd(["PING"], { user: api.user, pass: notesPw });
        assert.match(swapped.stdout + swapped.stderr, /WRONGPASS/);

        // The app user works, on keys and channels under its prefix.
        const key = `${api.keyPrefix}test`;
        const notesKey = `${notes.keyPrefix}test`;
        assert.equal(app("PING"), "PONG");
        assert.equal(app("SET", key, "v1"), "OK");
        assert.equal(app("GET", key), "v1");
        assert.equal(app("ACL", "WHOAMI"), api.user);
        assert.equal(app("CLIENT", "SETNAME", "citadel-test"), "OK");
        assert.equal(app("PUBLISH", `${api.keyPrefix}events`, "x"), "0");
        assert.equal(other("SET", notesKey, "n1"), "OK");
        assert.equal(other("ACL", "WHOAMI"), notes.user);

        // Nothing outside the prefix: another app's keys and channels, or a key of no app, read or written,
        // alone or beside its own key, directly or from a script.
        const noKey = /^NOPERM .*keys/;
        assert.match(app("GET", notesKey), noKey);
        assert.match(app("SET", notesKey, "overwritten"), noKey);
        assert.match(app("DEL", notesKey), noKey);
        assert.match(app("GET", "citadel:test"), noKey);
        assert.match(app("SET", "citadel:test", "v"), noKey);
        assert.match(app("MGET", key, notesKey), noKey);
        assert.match(app("COPY", key, `${notes.keyPrefix}copy`), noKey);
        assert.match(app("EVAL", "return redis.call('get', KEYS[1])", "1", notesKey), noKey);
        assert.match(app("EVAL", `return redis.call('get', '${notesKey}')`, "0"), /can't access at least one of the keys/);
        assert.match(app("PUBLISH", `${notes.keyPrefix}events`, "x"), /^NOPERM .*channels/);
        assert.match(other("GET", key), noKey);
        assert.equal(other("GET", notesKey), "n1", "the other app's key is untouched");

        // The disabled commands, and the admin ones (ACL SETUSER would undo all of this).
        const refused: Array<[string[], RegExp]> = [
            [["FLUSHALL"], /^NOPERM .*'flushall'/],
            [["FLUSHDB"], /^NOPERM .*'flushdb'/],
            [["KEYS", "*"], /^NOPERM .*'keys'/],
            // The ones that reach past a prefix: every app's key names, channels, or the shared functions.
            [["SCAN", "0"], /^NOPERM .*'scan'/],
            [["RANDOMKEY"], /^NOPERM .*'randomkey'/],
            [["SWAPDB", "0", "1"], /^NOPERM .*'swapdb'/],
            [["PUBSUB", "CHANNELS"], /^NOPERM .*'pubsub\|channels'/],
            [["MIGRATE", "127.0.0.1", "1", key, "0", "1000"], /^NOPERM .*'migrate'/],
            [["FUNCTION", "FLUSH"], /^NOPERM .*'function\|flush'/],
            [["FUNCTION", "DELETE", "lib"], /^NOPERM .*'function\|delete'/],
            [["FUNCTION", "LOAD", "#!lua name=lib\nredis.register_function('f', function() return 1 end)"], /^NOPERM .*'function\|load'/],
            [["FUNCTION", "STATS"], /^NOPERM .*'function\|stats'/],
            [["SCRIPT", "FLUSH"], /^NOPERM .*'script\|flush'/],
            // Broadcast client-side caching would push every app's key names as they are written.
            [["CLIENT", "TRACKING", "ON", "BCAST"], /^NOPERM .*'client\|tracking'/],
            [["CLIENT", "TRACKINGINFO"], /^NOPERM .*'client\|trackinginfo'/],
            [["CONFIG", "GET", "maxmemory"], /^NOPERM .*'config\|get'/],
            [["CONFIG", "SET", "maxmemory", "0"], /^NOPERM .*'config\|set'/],
            [["SHUTDOWN"], /^NOPERM .*'shutdown'/],
            [["MONITOR"], /^NOPERM .*'monitor'/],
            [["MODULE", "LIST"], /^NOPERM .*'module\|list'/],
            [["ACL", "LIST"], /^NOPERM .*'acl\|list'/],
            [["ACL", "SETUSER", "default", "on", "nopass", "+@all"], /^NOPERM .*'acl\|setuser'/],
            [["BGSAVE"], /^NOPERM .*'bgsave'/],
            [["CLIENT", "KILL", "ID", "1"], /^NOPERM .*'client\|kill'/],
            // A script runs with its caller's permissions.
            [["EVAL", "return redis.call('flushall')", "0"], /^(NOPERM|ERR The user executing the script can't run this command)/],
            // DEBUG meets enable-debug-command first (it is also denied in the ACL).
            [["DEBUG", "SLEEP", "0"], /^ERR DEBUG command not allowed/],
        ];
        for (const [args, re] of refused) {
            assert.match(app(...args), re, args.join(" "));
            assert.match(other(...args), re, `${notes.user}: ${args.join(" ")}`);
        }
        assert.equal(app("GET", key), "v1", "nothing was flushed");
        assert.equal(other("GET", notesKey), "n1", "nothing was flushed");
        assert.equal(app("ACL", "WHOAMI"), api.user);
        assert.match(cmd(["PING"]).stdout, /^NOAUTH/, "the default user is still off");

        // The memory policy is what the file says (INFO is allowed, CONFIG is not).
        const info = app("INFO", "memory");
        assert.match(info, /^maxmemory:134217728\r?$/m);
        assert.match(info, /^maxmemory_policy:noeviction\r?$/m);
        // Persistence went to the working directory (/data in the container).
        assert.ok(fs.existsSync(path.join(dir, "appendonlydir")), "AOF directory in the working directory");
    });

    it("a bad directive or ACL rule makes redis-server exit non-zero (the check has teeth)", async (t) => {
        const server = requireTool(t, "redis-server");
        if (!server) return;
        const c = prodConfig();
        const dir = tmpDir("citadel-redis-bad-");
        t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
        const port = String(await freePort());
        const good = path.join(dir, "good.acl");
        const hashed = (cfg: StackConfig) => redisAclUsers(cfg).map((u) => ({ ...u, passwordSha256Hex: sha256hex(password()) }));
        fs.writeFileSync(good, renderRedisAcl(c, hashed(c)));
        const badConf = path.join(dir, "bad.conf");
        fs.writeFileSync(badConf, renderRedisConf(c).replace("maxmemory-policy noeviction", "maxmemory-policy sometimes"));
        const r1 = run(server, [badConf, "--port", port, "--bind", "127.0.0.1", "--aclfile", good], { cwd: dir, timeout: 15_000 });
        assert.notEqual(r1.code, 0);
        assert.match(r1.stdout + r1.stderr, /FATAL CONFIG FILE ERROR[\s\S]*maxmemory-policy/);

        const conf = path.join(dir, "redis.conf");
        fs.writeFileSync(conf, renderRedisConf(c));
        const bad = parseConfigOrThrow(prodWith({ redis: { enabled: true, disabledCommands: ["FLUSHALL", "NOSUCHCOMMAND"] } }));
        const badAcl = path.join(dir, "bad.acl");
        fs.writeFileSync(badAcl, renderRedisAcl(bad, hashed(bad)));
        const r2 = run(server, [conf, "--port", port, "--bind", "127.0.0.1", "--aclfile", badAcl], { cwd: dir, timeout: 15_000 });
        assert.notEqual(r2.code, 0);
        assert.match(r2.stdout + r2.stderr, /ACL errors[\s\S]*nosuchcommand/);
    });
});

// ---------------------------------------------------------------------------------------------
// Postgres: the rendered postgresql.conf and pg_hba.conf in a real server on 127.0.0.1
// ---------------------------------------------------------------------------------------------

describe("postgres: real server", () => {
    it("TLS only, SCRAM only, the app's own role only, made by the postgres-roles step; the key and certificate come from the host step's own function", async (t) => {
        if (!requireSandboxTools(t)) return;
        const bin = requirePgBin(t);
        const psqlBin = requireTool(t, "psql");
        const openssl = requireTool(t, "openssl");
        if (!bin || !psqlBin || !openssl) return;
        const pgUser = idOf("postgres");
        assert.ok(pgUser, "Debian's postgresql package creates the postgres system user");
        const c = prodConfig();
        const [app, ...more] = postgresApps(c);
        assert.ok(app && !more.length, "the prod example has one app with its own role");
        const dir = tmpDir("citadel-pg-");
        t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
        fs.chownSync(dir, pgUser.uid, pgUser.gid);
        const asPg = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): RunResult =>
            run("setpriv", ["--reuid", String(pgUser.uid), "--regid", String(pgUser.gid), "--init-groups", "--", cmd, ...args], {
                cwd: dir,
                env: { PATH: `${bin}:/usr/bin:/bin`, LANG: "C.UTF-8", ...env },
                timeout: 60_000,
            });

        // The key and certificate, made by exactly the function the host step embeds.
        const fn = postgresTlsFunction();
        assert.ok(renderPostgresScript(c, c.postgres.image).script.includes(fn));
        const tls = path.join(dir, "tls");
        const mkTls = () => run("bash", ["-c", `set -euo pipefail\n${fn}\ncitadel_pg_tls "$1" "$2"; echo "changed=$CITADEL_TLS_CHANGED"`, "tls", tls, `${pgUser.uid}:${pgUser.gid}`]);
        const first = mkTls();
        assert.equal(first.code, 0, first.stderr);
        assert.match(first.stdout, /changed=1/);
        const key = path.join(tls, "server.key");
        const crt = path.join(tls, "server.crt");
        const ks = fs.statSync(key);
        assert.equal(ks.mode & 0o777, 0o600);
        assert.equal(ks.uid, pgUser.uid);
        assert.equal(fs.statSync(crt).mode & 0o777, 0o644);
        const text = run(openssl, ["x509", "-in", crt, "-noout", "-text"]).stdout;
        assert.match(text, /Subject: CN = postgres/);
        assert.match(text, /DNS:postgres/);
        assert.match(text, /NIST CURVE: P-256/);
        assert.match(text, /CA:FALSE/);
        const fp = () => run(openssl, ["x509", "-in", crt, "-noout", "-fingerprint", "-sha256"]).stdout;
        const before = fp();
        const again = mkTls();
        assert.match(again.stdout, /changed=0/, "a second run keeps the pair");
        assert.equal(fp(), before);

        // A cluster whose superuser is `postgres` (as in the image: POSTGRES_USER=postgres), SCRAM,
        // started with the rendered files (paths/listener overridden).
        const initialSuPw = password();
        fs.writeFileSync(path.join(dir, "su.pw"), initialSuPw + "\n", { mode: 0o400 });
        fs.chownSync(path.join(dir, "su.pw"), pgUser.uid, pgUser.gid);
        const init = asPg("initdb", ["-D", path.join(dir, "data"), "-U", "postgres", "--auth=scram-sha-256", `--pwfile=${path.join(dir, "su.pw")}`, "-E", "UTF8"]);
        assert.equal(init.code, 0, init.stderr);
        fs.writeFileSync(path.join(dir, "postgresql.conf"), renderPostgresConf(c));
        fs.writeFileSync(path.join(dir, "pg_hba.conf"), renderPgHba(c));
        const port = await freePort();
        const log = path.join(dir, "server.log");
        const server = startServer(
            t,
            "setpriv",
            [
                "--reuid", String(pgUser.uid), "--regid", String(pgUser.gid), "--init-groups", "--",
                path.join(bin, "postgres"), "-D", path.join(dir, "data"),
                "-c", `config_file=${path.join(dir, "postgresql.conf")}`,
                "-c", `hba_file=${path.join(dir, "pg_hba.conf")}`,
                "-c", `ssl_cert_file=${crt}`,
                "-c", `ssl_key_file=${key}`,
                "-c", "listen_addresses=127.0.0.1",
                "-c", `port=${port}`,
                "-c", `unix_socket_directories=${dir}`,
            ],
            { log, env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" } },
        );
        const ready = await waitFor(() => exited(server) || run(path.join(bin, "pg_isready"), ["-h", "127.0.0.1", "-p", String(port)]).code === 0, 30_000);
        assert.ok(ready && !exited(server), `postgres did not start:\n${fs.readFileSync(log, "utf8")}`);
        const socketPsql = (user: string, db: string, sql: string, pw = ""): RunResult =>
            asPg("psql", ["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", dir, "-p", String(port), "-U", user, "-d", db, "-c", sql], { PGPASSWORD: pw });
        const su = (sql: string): RunResult => socketPsql("postgres", "postgres", sql);

        // The app's role and database, made the way `pulumi up` makes them: the postgres-roles host
        // step's own script, reading the secret files where the stack writes them (an /etc overlay),
        // its `docker exec -u postgres postgres psql` run by the stand-in as the postgres OS user on
        // this server's socket (see SHIM).
        const step = renderPostgresRolesScript(c);
        const sb = sandbox(t);
        const pgEnv = { CITADEL_SHIM_PG_SOCKDIR: dir, CITADEL_SHIM_PG_PORT: String(port), CITADEL_SHIM_PG_BIN: bin };
        const writeSecret = (file: string, value: string) => {
            const f = path.join(sb.etc, file.replace(/^\/etc\//, ""));
            fs.mkdirSync(path.dirname(f), { recursive: true, mode: 0o700 });
            fs.writeFileSync(f, value, { mode: 0o400 });
        };
        const suPw = password();
        const appPw = password();
        writeSecret(secretFilePath(POSTGRES_CONTAINER, "postgresSuperuserPassword"), suPw);
        // Without the app's password file the step stops before psql runs: no role appears.
        const missing = sb.run(step.script, pgEnv);
        assert.notEqual(missing.code, 0, "the step ran without the app's password file");
        assert.match(missing.stderr, new RegExp(`cannot read ${app.passwordFile.replace(/\//g, "\\/")}; the secret-file step must run before this one`));
        assert.equal(su(`select count(*) from pg_roles where rolname = '${app.role}'`).stdout.trim(), "0");
        assert.doesNotMatch(fs.readFileSync(sb.log, "utf8"), /^exec /m, "psql never ran");
        // With it, the step makes the role (twice without harm).
        writeSecret(app.passwordFile, appPw);
        for (let i = 0; i < 2; i++) {
            const r = sb.run(step.script, pgEnv);
            assert.equal(r.code, 0, `run ${i + 1}:\n${r.stdout}${r.stderr}`);
            assert.match(r.stdout, new RegExp(`citadel: postgres: roles ${app.role}: LOGIN, each owning its own database`));
        }
        const argv = fs.readFileSync(sb.log, "utf8");
        assert.match(argv, /^exec -i -u postgres postgres psql /m);
        for (const v of [suPw, appPw]) assert.ok(!argv.includes(v), "a password reached docker's argv");
        // On the socket: the superuser by peer, for the postgres OS user only; every other role needs its password there too.
        assert.equal(su("select current_user").stdout.trim(), "postgres");
        const notPeer = run(psqlBin, ["-X", "-At", "-h", dir, "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", "select 1"], { env: { PATH: "/usr/bin:/bin", PGPASSWORD: suPw } });
        assert.notEqual(notPeer.code, 0, "root claimed the superuser on the socket");
        assert.match(notPeer.stderr, /Peer authentication failed for user "postgres"/);
        const noPw = socketPsql(app.role, app.database, "select 1");
        assert.notEqual(noPw.code, 0, "the socket wants a password too");
        assert.match(noPw.stderr, /password/);
        assert.equal(socketPsql(app.role, app.database, "select current_user", appPw).stdout.trim(), app.role);

        const psql = (conn: string, sql: string, pw = appPw): RunResult =>
            run(psqlBin, ["-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql, conn], { env: { ...process.env, PGPASSWORD: pw, PGCONNECT_TIMEOUT: "5" }, timeout: 20_000 });
        const tcp = `host=127.0.0.1 port=${port} dbname=${app.database} user=${app.role}`;

        // Plain TCP is rejected outright.
        const plain = psql(`${tcp} sslmode=disable`, "select 1");
        assert.notEqual(plain.code, 0);
        assert.match(plain.stderr, /pg_hba\.conf rejects connection .* no encryption/);
        // TLS with the right password works, at TLS 1.2 or newer.
        const ok = psql(`${tcp} sslmode=require`, "show ssl; select version from pg_stat_ssl where pid = pg_backend_pid(); select current_user");
        assert.equal(ok.code, 0, ok.stderr);
        const [ssl, version, who] = ok.stdout.trim().split("\n");
        assert.equal(ssl, "on");
        assert.match(version, /^TLSv1\.[23]$/);
        assert.equal(who, app.role);
        // The certificate can be pinned by apps: verify-full against it as the only root, host "postgres".
        const pinned = psql(`hostaddr=127.0.0.1 host=postgres port=${port} dbname=${app.database} user=${app.role} sslmode=verify-full sslrootcert=${crt}`, "select 1");
        assert.equal(pinned.code, 0, pinned.stderr);
        // Wrong password fails.
        const wrong = psql(`${tcp} sslmode=require`, "select 1", appPw + "x");
        assert.notEqual(wrong.code, 0);
        assert.match(wrong.stderr, new RegExp(`password authentication failed for user "${app.role}"`));
        // The superuser (with the password the step set), and the app role to another database, are
        // refused over the network even with TLS.
        const suNet = psql(`host=127.0.0.1 port=${port} dbname=postgres user=postgres sslmode=require`, "select 1", suPw);
        assert.notEqual(suNet.code, 0);
        assert.match(suNet.stderr, /pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "postgres"/);
        const otherDb = psql(`host=127.0.0.1 port=${port} dbname=postgres user=${app.role} sslmode=require`, "select 1");
        assert.notEqual(otherDb.code, 0);
        assert.match(otherDb.stderr, /pg_hba\.conf rejects connection/);

        // The server refuses TLS 1.1 and CBC/non-forward-secret 1.2 suites, even from a client that offers them.
        const sclient = (...args: string[]) => run(openssl, ["s_client", "-starttls", "postgres", "-connect", `127.0.0.1:${port}`, ...args], { input: "", timeout: 15_000 });
        const tls11 = sclient("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0");
        assert.notEqual(tls11.code, 0);
        assert.match(tls11.stdout, /Cipher is \(NONE\)/);
        const cbc = sclient("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0");
        assert.notEqual(cbc.code, 0);
        assert.match(cbc.stdout, /Cipher is \(NONE\)/);
        const tls12 = sclient("-tls1_2");
        assert.equal(tls12.code, 0, tls12.stderr);
        assert.match(tls12.stdout, /Protocol\s*:\s*TLSv1\.2/);
        assert.match(tls12.stdout, /Cipher\s*:\s*ECDHE-ECDSA-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)/);

        // Stored as a SCRAM verifier (the superuser's too, set by the step); the role has LOGIN and no
        // extra powers; the database is the role's, and PUBLIC may not connect to it.
        const facts = su(
            `select rolname, rolpassword like 'SCRAM-SHA-256$%', rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolconnlimit from pg_authid where rolname in ('${app.role}', 'postgres') order by rolname = 'postgres'; ` +
                `select pg_get_userbyid(datdba), has_database_privilege('public', datname, 'CONNECT') from pg_database where datname = '${app.database}'`,
        );
        assert.equal(facts.code, 0, facts.stderr);
        // Its CONNECTION LIMIT is its share of what the superuser's reserved connections leave.
        assert.equal(app.connectionLimit, Number(/^max_connections = (\d+)$/m.exec(renderPostgresConf(c))![1]) - POSTGRES_SUPERUSER_RESERVED);
        assert.equal(facts.stdout.trim(), `${app.role}|t|t|f|f|f|f|f|${app.connectionLimit}\npostgres|t|t|t|t|t|t|t|-1\n${app.role}|f`);

        // The audit trail: connections with who/where, rejections.
        const logText = fs.readFileSync(log, "utf8");
        const { role, database } = app;
        assert.match(logText, new RegExp(`user=${role} db=${database} client=127\\.0\\.0\\.1\\(\\d+\\) app=\\S* LOG:  connection authorized: user=${role} database=${database}( application_name=\\S+)? SSL enabled \\(protocol=TLSv1\\.[23]`));
        assert.match(logText, new RegExp(`FATAL:  password authentication failed for user "${role}"`));
        assert.match(logText, new RegExp(`FATAL:  pg_hba\\.conf rejects connection for host "127\\.0\\.0\\.1", user "${role}", database "${database}", no encryption`));
        assert.match(logText, /disconnection: session time/);
        for (const v of [appPw, suPw]) assert.ok(!logText.includes(v), "a password reached the log");
    });
});

// ---------------------------------------------------------------------------------------------
// The host steps, run for real in a sandbox (see the header comment)
// ---------------------------------------------------------------------------------------------

/**
 * The stand-in docker CLI: `run` of a check container, `inspect` of an absent container, and
 * `exec [-i] -u postgres postgres CMD...` when a test names a running Postgres (CITADEL_SHIM_PG_*):
 * CMD as the postgres OS user, the container's socket dir swapped for that server's (peer there, as in
 * the container); nothing else. (`\${` is bash's `${`.)
 */
const SHIM = `#!/bin/bash
set -euo pipefail
printf '%q ' "$@" >>"$CITADEL_SHIM_LOG"
echo >>"$CITADEL_SHIM_LOG"
die() { echo "docker-shim: $*" >&2; exit 125; }
case \${1:-} in
inspect) echo "Error: No such object: \${*: -1}" >&2; exit 1 ;;
run) shift ;;
exec)
  shift
  [ -n "\${CITADEL_SHIM_PG_SOCKDIR:-}" ] || die "exec: no postgres server in this test"
  [ "$1" = -i ] && shift
  [ "$1" = -u ] && [ "$2" = postgres ] || die "exec must be -u postgres"
  shift 2
  [ "$1" = postgres ] || die "exec: no such container $1"
  shift
  args=()
  for a in "$@"; do args+=("\${a//\\/var\\/run\\/postgresql/$CITADEL_SHIM_PG_SOCKDIR}"); done
  exec setpriv --reuid postgres --regid postgres --init-groups env -i PATH="$CITADEL_SHIM_PG_BIN:/usr/bin:/bin" PGPORT="$CITADEL_SHIM_PG_PORT" LANG=C.UTF-8 "\${args[@]}"
  ;;
*) die "unsupported command: $*" ;;
esac
user= ro=0 net= entry= rm=0 capdrop= nnp=0
vols=() tmpfs=()
while [ $# -gt 0 ]; do
  case $1 in
  --rm) rm=1; shift ;;
  --read-only) ro=1; shift ;;
  --network) net=$2; shift 2 ;;
  --user) user=$2; shift 2 ;;
  --tmpfs) tmpfs+=("$2"); shift 2 ;;
  --cap-drop) capdrop=$2; shift 2 ;;
  --security-opt) [ "$2" = no-new-privileges ] || die "security-opt $2"; nnp=1; shift 2 ;;
  -v) vols+=("$2"); shift 2 ;;
  --entrypoint) entry=$2; shift 2 ;;
  -*) die "unsupported option $1" ;;
  *) break ;;
  esac
done
shift # the image: this machine's own binaries play it
[ "$rm" = 1 ] && [ "$net" = none ] && [ "$capdrop" = ALL ] && [ "$nnp" = 1 ] && [ -n "$user" ] && [ -n "$entry" ] ||
  die "check containers must be --rm --network none --cap-drop ALL --security-opt no-new-privileges with --user and --entrypoint"
[[ $user =~ ^[1-9][0-9]*:[1-9][0-9]*$ ]] || die "user $user is not a numeric non-root uid:gid"
export SHIM_USER=$user SHIM_RO=$ro SHIM_ENTRY=$entry
SHIM_VOLS=$(printf '%s\\n' "\${vols[@]}"); export SHIM_VOLS
SHIM_TMPFS=$(printf '%s\\n' "\${tmpfs[@]}"); export SHIM_TMPFS
exec unshare --mount --net --fork bash -c '
set -euo pipefail
mount --make-rprivate /
s=$(mktemp -d "$CITADEL_SHIM_TMP/root-XXXXXX"); mount -t tmpfs tmpfs "$s"; mkdir "$s/u" "$s/w" "$s/root"
r=$s/root
mount -t overlay overlay -o "lowerdir=/,upperdir=$s/u,workdir=$s/w" "$r"
mount --rbind /dev "$r/dev"; mount --rbind /proc "$r/proc"
uid=\${SHIM_USER%:*} gid=\${SHIM_USER#*:}
grep -q "^[^:]*:[^:]*:$uid:" "$r/etc/passwd" || echo "server:x:$uid:$gid::/tmp:/usr/sbin/nologin" >>"$r/etc/passwd"
while IFS= read -r t; do
  [ -n "$t" ] || continue
  d=\${t%%:*} o=\${t#*:}; [ "$o" != "$t" ] || o=rw
  mkdir -p "$r$d"; mount -t tmpfs -o "$o,mode=1777" tmpfs "$r$d"
done <<<"$SHIM_TMPFS"
while IFS= read -r v; do
  [ -n "$v" ] || continue
  IFS=: read -r src dst opt <<<"$v"
  if [ -d "$src" ]; then mkdir -p "$r$dst"; else mkdir -p "$(dirname "$r$dst")"; touch "$r$dst"; fi
  mount --bind "$src" "$r$dst"
  [ "$opt" != ro ] || mount -o remount,bind,ro "$r$dst"
done <<<"$SHIM_VOLS"
[ "$SHIM_RO" != 1 ] || mount -o remount,bind,ro "$r"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
exec chroot "$r" setpriv --reuid "$uid" --regid "$gid" --clear-groups --no-new-privs env -i PATH="$pgbin:/usr/local/bin:/usr/bin:/bin" HOME=/tmp LANG=C.UTF-8 "$SHIM_ENTRY" "$@"
' shim "$@"
`;

interface Sandbox {
    /** The overlay's upper dir: what the steps wrote under /etc. */
    etc: string;
    log: string;
    run(script: string, env?: NodeJS.ProcessEnv): RunResult;
}

function sandbox(t: TestContext): Sandbox {
    const dir = tmpDir("citadel-data-sandbox-");
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    for (const d of ["etc", "work", "bin", "shim"]) fs.mkdirSync(path.join(dir, d));
    fs.writeFileSync(path.join(dir, "bin", "docker"), SHIM, { mode: 0o755 });
    const log = path.join(dir, "docker.log");
    fs.writeFileSync(log, "");
    // /usr/local/sbin comes first in the PATH the host-script library sets: the shim wins there.
    const setup =
        "set -e; mount --make-rprivate /; " +
        `mount -t overlay overlay -o lowerdir=/etc,upperdir=${dir}/etc,workdir=${dir}/work /etc; ` +
        `mount --bind ${dir}/bin /usr/local/sbin; exec bash "$1"`;
    return {
        etc: path.join(dir, "etc"),
        log,
        run(script: string, env: NodeJS.ProcessEnv = {}): RunResult {
            const f = path.join(dir, "step.sh");
            fs.writeFileSync(f, script);
            return run("unshare", ["--mount", "--fork", "--", "/bin/bash", "-c", setup, "sandbox", f], {
                env: { ...process.env, ...env, CITADEL_SHIM_LOG: log, CITADEL_SHIM_TMP: path.join(dir, "shim") },
                timeout: 90_000,
            });
        },
    };
}

function requireSandboxTools(t: TestContext): boolean {
    if (!requireRoot(t)) return false;
    for (const tool of ["unshare", "setpriv", "chroot", "openssl"]) if (!requireTool(t, tool)) return false;
    return true;
}

describe("host steps in a sandbox", () => {
    it("postgres-config: makes the key/cert, boots the config as uid 999, installs, removes the legacy init script, is idempotent, refuses bad files", (t) => {
        if (!requireSandboxTools(t) || !requirePgBin(t)) return;
        const c: StackConfig = prodConfig();
        const step = renderPostgresScript(c, c.postgres.image);
        const sb = sandbox(t);
        const live = (p: string) => path.join(sb.etc, p.replace(/^\/etc\//, ""));
        // The shared role's first-init script an earlier version installed: no longer the stack's.
        assert.ok(!step.files.some((f) => f.path.startsWith(`${POSTGRES_LEGACY_INITDB_HOST_DIR}/`)), "the step installs no init script");
        const legacy = live(POSTGRES_LEGACY_INITDB_HOST_DIR);
        fs.mkdirSync(legacy, { recursive: true });
        fs.writeFileSync(path.join(legacy, "10-citadel-app-role.sh"), "#!/bin/bash\n", { mode: 0o755 });

        const r1 = sb.run(step.script);
        assert.equal(r1.code, 0, r1.stdout + r1.stderr);
        assert.match(r1.stdout, /citadel: postgres: configuration boots postgres \(PostgreSQL\)/);
        assert.match(r1.stdout, /citadel: postgres: installed \/etc\/citadel\/postgres\/postgresql\.conf/);
        assert.match(r1.stdout, /citadel: postgres: removed \/etc\/citadel\/postgres-initdb /);
        assert.ok(!fs.existsSync(legacy), `${POSTGRES_LEGACY_INITDB_HOST_DIR} is still there`);
        for (const f of step.files) {
            assert.equal(fs.readFileSync(live(f.path), "utf8"), f.content, f.path);
            const st = fs.statSync(live(f.path));
            assert.equal((st.mode & 0o777).toString(8), f.mode.replace(/^0/, ""), f.path);
            assert.equal(st.uid, 0);
        }
        const key = live("/etc/citadel/postgres/tls/server.key");
        const crt = live("/etc/citadel/postgres/tls/server.crt");
        const ks = fs.statSync(key);
        assert.deepEqual([ks.uid, ks.gid, ks.mode & 0o777], [DATA_UID, DATA_UID, 0o600]);
        assert.deepEqual([fs.statSync(crt).uid, fs.statSync(crt).mode & 0o777], [0, 0o644]);
        assert.equal(run("openssl", ["x509", "-in", crt, "-noout", "-checkend", String(9 * 365 * 86400)]).code, 0, "valid for years");
        // The check ran as the containers will: uid 999, no network, read-only root, in the given image.
        const dockerLog = fs.readFileSync(sb.log, "utf8");
        assert.match(dockerLog, new RegExp(`^run --rm --network none --user 999:999 --read-only .*--cap-drop ALL .*${PG_IMAGE_RE} /citadel-validate\\.sh`, "m"));

        const fingerprint = () => run("openssl", ["x509", "-in", crt, "-noout", "-fingerprint", "-sha256"]).stdout;
        const fp = fingerprint();
        const r2 = sb.run(step.script);
        assert.equal(r2.code, 0, r2.stdout + r2.stderr);
        assert.match(r2.stdout, /citadel: postgres: unchanged/);
        assert.doesNotMatch(r2.stdout, /installed|written|removed/);
        assert.equal(fingerprint(), fp, "the second run keeps the key and certificate");

        // A broken pg_hba.conf line and a bad setting are both caught by the boot; live files stay.
        const hbaBefore = fs.readFileSync(live("/etc/citadel/postgres/pg_hba.conf"), "utf8");
        const confBefore = fs.readFileSync(live("/etc/citadel/postgres/postgresql.conf"), "utf8");
        const tampered = step.script.replace(/^hostssl +api +api +0\.0\.0\.0\/0 +scram-sha-256$/m, "hostssl api api 0.0.0.0/0 scram-sha-257");
        assert.notEqual(tampered, step.script, "the tampering applied");
        const badHba = sb.run(tampered);
        assert.notEqual(badHba.code, 0);
        assert.match(badHba.stderr, /invalid authentication method "scram-sha-257"/);
        assert.match(badHba.stderr, new RegExp(`citadel: postgres: the new configuration does not start ${PG_IMAGE_RE}; the live files are unchanged`));
        const badConf = sb.run(step.script.replace("ssl_min_protocol_version = 'TLSv1.2'", "ssl_min_protocol_version = 'TLSv9'"));
        assert.notEqual(badConf.code, 0);
        assert.match(badConf.stderr, /ssl_min_protocol_version/);
        assert.equal(fs.readFileSync(live("/etc/citadel/postgres/pg_hba.conf"), "utf8"), hbaBefore);
        assert.equal(fs.readFileSync(live("/etc/citadel/postgres/postgresql.conf"), "utf8"), confBefore);

        // A key someone made world-readable is put back to 0600 (Postgres would refuse it).
        fs.chmodSync(key, 0o644);
        const r3 = sb.run(step.script);
        assert.equal(r3.code, 0, r3.stderr);
        assert.equal(fs.statSync(key).mode & 0o777, 0o600);
        assert.equal(fingerprint(), fp);
    });

    it("redis-config: starts the config as uid 999 with the ACL rules, installs, is idempotent, refuses bad files", (t) => {
        if (!requireSandboxTools(t) || !requireTool(t, "redis-server") || !requireTool(t, "redis-cli")) return;
        const c = prodConfig();
        const step = renderRedisScript(c, c.redis.image);
        const sb = sandbox(t);
        const live = path.join(sb.etc, "citadel/redis/redis.conf");

        const r1 = sb.run(step.script);
        assert.equal(r1.code, 0, r1.stdout + r1.stderr);
        assert.match(r1.stdout, /citadel: redis: configuration starts Redis server/);
        assert.match(r1.stdout, /citadel: redis: installed \/etc\/citadel\/redis\/redis\.conf/);
        assert.equal(fs.readFileSync(live, "utf8"), step.files[0].content);
        assert.equal(fs.statSync(live).mode & 0o777, 0o644);
        assert.match(fs.readFileSync(sb.log, "utf8"), new RegExp(`^run --rm --network none --user 999:999 --read-only .*${REDIS_IMAGE_RE} /citadel-validate\\.sh`, "m"));

        const r2 = sb.run(step.script);
        assert.equal(r2.code, 0, r2.stdout + r2.stderr);
        assert.match(r2.stdout, /citadel: redis: unchanged/);

        const before = fs.readFileSync(live, "utf8");
        const cases: Array<[string, RegExp]> = [
            [step.script.replace("maxmemory-policy noeviction", "maxmemory-policy sometimes"), /FATAL CONFIG FILE ERROR/],
            [step.script.replace(/^(user api on .*) -module$/m, "$1 -nosuchcommand"), /ACL errors/],
            // An ACL that lets anonymous clients in is refused by the check itself.
            [step.script.replace(/^user default off .*$/m, "user default on nopass ~* +@all"), /unauthenticated PING got "PONG" instead of NOAUTH/],
        ];
        for (const [script, re] of cases) {
            assert.notEqual(script, step.script, "the tampering applied");
            const r = sb.run(script);
            assert.notEqual(r.code, 0);
            assert.match(r.stderr, re);
            assert.match(r.stderr, new RegExp(`citadel: redis: the new configuration does not start ${REDIS_IMAGE_RE}; the live file is unchanged`));
        }
        assert.equal(fs.readFileSync(live, "utf8"), before);
    });
});
