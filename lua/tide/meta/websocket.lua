---@meta tide.websocket
-- Annotations of tide.websocket (docs/websocket.md) for lua-language-server.
-- Never required at run time.

---@class tide.websocket.Options
---@field protocols string[]? offered (client) or accepted (server)
---@field headers tide.http.HeadersInit? client: extra request fields
---@field path string? `serve`: the path (any when nil)
---@field host string? `serve`
---@field port integer? `serve`
---@field tls table? `connect` to wss://: tide.tls options
---@field max_frame integer?
---@field max_message integer?
---@field handshake_timeout number?
---@field close_timeout number?
---@field ping_interval number|false?
---@field ping_timeout number?
---@field compression boolean|table?

---A WebSocket connection.
---@class tide.websocket.Conn
---@field state "open"|"closing"|"closed"
---@field close_code integer?
---@field close_reason string?
---@field protocol string?
---@field extensions string?
---@field stream tide.Stream
local Conn = {}
---Promise of `data, kind` of the next message; `nil` once closed.
---@param timeout? number
---@return tide.Promise<string?>
function Conn:receive(timeout) end
---Sends one message (text unless `binary = true`).
---@param data string
---@param opts? "text"|"binary"|{binary: boolean?, timeout: number?}
---@return tide.Promise<nil>
function Conn:send(data, opts) end
---Promise of the pong's payload.
---@param data? string
---@return tide.Promise<string>
function Conn:ping(data) end
---Starts the closing handshake; promise of the code and reason.
---@param code? integer
---@param reason? string
---@return tide.Promise<integer>
function Conn:close(code, reason) end

---@class tide.websocket
---@field DEFAULTS table
---@field Conn table the methods of connections
---@field methods table
---@field mt table
local websocket = {}
---Whether a tide.http request asks for a WebSocket.
---@param req tide.http.Request
---@return boolean
function websocket.is_upgrade(req) end
---Answers the opening handshake; returns the connection.
---@param req tide.http.Request
---@param res tide.http.Response
---@param opts? tide.websocket.Options
---@return tide.websocket.Conn?
function websocket.accept(req, res, opts) end
---An HTTP server accepting WebSockets, running `handler(ws, req)` per connection.
---@param opts tide.websocket.Options
---@param handler async fun(ws: tide.websocket.Conn, req: tide.http.Request)
---@return tide.http.Server
function websocket.serve(opts, handler) end
---Promise of a connection to `ws://...` or `wss://...`.
---@param url string
---@param opts? tide.websocket.Options
---@return tide.Promise<tide.websocket.Conn>
function websocket.connect(url, opts) end
---A connection over an already upgraded stream.
---@param stream tide.Stream
---@param opts? table
---@param client? boolean
---@param agreed? table
---@return tide.websocket.Conn
function websocket.new(stream, opts, client, agreed) end
---The incomplete UTF-8 tail of `s` (`""` when none), or nil when `s` is invalid.
---@param s string
---@return string?
function websocket.utf8_prefix(s) end

return websocket
