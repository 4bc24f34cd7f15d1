/* alloc.c — the Lua states tide creates (the binary's, a host's through
 * tide_lua_state, each pool worker's) and their memory allocator.
 *
 * Lua allocates and frees small blocks at a high rate: every promise,
 * table, closure and short string is one, and the collector frees them in
 * bursts of one size, which overflows glibc's per-thread caches and sends
 * most calls down malloc's slow paths (12-16% of the CPU time of the
 * promise, timer and HTTP benchmarks). Blocks up to POOL_MAX bytes, freed,
 * go to per-size free lists instead, and the next blocks of that size come
 * from there; Lua tells the size of every block it frees or resizes, so
 * the lists need no header. Every block is malloc's, rounded up to its
 * size class: the lists keep at most as many bytes as the state holds (or
 * KEEP_MIN), which takes a collection's bursts, and past that the blocks
 * go back to malloc. (Lists without a bound, of blocks carved from shared
 * chunks, kept every block a state ever freed: an echo server's RSS grew
 * from 5.6 to 8.6 MB in five minutes of random message sizes, where it
 * stays within 4% now; slabs returned once empty fragmented more.) A
 * state's allocator is used only by the thread that runs that state (one
 * thread per state, and no value shared between states: see
 * docs/pool.md), so it takes no lock.
 *
 * The allocator frees itself: it counts the bytes the state holds, and
 * lua_close frees the state's main block last, so the count falls to zero
 * exactly when the state is gone. However the state closes (tide's own
 * functions, a host's lua_close, os.exit(code, true) from a script), its
 * allocator goes with it.
 *
 * Under AddressSanitizer every block goes to malloc, so `make check`
 * still sees each Lua block on its own.
 *
 * Fault injection (TIDE_ALLOC_FAIL, read when a state is made, so it
 * applies to the binary's state, a host's and each pool worker's, each
 * counting its own allocations). An allocation is a request for a new
 * block or for a larger one; frees and shrinks never fail. Lua answers a
 * failed allocation with an emergency collection and one more try of the
 * same request: that retry fails too (it is not counted), so that each
 * injected failure raises one "not enough memory" error where it happened.
 *   TIDE_ALLOC_FAIL=n      the n-th allocation fails (counting from 1)
 *   TIDE_ALLOC_FAIL=n+     every allocation from the n-th on fails
 *   TIDE_ALLOC_FAIL=n/k    the n-th fails, then one in k after it
 *   TIDE_ALLOC_FAIL=count  none fails
 * In every mode a state prints, as it closes, how many allocations it made
 * and how many of them failed ("tide: TIDE_ALLOC_FAIL: 12345 allocations,
 * 1 failed"), for spec/smoke/alloc_fault.sh to find the range to sweep.
 * When the variable is unset the cost is one predictable branch on the
 * allocation path. */
#include "binding.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pooled sizes: up to 1 KiB takes in a coroutine's first stack (about
 * 700 bytes) and every promise and task userdata. */
#define POOL_LIMIT 1024
#define GRAIN 16                    /* block sizes are multiples of this */
#define NCLASSES (POOL_LIMIT / GRAIN)
#if defined(__SANITIZE_ADDRESS__)
#define POOL_MAX 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_MAX 0
#endif
#endif
#ifndef POOL_MAX
#define POOL_MAX POOL_LIMIT         /* larger blocks go to malloc */
#endif
#define KEEP_MIN (256 * 1024)       /* the lists may keep this much, or */
                                    /* as much as the state holds */

/* TIDE_ALLOC_FAIL's state (see the top of this file). */
typedef struct fault {
  unsigned long long count;         /* allocations so far */
  unsigned long long first;         /* the first to fail; 0: none */
  unsigned long long every;         /* then one in `every`; 0: no more */
  unsigned long long failed;        /* allocations failed */
  void *ptr;                        /* the request failed last, which */
  size_t osize, nsize;              /* Lua's retry repeats */
  int retry;                        /* the next request may be that retry */
} fault;

typedef struct tide_alloc {
  void *free[NCLASSES];             /* freed blocks kept, one list per size */
  size_t kept;                      /* bytes the lists hold */
  size_t total;                     /* bytes the state holds */
  int live;                         /* the state was made: free at total 0 */
  int warn_on;                      /* warn(): on after "@on" */
  int warn_cont;                    /* warn(): inside a multi-part message */
  fault *fault;                     /* TIDE_ALLOC_FAIL set: its state */
} tide_alloc;

static size_t class_of(size_t size) { return (size - 1) / GRAIN; }

/* A block of `size`'s class: a kept one, or a new one from malloc. */
static void *pool_get(tide_alloc *a, size_t size) {
  size_t c = class_of(size);
  void *b = a->free[c];
  if (b == NULL) return malloc((c + 1) * GRAIN);
  a->free[c] = *(void **)b;
  a->kept -= (c + 1) * GRAIN;
  return b;
}

/* Keeps a freed block for the next of its class, or gives it back to
 * malloc when the lists hold more than the state itself (and KEEP_MIN). */
static void pool_put(tide_alloc *a, void *b, size_t size) {
  size_t c = class_of(size);
  if (a->kept > KEEP_MIN && a->kept > a->total) {
    free(b);
    return;
  }
  *(void **)b = a->free[c];
  a->free[c] = b;
  a->kept += (c + 1) * GRAIN;
}

/* Returns 1 when the allocation (ptr, osize, nsize) is to fail. Each
 * allocation is counted, except Lua's retry of a failed one: the same
 * request again as the next allocation, which fails as well. */
static int fault_hit(fault *f, void *ptr, size_t osize, size_t nsize) {
  unsigned long long n;
  if (f->retry) {
    f->retry = 0;
    if (ptr == f->ptr && osize == f->osize && nsize == f->nsize) return 1;
  }
  n = ++f->count;
  if (f->first == 0 || n < f->first) return 0;
  if (n != f->first && (f->every == 0 || (n - f->first) % f->every != 0)) return 0;
  f->failed++;
  f->ptr = ptr;
  f->osize = osize;
  f->nsize = nsize;
  f->retry = 1;
  return 1;
}

/* Reads TIDE_ALLOC_FAIL into a new fault state; NULL when it is unset (or
 * wrong: then says so on stderr). */
static fault *fault_new(void) {
  const char *env = getenv("TIDE_ALLOC_FAIL");
  unsigned long long first = 0, every = 0;
  char *end;
  fault *f;
  if (env == NULL || *env == '\0') return NULL;
  if (strcmp(env, "count") != 0) {
    first = strtoull(env, &end, 10);
    if (*end == '+') {
      every = 1;
      end++;
    } else if (*end == '/') {
      every = strtoull(end + 1, &end, 10);
      if (every == 0) first = 0;    /* n/0 means nothing: refused */
    }
    if (first == 0 || *end != '\0') {
      fprintf(stderr, "tide: TIDE_ALLOC_FAIL=%s: n, n+, n/k or count expected\n", env);
      return NULL;
    }
  }
  if ((f = calloc(1, sizeof(*f))) == NULL) return NULL;
  f->first = first;
  f->every = every;
  return f;
}

/* Gives the kept blocks and the allocator itself back to malloc. */
static void alloc_destroy(tide_alloc *a) {
  size_t c;
  void *b;
  if (a->fault != NULL) {
    fprintf(stderr, "tide: TIDE_ALLOC_FAIL: %llu allocations, %llu failed\n",
            a->fault->count, a->fault->failed);
    free(a->fault);
  }
  for (c = 0; c < NCLASSES; c++) {
    while ((b = a->free[c]) != NULL) {
      a->free[c] = *(void **)b;
      free(b);
    }
  }
  free(a);
}

static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  tide_alloc *a = ud;
  void *b;
  if (ptr == NULL) osize = 0;       /* osize tells the object's type then */
  if (nsize == 0) {
    if (osize > POOL_MAX) free(ptr);
    else if (ptr != NULL) pool_put(a, ptr, osize);
    a->total -= osize;
    /* the state's last block (lua_close frees its main block last) */
    if (a->total == 0 && a->live) alloc_destroy(a);
    return NULL;
  }
  if (a->fault != NULL && nsize > osize && fault_hit(a->fault, ptr, osize, nsize))
    return NULL;
  if (osize > POOL_MAX && nsize > POOL_MAX) {
    b = realloc(ptr, nsize);
    if (b != NULL) a->total += nsize - osize;
    return b;
  }
  if (ptr != NULL && nsize <= POOL_MAX && osize <= POOL_MAX &&
      class_of(nsize) == class_of(osize)) {
    a->total += nsize - osize;
    return ptr;
  }
  b = nsize <= POOL_MAX ? pool_get(a, nsize) : malloc(nsize);
  /* Lua counts on shrinking never failing: keep the old block, which is
   * big enough (every block is malloc's, so any list may keep it). */
  if (b == NULL) {
    if (nsize > osize) return NULL;
    a->total -= osize - nsize;
    return ptr;
  }
  if (ptr != NULL) {
    memcpy(b, ptr, osize < nsize ? osize : nsize);
    if (osize > POOL_MAX) free(ptr);
    else pool_put(a, ptr, osize);
  }
  a->total += nsize - osize;        /* modulo 2^n: a shrink subtracts */
  return b;
}

/* As lauxlib's: an error outside any protected call. */
static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n",
          msg ? msg : "error object is not a string");
  return 0;
}

/* As lauxlib's: warnings off until "@on", each message on one stderr
 * line, "@off" turns them off again. */
static void warnf(void *ud, const char *msg, int tocont) {
  tide_alloc *a = ud;
  if (!a->warn_cont && !tocont && msg[0] == '@') {
    if (strcmp(msg, "@off") == 0) a->warn_on = 0;
    else if (strcmp(msg, "@on") == 0) a->warn_on = 1;
    return;
  }
  if (a->warn_on) {
    if (!a->warn_cont) fputs("Lua warning: ", stderr);
    fputs(msg, stderr);
    if (!tocont) fputs("\n", stderr);
    fflush(stderr);
  }
  a->warn_cont = tocont;
}

lua_State *tide_lua_newstate(void) {
  tide_alloc *a = calloc(1, sizeof(*a));
  lua_State *L;
  if (a == NULL) return NULL;
  a->fault = fault_new();
  if ((L = lua_newstate(alloc, a)) == NULL) {
    alloc_destroy(a);  /* not live yet: a failed state left it */
    return NULL;
  }
  a->live = 1;
  lua_atpanic(L, panic);
  lua_setwarnf(L, warnf, a);
  return L;
}

/* The allocator of a state made by tide_lua_newstate frees itself when
 * lua_close frees the state's last block. */
void tide_lua_closestate(lua_State *L) {
  if (L != NULL) lua_close(L);
}
