-- pipeline.lua — wrk script: each write sends DEPTH requests for "/" at
-- once (HTTP/1.1 pipelining), as TechEmpower's plaintext test does.
-- Usage: wrk -s pipeline.lua URL -- DEPTH   (default 16)
local depth

function init(args)
  depth = tonumber(args[1]) or 16
  local r = {}
  for i = 1, depth do r[i] = wrk.format(nil, "/") end
  req = table.concat(r)
end

function request()
  return req
end
