// cloud-init user-data for a new Hetzner server: the admin user and its keys, nothing more.
//
// Minimal on purpose: changing a server's user_data makes Hetzner REPLACE the server, so everything
// that may change later (sshd, firewall, Docker, ...) is pushed over SSH by the host steps instead.
// Nothing secret goes in here: user-data is readable from the metadata service and the console.
import YAML, { isMap, isScalar, isSeq, Pair, YAMLMap } from "yaml";
import type { StackConfig } from "../config";

export const CLOUD_CONFIG_HEADER = "#cloud-config";

export interface CloudConfig {
    users: Array<{
        name: string;
        shell: string;
        groups: string[];
        sudo: string;
        lock_passwd: boolean;
        ssh_authorized_keys: string[];
    }>;
    disable_root: boolean;
    ssh_pwauth: boolean;
    package_update: boolean;
    packages: string[];
}

/** The user-data as an object (the YAML below is its serialization). */
export function cloudConfig(c: StackConfig): CloudConfig {
    return {
        // Only this user: no distribution default user, and root gets no keys.
        users: [
            {
                name: c.admin.user,
                shell: "/bin/bash",
                groups: ["sudo"],
                sudo: "ALL=(ALL) NOPASSWD:ALL",
                lock_passwd: true,
                ssh_authorized_keys: [...c.admin.sshPublicKeys],
            },
        ],
        disable_root: true,
        ssh_pwauth: false,
        package_update: true,
        packages: ["sudo", "openssh-server"],
    };
}

const COMMENTS: Record<string, string> = {
    users: " The admin (citadel:admin.user): key-only, no password at all (lock_passwd).",
    disable_root: " No root login over SSH (Citadel's sshd drop-in enforces the same, and more).",
    ssh_pwauth: " Key-only SSH from the first boot on.",
    packages: " Kept tiny: every change here replaces the server. The host steps install the rest.",
};
const SUDO_COMMENT =
    " Passwordless sudo: Pulumi's remote steps run `sudo -n` over SSH and cannot answer a prompt;\n" +
    " the account has no password to type anyway (lock_passwd), so the SSH key is the credential.";

export function renderCloudInit(c: StackConfig): string {
    // cloud-init reads YAML 1.1 (PyYAML), where bare yes/no/on/off are booleans: serializing as 1.1
    // quotes such strings (a user named "on" stays a name).
    const doc = new YAML.Document(cloudConfig(c), { version: "1.1" });
    const root = doc.contents as YAMLMap;
    for (const pair of root.items as Pair[]) {
        const comment = isScalar(pair.key) ? COMMENTS[String(pair.key.value)] : undefined;
        if (comment && isScalar(pair.key)) pair.key.commentBefore = comment;
    }
    const users = root.get("users");
    const admin = isSeq(users) ? users.items[0] : undefined;
    if (isMap(admin)) {
        const sudo = (admin.items as Pair[]).find((p) => isScalar(p.key) && p.key.value === "sudo");
        if (sudo && isScalar(sudo.key)) sudo.key.commentBefore = SUDO_COMMENT;
    }
    // The header line must be first: cloud-init ignores user-data without it.
    return `${CLOUD_CONFIG_HEADER}\n${doc.toString({ lineWidth: 0 })}`;
}
