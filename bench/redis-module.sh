#!/usr/bin/env bash
# Benchmark 1: the IPCHECK command against plain Redis commands on the same keys, in the same run.
#
#   IPCHECK GET <ip>                               vs  GET ipcheck:<ip>
#   IPCHECK.LGET ipcheck:<ip> (the lean read)      vs  GET ipcheck:<ip>
#   IPCHECK SET <ip> block REASON vpn,tor EX 86400 vs  SET ipcheck:<ip> <the same stored value> EX 86400
#   IPCHECK.LSET ipcheck:<ip> <that value> 86400  vs  the same SET ... EX (the lean write)
#
# 50 clients, a keyspace of 10,000 addresses (10.0.0.0 upwards, all present), pipelines of 1 and
# 16; each pair runs back to back and the pair runs twice (ROUNDS), the ratio is of the sums.
# The load generator is bench's `redis-load`, redis-benchmark's model (one event-loop thread,
# N clients, P commands in flight each): redis-benchmark's own `__rand_int__` is a 12-digit
# zero-padded number, never a valid address. A redis-benchmark GET run is printed next to
# redis-load's as a calibration of the tool.
#
# Also measured, to show where the limit is:
#   FLOOR.GET ipcheck:<ip>                         (bench/floor-module: the least any module can do
#   FLOOR.LGET ipcheck:<ip>                         and still honour the IPCHECK GET/LGET/SET
#   FLOOR.SET ipcheck:<ip> <value> 86400            contracts: the same key API calls, a 10- and
#                                                   the lean 2-element reply, an in-place write,
#                                                   SET ... PXAT replication; no parsing, no filter)
#   FLOOR LGET ipcheck:<ip>                        (FLOOR.LGET as a subcommand: what Redis's
#                                                   subcommand dispatch would cost the lean read)
#   FLOOR SET ipcheck:<ip> block REASON vpn,tor EX 86400
#                                                  (FLOOR.SET's work in IPCHECK SET's argument
#                                                   form: what that form costs by itself)
#   HGETALL of a hash with the same five fields    (native Redis, the same 10-element reply)
#
# redis-server is pinned to CPU 0 and the load generator to CPU 1 (taskset), so they never
# compete for one core. Other processes still may: the closing line also gives the P16 ratios per
# second of Redis CPU time (operations per CPU-second of redis-server during each run), which a
# busy machine disturbs far less than throughput.
#
# Usage: bench/redis-module.sh [seconds per run, default 5, at most 10]
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SECS=${1:-5}
[ "$SECS" -le 10 ] || die "runs are bounded to 10 s"
ROUNDS=${ROUNDS:-2}
CLIENTS=50
KEYS=10000

need redis-server redis-server
need redis-cli redis-tools
need redis-benchmark redis-tools
need taskset util-linux
build_release

PORT=$(free_port)
start_redis redis "$PORT" module floor
taskset -pc 0 "$REDIS_PID" >/dev/null

load() {
    local pipeline=$1
    shift
    taskset -c 1 "$REL/redis-load" "$PORT" "$CLIENTS" "$pipeline" "$SECS" "$KEYS" "$@" |
        awk -F'[= ]' '{ if ($4 != 0) { print "errors: " $0 > "/dev/stderr"; exit 1 } print $2 }'
}

# Every address present, written by the module; the SET baseline writes the same stored value.
log "filling $KEYS entries"
taskset -c 1 "$REL/redis-load" "$PORT" 1 64 1 "$KEYS" IPCHECK SET '{ip}' block REASON vpn,tor EX 86400 >/dev/null
VALUE=$(redis-cli -p "$PORT" GET ipcheck:10.0.0.1)
[ -n "$VALUE" ] || die "IPCHECK SET stored nothing"
log "stored value of 'block REASON vpn,tor': $VALUE"
# The floor must answer in the contract's shape, or its numbers mean nothing.
[ "$(redis-cli -p "$PORT" FLOOR.GET ipcheck:10.0.0.1 | wc -l)" -eq 10 ] ||
    die "FLOOR.GET does not answer a 10-element reply"
# The lean read answers "<ms left> <stored value>".
[ "$(redis-cli -p "$PORT" IPCHECK.LGET ipcheck:10.0.0.1 | cut -d' ' -f2-)" = "$VALUE" ] ||
    die "IPCHECK.LGET does not answer the stored value"
[ "$(redis-cli -p "$PORT" FLOOR.LGET ipcheck:10.0.0.1 | cut -d" " -f2-)" = "$VALUE" ] ||
    die "FLOOR.LGET does not answer the lean reply"
[ "$(redis-cli -p "$PORT" FLOOR LGET ipcheck:10.0.0.1 | cut -d" " -f2-)" = "$VALUE" ] ||
    die "FLOOR LGET does not answer the lean reply"
[ "$(redis-cli -p "$PORT" IPCHECK.LSET ipcheck:10.0.0.1 "$VALUE" 86400)" = OK ] &&
    [ "$(redis-cli -p "$PORT" GET ipcheck:10.0.0.1)" = "$VALUE" ] ||
    die "IPCHECK.LSET does not store the value IPCHECK SET stores"
[ "$(redis-cli -p "$PORT" FLOOR.SET ipcheck:10.0.0.1 "$VALUE" 86400)" = OK ] ||
    die "FLOOR.SET does not answer OK"
[ "$(redis-cli -p "$PORT" FLOOR SET ipcheck:10.0.0.1 block REASON vpn,tor EX 86400)" = OK ] &&
    [ "$(redis-cli -p "$PORT" GET ipcheck:10.0.0.1)" = "$VALUE" ] ||
    die "FLOOR SET does not store what IPCHECK SET stores"
for i in $(seq 0 255); do
    echo "HSET hash:10.0.0.$i verdict block reason vpn,tor source api ttl 86400 key ipcheck:10.0.0.$i"
done | redis-cli -p "$PORT" >/dev/null

declare -A SUM CPU
add() { SUM[$1]=$(awk -v a="${SUM[$1]:-0}" -v b="$2" 'BEGIN { print a + b }'); }
HZ=$(getconf CLK_TCK)
# redis-server's CPU time so far, in clock ticks (user + system).
ticks() { awk '{ print $14 + $15 }' "/proc/$REDIS_PID/stat"; }

# measure <name> <label> <pipeline> <command...>: one run; adds its ops/s to SUM[name] and the
# operations per second of Redis CPU time to CPU[name]. On a shared machine the second is the
# steadier figure: another process taking the core slows Redis down but does not make each
# command cost more CPU.
measure() {
    local name=$1 label=$2 pipeline=$3 t0 t1 r
    shift 3
    t0=$(ticks)
    r=$(load "$pipeline" "$@")
    t1=$(ticks)
    add "$name" "$r"
    CPU[$name]=$(awk -v a="${CPU[$name]:-0}" -v r="$r" -v s="$SECS" -v t=$((t1 - t0)) -v hz="$HZ" \
        'BEGIN { print a + (t > 0 ? r * s / (t / hz) : 0) }')
    log "$(printf '%-22s %s ops/s' "$label" "$r")"
}

for pipeline in 1 16; do
    for round in $(seq "$ROUNDS"); do
        log "--- pipeline $pipeline, round $round of $ROUNDS"
        measure "get$pipeline" "GET" "$pipeline" GET 'ipcheck:{ip}'
        measure "floorget$pipeline" "FLOOR.GET" "$pipeline" FLOOR.GET 'ipcheck:{ip}'
        measure "ipget$pipeline" "IPCHECK GET" "$pipeline" IPCHECK GET '{ip}'
        measure "iplget$pipeline" "IPCHECK.LGET" "$pipeline" IPCHECK.LGET 'ipcheck:{ip}'
        measure "floorlget$pipeline" "FLOOR.LGET" "$pipeline" FLOOR.LGET 'ipcheck:{ip}'
        measure "floorsublget$pipeline" "FLOOR LGET" "$pipeline" FLOOR LGET 'ipcheck:{ip}'
        measure "set$pipeline" "SET ... EX" "$pipeline" SET 'ipcheck:{ip}' "$VALUE" EX 86400
        measure "floorset$pipeline" "FLOOR.SET" "$pipeline" FLOOR.SET 'ipcheck:{ip}' "$VALUE" 86400
        measure "floorformset$pipeline" "FLOOR SET" "$pipeline" FLOOR SET 'ipcheck:{ip}' block REASON vpn,tor EX 86400
        measure "ipset$pipeline" "IPCHECK SET" "$pipeline" IPCHECK SET '{ip}' block REASON vpn,tor EX 86400
        measure "iplset$pipeline" "IPCHECK.LSET" "$pipeline" IPCHECK.LSET 'ipcheck:{ip}' "$VALUE" 86400
    done
    # The native reference for the reply shape, once per pipeline depth (256 hashes: all in
    # cache, as the keys).
    r=$(taskset -c 1 "$REL/redis-load" "$PORT" "$CLIENTS" "$pipeline" "$SECS" 256 HGETALL 'hash:{ip}' | awk -F'[= ]' '{ print $2 }')
    SUM[hgetall$pipeline]=$r
    log "HGETALL (5 fields)     $r ops/s"
done

log "--- calibration: redis-benchmark GET, pipeline 16 (compare with redis-load's GET above)"
taskset -c 1 redis-benchmark -p "$PORT" -c "$CLIENTS" -P 16 -r "$KEYS" -n 3000000 -t get -q 2>/dev/null |
    tr '\r' '\n' | grep -E '^GET: [0-9]' | tail -1 >&2

g1=$(ratio "${SUM[ipget1]}" "${SUM[get1]}")
s1=$(ratio "${SUM[ipset1]}" "${SUM[set1]}")
g16=$(ratio "${SUM[ipget16]}" "${SUM[get16]}")
l1=$(ratio "${SUM[iplget1]}" "${SUM[get1]}")
l16=$(ratio "${SUM[iplget16]}" "${SUM[get16]}")
s16=$(ratio "${SUM[ipset16]}" "${SUM[set16]}")
ls1=$(ratio "${SUM[iplset1]}" "${SUM[set1]}")
ls16=$(ratio "${SUM[iplset16]}" "${SUM[set16]}")
ols16=$(ratio "${SUM[iplset16]}" "${SUM[floorset16]}")
fg16=$(ratio "${SUM[floorget16]}" "${SUM[get16]}")
fl16=$(ratio "${SUM[floorlget16]}" "${SUM[get16]}")
ol16=$(ratio "${SUM[iplget16]}" "${SUM[floorlget16]}")
fsl16=$(ratio "${SUM[floorsublget16]}" "${SUM[get16]}")
ffs16=$(ratio "${SUM[floorformset16]}" "${SUM[set16]}")
off16=$(ratio "${SUM[ipset16]}" "${SUM[floorformset16]}")

fs16=$(ratio "${SUM[floorset16]}" "${SUM[set16]}")
og16=$(ratio "${SUM[ipget16]}" "${SUM[floorget16]}")
os16=$(ratio "${SUM[ipset16]}" "${SUM[floorset16]}")
h16=$(ratio "${SUM[hgetall16]}" "$(awk -v s="${SUM[get16]}" -v n="$ROUNDS" 'BEGIN { print s / n }')")
# The same P16 ratios per second of Redis CPU time (see measure).
cg16=$(ratio "${CPU[ipget16]}" "${CPU[get16]}")
cl16=$(ratio "${CPU[iplget16]}" "${CPU[get16]}")
cs16=$(ratio "${CPU[ipset16]}" "${CPU[set16]}")
cfs16=$(ratio "${CPU[floorset16]}" "${CPU[set16]}")
cos16=$(ratio "${CPU[ipset16]}" "${CPU[floorset16]}")
cls16=$(ratio "${CPU[iplset16]}" "${CPU[set16]}")
echo "redis-module: P1 get=$g1 lget=$l1 set=$s1 lset=$ls1 | P16 get=$g16 ($(meets "$g16" ">=" 0.90) >=0.90) lget=$l16 ($(meets "$l16" ">=" 0.80) >=0.80) set=$s16 ($(meets "$s16" ">=" 0.75) >=0.75) lset=$ls16 ($(meets "$ls16" ">=" 0.75) >=0.75) | P16 the lean write/FLOOR.SET=$ols16, per Redis CPU-second lset=$cls16 | P16 floor (least a module can do)/native: get=$fg16 lget=$fl16 set=$fs16 | P16 IPCHECK/floor: get=$og16 lget=$ol16 set=$os16 | P16 HGETALL/GET=$h16 | P16 per Redis CPU-second: get=$cg16 lget=$cl16 set=$cs16 ($(meets "$cs16" ">=" 0.75) >=0.75) floor set=$cfs16 IPCHECK/floor set=$cos16 | P16 the floor as a subcommand: FLOOR LGET/GET=$fsl16 | P16 the SET floor in IPCHECK SET's argument form: FLOOR SET/SET EX=$ffs16 IPCHECK SET/FLOOR SET=$off16"
