-- https_hello.lua: an HTTPS server answering every request with "Hello, World!".
--
--   build/tide examples/https_hello.lua PORT CERT KEY
--   curl --cacert ca.pem https://localhost:PORT/
--
-- CERT and KEY are PEM files (docs/tls.md shows how to make a test CA and
-- a certificate for localhost with the openssl command).
local http = require "tide.http"

local port, cert, key = tonumber(arg[1]), arg[2], arg[3]
if not (port and cert and key) then
  io.stderr:write("usage: tide examples/https_hello.lua PORT CERT KEY\n")
  os.exit(2)
end

local server = http.serve({ port = port, tls = { cert = cert, key = key } }, function(req, res)
  res:set_header("Content-Type", "text/plain")
  res:finish("Hello, World!")
end)
print(("listening on https://%s:%d"):format(server.host, server.port))
