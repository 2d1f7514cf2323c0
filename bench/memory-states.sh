# Sourced by memory.sh (after lib.sh): memory per entry in every state an entry lives in
# (issue #15, "reads must not grow memory"), for a realistic mix written by IPCHECK SET and for
# native SETs of the very values it stored, as tests/tests/module_memory.rs measures at 50k.
# shellcheck shell=bash

# The mix (module_memory.rs's MIX): entry i has shape i % 8, the `IPCHECK SET <ip>` options and
# the key's TTL in seconds (EX + STALE; "-" for a pin, which has none).
MIX_SET=(
    "block EX 3600 REASON vpn,tor STALE 604800"
    "block EX 3600 REASON vpn,tor STALE 604800"
    "block EX 3600 REASON vpn,tor STALE 604800"
    "block EX 3600 REASON vpn,tor STALE 604800"
    "block EX 86400 REASON vpn,tor"
    "block EX 86400 REASON vpn STALE 86400 COUNTRY US ASN 13335 SCORE 87"
    "block SOURCE manual REASON tor PERSIST"
    "challenge EX 3600 SOURCE my-feed REASON spam STALE 3600"
)
MIX_TTL=(608400 608400 608400 608400 86400 172800 - 7200)
# The rewrite row: every entry written short (shape 4), then rewritten long (shape 5).
SHORT=4
LONG=5

STATES=(
    "primary, written"
    "primary, then IPCHECK GET"
    "primary, then IPCHECK.LGET"
    "replica, synced"
    "replica, then IPCHECK.LGET"
    "replica, then IPCHECK GET"
    "primary, DEBUG RELOAD (RDB)"
    "primary, RDB, then IPCHECK GET"
    "primary, RDB, then IPCHECK.LGET"
    "primary, restarted on the AOF"
    "primary, AOF, then IPCHECK.LGET"
    "primary, AOF, then IPCHECK GET"
    "primary, rewritten longer"
)

# resp: lines of space-separated words to RESP, for redis-cli --pipe.
resp() { awk '{ printf "*%d\r\n", NF; for (i = 1; i <= NF; i++) printf "$%d\r\n%s\r\n", length($i), $i }'; }

# mix_lines <n> <what> [shape]: one command line per entry. what: set (IPCHECK SET, shape i % 8
# or the given one), get (IPCHECK GET), lget (IPCHECK.LGET), native-set (SET of $VALUES[shape]
# with the shape's TTL), native-get (GET).
mix_lines() {
    local n=$1 what=$2 shape=${3:-}
    local sets ttls values
    sets=$(printf '%s\n' "${MIX_SET[@]}")
    ttls="${MIX_TTL[*]}"
    values="${VALUES[*]:-}"
    awk -v n="$n" -v what="$what" -v shape="$shape" -v sets="$sets" -v ttls="$ttls" -v values="$values" '
        BEGIN {
            split(sets, set, "\n"); split(ttls, ttl, " "); split(values, value, " ")
            for (i = 0; i < n; i++) {
                ip = "10." int(i / 65536) % 256 "." int(i / 256) % 256 "." i % 256
                s = (shape == "" ? i % 8 : shape) + 1
                if (what == "set") print "IPCHECK SET " ip " " set[s]
                else if (what == "get") print "IPCHECK GET " ip
                else if (what == "lget") print "IPCHECK.LGET ipcheck:" ip
                else if (what == "native-get") print "GET ipcheck:" ip
                else if (ttl[s] == "-") print "SET ipcheck:" ip " " value[s]
                else print "SET ipcheck:" ip " " value[s] " EX " ttl[s]
            }
        }'
}

# pipe <port> <n> <what> [shape]: sends mix_lines to the server, replies discarded.
pipe() {
    local port=$1
    shift
    mix_lines "$@" | resp | redis-cli -p "$port" --pipe >"$WORK/pipe.txt" 2>&1 ||
        die "redis-cli --pipe $*: $(cat "$WORK/pipe.txt")"
}

# state_server <dir> <port> [conf lines...]: a redis-server with the module (latency tracking
# off: Redis 7 allocates a ~48 KB histogram per command on its first call, which is not the
# entries' memory); waits until it has loaded its data. Sets REDIS_PID.
state_server() {
    local dir=$1 port=$2
    shift 2
    redis_conf "$dir" "$port" "latency-tracking no" "enable-debug-command local" "loadmodule $MODULE" "$@"
    launch_redis "$dir" "$port"
}

info_field() { redis-cli -p "$1" INFO "$2" | awk -F: -v f="$3" '$1 == f { print $2 + 0 }'; }

# data_memory <port>: used_memory less client buffers, the replication backlog and the AOF
# buffer, which move with traffic, not with the data.
data_memory() {
    redis-cli -p "$1" INFO memory | awk -F: '
        $1 == "used_memory" { m += $2 }
        $1 == "mem_clients_normal" || $1 == "mem_clients_slaves" || $1 == "mem_replication_backlog" || $1 == "mem_aof_buffer" { m -= $2 }
        END { print m }'
}

# measure <port> <clients>: data_memory once only <clients> connections are left (counting the
# measuring one), no key table is rehashing (both bucket arrays are held meanwhile), and the
# figure has held for 300 ms (INFO's client figures are refreshed by serverCron).
measure() {
    local port=$1 clients=$2 tries=400 last now since
    until [ "$(info_field "$port" clients connected_clients)" -eq "$clients" ] &&
        ! redis-cli -p "$port" DEBUG HTSTATS 0 | grep -q 'rehashing target'; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || die "redis on $port never settled"
        sleep 0.05
    done
    last=$(data_memory "$port")
    since=$(date +%s%N)
    while [ $(($(date +%s%N) - since)) -lt 300000000 ]; do
        now=$(data_memory "$port")
        if [ "$now" != "$last" ]; then
            last=$now
            since=$(date +%s%N)
        fi
        sleep 0.05
    done
    echo "$last"
}

# caught_up <primary port> <replica port>: until the replica has applied all the primary sent.
caught_up() {
    [ "$(redis-cli -p "$1" WAIT 1 60000)" -eq 1 ] || die "the replica did not acknowledge"
    local target tries=1200
    target=$(info_field "$1" replication master_repl_offset)
    until [ "$(info_field "$2" replication slave_repl_offset)" = "$target" ]; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || die "the replica never caught up"
        sleep 0.05
    done
}

# warm_up <port> <flavour> [write]: each command once on an address left empty (first calls
# allocate for good: the process's memory, not the entries').
warm_up() {
    local port=$1 flavour=$2 write=${3:-}
    if [ "$flavour" = ipcheck ]; then
        [ -z "$write" ] || redis-cli -p "$port" IPCHECK SET 192.0.2.1 block >/dev/null
        redis-cli -p "$port" IPCHECK GET 192.0.2.1 >/dev/null
        redis-cli -p "$port" IPCHECK.LGET ipcheck:192.0.2.1 >/dev/null
        [ -z "$write" ] || redis-cli -p "$port" IPCHECK DEL 192.0.2.1 >/dev/null
    else
        [ -z "$write" ] || redis-cli -p "$port" SET ipcheck:192.0.2.1 b EX 60 >/dev/null
        redis-cli -p "$port" GET ipcheck:192.0.2.1 >/dev/null
        [ -z "$write" ] || redis-cli -p "$port" DEL ipcheck:192.0.2.1 >/dev/null
    fi
}

# run_states <flavour: ipcheck | native> <n>: bytes per entry in each of STATES, one line in
# $WORK/states-<flavour>. For ipcheck, also sets VALUES (the value stored for each shape) for the
# native run.
run_states() {
    local flavour=$1 n=$2 p r p_pid r_pid p_empty r_empty restart_empty pc rc
    local -a held
    local set=set get=get lget=lget
    [ "$flavour" = ipcheck ] || { set=native-set get=native-get lget=native-get; }
    p=$(free_port)
    state_server "$WORK/$flavour-primary" "$p" "appendonly yes"
    p_pid=$REDIS_PID
    r=$(free_port)
    state_server "$WORK/$flavour-replica" "$r" "replicaof 127.0.0.1 $p"
    r_pid=$REDIS_PID
    local tries=1200
    until redis-cli -p "$r" INFO replication | grep -q '^master_link_status:up'; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || die "the replica never synced: $(cat "$WORK/$flavour-replica/redis.log")"
        sleep 0.05
    done
    warm_up "$p" "$flavour" write
    caught_up "$p" "$r"
    warm_up "$r" "$flavour"
    # The connections besides the measuring one: none on the primary (a replica's is not
    # counted), the link to the primary on the replica.
    pc=$(info_field "$p" clients connected_clients)
    rc=$(info_field "$r" clients connected_clients)
    p_empty=$(measure "$p" "$pc")
    r_empty=$(measure "$r" "$rc")

    pipe "$p" "$n" "$set"
    caught_up "$p" "$r"
    [ "$(redis-cli -p "$r" DBSIZE)" -eq "$n" ] || die "$flavour: the replica holds $(redis-cli -p "$r" DBSIZE) keys"
    held[0]=$(measure "$p" "$pc")
    pipe "$p" "$n" "$get"
    held[1]=$(measure "$p" "$pc")
    pipe "$p" "$n" "$lget"
    held[2]=$(measure "$p" "$pc")
    held[3]=$(measure "$r" "$rc")
    pipe "$r" "$n" "$lget"
    held[4]=$(measure "$r" "$rc")
    pipe "$r" "$n" "$get"
    held[5]=$(measure "$r" "$rc")
    stop "$r_pid"
    redis-cli -p "$p" DEBUG RELOAD >/dev/null
    held[6]=$(measure "$p" "$pc")
    pipe "$p" "$n" "$get"
    held[7]=$(measure "$p" "$pc")
    pipe "$p" "$n" "$lget"
    held[8]=$(measure "$p" "$pc")
    redis-cli -p "$p" SHUTDOWN >/dev/null 2>&1 || true
    wait "$p_pid" 2>/dev/null || true
    state_server "$WORK/$flavour-primary" "$p" "appendonly yes"
    p_pid=$REDIS_PID
    [ "$(redis-cli -p "$p" DBSIZE)" -eq "$n" ] || die "$flavour: $(redis-cli -p "$p" DBSIZE) keys after the AOF restart"
    warm_up "$p" "$flavour"
    pc=$(info_field "$p" clients connected_clients)
    held[9]=$(measure "$p" "$pc")
    pipe "$p" "$n" "$lget"
    held[10]=$(measure "$p" "$pc")
    pipe "$p" "$n" "$get"
    held[11]=$(measure "$p" "$pc")
    if [ "$flavour" = ipcheck ]; then
        local s
        VALUES=()
        for s in 0 1 2 3 4 5 6 7; do
            VALUES[s]=$(redis-cli -p "$p" GET "ipcheck:10.0.0.$s")
        done
        log "stored values by shape: ${VALUES[*]}"
    fi
    redis-cli -p "$p" FLUSHALL SYNC >/dev/null
    restart_empty=$(measure "$p" "$pc")
    pipe "$p" "$n" "$set" "$SHORT"
    pipe "$p" "$n" "$set" "$LONG"
    held[12]=$(measure "$p" "$pc")
    stop "$p_pid"

    local i empty out=""
    for i in "${!held[@]}"; do
        case $i in
        3 | 4 | 5) empty=$r_empty ;;
        9 | 10 | 11 | 12) empty=$restart_empty ;;
        *) empty=$p_empty ;;
        esac
        out+=$(awk -v a="${held[i]}" -v b="$empty" -v n="$n" 'BEGIN { printf "%.2f ", (a - b) / n }')
    done
    echo "$out" >"$WORK/states-$flavour"
}
