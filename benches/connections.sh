#!/usr/bin/env bash
# benches/connections.sh: the whole descriptor limit held by idle clients
# (issue 18).
#
#   benches/connections.sh > /tmp/connections.md
#
# One `camloop serve --camera none --framing line` with PORTS control ports on
# 127.0.0.1, started under `prlimit --nofile=NOFILE:NOFILE` so that
# `clients_max` is about NOFILE - 32 whatever this machine's default limit.
# In one run it measures:
#
# 1. ping req/s and p99 with no idle client (`camloop load --conns 50`);
# 2. HOLD_CONNS idle control connections (default: `clients_max` from
#    `stats` minus 51, i.e. minus the 50 ping connections and the `stats`
#    one), dealt out over all the ports (one destination has only about
#    28,000 local ports) by `camloop load ADDR1 ADDR2 ... --hold N`, in as
#    many processes as their descriptor limits need; their connects/s;
# 3. RSS per idle connection: (VmRSS held - VmRSS idle) / N, the larger of a
#    sample once all are connected and one after the ping run (target: at
#    most 256 bytes);
# 4. ping req/s and p99 again with them held (target: at least 0.9 x step 1);
# 5. the same number of idle connections to `redis-server --maxclients N`
#    (no persistence, under the same prlimit, bound to PORTS loopback
#    addresses so that it has as many destinations as camloop): its
#    connects/s and RSS per connection, for comparison.
#
# Environment: PORTS (4), NOFILE (20032), HOLD_CONNS (clients_max - 51),
# WARMUP_S (1), DURATION_S (3), MAX_PER_HOLDER (connections per `camloop
# load` process; default: what its descriptor limit allows), CAMLOOP (a
# binary instead of building one).
# A smoke run that only checks the script:
#
#   HOLD_CONNS=2000 WARMUP_S=0.5 DURATION_S=1 benches/connections.sh
#
# Raising a hard descriptor limit needs root (or CAP_SYS_RESOURCE); without
# it the processes keep this shell's hard limit, and clients_max follows it.
# Needs redis-server (scripts/setup.sh test). Only 127.0.0.1 is contacted;
# everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

PORTS=${PORTS:-4}
NOFILE=${NOFILE:-20032}
WARMUP_S=${WARMUP_S:-1}
DURATION_S=${DURATION_S:-3}
PING_CONNS=50
# Beside the held connections: the ping connections and the `stats` one.
OTHER_CLIENTS=$((PING_CONNS + 1))
# Descriptors a `camloop load` process keeps beside its connections (stdio,
# epoll; RESERVED_DESCRIPTORS in src/sys.rs), with room to spare.
TOOL_RESERVE_FDS=64
CONNECT_WAIT_S=60              # longest wait for the idle connections to arrive
RSS_TARGET_BYTES=256
PING_RATIO_TARGET=0.9

TARGET_DIR=${CARGO_TARGET_DIR:-target}
WORK=$(mktemp -d /tmp/camloop-connections.XXXXXX)
STARTED_PIDS=()
stop_all() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

log() { echo "connections: $*" >&2; }
. benches/proc.sh  # cpu_ticks, rss_kib, open_fds, fd_limit, json_field, free_port
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

if [[ -z ${CAMLOOP:-} ]]; then
    log "building (cargo build --release --no-default-features --bin camloop)"
    cargo build --release --no-default-features --quiet --bin camloop
    CAMLOOP=$TARGET_DIR/release/camloop
fi

# with_nofile N COMMAND... &: runs COMMAND with a descriptor limit of N (soft
# and hard) where this shell may set it, else with the shell's own. Only in
# the background: it execs, so that $! is the command's own pid (prlimit
# execs the command in turn), which /proc is read for.
if prlimit --nofile="$NOFILE:$NOFILE" true 2>/dev/null; then
    with_nofile() {
        local n=$1
        shift
        exec prlimit --nofile="$n:$n" "$@"
    }
    TOOL_FDS_MAX=$NOFILE
else
    log "cannot raise the hard descriptor limit (not root?): keeping $(ulimit -Hn)"
    with_nofile() {
        shift
        exec "$@"
    }
    TOOL_FDS_MAX=$(ulimit -Hn)
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- camloop -----------------------------------------------------------------

listen_flags=()
for _ in $(seq "$PORTS"); do listen_flags+=(--listen 127.0.0.1:0); done
with_nofile "$NOFILE" "$CAMLOOP" serve "${listen_flags[@]}" --http off --rtsp off --camera none \
    --framing line >"$WORK/camloop.out" 2>"$WORK/camloop.err" &
CAMLOOP_PID=$!
STARTED_PIDS+=("$CAMLOOP_PID")
ADDRS=
for _ in $(seq 50); do
    ADDRS=$(sed -n 's/^listening control=\([^ ]*\) .*/\1/p' "$WORK/camloop.out")
    [[ -n $ADDRS ]] && break
    sleep 0.1
done
if [[ -z $ADDRS ]]; then
    log "camloop did not start: $(head -c 300 "$WORK/camloop.err")"
    exit 1
fi
IFS=, read -r -a ADDR_LIST <<<"$ADDRS"
CAMLOOP_NOFILE=$(fd_limit "$CAMLOOP_PID")
FIRST=${ADDR_LIST[0]}
stats=$("$CAMLOOP" ctl "$FIRST" stats | grep '^OK')
CLIENTS_MAX=$(tr ' ' '\n' <<<"$stats" | sed -n 's/^clients_max=//p')
HOLD=${HOLD_CONNS:-$((CLIENTS_MAX - OTHER_CLIENTS))}
log "camloop pid $CAMLOOP_PID on ${#ADDR_LIST[@]} ports, clients_max=$CLIENTS_MAX; holding $HOLD"

# ping LABEL: a 50-connection ping run; sets PING_RPS and PING_P99.
ping_run() {
    local out="$WORK/ping-$1.json"
    "$CAMLOOP" load "$FIRST" --conns "$PING_CONNS" --greeting line --request 'ping\n' \
        --warmup "$WARMUP_S" --duration "$DURATION_S" --json >"$out" 2>"$out.err" ||
        log "ping run ($1) failed: $(head -c 300 "$out.err")"
    PING_RPS=$(json_field requests_per_s "$out")
    PING_P99=$(json_field latency_p99_us "$out")
    PING_ERRORS=$(json_field errors "$out")
}

# hold SERVER_PID N SECONDS ADDR...: N idle connections over the ADDRs for
# SECONDS, in as many `camloop load` processes as their limits need; waits
# until the server has them all (or CONNECT_WAIT_S). Sets HOLDER_PIDS and
# HOLD_OUTS (one JSON report each, once they end).
hold() {
    local server=$1 n=$2 seconds=$3 per_process processes i share left
    shift 3
    per_process=${MAX_PER_HOLDER:-$((TOOL_FDS_MAX - TOOL_RESERVE_FDS))}
    processes=$(((n + per_process - 1) / per_process))
    HOLDER_PIDS=() HOLD_OUTS=()
    local fds_before waited
    fds_before=$(open_fds "$server")
    left=$n
    for i in $(seq "$processes"); do
        share=$((left / (processes - i + 1)))
        left=$((left - share))
        local out="$WORK/hold-$server-$i.json"
        with_nofile $((share + TOOL_RESERVE_FDS)) "$CAMLOOP" load "$@" --hold "$share" \
            --duration "$seconds" --json >"$out" 2>"$out.err" &
        HOLDER_PIDS+=("$!")
        STARTED_PIDS+=("$!")
        HOLD_OUTS+=("$out")
    done
    for waited in $(seq $((CONNECT_WAIT_S * 10))); do
        (($(open_fds "$server") >= fds_before + n)) && break
        sleep 0.1
    done
    log "$(($(open_fds "$server") - fds_before)) of $n idle connections arrived (in $processes process(es))"
}

# hold_results: waits for the holders; sets CONNECTS_PER_S (the sum of the
# processes' rates, which ran side by side) and CONNECT_FAILURES.
hold_results() {
    local pid out
    for pid in "${HOLDER_PIDS[@]}"; do
        wait "$pid" || log "a hold run failed"
    done
    CONNECTS_PER_S=0 CONNECT_FAILURES=0
    for out in "${HOLD_OUTS[@]}"; do
        CONNECTS_PER_S=$(awk -v a="$CONNECTS_PER_S" -v b="$(json_field connects_per_s "$out")" \
            'BEGIN { printf "%.0f", a + b }')
        CONNECT_FAILURES=$((CONNECT_FAILURES + $(json_field connect_failures "$out")))
    done
}

log "ping with no idle connection"
ping_run none
NONE_RPS=$PING_RPS NONE_P99=$PING_P99 NONE_ERRORS=$PING_ERRORS

IDLE_KIB=$(rss_kib "$CAMLOOP_PID")
# The holders outlast the ping run and the RSS samples around it.
HOLD_S=$(awk -v w="$WARMUP_S" -v d="$DURATION_S" 'BEGIN { print w + d + 10 }')
hold "$CAMLOOP_PID" "$HOLD" "$HOLD_S" "${ADDR_LIST[@]}"
HELD_KIB=$(rss_kib "$CAMLOOP_PID")
CLIENTS_HELD=$(tr ' ' '\n' <<<"$("$CAMLOOP" ctl "$FIRST" stats | grep '^OK')" | sed -n 's/^clients=//p')
log "ping with $HOLD idle connections held"
ping_run held
HELD_RPS=$PING_RPS HELD_P99=$PING_P99 HELD_ERRORS=$PING_ERRORS
HELD_KIB=$(awk -v a="$HELD_KIB" -v b="$(rss_kib "$CAMLOOP_PID")" 'BEGIN { print (a > b ? a : b) }')
hold_results
CAMLOOP_CONNECTS=$CONNECTS_PER_S CAMLOOP_FAILURES=$CONNECT_FAILURES
kill "$CAMLOOP_PID" 2>/dev/null || true

# ---- redis, same number of idle connections ------------------------------------

# redis listens on one port, so it gets as many destinations as camloop
# through addresses instead: 127.0.0.1, 127.0.0.2, ... (all loopback). The
# count matters: the kernel's search for a free local port makes each
# connect() slower the more connections one destination already has, and
# connects/s includes the time the client spends in connect().
REDIS_PORT=$(free_port)
REDIS_BIND=() REDIS_ADDRS=()
for i in $(seq "$PORTS"); do
    REDIS_BIND+=("127.0.0.$i")
    REDIS_ADDRS+=("127.0.0.$i:$REDIS_PORT")
done
with_nofile "$NOFILE" redis-server --port "$REDIS_PORT" --bind "${REDIS_BIND[@]}" --save '' \
    --appendonly no --maxclients "$HOLD" --loglevel warning >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
STARTED_PIDS+=("$REDIS_PID")
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break
    sleep 0.1
done
REDIS_IDLE_KIB=$(rss_kib "$REDIS_PID")
REDIS_NOFILE=$(fd_limit "$REDIS_PID")
log "redis pid $REDIS_PID on ${#REDIS_ADDRS[@]} addresses, --maxclients $HOLD; holding $HOLD"
hold "$REDIS_PID" "$HOLD" 5 "${REDIS_ADDRS[@]}"
REDIS_HELD_KIB=$(rss_kib "$REDIS_PID")
sleep 3 # redis trims per-client buffers on a timer (clientsCron): the larger sample counts
REDIS_HELD_KIB=$(awk -v a="$REDIS_HELD_KIB" -v b="$(rss_kib "$REDIS_PID")" 'BEGIN { print (a > b ? a : b) }')
hold_results
kill "$REDIS_PID" 2>/dev/null || true

# ---- the report ------------------------------------------------------------------

per_conn() { awk -v h="$1" -v i="$2" -v n="$HOLD" 'BEGIN { printf "%.0f", (h - i) * 1024 / n }'; }
CAMLOOP_BYTES=$(per_conn "$HELD_KIB" "$IDLE_KIB")
REDIS_BYTES=$(per_conn "$REDIS_HELD_KIB" "$REDIS_IDLE_KIB")
PING_RATIO=$(awk -v a="$HELD_RPS" -v b="$NONE_RPS" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
yes_no() { awk -v ok="$1" 'BEGIN { print (ok ? "yes" : "**no**") }'; }
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
cat <<EOF
Measured by \`benches/connections.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, ${cpu_model:-unknown CPU}, Linux $(uname -r);
load average at the end $(cut -d' ' -f1-3 /proc/loadavg); $(redis-server --version | cut -d' ' -f1-3); camloop $(git rev-parse --short HEAD 2>/dev/null || echo '?').
One run; ping runs ${WARMUP_S} s warmup + ${DURATION_S} s, $PING_CONNS connections; all on loopback.

| server | descriptor limit | clients_max | idle connections held | connects/s while they arrive | connect failures | idle RSS MiB | RSS held MiB | bytes per idle connection |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
| camloop, $PORTS ports | $CAMLOOP_NOFILE | $CLIENTS_MAX | $HOLD (server counted $CLIENTS_HELD clients) | $CAMLOOP_CONNECTS | $CAMLOOP_FAILURES | $(mib "$IDLE_KIB") | $(mib "$HELD_KIB") | $CAMLOOP_BYTES |
| redis \`--maxclients $HOLD\`, $PORTS addresses | $REDIS_NOFILE | $HOLD | $HOLD | $CONNECTS_PER_S | $CONNECT_FAILURES | $(mib "$REDIS_IDLE_KIB") | $(mib "$REDIS_HELD_KIB") | $REDIS_BYTES |

| camloop ping, $PING_CONNS conns | req/s | p99 µs | errors |
|---|---:|---:|---:|
| no idle connection | $NONE_RPS | $NONE_P99 | $NONE_ERRORS |
| $HOLD idle connections held | $HELD_RPS | $HELD_P99 | $HELD_ERRORS |

| target | measured | met? |
|---|---:|---|
| RSS per idle connection ≤ $RSS_TARGET_BYTES bytes | $CAMLOOP_BYTES | $(yes_no "$((CAMLOOP_BYTES <= RSS_TARGET_BYTES))") |
| ping req/s held / none ≥ $PING_RATIO_TARGET | $PING_RATIO | $(yes_no "$(awk -v r="$PING_RATIO" -v t="$PING_RATIO_TARGET" 'BEGIN { print (r + 0 >= t) }')") |
| connects/s camloop / redis | $(awk -v a="$CAMLOOP_CONNECTS" -v b="$CONNECTS_PER_S" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }') | |

Commands: \`prlimit --nofile=$NOFILE:$NOFILE camloop serve $(printf -- '--listen 127.0.0.1:0 %.0s' $(seq "$PORTS"))--http off --rtsp off --camera none --framing line\`;
\`camloop load ADDR1 … ADDR$PORTS --hold N --duration S --json\` (N = clients_max - $OTHER_CLIENTS, split over processes of at most ${MAX_PER_HOLDER:-$((TOOL_FDS_MAX - TOOL_RESERVE_FDS))} connections);
\`camloop load ADDR1 --conns $PING_CONNS --greeting line --request 'ping\\n' --warmup $WARMUP_S --duration $DURATION_S --json\`;
\`prlimit --nofile=$NOFILE:$NOFILE redis-server --port PORT --bind $(echo "${REDIS_BIND[@]}") --save '' --appendonly no --maxclients N\`
and \`camloop load 127.0.0.1:PORT … 127.0.0.$PORTS:PORT --hold N --duration 5 --json\`. connects/s: connections / time from the holder's
start to its last connect, so it includes the client's own connect() calls.
EOF
