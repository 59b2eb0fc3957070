// What a change of one response header means: CSP directive by directive, HSTS, framing, referrer,
// permissions, nosniff; TLS versions; rate-limit windows. Pure functions over header text.
import type { Direction } from "./types";

export interface Judgement {
    /** Suffix of the finding id (after the site's prefix). */
    key: string;
    direction: Direction;
    what: string;
    before: string;
    after: string;
    why: string;
}

// ---------------------------------------------------------------------------------------------
// Content-Security-Policy
// ---------------------------------------------------------------------------------------------

export type Csp = Map<string, string[]>;

export function parseCsp(text: string): Csp {
    const out: Csp = new Map();
    for (const part of text.split(";")) {
        const words = part.trim().split(/\s+/).filter(Boolean);
        if (words.length === 0) continue;
        const name = words[0].toLowerCase();
        // The first occurrence wins (CSP3 §2.2.1); a repeated directive is ignored by browsers.
        if (!out.has(name)) out.set(name, words.slice(1));
    }
    return out;
}

/** Fetch directives and what each falls back to when absent (CSP3). */
const FALLBACK: Record<string, string[]> = {
    "script-src-elem": ["script-src", "default-src"],
    "script-src-attr": ["script-src", "default-src"],
    "script-src": ["default-src"],
    "style-src-elem": ["style-src", "default-src"],
    "style-src-attr": ["style-src", "default-src"],
    "style-src": ["default-src"],
    "worker-src": ["child-src", "script-src", "default-src"],
    "frame-src": ["child-src", "default-src"],
    "child-src": ["default-src"],
    "connect-src": ["default-src"],
    "font-src": ["default-src"],
    "img-src": ["default-src"],
    "manifest-src": ["default-src"],
    "media-src": ["default-src"],
    "object-src": ["default-src"],
    "prefetch-src": ["default-src"],
    "fenced-frame-src": ["frame-src", "child-src", "default-src"],
    "default-src": [],
};
/** Directives that restrict by a source list, with no fallback: absent means unrestricted. */
const OWN_LIST = ["base-uri", "form-action", "frame-ancestors", "navigate-to"];
/** Presence is the protection. */
const FLAGS = ["upgrade-insecure-requests", "block-all-mixed-content", "require-trusted-types-for", "trusted-types"];
/** Reporting only: no effect on what loads. */
const REPORTING = ["report-uri", "report-to"];

const RISKY: Record<string, string> = {
    "'unsafe-inline'": "inline scripts/styles run: an injected <script> executes (XSS protection gone)",
    "'unsafe-eval'": "eval() and friends allowed: injected strings become code",
    "'unsafe-hashes'": "inline event handlers allowed by hash",
    "'wasm-unsafe-eval'": "WebAssembly compilation allowed",
    "*": "any host may serve this content",
    "data:": "data: URLs: attacker-supplied inline content",
    "blob:": "blob: URLs: script-built content",
    "http:": "any plain-HTTP origin",
    "https:": "any HTTPS origin",
    "filesystem:": "filesystem: URLs",
};

/** Effective source list of a directive (undefined: nothing restricts it). */
function effective(p: Csp, d: string): string[] | undefined {
    if (p.has(d)) return p.get(d);
    for (const f of FALLBACK[d] ?? []) if (p.has(f)) return p.get(f);
    return undefined;
}

const listText = (l: string[] | undefined, absent: string) => (l === undefined ? absent : l.length === 0 ? "(empty)" : l.join(" "));
const sources = (l: string[]) => l.filter((t) => t !== "'none'");

/** One judgement per directive whose effect changed (or whose text changed), CSP3 fallbacks applied. */
export function compareCsp(before: string | undefined, after: string | undefined): Judgement[] {
    if (before === after) return [];
    if (before === undefined || after === undefined) {
        const added = before === undefined;
        return [
            {
                key: added ? "csp+" : "csp-",
                direction: added ? "strengthens" : "weakens",
                what: `Content-Security-Policy ${added ? "added" : "removed"}`,
                before: before ?? "(none)",
                after: after ?? "(none)",
                why: added ? "the browser now restricts what the page loads and who may frame it" : "no CSP: injected scripts, framing and plugins are no longer restricted",
            },
        ];
    }
    const b = parseCsp(before);
    const h = parseCsp(after);
    const out: Judgement[] = [];
    for (const d of [...new Set([...b.keys(), ...h.keys()])]) {
        const bl = b.get(d);
        const hl = h.get(d);
        if (bl !== undefined && hl !== undefined && bl.join(" ") === hl.join(" ")) continue;
        if (REPORTING.includes(d)) {
            out.push({ key: `csp.${d}`, direction: "neutral", what: `CSP ${d} changed`, before: listText(bl, "(none)"), after: listText(hl, "(none)"), why: "reporting only: what the page may load is unchanged" });
            continue;
        }
        if (FLAGS.includes(d)) {
            const dir: Direction = bl === undefined ? "strengthens" : hl === undefined ? "weakens" : "unclassified";
            out.push({
                key: `csp.${d}${hl === undefined ? "-" : bl === undefined ? "+" : ""}`,
                direction: dir,
                what: `CSP ${d} ${hl === undefined ? "removed" : bl === undefined ? "added" : "changed"}`,
                before: listText(bl, "(none)"),
                after: listText(hl, "(none)"),
                why: dir === "unclassified" ? "no rule judges this directive's values" : `${d} ${dir === "weakens" ? "no longer" : "now"} enforced by the browser`,
            });
            continue;
        }
        const isFetch = d in FALLBACK;
        if (!isFetch && !OWN_LIST.includes(d) && d !== "sandbox") {
            out.push({ key: `csp.${d}`, direction: "unclassified", what: `CSP ${d} changed (a directive no rule knows)`, before: listText(bl, "(none)"), after: listText(hl, "(none)"), why: "no rule judges this directive" });
            continue;
        }
        // Effective lists: a fetch directive that disappears falls back (e.g. to default-src).
        const be = isFetch ? effective(b, d) : bl;
        const he = isFetch ? effective(h, d) : hl;
        const absent = isFetch ? "(unrestricted: no default-src)" : d === "sandbox" ? "(no sandbox)" : "(unrestricted)";
        const shown = { before: listText(bl, isFetch && be ? `(falls back to: ${be.join(" ")})` : absent), after: listText(hl, isFetch && he ? `(falls back to: ${he.join(" ")})` : absent) };
        if (d === "sandbox") {
            // sandbox's tokens are allowances: more tokens, fewer restrictions.
            const dir: Direction = he === undefined ? "weakens" : be === undefined ? "strengthens" : he.some((t) => !be.includes(t)) ? "weakens" : "strengthens";
            out.push({ key: `csp.sandbox`, direction: dir, what: "CSP sandbox changed", ...shown, why: dir === "weakens" ? "the sandbox allows more (or is gone)" : "the sandbox allows less" });
            continue;
        }
        if (be === undefined && he === undefined) continue;
        if (he === undefined) {
            out.push({ key: `csp.${d}-`, direction: "weakens", what: `CSP ${d} removed`, ...shown, why: d === "frame-ancestors" ? "any site may frame the pages (clickjacking)" : d === "default-src" ? "nothing restricts the directives that fell back to default-src" : `${d} is no longer restricted` });
            continue;
        }
        if (be === undefined) {
            out.push({ key: `csp.${d}+`, direction: "strengthens", what: `CSP ${d} added`, ...shown, why: `${d} is now restricted to: ${listText(he, "")}` });
            continue;
        }
        const added = sources(he).filter((t) => !sources(be).includes(t));
        const removed = sources(be).filter((t) => !sources(he).includes(t));
        if (added.length === 0 && removed.length === 0) {
            out.push({ key: `csp.${d}`, direction: "neutral", what: `CSP ${d} rewritten, same effective sources`, ...shown, why: "the browser allows the same sources as before" });
            continue;
        }
        const risky = added.filter((t) => RISKY[t]).map((t) => `${t}: ${RISKY[t]}`);
        const dir: Direction = added.length ? "weakens" : "strengthens";
        out.push({
            key: `csp.${d}${added.length ? `+${added.join(",")}` : ""}${removed.length ? `-${removed.join(",")}` : ""}`,
            direction: dir,
            what: `CSP ${d}: ${[added.length ? `allows ${added.join(" ")}` : "", removed.length ? `no longer ${removed.join(" ")}` : ""].filter(Boolean).join("; ")}`,
            ...shown,
            why: dir === "weakens" ? (risky.length ? risky.join("; ") : `new sources may serve ${d === "frame-ancestors" ? "frames of this site" : "content"}: ${added.join(" ")}`) : "fewer sources allowed",
        });
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// HSTS, framing, referrer, permissions, nosniff
// ---------------------------------------------------------------------------------------------

export interface Hsts {
    maxAge: number;
    includeSubDomains: boolean;
    preload: boolean;
}

export function parseHsts(text: string | undefined): Hsts | undefined {
    if (text === undefined) return undefined;
    const parts = text.split(";").map((p) => p.trim().toLowerCase());
    const ma = parts.map((p) => /^max-age\s*=\s*"?(\d+)"?$/.exec(p)).find(Boolean);
    return { maxAge: ma ? Number(ma[1]) : 0, includeSubDomains: parts.includes("includesubdomains"), preload: parts.includes("preload") };
}

/** Judgements per HSTS aspect; `absent` values count as no HSTS at all. */
export function compareHsts(b: Hsts | undefined, h: Hsts | undefined): Judgement[] {
    const z: Hsts = { maxAge: 0, includeSubDomains: false, preload: false };
    const bb = b ?? z;
    const hh = h ?? z;
    const out: Judgement[] = [];
    if (bb.maxAge !== hh.maxAge) {
        const dir: Direction = hh.maxAge < bb.maxAge ? "weakens" : "strengthens";
        out.push({
            key: `hsts.max-age=${hh.maxAge}`,
            direction: dir,
            what: `HSTS max-age ${bb.maxAge} → ${hh.maxAge} s`,
            before: String(bb.maxAge),
            after: String(hh.maxAge),
            why: dir === "weakens" ? (hh.maxAge < 31536000 ? "browsers forget HTTPS-only sooner; below 1 year the preload list drops the site" : "browsers forget HTTPS-only sooner") : "browsers remember HTTPS-only longer",
        });
    }
    for (const k of ["includeSubDomains", "preload"] as const) {
        if (bb[k] === hh[k]) continue;
        out.push({
            key: `hsts.${k}=${hh[k]}`,
            direction: hh[k] ? "strengthens" : "weakens",
            what: `HSTS ${k} ${hh[k] ? "added" : "dropped"}`,
            before: String(bb[k]),
            after: String(hh[k]),
            why: k === "preload" ? (hh[k] ? "eligible for browsers' built-in HTTPS-only list" : "the site leaves the preload list: a first visit may be plain HTTP") : hh[k] ? "sub-domains are HTTPS-only too" : "sub-domains may be reached over plain HTTP (cookie injection)",
        });
    }
    return out;
}

const RANKS: Record<string, Record<string, number>> = {
    "Referrer-Policy": {
        "no-referrer": 7,
        "same-origin": 6,
        "strict-origin": 5,
        "strict-origin-when-cross-origin": 4,
        origin: 3,
        "origin-when-cross-origin": 2,
        "no-referrer-when-downgrade": 1,
        "unsafe-url": 0,
    },
    "X-Frame-Options": { deny: 2, sameorigin: 1 },
    "X-Content-Type-Options": { nosniff: 1 },
};
/** What a browser does without the header. */
const ABSENT_RANK: Record<string, number> = { "Referrer-Policy": 4, "X-Frame-Options": 0, "X-Content-Type-Options": 0 };

export const RANKED_HEADERS = Object.keys(RANKS);

/** Referrer-Policy, X-Frame-Options, X-Content-Type-Options: stricter or not, by rank. */
export function compareRanked(header: string, before: string | undefined, after: string | undefined): Judgement | undefined {
    if (before === after) return undefined;
    const rank = (v: string | undefined) => (v === undefined ? ABSENT_RANK[header] : (RANKS[header][v.trim().toLowerCase()] ?? RANKS[header][v.trim()] ?? -1));
    const rb = rank(before);
    const rh = rank(after);
    const dir: Direction = rb < 0 || rh < 0 ? "unclassified" : rh < rb ? "weakens" : rh > rb ? "strengthens" : "neutral";
    const why: Record<string, string> = {
        "Referrer-Policy": dir === "weakens" ? "more of the URL (paths, query strings) leaks to other sites" : "less of the URL leaks to other sites",
        "X-Frame-Options": dir === "weakens" ? "other sites may frame the pages (clickjacking)" : "framing is restricted",
        "X-Content-Type-Options": dir === "weakens" ? "browsers may sniff content types (uploads run as scripts)" : "no content sniffing",
    };
    return {
        key: `${header.toLowerCase()}=${after ?? "(none)"}`,
        direction: dir,
        what: `${header} ${after === undefined ? "removed" : before === undefined ? "added" : "changed"}`,
        before: before ?? "(none)",
        after: after ?? "(none)",
        why: dir === "unclassified" ? "a value no rule ranks" : dir === "neutral" ? "the same protection" : why[header],
    };
}

/** Permissions-Policy: `feature=(allowlist)`; an empty list switches the feature off. */
export function parsePermissions(text: string): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const part of text.split(",")) {
        const m = /^\s*([a-z0-9-]+)\s*=\s*(\((.*)\)|\*|self)\s*$/i.exec(part);
        if (!m) continue;
        out.set(m[1].toLowerCase(), m[3] !== undefined ? m[3].split(/\s+/).filter(Boolean) : [m[2]]);
    }
    return out;
}

export function comparePermissions(before: string | undefined, after: string | undefined): Judgement[] {
    if (before === after) return [];
    if (before === undefined || after === undefined) {
        const added = before === undefined;
        return [{ key: added ? "permissions+" : "permissions-", direction: added ? "strengthens" : "weakens", what: `Permissions-Policy ${added ? "added" : "removed"}`, before: before ?? "(none)", after: after ?? "(none)", why: added ? "powerful browser features are switched off" : "camera, microphone, geolocation... fall back to the browser's defaults" }];
    }
    const b = parsePermissions(before);
    const h = parsePermissions(after);
    const out: Judgement[] = [];
    for (const f of [...new Set([...b.keys(), ...h.keys()])]) {
        const bl = b.get(f);
        const hl = h.get(f);
        const t = (l: string[] | undefined) => (l === undefined ? "(browser default)" : `(${l.join(" ")})`);
        if (bl && hl && bl.join(" ") === hl.join(" ")) continue;
        const widened = hl === undefined || (bl !== undefined && hl.some((x) => !bl.includes(x)));
        out.push({ key: `permissions.${f}=${t(hl)}`, direction: widened ? "weakens" : "strengthens", what: `Permissions-Policy ${f}: ${t(bl)} → ${t(hl)}`, before: t(bl), after: t(hl), why: widened ? `more origins (or the browser default) may use ${f}` : `fewer origins may use ${f}` });
    }
    if (out.length === 0) out.push({ key: "permissions", direction: "neutral", what: "Permissions-Policy rewritten, same features", before, after, why: "the same features are allowed" });
    return out;
}

// ---------------------------------------------------------------------------------------------
// TLS versions, rate-limit windows
// ---------------------------------------------------------------------------------------------

const TLS_RANK: Record<string, number> = { ssl3: 0, "tls1.0": 1, "tls1.1": 2, "tls1.2": 3, "tls1.3": 4 };

export function compareTls(before: string[], after: string[]): Judgement | undefined {
    if (before.join(" ") === after.join(" ")) return undefined;
    const min = (l: string[]) => Math.min(...l.map((p) => TLS_RANK[p] ?? -1));
    const mb = min(before);
    const mh = min(after);
    const dir: Direction = mb < 0 || mh < 0 ? "unclassified" : mh < mb ? "weakens" : mh > mb ? "strengthens" : "neutral";
    return {
        key: `tls.protocols=${after.join(",")}`,
        direction: dir,
        what: `TLS versions ${before.join(" ")} → ${after.join(" ")}`,
        before: before.join(" "),
        after: after.join(" "),
        why: dir === "weakens" ? "an older TLS version is accepted again (downgrade, weak ciphers)" : dir === "strengthens" ? "older TLS versions are refused" : dir === "neutral" ? "the oldest accepted version is the same" : "a version no rule knows",
    };
}

/** Go-style duration ("1m", "30s", "1h30m", "500ms") in seconds, or NaN. */
export function durationSeconds(text: string): number {
    const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
    const unit: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
    let total = 0;
    let consumed = 0;
    for (const m of String(text).matchAll(re)) {
        total += Number(m[1]) * unit[m[2]];
        consumed += m[0].length;
    }
    return consumed === String(text).length && consumed > 0 ? total : NaN;
}
