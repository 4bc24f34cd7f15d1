/* marshal.c — a libFuzzer target for the pool's decoder: any bytes given to
 * tide_marshal_decode must push values or one error message, never read
 * outside them or leave the stack in another shape (marshal.h: "Safe on any
 * bytes"). The input is copied to a buffer of exactly its size, so that
 * AddressSanitizer sees a read past the end.
 *
 * Ownership: one lua_State per process, kept between inputs; the stack is
 * emptied after each, and the state closed at exit, so that LeakSanitizer's
 * check then sees what the decoder left. The values decoded are Lua's to
 * free, in later collections: every input leaves more mallocs than frees,
 * so run.sh turns off libFuzzer's per-input leak check (which would run
 * LeakSanitizer after nearly every input) and leaks show at exit, as for
 * the Lua targets (lua_target.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "marshal.h"

static lua_State *state;

static void close_state(void) {
  if (state != NULL) {
    lua_close(state);
    state = NULL;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = state;
  char *copy = malloc(size ? size : 1);
  int r;

  if (L == NULL) {
    L = state = luaL_newstate();
    atexit(close_state);
  }
  if (L == NULL || copy == NULL) abort();
  memcpy(copy, data, size);
  lua_settop(L, 0);
  r = tide_marshal_decode(L, copy, size);
  free(copy);
  if (r == -1 ? !(lua_gettop(L) == 1 && lua_type(L, 1) == LUA_TSTRING)
              : (r < 0 || lua_gettop(L) != r)) {
    fprintf(stderr, "fuzz: tide_marshal_decode returned %d with %d values on the stack\n",
            r, lua_gettop(L));
    abort();
  }
  lua_settop(L, 0);
  return 0;
}
