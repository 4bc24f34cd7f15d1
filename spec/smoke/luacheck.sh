#!/usr/bin/env bash
# luacheck over lua/, examples/ and spec/ with the checked-in .luacheckrc:
# any warning fails (luacheck exits non-zero on warnings and errors).
set -eu
cd "$(dirname "$0")/../.."
command -v luacheck >/dev/null || { echo "luacheck: missing (Debian lua-check, spec/deps.sh)"; exit 1; }
luacheck --formatter plain --codes lua/ examples/ spec/
