#!/bin/sh
# bench/lib/deps.sh — installs the peers `make bench` compares tide with,
# when they are missing: Node.js, lua-luv, wrk, Python 3, hyperfine,
# nginx-light (the tls section's peer) with ngx_lua (the http section's),
# valgrind (instruction counts) and iproute2 for `ss`. As root it uses
# apt-get; otherwise it prints the command. Never fails: a peer that stays
# missing is skipped with a note. `make test` does not need any of these.
pkgs="nodejs lua-luv wrk python3 hyperfine iproute2 nginx-light libnginx-mod-http-lua valgrind"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "bench: missing peers:$missing (no apt-get here: they are skipped)" >&2
elif [ "$(id -u)" = 0 ]; then
  echo "bench: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq >/dev/null 2>&1 && timeout 600 apt-get install -y -qq $missing >/dev/null 2>&1; }; then
    echo "bench: apt-get install$missing failed: the missing peers are skipped" >&2
  fi
  # the bench runs nginx itself, on 127.0.0.1 only: a system service the
  # package may have started (port 80 on every address) is stopped
  case " $missing " in
    *" nginx-light "*)
      if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
        systemctl disable --now nginx >/dev/null 2>&1 && echo "bench: stopped and disabled the nginx service apt started" >&2
      fi ;;
  esac
else
  echo "bench: missing peers:$missing (skipped; to add them: sudo apt-get install -y$missing)" >&2
fi
exit 0
