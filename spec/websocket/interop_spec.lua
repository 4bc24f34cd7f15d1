-- Interoperability of tide.websocket with independent implementations:
-- Debian's python3-websockets and the npm `ws` package (installed by this
-- spec into the build folder), each as a client of tide's server and as a
-- server for tide's client; payloads of 0, 125, 126, 65535, 65536 bytes
-- and 16 MiB, text and binary, whole and fragmented, checked by SHA-256
-- (peers) or byte for byte (tide); pings and close codes; compression on
-- and off.
local tide = require "tide"
local websocket = require "tide.websocket"

local SIZES = { 0, 125, 126, 65535, 65536, 16 * 1024 * 1024 }
local PEERS = "spec/websocket/peers/"
local build = os.getenv("TIDE_BUILD") or "build"

local function text_of(n) return ("\u{20ac}"):rep(n // 3) .. ("a"):rep(n % 3) end
local function binary_of(n)
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  all = table.concat(all)
  return all:rep(n // 256) .. ("\0"):rep(n % 256)
end

-- An echo server in this process.
local function echo_server(deflate)
  local compression = deflate
  if deflate == "params" then compression = { server_max_window_bits = 12 } end
  return websocket.serve({ port = 0, compression = compression }, function(ws)
    while true do
      local data, kind = ws:receive():await()
      if not data then break end
      ws:send(data, { binary = kind == "binary" }):await()
    end
  end)
end

-- Runs a peer client against `url`; checks it passed every case.
local function peer_client(cmd, url, deflate)
  local argv = {}
  for w in cmd:gmatch("%S+") do argv[#argv + 1] = w end
  argv[#argv + 1] = "client"
  argv[#argv + 1] = url
  if deflate then argv[#argv + 1] = deflate == true and "deflate" or deflate end
  local r = tide.process.exec{ argv[1], args = { table.unpack(argv, 2) },
    env = { NODE_PATH = build .. "/npm-ws/node_modules", LD_PRELOAD = false } }:await()
  local oks = select(2, r.stdout:gsub("\nok ", "")) + (r.stdout:sub(1, 3) == "ok " and 1 or 0)
  assert.are.equal(0, r.status, r.stdout .. r.stderr)
  assert.are.equal(#SIZES * 4 + 2, oks, r.stdout)
  assert.truthy(r.stdout:find("ok close 4001", 1, true), r.stdout)
end

-- Starts a peer echo server; returns the process and its port.
local function peer_server(cmd, deflate)
  local argv = {}
  for w in cmd:gmatch("%S+") do argv[#argv + 1] = w end
  argv[#argv + 1] = "server"
  if deflate then argv[#argv + 1] = deflate == true and "deflate" or deflate end
  local p = tide.process.spawn{ argv[1], args = { table.unpack(argv, 2) }, stdin = "pipe",
    stdout = "pipe", env = { NODE_PATH = build .. "/npm-ws/node_modules", LD_PRELOAD = false } }
  local line = p.stdout:read_line():await()
  return p, assert(tonumber(line), "peer server said: " .. tostring(line))
end

-- tide's client cases against an echo server at `port`.
local function tide_client(port, deflate)
  local compression = deflate
  if deflate == "params" then
    compression = { server_no_context_takeover = true, client_no_context_takeover = true,
      server_max_window_bits = 11, client_max_window_bits = 10 }
  end
  local url = "ws://127.0.0.1:" .. port .. "/"
  local ws = websocket.connect(url, { compression = compression }):await()
  if compression then assert.truthy(ws.deflater, "permessage-deflate agreed") end
  for _, size in ipairs(SIZES) do
    for _, binary in ipairs{ false, true } do
      for _, frag in ipairs{ false, true } do
        local data = binary and binary_of(size) or text_of(size)
        -- Fragments cut text inside its characters.
        ws:send(data, { binary = binary, fragment = frag and size > 2 and size // 3 + 1 or nil }):await()
        local back, kind = ws:receive():await()
        assert.are.equal(binary and "binary" or "text", kind)
        assert.are.equal(#data, #back)
        assert.is_true(back == data, size .. " bytes came back changed")
      end
    end
  end
  assert.are.equal("tide-ping", ws:ping("tide-ping"):await())
  local code, _ = ws:close(4001, "tide done"):await()
  assert.are.equal(4001, code)
  assert.are.equal(4001, ws.close_code)
  -- The server closes.
  ws = websocket.connect(url, { compression = compression }):await()
  ws:send("close-me 4002"):await()
  assert.is_nil(ws:receive():await())
  assert.are.equal(4002, ws.close_code)
  assert.are.equal("asked", ws.close_reason)
end

local function suite(name, cmd, available, modes)
  describe(name, function()
    for _, deflate in ipairs(modes or { false, true }) do
      local label = deflate == "params" and " (permessage-deflate, no context takeover, small windows)"
        or deflate and " (permessage-deflate)" or " (no compression)"
      it("as a client of tide's server" .. label, async(function()
        if not available() then return pending(name .. " is not available") end
        local server = echo_server(deflate)
        peer_client(cmd, "ws://127.0.0.1:" .. server.port .. "/", deflate)
        server:close():await()
      end, 120))
      it("as a server for tide's client" .. label, async(function()
        if not available() then return pending(name .. " is not available") end
        local p, port = peer_server(cmd, deflate)
        local ok, err = pcall(tide_client, port, deflate)
        p.stdin:close()
        p:kill()
        p:wait():await()
        if not ok then error(err, 0) end
      end, 120))
    end
  end)
end

describe("tide.websocket interop", function()
  suite("python3-websockets", "/usr/bin/python3 " .. PEERS .. "py_peer.py", function()
    return os.execute("env -u LD_PRELOAD /usr/bin/python3 -c 'import websockets' 2>/dev/null") == true
  end, { false, true, "params" })

  local node_ok
  suite("npm ws", "node " .. PEERS .. "node_peer.js", function()
    if node_ok == nil then
      node_ok = os.execute("test -d " .. build .. "/npm-ws/node_modules/ws") == true
      if not node_ok and os.execute("command -v npm >/dev/null") == true then
        -- A sanitizer build preloads its runtime: not for node.
        node_ok = os.execute("mkdir -p " .. build .. "/npm-ws && cd " .. build ..
          "/npm-ws && timeout 120 env -u LD_PRELOAD npm install --no-audit --no-fund --silent ws@8 >/dev/null 2>&1") == true
      end
    end
    return node_ok
  end, { false, true, "params" })
end)
