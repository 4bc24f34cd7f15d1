---@meta tide.tls
-- Annotations of tide.tls (docs/tls.md) for lua-language-server. Never
-- required at run time.

---Options of every tide.tls function (docs/tls.md, "Options").
---@class tide.tls.Options
---@field cert string? certificate chain: a file name or PEM text
---@field key string? private key: a file name or PEM text
---@field ca string? certificates to trust: file, hashed directory or PEM
---@field verify boolean? a client verifies the server (default true)
---@field verify_client boolean|"optional"?
---@field alpn string[]?
---@field min_version "TLSv1.2"|"TLSv1.3"?
---@field max_version "TLSv1.2"|"TLSv1.3"?
---@field ciphers string?
---@field ciphersuites string?
---@field sni table<string, table|tide.ssl.Context>?
---@field servername string? the name to verify and send (SNI)
---@field server boolean? `wrap`: the server side
---@field timeout number? seconds for the connection and handshake
---@field context tide.ssl.Context?
---@field host string? `serve`, `listen`
---@field port integer? `serve`, `listen`

---A TLS stream: the whole `tide.Stream` API (`kind = "tls"`).
---@class tide.tls.Stream: tide.Stream
---@field version string `"TLSv1.3"`
---@field cipher string
---@field alpn string?
---@field servername string? server side: the name the client asked for
---@field transport tide.Stream the stream TLS runs over
local TlsStream = {}
---@return {subject: string, issuer: string, san: string[], serial: string, not_before: integer, not_after: integer, fingerprint: string}?
function TlsStream:peer_certificate() end

---A TLS server whose `accept` gives streams whose handshake succeeded.
---@class tide.tls.Server
---@field server tide.Server the TCP server
---@field port integer
---@field host string
local TlsServer = {}
---@param timeout? number
---@return tide.Promise<tide.tls.Stream?>
function TlsServer:accept(timeout) end
---@param grace? number
---@return tide.Promise<nil>
function TlsServer:close(grace) end

---@class tide.tls
---@field openssl_version string
local tls = {}
---A stable text of TLS options (those named in `only`), for caches and pools; nil when a value has none.
---@param opts table
---@param only? table<string, boolean>
---@return string?
function tls.options_key(opts, only) end
---Promise of a TLS stream to `host:port` once the handshake is done.
---@param host string
---@param port integer
---@param opts? tide.tls.Options
---@return tide.Promise<tide.tls.Stream>
function tls.connect(host, port, opts) end
---Promise of a TLS stream over `stream` (STARTTLS).
---@param stream tide.Stream
---@param opts tide.tls.Options
---@return tide.Promise<tide.tls.Stream>
function tls.wrap(stream, opts) end
---As `tide.tcp.serve`, once each handshake succeeded.
---@param opts tide.tls.Options
---@param handler async fun(s: tide.tls.Stream)
---@return tide.Server
function tls.serve(opts, handler) end
---@param opts tide.tls.Options
---@return tide.tls.Server
function tls.listen(opts) end
---A context to share between connections.
---@param opts tide.tls.Options
---@return tide.ssl.Context
function tls.context(opts) end

return tls
