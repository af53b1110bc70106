#!/bin/sh
# The part of the official image's entrypoint that perflab relies on.
set -eu
case "${1:-postgres}" in -*) set -- postgres "$@" ;; esac
if [ "${1:-postgres}" != postgres ]; then exec "$@"; fi
[ $# -gt 0 ] && shift
user=${POSTGRES_USER:-postgres}
auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
if [ ! -s "$PGDATA/PG_VERSION" ] && [ "$user" = postgres ] && [ -s /var/lib/postgresql/template/PG_VERSION ] \
    && { [ "$auth" = trust ] || [ -n "${POSTGRES_PASSWORD:-}" ]; }; then
    # What the image's initdb made at build time: copy it (faster than initdb at each start).
    cp -a /var/lib/postgresql/template/. "$PGDATA/"
    if [ "$auth" != trust ]; then
        # The template trusts every client: set the password (single-user mode, no client can
        # reach it yet) and require it of every TCP client.
        pw=$(printf '%s' "$POSTGRES_PASSWORD" | sed "s/'/''/g")
        printf "ALTER ROLE postgres PASSWORD '%s';\n" "$pw" | postgres --single -D "$PGDATA" postgres >/dev/null
        sed -i '/^host[[:space:]]/d' "$PGDATA/pg_hba.conf"
        echo "host all all all $auth" >>"$PGDATA/pg_hba.conf"
    fi
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
        pwfile=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    elif [ "$auth" != trust ]; then
        echo "set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust" >&2
        exit 1
    fi
    initdb -D "$PGDATA" -U "$user" --auth-local=trust --auth-host="$auth" \
        ${pwfile:+--pwfile="$pwfile"} >/dev/null
    [ -n "$pwfile" ] && rm -f "$pwfile"
    echo "host all all all $auth" >>"$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
fi
exec postgres -D "$PGDATA" "$@"
