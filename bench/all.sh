#!/usr/bin/env bash
# Every benchmark group in turn, then the machine they ran on and each group's summary line.
# Takes about 25 minutes. Usage: bench/all.sh
set -euo pipefail
cd "$(dirname "$0")"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
summaries=()
for script in micro.sh memory.sh redis-module.sh nginx.sh rotation.sh redis-stop.sh decision-log.sh zipf.sh netlists.sh; do
    echo "=== bench/$script" >&2
    summaries+=("$(./"$script" | tail -n 1)")
done

{
    echo
    echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)"
    echo "versions: $(redis-server --version | awk '{ print $1, $3 }'), $(PATH="$PATH:/usr/sbin" nginx -v 2>&1 | sed 's/.*: //'), $(wrk --version 2>&1 | awk 'NR == 1 { print $1, $2 }'), $(rustc --version | awk '{ print $1, $2 }')"
    echo "load average before: $load_before; at the end (the benchmarks' own load): $(cut -d' ' -f1-3 /proc/loadavg)"
} >&2
for line in "${summaries[@]}"; do
    echo "$line" >&2
done
joined="all:"
for line in "${summaries[@]}"; do
    joined+=" [$line]"
done
echo "$joined"
