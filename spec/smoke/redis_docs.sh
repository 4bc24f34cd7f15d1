#!/usr/bin/env bash
# Every ```lua block of docs/redis.md that requires "tide" runs under the
# binary against a redis-server started here on a free port of 127.0.0.1
# (REDIS_URL), and exits with status 0 with nothing on stderr.
set -euo pipefail
. spec/smoke/lib/doc_examples.sh
command -v redis-server >/dev/null || { echo "redis-server missing: skipped"; exit 0; }
tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
  --pidfile "$tmp/redis.pid" --logfile "$tmp/redis.log" --daemonize yes
trap 'kill "$(cat "$tmp/redis.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
export REDIS_URL="redis://127.0.0.1:$port"
n=$(python3 spec/smoke/lib/lua_blocks.py docs/redis.md "$tmp")
[ "$n" -ge 8 ]
run_examples "$tmp"
echo "$n examples ran"
