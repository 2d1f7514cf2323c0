#!/usr/bin/env bash
# Benchmark 5: what the per-decision log (`[log] decisions`) costs the service, against the same
# service with it off, measured in the same run.
#
#   off      log.decisions = "off" (the default): the baseline
#   sampled  log.decisions = "all", decisions_sample = 0.01: a random draw per decision, 1% logged
#   all      log.decisions = "all": a plain-format line per decision, to a file
#
# wrk asks ipcheck-auth's /auth directly (no nginx, so the service's own cost is as large a share
# as it can be: through nginx the ratios are closer to 1), local-tier hits over 1,000 addresses,
# each request with an X-Request-Id as nginx sends it. The variants run interleaved, ROUNDS times.
# Targets: sampled/off >= 0.95 (off and sampled-out must cost nothing measurable).
# Usage: bench/decision-log.sh   (SECS=5 ROUNDS=2 CONNS=32 by default)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SECS=${SECS:-5}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-32}
[ "$SECS" -le 10 ] || die "runs are bounded to 10 s"
need wrk wrk
log "building ipcheck-auth (profile profiling) into $REL"
(cd "$ROOT" && cargo build --profile profiling --locked -q -p ipcheck-auth) >&2

cat >"$WORK/clients.lua" <<'EOF'
local n = 0
request = function()
    n = n + 1
    local i = n % 1000
    local ip = "10.0." .. math.floor(i / 256) .. "." .. (i % 256)
    return wrk.format("GET", "/auth", { ["X-Real-IP"] = ip, ["X-Request-Id"] = string.format("%032x", n) })
end
EOF

# start_service <name> <[log] lines>: ipcheck-auth, no Redis, no provider, its log to a file.
start_service() {
    local name=$1 log_lines=$2
    printf '[log]\n%s\n\n[policies.default]\non_error = "open"\n' "$log_lines" >"$WORK/$name.toml"
    SERVICE_PORT=$(free_port)
    "$REL/ipcheck-auth" --config "$WORK/$name.toml" --listen "127.0.0.1:$SERVICE_PORT" \
        --metrics-listen "127.0.0.1:$(free_port)" --admin-listen "" >"$WORK/$name.log" 2>&1 &
    SERVICE_PID=$!
    PIDS+=("$SERVICE_PID")
    wait_port "$SERVICE_PORT"
}

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

declare -A RPS_SUM CPU_SUM
measure() {
    local name=$1 lines=$2 t0 rps
    start_service "$name" "$lines"
    wrk -t2 -c"$CONNS" -d2s -s "$WORK/clients.lua" "http://127.0.0.1:$SERVICE_PORT/" >/dev/null
    t0=$(ticks "$SERVICE_PID")
    rps=$(wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$WORK/clients.lua" "http://127.0.0.1:$SERVICE_PORT/" |
        awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
    local cpu
    cpu=$(awk -v t=$(($(ticks "$SERVICE_PID") - t0)) -v hz="$(getconf CLK_TCK)" -v r=$((rps * SECS)) \
        'BEGIN { printf "%.2f", t * 1e6 / hz / r }')
    log "($name) $rps req/s, service CPU $cpu us per request, $(grep -c 'ipcheck::decision' "$WORK/$name.log") decision lines"
    RPS_SUM[$name]=$(awk -v a="${RPS_SUM[$name]:-0}" -v b="$rps" 'BEGIN { print a + b }')
    CPU_SUM[$name]=$(awk -v a="${CPU_SUM[$name]:-0}" -v b="$cpu" 'BEGIN { print a + b }')
    stop "$SERVICE_PID"
}

for round in $(seq "$ROUNDS"); do
    log "--- round $round of $ROUNDS"
    measure off 'decisions = "off"'
    measure sampled $'decisions = "all"\ndecisions_sample = 0.01'
    measure all 'decisions = "all"'
done

mean() { awk -v s="$1" -v n="$ROUNDS" 'BEGIN { printf "%.2f", s / n }'; }
so=$(ratio "${RPS_SUM[sampled]}" "${RPS_SUM[off]}")
ao=$(ratio "${RPS_SUM[all]}" "${RPS_SUM[off]}")
echo "decision-log: sampled/off=$so ($(meets "$so" ">=" 0.95) >=0.95) all/off=$ao | service CPU us/request off=$(mean "${CPU_SUM[off]}") sampled=$(mean "${CPU_SUM[sampled]}") all=$(mean "${CPU_SUM[all]}")"
