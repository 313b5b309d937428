/* test_api.c - the public API's contract: versions, status strings, context parameters,
 * error paths (status + message, nothing leaked), allocator hooks, logging. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "mpnas.h"

/* A counting allocator: every test that creates handles through it checks that all
 * blocks came back, and can make the n-th allocation fail. */
typedef struct {
  long live, total, fail_at;
} counting;
static void *counting_malloc(void *user, size_t size) {
  counting *c = user;
  if (c->fail_at > 0 && c->total + 1 == c->fail_at) {
    c->total++;
    return NULL;
  }
  c->total++;
  void *p = malloc(size);
  if (p) c->live++;
  return p;
}
static void counting_free(void *user, void *ptr) {
  counting *c = user;
  if (ptr) c->live--;
  free(ptr);
}

static void test_version(void) {
  CHECK_EQ_INT(mpnas_version_number(), MPNAS_VERSION_NUMBER);
  CHECK(strcmp(mpnas_version_string(), MPNAS_VERSION_STRING) == 0);
  char buf[32];
  snprintf(buf, sizeof buf, "%d.%d.%d", MPNAS_VERSION_MAJOR, MPNAS_VERSION_MINOR,
           MPNAS_VERSION_PATCH);
  CHECK(strcmp(buf, MPNAS_VERSION_STRING) == 0);
}

static void test_status_strings(void) {
  /* Every defined code has its own non-empty string; unknown codes say so. */
  const char *seen[16] = {0};
  for (int32_t s = MPNAS_OK; s >= MPNAS_E_INTERNAL; s--) {
    const char *str = mpnas_status_string(s);
    CHECK(str != NULL && str[0] != '\0');
    CHECK(strcmp(str, "unknown status") != 0);
    for (int j = 0; j < -s; j++) CHECK(strcmp(seen[j], str) != 0);
    seen[-s] = str;
  }
  CHECK(strcmp(mpnas_status_string(-999), "unknown status") == 0);
  CHECK(strcmp(mpnas_status_string(5), "unknown status") == 0);
  /* The numbers are part of the ABI. */
  CHECK_EQ_INT(MPNAS_E_INVALID_ARGUMENT, -1);
  CHECK_EQ_INT(MPNAS_E_OUT_OF_RANGE, -3);
  CHECK_EQ_INT(MPNAS_E_INTERNAL, -12);
}

static void test_context_defaults(void) {
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  CHECK(ctx != NULL);
  int64_t v = -1;
  CHECK_EQ_INT(mpnas_context_get_int(ctx, MPNAS_CONTEXT_THREADS, &v), MPNAS_OK);
  CHECK_EQ_INT(v, 1);
  CHECK_EQ_INT(mpnas_context_get_int(ctx, MPNAS_CONTEXT_SEED, &v), MPNAS_OK);
  CHECK_EQ_INT(v, 0);
  CHECK_EQ_INT(mpnas_context_get_int(ctx, MPNAS_CONTEXT_ISA, &v), MPNAS_OK);
  CHECK_EQ_INT(v, MPNAS_ISA_AUTO);
  CHECK_EQ_INT(mpnas_context_get_int(ctx, MPNAS_CONTEXT_ISA_ACTIVE, &v), MPNAS_OK);
  CHECK(v == MPNAS_ISA_SCALAR || v == MPNAS_ISA_AVX2 || v == MPNAS_ISA_NEON);
  CHECK_EQ_INT(mpnas_isa_supported((int32_t)v), 1);
  CHECK_EQ_INT(mpnas_context_get_int(ctx, MPNAS_CONTEXT_LOG_LEVEL, &v), MPNAS_OK);
  CHECK_EQ_INT(v, MPNAS_LOG_WARNING);
  CHECK_EQ_INT(mpnas_context_get_int(ctx, MPNAS_CONTEXT_OPENMP, &v), MPNAS_OK);
#if defined(_OPENMP)
  CHECK_EQ_INT(v, 1);
#else
  CHECK_EQ_INT(v, 0);
#endif
  CHECK(strcmp(mpnas_context_last_error(ctx), "") == 0);
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_OK);
  mpnas_context_free(ctx);
}

static void test_context_set_get(void) {
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  int64_t v;
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, 2), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_get_int(ctx, MPNAS_CONTEXT_THREADS, &v), MPNAS_OK);
  CHECK_EQ_INT(v, 2);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, 0), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, -5), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_get_int(ctx, MPNAS_CONTEXT_SEED, &v), MPNAS_OK);
  CHECK_EQ_INT(v, -5); /* stored as the same 64 bits */
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_ISA, MPNAS_ISA_SCALAR), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_get_int(ctx, MPNAS_CONTEXT_ISA_ACTIVE, &v), MPNAS_OK);
  CHECK_EQ_INT(v, MPNAS_ISA_SCALAR);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_LOG_LEVEL, MPNAS_LOG_DEBUG), MPNAS_OK);
  mpnas_context_free(ctx);
}

static void test_context_errors(void) {
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(NULL), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  int64_t v = 123;
  /* NULL handle and pointers. */
  CHECK_EQ_INT(mpnas_context_set_int(NULL, MPNAS_CONTEXT_THREADS, 1), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_context_get_int(NULL, MPNAS_CONTEXT_THREADS, &v), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_context_get_int(ctx, MPNAS_CONTEXT_THREADS, NULL), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_context_set_log_callback(NULL, NULL, NULL), MPNAS_E_INVALID_ARGUMENT);
  CHECK(strstr(mpnas_context_last_error(NULL), "NULL") != NULL);
  CHECK_EQ_INT(mpnas_context_last_status(NULL), MPNAS_E_INVALID_ARGUMENT);
  mpnas_context_clear_error(NULL);
  mpnas_context_free(NULL);

  /* Unknown parameter. */
  CHECK_EQ_INT(mpnas_context_set_int(ctx, 999, 1), MPNAS_E_UNKNOWN_PARAMETER);
  CHECK(strstr(mpnas_context_last_error(ctx), "999") != NULL);
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_UNKNOWN_PARAMETER);
  CHECK_EQ_INT(mpnas_context_get_int(ctx, -7, &v), MPNAS_E_UNKNOWN_PARAMETER);
  CHECK_EQ_INT(v, 123); /* untouched on failure */

  /* Out of range, and the setting is kept. */
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, 3), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, -1), MPNAS_E_OUT_OF_RANGE);
  CHECK(strstr(mpnas_context_last_error(ctx), "MPNAS_CONTEXT_THREADS") != NULL);
  CHECK(strstr(mpnas_context_last_error(ctx), "-1") != NULL);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, 100000), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_context_get_int(ctx, MPNAS_CONTEXT_THREADS, &v), MPNAS_OK);
  CHECK_EQ_INT(v, 3);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_ISA, 17), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_ISA, -1), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_LOG_LEVEL, 5), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_ISA_ACTIVE, 1), MPNAS_E_INVALID_ARGUMENT);
  CHECK(strstr(mpnas_context_last_error(ctx), "read-only") != NULL);

  /* An ISA this machine cannot run: UNSUPPORTED, previous choice kept. */
  int32_t missing = !mpnas_isa_supported(MPNAS_ISA_NEON)   ? MPNAS_ISA_NEON
                    : !mpnas_isa_supported(MPNAS_ISA_AVX2) ? MPNAS_ISA_AVX2
                                                           : -1;
  CHECK(missing != -1);
  CHECK_EQ_INT(mpnas_context_get_int(ctx, MPNAS_CONTEXT_ISA_ACTIVE, &v), MPNAS_OK);
  int64_t before = v;
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_ISA, missing), MPNAS_E_UNSUPPORTED);
  CHECK(strstr(mpnas_context_last_error(ctx), "not available") != NULL);
  CHECK_EQ_INT(mpnas_context_get_int(ctx, MPNAS_CONTEXT_ISA_ACTIVE, &v), MPNAS_OK);
  CHECK_EQ_INT(v, before);
  CHECK_EQ_INT(mpnas_context_get_int(ctx, MPNAS_CONTEXT_ISA, &v), MPNAS_OK);
  CHECK_EQ_INT(v, MPNAS_ISA_AUTO);

  mpnas_context_clear_error(ctx);
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_OK);
  CHECK(strcmp(mpnas_context_last_error(ctx), "") == 0);
  mpnas_context_free(ctx);
}

static void test_allocator_hooks(void) {
  counting c = {0, 0, 0};
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create_with_allocator(&ctx, NULL, counting_free, &c),
               MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_context_create_with_allocator(&ctx, counting_malloc, NULL, &c),
               MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_context_create_with_allocator(NULL, counting_malloc, counting_free, &c),
               MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_context_create_with_allocator(&ctx, counting_malloc, counting_free, &c),
               MPNAS_OK);
  CHECK(c.total >= 1); /* the context itself came from the hooks */
  CHECK(c.live >= 1);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);

  /* A failing allocator gives NO_MEMORY and a NULL handle, not a crash. */
  counting f = {0, 0, 1};
  ctx = (mpnas_context *)&f; /* must be overwritten with NULL */
  CHECK_EQ_INT(mpnas_context_create_with_allocator(&ctx, counting_malloc, counting_free, &f),
               MPNAS_E_NO_MEMORY);
  CHECK(ctx == NULL);
  CHECK_EQ_INT(f.live, 0);
}

typedef struct {
  int calls;
  int32_t level;
  char last[512];
} log_capture;
static void capture_log(void *user, int32_t level, const char *message) {
  log_capture *l = user;
  l->calls++;
  l->level = level;
  snprintf(l->last, sizeof l->last, "%s", message);
}

static void test_log_callback(void) {
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  log_capture l = {0, 0, ""};
  CHECK_EQ_INT(mpnas_context_set_log_callback(ctx, capture_log, &l), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, -3), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(l.calls, 1);
  CHECK_EQ_INT(l.level, MPNAS_LOG_ERROR);
  CHECK(strcmp(l.last, mpnas_context_last_error(ctx)) == 0);
  /* Level NONE silences it; removing the callback too. */
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_LOG_LEVEL, MPNAS_LOG_NONE), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, -3), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(l.calls, 1);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_LOG_LEVEL, MPNAS_LOG_ERROR), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_log_callback(ctx, NULL, NULL), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, -3), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(l.calls, 1);
  mpnas_context_free(ctx);
}

static void test_contexts_independent(void) {
  mpnas_context *a = NULL, *b = NULL;
  CHECK_EQ_INT(mpnas_context_create(&a), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_create(&b), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_int(a, MPNAS_CONTEXT_THREADS, -1), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_context_last_status(b), MPNAS_OK);
  CHECK(strcmp(mpnas_context_last_error(b), "") == 0);
  CHECK_EQ_INT(mpnas_context_set_int(b, MPNAS_CONTEXT_SEED, 42), MPNAS_OK);
  int64_t v;
  CHECK_EQ_INT(mpnas_context_get_int(a, MPNAS_CONTEXT_SEED, &v), MPNAS_OK);
  CHECK_EQ_INT(v, 0);
  mpnas_context_free(a);
  mpnas_context_free(b);
}

int main(void) {
  RUN(test_version);
  RUN(test_status_strings);
  RUN(test_context_defaults);
  RUN(test_context_set_get);
  RUN(test_context_errors);
  RUN(test_allocator_hooks);
  RUN(test_log_callback);
  RUN(test_contexts_independent);
  return check_finish();
}
