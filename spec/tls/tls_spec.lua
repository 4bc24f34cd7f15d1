-- Specs of tide.tls against real peers on 127.0.0.1: openssl s_server and
-- s_client, curl, Python's ssl module (spec/tls/peers/tls_peer.py), tide
-- itself and a tide subprocess. Certificates are made once per run by
-- spec/tls/certs.sh (see spec/tls/certs.lua).
--
-- Client: verification with ca= (file, PEM string, folder), with
-- SSL_CERT_FILE / SSL_CERT_DIR, IP SANs, and each failure with its reason
-- (unknown CA, self-signed, wrong host, expired, TLS 1.0, minimum version);
-- SNI and ALPN as the peer saw them; ciphers; timeouts; 64 MiB each way.
-- Server: curl, s_client and Python clients; client certificates; SNI
-- contexts; garbage, plain HTTP and silent clients; 200 handshakes at once;
-- half-close both ways; tls.listen. STARTTLS over TCP (with the hello
-- already buffered), over an in-memory stream pair, over a Unix socket and
-- over TLS itself. Edge cases: KeyUpdate, renegotiation, corrupt records,
-- non-TLS peers, cuts without close_notify, backpressure, cancellation and
-- descriptor leaks, server close with a grace, a forgotten connection, bad
-- arguments.
local tide = require "tide"
local certs = require "tls.certs"
local has_tls, tls = pcall(require, "tide.tls")

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec/tls"
local PEER = HERE .. "/peers/tls_peer.py"

-- Peers run without the sanitizer runtime the specs may be preloaded with.
local CHILD_ENV = { LD_PRELOAD = false, ASAN_OPTIONS = false, LSAN_OPTIONS = false }

local function C(name) return certs.path(name) end

-- A fresh temporary path ending in `suffix` (os.tmpname's own file removed).
local function tmp_path(suffix)
  local base = os.tmpname()
  os.remove(base)
  return base .. suffix
end

-- Writes `src` to a temporary .lua file; returns its path.
local function script_file(src)
  local path = tmp_path(".lua")
  local f = assert(io.open(path, "wb"))
  f:write(src)
  f:close()
  return path
end

local function rejection(p)
  local ok, err = pcall(p.await, p)
  assert.is_false(ok, "expected a rejection, got " .. tostring(err))
  return err
end

-- Asserts that `err` is an ETLS error whose message matches `reason` (a
-- Lua pattern, or a list of patterns one of which must match).
local function assert_etls(err, reason)
  assert.is_true(tide.is_error(err, "ETLS"), "expected an ETLS error, got " .. tostring(err))
  local msg = tostring(err.message)
  local reasons = type(reason) == "table" and reason or { reason }
  for _, r in ipairs(reasons) do
    if msg:match(r) then return err end
  end
  error(string.format("ETLS message %q matches none of: %s", msg, table.concat(reasons, " | ")), 2)
end

-- Starts a peer (a list: program and arguments) whose stdout gives its port
-- on a line matching `pattern`; returns the process (closing it kills the
-- peer) and the port. Its stdin stays open (s_server ends at its EOF).
local function start_peer(cmd, pattern, quiet)
  local p = tide.process.spawn { cmd[1], args = { table.unpack(cmd, 2) }, stdin = "pipe", stdout = "pipe",
    stderr = quiet and "ignore" or "inherit", env = CHILD_ENV }
  local seen = {}
  while true do
    local ok, line = pcall(function() return tide.timeout(p.stdout:read_line(), 5):await() end)
    if not ok or not line then
      p:kill()
      error("the peer gave no port (" .. tostring(line) .. "):\n" .. table.concat(seen, "\n"), 2)
    end
    seen[#seen + 1] = line
    local port = line:match(pattern)
    if port then return p, tonumber(port) end
  end
end

-- Reads the peer's output lines until one matches `pattern`; returns its
-- captures and the lines before it.
local function peer_line(p, pattern, timeout)
  local before = {}
  while true do
    local line = tide.timeout(p.stdout:read_line(), timeout or 5):await()
    assert(line, "the peer ended before a line matching " .. pattern .. ":\n" .. table.concat(before, "\n"))
    local caps = { line:match(pattern) }
    if caps[1] then
      caps[#caps + 1] = before
      return table.unpack(caps)
    end
    before[#before + 1] = line
  end
end

-- openssl s_server with certificate NAME and extra arguments.
local function s_server(name, ...)
  local cmd = { "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", C(name .. ".pem"), "-key", C(name .. ".key"), ... }
  return start_peer(cmd, "^ACCEPT 127%.0%.0%.1:(%d+)", true)  -- it talks a lot on stderr
end

-- The Python server (see tls_peer.py), with extra arguments.
local function py_server(...)
  return start_peer({ "python3", PEER, "server", ... }, "^port (%d+)$")
end

-- Runs a command (a list) with a time limit; returns stdout, stderr, status.
local function run(cmd, opts)
  opts = opts or {}
  local env = {}
  for k, v in pairs(opts.env or CHILD_ENV) do env[k] = v end
  local r = tide.timeout(tide.process.exec {
    cmd[1], args = { table.unpack(cmd, 2) }, input = opts.input, env = env,
  }, opts.timeout or 10):await()
  return r.stdout, r.stderr, r.status
end

-- Runs the Python client against `port` with extra arguments.
local function py_client(port, ...)
  return run({ "python3", PEER, "client", tostring(port), "--ca", C "ca.pem", ... })
end

-- A server context option table for certificate NAME.
local function server_opts(name, extra)
  local o = { port = 0, cert = C(name .. ".pem"), key = C(name .. ".key") }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- A tide TLS server answering one line: an HTTP request (curl) with an
-- HTTP response whose body is "echo LINE", any other line with
-- "echo LINE\n"; then it closes.
local function one_line_server(extra)
  return tls.serve(server_opts("localhost", extra), function(s)
    local line = s:read_line():await()
    if line:match(" HTTP/1%.1$") then
      s:read_until("\r\n\r\n"):await()
      local body = "echo " .. line
      s:write("HTTP/1.1 200 OK\r\nContent-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body):await()
    else
      s:write("echo " .. line .. "\n"):await()
    end
  end)
end

-- A tide TLS server answering each line with "echo LINE" until EOF.
local function line_server(extra, seen)
  return tls.serve(server_opts("localhost", extra), function(s)
    if seen then seen[#seen + 1] = s end
    while true do
      local line = s:read_line():await()
      if line == nil then break end
      s:write("echo " .. line .. "\n"):await()
    end
  end)
end

local function client_opts(extra)
  local o = { ca = C "ca.pem", timeout = 5 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- Connects raw TCP to `port`, writes `bytes` (unless nil), and reads until
-- the server ends the connection or `timeout` passes. Returns what came,
-- how it ended ("eof", "reset" or "timeout") and how long it took.
local function raw_exchange(port, bytes, timeout)
  local t0 = tide.now()
  local c <close> = tide.tcp.connect("127.0.0.1", port, { timeout = 5 }):await()
  if bytes then c:write(bytes):await() end
  local parts, how = {}, nil
  local deadline = t0 + timeout
  while not how do
    local left = deadline - tide.now()
    if left <= 0 then how = "timeout" break end
    local ok, data = pcall(function() return c:read(left):await() end)
    if not ok then
      if tide.is_error(data, "ETIMEDOUT") then how = "timeout"
      elseif tide.is_error(data, "ECONNRESET") then how = "reset"
      else error(data, 0) end
    elseif data == nil then
      how = "eof"
    else
      parts[#parts + 1] = data
    end
  end
  return table.concat(parts), how, tide.now() - t0
end

-- Two custom streams joined back to back (tide.stream(impl)).
local function pair()
  local sa, sb
  local function impl(peer_source)
    return {
      write = function(data) return peer_source():push(data) end,
      shutdown = function() peer_source():finish() end,
      close = function() peer_source():finish() end,
      kind = "memory",
    }
  end
  local a, b
  a, sa = tide.stream(impl(function() return sb end))
  b, sb = tide.stream(impl(function() return sa end))
  return a, b
end

-- 64 KiB of patterned bytes.
local BLOCK = (function()
  local t = {}
  for i = 1, 4096 do t[i] = string.pack("<I4I4I4I4", i, i * 7, i * 13, i ~ 0x5a5a) end
  return table.concat(t)
end)()

-- Fields openssl x509 gives about certificate NAME.
local function x509(name, what)
  local out, err, status = sh("openssl x509 -noout " .. what .. " -in " .. C(name .. ".pem"))
  assert(status == 0, err)
  return out:match("=%s*(.-)%s*$")
end

describe("tide.tls", function()
  setup(function()
    assert(has_tls, "require 'tide.tls' failed: " .. tostring(tls))
    certs.dir()
  end)

  teardown(function()
    certs.cleanup()
  end)

  describe("client", function()
    it("verifies a chain with ca= (a file) and talks to openssl s_server", async(function()
      local _p <close>, port = s_server("localhost", "-rev")
      local s <close> = tls.connect("localhost", port, client_opts()):await()
      assert.equal("tls", s.kind)
      assert.equal("TLSv1.3", s.version)
      assert.matches("^TLS_", s.cipher)
      assert.is_nil(s.alpn)
      s:write("hello\n"):await()
      assert.equal("olleh", s:read_line{ timeout = 5 }:await())
      s:write("tide\n"):await()
      assert.equal("edit", s:read_line{ timeout = 5 }:await())
    end))

    it("takes ca= as a PEM string and as a hashed folder", async(function()
      local _p <close>, port = s_server("localhost", "-rev")
      local a <close> = tls.connect("localhost", port, client_opts{ ca = certs.read "ca.pem" }):await()
      a:write("abc\n"):await()
      assert.equal("cba", a:read_line{ timeout = 5 }:await())
      a:close()
      local b <close> = tls.connect("localhost", port, client_opts{ ca = C "certs" }):await()
      b:write("xyz\n"):await()
      assert.equal("zyx", b:read_line{ timeout = 5 }:await())
    end))

    it("takes a context built once (context=)", async(function()
      local _p <close>, port = s_server("localhost", "-rev")
      local ctx = tls.context{ ca = C "ca.pem" }
      for i = 1, 3 do
        local s <close> = tls.connect("localhost", port, { context = ctx, timeout = 5 }):await()
        s:write("n" .. i .. "\n"):await()
        assert.equal(i .. "n", s:read_line{ timeout = 5 }:await())
      end
    end))

    it("talks TLS 1.2 to an RSA certificate, with the ciphers asked for", async(function()
      local _p <close>, port = s_server("localhost-rsa", "-rev", "-tls1_2")
      local s <close> = tls.connect("localhost", port, client_opts()):await()
      assert.equal("TLSv1.2", s.version)
      assert.matches("RSA", s.cipher)
      s:close()
      local s2 <close> = tls.connect("localhost", port, client_opts{ ciphers = "ECDHE-RSA-AES128-GCM-SHA256" }):await()
      assert.equal("ECDHE-RSA-AES128-GCM-SHA256", s2.cipher)
      s2:write("rsa\n"):await()
      assert.equal("asr", s2:read_line{ timeout = 5 }:await())
    end))

    it("uses the TLS 1.3 cipher suites asked for", async(function()
      local _p <close>, port = s_server("localhost", "-rev")
      local s <close> = tls.connect("localhost", port, client_opts{ ciphersuites = "TLS_CHACHA20_POLY1305_SHA256",
        alpn = { "h2" } }):await()
      assert.equal("TLSv1.3", s.version)
      assert.equal("TLS_CHACHA20_POLY1305_SHA256", s.cipher)
      assert.is_nil(s.alpn)  -- the server has no ALPN
    end))

    it("checks an IP address against the IP SANs (and servername= overrides the name)", async(function()
      local _p <close>, port = s_server("localhost", "-rev")
      local s <close> = tls.connect("127.0.0.1", port, client_opts()):await()
      s:write("ip\n"):await()
      assert.equal("pi", s:read_line{ timeout = 5 }:await())
      s:close()
      local _q <close>, wport = s_server("wrong", "-rev")
      assert_etls(rejection(tls.connect("127.0.0.1", wport, client_opts())), "IP address mismatch")
      local ok <close> = tls.connect("127.0.0.1", wport, client_opts{ servername = "wrong.test" }):await()
      ok:write("w\n"):await()
      assert.equal("w", ok:read_line{ timeout = 5 }:await())
    end))

    it("checks an IPv6 address against the IP SANs", async(function()
      local ok, server = pcall(tls.serve, server_opts("localhost", { host = "::1" }), function(s)
        s:write("v6\n"):await()
      end)
      if not ok then return pending("no IPv6 loopback here: " .. tostring(server)) end
      local _ <close> = server
      -- the certificate names 127.0.0.1, not ::1
      assert_etls(rejection(tls.connect("::1", server.port, client_opts())), "IP address mismatch")
      local s <close> = tls.connect("::1", server.port, client_opts{ servername = "localhost" }):await()
      assert.equal("v6", s:read_line{ timeout = 5 }:await())
    end))

    it("finds the CA through SSL_CERT_FILE and SSL_CERT_DIR (a tide subprocess)", async(function()
      local server <close> = line_server()
      local script = script_file(string.format([[
        local tls = require "tide.tls"
        local s = tls.connect("localhost", %d, { timeout = 5 }):await()
        s:write("env\n"):await()
        print(s:read_line():await(), s.version)
        s:close()
      ]], server.port))
      local function with(env)
        local e = {}
        for k, v in pairs(env) do e[k] = v end
        local r = tide.timeout(tide.process.exec { tide_bin, args = { script }, env = e }, 10):await()
        return r.stdout, r.stderr, r.status
      end
      local out1, err1, status1 = with{ SSL_CERT_FILE = C "ca.pem", SSL_CERT_DIR = "/nonexistent" }
      local out2, err2, status2 = with{ SSL_CERT_FILE = "/nonexistent", SSL_CERT_DIR = C "certs" }
      -- the default store without our CA: refused
      local _, err3, status3 = with{ SSL_CERT_FILE = C "other-ca.pem", SSL_CERT_DIR = "/nonexistent" }
      os.remove(script)
      assert.equal(0, status1, err1)
      assert.equal("echo env\tTLSv1.3\n", out1)
      assert.equal(0, status2, err2)
      assert.equal("echo env\tTLSv1.3\n", out2)
      assert.not_equal(0, status3)
      assert.matches("ETLS", err3)
      assert.matches("unable to get local issuer certificate", err3)
    end))

    describe("refuses with ETLS and the reason", function()
      it("a certificate from an unknown CA", async(function()
        local _p <close>, port = s_server("other")
        assert_etls(rejection(tls.connect("localhost", port, client_opts())), "unable to get local issuer certificate")
      end))

      it("a self-signed certificate", async(function()
        local _p <close>, port = s_server("self")
        assert_etls(rejection(tls.connect("localhost", port, client_opts())), "self.signed certificate")
      end))

      it("a certificate for another host", async(function()
        local _p <close>, port = s_server("wrong")
        assert_etls(rejection(tls.connect("localhost", port, client_opts())), "[Hh]ostname mismatch")
      end))

      it("an expired certificate", async(function()
        local _p <close>, port = s_server("expired")
        assert_etls(rejection(tls.connect("localhost", port, client_opts())), "certificate has expired")
      end))

      it("a server that speaks only TLS 1.0", async(function()
        local _p <close>, port = s_server("localhost", "-tls1", "-cipher", "DEFAULT@SECLEVEL=0")
        -- the server answers the client's TLS 1.2+ hello with a protocol_version alert
        assert_etls(rejection(tls.connect("localhost", port, client_opts())),
          { "unsupported protocol", "alert protocol version" })
      end))

      it("a TLS 1.2 server when min_version is TLSv1.3", async(function()
        local _p <close>, port = s_server("localhost", "-tls1_2")
        assert_etls(rejection(tls.connect("localhost", port, client_opts{ min_version = "TLSv1.3" })),
          { "unsupported protocol", "wrong version number", "protocol version" })
      end))
    end)

    it("accepts what it cannot verify with verify=false", async(function()
      local _p <close>, port = s_server("self", "-rev")
      local s <close> = tls.connect("localhost", port, { verify = false, timeout = 5 }):await()
      s:write("anyway\n"):await()
      assert.equal("yawyna", s:read_line{ timeout = 5 }:await())
      local _q <close>, eport = s_server("expired", "-rev")
      local e <close> = tls.connect("localhost", eport, { verify = false, timeout = 5 }):await()
      local cert = e:peer_certificate()
      assert.equal(1577836800, cert.not_before)  -- 2020-01-01
      assert.equal(1580515200, cert.not_after)   -- 2020-02-01
    end))

    it("sends SNI (the host, or servername=, never an IP address) and negotiates ALPN", async(function()
      local p <close>, port = py_server("--cert", C "localhost.pem", "--key", C "localhost.key",
        "--alpn", "http/1.1", "--sni-cert", "a.test=" .. C "a.pem" .. ":" .. C "a.key")
      -- the "sni ..." lines the peer printed before the next "hello"
      local function sni_seen()
        local version, alpn, before = peer_line(p, "^hello (%S+) (%S+)$")
        local names = {}
        for _, line in ipairs(before) do
          local name = line:match("^sni (.*)$")
          if name then names[#names + 1] = name end
        end
        return names, version, alpn
      end
      local s <close> = tls.connect("localhost", port, client_opts{ alpn = { "h2", "http/1.1" } }):await()
      assert.equal("http/1.1", s.alpn)
      local names, version, alpn = sni_seen()
      assert.same({ "localhost" }, names)
      assert.same({ "TLSv1.3", "http/1.1" }, { version, alpn })
      s:write("x"):await()
      assert.equal("x", s:read_exactly(1, 5):await())
      s:shutdown():await()
      assert.is_nil(s:read(5):await())
      peer_line(p, "^got 1 ")
      s:close()

      local ip <close> = tls.connect("127.0.0.1", port, client_opts()):await()
      assert.is_nil(ip.alpn)
      names = sni_seen()
      for _, name in ipairs(names) do assert.equal("-", name) end  -- no SNI (or no callback)
      ip:close()

      local a <close> = tls.connect("127.0.0.1", port, client_opts{ servername = "a.test" }):await()
      assert.same({ "a.test" }, (sni_seen()))
      assert.matches("CN=a%.test", a:peer_certificate().subject)
    end))

    it("times out a handshake nobody answers with ETIMEDOUT", async(function()
      local silent <close> = tide.tcp.listen{ port = 0 }  -- the kernel accepts; nobody speaks
      local t0 = tide.now()
      local err = rejection(tls.connect("127.0.0.1", silent.port, client_opts{ timeout = 0.3 }))
      assert.equal("ETIMEDOUT", err.code)
      local took = tide.now() - t0
      assert.is_true(took >= 0.25 and took < 2, "took " .. took)
    end))

    it("carries 64 MiB each way through a Python echo server, hashed on three sides", async(function()
      local p <close>, port = py_server("--cert", C "localhost.pem", "--key", C "localhost.key")
      local s <close> = tls.connect("localhost", port, client_opts()):await()
      local sent_hash <close> = tide.process.spawn { "sha256sum", stdin = "pipe", stdout = "pipe", env = CHILD_ENV }
      local got_hash <close> = tide.process.spawn { "sha256sum", stdin = "pipe", stdout = "pipe", env = CHILD_ENV }
      local total = 64 * 1024 * 1024
      local writer = tide.spawn(function()
        for i = 1, total // #BLOCK do
          local chunk = string.pack("<I4", i) .. BLOCK:sub(5)
          s:write(chunk):await()
          sent_hash.stdin:write(chunk):await()
        end
        s:shutdown():await()
        sent_hash.stdin:close()
      end)
      local got = 0
      while true do
        local data = s:read(10):await()
        if data == nil then break end
        got = got + #data
        got_hash.stdin:write(data):await()
      end
      got_hash.stdin:close()
      writer:await()
      assert.equal(total, got)
      local n, peer_hex = peer_line(p, "^got (%d+) (%x+)$", 10)
      local a = sent_hash.stdout:read_all():await():match("^%x+")
      local b = got_hash.stdout:read_all():await():match("^%x+")
      assert.equal(tostring(total), n)
      assert.equal(a, peer_hex)
      assert.equal(a, b)
    end, 60))
  end)

  describe("server", function()
    it("serves curl over https (--cacert) and negotiates http/1.1", async(function()
      local seen = {}
      local server <close> = tls.serve(server_opts("localhost", { alpn = { "h2", "http/1.1" } }), function(s)
        seen[#seen + 1] = s.alpn
        local head = s:read_until("\r\n\r\n"):await()
        local path = head:match("^GET (%S+) HTTP/1%.1\r\n")
        local body = "hello " .. tostring(path)
        s:write("HTTP/1.1 200 OK\r\nContent-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body):await()
      end)
      assert.is_true(server.port > 0)
      local url = string.format("https://localhost:%d/tls", server.port)
      local out, err, status = run{ "curl", "-sS", "--http1.1", "--max-time", "5", "--cacert", C "ca.pem",
        "--resolve", "localhost:" .. server.port .. ":127.0.0.1", url }
      assert.equal(0, status, err)
      assert.equal("hello /tls", out)
      assert.same({ "http/1.1" }, seen)
      -- curl without the CA refuses the server
      out, err, status = run{ "curl", "-sS", "--max-time", "5", "--cacert", C "other-ca.pem",
        "--resolve", "localhost:" .. server.port .. ":127.0.0.1", url }
      assert.equal(60, status, err)  -- CURLE_PEER_FAILED_VERIFICATION
      assert.equal("", out)
    end))

    it("serves a certificate and key given as PEM strings to openssl s_client", async(function()
      local server <close> = tls.serve({ port = 0, cert = certs.read "localhost.pem", key = certs.read "localhost.key",
        alpn = { "h2" } }, function(s)
        local line = s:read_line():await()
        s:write("got " .. line .. " over " .. s.version .. " " .. tostring(s.alpn) .. "\n"):await()
      end)
      local out, err, status = run({ "openssl", "s_client", "-connect", "127.0.0.1:" .. server.port,
        "-servername", "localhost", "-verify_hostname", "localhost", "-CAfile", C "ca.pem",
        "-verify_return_error", "-alpn", "h2", "-ign_eof", "-quiet" }, { input = "hello\n" })
      assert.equal(0, status, err)
      assert.equal("got hello over TLSv1.3 h2\n", out)
    end))

    it("negotiates ALPN with a Python client", async(function()
      local server <close> = tls.serve(server_opts("localhost", { alpn = { "h2", "http/1.1" } }), function(s)
        local line = s:read_line():await()
        s:write(line .. " " .. tostring(s.alpn)):await()
      end)
      local out, err, status = py_client(server.port, "--alpn", "http/1.1,h2", "--send", "one\n")
      assert.equal(0, status, out .. err)
      assert.matches("alpn h2\n", out)
      assert.matches("version TLSv1.3\n", out)
      assert.matches("subject localhost\n", out)
      assert.matches("reply 'one h2'\n", out)
      out, err, status = py_client(server.port, "--alpn", "http/1.1", "--send", "two\n")
      assert.equal(0, status, out .. err)
      assert.matches("reply 'two http/1.1'\n", out)
    end))

    it("requires client certificates with verify_client=true", async(function()
      local subjects = {}
      local server <close> = tls.serve(server_opts("localhost", { ca = C "ca.pem", verify_client = true }), function(s)
        local cert = s:peer_certificate()
        subjects[#subjects + 1] = cert and cert.subject or "none"
        local line = s:read_line():await()
        if line:match(" HTTP/1%.1$") then  -- curl
          s:read_until("\r\n\r\n"):await()
          s:write("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nhi curl"):await()
        else
          s:write("hi " .. line):await()
        end
      end)
      -- Python with a certificate
      local out, err, status = py_client(server.port, "--cert", C "client.pem", "--key", C "client.key", "--send", "py\n")
      assert.equal(0, status, out .. err)
      assert.matches("reply 'hi py'", out)
      assert.equal(1, #subjects)
      -- curl with a certificate
      out, err, status = run{ "curl", "-sS", "--max-time", "5", "--cacert", C "ca.pem", "--http1.1",
        "--cert", C "client.pem", "--key", C "client.key",
        "--resolve", "localhost:" .. server.port .. ":127.0.0.1", "https://localhost:" .. server.port .. "/" }
      assert.equal(0, status, err)
      assert.equal("hi curl", out)
      assert.equal(2, #subjects)
      -- tide with a certificate
      local s <close> = tls.connect("localhost", server.port, client_opts{ cert = C "client.pem", key = C "client.key" }):await()
      s:write("tide\n"):await()
      assert.equal("hi tide", s:read_all{ timeout = 5 }:await())
      assert.equal(3, #subjects)
      for _, subject in ipairs(subjects) do assert.matches("CN=tide%-client", subject) end
      -- Python without one: refused, the handler never runs
      out, err, status = py_client(server.port, "--send", "anon\n")
      assert.equal(3, status, out .. err)
      assert.matches("error ", out)
      -- tide without one: the handshake (or, in TLS 1.3, the first read) fails with ETLS
      local ok, e = pcall(function()
        local c <close> = tls.connect("localhost", server.port, client_opts()):await()
        c:write("anon\n"):await()
        return c:read_all{ timeout = 5 }:await()
      end)
      assert.is_false(ok, "a client without a certificate got " .. tostring(e))
      assert.is_true(tide.is_error(e, "ETLS"), tostring(e))
      -- curl without one
      out, err, status = run{ "curl", "-sS", "--max-time", "5", "--cacert", C "ca.pem", "--http1.1",
        "--resolve", "localhost:" .. server.port .. ":127.0.0.1", "https://localhost:" .. server.port .. "/" }
      assert.not_equal(0, status, err)
      assert.equal("", out)
      tide.sleep(0.1):await()
      assert.equal(3, #subjects)
    end))

    it("asks for client certificates with verify_client=\"optional\"", async(function()
      local seen = {}
      local server <close> = tls.serve(server_opts("localhost", { ca = C "ca.pem", verify_client = "optional" }), function(s)
        local cert = s:peer_certificate()
        seen[#seen + 1] = cert and cert.subject or "none"
        s:write("ok\n"):await()
      end)
      local a <close> = tls.connect("localhost", server.port, client_opts()):await()
      assert.equal("ok", a:read_line{ timeout = 5 }:await())
      local b <close> = tls.connect("localhost", server.port, client_opts{ cert = C "client.pem", key = C "client.key" }):await()
      assert.equal("ok", b:read_line{ timeout = 5 }:await())
      assert.equal("none", seen[1])
      assert.matches("CN=tide%-client", seen[2])
    end))

    it("picks the context of the server name (sni=)", async(function()
      local b_ctx = tls.context{ cert = C "b.pem", key = C "b.key" }
      local server <close> = one_line_server{ sni = { ["a.test"] = { cert = C "a.pem", key = C "a.key" }, ["b.test"] = b_ctx } }
      local function subject_for(host, servername)
        local s <close> = tls.connect(host, server.port, client_opts{ servername = servername }):await()
        s:write("sni\n"):await()
        assert.equal("echo sni", s:read_line{ timeout = 5 }:await())
        return s:peer_certificate().subject
      end
      assert.matches("CN=a%.test", subject_for("127.0.0.1", "a.test"))
      assert.matches("CN=b%.test", subject_for("127.0.0.1", "b.test"))
      assert.matches("CN=localhost", subject_for("localhost"))
      assert.matches("CN=localhost", subject_for("127.0.0.1"))
      -- curl, which checks the name, sees a.test's certificate
      local out, err, status = run{ "curl", "-sS", "-v", "--max-time", "5", "--cacert", C "ca.pem", "--http1.1",
        "--resolve", "a.test:" .. server.port .. ":127.0.0.1", "https://a.test:" .. server.port .. "/" }
      assert.equal(0, status, err)
      assert.equal("echo GET / HTTP/1.1", out)
      assert.matches("CN=a%.test", err)
      assert.matches("SSL certificate verify ok", err)
      -- the Python client too
      out, err, status = py_client(server.port, "--servername", "b.test", "--send", "py\n")
      assert.equal(0, status, out .. err)
      assert.matches("subject b.test\n", out)
      assert.matches("reply 'echo py\\n'", out)
    end))

    it("picks a wildcard entry of sni= for one label only", async(function()
      local server <close> = one_line_server{ sni = { ["*.wild.test"] = { cert = C "wild.pem", key = C "wild.key" } } }
      local s <close> = tls.connect("127.0.0.1", server.port, client_opts{ servername = "x.wild.test" }):await()
      assert.equal("CN=*.wild.test,O=tide tests", s:peer_certificate().subject)
      s:write("w\n"):await()
      assert.equal("echo w", s:read_line{ timeout = 5 }:await())
      -- two labels: no entry, the server's own certificate, which is not for that name
      assert_etls(rejection(tls.connect("127.0.0.1", server.port, client_opts{ servername = "a.b.wild.test" })),
        "[Hh]ostname mismatch")
    end))

    it("tells the handler the name the client asked for (s.servername)", async(function()
      local server <close> = tls.serve(server_opts("localhost", { sni = { ["a.test"] = { cert = C "a.pem", key = C "a.key" } } }),
        function(s) s:write(tostring(s.servername) .. "\n"):await() end)
      local function name_seen(host, servername)
        local c <close> = tls.connect(host, server.port, client_opts{ servername = servername }):await()
        return c:read_line{ timeout = 5 }:await()
      end
      assert.equal("a.test", name_seen("127.0.0.1", "a.test"))
      assert.equal("localhost", name_seen("localhost"))
      assert.equal("nil", name_seen("127.0.0.1"))
    end))

    it("checks client certificates for a name of sni= too (its options inherit verify_client; ca from the server)", async(function()
      local seen = {}
      local server <close> = tls.serve(server_opts("localhost", {
        ca = C "ca.pem", verify_client = true,
        sni = { ["a.test"] = { cert = C "a.pem", key = C "a.key" } },
      }), function(s)
        local cert = s:peer_certificate()
        seen[#seen + 1] = cert and cert.subject or "none"
        s:write("hi\n"):await()
      end)
      local function try(servername)
        return pcall(function()
          local c <close> = tls.connect("127.0.0.1", server.port,
            client_opts{ servername = servername, cert = C "client.pem", key = C "client.key" }):await()
          return c:read_line{ timeout = 5 }:await()
        end)
      end
      assert.same({ true, "hi" }, { try("localhost") })
      local ok, v = try("a.test")
      assert.is_true(ok, "the client certificate was refused for a.test: " .. tostring(v))
      assert.equal("hi", v)
      assert.equal(2, #seen)
    end))

    it("cuts garbage, plain HTTP and silent clients without running the handler, and goes on", async(function()
      local handled = 0
      local server <close> = tls.serve(server_opts("localhost", { handshake_timeout = 0.5 }), function(s)
        handled = handled + 1
        s:write("welcome\n"):await()
      end)
      local garbage = {}
      for i = 1, 1024 do garbage[i] = string.char((i * 131 + 7) % 256) end
      local _, how, took = raw_exchange(server.port, table.concat(garbage), 3)
      assert.not_equal("timeout", how)
      assert.is_true(took < 2, "took " .. took)
      local reply
      reply, how = raw_exchange(server.port, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", 3)
      assert.not_equal("timeout", how)
      assert.is_nil(reply:find("HTTP/1", 1, true))
      -- a silent client is cut after handshake_timeout
      _, how, took = raw_exchange(server.port, nil, 4)
      assert.not_equal("timeout", how)
      assert.is_true(took >= 0.4 and took < 2, "took " .. took)
      -- a client that stops in the middle of its hello too
      _, how, took = raw_exchange(server.port, "\22\3\1\2\0\1", 4)
      assert.not_equal("timeout", how)
      assert.is_true(took >= 0.4 and took < 2, "took " .. took)
      assert.equal(0, handled)
      local s <close> = tls.connect("localhost", server.port, client_opts()):await()
      assert.equal("welcome", s:read_line{ timeout = 5 }:await())
      assert.equal(1, handled)
    end))

    it("serves 200 handshakes at once", async(function()
      local server <close> = line_server()
      local n, tasks = 200, {}
      for i = 1, n do
        tasks[i] = tide.spawn(function()
          local s <close> = tls.connect("127.0.0.1", server.port, client_opts{ timeout = 20 }):await()
          s:write("client " .. i .. "\n"):await()
          return s:read_line{ timeout = 20 }:await()
        end)
      end
      local lines = { tide.all(tasks):await() }
      assert.equal(n, #lines)
      for i = 1, n do assert.equal("echo client " .. i, lines[i]) end
    end, 30))

    it("half-closes: the client's shutdown is the server's EOF, the answer still comes", async(function()
      local server <close> = tls.serve(server_opts("localhost"), function(s)
        local data = s:read_all():await()
        s:write("got " .. #data .. ": " .. data):await()
      end)
      local s <close> = tls.connect("localhost", server.port, client_opts()):await()
      s:write("abc"):await()
      s:write("def"):await()
      s:shutdown():await()
      assert.equal("got 6: abcdef", s:read_all{ timeout = 5 }:await())
      assert.is_nil(s:read():await())
    end))

    it("accepts a good client while a silent one is still in its handshake (tls.listen)", async(function()
      local server <close> = tls.listen(server_opts("localhost", { handshake_timeout = 3 }))
      local _silent <close> = tide.tcp.connect("127.0.0.1", server.port):await()
      tide.sleep(0.05):await()
      local c = tls.connect("127.0.0.1", server.port, client_opts())
      c:catch(function() end)
      local t0 = tide.now()
      local ok, s = pcall(function() return tide.timeout(server:accept(), 1.5):await() end)
      assert.is_true(ok, "accept waited on the silent client's handshake: " .. tostring(s))
      assert.is_true(tide.now() - t0 < 1, "took " .. (tide.now() - t0))
      local cs <close> = c:await()
      s:write("first\n"):await()
      assert.equal("first", cs:read_line{ timeout = 5 }:await())
      s:close()
    end))

    it("rejects accept(timeout) with ETIMEDOUT when the time runs out during a failed handshake (tls.listen)", async(function()
      local server <close> = tls.listen(server_opts("localhost", { handshake_timeout = 0.3 }))
      local _silent <close> = tide.tcp.connect("127.0.0.1", server.port):await()
      local ok, err = pcall(function() return server:accept(0.2):await() end)
      assert.is_false(ok)
      assert.is_true(tide.is_error(err, "ETIMEDOUT"), "accept(0.2) failed with: " .. tostring(err))
    end))

    it("half-closes the other way: the server's shutdown is the client's EOF, the client still writes", async(function()
      local got = tide.promise()
      local server <close> = tls.serve(server_opts("localhost"), function(s)
        s:write("bye"):await()
        s:shutdown():await()
        got:resolve(s:read_all():await())
      end)
      local s <close> = tls.connect("localhost", server.port, client_opts()):await()
      assert.equal("bye", s:read_all{ timeout = 5 }:await())
      s:write("after the server's end"):await()
      s:shutdown():await()
      assert.equal("after the server's end", tide.timeout(got, 5):await())
    end))

    it("listens and accepts one TLS stream at a time (tls.listen)", async(function()
      local server = tls.listen(server_opts("localhost"))
      assert.is_true(server.port > 0)
      local c = tls.connect("localhost", server.port, client_opts())
      local s <close> = server:accept():await()
      assert.equal("tls", s.kind)
      local cs <close> = c:await()
      assert.same({ "127.0.0.1", server.port }, { cs:peername() })
      assert.equal("tcp", cs.transport.kind)
      assert.equal("127.0.0.1", (s:peername()))
      cs:write("ping\n"):await()
      assert.equal("ping", s:read_line{ timeout = 5 }:await())
      s:write("pong\n"):await()
      assert.equal("pong", cs:read_line{ timeout = 5 }:await())
      assert.equal(s.version, cs.version)
      assert.equal(s.cipher, cs.cipher)
      server:close()
    end))
  end)

  describe("wrap (STARTTLS)", function()
    it("upgrades a plain TCP connection after a line exchange, both sides tide", async(function()
      local server <close> = tide.tcp.serve({ port = 0 }, function(conn)
        assert.equal("STARTTLS", conn:read_line():await())
        conn:write("GO\n"):await()
        local s <close> = tls.wrap(conn, { server = true, cert = C "localhost.pem", key = C "localhost.key" }):await()
        local line = s:read_line():await()
        s:write("secure " .. line .. " " .. s.version .. "\n"):await()
      end)
      local conn = tide.tcp.connect("127.0.0.1", server.port):await()
      conn:write("STARTTLS\n"):await()
      assert.equal("GO", conn:read_line():await())
      local s <close> = tls.wrap(conn, { ca = C "ca.pem", servername = "localhost" }):await()
      assert.equal("tls", s.kind)
      s:write("hi\n"):await()
      assert.equal("secure hi TLSv1.3", s:read_line{ timeout = 5 }:await())
      assert.is_nil(s:read(5):await())
    end))

    it("takes the bytes the plain stream had already buffered (a hello sent right after the command)", async(function()
      local server <close> = tide.tcp.serve({ port = 0 }, function(conn)
        tide.sleep(0.2):await()  -- the command and the ClientHello are both buffered by now
        assert.equal("STARTTLS", conn:read_line():await())
        local s <close> = tls.wrap(conn, { server = true, cert = C "localhost.pem", key = C "localhost.key" }):await()
        s:write("secure " .. s:read_line():await() .. "\n"):await()
      end)
      local conn = tide.tcp.connect("127.0.0.1", server.port):await()
      conn:write("STARTTLS\n"):await()
      local s <close> = tls.wrap(conn, { ca = C "ca.pem", servername = "localhost" }):await()
      s:write("early\n"):await()
      assert.equal("secure early", s:read_line{ timeout = 5 }:await())
    end))

    it("runs over an in-memory stream pair, with backpressure and half-close", async(function()
      local a, b = pair()
      local sp = tls.wrap(b, { server = true, cert = C "localhost.pem", key = C "localhost.key", alpn = { "x" } })
      local cp = tls.wrap(a, { ca = C "ca.pem", servername = "localhost", alpn = { "x" } })
      local c, s = cp:await(), sp:await()
      assert.equal("x", c.alpn)
      assert.equal("x", s.alpn)
      c:write("ping\n"):await()
      assert.equal("ping", s:read_line{ timeout = 5 }:await())
      local total = 4 * 1024 * 1024
      local writer = tide.spawn(function()
        for _ = 1, total // #BLOCK do s:write(BLOCK):await() end
        s:write("end\n"):await()
      end)
      local got = c:read_exactly(total, 10):await()
      assert.equal(total, #got)
      assert.equal(BLOCK, got:sub(1, #BLOCK))
      assert.equal(BLOCK, got:sub(-#BLOCK))
      assert.equal("end", c:read_line{ timeout = 5 }:await())
      writer:await()
      c:shutdown():await()
      assert.is_nil(s:read(5):await())
      s:write("bye"):await()
      s:close()
      assert.equal("bye", c:read_all{ timeout = 5 }:await())
      c:close()
    end))

    it("never accepts a certificate for another name when no servername is given (client side, verify on)", async(function()
      local server <close> = tide.tcp.serve({ port = 0 }, function(conn)
        local ok, s = pcall(function()
          return tls.wrap(conn, { server = true, cert = C "wrong.pem", key = C "wrong.key" }):await()
        end)
        if ok then s:write("accepted\n"):await() s:close() end
      end)
      local conn = tide.tcp.connect("127.0.0.1", server.port):await()
      -- either wrap refuses at once (no name to check) or the handshake fails
      local ok, p = pcall(tls.wrap, conn, { ca = C "ca.pem" })
      if ok then
        local ok2, _ = pcall(tide.await, p)
        assert.is_false(ok2, "a certificate for wrong.test was accepted with no name to check it against")
      end
      conn:close()
    end))

    it("rejects a failed handshake over a pair on both sides with ETLS", async(function()
      local a, b = pair()
      local sp = tls.wrap(b, { server = true, cert = C "self.pem", key = C "self.key" })
      local cp = tls.wrap(a, { ca = C "ca.pem", servername = "localhost" })
      assert_etls(rejection(cp), "self.signed certificate")
      local err = rejection(sp)
      assert.is_true(tide.is_error(err, "ETLS"), tostring(err))
    end))
  end)

  describe("edge cases", function()
    -- s_server in its interactive mode, with a client that proved the
    -- connection is up (s_server prints what it receives).
    local function interactive(...)
      local p, port = s_server("localhost", ...)
      local s = tls.connect("localhost", port, client_opts()):await()
      s:write("ready\n"):await()
      peer_line(p, "^ready$")
      return p, s
    end

    it("handle a TLS 1.3 KeyUpdate the server asks for (s_server 'K')", async(function()
      local p <close>, s = interactive()
      local _ <close> = s
      p.stdin:write("K\n"):await()
      tide.sleep(0.2):await()
      p.stdin:write("after\n"):await()
      assert.equal("after", s:read_line{ timeout = 5 }:await())
      s:write("mine\n"):await()
      peer_line(p, "^mine$")
      p.stdin:write("k\n"):await()  -- s_server takes a command only alone in a read
      tide.sleep(0.2):await()
      p.stdin:write("again\n"):await()
      assert.equal("again", s:read_line{ timeout = 5 }:await())
      s:write("more\n"):await()
      peer_line(p, "^more$")
    end))

    it("renegotiate when a TLS 1.2 server asks (s_server 'r'), or fail with ETLS, never stall", async(function()
      local p <close>, s = interactive("-tls1_2")
      local _ <close> = s
      assert.equal("TLSv1.2", s.version)
      p.stdin:write("r\n"):await()
      tide.sleep(0.2):await()
      p.stdin:write("after\n"):await()
      local ok, line = pcall(function() return s:read_line{ timeout = 3 }:await() end)
      if ok then
        assert.equal("after", line)
        s:write("mine\n"):await()
        peer_line(p, "^mine$")
      else
        assert.is_true(tide.is_error(line, "ETLS"), "a stalled or odd renegotiation: " .. tostring(line))
      end
    end))

    it("reject a read with ETLS when a record is corrupt (s_server 'P' sends clear text), and the error stays", async(function()
      local p <close>, s = interactive()
      local _ <close> = s
      p.stdin:write("P\n"):await()
      local err = rejection(s:read_line{ timeout = 5 })
      assert.is_true(tide.is_error(err, "ETLS"), tostring(err))
      local again = rejection(s:read{ timeout = 1 })
      assert.is_true(tide.is_error(again, "ETLS"), tostring(again))
    end))

    it("reject a server that answers in plain text with ETLS", async(function()
      local server <close> = tide.tcp.serve({ port = 0 }, function(conn)
        conn:read():await()
        conn:write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"):await()
      end)
      assert_etls(rejection(tls.connect("127.0.0.1", server.port, client_opts())), "wrong version number")
    end))

    it("reject a handshake the server cuts in the middle, at once", async(function()
      local server <close> = tide.tcp.serve({ port = 0 }, function(conn)
        conn:read():await()  -- the ClientHello, then close
      end)
      local t0 = tide.now()
      local err = rejection(tls.connect("127.0.0.1", server.port, client_opts()))
      assert.is_true(tide.is_error(err), tostring(err))
      assert.is_true(tide.now() - t0 < 2)
      assert.is_true(err.code == "ETLS" or err.code == "ECONNRESET" or err.code == "EOF", tostring(err))
    end))

    it("end a read promptly when the peer drops TCP without close_notify", async(function()
      local server <close> = tide.tcp.serve({ port = 0 }, function(conn)
        local s = tls.wrap(conn, { server = true, cert = C "localhost.pem", key = C "localhost.key" }):await()
        s:write("data\n"):await()
        tide.sleep(0.1):await()
        conn:close(0)  -- the transport, under the TLS stream
      end)
      local s <close> = tls.connect("127.0.0.1", server.port, client_opts()):await()
      assert.equal("data", s:read_line{ timeout = 5 }:await())
      local t0 = tide.now()
      local ok, v = pcall(function() return s:read{ timeout = 5 }:await() end)
      assert.is_true(tide.now() - t0 < 2, "the read waited for its timeout")
      if ok then assert.is_nil(v) else assert.is_true(tide.is_error(v) and v.code ~= "ETIMEDOUT", tostring(v)) end
    end))

    it("refuse writes after shutdown (EPIPE) and raise on use after close", async(function()
      local server <close> = line_server()
      local s = tls.connect("127.0.0.1", server.port, client_opts()):await()
      s:write("one\n"):await()
      assert.equal("echo one", s:read_line{ timeout = 5 }:await())
      s:shutdown():await()
      local ok, err = pcall(function() return s:write("x"):await() end)
      assert.is_false(ok)
      assert.equal("EPIPE", err.code)
      assert.is_nil(s:read{ timeout = 5 }:await())  -- the server saw the end and closed
      s:close():await()
      assert.is_true(s.closed)
      -- as on a TCP stream: misuse, raised at once
      assert.has_error(function() s:write("x") end)
      assert.has_error(function() s:read() end)
    end))

    it("time a read out without losing the bytes that come later", async(function()
      local server <close> = tls.serve(server_opts("localhost"), function(s)
        s:read_line():await()
        tide.sleep(0.3):await()
        s:write("late\n"):await()
      end)
      local s <close> = tls.connect("127.0.0.1", server.port, client_opts()):await()
      s:write("go\n"):await()
      local err = rejection(s:read_line{ timeout = 0.1 })
      assert.equal("ETIMEDOUT", err.code)
      assert.equal("late", s:read_line{ timeout = 3 }:await())
    end))

    it("run TLS inside TLS (wrap over a TLS stream)", async(function()
      local server <close> = tls.serve(server_opts("localhost"), function(outer)
        local inner <close> = tls.wrap(outer, { server = true, cert = C "a.pem", key = C "a.key" }):await()
        local line = inner:read_line():await()
        inner:write("inner " .. line .. "\n"):await()
      end)
      local outer <close> = tls.connect("localhost", server.port, client_opts()):await()
      local inner <close> = tls.wrap(outer, { ca = C "ca.pem", servername = "a.test" }):await()
      inner:write("x\n"):await()
      assert.equal("inner x", inner:read_line{ timeout = 5 }:await())
      assert.matches("CN=a%.test", inner:peer_certificate().subject)
      assert.matches("CN=localhost", outer:peer_certificate().subject)
    end))

    it("cancel a connect in the middle of its handshake without leaking", async(function()
      local function count_fds() return #tide.fs.readdir("/proc/self/fd"):await() end
      collectgarbage()
      collectgarbage()
      tide.sleep(0.1):await()
      local before = count_fds()
      local silent = tide.tcp.listen{ port = 0 }
      for _ = 1, 10 do
        local p = tls.connect("127.0.0.1", silent.port, client_opts())
        tide.sleep(0.02):await()
        p:cancel()
        assert.equal(tide.Cancelled, rejection(p))
      end
      silent:close():await()
      tide.sleep(0.1):await()
      collectgarbage()
      collectgarbage()
      tide.sleep(0.05):await()
      assert.equal(before, count_fds())
    end))

    it("close a server with a grace: refuse new connections, let handlers finish, then cancel the rest", async(function()
      local server = tls.serve(server_opts("localhost"), function(s)
        local line = s:read_line():await()
        s:write("still " .. line .. "\n"):await()
      end)
      local port = server.port
      local busy <close> = tls.connect("127.0.0.1", port, client_opts()):await()
      local idle <close> = tls.connect("127.0.0.1", port, client_opts()):await()
      tide.sleep(0.05):await()
      local t0 = tide.now()
      local closing = server:close(0.5)
      assert.equal("ECONNREFUSED", rejection(tide.tcp.connect("127.0.0.1", port)).code)
      busy:write("here\n"):await()
      assert.equal("still here", busy:read_line{ timeout = 5 }:await())
      assert.is_nil(busy:read{ timeout = 5 }:await())
      -- the idle one is cancelled once the grace is over
      local ok, v = pcall(function() return idle:read{ timeout = 3 }:await() end)
      if ok then assert.is_nil(v) else assert.not_equal("ETIMEDOUT", v.code, tostring(v)) end
      closing:await()
      local took = tide.now() - t0
      assert.is_true(took >= 0.45 and took < 2, "took " .. took)
      assert.is_true(server.closed)
    end))

    it("refuse TLS 1.0 and 1.1 clients by default, and TLS 1.2 with min_version TLSv1.3 (s_client)", async(function()
      local server <close> = one_line_server()
      local strict <close> = one_line_server{ min_version = "TLSv1.3" }
      local function s_client(port, ...)
        local _, _, status = run({ "openssl", "s_client", "-connect", "127.0.0.1:" .. port, "-CAfile", C "ca.pem",
          "-verify_return_error", "-ign_eof", "-quiet", ... }, { input = "hi\n" })
        return status
      end
      assert.not_equal(0, s_client(server.port, "-tls1", "-cipher", "DEFAULT@SECLEVEL=0"))
      assert.not_equal(0, s_client(server.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"))
      assert.equal(0, s_client(server.port, "-tls1_2"))
      assert.not_equal(0, s_client(strict.port, "-tls1_2"))
      assert.equal(0, s_client(strict.port, "-tls1_3"))
    end))

    it("hold a writer back while the peer does not read (backpressure), then deliver it all", async(function()
      local go = tide.promise()
      local got = tide.promise()
      local server <close> = tls.serve(server_opts("localhost"), function(s)
        go:await()
        local n = 0
        while true do
          local data = s:read():await()
          if data == nil then break end
          n = n + #data
        end
        got:resolve(n)
      end)
      local c <close> = tls.connect("127.0.0.1", server.port, client_opts()):await()
      local written, done = 0, false
      local total = 64 * 1024 * 1024
      local writer = tide.spawn(function()
        while written < total do
          c:write(BLOCK):await()
          written = written + #BLOCK
        end
        c:shutdown():await()
        done = true
      end)
      tide.sleep(0.5):await()
      assert.is_false(done)
      assert.is_true(written > 0)
      -- the kernel's buffers on both sides plus the high-water marks: a few MiB at most
      assert.is_true(written < 24 * 1024 * 1024, "written " .. written .. " bytes to a peer that reads nothing")
      assert.is_true(c.write_queued <= 4 * 1024 * 1024, "queued " .. tostring(c.write_queued))
      go:resolve()
      writer:await()
      assert.equal(total, tide.timeout(got, 20):await())
    end, 40))

    it("write a list of strings as one write, and a large string in one call", async(function()
      local server <close> = tls.serve(server_opts("localhost"), function(s)
        local data = s:read_all{ max = 32 * 1024 * 1024 }:await()
        s:write(string.format("%d %s %s", #data, data:sub(1, 6), data:sub(-6))):await()
      end)
      local c <close> = tls.connect("127.0.0.1", server.port, client_opts()):await()
      c:write{ "ab", "", "cdef" }:await()
      c:write(""):await()
      local big = string.rep("0123456789abcdef", 5 * 65536) .. "fedcba"  -- 5 MiB and a tail
      c:write(big):await()
      c:shutdown():await()
      assert.equal(string.format("%d abcdef fedcba", 6 + #big), c:read_all{ timeout = 10 }:await())
    end))

    it("reject a connect nobody listens to with ECONNREFUSED, not ETLS", async(function()
      local l = tide.tcp.listen{ port = 0 }
      local port = l.port
      l:close():await()
      local err = rejection(tls.connect("127.0.0.1", port, client_opts()))
      assert.equal("ECONNREFUSED", err.code)
    end))

    it("leak no descriptor for handshakes that failed or were cut", async(function()
      local function count_fds() return #tide.fs.readdir("/proc/self/fd"):await() end
      local server <close> = tls.serve(server_opts("localhost", { handshake_timeout = 0.3 }), function(s)
        s:write("hi\n"):await()
      end)
      collectgarbage()
      collectgarbage()
      tide.sleep(0.1):await()
      local before = count_fds()
      for _ = 1, 5 do raw_exchange(server.port, "garbage garbage garbage\r\n\r\n", 3) end
      for _ = 1, 3 do raw_exchange(server.port, nil, 3) end
      for _ = 1, 5 do
        pcall(function() tls.connect("127.0.0.1", server.port, { ca = C "other-ca.pem", timeout = 5 }):await() end)
      end
      for _ = 1, 5 do
        local s <close> = tls.connect("127.0.0.1", server.port, client_opts()):await()
        assert.equal("hi", s:read_line{ timeout = 5 }:await())
      end
      tide.sleep(0.2):await()
      collectgarbage()
      collectgarbage()
      tide.sleep(0.1):await()
      assert.equal(before, count_fds())
    end))

    it("let a script that forgot a TLS connection exit, as with TCP (a tide subprocess)", async(function()
      local _p <close>, port = py_server("--cert", C "localhost.pem", "--key", C "localhost.key")
      local script = script_file(string.format([[
        local tls = require "tide.tls"
        local s = tls.connect("localhost", %d, { ca = %q, timeout = 5 }):await()
        s:write("x"):await()
        print(s:read():await())
      ]], port, C "ca.pem"))
      local t0 = tide.now()
      local child = tide.process.spawn { tide_bin, args = { script }, stdout = "pipe" }
      local ok, code = pcall(function() return child:wait(4):await() end)
      if not ok then child:kill("SIGKILL") end
      local out = child.stdout:read_all{ timeout = 2 }:await()
      os.remove(script)
      assert.is_true(ok, "the script did not exit within 4 s: the forgotten TLS stream holds the loop")
      assert.equal(0, code)
      assert.equal("x\n", out)
      assert.is_true(tide.now() - t0 < 4, "took " .. (tide.now() - t0))
    end))

    it("run over a Unix socket (tide.pipe) as over TCP", async(function()
      local path = tmp_path(".sock")
      local _server <close> = tide.pipe.serve({ path = path }, function(conn)
        local s <close> = tls.wrap(conn, { server = true, cert = C "localhost.pem", key = C "localhost.key" }):await()
        s:write("over " .. s.kind .. " " .. s:read_line():await() .. "\n"):await()
      end)
      local conn = tide.pipe.connect(path):await()
      local s <close> = tls.wrap(conn, { ca = C "ca.pem", servername = "localhost" }):await()
      s:write("pipe\n"):await()
      assert.equal("over tls pipe", s:read_line{ timeout = 5 }:await())
    end))

    it("log a handler's error and go on serving", function()
      local script = script_file(string.format([[
        local tide = require "tide"
        local tls = require "tide.tls"
        local server = tls.serve({ port = 0, cert = %q, key = %q }, function(s)
          local line = s:read_line():await()
          if line == "boom" then error("tls handler failed on purpose") end
          s:write("ok " .. line .. "\n"):await()
        end)
        local c1 = tls.connect("localhost", server.port, { ca = %q }):await()
        c1:write("boom\n"):await()
        assert(c1:read():await() == nil)
        local c2 = tls.connect("localhost", server.port, { ca = %q }):await()
        c2:write("fine\n"):await()
        print(c2:read_line():await())
        server:close()
      ]], C "localhost.pem", C "localhost.key", C "ca.pem", C "ca.pem"))
      local out, err, status = run_tide(script)
      os.remove(script)
      assert.equal(0, status, err)
      assert.equal("ok fine\n", out)
      assert.matches("tls handler failed on purpose", err)
      assert.matches("stack traceback:", err)
    end)
  end)

  describe("streams", function()
    it("give the peer's certificate fields", async(function()
      local fingerprint = x509("localhost", "-fingerprint -sha256")
      local serial = x509("localhost", "-serial")
      local _p <close>, port = s_server("localhost", "-rev")
      local s <close> = tls.connect("localhost", port, client_opts()):await()
      local cert = s:peer_certificate()
      assert.matches("CN=localhost", cert.subject)
      assert.matches("O=tide tests", cert.subject)
      assert.matches("CN=tide test CA", cert.issuer)
      assert.same({ "DNS:localhost", "IP Address:127.0.0.1" }, cert.san)
      assert.equal(fingerprint, cert.fingerprint)
      assert.matches("^%x%x:", cert.fingerprint)
      local function norm(x) return (x:upper():gsub("[^%x]", ""):gsub("^0+", "")) end
      assert.equal(norm(serial), norm(cert.serial))
      local now = os.time()
      assert.is_true(cert.not_before <= now and now < cert.not_after)
      assert.equal(825 * 86400, cert.not_after - cert.not_before)
      -- the server side sees no client certificate
      local server <close> = tls.serve(server_opts("localhost"), function(conn)
        conn:write(tostring(conn:peer_certificate()) .. "\n"):await()
      end)
      local c <close> = tls.connect("localhost", server.port, client_opts()):await()
      assert.equal("nil", c:read_line{ timeout = 5 }:await())
    end))

    it("refuse bad arguments of connect, wrap and serve at once, as tcp.connect does", async(function()
      local returned = {}
      local function raises(what, f)
        local ok, r = pcall(f)
        if ok then
          returned[#returned + 1] = what
          if r ~= nil then pcall(tide.await, r) end  -- a promise: settle it quietly
        end
      end
      raises("connect without a port", function() return tls.connect("127.0.0.1") end)
      raises("connect to port 0", function() return tls.connect("127.0.0.1", 0) end)
      raises("connect to port 70000", function() return tls.connect("127.0.0.1", 70000) end)
      raises("connect with timeout -1", function() return tls.connect("127.0.0.1", 443, { timeout = -1 }) end)
      raises("connect with alpn a string", function() return tls.connect("127.0.0.1", 443, { alpn = "h2" }) end)
      raises("wrap of nil", function() return tls.wrap(nil, {}) end)
      raises("serve without cert", function() return tls.serve({ port = 0 }, function() end) end)
      raises("serve without handler", function() return tls.serve(server_opts("localhost")) end)
      raises("listen without cert", function() return tls.listen{ port = 0 } end)
      assert.same({}, returned, "returned instead of raising at once: " .. table.concat(returned, ", "))
    end))

    it("refuse the server side of wrap without a certificate at once", async(function()
      local a, b = pair()
      local ok, r = pcall(tls.wrap, b, { server = true })
      if ok then
        pcall(tide.await, tide.timeout(r, 1))
        a:close()
        b:close()
        error("tls.wrap{server = true} without cert/key returned a promise (it waits for its handshake timeout)", 0)
      end
      a:close()
      b:close()
    end))

    it("end a read pending in another task when the stream is closed", async(function()
      local server <close> = line_server()
      local s = tls.connect("127.0.0.1", server.port, client_opts()):await()
      local reader = tide.spawn(function() return s:read():await() end)
      tide.sleep(0.05):await()
      s:close()
      assert.is_nil(tide.timeout(reader, 2):await())
    end))

    it("refuse bad options at once", function()
      assert.has_error(function() tls.context{ cert = "/nonexistent.pem", key = "/nonexistent.key" } end)
      assert.has_error(function() tls.context{ cert = C "localhost.pem", key = C "b.key" } end)  -- key mismatch
      assert.has_error(function() tls.context{ min_version = "TLSv9" } end)
      assert.has_error(function() tls.context{ ciphers = "NO-SUCH-CIPHER" } end)
      assert.has_error(function() tls.context{ verify_client = "sometimes" } end)
    end)
  end)
end)
