# Shared by the bench/*.sh scripts (sourced, not run): tools, release builds, loopback ports,
# a private temp dir, and cleanup of every process a script started, by PID, however it ends.
# shellcheck shell=bash

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
# The profiling profile: the release code with debug info kept, for perf (see Cargo.toml).
REL="$TARGET/profiling"
export PATH="$PATH:/usr/sbin"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ipcheck-bench.XXXXXX")"
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        # CONT first: a process a script SIGSTOPped (redis-stop.sh's Redis) would hold TERM
        # pending, and the wait below would never end.
        kill -CONT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "${KEEP_WORK:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# need <command> <debian package>: installs the package when the command is missing.
need() {
    local cmd=$1 pkg=$2
    command -v "$cmd" >/dev/null 2>&1 && return 0
    log "installing $pkg (for $cmd)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$pkg" >&2
}

# Release-optimized builds of everything the benchmarks start, with the debug info perf needs.
build_release() {
    log "building release binaries (profile profiling) into $REL"
    (cd "$ROOT" && cargo build --profile profiling --locked -q -p ipcheck-redis -p ipcheck-auth -p ipcheck-bench -p ipcheck-bench-floor) >&2
}

# need_nginx_run: what a benchmark through nginx needs (wrk, nginx, Redis and its CLI, curl) and
# the release build. Sets NGINX.
need_nginx_run() {
    need wrk wrk
    need nginx nginx
    need redis-server redis-server
    need redis-cli redis-tools
    need curl curl
    build_release
    NGINX=$(command -v nginx)
}

# A loopback TCP port no socket uses right now, below Linux's ephemeral range (32768+) so that
# outgoing connections cannot be holding it.
free_port() {
    local port
    while true; do
        port=$((10000 + RANDOM % 22000))
        if [ -z "$(ss -Htan "sport = :$port")" ]; then
            echo "$port"
            return
        fi
    done
}

# wait_port <port> [seconds]: until something accepts connections on 127.0.0.1:<port>.
wait_port() {
    local port=$1 tries=$((${2:-10} * 20))
    while [ "$tries" -gt 0 ]; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
        tries=$((tries - 1))
    done
    die "nothing listens on 127.0.0.1:$port"
}

# redis_conf <dir> <port> [conf lines...]: writes <dir>/redis.conf with what every bench
# redis-server shares (loopback, its own dir and log, no RDB saves), then the given lines.
redis_conf() {
    local dir=$1 port=$2 line
    shift 2
    mkdir -p "$dir"
    {
        echo "port $port"
        echo "bind 127.0.0.1"
        echo "dir $dir"
        echo "logfile $dir/redis.log"
        echo 'save ""'
        for line in "$@"; do echo "$line"; done
    } >"$dir/redis.conf"
}

# launch_redis <dir> <port>: redis-server on <dir>/redis.conf; waits until its event loop
# answers and it has loaded its data (Redis binds before it loads modules and the dataset).
# Sets REDIS_PID.
launch_redis() {
    local dir=$1 port=$2
    redis-server "$dir/redis.conf" &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    wait_port "$port"
    local tries=1200
    until redis-cli -p "$port" INFO persistence 2>/dev/null | grep -q '^loading:0'; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || die "redis-server on $port did not answer: $(cat "$dir/redis.log")"
        sleep 0.05
    done
}

# start_redis <name> <port> [module [floor]]: redis-server in $WORK/<name>, no persistence; with
# "module", libipcheck.so loaded; with "floor" also bench/floor-module's libipcheck_floor.so.
# Sets REDIS_PID.
start_redis() {
    local name=$1 port=$2 module=${3:-} floor=${4:-}
    local lines=("appendonly no")
    [ "$module" != module ] || lines+=("loadmodule $REL/libipcheck.so")
    [ "$floor" != floor ] || lines+=("loadmodule $REL/libipcheck_floor.so")
    redis_conf "$WORK/$name" "$port" "${lines[@]}"
    launch_redis "$WORK/$name" "$port"
}

# stop <pid>: stops one process this script started and waits for it.
stop() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# ratio <a> <b>: a / b to two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }

# meets <value> <op> <target>: "met" or "MISSED".
meets() {
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        ok = (op == ">=") ? (v >= t) : (v <= t)
        print ok ? "met" : "MISSED"
    }'
}

# subst <text> <from> <to>: the text with every <from> replaced; fails if <from> is absent, so a
# change to the shipped files cannot silently change what is measured.
subst() {
    local text=$1 from=$2 to=$3
    [[ $text == *"$from"* ]] || die "shipped config no longer contains: $from"
    printf '%s' "${text//"$from"/"$to"}"
}

# start_provider <delay ms>: bench/src/bin/slow-provider on a free port, answering every lookup
# "clean" after the delay (GET /calls: how many it answered). Sets PROVIDER_PID, PROVIDER_PORT.
start_provider() {
    PROVIDER_PORT=$(free_port)
    "$REL/slow-provider" "127.0.0.1:$PROVIDER_PORT" "$1" &
    PROVIDER_PID=$!
    PIDS+=("$PROVIDER_PID")
    wait_port "$PROVIDER_PORT"
}

# start_noop <args...>: bench/src/bin/noop-auth (the do-nothing auth backend; args: nothing,
# `redis <url>` or `provider <url prefix>` for one call first) on a free port. Sets NOOP_PID and
# NOOP_PORT.
start_noop() {
    NOOP_PORT=$(free_port)
    "$REL/noop-auth" "127.0.0.1:$NOOP_PORT" "$@" &
    NOOP_PID=$!
    PIDS+=("$NOOP_PID")
    wait_port "$NOOP_PORT"
}

# provider_calls: the lookups the stand-in provider has answered so far.
provider_calls() { curl -sf "http://127.0.0.1:$PROVIDER_PORT/calls"; }

SERVICE_CONFIG="$ROOT/auth-service/ipcheck.example.toml"

# write_config <name> <edit...>: the shipped example config wired to this run's Redis
# ($REDIS_PORT) and provider ($PROVIDER_PORT), with the "<from>=><to>" edits, as $WORK/<name>.toml.
write_config() {
    local name=$1
    shift
    local config
    config=$(<"$SERVICE_CONFIG")
    config=$(subst "$config" 'url = "redis://127.0.0.1:6379/"' "url = \"redis://127.0.0.1:$REDIS_PORT/\"")
    config=$(subst "$config" 'url = "https://api.ipasis.com/v1/lookup?ip={ip}"' "url = \"http://127.0.0.1:$PROVIDER_PORT/v1/lookup?ip={ip}\"")
    local edit
    for edit in "$@"; do
        config=$(subst "$config" "${edit%%=>*}" "${edit#*=>}")
    done
    printf '%s\n' "$config" >"$WORK/$name.toml"
}

# write_clients_lua <file>: a wrk script sending GET / from 1,000 client addresses
# 10.0.0.0 .. 10.0.3.231, one per request in turn, via X-Forwarded-For (the bench nginx trusts
# it from 127.0.0.1 through the real_ip module); the two threads start half the list apart.
write_clients_lua() {
    cat >"$1" <<'LUA'
local threads = 0
function setup(thread)
  thread:set("offset", threads * 500)
  threads = threads + 1
end
local requests = {}
local n = 0
function init(args)
  for i = 0, 999 do
    local addr = string.format("10.0.%d.%d", math.floor(i / 256), i % 256)
    requests[i + 1] = wrk.format("GET", "/", { ["X-Forwarded-For"] = addr })
  end
  n = offset % 1000
end
function request()
  n = n % 1000 + 1
  return requests[n]
end
LUA
}

# start_service <name> <edit...>: ipcheck-auth on the shipped example config wired to this run's
# Redis ($REDIS_PORT) and provider ($PROVIDER_PORT); edits are "<from>=><to>" pairs. Sets
# SERVICE_PID, SERVICE_PORT and METRICS_PORT (/metrics has a listener of its own; the admin
# listener, whose default port is fixed, is off).
start_service() {
    local name=$1
    shift
    write_config "$name" "$@"
    SERVICE_PORT=$(free_port)
    METRICS_PORT=$(free_port)
    local listen="127.0.0.1:$SERVICE_PORT"
    # SERVICE_UNIX=1: on a unix socket instead; SERVICE_PORT is then `unix:<path>`, which
    # start_nginx takes as the upstream's address.
    if [ "${SERVICE_UNIX:-0}" = 1 ]; then
        SERVICE_PORT="unix:$WORK/$name.sock"
        listen=$SERVICE_PORT
    fi
    IPASIS_API_KEY=bench "$REL/ipcheck-auth" --config "$WORK/$name.toml" \
        --listen "$listen" --metrics-listen "127.0.0.1:$METRICS_PORT" \
        --admin-listen "" >"$WORK/$name.log" 2>&1 &
    SERVICE_PID=$!
    PIDS+=("$SERVICE_PID")
    if [ "${SERVICE_UNIX:-0}" = 1 ]; then
        await 10 "the service's socket $WORK/$name.sock" test -S "$WORK/$name.sock"
        wait_port "$METRICS_PORT"
    else
        wait_port "$SERVICE_PORT"
    fi
}

# metric <metrics port> <series prefix>: the sum of every /metrics series starting with the
# prefix, e.g. metric 9218 'ipcheck_cache_total{tier="stale"' (0 when there is none).
metric() {
    curl -s "http://127.0.0.1:$1/metrics" |
        awk -v p="$2" 'index($0, p) == 1 { s += $NF } END { printf "%.0f\n", s }'
}

# await <seconds> <description> <command...>: until the command succeeds, polling every 50 ms.
await() {
    local tries=$(($1 * 20)) what=$2
    shift 2
    until "$@"; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || die "gave up waiting for $what"
        sleep 0.05
    done
}

# write_rotation_lua <file> [path] [header]: a wrk script sending every request with a new client
# address in <header> (default X-Real-IP, as nginx sends it to the service) to <path> (default
# /auth): <first octet>.<thread>.<counter>, never repeated within a run; the first octet is the
# script's argument, so each run (and round) asks about addresses no earlier one did.
write_rotation_lua() {
    local path=${2:-/auth} header=${3:-X-Real-IP}
    cat >"$1" <<LUA
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local counter = 0
local first = 11
function init(args)
  first = tonumber(args[1] or "11")
end
function request()
  counter = counter + 1
  local addr = string.format("%d.%d.%d.%d", first, tid * 64 + math.floor(counter / 65536) % 64,
    math.floor(counter / 256) % 256, counter % 256)
  return wrk.format("GET", "$path", { ["$header"] = addr })
end
LUA
}

# A wrk script cycling through 1,000 client addresses 10.0.0.0 .. 10.0.3.231 in X-Real-IP,
# starting at the offset given as its argument.
write_warm_lua() {
    cat >"$1" <<'LUA'
local requests = {}
local n = 0
function init(args)
  for i = 0, 999 do
    local addr = string.format("10.0.%d.%d", math.floor(i / 256), i % 256)
    requests[i + 1] = wrk.format("GET", "/auth", { ["X-Real-IP"] = addr })
  end
  n = tonumber(args[1] or "0") % 1000
end
function request()
  n = n % 1000 + 1
  return requests[n]
end
LUA
}

# wrk_service <out file> <threads> <conns> <seconds> <script> [script args]: one wrk run against
# the service's /auth; prints "<req/s> <p99 ms> <non-2xx> <socket errors>".
wrk_service() {
    local out=$1 threads=$2 conns=$3 secs=$4 script=$5
    shift 5
    wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$script" \
        "http://127.0.0.1:$SERVICE_PORT/auth" -- "$@" >"$out"
    wrk_summary "$out"
}

# wrk_summary <wrk output>: "<req/s> <p99 ms> <non-2xx> <socket errors>".
wrk_summary() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /s$/) return v * 1000
            return v
        }
        /^ +99%/ { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/ { err = $0; gsub(/.*errors: /, "", err); gsub(/ /, "", err) }
        END { printf "%.0f %.3f %d %s\n", rps, p99, bad + 0, (err == "" ? "none" : err) }
    ' "$1"
}

# now: seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }

# --- nginx from the shipped files (nginx.sh, zipf.sh) ---------------------------------------------
# These use the calling script's NGINX (the binary), CONNS, SECS, REDIS_PID and PROVIDER_PID.
# start_nginx <name> <auth port> <edit...>: nginx running the example against the auth upstream
# on <auth port> (or `unix:<path>`, the service's unix socket); edits are "<from>=><to>" pairs in
# example.conf, where @NGINX_DIR@ stands for this nginx's prefix. With NGINX_LUA=1, the Lua module
# is loaded and the fast path's files (ipcheck-fastpath-http.conf, ipcheck-fastpath.lua) are in
# place and included; NGINX_HTTP_EXTRA holds more http-level lines. Sets NGINX_PID and NGINX_PORT.
start_nginx() {
    local name=$1 auth_port=$2
    shift 2
    local dir="$WORK/nginx-$name"
    mkdir -p "$dir/ipcheck" "$dir/logs"
    NGINX_PORT=$(free_port)
    local backend_port
    backend_port=$(free_port)
    local example upstream server
    example=$(<"$ROOT/nginx/example.conf")
    upstream=$(<"$ROOT/nginx/ipcheck-upstream.conf")
    server=$(<"$ROOT/nginx/ipcheck.conf")
    example=$(subst "$example" "listen 8000;" "listen 127.0.0.1:$NGINX_PORT;")
    example=$(subst "$example" "listen [::]:8000;" "")
    example=$(subst "$example" "server 127.0.0.1:9000;" "server 127.0.0.1:$backend_port;")
    # The example's `ipcheck` access log would measure the disk: off, as for the whole harness.
    example=$(subst "$example" "access_log /var/log/nginx/access.log ipcheck;" "access_log off;")
    example=$(subst "$example" "# set_real_ip_from  10.0.0.0/8;" "set_real_ip_from  127.0.0.1;")
    example=$(subst "$example" "# real_ip_header    X-Forwarded-For;" "real_ip_header    X-Forwarded-For;")
    if [[ $auth_port == unix:* ]]; then
        upstream=$(subst "$upstream" "server 127.0.0.1:9217;" "server $auth_port;")
    else
        upstream=$(subst "$upstream" "server 127.0.0.1:9217;" "server 127.0.0.1:$auth_port;")
    fi
    upstream=$(subst "$upstream" "127.0.0.1:9219" "127.0.0.1:$(free_port)")
    upstream=$(subst "$upstream" "/var/log/nginx/ipcheck-gate.log" "$dir/logs/ipcheck-gate.log")
    local microcache
    microcache=$(<"$ROOT/nginx/ipcheck-microcache.conf")
    microcache=$(subst "$microcache" "/var/lib/nginx/ipcheck" "$dir/microcache")
    local edit
    for edit in "$@"; do
        local from=${edit%%=>*} to=${edit#*=>}
        example=$(subst "$example" "$from" "$to")
    done
    example=${example//@NGINX_DIR@/$dir}
    local modules="" lua_http=""
    if [ "${NGINX_LUA:-0}" = 1 ]; then
        # Debian's libnginx-mod-http-lua; its NDK dependency is loaded first.
        modules=$'load_module /usr/lib/nginx/modules/ndk_http_module.so;\nload_module /usr/lib/nginx/modules/ngx_http_lua_module.so;'
        cp "$ROOT/nginx/ipcheck-fastpath-http.conf" "$ROOT/nginx/ipcheck-fastpath.lua" "$dir/ipcheck/"
        lua_http="include ipcheck/ipcheck-fastpath-http.conf;"
    fi
    printf '%s\n' "$example" >"$dir/ipcheck/example.conf"
    printf '%s\n' "$upstream" >"$dir/ipcheck/ipcheck-upstream.conf"
    printf '%s\n' "$server" >"$dir/ipcheck/ipcheck.conf"
    printf '%s\n' "$microcache" >"$dir/ipcheck/ipcheck-microcache.conf"
    local user=""
    [ "$(id -u)" -ne 0 ] || user="user root;"
    cat >"$dir/nginx.conf" <<EOF
$modules
$user
daemon off;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    # Harness settings, the same for every variant: no access log (it would measure the disk),
    # and client connections kept for the whole run.
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;
    include ipcheck/ipcheck-upstream.conf;
    # Only (f) turns the micro-cache on; the zone costs the others nothing.
    include ipcheck/ipcheck-microcache.conf;
    $lua_http
    ${NGINX_HTTP_EXTRA:-}
    include ipcheck/example.conf;

    # The protected application: a page from this same nginx.
    server {
        listen 127.0.0.1:$backend_port;
        location / {
            default_type text/plain;
            return 200 "hello from the backend\n";
        }
    }
}
EOF
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_port "$NGINX_PORT"
}

# tier_count <metrics port> <tier>: the service's ipcheck_cache_total for one tier.
tier_count() { metric "$1" "ipcheck_cache_total{tier=\"$2\""; }

# run_wrk <name> <script> [args]: one measured run; prints "<req/s> <p99 ms> <non-2xx> <errors>".
run_wrk() {
    local name=$1 script=$2
    shift 2
    wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$script" "http://127.0.0.1:$NGINX_PORT/" -- "$@" \
        >"$WORK/wrk-$name.txt"
    wrk_summary "$WORK/wrk-$name.txt"
}

# warm <script>: 2 s of load, not measured, so caches and connection pools are filled.
warm() {
    wrk -t2 -c"$CONNS" -d2s -s "$1" "http://127.0.0.1:$NGINX_PORT/" >/dev/null
}

# cpu_ticks <pid...>: CPU time (clock ticks) the processes and their children processes used.
cpu_ticks() {
    local pid total=0 child
    for pid in "$@"; do
        [ "$pid" -gt 0 ] || continue
        for child in $pid $(pgrep -P "$pid" || true); do
            if [ -r "/proc/$child/stat" ]; then
                # utime and stime are fields 14 and 15; the command name (field 2) has no spaces here.
                total=$((total + $(awk '{ print $14 + $15 }' "/proc/$child/stat")))
            fi
        done
    done
    echo "$total"
}

# measure <name> <script> <auth pid or 0> [wrk args]: one measured run, recorded, with the CPU
# microseconds per request spent by nginx, the auth backend, Redis and the provider.
declare -A CPU
measure() {
    local name=$1 script=$2 auth=$3
    shift 3
    local hz n0 a0 r0 p0 result
    hz=$(getconf CLK_TCK)
    n0=$(cpu_ticks "$NGINX_PID")
    a0=$(cpu_ticks "$auth")
    r0=$(cpu_ticks "$REDIS_PID")
    p0=$(cpu_ticks "$PROVIDER_PID")
    local perf_pid=""
    if [[ " ${PROFILE:-} " == *" $name "* ]] && [ "$auth" -gt 0 ]; then
        need perf linux-perf
        # Sampled by the clock (no hardware counters in most VMs), with call graphs from DWARF.
        perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$auth" \
            -o "$PWD/perf-$name.data" -- sleep "$SECS" 2>/dev/null &
        perf_pid=$!
    fi
    result=$(run_wrk "$name" "$script" "$@")
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" || true
        log "($name) profile of the auth backend: $PWD/perf-$name.data (perf report -i ...)"
    fi
    record "$name" "$result"
    local reqs=$((${RPS[$name]} * SECS))
    CPU[$name]=$(awk -v hz="$hz" -v r="$reqs" -v n=$(($(cpu_ticks "$NGINX_PID") - n0)) \
        -v a=$(($(cpu_ticks "$auth") - a0)) -v d=$(($(cpu_ticks "$REDIS_PID") - r0)) \
        -v p=$(($(cpu_ticks "$PROVIDER_PID") - p0)) 'BEGIN {
            f = 1e6 / hz / r
            printf "nginx %.1f, auth %.1f, redis %.1f, provider %.1f", n * f, a * f, d * f, p * f
        }')
    log "($name) CPU us per request: ${CPU[$name]}"
}

declare -A RPS P99 RPS_SUM P99_SUM
record() {
    local name=$1 rps p99 bad err
    read -r rps p99 bad err <<<"$2"
    RPS[$name]=$rps
    P99[$name]=$p99
    RPS_SUM[$name]=$(awk -v a="${RPS_SUM[$name]:-0}" -v b="$rps" 'BEGIN { print a + b }')
    P99_SUM[$name]=$(awk -v a="${P99_SUM[$name]:-0}" -v b="$p99" 'BEGIN { print a + b }')
    log "($name) ${RPS[$name]} req/s, p99 ${P99[$name]} ms, non-2xx $bad, socket errors $err"
    [ "$bad" -eq 0 ] || log "($name) WARNING: $bad answers were not 2xx/3xx"
}

# provider_ms <metrics port>: the mean provider call latency the service measured, in ms.
provider_ms() {
    curl -s "http://127.0.0.1:$1/metrics" | awk '
        /^ipcheck_provider_duration_seconds_sum/ { s = $2 }
        /^ipcheck_provider_duration_seconds_count/ { c = $2 }
        END { if (c > 0) printf "%.1f", s / c * 1000; else print "?" }'
}
