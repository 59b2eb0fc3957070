// Shapes shared by the pure renderers.

/** A file Citadel puts on the host. */
export interface HostFile {
    /** Absolute path on the host. */
    path: string;
    /** Full text of the file. */
    content: string;
    /** Octal mode, e.g. "0644". */
    mode: string;
    owner?: string;
    group?: string;
}

/**
 * A host step: one idempotent root shell script pushed over SSH. It embeds its files, validates them
 * with the real consumer before switching, and leaves the live configuration untouched on failure.
 */
export interface HostScript {
    /** Short id, also the Pulumi resource name suffix (e.g. "sshd"). */
    name: string;
    /** One line for reviewers: what the step changes. */
    description: string;
    /** The bash script (run as root via sudo). */
    script: string;
    /** The files the script installs, for tests and for `npm start`'s rendered tree. */
    files: HostFile[];
    /**
     * Repository files the script carries verbatim (not rendered from the config), by name with their
     * hash: a change to one is never "explained" by a config change in `citadel review`.
     */
    sources?: { name: string; sha256: string }[];
    /** The Debian packages the script installs, one list per install in order (posture/facts.ts STEP_PACKAGES). */
    packages?: string[][];
    /**
     * How many times Pulumi dials the host for this step before it fails (default HOST_DIAL_TRIES in
     * components/host-step.ts: about two minutes, for a server still booting).
     */
    dialTries?: number;
}
