/* alloc.c — the Lua states tide creates (the binary's, a host's through
 * tide_lua_state, each pool worker's) and their memory allocator.
 *
 * Lua allocates and frees small blocks at a high rate: every promise,
 * table, closure and short string is one, and the collector frees them in
 * bursts of one size, which overflows glibc's per-thread caches and sends
 * most calls down malloc's slow paths (12-16% of the CPU time of the
 * promise, timer and HTTP benchmarks). Blocks up to POOL_MAX bytes come
 * from slabs instead: SLAB bytes holding blocks of one size class, with
 * the blocks freed in them kept for reuse; larger ones go to malloc. Lua
 * tells the size of every block it frees or resizes, so blocks carry no
 * header. A slab whose blocks all came back goes back to malloc (but one
 * per class), so a state that once held many blocks of a size does not
 * keep them (free lists shared by a whole class, carved from common
 * chunks, did: an echo server's RSS grew by half in five minutes of
 * random message sizes, and stayed flat with plain malloc). A state's
 * allocator is used only by the thread that runs that state (one thread
 * per state, and no value shared between states: see docs/pool.md), so
 * it takes no lock.
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
#define SLAB (16 * 1024)            /* size and alignment of a slab */

/* A slab: SLAB bytes aligned to SLAB, holding blocks of one size class
 * after this header; a block finds its slab by masking its address. */
typedef struct slab {
  struct slab *prev, *next;         /* in its class's partial or full list */
  void *free;                       /* its freed blocks */
  char *bump;                       /* the part never handed out yet */
  unsigned live;                    /* blocks handed out and not freed */
  unsigned full;                    /* in the full list */
} slab;
#define SLAB_HEAD ((sizeof(slab) + GRAIN - 1) / GRAIN * GRAIN)

typedef struct tide_alloc {
  slab *partial[NCLASSES];          /* slabs with room, per class */
  slab *full[NCLASSES];             /* slabs without, to free at close */
  unsigned char empty[NCLASSES];    /* slabs of the class with no block out */
  size_t total;                     /* bytes the state holds */
  int live;                         /* the state was made: free at total 0 */
  int warn_on;                      /* warn(): on after "@on" */
  int warn_cont;                    /* warn(): inside a multi-part message */
} tide_alloc;

static size_t class_of(size_t size) { return (size - 1) / GRAIN; }

static void slab_unlink(slab **list, slab *s) {
  if (s->prev) s->prev->next = s->next;
  else *list = s->next;
  if (s->next) s->next->prev = s->prev;
}

static void slab_push(slab **list, slab *s) {
  s->prev = NULL;
  if ((s->next = *list) != NULL) s->next->prev = s;
  *list = s;
}

static void *pool_get(tide_alloc *a, size_t size) {
  size_t c = class_of(size), bsize = (c + 1) * GRAIN;
  slab *s = a->partial[c];
  void *b;
  if (s == NULL) {
    if ((s = aligned_alloc(SLAB, SLAB)) == NULL) return NULL;
    s->free = NULL;
    s->bump = (char *)s + SLAB_HEAD;
    s->live = 0;
    s->full = 0;
    slab_push(&a->partial[c], s);
    a->empty[c]++;
  }
  if (s->live++ == 0) a->empty[c]--;
  if ((b = s->free) != NULL) {
    s->free = *(void **)b;
  } else {
    b = s->bump;
    s->bump += bsize;
  }
  if (s->free == NULL && (size_t)((char *)s + SLAB - s->bump) < bsize) {
    slab_unlink(&a->partial[c], s);  /* no room left */
    slab_push(&a->full[c], s);
    s->full = 1;
  }
  return b;
}

/* A slab whose blocks all came back is freed, but for one per class,
 * kept against a burst that would take a new one at once. */
static void pool_put(tide_alloc *a, void *b, size_t size) {
  size_t c = class_of(size);
  slab *s = (slab *)((uintptr_t)b & ~(uintptr_t)(SLAB - 1));
  *(void **)b = s->free;
  s->free = b;
  if (s->full) {
    slab_unlink(&a->full[c], s);
    slab_push(&a->partial[c], s);
    s->full = 0;
  }
  if (--s->live == 0) {
    if (a->empty[c] > 0) {
      slab_unlink(&a->partial[c], s);
      free(s);
    } else {
      a->empty[c]++;
    }
  }
}

static void slabs_free(slab *s) {
  slab *next;
  for (; s != NULL; s = next) {
    next = s->next;
    free(s);
  }
}

/* Gives the slabs and the allocator itself back to malloc. */
static void alloc_destroy(tide_alloc *a) {
  size_t c;
  for (c = 0; c < NCLASSES; c++) {
    slabs_free(a->partial[c]);
    slabs_free(a->full[c]);
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
   * big enough (one from malloc then ends in a free list, and is lost when
   * the state closes: only when memory ran out). */
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
