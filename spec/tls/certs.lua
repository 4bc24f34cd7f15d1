-- spec/tls/certs.lua — the certificates of the TLS specs, made once per
-- run by spec/tls/certs.sh (openssl CLI) in a temporary folder.
--
--   local certs = require "tls.certs"
--   certs.path("localhost.pem")  -- the file's path (makes them all first)
--   certs.read("ca.pem")         -- its contents
--   certs.dir()                  -- the folder
--   certs.cleanup()              -- removes the folder
--
-- What certs.sh makes: ca, other-ca (ECDSA CAs); localhost (ECDSA, for
-- localhost + IP 127.0.0.1), localhost-rsa (RSA-2048), chain (localhost
-- then ca), wrong (wrong.test), expired (localhost, Jan 2020), self
-- (self-signed localhost), other (localhost, signed by other-ca), client
-- (CN=tide-client, clientAuth), a and b (a.test, b.test), wild
-- (*.wild.test), and certs/ (a hashed CA folder holding ca). Each NAME.pem has its NAME.key.
local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec/tls"
local dir

function M.dir()
  if not dir then
    dir = os.tmpname()
    os.remove(dir)
    local log = dir .. ".log"
    local ok = os.execute(string.format("timeout 60 sh '%s/certs.sh' '%s' >'%s' 2>&1", here, dir, log))
    local f = io.open(log, "rb")
    local text = f and f:read("a") or ""
    if f then f:close() end
    os.remove(log)
    assert(ok and text:match("ok%s*$"), "spec/tls/certs.sh failed:\n" .. text)
  end
  return dir
end

function M.path(name)
  return M.dir() .. "/" .. name
end

function M.read(name)
  local f = assert(io.open(M.path(name), "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function M.cleanup()
  if dir then os.execute("rm -rf '" .. dir .. "'") end
  dir = nil
end

return M
