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

# start_redis <name> <port> [module [floor]]: redis-server in $WORK/<name>, no persistence; with
# "module", libipcheck.so loaded; with "floor" also bench/floor-module's libipcheck_floor.so.
# Sets REDIS_PID.
start_redis() {
    local name=$1 port=$2 module=${3:-} floor=${4:-}
    local dir="$WORK/$name"
    mkdir -p "$dir"
    {
        echo "port $port"
        echo "bind 127.0.0.1"
        echo "dir $dir"
        echo "logfile $dir/redis.log"
        echo 'save ""'
        echo "appendonly no"
        if [ "$module" = module ]; then
            echo "loadmodule $REL/libipcheck.so"
        fi
        if [ "$floor" = floor ]; then
            echo "loadmodule $REL/libipcheck_floor.so"
        fi
    } >"$dir/redis.conf"
    redis-server "$dir/redis.conf" &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    wait_port "$port"
    # Redis binds before it loads modules: wait for an answer from the event loop.
    local tries=100
    until redis-cli -p "$port" PING >/dev/null 2>&1; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || die "redis-server on $port did not answer: $(cat "$dir/redis.log")"
        sleep 0.05
    done
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
