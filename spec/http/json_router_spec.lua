-- Specs for JSON bodies (req:json, res:json, the client's res:json), the
-- server's error_body option and http.router, over an in-memory stream
-- (spec/http/fakestream.lua) and, for the client, a real socket.
local tide = require "tide"
local http = require "tide.http"
local server = require "tide.http.server"
local fakestream = require "http.fakestream"
local responses = require("http.support").responses
local cjson = require "cjson"

local function exchange(input, handler, opts)
  local a, b = fakestream.pair()
  opts = opts or {}
  opts.log = opts.log or function() end
  b:write(input)
  b:shutdown()
  server.serve_stream(a, opts, handler)
  return responses(b.buf)
end

local function post(path, body, ctype)
  return "POST " .. path .. " HTTP/1.1\r\nHost: x\r\nContent-Type: " .. (ctype or "application/json") ..
    "\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body
end

local function json_errors(status, message)
  return cjson.encode({ error = status, message = message })
end

describe("tide.http JSON and routing", function()
  describe("req:json and res:json", function()
    it("decodes a request body and answers JSON with a status", async(function()
      local list = exchange(post("/", '{"a": [1, 2, null]}'), function(req, res)
        local v = req:json():await()
        assert.are.equal(http.null, v.a[3])
        res:json({ sum = v.a[1] + v.a[2] }, 201)
      end)
      assert.are.equal(201, list[1].status)
      assert.are.equal("application/json", list[1].headers:get("content-type"))
      assert.are.same({ sum = 3 }, cjson.decode(list[1].body))
    end))

    it("answers 400 to malformed JSON, in the error_body format", async(function()
      local list = exchange(post("/", '{"a": '), function(req, res)
        res:json(req:json():await())
      end, { error_body = json_errors })
      assert.are.equal(400, list[1].status)
      assert.are.equal("application/json", list[1].headers:get("content-type"))
      local e = cjson.decode(list[1].body)
      assert.are.equal(400, e.error)
      assert.matches("malformed JSON", e.message)
    end))

    it("rejects req:json with an EPROTO error carrying status 400", async(function()
      local seen
      exchange(post("/", "nope"), function(req, res)
        local ok, e = pcall(function() return req:json():await() end)
        seen = e
        assert.is_false(ok)
        res:finish("x")
      end)
      assert.is_true(tide.is_error(seen, "EPROTO"))
      assert.are.equal(400, seen.status)
    end))

    it("raises at once when a value cannot be encoded", async(function()
      local list = exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n", function(_, res)
        local ok, e = pcall(res.json, res, { f = print })
        assert.is_false(ok)
        assert.matches("cannot encode as JSON", e)
        res:json({})
      end)
      assert.are.equal(200, list[1].status)
    end))

    it("gives 500 answers of a failing handler the error_body format", async(function()
      local list = exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n", function() error("boom") end,
        { error_body = json_errors })
      assert.are.equal(500, list[1].status)
      assert.are.same({ error = 500 }, cjson.decode(list[1].body))
    end))

    it("decodes JSON in the client with res:json", async(function()
      local srv = http.serve({ port = 0 }, function(_, res) res:json({ ok = true }) end)
      local res = http.get("http://127.0.0.1:" .. srv.port .. "/"):await()
      assert.are.same({ ok = true }, res:json())
      local srv2 = http.serve({ port = 0 }, function(_, r) r:finish("{bad") end)
      res = http.get("http://127.0.0.1:" .. srv2.port .. "/"):await()
      local ok, e = pcall(res.json, res)
      assert.is_false(ok)
      assert.is_true(tide.is_error(e, "EPROTO"))
      http.close_idle()
      srv:close():await()
      srv2:close():await()
    end))
  end)

  describe("router", function()
    local function app()
      local r = http.router()
      r:get("/users/:id", function(req, res) res:json({ id = req.params.id }) end)
      r:put("/users/:id", function(req, res) res:finish("put " .. req.params.id) end)
      r:get("/files/*rest", function(req, res) res:finish("file " .. req.params.rest) end)
      r:get("/", function(_, res) res:finish("root") end)
      return r
    end

    it("dispatches by method and path with decoded parameters", async(function()
      local list = exchange("GET /users/a%20b HTTP/1.1\r\nHost: x\r\n\r\n" ..
        "PUT /users/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" ..
        "GET /files/a/b.txt HTTP/1.1\r\nHost: x\r\n\r\n" ..
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n", app())
      assert.are.same({ id = "a b" }, cjson.decode(list[1].body))
      assert.are.equal("put 7", list[2].body)
      assert.are.equal("file a/b.txt", list[3].body)
      assert.are.equal("root", list[4].body)
    end))

    it("answers 404 for an unknown path and 405 with Allow for another method, keeping the connection", async(function()
      local list = exchange("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" ..
        "DELETE /users/1 HTTP/1.1\r\nHost: x\r\n\r\n" ..
        "GET /users/1/extra HTTP/1.1\r\nHost: x\r\n\r\n" ..
        "HEAD /users/1 HTTP/1.1\r\nHost: x\r\n\r\n", app(), { error_body = json_errors })
      assert.are.equal(4, #list)
      assert.are.equal(404, list[1].status)
      assert.are.same({ error = 404 }, cjson.decode(list[1].body))
      assert.are.equal(405, list[2].status)
      assert.are.equal("GET, HEAD, PUT", list[2].headers:get("allow"))
      assert.are.equal(404, list[3].status)
      assert.are.equal(200, list[4].status)  -- HEAD served by the GET route
    end))

    it("rejects bad routes at once", function()
      local r = http.router()
      assert.has_error(function() r:get("users", function() end) end)
      assert.has_error(function() r:get("/a/*x/b", function() end) end)
      assert.has_error(function() r:add("BAD METHOD", "/", function() end) end)
      assert.has_error(function() r:get("/", "nope") end)
    end)
  end)
end)
