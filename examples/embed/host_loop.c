/* host_loop.c — a host that owns its event loop: one poll() waits on its
 * own stdin and on tide's backend fd, in one thread. Tide runs a TCP echo
 * server (port 0: it prints the port it got); each line typed on stdin is
 * a Lua chunk run as a task in the same runtime, its results printed by
 * the host. The server counts its clients in the global `served`.
 * Usage: host_loop    then type e.g.  return served   (EOF quits) */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <tide.h>

static const char server_lua[] =
  "served = 0\n"
  "server = tide.tcp.serve({port = 0}, function(conn)\n"
  "  served = served + 1\n"
  "  while true do\n"
  "    local line = conn:read_line():await()\n"
  "    if line == nil then return end\n"
  "    conn:write('echo: ' .. line .. '\\n'):await()\n"
  "  end\n"
  "end)\n"
  "return server.port\n";

/* Prints the outcome of a chunk: its results, or its error. */
static void print_done(tide_rt *rt, tide_state state, const tide_value *v, int n, void *data) {
  int i;
  (void)rt;
  printf("%s", data ? (const char *)data : (state == TIDE_FULFILLED ? "=" : "error:"));
  for (i = 0; i < n; i++) {
    if (state == TIDE_REJECTED && i == 1) break;  /* skip the traceback */
    switch (v[i].type) {
      case TIDE_NIL: printf(" nil"); break;
      case TIDE_BOOLEAN: printf(" %s", v[i].u.boolean ? "true" : "false"); break;
      case TIDE_INTEGER: printf(" %lld", (long long)v[i].u.integer); break;
      case TIDE_NUMBER: printf(" %g", v[i].u.number); break;
      case TIDE_BYTES: printf(" %.*s", (int)v[i].u.bytes.len, v[i].u.bytes.data); break;
    }
  }
  printf("\n");
  fflush(stdout);
}

int main(void) {
  char buf[4096];
  size_t len = 0;
  int eof = 0, err;
  tide_rt *rt;
  struct pollfd fds[2];
  uint64_t deadline;

  if ((err = tide_rt_new(NULL, &rt)) != 0 ||
      (err = tide_dostring(rt, server_lua, print_done, "listening on")) != 0) {
    fprintf(stderr, "host_loop: %s\n", uv_strerror(err));
    return 1;
  }
  fds[0].fd = STDIN_FILENO;
  fds[0].events = POLLIN;
  fds[1].fd = tide_rt_backend_fd(rt);
  fds[1].events = POLLIN;
  while (!eof) {
    /* tide says how long it can wait; its fd wakes us for its events */
    if (poll(fds, 2, tide_rt_backend_timeout(rt)) < 0 && errno != EINTR) break;
    if (fds[0].revents & (POLLIN | POLLHUP)) {
      char *nl;
      ssize_t got = read(STDIN_FILENO, buf + len, sizeof buf - 1 - len);
      if (got <= 0) eof = 1; else len += (size_t)got;
      buf[len] = '\0';
      while ((nl = strchr(buf, '\n')) != NULL || (eof && len > 0) || len == sizeof buf - 1) {
        size_t line = nl ? (size_t)(nl - buf) : len;
        buf[line] = '\0';
        if (line > 0) tide_dostring(rt, buf, print_done, NULL);
        len -= nl ? line + 1 : line;
        memmove(buf, buf + line + (nl ? 1 : 0), len + 1);
      }
    }
    tide_rt_run(rt, TIDE_RUN_NOWAIT);  /* whatever is due: never blocks */
  }
  /* stdin ended: close the server, give the last chunks and connections
   * two seconds to finish, then free (which closes what is left) */
  tide_dostring(rt, "server:close()", NULL, NULL);
  deadline = uv_hrtime() + 2000000000u;
  while (tide_rt_run(rt, TIDE_RUN_NOWAIT) != 0 && uv_hrtime() < deadline) {
    int t = tide_rt_backend_timeout(rt);
    poll(&fds[1], 1, t < 0 || t > 100 ? 100 : t);
  }
  tide_rt_free(rt);
  return 0;
}
