/* test_abdp.c - Adaptive Balanced Domain Prioritization (src/train/abdp.c, docs/ALGORITHM.md
 * section 5): the config, each weight signal on constructed and hand-computed cases,
 * the clip as a property over random and extreme inputs, both sampling modes, and
 * export/import. */
#include <stdint.h>

#include "check.h"
#include "common/rng.h"
#include "train/abdp.h"

/* ---- A context whose allocator counts and can be made to fail ---------------------- */

typedef struct {
  long allocs, frees;
  long fail_after; /* fail every allocation once this many succeeded (-1: never) */
} alloc_stats;

static void *count_malloc(void *user, size_t size) {
  alloc_stats *s = user;
  if (s->fail_after >= 0 && s->allocs >= s->fail_after) return NULL;
  s->allocs++;
  return malloc(size);
}
static void count_free(void *user, void *ptr) {
  alloc_stats *s = user;
  if (ptr != NULL) s->frees++;
  free(ptr);
}

static alloc_stats g_stats;
static mpnas_context *new_ctx(void) {
  mpnas_context *ctx = NULL;
  g_stats.allocs = g_stats.frees = 0;
  g_stats.fail_after = -1;
  if (mpnas_context_create_with_allocator(&ctx, count_malloc, count_free, &g_stats) != MPNAS_OK)
    return NULL;
  return ctx;
}

/* An ABDP handle for D domains with the given config (NULL: defaults). */
static mpnas__abdp *make(mpnas_context *ctx, int32_t D, const int32_t *classes,
                         const int64_t *sizes, const mpnas__abdp_config *cfg) {
  mpnas__abdp *a = NULL;
  mpnas_status st = mpnas__abdp_create(ctx, D, classes, sizes, cfg, &a);
  CHECK_EQ_INT(st, MPNAS_OK);
  return a;
}

static double mean_of(const double *w, int32_t n) {
  double s = 0.0;
  for (int32_t i = 0; i < n; i++) s += w[i];
  return s / n;
}

/* ---- Config -------------------------------------------------------------------------- */

static void test_config(void) {
  mpnas__abdp_config c;
  const char *field = "x";
  mpnas__abdp_config_default(&c);
  CHECK_EQ_INT(c.sampling, MPNAS__ABDP_SAMPLE_BALANCED);
  CHECK_EQ_INT(c.signal, MPNAS__ABDP_SIGNAL_NONE);
  CHECK(c.tau == 1.0 && c.gamma == 2.0 && c.temperature == 1.0);
  CHECK(c.loss_momentum == 0.9 && c.kpi_momentum == 0.9);
  CHECK(c.w_min == 0.25 && c.w_max == 4.0);
  CHECK_EQ_INT(mpnas__abdp_config_check(&c, &field), MPNAS_OK);
  CHECK(field == NULL);
  mpnas__abdp_config_off(&c);
  CHECK_EQ_INT(c.sampling, MPNAS__ABDP_SAMPLE_PROPORTIONAL);
  CHECK_EQ_INT(c.signal, MPNAS__ABDP_SIGNAL_NONE);
  CHECK_EQ_INT(mpnas__abdp_config_check(&c, NULL), MPNAS_OK);
  CHECK_EQ_INT(mpnas__abdp_config_check(NULL, &field), MPNAS_E_INVALID_ARGUMENT);

  /* Each bad field is named, with the right code. */
  struct {
    int which;
    double value;
    mpnas_status expect;
    const char *name;
  } cases[] = {
      {0, 2, MPNAS_E_UNKNOWN_PARAMETER, "MPNAS_ABDP_SAMPLING"},
      {0, -1, MPNAS_E_UNKNOWN_PARAMETER, "MPNAS_ABDP_SAMPLING"},
      {1, 4, MPNAS_E_UNKNOWN_PARAMETER, "MPNAS_ABDP_SIGNAL"},
      {1, -1, MPNAS_E_UNKNOWN_PARAMETER, "MPNAS_ABDP_SIGNAL"},
      {2, 0, MPNAS_E_OUT_OF_RANGE, "MPNAS_ABDP_TAU"},
      {2, NAN, MPNAS_E_OUT_OF_RANGE, "MPNAS_ABDP_TAU"},
      {2, 1e7, MPNAS_E_OUT_OF_RANGE, "MPNAS_ABDP_TAU"},
      {3, -0.1, MPNAS_E_OUT_OF_RANGE, "MPNAS_ABDP_GAMMA"},
      {3, INFINITY, MPNAS_E_OUT_OF_RANGE, "MPNAS_ABDP_GAMMA"},
      {4, -1, MPNAS_E_OUT_OF_RANGE, "MPNAS_ABDP_TEMPERATURE"},
      {5, 1.0, MPNAS_E_OUT_OF_RANGE, "MPNAS_ABDP_LOSS_MOMENTUM"},
      {5, -0.01, MPNAS_E_OUT_OF_RANGE, "MPNAS_ABDP_LOSS_MOMENTUM"},
      {6, NAN, MPNAS_E_OUT_OF_RANGE, "MPNAS_ABDP_KPI_MOMENTUM"},
      {7, 1.5, MPNAS_E_OUT_OF_RANGE, "MPNAS_ABDP_W_MIN"}, /* no weights of mean 1 all >= 1.5 */
      {7, -0.1, MPNAS_E_OUT_OF_RANGE, "MPNAS_ABDP_W_MIN"},
      {8, 0.5, MPNAS_E_OUT_OF_RANGE, "MPNAS_ABDP_W_MAX"}, /* nor all <= 0.5 */
      {8, INFINITY, MPNAS_E_OUT_OF_RANGE, "MPNAS_ABDP_W_MAX"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mpnas__abdp_config_default(&c);
    double v = cases[i].value;
    switch (cases[i].which) {
      case 0: c.sampling = (int32_t)v; break;
      case 1: c.signal = (int32_t)v; break;
      case 2: c.tau = v; break;
      case 3: c.gamma = v; break;
      case 4: c.temperature = v; break;
      case 5: c.loss_momentum = v; break;
      case 6: c.kpi_momentum = v; break;
      case 7: c.w_min = v; break;
      default: c.w_max = v; break;
    }
    field = NULL;
    mpnas_status st = mpnas__abdp_config_check(&c, &field);
    CHECK_MSG(st == cases[i].expect, "case %zu: status %d", i, (int)st);
    CHECK_MSG(field != NULL && strcmp(field, cases[i].name) == 0, "case %zu: field %s", i,
              field ? field : "(null)");
  }
  /* The edges of the ranges are allowed. */
  mpnas__abdp_config_default(&c);
  c.w_min = 1.0;
  c.w_max = 1.0;
  c.gamma = 0.0;
  c.loss_momentum = 0.0;
  c.tau = MPNAS__ABDP_MIN_TEMP;
  c.temperature = MPNAS__ABDP_MAX_TEMP;
  CHECK_EQ_INT(mpnas__abdp_config_check(&c, NULL), MPNAS_OK);
}

static void test_create_errors(void) {
  mpnas_context *ctx = new_ctx();
  CHECK(ctx != NULL);
  int32_t classes[3] = {10, 10, 10};
  int64_t sizes[3] = {100, 100, 100};
  mpnas__abdp *a = (mpnas__abdp *)&g_stats; /* must be reset to NULL on failure */
  CHECK_EQ_INT(mpnas__abdp_create(ctx, 3, NULL, sizes, NULL, &a), MPNAS_E_INVALID_ARGUMENT);
  CHECK(a == NULL);
  CHECK_EQ_INT(mpnas__abdp_create(ctx, 3, classes, NULL, NULL, &a), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas__abdp_create(ctx, 3, classes, sizes, NULL, NULL), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas__abdp_create(NULL, 3, classes, sizes, NULL, &a), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas__abdp_create(ctx, 0, classes, sizes, NULL, &a), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas__abdp_create(ctx, MPNAS__ABDP_MAX_DOMAINS + 1, classes, sizes, NULL, &a),
               MPNAS_E_OUT_OF_RANGE);
  classes[1] = 1; /* ln 1 = 0: no chance level to normalise by */
  CHECK_EQ_INT(mpnas__abdp_create(ctx, 3, classes, sizes, NULL, &a), MPNAS_E_OUT_OF_RANGE);
  classes[1] = 10;
  sizes[2] = 0;
  CHECK_EQ_INT(mpnas__abdp_create(ctx, 3, classes, sizes, NULL, &a), MPNAS_E_OUT_OF_RANGE);
  sizes[2] = MPNAS__ABDP_MAX_TOTAL_SIZE - 150; /* the sum exceeds the limit by 50 */
  CHECK_EQ_INT(mpnas__abdp_create(ctx, 3, classes, sizes, NULL, &a), MPNAS_E_OUT_OF_RANGE);
  sizes[2] = MPNAS__ABDP_MAX_TOTAL_SIZE - 200; /* exactly the limit */
  CHECK_EQ_INT(mpnas__abdp_create(ctx, 3, classes, sizes, NULL, &a), MPNAS_OK);
  mpnas__abdp_destroy(a);
  sizes[2] = 100;
  mpnas__abdp_config c;
  mpnas__abdp_config_default(&c);
  c.signal = 9;
  CHECK_EQ_INT(mpnas__abdp_create(ctx, 3, classes, sizes, &c, &a), MPNAS_E_UNKNOWN_PARAMETER);
  CHECK(strstr(mpnas_context_last_error(ctx), "MPNAS_ABDP_SIGNAL") != NULL);
  c.signal = MPNAS__ABDP_SIGNAL_LOSS;
  c.w_max = 0.9;
  CHECK_EQ_INT(mpnas__abdp_create(ctx, 3, classes, sizes, &c, &a), MPNAS_E_OUT_OF_RANGE);
  CHECK(strstr(mpnas_context_last_error(ctx), "MPNAS_ABDP_W_MAX") != NULL);

  /* Every allocation failure is reported and leaks nothing. */
  int succeeded = 0;
  for (long k = 0; k < 20 && !succeeded; k++) {
    g_stats.allocs = g_stats.frees = 0;
    g_stats.fail_after = k;
    a = NULL;
    mpnas_status st = mpnas__abdp_create(ctx, 3, classes, sizes, NULL, &a);
    if (st == MPNAS_OK) {
      succeeded = 1;
      mpnas__abdp_destroy(a);
    } else {
      CHECK_EQ_INT(st, MPNAS_E_NO_MEMORY);
      CHECK(a == NULL);
    }
    CHECK_EQ_INT(g_stats.allocs, g_stats.frees);
  }
  CHECK(succeeded);
  g_stats.fail_after = -1;
  mpnas__abdp_destroy(NULL);
  mpnas_context_free(ctx);
}

/* ---- Signals ------------------------------------------------------------------------- */

/* `none` and `off` keep every weight at exactly 1 whatever is observed. */
static void test_none_and_off(void) {
  mpnas_context *ctx = new_ctx();
  int32_t classes[4] = {10, 136, 2, 47};
  int64_t sizes[4] = {60000, 1000, 5, 8000};
  for (int off = 0; off < 2; off++) {
    mpnas__abdp_config c;
    if (off) mpnas__abdp_config_off(&c);
    else mpnas__abdp_config_default(&c);
    mpnas__abdp *a = make(ctx, 4, classes, sizes, &c);
    const double *w = mpnas__abdp_weights(a);
    for (int d = 0; d < 4; d++) CHECK(w[d] == 1.0);
    double losses[4] = {0.0, 1e300, 2.3, 7.0}, accs[4] = {0.0, 1.0, 0.5, 0.99};
    for (int step = 0; step < 20; step++) {
      for (int d = 0; d < 4; d++) {
        CHECK_EQ_INT(mpnas__abdp_observe_loss(a, d, losses[d] * (1 + step)), MPNAS_OK);
        CHECK_EQ_INT(mpnas__abdp_observe_kpi(a, d, accs[d]), MPNAS_OK);
      }
      mpnas__abdp_update(a);
      for (int d = 0; d < 4; d++) CHECK(w[d] == 1.0);
    }
    mpnas__abdp_destroy(a);
  }
  mpnas_context_free(ctx);
}

/* The EMA: the first value as is, then m * ema + (1 - m) * x. */
static void test_ema(void) {
  mpnas_context *ctx = new_ctx();
  int32_t classes[2] = {10, 10};
  int64_t sizes[2] = {1, 1};
  mpnas__abdp *a = make(ctx, 2, classes, sizes, NULL);
  CHECK(isnan(mpnas__abdp_loss_ema(a, 0)));
  CHECK(isnan(mpnas__abdp_kpi_ema(a, 1)));
  CHECK(isnan(mpnas__abdp_loss_ema(a, 2)));
  mpnas__abdp_observe_loss(a, 0, 2.0);
  CHECK_NEAR(mpnas__abdp_loss_ema(a, 0), 2.0, 0.0);
  mpnas__abdp_observe_loss(a, 0, 1.0); /* 0.9 * 2 + 0.1 * 1 = 1.9 */
  CHECK_NEAR(mpnas__abdp_loss_ema(a, 0), 1.9, 1e-15);
  mpnas__abdp_observe_loss(a, 0, 0.0); /* 0.9 * 1.9 = 1.71 */
  CHECK_NEAR(mpnas__abdp_loss_ema(a, 0), 1.71, 1e-15);
  mpnas__abdp_observe_kpi(a, 1, 0.5);
  mpnas__abdp_observe_kpi(a, 1, 1.0); /* 0.45 + 0.1 = 0.55 */
  CHECK_NEAR(mpnas__abdp_kpi_ema(a, 1), 0.55, 1e-15);
  CHECK(isnan(mpnas__abdp_loss_ema(a, 1)));
  mpnas__abdp_destroy(a);
  mpnas_context_free(ctx);
}

/* Invalid observations are rejected and change nothing; huge losses are capped. */
static void test_bad_observations(void) {
  mpnas_context *ctx = new_ctx();
  int32_t classes[2] = {10, 10};
  int64_t sizes[2] = {1, 1};
  mpnas__abdp_config c;
  mpnas__abdp_config_default(&c);
  c.signal = MPNAS__ABDP_SIGNAL_LOSS;
  mpnas__abdp *a = make(ctx, 2, classes, sizes, &c);
  double bad_loss[] = {NAN, INFINITY, -INFINITY, -1e-9};
  for (size_t i = 0; i < sizeof bad_loss / sizeof bad_loss[0]; i++)
    CHECK_EQ_INT(mpnas__abdp_observe_loss(a, 0, bad_loss[i]), MPNAS_E_INVALID_ARGUMENT);
  CHECK(isnan(mpnas__abdp_loss_ema(a, 0))); /* still never observed */
  mpnas__abdp_observe_loss(a, 0, 1.0);
  mpnas__abdp_observe_loss(a, 1, 1.0);
  CHECK_EQ_INT(mpnas__abdp_observe_loss(a, 0, NAN), MPNAS_E_INVALID_ARGUMENT);
  CHECK_NEAR(mpnas__abdp_loss_ema(a, 0), 1.0, 0.0);
  CHECK_EQ_INT(mpnas__abdp_observe_loss(a, 2, 1.0), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas__abdp_observe_loss(a, -1, 1.0), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas__abdp_observe_loss(NULL, 0, 1.0), MPNAS_E_INVALID_ARGUMENT);
  double bad_acc[] = {NAN, -0.01, 1.01, INFINITY};
  for (size_t i = 0; i < sizeof bad_acc / sizeof bad_acc[0]; i++)
    CHECK_EQ_INT(mpnas__abdp_observe_kpi(a, 1, bad_acc[i]), MPNAS_E_INVALID_ARGUMENT);
  CHECK(isnan(mpnas__abdp_kpi_ema(a, 1)));
  mpnas__abdp_update(a);
  const double *w = mpnas__abdp_weights(a);
  CHECK(w[0] == 1.0 && w[1] == 1.0);
  /* A finite huge loss is accepted as MPNAS__ABDP_MAX_LOSS: top weight, no overflow. */
  mpnas__abdp_config_default(&c);
  c.signal = MPNAS__ABDP_SIGNAL_LOSS;
  c.loss_momentum = 0.0;
  mpnas__abdp *b = make(ctx, 2, classes, sizes, &c);
  CHECK_EQ_INT(mpnas__abdp_observe_loss(b, 0, 1e300), MPNAS_OK);
  CHECK_EQ_INT(mpnas__abdp_observe_loss(b, 1, 0.0), MPNAS_OK);
  CHECK_NEAR(mpnas__abdp_loss_ema(b, 0), MPNAS__ABDP_MAX_LOSS, 0.0);
  CHECK_EQ_INT(mpnas__abdp_observe_loss(b, 0, 1.7976931348623157e308), MPNAS_OK);
  mpnas__abdp_update(b);
  w = mpnas__abdp_weights(b);
  CHECK_NEAR(w[0], 1.75, 1e-12); /* at w_min = 0.25 the other takes the rest */
  CHECK_NEAR(w[1], 0.25, 1e-12);
  mpnas__abdp_destroy(b);
  mpnas__abdp_destroy(a);
  mpnas_context_free(ctx);
}

/* Weights stay 1 until every domain has reported the signal's input. */
static void test_not_ready(void) {
  mpnas_context *ctx = new_ctx();
  int32_t classes[3] = {10, 10, 10};
  int64_t sizes[3] = {1, 1, 1};
  mpnas__abdp_config c;
  mpnas__abdp_config_default(&c);
  c.signal = MPNAS__ABDP_SIGNAL_KPI;
  mpnas__abdp *a = make(ctx, 3, classes, sizes, &c);
  const double *w = mpnas__abdp_weights(a);
  mpnas__abdp_observe_kpi(a, 0, 0.3);
  mpnas__abdp_observe_kpi(a, 1, 0.7);
  for (int d = 0; d < 3; d++) mpnas__abdp_observe_loss(a, d, 1.0 + d); /* not the input */
  mpnas__abdp_update(a);
  for (int d = 0; d < 3; d++) CHECK(w[d] == 1.0);
  mpnas__abdp_observe_kpi(a, 2, 0.5);
  mpnas__abdp_update(a);
  CHECK(w[0] > w[2] && w[2] > w[1]);
  mpnas__abdp_destroy(a);
  mpnas_context_free(ctx);
}

/* LOSS: the domain with the higher chance-normalised loss gets the larger weight; equal
 * normalised losses give exactly 1. */
static void test_loss_signal(void) {
  mpnas_context *ctx = new_ctx();
  int32_t classes[3] = {10, 10, 10};
  int64_t sizes[3] = {1, 1, 1};
  mpnas__abdp_config c;
  mpnas__abdp_config_default(&c);
  c.signal = MPNAS__ABDP_SIGNAL_LOSS;
  mpnas__abdp *a = make(ctx, 3, classes, sizes, &c);
  const double *w = mpnas__abdp_weights(a);
  mpnas__abdp_observe_loss(a, 0, 0.5);
  mpnas__abdp_observe_loss(a, 1, 2.0);
  mpnas__abdp_observe_loss(a, 2, 1.0);
  mpnas__abdp_update(a);
  CHECK(w[1] > w[2] && w[2] > w[0]);
  CHECK_NEAR(mean_of(w, 3), 1.0, 1e-15);
  mpnas__abdp_destroy(a);

  /* Hand-computed chance normalisation: C = (10, 100), losses (ln 10, ln 100 / 2), so
   * l = (1, 0.5). tau 1: w0 = 2 e / (e + e^0.5) = 1.2449186624037092,
   * w1 = 2 e^0.5 / (e + e^0.5) = 0.7550813375962908 (inside [0.25, 4]). The raw losses
   * are equal (ln 10 each), so BOOST would give 1 and 1 here. */
  int32_t cls2[2] = {10, 100};
  int64_t sz2[2] = {1, 1};
  a = make(ctx, 2, cls2, sz2, &c);
  w = mpnas__abdp_weights(a);
  mpnas__abdp_observe_loss(a, 0, log(10.0));
  mpnas__abdp_observe_loss(a, 1, log(100.0) / 2);
  mpnas__abdp_update(a);
  CHECK_NEAR(w[0], 1.2449186624037092, 1e-14);
  CHECK_NEAR(w[1], 0.7550813375962908, 1e-14);
  /* tau 0.5 sharpens: z = (2, 1), w0 = 2 e^2 / (e^2 + e) = 1.4621171572600098. */
  mpnas__abdp_destroy(a);
  c.tau = 0.5;
  a = make(ctx, 2, cls2, sz2, &c);
  w = mpnas__abdp_weights(a);
  mpnas__abdp_observe_loss(a, 0, log(10.0));
  mpnas__abdp_observe_loss(a, 1, log(100.0) / 2);
  mpnas__abdp_update(a);
  CHECK_NEAR(w[0], 1.4621171572600098, 1e-14);
  CHECK_NEAR(w[1], 0.5378828427399902, 1e-14);
  mpnas__abdp_destroy(a);

  /* At chance level on both (ln 10 and ln 100): equal normalised losses, weights 1. */
  c.tau = 1.0;
  a = make(ctx, 2, cls2, sz2, &c);
  w = mpnas__abdp_weights(a);
  mpnas__abdp_observe_loss(a, 0, 1.5);
  mpnas__abdp_observe_loss(a, 1, 3.0); /* 1.5 / ln 10 vs 3 / ln 100: equal */
  mpnas__abdp_update(a);
  CHECK_NEAR(w[0], 1.0, 1e-15);
  CHECK_NEAR(w[1], 1.0, 1e-15);
  mpnas__abdp_destroy(a);

  /* Exactly equal inputs: exactly 1. */
  int32_t cls7[7] = {5, 5, 5, 5, 5, 5, 5};
  int64_t sz7[7] = {1, 2, 3, 4, 5, 6, 7};
  a = make(ctx, 7, cls7, sz7, &c);
  w = mpnas__abdp_weights(a);
  for (int d = 0; d < 7; d++) mpnas__abdp_observe_loss(a, d, 0.3);
  mpnas__abdp_update(a);
  for (int d = 0; d < 7; d++) CHECK(w[d] == 1.0);
  mpnas__abdp_destroy(a);
  mpnas_context_free(ctx);
}

/* KPI: the domain with the lower validation accuracy gets the larger weight. */
static void test_kpi_signal(void) {
  mpnas_context *ctx = new_ctx();
  int32_t classes[3] = {10, 10, 10};
  int64_t sizes[3] = {1, 1, 1};
  mpnas__abdp_config c;
  mpnas__abdp_config_default(&c);
  c.signal = MPNAS__ABDP_SIGNAL_KPI;
  mpnas__abdp *a = make(ctx, 3, classes, sizes, &c);
  const double *w = mpnas__abdp_weights(a);
  mpnas__abdp_observe_kpi(a, 0, 0.8);
  mpnas__abdp_observe_kpi(a, 1, 0.6);
  mpnas__abdp_observe_kpi(a, 2, 0.7);
  mpnas__abdp_update(a);
  CHECK(w[1] > w[2] && w[2] > w[0]);
  CHECK_NEAR(mean_of(w, 3), 1.0, 1e-15);
  for (int d = 0; d < 3; d++) mpnas__abdp_observe_kpi(a, d, 0.7);
  for (int i = 0; i < 2000; i++) /* let the EMAs converge to 0.7 on all three */
    for (int d = 0; d < 3; d++) mpnas__abdp_observe_kpi(a, d, 0.7);
  mpnas__abdp_update(a);
  for (int d = 0; d < 3; d++) CHECK_NEAR(w[d], 1.0, 1e-12);
  mpnas__abdp_destroy(a);

  /* Hand-computed, gamma 2, k = (0.5, 0.9):
   *   s0 = 0.5^2 * ln 2 = 0.17328679513998632, s1 = 0.1^2 * -ln 0.9 = 0.0010536051565782630
   * wide clip [0, 10]: w = 2 s / (s0 + s1) = (1.98791..., 0.01208...);
   * default clip [0.25, 4]: (1.75, 0.25). */
  int32_t cls2[2] = {10, 10};
  int64_t sz2[2] = {1, 1};
  double s0 = 0.25 * log(2.0), s1 = 0.01 * -log(0.9);
  for (int wide = 0; wide < 2; wide++) {
    c.w_min = wide ? 0.0 : 0.25;
    c.w_max = wide ? 10.0 : 4.0;
    a = make(ctx, 2, cls2, sz2, &c);
    w = mpnas__abdp_weights(a);
    mpnas__abdp_observe_kpi(a, 0, 0.5);
    mpnas__abdp_observe_kpi(a, 1, 0.9);
    mpnas__abdp_update(a);
    CHECK_NEAR(w[0], wide ? 2 * s0 / (s0 + s1) : 1.75, 1e-14);
    CHECK_NEAR(w[1], wide ? 2 * s1 / (s0 + s1) : 0.25, 1e-14);
    mpnas__abdp_destroy(a);
  }
  /* gamma 0 leaves -ln k: k = (0.5, 0.25) gives s = (ln 2, 2 ln 2), w = (2/3, 4/3). */
  c.gamma = 0.0;
  c.w_min = 0.25;
  c.w_max = 4.0;
  a = make(ctx, 2, cls2, sz2, &c);
  w = mpnas__abdp_weights(a);
  mpnas__abdp_observe_kpi(a, 0, 0.5);
  mpnas__abdp_observe_kpi(a, 1, 0.25);
  mpnas__abdp_update(a);
  CHECK_NEAR(w[0], 2.0 / 3.0, 1e-14);
  CHECK_NEAR(w[1], 4.0 / 3.0, 1e-14);
  mpnas__abdp_destroy(a);

  /* Extremes: accuracy 0 and 1 are clamped to [eps, 1 - eps], weights finite. */
  c.gamma = 2.0;
  c.w_min = 0.0;
  c.w_max = 10.0;
  a = make(ctx, 2, cls2, sz2, &c);
  w = mpnas__abdp_weights(a);
  mpnas__abdp_observe_kpi(a, 0, 0.0);
  mpnas__abdp_observe_kpi(a, 1, 1.0);
  mpnas__abdp_update(a);
  CHECK(isfinite(w[0]) && isfinite(w[1]));
  CHECK(w[0] > 1.999999 && w[1] > 0.0 && w[1] < 1e-12);
  CHECK_NEAR(w[0] + w[1], 2.0, 1e-15);
  mpnas__abdp_destroy(a);
  mpnas_context_free(ctx);
}

/* BOOST on raw losses, with very different class counts: chance-level losses ln 136 and
 * ln 10 give exp(ln 136) : exp(ln 10) = 136 : 10. */
static void test_boost_signal(void) {
  mpnas_context *ctx = new_ctx();
  int32_t classes[2] = {136, 10};
  int64_t sizes[2] = {1000, 60000};
  mpnas__abdp_config c;
  mpnas__abdp_config_default(&c);
  c.signal = MPNAS__ABDP_SIGNAL_BOOST;
  /* Wide clip [0, 2] (2 = D: no cap): w = (2 * 136/146, 2 * 10/146). */
  c.w_min = 0.0;
  c.w_max = 2.0;
  mpnas__abdp *a = make(ctx, 2, classes, sizes, &c);
  const double *w = mpnas__abdp_weights(a);
  mpnas__abdp_observe_loss(a, 0, log(136.0));
  mpnas__abdp_observe_loss(a, 1, log(10.0));
  mpnas__abdp_update(a);
  CHECK_NEAR(w[0], 272.0 / 146.0, 1e-14);
  CHECK_NEAR(w[1], 20.0 / 146.0, 1e-14);
  mpnas__abdp_destroy(a);
  /* Default clip: 0.137 < 0.25, so w1 = 0.25 and w0 = 2 - 0.25 = 1.75 (the clipped fixed
   * point: c * 1.863 = 1.75 keeps c * 0.137 = 0.129 below the floor). */
  c.w_min = 0.25;
  c.w_max = 4.0;
  a = make(ctx, 2, classes, sizes, &c);
  w = mpnas__abdp_weights(a);
  mpnas__abdp_observe_loss(a, 0, log(136.0));
  mpnas__abdp_observe_loss(a, 1, log(10.0));
  mpnas__abdp_update(a);
  CHECK_NEAR(w[0], 1.75, 1e-14);
  CHECK_NEAR(w[1], 0.25, 1e-14);
  mpnas__abdp_destroy(a);
  /* The same losses under LOSS are both at chance: weights 1. */
  c.signal = MPNAS__ABDP_SIGNAL_LOSS;
  a = make(ctx, 2, classes, sizes, &c);
  w = mpnas__abdp_weights(a);
  mpnas__abdp_observe_loss(a, 0, log(136.0));
  mpnas__abdp_observe_loss(a, 1, log(10.0));
  mpnas__abdp_update(a);
  CHECK_NEAR(w[0], 1.0, 1e-15);
  CHECK_NEAR(w[1], 1.0, 1e-15);
  mpnas__abdp_destroy(a);
  /* No overflow where the raw sum exp(L_d) would: losses 1000 vs 1, temperature 0.01. */
  c.signal = MPNAS__ABDP_SIGNAL_BOOST;
  c.temperature = 0.01;
  a = make(ctx, 2, classes, sizes, &c);
  w = mpnas__abdp_weights(a);
  mpnas__abdp_observe_loss(a, 0, 1000.0);
  mpnas__abdp_observe_loss(a, 1, 1.0);
  mpnas__abdp_update(a);
  CHECK_NEAR(w[0], 1.75, 1e-14);
  CHECK_NEAR(w[1], 0.25, 1e-14);
  mpnas__abdp_destroy(a);
  /* Temperature 2, losses (3, 1): w = 2 softmax(1.5, 0.5) = 2 e / (e + 1) = 1.4621..., */
  c.temperature = 2.0;
  a = make(ctx, 2, classes, sizes, &c);
  w = mpnas__abdp_weights(a);
  mpnas__abdp_observe_loss(a, 0, 3.0);
  mpnas__abdp_observe_loss(a, 1, 1.0);
  mpnas__abdp_update(a);
  CHECK_NEAR(w[0], 2 * exp(1.0) / (exp(1.0) + 1), 1e-14);
  CHECK_NEAR(w[1], 2 / (exp(1.0) + 1), 1e-14);
  mpnas__abdp_destroy(a);
  mpnas_context_free(ctx);
}

/* Weights of a three-domain case that needs both bounds: u = 3 softmax(0, -1, -10)
 * = (2.1931, 0.8068, 0.0000996); bounds [0.5, 1.5]: w0 = 1.5 (cap), w2 = 0.5 (floor),
 * w1 = 3 - 2 = 1.0 (free: c * 0.8068 = 1.0 needs c = 1.2395, and c * 2.19 > 1.5,
 * c * 0.0001 < 0.5, consistent). Note: naively iterating "clip, renormalise" from u
 * ends elsewhere, at (1.5, 0.927, 0.573): the first renormalisation lifts the floored
 * w2 to 0.534, after which it is scaled like a free weight and keeps a share that has
 * nothing to do with its signal. */
static void test_clip_both_bounds(void) {
  mpnas_context *ctx = new_ctx();
  int32_t classes[3] = {10, 10, 10};
  int64_t sizes[3] = {1, 1, 1};
  mpnas__abdp_config c;
  mpnas__abdp_config_default(&c);
  c.signal = MPNAS__ABDP_SIGNAL_BOOST;
  c.w_min = 0.5;
  c.w_max = 1.5;
  mpnas__abdp *a = make(ctx, 3, classes, sizes, &c);
  const double *w = mpnas__abdp_weights(a);
  mpnas__abdp_observe_loss(a, 0, 10.0);
  mpnas__abdp_observe_loss(a, 1, 9.0);
  mpnas__abdp_observe_loss(a, 2, 0.0);
  mpnas__abdp_update(a);
  CHECK_NEAR(w[0], 1.5, 1e-15);
  CHECK_NEAR(w[1], 1.0, 1e-15);
  CHECK_NEAR(w[2], 0.5, 1e-15);
  mpnas__abdp_destroy(a);
  /* w_min = w_max = 1 gives exactly 1. */
  c.w_min = c.w_max = 1.0;
  a = make(ctx, 3, classes, sizes, &c);
  w = mpnas__abdp_weights(a);
  for (int d = 0; d < 3; d++) mpnas__abdp_observe_loss(a, d, 5.0 * d);
  mpnas__abdp_update(a);
  for (int d = 0; d < 3; d++) CHECK(w[d] == 1.0);
  mpnas__abdp_destroy(a);
  mpnas_context_free(ctx);
}

/* ---- Property: weights within the clip, mean 1, order kept, over random input ------- */

static double pick(mpnas__rng *r, const double *choices, int n) {
  return choices[mpnas__rng_below(r, (uint32_t)n)];
}

/* An independent reference for the weights: the unclipped weights u as abdp.h defines
 * them, then the scale c of w = clamp(c * u, w_min, w_max) with mean 1 by bisection on
 * log c (F(c) = sum of the clamped weights is non-decreasing in c). */
static void ref_weights(const mpnas__abdp *a, const mpnas__abdp_config *c,
                        const int32_t *classes, int32_t D, double *w) {
  double z[16], zmax = -HUGE_VAL, scale = 1.0, sum = 0.0;
  for (int d = 0; d < D; d++) {
    if (c->signal == MPNAS__ABDP_SIGNAL_LOSS) {
      z[d] = mpnas__abdp_loss_ema(a, d) / log((double)classes[d]);
      scale = c->tau;
    } else if (c->signal == MPNAS__ABDP_SIGNAL_BOOST) {
      z[d] = mpnas__abdp_loss_ema(a, d);
      scale = c->temperature;
    } else {
      double k = fmin(fmax(mpnas__abdp_kpi_ema(a, d), 1e-6), 1 - 1e-6);
      z[d] = log(pow(1 - k, c->gamma) * -log(k)); /* underflows only for gamma ~ 100 */
      if (!isfinite(z[d])) z[d] = c->gamma * log1p(-k) + log(-log(k));
    }
    zmax = fmax(zmax, z[d]);
  }
  for (int d = 0; d < D; d++) {
    w[d] = exp(fmax((z[d] - zmax) / scale, -600.0));
    sum += w[d];
  }
  double lo = c->w_min, hi = c->w_max, la = log(1e-300), lb = log(1e300);
  for (int d = 0; d < D; d++) w[d] = D * w[d] / sum;
  if (lo == 1.0 || hi == 1.0) {
    for (int d = 0; d < D; d++) w[d] = 1.0;
    return;
  }
  for (int it = 0; it < 300; it++) {
    double lm = 0.5 * (la + lb), f = 0.0;
    for (int d = 0; d < D; d++) f += fmin(fmax(exp(lm) * w[d], lo), hi);
    if (f < D) la = lm;
    else lb = lm;
  }
  for (int d = 0; d < D; d++) w[d] = fmin(fmax(exp(0.5 * (la + lb)) * w[d], lo), hi);
}

static void test_weights_property(void) {
  mpnas_context *ctx = new_ctx();
  mpnas__rng r;
  mpnas__rng_seed(&r, 12345, 7);
  const double losses[] = {0.0, 1e-300, 1e-9, 0.01, 0.5, 1.0, 2.3, 4.9, 30.0, 1e3, 1e30, 1e300};
  const double accs[] = {0.0, 1e-9, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0 - 1e-9, 1.0};
  const double wmins[] = {0.0, 0.01, 0.25, 0.5, 0.9, 1.0};
  const double wmaxs[] = {1.0, 1.1, 2.0, 4.0, 10.0, 1e6};
  const double temps[] = {1e-6, 1e-3, 0.1, 0.5, 1.0, 3.0, 1e6};
  long checks = 0, clipped = 0;
  for (int trial = 0; trial < 3000; trial++) {
    int32_t D = 1 + (int32_t)mpnas__rng_below(&r, 16);
    int32_t classes[16];
    int64_t sizes[16];
    for (int d = 0; d < D; d++) {
      classes[d] = 2 + (int32_t)mpnas__rng_below(&r, 200);
      sizes[d] = 1 + mpnas__rng_below(&r, 100000);
    }
    mpnas__abdp_config c;
    mpnas__abdp_config_default(&c);
    c.signal = 1 + (int32_t)mpnas__rng_below(&r, 3);
    c.w_min = pick(&r, wmins, 6);
    c.w_max = pick(&r, wmaxs, 6);
    c.tau = pick(&r, temps, 7);
    c.temperature = pick(&r, temps, 7);
    c.gamma = mpnas__rng_below(&r, 4) == 0 ? 100.0 : 4.0 * mpnas__rng_uniform(&r);
    c.loss_momentum = 0.9 * mpnas__rng_uniform(&r);
    mpnas__abdp *a = make(ctx, D, classes, sizes, &c);
    if (!a) break;
    const double *w = mpnas__abdp_weights(a);
    for (int step = 0; step < 4; step++) {
      for (int d = 0; d < D; d++) {
        double x = mpnas__rng_below(&r, 2) ? pick(&r, losses, 12)
                                           : 5.0 * mpnas__rng_uniform(&r);
        double k = mpnas__rng_below(&r, 2) ? pick(&r, accs, 9) : mpnas__rng_uniform(&r);
        CHECK_EQ_INT(mpnas__abdp_observe_loss(a, d, x), MPNAS_OK);
        CHECK_EQ_INT(mpnas__abdp_observe_kpi(a, d, k), MPNAS_OK);
      }
      mpnas__abdp_update(a);
      double sum = 0.0;
      for (int d = 0; d < D; d++) {
        CHECK_MSG(isfinite(w[d]) && w[d] >= c.w_min && w[d] <= c.w_max,
                  "trial %d: w[%d] = %.17g outside [%g, %g]", trial, d, w[d], c.w_min, c.w_max);
        sum += w[d];
        if (w[d] == c.w_min || w[d] == c.w_max) clipped++;
      }
      CHECK_MSG(fabs(sum / D - 1.0) <= 1e-12, "trial %d: mean %.17g", trial, sum / D);
      double ref[16];
      ref_weights(a, &c, classes, D, ref);
      for (int d = 0; d < D; d++)
        CHECK_MSG(fabs(w[d] - ref[d]) <= 1e-9 * fmax(1.0, ref[d]),
                  "trial %d (signal %d): w[%d] = %.17g, reference %.17g", trial, c.signal, d,
                  w[d], ref[d]);
      /* Order: a larger signal never gets a smaller weight. */
      for (int i = 0; i < D; i++) {
        for (int j = 0; j < D; j++) {
          double si, sj;
          if (c.signal == MPNAS__ABDP_SIGNAL_KPI) {
            si = -mpnas__abdp_kpi_ema(a, i); /* lower accuracy = larger signal */
            sj = -mpnas__abdp_kpi_ema(a, j);
          } else if (c.signal == MPNAS__ABDP_SIGNAL_LOSS) {
            si = mpnas__abdp_loss_ema(a, i) / log((double)classes[i]);
            sj = mpnas__abdp_loss_ema(a, j) / log((double)classes[j]);
          } else {
            si = mpnas__abdp_loss_ema(a, i);
            sj = mpnas__abdp_loss_ema(a, j);
          }
          if (si > sj) CHECK_MSG(w[i] >= w[j], "trial %d: order of %d and %d", trial, i, j);
        }
      }
      checks++;
    }
    mpnas__abdp_destroy(a);
  }
  CHECK(checks == 12000);
  CHECK(clipped > 1000); /* the bounds were really exercised */
  mpnas_context_free(ctx);
}

/* update and sample_counts never allocate. */
static void test_no_allocation_per_step(void) {
  mpnas_context *ctx = new_ctx();
  int32_t classes[5] = {10, 20, 30, 40, 136};
  int64_t sizes[5] = {5, 50, 500, 5000, 50000};
  mpnas__abdp_config c;
  mpnas__abdp_config_default(&c);
  c.signal = MPNAS__ABDP_SIGNAL_BOOST;
  c.sampling = MPNAS__ABDP_SAMPLE_PROPORTIONAL;
  mpnas__abdp *a = make(ctx, 5, classes, sizes, &c);
  mpnas__rng r;
  mpnas__rng_seed(&r, 1, 1);
  int32_t counts[5];
  long before = g_stats.allocs;
  for (int step = 0; step < 100; step++) {
    for (int d = 0; d < 5; d++) mpnas__abdp_observe_loss(a, d, 0.1 * step * d);
    mpnas__abdp_update(a);
    CHECK_EQ_INT(mpnas__abdp_sample_counts(a, &r, 64, counts), MPNAS_OK);
  }
  CHECK_EQ_INT(g_stats.allocs, before);
  mpnas__abdp_destroy(a);
  mpnas_context_free(ctx);
}

/* ---- Sampling ------------------------------------------------------------------------ */

static void test_balanced_sampling(void) {
  mpnas_context *ctx = new_ctx();
  int32_t classes[3] = {10, 10, 10};
  int64_t sizes[3] = {60000, 1000, 8000};
  mpnas__abdp *a = make(ctx, 3, classes, sizes, NULL); /* default: balanced */
  int32_t counts[3];
  /* Divisible: exactly B / D each, every step; the rng is not needed. */
  for (int step = 0; step < 10; step++) {
    CHECK_EQ_INT(mpnas__abdp_sample_counts(a, NULL, 48, counts), MPNAS_OK);
    for (int d = 0; d < 3; d++) CHECK_EQ_INT(counts[d], 16);
  }
  /* Not divisible (32 = 3 * 10 + 2): 10 or 11 each, sums 32, totals within 1 at every
   * step and exactly equal after every multiple of D steps. */
  long total[3] = {0, 0, 0};
  for (int step = 1; step <= 3000; step++) {
    CHECK_EQ_INT(mpnas__abdp_sample_counts(a, NULL, 32, counts), MPNAS_OK);
    int sum = 0;
    for (int d = 0; d < 3; d++) {
      CHECK(counts[d] == 10 || counts[d] == 11);
      total[d] += counts[d];
      sum += counts[d];
    }
    CHECK_EQ_INT(sum, 32);
    long mn = total[0], mx = total[0];
    for (int d = 1; d < 3; d++) {
      if (total[d] < mn) mn = total[d];
      if (total[d] > mx) mx = total[d];
    }
    CHECK(mx - mn <= 1);
    if (step % 3 == 0) CHECK(mn == mx);
  }
  CHECK_EQ_INT(total[0], 32000);
  /* Fewer images than domains: 2 per step over 3 domains, 2 each after 3 steps. */
  long t2[3] = {0, 0, 0};
  for (int step = 0; step < 3; step++) {
    CHECK_EQ_INT(mpnas__abdp_sample_counts(a, NULL, 2, counts), MPNAS_OK);
    for (int d = 0; d < 3; d++) t2[d] += counts[d];
  }
  for (int d = 0; d < 3; d++) CHECK_EQ_INT(t2[d], 2);
  /* Batch 0 and errors (state unchanged on error). */
  CHECK_EQ_INT(mpnas__abdp_sample_counts(a, NULL, 0, counts), MPNAS_OK);
  for (int d = 0; d < 3; d++) CHECK_EQ_INT(counts[d], 0);
  CHECK_EQ_INT(mpnas__abdp_sample_counts(a, NULL, -1, counts), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas__abdp_sample_counts(a, NULL, MPNAS__ABDP_MAX_BATCH + 1, counts),
               MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas__abdp_sample_counts(a, NULL, 32, NULL), MPNAS_E_INVALID_ARGUMENT);
  mpnas__abdp_destroy(a);

  /* Seven domains, batch 100 = 7 * 14 + 2, over 7 * 1000 steps: equal totals. */
  int32_t cls7[7] = {2, 3, 4, 5, 6, 7, 8};
  int64_t sz7[7] = {1, 10, 100, 1000, 10000, 100000, 1000000};
  a = make(ctx, 7, cls7, sz7, NULL);
  long t7[7] = {0};
  int32_t c7[7];
  for (int step = 0; step < 7000; step++) {
    mpnas__abdp_sample_counts(a, NULL, 100, c7);
    for (int d = 0; d < 7; d++) t7[d] += c7[d];
  }
  for (int d = 0; d < 7; d++) CHECK_EQ_INT(t7[d], 100000);
  mpnas__abdp_destroy(a);
  mpnas_context_free(ctx);
}

static void test_proportional_sampling(void) {
  mpnas_context *ctx = new_ctx();
  int32_t classes[3] = {10, 10, 136};
  int64_t sizes[3] = {60000, 1000, 8000};
  mpnas__abdp_config c;
  mpnas__abdp_config_off(&c);
  mpnas__abdp *a = make(ctx, 3, classes, sizes, &c);
  mpnas__rng r;
  mpnas__rng_seed(&r, 2024, 3);
  int32_t counts[3];
  CHECK_EQ_INT(mpnas__abdp_sample_counts(a, NULL, 32, counts), MPNAS_E_INVALID_ARGUMENT);
  const int B = 32, steps = 10000;
  double expect[3];
  long total[3] = {0, 0, 0};
  for (int d = 0; d < 3; d++) expect[d] = (double)B * sizes[d] / 69000.0;
  for (int step = 0; step < steps; step++) {
    CHECK_EQ_INT(mpnas__abdp_sample_counts(a, &r, B, counts), MPNAS_OK);
    int sum = 0;
    for (int d = 0; d < 3; d++) {
      /* Every count is the floor or the ceiling of its expectation. */
      CHECK(counts[d] == (int)floor(expect[d]) || counts[d] == (int)ceil(expect[d]));
      total[d] += counts[d];
      sum += counts[d];
    }
    CHECK_EQ_INT(sum, B);
  }
  /* A count is a Bernoulli around its expectation: per-step variance <= 1/4, so the
   * standard deviation of a total over 10000 steps is <= 50; allow 5 of them (0.08% of
   * the 320000 images drawn). Expected fractions 0.8696 / 0.0145 / 0.1159. */
  for (int d = 0; d < 3; d++) {
    CHECK_MSG(fabs((double)total[d] - steps * expect[d]) <= 250.0, "domain %d: %ld vs %.1f", d,
              total[d], steps * expect[d]);
    CHECK_NEAR((double)total[d] / (steps * B), sizes[d] / 69000.0, 250.0 / (steps * B));
  }
  /* The same seed gives the same counts. */
  mpnas__rng r1, r2;
  mpnas__rng_seed(&r1, 99, 1);
  mpnas__rng_seed(&r2, 99, 1);
  mpnas__abdp *b = make(ctx, 3, classes, sizes, &c);
  int32_t cb[3];
  for (int step = 0; step < 100; step++) {
    mpnas__abdp_sample_counts(a, &r1, 17, counts);
    mpnas__abdp_sample_counts(b, &r2, 17, cb);
    CHECK(memcmp(counts, cb, sizeof counts) == 0);
  }
  mpnas__abdp_destroy(b);
  mpnas__abdp_destroy(a);

  /* A tiny domain (1 image in 1e6) gets 0 on most steps; with B = 1000 it is expected
   * 0.001 per step: over 20000 steps about 20 images (Poisson-like, allow 0..60). */
  int32_t cls2[2] = {10, 10};
  int64_t sz2[2] = {999999, 1};
  a = make(ctx, 2, cls2, sz2, &c);
  long tiny = 0;
  for (int step = 0; step < 20000; step++) {
    mpnas__abdp_sample_counts(a, &r, 1000, counts);
    CHECK(counts[1] == 0 || counts[1] == 1);
    CHECK_EQ_INT(counts[0] + counts[1], 1000);
    tiny += counts[1];
  }
  CHECK(tiny > 0 && tiny <= 60);
  mpnas__abdp_destroy(a);

  /* Largest sizes and batch: no overflow, exact sum. */
  int64_t big[2] = {MPNAS__ABDP_MAX_TOTAL_SIZE - 3, 3};
  a = make(ctx, 2, cls2, big, &c);
  for (int step = 0; step < 100; step++) {
    CHECK_EQ_INT(mpnas__abdp_sample_counts(a, &r, MPNAS__ABDP_MAX_BATCH, counts), MPNAS_OK);
    CHECK_EQ_INT((int64_t)counts[0] + counts[1], MPNAS__ABDP_MAX_BATCH);
    CHECK(counts[1] == 0 || counts[1] == 1);
  }
  mpnas__abdp_destroy(a);

  /* One domain: everything goes to it, in both modes. */
  int64_t one = 5;
  a = make(ctx, 1, cls2, &one, &c);
  CHECK_EQ_INT(mpnas__abdp_sample_counts(a, &r, 13, counts), MPNAS_OK);
  CHECK_EQ_INT(counts[0], 13);
  mpnas__abdp_destroy(a);
  a = make(ctx, 1, cls2, &one, NULL);
  CHECK_EQ_INT(mpnas__abdp_sample_counts(a, NULL, 13, counts), MPNAS_OK);
  CHECK_EQ_INT(counts[0], 13);
  mpnas__abdp_observe_loss(a, 0, 3.0);
  mpnas__abdp_update(a);
  CHECK(mpnas__abdp_weights(a)[0] == 1.0);
  mpnas__abdp_destroy(a);
  mpnas_context_free(ctx);
}

/* Exact in expectation: with N = 7 images and batch 5, the systematic offset U takes 7
 * equally likely values; the frequencies of the count vectors over many steps match
 * 5 * n_d / 7 for every domain within sampling noise, and no vector other than those
 * the 7 offsets produce ever appears. Expected per step: 15/7, 10/7, 10/7. */
static void test_proportional_expectation(void) {
  mpnas_context *ctx = new_ctx();
  int32_t classes[3] = {10, 10, 10};
  int64_t sizes[3] = {3, 2, 2};
  mpnas__abdp_config c;
  mpnas__abdp_config_off(&c);
  mpnas__abdp *a = make(ctx, 3, classes, sizes, &c);
  mpnas__rng r;
  mpnas__rng_seed(&r, 5, 5);
  /* The 7 vectors: count_d = floor((5 S_d + U) / 7) - floor((5 S_{d-1} + U) / 7),
   * S = (3, 5, 7). Their column sums are 15, 10, 10 (Hermite's identity). */
  int expect_vec[7][3], col[3] = {0, 0, 0};
  for (int u = 0; u < 7; u++) {
    int s[3] = {3, 5, 7}, prev = 0;
    for (int d = 0; d < 3; d++) {
      int cur = (5 * s[d] + u) / 7;
      expect_vec[u][d] = cur - prev;
      col[d] += cur - prev;
      prev = cur;
    }
  }
  CHECK_EQ_INT(col[0], 15);
  CHECK_EQ_INT(col[1], 10);
  CHECK_EQ_INT(col[2], 10);
  long total[3] = {0, 0, 0};
  const int steps = 70000;
  int32_t counts[3];
  for (int step = 0; step < steps; step++) {
    mpnas__abdp_sample_counts(a, &r, 5, counts);
    int known = 0;
    for (int u = 0; u < 7; u++)
      if (counts[0] == expect_vec[u][0] && counts[1] == expect_vec[u][1] &&
          counts[2] == expect_vec[u][2])
        known = 1;
    CHECK(known);
    for (int d = 0; d < 3; d++) total[d] += counts[d];
  }
  /* Per-step std <= 0.5: over 70000 steps <= 132; allow 5 sigma. */
  CHECK_NEAR(total[0], steps * 15.0 / 7.0, 660);
  CHECK_NEAR(total[1], steps * 10.0 / 7.0, 660);
  CHECK_NEAR(total[2], steps * 10.0 / 7.0, 660);
  mpnas__abdp_destroy(a);
  mpnas_context_free(ctx);
}

/* ---- Export / import ----------------------------------------------------------------- */

/* One step of a simulated run: sample, observe, update. */
static void sim_step(mpnas__abdp *a, mpnas__rng *data, mpnas__rng *sampler, int32_t *counts) {
  int32_t D = mpnas__abdp_num_domains(a);
  CHECK_EQ_INT(mpnas__abdp_sample_counts(a, sampler, 29, counts), MPNAS_OK);
  for (int d = 0; d < D; d++) {
    mpnas__abdp_observe_loss(a, d, 3.0 * mpnas__rng_uniform(data) + d);
    if (mpnas__rng_below(data, 3) == 0)
      mpnas__abdp_observe_kpi(a, d, mpnas__rng_uniform(data));
  }
  mpnas__abdp_update(a);
}

static void test_export_import(void) {
  mpnas_context *ctx = new_ctx();
  int32_t classes[4] = {10, 136, 26, 100};
  int64_t sizes[4] = {60000, 1000, 8000, 123};
  for (int mode = 0; mode < 4; mode++) {
    mpnas__abdp_config c;
    mpnas__abdp_config_default(&c);
    c.signal = 1 + mode % 3;
    c.sampling = mode % 2 ? MPNAS__ABDP_SAMPLE_PROPORTIONAL : MPNAS__ABDP_SAMPLE_BALANCED;
    mpnas__abdp *a = make(ctx, 4, classes, sizes, &c);
    mpnas__abdp *b = make(ctx, 4, classes, sizes, &c);
    mpnas__rng data, sampler;
    mpnas__rng_seed(&data, 11, 1);
    mpnas__rng_seed(&sampler, 12, 2);
    int32_t ca[4], cb[4];
    for (int step = 0; step < 23; step++) sim_step(a, &data, &sampler, ca);
    size_t n = mpnas__abdp_state_size(a);
    CHECK_EQ_INT(n, 3 + 5 * 4);
    double state[23], again[23];
    CHECK_EQ_INT(mpnas__abdp_export(a, state, n - 1), MPNAS_E_INVALID_ARGUMENT);
    CHECK_EQ_INT(mpnas__abdp_export(a, state, n), MPNAS_OK);
    CHECK_EQ_INT(mpnas__abdp_import(b, state, n), MPNAS_OK);
    CHECK_EQ_INT(mpnas__abdp_export(b, again, n), MPNAS_OK);
    CHECK(memcmp(state, again, sizeof state) == 0);
    /* Continue both from the same data and sampler state: identical, bit for bit. */
    mpnas__rng data_b = data, sampler_b = sampler;
    for (int step = 0; step < 40; step++) {
      sim_step(a, &data, &sampler, ca);
      sim_step(b, &data_b, &sampler_b, cb);
      CHECK(memcmp(ca, cb, sizeof ca) == 0);
      CHECK(memcmp(mpnas__abdp_weights(a), mpnas__abdp_weights(b), 4 * sizeof(double)) == 0);
    }
    mpnas__abdp_destroy(a);
    mpnas__abdp_destroy(b);
  }

  /* Malformed states are refused and leave the handle as it was. */
  mpnas__abdp_config c;
  mpnas__abdp_config_default(&c);
  c.signal = MPNAS__ABDP_SIGNAL_LOSS;
  mpnas__abdp *a = make(ctx, 4, classes, sizes, &c);
  mpnas__rng data;
  mpnas__rng_seed(&data, 3, 3);
  int32_t counts[4];
  for (int step = 0; step < 5; step++) sim_step(a, &data, NULL, counts);
  double good[23], before[23], after[23], bad[23];
  mpnas__abdp_export(a, good, 23);
  /* A fresh handle's state: zeros, counts 0, weights 1. */
  mpnas__abdp *fresh = make(ctx, 4, classes, sizes, &c);
  mpnas__abdp_export(fresh, before, 23);
  struct {
    int index;
    double value;
    mpnas_status expect;
  } cases[] = {
      {0, 2, MPNAS_E_INCOMPATIBLE},        /* layout version */
      {1, 3, MPNAS_E_INCOMPATIBLE},        /* D */
      {2, 4, MPNAS_E_CORRUPT},             /* rotation offset >= D */
      {2, 0.5, MPNAS_E_CORRUPT},           /* not an integer */
      {3, NAN, MPNAS_E_CORRUPT},           /* loss EMA */
      {3, -1, MPNAS_E_CORRUPT},
      {4, -1, MPNAS_E_CORRUPT},            /* loss count */
      {4, 2.5, MPNAS_E_CORRUPT},
      {4, INFINITY, MPNAS_E_CORRUPT},
      {5, 1.5, MPNAS_E_CORRUPT},           /* accuracy > 1 */
      {7, INFINITY, MPNAS_E_CORRUPT},      /* weight */
      {7, 5.0, MPNAS_E_INCOMPATIBLE},      /* weight outside this config's [0.25, 4] */
      {22, NAN, MPNAS_E_CORRUPT},          /* the last weight */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memcpy(bad, good, sizeof bad);
    bad[cases[i].index] = cases[i].value;
    mpnas_status st = mpnas__abdp_import(fresh, bad, 23);
    CHECK_MSG(st == cases[i].expect, "case %zu: status %d", i, (int)st);
    mpnas__abdp_export(fresh, after, 23);
    CHECK_MSG(memcmp(before, after, sizeof before) == 0, "case %zu changed the handle", i);
  }
  /* An EMA with no observation behind it. */
  memcpy(bad, before, sizeof bad);
  bad[3] = 1.0;
  CHECK_EQ_INT(mpnas__abdp_import(fresh, bad, 23), MPNAS_E_CORRUPT);
  CHECK_EQ_INT(mpnas__abdp_import(fresh, good, 22), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas__abdp_import(fresh, good, 2), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas__abdp_import(fresh, NULL, 23), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas__abdp_import(fresh, good, 23), MPNAS_OK);
  for (int d = 0; d < 4; d++)
    CHECK(mpnas__abdp_weights(fresh)[d] == mpnas__abdp_weights(a)[d]);
  mpnas__abdp_destroy(fresh);
  mpnas__abdp_destroy(a);
  mpnas_context_free(ctx);
}

int main(void) {
  RUN(test_config);
  RUN(test_create_errors);
  RUN(test_none_and_off);
  RUN(test_ema);
  RUN(test_bad_observations);
  RUN(test_not_ready);
  RUN(test_loss_signal);
  RUN(test_kpi_signal);
  RUN(test_boost_signal);
  RUN(test_clip_both_bounds);
  RUN(test_weights_property);
  RUN(test_no_allocation_per_step);
  RUN(test_balanced_sampling);
  RUN(test_proportional_sampling);
  RUN(test_proportional_expectation);
  RUN(test_export_import);
  return check_finish();
}
