#!/bin/sh
# Entrypoint baked into the locally built Postgres image (see
# scripts/postgres-image.sh). It mirrors what the tests rely on from the
# official image: a trust-authenticated server on 0.0.0.0:5432, user and
# database `postgres`, extra `-c name=value` arguments passed through, and a
# data directory that survives a container stop/start.
set -eu
PGDATA=/var/lib/postgresql/data
BIN=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
[ "${1:-}" = "postgres" ] && shift

mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  setpriv --reuid=postgres --regid=postgres --init-groups "$BIN/initdb" -D "$PGDATA" -U postgres \
    --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  echo "host all all all trust" >>"$PGDATA/pg_hba.conf"
fi

# `docker stop` sends SIGTERM, which Postgres treats as a "smart" shutdown
# that waits for every client to leave; turn it into a fast shutdown (SIGINT)
# so a stop/start cycle takes a second, as with the official image.
setpriv --reuid=postgres --regid=postgres --init-groups "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' "$@" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null' TERM INT
while kill -0 "$pid" 2>/dev/null; do wait "$pid" || true; done
