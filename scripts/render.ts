// `npm start`: renders a stack's whole host posture to out/<stack>/ — every file Citadel would put on
// the server, every host script, the cloud-init user-data and the Caddyfile — and prints what each
// layer does. No cloud account, no server: the same pure renderers `pulumi up` uses.
//
//   npm start                 # the prod example (Pulumi.prod.yaml)
//   npm start -- --stack NAME # any Pulumi.<NAME>.yaml
import * as fs from "node:fs";
import * as path from "node:path";
import { parseConfig, StackConfig } from "../components/config";
import { rawStackConfig, REPO_ROOT } from "../components/stackfile";
import { renderCaddyfile } from "../components/render/caddy";
import { renderCloudInit } from "../components/render/cloudinit";
import { renderFirewall } from "../components/render/firewall";
import { renderHostBaseline } from "../components/render/host";
import { renderIntrusion } from "../components/render/intrusion";
import { renderSshd } from "../components/render/sshd";
import { renderPostgresScript, renderRedisScript } from "../components/render/data";
import { renderGatewayScript } from "../components/render/caddy";
import { HostScript } from "../components/render/types";
import { secretSpecs } from "../components/secrets";

function arg(name: string, fallback: string): string {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function write(root: string, rel: string, content: string, mode = 0o644): void {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content, { mode });
}

export function hostScripts(c: StackConfig): HostScript[] {
    const steps = [renderFirewall(c), renderSshd(c), ...renderHostBaseline(c), renderIntrusion(c), renderGatewayScript(c, c.gateway.image)];
    if (c.postgres.enabled) steps.push(renderPostgresScript(c, c.postgres.image));
    if (c.redis.enabled) steps.push(renderRedisScript(c, c.redis.image));
    return steps;
}

function main(): void {
    const stack = arg("stack", "prod");
    const parsed = parseConfig(rawStackConfig(stack));
    if (!parsed.ok) {
        console.error(`Pulumi.${stack}.yaml is invalid:\n${parsed.errors.map((e) => `  - ${e}`).join("\n")}`);
        process.exit(1);
    }
    const c = parsed.config;
    const out = path.join(REPO_ROOT, "out", stack);
    fs.rmSync(out, { recursive: true, force: true });

    const steps = hostScripts(c);
    steps.forEach((s, i) => {
        write(out, `steps/${String(i + 1).padStart(2, "0")}-${s.name}.sh`, s.script, 0o755);
        for (const f of s.files) write(out, `host${f.path}`, f.content);
    });
    write(out, "cloud-init.yaml", renderCloudInit(c));
    write(out, "host/etc/citadel/caddy/Caddyfile", renderCaddyfile(c));

    const line = (k: string, v: string) => console.log(`  ${k.padEnd(22)} ${v}`);
    console.log(`Citadel posture for stack "${stack}" (target ${c.target}), rendered to ${path.relative(process.cwd(), out) || out}/\n`);
    line("0 cloud perimeter", c.target === "hcloud" ? `Hetzner firewall: 22 from ${c.admin.sourceIps.join(", ") || "anywhere"}, 80, 443, ICMP` : "(existing host: your provider's firewall)");
    line("1 host firewall", `UFW deny-in, SSH ${c.firewall.sshRateLimit ? "limit" : "allow"}, 80/443, deny ${c.firewall.denyPorts.from}-${c.firewall.denyPorts.to}, DOCKER-USER mirrors it`);
    line("1b intrusion", c.intrusion.engine === "crowdsec" ? "CrowdSec + firewall bouncer (sshd journal, Caddy access log)" : `fail2ban sshd jail (maxretry ${c.intrusion.maxRetry}, bantime ${c.intrusion.banTime}s)`);
    line("2 edge", `Caddy: ${c.sites.map((s) => s.host).join(", ")}; HSTS ${c.gateway.hstsMaxAge}s, CSP, ${c.gateway.rateLimit.events} req/${c.gateway.rateLimit.window} per client; admin API ${c.gateway.adminApi}`);
    line("3 apps", c.apps.map((a) => `${a.name} (${a.image}, uid ${a.user.split(":")[0]}, read-only)`).join("; ") || "none");
    line("4 data", [c.postgres.enabled ? "Postgres (TLS only, scram-sha-256)" : "", c.redis.enabled ? `Redis (ACL, ${c.redis.disabledCommands.length} commands denied)` : ""].filter(Boolean).join("; ") || "none");
    line("secrets", secretSpecs(c).map((s) => `${s.name}/${s.rotationDays}d`).join(", "));
    console.log("\nHost steps, in the order `pulumi up` runs them:");
    steps.forEach((s, i) => console.log(`  ${String(i + 1).padStart(2)}. ${s.name.padEnd(20)} ${s.description}`));
    console.log(`\nNext: read ${path.relative(process.cwd(), out)}/steps/*.sh — these are the exact scripts a reviewer sees in \`pulumi preview\`.`);
}

// Only when run as a script: tests import hostScripts() without rendering anything.
if (require.main === module) main();
