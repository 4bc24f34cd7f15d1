-- luacheck configuration: `luacheck lua/ examples/ spec/` must report
-- nothing (spec/smoke/luacheck.sh runs it as part of `make test`).
std = "lua54"
max_line_length = false

-- Annotation files for lua-language-server describe the API; they are
-- never run (see lua/tide/meta/).
exclude_files = { "lua/tide/meta/**" }

-- The `tide` binary gives every chunk the global `tide`.
files["examples"] = { read_globals = { "tide" } }

-- busted, and the helpers spec/helper.lua defines for every spec.
files["spec"] = {
  std = "+busted",
  globals = { "TEST_TIMEOUT", "tide_bin", "expect", "async", "sh", "run_tide", "tmp_script" },
  read_globals = { "tide", assert = { fields = { "has_error", "has_no_error" } } },
}

-- Handlers keep the full callback shape, function(req, res), even when one
-- argument is unused. `not (x > 0)` is how the code rejects NaN too. An
-- empty branch with a comment names a case that needs nothing.
ignore = { "212/req", "212/res", "212/conn", "212/self", "542", "581" }


-- A `<close>` variable that is only held, never read, starts with `_`
-- (`local _permit <close> = s:acquire():await()`).
ignore[#ignore + 1] = "211/_.*"

-- Functions run on pool workers take no upvalues: they require "tide"
-- again (the worker's table) and keep their state in globals.
files["spec/pool/work_spec.lua"] = {
  ignore = { "431/tide", "431/path" },
  globals = { "work_spec_counter", "work_spec_seen" },
}
