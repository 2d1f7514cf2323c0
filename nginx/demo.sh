#!/usr/bin/env bash
# Brings up the whole stack on loopback (redis-server with the module, ipcheck-auth, nginx with
# example.conf, a stand-in provider and backend), prints curl lines that show allow, block and
# challenge, and stops everything on Ctrl-C. Needs redis-server and nginx (./run-tests.sh
# installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
# Two builds: `--bin demo` restricts every listed package to a binary named demo, so the module
# (a library) would not be built by the same command.
cargo build -q -p ipcheck-redis -p ipcheck-auth
cargo build -q -p ipcheck-tests --bin demo
# Every process's directory and log goes under one folder, removed when the demo stops.
root=$(mktemp -d -t ipcheck-demo.XXXXXX)
export TMPDIR="$root"
echo "logs under $root (removed on exit): nginx */logs/error.log and */logs/ipcheck-access.log, ipcheck-auth */service.log, redis-server */redis.log"
"${CARGO_TARGET_DIR:-target}/debug/demo" &
demo=$!
# Stop the demo's processes (redis-server, ipcheck-auth, nginx) however this script ends.
trap 'pkill -TERM -P "$demo" 2>/dev/null; kill "$demo" 2>/dev/null; wait "$demo" 2>/dev/null || true; rm -rf "$root"' EXIT INT TERM
wait "$demo"
