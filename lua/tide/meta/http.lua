---@meta tide.http
-- Annotations of tide.http and its documented parts (docs/http.md) for
-- lua-language-server. Never required at run time.

---Case-insensitive, ordered header fields.
---@class tide.http.Headers
local Headers = {}
---First value, or nil.
---@param name string
---@return string?
function Headers:get(name) end
---Every value, in order.
---@param name string
---@return string[]
function Headers:get_all(name) end
---Every value joined with `", "`, or nil.
---@param name string
---@return string?
function Headers:get_joined(name) end
---@param name string
---@return boolean
function Headers:has(name) end
---@param name string
---@param value string
---@return self
function Headers:append(name, value) end
---@param name string
---@param value string
---@return self
function Headers:set(name, value) end
---Removes every field of that name; returns the count.
---@param name string
---@return integer
function Headers:remove(name) end
---Iterator of `name, value` in order (also `pairs(h)`).
---@return fun(): string?, string?
function Headers:each() end
---@return integer
function Headers:len() end
---@return tide.http.Headers
function Headers:clone() end
---Internal: appends without checks.
---@private
function Headers:_add(name, value) end
---Internal: how many fields have the lowercased name.
---@private
function Headers:_count(lname) end
---Internal: the first value of the lowercased name.
---@private
function Headers:_first(lname) end
---Internal: serializes the fields into buffer `buf` from position `n`.
---@private
function Headers:_put(buf, n) end

---@alias tide.http.HeadersInit tide.http.Headers|table<string, string|string[]>|{[1]: string, [2]: string}[]

---A request, as a server's handler gets it.
---@class tide.http.Request
---@field method string
---@field target string
---@field path string not decoded
---@field query table<string, string>
---@field raw_query string?
---@field version "1.1"|"1.0"
---@field headers tide.http.Headers
---@field body_kind "none"|"length"|"chunked"
---@field content_length integer?
---@field trailers tide.http.Headers?
---@field authority string?
local Request = {}
---Promise of the whole body (`""` without one).
---@param max? integer
---@return tide.Promise<string>
function Request:body(max) end
---Promise of the next piece of the body, `nil` at its end.
---@param max? integer
---@return tide.Promise<string?>
function Request:read(max) end
---Iterator of the body's pieces, inside the handler's task.
---@param max? integer
---@return fun(): string?
function Request:chunks(max) end
---Promise of the body decoded as JSON (malformed: EPROTO with status 400).
---@param max? integer
---@return tide.Promise<any>
function Request:json(max) end
---Answers `101 Switching Protocols`; returns the connection's stream.
---@param fields? tide.http.HeadersInit
---@return tide.Stream
function Request:upgrade(fields) end

---The response a server's handler fills.
---@class tide.http.Response
---@field status integer
---@field reason string?
local Response = {}
---@param name string
---@param value string
function Response:set_header(name, value) end
---@param name string
---@param value string
function Response:add_header(name, value) end
---@param name string
---@return string?
function Response:get_header(name) end
---@param name string
function Response:remove_header(name) end
---Sends the whole response.
---@param body? string
---@return tide.Promise<nil>
function Response:finish(body) end
---Sends a piece of the body (the first call sends the head).
---@param data string
---@return tide.Promise<nil>
function Response:write(data) end
---@return boolean
function Response:started() end
---Sends `value` as JSON (application/json) and ends the response.
---@param value any
---@param status? integer
---@return tide.Promise<nil>
function Response:json(value, status) end
---Answers with the server's error format (the error_body option) and ends the response.
---@param status integer 400..599
---@param message? string
---@return tide.Promise<nil>
function Response:error(status, message) end

---@class tide.http.Server
---@field host string
---@field port integer
---@field connections integer
---@field requests integer
---@field errors integer
local HttpServer = {}
---Stops accepting; requests in flight get `seconds` to finish.
---@param seconds? number
---@return tide.Promise<nil>
function HttpServer:close(seconds) end

---@class tide.http.ServeOptions
---@field host string?
---@field port integer?
---@field tls table? tide.tls server options (HTTPS)
---@field max_request_line integer?
---@field max_header_size integer?
---@field max_headers integer?
---@field max_body number?
---@field header_timeout number?
---@field idle_timeout number?
---@field body_timeout number?
---@field send_timeout number?

---@class tide.http.RequestOptions
---@field url string
---@field method string?
---@field headers tide.http.HeadersInit?
---@field body (string|fun(): string?)?
---@field stream boolean?
---@field redirects integer?
---@field connect_timeout number?
---@field timeout number?
---@field max_body integer?
---@field max_header_size integer?
---@field max_headers integer?
---@field tls table?

---What a client gets.
---@class tide.http.ClientResponse
---@field status integer
---@field reason string
---@field version string
---@field headers tide.http.Headers
---@field body string? `nil` in stream mode
---@field trailers tide.http.Headers?
---@field url string
---@field redirects integer
---@field done tide.Promise<integer>? stream mode
---@field stream tide.Stream? a 101 answer: the connection
local ClientResponse = {}
---(stream mode) Promise of the next piece of the body.
---@return tide.Promise<string?>
function ClientResponse:read() end
---(stream mode) Iterator of the pieces, inside a task.
---@return fun(): string?
function ClientResponse:chunks() end
---(stream mode) Drops the rest of the body and the connection.
function ClientResponse:close() end
---The body decoded as JSON (malformed: EPROTO).
---@return any
function ClientResponse:json() end

---A router: itself a handler, `router(req, res)`.
---@class tide.http.Router
local Router = {}
---Adds a route: `method` (or "*"), a path pattern (`:name`, a last `*name`).
---@param method string
---@param pattern string
---@param handler async fun(req: tide.http.Request, res: tide.http.Response)
---@return tide.http.Router
function Router:add(method, pattern, handler) end
---Answers the request with the first route that matches (404 / 405 with Allow otherwise).
---@param req tide.http.Request
---@param res tide.http.Response
function Router:dispatch(req, res) end
---@param pattern string
---@param handler async fun(req: tide.http.Request, res: tide.http.Response)
---@return tide.http.Router
function Router:get(pattern, handler) end
---@return tide.http.Router
function Router:post(pattern, handler) end
---@return tide.http.Router
function Router:put(pattern, handler) end
---@return tide.http.Router
function Router:patch(pattern, handler) end
---@return tide.http.Router
function Router:delete(pattern, handler) end
---@return tide.http.Router
function Router:head(pattern, handler) end
---@return tide.http.Router
function Router:options(pattern, handler) end

---@class tide.http
---@field h1 tide.http.h1
---@field headers tide.http.headers
---@field server tide.http.server
---@field client tide.http.client
local http = {}

---Listens and returns the server; `handler(req, res)` runs in a task per request.
---@param opts tide.http.ServeOptions|integer
---@param handler async fun(req: tide.http.Request, res: tide.http.Response)
---@return tide.http.Server
function http.serve(opts, handler) end
---@param opts tide.http.RequestOptions
---@return tide.Promise<tide.http.ClientResponse>
function http.request(opts) end
---@param url string
---@param opts? tide.http.RequestOptions without url
---@return tide.Promise<tide.http.ClientResponse>
function http.get(url, opts) end
---Closes every idle keep-alive connection of the client.
function http.close_idle() end
---A new router (method + path patterns with parameters).
---@return tide.http.Router
function http.router() end

---@class tide.http.headers
---@field methods table
---@field mt table
---@field TCHAR string a token character class, as a Lua pattern item
---@field TOKEN string the pattern of a whole token
---@field fields table functions on an index-free field list (a server response's fields): set, add, get, remove, clear, lines
local headers = {}
---@param init? tide.http.HeadersInit
---@return tide.http.Headers
function headers.new(init) end
---Raises (at `level`) unless `name` is a token.
---@param name string
---@param level? integer
function headers.check_name(name, level) end
---Returns the value as a string; raises (at `level`) on CR, LF or NUL.
---@param name string
---@param value string|number
---@param level? integer
---@return string
function headers.check_value(name, value, level) end
---Headers from what tide.fields returned.
---@param t table
---@param n integer
---@param index table
---@return tide.http.Headers
function headers.from_fields(t, n, index) end

---@class tide.http.server
---@field DEFAULTS table
---@field Request table
---@field Response table
---@field Server table
local server = {}
---@param opts tide.http.ServeOptions|integer
---@param handler async fun(req: tide.http.Request, res: tide.http.Response)
---@return tide.http.Server
function server.serve(opts, handler) end
---Serves one connected stream in the running task; returns the number of requests.
---@param stream tide.Stream
---@param opts tide.http.ServeOptions
---@param handler async fun(req: tide.http.Request, res: tide.http.Response)
---@return integer
function server.serve_stream(stream, opts, handler) end

---@class tide.http.client
---@field DEFAULTS table
---@field Response table
local client = {}
---@param opts tide.http.RequestOptions
---@return tide.Promise<tide.http.ClientResponse>
function client.request(opts) end
---@param url string
---@param opts? tide.http.RequestOptions
---@return tide.Promise<tide.http.ClientResponse>
function client.get(url, opts) end
function client.close_idle() end
---The absolute URL a `Location` value points to from `base`.
---@param base string
---@param location string
---@return string?
function client.resolve_location(base, location) end

---@class tide.http.Head
---@field method string?
---@field target string?
---@field status integer?
---@field reason string?
---@field version string
---@field headers tide.http.Headers
---@field path string?
---@field query string?
---@field authority string?
---@field body_kind "none"|"length"|"chunked"|"close"
---@field content_length integer?
---@field transfer_codings string[]? response heads: the codings, in the order applied

---@class tide.http.Reader
---@field read_line fun(max: integer): string|false|nil
---@field read_exactly fun(n: integer): string?

---The HTTP/1.1 codec, free of sockets.
---@class tide.http.h1
---@field last_chunk string `"0\r\n\r\n"`
---@field reasons table<integer, string>
local h1 = {}
---@param block string the head without its empty line
---@param limits? {max_target: integer?, max_headers: integer?, max_line: integer?}
---@param into? table
---@return tide.http.Head head raises an EPROTO error object (with `status`) on a malformed head
function h1.parse_request_head(block, limits, into) end
---@param block string
---@param limits? table
---@param request_method? string
---@return tide.http.Head head raises an EPROTO error object (status 502) on a malformed head
function h1.parse_response_head(block, limits, request_method) end
---@param method string
---@param target string
---@param hdrs tide.http.Headers
---@return string
function h1.request_head(method, target, hdrs) end
---@param status integer
---@param reason? string
---@param hdrs tide.http.Headers
---@param version? string
---@return string
function h1.response_head(status, reason, hdrs, version) end
---@param data string
---@return string
function h1.chunk(data) end
---@param trailers tide.http.Headers
---@return string
function h1.last_chunk_with(trailers) end
---Iterator of the pieces of a chunked body.
---@param reader tide.http.Reader
---@param limits? table
---@param trailers? tide.http.Headers
---@return fun(): string?
function h1.chunks(reader, limits, trailers) end
---The whole chunked body (or its size, with `consume`) and its trailers.
---@param reader tide.http.Reader
---@param limits? table
---@param consume? fun(data: string)
---@return string|integer
---@return tide.http.Headers
function h1.read_chunked(reader, limits, consume) end
---@param url string
---@return {scheme: string, host: string, port: integer, path: string, query: string?, target: string, authority: string, userinfo: string?}?
---@return string? message
function h1.parse_url(url) end
---@param qs string?
---@return table<string, string>?
---@return string? message
function h1.parse_query(qs) end
---@param s string
---@return string?
---@return string? message
function h1.decode_uri_component(s) end
---@param s string
---@return string
function h1.encode_uri_component(s) end

return http
