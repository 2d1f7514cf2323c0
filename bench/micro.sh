#!/usr/bin/env bash
# Benchmark 4: criterion micro-benchmarks, in ns per operation (criterion's middle estimate).
#
#   core/benches/hot_path.rs           normalization of v4, IPv4-mapped and v6 text; policy
#   auth-service/benches/local_tier.rs a local-tier hit, alone and with two threads hitting the
#                                      same keys at once (on 2 cores: both cores busy)
#   auth-service/benches/metrics_cost.rs the metrics of one decision, ours vs prometheus-client,
#                                      one and two threads; the /auth handler's before/after
#
# Targets: normalization < 100 ns, local hit with both cores busy < 200 ns.
# Usage: bench/micro.sh [seconds of measurement per benchmark, default 3]
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SECS=${1:-3}
[ "$SECS" -le 10 ] || die "runs are bounded to 10 s"

run_bench() {
    (cd "$ROOT" && cargo bench --locked -q -p "$1" --bench "$2" -- --warm-up-time 1 \
        --measurement-time "$SECS" 2>/dev/null) | tee -a "$WORK/criterion.txt" >&2
}
run_bench ipcheck-core hot_path
run_bench ipcheck-auth local_tier
run_bench ipcheck-auth metrics_cost

# "<group>/<name> <ns>" per benchmark, from criterion's "time: [low mid high]" lines.
awk '
    /^[a-z_]+\/[a-z_0-9]+/ { name = $1 }
    /time:/ {
        match($0, /\[[^]]*\]/)
        split(substr($0, RSTART + 1, RLENGTH - 2), t, " ")
        v = t[3]; u = t[4]
        if (u == "ps") v /= 1000; else if (u == "µs" || u == "us") v *= 1000; else if (u == "ms") v *= 1e6
        printf "%s %.1f\n", name, v
    }' "$WORK/criterion.txt" >"$WORK/ns.txt"
log ""
while read -r name ns; do log "$(printf '%-34s %8s ns' "$name" "$ns")"; done <"$WORK/ns.txt"

ns() { awk -v n="$1" '$1 == n { print $2 }' "$WORK/ns.txt"; }
norm_max=$(awk '$1 ~ /^normalize\// { if ($2 > m) m = $2 } END { print m }' "$WORK/ns.txt")
hit2=$(ns local_hit/two_threads_same_keys)
echo "micro: normalize v4=$(ns normalize/v4) mapped=$(ns normalize/mapped) v6=$(ns normalize/v6) ns ($(meets "$norm_max" "<=" 99.9) <100) | local hit 1 thread=$(ns local_hit/one_thread) ns, 2 threads same keys=$hit2 ns ($(meets "$hit2" "<=" 199.9) <200) | policy apply=$(ns policy/apply_clean) lists+apply=$(ns policy/lists_then_apply) ns | metrics/decision 2 threads: ours=$(ns metrics_per_decision/ours_two_threads) prometheus-client=$(ns metrics_per_decision/prometheus_client_two_threads) ns | /auth metrics before=$(ns auth_handler_metrics/before) after=$(ns auth_handler_metrics/after) ns"
