// The PR comment: summary table first, details per category, always under 60,000 characters, and
// saying what was cut; JSON carries every finding.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diffPostures } from "../../review/diff";
import { MAX_MARKDOWN, renderJson, renderMarkdown } from "../../review/markdown";
import type { Review } from "../../review/types";
import { mutated, postureWith, prodKey, prodList, prodPosture } from "./helpers";

/** The prod example with n apps and n sites; `v` varies every app and every site. */
function big(n: number, v: 0 | 1) {
    const apps = Array.from({ length: n }, (_, i) => ({
        name: `app${i}`,
        image: `ghcr.io/example/app${i}:${v ? "2.0.0" : "1.0.0"}`,
        port: 3000 + i,
        env: v ? { NODE_ENV: "production", FEATURE: `f${i}`, SESSION_URL: `redis://redis:6379/${i % 16}` } : { NODE_ENV: "production" },
        resources: v ? { memory: "512m", cpus: 1, pids: 512 } : { memory: "256m", cpus: 0.5, pids: 128 },
        data: v === 1 || i === 0,
    }));
    const sites = apps.map((a, i) => ({
        host: `s${i}.example.com`,
        app: a.name,
        rateLimit: v ? { events: 1000, window: "10s" } : { events: 100, window: "1m" },
        ...(v ? { contentSecurityPolicy: `default-src 'self' 'unsafe-inline' 'unsafe-eval' https://cdn${i}.example.net; frame-ancestors *` } : {}),
    }));
    return postureWith({ apps, sites, postgres: { enabled: true }, redis: { enabled: true } });
}

const review = (findings: Review["findings"]): Review => ({ stack: "prod", base: "main (0123456789ab)", head: "pr-42 (ba9876543210)", findings, unusedAcknowledgements: [] });

describe("review: the Markdown comment", () => {
    it("an empty review says so", () => {
        const md = renderMarkdown(review([]));
        assert.match(md, /No change to the declared security posture/);
    });

    it("starts with the summary table, then one <details> per category", () => {
        const head = postureWith({ admin: { ...prodKey("admin"), sourceIps: [] }, sites: [{ ...prodList("sites")[0], contentSecurityPolicy: "default-src 'self' 'unsafe-inline'" }, prodList("sites")[1]] });
        const md = renderMarkdown(review(diffPostures(prodPosture(), head)));
        const table = md.indexOf("| category |");
        const details = md.indexOf("<details");
        assert.ok(table > 0 && details > table, "table before details");
        assert.match(md, /\| exposure \| \d+ \|/);
        assert.match(md, /<details open><summary><b>exposure<\/b>/);
        assert.match(md, /unacknowledged weakening/);
        assert.ok(!/<script>/.test(md), "no raw HTML from the findings' text");
    });

    it("every site and every app of a 50-app stack changed: under 60,000 characters, and says what was cut", () => {
        const base = big(50, 0);
        const head = mutated(big(50, 1), (p) => {
            for (const c of p.containers) if (c.role === "app") c.capAdd.push("NET_ADMIN");
        });
        const findings = diffPostures(base, head);
        assert.ok(findings.length > 500, `many findings (${findings.length})`);
        const md = renderMarkdown(review(findings));
        assert.ok(md.length <= MAX_MARKDOWN, `${md.length} characters`);
        assert.match(md, /✂ \*\*\d+ findings not shown\*\* \(.*\) to keep this comment under 60,000 characters/);
        // The weakenings come first: the ones shown are weakenings, and the counts are complete.
        assert.match(md, /\| \*\*total\*\* \| \*\*\d+\*\*/);
        const weak = findings.filter((f) => f.direction === "weakens").length;
        assert.ok(md.includes(`**${weak}**`), "the total counts every weakening, shown or not");
        assert.ok(!md.includes("-secret@"), "secret-looking env values are redacted");
        const json = JSON.parse(renderJson(review(findings)));
        assert.equal(json.findings.length, findings.length, "JSON lists every finding");
        assert.equal(json.summary.weakens, weak);
    });

    it("a tiny limit still yields a well-formed, bounded comment", () => {
        const findings = diffPostures(big(5, 0), big(5, 1));
        const md = renderMarkdown(review(findings), 5000);
        assert.ok(md.length <= 5000, `${md.length}`);
        assert.match(md, /not shown|cut at/);
    });
});
