// The audit's vocabulary: a check result with evidence and explicit drift, and the two ways of
// reaching a host (from outside through a Probe, from inside over SSH).
import type { StackConfig } from "../components/config";

export type Outcome = "pass" | "fail" | "skip";

/** A live value that differs from the declared one: both are shown, never just "mismatch". */
export interface Drift {
    what: string;
    expected: string;
    actual: string;
}

export interface CheckResult {
    id: string;
    title: string;
    /** outside | inside | attack */
    group: Group;
    result: Outcome;
    /** What was observed (a short, human-readable proof). */
    evidence: string;
    drift: Drift[];
    /**
     * Parts of the check that could not be judged on this host, each with the reason (e.g. a kernel
     * parameter a container cannot set). Never counted as passed: they are listed as skipped.
     */
    skipped: Skipped[];
    /**
     * The check threw before reaching a verdict (a command it needed failed, bad output...). Its
     * result is "fail" (the audit never passes on missing evidence, exit 1), but it is no detection
     * of drift: tests must not take a crash for a caught fault.
     */
    crashed?: boolean;
    /** The source-policy checklist lines this check proves (from audit/checklist.ts). */
    policy: { file: string; line: string }[];
}

export type Group = "outside" | "inside" | "attack";

/** One item a check could not judge here, and why. */
export interface Skipped {
    what: string;
    reason: string;
}

export interface CommandResult {
    code: number | null;
    stdout: string;
    stderr: string;
}

/**
 * Where "outside" traffic comes from. For the local VPS: a second container on the lab network;
 * for a remote host: the operator's machine. Either way a python3 snippet (stdlib only) runs there.
 */
export interface Probe {
    /** e.g. "container citadel-audit-probe on citadel-lab" or "this machine". */
    describe: string;
    python(script: string, timeoutMs?: number): CommandResult;
}

/** A throwaway client with its own address, as the host sees it. */
export interface Attacker {
    probe: Probe;
    /** The source address the host's sshd and firewall see. */
    address: string;
    /** Writes a file into the source (0600, by stdin: never on a command line). */
    putFile?(path: string, content: string): void;
    remove(): void;
}

/** Runs a probe snippet that prints one JSON document (its last line); throws with stderr when it does not. */
export function probeJson<T>(p: Probe, script: string, timeoutMs = 120_000): T {
    const r = p.python(script, timeoutMs);
    if (r.code !== 0) throw new Error(`probe failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-400)}`);
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "null") as T;
}

/** A shell command on the host as the admin user (over SSH, host key pinned). */
export interface Inside {
    sh(command: string, opts?: { stdin?: string; timeoutMs?: number }): CommandResult;
}

export interface AuditTarget {
    stack: string;
    config: StackConfig;
    /** Address the probe connects to (the VPS's lab address, or the server's public address). */
    address: string;
    /**
     * The host's IPv6 address, scanned like `address` (hcloud: the stack's `address6` output, the ::1
     * of the server's /64; the lab VPS: its lab address). Absent, or with no route to it from the
     * probe: the IPv6 scan is skipped with the reason.
     */
    address6?: string;
    /** Where SSH answers from this machine (ssh client, ssh-audit): host and port. */
    sshHost: string;
    sshPort: number;
    /** Declared TCP exposure (stack output `exposure.tcp`). */
    exposureTcp: number[];
    /** Site hosts (stack output `sites`, without the scheme). */
    sites: string[];
    /** PEM of the CA that signs the sites' certificates when it is not a public one (Caddy's local CA). */
    siteCaPem?: string;
    probe: Probe;
    /** A second client address (attacks: a throttled probe must not throttle others); absent = skip. */
    secondSource?: { probe: Probe; address: string; httpsPort: number };
    /**
     * A disposable source for the SSH brute force (it gets banned): started on demand, removed after.
     * Absent = skip: from the operator's own machine the ban would lock the operator out.
     */
    attacker?: (name?: string) => Attacker;
    /**
     * The admin's private key, for an attack that logs in as the operator from a disposable source
     * (atk-ssh-agent-keys). Absent = skip: only the lab hands its own key to a lab container.
     */
    operatorKey?: () => string;
    /**
     * A disposable source outside citadel:admin.sourceIps (the perimeter checks: SSH from it must be
     * as the cloud firewall declares). Absent = those parts skip: the operator's machine is inside.
     */
    outsider?: () => Attacker;
    inside: Inside;
}

export interface AuditOptions {
    /** Run the attacks (SSH brute force, HTTP burst). Off by default: they ban and throttle. */
    attack?: boolean;
    /** Only checks whose id starts with one of these (fast re-checks in tests). */
    only?: string[];
}

export interface CheckDef {
    id: string;
    title: string;
    group: Group;
    run(t: AuditTarget): Promise<Verdict> | Verdict;
}

export interface Verdict {
    result: Outcome;
    evidence: string;
    drift?: Drift[];
    skipped?: Skipped[];
}

export const pass = (evidence: string): Verdict => ({ result: "pass", evidence });
export const skip = (evidence: string): Verdict => ({ result: "skip", evidence });
/** Fails when there is drift; passes with `ok` evidence otherwise. */
export function fromDrift(drift: Drift[], ok: string, extra = ""): Verdict {
    if (drift.length === 0) return { result: "pass", evidence: ok };
    return { result: "fail", evidence: `${drift.length} drift(s)${extra ? `; ${extra}` : ""}`, drift };
}

/** Polls `check` until it holds or `ms` passed (bounded: the audit never waits forever). */
export async function waitUntil(check: () => boolean | Promise<boolean>, ms: number, everyMs = 250): Promise<boolean> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (await check()) return true;
        await new Promise((res) => setTimeout(res, everyMs));
    }
    return false;
}

export const seconds = (startMs: number): number => Math.round((Date.now() - startMs) / 100) / 10;
