#!/usr/bin/env bash
# citadel/postgres:15-local-2 entrypoint: the behaviour of the official postgres image's
# docker-entrypoint.sh that Citadel relies on, rewritten for Debian's packages (no gosu, no
# nss_wrapper). On an empty PGDATA it:
#   1. runs initdb with the superuser POSTGRES_USER, its password from POSTGRES_PASSWORD(_FILE) and
#      the extra POSTGRES_INITDB_ARGS;
#   2. appends `host all all all <auth>` to PGDATA/pg_hba.conf like the official image (unused when
#      the config points hba_file elsewhere, as Citadel's does);
#   3. starts a temporary server on the Unix socket only (no TCP), with the CMD's own options;
#   4. creates POSTGRES_DB if it is not "postgres";
#   5. runs /docker-entrypoint-initdb.d/*.sh (executed if executable, else sourced) and *.sql /
#      *.sql.gz with POSTGRES_USER exported and the superuser password in a PGPASSFILE;
#   6. stops the temporary server.
# Then it execs the CMD. Differences from the official script: the superuser password is in no
# process's environment (the official image exports POSTGRES_PASSWORD to every child, the server
# included, and PGPASSWORD to the init scripts), and when started as root it drops to postgres with
# setpriv instead of gosu.
set -Eeo pipefail

# file_env VAR [DEFAULT]: VAR from $VAR or from the file named by $VAR_FILE (not both), exported.
# POSTGRES_PASSWORD is the exception: a plain shell variable, never exported, so no child process
# (initdb, pg_ctl, the temporary server, psql) has it in its environment (/proc/PID/environ).
file_env() {
    local var=$1 def=${2:-}
    local file_var="${var}_FILE"
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$file_var"
        exit 1
    fi
    local val=$def
    if [ -n "${!var:-}" ]; then
        val=${!var}
    elif [ -n "${!file_var:-}" ]; then
        val=$(<"${!file_var}")
    fi
    if [ "$var" = POSTGRES_PASSWORD ]; then
        export -n POSTGRES_PASSWORD
        printf -v "$var" '%s' "$val"
    else
        export "$var"="$val"
    fi
    unset "$file_var"
}

# True when the arguments ask postgres for help or a config value instead of starting a server.
want_help() {
    local arg
    for arg; do
        case $arg in
        -'?' | --help | --describe-config | -V | --version) return 0 ;;
        esac
    done
    return 1
}

setup_env() {
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    : "${POSTGRES_HOST_AUTH_METHOD:=}"
    : "${PGDATA:?PGDATA must be set}"
    DATABASE_ALREADY_EXISTS=
    # PG_VERSION specifically: it is what initdb writes into every cluster directory.
    if [ -s "$PGDATA/PG_VERSION" ]; then
        DATABASE_ALREADY_EXISTS=true
    fi
}

create_db_directories() {
    mkdir -p "$PGDATA"
    # Failures ignored, as in the official image: Postgres itself refuses a data dir with bad modes.
    chmod 00700 "$PGDATA" || :
    mkdir -p /var/run/postgresql || :
    chmod 03775 /var/run/postgresql 2>/dev/null || :
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        mkdir -p "$POSTGRES_INITDB_WALDIR"
        chmod 700 "$POSTGRES_INITDB_WALDIR" || :
    fi
    if [ "$(id -u)" = 0 ]; then
        find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
        find /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' + 2>/dev/null || :
        if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
            find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres:postgres '{}' +
        fi
    fi
}

verify_minimum_env() {
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        cat >&2 <<'EOM'
Error: Database is uninitialized and superuser password is not specified.
       Set POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD) to a non-empty value for the superuser.
EOM
        exit 1
    fi
}

init_database_dir() {
    set --
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        set -- --waldir "$POSTGRES_INITDB_WALDIR"
    fi
    # POSTGRES_INITDB_ARGS is split by the shell (eval) exactly like the official image does, so
    # quoted arguments mean the same in both. The password reaches initdb through a pipe, never argv.
    # --pwfile refuses a truly empty file, hence the trailing newline.
    eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"' "$@"'
}

setup_hba_conf() {
    if [ "$1" = postgres ]; then shift; fi
    local auth
    auth=$(postgres -C password_encryption "$@")
    : "${POSTGRES_HOST_AUTH_METHOD:=$auth}"
    {
        printf '\n'
        if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
            printf '# warning trust is enabled for all connections\n'
        fi
        printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
    } >>"$PGDATA/pg_hba.conf"
}

# psql as the superuser over the socket (PGHOST cleared: never a TCP host from the environment).
process_sql() {
    local runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [ -n "$POSTGRES_DB" ]; then
        runner+=(--dbname "$POSTGRES_DB")
    fi
    PGHOST='' PGHOSTADDR='' "${runner[@]}" "$@"
}

temp_server_start() {
    if [ "$1" = postgres ]; then shift; fi
    # The CMD's options (e.g. -c config_file=...), but no TCP listener.
    set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
    NOTIFY_SOCKET='' PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

temp_server_stop() {
    PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
}

setup_db() {
    # Connects to the "postgres" database (POSTGRES_DB cleared for process_sql) to create POSTGRES_DB.
    local db=$POSTGRES_DB exists
    exists=$(POSTGRES_DB='' process_sql --dbname postgres --set db="$db" --tuples-only <<<"SELECT 1 FROM pg_database WHERE datname = :'db' ;")
    if [ -z "$exists" ]; then
        POSTGRES_DB='' process_sql --dbname postgres --set db="$db" <<<'CREATE DATABASE :"db" ;'
        printf '\n'
    fi
}

process_init_files() {
    local f
    printf '\n'
    for f; do
        case $f in
        *.sh)
            if [ -x "$f" ]; then
                printf '%s: running %s\n' "$0" "$f"
                "$f"
            else
                printf '%s: sourcing %s\n' "$0" "$f"
                # shellcheck disable=SC1090 # the operator's init script
                . "$f"
            fi
            ;;
        *.sql)
            printf '%s: running %s\n' "$0" "$f"
            process_sql -f "$f"
            printf '\n'
            ;;
        *.sql.gz)
            printf '%s: running %s\n' "$0" "$f"
            gunzip -c "$f" | process_sql
            printf '\n'
            ;;
        *) printf '%s: ignoring %s\n' "$0" "$f" ;;
        esac
        printf '\n'
    done
}

main() {
    # A first argument that looks like a flag means "postgres with these options".
    if [ "${1:0:1}" = - ]; then
        set -- postgres "$@"
    fi
    if [ "$1" = postgres ] && ! want_help "$@"; then
        setup_env
        create_db_directories
        if [ "$(id -u)" = 0 ]; then
            # Started as root (the stack never does: it runs --user 999:999): drop to postgres.
            exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
        fi
        if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
            verify_minimum_env
            # Fails early (before a half-initialised cluster) when the init dir is unreadable.
            ls /docker-entrypoint-initdb.d/ >/dev/null
            init_database_dir
            setup_hba_conf "$@"
            # For psql in the init scripts when local connections need a password (Citadel's
            # pg_hba.conf: `local all all scram-sha-256`): a libpq passfile (0600, private tmpfs),
            # where the official image exports PGPASSWORD into every child's environment.
            pgpass=$(mktemp)
            pw=${POSTGRES_PASSWORD//\\/\\\\}
            printf '*:*:*:*:%s\n' "${pw//:/\\:}" >"$pgpass"
            unset pw
            export PGPASSFILE=$pgpass
            temp_server_start "$@"
            setup_db
            shopt -s nullglob
            process_init_files /docker-entrypoint-initdb.d/*
            shopt -u nullglob
            temp_server_stop
            rm -f "$pgpass"
            unset PGPASSFILE
            printf '\nPostgreSQL init process complete; ready for start up.\n\n'
        else
            printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
        fi
        # The server needs neither the superuser's password nor its file name.
        unset POSTGRES_PASSWORD
    fi
    exec "$@"
}

main "$@"
