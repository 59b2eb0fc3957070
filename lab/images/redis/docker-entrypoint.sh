#!/bin/sh
# citadel/redis:7-local entrypoint: the official redis image's docker-entrypoint.sh behaviour,
# without gosu (a root start drops to redis with setpriv). Citadel runs the container as 999:999
# with `redis-server /etc/citadel-redis/redis.conf`, which passes through unchanged.
set -e

# A first argument that is an option (-x, --x) or a *.conf file means "redis-server with these".
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

# Started as root (the stack never does): hand the working dir to redis and drop privileges.
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

# Protected mode is off unless a config file given as the first argument sets it (as the official
# image does: a container's port is only reachable where it is published). Citadel's redis.conf
# sets `protected-mode yes`, so it stays on there.
if [ "$1" = redis-server ]; then
    protected=1
    config=
    if [ -f "${2:-}" ]; then
        config=$2
        if grep -q '^protected-mode' "$config"; then
            protected=
        fi
    fi
    if [ -n "$protected" ]; then
        shift
        if [ -n "$config" ]; then
            shift
            set -- "$config" --protected-mode no "$@"
        else
            set -- --protected-mode no "$@"
        fi
        set -- redis-server "$@"
    fi
fi

# New files (AOF, RDB) readable by the server's uid only.
if [ "$(umask)" = 0022 ]; then
    umask 0077
fi

exec "$@"
