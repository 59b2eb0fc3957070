// Renders the text files in templates/ (Caddyfile, sshd_config, shell scripts) with Handlebars.
//
// Handlebars runs in strict mode (a missing value is an error, not an empty string) and without
// HTML escaping (none of our formats is HTML). Values reach templates already validated by the
// config schema; shell values additionally go through the `shq` helper (POSIX single-quoting).
import * as fs from "node:fs";
import * as path from "node:path";
import Handlebars from "handlebars";
import { quote } from "shell-quote";
import { APT_LISTS } from "../posture/facts";

export const TEMPLATES_DIR = path.resolve(__dirname, "..", "..", "templates");

const hb = Handlebars.create();
hb.registerHelper("shq", (v: unknown) => shellQuote(String(v)));
// Always single quotes, for words shell-quote would backslash-escape (`!`, `:`), which ShellCheck flags.
hb.registerHelper("sq", (v: unknown) => `'${String(v).replace(/'/g, "'\\''")}'`);
hb.registerHelper("join", (xs: unknown[], sep: unknown) => (Array.isArray(xs) ? xs.join(typeof sep === "string" ? sep : ",") : ""));
hb.registerHelper("json", (v: unknown) => JSON.stringify(v));
hb.registerHelper("eq", (a: unknown, b: unknown) => a === b);
// One `ensure_packages` line per install round of a step (posture/facts.ts STEP_PACKAGES); with
// report=true each package missing beforehand also sets the script's `changed` flag.
hb.registerHelper("ensurePackages", (groups: unknown, options: { hash?: { report?: boolean } }) =>
    (Array.isArray(groups) ? (groups as string[][]) : [])
        .map((g) => [...(options.hash?.report ? g.map((p) => `pkg_installed ${shellQuote(p)} || changed=1`) : []), `ensure_packages ${g.join(" ")}`].join("\n"))
        .join("\n"),
);

const cache = new Map<string, Handlebars.TemplateDelegate>();

/** Renders templates/<name> (e.g. "sshd/10-citadel.conf.hbs") with the given data. */
export function renderTemplate(name: string, data: object): string {
    let t = cache.get(name);
    if (!t) {
        const src = fs.readFileSync(path.join(TEMPLATES_DIR, name), "utf8");
        t = hb.compile(src, { noEscape: true, strict: true });
        cache.set(name, t);
    }
    return t(data);
}

/** The host-script library every step's script starts with (templates/host/lib.sh.hbs). */
export function hostLib(): string {
    return renderTemplate("host/lib.sh.hbs", { aptLists: APT_LISTS });
}

/** POSIX shell single-quoting of one word (library-backed; never hand-escape). */
export function shellQuote(v: string): string {
    // shell-quote leaves "safe" words bare and quotes the rest.
    return quote([v]);
}

export const HEREDOC_DELIMITER = "CITADEL_EOF";

/**
 * Embeds file content in a script as a quoted here-document body. The quoted delimiter means the
 * shell expands nothing inside; the only way to break out is a line equal to the delimiter, which
 * is refused here.
 */
export function heredocBody(content: string): string {
    if (content.split("\n").some((l) => l === HEREDOC_DELIMITER)) {
        throw new Error(`file content contains the line ${HEREDOC_DELIMITER}, which would end its here-document`);
    }
    return content.endsWith("\n") ? content : content + "\n";
}
hb.registerHelper("heredoc", (v: unknown) => heredocBody(String(v)));
