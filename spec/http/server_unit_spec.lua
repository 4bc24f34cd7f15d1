-- Specs for tide.http.server driven over an in-memory stream
-- (spec/http/fakestream.lua): request and response logic without sockets.
-- The same server over real sockets, driven by curl, Node.js and raw
-- bytes, is in server_spec.lua.
local tide = require "tide"
local h1 = require "tide.http.h1"
local server = require "tide.http.server"
local fakestream = require "http.fakestream"

-- Parses the bytes the server wrote into responses (spec/http/support.lua).
local responses = require("http.support").responses

-- Serves the bytes `input` (then the end of the stream, unless keep_open)
-- with `handler`; returns the parsed responses, the raw output and the
-- count of requests read.
local function exchange(input, handler, opts, keep_open)
  local a, b = fakestream.pair()
  opts = opts or {}
  opts.log = opts.log or function() end
  if input ~= "" then b:write(input) end
  if not keep_open then b:shutdown() end
  local n = server.serve_stream(a, opts, handler)
  local out = b.buf
  local ok, list = pcall(responses, out)
  return ok and list or nil, out, n
end

local function hello(req, res)
  res:set_header("Content-Type", "text/plain")
  res:finish("Hello, World!")
end

local GET = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

describe("tide.http.server over a stream", function()
  describe("keep-alive and pipelining", function()
    it("answers several requests on one connection", async(function()
      local list, _, n = exchange(GET .. GET .. GET, hello)
      assert.are.equal(3, n)
      assert.are.equal(3, #list)
      for _, r in ipairs(list) do
        assert.are.equal(200, r.status)
        assert.are.equal("Hello, World!", r.body)
        assert.are.equal("13", r.headers:get("content-length"))
        assert.are.equal("text/plain", r.headers:get("content-type"))
        assert.truthy(r.headers:get("date"):match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"))
        assert.is_nil(r.headers:get("connection"))
      end
    end))

    it("ignores any number of empty lines before a request line", async(function()
      for k = 1, 5 do
        local list, _, n = exchange(("\r\n"):rep(k) .. GET .. ("\r\n"):rep(k) .. GET, hello)
        assert.are.equal(2, n, k)
        assert.are.equal(2, #list, k)
        assert.are.equal(200, list[2].status, k)
      end
    end))

    it("answers 400 to more empty lines than a head may hold", async(function()
      local list = exchange(("\r\n"):rep(5000) .. GET, hello, { max_header_size = 1024 })
      assert.are.equal(1, #list)
      assert.are.equal(400, list[1].status)
    end))

    it("answers pipelined requests in order even when the first is slow", async(function()
      local input = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
      local list = exchange(input, function(req, res)
        if req.path == "/1" then tide.sleep(0.05):await() end
        res:finish(req.path)
      end)
      assert.are.same({ "/1", "/2", "/3" }, { list[1].body, list[2].body, list[3].body })
    end))

    it("closes after a request with Connection: close", async(function()
      local a, b = fakestream.pair()
      b:write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" .. GET)
      local n = server.serve_stream(a, {}, hello)
      assert.are.equal(1, n)
      local list = responses(b.buf)
      assert.are.equal(1, #list)
      assert.are.equal("close", list[1].headers:get("connection"))
      assert.is_true(a.closed)
    end))

    it("closes HTTP/1.0 connections unless asked to keep them", async(function()
      local list, _, n = exchange("GET / HTTP/1.0\r\n\r\n" .. GET, hello)
      assert.are.equal(1, n)
      assert.are.equal("close", list[1].headers:get("connection"))
      list, _, n = exchange("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n", hello)
      assert.are.equal(2, n)
      assert.are.equal("keep-alive", list[1].headers:get("connection"))
      assert.are.equal("close", list[2].headers:get("connection"))
    end))

    it("closes an idle connection quietly after idle_timeout", async(function()
      local t0 = tide.now()
      local list, out = exchange(GET, hello, { idle_timeout = 0.1 }, true)
      assert.are.equal(1, #list)
      assert.are.equal("", list.rest)
      assert.is_true(tide.now() - t0 < 1)
      assert.is_nil(out:find("408"))
    end))
  end)

  describe("requests", function()
    it("exposes method, target, path, query, version and headers", async(function()
      local seen
      exchange("GET /a/b?x=1&y=%20z&x=2&flag HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n", function(req, res)
        seen = req
        res:finish()
      end)
      assert.are.equal("GET", seen.method)
      assert.are.equal("/a/b?x=1&y=%20z&x=2&flag", seen.target)
      assert.are.equal("/a/b", seen.path)
      assert.are.same({ x = "1", y = " z", flag = "" }, seen.query)
      assert.are.equal("x=1&y=%20z&x=2&flag", seen.raw_query)
      assert.are.equal("1.1", seen.version)
      assert.are.same({ "1", "2" }, seen.headers:get_all("X-A"))
      assert.are.equal("h", seen.headers:get("HOST"))
    end))

    it("gives an empty query table when there is no query", async(function()
      local q
      exchange(GET, function(req, res) q = req.query; res:finish() end)
      assert.are.same({}, q)
    end))

    it("reads a body with Content-Length", async(function()
      local list = exchange("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" .. GET,
        function(req, res) res:finish("[" .. req:body():await() .. "]") end)
      assert.are.equal("[hello]", list[1].body)
      assert.are.equal("[]", list[2].body)
    end))

    it("reads a chunked body with its trailers", async(function()
      local trailers
      local list = exchange("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Sum: 11\r\n\r\n" .. GET,
        function(req, res)
          local body = req:body():await()
          if req.method == "POST" then trailers = req.trailers end
          res:finish(body)
        end)
      assert.are.equal("hello world", list[1].body)
      assert.are.equal("11", trailers:get("x-sum"))
      assert.are.equal(2, #list)
    end))

    it("streams a body with req:read and req:chunks", async(function()
      local pieces = {}
      local list = exchange("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789" ..
        "POST /q HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        function(req, res)
          if req.path == "/p" then
            while true do
              local d = req:read(4):await()
              if not d then break end
              pieces[#pieces + 1] = d
            end
          else
            for d in req:chunks() do pieces[#pieces + 1] = d end
          end
          res:finish()
        end)
      assert.are.equal(2, #list)
      assert.are.same({ "0123", "4567", "89", "abc", "de" }, pieces)
    end))

    it("skips a body the handler did not read", async(function()
      local list = exchange("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" ..
        "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" .. GET, hello)
      assert.are.equal(3, #list)
      assert.are.equal("", list.rest)
    end))

    it("refuses a Content-Length above max_body with 413 before the handler", async(function()
      local called = false
      local list, _, n = exchange("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
        function(req, res) called = true; res:finish() end, { max_body = 10 })
      assert.are.equal(413, list[1].status)
      assert.are.equal("close", list[1].headers:get("connection"))
      assert.is_false(called)
      assert.are.equal(1, n)
    end))

    it("answers 413 when a chunked body passes max_body", async(function()
      local list = exchange("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        "8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n",
        function(req, res) res:finish(req:body():await()) end, { max_body = 10 })
      assert.are.equal(1, #list)
      assert.are.equal(413, list[1].status)
    end))

    it("lets req:body(max) lower the limit", async(function()
      local list = exchange("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        function(req, res) res:finish(req:body(4):await()) end)
      assert.are.equal(413, list[1].status)
    end))

    it("answers 400 to a malformed chunked body", async(function()
      local list = exchange("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        function(req, res) res:finish(req:body():await()) end)
      assert.are.equal(400, list[1].status)
    end))

    it("answers 408 when the body does not arrive within body_timeout", async(function()
      local t0 = tide.now()
      local list = exchange("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        function(req, res) res:finish(req:body():await()) end, { body_timeout = 0.1 }, true)
      assert.are.equal(408, list[1].status)
      assert.is_true(tide.now() - t0 < 3)
    end))
  end)

  describe("Expect: 100-continue", function()
    it("sends 100 Continue when the handler reads the body", async(function()
      local list, out = exchange("POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
        function(req, res) res:finish(req:body():await()) end)
      assert.truthy(out:find("^HTTP/1.1 100 Continue\r\n\r\n"))
      assert.are.equal(100, list[1].status)
      assert.are.equal(200, list[2].status)
      assert.are.equal("ok", list[2].body)
    end))

    it("answers without 100 and closes when the handler ignores the body", async(function()
      local list, out = exchange("POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        function(req, res) res.status = 401; res:finish("no") end, nil, true)
      assert.is_nil(out:find("100 Continue", 1, true))
      assert.are.equal(1, #list)
      assert.are.equal(401, list[1].status)
      assert.are.equal("close", list[1].headers:get("connection"))
    end))

    it("answers 417 to any other expectation", async(function()
      local list = exchange("POST /p HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 2\r\n\r\nok", hello)
      assert.are.equal(417, list[1].status)
    end))
  end)

  describe("responses", function()
    it("answers HEAD with the length of the body but no body", async(function()
      local _, out, n = exchange("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" .. GET, hello)
      assert.are.equal(2, n)
      local e = out:find("\r\n\r\n", 1, true)
      local head = assert(h1.parse_response_head(out:sub(1, e - 1), nil, "HEAD"))
      assert.are.equal("13", head.headers:get("content-length"))
      local rest = responses(out:sub(e + 4))
      assert.are.equal(1, #rest)
      assert.are.equal("Hello, World!", rest[1].body)
    end))

    it("sends a chunked body when res:write is used without a length", async(function()
      local list = exchange(GET, function(req, res)
        res:write("abc")
        res:write("")
        res:write("def")
        res:finish("!")
      end)
      assert.are.equal("chunked", list[1].headers:get("transfer-encoding"))
      assert.are.equal("abcdef!", list[1].body)
    end))

    it("sends raw bytes when the handler set Content-Length", async(function()
      local list = exchange(GET .. GET, function(req, res)
        res:set_header("Content-Length", "6")
        res:write("abc")
        res:write("def")
      end)
      assert.are.equal(2, #list)
      assert.is_nil(list[1].headers:get("transfer-encoding"))
      assert.are.equal("abcdef", list[1].body)
    end))

    it("delimits a streamed body by closing for an HTTP/1.0 client", async(function()
      local _, out = exchange("GET / HTTP/1.0\r\n\r\n", function(req, res)
        res:write("abc"); res:write("def")
      end)
      assert.truthy(out:find("\r\nConnection: close\r\n", 1, true))
      assert.truthy(out:find("\r\n\r\nabcdef$"))
      assert.is_nil(out:find("chunked", 1, true))
    end))

    it("refuses a body for 204 and 304 and leaves the response untouched", async(function()
      for _, status in ipairs { 204, 304 } do
        local errs = {}
        local list = exchange(GET .. GET, function(req, res)
          res.status = status
          local ok, e = pcall(res.finish, res, "body")
          errs[#errs + 1] = e
          assert.is_false(ok)
          assert.is_false(res:started())
          res:finish()
        end)
        assert.are.equal(2, #list)
        assert.are.equal(status, list[1].status)
        assert.are.equal(status, list[2].status)
        assert.truthy(tostring(errs[1]):find("a " .. status .. " response has no body", 1, true))
      end
    end))

    it("answers 500 when a handler fails on a refused finish", async(function()
      local seen = 0
      local list, _, n = exchange(GET .. GET, function(req, res)
        seen = seen + 1
        if seen == 1 then
          res.status = 204
          res:finish("body")
        end
        res:finish("ok")
      end)
      assert.are.equal(2, n)
      assert.are.equal(500, list[1].status)
      assert.are.equal("ok", list[2].body)
    end))

    it("refuses a first write beyond the Content-Length and leaves the response untouched", async(function()
      local list = exchange(GET, function(req, res)
        res:set_header("Content-Length", "2")
        assert.is_false(pcall(res.write, res, "abc"))
        assert.is_false(res:started())
        res:write("ab")
        res:finish()
      end)
      assert.are.equal("ab", list[1].body)
    end))

    it("sends 204 and 304 without a body or Content-Length", async(function()
      local list, out = exchange("GET /204 HTTP/1.1\r\nHost: x\r\n\r\nGET /304 HTTP/1.1\r\nHost: x\r\n\r\n",
        function(req, res) res.status = tonumber(req.path:sub(2)); res:finish() end)
      assert.are.equal(204, list[1].status)
      assert.are.equal(304, list[2].status)
      assert.is_nil(out:find("Content-Length", 1, true))
    end))

    it("finishes the response when the handler returns without finishing", async(function()
      local list = exchange(GET, function(req, res) res.status = 202 end)
      assert.are.equal(202, list[1].status)
      assert.are.equal("0", list[1].headers:get("content-length"))
    end))

    it("keeps repeated headers and a custom reason", async(function()
      local _, out = exchange(GET, function(req, res)
        res.status, res.reason = 299, "Fine"
        res:add_header("Set-Cookie", "a=1")
        res:add_header("Set-Cookie", "b=2")
        res:finish()
      end)
      assert.truthy(out:find("^HTTP/1.1 299 Fine\r\nSet%-Cookie: a=1\r\nSet%-Cookie: b=2\r\n"))
    end))

    it("refuses header injection", async(function()
      local err
      exchange(GET, function(req, res)
        local _, e = pcall(res.set_header, res, "X", "a\r\nEvil: 1")
        err = e
        res:finish()
      end)
      assert.truthy(tostring(err):find("CR, LF or NUL"))
      assert.has_error(function() server.serve_stream(nil, { bogus = 1 }, hello) end)
    end))
  end)

  describe("handler errors", function()
    it("answer 500, are logged with a traceback, and the connection goes on", async(function()
      local logged = {}
      local list, _, n = exchange("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n" .. GET, function(req, res)
        if req.path == "/boom" then error("kaboom") end
        hello(req, res)
      end, { log = function(m) logged[#logged + 1] = m end })
      assert.are.equal(2, n)
      assert.are.equal(500, list[1].status)
      assert.are.equal(200, list[2].status)
      assert.are.equal(1, #logged)
      assert.truthy(logged[1]:find("tide: http handler error: GET /boom: .*kaboom"))
      assert.truthy(logged[1]:find("stack traceback", 1, true))
    end))

    it("close the connection when the head was already sent", async(function()
      local logged = 0
      local _, out, n = exchange(GET .. GET, function(req, res)
        res:write("partial")
        error("late")
      end, { log = function() logged = logged + 1 end })
      assert.are.equal(1, n)
      assert.are.equal(1, logged)
      assert.truthy(out:find("7\r\npartial\r\n$"))
    end))

    it("answer an error's status when it carries one", async(function()
      local list = exchange(GET, function(req, res) error({ status = 403, message = "no" }) end)
      assert.are.equal(403, list[1].status)
    end))

    it("get a well-formed answer whatever value the handler raises", async(function()
      local unprintable = { __tostring = function() error("no string for you") end }
      local cases = {
        { 418, { status = 418, message = { "a table" } } },
        { 418, { status = 418, message = setmetatable({}, unprintable) } },
        { 418, { status = 418, message = 42 } },
        { 418, { status = 418 } },
        { 500, { status = "418" } },
        { 500, { status = { 418 } } },
        { 500, { status = 1000 } },
        { 500, setmetatable({}, unprintable) },
        { 500, setmetatable({}, { __tostring = function() return 1 end }) },
        { 500, setmetatable({}, { __index = function() error("no fields") end }) },
        { 500, io.stdout },
        { 500, nil },
        { 500, false },
        { 500, print },
        { 500, coroutine.create(print) },
      }
      for i, case in ipairs(cases) do
        local logged = {}
        local list, out = exchange(GET .. GET, function(req, res)
          error(case[2], 0)
        end, { log = function(m) logged[#logged + 1] = m end })
        assert.is_true(list and #list >= 1, "case " .. i .. ": no answer in " .. ("%q"):format(out))
        assert.are.equal(case[1], list[1].status, "case " .. i)
        -- A 500 keeps the connection (both requests fail and are logged);
        -- an error's own status closes it.
        local n = case[1] == 500 and 2 or 0
        assert.are.equal(math.max(n, 1), #list, "case " .. i)
        assert.are.equal(n, #logged, "case " .. i)
        for _, m in ipairs(logged) do assert.is_string(m) end
      end
    end))
  end)

  describe("rejections", function()
    local cases = {
      { 400, "GET / HTTP/1.1\r\n\r\n", "missing Host" },
      { 400, "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "bad request line" },
      { 400, "GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", "space in a header name" },
      { 400, "GET / HTTP/1.1\r\nHost: x\r\nName : 1\r\n\r\n", "whitespace before the colon" },
      { 400, "GET / HTTP/1.1\r\nHost: x\r\nA: 1\rB: 2\r\n\r\n", "bare CR" },
      { 400, "GET / HTTP/1.1\r\nHost: x\r\nA: 1\0\r\n\r\n", "NUL" },
      { 400, "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n 2\r\n\r\n", "obs-fold" },
      { 400, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nab", "duplicate Content-Length" },
      { 400, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length" },
      { 400, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "CL and TE" },
      { 501, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "unknown coding" },
      { 505, "GET / HTTP/2.0\r\nHost: x\r\n\r\n", "version" },
      { 414, "GET /" .. string.rep("a", 200) .. " HTTP/1.1\r\nHost: x\r\n\r\n", "long target", { max_request_line = 100 } },
      { 431, "GET / HTTP/1.1\r\nHost: x\r\nA: " .. string.rep("a", 300) .. "\r\n\r\n", "big header block", { max_header_size = 100 } },
      { 431, "GET / HTTP/1.1\r\nHost: x\r\n" .. string.rep("A: 1\r\n", 5) .. "\r\n", "too many headers", { max_headers = 3 } },
      { 400, "GET /?a=%zz HTTP/1.1\r\nHost: x\r\n\r\n", "bad query escape" },
      { 400, "GET / HTTP/1.1\r\nHost: x\r\n", "incomplete head" },
    }
    for _, case in ipairs(cases) do
      it(("answers %d to %s and closes"):format(case[1], case[3]), async(function()
        local called = false
        local list, _, _ = exchange(case[2] .. GET, function(req, res) called = true; res:finish() end, case[4])
        assert.are.equal(1, #list)
        assert.are.equal(case[1], list[1].status)
        assert.are.equal("close", list[1].headers:get("connection"))
        assert.is_false(called)
      end))
    end

    it("answers 400 to a chunk size overflow", async(function()
      local list = exchange("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        string.rep("f", 17) .. "\r\n", function(req, res) res:finish(req:body():await()) end)
      assert.are.equal(400, list[1].status)
    end))

    it("answers 408 to a head trickled past header_timeout", async(function()
      local a, b = fakestream.pair()
      local t0 = tide.now()
      local trickle = tide.spawn(function()
        local head = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "
        for i = 1, #head do
          if a.closed then return end
          b:write(head:sub(i, i))
          tide.sleep(0.01):await()
        end
        while b.buf == "" do b:write("a"); tide.sleep(0.01):await() end
        b:shutdown()
      end)
      server.serve_stream(a, { header_timeout = 0.3 }, hello)
      trickle:await()
      local list = responses(b.buf)
      assert.are.equal(408, list[1].status)
      local dt = tide.now() - t0
      assert.is_true(dt >= 0.25 and dt < 2, "took " .. dt)
    end))
  end)
end)
