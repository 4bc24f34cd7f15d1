-- examples/http_json_api.lua — a small JSON API on http.router: a todo list
-- kept in memory. Every answer is JSON, errors included (error_body), and
-- malformed JSON in a request is a 400.
--   GET    /todos          the list
--   POST   /todos          {"title": "..."} -> 201 and the new todo
--   GET    /todos/:id      one todo (404 when there is none)
--   DELETE /todos/:id      removes it (204)
-- Prints "listening on 127.0.0.1:PORT" once it accepts connections.
--
-- Usage: tide examples/http_json_api.lua [PORT]    (PORT 0 or none: any free port)
--   curl -s -d '{"title": "milk"}' http://127.0.0.1:PORT/todos
local http = require "tide.http"
local cjson = require "cjson"

local todos, order, next_id = {}, {}, 1

local api = http.router()

api:get("/todos", function(_, res)
  local list = {}
  for _, id in ipairs(order) do
    if todos[id] then list[#list + 1] = todos[id] end
  end
  if #list == 0 then  -- lua-cjson 2.1 encodes an empty table as {}
    res:set_header("Content-Type", "application/json")
    return res:finish("[]")
  end
  res:json(list)
end)

api:post("/todos", function(req, res)
  local body = req:json():await()
  if type(body) ~= "table" or type(body.title) ~= "string" then
    return res:error(422, "a todo needs a title")
  end
  local id = tostring(next_id)
  next_id = next_id + 1
  todos[id] = { id = id, title = body.title }
  order[#order + 1] = id
  res:json(todos[id], 201)
end)

api:get("/todos/:id", function(req, res)
  local todo = todos[req.params.id]
  if not todo then return res:error(404, "no todo " .. req.params.id) end
  res:json(todo)
end)

api:delete("/todos/:id", function(req, res)
  if not todos[req.params.id] then return res:error(404, "no todo " .. req.params.id) end
  todos[req.params.id] = nil
  res.status = 204
  res:finish()
end)

local server = http.serve({
  host = "127.0.0.1",
  port = tonumber(arg[1]) or 0,
  error_body = function(status, message)
    return cjson.encode({ status = status, error = message or cjson.null })
  end,
}, api)

io.stdout:write("listening on 127.0.0.1:", server.port, "\n")
io.stdout:flush()
