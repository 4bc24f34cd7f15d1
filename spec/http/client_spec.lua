-- Specs for tide.http.request / http.get against real servers: a Node.js
-- http server (spec/http/peers/node_server.js, with a raw socket server
-- beside it for malformed answers) and Python's http.server
-- (spec/http/peers/python_server.py).
local tide = require "tide"
local http = require "tide.http"
local support = require "http.support"

local node_peer, node_port, raw_port, python_peer, python_port

-- Runs fn with the Node.js peer started (once for the whole file).
local function with_node(fn)
  return async(function()
    if not node_peer then
      local ports
      node_peer, ports = support.start_peer { "node", "spec/http/peers/node_server.js" }
      node_port, raw_port = ports.port, ports.raw
    end
    fn("http://127.0.0.1:" .. node_port)
  end)
end

local function with_python(fn)
  return async(function()
    if not python_peer then
      local ports
      python_peer, ports = support.start_peer { "python3", "spec/http/peers/python_server.py" }
      python_port = ports.port
    end
    fn("http://127.0.0.1:" .. python_port)
  end)
end

-- Awaits `p` and returns the error it was rejected with.
local function rejection(p)
  local ok, err = pcall(p.await, p)
  assert.is_false(ok, "expected a rejection")
  return err
end

describe("tide.http client", function()
  teardown(function()
    tide.run(function()
      http.close_idle()
      if node_peer then support.stop_peer(node_peer) end
      if python_peer then support.stop_peer(python_peer) end
    end)
  end)

  describe("against a raw tide server", function()
    -- Serves each connection by reading one request head and writing
    -- `answer`; returns the base URL and the listener.
    local function raw_server(answer)
      local l = tide.tcp.listen { host = "127.0.0.1", port = 0 }
      tide.spawn(function()
        while true do
          local ok, s = pcall(function() return l:accept():await() end)
          if not ok or not s then return end
          tide.spawn(function()
            s:read_until("\r\n\r\n"):await()
            s:write(answer):await()
            s:close()
          end)
        end
      end)
      return "http://127.0.0.1:" .. l.port, l
    end

    it("retries an idempotent request once on a new connection when a reused one was closed", async(function()
      -- Each connection answers its first request, then closes at the next.
      local l = tide.tcp.listen { host = "127.0.0.1", port = 0 }
      local conns, partial = 0, false
      tide.spawn(function()
        while true do
          local ok, s = pcall(function() return l:accept():await() end)
          if not ok or not s then return end
          conns = conns + 1
          tide.spawn(function()
            s:read_until("\r\n\r\n"):await()
            s:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"):await()
            s:read_until("\r\n\r\n"):await()
            if partial then s:write("HTTP/1.1 2"):await() end
            s:close()
          end)
        end
      end)
      local base = "http://127.0.0.1:" .. l.port .. "/"
      assert.are.equal("ok", http.get(base):await().body)
      assert.are.equal("ok", http.get(base):await().body)  -- retried
      assert.are.equal(2, conns)
      -- POST on a reused connection: never retried
      local err = rejection(http.request { method = "POST", url = base, body = "x" })
      assert.are.equal("EOF", err.code)
      assert.are.equal(2, conns)
      http.close_idle()
      -- a byte of the response came: not retried either
      assert.are.equal("ok", http.get(base):await().body)
      partial = true
      err = rejection(http.get(base))
      assert.is_truthy(err.code)
      assert.are.equal(3, conns)
      http.close_idle()
      l:close()
    end))

    it("skips empty lines after a 1xx interim response", async(function()
      for k = 1, 4 do
        local base, l = raw_server("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" ..
          ("\r\n"):rep(k) .. "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        local res = http.get(base .. "/"):await()
        assert.are.equal(200, res.status, k)
        assert.are.equal("ok", res.body, k)
        l:close()
      end
    end))
  end)

  describe("against Node.js", function()
    it("gets status, reason, headers and body", with_node(function(base)
      local res = http.get(base .. "/hello"):await()
      assert.are.equal(200, res.status)
      assert.are.equal("OK", res.reason)
      assert.are.equal("1.1", res.version)
      assert.are.equal("Hello from Node", res.body)
      assert.are.equal("text/plain", res.headers:get("content-type"))
      assert.are.same({ "a", "b" }, res.headers:get_all("x-multi"))
      assert.are.equal(0, res.redirects)
    end))

    it("keeps one connection per host alive across requests", with_node(function(base)
      http.close_idle()
      local before = tonumber(http.get(base .. "/connections"):await().body)
      for _ = 1, 5 do assert.are.equal(200, http.get(base .. "/hello"):await().status) end
      local after = tonumber(http.get(base .. "/connections"):await().body)
      assert.are.equal(before, after)
    end))

    it("opens more connections for concurrent requests", with_node(function(base)
      local ps = {}
      for i = 1, 4 do ps[i] = http.get(base .. "/length?n=5000") end
      for i = 1, 4 do assert.are.equal(5000, #ps[i]:await().body) end
    end))

    it("reads a chunked body with progress events in order", with_node(function(base)
      local p = http.get(base .. "/chunked?n=6")
      local events = {}
      p:on("progress", function(got, total) events[#events + 1] = { got, total } end)
      local res = p:await()
      assert.are.equal("chunk0;chunk1;chunk2;chunk3;chunk4;chunk5;", res.body)
      assert.are.equal("6", res.trailers:get("x-count"))
      assert.is_true(#events >= 2)
      for i, e in ipairs(events) do
        assert.is_nil(e[2])
        if i > 1 then assert.is_true(e[1] > events[i - 1][1]) end
      end
      assert.are.equal(#res.body, events[#events][1])
    end))

    it("reports progress against Content-Length", with_node(function(base)
      local p = http.get(base .. "/length?n=20000")
      local events = {}
      p:on("progress", function(got, total) events[#events + 1] = { got, total } end)
      local res = p:await()
      assert.are.equal(20000, #res.body)
      assert.is_true(#events >= 2)
      for i, e in ipairs(events) do
        assert.are.equal(20000, e[2])
        if i > 1 then assert.is_true(e[1] > events[i - 1][1]) end
      end
      assert.are.equal(20000, events[#events][1])
    end))

    it("streams a body in stream mode", with_node(function(base)
      local res = http.get(base .. "/chunked?n=4", { stream = true }):await()
      assert.are.equal(200, res.status)
      assert.is_nil(res.body)
      local seen = {}
      res.done:on("progress", function(got) seen[#seen + 1] = got end)
      local parts = {}
      for piece in res:chunks() do parts[#parts + 1] = piece end
      assert.are.equal("chunk0;chunk1;chunk2;chunk3;", table.concat(parts))
      assert.are.equal(28, res.done:await())
      assert.are.equal(28, seen[#seen])
      -- res:read() after the end gives nil.
      assert.is_nil(res:read():await())
    end))

    it("sends a body and headers with POST", with_node(function(base)
      local res = http.request {
        method = "POST", url = base .. "/echo?x=1",
        headers = { ["Content-Type"] = "text/plain", ["X-Token"] = "t" },
        body = "payload",
      }:await()
      local body = res.body
      assert.truthy(body:find('"method":"POST"', 1, true))
      assert.truthy(body:find('"url":"/echo?x=1"', 1, true))
      assert.truthy(body:find('"body":"payload"', 1, true))
      assert.truthy(body:find('"content-length":"7"', 1, true))
      assert.truthy(body:find('"x-token":"t"', 1, true))
      assert.truthy(body:find('"host":"127.0.0.1:' .. node_port .. '"', 1, true))
    end))

    -- sha256 of `data` by sha256sum, to check what Node received.
    local function sha256(data)
      local path = os.tmpname()
      local f = assert(io.open(path, "wb")); f:write(data); f:close()
      local out = io.popen("sha256sum " .. path):read("a")
      os.remove(path)
      return out:match("^(%x+)")
    end

    it("streams a body from a function, chunked or with its Content-Length", with_node(function(base)
      local pieces = {}
      for i = 1, 64 do pieces[i] = string.rep(string.char(32 + i), 65536 - i) end
      local all = table.concat(pieces)
      local function source()
        local i = 0
        return function()
          i = i + 1
          if i % 8 == 0 then tide.sleep(0):await() end  -- it may wait
          return pieces[i]
        end
      end
      local res = http.request { method = "PUT", url = base .. "/hash", body = source() }:await()
      assert.truthy(res.body:find('"bytes":' .. #all, 1, true), res.body)
      assert.truthy(res.body:find('"sha256":"' .. sha256(all) .. '"', 1, true), res.body)
      assert.truthy(res.body:find('"te":"chunked"', 1, true), res.body)
      res = http.request { method = "POST", url = base .. "/hash", body = source(),
        headers = { ["Content-Length"] = tostring(#all) } }:await()
      assert.truthy(res.body:find('"sha256":"' .. sha256(all) .. '"', 1, true), res.body)
      assert.truthy(res.body:find('"te":null,"cl":"' .. #all .. '"', 1, true), res.body)
    end))

    it("streams a body from a process's stdout", with_node(function(base)
      local proc = tide.process.spawn { "seq", "1", "300000", stdout = "pipe" }
      local res = http.request { method = "POST", url = base .. "/hash", body = proc.stdout }:await()
      proc:wait():await()
      local expected = io.popen("seq 1 300000 | sha256sum"):read("a"):match("^(%x+)")
      assert.truthy(res.body:find('"sha256":"' .. expected .. '"', 1, true), res.body)
    end))

    it("fails a streamed body that breaks its Content-Length or raises", with_node(function(base)
      local function pieces(...)
        local list, i = { ... }, 0
        return function() i = i + 1; return list[i] end
      end
      local err = rejection(http.request { method = "PUT", url = base .. "/hash",
        body = pieces("abc", "def"), headers = { ["Content-Length"] = "4" } })
      assert.are.equal("EINVAL", err.code)
      assert.matches("longer than its Content%-Length 4", err.message)
      err = rejection(http.request { method = "PUT", url = base .. "/hash",
        body = pieces("ab"), headers = { ["Content-Length"] = "4" } })
      assert.matches("short of its Content%-Length 4", err.message)
      err = rejection(http.request { method = "PUT", url = base .. "/hash",
        body = function() error("disk on fire", 0) end })
      assert.are.equal("disk on fire", err)
      err = rejection(http.request { method = "PUT", url = base .. "/hash", body = pieces("a", 7) })
      assert.matches("gave a number", err.message)
      assert.has_error(function() http.request { url = base, body = 42 } end,
        "http.request: body must be a string, a function or an object with a read method")
      -- the server goes on
      assert.are.equal(200, http.request { method = "PUT", url = base .. "/hash", body = "ok" }:await().status)
    end))

    it("answers a 307 to a streamed body with the 307 itself, and follows a 303", with_node(function(base)
      local function once(s)
        local done = false
        return function() if not done then done = true; return s end end
      end
      local res = http.request { method = "POST", url = base .. "/redirect?n=1&code=307",
        body = once("gone"), redirects = 2 }:await()
      assert.are.equal(307, res.status)
      res = http.request { method = "POST", url = base .. "/redirect?n=1&code=303",
        body = once("gone"), redirects = 2 }:await()
      assert.are.equal(200, res.status)
      assert.truthy(res.body:find('"method":"GET"', 1, true))
      assert.truthy(res.body:find('"body":""', 1, true))
    end))

    it("follows redirects, up to 5", with_node(function(base)
      local res = http.get(base .. "/redirect?n=3"):await()
      assert.are.equal(200, res.status)
      assert.are.equal(3, res.redirects)
      assert.are.equal(base .. "/echo", res.url)
      local err = rejection(http.get(base .. "/loop"))
      assert.are.equal("ETOOMANYREDIRECTS", err.code)
      res = http.get(base .. "/loop", { redirects = 0 }):await()
      assert.are.equal(302, res.status)
      assert.are.equal("/loop", res.headers:get("location"))
    end))

    it("resolves relative locations", with_node(function(base)
      local res = http.get(base .. "/relative/a/b"):await()
      assert.are.equal("relative ok ?from=b", res.body)
    end))

    it("turns POST into GET on 303 and keeps it on 307", with_node(function(base)
      local res = http.request { method = "POST", url = base .. "/redirect?n=1&code=303", body = "x",
        redirects = 2 }:await()
      assert.truthy(res.body:find('"method":"GET"', 1, true))
      assert.truthy(res.body:find('"body":""', 1, true))
      res = http.request { method = "POST", url = base .. "/redirect?n=1&code=307", body = "kept",
        redirects = 2 }:await()
      assert.truthy(res.body:find('"method":"POST"', 1, true))
      assert.truthy(res.body:find('"body":"kept"', 1, true))
      -- Not followed by default for POST.
      res = http.request { method = "POST", url = base .. "/redirect?n=1&code=307", body = "k" }:await()
      assert.are.equal(307, res.status)
    end))

    it("gets 204 and 304 without a body", with_node(function(base)
      local res = http.get(base .. "/204"):await()
      assert.are.equal(204, res.status)
      assert.are.equal("", res.body)
      assert.are.equal("yes", res.headers:get("x-empty"))
      res = http.get(base .. "/304"):await()
      assert.are.equal(304, res.status)
      assert.are.equal("", res.body)
      -- The connection is still good afterwards.
      assert.are.equal("Hello from Node", http.get(base .. "/hello"):await().body)
    end))

    it("answers HEAD without reading a body", with_node(function(base)
      local res = http.request { method = "HEAD", url = base .. "/length?n=5000" }:await()
      assert.are.equal(200, res.status)
      assert.are.equal("5000", res.headers:get("content-length"))
      assert.are.equal("", res.body)
    end))

    it("times out waiting for a response", with_node(function(base)
      local t0 = tide.now()
      local err = rejection(http.get(base .. "/silent", { timeout = 0.3 }))
      assert.are.equal("ETIMEDOUT", err.code)
      assert.is_true(tide.now() - t0 < 2)
    end))

    it("rejects malformed responses with EPROTO", with_node(function()
      local raw = "http://127.0.0.1:" .. raw_port
      for _, path in ipairs { "/bad-status", "/bad-length", "/two-lengths", "/bad-chunk" } do
        local err = rejection(http.get(raw .. path))
        assert.are.equal("EPROTO", err.code, path .. ": " .. tostring(err))
      end
      local err = rejection(http.get(raw .. "/truncated"))
      assert.truthy(err.code == "EPROTO" or err.code == "EOF", tostring(err))
    end))

    it("reads a body delimited by the end of the connection", with_node(function()
      local res = http.get("http://127.0.0.1:" .. raw_port .. "/close-delimited"):await()
      assert.are.equal("until the end", res.body)
    end))

    it("retries a GET on a keep-alive connection the server closed", async(function()
      local peer, ports = support.start_peer({ "node", "spec/http/peers/node_server.js" },
        { KEEPALIVE_MS = "100" })
      local base = "http://127.0.0.1:" .. ports.port
      assert.are.equal(200, http.get(base .. "/hello"):await().status)
      tide.sleep(0.3):await()  -- the server closes the idle connection
      assert.are.equal(200, http.get(base .. "/hello"):await().status)
      support.stop_peer(peer)
    end))
  end)

  describe("against Python's http.server", function()
    it("reads an HTTP/1.0 body that ends with the connection", with_python(function(base)
      local p = http.get(base .. "/close")
      local events = {}
      p:on("progress", function(got, total) events[#events + 1] = { got, total } end)
      local res = p:await()
      assert.are.equal("1.0", res.version)
      assert.are.equal("python-0;python-1;python-2;python-3;python-4;", res.body)
      assert.is_nil(events[#events][2])
      assert.are.equal(#res.body, events[#events][1])
    end))

    it("reads a body with a length, a 304 and a HEAD", with_python(function(base)
      assert.are.equal(3000, #http.get(base .. "/length"):await().body)
      local res = http.get(base .. "/304"):await()
      assert.are.equal(304, res.status)
      assert.are.equal("", res.body)
      res = http.request { method = "HEAD", url = base .. "/any" }:await()
      assert.are.equal("1234", res.headers:get("content-length"))
      assert.are.equal("", res.body)
    end))
  end)

  describe("resolve_location", function()
    local resolve = require("tide.http.client").resolve_location
    local base = require("tide.http.h1").parse_url("http://h:8080/a/b/c?q=1")
    it("resolves absolute, scheme-relative, absolute-path and relative references", function()
      assert.are.equal("http://other/x", resolve(base, "http://other/x"))
      assert.are.equal("http://other/y", resolve(base, "//other/y"))
      assert.are.equal("http://h:8080/z?k=v", resolve(base, "/z?k=v"))
      assert.are.equal("http://h:8080/a/b/d", resolve(base, "d"))
      assert.are.equal("http://h:8080/a/d", resolve(base, "../d"))
      assert.are.equal("http://h:8080/d", resolve(base, "../../../../d"))
      assert.are.equal("http://h:8080/a/b/", resolve(base, "."))
      assert.are.equal("http://h:8080/a/b/c?x=2", resolve(base, "?x=2"))
      assert.are.equal("http://h:8080/x/z", resolve(base, "/x/./y/../z"))
    end)
  end)

  describe("errors", function()
    it("rejects a refused connection", async(function()
      local server = tide.tcp.listen { port = 0 }
      local port = server.port
      server:close()
      local err = rejection(http.get("http://127.0.0.1:" .. port .. "/"))
      assert.are.equal("ECONNREFUSED", err.code)
    end))

    it("raises at once on misuse", function()
      assert.has_error(function() http.get("ftp://x/") end)
      assert.has_error(function() http.get("ftp://x/") end)
      assert.has_error(function() http.request { url = "http://x/", method = "BAD METHOD" } end)
      assert.has_error(function() http.request { url = "http://x/", bogus = 1 } end)
      assert.has_error(function() http.request { url = "http://x/", body = 42 } end)
    end)
  end)
end)
