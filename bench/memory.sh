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
# Service: resident memory per entry of ipcheck-auth's local tier filled with 1,000,000 entries
# (bench's `local-memory`, which uses the service's own cache type and allocator).
#
# Usage: bench/memory.sh [entries, default 1000000]
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

N=${1:-1000000}

need redis-server redis-server
need redis-cli redis-tools
build_release

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
    start_redis "redis-$variant" "$port" module
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

local_line=$("$REL/local-memory" "$N")
log "ipcheck-auth local tier: $local_line"
local_per=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^bytes_per_entry=/) { sub(/.*=/, "", $i); print $i } }' <<<"$local_line")

r=$(ratio "${PER[ipcheck]}" "${PER[bare]}")
f=$(ratio "${PER[facts]}" "${PER[bare]}")
h=$(ratio "${PER[hash]}" "${PER[bare]}")
echo "memory: redis ipcheck/bare=$r ($(meets "$r" "<=" 1.10) <=1.10) facts/bare=$f ($(meets "$f" "<=" 1.15) <=1.15) [bare ${PER[bare]} B, hash ${PER[hash]} B (${h}x), ipcheck ${PER[ipcheck]} B, facts ${PER[facts]} B] local tier ${local_per} B/entry ($(meets "$local_per" "<=" 128) <=128)"
