/* stdio.c — tide.stdin, tide.stdout and tide.stderr: the process's fds 0,
 * 1 and 2 as streams, created on first access (the module's __index) for
 * whatever the fd is (uv_guess_handle): a terminal (uv_tty_t, which libuv
 * reopens so the non-blocking mode stays ours), a pipe or socket
 * (uv_pipe_t / uv_tcp_t), or a file (read and written through uv_fs on the
 * fd). stdout and stderr write synchronously on pipes and files, so print()
 * and io.write sharing the fd never meet a non-blocking descriptor or
 * reordered bytes.
 *
 * Never closing the process's fds: libuv does not close fds 0-2 when their
 * handle closes, file streams never close their fd, and a closed stdio
 * stream gives its fd back in blocking mode (stream.c, finalize).
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]. Ownership:
 * the stream is stored in the module table on first access, so it lives
 * as long as the module (see stream.c for streams).
 */
#include "binding.h"

#include <stdlib.h>
#include <string.h>

/* [-0, +1, e] Pushes a new stream for stdio fd `fd`. */
static void open_stdio(lua_State *L, int fd) {
  tide_io *io = tide_io_get(L);
  uv_handle_type type = uv_guess_handle(fd);
  tide_stream *s;
  int kind, err = 0;
  switch (type) {
    case UV_TTY: kind = TIDE_STREAM_TTY; break;
    case UV_NAMED_PIPE: kind = TIDE_STREAM_PIPE; break;
    case UV_TCP: kind = TIDE_STREAM_TCP; break;
    case UV_FILE: kind = TIDE_STREAM_FILE; break;
    default:
      lua_pushfstring(L, "fd %d is closed or not a stream", fd);
      tide_lua_push_error(L, "EBADF", lua_tostring(L, -1));
      lua_error(L);
      return;
  }
  if ((s = tide_stream_alloc(io, kind)) == NULL) luaL_error(L, "not enough memory");
  s->fd = fd;
  switch (kind) {
    case TIDE_STREAM_TTY: err = uv_tty_init(io->loop, &s->h.tty, fd, fd == 0); break;
    case TIDE_STREAM_PIPE: err = uv_pipe_init(io->loop, &s->h.pipe, 0); break;
    case TIDE_STREAM_TCP: err = uv_tcp_init(io->loop, &s->h.tcp); break;
    default: break;
  }
  if (err != 0) {
    free(s);
  } else if (kind == TIDE_STREAM_FILE) {
    tide_stream_push(L, s, 0);
  } else {
    tide_stream_opened(s);
    tide_stream_push(L, s, 0);  /* from here the GC closes it on error */
    if (kind == TIDE_STREAM_PIPE) err = uv_pipe_open(&s->h.pipe, fd);
    else if (kind == TIDE_STREAM_TCP) err = uv_tcp_open(&s->h.tcp, fd);
    if (err == 0 && fd > 0 && kind != TIDE_STREAM_TTY) err = uv_stream_set_blocking(&s->h.stream, 1);
  }
  if (err != 0) {
    lua_pushfstring(L, "fd %d", fd);
    tide_lua_push_uverror_at(L, err, lua_tostring(L, -1));
    lua_error(L);
  }
}

/* __index of the module table: tide.stdin, tide.stdout, tide.stderr are
 * made on first access and kept in the table; other keys go to the
 * previous __index (upvalue 1), if any. */
static int module_index(lua_State *L) {
  static const char *const names[] = {"stdin", "stdout", "stderr"};
  const char *k = lua_tostring(L, 2);
  int fd;
  for (fd = 0; k != NULL && fd < 3; fd++) {
    if (lua_type(L, 2) == LUA_TSTRING && strcmp(k, names[fd]) == 0) {
      open_stdio(L, fd);
      lua_pushvalue(L, 2);
      lua_pushvalue(L, -2);
      lua_rawset(L, 1);  /* module[name] = stream */
      return 1;
    }
  }
  switch (lua_type(L, lua_upvalueindex(1))) {
    case LUA_TFUNCTION:
      lua_pushvalue(L, lua_upvalueindex(1));
      lua_pushvalue(L, 1);
      lua_pushvalue(L, 2);
      lua_call(L, 2, 1);
      return 1;
    case LUA_TTABLE:
      lua_pushvalue(L, 2);
      lua_gettable(L, lua_upvalueindex(1));
      return 1;
    default:
      return 0;
  }
}

/* [-0, +0, m] Makes the module table at the top answer tide.stdin,
 * tide.stdout and tide.stderr, keeping any __index it had. */
int tide_open_stdio(lua_State *L) {
  if (!lua_getmetatable(L, -1)) lua_newtable(L);
  lua_getfield(L, -1, "__index");
  lua_pushcclosure(L, module_index, 1);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  return 0;
}
