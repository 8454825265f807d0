#!/bin/bash
# Containerfile.pg's entrypoint: what docker.io/library/postgres does with
# POSTGRES_USER, POSTGRES_DB and POSTGRES_PASSWORD_FILE (scram from any host)
set -e
B=/usr/lib/postgresql/15/bin
D=/var/lib/postgresql/data
mkdir -p $D /var/run/postgresql; chown postgres: $D /var/run/postgresql; chmod 700 $D
if [ ! -s $D/PG_VERSION ]; then
  head -n1 "$POSTGRES_PASSWORD_FILE" > /tmp/pw; chown postgres /tmp/pw
  runuser -u postgres -- $B/initdb -D $D -U "$POSTGRES_USER" --pwfile=/tmp/pw -A scram-sha-256 --auth-local=trust >/dev/null
  rm -f /tmp/pw
  echo "host all all 0.0.0.0/0 scram-sha-256" >> $D/pg_hba.conf
  runuser -u postgres -- $B/pg_ctl -D $D -w -s -o "-c listen_addresses=''" start
  runuser -u postgres -- psql -X -q -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
  runuser -u postgres -- $B/pg_ctl -D $D -w -s stop
fi
exec runuser -u postgres -- $B/postgres -D $D -c listen_addresses='*'
