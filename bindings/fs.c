/* fs.c — files as promises (tide.fs). Path operations (stat, lstat,
 * readdir, mkdir, rmdir, rename, unlink, mkdtemp, realpath) and file
 * objects (open -> f:read, f:write, f:stat, f:close) are libuv fs requests
 * run on libuv's pool; readfile and writefile are one pool job each (open,
 * read or write everything, close); watch is a uv_fs_event handle whose
 * changes are handed out one per promise (w:next(), see ioutil.c's feeds).
 * Errors name their path: "ENOENT: no such file or directory: /x".
 *
 * Stack discipline: helpers state their effect as [-o, +p, x]; callbacks
 * run on the main thread and leave its stack as they found it.
 *
 * Ownership:
 *  - A request (fsop, fsjob) is malloc'd, holds its promise (ioutil.c)
 *    from its start to its callback, and is freed there. Data to write is
 *    copied into it, so the pool never reads Lua memory. Cancelling the
 *    promise calls uv_cancel; a request already running finishes and its
 *    result is dropped (a file opened meanwhile is closed at once).
 *  - A file userdata points to a malloc'd lfile. Each request on it counts
 *    in `inflight` and its promise keeps the userdata alive (user value 3),
 *    so the descriptor is never closed under a running request: close()
 *    waits for them. The lfile is freed by __gc once idle, else by the last
 *    request's callback. __close and __gc close an idle descriptor at once.
 *  - A watcher userdata points to a malloc'd lwatch (the uv_fs_event_t and
 *    its feed), freed in the close callback; close(), __close and __gc
 *    close it and clear the pointer.
 */
#include "binding.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FILE_MT "tide.fs.file"
#define WATCH_MT "tide.fs.watcher"
#define READ_MAX 0x7ffff000       /* most bytes one read(2) returns */
#define READFILE_MAX (1u << 30)   /* readfile refuses larger files */

typedef struct lfile {
  uv_file fd;               /* -1 once closed */
  unsigned inflight;        /* requests on fd, its close included */
  int closing;              /* close() was called: no new request */
  int collected;            /* the userdata is gone: free once idle */
  lpromise *closer;         /* close() waiting for requests in flight */
  tide_rt *rt;
  char path[1];
} lfile;

typedef struct fsop {
  uv_fs_t req;
  tide_rt *rt;
  lpromise *lp;             /* held until the callback */
  lfile *file;              /* the file it works on, or NULL */
  char *mem;                /* read: the buffer; write: a copy of the data */
  size_t len, done;         /* write: bytes to write, written so far */
  int64_t offset;           /* write: where (-1: the file position) */
} fsop;

static void fsop_cb(uv_fs_t *req);

/* ----------------------------------------------------------- arguments */

/* [-0, +0, v] A path at `idx`: a string without zero bytes. */
static const char *check_path(lua_State *L, int idx) {
  size_t len;
  const char *path = luaL_checklstring(L, idx, &len);
  luaL_argcheck(L, strlen(path) == len, idx, "path contains a zero byte");
  return path;
}

/* [-0, +0, v] A permission mode at `idx`: an integer, or a string of
 * octal digits ("644"); `def` when absent. */
static int check_mode(lua_State *L, int idx, int def) {
  lua_Integer mode;
  if (lua_isnoneornil(L, idx)) return def;
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char *s = lua_tostring(L, idx);
    char *end;
    mode = strtol(s, &end, 8);
    luaL_argcheck(L, *s != '\0' && *end == '\0', idx, "mode must be octal digits");
  } else {
    mode = luaL_checkinteger(L, idx);
  }
  luaL_argcheck(L, mode >= 0 && mode <= 07777, idx, "mode must be in 0..7777 (octal)");
  return (int)mode;
}

/* [-0, +0, v] Open flags from a string like fopen's: "r", "r+", "w", "w+",
 * "a", "a+", with "x" after w or a for exclusive creation. */
static int check_flags(lua_State *L, int idx) {
  const char *s = luaL_optstring(L, idx, "r");
  int flags;
  switch (s[0]) {
    case 'r': flags = 0; break;
    case 'w': flags = O_CREAT | O_TRUNC; break;
    case 'a': flags = O_CREAT | O_APPEND; break;
    default: goto bad;
  }
  s++;
  if (*s == '+') { flags |= O_RDWR; s++; }
  else flags |= flags == 0 ? O_RDONLY : O_WRONLY;
  if (*s == 'x' && (flags & O_CREAT)) { flags |= O_EXCL; s++; }
  if (*s == '\0') return flags;
bad:
  return luaL_argerror(L, idx, "flags must be r, r+, w, w+, a or a+ (x after w or a: exclusive)");
}

/* [-0, +0, v] An optional offset at `idx`: -1 (the file position) when
 * absent. */
static int64_t check_offset(lua_State *L, int idx) {
  lua_Integer off = luaL_optinteger(L, idx, -1);
  luaL_argcheck(L, off >= -1, idx, "offset must be >= 0");
  return off;
}

/* --------------------------------------------------------------- results */

static const char *type_name(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "link";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    default: return "unknown";
  }
}

static const char *dirent_type_name(uv_dirent_type_t t) {
  switch (t) {
    case UV_DIRENT_FILE: return "file";
    case UV_DIRENT_DIR: return "dir";
    case UV_DIRENT_LINK: return "link";
    case UV_DIRENT_FIFO: return "fifo";
    case UV_DIRENT_SOCKET: return "socket";
    case UV_DIRENT_CHAR: return "char";
    case UV_DIRENT_BLOCK: return "block";
    default: return "unknown";
  }
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void set_time(lua_State *L, const char *k, uv_timespec_t t) {
  lua_pushnumber(L, (lua_Number)t.tv_sec + (lua_Number)t.tv_nsec / 1e9);
  lua_setfield(L, -2, k);
}

/* [-0, +1, m] Pushes the table of a stat result. */
static void push_stat(lua_State *L, const uv_stat_t *st) {
  lua_createtable(L, 0, 16);
  lua_pushstring(L, type_name((unsigned)st->st_mode));
  lua_setfield(L, -2, "type");
  set_int(L, "size", (lua_Integer)st->st_size);
  set_int(L, "mode", (lua_Integer)st->st_mode);
  set_int(L, "perm", (lua_Integer)(st->st_mode & 07777));
  set_int(L, "nlink", (lua_Integer)st->st_nlink);
  set_int(L, "uid", (lua_Integer)st->st_uid);
  set_int(L, "gid", (lua_Integer)st->st_gid);
  set_int(L, "ino", (lua_Integer)st->st_ino);
  set_int(L, "dev", (lua_Integer)st->st_dev);
  set_int(L, "rdev", (lua_Integer)st->st_rdev);
  set_int(L, "blksize", (lua_Integer)st->st_blksize);
  set_int(L, "blocks", (lua_Integer)st->st_blocks);
  set_time(L, "atime", st->st_atim);
  set_time(L, "mtime", st->st_mtim);
  set_time(L, "ctime", st->st_ctim);
  set_time(L, "birthtime", st->st_birthtim);
}

/* [-0, +1, m] Pushes the list {name =, type =} of a scandir result. */
static void push_entries(lua_State *L, uv_fs_t *req) {
  uv_dirent_t ent;
  lua_Integer i = 0;
  lua_newtable(L);
  while (uv_fs_scandir_next(req, &ent) != UV_EOF) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, ent.name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, dirent_type_name(ent.type));
    lua_setfield(L, -2, "type");
    lua_rawseti(L, -2, ++i);
  }
}

/* ----------------------------------------------------------------- files */

/* [-0, +0, v] The open file at `idx` (not closing). */
static lfile *check_file(lua_State *L, int idx) {
  lfile **box = luaL_checkudata(L, idx, FILE_MT);
  if (*box == NULL || (*box)->fd < 0 || (*box)->closing) luaL_error(L, "attempt to use a closed file");
  return *box;
}

/* Closes the descriptor of `f` now, on the loop thread. */
static void file_close_now(lfile *f) {
  uv_fs_t req;
  if (f->fd < 0) return;
  uv_fs_close(NULL, &req, f->fd, NULL);
  uv_fs_req_cleanup(&req);
  f->fd = -1;
}

/* [-0, +1, m] Pushes a file object for descriptor `fd` opened at `path`. */
static void push_file(lua_State *L, tide_rt *rt, uv_file fd, const char *path) {
  lfile **box = lua_newuserdatauv(L, sizeof(lfile *), 0);
  size_t len = strlen(path);
  lfile *f;
  *box = NULL;
  luaL_setmetatable(L, FILE_MT);
  if ((f = calloc(1, sizeof(lfile) + len)) == NULL) {
    uv_fs_t req;
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    luaL_error(L, "not enough memory");
  }
  f->fd = fd;
  f->rt = rt;
  memcpy(f->path, path, len + 1);
  *box = f;
}

static void op_cancel(tide_promise *p, void *data) {
  (void)p;
  uv_cancel((uv_req_t *)&((fsop *)data)->req);  /* the callback frees it */
}

/* [-0, +1, e] Pushes the promise of a new request; when `file` is given,
 * the promise keeps the file object at `file_idx` alive. */
static fsop *op_new(lua_State *L, lfile *file, int file_idx) {
  tide_lua *tl = tide_lua_get(L);
  lpromise *lp;
  fsop *op;
  file_idx = lua_absindex(L, file_idx);
  lp = tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_OWNER);
  if ((op = calloc(1, sizeof(*op))) == NULL) luaL_error(L, "not enough memory");
  op->rt = tl->rt;
  op->lp = lp;
  op->file = file;
  op->offset = -1;
  op->req.data = op;
  if (file) {
    lua_pushvalue(L, file_idx);
    lua_setiuservalue(L, -2, UV_OWNER);
  }
  return op;
}

/* [-0, +0, m] After the uv_fs call that should have started `op` returned
 * `err`: on success the promise on top is held (and cancellable when
 * `cancel`), else it is rejected at once and `op` freed. */
static void op_started(lua_State *L, fsop *op, int err, int cancel) {
  if (err < 0) {
    tide_lua_push_uverror(L, err);
    tide_lp_settle(L, -2, TIDE_REJECTED, -1, 1);
    lua_pop(L, 1);  /* remove the error */
    uv_fs_req_cleanup(&op->req);
    free(op->mem);
    free(op);
    return;
  }
  if (op->file) op->file->inflight++;
  tide_lp_hold(L, -1);
  if (cancel) tide_promise_on_cancel(&op->lp->p, op_cancel, op);
}

/* [-0, +0, m] Starts closing `f` for its close() promise, whose hold
 * moves to the request. When the request cannot start, closes at once. */
static void start_close(lua_State *L, lfile *f) {
  tide_lua *tl = tide_lua_get(L);
  lpromise *lp = f->closer;
  fsop *op = calloc(1, sizeof(*op));
  if (op != NULL) {
    op->rt = tl->rt;
    op->lp = lp;
    op->file = f;
    op->req.data = op;
    f->inflight++;
    if (uv_fs_close(tide_rt_loop(tl->rt), &op->req, f->fd, fsop_cb) == 0) return;
    f->inflight--;
    free(op);
  }
  file_close_now(f);
  f->closer = NULL;
  tide_op_settle(L, lp, TIDE_FULFILLED, 0);
}

/* [-0, +0, m] A request on `f` ended (L is NULL when the Lua side is
 * gone): a waiting close starts once none is left; a collected file is
 * closed and freed. */
static void file_release(lua_State *L, lfile *f) {
  if (--f->inflight > 0) return;
  if (f->collected || L == NULL) {
    file_close_now(f);
    if (f->collected) free(f);
    return;
  }
  if (f->closer) start_close(L, f);
}

/* f:close() -> promise fulfilled once the descriptor is closed (after the
 * requests in flight on it). Closing again returns the same promise, or a
 * fulfilled one. */
static int f_close(lua_State *L) {
  lfile **box = luaL_checkudata(L, 1, FILE_MT);
  lfile *f = *box;
  if (f == NULL) return luaL_error(L, "attempt to use a closed file");
  lua_settop(L, 1);
  if (f->closer) {             /* closing: the same promise */
    tide_lp_push(L, f->closer);
    return 1;
  }
  tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_OWNER);
  if (f->fd < 0 || f->closing) {
    tide_lp_settle(L, 2, TIDE_FULFILLED, 3, 0);
    return 1;
  }
  f->closing = 1;
  f->closer = lua_touserdata(L, 2);  /* until the descriptor is closed */
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 2, UV_OWNER);  /* keeps the file */
  tide_lp_hold(L, 2);          /* held until closed */
  if (f->inflight == 0) start_close(L, f);
  return 1;
}

/* __close: closes at once when no request runs, else as close() does. */
static int f_tbc_close(lua_State *L) {
  lfile **box = luaL_checkudata(L, 1, FILE_MT);
  lfile *f = *box;
  if (f == NULL || f->fd < 0 || f->closing) return 0;
  if (f->inflight == 0) {
    file_close_now(f);
    return 0;
  }
  lua_settop(L, 1);
  return f_close(L);
}

static int f_gc(lua_State *L) {
  lfile **box = lua_touserdata(L, 1);
  lfile *f = *box;
  if (f == NULL) return 0;
  *box = NULL;
  f->collected = 1;
  if (f->inflight == 0) {
    file_close_now(f);
    free(f);
  }
  return 0;
}

/* f:read(n [, offset]) -> promise of up to n bytes (nil at the end of the
 * file), read at `offset` or at the file position. */
static int f_read(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  lfile *f = check_file(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  int64_t offset = check_offset(L, 3);
  uv_buf_t buf;
  fsop *op;
  luaL_argcheck(L, n > 0 && n <= READ_MAX, 2, "byte count must be in 1..0x7ffff000");
  op = op_new(L, f, 1);
  if ((op->mem = malloc((size_t)n)) == NULL) {
    free(op);
    return luaL_error(L, "not enough memory");
  }
  buf = uv_buf_init(op->mem, (unsigned)n);
  op_started(L, op, uv_fs_read(tide_rt_loop(tl->rt), &op->req, f->fd, &buf, 1, offset, fsop_cb), 1);
  return 1;
}

/* f:write(data [, offset]) -> promise of the number of bytes written (all
 * of them), at `offset` or at the file position. */
static int f_write(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  lfile *f = check_file(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int64_t offset = check_offset(L, 3);
  uv_buf_t buf;
  fsop *op = op_new(L, f, 1);
  if (len > 0 && (op->mem = malloc(len)) == NULL) {
    free(op);
    return luaL_error(L, "not enough memory");
  }
  if (len > 0) memcpy(op->mem, data, len);
  op->len = len;
  op->offset = offset;
  buf = uv_buf_init(op->mem, (unsigned)(len > READ_MAX ? READ_MAX : len));
  op_started(L, op, uv_fs_write(tide_rt_loop(tl->rt), &op->req, f->fd, &buf, 1, offset, fsop_cb), 1);
  return 1;
}

/* f:stat() -> promise of the stat table of the open file. */
static int f_stat(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  lfile *f = check_file(L, 1);
  fsop *op = op_new(L, f, 1);
  op_started(L, op, uv_fs_fstat(tide_rt_loop(tl->rt), &op->req, f->fd, fsop_cb), 1);
  return 1;
}

static int f_index(lua_State *L) {
  lfile *f = *(lfile **)luaL_checkudata(L, 1, FILE_MT);
  const char *key = tide_lua_index_key(L);
  if (key == NULL || f == NULL) return 1;
  if (strcmp(key, "path") == 0) lua_pushstring(L, f->path);
  else if (strcmp(key, "closed") == 0) lua_pushboolean(L, f->fd < 0 || f->closing);
  return 1;
}

static int f_tostring(lua_State *L) {
  lfile **box = luaL_checkudata(L, 1, FILE_MT);
  lfile *f = *box;
  if (f == NULL) lua_pushfstring(L, "tide.fs.file (closed): %p", (void *)box);
  else lua_pushfstring(L, "tide.fs.file (%s%s): %p", f->path, f->fd < 0 || f->closing ? ", closed" : "", (void *)box);
  return 1;
}

/* ------------------------------------------------------------- callbacks */

/* [-0, +0, m] Rejects the promise of `op` with the error of `status`,
 * naming its path (both paths for rename). */
static void op_fail(lua_State *L, fsop *op, int status) {
  const char *path = op->file ? op->file->path : op->req.path;
  int top = lua_gettop(L);
  if (op->req.new_path) path = lua_pushfstring(L, "%s -> %s", path, op->req.new_path);
  tide_lua_push_uverror_at(L, status, path);
  if (lua_gettop(L) > top + 1) lua_remove(L, top + 1);  /* remove the paths */
  tide_op_settle(L, op->lp, TIDE_REJECTED, 1);
}

/* [-0, +n, m] Pushes the results of the successful request `op`; returns
 * their count. */
static int push_result(lua_State *L, fsop *op) {
  uv_fs_t *req = &op->req;
  switch (req->fs_type) {
    case UV_FS_OPEN:
      push_file(L, op->rt, (uv_file)req->result, req->path);
      return 1;
    case UV_FS_STAT: case UV_FS_LSTAT: case UV_FS_FSTAT:
      push_stat(L, &req->statbuf);
      return 1;
    case UV_FS_SCANDIR:
      push_entries(L, req);
      return 1;
    case UV_FS_READ:
      if (req->result == 0) lua_pushnil(L);  /* the end of the file */
      else lua_pushlstring(L, op->mem, (size_t)req->result);
      return 1;
    case UV_FS_WRITE:
      lua_pushinteger(L, (lua_Integer)op->len);
      return 1;
    case UV_FS_MKDTEMP:
      lua_pushstring(L, req->path);
      return 1;
    case UV_FS_REALPATH:
      lua_pushstring(L, req->ptr);
      return 1;
    default:
      return 0;
  }
}

/* [-0, +0, -] A write that wrote part of its data goes on with the rest;
 * returns 1 when it did. */
static int write_more(fsop *op) {
  uv_fs_t *req = &op->req;
  size_t left;
  uv_buf_t buf;
  if (req->fs_type != UV_FS_WRITE || req->result <= 0) return 0;
  op->done += (size_t)req->result;
  if (op->done >= op->len) return 0;
  left = op->len - op->done;
  buf = uv_buf_init(op->mem + op->done, (unsigned)(left > READ_MAX ? READ_MAX : left));
  uv_fs_req_cleanup(req);
  req->result = uv_fs_write(req->loop, req, op->file->fd, &buf, 1,
                            op->offset < 0 ? -1 : op->offset + (int64_t)op->done, fsop_cb);
  return req->result == 0;
}

static void fsop_cb(uv_fs_t *req) {
  fsop *op = req->data;
  tide_rt *rt = op->rt;
  tide_lua *tl = tide_lua_of(rt);
  lua_State *L = tide_op_state(rt, op->lp);  /* NULL: nothing to settle */
  if (L != NULL && write_more(op)) return;
  if (req->fs_type == UV_FS_CLOSE) {         /* closed, even on error */
    op->file->fd = -1;
    op->file->closer = NULL;
  }
  if (req->fs_type == UV_FS_OPEN && req->result >= 0 && L == NULL) {
    uv_fs_t close_req;                        /* nobody wants it now */
    uv_fs_close(NULL, &close_req, (uv_file)req->result, NULL);
    uv_fs_req_cleanup(&close_req);
  }
  if (L != NULL) {
    if (req->result < 0) op_fail(L, op, (int)req->result);
    else tide_op_settle(L, op->lp, TIDE_FULFILLED, push_result(L, op));
  }
  uv_fs_req_cleanup(req);
  if (op->file) file_release(tl ? tl->L : NULL, op->file);
  free(op->mem);
  free(op);
  tide_rt_drain(rt);
}

/* ------------------------------------------------------ path operations */

enum { P_STAT, P_LSTAT, P_READDIR, P_MKDIR, P_RMDIR, P_UNLINK, P_RENAME, P_MKDTEMP, P_REALPATH };

/* The path operations, told apart by upvalue 1:
 *   stat(path), lstat(path) -> promise of a stat table
 *   readdir(path) -> promise of a list of {name =, type =}
 *   mkdir(path [, mode = "777"]), rmdir(path), unlink(path),
 *   rename(from, to) -> promise fulfilled with nothing
 *   mkdtemp(template) -> promise of the new directory's path
 *     (the template ends with "XXXXXX")
 *   realpath(path) -> promise of the canonical absolute path */
static int l_path_op(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  uv_loop_t *loop = tide_rt_loop(tl->rt);
  int kind = (int)lua_tointeger(L, lua_upvalueindex(1)), err = 0;
  const char *path = check_path(L, 1), *to = NULL;
  int mode = 0;
  fsop *op;
  if (kind == P_RENAME) to = check_path(L, 2);
  if (kind == P_MKDIR) mode = check_mode(L, 2, 0777);
  op = op_new(L, NULL, 0);
  switch (kind) {
    case P_STAT: err = uv_fs_stat(loop, &op->req, path, fsop_cb); break;
    case P_LSTAT: err = uv_fs_lstat(loop, &op->req, path, fsop_cb); break;
    case P_READDIR: err = uv_fs_scandir(loop, &op->req, path, 0, fsop_cb); break;
    case P_MKDIR: err = uv_fs_mkdir(loop, &op->req, path, mode, fsop_cb); break;
    case P_RMDIR: err = uv_fs_rmdir(loop, &op->req, path, fsop_cb); break;
    case P_UNLINK: err = uv_fs_unlink(loop, &op->req, path, fsop_cb); break;
    case P_RENAME: err = uv_fs_rename(loop, &op->req, path, to, fsop_cb); break;
    case P_MKDTEMP: err = uv_fs_mkdtemp(loop, &op->req, path, fsop_cb); break;
    case P_REALPATH: err = uv_fs_realpath(loop, &op->req, path, fsop_cb); break;
  }
  op_started(L, op, err, 1);
  return 1;
}

/* tide.fs.open(path [, flags = "r" [, mode = "666"]]) -> promise of a file
 * object. */
static int l_open(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  const char *path = check_path(L, 1);
  int flags = check_flags(L, 2);
  int mode = check_mode(L, 3, 0666);
  fsop *op = op_new(L, NULL, 0);
  op_started(L, op, uv_fs_open(tide_rt_loop(tl->rt), &op->req, path, flags, mode, fsop_cb), 1);
  return 1;
}

/* ---------------------------------------------------- readfile/writefile */

typedef struct fsjob {
  uv_work_t work;
  tide_rt *rt;
  uv_loop_t *loop;
  lpromise *lp;             /* held until the callback */
  int write;                /* writefile */
  int flags, mode;          /* writefile: how to open */
  int status;               /* 0, or the libuv error that ended the job */
  char *data;               /* readfile: what was read; writefile: a copy */
  size_t len;
  char path[1];
} fsjob;

/* On the pool: reads all of `fd` into j->data. */
static int read_all(fsjob *j, uv_file fd) {
  uv_fs_t req;
  size_t cap, max = (size_t)READFILE_MAX + 1;
  int err = uv_fs_fstat(j->loop, &req, fd, NULL);
  cap = err == 0 && req.statbuf.st_size > 0 ? (size_t)req.statbuf.st_size + 1 : 65536;
  uv_fs_req_cleanup(&req);
  if (err < 0) return err;
  if (cap > max) return UV_EFBIG;
  for (;;) {
    uv_buf_t buf;
    if (j->data == NULL || j->len == cap) {  /* (re)allocate, up to max */
      char *bigger;
      if (j->data) cap = cap > max / 2 ? max : cap * 2;
      if (j->len == cap) return UV_EFBIG;     /* more than READFILE_MAX */
      if ((bigger = realloc(j->data, cap)) == NULL) return UV_ENOMEM;
      j->data = bigger;
    }
    buf = uv_buf_init(j->data + j->len, (unsigned)(cap - j->len));
    err = uv_fs_read(j->loop, &req, fd, &buf, 1, -1, NULL);
    uv_fs_req_cleanup(&req);
    if (err < 0) return err;
    if (err == 0) return 0;
    j->len += (size_t)err;
  }
}

/* On the pool: writes all of j->data to `fd`. */
static int write_all(fsjob *j, uv_file fd) {
  size_t done = 0;
  while (done < j->len) {
    uv_fs_t req;
    size_t left = j->len - done;
    uv_buf_t buf = uv_buf_init(j->data + done, (unsigned)(left > READ_MAX ? READ_MAX : left));
    int n = uv_fs_write(j->loop, &req, fd, &buf, 1, -1, NULL);
    uv_fs_req_cleanup(&req);
    if (n < 0) return n;
    if (n == 0) return UV_EIO;
    done += (size_t)n;
  }
  return 0;
}

static void job_work(uv_work_t *w) {
  fsjob *j = w->data;
  uv_fs_t req;
  int fd, err;
  fd = uv_fs_open(j->loop, &req, j->path, j->write ? j->flags : O_RDONLY, j->mode, NULL);
  uv_fs_req_cleanup(&req);
  if (fd < 0) {
    j->status = fd;
    return;
  }
  j->status = j->write ? write_all(j, fd) : read_all(j, fd);
  err = uv_fs_close(j->loop, &req, fd, NULL);
  uv_fs_req_cleanup(&req);
  if (j->status == 0 && err < 0) j->status = err;
}

static void job_done(uv_work_t *w, int status) {
  fsjob *j = w->data;
  tide_rt *rt = j->rt;
  lua_State *L = tide_op_state(rt, j->lp);
  if (L != NULL) {
    if (status == 0) status = j->status;
    if (status < 0) {
      tide_op_fail(L, j->lp, status, j->path);
    } else if (j->write) {
      lua_pushinteger(L, (lua_Integer)j->len);
      tide_op_settle(L, j->lp, TIDE_FULFILLED, 1);
    } else {
      lua_pushlstring(L, j->data ? j->data : "", j->len);
      tide_op_settle(L, j->lp, TIDE_FULFILLED, 1);
    }
  }
  free(j->data);
  free(j);
  tide_rt_drain(rt);
}

static void job_cancel(tide_promise *p, void *data) {
  (void)p;
  uv_cancel((uv_req_t *)&((fsjob *)data)->work);  /* job_done frees it */
}

/* [-0, +1, e] Pushes the promise of job `j` (path at `path_idx`) and
 * queues it on libuv's pool. */
static int job_start(lua_State *L, fsjob *j) {
  tide_lua *tl = tide_lua_get(L);
  int err;
  j->rt = tl->rt;
  j->loop = tide_rt_loop(tl->rt);
  j->work.data = j;
  j->lp = tide_lp_new(L, sizeof(lpromise), LP_PLAIN, UV_EVENTS);
  err = uv_queue_work(j->loop, &j->work, job_work, job_done);
  if (err != 0) {
    tide_lua_push_uverror_at(L, err, j->path);
    tide_lp_settle(L, -2, TIDE_REJECTED, -1, 1);
    lua_pop(L, 1);  /* remove the error */
    free(j->data);
    free(j);
    return 1;
  }
  tide_lp_hold(L, -1);
  tide_promise_on_cancel(&j->lp->p, job_cancel, j);
  return 1;
}

/* [-0, +0, e] A new job about `path`. */
static fsjob *job_new(lua_State *L, const char *path) {
  size_t len = strlen(path);
  fsjob *j = calloc(1, sizeof(fsjob) + len);
  if (j == NULL) luaL_error(L, "not enough memory");
  memcpy(j->path, path, len + 1);
  return j;
}

/* tide.fs.readfile(path) -> promise of the whole content (at most 1 GiB). */
static int l_readfile(lua_State *L) {
  const char *path = check_path(L, 1);
  return job_start(L, job_new(L, path));
}

/* tide.fs.writefile(path, data [, {append = false, mode = "666"}]) ->
 * promise of the number of bytes written: replaces (or appends to) the
 * file, creating it when missing. */
static int l_writefile(lua_State *L) {
  const char *path = check_path(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int append = 0, mode = 0666;
  fsjob *j;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "append");
    append = lua_toboolean(L, -1);
    lua_getfield(L, 3, "mode");
    mode = check_mode(L, -1, 0666);
    lua_pop(L, 2);  /* remove append and mode */
  }
  j = job_new(L, path);
  if (len > 0 && (j->data = malloc(len)) == NULL) {
    free(j);
    return luaL_error(L, "not enough memory");
  }
  if (len > 0) memcpy(j->data, data, len);
  j->len = len;
  j->write = 1;
  j->flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
  j->mode = mode;
  return job_start(L, j);
}

/* ----------------------------------------------------------------- watch */

typedef struct lwatch {
  uv_fs_event_t h;
  tide_rt *rt;
  tide_feed feed;           /* changes: filename, event */
} lwatch;

static void watch_close_cb(uv_handle_t *h) { free(h->data); }

/* [-0, +0, v] The open watcher at `idx`. */
static lwatch *check_watch(lua_State *L, int idx) {
  lwatch **box = luaL_checkudata(L, idx, WATCH_MT);
  if (*box == NULL) luaL_error(L, "attempt to use a closed watcher");
  return *box;
}

/* [-0, +0, m] Closes the watcher at `idx` (nothing when closed already);
 * waiting next() promises are fulfilled with nothing when `settle`. */
static void watch_close(lua_State *L, int idx, int settle) {
  lwatch **box = luaL_checkudata(L, idx, WATCH_MT);
  lwatch *w = *box;
  if (w == NULL) return;
  *box = NULL;
  tide_feed_close(L, &w->feed, settle);
  uv_close((uv_handle_t *)&w->h, watch_close_cb);
}

static void watch_cb(uv_fs_event_t *h, const char *filename, int events, int status) {
  lwatch *w = h->data;
  tide_lua *tl = tide_lua_of(w->rt);
  lua_State *L;
  char path[4096];
  size_t len = sizeof(path);
  int top;
  if (tl == NULL) return;
  L = tl->L;
  top = lua_gettop(L);
  if (status < 0) {
    if (uv_fs_event_getpath(h, path, &len) != 0) path[0] = '\0';
    tide_lua_push_uverror_at(L, status, path);
    tide_feed_fail(L, &w->feed);
  } else {
    if (events & UV_RENAME) {
      lua_pushstring(L, filename);
      lua_pushliteral(L, "rename");
      tide_feed_push(L, &w->feed);
    }
    if (events & UV_CHANGE) {
      lua_pushstring(L, filename);
      lua_pushliteral(L, "change");
      tide_feed_push(L, &w->feed);
    }
  }
  tide_stack_check(L, top, 0);
  tide_rt_drain(w->rt);
}

/* tide.fs.watch(path [, {queue = 1024, recursive =}]) -> watcher of the file or
 * directory `path`; raises the error of a failed start (ENOENT). */
static int l_watch(lua_State *L) {
  tide_lua *tl = tide_lua_get(L);
  const char *path = check_path(L, 1);
  lua_Integer queue = 1024;
  lwatch **box, *w;
  int err;
  unsigned flags = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    queue = tide_opt_int(L, 2, "queue", queue, 0, LUA_MAXINTEGER);
    if (lua_getfield(L, 2, "recursive") != LUA_TNIL && lua_toboolean(L, -1)) {
#ifdef __linux__
      /* inotify watches one directory; libuv would ignore the flag */
      tide_lua_push_error(L, "ENOTSUP", "recursive watching is not supported on Linux: watch each directory");
      return lua_error(L);
#else
      flags = UV_FS_EVENT_RECURSIVE;
#endif
    }
  }
  lua_settop(L, 1);
  box = lua_newuserdatauv(L, sizeof(lwatch *), 0);
  *box = NULL;
  luaL_setmetatable(L, WATCH_MT);
  if ((w = calloc(1, sizeof(*w))) == NULL) return luaL_error(L, "not enough memory");
  uv_fs_event_init(tide_rt_loop(tl->rt), &w->h);
  w->h.data = w;
  w->rt = tl->rt;
  *box = w;
  tide_feed_init(L, &w->feed, (uv_handle_t *)&w->h, 2, queue);
  if ((err = uv_fs_event_start(&w->h, watch_cb, path, flags)) != 0) {
    watch_close(L, 2, 0);
    tide_lua_push_uverror_at(L, err, path);
    return lua_error(L);
  }
  return 1;
}

/* w:next([timeout]) -> promise of (filename, event) of the next change,
 * event being "rename" (created, deleted, moved) or "change"; fulfilled
 * with nothing when the watcher closes first. */
static int w_next(lua_State *L) {
  return tide_feed_lnext(L, &check_watch(L, 1)->feed);
}

/* w:close(): stops watching. */
static int w_close(lua_State *L) { watch_close(L, 1, 1); return 0; }
static int w_gc(lua_State *L) { watch_close(L, 1, 0); return 0; }

static int w_index(lua_State *L) {
  lwatch *w = *(lwatch **)luaL_checkudata(L, 1, WATCH_MT);
  const char *key = tide_lua_index_key(L);
  char path[4096];
  size_t len = sizeof(path);
  if (key == NULL || w == NULL) return 1;
  if (strcmp(key, "path") == 0) {
    if (uv_fs_event_getpath(&w->h, path, &len) == 0) lua_pushlstring(L, path, len);
    return 1;
  }
  tide_feed_field(L, &w->feed, key);
  return 1;
}

static int w_tostring(lua_State *L) {
  lwatch **box = luaL_checkudata(L, 1, WATCH_MT);
  lua_pushfstring(L, "tide.fs.watcher%s: %p", *box ? "" : " (closed)", (void *)box);
  return 1;
}

/* ------------------------------------------------------------------ open */

static const luaL_Reg file_methods[] = {
  {"read", f_read},
  {"write", f_write},
  {"stat", f_stat},
  {"close", f_close},
  {NULL, NULL}
};

static const luaL_Reg file_meta[] = {
  {"__gc", f_gc},
  {"__close", f_tbc_close},
  {"__tostring", f_tostring},
  {NULL, NULL}
};

static const luaL_Reg watch_methods[] = {
  {"next", w_next},
  {"close", w_close},
  {NULL, NULL}
};

static const luaL_Reg watch_meta[] = {
  {"__gc", w_gc},
  {"__close", w_close},
  {"__tostring", w_tostring},
  {NULL, NULL}
};

static const struct { const char *name; int kind; } path_ops[] = {
  {"stat", P_STAT}, {"lstat", P_LSTAT}, {"readdir", P_READDIR},
  {"mkdir", P_MKDIR}, {"rmdir", P_RMDIR}, {"unlink", P_UNLINK},
  {"rename", P_RENAME}, {"mkdtemp", P_MKDTEMP}, {"realpath", P_REALPATH},
  {NULL, 0}
};

static const luaL_Reg fs_funcs[] = {
  {"open", l_open},
  {"readfile", l_readfile},
  {"writefile", l_writefile},
  {"watch", l_watch},
  {NULL, NULL}
};

/* [-0, +0, m] Adds tide.fs to the module table at the top. */
int tide_open_fs(lua_State *L) {
  int i;
  tide_lua_newclass(L, FILE_MT, file_meta, file_methods, f_index);
  tide_lua_newclass(L, WATCH_MT, watch_meta, watch_methods, w_index);
  luaL_newlib(L, fs_funcs);
  for (i = 0; path_ops[i].name; i++) {
    lua_pushinteger(L, path_ops[i].kind);
    lua_pushcclosure(L, l_path_op, 1);
    lua_setfield(L, -2, path_ops[i].name);
  }
  lua_setfield(L, -2, "fs");
  return 0;
}
