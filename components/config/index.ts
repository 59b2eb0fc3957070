// The stack's whole configuration: one schema, secure defaults, and errors that name the key and the fix.
//
// Every `citadel:<key>` config value is parsed here before any resource is registered. A bad value
// stops the program with a message such as
//   citadel:admin.sourceIps[1]: "10.0.0.300/24" is not a CIDR (e.g. 203.0.113.7/32 or 2001:db8::/48)
// Pure (no Pulumi import), so the schema is testable and usable by scripts.
//
//   validators.ts  value rules (also called by renderers as defence in depth) and zod helpers
//   schema.ts      every key: what it is, its default and why
//   checks.ts      rules that span several keys
//   load.ts        raw Pulumi config → typed config or `citadel:<key>: ...` errors
//   backup.ts      citadel:backup: recipients, target, schedule, retention
//   default-images.ts  the images pulled when the config names none, pinned by digest (and where each comes from)
export * from "./validators";
export * from "./schema";
export * from "./checks";
export * from "./load";
export * from "./backup";
export * from "./default-images";
