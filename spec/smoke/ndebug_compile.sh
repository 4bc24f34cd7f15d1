#!/usr/bin/env bash
# Every C file of the library compiles with -DNDEBUG, where assert() is
# still used but must come from <assert.h>: an implicit declaration would
# link against a missing `assert` symbol (libtide.so fails to link, tide.so
# to load). A quick syntax-only pass; `make ndebug` builds and tests it all.
set -euo pipefail
flags=$(pkg-config --cflags lua5.4 libuv openssl 2>/dev/null || echo -I/usr/include/lua5.4)
status=0
for f in core/*.c bindings/*.c; do
  # shellcheck disable=SC2086
  "${CC:-cc}" -fsyntax-only -std=c11 -D_GNU_SOURCE -DNDEBUG -Wall -Wextra \
    -Werror=implicit-function-declaration -Icore -Ibindings $flags "$f" || status=1
done
exit $status
