#!/usr/bin/env bash
# Redis SIGSTOPped under load: local-miss throughput with Redis up vs Redis frozen.
#
# The service runs the shipped ipcheck.example.toml (redis.timeout 50 ms, [redis.breaker]
# failures 5, cooldown 5 s; default policy, on_redis_error "continue"), the provider stand-in
# answers at once. Every request carries a new address in X-Real-IP (wrk straight to /auth, as
# nginx would send it), so every one misses the local tier:
#   up       Redis answers: IPCHECK GET (a miss), the provider, IPCHECK SET
#   stopped  redis-server SIGSTOPped (the TCP connection stays open, nothing answers: the worst
#            case, a timeout rather than a refusal), measured once Redis's breaker has opened;
#            lookups then skip Redis, except one probe per cooldown, which waits the 50 ms.
# Contract (issue 10): stopped / up >= 0.5. Redis gets SIGCONT after each stopped run, and the
# next round waits for the breaker to close again.
#
# Usage: bench/redis-stop.sh [seconds per run, default 10 (the maximum)]
#        ROUNDS=3 bench/redis-stop.sh      (default 2; ratio of the sums)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SECS=${1:-10}
ROUNDS=${ROUNDS:-2}
[ "$SECS" -le 10 ] || die "runs are bounded to 10 s"
CONNS=64

need wrk wrk
need redis-server redis-server
need redis-cli redis-tools
need curl curl
build_release

REDIS_PORT=$(free_port)
start_redis redis "$REDIS_PORT" module
start_provider 0
write_rotation_lua "$WORK/rotate.lua"
start_service svc

breaker() { [ "$(metric "$METRICS_PORT" "ipcheck_breaker_state{dependency=\"redis\",state=\"$1\"")" -eq 1 ]; }
# One request for a new address, so that a lookup (and so a Redis call) happens.
N=0
poke() {
    N=$((N + 1))
    curl -s -o /dev/null -H "X-Real-IP: 100.64.$((N / 256 % 256)).$((N % 256))" \
        "http://127.0.0.1:$SERVICE_PORT/auth" || true
}
opened() { poke && breaker open; }

# answered: IPCHECK GETs Redis answered (a hit or a miss; errors and skipped calls not counted).
answered() {
    echo $(($(metric "$METRICS_PORT" 'ipcheck_redis_lookups_total{result="hit"') +
        $(metric "$METRICS_PORT" 'ipcheck_redis_lookups_total{result="miss"')))
}

# measure <name> <first octet>: one wrk run of new addresses; records req/s under <name>.
declare -A SUM
measure() {
    local name=$1 result rps p99 bad err
    local rej0 get0
    rej0=$(metric "$METRICS_PORT" 'ipcheck_breaker_rejected_total{dependency="redis"')
    get0=$(answered)
    result=$(wrk_service "$WORK/wrk-$name-$round.txt" 2 "$CONNS" "$SECS" "$WORK/rotate.lua" "$2")
    read -r rps p99 bad err <<<"$result"
    log "($name) $rps req/s, p99 $p99 ms, non-2xx $bad, socket errors $err;" \
        "IPCHECK GETs Redis answered: $(($(answered) - get0))," \
        "Redis calls (GETs and write-back SETs) skipped by the open breaker: $(($(metric "$METRICS_PORT" 'ipcheck_breaker_rejected_total{dependency="redis"') - rej0))"
    SUM[$name]=$(awk -v a="${SUM[$name]:-0}" -v b="$rps" 'BEGIN { print a + b }')
}

for round in $(seq "$ROUNDS"); do
    log "--- round $round of $ROUNDS"
    await 30 "Redis's breaker to be closed" breaker closed
    measure up $((30 + round))

    kill -STOP "$REDIS_PID"
    log "redis-server SIGSTOPped"
    await 30 "Redis's breaker to open" opened
    measure stopped $((40 + round))
    kill -CONT "$REDIS_PID"
    log "redis-server SIGCONTinued"
done
await 30 "Redis's breaker to close after SIGCONT" breaker closed

up=$(awk -v s="${SUM[up]}" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }')
stopped=$(awk -v s="${SUM[stopped]}" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }')
r=$(ratio "$stopped" "$up")
log ""
log "local misses (mean of $ROUNDS rounds): Redis up $up req/s, Redis SIGSTOPped (breaker open) $stopped req/s"
echo "redis-stop: up=${up}req/s stopped=${stopped}req/s stopped/up=$r ($(meets "$r" ">=" 0.5) >=0.5)"
