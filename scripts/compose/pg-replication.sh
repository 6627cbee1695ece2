#!/usr/bin/env bash
# compose's primary, first start only (docker-entrypoint-initdb.d): the role the replica streams as
# (scram, password from REPLICATION_PASSWORD) and a `host replication` line for that role alone. In
# compose the replica is another container, so the line cannot say loopback; the server is reached only
# on compose's network and on 127.0.0.1, where compose publishes it (PostgreSQL 15 has no samenet).
set -euo pipefail
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \
  -v password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE harness_replicator WITH REPLICATION LOGIN PASSWORD :'password';
SQL
echo "host replication harness_replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
