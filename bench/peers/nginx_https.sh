#!/usr/bin/env bash
# nginx_https.sh — the peer of the tls section: nginx (Debian nginx-light)
# with `ssl`, one worker, no master, answering every request with
# "Hello, World!" (`return 200`), on 127.0.0.1 only.
#   nginx_https.sh CERT KEY PORT
#   nginx_https.sh - - PORT        the same over plain HTTP (for reference)
# Its files (config, error log) go to $NGINX_DIR (default: a fresh folder
# under $TMPDIR).
# NGINX_LOG=FILE: access log of "$ssl_protocol $ssl_session_reused" per
# request (the bench checks with it whether a client resumes sessions).
set -eu
cert=$1 key=$2 port=$3
dir=${NGINX_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tide-bench-nginx.XXXXXX")}
mkdir -p "$dir"
if [ -n "${NGINX_LOG:-}" ]; then
  log="log_format tls '\$ssl_protocol \$ssl_session_reused'; access_log $NGINX_LOG tls;"
else
  log="access_log off;"
fi
if [ "$cert" = - ]; then
  listen="listen 127.0.0.1:$port backlog=1024;"
else
  listen="listen 127.0.0.1:$port ssl backlog=1024;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;   # as tide (Debian's nginx 1.22 leaves TLSv1.3 out by default)"
fi
cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  $log
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    $listen
    keepalive_requests 1000000;
    location / {
      default_type text/plain;
      return 200 "Hello, World!";
    }
  }
}
CONF
exec nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
