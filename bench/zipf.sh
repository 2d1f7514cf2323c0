#!/usr/bin/env bash
# Benchmark: a realistic workload through nginx. Client addresses follow a Zipf distribution over
# 1,000,000 addresses (IPv4 and IPv6 /64s, half each), so a few are very frequent and most are
# rare, as on a real site; ipcheck-auth runs the shipped example config (local tier of 100,000,
# Redis on, the provider stand-in answering in 20 ms). Reported: the local and Redis hit ratios,
# provider calls per second, throughput and p99 through nginx, Redis memory and the service's
# RSS; next to the same stream against the do-nothing auth backend (noop-auth), in the same run.
#
# Each round starts from empty tiers (FLUSHALL, a new service), warms for WARM seconds (default
# 10, not measured), then measures SECS seconds; the hit ratios are those of the measured run.
#
# Usage: bench/zipf.sh [seconds per run, default 10 (the maximum)]
#        ROUNDS=3 WARM=20 bench/zipf.sh
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SECS=${1:-10}
ROUNDS=${ROUNDS:-2}
WARM=${WARM:-10}
[ "$SECS" -le 10 ] || die "runs are bounded to 10 s"
CONNS=64
PROVIDER_MS=20
ADDRESSES=1000000

need_nginx_run

REDIS_PORT=$(free_port)
start_redis redis "$REDIS_PORT" module
start_provider "$PROVIDER_MS"
start_noop

# Zipf(1) by inversion of its continuous approximation: k = floor(N^u) for u uniform in [0, 1)
# gives P(k) = log((k+1)/k) / log(N), close to 1/(k ln N) (exact for large k; the head is a
# little flatter). Even k: IPv4 10.x.y.z; odd k: IPv6 2001:db8:<hi>:<lo>::1, one /64 each.
cat >"$WORK/zipf.lua" <<LUA
local n = $ADDRESSES
local logn = math.log(n)
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("seed", threads * 7919)
end
function init(args)
  math.randomseed(seed)
end
function request()
  local k = math.floor(math.exp(math.random() * logn))
  local addr
  if k % 2 == 0 then
    addr = string.format("10.%d.%d.%d", math.floor(k / 65536) % 256, math.floor(k / 256) % 256, k % 256)
  else
    addr = string.format("2001:db8:%x:%x::1", math.floor(k / 65536), k % 65536)
  end
  return wrk.format("GET", "/", { ["X-Forwarded-For"] = addr })
end
LUA

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
redis_bytes() { redis-cli -p "$REDIS_PORT" INFO memory | awk -F: '/^used_memory:/ { print $2 + 0 }'; }
counter() { metric "$METRICS_PORT" "$1"; }

declare -A SUM
add() { SUM[$1]=$(awk -v a="${SUM[$1]:-0}" -v b="$2" 'BEGIN { print a + b }'); }

for round in $(seq "$ROUNDS"); do
    log "--- round $round of $ROUNDS"
    redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
    start_service svc-z
    start_nginx z "$SERVICE_PORT"
    wrk -t2 -c"$CONNS" -d"${WARM}s" -s "$WORK/zipf.lua" "http://127.0.0.1:$NGINX_PORT/" >/dev/null
    l0=$(counter 'ipcheck_cache_total{tier="local"')
    r0=$(counter 'ipcheck_cache_total{tier="redis"')
    p0=$(counter 'ipcheck_cache_total{tier="provider"')
    t0=$(counter 'ipcheck_cache_total{')
    calls0=$(counter 'ipcheck_provider_requests_total')
    measure z "$WORK/zipf.lua" "$SERVICE_PID"
    total=$(($(counter 'ipcheck_cache_total{') - t0))
    local_hits=$(($(counter 'ipcheck_cache_total{tier="local"') - l0))
    redis_hits=$(($(counter 'ipcheck_cache_total{tier="redis"') - r0))
    provider=$(($(counter 'ipcheck_cache_total{tier="provider"') - p0))
    calls=$(($(counter 'ipcheck_provider_requests_total') - calls0))
    add local "$(ratio "$local_hits" "$total")"
    add redis "$(ratio "$redis_hits" "$total")"
    add calls "$(awk -v c="$calls" -v s="$SECS" 'BEGIN { printf "%.0f", c / s }')"
    add redis_mb "$(awk -v b="$(redis_bytes)" 'BEGIN { printf "%.1f", b / 1048576 }')"
    add rss_mb "$(awk -v k="$(rss_kb "$SERVICE_PID")" 'BEGIN { printf "%.1f", k / 1024 }')"
    add z_rps "${RPS[z]}"
    add z_p99 "${P99[z]}"
    log "(z) $total decisions: local $local_hits, redis $redis_hits, provider $provider; provider calls $calls"
    stop "$NGINX_PID"
    stop "$SERVICE_PID"

    # (z0) the same stream against the do-nothing backend.
    start_nginx z0 "$NOOP_PORT"
    wrk -t2 -c"$CONNS" -d2s -s "$WORK/zipf.lua" "http://127.0.0.1:$NGINX_PORT/" >/dev/null
    measure z0 "$WORK/zipf.lua" "$NOOP_PID"
    add z0_rps "${RPS[z0]}"
    add z0_p99 "${P99[z0]}"
    stop "$NGINX_PID"
done

mean() { awk -v s="${SUM[$1]}" -v n="$ROUNDS" -v f="$2" 'BEGIN { printf f, s / n }'; }
z_rps=$(mean z_rps "%.0f")
z0_rps=$(mean z0_rps "%.0f")
echo "zipf: local_hit=$(mean local "%.2f") redis_hit=$(mean redis "%.2f") provider_calls_per_s=$(mean calls "%.0f") req/s=$z_rps p99=$(mean z_p99 "%.2f")ms noop_req/s=$z0_rps noop_p99=$(mean z0_p99 "%.2f")ms z/noop=$(ratio "$z_rps" "$z0_rps") redis_mem=$(mean redis_mb "%.1f")MB service_rss=$(mean rss_mb "%.1f")MB"
