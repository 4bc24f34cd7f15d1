/* spec/core/test.h */
#include <stdio.h>
#include <string.h>
#include <stdint.h>
typedef int (*tide_test_fn)(void);
struct tide_test { const char *name; tide_test_fn fn; };
#define TEST_IMPL(name) int test_##name(void)
#define ASSERT(c) do { if (!(c)) { fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #c); return 1; } } while (0)
#define ASSERT_EQ(a, b) ASSERT((a) == (b))
#define ASSERT_OK(a) ASSERT((a) == 0)
#define ASSERT_STR_EQ(a, b) ASSERT(strcmp((a), (b)) == 0)

/* The runner (spec/core/main.c) runs every TEST_IMPL found in spec/core/
 * (the Makefile generates the list) and prints TAP. Each test runs in a
 * child process with an alarm, so a crash or hang fails only that test. */
#define TEST_TIMEOUT_SECONDS 60
