// Preview mode: what only the engine knows, read from `pulumi preview --json` (the engine's
// PreviewDigest: steps[].op, urn, oldState/newState, replaceReasons; diagnostics; changeSummary).
// Replacements and deletes of resources that hold data or the host, and which generated secrets
// rotate — by resource name only: no value is ever read (the engine masks secrets anyway).
import { sortFindings } from "./collect";
import type { Category, Direction, Finding } from "./types";

export interface PreviewStep {
    op: string;
    urn: string;
    oldState?: { type?: string };
    newState?: { type?: string };
    diffReasons?: string[];
    replaceReasons?: string[];
}

export interface PreviewDigest {
    steps?: PreviewStep[];
    diagnostics?: { urn?: string; message?: string; severity?: string }[];
    changeSummary?: Record<string, number>;
}

/** `urn:pulumi:prod::citadel::citadel:server:Server$hcloud:index/server:Server::citadel-prod` → type and name. */
export function parseUrn(urn: string): { type: string; name: string } {
    const parts = urn.split("::");
    const name = parts.length >= 4 ? parts.slice(3).join("::") : (parts.at(-1) ?? urn);
    const qualified = parts[2] ?? "";
    return { type: qualified.split("$").at(-1) ?? qualified, name };
}

const REPLACE_OPS = ["replace", "create-replacement", "delete-replaced", "discard-replaced"];
const DELETE_OPS = ["delete", "discard"];

function categoryOf(type: string): Category {
    if (type.startsWith("random:")) return "secrets";
    if (/^hcloud:index\/(server|primaryIp|sshKey)/.test(type)) return "server";
    if (/^hcloud:index\/firewall/.test(type)) return "exposure";
    if (/^docker:index\/network/.test(type)) return "network-isolation";
    if (type.startsWith("docker:")) return "containers";
    if (type.startsWith("command:")) return "host";
    return "other";
}

const isServer = (t: string) => t === "hcloud:index/server:Server";
const isVolume = (t: string) => t === "docker:index/volume:Volume" || t === "hcloud:index/volume:Volume";
const isFirewall = (t: string) => /^hcloud:index\/firewall(Attachment)?:/.test(t);

export function previewFindings(d: PreviewDigest): Finding[] {
    const out: Finding[] = [];
    const seen = new Set<string>();
    for (const s of d.steps ?? []) {
        const replace = REPLACE_OPS.includes(s.op);
        const del = DELETE_OPS.includes(s.op);
        if ((!replace && !del) || seen.has(s.urn)) continue;
        seen.add(s.urn);
        const { type: urnType, name } = parseUrn(s.urn);
        const type = s.newState?.type ?? s.oldState?.type ?? urnType;
        const reasons = (s.replaceReasons ?? []).length ? ` (because of ${s.replaceReasons!.join(", ")})` : "";
        let direction: Direction = "neutral";
        let why: string;
        let what: string;
        if (type.startsWith("random:")) {
            what = replace ? `secret ${name} rotates` : `secret ${name} deleted`;
            why = replace ? `a new value${reasons}: the containers and files reading it are re-created; sessions or tokens signed with the old value end` : "no longer generated";
        } else if (isServer(type)) {
            direction = "weakens";
            what = `server ${name} ${replace ? "replaced" : "deleted"}`;
            why = replace ? `replaces the server: new host, data lost without a restore${reasons}` : "the server and everything on it are deleted";
        } else if (isVolume(type)) {
            direction = "weakens";
            what = `volume ${name} ${replace ? "replaced" : "deleted"}`;
            why = `its data is lost without a restore${reasons}`;
        } else if (isFirewall(type)) {
            direction = del ? "weakens" : "neutral";
            what = `cloud firewall ${name} ${replace ? "replaced" : "deleted"}`;
            why = del ? "the Hetzner firewall no longer filters in front of the host" : `re-created${reasons}`;
        } else {
            what = `${type} ${name} ${replace ? "replaced" : "deleted"}`;
            why = replace ? `re-created${reasons}` : "removed by pulumi up";
        }
        out.push({
            id: `preview.${replace ? "replace" : "delete"}:${type}::${name}`,
            category: categoryOf(type),
            direction,
            what,
            before: s.op,
            after: reasons ? (s.replaceReasons ?? []).join(", ") : "(none)",
            why,
            covers: [],
        });
    }
    (d.diagnostics ?? [])
        .filter((x) => x.severity === "error")
        .forEach((x, i) => {
            const msg = String(x.message ?? "").replace(/\s+/g, " ").trim();
            out.push({ id: `preview.error:${i + 1}`, category: "other", direction: "unclassified", what: "the preview reported an error", before: "(none)", after: msg.length > 300 ? `${msg.slice(0, 299)}…` : msg, why: "the plan is incomplete: what it would change cannot be judged", covers: [] });
        });
    return sortFindings(out);
}
