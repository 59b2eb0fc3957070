// CIDR containment, so a review can tell "a narrower source inside one already allowed" (neutral)
// from "a new source" (weakens). Node's own net.BlockList does the address arithmetic (the audit
// uses it too); "any" is both 0.0.0.0/0 and ::/0, as the posture spells it.
import { BlockList, isIPv4, isIPv6 } from "node:net";
import { ANYWHERE } from "../components/posture/facts";

interface Cidr {
    family: "ipv4" | "ipv6";
    address: string;
    bits: number;
}

/** "203.0.113.0/24", "2001:db8::/48", a bare address (a /32 or /128), or undefined. */
function parseCidr(s: string): Cidr | undefined {
    const [address, len, extra] = s.trim().split("/");
    if (extra !== undefined) return undefined;
    const family = isIPv4(address) ? "ipv4" : isIPv6(address) ? "ipv6" : undefined;
    if (!family) return undefined;
    const width = family === "ipv4" ? 32 : 128;
    const bits = len === undefined ? width : Number(len);
    if (!Number.isInteger(bits) || bits < 0 || bits > width) return undefined;
    return { family, address, bits };
}

/** outer contains inner: same family, inner at least as narrow, and inside outer's network. */
function contains(outer: string, inner: string): boolean {
    const o = parseCidr(outer);
    const i = parseCidr(inner);
    if (!o || !i) return outer === inner;
    if (o.family !== i.family || o.bits > i.bits) return false;
    // Every address of the narrower inner network shares outer's prefix: checking one is enough.
    const list = new BlockList();
    list.addSubnet(o.address, o.bits, o.family);
    return list.check(i.address, i.family);
}

/** Is `cidr` inside one of `within` ("any" expands to both families)? */
export function coveredBy(cidr: string, within: readonly string[]): boolean {
    const expand = (s: string): readonly string[] => (s === "any" ? ANYWHERE : [s]);
    return expand(cidr).every((c) => within.flatMap(expand).some((w) => contains(w, c)));
}
