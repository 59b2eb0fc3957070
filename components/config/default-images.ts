// The images the stack pulls when the config names none, each pinned by the digest of its multi-arch
// index (linux/amd64 and linux/arm64 among its platforms): exactly the image reviewed runs, a registry
// moving the tag changes nothing, and the next update is a reviewed change of this file.
//
// Where each digest comes from (this project's build machine reaches no registry, so none was pulled
// here; `docker buildx imagetools inspect <reference>` on a connected machine shows the same index):
// - Docker's official images (postgres, redis here; golang and debian as images/caddy/Dockerfile's
//   GO_IMAGE and BASE_IMAGE defaults): the index digest Docker's own tooling records in
//   docker-library/repo-info, repos/<name>/remote/<tag>.md, the build of 2026-09-19 (on Debian's
//   2026-09-18 bookworm).
// - The Prometheus project's images, built once per release: the same digest for the same tag pinned
//   by at least two unrelated public projects. Prometheus moves from 2.53.3 (no digest on record) to
//   2.53.5, the last of the 2.53 long-term line.
//
// Updating one: read the new index digest (`docker buildx imagetools inspect name:tag`), change it
// here, and the preview shows the container re-created with it (`citadel review`: the image changed).

/** Postgres 16, the newest patch release on Debian 12. */
export const DEFAULT_POSTGRES_IMAGE = "postgres:16.15-bookworm@sha256:efedf3595f1d6f415c08568ba171029bf54052e754cc9f030e3f2412b21f3d67";
/** Redis 7.4, the newest patch release on Debian 12. */
export const DEFAULT_REDIS_IMAGE = "redis:7.4.11-bookworm@sha256:c6eabf748fc7a61dbb5a705c78bcf3d6377b1127a97d0ce965c11c44ba46896f";
/** Monitoring (citadel:monitoring.images). */
export const DEFAULT_MONITORING_IMAGES = {
    prometheus: "prom/prometheus:v2.53.5@sha256:7a34573f0b9c952286b33d537f233cd5b708e12263733aa646e50c33f598f16c",
    alertmanager: "prom/alertmanager:v0.27.0@sha256:e13b6ed5cb929eeaee733479dce55e10eb3bc2e9c4586c705a4e8da41e5eacf5",
    nodeExporter: "prom/node-exporter:v1.8.2@sha256:4032c6d5bfd752342c3e631c2f1de93ba6b86c41db6b167b9a35372c139e7706",
    blackboxExporter: "prom/blackbox-exporter:v0.25.0@sha256:b04a9fef4fa086a02fc7fcd8dcdbc4b7b35cc30cdee860fdc6a19dd8b208d63e",
} as const;
