// CIDR containment, so a review can tell "a narrower source inside one already allowed" (neutral)
// from "a new source" (weakens). IPv4 and IPv6; "any" is both 0.0.0.0/0 and ::/0.
import { isIPv4, isIPv6 } from "node:net";

export interface Cidr {
    v: 4 | 6;
    net: bigint;
    bits: number;
}

function v4(a: string): bigint {
    return a.split(".").reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}

function v6(a: string): bigint {
    let s = a;
    // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
    const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
    if (tail) {
        const n = v4(tail[1]);
        s = s.slice(0, -tail[1].length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
    }
    const [head, rest] = s.split("::");
    const h = head ? head.split(":") : [];
    const r = rest !== undefined && rest !== "" ? rest.split(":") : [];
    const groups = rest === undefined ? h : [...h, ...Array(8 - h.length - r.length).fill("0"), ...r];
    return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || "0", 16)), 0n);
}

/** "203.0.113.0/24", "2001:db8::/48", a bare address (a /32 or /128), or undefined. */
export function parseCidr(s: string): Cidr | undefined {
    const [addr, len, extra] = s.trim().split("/");
    if (extra !== undefined) return undefined;
    const v = isIPv4(addr) ? 4 : isIPv6(addr) ? 6 : undefined;
    if (!v) return undefined;
    const width = v === 4 ? 32 : 128;
    const bits = len === undefined ? width : Number(len);
    if (!Number.isInteger(bits) || bits < 0 || bits > width) return undefined;
    const raw = v === 4 ? v4(addr) : v6(addr);
    const mask = bits === 0 ? 0n : ((1n << BigInt(bits)) - 1n) << BigInt(width - bits);
    return { v, net: raw & mask, bits };
}

export const ANY = ["0.0.0.0/0", "::/0"];

/** outer contains inner (same family, inner at least as narrow, same network prefix). */
export function contains(outer: string, inner: string): boolean {
    const o = parseCidr(outer);
    const i = parseCidr(inner);
    if (!o || !i) return outer === inner;
    if (o.v !== i.v || o.bits > i.bits) return false;
    const width = BigInt(o.v === 4 ? 32 : 128);
    const shift = width - BigInt(o.bits);
    return o.net >> shift === i.net >> shift;
}

/** Is `cidr` inside one of `within` ("any" expands to both families)? */
export function coveredBy(cidr: string, within: readonly string[]): boolean {
    const expand = (s: string) => (s === "any" ? ANY : [s]);
    return expand(cidr).every((c) => within.flatMap(expand).some((w) => contains(w, c)));
}
