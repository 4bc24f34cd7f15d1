-- examples/http_hello.lua — the smallest HTTP server: answers every request
-- with "Hello, World!" (keep-alive, pipelining, HEAD: all by tide.http).
-- Prints "listening on 127.0.0.1:PORT" once it accepts connections.
--
-- Usage: tide examples/http_hello.lua [PORT]    (PORT 0 or none: any free port)
local http = require "tide.http"

local server = http.serve({ host = "127.0.0.1", port = tonumber(arg[1]) or 0 }, function(req, res)
  res:set_header("Content-Type", "text/plain")
  res:finish("Hello, World!")
end)

io.stdout:write("listening on 127.0.0.1:", server.port, "\n")
io.stdout:flush()
