#!/usr/bin/env bash
# benches/compare.sh: the side-by-side numbers of BENCHMARKS.md.
#
# Builds camloop and examples/minimal_loop once, starts every server it uses
# on loopback (camloop, the minimal loop as the ceiling of the same design,
# Debian's redis-server, the thread-per-connection Python reference in
# benches/reference/), runs each comparison RUNS times and reports medians,
# and stops every server it started. Progress goes to stderr, the markdown to
# stdout:
#
#     benches/compare.sh > /tmp/benchmarks.md
#
# Needs cargo, python3, redis-server and redis-benchmark
# (scripts/setup.sh test installs them). About 4 minutes on 2 cores, a minute
# more with CAMLOOP_BASELINE; a smoke run that only checks that the script
# works takes about one:
#
#     RUNS=1 WARMUP_S=0.5 DURATION_S=1 MANY_CONNS=100 HOLD_CONNS=500 IDLE_WATCH_S=1 \
#         benches/compare.sh > /tmp/smoke.md
#
# Server CPU per request: `camloop load --server-pid PID` reads the server's
# utime + stime (/proc/PID/stat) when its measurement window starts and ends
# and divides by the replies it counted in that window, so warmup and
# connecting are left out. redis-benchmark has no warmup: its rows use the
# server's CPU over the benchmark's whole run divided by its request count.
#
# CAMLOOP_BASELINE=PATH also runs a second camloop binary, normally the
# previous commit, interleaved with this build (this, baseline, this,
# baseline, ...) through the same load tool, and reports the ratio of their
# median server CPU per request ("no loss" = within 3 %). Build it from a
# git worktree, so the checkout under test stays as it is (pointing it at a
# copy of this build first shows the machine's noise floor):
#
#     git worktree add --detach /var/tmp/camloop-baseline HEAD~1   # or any commit
#     (cd /var/tmp/camloop-baseline && CARGO_TARGET_DIR=/var/tmp/camloop-baseline/target \
#         cargo build --release --no-default-features --bin camloop)
#     CAMLOOP_BASELINE=/var/tmp/camloop-baseline/target/release/camloop \
#         benches/compare.sh > /tmp/benchmarks.md
#     git worktree remove /var/tmp/camloop-baseline
#
# CAMLOOP_LOAD overrides the load tool command (it must understand
# --server-pid and --json as `camloop load` does).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}                   # runs per comparison; the median is reported
WARMUP_S=${WARMUP_S:-1}           # unmeasured seconds at the start of each `camloop load` run
DURATION_S=${DURATION_S:-3}       # measured seconds per run
MANY_CONNS=${MANY_CONNS:-1000}    # connections for camloop vs the Python reference
HOLD_CONNS=${HOLD_CONNS:-10000}   # idle connections for the memory rows
IDLE_WATCH_S=${IDLE_WATCH_S:-10}  # how long idle servers are watched for wake-ups
NO_LOSS_RATIO=1.03                # this build / baseline CPU per request at most this: no loss

TARGET_DIR=${CARGO_TARGET_DIR:-target}
CAMLOOP=${CAMLOOP:-$TARGET_DIR/release/camloop}  # the binary under test
MINIMAL_LOOP=$TARGET_DIR/release/examples/minimal_loop
CAMLOOP_BASELINE=${CAMLOOP_BASELINE:-}
if [[ -n $CAMLOOP_BASELINE && ! -x $CAMLOOP_BASELINE ]]; then
    echo "compare: CAMLOOP_BASELINE=$CAMLOOP_BASELINE is not an executable" >&2
    exit 1
fi
read -r -a LOAD <<<"${CAMLOOP_LOAD:-$CAMLOOP load}"
CLK_TCK=$(getconf CLK_TCK)
# Servers and tools inherit room for thousands of sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d)
STARTED_PIDS=()

log() { echo "compare: $*" >&2; }

stop_all() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap stop_all EXIT

# ---- facts about a process, from /proc ------------------------------------
. benches/proc.sh  # cpu_ticks, rss_kib, open_fds, fd_limit, json_field, free_port

context_switches() { awk '/ctxt_switches:/ { n += $2 } END { print n }' "/proc/$1/status"; }

# Words as a shell would need them: those with a backslash in single quotes.
quoted() {
    local word out=()
    for word; do
        if [[ $word == *\\* ]]; then out+=("'$word'"); else out+=("$word"); fi
    done
    echo "${out[*]}"
}

median() { printf '%s\n' "$@" | sort -g | sed -n "$((($# + 1) / 2))p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }


wait_for_port() {
    local attempt
    for attempt in $(seq 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# ---- servers: each start_* sets SERVER_PID and SERVER_PORT -----------------

# start_reporting NAME PREFIX COMMAND...: starts a server that binds port 0
# and prints `PREFIX127.0.0.1:PORT...` on stdout, and waits for that line.
start_reporting() {
    local name=$1 prefix=$2 attempt
    shift 2
    local out="$WORK/$name.$RANDOM.out"
    "$@" >"$out" 2>"$out.err" &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    SERVER_PORT=
    for attempt in $(seq 50); do
        SERVER_PORT=$(sed -n "s/^${prefix}127\.0\.0\.1:\([0-9]*\).*/\1/p" "$out")
        [[ -n $SERVER_PORT ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "$name did not report its port ($(head -c 300 "$out.err")); its rows are skipped"
    stop_server
    return 1
}

# start_camloop [BINARY]: this build, or the one given (the baseline).
start_camloop() {
    local binary=${1:-$CAMLOOP} rtsp_off=()
    # The baseline may be a build from before the RTSP port.
    if "$binary" serve --help | grep -q -- '--rtsp '; then rtsp_off=(--rtsp off); fi
    start_reporting camloop "listening control=" "$binary" serve \
        --listen 127.0.0.1:0 --http off "${rtsp_off[@]}" --camera none --framing line
}
start_baseline() { start_camloop "$CAMLOOP_BASELINE"; }
start_minimal() { start_reporting minimal_loop "listening " "$MINIMAL_LOOP" 127.0.0.1:0; }

start_redis() {
    SERVER_PORT=$(free_port)
    redis-server --port "$SERVER_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --maxclients $((HOLD_CONNS + 1000)) --loglevel warning >"$WORK/redis.log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_for_port "$SERVER_PORT"
}

start_python() {
    SERVER_PORT=$(free_port)
    python3 benches/reference/classic_server.py "$SERVER_PORT" 2>"$WORK/python.log" &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    wait_for_port "$SERVER_PORT"
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

# ---- one measured client run ----------------------------------------------

# measure SERVER_PID RSS_SAMPLE_AFTER_S CLIENT...: runs the client while
# watching the server. Sets RUN_OUT (client stdout file), RUN_CLIENT_CPU,
# RUN_SERVER_CPU (percent of one core over the client's lifetime),
# RUN_SERVER_TICKS (the server's CPU over the client's lifetime, in clock
# ticks) and RUN_SERVER_RSS (MiB, sampled mid-run).
measure() {
    local server=$1 sample_after_s=$2
    shift 2
    RUN_OUT="$WORK/run.out"
    local ticks_before user sys wall
    ticks_before=$(cpu_ticks "$server")
    (
        TIMEFORMAT='%U %S %R'
        time "$@" >"$RUN_OUT" 2>"$WORK/run.err"
    ) 2>"$WORK/run.time" &
    local client=$!
    sleep "$sample_after_s"
    RUN_SERVER_RSS=$(awk -v k="$(rss_kib "$server")" 'BEGIN { printf "%.1f", k / 1024 }')
    if ! wait "$client"; then
        log "client failed: $* ($(head -c 300 "$WORK/run.err"))"
    fi
    if ! kill -0 "$server" 2>/dev/null; then
        log "the server (pid $server) died during: $*"
        exit 1
    fi
    read -r user sys wall <"$WORK/run.time"
    RUN_CLIENT_CPU=$(awk -v u="$user" -v s="$sys" -v w="$wall" 'BEGIN { printf "%.0f", 100 * (u + s) / w }')
    RUN_SERVER_TICKS=$(($(cpu_ticks "$server") - ticks_before))
    RUN_SERVER_CPU=$(awk -v t="$RUN_SERVER_TICKS" -v hz="$CLK_TCK" -v w="$wall" \
        'BEGIN { printf "%.0f", 100 * t / hz / w }')
}

# ---- table rows: each appends to the arrays of its row label --------------

declare -A RPS P50 P99 SCPU CPU_US CCPU RSS ERRS CMD
ROWS=()

add_sample() { # LABEL RPS P50 P99 ERRORS [SERVER_CPU_US_PER_REQUEST]
    local label=$1
    [[ -v "RPS[$label]" ]] || ROWS+=("$label")
    RPS[$label]+="$2 "
    P50[$label]+="$3 "
    P99[$label]+="$4 "
    ERRS[$label]+="$5 "
    CPU_US[$label]+="${6:-n/a} "
    SCPU[$label]+="$RUN_SERVER_CPU "
    CCPU[$label]+="$RUN_CLIENT_CPU "
    RSS[$label]+="$RUN_SERVER_RSS "
}

# load_row LABEL SERVER_PID PORT LOAD-FLAGS...: one `camloop load` run.
load_row() {
    local label=$1 server=$2 port=$3
    shift 3
    CMD[$label]="camloop load 127.0.0.1:PORT $(quoted "$@") --warmup $WARMUP_S --duration $DURATION_S --server-pid SERVER_PID"
    measure "$server" "$(awk -v w="$WARMUP_S" -v d="$DURATION_S" 'BEGIN { print w + d / 2 }')" \
        "${LOAD[@]}" "127.0.0.1:$port" "$@" --warmup "$WARMUP_S" --duration "$DURATION_S" \
        --server-pid "$server" --json
    local rps cpu_us
    rps=$(json_field requests_per_s "$RUN_OUT")
    cpu_us=$(json_field server_cpu_us_per_request "$RUN_OUT")
    [[ $cpu_us == null ]] && cpu_us=n/a
    add_sample "$label" "${rps:-0}" "$(json_field latency_p50_us "$RUN_OUT")" \
        "$(json_field latency_p99_us "$RUN_OUT")" "$(json_field errors "$RUN_OUT")" "$cpu_us"
    LAST_RPS=${rps:-0}
}

# redis_benchmark_row LABEL SERVER_PID PORT REQUESTS FLAGS...
redis_benchmark_row() {
    local label=$1 server=$2 port=$3 requests=$4
    shift 4
    CMD[$label]="redis-benchmark -t ping_inline -n N $* --csv (N = camloop load's req/s x $DURATION_S s)"
    measure "$server" 1 redis-benchmark -p "$port" -t ping_inline -n "$requests" "$@" --csv
    # CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",...
    local csv
    csv=$(tail -n 1 "$RUN_OUT" | tr -d '"')
    add_sample "$label" "$(cut -d, -f2 <<<"$csv")" \
        "$(awk -F, '{ printf "%.0f", $5 * 1000 }' <<<"$csv")" \
        "$(awk -F, '{ printf "%.0f", $7 * 1000 }' <<<"$csv")" "-" \
        "$(awk -v t="$RUN_SERVER_TICKS" -v hz="$CLK_TCK" -v n="$requests" \
            'BEGIN { printf "%.3f", t * 1e6 / hz / n }')"
}

# ---- the comparisons --------------------------------------------------------

log "building (cargo build --release --no-default-features --bin camloop --example minimal_loop)"
cargo build --release --no-default-features --quiet --bin camloop --example minimal_loop

start_redis
REDIS_PID=$SERVER_PID REDIS_PORT=$SERVER_PORT
CAMLOOP_OK=0 BASELINE_OK=0 MINIMAL_OK=0
if start_camloop; then
    CAMLOOP_OK=1
    CAMLOOP_PID=$SERVER_PID CAMLOOP_PORT=$SERVER_PORT
fi
if [[ -n $CAMLOOP_BASELINE ]] && start_baseline; then
    BASELINE_OK=1
    BASELINE_PID=$SERVER_PID BASELINE_PORT=$SERVER_PORT
fi
if start_minimal; then
    MINIMAL_OK=1
    MINIMAL_PID=$SERVER_PID MINIMAL_PORT=$SERVER_PORT
fi

log "watching idle servers for ${IDLE_WATCH_S} s"
declare -A IDLE_WAKEUPS IDLE_RSS
idle_pids=("redis-server:$REDIS_PID")
if ((CAMLOOP_OK)); then idle_pids+=("camloop:$CAMLOOP_PID"); fi
if ((BASELINE_OK)); then idle_pids+=("baseline camloop:$BASELINE_PID"); fi
for entry in "${idle_pids[@]}"; do IDLE_WAKEUPS[${entry%%:*}]=$(context_switches "${entry#*:}"); done
sleep "$IDLE_WATCH_S"
for entry in "${idle_pids[@]}"; do
    name=${entry%%:*} pid=${entry#*:}
    IDLE_WAKEUPS[$name]=$(($(context_switches "$pid") - ${IDLE_WAKEUPS[$name]}))
    IDLE_RSS[$name]=$(awk -v k="$(rss_kib "$pid")" 'BEGIN { printf "%.1f", k / 1024 }')
done

for pipeline in 1 16; do
    log "50 connections, pipeline $pipeline"
    for run in $(seq "$RUNS"); do
        load_row "redis PING, P$pipeline: camloop load" "$REDIS_PID" "$REDIS_PORT" \
            --conns 50 --pipeline "$pipeline" --request 'PING\r\n'
        # Same request count as camloop load managed, so both run about as long.
        if ((run == 1)); then
            requests=$(awk -v r="$LAST_RPS" -v d="$DURATION_S" 'BEGIN { n = int(r * d); print (n < 10000 ? 10000 : n) }')
        fi
        redis_benchmark_row "redis PING, P$pipeline: redis-benchmark" "$REDIS_PID" "$REDIS_PORT" \
            "$requests" -c 50 -P "$pipeline"
        if ((CAMLOOP_OK)); then
            load_row "camloop ping, P$pipeline: camloop load" "$CAMLOOP_PID" "$CAMLOOP_PORT" \
                --conns 50 --pipeline "$pipeline" --greeting line --request 'ping\n'
        fi
        # Right after this build's run, so the two alternate: A B A B A B.
        if ((BASELINE_OK)); then
            load_row "baseline camloop ping, P$pipeline: camloop load" "$BASELINE_PID" "$BASELINE_PORT" \
                --conns 50 --pipeline "$pipeline" --greeting line --request 'ping\n'
        fi
        # The ceiling: the same loop rules with nothing else (bare greeting,
        # line mode from the first request on).
        if ((MINIMAL_OK)); then
            load_row "minimal loop ping, P$pipeline: camloop load" "$MINIMAL_PID" "$MINIMAL_PORT" \
                --conns 50 --pipeline "$pipeline" --greeting bytes:7 --request 'ping\n'
        fi
    done
done
if ((MINIMAL_OK)); then kill "$MINIMAL_PID" 2>/dev/null || true; fi

log "$MANY_CONNS connections: camloop vs the Python reference"
start_python
PYTHON_PID=$SERVER_PID PYTHON_PORT=$SERVER_PORT
PYTHON_IDLE_RSS=$(awk -v k="$(rss_kib "$PYTHON_PID")" 'BEGIN { printf "%.1f", k / 1024 }')
for run in $(seq "$RUNS"); do
    # The classic protocol: bare `Welcome`, a bare `Received` per recv(); pipelining
    # would merge requests into one recv(), so one request in flight.
    load_row "$MANY_CONNS conns: Python reference" "$PYTHON_PID" "$PYTHON_PORT" \
        --conns "$MANY_CONNS" --greeting bytes:7 --request hello --expect bytes:8
    if ((CAMLOOP_OK)); then
        load_row "$MANY_CONNS conns: camloop" "$CAMLOOP_PID" "$CAMLOOP_PORT" \
            --conns "$MANY_CONNS" --greeting line --request 'hello\n'
    fi
    if ((BASELINE_OK)); then
        load_row "$MANY_CONNS conns: baseline camloop" "$BASELINE_PID" "$BASELINE_PORT" \
            --conns "$MANY_CONNS" --greeting line --request 'hello\n'
    fi
done
stop_server
# The hold rows start servers of their own.
kill "$REDIS_PID" 2>/dev/null || true
if ((CAMLOOP_OK)); then kill "$CAMLOOP_PID" 2>/dev/null || true; fi
if ((BASELINE_OK)); then kill "$BASELINE_PID" 2>/dev/null || true; fi

# hold_run NAME PING_LABEL START_FN LOAD-FLAGS...: a fresh server (so its idle RSS is a
# clean baseline), HOLD_CONNS idle connections, then a 50-connection ping run
# while they are held.
declare -A HOLD_BYTES HOLD_CONNECTS HOLD_FAILED
hold_run() {
    local name=$1 ping_label=$2 start=$3
    shift 3
    "$start" || return 0
    local idle_kib hold_out="$WORK/hold.out" waited
    idle_kib=$(rss_kib "$SERVER_PID")
    "${LOAD[@]}" "127.0.0.1:$SERVER_PORT" --hold "$HOLD_CONNS" \
        --duration "$(awk -v w="$WARMUP_S" -v d="$DURATION_S" 'BEGIN { print w + d + 3 }')" \
        --json >"$hold_out" 2>&1 &
    local holder=$!
    for waited in $(seq 100); do
        (($(open_fds "$SERVER_PID") >= HOLD_CONNS)) && break
        sleep 0.1
    done
    # Servers grow and trim per-client buffers on timers (redis' clientsCron),
    # so RSS is sampled once connected and again after the ping run; the
    # larger counts.
    local held_kib
    held_kib=$(rss_kib "$SERVER_PID")
    load_row "$ping_label, P1, $HOLD_CONNS idle held" "$SERVER_PID" "$SERVER_PORT" --conns 50 "$@"
    held_kib=$(awk -v a="$held_kib" -v b="$(rss_kib "$SERVER_PID")" 'BEGIN { print (a > b ? a : b) }')
    wait "$holder" || log "hold run failed: $(head -c 300 "$hold_out")"
    HOLD_BYTES[$name]+="$(((held_kib - idle_kib) * 1024 / HOLD_CONNS)) "
    HOLD_CONNECTS[$name]+="$(json_field connects_per_s "$hold_out") "
    HOLD_FAILED[$name]+="$(json_field connect_failures "$hold_out") "
    stop_server
}
log "$HOLD_CONNS idle connections"
for run in $(seq "$RUNS"); do
    hold_run redis "redis PING" start_redis --request 'PING\r\n'
    if ((CAMLOOP_OK)); then hold_run camloop "camloop ping" start_camloop --greeting line --request 'ping\n'; fi
    if ((BASELINE_OK)); then
        hold_run "baseline camloop" "baseline camloop ping" start_baseline --greeting line --request 'ping\n'
    fi
done

# ---- the report -------------------------------------------------------------

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
BASELINE_NOTE=
if ((BASELINE_OK)); then
    BASELINE_NOTE="; baseline $("$CAMLOOP_BASELINE" --version 2>/dev/null || echo "$CAMLOOP_BASELINE")"
fi
cat <<EOF
Measured by \`benches/compare.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, ${cpu_model:-unknown CPU}, Linux $(uname -r);
load average at the end $(cut -d' ' -f1-3 /proc/loadavg); $(redis-server --version | cut -d' ' -f1-3); $(python3 --version);
camloop $(git rev-parse --short HEAD 2>/dev/null || echo '?')${BASELINE_NOTE}. Median of $RUNS runs, ${WARMUP_S} s warmup + ${DURATION_S} s each; all on loopback.
CPU % is per process (100 = one core), over the client's lifetime; server CPU µs per request
is over the measured window only (redis-benchmark: its whole run); RSS sampled mid-run.

| comparison | req/s | p50 µs | p99 µs | server CPU µs per request | server CPU % | client CPU % | server RSS MiB | errors |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
for label in "${ROWS[@]}"; do
    # shellcheck disable=SC2086 # the arrays hold space-separated samples
    printf '| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n' "$label" \
        "$(median ${RPS[$label]})" "$(median ${P50[$label]})" "$(median ${P99[$label]})" \
        "$(median ${CPU_US[$label]})" "$(median ${SCPU[$label]})" "$(median ${CCPU[$label]})" \
        "$(median ${RSS[$label]})" "$(median ${ERRS[$label]})"
done

# pair_ratios "A1 A2 ..." "B1 B2 ...": the runs were interleaved (A1 B1 A2
# B2 ...), so each Ai / Bi is measured under the same conditions; prints the
# median of those ratios and their range. On a shared 2-core machine the
# machine's drift between runs is larger than the gaps judged, and a ratio
# per pair cancels most of it.
pair_ratios() {
    local ratios
    ratios=$(awk -v a="$1" -v b="$2" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= n; i++) if (x[i] + 0 > 0 && y[i] + 0 > 0) printf "%.3f\n", x[i] / y[i]
    }' | sort -g)
    if [[ -z $ratios ]]; then echo n/a; return; fi
    # shellcheck disable=SC2086 # one ratio per word
    echo "$(median $ratios) ($(head -1 <<<"$ratios") to $(tail -1 <<<"$ratios"), $(wc -l <<<"$ratios") pairs)"
}

med_rps() {
    # shellcheck disable=SC2086
    if [[ -v "RPS[$1]" ]]; then median ${RPS[$1]}; else echo 0; fi
}
echo
echo "| target | measured |"
echo "|---|---:|"
for pipeline in 1 16; do
    echo "| camloop load / redis-benchmark against redis, P$pipeline | $(ratio "$(med_rps "redis PING, P$pipeline: camloop load")" "$(med_rps "redis PING, P$pipeline: redis-benchmark")") |"
done
if ((CAMLOOP_OK)); then
    for pipeline in 1 16; do
        echo "| camloop ping / redis PING, P$pipeline | $(ratio "$(med_rps "camloop ping, P$pipeline: camloop load")" "$(med_rps "redis PING, P$pipeline: camloop load")") |"
    done
    echo "| camloop / Python reference at $MANY_CONNS connections | $(ratio "$(med_rps "$MANY_CONNS conns: camloop")" "$(med_rps "$MANY_CONNS conns: Python reference")") |"
    if ((MINIMAL_OK)); then
        for pipeline in 1 16; do
            this="camloop ping, P$pipeline: camloop load" ceiling="minimal loop ping, P$pipeline: camloop load"
            echo "| camloop ping / minimal loop ping (the ceiling), req/s, P$pipeline: per pair | $(pair_ratios "${RPS[$this]}" "${RPS[$ceiling]}") |"
            echo "| camloop ping / the ceiling, server CPU per request, P$pipeline: per pair | $(pair_ratios "${CPU_US[$this]}" "${CPU_US[$ceiling]}") |"
        done
    fi
else
    echo "| camloop rows | not measured: \`camloop serve\` did not start |"
fi
echo
echo "| server | idle RSS MiB | wake-ups in ${IDLE_WATCH_S} s idle | RSS per idle connection (bytes, $HOLD_CONNS held) | connects/s | connect failures |"
echo "|---|---:|---:|---:|---:|---:|"
for name in redis camloop "baseline camloop"; do
    [[ -v "HOLD_BYTES[$name]" ]] || continue
    idle_name=$name
    [[ $name == redis ]] && idle_name=redis-server
    # shellcheck disable=SC2086
    echo "| $name | ${IDLE_RSS[$idle_name]:-?} | ${IDLE_WAKEUPS[$idle_name]:-?} | $(median ${HOLD_BYTES[$name]}) | $(median ${HOLD_CONNECTS[$name]}) | $(median ${HOLD_FAILED[$name]}) |"
done
echo "| Python reference | $PYTHON_IDLE_RSS | | | | |"

med_cpu_us() {
    # shellcheck disable=SC2086
    if [[ -v "CPU_US[$1]" ]]; then median ${CPU_US[$1]}; else echo n/a; fi
}
if ((BASELINE_OK)); then
    echo
    echo "Server CPU per request, this build against the baseline (runs interleaved; no loss = this / baseline <= $NO_LOSS_RATIO):"
    echo
    echo "| comparison | this build µs | baseline µs | this / baseline | no loss? | req/s this / baseline |"
    echo "|---|---:|---:|---:|---|---:|"
    for pair in "camloop ping, P1: camloop load|baseline camloop ping, P1: camloop load" \
        "camloop ping, P16: camloop load|baseline camloop ping, P16: camloop load" \
        "$MANY_CONNS conns: camloop|$MANY_CONNS conns: baseline camloop" \
        "camloop ping, P1, $HOLD_CONNS idle held|baseline camloop ping, P1, $HOLD_CONNS idle held"; do
        this=${pair%%|*} base=${pair#*|}
        [[ -v "RPS[$this]" && -v "RPS[$base]" ]] || continue
        this_us=$(med_cpu_us "$this") base_us=$(med_cpu_us "$base")
        cpu_ratio=$(awk -v a="$this_us" -v b="$base_us" \
            'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.3f", a / b; else print "n/a" }')
        verdict=$(awk -v r="$cpu_ratio" -v limit="$NO_LOSS_RATIO" \
            'BEGIN { if (r == "n/a") print "?"; else print (r + 0 <= limit + 0 ? "yes" : "**no**") }')
        echo "| ${this%: camloop load} | $this_us | $base_us | $cpu_ratio | $verdict | $(ratio "$(med_rps "$this")" "$(med_rps "$base")") |"
    done
fi
echo
echo "Commands (PORT is the server's loopback port):"
echo
for label in "${ROWS[@]}"; do
    echo "- $label: \`${CMD[$label]}\`"
done
echo "- servers: \`camloop serve --listen 127.0.0.1:0 --http off --rtsp off --camera none --framing line\` (the baseline too);" \
    "\`minimal_loop 127.0.0.1:0\` (\`cargo build --release --example minimal_loop\`);" \
    "\`redis-server --port PORT --bind 127.0.0.1 --save '' --appendonly no --maxclients $((HOLD_CONNS + 1000))\`;" \
    "\`python3 benches/reference/classic_server.py PORT\`"
