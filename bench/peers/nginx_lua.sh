#!/usr/bin/env bash
# bench/peers/nginx_lua.sh — nginx + ngx_lua (OpenResty's module, LuaJIT)
# answering GET / with "Hello, World!" from a Lua handler: the best-known
# "Lua on an event loop" server. One worker, no master, keep-alive.
# usage: nginx_lua.sh PORT   (Debian: nginx-light libnginx-mod-http-lua)
set -eu
port=${1:?port}
# nginx itself takes this process's PID (exec, below) so that the bench
# reads its CPU time and RSS; its small folder stays in /tmp.
dir=$(mktemp -d /tmp/tide-bench-nginx.XXXXXX)
mods=""
for m in ndk_http_module ngx_http_lua_module; do
  [ -f "/usr/lib/nginx/modules/$m.so" ] && mods="$mods load_module /usr/lib/nginx/modules/$m.so;"
done
cat >"$dir/nginx.conf" <<CONF
$mods
worker_processes 1;
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir;
  lua_code_cache on;
  server {
    listen 127.0.0.1:$port reuseport backlog=1024;
    keepalive_requests 1000000;
    location / {
      default_type text/plain;
      content_by_lua_block { ngx.header["Content-Length"] = 13; ngx.print("Hello, World!") }
    }
  }
}
CONF
exec nginx -p "$dir" -c "$dir/nginx.conf"
