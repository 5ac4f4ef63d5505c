#!/usr/bin/env bash
# Call load on masterz with SIPp: a release server on a fresh data directory, a company with an
# agent (SIP credentials) and a trunk for a DID; SIPp registers as the agent and answers (UAS),
# another SIPp calls the DID from the trunk's address (UAC). Everything on 127.0.0.1.
#
#   benches/load/calls.sh rate            # (a) highest call rate with zero failed calls
#   benches/load/calls.sh rtp             # (b) concurrent calls relaying PCMU RTP (needs root:
#                                         #     SIPp plays pcaps through a raw socket)
#   benches/load/calls.sh soak            # RSS over a long run at a fixed call rate
#   benches/load/calls.sh MODE --baseline # the same SIPp UAC straight at the SIPp UAS, no masterz:
#                                         # what SIPp itself manages on this machine
#
# Environment (defaults in brackets):
#   all:  SIP_PORT [15060] masterz's SIP (UDP); UAS_PORT [15062], UAC_PORT [15064] SIPp's SIP;
#         UAS_MEDIA [16000], UAC_MEDIA [16100] SIPp's media ports; MASTERZ_RTP_PORTS
#         [20000-40000]; DID [+15550000001]; CALLER [+4915112345678]; KEEP [0] keep the work
#         directory (it is always kept when something failed); NO_BUILD [0] skip cargo build.
#   rate: RATES ["100 250 500 1000 2000 4000"] calls/s, STEP_SECS [20] seconds per step,
#         HOLD_MS [1000] time in the call before the BYE, KEEP_GOING [0] run the steps after a
#         failing one too, COOLDOWN [3] seconds between steps.
#   rtp:  CONCURRENT ["100 250 500 1000"] calls held at once, RAMP_CPS [100] set-up rate,
#         SETTLE [3] seconds after the last set-up before measuring, WINDOW [20] measured seconds
#         with every call up, PCAP [generated: a 1 kHz PCMU tone as long as the longest hold].
#   soak: RATE [100] calls/s, DURATION [600] seconds, HOLD_MS [1000], SAMPLE_SECS [10] between
#         RSS samples, MEDIA [0] 1: calls play the pcap as in rtp mode (needs root).
#   all:  RECORDING [0] 1: the company records every call (`masterz admin set-recording`); the
#         results then carry the recorder's frames written and dropped over the window.
#
# Output: one "RESULT {json}" line per step (also in $WORK/results.jsonl), then a table, then the
# commands that reproduce each SIPp run. Exit status: 0 when the run completed (failing steps are
# results, not errors), 1 when the set-up failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/benches/load
SCEN=$HERE/sipp

MODE=${1:-rate}
BASELINE=${BASELINE:-0}
[ "${2:-}" = --baseline ] && BASELINE=1
case $MODE in rate | rtp | soak) ;; *) echo "usage: $0 rate|rtp|soak [--baseline]" >&2; exit 2 ;; esac
command -v sipp >/dev/null || { echo "sipp is not installed" >&2; exit 1; }

SIP_PORT=${SIP_PORT:-15060}
UAS_PORT=${UAS_PORT:-15062}
UAC_PORT=${UAC_PORT:-15064}
UAS_MEDIA=${UAS_MEDIA:-16000}
UAC_MEDIA=${UAC_MEDIA:-16100}
DID=${DID:-+15550000001}
CALLER=${CALLER:-+4915112345678}
KEEP=${KEEP:-0}
HZ=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/masterz-calls.XXXXXX)
FAILED=0
PIDS=()
cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [ "$KEEP" = 1 ] || [ "$FAILED" != 0 ] || [ "$rc" != 0 ]; then
        echo "# logs and SIPp traces kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Python helpers (one file, written into the work directory): /proc/net/udp drops, SIPp stat
# CSVs, /metrics deltas and the summary table.
PY=$WORK/helper.py
cat >"$PY" <<'PYEOF'
import csv, json, os, re, sys

def csv_last(path):
    rows = list(csv.reader(open(path), delimiter=";"))
    return dict(zip(rows[0], rows[-1])) if len(rows) > 1 else {}

def prom(path):
    out = {}
    for line in open(path):
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rstrip().rsplit(" ", 1)
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "drops":  # drops LO HI: kernel drops summed over UDP sockets bound to ports LO..HI
    lo, hi, total = int(args[0]), int(args[1]), 0
    for line in open("/proc/net/udp").readlines()[1:]:
        cols = line.split()
        if lo <= int(cols[1].split(":")[1], 16) <= hi:
            total += int(cols[-1])
    print(total)
elif cmd == "csvlast":  # csvlast FILE FIELD: FIELD of the last row of a SIPp stat CSV, or 0
    try:
        print(csv_last(args[0]).get(args[1]) or 0)
    except (OSError, IndexError):
        print(0)
elif cmd == "delta":  # delta BEFORE AFTER: masterz's call and RTP counters over a window
    a, b = prom(args[0]), prom(args[1])
    keep = re.compile(os.environ.get("MZ_METRICS_RE", r"^masterz_(rtp|media|call|recording)"))
    # Packets relayed = packets masterz sent to phones (each was accepted from the other leg).
    relayed = re.compile(os.environ.get("MZ_RELAYED_RE", r'^masterz_media_rtp_packets_total\{direction="out"\}'))
    accepted = re.compile(r'^masterz_media_rtp_packets_total\{direction="in"\}')
    dropped = re.compile(r"^masterz_media_rtp_dropped_total")
    d = {k: round(b[k] - a.get(k, 0), 3) for k in b if keep.search(k) and b[k] != a.get(k, 0)}
    total = lambda r: sum(v for k, v in d.items() if r.search(k))
    print(json.dumps({"relayed": total(relayed), "accepted": total(accepted), "dropped": total(dropped), "all": d}))
elif cmd == "echo":  # echo SCREENFILE T0 T1: "<packets> <seconds>" between the screens in [T0, T1]
    t0, t1 = float(args[1]), float(args[2])
    text = open(args[0], "rb").read().decode("latin-1")
    samples = []
    for chunk in text.split("Scenario Screen")[1:]:
        n = re.search(r"^\s*(\d+) Total echo RTP pckts 1st stream", chunk, re.M)
        t = re.search(r"Current Time\s*\|.*?\s(\d{9,}\.\d+)", chunk)
        if n and t and t0 <= float(t.group(1)) <= t1:
            samples.append((float(t.group(1)), int(n.group(1))))
    if len(samples) < 2:
        print("-1 0")
    else:
        print(samples[-1][1] - samples[0][1], round(samples[-1][0] - samples[0][0], 3))
elif cmd == "summary":  # summary RESULTS.jsonl: a table
    rows = [json.loads(l) for l in open(args[0]) if l.strip()]
    if not rows:
        sys.exit()
    mode = rows[0]["mode"]
    cols = {
        "rate": [("target_cps", "target cps"), ("offered_cps", "offered cps"), ("calls", "calls"),
                 ("failed", "failed"), ("uas_failed", "UAS failed"), ("rt_invite_200_ms", "INVITE->200 ms"),
                 ("mz_cpu_ms_per_call", "masterz CPU ms/call"), ("mz_rss_mb", "masterz RSS MB"),
                 ("uac_cpu_ms_per_call", "UAC ms/call"), ("uas_cpu_ms_per_call", "UAS ms/call"),
                 ("host_busy_pct", "host busy %"), ("pass", "pass")],
        "rtp": [("concurrent", "calls"), ("failed", "failed"), ("mz_pps", "relayed pkt/s"),
                ("mz_cpu_pct", "masterz CPU %"), ("mz_cpu_ms_per_1000_pkts", "CPU ms/1000 pkts"),
                ("loss_caller_to_agent_pct", "loss caller->agent %"), ("mz_dropped_pkts", "masterz dropped"), ("mz_socket_drops", "masterz sock drops"),
                ("agent_socket_drops", "agent sock drops"), ("mz_rss_mb", "RSS MB"),
                ("mz_rss_per_call_kb", "RSS/call kB"), ("uac_cpu_pct", "UAC CPU %"), ("uas_cpu_pct", "UAS CPU %"),
                ("host_busy_pct", "host busy %"), ("pass", "pass")],
        "soak": [("target_cps", "cps"), ("duration_s", "s"), ("calls", "calls"), ("failed", "failed"),
                 ("rss_start_mb", "RSS start"), ("rss_q1_mb", "RSS 1/4"), ("rss_mid_mb", "RSS 1/2"),
                 ("rss_end_mb", "RSS end"), ("rss_peak_mb", "RSS peak"),
                 ("rss_slope_2nd_half_kb_per_min", "kB/min (2nd half)")],
    }[mode]
    table = [[h for _, h in cols]] + [[str(r.get(k, "")) for k, _ in cols] for r in rows]
    w = [max(len(t[i]) for t in table) for i in range(len(cols))]
    for n, t in enumerate(table):
        print("| " + " | ".join(c.rjust(w[i]) for i, c in enumerate(t)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (x + 2) for x in w) + "|")
PYEOF

log() { echo "# $*" >&2; }
# The command lines of the SIPp runs, printed at the end.
repro() { printf '%s\n' "$*" >>"$WORK/commands.txt"; }

# --- /proc readings ---------------------------------------------------------------------
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }  # utime + stime
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
host_ticks() { awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; }  # total idle
# Kernel drops on every UDP socket whose local port is in [$1, $2] (/proc/net/udp, last column).
udp_drops() { python3 "$PY" drops "$1" "$2"; }
# The host's UDP receive-buffer errors (/proc/net/snmp): datagrams dropped for a full socket.
udp_rcvbuf_errors() { awk '/^Udp:/ { if (h) { print $6; exit } h = 1 }' /proc/net/snmp; }

# --- masterz ----------------------------------------------------------------------------
MZ=""
HTTP=""
start_masterz() {
    if [ "${NO_BUILD:-0}" != 1 ]; then
        log "cargo build --release"
        cargo build --release --quiet
    fi
    local bin=$ROOT/target/release/masterz
    export MASTERZ_DATA_DIR=$WORK/data
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    HTTP=http://127.0.0.1:$port
    export MASTERZ_HTTP_LISTEN=127.0.0.1:$port
    export MASTERZ_SIP_LISTEN=127.0.0.1:$SIP_PORT
    export MASTERZ_RTP_PORTS=${MASTERZ_RTP_PORTS:-20000-40000}
    export MASTERZ_LOG_LEVEL=${MASTERZ_LOG_LEVEL:-warn}
    export MASTERZ_SIP_TRUNK_POLL_SECS=1
    export MASTERZ_INITIAL_ADMIN_PASSWORD=load-admin-password
    "$bin" admin create-company --name Load --slug load >/dev/null
    "$bin" admin create-user --company load --email agent@load.example.com --password agent-password \
        --role agent --sip-username agent --sip-password agent-sip-secret >/dev/null
    "$bin" admin create-trunk --company load --name "Load trunk" --host "127.0.0.1:$UAC_PORT" \
        --source 127.0.0.1/32 --did "$DID" >/dev/null
    [ "${RECORDING:-0}" = 1 ] && "$bin" admin set-recording --company load on >/dev/null
    # Many RTP sockets: two per leg, two legs per call.
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    "$bin" serve >"$WORK/masterz.log" 2>&1 &
    MZ=$!
    PIDS+=("$MZ")
    for _ in $(seq 100); do curl -fs "$HTTP/healthz" >/dev/null && break; sleep 0.1; done
    curl -fs "$HTTP/healthz" >/dev/null || { log "masterz did not start:"; tail -20 "$WORK/masterz.log" >&2; exit 1; }
    for _ in $(seq 50); do
        ss -Hlun "sport = :$SIP_PORT" | grep -q . && break; sleep 0.1
    done
    log "masterz $MZ: HTTP $HTTP, SIP 127.0.0.1:$SIP_PORT, RTP $MASTERZ_RTP_PORTS, log level $MASTERZ_LOG_LEVEL"
}
metrics() { curl -fs "$HTTP/metrics" >"$1" || : >"$1"; }

# --- SIPp -------------------------------------------------------------------------------
UAS=""
SIPP_COMMON=(-i 127.0.0.1 -mi 127.0.0.1 -t u1 -nostdin -buff_size 4194304)
start_uas() {  # $1: 1 for -rtp_echo
    local target
    if [ "$BASELINE" != 1 ]; then
        # Register the agent from the port the UAS will answer on (no unregister at the end).
        local reg=(sipp -sf "$SCEN/agent_register.xml" "${SIPP_COMMON[@]}" -p "$UAS_PORT"
            -s agent -au agent -ap agent-sip-secret -key domain 127.0.0.1 -key expires 3600
            -m 1 -timeout 15s -timeout_error -trace_err -error_file "$WORK/register_errors.log"
            "127.0.0.1:$SIP_PORT")
        repro "${reg[*]}"
        if ! "${reg[@]}" >"$WORK/register.out" 2>&1; then
            FAILED=1
            log "the agent did not register:"; tail -20 "$WORK/register_errors.log" "$WORK/register.out" >&2 || true
            exit 1
        fi
    fi
    local uas=(sipp -sf "$SCEN/agent_uas.xml" "${SIPP_COMMON[@]}" -p "$UAS_PORT" -mp "$UAS_MEDIA" -s agent
        -trace_stat -stf "$WORK/uas_stat.csv" -fd 1 -trace_screen -screen_file "$WORK/uas_screen.log"
        -trace_err -error_file "$WORK/uas_errors.log")
    [ "$1" = 1 ] && uas+=(-rtp_echo)
    repro "${uas[*]}"
    "${uas[@]}" >"$WORK/uas.out" 2>&1 &
    UAS=$!
    PIDS+=("$UAS")
    for _ in $(seq 50); do ss -Hlun "sport = :$UAS_PORT" | grep -q . && break; sleep 0.1; done
}
# Where the UAC sends its INVITEs.
target() { if [ "$BASELINE" = 1 ]; then echo "127.0.0.1:$UAS_PORT"; else echo "127.0.0.1:$SIP_PORT"; fi; }

# The last row of a SIPp -trace_stat CSV as "name=value" lines (python reads them).
# The RTP packets the UAS has echoed are on its screen, which SIPp writes to the screen file on
# SIGUSR2, from its main loop and seconds late when it is busy; each screen carries its own time
# ("Current Time", epoch seconds). So a sampler asks for a screen every 2 s while a step runs,
# and the count over a window is taken from the first and last screens written inside it.
echo_sampler() {  # $1: the pid whose life bounds the sampling
    while kill -0 "$1" 2>/dev/null; do kill -USR2 "$UAS" 2>/dev/null || true; sleep 2; done
}

# --- results ----------------------------------------------------------------------------
# Appends one JSON result (python dict literal built from the key=value arguments).
result() {
    python3 - "$@" >>"$WORK/results.jsonl" <<'PY'
import json, sys
d = {}
for a in sys.argv[1:]:
    k, v = a.split("=", 1)
    try:
        v = int(v)
    except ValueError:
        try:
            v = round(float(v), 3)
        except ValueError:
            pass
    d[k] = v
print(json.dumps(d))
PY
    echo "RESULT $(tail -1 "$WORK/results.jsonl")"
}

# Reads a SIPp stat CSV: the final counters and the rate at which calls were created.
stat_summary() {  # $1: csv, $2: calls asked for
    python3 - "$1" "$2" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
if len(rows) < 2:
    print("ok=0 failed=-1 created=0 offered_cps=0 rt_ms=-1 fail_kinds=none"); sys.exit()
h = rows[0]
last = dict(zip(h, rows[-1]))
def ms(t):  # HH:MM:SS:uuuuuu
    p = t.split(":")
    return ((int(p[0]) * 60 + int(p[1])) * 60 + int(p[2])) * 1000 + int(p[3]) / 1000 if len(p) == 4 else -1
def secs(t):  # HH:MM:SS
    p = t.split(":")
    return (int(p[0]) * 60 + int(p[1])) * 60 + float(p[2])
created = int(last.get("OutgoingCall(C)") or last.get("TotalCallCreated") or 0)
# Calls/s actually offered: calls created over the time until the last one was created.
t_done = None
for r in rows[1:]:
    d = dict(zip(h, r))
    if int(d.get("OutgoingCall(C)") or 0) >= created:
        t_done = secs(d["ElapsedTime(C)"]); break
offered = created / t_done if t_done else 0
kinds = [k[:-3] + "=" + last[k] for k in h if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)" and last[k] not in ("0", "")]
print("ok=%s failed=%s created=%d offered_cps=%.1f rt_ms=%.2f fail_kinds=%s" % (
    last.get("SuccessfulCall(C)", 0), last.get("FailedCall(C)", 0), created, offered,
    ms(last.get("ResponseTime1(C)", "")), ",".join(kinds) or "none"))
PY
}
uas_failed() { python3 "$PY" csvlast "$WORK/uas_stat.csv" "FailedCall(C)"; }

# --- (a) call rate ----------------------------------------------------------------------
mode_rate() {
    local RATES=${RATES:-100 250 500 1000 2000 4000} STEP_SECS=${STEP_SECS:-20} HOLD_MS=${HOLD_MS:-1000}
    local best=0 r
    start_uas 0
    for r in $RATES; do
        local m=$((r * STEP_SECS)) tag=rate_$r
        local uac=(sipp -sf "$SCEN/trunk_uac.xml" "${SIPP_COMMON[@]}" -p "$UAC_PORT" -mp "$UAC_MEDIA"
            -s "$DID" -key caller "$CALLER" -r "$r" -m "$m" -d "$HOLD_MS"
            -timeout "$((STEP_SECS * 3 + 60))s" -timeout_error -recv_timeout 10s
            -trace_stat -stf "$WORK/$tag.csv" -fd 1 -trace_screen -screen_file "$WORK/$tag.screen"
            -trace_err -error_file "$WORK/$tag.errors.log" "$(target)")
        repro "${uac[*]}"
        local uas_failed0 mz0=0 mzr0=0 uas0 h0 rc=0
        uas_failed0=$(uas_failed)
        [ -n "$MZ" ] && { mz0=$(cpu_ticks "$MZ"); metrics "$WORK/$tag.metrics0"; }
        uas0=$(cpu_ticks "$UAS"); read -r h0 i0 < <(host_ticks)
        log "step $r calls/s: $m calls, ${STEP_SECS}s, hold ${HOLD_MS}ms"
        "${uac[@]}" >"$WORK/$tag.out" 2>&1 &
        local uacpid=$!
        PIDS+=("$uacpid")
        # CPU of the UAC is read while it runs (it is gone once waited for).
        local uacticks=0 t
        while kill -0 "$uacpid" 2>/dev/null; do
            t=$(cpu_ticks "$uacpid" 2>/dev/null || echo "$uacticks"); uacticks=${t:-$uacticks}
            sleep 0.5
        done
        wait "$uacpid" || rc=$?
        sleep 1.5  # the UAS writes its stat CSV every second
        local mz1=0 rss=0 uas1 h1 i1
        [ -n "$MZ" ] && { mz1=$(cpu_ticks "$MZ"); rss=$(rss_kb "$MZ"); metrics "$WORK/$tag.metrics1"; }
        uas1=$(cpu_ticks "$UAS"); read -r h1 i1 < <(host_ticks)
        local s; s=$(stat_summary "$WORK/$tag.csv" "$m")
        local ok failed created offered_cps rt_ms fail_kinds
        eval "$s"
        local uas_failed1; uas_failed1=$(uas_failed)
        local uas_fail=$((uas_failed1 - uas_failed0))
        local busy; busy=$(python3 -c "print(round(100 * (1 - ($i1 - $i0) / max(1, $h1 - $h0)), 1))")
        local mz_ms_call; mz_ms_call=$(python3 -c "print(round(($mz1 - $mz0) * 1000 / $HZ / max(1, $created), 4))")
        local uas_ms_call; uas_ms_call=$(python3 -c "print(round(($uas1 - $uas0) * 1000 / $HZ / max(1, $created), 4))")
        local uac_ms_call; uac_ms_call=$(python3 -c "print(round($uacticks * 1000 / $HZ / max(1, $created), 4))")
        local pass=1
        { [ "$rc" != 0 ] || [ "$failed" != 0 ] || [ "$uas_fail" != 0 ] || [ "$ok" != "$m" ]; } && pass=0
        [ "$pass" = 0 ] && FAILED=1
        result mode=rate baseline="$BASELINE" target_cps="$r" offered_cps="$offered_cps" calls="$m" \
            ok="$ok" failed="$failed" uas_failed="$uas_fail" sipp_rc="$rc" fail_kinds="$fail_kinds" \
            rt_invite_200_ms="$rt_ms" hold_ms="$HOLD_MS" mz_cpu_ms_per_call="$mz_ms_call" mz_rss_mb="$(python3 -c "print(round($rss/1024, 1))")" \
            uac_cpu_ms_per_call="$uac_ms_call" uas_cpu_ms_per_call="$uas_ms_call" host_busy_pct="$busy" pass="$pass"
        if [ "$pass" = 1 ]; then
            best=$r
        elif [ "${KEEP_GOING:-0}" != 1 ]; then
            log "step $r calls/s failed ($failed failed, UAS $uas_fail, kinds $fail_kinds, sipp exit $rc): stopping"
            break
        fi
        sleep "${COOLDOWN:-3}"
    done
    echo "# highest rate with zero failed calls: $best calls/s (of the steps: $RATES)"
}

# --- (b) concurrent calls with RTP --------------------------------------------------------
make_pcap() {  # $1: seconds
    local secs=$1
    if [ -n "${PCAP:-}" ]; then echo "$PCAP"; return; fi
    python3 - "$WORK" "$secs" "$ROOT/tests/fixtures/media" <<'PY'
import sys
sys.path.insert(0, sys.argv[3])
import make_media  # the fixtures' generator (tests/fixtures/media/make_media.py)
make_media.HERE = sys.argv[1]
make_media.tone_pcap("tone.pcap", 1000, int(sys.argv[2]))
PY
    echo "$WORK/tone.pcap"
}

mode_rtp() {
    local CONCURRENT=${CONCURRENT:-100 250 500 1000} RAMP_CPS=${RAMP_CPS:-100} SETTLE=${SETTLE:-3} WINDOW=${WINDOW:-20}
    local maxc=0 c
    for c in $CONCURRENT; do [ "$c" -gt "$maxc" ] && maxc=$c; done
    local pcap; pcap=$(make_pcap "$((maxc / RAMP_CPS + SETTLE + WINDOW + 15))")
    log "pcap $pcap"
    start_uas 1
    for c in $CONCURRENT; do
        local ramp=$(((c + RAMP_CPS - 1) / RAMP_CPS))
        local hold=$(((ramp + SETTLE + WINDOW + 3) * 1000)) tag=rtp_$c
        local uac=(sipp -sf "$SCEN/trunk_uac_rtp.xml" "${SIPP_COMMON[@]}" -p "$UAC_PORT" -mp "$UAC_MEDIA"
            -s "$DID" -key caller "$CALLER" -key pcap "$pcap" -r "$RAMP_CPS" -m "$c" -l "$c" -d "$hold"
            -timeout "$((hold / 1000 + ramp + 60))s" -timeout_error -recv_timeout 10s
            -trace_stat -stf "$WORK/$tag.csv" -fd 1 -trace_screen -screen_file "$WORK/$tag.screen"
            -trace_err -error_file "$WORK/$tag.errors.log" "$(target)")
        repro "${uac[*]}"
        local rss0=0
        [ -n "$MZ" ] && rss0=$(rss_kb "$MZ")
        local uas_failed0; uas_failed0=$(uas_failed)
        log "step $c concurrent calls: set up at $RAMP_CPS/s, each held $((hold / 1000))s, measured over ${WINDOW}s"
        "${uac[@]}" >"$WORK/$tag.out" 2>&1 &
        local uacpid=$! rc=0
        PIDS+=("$uacpid")
        echo_sampler "$uacpid" &
        PIDS+=("$!")
        # Until every call is set up (or the UAC gave up).
        local up=0
        for _ in $(seq $((ramp * 4 + 40))); do
            sleep 0.5
            kill -0 "$uacpid" 2>/dev/null || break
            up=$(python3 "$PY" csvlast "$WORK/$tag.csv" "OutgoingCall(C)")
            [ "$up" -ge "$c" ] && break
        done
        sleep "$SETTLE"
        # Window start.
        local mz0=0 uac0 uas0 h0 i0 w0 mzd0=0 uasd0 uacd0 rb0 cur0
        [ -n "$MZ" ] && { mz0=$(cpu_ticks "$MZ"); metrics "$WORK/$tag.metrics0"; mzd0=$(udp_drops ${MASTERZ_RTP_PORTS/-/ }); }
        uac0=$(cpu_ticks "$uacpid" 2>/dev/null || echo 0); uas0=$(cpu_ticks "$UAS"); read -r h0 i0 < <(host_ticks)
        w0=$(date +%s.%N); uasd0=$(udp_drops "$UAS_MEDIA" "$UAS_MEDIA"); uacd0=$(udp_drops "$UAC_MEDIA" "$UAC_MEDIA"); rb0=$(udp_rcvbuf_errors)
        sleep "$WINDOW"
        # Window end.
        local mz1=0 uac1 uas1 h1 i1 w1 mzd1=0 uasd1 uacd1 rb1 rss1=0
        [ -n "$MZ" ] && { mz1=$(cpu_ticks "$MZ"); metrics "$WORK/$tag.metrics1"; mzd1=$(udp_drops ${MASTERZ_RTP_PORTS/-/ }); rss1=$(rss_kb "$MZ"); }
        uac1=$(cpu_ticks "$uacpid" 2>/dev/null || echo 0); uas1=$(cpu_ticks "$UAS"); read -r h1 i1 < <(host_ticks)
        w1=$(date +%s.%N); uasd1=$(udp_drops "$UAS_MEDIA" "$UAS_MEDIA"); uacd1=$(udp_drops "$UAC_MEDIA" "$UAC_MEDIA"); rb1=$(udp_rcvbuf_errors)
        wait "$uacpid" || rc=$?
        sleep 1.5
        local echoed echo_s
        read -r echoed echo_s < <(python3 "$PY" echo "$WORK/uas_screen.log" "$w0" "$w1")
        local s; s=$(stat_summary "$WORK/$tag.csv" "$c")
        local ok failed created offered_cps rt_ms fail_kinds
        eval "$s"
        local uas_fail=$(($(uas_failed) - uas_failed0))
        # masterz's RTP counters over the window (names: see README; all deltas are kept).
        local mzs="{}"
        [ -n "$MZ" ] && mzs=$(python3 "$PY" delta "$WORK/$tag.metrics0" "$WORK/$tag.metrics1" || echo "{}")
        local line
        line=$(MZS=$mzs python3 - <<PY
import json, os
hz, window, c = $HZ, $WINDOW, $c
m = json.loads(os.environ["MZS"])
ok_echo = $echoed >= 0 and $echo_s > 0
# The agent's echo counter is read from two SIPp screens inside the window: compare it with what
# the callers' pcaps (50 packets/s each) send in the time between the two screens.
expected = c * 50 * $echo_s if ok_echo else c * 50 * window
echoed = $echoed                      # packets the agent received (and echoed)
mz_ms = ($mz1 - $mz0) * 1000 / hz
relayed = m.get("relayed", 0)
out = {
  "expected_caller_pkts": round(expected),
  "echo_window_s": $echo_s,
  "agent_echoed_pkts": echoed,
  "loss_caller_to_agent_pct": round(100 * (1 - echoed / expected), 3) if ok_echo else None,
  "mz_accepted_pkts": m.get("accepted", 0),
  "mz_relayed_pkts": relayed,
  "mz_dropped_pkts": m.get("dropped", 0),
  "mz_pps": round(relayed / window),
  "mz_cpu_pct": round(100 * mz_ms / 1000 / window, 1),
  "mz_cpu_ms_per_1000_pkts": round(mz_ms / (relayed / 1000), 3) if relayed else None,
  "mz_socket_drops": $mzd1 - $mzd0,
  "agent_socket_drops": $uasd1 - $uasd0,
  "caller_socket_drops_unread": $uacd1 - $uacd0,
  "host_rcvbuf_errors": $rb1 - $rb0,
  "mz_rss_mb": round($rss1 / 1024, 1),
  "mz_rss_per_call_kb": round(($rss1 - $rss0) / c, 1) if $rss1 else None,
  "uac_cpu_pct": round(100 * ($uac1 - $uac0) / hz / window, 1),
  "uas_cpu_pct": round(100 * ($uas1 - $uas0) / hz / window, 1),
  "host_busy_pct": round(100 * (1 - ($i1 - $i0) / max(1, $h1 - $h0)), 1),
  "mz_counters": m.get("all", {}),
  "recording": ${RECORDING:-0},
  "rec_frames": m.get("all", {}).get("masterz_recording_frames_total", 0),
  "rec_frames_dropped": m.get("all", {}).get("masterz_recording_frames_dropped_total", 0),
}
print(json.dumps(out))
PY
)
        local pass=1
        { [ "$rc" != 0 ] || [ "$failed" != 0 ] || [ "$uas_fail" != 0 ] || [ "$ok" != "$c" ]; } && pass=0
        [ "$pass" = 0 ] && FAILED=1
        python3 - "$line" mode=rtp baseline="$BASELINE" concurrent="$c" ok="$ok" failed="$failed" \
            uas_failed="$uas_fail" sipp_rc="$rc" fail_kinds="$fail_kinds" rt_invite_200_ms="$rt_ms" window_s="$WINDOW" \
            pass="$pass" >>"$WORK/results.jsonl" <<'PY'
import json, sys
d = {}
for a in sys.argv[2:]:
    k, v = a.split("=", 1)
    try: v = int(v)
    except ValueError:
        try: v = float(v)
        except ValueError: pass
    d[k] = v
d.update(json.loads(sys.argv[1]))
print(json.dumps(d))
PY
        echo "RESULT $(tail -1 "$WORK/results.jsonl")"
        sleep "${COOLDOWN:-3}"
    done
}

# --- soak: RSS over time at a fixed rate --------------------------------------------------
mode_soak() {
    local RATE=${RATE:-100} DURATION=${DURATION:-600} HOLD_MS=${HOLD_MS:-1000} SAMPLE_SECS=${SAMPLE_SECS:-10}
    local m=$((RATE * DURATION)) scen=trunk_uac.xml keys=() tag=soak
    if [ "${MEDIA:-0}" = 1 ]; then
        scen=trunk_uac_rtp.xml
        keys=(-key pcap "$(make_pcap $((HOLD_MS / 1000 + 5)))")
    fi
    start_uas "${MEDIA:-0}"
    local uac=(sipp -sf "$SCEN/$scen" "${SIPP_COMMON[@]}" -p "$UAC_PORT" -mp "$UAC_MEDIA"
        -s "$DID" -key caller "$CALLER" "${keys[@]}" -r "$RATE" -m "$m" -d "$HOLD_MS"
        -timeout "$((DURATION * 2 + 60))s" -timeout_error -recv_timeout 10s
        -trace_stat -stf "$WORK/$tag.csv" -fd 1 -trace_screen -screen_file "$WORK/$tag.screen"
        -trace_err -error_file "$WORK/$tag.errors.log" "$(target)")
    repro "${uac[*]}"
    local pid=${MZ:-$UAS} who=masterz
    [ -z "$MZ" ] && who=sipp-uas
    local rss0 cpu0; rss0=$(rss_kb "$pid"); cpu0=$(cpu_ticks "$pid")
    log "soak: $RATE calls/s for ${DURATION}s, hold ${HOLD_MS}ms; RSS of $who every ${SAMPLE_SECS}s"
    "${uac[@]}" >"$WORK/$tag.out" 2>&1 &
    local uacpid=$! rc=0 t0=$SECONDS
    PIDS+=("$uacpid")
    echo "t_s,rss_kb,cpu_s" >"$WORK/soak_rss.csv"
    while kill -0 "$uacpid" 2>/dev/null; do
        echo "$((SECONDS - t0)),$(rss_kb "$pid"),$(python3 -c "print(round(($(cpu_ticks "$pid") - $cpu0) / $HZ, 2))")" >>"$WORK/soak_rss.csv"
        sleep "$SAMPLE_SECS"
    done
    wait "$uacpid" || rc=$?
    sleep 1.5
    echo "$((SECONDS - t0)),$(rss_kb "$pid"),$(python3 -c "print(round(($(cpu_ticks "$pid") - $cpu0) / $HZ, 2))")" >>"$WORK/soak_rss.csv"
    local s; s=$(stat_summary "$WORK/$tag.csv" "$m")
    local ok failed created offered_cps rt_ms fail_kinds
    eval "$s"
    [ "$rc" != 0 ] && FAILED=1
    local rssline
    rssline=$(python3 - "$WORK/soak_rss.csv" "$rss0" <<'PY'
import csv, sys
rows = [(float(r["t_s"]), int(r["rss_kb"])) for r in csv.DictReader(open(sys.argv[1]))]
n = len(rows)
# RSS over the second half against the first half's end: a leak keeps climbing.
first = rows[n // 4][1] if n > 4 else rows[0][1]
mid = rows[n // 2][1]
last = rows[-1][1]
peak = max(r[1] for r in rows)
# Least-squares slope over the second half, in kB per minute.
half = rows[n // 2:]
if len(half) > 2:
    mx = sum(t for t, _ in half) / len(half); my = sum(v for _, v in half) / len(half)
    slope = sum((t - mx) * (v - my) for t, v in half) / max(1e-9, sum((t - mx) ** 2 for t, _ in half)) * 60
else:
    slope = 0
print(f"rss_start_mb={int(sys.argv[2]) / 1024:.1f} rss_q1_mb={first / 1024:.1f} rss_mid_mb={mid / 1024:.1f} "
      f"rss_end_mb={last / 1024:.1f} rss_peak_mb={peak / 1024:.1f} rss_slope_2nd_half_kb_per_min={slope:.1f} samples={n}")
PY
)
    # shellcheck disable=SC2086
    result mode=soak baseline="$BASELINE" process="$who" target_cps="$RATE" offered_cps="$offered_cps" \
        duration_s="$DURATION" calls="$m" ok="$ok" failed="$failed" sipp_rc="$rc" fail_kinds="$fail_kinds" \
        rt_invite_200_ms="$rt_ms" media="${MEDIA:-0}" $rssline
    log "RSS samples: $WORK/soak_rss.csv"
}

# --- run ------------------------------------------------------------------------------------
MACHINE="$(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -r), $( (sipp -v 2>&1 || true) | grep -o 'SIPp v[^ -]*' | head -1)"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) calls.sh $MODE$([ "$BASELINE" = 1 ] && echo ' --baseline'); $MACHINE"
echo "# masterz $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); SIPp, masterz and the load share the cores; load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$BASELINE" = 1 ] || start_masterz
"mode_$MODE"

echo
python3 "$PY" summary "$WORK/results.jsonl" || cat "$WORK/results.jsonl"
echo
echo "# Commands (work directory $WORK$([ "$KEEP" = 1 ] || [ "$FAILED" != 0 ] || echo ', removed on exit; KEEP=1 keeps it')):"
sed 's/^/#   /' "$WORK/commands.txt"
if [ "$BASELINE" != 1 ]; then
    echo "#   masterz: MASTERZ_DATA_DIR=$WORK/data MASTERZ_HTTP_LISTEN=$MASTERZ_HTTP_LISTEN MASTERZ_SIP_LISTEN=$MASTERZ_SIP_LISTEN MASTERZ_RTP_PORTS=$MASTERZ_RTP_PORTS MASTERZ_LOG_LEVEL=$MASTERZ_LOG_LEVEL target/release/masterz serve"
fi
