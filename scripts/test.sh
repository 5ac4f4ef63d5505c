#!/usr/bin/env bash
# Runs the whole masterz test suite on a fresh machine: installs what the tests need when it is
# missing (PostgreSQL, SIPp, baresip, sox, Chromium), starts a throw-away PostgreSQL cluster on a
# free port, runs formatting, lints and every test against SQLite and PostgreSQL, and stops the
# cluster again.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

apt_install() {
    log "installing $*"
    if [ "$(id -u)" -ne 0 ]; then
        echo "need root (or sudo) to apt-get install $*" >&2
        exit 1
    fi
    if [ -z "${APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- tools the tests drive ---------------------------------------------------------------------
command -v openssl >/dev/null 2>&1 || apt_install openssl    # a throw-away TLS certificate
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-pip  # free ports; schemathesis
command -v curl >/dev/null 2>&1 || apt_install curl          # waiting for a server to answer
command -v sipp >/dev/null 2>&1 || apt_install sip-tester    # SIP interop peer (tests/peers, tests/sipp)
command -v baresip >/dev/null 2>&1 || apt_install baresip baresip-core  # softphone peer, with TLS
command -v sox >/dev/null 2>&1 || apt_install sox          # `sox --i` reads the recordings (tests/calls/crash.rs)
command -v chromium >/dev/null 2>&1 || apt_install chromium fonts-liberation  # the agent web app in a browser (tests/calls/browser.rs)
command -v chromedriver >/dev/null 2>&1 || apt_install chromium-driver  # its WebDriver (tests/calls/webdriver.rs)

# --- PostgreSQL -------------------------------------------------------------------------------
pg_bin() {
    local dir
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return
    fi
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
    done
    return 1
}
if ! PG_BIN=$(pg_bin); then
    apt_install postgresql
    PG_BIN=$(pg_bin)
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

PG_DIR=$(mktemp -d /tmp/masterz-pg.XXXXXX)
PG_PORT=$(free_port)
as_pg() {
    # PostgreSQL refuses to run as root: run its tools as the postgres user.
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PG_DIR" --shell /bin/sh postgres
        chown -R postgres "$PG_DIR"
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}
stop_pg() {
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}
trap stop_pg EXIT

log "starting a throw-away PostgreSQL on 127.0.0.1:$PG_PORT ($PG_BIN)"
as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
export MASTERZ_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"

# --- Rust -------------------------------------------------------------------------------------
# One build from scratch: incremental state would only add gigabytes to the target directory.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
# Informational only: on a fresh clone the target directory does not exist yet, so ask about the
# directory that will hold it, and never let this line stop the run.
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
disk_of=$target_dir
[ -d "$disk_of" ] || disk_of=$(dirname "$disk_of")
[ -d "$disk_of" ] || disk_of=$PWD
df -h "$disk_of" 2>/dev/null | awk 'NR == 2 {print "disk: " $4 " free of " $2}' || true

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test (SQLite and PostgreSQL)"
set +e
cargo test --workspace --locked 2>&1 | tee "${TMPDIR:-/tmp}/masterz-test.log"
status=${PIPESTATUS[0]}
set -e

log "API fuzzing: schemathesis against the OpenAPI document (no 5xx, documented statuses and schemas)"
if ! MASTERZ_BIN="$target_dir/debug/masterz" bash scripts/api-fuzz.sh 40; then
    echo "API fuzzing failed"
    status=1
fi

passed=$(grep -Eo 'test result: .* ([0-9]+) passed' "${TMPDIR:-/tmp}/masterz-test.log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}' || true)
failed=$(grep -Eo '[0-9]+ failed' "${TMPDIR:-/tmp}/masterz-test.log" | awk '{s+=$1} END {print s+0}' || true)
echo
du -sh "$target_dir" 2>/dev/null | awk '{print "target directory: " $1}' || true
echo "$passed passed, $failed failed"
exit "$status"
