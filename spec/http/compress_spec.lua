-- Specs of compressed HTTP bodies: the client asks for gzip and deflate
-- and decodes them (bounded, checked to their end, in stream mode too),
-- and http.serve{compress = ...} gzips textual bodies for clients that
-- take gzip; curl --compressed reads what the server sends.
local tide = require "tide"
local http = require "tide.http"

local BIG = ("hello, compressed world "):rep(1000)

local function rejection(p)
  local ok, err = pcall(p.await, p)
  assert.is_false(ok, "expected a rejection")
  return err
end

-- A server that sends BIG coded as the path says (/gzip, /deflate, /cut).
local function coding_server()
  return http.serve({ port = 0 }, function(req, res)
    local format = req.path == "/deflate" and "zlib" or "gzip"
    local body = tide.zlib.deflate{ format = format }:write(BIG, "finish")
    if req.path == "/cut" then body = body:sub(1, #body - 8) end
    res:set_header("Content-Encoding", req.path == "/deflate" and "deflate" or "gzip")
    res:set_header("X-Asked", req.headers:get("accept-encoding") or "")
    res:finish(body)
  end)
end

describe("compressed HTTP bodies", function()
  describe("the client", function()
    it("asks for gzip and deflate and decodes both", async(function()
      local server <close> = coding_server()
      local base = "http://127.0.0.1:" .. server.port
      local r = http.get(base .. "/gzip"):await()
      assert.equal("gzip, deflate", r.headers:get("x-asked"))
      assert.equal(BIG, r.body)
      assert.equal("gzip", r.content_encoding)
      r = http.get(base .. "/deflate"):await()
      assert.equal(BIG, r.body)
      assert.equal("deflate", r.content_encoding)
    end))

    it("leaves bodies as sent with decompress = false, and codings it did not ask for", async(function()
      local server <close> = coding_server()
      local base = "http://127.0.0.1:" .. server.port
      local r = http.get(base .. "/gzip", { decompress = false }):await()
      assert.equal("", r.headers:get("x-asked"))
      assert.is_nil(r.content_encoding)
      assert.equal(BIG, tide.zlib.inflate{ format = "gzip" }:write(r.body))
      r = http.get(base .. "/gzip", { headers = { ["Accept-Encoding"] = "br" } }):await()
      assert.is_nil(r.content_encoding)
      assert.is_true(#r.body < #BIG)
    end))

    it("rejects a cut compressed body, and one that inflates past max_body", async(function()
      local server <close> = coding_server()
      local base = "http://127.0.0.1:" .. server.port
      assert.equal("EPROTO", rejection(http.get(base .. "/cut")).code)
      assert.equal("EMSGSIZE", rejection(http.get(base .. "/gzip", { max_body = 1000 })).code)
    end))

    it("decodes in stream mode, piece by piece", async(function()
      local server <close> = coding_server()
      local r = http.get("http://127.0.0.1:" .. server.port .. "/gzip", { stream = true }):await()
      local parts = {}
      for d in r:chunks() do
        assert.is_true(#d > 0)
        parts[#parts + 1] = d
      end
      assert.equal(BIG, table.concat(parts))
    end))
  end)

  describe("the server", function()
    local function compressing(opts)
      return http.serve({ port = 0, compress = opts or true }, function(req, res)
        res:set_header("Content-Type", req.path == "/png" and "image/png" or "application/json")
        res:finish(req.path == "/small" and "{}" or BIG)
      end)
    end

    it("gzips textual bodies for clients that take gzip", async(function()
      local server <close> = compressing()
      local base = "http://127.0.0.1:" .. server.port
      local r = http.get(base .. "/", { decompress = false, headers = { ["Accept-Encoding"] = "gzip" } }):await()
      assert.equal("gzip", r.headers:get("content-encoding"))
      assert.equal("Accept-Encoding", r.headers:get("vary"))
      assert.equal(#r.body, tonumber(r.headers:get("content-length")))
      assert.equal(BIG, tide.zlib.inflate{ format = "gzip" }:write(r.body))
      assert.equal(BIG, http.get(base .. "/"):await().body)
    end))

    it("sends small, binary or unasked-for bodies as they are", async(function()
      local server <close> = compressing()
      local base = "http://127.0.0.1:" .. server.port
      local plain = function(path, ae)
        local r = http.get(base .. path, { decompress = false, headers = { ["Accept-Encoding"] = ae } }):await()
        return r.headers:get("content-encoding"), r.body
      end
      assert.same({ nil, "{}" }, { plain("/small", "gzip") })
      assert.same({ nil, BIG }, { plain("/png", "gzip") })
      assert.same({ nil, BIG }, { plain("/", "gzip;q=0, deflate") })
      assert.same({ nil, BIG }, { plain("/", "identity") })
    end))

    it("is read by curl --compressed", async(function()
      local server <close> = compressing{ min_size = 10, level = 9 }
      -- (curl must not inherit the sanitizer runtime of `make check`)
      local out = tide.process.exec{ "curl", "-s", "--max-time", "5", "--compressed", "-D", "-",
        "http://127.0.0.1:" .. server.port .. "/",
        env = { LD_PRELOAD = false, ASAN_OPTIONS = false, LSAN_OPTIONS = false } }:await()
      assert.equal(0, out.status)
      assert.truthy(out.stdout:find("Content-Encoding: gzip", 1, true))
      assert.truthy(out.stdout:find(BIG, 1, true))
    end))

    it("refuses bad compress options at once", function()
      assert.has_error(function() http.serve({ port = 0, compress = { level = 12 } }, function() end) end)
      assert.has_error(function() http.serve({ port = 0, compress = "yes" }, function() end) end)
    end)
  end)
end)
