---@meta tide.redis
-- Annotations of tide.redis and tide.redis.resp (docs/redis.md) for
-- lua-language-server. Never required at run time.

---@class tide.redis.Options
---@field url string?
---@field host string?
---@field port integer?
---@field username string?
---@field password string?
---@field db integer?
---@field name string?
---@field tls boolean|table?
---@field transport (fun(): tide.Stream|tide.Promise<tide.Stream>)?
---@field connect_timeout number?
---@field timeout number?
---@field protocol 2|3?
---@field reconnect false|{attempts: integer?, delay: number?, max_delay: number?}?
---@field max_bulk integer?
---@field max_array integer?
---@field max_depth integer?
---@field max_line integer?

---A client. Any other method is a command: `r:get(k)` is
---`r:call("GET", k)`, `r:client_setname(x)` is `r:call("CLIENT", "SETNAME", x)`.
---@class tide.redis.Client
---@field reconnects integer
---@field [string] fun(self: tide.redis.Client, ...: any): tide.Promise<any>
local Client = {}
---Promise of the reply of the command.
---@param name string
---@param ... any
---@return tide.Promise<any>
function Client:call(name, ...) end
---Promise of the replies of the commands `fn(p)` issued, `{n = count, ...}`.
---@param fn fun(p: tide.redis.Client)
---@return tide.Promise<table>
function Client:pipeline(fn) end
---The same in MULTI ... EXEC; `nil` when a WATCHed key changed.
---@param fn fun(p: tide.redis.Client)
---@return tide.Promise<table?>
function Client:transaction(fn) end
---Promise of another client with the same options.
---@return tide.Promise<tide.redis.Client>
function Client:duplicate() end
---Closes at once (also `<close>`).
function Client:close() end
---Sends QUIT and closes once the server answered.
---@return tide.Promise<any>
function Client:quit() end
---@return "ready"|"connecting"|"down"|"broken"|"closed"
function Client:status() end
---@param ... string channels
---@return tide.Promise<tide.redis.Subscription>
function Client:subscribe(...) end
---@param ... string patterns
---@return tide.Promise<tide.redis.Subscription>
function Client:psubscribe(...) end

---@class tide.redis.Message
---@field kind "message"|"pmessage"
---@field channel string
---@field pattern string?
---@field data string

---@class tide.redis.Subscription
local Subscription = {}
---Promise of the next message; `nil` once the subscription ended.
---@param timeout? number
---@return tide.Promise<tide.redis.Message?>
function Subscription:next(timeout) end
---`for msg in sub:messages() do ... end`
---@return fun(): tide.redis.Message?
function Subscription:messages() end
---@param ... string
---@return tide.Promise<any>
function Subscription:subscribe(...) end
---@param ... string
---@return tide.Promise<any>
function Subscription:psubscribe(...) end
---@param ... string none: all of them
---@return tide.Promise<any>
function Subscription:unsubscribe(...) end
---@param ... string none: all of them
---@return tide.Promise<any>
function Subscription:punsubscribe(...) end
function Subscription:close() end

---@class tide.redis.resp.Parser
local Parser = {}
---@param bytes string
function Parser:feed(bytes) end
---`true, reply` (`true, push, true` for a RESP3 push), or `false`.
---@return boolean
---@return any
---@return boolean?
function Parser:next() end
---For servers: `true, {words...}`, or `false`.
---@return boolean
---@return string[]?
function Parser:next_command() end
---The plain replies parsed ahead, `q[i..n]` (no error, no push; a nil as
---`null`), taken out of the parser; nil when the next reply is not one.
---@return any[]?, integer?, integer?
function Parser:plain() end
---@return integer
function Parser:buffered() end

---The RESP codec, free of sockets.
---@class tide.redis.resp
---@field null table the sentinel of nil replies
---@field Parser table
---@field DEFAULTS table
local resp = {}
---@param limits? {max_bulk: integer?, max_array: integer?, max_depth: integer?, max_line: integer?}
---@return tide.redis.resp.Parser
function resp.parser(limits) end
---The bytes of the command `args[1..n]`.
---@param args any[]
---@param n integer
---@param level? integer
---@return string
function resp.encode(args, n, level) end
---`encode` for one to three words.
---@param n integer
---@param a any
---@param b? any
---@param c? any
---@param level? integer
---@return string
function resp.encode3(n, a, b, c, level) end
---The bytes of the bulk string `s`.
---@param s string
---@return string
function resp.bulk(s) end

---@class tide.redis
---@field null table the sentinel of nil replies in pipelines
---@field resp tide.redis.resp
---@field Client table
---@field Subscription table
---@field mt table
local redis = {}
---Promise of a connected client.
---@param url_or_opts string|tide.redis.Options
---@return tide.Promise<tide.redis.Client>
function redis.connect(url_or_opts) end
---Checks and completes connection options (raises on misuse).
---@param opts string|tide.redis.Options
---@return table
function redis.parse_options(opts) end

return redis
