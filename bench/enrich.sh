#!/usr/bin/env bash
# Benchmark: allow-on-miss and the enrichment worker (docs/enrichment.md), each against a
# baseline measured in the same run.
#
#   (c)  ipcheck-auth, local-tier hits through nginx        the shipped example, 1,000 clients
#   (q)  cold addresses through nginx, allow-on-miss         location /'s policy (lenient) with
#        a new address on every request, provider 20 ms      on_miss = "allow": answered at once,
#                                                            read in the background (batched)
#                                                            and queued (no worker running)
#   (wb) one worker draining what (q) queued, under a        [provider.budget] rate = $RATE
#        budget rate of $RATE calls/s                         (burst $BURST)
#   (wu) the same without a budget                           bound: batch / 20 ms
#
# Reported: q/c (cold-address throughput against local hits: how close answering without the
# provider comes to the best case), wb/rate (how much of the budget a worker uses) and
# wu/bound (a worker against what its batch of concurrent 20 ms calls allows).
#
# Usage: bench/enrich.sh [seconds per run, default 10 (the maximum)]
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SECS=${1:-10}
[ "$SECS" -le 10 ] || die "runs are bounded to 10 s"
CONNS=64
PROVIDER_MS=20
RATE=${RATE:-200}
BURST=${BURST:-20}
BATCH=16

need_nginx_run

REDIS_PORT=$(free_port)
start_redis redis "$REDIS_PORT" module
start_provider "$PROVIDER_MS"

# 1,000 client addresses in turn (as nginx.sh's (c)), and a new one on every request.
write_clients_lua "$WORK/clients.lua"
write_rotation_lua "$WORK/cold.lua" / X-Forwarded-For

ALLOW_ON_MISS=$'[policies.lenient]\nblock = []=>[policies.lenient]\non_miss = "allow"\nblock = []'
QUEUE='ipcheck:{enrich}:queue'

# (c) local-tier hits: the baseline.
start_service svc-c
start_nginx c "$SERVICE_PORT"
warm "$WORK/clients.lua"
measure c "$WORK/clients.lua" "$SERVICE_PID"
stop "$NGINX_PID"
stop "$SERVICE_PID"

# (q) cold addresses, answered at once and queued.
calls_before=$(provider_calls)
start_service svc-q "$ALLOW_ON_MISS"
start_nginx q "$SERVICE_PORT"
measure q "$WORK/cold.lua" "$SERVICE_PID" 31
queued=$(tier_count "$METRICS_PORT" queued)
added=$(metric "$METRICS_PORT" 'ipcheck_enrich_queued_total{result="added"')
dropped=$(metric "$METRICS_PORT" 'ipcheck_enrich_queued_total{result="dropped"')
reads=$(metric "$METRICS_PORT" 'ipcheck_enrich_reads_total{result="miss"')
log "(q) queued answers: $queued, background reads finding nothing: $reads, added to the stream: $added, dropped (buffer full): $dropped, provider calls: $(($(provider_calls) - calls_before)), stream length: $(redis-cli -p "$REDIS_PORT" XLEN "$QUEUE")"
stop "$NGINX_PID"
stop "$SERVICE_PID"

# start_worker <name> <edit...>: one worker on the example config with the edits; sets
# WORKER_PID and WORKER_METRICS.
start_worker() {
    local name=$1
    shift
    write_config "$name" "batch = 16=>batch = $BATCH" "$@"
    WORKER_METRICS=$(free_port)
    IPASIS_API_KEY=bench "$REL/ipcheck-auth" --config "$WORK/$name.toml" worker \
        --consumer "$name" --metrics-listen "127.0.0.1:$WORKER_METRICS" >"$WORK/$name.log" 2>&1 &
    WORKER_PID=$!
    PIDS+=("$WORKER_PID")
    wait_port "$WORKER_METRICS"
}

WRITTEN='ipcheck_enrich_entries_total{result="written"'
written_started() { [ "$(metric "$WORKER_METRICS" "$WRITTEN")" != 0 ]; }

# run_worker <name> <edit...>: the worker's written entries per second over SECS.
run_worker() {
    local name=$1
    shift
    start_worker "$name" "$@"
    # The first lookups open the provider connections: measured from the first write on.
    await 10 "the first write of $name" written_started
    local w0 t0 w1 t1
    w0=$(metric "$WORKER_METRICS" "$WRITTEN")
    t0=$(now)
    sleep "$SECS"
    w1=$(metric "$WORKER_METRICS" "$WRITTEN")
    t1=$(now)
    log "($name) $(curl -s "http://127.0.0.1:$WORKER_METRICS/metrics" | awk '/^ipcheck_enrich_entries_total|^ipcheck_provider_requests_total|^ipcheck_redis_errors_total/ && $NF != 0 { printf "%s ", $0 }')"
    stop "$WORKER_PID"
    awk -v w="$((w1 - w0))" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", w / (b - a) }'
}

[ "$(redis-cli -p "$REDIS_PORT" XLEN "$QUEUE")" -gt $(((RATE + BATCH * 1000 / PROVIDER_MS) * SECS * 2)) ] ||
    log "WARNING: the queue may run dry during the worker runs (raise SECS of (q) or lower RATE)"
WB=$(run_worker wb "rate = 0=>rate = $RATE" "burst = 1=>burst = $BURST")
log "(wb) written per second under rate $RATE: $WB"
WU=$(run_worker wu)
log "(wu) written per second without a budget: $WU"

BOUND=$((BATCH * 1000 / PROVIDER_MS))
qc=$(ratio "${RPS[q]}" "${RPS[c]}")
qc99=$(ratio "${P99[q]}" "${P99[c]}")
wbr=$(ratio "$WB" "$RATE")
wub=$(ratio "$WU" "$BOUND")
cat <<EOT >&2

variant                                  req/s     p99 ms
(c) ipcheck, local hits                  ${RPS[c]}    ${P99[c]}
(q) cold, allow-on-miss (provider ${PROVIDER_MS} ms)  ${RPS[q]}    ${P99[q]}
(wb) worker, budget rate $RATE/s           $WB written/s
(wu) worker, no budget (bound $BOUND/s)     $WU written/s
EOT
echo "enrich: q/c=$qc ($(meets "$qc" ">=" 0.8) >=0.8) q_p99/c_p99=$qc99 wb/rate=$wbr ($(meets "$wbr" ">=" 0.9) >=0.9) wu/bound=$wub ($(meets "$wub" ">=" 0.8) >=0.8)"
