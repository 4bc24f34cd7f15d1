-- LuaRocks: `luarocks make` builds tide.so (the Lua module, with the C
-- runtime inside) and the `tide` binary with the project's Makefile, and
-- installs them with the Lua modules (tide.http, tide.tls, ...) into the
-- rocks tree. Needs the -dev packages of libuv and OpenSSL (Debian:
-- libuv1-dev libssl-dev).
rockspec_format = "3.0"
package = "tide"
version = "scm-1"
source = { url = "git+https://example.invalid/tide.git" }
description = {
  summary = "An async runtime for Lua 5.4 on libuv: promises, tasks, a thread pool, HTTP, TLS",
  detailed = [[
Functions that can wait return promises, Lua coroutines await them,
blocking work goes to a thread pool of separate Lua states, and protocols
(HTTP/1.1, TLS, ...) are plain Lua modules on top.]],
  license = "MIT",
}
dependencies = { "lua >= 5.4, < 5.5" }
external_dependencies = {
  LIBUV = { header = "uv.h" },
  OPENSSL = { header = "openssl/ssl.h" },
}
build = {
  type = "make",
  build_target = "rock",
  build_variables = { BUILD = "build-rock" },
  install_target = "install-rock",
  install_variables = {
    BUILD = "build-rock", LUADIR = "$(LUADIR)", LIBDIR = "$(LIBDIR)", BINDIR = "$(BINDIR)",
  },
}
