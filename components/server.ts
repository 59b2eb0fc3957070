// Layer 0: the server and its cloud perimeter. Two targets with the same outputs, so every layer
// above works on either: "hcloud" creates a Hetzner Cloud server behind a Hetzner firewall;
// "existing" takes any Debian 12 host (and the local VPS) by address and pinned host key.
import * as command from "@pulumi/command";
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import type { AdminConfig, StackConfig } from "./config";
import { HostConnection } from "./host-step";
import { SSH_PORT, type CloudFirewallRule } from "./posture";

export interface ServerArgs {
    target: StackConfig["target"];
    /** citadel:hcloud (used by target hcloud; always present, with its defaults). */
    hcloud: StackConfig["hcloud"];
    /** citadel:existing (target existing). */
    existing?: StackConfig["existing"];
    admin: Pick<AdminConfig, "user" | "sshPublicKeys">;
    /** Layer 0 as declared (posture.exposure.cloudFirewall). */
    cloudFirewall: CloudFirewallRule[];
    /** The minimal cloud-init user-data (render/cloudinit.ts). */
    userData: string;
    /** The operator's private key (secret), matching one of citadel:admin.sshPublicKeys. */
    privateKey: pulumi.Input<string>;
}

/**
 * Trust on first use, once: right after Hetzner creates the server, read its ed25519 host key over the
 * network and pin it in state. Every later connection (remote steps, Docker over SSH) refuses any
 * other key. Hetzner's API cannot tell us the key, and handing the server a pre-made host key would
 * put a private key into user_data. The loop is bounded (60 tries of at most 5 s, 5 s apart: about
 * 10 minutes at worst); a server that never answers stops the converge with what the scan saw.
 */
export function hostKeyScanScript(address: string, port: number, tries = 60, pauseSeconds = 5): string {
    return [
        "status=0",
        `for i in $(seq 1 ${tries}); do`,
        // ssh-keyscan says nothing on a refused or silent port: its exit status is what it has.
        `  out=$(ssh-keyscan -T 5 -t ed25519 -p ${port} ${address} 2>/dev/null) && status=0 || status=$?`,
        `  key=$(printf '%s\\n' "$out" | awk '$2 == "ssh-ed25519" {print $2" "$3; exit}')`,
        `  if [ -n "$key" ]; then echo "$key"; exit 0; fi`,
        `  if [ "$i" -lt ${tries} ]; then sleep ${pauseSeconds}; fi`,
        "done",
        `echo "citadel: server: no ed25519 host key from ${address}:${port} after ${tries} tries ${pauseSeconds} s apart (ssh-keyscan's last exit status: $status; the server never answered SSH with an ed25519 key: check that it booted and that its firewall allows this machine's address)" >&2`,
        "exit 1",
    ].join("\n");
}

export class Server extends pulumi.ComponentResource {
    /** Public address the platform is reached on. */
    public readonly address: pulumi.Output<string>;
    /** Its public IPv6 address where the target gives one (hcloud: the ::1 of the server's /64), for the audit's IPv6 scan. */
    public readonly address6?: pulumi.Output<string>;
    /** How host steps connect (admin user, pinned host key). */
    public readonly connection: HostConnection;
    /** The pinned host key. */
    public readonly hostKey: pulumi.Output<string>;
    /** Present for target "hcloud". */
    public readonly hetznerServer?: hcloud.Server;
    public readonly cloudFirewall?: hcloud.Firewall;

    constructor(name: string, args: ServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("citadel:server:Server", name, {}, opts);
        switch (args.target) {
            case "hcloud": {
                const h = args.hcloud;
                const keys = args.admin.sshPublicKeys.map(
                    (publicKey, i) => new hcloud.SshKey(`admin-${i}`, { name: `${h.serverName}-admin-${i}`, publicKey }, { parent: this }),
                );
                this.cloudFirewall = new hcloud.Firewall(
                    "perimeter",
                    { name: `${h.serverName}-perimeter`, rules: args.cloudFirewall },
                    { parent: this },
                );
                this.hetznerServer = new hcloud.Server(
                    "server",
                    {
                        name: h.serverName,
                        serverType: h.serverType,
                        image: h.image,
                        location: h.location,
                        // Keys here also stop Hetzner from e-mailing a root password.
                        sshKeys: keys.map((k) => k.id),
                        // Attached at creation: the server is never reachable without its perimeter.
                        firewallIds: [this.cloudFirewall.id.apply((id) => Number(id))],
                        publicNets: [{ ipv4Enabled: true, ipv6Enabled: true }],
                        // Minimal on purpose: changing user_data replaces the server.
                        userData: args.userData,
                    },
                    { parent: this },
                );
                this.address = this.hetznerServer.ipv4Address;
                this.address6 = this.hetznerServer.ipv6Address;
                const scan = new command.local.Command(
                    "host-key-scan",
                    {
                        create: this.address.apply((a) => hostKeyScanScript(a, SSH_PORT)),
                        // A new server (new id) has a new key; anything else keeps the pinned one.
                        triggers: [this.hetznerServer.id],
                    },
                    { parent: this },
                );
                this.hostKey = scan.stdout.apply((s) => s.trim());
                this.connection = { host: this.address, port: SSH_PORT, user: args.admin.user, privateKey: args.privateKey, hostKey: this.hostKey };
                break;
            }
            case "existing": {
                const e = args.existing;
                if (!e) throw new pulumi.ResourceError(`citadel:existing is required when citadel:target is "existing"`, this);
                this.address = pulumi.output(e.address);
                this.hostKey = pulumi.output(e.hostKey.split(/\s+/).slice(0, 2).join(" "));
                this.connection = { host: e.address, port: e.port, user: args.admin.user, privateKey: args.privateKey, hostKey: this.hostKey };
                break;
            }
            default: {
                const unreachable: never = args.target;
                throw new pulumi.ResourceError(`unknown target ${String(unreachable)}`, this);
            }
        }
        this.registerOutputs({ address: this.address, ...(this.address6 ? { address6: this.address6 } : {}), hostKey: this.hostKey });
    }
}
