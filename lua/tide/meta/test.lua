---@meta tide.test
-- Annotations of tide.test (docs/testing.md) for lua-language-server.
-- Never required at run time.

---@class tide.test.Options
---@field timeout number? seconds of real time the body may take
---@field clock "virtual"|"manual"?
---@field autojump number?
---@field leaks boolean? `false`: skip the checks for leftovers

---What a test body gets.
---@class tide.test.T
---@field clock tide.Clock? on virtual time
---@field net tide.memory.Network
---@field pair fun(opts?: tide.memory.PairOptions): tide.Stream, tide.Stream

---`test([opts,] fn)` is `test.wrap(opts, fn)`: a function for busted's `it`.
---@class tide.test
---@overload fun(opts: tide.test.Options|fun(t: tide.test.T), fn?: fun(t: tide.test.T)): fun()
local test = {}
---Runs `fn(t, ...)` as a task under `tide.run`; returns its results.
---@param opts tide.test.Options|fun(t: tide.test.T, ...: any)
---@param fn? fun(t: tide.test.T, ...: any)
---@param ... any
---@return any ...
function test.run(opts, fn, ...) end
---@param opts tide.test.Options|fun(t: tide.test.T)
---@param fn? fun(t: tide.test.T)
---@return fun()
function test.wrap(opts, fn) end

return test
