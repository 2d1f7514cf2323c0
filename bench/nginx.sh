#!/usr/bin/env bash
# Benchmark 3: requests through nginx, every variant against baselines measured in the same run.
#
#   (a) the page with no auth at all (the ceiling)      example.conf without `auth_request` on /
#   (b) auth_request to noop-auth, a do-nothing 204     example.conf, upstream -> noop-auth
#   (c) ipcheck-auth, local-tier hits                   example.conf + the example service config
#   (cl) (c) with a real-size feed mix in three lists    ... + [lists.drop]; Redis lists filled first
#   (cm) (c) with three local databases (.mmdb)         ... + [databases.*], the public test files
#   (d) ipcheck-auth with the local tier off (Redis)    ... + cache.capacity = 0
#   (d0) noop-auth making one plain Redis GET first     the best any backend asking Redis can do
#   (e) cold addresses, provider answering in 20 ms     ... a new address on every request
#   (e0) noop-auth making one provider call first       the best any backend asking it can do
#   (f) the example's micro-cache on                    ... + set $ipcheck_microcache 1
#   (cu) (c) with the service on a unix socket           ... + `server unix:...;`, listen unix:
#   (g) the Lua fast path (nginx/ipcheck-fastpath.lua)  ... + access_by_lua_file, 1 s answers
#   (r) bench-only Lua reference, CrowdSec-style         ... + a shared dict keyed by address
#       (no ipcheck at all: the dict answers "allow" for every client, filled on first sight)
#
# Every variant runs the shipped nginx/example.conf, ipcheck.conf and ipcheck-upstream.conf with
# literal substitutions (ports, the micro-cache path, the real_ip lines, and the one switch the
# variant is about), as the end-to-end tests do. The page behind location / is a server block of
# the same nginx answering 200 with a short body, over the example's keepalive upstream.
# nginx sees every wrk connection from 127.0.0.1, so the real_ip module trusts 127.0.0.1 and
# X-Forwarded-For, which the wrk scripts set: 1,000 addresses in turn ((a)-(d), (f)), or a new one
# per request ((e)).
#
# Usage: bench/nginx.sh [seconds per run, default 10 (the maximum)]
#        ROUNDS=3 bench/nginx.sh        runs the whole sequence 3 times (default 2) and averages
#        PROFILE="c d" bench/nginx.sh   also records perf profiles of the auth backend in those
#                                      variants, to ./perf-<variant>.data
#        ONLY="a b c cu f g r" bench/nginx.sh   runs only those variants (issue #15's table)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SECS=${1:-10}
ROUNDS=${ROUNDS:-2}
[ "$SECS" -le 10 ] || die "runs are bounded to 10 s"
CONNS=64
PROVIDER_MS=20

# (g) and (r): nginx's Lua module (the package, not a command: `need` is given a name no command
# has, so it installs the package when the module file is missing).
[ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || need ipcheck-no-such-command libnginx-mod-http-lua
need_nginx_run

# --- the processes every variant shares -------------------------------------------------------
REDIS_PORT=$(free_port)
start_redis redis "$REDIS_PORT" module
start_provider "$PROVIDER_MS"
start_noop redis "redis://127.0.0.1:$REDIS_PORT/"
NOOP_REDIS_PORT=$NOOP_PORT NOOP_REDIS_PID=$NOOP_PID
start_noop provider "http://127.0.0.1:$PROVIDER_PORT/v1/lookup?ip="
NOOP_PROVIDER_PORT=$NOOP_PORT NOOP_PROVIDER_PID=$NOOP_PID
start_noop

# --- wrk scripts ------------------------------------------------------------------------------
write_clients_lua "$WORK/clients.lua"
# A new client address on every request, so every request misses every tier and waits for the
# provider.
write_rotation_lua "$WORK/cold.lua" / X-Forwarded-For

# start_nginx, measure and the rest of the nginx harness are in lib.sh (zipf.sh uses them too).

# --- (cl)'s feed mix --------------------------------------------------------------------------
# The size of the real feeds a deployment loads: a Tor exit list (~1,500 addresses), a DROP-like
# list (~1,200 networks /12../24, a block verdict) and googlebot's ranges (~300 networks, v4 and
# v6). Generated here, the same every run (a Park-Miller generator with a fixed seed), as IPCHECK
# NETADD batches of 100; first octets 11..223 without 127 and googlebot's 66.249.64.0/19 and
# 2001:4860:4801::/48, so none covers the wrk clients (10.0.x.y): every request of (cl) is still a
# local-tier hit that has looked the address up in all three lists first.
LIST_KEY='ipcheck:{lists}:'
awk -v k="$LIST_KEY" 'BEGIN {
    x = 20261127
    # tor: 1,500 /32s
    for (i = 0; i < 1500; i++) {
        if (i % 100 == 0) printf "%sIPCHECK NETADD %stor", (i ? "\n" : ""), k
        printf " %d.%d.%d.%d VALUE tor", octet(), rnd(256), rnd(256), rnd(256)
    }
    printf "\n"
    # drop: 1,200 networks /12../24 (host bits cleared, as a feed publishes them)
    for (i = 0; i < 1200; i++) {
        if (i % 100 == 0) printf "%sIPCHECK NETADD %sdrop", (i ? "\n" : ""), k
        len = 12 + rnd(13)
        n = (octet() * 16777216 + rnd(16777216))
        size = 2 ^ (32 - len)
        n = int(n / size) * size
        printf " %d.%d.%d.%d/%d VALUE drop", int(n / 16777216), int(n / 65536) % 256, int(n / 256) % 256, n % 256, len
    }
    printf "\n"
    # googlebot: 200 IPv4 /27s in 66.249.64.0/19, 100 IPv6 /64s in 2001:4860:4801::/48
    for (i = 0; i < 300; i++) {
        if (i % 100 == 0) printf "%sIPCHECK NETADD %sgooglebot", (i ? "\n" : ""), k
        if (i < 200) printf " 66.249.%d.%d/27 VALUE crawler", 64 + int(i / 8), (i % 8) * 32
        else printf " 2001:4860:4801:%x::/64 VALUE crawler", i - 200
    }
    printf "\n"
}
function rnd(n) { x = (x * 16807) % 2147483647; return int(x / 2147483647 * n) }
function octet(  o) { o = 11 + rnd(213); return o == 127 ? 128 : o }' >"$WORK/feeds.redis"
FEED_LISTS="tor drop googlebot"
# The service config of (cl): a block-verdict list for DROP, consulted first by the two policies
# naming tor and googlebot in the shipped config: `lenient`, the one example.conf's location /
# (what the bench requests) uses, and `default` (the edit replaces both lines).
FEED_EDITS=(
    $'[lists.googlebot]=>[lists.drop]\nverdict = "block"\nrefresh = "2s"\n\n[lists.googlebot]'
    'lists = ["tor", "googlebot"]=>lists = ["drop", "tor", "googlebot"]'
)
# load_feeds: the three lists into Redis (replacing what a previous round left); logs each size.
load_feeds() {
    local list
    for list in $FEED_LISTS; do redis-cli -p "$REDIS_PORT" DEL "$LIST_KEY$list" >/dev/null; done
    redis-cli -p "$REDIS_PORT" <"$WORK/feeds.redis" >"$WORK/feeds.out"
    ! grep -q ERR "$WORK/feeds.out" || die "IPCHECK NETADD failed: $(grep ERR "$WORK/feeds.out" | head -1)"
    [ -z "$(redis-cli -p "$REDIS_PORT" IPCHECK NETMATCH 10.0.0.1 "${LIST_KEY}tor" "${LIST_KEY}drop" \
        "${LIST_KEY}googlebot")" ] || die "a feed list covers the wrk clients"
    for list in $FEED_LISTS; do
        FEED_SIZE[$list]=$(redis-cli -p "$REDIS_PORT" IPCHECK NETINFO "$LIST_KEY$list" | awk 'NR == 2 || NR == 4 { s += $1 } END { print s + 0 }')
    done
    log "(cl) Redis lists: tor ${FEED_SIZE[tor]}, drop ${FEED_SIZE[drop]}, googlebot ${FEED_SIZE[googlebot]} networks"
}
declare -A FEED_SIZE
# lists_loaded: the service's copy of every list holds what Redis holds (ipcheck_list_networks).
lists_loaded() {
    local list
    for list in $FEED_LISTS; do
        [ "$(metric "$METRICS_PORT" "ipcheck_list_networks{list=\"$list\"}")" = "${FEED_SIZE[$list]}" ] || return 1
    done
}
# drop_feeds: (c) and the other variants run the shipped config, whose tor and googlebot lists
# must stay empty, as they were before (cl) existed.
drop_feeds() {
    local list
    for list in $FEED_LISTS; do redis-cli -p "$REDIS_PORT" DEL "$LIST_KEY$list" >/dev/null; done
}

# --- (cm)'s databases -------------------------------------------------------------------------
# The public MaxMind test files (anonymous-IP, ASN, country) as three [databases.*] sections.
# location /'s policy (lenient) allows crawlers, which no database gives, so it is never covered:
# every request of (cm) looks its address up in all three files, then is the same local-tier hit
# as (c). That is the whole cost databases add to the hot path. The wrk clients (10.0.x.y) are
# in none of the files (a miss; a hit decodes a few fields more: see the criterion bench).
MMDB="$ROOT/tests/fixtures/mmdb"
DATABASE_EDIT="[lists.googlebot]=>$(printf '[databases.anon]\nfile = "%s/GeoIP2-Anonymous-IP-Test.mmdb"\npreset = "anonymous-ip"\n\n[databases.asn]\nfile = "%s/GeoLite2-ASN-Test.mmdb"\npreset = "asn"\n\n[databases.geo]\nfile = "%s/GeoLite2-Country-Test.mmdb"\npreset = "country"\n\n[lists.googlebot]' "$MMDB" "$MMDB" "$MMDB")"
DATABASE_EDIT=$(printf '%b' "$DATABASE_EDIT")

NO_AUTH_ON_ROOT=$'set $ipcheck_on_unreachable open;\n        auth_request /_ipcheck;=>set $ipcheck_on_unreachable open;'

# want <variant>: whether this run measures it (ONLY, default all).
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

# (g): the shipped fast path in place of auth_request, as docs/fast-path.md says to.
# shellcheck disable=SC2016 # nginx text, literally
FAST_PATH='auth_request /_ipcheck;=>access_by_lua_file @NGINX_DIR@/ipcheck/ipcheck-fastpath.lua;'
# (r): the reference, an in-nginx decision the way CrowdSec's Lua bouncer makes one for a known
# client: one shared-dict lookup keyed by the address, no service, no headers for the backend
# (filled on first sight, as the bouncer fills its cache from its API; every client is "allow").
# shellcheck disable=SC2016
LUA_REFERENCE='auth_request /_ipcheck;=>access_by_lua_block {
            local dict = ngx.shared.ipcheck_reference
            local addr = ngx.var.remote_addr
            local verdict = dict:get(addr)
            if verdict == nil then
                verdict = "allow"
                dict:set(addr, verdict, 60)
            end
            if verdict ~= "allow" then
                return ngx.exit(403)
            end
        }'

# The variants in order, the whole sequence ROUNDS times (interleaved, so a slow moment of a
# shared machine spreads over all variants); the results are the means over the rounds.
for round in $(seq "$ROUNDS"); do
    log "--- round $round of $ROUNDS"
    if want a; then
        # (a) the ceiling: the same server, location / without auth_request.
        start_nginx a "$NOOP_PORT" "$NO_AUTH_ON_ROOT"
        warm "$WORK/clients.lua"
        measure a "$WORK/clients.lua" 0
        stop "$NGINX_PID"
    fi

    if want b; then
        # (b) auth_request to the do-nothing handler.
        start_nginx b "$NOOP_PORT"
        warm "$WORK/clients.lua"
        measure b "$WORK/clients.lua" "$NOOP_PID"
        stop "$NGINX_PID"
    fi

    if want c; then
        # (c) ipcheck-auth answering from its local tier (the warm-up asks the provider once per address).
        start_service svc-c
        start_nginx c "$SERVICE_PORT"
        warm "$WORK/clients.lua"
        before=$(tier_count "$METRICS_PORT" local)
        measure c "$WORK/clients.lua" "$SERVICE_PID"
        log "(c) local-tier answers during the run: $(($(tier_count "$METRICS_PORT" local) - before))"
        stop "$NGINX_PID"
        stop "$SERVICE_PID"
    fi

    if want cl; then
        # (cl) = (c) with the feed mix in Redis before the service starts, all three lists consulted.
        load_feeds
        start_service svc-cl "${FEED_EDITS[@]}"
        await 30 "the service's copy of the lists" lists_loaded
        start_nginx cl "$SERVICE_PORT"
        # location /'s policy does consult the lists: an address in the DROP list is refused.
        dropped=$(awk '$3 ~ /drop$/ { sub(/\/.*/, "", $4); print $4; exit }' "$WORK/feeds.redis")
        status=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Forwarded-For: $dropped" "http://127.0.0.1:$NGINX_PORT/")
        [ "$status" = 403 ] || die "(cl) $dropped, in the DROP list, got $status through nginx, not 403"
        warm "$WORK/clients.lua"
        before=$(tier_count "$METRICS_PORT" local)
        list_before=$(metric "$METRICS_PORT" 'ipcheck_list_decisions_total')
        measure cl "$WORK/clients.lua" "$SERVICE_PID"
        log "(cl) local-tier answers during the run: $(($(tier_count "$METRICS_PORT" local) - before)), list decisions: $(($(metric "$METRICS_PORT" 'ipcheck_list_decisions_total') - list_before)); the service's lists: $(for l in $FEED_LISTS; do printf '%s=%s ' "$l" "$(metric "$METRICS_PORT" "ipcheck_list_networks{list=\"$l\"}")"; done)"
        stop "$NGINX_PID"
        stop "$SERVICE_PID"
        drop_feeds
    fi

    if want cm; then
        # (cm) = (c) with three databases configured.
        start_service svc-cm "$DATABASE_EDIT"
        start_nginx cm "$SERVICE_PORT"
        warm "$WORK/clients.lua"
        before=$(tier_count "$METRICS_PORT" local)
        lookups_before=$(metric "$METRICS_PORT" 'ipcheck_database_lookups_total{database="geo",result="miss"}')
        measure cm "$WORK/clients.lua" "$SERVICE_PID"
        log "(cm) local-tier answers during the run: $(($(tier_count "$METRICS_PORT" local) - before)), country-database lookups: $(($(metric "$METRICS_PORT" 'ipcheck_database_lookups_total{database="geo",result="miss"}') - lookups_before))"
        stop "$NGINX_PID"
        stop "$SERVICE_PID"
    fi

    if want d; then
        # (d) no local tier: every decision from Redis (which (c)'s warm-up filled).
        start_service svc-d "capacity = 100000=>capacity = 0"
        start_nginx d "$SERVICE_PORT"
        warm "$WORK/clients.lua"
        before=$(tier_count "$METRICS_PORT" redis)
        measure d "$WORK/clients.lua" "$SERVICE_PID"
        log "(d) Redis answers during the run: $(($(tier_count "$METRICS_PORT" redis) - before))"
        stop "$NGINX_PID"
        stop "$SERVICE_PID"
    fi

    if want d0; then
        # (d0) the same shape with the least work: one plain GET of the same keys, then 204.
        start_nginx d0 "$NOOP_REDIS_PORT"
        warm "$WORK/clients.lua"
        measure d0 "$WORK/clients.lua" "$NOOP_REDIS_PID"
        stop "$NGINX_PID"
    fi

    if want e; then
        # (e) cold addresses: every request waits for the 20 ms provider.
        start_service svc-e
        start_nginx e "$SERVICE_PORT"
        measure e "$WORK/cold.lua" "$SERVICE_PID" $((10 + round))
        log "(e) provider answers during the run: $(tier_count "$METRICS_PORT" provider), mean provider call as the service measured it: $(provider_ms "$METRICS_PORT") ms"
        stop "$NGINX_PID"
        stop "$SERVICE_PID"
    fi

    if want e0; then
        # (e0) the same shape with the least work: one call to the same provider, then 204.
        start_nginx e0 "$NOOP_PROVIDER_PORT"
        measure e0 "$WORK/cold.lua" "$NOOP_PROVIDER_PID" $((20 + round))
        stop "$NGINX_PID"
    fi

    if want f; then
        # (f) the micro-cache on: repeat visitors never reach the service.
        start_service svc-f
        # shellcheck disable=SC2016 # nginx variables, literally
        start_nginx f "$SERVICE_PORT" 'set $ipcheck_microcache 0;=>set $ipcheck_microcache 1;'
        warm "$WORK/clients.lua"
        before=$(tier_count "$METRICS_PORT" local)
        measure f "$WORK/clients.lua" "$SERVICE_PID"
        log "(f) requests that still reached the service during the run: $(($(tier_count "$METRICS_PORT" local) - before))"
        stop "$NGINX_PID"
        stop "$SERVICE_PID"
    fi

    # (cu) = (c) with the service on a unix socket instead of loopback TCP.
    if want cu; then
        SERVICE_UNIX=1 start_service svc-cu
        start_nginx cu "$SERVICE_PORT"
        warm "$WORK/clients.lua"
        before=$(tier_count "$METRICS_PORT" local)
        measure cu "$WORK/clients.lua" "$SERVICE_PID"
        log "(cu) local-tier answers during the run: $(($(tier_count "$METRICS_PORT" local) - before))"
        stop "$NGINX_PID"
        stop "$SERVICE_PID"
    fi

    # (g) the Lua fast path: repeat clients answered from nginx's shared dict for up to 1 s.
    if want g; then
        start_service svc-g
        NGINX_LUA=1 start_nginx g "$SERVICE_PORT" "$FAST_PATH"
        warm "$WORK/clients.lua"
        before=$(tier_count "$METRICS_PORT" local)
        measure g "$WORK/clients.lua" "$SERVICE_PID"
        log "(g) requests that still reached the service during the run: $(($(tier_count "$METRICS_PORT" local) - before))"
        stop "$NGINX_PID"
        stop "$SERVICE_PID"
    fi

    # (r) the reference: a CrowdSec-style shared-dict lookup in nginx, no service.
    if want r; then
        NGINX_LUA=1 NGINX_HTTP_EXTRA='lua_shared_dict ipcheck_reference 10m;' \
            start_nginx r "$NOOP_PORT" "$LUA_REFERENCE"
        warm "$WORK/clients.lua"
        measure r "$WORK/clients.lua" 0
        stop "$NGINX_PID"
    fi
done

for name in a b c cl cm d d0 e e0 f cu g r; do
    RPS[$name]=$(awk -v s="${RPS_SUM[$name]:-0}" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }')
    P99[$name]=$(awk -v s="${P99_SUM[$name]:-0}" -v n="$ROUNDS" 'BEGIN { printf "%.2f", s / n }')
done

BOUND=$((CONNS * 1000 / PROVIDER_MS))
declare -A LABEL=(
    [a]="no auth" [b]="noop auth_request" [c]="ipcheck, local hits"
    [cl]="(c) + feed-mix lists" [cm]="(c) + three databases" [d]="ipcheck, Redis only"
    [d0]="noop + one Redis GET" [e]="cold, provider ${PROVIDER_MS} ms (bound ${CONNS}/${PROVIDER_MS} ms = $BOUND req/s)"
    [e0]="noop + one provider call" [f]="nginx micro-cache" [cu]="(c) over a unix socket"
    [g]="Lua fast path" [r]="Lua reference (CrowdSec)"
)
ORDER=(a b c cl cm d d0 e e0 f cu g r)

# ran <variants...>: whether every one was measured in this run (ONLY may leave some out; their
# ratios are then left out of the summary rather than printed as missed).
ran() {
    local v
    for v; do [ "${RPS_SUM[$v]:-0}" != 0 ] || return 1; done
}
SUMMARY=()
# target <name> <value> <op> <threshold> <variants...>: a ratio with a target.
target() {
    local name=$1 value=$2 op=$3 t=$4
    shift 4
    if ran "$@"; then SUMMARY+=("$name=$value ($(meets "$value" "$op" "$t") $op$t)"); fi
}
# info <name> <value> <variants...>: a ratio given for the record.
info() {
    local name=$1 value=$2
    shift 2
    if ran "$@"; then SUMMARY+=("[$name=$value]"); fi
}
info b/a "$(ratio "${RPS[b]}" "${RPS[a]}")" a b
target c/b "$(ratio "${RPS[c]}" "${RPS[b]}")" ">=" 0.95 b c
target c_p99/b_p99 "$(ratio "${P99[c]}" "${P99[b]}")" "<=" 1.1 b c
target cl/c "$(ratio "${RPS[cl]}" "${RPS[c]}")" ">=" 0.95 c cl
info cl_p99/c_p99 "$(ratio "${P99[cl]}" "${P99[c]}")" c cl
target cm/c "$(ratio "${RPS[cm]}" "${RPS[c]}")" ">=" 0.95 c cm
info cm_p99/c_p99 "$(ratio "${P99[cm]}" "${P99[c]}")" c cm
target d/b "$(ratio "${RPS[d]}" "${RPS[b]}")" ">=" 0.85 b d
info d0/b "$(ratio "${RPS[d0]}" "${RPS[b]}")" b d0
info d/d0 "$(ratio "${RPS[d]}" "${RPS[d0]}")" d d0
target e/bound "$(ratio "${RPS[e]}" "$BOUND")" ">=" 0.9 e
target e_p99_ms "${P99[e]}" "<=" 25 e
info e0/bound "$(ratio "${RPS[e0]}" "$BOUND")" e0
info e_p99/e0_p99 "$(ratio "${P99[e]}" "${P99[e0]}")" e e0
target f/a "$(ratio "${RPS[f]}" "${RPS[a]}")" ">=" 0.7 a f
info f/c "$(ratio "${RPS[f]}" "${RPS[c]}")" c f
info f_p99/c_p99 "$(ratio "${P99[f]}" "${P99[c]}")" c f
info cu/c "$(ratio "${RPS[cu]}" "${RPS[c]}")" c cu
info r/a "$(ratio "${RPS[r]}" "${RPS[a]}")" a r
target g/r "$(ratio "${RPS[g]}" "${RPS[r]}")" ">=" 1.0 g r
target g/a "$(ratio "${RPS[g]}" "${RPS[a]}")" ">=" 0.9 a g

{
    echo
    echo "variant (mean of $ROUNDS rounds): req/s, p99 ms"
    for name in "${ORDER[@]}"; do
        if ran "$name"; then printf '(%s) %-40s %8s %8s\n' "$name" "${LABEL[$name]}" "${RPS[$name]}" "${P99[$name]}"; fi
    done
    echo
    echo "CPU us per request (last round):"
    for name in "${ORDER[@]}"; do
        [ -z "${CPU[$name]:-}" ] || printf '(%s) %s\n' "$name" "${CPU[$name]}"
    done
} >&2
echo "nginx: ${SUMMARY[*]}"
