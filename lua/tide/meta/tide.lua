---@meta tide
-- Annotations of the C module `tide` for lua-language-server (see README,
-- "Editor types"). Never required at run time: `require "tide"` loads
-- tide.so. Reference: docs/lua-api.md, docs/io.md, docs/pool.md.
-- spec/foundation/types_spec.lua checks these names against the runtime.

---@alias tide.Seconds number
---@alias tide.Timeout number|{timeout: number?}

---An error object: `tostring(err)` is `"CODE: message"`. Extra fields
---(`partial`, `status`, `errors`, `value`...) depend on the operation.
---@class tide.Error
---@field code string libuv's name (`"ETIMEDOUT"`, `"ECONNREFUSED"`) or tide's (`"EWORKER"`, `"EPROTO"`...)
---@field message string
---@field traceback string? set once the error was raised in a task
---@field [string] any

---A promise: pending, then fulfilled with values or rejected with one error.
---@class tide.Promise<T>
local Promise = {}

---Fulfils the promise (a single promise argument is adopted).
---@param ... any
function Promise:resolve(...) end

---Rejects the promise with `err`.
---@param err any
function Promise:reject(err) end

---A new promise settled by what the handler returns or raises.
---@param on_ok? fun(...: any): any
---@param on_err? fun(err: any): any
---@return tide.Promise<any>
function Promise:next(on_ok, on_err) end

---`p:next(nil, on_err)`.
---@param on_err fun(err: any): any
---@return tide.Promise<any>
function Promise:catch(on_err) end

---Runs `fn()` on either outcome and passes the original outcome on.
---@param fn fun()
---@return tide.Promise<T>
function Promise:finally(fn) end

---Suspends the running task until the promise settles; returns its values
---or raises its error.
---@return T
function Promise:await() end

---Queues the event `name` for its listeners; `false` once settled.
---@param name string
---@param ... any
---@return boolean
function Promise:emit(name, ...) end

---Adds a listener for the events `name`.
---@param name string
---@param fn fun(...: any)
---@return self
function Promise:on(name, fn) end

---@return "pending"|"fulfilled"|"rejected"
function Promise:state() end

---Without waiting: `true, values...`, `false, err`, or nothing while pending.
---@return boolean? ok
---@return any ...
function Promise:result() end

---Asks the producer to stop (a task: cancels it); whether it had any effect.
---@return boolean
function Promise:cancel() end

---A task: a coroutine that can await, and the promise of its results.
---@class tide.Task<T>: tide.Promise<T>

---@class tide.Group
local Group = {}
---Spawns a child task.
---@param fn async fun(...: any): ...
---@param ... any
---@return tide.Task<any>
function Group:spawn(fn, ...) end
---Promise of one packed result table per child, in spawn order.
---@return tide.Promise<table[]>
function Group:wait() end
---Cancels every child.
function Group:cancel() end

---A FIFO of values between tasks.
---@class tide.Queue
---@field size integer values queued (also `#q`)
---@field max integer? the bound
---@field getters integer
---@field putters integer
---@field closed boolean
local Queue = {}
---@param v any not nil
---@param timeout? tide.Timeout
---@return tide.Promise<nil>
function Queue:put(v, timeout) end
---Promise of the oldest value; `nil` once closed and drained.
---@param timeout? tide.Timeout
---@return tide.Promise<any>
function Queue:get(timeout) end
function Queue:close() end

---@class tide.Permit
local Permit = {}
---Gives the permit back (later calls do nothing; also `<close>`).
function Permit:release() end

---@class tide.Semaphore
---@field available integer
---@field limit integer
---@field waiters integer
local Semaphore = {}
---@param timeout? tide.Timeout
---@return tide.Promise<tide.Permit>
function Semaphore:acquire(timeout) end
---Gives one permit back without the object.
function Semaphore:release() end

---A flag that tasks wait for.
---@class tide.Event
---@field waiters integer
local Event = {}
function Event:set() end
function Event:clear() end
---@param timeout? tide.Timeout
---@return tide.Promise<nil>
function Event:wait(timeout) end
---@return boolean
function Event:is_set() end

---The virtual clock (docs/testing.md).
---@class tide.Clock
local Clock = {}
---Moves time forward; promise fulfilled once the clock is there.
---@param seconds number
---@return tide.Promise<nil>
function Clock:advance(seconds) end
---@param v boolean|number
---@return self
function Clock:autojump(v) end
---@return number
function Clock:now() end
---Back to the real clock.
function Clock:close() end

---@class tide.ReadOptions
---@field max integer?
---@field timeout number?

---A byte stream: TCP, pipe, tty, file, TLS, in-memory pair...
---@class tide.Stream
---@field kind string `"tcp"`, `"pipe"`, `"tty"`, `"file"`, `"memory"`, `"tls"`...
---@field closed boolean
---@field bytes_read integer
---@field bytes_written integer
---@field read_buffered integer
---@field write_queued integer
---@field high_water integer
---@field low_water integer
---@field read_buffer integer
---@field host string? tcp: the local address
---@field port integer? tcp: the local port
---@field path string? pipe: the path
local Stream = {}
---Promise of the bytes that came; `nil` at the end of the stream.
---@param opts? number|tide.ReadOptions timeout, or `{max =, timeout =}`
---@return tide.Promise<string?>
function Stream:read(opts) end
---Promise of the next line without its end of line; `nil` at the end.
---@param opts? integer|tide.ReadOptions max, or `{max =, timeout =}`
---@return tide.Promise<string?>
function Stream:read_line(opts) end
---Promise of exactly `n` bytes; `nil` at the end; `EOF` error (with `partial`) inside them.
---@param n integer
---@param timeout? number
---@return tide.Promise<string?>
function Stream:read_exactly(n, timeout) end
---Promise of the bytes before the next `delim` (consumed).
---@param delim string
---@param opts? integer|tide.ReadOptions
---@return tide.Promise<string?>
function Stream:read_until(delim, opts) end
---Promise of every byte up to the end.
---@param opts? integer|tide.ReadOptions
---@return tide.Promise<string>
function Stream:read_all(opts) end
---@param data string|string[]
---@return tide.Promise<nil>
function Stream:write(data) end
---Ends the writing half once queued writes are out.
---@return tide.Promise<nil>
function Stream:shutdown() end
---@param linger? number seconds queued writes may take (default 10)
---@return tide.Promise<nil>
function Stream:close(linger) end
---@param limits {high_water: integer?, low_water: integer?, read_buffer: integer?}
---@return self
function Stream:set_limits(limits) end
---@return string host_or_path
---@return integer? port
function Stream:peername() end
---@return string host_or_path
---@return integer? port
function Stream:sockname() end
---TCP only.
---@param on boolean
---@return self
function Stream:nodelay(on) end
---TCP only.
---@param on boolean
---@param seconds? number
---@return self
function Stream:keepalive(on, seconds) end

---The writing side of a custom stream made by `tide.stream`.
---@class tide.StreamSource
---@field closed boolean
local StreamSource = {}
---@param data string
---@return tide.Promise<nil>
function StreamSource:push(data) end
---@param err? any
function StreamSource:finish(err) end
---Sends the writes the stream gathered this turn to impl.write now.
function StreamSource:flush() end

---@class tide.StreamImpl
---@field write fun(data: string): tide.Promise<any>?
---@field shutdown (fun(): tide.Promise<any>?)?
---@field close fun()?
---@field peername (fun(): ...)?
---@field sockname (fun(): ...)?

---A listening TCP or pipe server.
---@class tide.Server
---@field connections integer handlers running now (`serve`)
---@field host string?
---@field port integer?
---@field path string?
---@field closed boolean
local Server = {}
---Promise of the next connection; `nil` once the server is closed.
---@param timeout? number
---@return tide.Promise<tide.Stream?>
function Server:accept(timeout) end
---Stops listening; a serving server's handlers get `grace` seconds.
---@param grace? number
---@return tide.Promise<nil>
function Server:close(grace) end

---@class tide.UdpSocket
---@field port integer
---@field family integer 4 or 6
---@field queued integer
---@field dropped integer
---@field errors integer
local UdpSocket = {}
---@param data string
---@param host string
---@param port integer
---@return tide.Promise<nil>
function UdpSocket:send(data, host, port) end
---Promise of `data, host, port` of the next datagram.
---@param timeout? number
---@return tide.Promise<string>
function UdpSocket:recv(timeout) end
---@param group string
---@param interface? string
---@return self
function UdpSocket:join(group, interface) end
---@param group string
---@param interface? string
---@return self
function UdpSocket:leave(group, interface) end
---@return string host
---@return integer port
function UdpSocket:address() end
function UdpSocket:close() end

---@class tide.Process
---@field pid integer
---@field stdin tide.Stream?
---@field stdout tide.Stream?
---@field stderr tide.Stream?
---@field exited boolean
local Process = {}
---Promise of `code, signal`.
---@param timeout? number
---@return tide.Promise<integer?>
function Process:wait(timeout) end
---@param signal? string|integer default `"SIGTERM"`
---@return boolean
function Process:kill(signal) end

---@class tide.SignalWatcher
---@field signals string[]
---@field queued integer
---@field dropped integer
local SignalWatcher = {}
---Promise of the name of the next arrival.
---@param timeout? number
---@return tide.Promise<string?>
function SignalWatcher:next(timeout) end
function SignalWatcher:close() end

---@class tide.fs.File
---@field path string
---@field closed boolean
local File = {}
---@param n integer
---@param offset? integer
---@return tide.Promise<string?>
function File:read(n, offset) end
---@param data string
---@param offset? integer
---@return tide.Promise<integer>
function File:write(data, offset) end
---@return tide.Promise<tide.fs.Stat>
function File:stat() end
---@return tide.Promise<nil>
function File:close() end

---@class tide.fs.Watcher
---@field path string
local Watcher = {}
---Promise of the next change: name and kind.
---@param timeout? number
---@return tide.Promise<string?>
function Watcher:next(timeout) end
function Watcher:close() end

---@class tide.fs.Stat
---@field type "file"|"dir"|"link"|"fifo"|"socket"|"char"|"block"
---@field size integer
---@field mode integer
---@field perm integer
---@field uid integer
---@field gid integer
---@field nlink integer
---@field [string] any

---A zlib stream (docs/websocket.md, "Byte primitives").
---@class tide.zlib.Stream
---@field done boolean inflate: the end of the compressed data was read
---@field total_in integer
---@field total_out integer
local ZStream = {}
---Returns what came out (deflate: `flush`; inflate: `max` bytes out).
---@param data string
---@param flush_or_max? "none"|"sync"|"full"|"finish"|integer
---@return string
function ZStream:write(data, flush_or_max) end
function ZStream:reset() end
function ZStream:close() end

---@class tide.ssl.Context
local SslContext = {}
---@param opts? table
---@return tide.ssl.Session
function SslContext:session(opts) end

---A TLS engine over memory buffers (used by tide.tls).
---@class tide.ssl.Session
local SslSession = {}
---@return any
function SslSession:handshake(...) end
---@return any
function SslSession:encrypt(...) end
---@return any
function SslSession:decrypt(...) end
---@return any
function SslSession:close_notify(...) end
---@return table
function SslSession:info() end
---@return table?
function SslSession:peer_certificate() end
function SslSession:attach(...) end
function SslSession:free() end

---@class tide
---@field version string
---@field stdin tide.Stream fd 0
---@field stdout tide.Stream fd 1
---@field stderr tide.Stream fd 2
---@field Error table the metatable of error objects
---@field Cancelled tide.Error the error raised by cancellation (`ECANCELED`)
tide = {}

-- Promises ----------------------------------------------------------------

---A new pending promise.
---@return tide.Promise<any>
function tide.promise() end
---An already fulfilled promise.
---@generic T
---@param ... T
---@return tide.Promise<T>
function tide.resolved(...) end
---An already rejected promise.
---@param err any
---@return tide.Promise<any>
function tide.rejected(err) end
---@param v any
---@return boolean
function tide.is_promise(v) end

-- Tasks -------------------------------------------------------------------

---Runs `fn(...)` in a new task.
---@generic T
---@param fn async fun(...: any): T
---@param ... any
---@return tide.Task<T>
function tide.spawn(fn, ...) end
---Suspends the running task until `p` settles.
---@generic T
---@param p tide.Promise<T>
---@return T
function tide.await(p) end
---Spawns `fn` and runs the loop until its task is done; returns its results.
---@generic T
---@param fn async fun(...: any): T
---@param ... any
---@return T
function tide.run(fn, ...) end
---The running task, or nothing outside tasks.
---@return tide.Task<any>?
function tide.current() end
---Calls `fn(...)` with the task's cancellation held back.
---@generic T
---@param fn fun(...: any): T
---@param ... any
---@return T
function tide.shield(fn, ...) end
---@param v any
---@return boolean
function tide.is_cancelled(v) end
---@return tide.Group
function tide.group() end

-- Time --------------------------------------------------------------------

---@param seconds number
---@param opts? {real: boolean?}
---@return tide.Promise<nil>
function tide.sleep(seconds, opts) end
---A task that runs `fn(...)` after `seconds`.
---@param seconds number
---@param fn fun(...: any): ...
---@param ... any
---@return tide.Task<any>
function tide.timer(seconds, fn, ...) end
---A task calling `fn(i)` every `seconds` until it returns `false`.
---@param seconds number
---@param fn fun(i: integer): boolean?
---@return tide.Task<integer>
function tide.interval(seconds, fn) end
---`p`, or an `ETIMEDOUT` rejection after `seconds`.
---@generic T
---@param p tide.Promise<T>
---@param seconds number
---@param opts? {shield: boolean?}
---@return tide.Promise<T>
function tide.timeout(p, seconds, opts) end
---The loop's time in seconds.
---@return number
function tide.now() end
---A monotonic clock in nanoseconds.
---@return integer
function tide.hrtime() end
---Puts the runtime on virtual time (docs/testing.md).
---@param opts? {autojump: boolean|number?}
---@return tide.Clock
function tide.virtual_clock(opts) end

-- Combinators -------------------------------------------------------------

---The first value of each, in order.
---@param list any[]
---@return tide.Promise<any>
function tide.all(list) end
---The outcome of the first to settle.
---@param list any[]
---@return tide.Promise<any>
function tide.race(list) end
---The first fulfilment; `EAGGREGATE` when all reject.
---@param list any[]
---@return tide.Promise<any>
function tide.any(list) end
---One `{status =, value =/error =}` table per input.
---@param list any[]
---@return tide.Promise<table[]>
function tide.settled(list) end

-- Queues, semaphores, events ---------------------------------------------

---@param opts? {max: integer?}
---@return tide.Queue
function tide.queue(opts) end
---@param n integer
---@return tide.Semaphore
function tide.semaphore(n) end
---@return tide.Event
function tide.event() end

-- Errors, byte sets, diagnostics -----------------------------------------

---A new error object.
---@param code string
---@param message string
---@param fields? table copied into it
---@return tide.Error
function tide.error(code, message, fields) end
---@param v any
---@param code? string
---@return boolean
function tide.is_error(v, code) end
---A set of bytes; returns its scan function: the position of the first byte
---of `s[i..j]` not in the set.
---@param spec string
---@return fun(s: string, i?: integer, j?: integer): integer
function tide.charset(spec) end
---Splits the `Name: value` lines of `s` from `init`: the fields (name, lowercased
---name, value per field), their count and an index; or nil, the position at
---fault and why ("syntax", "line", "count").
---@param s string
---@param init integer
---@param max_fields? integer
---@param max_line? integer
---@return table?, integer|string, table|string
function tide.fields(s, init, max_fields, max_line) end
---Parses the whole plain RESP replies of `s` from `init` (simple and bulk
---strings, integers, arrays of them; `null` for a nil) within the limits,
---stopping before anything else: the replies, their count and the position
---of the first byte not parsed. `commands`: arrays of bulk strings only.
---@param s string
---@param init integer
---@param null any
---@param max_bulk integer
---@param max_array integer
---@param max_depth integer
---@param max_line integer
---@param commands? boolean
---@return any[], integer, integer
function tide.resp(s, init, null, max_bulk, max_array, max_depth, max_line, commands) end
---The bytes of the RESP command made of the arguments (strings, numbers), or
---nil and the position of the first argument of another type.
---@param ... string|number
---@return string?, integer?
function tide.resp_encode(...) end
---XORs `data[i..j]` with the 4-byte `key` repeated (WebSocket masking).
---@param data string
---@param key string
---@param offset? integer
---@param i? integer
---@param j? integer
---@return string
function tide.mask(data, key, offset, i, j) end
---Reports stalls of the loop longer than `seconds`; `false` stops.
---@param seconds number|string|false
function tide.watchdog(seconds) end
---Adds every new task to table `t` as a key; `nil` stops.
---@param t table?
function tide.track_tasks(t) end
---@return {handles: table<string, integer>, nhandles: integer, alive: integer, unhandled: integer}
function tide.stats() end

-- Streams and I/O ---------------------------------------------------------

---A custom stream and its source.
---@param impl tide.StreamImpl
---@param limits? {high_water: integer?, low_water: integer?, read_buffer: integer?}
---@return tide.Stream stream
---@return tide.StreamSource source
function tide.stream(impl, limits) end

---Promise of the name of the first of the signals to arrive.
---@param ... string
---@return tide.Promise<string>
function tide.signal(...) end
---A watcher of repeated arrivals (last argument may be `{queue = n}`).
---@param ... string|{queue: integer?}
---@return tide.SignalWatcher
function tide.signals(...) end

---Options of `listen` and `serve` (and `connect`, with `timeout`).
---@class tide.tcp.Options
---@field host string? default `"127.0.0.1"`
---@field port integer? default 0: a free port
---@field backlog integer?
---@field reuseport boolean?
---@field nodelay boolean? default true
---@field keepalive boolean|number?
---@field high_water integer?
---@field low_water integer?
---@field read_buffer integer?
---@field timeout number? `connect`: the whole of it

---@class tide.tcp
tide.tcp = {}
---Promise of a connected stream.
---@param host string
---@param port integer
---@param opts? tide.tcp.Options
---@return tide.Promise<tide.Stream>
function tide.tcp.connect(host, port, opts) end
---A listening server, at once.
---@param opts tide.tcp.Options
---@return tide.Server
function tide.tcp.listen(opts) end
---A server running `handler(conn)` in a new task per connection.
---@param opts tide.tcp.Options
---@param handler async fun(conn: tide.Stream)
---@return tide.Server
function tide.tcp.serve(opts, handler) end

---@class tide.pipe
tide.pipe = {}
---@param path string
---@param opts? {timeout: number?}
---@return tide.Promise<tide.Stream>
function tide.pipe.connect(path, opts) end
---@param opts {path: string, backlog: integer?}
---@return tide.Server
function tide.pipe.listen(opts) end
---@param opts {path: string, backlog: integer?}
---@param handler async fun(conn: tide.Stream)
---@return tide.Server
function tide.pipe.serve(opts, handler) end

---@class tide.udp
tide.udp = {}
---A bound socket, at once.
---@param opts {host: string?, port: integer?, reuseaddr: boolean?, ipv6only: boolean?, broadcast: boolean?, ttl: integer?, multicast_ttl: integer?, multicast_loop: boolean?, queue: integer?}
---@return tide.UdpSocket
function tide.udp.bind(opts) end

---@class tide.dns
tide.dns = {}
---Promise of `addresses, family`.
---@param name string
---@param opts? {family: integer?, timeout: number?}
---@return tide.Promise<string[]>
function tide.dns.lookup(name, opts) end
---Promise of the host name of a numeric address.
---@param address string
---@param opts? {timeout: number?}
---@return tide.Promise<string>
function tide.dns.reverse(address, opts) end

---The command first (`opts[1]` or `cmd`), then its arguments (`args` or after it).
---@class tide.process.Options
---@field [integer] string
---@field cmd string?
---@field args string[]?
---@field env table<string, string|false>?
---@field cwd string?
---@field detached boolean?
---@field stdin "inherit"|"ignore"|"pipe"|tide.Stream|integer?
---@field stdout "inherit"|"ignore"|"pipe"|tide.Stream|integer?
---@field stderr "inherit"|"ignore"|"pipe"|tide.Stream|integer?
---@field input string? `exec`: written to the child's stdin
---@field max_output integer? `exec`: bytes kept of stdout and of stderr

---@class tide.process
tide.process = {}
---Starts a process, at once.
---@param opts tide.process.Options
---@return tide.Process
function tide.process.spawn(opts) end
---Promise of `{status =, signal =, stdout =, stderr =}`.
---@param cmd string|tide.process.Options
---@param ... string
---@return tide.Promise<{status: integer?, signal: string?, stdout: string, stderr: string}>
function tide.process.exec(cmd, ...) end

---Files: every function returns a promise.
---@class tide.fs
tide.fs = {}
---@param path string
---@param flags? string `"r"`, `"r+"`, `"w"`, `"w+"`, `"a"`, `"a+"`, with `x`
---@param mode? string
---@return tide.Promise<tide.fs.File>
function tide.fs.open(path, flags, mode) end
---@param path string
---@return tide.Promise<string>
function tide.fs.readfile(path) end
---@param path string
---@param data string
---@param opts? {append: boolean?, mode: string?}
---@return tide.Promise<integer>
function tide.fs.writefile(path, data, opts) end
---@param path string
---@return tide.Promise<tide.fs.Stat>
function tide.fs.stat(path) end
---@param path string
---@return tide.Promise<tide.fs.Stat>
function tide.fs.lstat(path) end
---@param path string
---@return tide.Promise<{name: string, type: string}[]>
function tide.fs.readdir(path) end
---@param path string
---@param mode? string
---@return tide.Promise<nil>
function tide.fs.mkdir(path, mode) end
---@param path string
---@return tide.Promise<nil>
function tide.fs.rmdir(path) end
---@param path string
---@return tide.Promise<nil>
function tide.fs.unlink(path) end
---@param from string
---@param to string
---@return tide.Promise<nil>
function tide.fs.rename(from, to) end
---@param template string ends with `XXXXXX`
---@return tide.Promise<string>
function tide.fs.mkdtemp(template) end
---@param path string
---@return tide.Promise<string>
function tide.fs.realpath(path) end
---A watcher of a file or directory, at once.
---@param path string
---@param opts? {queue: integer?, recursive: boolean?}
---@return tide.fs.Watcher
function tide.fs.watch(path, opts) end

-- The thread pool (docs/pool.md) ----------------------------------------

---Runs `fn(...)` on a worker (no upvalues but `_ENV`); promise of its results.
---@param fn fun(...: any): ...
---@param ... nil|boolean|number|string
---@return tide.Promise<any>
function tide.work(fn, ...) end
---Runs `require(mod)[name](...)` on a worker.
---@param mod string
---@param name string
---@param ... nil|boolean|number|string
---@return tide.Promise<any>
function tide.work_module(mod, name, ...) end
---@return integer
function tide.pool_size() end

-- TLS and zlib primitives ------------------------------------------------

---OpenSSL underneath tide.tls.
---@class tide.ssl
---@field openssl_version string
tide.ssl = {}
---@param opts table docs/tls.md, "Options"
---@return tide.ssl.Context
function tide.ssl.context(opts) end

---@class tide.zlib
---@field version string
tide.zlib = {}
---@param opts? {format: "raw"|"zlib"|"gzip"?, window_bits: integer?, level: integer?, mem_level: integer?}
---@return tide.zlib.Stream
function tide.zlib.deflate(opts) end
---@param opts? {format: "raw"|"zlib"|"gzip"|"auto"?, window_bits: integer?}
---@return tide.zlib.Stream
function tide.zlib.inflate(opts) end

return tide
