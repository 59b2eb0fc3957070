// `npm run render [-- --stack NAME]`: writes a stack's whole declared posture to out/<stack>/ with no
// server and no cloud account — posture.json (the model the review and the policy pack compare),
// every host step's script in the order `pulumi up` runs it, every file Citadel puts on the host,
// the cloud-init user-data — and prints what each layer does.
import * as fs from "node:fs";
import * as path from "node:path";
import { parseConfig } from "../components/config";
import { posture, sshSourceIps, type Posture } from "../components/posture";
import { renderCaddyfile } from "../components/render/caddy";
import { renderCloudInit } from "../components/render/cloudinit";
import { rawStackConfig, REPO_ROOT } from "../components/stackfile";

export const RENDER_USAGE = `usage: npm run render [-- --stack NAME] [-- --out DIR]

Writes the declared posture of Pulumi.<NAME>.yaml (default: prod) without touching any server:
  <out>/posture.json          the whole posture as data (exposure, host steps, containers, networks,
                              secret files, sites, intrusion, host baseline): what a review compares
  <out>/steps/NN-<step>.sh    every host step, in the order pulumi up runs it
  <out>/host/...              every file the steps install
  <out>/cloud-init.yaml       the user-data a new Hetzner server boots with
Default <out>: out/<NAME>/. Exit 1 when the stack's config is invalid (every problem named by key).
`;

function arg(argv: string[], name: string): string | undefined {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
}

function write(root: string, rel: string, content: string, mode = 0o644): void {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content, { mode });
}

/** posture.json: stable key order from the model itself, a trailing newline for diffs. */
export function postureJson(m: Posture): string {
    return JSON.stringify(m, null, 2) + "\n";
}

function summary(stack: string, m: Posture, out: string): string {
    const lines: string[] = [];
    const line = (k: string, v: string) => lines.push(`  ${k.padEnd(22)} ${v}`);
    const e = m.exposure;
    lines.push(`Citadel posture for stack "${stack}" (target ${m.target}), rendered to ${path.relative(process.cwd(), out) || out}/\n`);
    line("exposure", `tcp ${e.openTcp.join(", ")}; udp ${e.openUdp.join(", ") || "none"}; SSH from ${e.ssh.sources.join(", ") || `anywhere${e.ssh.rateLimited ? " (rate-limited)" : ""}`}`);
    line("0 cloud perimeter", e.cloudFirewall.length ? e.cloudFirewall.map((r) => `${r.protocol}${r.port ? `/${r.port}` : ""} from ${r.sourceIps.join(" ")}`).join("; ") : "(existing host: your provider's firewall)");
    line("1 host firewall", `UFW ${e.ufw.rules.length} rules (deny in by default); DOCKER-USER lets new inbound reach ${e.dockerUser.allowedTcp.join("/")} only`);
    line("1b intrusion", `${m.intrusion.engine}: ${m.intrusion.sources.join(", ")}; ban ${m.intrusion.banTimeSeconds} s; enforced in ${m.intrusion.enforcedIn.join(", ")}`);
    line("2 edge", m.sites.map((s) => `${s.host} → ${s.upstream} (${s.rateLimit.events}/${s.rateLimit.window})`).join("; ") || "no sites");
    line("3+4 containers", m.containers.map((x) => `${x.name} (uid ${x.uid}${x.readOnly ? ", read-only" : ""})`).join("; "));
    line("networks", m.networks.map((n) => `${n.name}${n.internal ? " (internal)" : ""}: ${n.members.join(", ") || "-"}`).join("; "));
    line("secrets", m.secrets.map((s) => `${s.name}/${s.rotationDays}d`).join(", "));
    lines.push("\nHost steps, in the order `pulumi up` runs them:");
    m.hostSteps.forEach((s, i) => lines.push(`  ${String(i + 1).padStart(2)}. ${s.name.padEnd(34)} ${s.description}`));
    lines.push(`\nSSH sources in the outputs: ${sshSourceIps(e).join(", ")}`);
    lines.push(`Next: read ${path.relative(process.cwd(), out)}/steps/*.sh — these are the exact scripts a reviewer sees in \`pulumi preview\`.`);
    return lines.join("\n");
}

export function main(argv: string[]): number {
    if (argv.includes("--help") || argv.includes("-h")) {
        process.stdout.write(RENDER_USAGE);
        return 0;
    }
    const stack = arg(argv, "stack") ?? "prod";
    let raw: Record<string, string>;
    try {
        raw = rawStackConfig(stack);
    } catch (e) {
        process.stderr.write(`citadel: render: cannot read Pulumi.${stack}.yaml (${(e as NodeJS.ErrnoException).code ?? String(e)})\n${RENDER_USAGE}`);
        return 2;
    }
    const parsed = parseConfig(raw);
    if (!parsed.ok) {
        process.stderr.write(`Pulumi.${stack}.yaml is invalid:\n${parsed.errors.map((e) => `  - ${e}`).join("\n")}\n`);
        return 1;
    }
    const c = parsed.config;
    const m = posture(c);
    const out = path.resolve(arg(argv, "out") ?? path.join(REPO_ROOT, "out", stack));
    fs.rmSync(out, { recursive: true, force: true });
    write(out, "posture.json", postureJson(m));
    m.hostSteps.forEach((s, i) => {
        write(out, `steps/${String(i + 1).padStart(2, "0")}-${s.name}.sh`, s.script, 0o755);
        for (const f of s.files) write(out, `host${f.path}`, f.content);
    });
    write(out, "cloud-init.yaml", renderCloudInit(c));
    write(out, "host/etc/citadel/caddy/Caddyfile", renderCaddyfile(c));
    process.stdout.write(summary(stack, m, out) + "\n");
    return 0;
}

// Only when run as a script: tests import postureJson() without rendering anything.
if (require.main === module) process.exit(main(process.argv.slice(2)));
