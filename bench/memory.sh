#!/usr/bin/env bash
# Benchmark 2: memory per cached verdict.
#
# Redis: the `used_memory` delta per entry after 1,000,000 writes with keys ipcheck:10.x.y.z and
# a TTL of 86400 s, each variant in a fresh redis-server (the module loaded in all of them):
#   bare     SET ipcheck:<ip> abcdef EX 86400              (the baseline: a 6-byte value)
#   hash     HSET ipcheck:<ip> v block r vpn,tor + EXPIRE   (what a naive design would store)
#   ipcheck  IPCHECK SET <ip> block REASON vpn,tor EX 86400
#   facts    IPCHECK SET <ip> block REASON vpn,tor EX 86400 STALE 86400 COUNTRY US ASN 13335
#            SCORE 87   (stored as 321;86400;US;13335;87: typical attributes, a day's stale window)
# Redis, the states of issue #15 (bench/memory-states.sh): a realistic mix written by IPCHECK SET
# and native `SET <key> <the very value stored> [EX <the key's TTL>]`, each on a primary (AOF on)
# with a replica: bytes per entry written, after IPCHECK GET and LGET of every entry (GET for
# native), on the replica, after DEBUG RELOAD, after a restart on the AOF, each before and after
# reads, and after every entry is rewritten with a longer value; target <= 1.0x native in every
# state (the 0.5 % tolerance of tests/tests/module_memory.rs), and no read raising memory.
# Service: resident memory per entry of ipcheck-auth's local tier filled with 1,000,000 entries
# (bench's `local-memory`, which uses the service's own cache type and allocator).
#
# Usage: bench/memory.sh [entries, default 1000000]
# MODULE=<path to libipcheck.so>: measure that build (e.g. target/debug/libipcheck.so: Redis
# allocates the same per key whatever the module's profile) and skip the release build and the
# local tier, which needs it.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=bench/memory-states.sh
. "$(dirname "$0")/memory-states.sh"

N=${1:-1000000}

need redis-server redis-server
need redis-cli redis-tools
if [ -z "${MODULE:-}" ]; then
    build_release
    MODULE="$REL/libipcheck.so"
fi
# redis-server resolves a relative loadmodule path against its own dir, not ours.
MODULE=$(realpath "$MODULE")
log "module: $MODULE; $(uptime)"

# commands <variant>: N commands in RESP, for redis-cli --pipe.
commands() {
    awk -v n="$N" -v variant="$1" '
        function resp(argc, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16,    out, i, args) {
            split(a1 "\x1f" a2 "\x1f" a3 "\x1f" a4 "\x1f" a5 "\x1f" a6 "\x1f" a7 "\x1f" a8 "\x1f" a9 "\x1f" a10 "\x1f" a11 "\x1f" a12 "\x1f" a13 "\x1f" a14 "\x1f" a15 "\x1f" a16, args, "\x1f")
            out = "*" argc "\r\n"
            for (i = 1; i <= argc; i++) out = out "$" length(args[i]) "\r\n" args[i] "\r\n"
            return out
        }
        BEGIN {
            for (i = 0; i < n; i++) {
                ip = "10." int(i / 65536) % 256 "." int(i / 256) % 256 "." i % 256
                if (variant == "bare") {
                    printf "%s", resp(5, "SET", "ipcheck:" ip, "abcdef", "EX", "86400")
                } else if (variant == "hash") {
                    printf "%s", resp(6, "HSET", "ipcheck:" ip, "v", "block", "r", "vpn,tor")
                    printf "%s", resp(3, "EXPIRE", "ipcheck:" ip, "86400")
                } else if (variant == "facts") {
                    printf "%s", resp(16, "IPCHECK", "SET", ip, "block", "REASON", "vpn,tor", "EX", "86400", "STALE", "86400", "COUNTRY", "US", "ASN", "13335", "SCORE", "87")
                } else {
                    printf "%s", resp(8, "IPCHECK", "SET", ip, "block", "REASON", "vpn,tor", "EX", "86400")
                }
            }
        }'
}

used_memory() { redis-cli -p "$1" INFO memory | awk -F: '/^used_memory:/ { print $2 + 0 }'; }

declare -A PER
for variant in bare hash ipcheck facts; do
    port=$(free_port)
    state_server "$WORK/redis-$variant" "$port"
    before=$(used_memory "$port")
    commands "$variant" | redis-cli -p "$port" --pipe >"$WORK/pipe-$variant.txt" 2>&1 ||
        die "redis-cli --pipe failed: $(cat "$WORK/pipe-$variant.txt")"
    keys=$(redis-cli -p "$port" DBSIZE)
    [ "$keys" -eq "$N" ] || die "$variant: $keys keys after $N writes"
    after=$(used_memory "$port")
    PER[$variant]=$(awk -v a="$after" -v b="$before" -v n="$N" 'BEGIN { printf "%.1f", (a - b) / n }')
    log "Redis, $variant: ${PER[$variant]} B per entry ($N keys)"
    stop "$REDIS_PID"
done

run_states ipcheck "$N"
run_states native "$N"
read -r -a IP <"$WORK/states-ipcheck"
read -r -a NA <"$WORK/states-native"
{
    printf '%-34s %9s %9s %7s\n' "state ($N entries)" "ipcheck" "native" "ratio"
    for i in "${!STATES[@]}"; do
        printf '%-34s %7s B %7s B %7s\n' "${STATES[i]}" "${IP[i]}" "${NA[i]}" \
            "$(awk -v a="${IP[i]}" -v b="${NA[i]}" 'BEGIN { printf "%.3f", a / b }')"
    done
} >&2
# The worst state of the 12 the target covers (not the rewrite), and the largest growth a read
# caused, after / before (pairs: before, after).
worst=$(for i in $(seq 0 11); do awk -v a="${IP[i]}" -v b="${NA[i]}" 'BEGIN { printf "%.3f\n", a / b }'; done | sort -n | tail -1)
growth=$(for pair in 0:1 1:2 3:4 4:5 6:7 7:8 9:10 10:11; do
    awk -v a="${IP[${pair%:*}]}" -v b="${IP[${pair#*:}]}" 'BEGIN { printf "%.3f\n", b / a }'
done | sort -n | tail -1)
rewrite=$(awk -v a="${IP[12]}" -v b="${NA[12]}" 'BEGIN { printf "%.3f", a / b }')

local_part="local tier skipped (MODULE set)"
if [ "$MODULE" = "$REL/libipcheck.so" ]; then
    local_line=$("$REL/local-memory" "$N")
    log "ipcheck-auth local tier: $local_line"
    local_per=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^bytes_per_entry=/) { sub(/.*=/, "", $i); print $i } }' <<<"$local_line")
    local_part="local tier ${local_per} B/entry ($(meets "$local_per" "<=" 128) <=128)"
fi

r=$(ratio "${PER[ipcheck]}" "${PER[bare]}")
f=$(ratio "${PER[facts]}" "${PER[bare]}")
h=$(ratio "${PER[hash]}" "${PER[bare]}")
echo "memory: redis ipcheck/bare=$r ($(meets "$r" "<=" 1.10) <=1.10) facts/bare=$f ($(meets "$f" "<=" 1.15) <=1.15) [bare ${PER[bare]} B, hash ${PER[hash]} B (${h}x), ipcheck ${PER[ipcheck]} B, facts ${PER[facts]} B] | mix vs native, worst of 12 states=$worst ($(meets "$worst" "<=" 1.005) <=1.0, 0.5% noise) largest after/before a read=$growth ($(meets "$growth" "<=" 1.005) <=1.0) rewritten longer=$rewrite | $local_part"
