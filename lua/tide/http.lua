-- tide.http: the HTTP/1.1 module, the one place users start from.
--
-- Owns nothing but the public surface: http.serve comes from
-- tide.http.server, http.request / http.get from tide.http.client, and the
-- wire layer (tide.http.h1) and header fields (tide.http.headers) are
-- reachable as http.h1 and http.headers. See docs/http.md.
--
--   local http = require "tide.http"
--   local server = http.serve({ port = 8080 }, function(req, res)
--     res:set_header("Content-Type", "text/plain")
--     res:finish("Hello, World!")
--   end)
--   local res = http.get("http://127.0.0.1:" .. server.port .. "/"):await()

local server = require "tide.http.server"
local client = require "tide.http.client"
local router = require "tide.http.router"
local json = require "tide.http.json"

return setmetatable({
  serve = server.serve,
  request = client.request,
  get = client.get,
  close_idle = client.close_idle,
  router = router.new,
  h1 = require "tide.http.h1",
  headers = require "tide.http.headers",
  server = server,
  client = client,
}, {
  -- http.null: JSON null as lua-cjson decodes it (nil when lua-cjson is
  -- missing), looked up on first use so that lua-cjson loads only when a
  -- program uses JSON.
  __index = function(t, k)
    if k == "null" then
      local v = json.null()
      rawset(t, "null", v)
      return v
    end
  end,
})
