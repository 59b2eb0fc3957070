// The host floor of issue 14: what converging a fresh VPS costs with no Pulumi at all. One plain root
// script, generated from the same declared posture the stack converges (components/posture), does
// the same work in the cheapest order: one package-list refresh and one install per install round of
// every step's packages (posture/facts.ts STEP_PACKAGES), every file of every step written at once,
// the pending Debian-Security updates applied by the same program, the services restarted once, and
// the same networks, volumes and containers created and started. It validates nothing, re-reads
// nothing and rolls nothing back: that is what a converge cannot beat by much, and what the bench's
// first converge is measured against.
//
// The secret files get throw-away values (the floor's VPS is removed after the bench); what must
// parse (Redis' ACL, alertmanager.yml) is rendered by the stack's own renderers.
import * as crypto from "node:crypto";
import type { StackConfig } from "../components/config";
import { posture, type ContainerPosture, type Posture } from "../components/posture";
import { postgresApps, renderRedisAcl, POSTGRES_TLS_HOST_DIR } from "../components/render/data";
import { AFTER_RULES_PATH } from "../components/render/firewall";
import { BOUNCER_KEY_PLACEHOLDER, BOUNCER_LOCAL, BOUNCER_NAME } from "../components/render/intrusion";
import { renderAlertmanagerConfig } from "../components/render/monitoring";
import { heredocBody, HEREDOC_DELIMITER, shellQuote as q } from "../components/render/template";
import { AFTER_INIT_PATH, DATA_UID, POSTGRES_CONTAINER } from "../components/posture/facts";

/** Files the firewall step splices its block into (between markers) rather than replacing. */
const SPLICED = new Set<string>([AFTER_RULES_PATH[4], AFTER_RULES_PATH[6], AFTER_INIT_PATH]);

const token = (): string => crypto.randomBytes(24).toString("hex");

/** A file written whole (`install` reads the here-document), or appended when the step splices it. */
function writeFile(path: string, content: string, mode: string, owner = "0"): string {
    const body = heredocBody(content);
    if (SPLICED.has(path)) return `cat >>${q(path)} <<'${HEREDOC_DELIMITER}'\n${body}${HEREDOC_DELIMITER}`;
    return `install -D -m ${mode} -o ${owner} -g ${owner} /dev/stdin ${q(path)} <<'${HEREDOC_DELIMITER}'\n${body}${HEREDOC_DELIMITER}`;
}

/** What each secret file holds on the floor's VPS: a throw-away value, or a file that must parse. */
function secretContent(c: StackConfig, m: Posture, f: Posture["secretFiles"][number]): string {
    switch (f.content) {
        case "value":
            return token();
        case "redis-acl":
            return renderRedisAcl(c, (f.redisUsers ?? []).map((u) => ({ user: u.user, keyPrefix: u.keyPrefix, passwordSha256Hex: crypto.createHash("sha256").update(token()).digest("hex") })));
        case "alertmanager-config":
            return renderAlertmanagerConfig(c, Object.fromEntries((m.monitoring.enabled ? m.monitoring.receivers : []).map((r) => [r.name, "http://127.0.0.1:9/"])));
        default: {
            const never: never = f.content;
            throw new Error(`unknown secret content ${String(never)}`);
        }
    }
}

/** `docker create` with the posture's settings (the stack's components/container.ts containerArgs), then its other networks. */
function runContainer(x: ContainerPosture): string[] {
    const [first, ...rest] = x.networks;
    // `docker create` spells an alias --network-alias, `docker network connect` --alias.
    const net = (a: ContainerPosture["networks"][number], alias: string) => [...a.aliases.flatMap((al) => [alias, al]), ...(a.ipv4Address ? ["--ip", a.ipv4Address] : []), ...(a.ipv6Address ? ["--ip6", a.ipv6Address] : [])];
    const args = [
        "docker", "create", "--name", x.name, "--user", x.user, "--restart", "unless-stopped", "--init", "--ipc", "private",
        ...(x.readOnly ? ["--read-only"] : []),
        ...(x.noNewPrivileges ? ["--security-opt", "no-new-privileges:true"] : []),
        ...x.capDrop.flatMap((cap) => ["--cap-drop", cap]),
        ...x.capAdd.flatMap((cap) => ["--cap-add", cap]),
        "--memory", `${x.memoryMb}m`, "--memory-swap", `${x.memoryMb}m`, "--cpus", x.cpus, "--pids-limit", String(x.pids),
        ...x.tmpfs.flatMap((t) => ["--tmpfs", `${t}:rw,noexec,nosuid,nodev,size=64m`]),
        "--log-driver", x.logs.driver,
        ...(x.logs.driver === "journald" ? ["--log-opt", `tag=${x.name}`] : ["--log-opt", `max-size=${x.logs.maxSize}`, "--log-opt", `max-file=${x.logs.maxFile}`]),
        ...x.env.flatMap((e) => ["-e", e]),
        ...x.publishedPorts.flatMap((p) => ["-p", `${p.hostIp && p.hostIp !== "0.0.0.0" ? `[${p.hostIp}]:` : ""}${p.external}:${p.internal}/${p.protocol}`]),
        ...x.binds.flatMap((b) => ["--mount", `type=bind,source=${b.source},target=${b.target}${b.readOnly ? ",readonly" : ""}`]),
        ...x.secretMounts.flatMap((s) => ["--mount", `type=bind,source=${s.source},target=${s.target},readonly`]),
        ...x.volumes.flatMap((v) => ["-v", `${v.name}:${v.target}`]),
        ...Object.entries(x.labels).flatMap(([k, v]) => ["--label", `${k}=${v}`]),
        ...(first ? ["--network", first.network, ...net(first, "--network-alias")] : []),
        x.image,
        ...(x.command ?? []),
    ];
    // Created on all its networks before it starts, as the Docker provider does (the gateway binds
    // its metrics listener on the monitoring network's address at start).
    return [
        args.map(q).join(" ") + " >/dev/null",
        ...rest.map((a) => ["docker", "network", "connect", ...net(a, "--alias"), a.network, x.name].map(q).join(" ")),
        `docker start ${q(x.name)} >/dev/null`,
    ];
}

/** The floor's script for the stack's config: run as root on a fresh VPS, in one SSH session. */
export function hostFloorScript(c: StackConfig): string {
    const m = posture(c);
    const steps = m.hostSteps.filter((s) => s.kind === "script");
    // Install rounds: every step's first list together, then every step's second list, ... (the
    // order STEP_PACKAGES gives within a step).
    const rounds: string[][] = [];
    for (const s of steps) (s.packages ?? []).forEach((g, i) => (rounds[i] = [...new Set([...(rounds[i] ?? []), ...g])]));
    const files = steps.flatMap((s) => s.files);
    const lines: string[] = [
        "set -euo pipefail",
        "export DEBIAN_FRONTEND=noninteractive",
        "apt=(apt-get -q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)",
        // As the intrusion step does before it installs CrowdSec: without this file its postinst
        // registers with the online Central API, and fails offline.
        ...(m.intrusion.engine === "crowdsec" ? ["install -d -m 0755 /etc/crowdsec", "printf '# citadel: no Central API registration\\n' >/etc/crowdsec/online_api_credentials.yaml"] : []),
        '"${apt[@]}" update >/dev/null',
        ...rounds.map((r) => `"\${apt[@]}" install --no-install-recommends ${r.map(q).join(" ")} >/dev/null`),
        "# every step's files",
        ...files.map((f) => writeFile(f.path, f.content, f.mode)),
        "# the secret files (throw-away values)",
        ...m.secretFiles.map((f) => writeFile(f.path, secretContent(c, m, f), f.mode, String(f.ownerUid))),
    ];
    if (m.host.unattendedUpgrades.enabled && m.host.unattendedUpgrades.applyAtConverge) {
        lines.push("# the pending Debian-Security updates, by the program and origins the converge uses", "unattended-upgrade </dev/null >/dev/null 2>&1 || true");
    }
    lines.push(
        "# services: each restarted once with its files in place",
        "systemctl daemon-reload",
        // Values a container cannot set are refused here as in the converge's sysctl step (reported there).
        "sysctl --system >/dev/null 2>&1 || true",
        ...m.exposure.ufw.rules.map((r) => `${r} >/dev/null`),
        "ufw --force enable >/dev/null",
        "systemctl reload ssh",
        "systemctl restart systemd-journald",
        "systemctl restart docker",
        `usermod -aG docker ${q(m.adminUser)}`,
    );
    if (m.intrusion.engine === "crowdsec") {
        lines.push(
            "systemctl restart crowdsec",
            `key=$(cscli bouncers add ${q(`${BOUNCER_NAME}-floor`)} -o raw)`,
            `sed -i "s/${BOUNCER_KEY_PLACEHOLDER}/$key/" ${q(BOUNCER_LOCAL)}`,
            "systemctl restart crowdsec-firewall-bouncer",
        );
    } else lines.push("systemctl restart fail2ban");
    if (m.backup.enabled) lines.push(`systemctl enable --now ${q(m.backup.timer)} >/dev/null 2>&1`);

    // Containers: Postgres' TLS key and certificate (the converge's postgres-config makes them), the
    // bind mounts' directories owned by their readers, then networks, volumes, containers.
    const postgres = m.containers.find((x) => x.role === "postgres");
    if (postgres) {
        const d = q(POSTGRES_TLS_HOST_DIR);
        lines.push(
            `install -d -m 0750 -o ${DATA_UID} -g ${DATA_UID} ${d}`,
            `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 -subj /CN=${POSTGRES_CONTAINER} -keyout ${d}/server.key -out ${d}/server.crt 2>/dev/null`,
            `chown ${DATA_UID}:${DATA_UID} ${d}/server.key ${d}/server.crt && chmod 0600 ${d}/server.key`,
        );
    }
    const written = new Set([...files.map((f) => f.path), ...m.secretFiles.map((f) => f.path)]);
    for (const x of m.containers) {
        // A directory the reader writes is its own; one it only reads must exist (a step makes it).
        for (const b of x.binds.filter((b) => !written.has(b.source))) lines.push(b.readOnly ? `[ -e ${q(b.source)} ] || mkdir -p ${q(b.source)}` : `install -d -o ${x.uid} -g ${x.uid} ${q(b.source)}`);
    }
    for (const n of m.networks) {
        const args = [
            "docker", "network", "create",
            ...(n.internal ? ["--internal"] : []),
            ...(n.subnet ? ["--subnet", n.subnet] : []),
            ...(n.ipRange ? ["--ip-range", n.ipRange] : []),
            ...(n.gateway ? ["--gateway", n.gateway] : []),
            // Dual-stack (the public network where IPv6 is served): --ipv6 and the second family's IPAM.
            ...(n.ipv6Subnet ? ["--ipv6", "--subnet", n.ipv6Subnet, ...(n.ipv6IpRange ? ["--ip-range", n.ipv6IpRange] : []), ...(n.ipv6Gateway ? ["--gateway", n.ipv6Gateway] : [])] : []),
            ...(n.bridge ? ["-o", `com.docker.network.bridge.name=${n.bridge}`] : []),
            ...Object.entries(n.options ?? {}).flatMap(([k, v]) => ["-o", `${k}=${v}`]),
            n.name,
        ];
        lines.push(args.map(q).join(" ") + " >/dev/null");
    }
    for (const v of m.volumes) lines.push(`docker volume create ${q(v)} >/dev/null`);
    const order: ContainerPosture["role"][] = ["postgres", "redis", "app", "gateway", "monitoring"];
    for (const role of order) for (const x of m.containers.filter((y) => y.role === role)) lines.push(...runContainer(x));
    if (postgres) {
        // Each app's role and database, once the server answers (bounded), over the socket by peer.
        const sql = postgresApps(c)
            .map((a) => `CREATE ROLE ${a.role} LOGIN PASSWORD '${token()}'; CREATE DATABASE ${a.database} OWNER ${a.role}; REVOKE ALL ON DATABASE ${a.database} FROM PUBLIC;`)
            .join("\n");
        lines.push(
            `for _ in $(seq 1 120); do docker exec ${q(postgres.name)} pg_isready -q -h /var/run/postgresql && break; sleep 0.5; done`,
            `docker exec -i -u postgres ${q(postgres.name)} psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<'${HEREDOC_DELIMITER}'\n${sql}\n${HEREDOC_DELIMITER}`,
        );
    }
    // The floor counts only work that worked: every container still running, never restarted.
    lines.push(
        "sleep 2",
        `for x in ${m.containers.map((x) => q(x.name)).join(" ")}; do`,
        `    state=$(docker inspect -f '{{.State.Running}} {{.RestartCount}}' "$x")`,
        `    [ "$state" = "true 0" ] || { echo "citadel host floor: $x is not running ($state): $(docker logs --tail 5 "$x" 2>&1 | tr '\\n' ' ')" >&2; exit 1; }`,
        "done",
        'echo "citadel host floor: done"',
    );
    return lines.join("\n") + "\n";
}

/** Which packages, files and containers the floor covers (printed beside its time). */
export function hostFloorSummary(c: StackConfig): string {
    const m = posture(c);
    const steps = m.hostSteps.filter((s) => s.kind === "script");
    const packages = new Set(steps.flatMap((s) => (s.packages ?? []).flat()));
    return `${packages.size} packages, ${steps.flatMap((s) => s.files).length + m.secretFiles.length} files, ${m.networks.length} networks, ${m.containers.length} containers`;
}

/** The VPS the floor runs on: beside the local one, booted the same way, removed afterwards. */
const FLOOR_VPS = "citadel-floor";
const FLOOR_PORTS = { ssh: 2232, http: 8090, https: 8453 };

export interface HostFloor {
    /** The script's run over one SSH session, seconds. */
    seconds: number;
    summary: string;
}

/**
 * Boots a fresh VPS exactly as the bench boots the local one (same user-data, images loaded, not
 * counted), runs the floor's script as the admin over one SSH session, and removes the VPS.
 */
export async function runHostFloor(c: StackConfig): Promise<HostFloor> {
    const fs = await import("node:fs");
    const os = await import("node:os");
    const path = await import("node:path");
    const { renderCloudInit } = await import("../components/render/cloudinit");
    const { stackImages } = await import("./local");
    const { HARNESS_KEY, run } = await import("./vps/common");
    const { knownHostsLine, loadImages, startVps, stopVps } = await import("./vps/vps");
    await stopVps(FLOOR_VPS);
    const info = await startVps({ name: FLOOR_VPS, userData: renderCloudInit(c), sshPort: FLOOR_PORTS.ssh, httpPort: FLOOR_PORTS.http, httpsPort: FLOOR_PORTS.https, seedImages: stackImages(c) });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "citadel-floor-"));
    try {
        await loadImages(FLOOR_VPS, stackImages(c));
        const known = path.join(dir, "known_hosts");
        fs.writeFileSync(known, knownHostsLine(info) + "\n");
        const script = hostFloorScript(c);
        const t = Date.now();
        const r = run("ssh", ["-i", HARNESS_KEY, "-p", String(info.sshPort), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${known}`, `${c.admin.user}@${info.sshHost}`, "sudo -n bash -s"], { input: script, timeout: 1_800_000 });
        const seconds = (Date.now() - t) / 1000;
        if (r.code !== 0 || !r.stdout.includes("citadel host floor: done")) throw new Error(`the host floor's script failed (exit ${r.code}): ${(r.stderr || r.stdout).slice(-1500)}`);
        return { seconds, summary: hostFloorSummary(c) };
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
        await stopVps(FLOOR_VPS);
    }
}

if (require.main === module) {
    (async () => {
        const fs = await import("node:fs");
        const { localConfig } = await import("./local");
        const { harnessKey } = await import("./vps/common");
        const { ensureDockerd } = await import("./vps/dockerd");
        const c = localConfig(fs.readFileSync(harnessKey(), "utf8").trim());
        if (process.argv[2] === "--print") {
            process.stdout.write(hostFloorScript(c));
            return;
        }
        await ensureDockerd();
        const f = await runHostFloor(c);
        console.log(`host floor: ${f.seconds.toFixed(1)} s (${f.summary})`);
    })().catch((e) => {
        console.error(`host floor: ${(e as Error).message}`);
        process.exit(1);
    });
}
