// Exposure: what the Internet can reach, layer by layer (cloud firewall, UFW, DOCKER-USER), from one
// place. The firewall renderer, the server component, the outputs and the audit all read this.
import type { StackConfig } from "../config";
import { DOCKER_BLOCK_LOG_PREFIX, sshLimited, UFW_DEFAULTS, ufwRules } from "../render/firewall";
import { ANYWHERE, GATEWAY_IPV6, GATEWAY_PORTS, HTTP_PORT, HTTPS_PORT, SSH_PORT } from "./facts";
import type { CloudFirewallRule, ExposurePosture } from "./types";

/** The Hetzner firewall: SSH from the admin CIDRs (or anywhere), HTTP, HTTPS and ICMP; nothing else. */
export function cloudFirewallRules(c: StackConfig): CloudFirewallRule[] {
    const anywhere = [...ANYWHERE];
    const sshSources = c.admin.sourceIps.length > 0 ? [...c.admin.sourceIps] : anywhere;
    return [
        { direction: "in", protocol: "tcp", port: String(SSH_PORT), sourceIps: sshSources, description: "SSH (admin)" },
        { direction: "in", protocol: "tcp", port: String(HTTP_PORT), sourceIps: anywhere, description: "HTTP (redirects to HTTPS, ACME)" },
        { direction: "in", protocol: "tcp", port: String(HTTPS_PORT), sourceIps: anywhere, description: "HTTPS" },
        { direction: "in", protocol: "icmp", sourceIps: anywhere, description: "ICMP (path MTU discovery, ping)" },
    ];
}

export function exposurePosture(c: StackConfig): ExposurePosture {
    return {
        openTcp: [SSH_PORT, ...GATEWAY_PORTS].sort((a, b) => a - b),
        // HTTP/3 is off (Caddyfile `protocols h1 h2`): no UDP port needs opening.
        openUdp: [],
        ssh: {
            port: SSH_PORT,
            sources: [...c.admin.sourceIps],
            rateLimited: sshLimited(c),
        },
        cloudFirewall: c.target === "hcloud" ? cloudFirewallRules(c) : [],
        ufw: {
            defaults: UFW_DEFAULTS.map((d) => ({ key: d.key, value: d.value })),
            rules: ufwRules(c).map((r) => `ufw ${r.join(" ")}`),
        },
        dockerUser: { allowedTcp: [...GATEWAY_PORTS], logPrefix: DOCKER_BLOCK_LOG_PREFIX },
        deniedPorts: { ...c.firewall.denyPorts },
        ipv6: c.host.docker.ipv6 ? { served: true, gateway: GATEWAY_IPV6 } : { served: false },
    };
}

/** The SSH sources as the outputs and the audit spell them: the admin CIDRs, or anywhere. */
export function sshSourceIps(e: ExposurePosture): string[] {
    return e.ssh.sources.length ? e.ssh.sources : [...ANYWHERE];
}
