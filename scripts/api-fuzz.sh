#!/usr/bin/env bash
# Property-based API testing with schemathesis against the OpenAPI document: a server on a fresh
# data directory, an admin token, then generated requests for every operation. Fails on a 5xx, a
# status code the document does not list, a wrong content type, or a response that violates its
# schema. (Semantic 422s such as "no such customer" are by design and not checked here.)
#
#   scripts/api-fuzz.sh [EXAMPLES_PER_OPERATION]     # default 40; SEED fixes the generator
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES=${1:-40}
SEED=${SEED:-20261125}
if ! command -v schemathesis >/dev/null 2>&1; then
    # Debian's own Python refuses pip installs outside a venv (PEP 668); the image's pyenv does not.
    python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5' 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'schemathesis>=4,<5' 2>/dev/null
    hash -r
fi
ST=$(command -v schemathesis || echo "python3 -m schemathesis.cli")
# The binary the test suite built (scripts/test.sh passes it): `cargo build --bin masterz` would
# resolve features without the dev-dependencies and compile a second copy of much of the tree.
BIN=${MASTERZ_BIN:-}
if [ -z "$BIN" ]; then
    cargo test --quiet --workspace --locked --no-run
    BIN=${CARGO_TARGET_DIR:-$PWD/target}/debug/masterz
fi
WORK=$(mktemp -d /tmp/masterz-apifuzz.XXXXXX)
export MASTERZ_DATA_DIR=$WORK/data MASTERZ_LOGIN_MAX_FAILURES_PER_IP=1000000 MASTERZ_LOGIN_MAX_FAILURES_PER_ACCOUNT=1000000
unset MASTERZ_DATABASE_URL
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MASTERZ_HTTP_LISTEN=127.0.0.1:$PORT "$BIN" serve >"$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 200); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
TOKEN=$("$BIN" admin create-token --company default --email admin@masterz.local)
# Revoking its own token would end the run early; everything else is exercised.
$ST run "http://127.0.0.1:$PORT/api/openapi.json" \
    -H "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path-regex 'api-tokens/\{id\}' \
    -n "$EXAMPLES" --seed "$SEED" --workers 2 --no-color
if grep -q ' ERROR ' "$WORK/serve.log"; then
    echo "server logged errors:"; grep ' ERROR ' "$WORK/serve.log" | head -20
    exit 1
fi
