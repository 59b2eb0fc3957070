// The reviewer's security diff: what one finding says. Pure data (the CLI prints it as JSON or Markdown).

export const DIRECTIONS = ["weakens", "unclassified", "strengthens", "neutral"] as const;
export type Direction = (typeof DIRECTIONS)[number];

export const CATEGORIES = [
    "exposure",
    "ssh",
    "tls-headers",
    "rate-limits",
    "containers",
    "network-isolation",
    "intrusion",
    "monitoring",
    "secrets",
    "host",
    "server",
    "other",
] as const;
export type Category = (typeof CATEGORIES)[number];

export interface Finding {
    /** Stable across runs of the same change: reviewers acknowledge a weakening by it. */
    id: string;
    category: Category;
    /**
     * weakens: the posture is less strict (an unacknowledged one fails the review); strengthens: more
     * strict; neutral: a change with no security effect the rules know of; unclassified: a change no
     * rule judges (never dropped: a human reads it).
     */
    direction: Direction;
    what: string;
    /** The value before and after, as text ("(none)" when absent). Secret-looking values are redacted. */
    before: string;
    after: string;
    why: string;
    /** The posture paths this finding explains (prefixes of flattened leaves, see flatten.ts). */
    covers: string[];
    /** Host steps: a short unified diff of the script and file lines. */
    diff?: string;
    /** Set by acknowledge(): the reviewer's reason for accepting this weakening. */
    acknowledged?: string;
}

export interface Review {
    stack: string;
    base: string;
    head: string;
    findings: Finding[];
    /** Acknowledgements that matched no weakening of this review (stale or mistyped ids). */
    unusedAcknowledgements: string[];
}

export const NONE = "(none)";
