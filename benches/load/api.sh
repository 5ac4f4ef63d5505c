#!/usr/bin/env bash
# HTTP load on the JSON API: a release server on a fresh data directory, a company with a token
# and 1000 customers, then wrk against authenticated reads and the health endpoint.
#
#   benches/load/api.sh                      # SQLite (the embedded default)
#   MASTERZ_DATABASE_URL=postgres://… benches/load/api.sh
#
# Environment: DURATION (default 20s), CONNECTIONS (default 32), THREADS (default 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
BIN=$PWD/target/release/masterz
WORK=$(mktemp -d /tmp/masterz-load.XXXXXX)
export MASTERZ_DATA_DIR=$WORK/data
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export MASTERZ_HTTP_LISTEN=127.0.0.1:$PORT
DURATION=${DURATION:-20s}; CONNECTIONS=${CONNECTIONS:-32}; THREADS=${THREADS:-2}

"$BIN" admin create-company --name Load --slug load >/dev/null
"$BIN" admin create-user --company load --email load@load.example.com --password load-password --role admin >/dev/null
TOKEN=$("$BIN" admin create-token --company load --email load@load.example.com)
"$BIN" serve >"$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

python3 - "$PORT" "$TOKEN" <<'PY'
import json, sys, urllib.request
port, token = sys.argv[1], sys.argv[2]
for i in range(1000):
    body = json.dumps({"display_name": f"Customer {i}", "identities": [{"kind": "phone", "external_id": f"+4915100{i:06d}"}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/customers", data=body, method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"})
    urllib.request.urlopen(req).read()
PY

BACKEND=sqlite; [ -n "${MASTERZ_DATABASE_URL:-}" ] && BACKEND=postgres
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, backend $BACKEND, wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
for path in /healthz "/api/v1/customers/500" "/api/v1/customers?limit=50" "/api/v1/customers?q=Customer%2099"; do
    echo "## GET $path"
    if [ "$path" = /healthz ]; then
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT$path" | grep -E 'Requests/sec|50%|99%|Non-2xx'
    else
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$path" | grep -E 'Requests/sec|50%|99%|Non-2xx'
    fi
done
