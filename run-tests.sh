#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine or a developer's: installs what is missing
# (redis-server, nginx, clang for the redis-module crate's bindgen, openssl for the TLS tests'
# certificates, systemd for `systemd-analyze verify` of the shipped unit), builds the module and
# the service the end-to-end tests start, then runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v clang >/dev/null || missing+=(clang)
command -v openssl >/dev/null || missing+=(openssl)
command -v systemd-analyze >/dev/null || missing+=(systemd)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
# nginx's Lua module (and the NDK it needs), for the optional fast path's tests (nginx_fastpath).
dpkg -s libnginx-mod-http-lua >/dev/null 2>&1 || missing+=(libnginx-mod-http-lua)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
export PATH="$PATH:/usr/sbin"

cargo build --locked -p ipcheck-redis -p ipcheck-auth
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --workspace 2>&1 | tee "$log"
# One closing line for the whole run: cargo ends with the last crate's doc-tests, often "0 passed".
awk '/^test result:/ { p += $4; f += $6 } END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
