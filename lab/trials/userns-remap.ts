// A trial, not a test (issue 13, CIS Docker 2.9): what turning on Docker's user-namespace remapping
// (`"userns-remap": "default"` in daemon.json) does to a host Citadel converged. It converges the local
// VPS, records the containers, switches the daemon, reloads the lab's images into the remapped store
// (a real host would pull them), runs `pulumi up --refresh` as an operator would, and prints what
// runs, what restarts and why. `npm`-less: tsx lab/trials/userns-remap.ts [--keep]
import * as fs from "node:fs";
import { down, LOCAL_VPS, LOG_DIR, pulumiLocal, stackImages, up } from "../local";
import { HARNESS_KEY, run } from "../vps/common";
import { loadImages } from "../vps/vps";

const sh = (cmd: string) => run("docker", ["exec", LOCAL_VPS, "bash", "-c", cmd], { timeout: 300_000 });
const show = (title: string, cmd: string) => {
    const r = sh(cmd);
    console.log(`--- ${title}\n${(r.stdout + r.stderr).trim()}`);
};
const containers = "docker ps -a --format '{{.Names}}\\t{{.Status}}' | sort";

async function main(): Promise<void> {
    const { info, config } = await up();
    const publicKey = fs.readFileSync(`${HARNESS_KEY}.pub`, "utf8").trim();
    show("before: containers", containers);
    show("before: a secret file's owner (host uid)", "stat -c '%u:%g %a %n' /etc/citadel/secrets/*/* | head -n 4");

    const t = Date.now();
    const sw = sh(`set -e
jq '. + {"userns-remap": "default"}' /etc/docker/daemon.json >/tmp/daemon.json
install -m 0644 /tmp/daemon.json /etc/docker/daemon.json
systemctl restart docker
grep dockremap /etc/subuid`);
    console.log(`--- the switch (${((Date.now() - t) / 1000).toFixed(1)} s)\n${sw.stdout}${sw.stderr}`);
    show("after the switch: userns in docker info, containers, images, volumes", "docker info --format '{{.SecurityOptions}} root={{.DockerRootDir}}'; echo containers: $(docker ps -aq | wc -l) images: $(docker images -q | wc -l) volumes: $(docker volume ls -q | wc -l)");

    await loadImages(LOCAL_VPS, stackImages(config));
    const code = await pulumiLocal(info, publicKey, ["up", "--yes", "--non-interactive", "--skip-preview", "--refresh"], "userns-up.log");
    console.log(`--- pulumi up --refresh: exit ${code} (${LOG_DIR}/userns-up.log)`);
    sh("sleep 20");
    show("20 s later: containers", containers);
    show("restart counts", "for c in $(docker ps -aq); do docker inspect -f '{{.Name}} restarts={{.RestartCount}} exit={{.State.ExitCode}}' $c; done");
    show("the last log lines of each container that is not running", "for c in $(docker ps -a --filter status=restarting --filter status=exited -q); do echo \"== $(docker inspect -f '{{.Name}}' $c)\"; docker logs --tail 5 $c 2>&1; done");
    if (!process.argv.includes("--keep")) await down();
}

main().catch((e) => {
    console.error(`userns-remap trial: ${(e as Error).message}`);
    process.exit(1);
});
