/* rt_helpers.h — shared by the runtime, promise and host tests of
 * spec/core: a runtime on a loop the test owns (so the test can assert
 * that tide leaves it empty), a promise that counts its retains, and a
 * listener that records its calls. */
#ifndef TIDE_RT_HELPERS_H
#define TIDE_RT_HELPERS_H

#include <stdlib.h>

#include "test.h"
#include "tide.h"

/* Creates runtime `rt` on `loop`, a uv_loop_t the test owns. */
#define RT_OPEN(lp, rt)                                     \
  do {                                                      \
    tide_options o_;                                        \
    memset(&o_, 0, sizeof o_);                              \
    ASSERT_OK(uv_loop_init(lp));                            \
    o_.loop = (lp);                                         \
    ASSERT_OK(tide_rt_new(&o_, &(rt)));                     \
  } while (0)

/* Frees `rt` and checks it left nothing on `loop`: every handle tide
 * opened is closed, so the loop closes cleanly. */
#define RT_CLOSE(lp, rt)                                    \
  do {                                                      \
    tide_rt_free(rt);                                       \
    ASSERT_OK(uv_loop_close(lp));                           \
  } while (0)

/* A C promise with a retain count (the runtime must balance it). */
typedef struct counted {
  tide_promise p;
  int refs;
} counted;

static inline void counted_retain(tide_promise *p) { ((counted *)p)->refs++; }
static inline void counted_release(tide_promise *p) { ((counted *)p)->refs--; }
__attribute__((unused)) static const tide_promise_ops counted_ops = {counted_retain, counted_release, NULL};

/* A listener that records the order of its call. */
typedef struct probe {
  tide_listener l;
  int *clock;       /* shared: incremented by each call */
  int called;       /* how many times */
  int at;           /* the clock when it was called */
  tide_state state;
} probe;

static inline void probe_cb(tide_listener *l, tide_promise *src) {
  probe *pr = (probe *)l;
  pr->called++;
  pr->at = pr->clock ? ++*pr->clock : 0;
  pr->state = src->state;
}

static inline void probe_init(probe *pr, int *clock) {
  memset(pr, 0, sizeof *pr);
  pr->clock = clock;
}

/* Milliseconds since an arbitrary point. */
static inline uint64_t ms_now(void) { return uv_hrtime() / 1000000u; }

#endif
