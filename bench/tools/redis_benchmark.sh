#!/usr/bin/env bash
# bench/tools/redis_benchmark.sh — runs redis-benchmark (SET and GET, 3-byte
# values) and prints its rates as "RESULT <prefix><cmd>[_p<P>] <rps> ops/s"
# lines for bench/lib/common.sh's run_micro.
# Usage: redis_benchmark.sh PORT CLIENTS PIPELINE REQUESTS [PREFIX]
set -euo pipefail
port=$1 clients=$2 pipeline=$3 requests=$4 prefix=${5:-redis_}
suffix=""; [ "$pipeline" -gt 1 ] && suffix="_p$pipeline"
redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -P "$pipeline" -n "$requests" \
  -d 3 -r 50 -t set,get --csv 2>/dev/null |
  awk -F, -v pre="$prefix" -v suf="$suffix" '
    { gsub(/"/, "") }
    $1 == "SET" || $1 == "GET" { printf "RESULT %s%s%s %.0f ops/s\n", pre, tolower($1), suf, $2 }'
