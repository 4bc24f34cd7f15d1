-- Specs for tide.http.serve over real sockets, driven by real peers: curl,
-- Node.js http clients, wrk, and raw bytes for every rejection rule. The
-- request and response logic without sockets is in server_unit_spec.lua.
local tide = require "tide"
local http = require "tide.http"
local support = require "http.support"

local responses, raw, run, node = support.responses, support.raw, support.run, support.node

local function hello(req, res)
  res:set_header("Content-Type", "text/plain")
  res:finish("Hello, World!")
end

-- Serves `handler` with `opts` (port 0) while fn(port, server) runs; the
-- server is closed afterwards, whatever happens.
local function serving(opts, handler, fn)
  opts.port = 0
  opts.log = opts.log or function() end
  local server = http.serve(opts, handler)
  local ok, err = pcall(fn, server.port, server)
  server:close(1):await()
  if not ok then error(err, 0) end
end

local function url(port, path)
  return "http://127.0.0.1:" .. port .. (path or "/")
end

describe("tide.http.serve", function()
  describe("with curl", function()
    it("answers GET and HEAD, two requests on one keep-alive connection", async(function()
      serving({}, hello, function(port)
        local out, err = run { "curl", "-sv", "--max-time", "5", url(port, "/a"), url(port, "/b") }
        assert.are.equal("Hello, World!Hello, World!", out)
        assert.truthy(err:find("Re%-using existing connection") or err:find("Reusing existing"))
        out = run { "curl", "-s", "-I", "--max-time", "5", url(port) }
        assert.truthy(out:find("^HTTP/1.1 200 OK\r\n"))
        assert.truthy(out:find("Content%-Length: 13\r\n"))
        assert.truthy(out:find("Date: %a%a%a, "))
      end)
    end))

    it("reads a POST body sent after 100 Continue", async(function()
      serving({}, function(req, res)
        res:finish(req.method .. " " .. #req:body():await())
      end, function(port)
        local body = string.rep("x", 100000)
        local out, err = run({ "curl", "-sv", "--max-time", "5", "-H", "Expect: 100-continue",
          "--data-binary", "@-", url(port, "/upload") }, { input = body })
        assert.are.equal("POST 100000", out)
        assert.truthy(err:find("HTTP/1.1 100 Continue", 1, true))
      end)
    end))

    it("reads a chunked upload and streams a chunked answer", async(function()
      serving({}, function(req, res)
        local n = 0
        for piece in req:chunks() do n = n + #piece end
        res:set_header("Content-Type", "text/plain")
        for i = 1, 3 do res:write("part" .. i .. ";") end
        res:finish("total=" .. n)
      end, function(port)
        local out, err = run({ "curl", "-sv", "--max-time", "5", "-H", "Transfer-Encoding: chunked",
          "--data-binary", "@-", url(port, "/up") }, { input = string.rep("y", 70000) })
        assert.are.equal("part1;part2;part3;total=70000", out)
        assert.truthy(err:find("Transfer%-Encoding: chunked"))
      end)
    end))

    it("gives handlers the query and the headers", async(function()
      serving({}, function(req, res)
        res:finish(req.path .. "|" .. req.query.a .. "|" .. req.query.b .. "|" ..
          table.concat(req.headers:get_all("x-multi"), ","))
      end, function(port)
        local out = run { "curl", "-s", "--max-time", "5", "-H", "X-Multi: 1", "-H", "X-Multi: 2",
          url(port, "/p/q?a=1&b=two%20words") }
        assert.are.equal("/p/q|1|two words|1,2", out)
      end)
    end))
  end)

  describe("with Node.js clients", function()
    it("serves keep-alive requests and a chunked POST", async(function()
      local seen = {}
      serving({}, function(req, res)
        seen[#seen + 1] = req.method .. " " .. req.path
        if req.method == "POST" then
          res:set_header("Content-Type", "application/json")
          res:finish('{"got":' .. #req:body():await() .. '}')
        else
          hello(req, res)
        end
      end, function(port)
        local out, err, status = node([[
const http = require('http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const port = Number(process.argv[2]);
function get(path) {
  return new Promise((resolve, reject) => {
    const req = http.get({ port, host: '127.0.0.1', path, agent }, (res) => {
      let body = '';
      res.on('data', (d) => body += d);
      res.on('end', () => resolve({ status: res.statusCode, body, reused: req.reusedSocket }));
    });
    req.on('error', reject);
  });
}
function post(path, chunks) {
  return new Promise((resolve, reject) => {
    const req = http.request({ port, host: '127.0.0.1', path, method: 'POST', agent }, (res) => {
      let body = '';
      res.on('data', (d) => body += d);
      res.on('end', () => resolve({ status: res.statusCode, body, te: req.getHeader('transfer-encoding') }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}
(async () => {
  const out = [];
  for (let i = 0; i < 5; i++) out.push(await get('/n' + i));
  out.push(await post('/post', ['a'.repeat(1000), 'b'.repeat(2000)]));
  console.log(JSON.stringify(out));
  agent.destroy();
})().catch((e) => { console.error(e); process.exit(1); });
]], tostring(port))
        assert.are.equal(0, status, err)
        local reused = select(2, out:gsub('"reused":true', ""))
        assert.are.equal(4, reused)  -- every GET but the first
        assert.are.equal(5, select(2, out:gsub('"body":"Hello, World!"', "")))
        assert.truthy(out:find('{"status":200,"body":"{\\"got\\":3000}"', 1, true))
        assert.are.equal(6, #seen)
        assert.are.equal("POST /post", seen[6])
      end)
    end))
  end)

  describe("over raw bytes", function()
    it("answers pipelined requests in order", async(function()
      serving({}, function(req, res)
        if req.path == "/slow" then tide.sleep(0.05):await() end
        res:finish(req.path)
      end, function(port)
        local out = raw(port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n" ..
          "HEAD /c HTTP/1.1\r\nHost: x\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        local list = responses(out, { "GET", "GET", "HEAD", "GET" })
        assert.are.equal(4, #list)
        assert.are.same({ "/slow", "/b", "", "/d" }, { list[1].body, list[2].body, list[3].body, list[4].body })
        assert.are.equal("2", list[3].headers:get("content-length"))
        assert.are.equal("close", list[4].headers:get("connection"))
      end)
    end))

    local cases = {
      { 400, "GET / HTTP/1.1\r\n\r\n", "a missing Host" },
      { 400, "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", "an invalid request line" },
      { 400, "GET / HTTP/1.1\r\nHost: x\r\nBad(Name): 1\r\n\r\n", "bad header name characters" },
      { 400, "GET / HTTP/1.1\r\nHost: x\r\nName : 1\r\n\r\n", "whitespace before the colon" },
      { 400, "GET / HTTP/1.1\r\nHost: x\r\nA: 1\rB: 2\r\n\r\n", "a bare CR" },
      { 400, "GET / HTTP/1.1\r\nHost: x\r\nA: a\0b\r\n\r\n", "a NUL" },
      { 400, "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n  folded\r\n\r\n", "obs-fold" },
      { 400, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab", "a duplicate Content-Length" },
      { 400, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", "an invalid Content-Length" },
      { 400, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "Content-Length with Transfer-Encoding" },
      { 501, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "an unknown transfer coding" },
      { 400, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", "a chunk-size overflow",
        in_body = true },
      { 413, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", "a body above max_body" },
      { 414, "GET /" .. string.rep("a", 9000) .. " HTTP/1.1\r\nHost: x\r\n\r\n", "a request line above 8 KiB" },
      { 431, "GET / HTTP/1.1\r\nHost: x\r\n" .. string.rep("X-Long: " .. string.rep("v", 1000) .. "\r\n", 20) .. "\r\n",
        "a header block above 16 KiB" },
      { 431, "GET / HTTP/1.1\r\nHost: x\r\n" .. string.rep("A: 1\r\n", 101) .. "\r\n", "more than 100 headers" },
      { 505, "GET / HTTP/3.0\r\nHost: x\r\n\r\n", "an unsupported version" },
    }
    for _, case in ipairs(cases) do
      it(("answers %d to %s, closes, and serves the next client"):format(case[1], case[3]), async(function()
        local handled = 0
        serving({}, function(req, res)
          handled = handled + 1
          if req.method == "POST" then req:body():await() end
          hello(req, res)
        end, function(port)
          local list = responses(raw(port, case[2] .. "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
          assert.are.equal(1, #list)
          assert.are.equal(case[1], list[1].status)
          assert.are.equal("close", list[1].headers:get("connection"))
          -- Errors in the body come out when the handler reads it.
          assert.are.equal(case.in_body and 1 or 0, handled)
          list = responses(raw(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
          assert.are.equal(200, list[1].status)
        end)
      end))
    end

    it("answers 408 to a head trickled past header_timeout (slowloris)", async(function()
      serving({ header_timeout = 1 }, hello, function(port)
        local conn <close> = tide.tcp.connect("127.0.0.1", port):await()
        local t0 = tide.now()
        local trickle = tide.spawn(function()
          local head = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " .. string.rep("a", 100)
          for i = 1, #head do
            if not pcall(function() conn:write(head:sub(i, i)):await() end) then return end
            tide.sleep(0.02):await()
          end
        end)
        local out = conn:read_until("\r\n\r\n", { timeout = 5 }):await()
        local dt = tide.now() - t0
        trickle:cancel()
        assert.truthy(out:find("^HTTP/1.1 408 "))
        assert.truthy(out:find("Connection: close", 1, true))
        assert.is_true(dt >= 0.9 and dt < 2.5, "408 after " .. dt .. " s")
      end)
    end))

    it("closes a keep-alive connection left idle for idle_timeout", async(function()
      serving({ idle_timeout = 0.3 }, hello, function(port)
        local t0 = tide.now()
        local out = raw(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", { keep_open = true })
        local dt = tide.now() - t0
        assert.are.equal(1, #responses(out))
        assert.is_true(dt >= 0.25 and dt < 2, "closed after " .. dt .. " s")
      end)
    end))

    it("answers 408 when a body stops arriving within body_timeout", async(function()
      serving({ body_timeout = 0.3 }, function(req, res)
        res:finish(req:body():await())
      end, function(port)
        local out = raw(port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", { keep_open = true })
        assert.are.equal(408, responses(out)[1].status)
      end)
    end))
  end)

  describe("handler errors", function()
    it("answer 500, are logged with a traceback, and the server goes on", async(function()
      local logged = {}
      serving({ log = function(m) logged[#logged + 1] = m end }, function(req, res)
        if req.path == "/fail" then
          local t = nil
          return t.field  -- a bug
        end
        hello(req, res)
      end, function(port, server)
        local out = run { "curl", "-s", "-i", "--max-time", "5", url(port, "/fail"), url(port, "/ok") }
        assert.truthy(out:find("^HTTP/1.1 500 Internal Server Error\r\n"))
        assert.truthy(out:find("Hello, World!$"))
        assert.are.equal(1, #logged)
        assert.truthy(logged[1]:find("attempt to index a nil value", 1, true))
        assert.truthy(logged[1]:find("stack traceback", 1, true))
        assert.are.equal(1, server.errors)
      end)
    end))
  end)

  describe("server:close", function()
    it("lets a request in flight finish, closes idle connections, stops accepting", async(function()
      local server = http.serve({ port = 0 }, function(req, res)
        if req.path == "/slow" then tide.sleep(0.3):await() end
        hello(req, res)
      end)
      local port = server.port
      local idle <close> = tide.tcp.connect("127.0.0.1", port):await()
      idle:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"):await()
      local first = idle:read_until("Hello, World!", { timeout = 2 }):await()
      assert.truthy(first:find("^HTTP/1.1 200"))
      local slow = tide.spawn(raw, port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", { keep_open = true })
      tide.sleep(0.1):await()
      local closed = server:close()
      -- The idle connection is closed at once.
      assert.is_nil(idle:read({ timeout = 1 }):await())
      -- The request in flight gets its answer, with Connection: close.
      local list = responses(slow:await())
      assert.are.equal(1, #list)
      assert.are.equal("Hello, World!", list[1].body)
      assert.are.equal("close", list[1].headers:get("connection"))
      tide.timeout(closed, 2):await()
      assert.are.equal(0, server.connections)
      local ok, err = pcall(function() return tide.tcp.connect("127.0.0.1", port, { timeout = 1 }):await() end)
      assert.is_false(ok)
      assert.are.equal("ECONNREFUSED", err.code)
    end))
  end)

  describe("under load", function()
    -- The 10 s run issue 5 asks for; HTTP_WRK_SECONDS=3 shortens it.
    local seconds = tonumber(os.getenv("HTTP_WRK_SECONDS")) or 10
    it("serves wrk with 100 connections for " .. seconds .. " s without errors", async(function()
      serving({}, hello, function(port, server)
        local out = run({ "wrk", "-t1", "-c100", "-d" .. seconds .. "s", url(port) },
          { timeout = seconds + 12 })
        local n = tonumber(out:match("(%d+) requests in"))
        assert.truthy(n and n > 1000, out)
        assert.is_nil(out:find("Socket errors", 1, true), out)
        assert.is_nil(out:find("Non%-2xx"), out)
        assert.are.equal(0, server.errors)
      end)
    end, seconds + 17))
  end)
end)
