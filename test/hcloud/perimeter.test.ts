// The Hetzner API double with a real machine behind a server: creating a server boots a lab VPS
// from the server's own user_data at the lab address the API reports as its public IPv4, the
// server's cloud firewall filters traffic to it for real (nftables on this machine, in front of the
// lab bridge), and deleting the server removes the VPS and every rule.
//
// One VPS boot (no stack converge). Sources: this machine (172.30.99.1, the admin source) and a
// probe container on the lab network (any other lab address: "the Internet"). Nothing in the VPS
// filters (no stack ran, no UFW), so whatever is closed is closed by the perimeter.
//
// Run: npx tsx --test test/hcloud/perimeter.test.ts   (Docker, Go and nft; skips without, CI=true fails)
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { test } from "node:test";
import { tcpOpen } from "../../audit/outside";
import { localProbe } from "../../audit/target";
import { containerProbe, removeProbe } from "../../lab/audit";
import { api, labRuleTables, startDouble, waitAction, type RunningDouble } from "../../lab/hcloud-double/run";
import { localConfig } from "../../lab/local";
import { renderCloudInit } from "../../components/render/cloudinit";
import { harnessKey } from "../../lab/vps/common";
import { dockerReady, ensureDockerd, stopDockerd } from "../../lab/vps/dockerd";
import { ensureVpsImage, VPS_IMAGE } from "../../lab/vps/image";
import { containerState, LAB_GATEWAY, LAB_NETWORK, LAB_SERVERS6, labAddress6 } from "../../lab/vps/vps";

const PREFIX = "citadel-hcloud-fw";
const PROBE = "citadel-hcloud-fw-probe";
const ADDRESS = "172.30.99.240";

function missingTools(): string | undefined {
    for (const [tool, args] of [["docker", ["version"]], ["go", ["version"]], ["nft", ["--version"]]] as const) {
        if (spawnSync(tool, [...args]).error) return tool;
    }
    return process.getuid?.() === 0 ? undefined : "root";
}

const inRule = (protocol: string, port: string | undefined, ...source_ips: string[]) => ({ direction: "in", protocol, ...(port ? { port } : {}), source_ips });
// Citadel's perimeter shape: SSH from the admin source only, HTTPS and ICMP from anywhere.
const RULES = [inRule("tcp", "22", `${LAB_GATEWAY}/32`), inRule("tcp", "443", "0.0.0.0/0", "::/0"), inRule("icmp", undefined, "0.0.0.0/0", "::/0")];

test("hcloud-double: a server is a real VPS behind a real cloud firewall, and deleting it leaves nothing", { timeout: 15 * 60_000 }, async (t) => {
    const missing = missingTools();
    if (missing) {
        if (process.env.CI === "true") assert.fail(`${missing} is needed`);
        t.skip(`${missing} is needed`);
        return;
    }
    const startedDockerd = !dockerReady();
    await ensureDockerd();
    await ensureVpsImage();
    const double: RunningDouble = await startDouble({ scope: PREFIX, pool: `${ADDRESS}-172.30.99.241`, vpsPrefix: PREFIX, ipv6Base: LAB_SERVERS6.perimeter, fresh: true });
    let serverId: number | undefined;
    try {
        const key = await api(double, "POST", "/ssh_keys", { name: "admin", public_key: fs.readFileSync(harnessKey(), "utf8").trim() });
        assert.equal(key.status, 201, JSON.stringify(key.json));
        const fw = await api(double, "POST", "/firewalls", { name: "perimeter", rules: RULES });
        assert.equal(fw.status, 201, JSON.stringify(fw.json));
        const userData = renderCloudInit(localConfig(fs.readFileSync(harnessKey(), "utf8").trim()));
        const created = await api(double, "POST", "/servers", {
            name: "citadel", server_type: "cx22", image: "debian-12", location: "fsn1", user_data: userData,
            ssh_keys: [key.json.ssh_key.id], firewalls: [{ firewall: fw.json.firewall.id }], public_net: { enable_ipv4: true, enable_ipv6: true },
        });
        assert.equal(created.status, 201, JSON.stringify(created.json));
        serverId = created.json.server.id as number;
        const vps = `${PREFIX}-${serverId}`;
        assert.equal(created.json.server.public_net.ipv4.ip, ADDRESS);
        const t0 = Date.now();
        const boot = await waitAction(double, created.json.action.id);
        assert.equal(boot.status, "success", JSON.stringify(boot));
        t.diagnostic(`server created and booted in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

        // The VPS is the server: booted from its user_data (the admin user exists), at its public IPv4.
        const server = (await api(double, "GET", `/servers/${serverId}`)).json.server;
        assert.equal(server.status, "running");
        assert.equal(containerState(vps), "running");
        const ip = spawnSync("docker", ["inspect", "--format", `{{(index .NetworkSettings.Networks "${LAB_NETWORK}").IPAddress}}`, vps], { encoding: "utf8" }).stdout.trim();
        assert.equal(ip, server.public_net.ipv4.ip);
        assert.equal(spawnSync("docker", ["exec", vps, "id", "-u", "deploy"]).status, 0, "the user_data's admin user is missing");
        assert.equal(spawnSync("docker", ["port", vps], { encoding: "utf8" }).stdout.trim(), "", "a double's VPS publishes nothing on this machine");

        // Listeners inside a VPS that filters nothing: SSH (22), HTTPS (443) and an app port (8001).
        // (Bound to "::": dual-stack, so the same listeners answer over IPv6 below.)
        for (const port of [443, 8001]) spawnSync("docker", ["exec", "-d", vps, "python3", "-m", "http.server", "--bind", "::", String(port)]);
        const probe = containerProbe(LAB_NETWORK, VPS_IMAGE, PROBE);
        const from = (p: typeof probe, port: number) => tcpOpen(p, ADDRESS, port);
        await new Promise((r) => setTimeout(r, 1_000));

        // The admin source reaches SSH; the Internet does not: dropped (a timeout), not refused.
        assert.deepEqual(from(localProbe, 22), { open: true, err: "" }, "SSH from the admin source");
        assert.deepEqual(from(probe, 22), { open: false, err: "TimeoutError" }, "SSH from outside the admin sources must be dropped by the perimeter");
        assert.deepEqual(from(probe, 443), { open: true, err: "" }, "HTTPS from anywhere");
        assert.deepEqual(from(probe, 8001), { open: false, err: "TimeoutError" }, "a port the perimeter does not allow, open on the host");
        assert.deepEqual(from(localProbe, 8001), { open: false, err: "TimeoutError" }, "8001 from the admin source: not allowed either");
        // IPv6: the server's /64 is routed to the VPS, which holds its ::1 (what the provider reports
        // as ipv6_address); the same rules in force over IPv6: HTTPS from anywhere, SSH only from the
        // admin source, which is an IPv4 one, so no IPv6 source reaches it; 8001 dropped.
        const net6 = server.public_net.ipv6.ip as string;
        assert.ok(new RegExp(`^${LAB_SERVERS6.perimeter.replace(/::\/48$/, "")}:[0-9a-f]+::/64$`).test(net6), `the server's /64 ${net6} is not inside the double's routed /48`);
        const addr6 = net6.replace(/\/64$/, "1");
        const route = spawnSync("ip", ["-6", "route", "show", net6], { encoding: "utf8" }).stdout.trim();
        const lab6 = labAddress6(vps);
        assert.ok(lab6 && route.includes(`via ${lab6} `), `no route of ${net6} via the VPS's lab address ${lab6}: ${route}`);
        assert.deepEqual(tcpOpen(probe, addr6, 443), { open: true, err: "" }, "HTTPS over IPv6 from anywhere");
        assert.deepEqual(tcpOpen(probe, addr6, 22), { open: false, err: "TimeoutError" }, "SSH over IPv6 must be dropped by the perimeter (the admin source is IPv4)");
        assert.deepEqual(tcpOpen(probe, addr6, 8001), { open: false, err: "TimeoutError" }, "a port the perimeter does not allow, over IPv6");
        assert.deepEqual(tcpOpen(localProbe, addr6, 22), { open: false, err: "TimeoutError" }, "SSH over IPv6 from this machine too");
        const table = spawnSync("nft", ["list", "table", "inet", vps.replace(/-/g, "_")], { encoding: "utf8" }).stdout;
        assert.match(table, /counter packets [1-9]\d* bytes \d+ drop/, `the perimeter's drop counter did not move:\n${table}`);

        // The rules drive the filter: 8001 allowed → open from outside; rules back → dropped again.
        const widen = await api(double, "POST", `/firewalls/${fw.json.firewall.id}/actions/set_rules`, { rules: [...RULES, inRule("tcp", "8001", "0.0.0.0/0")] });
        assert.equal(widen.status, 201, JSON.stringify(widen.json));
        assert.deepEqual(from(probe, 8001), { open: true, err: "" }, "8001 once the firewall allows it");
        assert.deepEqual(tcpOpen(probe, addr6, 8001), { open: false, err: "TimeoutError" }, "an IPv4-only rule opens nothing over IPv6");
        await api(double, "POST", `/firewalls/${fw.json.firewall.id}/actions/set_rules`, { rules: RULES });
        assert.deepEqual(from(probe, 8001), { open: false, err: "TimeoutError" }, "8001 after the rule is gone");
        // Without a firewall Hetzner filters nothing: neither does the double.
        await api(double, "POST", `/firewalls/${fw.json.firewall.id}/actions/remove_from_resources`, { remove_from: [{ type: "server", server: { id: serverId } }] });
        assert.deepEqual(from(probe, 22), { open: true, err: "" }, "SSH with no firewall applied");
        assert.deepEqual(tcpOpen(probe, addr6, 8001), { open: true, err: "" }, "8001 over IPv6 with no firewall applied (so the perimeter is what dropped it)");
        assert.deepEqual(labRuleTables(vps), []);
        const again = await api(double, "POST", `/firewalls/${fw.json.firewall.id}/actions/apply_to_resources`, { apply_to: [{ type: "server", server: { id: serverId } }] });
        assert.equal(again.status, 201);
        assert.deepEqual(from(probe, 22), { open: false, err: "TimeoutError" }, "SSH once the firewall is applied again");

        // A reboot through the API: the restarted container has lost the /64's ::1, and the driver puts
        // it back, with the route to the VPS's (possibly new) lab address.
        const reboot = await api(double, "POST", `/servers/${serverId}/actions/reboot`);
        assert.equal((await waitAction(double, reboot.json.action.id)).status, "success", JSON.stringify(reboot.json));
        const held = spawnSync("docker", ["exec", vps, "ip", "-o", "-6", "addr", "show", "to", `${addr6}/128`], { encoding: "utf8" }).stdout;
        assert.ok(held.includes(`${addr6}/64`), `after the reboot the VPS does not hold ${addr6}: ${held}`);
        assert.ok(spawnSync("ip", ["-6", "route", "show", net6], { encoding: "utf8" }).stdout.includes(`via ${labAddress6(vps)} `), "after the reboot the /64 is not routed to the VPS's lab address");
        assert.deepEqual(tcpOpen(probe, addr6, 22), { open: false, err: "TimeoutError" }, "SSH over IPv6 after the reboot: still dropped by the perimeter");

        // Delete: the VPS and its rules go; then the firewall and the key.
        const del = await api(double, "DELETE", `/servers/${serverId}`);
        assert.equal((await waitAction(double, del.json.action.id)).status, "success");
        serverId = undefined;
        assert.equal(containerState(vps), undefined, "the VPS is still there");
        assert.equal(spawnSync("ip", ["-6", "route", "show", net6], { encoding: "utf8" }).stdout.trim(), "", "the /64's route is left");
        assert.deepEqual(labRuleTables(PREFIX), [], "nftables tables left");
        assert.equal((await api(double, "DELETE", `/firewalls/${fw.json.firewall.id}`)).status, 204);
        assert.equal((await api(double, "DELETE", `/ssh_keys/${key.json.ssh_key.id}`)).status, 204);
        for (const kind of ["servers", "firewalls", "ssh_keys"]) assert.deepEqual((await api(double, "GET", `/${kind}`)).json[kind], [], `${kind} left`);
    } finally {
        removeProbe(PROBE);
        if (serverId !== undefined) {
            const del = await api(double, "DELETE", `/servers/${serverId}`).catch(() => undefined);
            if (del?.json?.action) await waitAction(double, del.json.action.id).catch(() => undefined);
        }
        for (const kind of ["firewalls", "ssh_keys"]) {
            const left = await api(double, "GET", `/${kind}`).catch(() => undefined);
            for (const x of (left?.json?.[kind] ?? []) as { id: number }[]) await api(double, "DELETE", `/${kind}/${x.id}`).catch(() => undefined);
        }
        await double.stop();
        if (startedDockerd) await stopDockerd({ onlyIfIdle: true });
    }
});
