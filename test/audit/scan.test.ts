// The audit's port scanner, run for real in a network namespace of its own: listeners on 22/80/443,
// a firewall that drops most other ports (so the timeout path is exercised), a refused range, and a
// port that only starts listening after the fast pass has probed it (the slow re-probe must find it).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { scanScript, ScanResult } from "../../audit/outside";
import { requireRoot, requireTools, run } from "../tools";

// Listeners on 22, 80 and 443, bound before "ready" is printed; 7 only 1.5 s later. The fast pass
// probes 7 at once (first batch) and needs at least 3 s for the dropped range, so 7 is refused in
// the fast pass and open for the slow re-probe, with 1.5 s of margin on either side.
const LISTENERS = `
import socket, threading, time, sys
def listener(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(64)
    return s
def serve(s):
    while True:
        c, _ = s.accept(); c.close()
for port in (22, 80, 443):
    threading.Thread(target=serve, args=(listener(port),), daemon=True).start()
print("ready", flush=True)
time.sleep(1.5)
threading.Thread(target=serve, args=(listener(7),), daemon=True).start()
time.sleep(60)
`;

/** The scan in a fresh network namespace, after the listeners are bound; the listeners die with it. */
function scanInNamespace(firewall: string[], scan: string, before: string[] = []): ReturnType<typeof run> {
    const script = [
        "set -eu",
        "ip link set lo up",
        ...firewall,
        'ready=$(mktemp); python3 -c "$LISTENERS" >"$ready" & pid=$!',
        'for _ in $(seq 1 100); do grep -q ready "$ready" && break; sleep 0.05; done',
        'grep -q ready "$ready" || { echo "listeners did not start" >&2; kill "$pid"; exit 3; }',
        ...before,
        'rc=0; timeout 60 python3 -c "$SCAN" || rc=$?',
        'kill "$pid"; rm -f "$ready"; exit "$rc"',
    ].join("\n");
    return run("unshare", ["-n", "--", "bash", "-c", script], { env: { ...process.env, LISTENERS, SCAN: scan }, timeout: 90_000 });
}

describe("audit scanner: full connect scan in a namespace of its own", () => {
    it("finds exactly the listening ports, counts dropped and refused apart, and re-probes late confirm ports", (t) => {
        if (!requireRoot(t, "network namespace and iptables") || !requireTools(t, "unshare", "ip", "iptables", "python3", "timeout")) return;
        // 1-3000 dropped except the listeners, 3001-4000 refused by the kernel (nothing listens).
        const scan = scanScript("127.0.0.1", { ports: [1, 4000], confirm: [7, 22, 80, 443], workers: 500, timeout: 1.0 });
        const r = scanInNamespace(["iptables -A INPUT -p tcp -m multiport --dports 7,22,80,443 -j ACCEPT", "iptables -A INPUT -p tcp --syn --dport 1:3000 -j DROP"], scan);
        assert.equal(r.code, 0, r.stderr);
        const res = JSON.parse(r.stdout.trim()) as ScanResult;
        assert.deepEqual(res.open, [7, 22, 80, 443], r.stdout);
        assert.deepEqual(res.lateOpen, [7], "port 7 only listens after the fast pass; the slow re-probe must report it");
        // The first pass missed a declared port, so its "dropped" could hide open ports: a second,
        // slower pass ran, saw 7 open, and is the one counted.
        assert.equal(res.passes, 2, r.stdout);
        assert.equal(res.unreliable, false, r.stdout);
        assert.equal(res.timedOut, 3000 - 4, r.stdout);
        assert.equal(res.refused, 1000, r.stdout);
        assert.deepEqual(res.faults, {}, r.stdout);
    });

    it("says it has no route instead of scanning when the probe's machine cannot reach the address (an operator without IPv6)", (t) => {
        if (!requireRoot(t, "network namespace") || !requireTools(t, "unshare", "ip", "python3", "timeout")) return;
        // A namespace of its own has no IPv6 route to a global address: nothing is probed.
        const r = scanInNamespace([], scanScript("2001:db8::1", { ports: [1, 100], workers: 50, timeout: 0.5 }));
        assert.equal(r.code, 0, r.stderr);
        const res = JSON.parse(r.stdout.trim()) as ScanResult;
        assert.equal(res.noRoute, "ENETUNREACH", r.stdout);
        // Control: the same namespace scans its own loopback (a route exists), with no noRoute.
        const lo = JSON.parse(scanInNamespace([], scanScript("127.0.0.1", { ports: [1, 100], workers: 50, timeout: 0.5 })).stdout.trim()) as ScanResult;
        assert.equal(lo.noRoute, undefined);
        assert.equal(lo.refused + lo.timedOut + lo.open.length, 100);
    });

    it("fits its workers to a low descriptor limit instead of calling ports closed it never probed", (t) => {
        if (!requireRoot(t, "network namespace") || !requireTools(t, "unshare", "ip", "python3", "timeout")) return;
        // 500 workers under a hard limit of 100 descriptors: without fitting, most probes would fail with EMFILE.
        const scan = scanScript("127.0.0.1", { ports: [1, 600], confirm: [22, 80, 443], workers: 500, timeout: 1.0 });
        const r = scanInNamespace([], scan, ["ulimit -n 100"]);
        assert.equal(r.code, 0, r.stderr);
        const res = JSON.parse(r.stdout.trim()) as ScanResult;
        assert.deepEqual(res.faults, {}, r.stdout);
        assert.deepEqual(res.open.filter((p) => p !== 7), [22, 80, 443], r.stdout);
        assert.equal(res.refused + res.timedOut + res.open.length - res.lateOpen.length, 600, r.stdout);
    });
});
