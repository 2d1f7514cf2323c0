#!/usr/bin/env bash
# Address-rotation attack: every request a new client address, against a provider budget.
#
# The service runs the shipped ipcheck.example.toml with [provider.budget] rate = 50 (RATE),
# burst = 50 (BURST), shared through Redis (shared = true), and the default policy (on_error open).
# wrk talks to the service's /auth directly with X-Real-IP, as nginx would: nginx's own work is
# nginx.sh's subject, and on two shared cores it would only hide the service's.
#
# Each round, two wrk processes (one thread, 32 connections each) run side by side for SECS:
#   baseline  hits on 1,000 warm addresses  +  the same hits from a second wrk
#   attack    hits on 1,000 warm addresses  +  a new address on every request (the attack)
#   stale     hits on 1,000 warm addresses  +  rotation through a pool of 65,536 addresses whose
#             Redis entries are stale (a proxy network seen before): over budget, stale facts
# so the hit wrk shares the machine with the same number of connections in both, and
# hits(attack) / hits(baseline) is what the attack costs the hit path. Around that pair, the
# hit wrk alone (before, and after the attack): after / before shows whether the attack left
# anything behind (a local tier filled with attack addresses, a budget still owed).
# The provider calls are counted at the stand-in (its GET /calls), not taken from the service.
#
# Usage: bench/rotation.sh [seconds per run, default 10 (the maximum)]
#        ROUNDS=3 bench/rotation.sh      (default 2; ratios of the sums)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SECS=${1:-10}
ROUNDS=${ROUNDS:-2}
[ "$SECS" -le 10 ] || die "runs are bounded to 10 s"
CONNS=32
PROVIDER_MS=20
RATE=50
BURST=50

need wrk wrk
need redis-server redis-server
need redis-cli redis-tools
need curl curl
build_release

REDIS_PORT=$(free_port)
start_redis redis "$REDIS_PORT" module
start_provider "$PROVIDER_MS"
write_rotation_lua "$WORK/rotate.lua"
write_warm_lua "$WORK/hits.lua"

# The warm addresses go into Redis through a service without a budget (1,000 provider calls
# would take the budgeted one 20 s), then into the budgeted service's local tier from Redis.
start_service warm
wrk -t1 -c"$CONNS" -d2s -s "$WORK/hits.lua" "http://127.0.0.1:$SERVICE_PORT/auth" >/dev/null
log "warm-up: $(provider_calls) provider calls for the 1,000 hit addresses"
stop "$SERVICE_PID"

# The second attack rotates through a pool the fleet has seen before (a proxy network coming
# back): 65,536 addresses 12.0.x.y whose entries in Redis are stale (fresh for 1 s, then stale
# for 7 days, as the service writes them), so over budget they decide from stale facts.
{
    for x in $(seq 0 255); do
        for y in $(seq 0 255); do
            echo "IPCHECK SET 12.0.$x.$y allow EX 1 STALE 604800 SOURCE api"
        done
    done
} | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
sleep 1.5 # the 1 s of freshness runs out; nothing to poll for
cat >"$WORK/pool.lua" <<'LUA'
local n = 0
function init(args)
  n = tonumber(args[1] or "0")
end
function request()
  n = (n + 1) % 65536
  local addr = string.format("12.0.%d.%d", math.floor(n / 256), n % 256)
  return wrk.format("GET", "/auth", { ["X-Real-IP"] = addr })
end
LUA

start_service budget "rate = 0=>rate = $RATE" "burst = 1=>burst = $BURST" "shared = false=>shared = true"
wrk -t1 -c"$CONNS" -d2s -s "$WORK/hits.lua" "http://127.0.0.1:$SERVICE_PORT/auth" >/dev/null
[ "$(metric "$METRICS_PORT" 'ipcheck_provider_requests_total')" -eq 0 ] ||
    log "WARNING: the budgeted service's warm-up asked the provider (the hit addresses were not all in Redis)"

declare -A SUM
add() { SUM[$1]=$(awk -v a="${SUM[$1]:-0}" -v b="$2" 'BEGIN { print a + b }'); }

# pair <name> <second script> [its args]: the hit wrk and a second wrk side by side; records
# the hit wrk's req/s and p99 and the second's req/s under <name>.
pair() {
    local name=$1 second=$2
    shift 2
    wrk_service "$WORK/wrk-$name-other.txt" 1 "$CONNS" "$SECS" "$second" "$@" >/dev/null &
    local other=$!
    local hits
    hits=$(wrk_service "$WORK/wrk-$name-hits.txt" 1 "$CONNS" "$SECS" "$WORK/hits.lua" 0)
    wait "$other"
    local rps p99 bad err orps
    read -r rps p99 bad err <<<"$hits"
    read -r orps _ <<<"$(wrk_summary "$WORK/wrk-$name-other.txt")"
    log "($name) hits: $rps req/s, p99 $p99 ms, non-2xx $bad, socket errors $err; alongside: $orps req/s"
    add "$name-hits" "$rps"
    add "$name-p99" "$p99"
    add "$name-other" "$orps"
}

series_before() {
    local s
    for s in "$@"; do
        BEFORE[$s]=$(metric "$METRICS_PORT" "$s")
    done
}
delta() { echo $(($(metric "$METRICS_PORT" "$1") - ${BEFORE[$1]})); }

# solo <name>: the hit wrk alone; records its req/s under <name>.
solo() {
    local rps p99 bad err
    read -r rps p99 bad err <<<"$(wrk_service "$WORK/wrk-$1.txt" 1 "$CONNS" "$SECS" "$WORK/hits.lua" 0)"
    log "($1) hits alone: $rps req/s, p99 $p99 ms, non-2xx $bad, socket errors $err"
    add "$1" "$rps"
}

# attack <name> <script> <arg>: the hit wrk beside an attack wrk running <script>; counts the
# provider calls at the stand-in against what the budget allows, and logs what the attack
# requests got, by tier.
attack() {
    local name=$1 script=$2 arg=$3
    series_before 'ipcheck_cache_total{tier="local"' 'ipcheck_cache_total{tier="redis"' \
        'ipcheck_provider_requests_total' 'ipcheck_provider_budget_denied_total' \
        'ipcheck_cache_total{tier="provider"' 'ipcheck_cache_total{tier="stale"' \
        'ipcheck_cache_total{tier="none"' 'ipcheck_decision_reasons_total{verdict="allow",reason="provider-error"'
    local calls0 t0 t1 calls elapsed allowed
    calls0=$(provider_calls)
    t0=$(now)
    pair "$name" "$script" "$arg"
    t1=$(now)
    calls=$(($(provider_calls) - calls0))
    elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    allowed=$(awk -v r="$RATE" -v e="$elapsed" -v b="$BURST" 'BEGIN { printf "%.0f", r * e + b }')
    log "($name) provider calls at the stand-in: $calls in $elapsed s ($(ratio "$calls" "$elapsed")/s; the budget allows $allowed);" \
        "the service counted $(delta 'ipcheck_provider_requests_total') calls, $(delta 'ipcheck_provider_budget_denied_total') denied by the budget"
    log "($name) answers: local $(delta 'ipcheck_cache_total{tier="local"'), redis $(delta 'ipcheck_cache_total{tier="redis"'), provider $(delta 'ipcheck_cache_total{tier="provider"'), stale $(delta 'ipcheck_cache_total{tier="stale"'), none $(delta 'ipcheck_cache_total{tier="none"') (allowed by on_error, provider-error: $(delta 'ipcheck_decision_reasons_total{verdict="allow",reason="provider-error"'))"
    add "$name-calls" "$calls"
    add "$name-elapsed" "$elapsed"
    add "$name-allowed" "$allowed"
}

declare -A BEFORE
for round in $(seq "$ROUNDS"); do
    log "--- round $round of $ROUNDS"
    solo before
    series_before 'ipcheck_cache_total{tier="local"' 'ipcheck_cache_total{tier="redis"'
    pair base "$WORK/hits.lua" 500
    log "(base) answers: local $(delta 'ipcheck_cache_total{tier="local"'), redis $(delta 'ipcheck_cache_total{tier="redis"')"

    attack attack "$WORK/rotate.lua" $((20 + round))
    attack stale "$WORK/pool.lua" $((round * 20000))
    solo after
done

mean() { awk -v s="${SUM[$1]}" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }'; }
mean2() { awk -v s="${SUM[$1]}" -v n="$ROUNDS" 'BEGIN { printf "%.2f", s / n }'; }
after_ratio=$(ratio "${SUM[after]}" "${SUM[before]}")
hit_ratio=$(ratio "${SUM[attack-hits]}" "${SUM[base-hits]}")
stale_ratio=$(ratio "${SUM[stale-hits]}" "${SUM[base-hits]}")
p99_ratio=$(ratio "${SUM[attack-p99]}" "${SUM[base-p99]}")
calls_per_s=$(ratio "${SUM[attack-calls]}" "${SUM[attack-elapsed]}")
stale_calls_per_s=$(ratio "${SUM[stale-calls]}" "${SUM[stale-elapsed]}")
# within <name>: "met" when that attack's calls stayed within rate x elapsed + burst per run.
within() { awk -v c="${SUM[$1-calls]}" -v a="${SUM[$1-allowed]}" 'BEGIN { print (c <= a) ? "met" : "MISSED" }'; }
cat <<EOF >&2

(mean of $ROUNDS rounds)             hits req/s  hits p99 ms  alongside req/s
baseline: hits + hits              $(mean base-hits)       $(mean2 base-p99)        $(mean base-other)
attack: hits + rotating addresses  $(mean attack-hits)       $(mean2 attack-p99)        $(mean attack-other)
attack on a stale pool: the same   $(mean stale-hits)       $(mean2 stale-p99)        $(mean stale-other)
hits alone, before the attack      $(mean before)
hits alone, after the attack       $(mean after)
provider calls, budget rate $RATE/s and burst $BURST per run:
  attack: ${SUM[attack-calls]} in ${SUM[attack-elapsed]} s = $calls_per_s/s, at most ${SUM[attack-allowed]}
  stale pool: ${SUM[stale-calls]} in ${SUM[stale-elapsed]} s = $stale_calls_per_s/s, at most ${SUM[stale-allowed]} (stale facts decided meanwhile are kept locally, so fewer are asked for)
EOF
echo "rotation: calls/s=$calls_per_s vs rate=$RATE ($(within attack) <=rate*t+burst) attack=$(mean attack-other)req/s hits_attack/hits_base=$hit_ratio p99_attack/p99_base=$p99_ratio [stale pool: calls/s=$stale_calls_per_s ($(within stale)) attack=$(mean stale-other)req/s hits_attack/hits_base=$stale_ratio] after/before=$after_ratio"
