---@meta tide.memory
-- Annotations of tide.memory (docs/testing.md) for lua-language-server.
-- Never required at run time.

---@class tide.memory.PairOptions
---@field chunk integer|"random"?
---@field max_chunk integer?
---@field seed integer?
---@field latency number?
---@field high_water integer?
---@field low_water integer?
---@field read_buffer integer?

---A server of a memory network.
---@class tide.memory.Server
---@field connections integer
---@field errors any[]
local MemServer = {}
---Stops accepting and cancels the handlers; promise settled once they returned.
---@return tide.Promise<nil>
function MemServer:close() end
---Resets every connection of the server.
function MemServer:reset_all() end

---A network of named in-memory servers.
---@class tide.memory.Network
local Network = {}
---@param name string
---@param handler async fun(conn: tide.Stream)
---@param opts? tide.memory.PairOptions
---@return tide.memory.Server
function Network:serve(name, handler, opts) end
---Promise of the client end of a new pair; `ECONNREFUSED` when nothing serves `name`.
---@param name string
---@param opts? tide.memory.PairOptions
---@return tide.Promise<tide.Stream>
function Network:connect(name, opts) end

---@class tide.memory
local memory = {}
---Two connected streams: what one writes, the other reads.
---@param opts? tide.memory.PairOptions
---@return tide.Stream a
---@return tide.Stream b
function memory.pair(opts) end
---@param s tide.Stream
---@param opts tide.memory.PairOptions
function memory.configure(s, opts) end
---Resets the connection of `s` on both ends.
---@param s tide.Stream
function memory.reset(s) end
---Injects `err` into `s`.
---@param s tide.Stream
---@param err tide.Error|string
function memory.fail(s, err) end
---@return tide.memory.Network
function memory.network() end

return memory
