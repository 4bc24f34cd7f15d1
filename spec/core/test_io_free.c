/* test_io_free.c — tide_rt_free() while I/O of udp.c, dns.c, signal.c and
 * fs.c is still in flight: the runtime closes its Lua state first, then the
 * pool and the loop finish the requests, whose callbacks must touch no Lua
 * memory, leak nothing and close what they opened (ASan checks). */
#include "tide.h"
#include "test.h"

#include <dirent.h>

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (d == NULL) return -1;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

static const char chunk[] =
  "local keep = {}\n"
  "keep.sig = tide.signal('SIGUSR1')\n"
  "keep.sigs = tide.signals('SIGUSR2')\n"
  "keep.signext = keep.sigs:next()\n"
  "keep.u = tide.udp.bind{host = '127.0.0.1'}\n"
  "keep.recv = keep.u:recv(5)\n"
  "keep.u2 = tide.udp.bind{host = '127.0.0.1'}\n"
  "keep.send = keep.u2:send('x', 'localhost', keep.u.port)\n"
  "keep.watch = tide.fs.watch('/tmp')\n"
  "keep.change = keep.watch:next()\n"
  "keep.f = tide.fs.open('/etc/hosts'):await()\n"
  "for i = 1, 8 do keep[#keep + 1] = keep.f:read(64, 0) end\n"
  "keep.close = keep.f:close()\n"
  "for i = 1, 8 do keep[#keep + 1] = tide.fs.open('/etc/hosts') end\n"
  "keep.read = tide.fs.readfile('/etc/hosts')\n"
  "keep.dns = tide.dns.lookup('localhost')\n"
  "keep.rev = tide.dns.reverse('127.0.0.1')\n"
  "KEEP = keep\n"
  "return 'started'\n";

static int done_calls;
static void done_cb(tide_rt *rt, tide_state state, const tide_value *v, int n, void *data) {
  (void)rt; (void)v; (void)n; (void)data;
  if (state == TIDE_FULFILLED) done_calls++;
}

/* Runs the chunk on a new runtime and frees it with the I/O in flight. */
static int run_and_free(void) {
  tide_rt *rt;
  struct lua_State *L;
  int i;
  done_calls = 0;
  ASSERT_OK(tide_rt_new(NULL, &rt));
  ASSERT_OK(tide_lua_state(rt, &L));
  ASSERT_OK(tide_dostring(rt, chunk, done_cb, NULL));
  /* a few turns: the open completes, the rest is started and in flight */
  for (i = 0; i < 50 && done_calls == 0; i++) tide_rt_run(rt, TIDE_RUN_ONCE);
  ASSERT_EQ(done_calls, 1);
  tide_rt_free(rt);
  return 0;
}

TEST_IMPL(io_in_flight_at_free) {
  int before;
  /* The first run also opens what libuv keeps for the whole process (the
   * signal lock pipe); count from the second. */
  ASSERT_OK(run_and_free());
  before = count_fds();
  ASSERT(before > 0);
  ASSERT_OK(run_and_free());
  ASSERT_OK(run_and_free());
  ASSERT_EQ(count_fds(), before);
  return 0;
}
