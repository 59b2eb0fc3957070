// The pids limit of each container, applied on the host (see templates/limits/).
import { renderTemplate } from "./template";
import { HostScript } from "./types";

export interface ContainerLimit {
    name: string;
    pids: number;
}

export function renderContainerLimits(containers: ContainerLimit[]): HostScript {
    for (const c of containers) {
        if (!Number.isInteger(c.pids) || c.pids < 1) throw new Error(`container ${c.name}: pids limit must be a positive integer`);
    }
    return {
        name: "container-limits",
        description: `pids limits for ${containers.map((c) => `${c.name}=${c.pids}`).join(", ")}`,
        script: renderTemplate("limits/container-limits.sh.hbs", { containers }),
        files: [],
    };
}
