/* timers.c — the libuv C peer of tide_timers.lua: N one-shot 1 ms timers
 * started at once, timed (uv_hrtime) until the last one fired and every
 * handle is closed. Each timer is malloc'd and freed in its close callback,
 * as a runtime would.
 * Usage: timers [N=100000]   prints "RESULT timers <value> timers/s" */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

static long fired;

static void close_cb(uv_handle_t *h) { free(h); }

static void timer_cb(uv_timer_t *t) {
  fired++;
  uv_close((uv_handle_t *)t, close_cb);
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000, i;
  uv_loop_t *loop = uv_default_loop();
  uint64_t t0;
  if (n <= 0) { fprintf(stderr, "usage: timers [N]\n"); return 2; }
  t0 = uv_hrtime();
  for (i = 0; i < n; i++) {
    uv_timer_t *t = malloc(sizeof(*t));
    if (t == NULL) return 1;
    uv_timer_init(loop, t);
    uv_timer_start(t, timer_cb, 1, 0);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  if (fired != n) { fprintf(stderr, "timers: %ld of %ld fired\n", fired, n); return 1; }
  printf("RESULT timers %.0f timers/s\n", (double)n / ((double)(uv_hrtime() - t0) / 1e9));
  return 0;
}
