// The declared posture: one pure function from the validated config to plain data. Components wire
// it into resources; the outputs, `npm run render` (posture.json), the audit, the review and the
// policy pack read it. Every constant it uses is defined once in facts.ts or its renderer.
import type { StackConfig } from "../config";
import { renderCloudInit } from "../render/cloudinit";
import { dockerDaemonConfig, sysctlEntries } from "../render/host";
import { sha256 } from "../render/script";
import { sshdExpectedEffective } from "../render/sshd";
import { backupPosture, backupSecretFiles } from "./backup";
import { containersPosture, networksPosture, secretFilesPosture, secretSpecs } from "./containers";
import { intrusionPosture, sitesPosture } from "./edge";
import { exposurePosture } from "./exposure";
import { monitoringContainers, monitoringPosture, monitoringSecretFiles } from "./monitoring";
import { hostStepsPosture } from "./steps";
import type { Posture } from "./types";

export function posture(c: StackConfig): Posture {
    const containers = [...containersPosture(c), ...monitoringContainers(c)];
    // The backup target's credentials are secret files too (root-owned, read by the backup service).
    const secretFiles = [...secretFilesPosture(c), ...backupSecretFiles(c), ...monitoringSecretFiles(c)];
    return {
        version: 1,
        target: c.target,
        server: {
            target: c.target,
            ...(c.target === "hcloud" ? { hcloud: { ...c.hcloud } } : {}),
            ...(c.target === "existing" && c.existing ? { existing: { address: c.existing.address, port: c.existing.port } } : {}),
            userDataSha256: sha256(renderCloudInit(c)),
        },
        domain: c.domain,
        adminUser: c.admin.user,
        exposure: exposurePosture(c),
        hostSteps: hostStepsPosture(c, containers, secretFiles),
        containers,
        networks: networksPosture(c, containers),
        volumes: [...new Set(containers.flatMap((x) => x.volumes.map((v) => v.name)))],
        secrets: secretSpecs(c),
        secretFiles,
        sites: sitesPosture(c),
        intrusion: intrusionPosture(c),
        host: {
            sysctl: sysctlEntries(c),
            sshdEffective: sshdExpectedEffective(c),
            journald: { ...c.host.journald },
            os: { ...c.host.os, disabledModules: [...c.host.os.disabledModules] },
            unattendedUpgrades: { ...c.host.unattendedUpgrades },
            dockerDaemon: dockerDaemonConfig(c),
        },
        backup: backupPosture(c),
        monitoring: monitoringPosture(c),
    };
}

export * from "./types";
export * from "./facts";
export { cloudFirewallRules, sshSourceIps } from "./exposure";
export { appEnv, dockerCpus, memoryMb, secretSpecs, secretStepName, uidOf } from "./containers";
export { containerRef, imageRef, networkRef } from "./steps";
export { tunnelCommand } from "./monitoring";
