---@meta tide.memcached
-- Annotations of tide.memcached (docs/testing.md) for lua-language-server.
-- Never required at run time.

---@class tide.memcached.Client
local Client = {}
---Promise of `value, flags`; `nil` on a miss.
---@param key string
---@return tide.Promise<string?>
function Client:get(key) end
---@param key string
---@param value string
---@param opts? {flags: integer?, exptime: integer?}
---@return tide.Promise<boolean>
function Client:set(key, value, opts) end
---@param key string
---@param value string
---@param opts? {flags: integer?, exptime: integer?}
---@return tide.Promise<boolean>
function Client:add(key, value, opts) end
---@param key string
---@param value string
---@param opts? {flags: integer?, exptime: integer?}
---@return tide.Promise<boolean>
function Client:replace(key, value, opts) end
---@param key string
---@param value string
---@param opts? {flags: integer?, exptime: integer?}
---@return tide.Promise<boolean>
function Client:append(key, value, opts) end
---@param key string
---@param value string
---@param opts? {flags: integer?, exptime: integer?}
---@return tide.Promise<boolean>
function Client:prepend(key, value, opts) end
---@param key string
---@return tide.Promise<boolean>
function Client:delete(key) end
---@param key string
---@param n? integer
---@return tide.Promise<integer?>
function Client:incr(key, n) end
---@param key string
---@param n? integer
---@return tide.Promise<integer?>
function Client:decr(key, n) end
---Sends `cmd` (and `data`) and parses the reply with `parse`.
---@param key string
---@param cmd string
---@param data? string
---@param parse fun(): any
---@return tide.Promise<any>
function Client:command(key, cmd, data, parse) end
function Client:close() end

---@class tide.memcached
---@field methods table
---@field mt table
local memcached = {}
---@param host string
---@param port integer
---@param opts? {timeout: number?}
---@return tide.Promise<tide.memcached.Client>
function memcached.connect(host, port, opts) end
---A client over any stream.
---@param stream tide.Stream
---@param opts? {timeout: number?}
---@return tide.memcached.Client
function memcached.new(stream, opts) end

return memcached
