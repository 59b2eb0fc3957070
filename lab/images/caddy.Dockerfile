# citadel/caddy:2.11.9-ratelimit for the local VPS (no Docker Hub, no Go image): the binary that
# build.sh compiled on the host (<repo>/.cache/bin/caddy, from this directory's go.mod/go.sum) on
# citadel/debian:12. images/build-local.ts puts that binary in the build context as `caddy`.
#
# Same runtime contract as ./Dockerfile (keep the two in step): uid/gid 10001, the binary with the
# cap_net_bind_service file capability (the stack adds NET_BIND_SERVICE back after --cap-drop ALL),
# curl for the healthcheck, ca-certificates for ACME, XDG dirs /data and /config, /var/log/caddy
# writable by 10001, the same HEALTHCHECK and ENTRYPOINT.
ARG BASE=citadel/debian:12
FROM ${BASE}

# Optional deb822 apt sources replacing the base image's list (e.g. to add bookworm-security).
ARG APT_SOURCES=

COPY caddy /usr/bin/caddy
# ca-certificates: ACME over HTTPS. curl: the container healthcheck. libcap2-bin only for setcap,
# removed again in the same layer. 10001 is the unprivileged user Caddy runs as.
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    if [ -n "$APT_SOURCES" ]; then \
        printf '%s\n' "$APT_SOURCES" >/etc/apt/sources.list.d/citadel.sources; \
        rm -f /etc/apt/sources.list; \
    fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl libcap2-bin; \
    setcap cap_net_bind_service=+ep /usr/bin/caddy; \
    apt-get purge -y --auto-remove libcap2-bin; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 caddy; \
    useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin caddy; \
    mkdir -p /etc/caddy /data /config /var/log/caddy; \
    chown 10001:10001 /data /config /var/log/caddy; \
    chmod 0750 /data /config /var/log/caddy; \
    caddy version; \
    caddy list-modules | grep -qx 'http.handlers.rate_limit'

ENV XDG_DATA_HOME=/data \
    XDG_CONFIG_HOME=/config
USER 10001:10001
EXPOSE 80 443
# The Caddyfile's loopback-only health site (GATEWAY_HEALTH_URL in components/render/caddy.ts).
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8079/healthz"]
ENTRYPOINT ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
