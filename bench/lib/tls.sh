# bench/lib/tls.sh — section "tls" of bench/run.sh (issue 10, TLS): tide's
# HTTPS (examples/https_hello.lua) beside nginx with `ssl` (Debian
# nginx-light) on the same certificate, and tide over TLS beside tide over
# plain TCP/HTTP. Sourced by run.sh; see bench/README.md.
#
#   conn_ec, conn_rsa  new TLS connections per second: tools/tls_load.c -m
#                      conn (a full handshake for every connection, one
#                      request with "Connection: close"), an ECDSA P-256
#                      and an RSA-2048 certificate; tide vs nginx
#   ka_50              keep-alive hello under wrk, 50 connections: tide
#                      over HTTPS vs tide over HTTP (CPU per request), and
#                      nginx both ways for reference
#   echo_16384         TLS echo of 16 KiB messages (tls_load -m echo):
#                      peers/tide_tls_echo.lua vs its twin tide_tcp_echo.lua
#   ir_req, ir_conn_*, ir_echo  instructions (valgrind cachegrind,
#                      deterministic) per keep-alive request, per new
#                      connection and per echoed message
# Certificates are made here, into $OUT/tls, with the openssl command.

TLS_CONNS=${TLS_CONNS:-50}            # slots opening new connections
TLS_KA_CONNS=${TLS_KA_CONNS:-50}      # wrk keep-alive connections
TLS_ECHO_CONNS=${TLS_ECHO_CONNS:-50}
TLS_ECHO_SIZE=${TLS_ECHO_SIZE:-16384}
TLS_IR=${TLS_IR:-1}                   # 0: no instruction counts (valgrind)
TLS_IR_REQS=${TLS_IR_REQS:-"2000 12000"}   # keep-alive requests: two loads, the difference counts
TLS_IR_NEW=${TLS_IR_NEW:-"40 240"}         # new connections: likewise
TLS_IR_MSGS=${TLS_IR_MSGS:-"500 3000"}     # echo messages: likewise

# Makes $TLS_DIR/{ec,rsa}.{pem,key}: self-signed, CN and SAN localhost and
# 127.0.0.1.
tls_certs() {
  local k alg
  TLS_DIR=$OUT/tls
  mkdir -p "$TLS_DIR"
  for k in ec rsa; do
    if [ $k = ec ]; then alg=(-newkey ec -pkeyopt ec_paramgen_curve:P-256); else alg=(-newkey rsa:2048); fi
    openssl req -x509 "${alg[@]}" -nodes -keyout "$TLS_DIR/$k.key" -out "$TLS_DIR/$k.pem" -days 30 \
      -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$TLS_DIR/$k.log" 2>&1 ||
      return 1
  done
}

# value KEY FILE: the number after "KEY=" in tls_load's output line.
tls_value() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" "$2" | head -1; }

# Distinct "proto cipher" pairs the checks saw, for the notes.
TLS_SEEN=""
tls_seen() {
  local p c
  p=$(sed -n 's/.*proto=\([^ ]*\).*/\1/p' "$2" | head -1)
  c=$(sed -n 's/.*cipher=\([^ ]*\).*/\1/p' "$2" | head -1)
  [ -n "$p" ] && [ "$p" != - ] || return 0
  case " $TLS_SEEN " in *" $1:$p/$c "*) ;; *) TLS_SEEN="$TLS_SEEN $1:$p/$c" ;; esac
}

# tls_record RUN FIGURE PEER METRIC RATE COUNT P99_MS TICKS NS B0 B1 CLIENT_TICKS HWM ERRORS:
# the common records of one load; returns 2 when disturbed (see retry_disturbed).
tls_record() {
  local run=$1 fig=$2 peer=$3 metric=$4 rate=$5 n=$6 p99=$7 ticks=$8 ns=$9 b0=${10} b1=${11} cticks=${12} hwm=${13} errs=${14}
  local others flag=0
  others=$(foreign_pct "$b0" "$b1" "$ticks" "$cticks" "$ns")
  if [ "$others" -gt "$DISTURBED_PCT" ]; then
    [ "${LAST_TRY:-1}" = 1 ] || return 2
    DISTURBED=$((DISTURBED + 1))
    flag=1
  fi
  record tls "$fig" "$peer" disturbed "$run" "$flag"
  record tls "$fig" "$peer" "$metric" "$run" "$rate"
  record tls "$fig" "$peer" p99_ms "$run" "$p99"
  record tls "$fig" "$peer" cpu_us "$run" "$(us_per_op "$ticks" "$n")"
  # what one CPU of the server sustains (1 / its CPU per operation): the
  # figure that ranks servers when the load client is the bottleneck
  [ "$ticks" -gt 0 ] && record tls "$fig" "$peer" per_cpu_s "$run" \
    "$(awk -v t="$ticks" -v n="$n" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", n / (t / hz) }')"
  record tls "$fig" "$peer" cpu_pct "$run" "$(cpu_pct "$ticks" "$ns")"
  record tls "$fig" "$peer" others_pct "$run" "$others"
  record tls "$fig" "$peer" rss_kb "$run" "$hwm"
  record tls "$fig" "$peer" errors "$run" "$errs"
  log "    $rate $metric, p99 $p99 ms, $(us_per_op "$ticks" "$n") us/op CPU ($(cpu_pct "$ticks" "$ns") %), peak RSS $hwm KiB, errors $errs, others ${others}%"
}

# tls_run RUN FIGURE PEER METRIC "CHECK ARGS" "LOAD ARGS" COMMAND...: one
# server (COMMAND PORT), checked with tls_load CHECK ARGS, loaded with
# tls_load LOAD ARGS for WARMUP + DURATION s.
tls_run() {
  local run=$1 fig=$2 peer=$3 metric=$4 check=$5 load=$6; shift 6
  local tag="tls-$fig-$peer-r$run" out client t0 t1 b0 b1 ns0 ns1 hwm
  log "  $peer $fig"
  start_server "$OUT/raw/$tag.server.log" "$@" || { note tls "$peer $fig run $run: server did not start"; return; }
  # shellcheck disable=SC2086
  if ! timeout -k 2 30 taskset -c "$CLIENT_CPU" "$BIN/tls_load" -p "$SERVER_PORT" $check >"$OUT/raw/$tag.verify" 2>&1; then
    note tls "$peer $fig run $run: wrong answer: $(tail -c 200 "$OUT/raw/$tag.verify" | tr '\n' ' ')"
    stop_server
    return
  fi
  tls_seen "$peer" "$OUT/raw/$tag.verify"
  out="$OUT/raw/$tag.out"
  # shellcheck disable=SC2086
  timeout -k 2 $((WARMUP + DURATION + 30)) taskset -c "$CLIENT_CPU" "$BIN/tls_load" -p "$SERVER_PORT" \
    $load -d "$DURATION" -w "$WARMUP" >"$out" 2>&1 &
  client=$!
  CLIENT_PID=$client
  sleep "$WARMUP"
  t0=$(server_ticks); b0=$(cpu_busy); ns0=$(date +%s%N)
  wait "$client"
  t1=$(server_ticks); b1=$(cpu_busy); ns1=$(date +%s%N)
  CLIENT_PID=
  hwm=$(status_kb VmHWM)
  kill -0 "$SERVER_PID" 2>/dev/null || note tls "$peer $fig run $run: the server died"
  stop_server
  local n rate p99 errs cms resumed
  n=$(tls_value conns "$out"); [ -n "$n" ] || n=$(tls_value msgs "$out"); [ -n "$n" ] || n=$(tls_value reqs "$out")
  rate=$(sed -n 's/^[a-z]*=[0-9]* [a-z]*_per_s=\([0-9.]*\).*/\1/p' "$out" | head -1)
  p99=$(tls_value p99_us "$out")
  errs=$(tls_value errors "$out")
  cms=$(tls_value cpu_ms "$out")
  resumed=$(tls_value resumed "$out")
  if [ -z "$rate" ]; then
    note tls "$peer $fig run $run: no result: $(tail -c 200 "$out" | tr '\n' ' ')"
    return
  fi
  [ "${resumed:-0}" -gt 0 ] && note tls "$peer $fig run $run: $resumed handshakes were resumed (should be none)"
  tls_record "$run" "$fig" "$peer" "$metric" "$rate" "$n" "$(awk -v u="${p99:-0}" 'BEGIN { printf "%.3f", u / 1000 }')" \
    $((t1 - t0)) $((ns1 - ns0)) "$b0" "$b1" $((${cms:-0} * CLK_TCK / 1000)) "$hwm" "${errs:-0}"
}

# tls_wrk RUN FIGURE PEER SCHEME COMMAND...: keep-alive hello under wrk
# (-t1, TLS_KA_CONNS connections), as the http section does.
tls_wrk() {
  local run=$1 fig=$2 peer=$3 scheme=$4; shift 4
  local tag="tls-$fig-$peer-r$run" out t0 t1 b0 b1 ns0 ns1 hwm rps n p99 errs plain=
  [ "$scheme" = http ] && plain=-P
  log "  $peer $fig ($scheme)"
  start_server "$OUT/raw/$tag.server.log" "$@" || { note tls "$peer $fig run $run: server did not start"; return; }
  if ! timeout -k 2 30 taskset -c "$CLIENT_CPU" "$BIN/tls_load" -p "$SERVER_PORT" -m ka $plain -v -n 100 -c 4 \
       >"$OUT/raw/$tag.verify" 2>&1; then
    note tls "$peer $fig run $run: wrong answer: $(tail -c 200 "$OUT/raw/$tag.verify" | tr '\n' ' ')"
    stop_server
    return
  fi
  tls_seen "$peer" "$OUT/raw/$tag.verify"
  local url="$scheme://127.0.0.1:$SERVER_PORT/"
  [ "$WARMUP" -gt 0 ] && timeout -k 2 $((WARMUP + 30)) taskset -c "$CLIENT_CPU" wrk -t1 -c"$TLS_KA_CONNS" \
    -d"${WARMUP}s" "$url" >/dev/null 2>&1
  out="$OUT/raw/$tag.wrk"
  local TIMEFORMAT='%U %S'
  t0=$(server_ticks); b0=$(cpu_busy); ns0=$(date +%s%N)
  { time timeout -k 2 $((DURATION + 30)) taskset -c "$CLIENT_CPU" wrk -t1 -c"$TLS_KA_CONNS" -d"${DURATION}s" \
      --latency "$url" >"$out" 2>&1; } 2>"$out.time"
  t1=$(server_ticks); b1=$(cpu_busy); ns1=$(date +%s%N)
  hwm=$(status_kb VmHWM)
  kill -0 "$SERVER_PID" 2>/dev/null || note tls "$peer $fig run $run: the server died"
  stop_server
  read -r rps n p99 errs < <(parse_wrk "$out")
  if [ "$n" = 0 ]; then
    note tls "$peer $fig run $run: no result: $(tail -c 200 "$out" | tr '\n' ' ')"
    return
  fi
  tls_record "$run" "$fig" "$peer" req/s "$rps" "$n" "$p99" $((t1 - t0)) $((ns1 - ns0)) "$b0" "$b1" \
    "$(awk -v hz="$CLK_TCK" '{ printf "%.0f", ($1 + $2) * hz }' "$out.time")" "$hwm" "$errs"
}

# tls_ir_once N "LOAD ARGS" COMMAND...: the user-space instructions (Ir) the
# server COMMAND PORT ran, under valgrind cachegrind, from its start to its
# SIGTERM after tls_load LOAD ARGS -N N finished. Prints the count, or
# nothing when something failed.
tls_ir_once() {
  local n=$1 args=$2 dir i rc; shift 2
  dir=$(mktemp -d "$OUT/raw/cg.XXXXXX")
  SERVER_PORT=$(free_port)
  taskset -c "$SERVER_CPU" valgrind --tool=cachegrind --cache-sim=no --trace-children=yes \
    --cachegrind-out-file="$dir/cg.%p" "$@" "$SERVER_PORT" >"$dir/server.log" 2>&1 </dev/null &
  SERVER_PID=$!
  rc=1
  for ((i = 0; i < 1200; i++)); do
    listening "$SERVER_PORT" && { rc=0; break; }
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [ $rc = 0 ]; then
    # shellcheck disable=SC2086
    timeout -k 2 600 taskset -c "$CLIENT_CPU" "$BIN/tls_load" -p "$SERVER_PORT" $args -N "$n" >"$dir/load.out" 2>&1
    rc=$?
  else
    echo "the server did not listen" >"$dir/load.out"
  fi
  kill -TERM "$SERVER_PID" 2>/dev/null
  for ((i = 0; i < 600; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=
  if [ $rc != 0 ]; then
    log "    load failed: $(tail -c 200 "$dir/load.out" | tr '\n' ' ')"
    return
  fi
  cat "$dir"/cg.* 2>/dev/null | awk '/^summary:/ { s += $2 } END { if (s > 0) printf "%.0f\n", s }'
}

# tls_ir FIGURE PEER "N1 N2" "LOAD ARGS" COMMAND...: instructions per unit
# of load: (Ir after N2 - Ir after N1) / (N2 - N1), the same connections
# count in both (so start-up, and for keep-alive the handshakes, cancel).
tls_ir() {
  local fig=$1 peer=$2 n1=${3% *} n2=${3#* } args=$4 a b; shift 4
  log "  $peer $fig: instructions, $n1 and $n2 under cachegrind"
  a=$(tls_ir_once "$n1" "$args" "$@"); b=$(tls_ir_once "$n2" "$args" "$@")
  if [ -z "$a" ] || [ -z "$b" ]; then   # once more: a busy machine can stall valgrind's start
    log "    again"
    [ -n "$a" ] || a=$(tls_ir_once "$n1" "$args" "$@")
    [ -n "$b" ] || b=$(tls_ir_once "$n2" "$args" "$@")
  fi
  if [ -z "$a" ] || [ -z "$b" ]; then
    note tls "$peer $fig: no instruction count (valgrind run failed)"
    return
  fi
  local per=$(((b - a) / (n2 - n1)))
  record tls "$fig" "$peer" Ir 1 "$per"
  log "    $per instructions per unit ($a with $n1, $b with $n2)"
}

# Does wrk with "Connection: close" resume TLS sessions? nginx's access log
# tells ($ssl_session_reused): wrk keeps its SSL object between
# connections (SSL_clear), so it does; tls_load must not.
tls_resumption_check() {
  local logf="$OUT/raw/tls-nginx-access.log" w_r w_t l_r l_t
  : >"$logf"
  start_server "$OUT/raw/tls-resumption.server.log" env NGINX_LOG="$logf" bash "$BENCH/peers/nginx_https.sh" \
    "$TLS_DIR/ec.pem" "$TLS_DIR/ec.key" || return
  timeout -k 2 20 taskset -c "$CLIENT_CPU" wrk -t1 -c10 -d1s -H 'Connection: close' \
    "https://127.0.0.1:$SERVER_PORT/" >"$OUT/raw/tls-resumption.wrk" 2>&1
  sleep 0.2
  w_t=$(wc -l <"$logf"); w_r=$(grep -c ' r$' "$logf")
  timeout -k 2 60 taskset -c "$CLIENT_CPU" "$BIN/tls_load" -p "$SERVER_PORT" -m conn -c 10 -N 200 \
    >"$OUT/raw/tls-resumption.tls_load" 2>&1
  sleep 0.2
  l_t=$(($(wc -l <"$logf") - w_t)); l_r=$(($(grep -c ' r$' "$logf") - w_r))
  stop_server
  note tls "session resumption (nginx's \$ssl_session_reused): wrk -H 'Connection: close' resumed $w_r of its $w_t handshakes, so it is not the client of the new-connection figures; tools/tls_load.c (a fresh SSL object per connection) resumed $l_r of $l_t"
  record tls wrk_resumed nginx pct 1 "$(awk -v r="$w_r" -v t="$w_t" 'BEGIN { printf "%.1f", t ? r / t * 100 : 0 }')"
}

section_tls() {
  local run k ec rsa
  log "== tls: HTTPS new connections and keep-alive beside nginx, TLS echo beside plain TCP"
  if ! have openssl; then note tls "the openssl command is missing (apt package openssl): section skipped"; return; fi
  if [ ! -x "$BIN/tls_load" ]; then note tls "tools/tls_load.c was not built (libssl-dev missing?): section skipped"; return; fi
  tls_certs || { note tls "could not make the certificates: $(tail -c 200 "$OUT/tls/"*.log | tr '\n' ' ')"; return; }
  export NGINX_DIR=$OUT/raw/nginx
  declare -F parse_wrk >/dev/null || . "$BENCH/lib/http.sh"
  # shellcheck disable=SC2034  # rsa is read as ${!k}
  ec="$TLS_DIR/ec.pem $TLS_DIR/ec.key" rsa="$TLS_DIR/rsa.pem $TLS_DIR/rsa.key"
  local has_https=1 has_http=1 has_nginx=1 has_wrk=1
  [ -f "$ROOT/examples/https_hello.lua" ] || { has_https=0; note tls "tide: examples/https_hello.lua does not exist yet"; }
  [ -f "$ROOT/examples/http_hello.lua" ] || has_http=0
  have nginx || { has_nginx=0; note tls "nginx: not installed (apt package nginx-light), its column is empty"; }
  have wrk || { has_wrk=0; note tls "wrk not installed: no keep-alive figures"; }
  local tide_https="$TIDE $BENCH/peers/tide_https_hello.lua" nginx_https="bash $BENCH/peers/nginx_https.sh"
  [ "$has_nginx" = 1 ] && [ "$has_wrk" = 1 ] && tls_resumption_check
  for ((run = 1; run <= RUNS; run++)); do
    log "-- tls run $run/$RUNS"
    for k in ec rsa; do
      local cert=${!k}
      # shellcheck disable=SC2086
      [ "$has_https" = 1 ] && retry_disturbed tls_run "$run" "conn_$k" tide conns/s "-m conn -v -n 20 -c 4" \
        "-m conn -c $TLS_CONNS" $tide_https $cert
      # shellcheck disable=SC2086
      [ "$has_nginx" = 1 ] && retry_disturbed tls_run "$run" "conn_$k" nginx conns/s "-m conn -v -n 20 -c 4" \
        "-m conn -c $TLS_CONNS" $nginx_https $cert
    done
    if [ "$has_wrk" = 1 ]; then
      # shellcheck disable=SC2086
      [ "$has_https" = 1 ] && retry_disturbed tls_wrk "$run" "ka_$TLS_KA_CONNS" tide https $tide_https $ec
      # shellcheck disable=SC2086
      [ "$has_http" = 1 ] && retry_disturbed tls_wrk "$run" "ka_$TLS_KA_CONNS" tide_http http $TIDE "$ROOT/examples/http_hello.lua"
      # shellcheck disable=SC2086
      [ "$has_nginx" = 1 ] && retry_disturbed tls_wrk "$run" "ka_$TLS_KA_CONNS" nginx https $nginx_https $ec
      # shellcheck disable=SC2086
      [ "$has_nginx" = 1 ] && retry_disturbed tls_wrk "$run" "ka_$TLS_KA_CONNS" nginx_http http $nginx_https - -
    fi
    # shellcheck disable=SC2086
    retry_disturbed tls_run "$run" "echo_$TLS_ECHO_SIZE" tide msgs/s "-m echo -v -n 20 -c 4 -s $TLS_ECHO_SIZE" \
      "-m echo -c $TLS_ECHO_CONNS -s $TLS_ECHO_SIZE" $TIDE "$BENCH/peers/tide_tls_echo.lua" $ec
    # shellcheck disable=SC2086
    retry_disturbed tls_run "$run" "echo_$TLS_ECHO_SIZE" tide_tcp msgs/s "-m echo -P -v -n 20 -c 4 -s $TLS_ECHO_SIZE" \
      "-m echo -P -c $TLS_ECHO_CONNS -s $TLS_ECHO_SIZE" $TIDE "$BENCH/peers/tide_tcp_echo.lua"
  done
  if [ "$TLS_IR" = 1 ]; then
    if have valgrind; then
      log "-- tls: instructions per request and per connection (valgrind cachegrind)"
      # shellcheck disable=SC2086
      {
        [ "$has_https" = 1 ] && tls_ir ir_req tide "$TLS_IR_REQS" "-m ka -c 50" $tide_https $ec
        [ "$has_http" = 1 ] && tls_ir ir_req tide_http "$TLS_IR_REQS" "-m ka -P -c 50" $TIDE "$ROOT/examples/http_hello.lua"
        [ "$has_nginx" = 1 ] && tls_ir ir_req nginx "$TLS_IR_REQS" "-m ka -c 50" $nginx_https $ec
        [ "$has_nginx" = 1 ] && tls_ir ir_req nginx_http "$TLS_IR_REQS" "-m ka -P -c 50" $nginx_https - -
        tls_ir "ir_echo_$TLS_ECHO_SIZE" tide "$TLS_IR_MSGS" "-m echo -c 50 -s $TLS_ECHO_SIZE" \
          $TIDE "$BENCH/peers/tide_tls_echo.lua" $ec
        tls_ir "ir_echo_$TLS_ECHO_SIZE" tide_tcp "$TLS_IR_MSGS" "-m echo -P -c 50 -s $TLS_ECHO_SIZE" \
          $TIDE "$BENCH/peers/tide_tcp_echo.lua"
        for k in ec rsa; do
          [ "$has_https" = 1 ] && tls_ir "ir_conn_$k" tide "$TLS_IR_NEW" "-m conn -c 4" $tide_https ${!k}
          [ "$has_nginx" = 1 ] && tls_ir "ir_conn_$k" nginx "$TLS_IR_NEW" "-m conn -c 4" $nginx_https ${!k}
        done
      }
    else
      note tls "valgrind not installed: no instruction counts"
    fi
  fi
  [ -n "$TLS_SEEN" ] && note tls "negotiated (peer:protocol/cipher):$TLS_SEEN"
  disturbance_note tls
}
