#!/usr/bin/env bash
# Benchmark 8: network lists inside Redis (issue #12's measured targets), at 1,000,000 random
# networks in one list (bench/src/netgen.rs: half IPv4 /16../32, half IPv6 /32../64, one value,
# no expiry, the same every run):
#
#   load        IPCHECK NETADD commands of 1,000 networks each, 16 in flight per round trip
#               (bench's `netlist-load`): seconds and networks/s
#   memory      MEMORY USAGE of the list key / networks (what the module reports), and the
#               growth of INFO's used_memory over the load / networks (what the allocator holds);
#               both again after SAVE and a restart (the list as an RDB load builds it: the
#               start_redis config has no DEBUG command). Target <= 64 B.
#   match       IPCHECK NETMATCH <ip> <list> against GET <key>, same clients, same addresses
#               (bench's `redis-load`, as bench/redis-module.sh): throughput ratio at pipeline 1
#               and 16, each pair twice (ROUNDS), the ratio of the sums. Every address matches
#               (10.0.0.0/8 is in the list), so every reply is the full [network, value, list].
#   local LPM   criterion: redis-module/benches/netlist_match.rs, one longest match at 1M
#               networks in the module's layout and in prefix_trie::PrefixMap. Target < 150 ns.
#
# redis-server is pinned to CPU 0 and the load generators to CPU 1 (taskset).
# Usage: bench/netlists.sh [seconds per run, default 5, at most 10]
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SECS=${1:-5}
[ "$SECS" -le 10 ] || die "runs are bounded to 10 s"
ROUNDS=${ROUNDS:-2}
NETWORKS=${NETWORKS:-1000000}
CLIENTS=50
KEYS=10000
LIST='ipcheck:{lists}:bench'

need redis-server redis-server
need redis-cli redis-tools
need taskset util-linux
build_release

PORT=$(free_port)
start_redis redis "$PORT" module
taskset -pc 0 "$REDIS_PID" >/dev/null
cli() { redis-cli -p "$PORT" "$@"; }
used_memory() { cli INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }
per() { awk -v a="$1" -v n="$2" 'BEGIN { printf "%.1f", a / n }'; }

log "loading $NETWORKS networks into $LIST"
before=$(used_memory)
out=$(taskset -c 1 "$REL/netlist-load" "$PORT" "$LIST" "$NETWORKS" 1000 16)
load_secs=$(sed -E 's/.*seconds=([0-9.]+).*/\1/' <<<"$out")
added=$(sed -E 's/.*added=([0-9]+).*/\1/' <<<"$out")
[ "$added" -eq "$NETWORKS" ] || die "the list holds $added networks, not $NETWORKS"
after=$(used_memory)
usage=$(cli MEMORY USAGE "$LIST")
per_usage=$(per "$usage" "$NETWORKS")
per_used=$(per "$((after - before))" "$NETWORKS")
rate=$(awk -v n="$NETWORKS" -v s="$load_secs" 'BEGIN { printf "%.0f", n / s }')
log "load: $load_secs s ($rate networks/s); MEMORY USAGE $usage B = $per_usage B/network; used_memory +$((after - before)) B = $per_used B/network"
log "NETINFO: $(cli IPCHECK NETINFO "$LIST" | tr '\n' ' ')"

log "SAVE, restart redis-server on the RDB"
[ "$(cli SAVE)" = OK ] || die "SAVE failed"
stop "$REDIS_PID"
t0=$(now)
start_redis redis "$PORT" module
# Redis answers PING with LOADING while it reads the RDB.
loaded() { cli INFO persistence | tr -d '\r' | grep -qx 'loading:0'; }
await 120 "the RDB load" loaded
reload_secs=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
taskset -pc 0 "$REDIS_PID" >/dev/null
[ "$(cli IPCHECK NETINFO "$LIST" | sed -n 2p)" -gt 0 ] || die "the list did not come back from the RDB"
usage_rl=$(cli MEMORY USAGE "$LIST")
per_usage_rl=$(per "$usage_rl" "$NETWORKS")
per_used_rl=$(per "$(($(used_memory) - before))" "$NETWORKS")
log "after the restart ($reload_secs s): MEMORY USAGE $per_usage_rl B/network; used_memory $per_used_rl B/network over the empty server"

[ "$(cli IPCHECK NETADD "$LIST" 10.0.0.0/8 VALUE bench)" = 1 ] || die "10.0.0.0/8 was in the list already"
[ "$(cli IPCHECK NETMATCH 10.0.0.1 "$LIST" | head -1)" != "" ] || die "NETMATCH found nothing"
taskset -c 1 "$REL/redis-load" "$PORT" 1 64 1 "$KEYS" SET 'ipcheck:{ip}' block >/dev/null

load() {
    local pipeline=$1
    shift
    taskset -c 1 "$REL/redis-load" "$PORT" "$CLIENTS" "$pipeline" "$SECS" "$KEYS" "$@" |
        awk -F'[= ]' '{ if ($4 != 0) { print "errors: " $0 > "/dev/stderr"; exit 1 } print $2 }'
}
declare -A SUM
add() { SUM[$1]=$(awk -v a="${SUM[$1]:-0}" -v b="$2" 'BEGIN { print a + b }'); }
for pipeline in 1 16; do
    for round in $(seq "$ROUNDS"); do
        r=$(load "$pipeline" GET 'ipcheck:{ip}')
        add "get$pipeline" "$r"
        log "P$pipeline round $round: GET              $r ops/s"
        r=$(load "$pipeline" IPCHECK NETMATCH '{ip}' "$LIST")
        add "match$pipeline" "$r"
        log "P$pipeline round $round: IPCHECK NETMATCH $r ops/s"
    done
done
m1=$(ratio "${SUM[match1]}" "${SUM[get1]}")
m16=$(ratio "${SUM[match16]}" "${SUM[get16]}")

log "--- criterion: longest match at 1M networks"
(cd "$ROOT" && cargo bench --profile profiling --locked -q -p ipcheck-redis --bench netlist_match -- --warm-up-time 1 \
    --measurement-time "$SECS" 2>&1) | tee "$WORK/criterion.txt" >&2
ns() {
    awk -v n="$1" '
        index($0, n) == 1 { found = 1 }
        found && /time:/ {
            match($0, /\[[^]]*\]/)
            split(substr($0, RSTART + 1, RLENGTH - 2), t, " ")
            v = t[3]; u = t[4]
            if (u == "ps") v /= 1000; else if (u == "µs" || u == "us") v *= 1000
            printf "%.1f\n", v
            exit
        }' "$WORK/criterion.txt"
}
sorted_ns=$(ns netlist_match/sorted_1m)
trie_ns=$(ns netlist_match/prefix_trie_1m)

echo "netlists: $NETWORKS networks: load=${load_secs}s ($rate/s) | memory MEMORY USAGE=$per_usage_rl B/network ($(meets "$per_usage_rl" "<=" 64) <=64), used_memory=$per_used_rl B/network; right after load: $per_usage B, $per_used B; restart on the RDB ${reload_secs}s | NETMATCH/GET P1=$m1 P16=$m16 | local LPM at 1M: prefix-trie=$trie_ns ns ($(meets "$trie_ns" "<=" 149.9) <150), the module's sorted layout=$sorted_ns ns ($(meets "$sorted_ns" "<=" 149.9) <150)"
