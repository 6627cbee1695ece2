#!/usr/bin/env bash
# compose's streaming replica: on first start, copy the primary with pg_basebackup -R -X stream
# through a physical slot (same image, so the same major version), then run it as a hot standby.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h postgres -U harness_replicator -d postgres -q; do sleep 1; done
  PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup -h postgres -U harness_replicator -D "$PGDATA" \
    -R -X stream -C -S compose_replica --checkpoint=fast -w
  chmod 0700 "$PGDATA"
fi
exec postgres -c hot_standby=on -c hot_standby_feedback=on -c max_connections=200 -c shared_buffers=256MB \
  -c max_prepared_transactions=64  # at least the primary's (compose.yaml), or recovery aborts
