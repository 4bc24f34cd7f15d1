-- tide_https_hello.lua — runs examples/https_hello.lua with the port last,
-- as bench/lib/common.sh's start_server passes it:
--   tide bench/peers/tide_https_hello.lua CERT KEY PORT
-- (https_hello.lua itself takes PORT CERT KEY and binds 127.0.0.1.)
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local cert, key, port = arg[1], arg[2], arg[3]
arg[1], arg[2], arg[3] = port, cert, key
local chunk = assert(loadfile(here .. "/../../examples/https_hello.lua"))
return chunk(port, cert, key)
