/* main.c — the C test runner of spec/core: runs each TEST_IMPL in a child
 * process under an alarm (TEST_TIMEOUT seconds, default 60) and prints TAP. `core_tests NAME` runs one test
 * in-process (for a debugger). */
#include "test.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define X(name) TEST_IMPL(name);
#include "test_list.h"
#undef X

static const struct tide_test tests[] = {
#define X(name) {#name, test_##name},
#include "test_list.h"
#undef X
  {NULL, NULL}
};

int main(int argc, char **argv) {
  int i, n = 0, failed = 0;
  const char *env = getenv("TEST_TIMEOUT");
  unsigned timeout = env && atoi(env) > 0 ? (unsigned)atoi(env) : TEST_TIMEOUT_SECONDS;
  for (i = 0; tests[i].name; i++) n++;
  if (argc > 1) {
    for (i = 0; tests[i].name; i++)
      if (strcmp(tests[i].name, argv[1]) == 0) return tests[i].fn();
    fprintf(stderr, "no test named %s\n", argv[1]);
    return 2;
  }
  printf("1..%d\n", n);
  fflush(stdout);
  for (i = 0; tests[i].name; i++) {
    int status = 0;
    pid_t pid = fork();
    if (pid == 0) {
      alarm(timeout);
      _exit(tests[i].fn() == 0 ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      printf("ok %d - %s\n", i + 1, tests[i].name);
    } else {
      failed++;
      if (WIFSIGNALED(status))
        printf("not ok %d - %s (signal %d%s)\n", i + 1, tests[i].name, WTERMSIG(status),
               WTERMSIG(status) == SIGALRM ? ": timed out" : "");
      else
        printf("not ok %d - %s\n", i + 1, tests[i].name);
    }
    fflush(stdout);
  }
  return failed ? 1 : 0;
}
