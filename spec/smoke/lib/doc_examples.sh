# spec/smoke/lib/doc_examples.sh — sourced by the smoke tests that run the
# examples of a docs page (lua_blocks.py writes them to a folder).
#
# run_examples DIR: runs every DIR/example_*.lua under $TIDE_BIN (20 s
# each), prints what it printed, and fails when one exits with a status
# other than 0 or writes a line to stderr that does not match the extended
# regular expression $STDERR_OK (none may, when it is unset).
run_examples() {
  local dir=$1 f
  for f in "$dir"/example_*.lua; do
    if ! timeout 20 "$TIDE_BIN" "$f" >"$dir/out" 2>"$dir/err"; then
      echo "example failed:"; cat "$f" "$dir/out" "$dir/err"; return 1
    fi
    echo "== $f"; cat "$dir/out"
    if grep -vE "${STDERR_OK:-^$}" "$dir/err" | grep -q .; then
      echo "unexpected stderr:"; cat "$dir/err"; return 1
    fi
  done
}
