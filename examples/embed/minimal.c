/* minimal.c — the smallest tide host: runs a Lua script as a task (top-level
 * await works) until nothing is left to do; exits with status 1 when it
 * failed (the error and its traceback are printed on stderr).
 * Usage: minimal script.lua */
#include <stdio.h>
#include <tide.h>

int main(int argc, char **argv) {
  tide_rt *rt;
  int failed;
  if (argc != 2) {
    fprintf(stderr, "usage: %s script.lua\n", argv[0]);
    return 2;
  }
  if (tide_rt_new(NULL, &rt) != 0) return 1;
  failed = tide_dofile(rt, argv[1], NULL, NULL) != 0;  /* starts the task */
  tide_rt_run(rt, TIDE_RUN_DEFAULT);                    /* runs it, and all it starts */
  failed = failed || tide_rt_unhandled_count(rt) > 0;   /* errors were reported */
  tide_rt_free(rt);
  return failed ? 1 : 0;
}
