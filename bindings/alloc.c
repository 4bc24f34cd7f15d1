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
 * still sees each Lua block on its own. */
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

typedef struct tide_alloc {
  void *free[NCLASSES];             /* freed blocks kept, one list per size */
  size_t kept;                      /* bytes the lists hold */
  size_t total;                     /* bytes the state holds */
  int live;                         /* the state was made: free at total 0 */
  int warn_on;                      /* warn(): on after "@on" */
  int warn_cont;                    /* warn(): inside a multi-part message */
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

/* Gives the kept blocks and the allocator itself back to malloc. */
static void alloc_destroy(tide_alloc *a) {
  size_t c;
  void *b;
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
