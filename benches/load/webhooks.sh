#!/usr/bin/env bash
# Signed Meta webhook ingestion under load (benches/load/webhooks/): SQLite, then PostgreSQL
# when a URL is given. Each connection count gets a fresh release server and database; the server
# is SIGKILLed at the end of the load and every event answered 200 is looked up in the database.
#
#   benches/load/webhooks.sh                                   # SQLite only
#   benches/load/webhooks.sh postgres://postgres@127.0.0.1:55432/postgres
#   MASTERZ_BENCH_POSTGRES_URL=postgres://… benches/load/webhooks.sh
#
# Environment (passed through): MASTERZ_LOAD_CONNS (default "16 64 256" here), MASTERZ_LOAD_SECS
# (10), MASTERZ_LOAD_WARMUP_SECS (2), MASTERZ_LOAD_DRAIN_SECS (5), MASTERZ_LOAD_UNROUTED=1 (the
# processor has nothing to do), MASTERZ_LOAD_KEEP=1; CARGO_TARGET_DIR as usual.
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_URL=${1:-${MASTERZ_BENCH_POSTGRES_URL:-}}
export MASTERZ_LOAD_CONNS=${MASTERZ_LOAD_CONNS:-16 64 256}
unset MASTERZ_BENCH_POSTGRES_URL

# The MASTERZ_LOAD_* settings in force, for the commands printed below.
SETTINGS=$(env | grep '^MASTERZ_LOAD_' | sort | sed 's/^\([^=]*\)=\(.*\)$/\1="\2"/' | tr '\n' ' ')
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(git rev-parse --short HEAD 2>/dev/null || echo '?'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "## SQLite"
echo "\$ ${SETTINGS}cargo bench --bench webhooks"
cargo bench --quiet --bench webhooks
if [ -n "$PG_URL" ]; then
    echo "## PostgreSQL"
    echo "\$ MASTERZ_BENCH_POSTGRES_URL=$PG_URL ${SETTINGS}cargo bench --bench webhooks"
    MASTERZ_BENCH_POSTGRES_URL=$PG_URL cargo bench --quiet --bench webhooks
fi
