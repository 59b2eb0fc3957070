// The lab's off-site backup target: an SFTP-only OpenSSH container (lab/images/sftp) on the lab
// network beside the local VPS, one per VPS name. Its key pair and the operator's age key live in the
// VPS's log dir (gitignored); the stack gets the target's URL, its host key (read out of band with
// docker exec, then pinned) and the private key as a Pulumi secret (lab/local.ts).
import * as fs from "node:fs";
import * as path from "node:path";
import { buildLocalImages, SFTP_TARGET_IMAGE } from "./images/build-local";
import { run, runOk, sleep } from "./vps/common";
import { ensureLabNetwork, LAB_NETWORK } from "./vps/vps";

/** Inside the target's chroot: the one directory the backup user may write. */
export const SFTP_TARGET_DIR = "backups";
export const SFTP_TARGET_USER = "offsite";
/** Where the chroot is in the container (for tests that look at what landed on the target). */
export const SFTP_CHROOT = "/srv/sftp";

export interface BackupTarget {
    container: string;
    address: string;
    url: string;
    hostKey: string;
    /** The private key the stack's backup service logs in with (set as a Pulumi secret). */
    keyPath: string;
    /** The operator's age identity (private) and its recipient (public): the lab's restore key. */
    ageKeyPath: string;
    ageRecipient: string;
}

export const targetContainer = (vps: string): string => `${vps}-backup-target`;

/** Key pairs of the lab target (made once per VPS name, kept across VPS rebuilds: the restore drill needs them). */
function ensureKeys(dir: string): { keyPath: string; publicKey: string; ageKeyPath: string; ageRecipient: string } {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const keyPath = path.join(dir, "sftp_ed25519");
    if (!fs.existsSync(keyPath)) runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "citadel-lab-backup", "-f", keyPath]);
    const ageKeyPath = path.join(dir, "operator.agekey");
    if (!fs.existsSync(ageKeyPath)) runOk("age-keygen", ["-o", ageKeyPath]);
    const ageRecipient = runOk("age-keygen", ["-y", ageKeyPath]).trim();
    return { keyPath, publicKey: fs.readFileSync(`${keyPath}.pub`, "utf8").trim(), ageKeyPath, ageRecipient };
}

/** Starts (or finds running) the VPS's backup target; its data survives VPS rebuilds. */
export async function startBackupTarget(vps: string, dir: string): Promise<BackupTarget> {
    const container = targetContainer(vps);
    const keys = ensureKeys(dir);
    await buildLocalImages({ only: ["sftp"] });
    ensureLabNetwork();
    const state = run("docker", ["inspect", "--format", "{{.State.Running}}", container]).stdout.trim();
    if (state !== "true") {
        run("docker", ["rm", "-f", container]);
        // The public key only in the environment: it is not a secret.
        runOk("docker", ["run", "-d", "--name", container, "--network", LAB_NETWORK, "--restart", "unless-stopped", "-e", `AUTHORIZED_KEY=${keys.publicKey}`, SFTP_TARGET_IMAGE]);
    }
    let hostKey = "";
    for (let i = 0; i < 50 && !hostKey; i++) {
        hostKey = run("docker", ["exec", container, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.trim().split(/\s+/).slice(0, 2).join(" ");
        if (!hostKey.startsWith("ssh-ed25519 ")) {
            hostKey = "";
            await sleep(200);
        }
    }
    if (!hostKey) throw new Error(`citadel: backup target ${container} has no host key (docker logs ${container})`);
    const address = runOk("docker", ["inspect", "--format", `{{(index .NetworkSettings.Networks ${JSON.stringify(LAB_NETWORK)}).IPAddress}}`, container]).trim();
    return { container, address, url: `sftp://${SFTP_TARGET_USER}@${address}:22/${SFTP_TARGET_DIR}`, hostKey, keyPath: keys.keyPath, ageKeyPath: keys.ageKeyPath, ageRecipient: keys.ageRecipient };
}

/** lab/pulumi-stack.sh arguments pointing citadel:backup at a lab target: URL, pinned host key, the operator's recipient, the key as a secret (from its file, on stdin). */
export function backupStackArgs(t: BackupTarget | undefined): string[] {
    if (!t) return [];
    return [
        "--set", `citadel:backup.target.url=${t.url}`,
        "--set", `citadel:backup.target.hostKey=${t.hostKey}`,
        "--set", `citadel:backup.recipients[0]=${t.ageRecipient}`,
        "--secret-file", `citadel:backup.target.sshKey=${t.keyPath}`,
    ];
}

export function stopBackupTarget(vps: string): void {
    run("docker", ["rm", "-f", targetContainer(vps)]);
}
