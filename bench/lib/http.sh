# bench/lib/http.sh — section "http" of bench/run.sh (issue 5, HTTP/1.1):
# examples/http_hello.lua under wrk (keep-alive, 50 and 1,000 connections,
# the server pinned to SERVER_CPU, wrk to CLIENT_CPU) beside a raw libuv C
# server, Node `http`, luv, Python asyncio and nginx + ngx_lua; then the
# instructions per request of tide and nginx + ngx_lua under valgrind
# (issue 14). Sourced by run.sh; see bench/README.md.

# A load is a connection count, or COUNTpDEPTH: that many connections each
# pipelining DEPTH requests per write (tools/pipeline.lua).
HTTP_CONNS=${HTTP_CONNS:-"50 1000 50p16"}

http_targets() {
  HTTP_TARGETS=()
  if [ -f "$ROOT/examples/http_hello.lua" ]; then
    HTTP_TARGETS+=("tide|$TIDE $ROOT/examples/http_hello.lua")
  else
    note http "tide: examples/http_hello.lua does not exist yet, its column is empty"
  fi
  HTTP_TARGETS+=("c|$BIN/uv_http")
  if have node; then HTTP_TARGETS+=("node|node $BENCH/peers/node_http.js")
  else note http "node: not installed (apt package nodejs), its column is empty"; fi
  if have_luv; then HTTP_TARGETS+=("luv|lua5.4 $BENCH/peers/luv_http.lua")
  else note http "luv: lua-luv not installed, its column is empty"; fi
  HTTP_TARGETS+=("asyncio|python3 $BENCH/peers/asyncio_http.py")
  if have_nginx_lua; then HTTP_TARGETS+=("nginx|$BENCH/peers/nginx_lua.sh")
  else note http "nginx: nginx-light or libnginx-mod-http-lua not installed, its column is empty"; fi
}

have_nginx_lua() {
  have nginx && [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]
}

# Instructions per request (valgrind, deterministic): tide's hello server
# and nginx + ngx_lua, HTTP_IR_REQUESTS keep-alive requests over 50
# connections (bench/tools/ir_per_req.sh). Recorded as run 1 of "ir_per_req".
HTTP_IR_REQUESTS=${HTTP_IR_REQUESTS:-10000}
http_ir() {
  local name cmd out
  if ! have valgrind; then
    note http "valgrind not installed: no instructions per request"
    return
  fi
  for t in "tide|$TIDE $ROOT/examples/http_hello.lua" "nginx|$BENCH/peers/nginx_lua.sh"; do
    name=${t%%|*} cmd=${t#*|}
    [ "$name" = nginx ] && ! have_nginx_lua && continue
    log "  $name: instructions per request (valgrind, $HTTP_IR_REQUESTS requests)"
    # shellcheck disable=SC2086
    if out=$(timeout -k 5 900 "$BENCH/tools/ir_per_req.sh" "$HTTP_IR_REQUESTS" $cmd 2>&1); then
      record http ir_per_req "$name" ir_req 1 "${out##* }"
      log "    $out"
    else
      note http "$name: instructions per request failed: $(echo "$out" | tail -c 200 | tr '\n' ' ')"
    fi
  done
}

# wrk output -> "rps requests p99_ms errors"
parse_wrk() {
  awk '
  function ms(v) {
    if (v ~ /us$/) return v / 1000
    if (v ~ /ms$/) return v + 0
    if (v ~ /m$/)  return v * 60000
    if (v ~ /s$/)  return v * 1000
    return v + 0
  }
  /Requests\/sec:/ { rps = $2 }
  / requests in / { n = $1 }
  $1 == "99%" { p99 = ms($2) }
  /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
  /Non-2xx or 3xx responses:/ { err += $NF }
  END { printf "%s %s %s %d\n", (rps == "" ? 0 : rps), (n == "" ? 0 : n), (p99 == "" ? 0 : p99), err }' "$1"
}

# http_load RUN NAME COMMAND CONNS: one server, checked, warmed up, then
# loaded. Returns 2 (nothing recorded) when other processes disturbed the
# load, unless LAST_TRY=1 (see retry_disturbed).
http_load() {
  local run=$1 name=$2 cmd=$3 c=$4 tag="http-$2-c$4-r$1" t0 t1 ns0 ns1 b0 b1 out hwm rps n p99 errs
  local conns=${4%%p*} script=()
  [ "$conns" != "$c" ] && script=(-s "$BENCH/tools/pipeline.lua")
  log "  $name c=$c"
  # shellcheck disable=SC2086
  start_server "$OUT/raw/$tag.server.log" $cmd || { note http "$name c=$c run $run: server did not start"; return; }
  if ! timeout -k 2 15 python3 "$BENCH/tools/check_http.py" "$SERVER_PORT" >"$OUT/raw/$tag.check" 2>&1; then
    note http "$name c=$c run $run: wrong answer: $(tail -c 200 "$OUT/raw/$tag.check" | tr '\n' ' ')"
    stop_server
    return
  fi
  if [ "$WARMUP" -gt 0 ]; then
    timeout -k 2 $((WARMUP + 30)) taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${WARMUP}s" \
      "${script[@]}" "http://127.0.0.1:$SERVER_PORT/" ${script:+-- "${c#*p}"} >/dev/null 2>&1
  fi
  out="$OUT/raw/$tag.wrk"
  # wrk's own CPU time comes from bash's `time`, in seconds
  local TIMEFORMAT='%U %S'
  t0=$(server_ticks); b0=$(cpu_busy); ns0=$(date +%s%N)
  { time timeout -k 2 $((DURATION + 30)) taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${DURATION}s" --latency \
      "${script[@]}" "http://127.0.0.1:$SERVER_PORT/" ${script:+-- "${c#*p}"} >"$out" 2>&1; } 2>"$out.time"
  t1=$(server_ticks); b1=$(cpu_busy); ns1=$(date +%s%N)
  hwm=$(status_kb VmHWM)
  kill -0 "$SERVER_PID" 2>/dev/null || note http "$name c=$c run $run: the server died"
  stop_server
  read -r rps n p99 errs < <(parse_wrk "$out")
  if [ "$n" = 0 ]; then
    note http "$name c=$c run $run: no result: $(tail -c 200 "$out" | tr '\n' ' ')"
    return
  fi
  local cticks others
  cticks=$(awk -v hz="$CLK_TCK" '{ printf "%.0f", ($1 + $2) * hz }' "$out.time")
  others=$(foreign_pct "$b0" "$b1" $((t1 - t0)) "${cticks:-0}" $((ns1 - ns0)))
  local flag=0
  if [ "$others" -gt "$DISTURBED_PCT" ]; then
    [ "${LAST_TRY:-1}" = 1 ] || return 2
    DISTURBED=$((DISTURBED + 1))
    flag=1
  fi
  record http "http_$c" "$name" disturbed "$run" "$flag"
  record http "http_$c" "$name" req/s "$run" "$rps"
  record http "http_$c" "$name" p99_ms "$run" "$p99"
  record http "http_$c" "$name" cpu_us "$run" "$(us_per_op $((t1 - t0)) "$n")"
  record http "http_$c" "$name" cpu_pct "$run" "$(cpu_pct $((t1 - t0)) $((ns1 - ns0)))"
  record http "http_$c" "$name" others_pct "$run" "$others"
  record http "http_$c" "$name" rss_kb "$run" "$hwm"
  record http "http_$c" "$name" errors "$run" "$errs"
  log "    $rps req/s, p99 $p99 ms, $(us_per_op $((t1 - t0)) "$n") us/req CPU, peak RSS $hwm KiB, errors $errs, others ${others}%"
}

section_http() {
  local run t name cmd c
  log "== http: hello world under wrk, connections $HTTP_CONNS"
  if ! have wrk; then
    note http "wrk not installed (apt package wrk): section skipped"
    return
  fi
  http_targets
  for ((run = 1; run <= RUNS; run++)); do
    log "-- http run $run/$RUNS"
    for t in "${HTTP_TARGETS[@]}"; do
      name=${t%%|*} cmd=${t#*|}
      for c in $HTTP_CONNS; do retry_disturbed http_load "$run" "$name" "$cmd" "$c"; done
    done
  done
  http_ir
  disturbance_note http
}
