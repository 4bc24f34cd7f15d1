-- tide.http.router: a small router for tide.http servers.
--
-- Owns the dispatch of a request to a handler by method and path pattern.
-- A pattern is a path of segments: a literal segment matches itself, a
-- ":name" segment matches any one non-empty segment and puts it (percent-
-- decoded) in req.params.name, and a last "*name" segment matches the rest
-- of the path (maybe empty). Routes are tried in the order they were added.
-- A path no route matches is answered 404; a path that matches with other
-- methods only is answered 405 with Allow. Both go through res:error, so
-- the server's error_body option gives them the API's format. HEAD is
-- served by the GET route when there is no HEAD route.
--
--   local r = http.router()
--   r:get("/users/:id", function(req, res) res:json({ id = req.params.id }) end)
--   http.serve(8080, r)   -- a router is a handler

local h1 = require "tide.http.h1"
local decode = h1.decode_uri_component

local type, error, setmetatable, tostring = type, error, setmetatable, tostring
local sub, find, gmatch = string.sub, string.find, string.gmatch
local concat, sort = table.concat, table.sort

local METHOD = "^[!#$%%&'*+%-.^_`|~0-9A-Za-z]+$"

local Router = {}
local router_mt = {
  __name = "tide.http.router",
  __index = Router,
  __call = function(self, req, res) return self:dispatch(req, res) end,
  __tostring = function(self) return "tide.http.router: " .. #self._routes .. " routes" end,
}

-- Splits a pattern into its segments: { kind, text } with kind "lit",
-- "param" or "rest".
local function compile(pattern)
  if type(pattern) ~= "string" or sub(pattern, 1, 1) ~= "/" then
    error("router: a pattern is a string that starts with '/', got " .. tostring(pattern), 4)
  end
  local segs = {}
  local n = 0
  for seg in gmatch(sub(pattern, 2), "[^/]*") do
    n = n + 1
    local c = sub(seg, 1, 1)
    if c == ":" and #seg > 1 then
      segs[n] = { "param", sub(seg, 2) }
    elseif c == "*" then
      segs[n] = { "rest", sub(seg, 2) }
    else
      segs[n] = { "lit", seg }
    end
  end
  for i = 1, n - 1 do
    if segs[i][1] == "rest" then error("router: '*' must be the last segment of " .. pattern, 4) end
  end
  return segs
end

-- Matches `path` against compiled segments; returns the params or nil.
local function match_path(segs, path)
  local params, pos, len = {}, 2, #path
  local n = #segs
  for i = 1, n do
    local kind, text = segs[i][1], segs[i][2]
    if kind == "rest" then
      if text ~= "" then
        params[text] = decode(sub(path, pos)) or sub(path, pos)
      end
      return params
    end
    if pos > len + 1 then return nil end
    local e = find(path, "/", pos, true)
    local seg = sub(path, pos, (e or len + 1) - 1)
    if kind == "lit" then
      if seg ~= text then return nil end
    else
      if seg == "" then return nil end
      local v = decode(seg)
      if not v then return nil end
      params[text] = v
    end
    if e then
      pos = e + 1
      if i == n then return nil end  -- more path than pattern
    else
      pos = len + 2
      if i < n and segs[i + 1][1] ~= "rest" then return nil end
    end
  end
  return params
end

--- r:add(method, pattern, handler): adds a route; `method` is a method
-- name ("GET") or "*" for any. Returns r.
function Router:add(method, pattern, handler)
  if type(method) ~= "string" or (method ~= "*" and not find(method, METHOD)) then
    error("router:add: method must be a method name or '*'", 2)
  end
  if type(handler) ~= "function" then error("router:add: handler must be a function", 2) end
  local routes = self._routes
  routes[#routes + 1] = { method = method, segs = compile(pattern), handler = handler,
    pattern = pattern }
  return self
end

for _, m in ipairs({ "get", "post", "put", "patch", "delete", "head", "options" }) do
  local M = m:upper()
  Router[m] = function(self, pattern, handler)
    if type(handler) ~= "function" then error("router:" .. m .. ": handler must be a function", 2) end
    local routes = self._routes
    routes[#routes + 1] = { method = M, segs = compile(pattern), handler = handler, pattern = pattern }
    return self
  end
end

--- r:dispatch(req, res): runs the handler of the first route that matches,
-- with req.params set; otherwise answers 404 or 405 (with Allow).
function Router:dispatch(req, res)
  local path, method = req.path, req.method
  local allowed, get_match
  if type(path) == "string" and sub(path, 1, 1) == "/" then
    for _, r in ipairs(self._routes) do
      local params = match_path(r.segs, path)
      if params then
        if r.method == method or r.method == "*" then
          req.params = params
          return r.handler(req, res)
        end
        if method == "HEAD" and r.method == "GET" and not get_match then
          get_match = { r, params }
        end
        allowed = allowed or {}
        allowed[r.method] = true
      end
    end
  end
  if get_match then
    req.params = get_match[2]
    return get_match[1].handler(req, res)
  end
  if not allowed then return res:error(404) end
  if allowed.GET then allowed.HEAD = true end
  local list = {}
  for m in pairs(allowed) do list[#list + 1] = m end
  sort(list)
  res:set_header("Allow", concat(list, ", "))
  return res:error(405)
end

--- http.router() -> a new router, itself a handler for http.serve.
local function new()
  return setmetatable({ _routes = {} }, router_mt)
end

return { new = new, methods = Router, mt = router_mt }
