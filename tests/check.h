/* check.h - the test harness. Each tests/test_*.c is one program:
 *
 *   static void test_something(void) { CHECK(1 + 1 == 2); CHECK_NEAR(x, 0.5, 1e-6); }
 *   int main(void) { RUN(test_something); return check_finish(); }
 *
 * Every RUN prints "ok <name>" or "FAIL <name>" with the failing checks; check_finish
 * prints "# RESULT <passed> <failed>", which tests/run.sh adds up. */
#ifndef MPNAS_CHECK_H
#define MPNAS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int check__passed, check__failed, check__failures_here;

static void check__fail(const char *file, int line, const char *what) {
  if (check__failures_here < 10) printf("    %s:%d: %s\n", file, line, what);
  check__failures_here++;
}

#define CHECK(cond)                                     \
  do {                                                  \
    if (!(cond)) check__fail(__FILE__, __LINE__, #cond); \
  } while (0)

#define CHECK_MSG(cond, ...)                              \
  do {                                                    \
    if (!(cond)) {                                        \
      char check__buf[512];                               \
      snprintf(check__buf, sizeof check__buf, __VA_ARGS__); \
      check__fail(__FILE__, __LINE__, check__buf);        \
    }                                                     \
  } while (0)

/* |a - b| <= tol, and neither is NaN. */
#define CHECK_NEAR(a, b, tol)                                                         \
  do {                                                                                \
    double check__a = (double)(a), check__b = (double)(b);                            \
    if (!(fabs(check__a - check__b) <= (double)(tol))) {                              \
      char check__buf[256];                                                           \
      snprintf(check__buf, sizeof check__buf, "%s = %.9g, %s = %.9g, tol %.3g", #a,     \
               check__a, #b, check__b, (double)(tol));                                \
      check__fail(__FILE__, __LINE__, check__buf);                                    \
    }                                                                                 \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                            \
  do {                                                                                \
    long long check__a = (long long)(a), check__b = (long long)(b);                   \
    if (check__a != check__b) {                                                       \
      char check__buf[256];                                                           \
      snprintf(check__buf, sizeof check__buf, "%s = %lld, expected %s = %lld", #a,      \
               check__a, #b, check__b);                                               \
      check__fail(__FILE__, __LINE__, check__buf);                                    \
    }                                                                                 \
  } while (0)

static double check_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void check__run(const char *name, void (*fn)(void)) {
  check__failures_here = 0;
  double t0 = check_seconds();
  fn();
  double dt = check_seconds() - t0;
  if (check__failures_here == 0) {
    check__passed++;
    printf("ok   %s (%.2fs)\n", name, dt);
  } else {
    check__failed++;
    printf("FAIL %s (%d failed checks)\n", name, check__failures_here);
  }
  fflush(stdout);
}
#define RUN(fn) check__run(#fn, fn)

static int check_finish(void) {
  printf("# RESULT %d %d\n", check__passed, check__failed);
  return check__failed ? 1 : 0;
}

#endif
