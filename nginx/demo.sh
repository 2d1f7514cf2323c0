#!/usr/bin/env bash
# Brings up the whole stack on loopback (redis-server with the module, ipcheck-auth, nginx with
# example.conf, a stand-in provider and backend), prints curl lines that show allow, block and
# challenge, and stops everything on Ctrl-C. Needs redis-server and nginx (./run-tests.sh
# installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p ipcheck-redis -p ipcheck-auth -p ipcheck-tests --bin demo
"${CARGO_TARGET_DIR:-target}/debug/demo" &
demo=$!
# Stop the demo's processes (redis-server, ipcheck-auth, nginx) however this script ends.
trap 'pkill -TERM -P "$demo" 2>/dev/null; kill "$demo" 2>/dev/null; wait "$demo" 2>/dev/null' EXIT INT TERM
wait "$demo"
