/* test_reliability.c - the failure contract of issue 11 (docs/API-STABILITY.md): every
 * failing call leaves a non-empty message (a walk over the API with bad arguments, and
 * every allocation of a search, a training run and a prediction failing in turn), and a
 * call that fails on allocation can be retried. Tiny
 * spaces and data, so the whole program runs in seconds. */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc_counting.h"
#include "check.h"
#include "common/serial.h"
#include "mpnas.h"

/* ---- The failure contract ------------------------------------------------------------ */

/* `call` on a handle of ctx must fail, leaving a non-empty message and its own status as
 * the last status (the last error is cleared first, so an old message does not count). */
#define EXPECT_FAIL(ctx, call)                                                              \
  do {                                                                                      \
    mpnas_context_clear_error(ctx);                                                         \
    mpnas_status s_ = (call);                                                               \
    CHECK_MSG(s_ != MPNAS_OK, "%s succeeded", #call);                                       \
    CHECK_MSG(s_ == MPNAS_OK || mpnas_context_last_error(ctx)[0] != '\0',                   \
              "%s: status %d with an empty message", #call, (int)s_);                       \
    CHECK_MSG(s_ == MPNAS_OK || mpnas_context_last_status(ctx) == s_,                       \
              "%s: returned %d, last status %d", #call, (int)s_,                            \
              (int)mpnas_context_last_status(ctx));                                         \
  } while (0)

#define OK(call) \
  CHECK_MSG((call) == MPNAS_OK, "%s failed: %s", #call, mpnas_context_last_error(ctx))

/* ---- A tiny space, supernet and model ------------------------------------------------- */
#define IH 8
#define IW 8
#define PER (IH * IW) /* one channel */
#define NL 2          /* searchable layers */
#define NIMG 40

static uint32_t lcg(uint32_t *s) {
  *s = *s * 1664525u + 1013904223u;
  return *s >> 8;
}

static uint8_t images[2][NIMG * PER];
static int32_t labels[2][NIMG];
static const int32_t CLASSES[2] = {2, 3};

static void make_data(void) {
  uint32_t s = 7;
  for (int d = 0; d < 2; d++) {
    for (int i = 0; i < NIMG * PER; i++) images[d][i] = (uint8_t)lcg(&s);
    for (int i = 0; i < NIMG; i++) labels[d][i] = (int32_t)(lcg(&s) % (uint32_t)CLASSES[d]);
  }
}

/* 8x8x1, stem 4, one stage of 2 layers (8 ch, stride 2) choosing k {3, 5} x e {1, 2}
 * (4 ops a layer), head 8 with activation `head_act`. */
static mpnas_space *tiny_space(mpnas_context *ctx, int32_t head_act) {
  mpnas_space *sp = NULL;
  OK(mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp));
  if (sp == NULL) return NULL;
  OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_HEIGHT, IH));
  OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_WIDTH, IW));
  OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_CHANNELS, 1));
  OK(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_CHANNELS, 4));
  OK(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 8));
  OK(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_ACTIVATION, head_act));
  OK(mpnas_space_add_stage(sp, 8, NL, 2, MPNAS_ACT_RELU, 0));
  const int32_t k[] = {3, 5}, e[] = {1, 2};
  OK(mpnas_space_set_choices(sp, -1, k, 2, e, 2));
  return sp;
}

/* A supernet with two domains and their data, `steps` search steps. */
static mpnas_supernet *tiny_supernet(mpnas_context *ctx, const mpnas_space *sp, int steps) {
  mpnas_supernet *sn = NULL;
  OK(mpnas_supernet_create(ctx, sp, &sn));
  if (sn == NULL) return NULL;
  for (int d = 0; d < 2; d++) {
    OK(mpnas_supernet_add_domain(sn, d ? "b" : "a", CLASSES[d], NULL));
    OK(mpnas_supernet_set_data(sn, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images[d], labels[d],
                               NIMG));
  }
  OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, steps));
  OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_TRAIN_BATCH, 4));
  OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 8));
  OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_VALIDATION_FRACTION, 0.25));
  return sn;
}

static const int32_t PATHS[2][NL] = {{0, 1}, {2, 3}};

/* A model with two domains, their paths and data, `steps` training steps. */
static mpnas_model *tiny_model(mpnas_context *ctx, const mpnas_space *sp, int steps) {
  mpnas_model *m = NULL;
  OK(mpnas_model_create(ctx, sp, &m));
  if (m == NULL) return NULL;
  for (int d = 0; d < 2; d++) {
    OK(mpnas_model_add_domain(m, d ? "b" : "a", CLASSES[d], PATHS[d], NL, NULL));
    OK(mpnas_model_set_data(m, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images[d], labels[d],
                            NIMG));
  }
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, steps));
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, 4));
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_VALID_BATCH, 8));
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_VALID_EVERY, 2));
  return m;
}

/* ---- Defect 6: a walk over the API with bad arguments ---------------------------------- */

static void walk_context_and_space(mpnas_context *ctx, mpnas_space *sp) {
  int64_t v;
  int32_t n, k, e, se;
  EXPECT_FAIL(ctx, mpnas_context_get_int(ctx, MPNAS_CONTEXT_THREADS, NULL));
  EXPECT_FAIL(ctx, mpnas_context_get_int(ctx, 999, &v));
  EXPECT_FAIL(ctx, mpnas_context_set_int(ctx, 999, 1));
  EXPECT_FAIL(ctx, mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, -1));

  mpnas_space *none = NULL;
  EXPECT_FAIL(ctx, mpnas_space_create(ctx, 99, &none));
  EXPECT_FAIL(ctx, mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, NULL));
  EXPECT_FAIL(ctx, mpnas_space_set_int(sp, MPNAS_SPACE_STEM_KERNEL, 4));
  EXPECT_FAIL(ctx, mpnas_space_set_int(sp, 999, 1));
  EXPECT_FAIL(ctx, mpnas_space_get_int(sp, MPNAS_SPACE_NUM_LAYERS, NULL));
  EXPECT_FAIL(ctx, mpnas_space_get_int(sp, 999, &v));
  EXPECT_FAIL(ctx, mpnas_space_add_stage(sp, 0, 1, 1, MPNAS_ACT_RELU, 0));
  EXPECT_FAIL(ctx, mpnas_space_set_choices(sp, -1, NULL, 1, NULL, 1));
  EXPECT_FAIL(ctx, mpnas_space_set_choices(sp, 7, NULL, 1, NULL, 1));
  EXPECT_FAIL(ctx, mpnas_space_num_ops(sp, 0, NULL));
  EXPECT_FAIL(ctx, mpnas_space_num_ops(sp, 99, &n));
  EXPECT_FAIL(ctx, mpnas_space_op_info(sp, 0, 0, NULL, &e, &se));
  EXPECT_FAIL(ctx, mpnas_space_op_info(sp, 0, 0, &k, NULL, &se));
  EXPECT_FAIL(ctx, mpnas_space_op_info(sp, 0, 0, &k, &e, NULL));
  EXPECT_FAIL(ctx, mpnas_space_op_info(sp, 0, 99, &k, &e, &se));
  int32_t path[NL] = {0, 9};
  char text[8];
  EXPECT_FAIL(ctx, mpnas_space_path_string(sp, NULL, NL, text, sizeof text, NULL));
  EXPECT_FAIL(ctx, mpnas_space_path_string(sp, PATHS[0], NL, text, 2, NULL));
  EXPECT_FAIL(ctx, mpnas_space_parse_path(sp, "k9e9 k3e1", path, NL));
  EXPECT_FAIL(ctx, mpnas_space_parse_path(sp, NULL, path, NL));
  int64_t macs, params;
  EXPECT_FAIL(ctx, mpnas_space_path_cost(sp, path, NL, 2, &macs, &params));
  EXPECT_FAIL(ctx, mpnas_space_path_cost(sp, PATHS[0], NL, 2, NULL, &params));
  double jac[4];
  EXPECT_FAIL(ctx, mpnas_space_jaccard(sp, NULL, 2, NL, jac, 4));
  EXPECT_FAIL(ctx, mpnas_space_jaccard(sp, &PATHS[0][0], 2, NL, jac, 3));
  EXPECT_FAIL(ctx, mpnas_space_node_users(sp, &PATHS[0][0], 2, NL, 0, 0, NULL));
  EXPECT_FAIL(ctx, mpnas_space_node_users(sp, &PATHS[0][0], 2, NL, 5, 0, &n));
}

static void walk_controller(mpnas_context *ctx) {
  const int32_t ops[2] = {2, 3};
  mpnas_controller *c = NULL;
  EXPECT_FAIL(ctx, mpnas_controller_create(ctx, NULL, 2, &c));
  EXPECT_FAIL(ctx, mpnas_controller_create(ctx, ops, 0, &c));
  OK(mpnas_controller_create(ctx, ops, 2, &c));
  if (c == NULL) return;
  int32_t n, path[2] = {0, 5};
  double probs[3], logp;
  EXPECT_FAIL(ctx, mpnas_controller_num_layers(c, NULL));
  EXPECT_FAIL(ctx, mpnas_controller_probabilities(c, 5, probs, 3));
  EXPECT_FAIL(ctx, mpnas_controller_probabilities(c, 1, probs, 2));
  EXPECT_FAIL(ctx, mpnas_controller_argmax(c, NULL, 2));
  EXPECT_FAIL(ctx, mpnas_controller_max_probabilities(c, probs, 3));
  EXPECT_FAIL(ctx, mpnas_controller_sample(c, path, 1));
  EXPECT_FAIL(ctx, mpnas_controller_log_probability(c, path, 2, &logp));
  path[1] = 0;
  EXPECT_FAIL(ctx, mpnas_controller_log_probability(c, path, 2, NULL));
  EXPECT_FAIL(ctx, mpnas_controller_update(c, path, 2, NAN, 0.1, 0.0));
  EXPECT_FAIL(ctx, mpnas_controller_update(c, path, 2, 1.0, 0.0, 0.0));
  (void)n;
  mpnas_controller_free(c);
}

static void walk_supernet(mpnas_context *ctx, const mpnas_space *sp) {
  mpnas_supernet *none = NULL;
  EXPECT_FAIL(ctx, mpnas_supernet_create(ctx, NULL, &none));
  EXPECT_FAIL(ctx, mpnas_supernet_create(ctx, sp, NULL));
  mpnas_supernet *sn = tiny_supernet(ctx, sp, 2);
  if (sn == NULL) return;
  int32_t n, path[NL];
  int64_t v;
  double x;
  size_t count;
  double table[64];
  mpnas_controller *c;
  const int32_t bad_path[NL] = {0, 9};
  EXPECT_FAIL(ctx, mpnas_supernet_space(sn, NULL));
  EXPECT_FAIL(ctx, mpnas_supernet_add_domain(sn, NULL, 2, &n));
  EXPECT_FAIL(ctx, mpnas_supernet_add_domain(sn, "a", 2, &n));
  EXPECT_FAIL(ctx, mpnas_supernet_add_domain(sn, "c", 1, &n));
  EXPECT_FAIL(ctx, mpnas_supernet_num_domains(sn, NULL));
  EXPECT_FAIL(ctx, mpnas_supernet_set_data(sn, 5, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images[0],
                                           labels[0], NIMG));
  EXPECT_FAIL(ctx, mpnas_supernet_set_data(sn, 0, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, NULL,
                                           labels[0], NIMG));
  EXPECT_FAIL(ctx, mpnas_supernet_set_data(sn, 0, 7, MPNAS_DTYPE_U8, images[0], labels[0],
                                           NIMG));
  EXPECT_FAIL(ctx, mpnas_supernet_set_int(sn, MPNAS_SEARCH_TRAIN_BATCH, 0));
  EXPECT_FAIL(ctx, mpnas_supernet_set_int(sn, 999, 0));
  EXPECT_FAIL(ctx, mpnas_supernet_set_int(sn, MPNAS_ABDP_SAMPLING, 9));
  EXPECT_FAIL(ctx, mpnas_supernet_get_int(sn, MPNAS_SEARCH_STEPS, NULL));
  EXPECT_FAIL(ctx, mpnas_supernet_get_int(sn, 999, &v));
  EXPECT_FAIL(ctx, mpnas_supernet_set_double(sn, MPNAS_SEARCH_ENTROPY_BONUS, NAN));
  EXPECT_FAIL(ctx, mpnas_supernet_set_double(sn, MPNAS_SEARCH_RL_RAMP, 1e300));
  EXPECT_FAIL(ctx, mpnas_supernet_set_double(sn, MPNAS_ABDP_TAU, -1.0));
  EXPECT_FAIL(ctx, mpnas_supernet_get_double(sn, MPNAS_SEARCH_LEARNING_RATE, NULL));
  EXPECT_FAIL(ctx, mpnas_supernet_get_double(sn, 999, &x));
  EXPECT_FAIL(ctx, mpnas_supernet_set_fixed_path(sn, NULL, NL));
  EXPECT_FAIL(ctx, mpnas_supernet_set_fixed_path(sn, bad_path, NL));
  EXPECT_FAIL(ctx, mpnas_supernet_search(sn, -1, NULL, NULL, 0));
  EXPECT_FAIL(ctx, mpnas_supernet_domain_stat(sn, 0, MPNAS_STAT_REWARD, NULL));
  EXPECT_FAIL(ctx, mpnas_supernet_domain_stat(sn, 9, MPNAS_STAT_REWARD, &x));
  EXPECT_FAIL(ctx, mpnas_supernet_domain_stat(sn, 0, 999, &x));
  EXPECT_FAIL(ctx, mpnas_supernet_controller(sn, 0, &c));
  EXPECT_FAIL(ctx, mpnas_supernet_controller(sn, 0, NULL));
  EXPECT_FAIL(ctx, mpnas_supernet_path(sn, 0, path, NL));
  EXPECT_FAIL(ctx, mpnas_supernet_path(sn, 0, NULL, NL));
  EXPECT_FAIL(ctx, mpnas_supernet_latency_table(sn, table, 1, &count));
  table[0] = NAN;
  EXPECT_FAIL(ctx, mpnas_supernet_set_latency_table(sn, table, 1));
  EXPECT_FAIL(ctx, mpnas_supernet_save_checkpoint(sn, "/tmp/mpnas-rel-never.ckpt"));
  EXPECT_FAIL(ctx, mpnas_supernet_save_checkpoint(sn, NULL));
  EXPECT_FAIL(ctx, mpnas_supernet_load_checkpoint(sn, NULL));
  EXPECT_FAIL(ctx, mpnas_supernet_load_checkpoint(sn, "/nonexistent/mpnas.ckpt"));
  EXPECT_FAIL(ctx, mpnas_supernet_load_checkpoint(sn, "/tmp"));
  mpnas_model *m = NULL;
  EXPECT_FAIL(ctx, mpnas_model_create_from_supernet(sn, NULL));
  EXPECT_FAIL(ctx, mpnas_model_create_from_supernet(sn, &m)); /* not searched: no paths */
  /* After the search has started. */
  OK(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
  EXPECT_FAIL(ctx, mpnas_supernet_add_domain(sn, "c", 2, &n));
  EXPECT_FAIL(ctx, mpnas_supernet_set_data(sn, 0, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images[0],
                                           labels[0], NIMG));
  EXPECT_FAIL(ctx, mpnas_supernet_set_int(sn, MPNAS_SEARCH_METHOD, MPNAS_METHOD_INDEPENDENT));
  EXPECT_FAIL(ctx, mpnas_supernet_set_int(sn, MPNAS_ABDP_SIGNAL, MPNAS_ABDP_SIGNAL_LOSS));
  EXPECT_FAIL(ctx, mpnas_supernet_set_fixed_path(sn, PATHS[0], NL));
  EXPECT_FAIL(ctx, mpnas_supernet_path(sn, 0, path, 1));
  EXPECT_FAIL(ctx, mpnas_supernet_controller(sn, 5, &c));
  mpnas_supernet_free(sn);
}

static void walk_model(mpnas_context *ctx, const mpnas_space *sp) {
  mpnas_model *none = NULL;
  EXPECT_FAIL(ctx, mpnas_model_create(ctx, NULL, &none));
  EXPECT_FAIL(ctx, mpnas_model_create(ctx, sp, NULL));
  mpnas_model *m = tiny_model(ctx, sp, 2);
  if (m == NULL) return;
  int32_t n, path[NL];
  int64_t v;
  double x, top1, loss, jac[4];
  char name[2];
  size_t size;
  const int32_t bad_path[NL] = {0, 9};
  mpnas_predictor *p = NULL;
  EXPECT_FAIL(ctx, mpnas_model_add_domain(m, "c", 2, bad_path, NL, &n));
  EXPECT_FAIL(ctx, mpnas_model_add_domain(m, "c", 2, PATHS[0], 1, &n));
  EXPECT_FAIL(ctx, mpnas_model_add_domain(m, "a", 2, PATHS[0], NL, &n));
  EXPECT_FAIL(ctx, mpnas_model_num_domains(m, NULL));
  EXPECT_FAIL(ctx, mpnas_model_domain_name(m, 0, NULL, 0, NULL));
  EXPECT_FAIL(ctx, mpnas_model_domain_name(m, 0, name, 1, &size));
  EXPECT_FAIL(ctx, mpnas_model_domain_name(m, 7, name, 2, &size));
  EXPECT_FAIL(ctx, mpnas_model_domain_classes(m, 0, NULL));
  EXPECT_FAIL(ctx, mpnas_model_path(m, 0, NULL, NL));
  EXPECT_FAIL(ctx, mpnas_model_path(m, 3, path, NL));
  EXPECT_FAIL(ctx, mpnas_model_space(m, NULL));
  EXPECT_FAIL(ctx, mpnas_model_set_data(m, 0, MPNAS_SPLIT_TRAIN, 5, images[0], labels[0], NIMG));
  EXPECT_FAIL(ctx, mpnas_model_set_data(m, 0, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images[0], NULL,
                                        NIMG));
  EXPECT_FAIL(ctx, mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, 0));
  EXPECT_FAIL(ctx, mpnas_model_set_int(m, MPNAS_TRAIN_STEP, 1));
  EXPECT_FAIL(ctx, mpnas_model_get_int(m, MPNAS_TRAIN_STEPS, NULL));
  EXPECT_FAIL(ctx, mpnas_model_get_int(m, 999, &v));
  EXPECT_FAIL(ctx, mpnas_model_set_double(m, MPNAS_TRAIN_LEARNING_RATE, 0.0));
  EXPECT_FAIL(ctx, mpnas_model_set_double(m, 999, 0.5));
  EXPECT_FAIL(ctx, mpnas_model_get_double(m, MPNAS_TRAIN_MOMENTUM, NULL));
  EXPECT_FAIL(ctx, mpnas_model_set_domain_int(m, 0, MPNAS_DOMAIN_HFLIP, 2));
  EXPECT_FAIL(ctx, mpnas_model_set_domain_int(m, 0, 999, 0));
  EXPECT_FAIL(ctx, mpnas_model_domain_stat(m, 0, MPNAS_STAT_TRAIN_LOSS, NULL));
  EXPECT_FAIL(ctx, mpnas_model_domain_stat(m, 0, MPNAS_STAT_REWARD, &x));
  EXPECT_FAIL(ctx, mpnas_model_node_users(m, 0, 99, &n));
  EXPECT_FAIL(ctx, mpnas_model_jaccard(m, jac, 3));
  /* Not trained yet. */
  EXPECT_FAIL(ctx, mpnas_model_evaluate(m, 0, MPNAS_DTYPE_U8, images[0], labels[0], NIMG, &top1,
                                        &loss));
  EXPECT_FAIL(ctx, mpnas_predictor_create(m, &p));
  EXPECT_FAIL(ctx, mpnas_model_save(m, "/tmp/mpnas-rel-never.model"));
  EXPECT_FAIL(ctx, mpnas_model_save_buffer(m, NULL, 0, &size));
  EXPECT_FAIL(ctx, mpnas_model_save_checkpoint(m, "/tmp/mpnas-rel-never.ckpt"));
  EXPECT_FAIL(ctx, mpnas_model_train(m, -1, NULL, NULL, 0));
  /* Trained. */
  OK(mpnas_model_train(m, 0, NULL, NULL, 0));
  EXPECT_FAIL(ctx, mpnas_model_add_domain(m, "c", 2, PATHS[0], NL, &n));
  EXPECT_FAIL(ctx, mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, 8));
  EXPECT_FAIL(ctx, mpnas_model_set_data(m, 0, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images[0],
                                        labels[0], NIMG));
  int32_t bad_labels[NIMG];
  memcpy(bad_labels, labels[0], sizeof bad_labels);
  bad_labels[3] = 7;
  EXPECT_FAIL(ctx, mpnas_model_evaluate(m, 0, MPNAS_DTYPE_U8, images[0], NULL, NIMG, &top1,
                                        &loss));
  EXPECT_FAIL(ctx, mpnas_model_evaluate(m, 0, MPNAS_DTYPE_U8, images[0], bad_labels, NIMG,
                                        &top1, &loss));
  EXPECT_FAIL(ctx, mpnas_model_evaluate(m, 0, MPNAS_DTYPE_U8, images[0], labels[0], 0, &top1,
                                        &loss));
  EXPECT_FAIL(ctx, mpnas_model_save(m, NULL));
  EXPECT_FAIL(ctx, mpnas_model_save(m, "/nonexistent/dir/model"));
  EXPECT_FAIL(ctx, mpnas_model_save_buffer(m, NULL, 0, NULL));
  EXPECT_FAIL(ctx, mpnas_model_save_buffer(m, name, sizeof name, &size));
  EXPECT_FAIL(ctx, mpnas_model_save_checkpoint(m, NULL));
  EXPECT_FAIL(ctx, mpnas_model_load_checkpoint(m, NULL));
  EXPECT_FAIL(ctx, mpnas_model_load_checkpoint(m, "/nonexistent/mpnas.ckpt"));
  EXPECT_FAIL(ctx, mpnas_predictor_create(m, NULL));
  OK(mpnas_predictor_create(m, &p));
  float out[NIMG * 3];
  if (p != NULL) {
    EXPECT_FAIL(ctx, mpnas_predictor_run(p, 5, MPNAS_DTYPE_U8, images[0], NIMG, 0, out, 120));
    EXPECT_FAIL(ctx, mpnas_predictor_run(p, 0, MPNAS_DTYPE_U8, NULL, NIMG, 0, out, 120));
    EXPECT_FAIL(ctx, mpnas_predictor_run(p, 0, 9, images[0], NIMG, 0, out, 120));
    EXPECT_FAIL(ctx, mpnas_predictor_run(p, 0, MPNAS_DTYPE_U8, images[0], NIMG, 5, out, 120));
    EXPECT_FAIL(ctx, mpnas_predictor_run(p, 0, MPNAS_DTYPE_U8, images[0], NIMG, 0, out, 10));
    EXPECT_FAIL(ctx, mpnas_predictor_run(p, 0, MPNAS_DTYPE_U8, images[0], NIMG, 0, NULL, 120));
  }
  mpnas_predictor_free(p);
  mpnas_model *loaded = NULL;
  static const unsigned char junk[64] = "not a model";
  EXPECT_FAIL(ctx, mpnas_model_load(ctx, NULL, &loaded));
  EXPECT_FAIL(ctx, mpnas_model_load(ctx, "/nonexistent/model", &loaded));
  EXPECT_FAIL(ctx, mpnas_model_load(ctx, "/tmp", &loaded));
  EXPECT_FAIL(ctx, mpnas_model_load_buffer(ctx, NULL, 10, &loaded));
  EXPECT_FAIL(ctx, mpnas_model_load_buffer(ctx, junk, sizeof junk, &loaded));
  EXPECT_FAIL(ctx, mpnas_model_load_buffer(ctx, junk, sizeof junk, NULL));
  mpnas_model_free(m);
}

static void test_failing_calls_leave_a_message(void) {
  alloc_counting c;
  mpnas_context *ctx = alloc_counting_context(&c, 0);
  CHECK(ctx != NULL);
  if (ctx == NULL) return;
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  walk_context_and_space(ctx, sp);
  walk_controller(ctx);
  walk_supernet(ctx, sp);
  walk_model(ctx, sp);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* ---- Defects 6 and 3: every allocation failing in turn, then a retry ----------------- */

/* The search, allocation k failing (k = 1, 2, ... until none is left to fail): a failing
 * search leaves a message; searching again with a healthy allocator finishes; nothing is
 * leaked (the failed preparation freed its pieces instead of the retry overwriting them). */
static void test_search_allocation_failures(void) {
  alloc_counting c;
  mpnas_context *ctx = alloc_counting_context(&c, 0);
  CHECK(ctx != NULL);
  if (ctx == NULL) return;
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  long base = c.live;
  int done = 0, failures = 0;
  for (long k = 1; k < 5000 && !done; k++) {
    mpnas_supernet *sn = tiny_supernet(ctx, sp, 3);
    if (sn == NULL) break;
    mpnas_context_clear_error(ctx);
    c.fail_at = c.total + k;
    mpnas_status st = mpnas_supernet_search(sn, 0, NULL, NULL, 0);
    long hit = c.fail_at <= c.total;
    c.fail_at = 0;
    done = st == MPNAS_OK && !hit;
    if (st != MPNAS_OK) {
      failures++;
      CHECK_MSG(mpnas_context_last_error(ctx)[0] != '\0',
                "search, allocation %ld failing: status %d, empty message", k, (int)st);
      st = mpnas_supernet_search(sn, 0, NULL, NULL, 0);
      CHECK_MSG(st == MPNAS_OK, "search, allocation %ld failed: the retry gives %d (%s)", k,
                (int)st, mpnas_context_last_error(ctx));
    }
    mpnas_supernet_free(sn);
    CHECK_MSG(c.live == base, "search, allocation %ld failing: %ld blocks leaked", k,
              c.live - base);
    base = c.live;
  }
  CHECK(done);
  CHECK(failures > 10);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* The same for training a model, then for predicting and evaluating with it. */
static void test_train_allocation_failures(void) {
  alloc_counting c;
  mpnas_context *ctx = alloc_counting_context(&c, 0);
  CHECK(ctx != NULL);
  if (ctx == NULL) return;
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  long base = c.live;
  int done = 0, failures = 0;
  for (long k = 1; k < 5000 && !done; k++) {
    mpnas_model *m = tiny_model(ctx, sp, 3);
    if (m == NULL) break;
    mpnas_context_clear_error(ctx);
    c.fail_at = c.total + k;
    mpnas_status st = mpnas_model_train(m, 0, NULL, NULL, 0);
    long hit = c.fail_at <= c.total;
    c.fail_at = 0;
    done = st == MPNAS_OK && !hit;
    if (st != MPNAS_OK) {
      failures++;
      CHECK_MSG(mpnas_context_last_error(ctx)[0] != '\0',
                "train, allocation %ld failing: status %d, empty message", k, (int)st);
      st = mpnas_model_train(m, 0, NULL, NULL, 0);
      CHECK_MSG(st == MPNAS_OK, "train, allocation %ld failed: the retry gives %d (%s)", k,
                (int)st, mpnas_context_last_error(ctx));
    }
    mpnas_model_free(m);
    CHECK_MSG(c.live == base, "train, allocation %ld failing: %ld blocks leaked", k,
              c.live - base);
    base = c.live;
  }
  CHECK(done);
  CHECK(failures > 10);

  /* Predictions and evaluation of a trained model: a failure leaves a message, the retry
   * gives the undisturbed results. */
  mpnas_model *m = tiny_model(ctx, sp, 3);
  OK(mpnas_model_train(m, 0, NULL, NULL, 0));
  float want[NIMG * 3], got[NIMG * 3];
  double top1_want = -1, loss_want = -1;
  mpnas_predictor *p = NULL;
  OK(mpnas_predictor_create(m, &p));
  OK(mpnas_predictor_run(p, 1, MPNAS_DTYPE_U8, images[1], NIMG, MPNAS_OUTPUT_PROBABILITIES,
                         want, NIMG * 3));
  OK(mpnas_model_evaluate(m, 1, MPNAS_DTYPE_U8, images[1], labels[1], NIMG, &top1_want,
                          &loss_want));
  mpnas_predictor_free(p);
  long live = c.live;
  done = 0;
  for (long k = 1; k < 1000 && !done; k++) {
    mpnas_predictor *q = NULL;
    mpnas_context_clear_error(ctx);
    c.fail_at = c.total + k;
    mpnas_status st = mpnas_predictor_create(m, &q);
    if (st == MPNAS_OK)
      st = mpnas_predictor_run(q, 1, MPNAS_DTYPE_U8, images[1], NIMG,
                               MPNAS_OUTPUT_PROBABILITIES, got, NIMG * 3);
    long hit = c.fail_at <= c.total;
    c.fail_at = 0;
    done = st == MPNAS_OK && !hit;
    if (st != MPNAS_OK) {
      CHECK_MSG(mpnas_context_last_error(ctx)[0] != '\0',
                "predict, allocation %ld failing: status %d, empty message", k, (int)st);
      if (q == NULL) OK(mpnas_predictor_create(m, &q));
      if (q != NULL)
        OK(mpnas_predictor_run(q, 1, MPNAS_DTYPE_U8, images[1], NIMG,
                               MPNAS_OUTPUT_PROBABILITIES, got, NIMG * 3));
    }
    CHECK_MSG(memcmp(got, want, sizeof want) == 0, "predict, allocation %ld failing: retry "
              "differs", k);
    mpnas_predictor_free(q);
    CHECK_EQ_INT(c.live, live);
  }
  CHECK(done);
  done = 0;
  for (long k = 1; k < 1000 && !done; k++) {
    double top1 = -1, loss = -1;
    mpnas_context_clear_error(ctx);
    c.fail_at = c.total + k;
    mpnas_status st = mpnas_model_evaluate(m, 1, MPNAS_DTYPE_U8, images[1], labels[1], NIMG,
                                           &top1, &loss);
    long hit = c.fail_at <= c.total;
    c.fail_at = 0;
    done = st == MPNAS_OK && !hit;
    if (st != MPNAS_OK)
      CHECK_MSG(mpnas_context_last_error(ctx)[0] != '\0',
                "evaluate, allocation %ld failing: status %d, empty message", k, (int)st);
    else
      CHECK(top1 == top1_want && loss == loss_want);
    CHECK_EQ_INT(c.live, live);
  }
  CHECK(done);
  mpnas_model_free(m);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* ---- Defect 5: loaders read at most a bound ------------------------------------------ */

#define MIB ((size_t)1 << 20)

/* A model file's bytes (plain malloc). */
static unsigned char *model_bytes(mpnas_model *m, size_t *n) {
  *n = 0;
  if (mpnas_model_save_buffer(m, NULL, 0, n) != MPNAS_OK) return NULL;
  unsigned char *p = malloc(*n);
  if (p != NULL && mpnas_model_save_buffer(m, p, *n, n) != MPNAS_OK) {
    free(p);
    p = NULL;
  }
  return p;
}

/* A process writing `n` bytes of `p` into a pipe, then closing it (then = 0), writing
 * zeros until the reader goes away (1) or keeping it open without writing (2). Returns
 * the read end as "/dev/fd/N" in path; *pid the writer. */
static int pipe_writer(const unsigned char *p, size_t n, int then, char *path, size_t cap,
                       pid_t *pid) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  *pid = fork();
  if (*pid < 0) return -1;
  if (*pid == 0) {
    close(fds[0]);
    static const unsigned char zeros[4096];
    size_t at = 0;
    while (at < n) {
      ssize_t w = write(fds[1], p + at, n - at);
      if (w <= 0) _exit(0);
      at += (size_t)w;
    }
    while (then == 1 && write(fds[1], zeros, sizeof zeros) > 0) {
    }
    if (then == 2) sleep(30); /* killed by finish_writer */
    _exit(0);
  }
  close(fds[1]);
  snprintf(path, cap, "/dev/fd/%d", fds[0]);
  return fds[0];
}

static void finish_writer(int fd, pid_t pid) {
  close(fd);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* /dev/zero, pipes that never end or declare too much, and the context's bound: each
 * refused quickly with a message, nothing large ever asked of the allocator. */
static void test_file_read_bounds(void) {
  alloc_counting c;
  /* Refuse (and record) any block above 16 MiB, so an unbounded read fails fast too. */
  mpnas_context *ctx = alloc_counting_context(&c, 16 * MIB);
  CHECK(ctx != NULL);
  if (ctx == NULL) return;
  int64_t v = 0;
  OK(mpnas_context_get_int(ctx, MPNAS_CONTEXT_MAX_FILE_BYTES, &v));
  CHECK_EQ_INT(v, (int64_t)1 << 30);
  EXPECT_FAIL(ctx, mpnas_context_set_int(ctx, MPNAS_CONTEXT_MAX_FILE_BYTES, 1023));
  EXPECT_FAIL(ctx, mpnas_context_set_int(ctx, MPNAS_CONTEXT_MAX_FILE_BYTES, (int64_t)1 << 49));
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  mpnas_model *m = tiny_model(ctx, sp, 2);
  OK(mpnas_model_train(m, 0, NULL, NULL, 0));
  mpnas_supernet *sn = tiny_supernet(ctx, sp, 2);

  /* /dev/zero into each loader. */
  mpnas_model *loaded = NULL;
  double t0 = check_seconds();
  c.largest = 0;
  EXPECT_FAIL(ctx, mpnas_model_load(ctx, "/dev/zero", &loaded));
  CHECK(strstr(mpnas_context_last_error(ctx), "/dev/zero") != NULL);
  EXPECT_FAIL(ctx, mpnas_model_load_checkpoint(m, "/dev/zero"));
  EXPECT_FAIL(ctx, mpnas_supernet_load_checkpoint(sn, "/dev/zero"));
  CHECK_MSG(c.largest <= MIB, "largest allocation %zu bytes", c.largest);
  CHECK(check_seconds() - t0 < 2.0);

  /* Pipes: a whole model file loads, also when the writer keeps the pipe open (it is read
   * up to the length its header declares); a header declaring 2^40 bytes, then zeros
   * forever, is refused at the header. */
  size_t n = 0;
  unsigned char *file = model_bytes(m, &n);
  CHECK(file != NULL && n > 64);
  if (file != NULL) {
    char path[64];
    pid_t pid;
    for (int then = 0; then <= 2; then += 2) {
      t0 = check_seconds();
      int fd = pipe_writer(file, n, then, path, sizeof path, &pid);
      CHECK(fd >= 0);
      if (fd >= 0) {
        OK(mpnas_model_load(ctx, path, &loaded));
        finish_writer(fd, pid);
        mpnas_model_free(loaded);
        loaded = NULL;
      }
      CHECK(check_seconds() - t0 < 2.0);
    }
    unsigned char header[32];
    memcpy(header, file, 32);
    for (int i = 0; i < 8; i++) header[16 + i] = (unsigned char)((uint64_t)1 << 40 >> (8 * i));
    uint32_t crc = mpnas__crc32(0, header, 28);
    for (int i = 0; i < 4; i++) header[28 + i] = (unsigned char)(crc >> (8 * i));
    c.largest = 0;
    t0 = check_seconds();
    int fd = pipe_writer(header, sizeof header, 1, path, sizeof path, &pid);
    CHECK(fd >= 0);
    if (fd >= 0) {
      EXPECT_FAIL(ctx, mpnas_model_load(ctx, path, &loaded));
      CHECK(strstr(mpnas_context_last_error(ctx), "MPNAS_CONTEXT_MAX_FILE_BYTES") != NULL);
      finish_writer(fd, pid);
    }
    CHECK_MSG(c.largest <= MIB, "largest allocation %zu bytes", c.largest);
    CHECK(check_seconds() - t0 < 2.0);

    /* The bound: a file one byte over it is refused, at it loads. */
    const char *tmp = "/tmp/mpnas-rel-bound.model";
    OK(mpnas_model_save(m, tmp));
    OK(mpnas_context_set_int(ctx, MPNAS_CONTEXT_MAX_FILE_BYTES, (int64_t)n - 1));
    EXPECT_FAIL(ctx, mpnas_model_load(ctx, tmp, &loaded));
    CHECK(strstr(mpnas_context_last_error(ctx), "MPNAS_CONTEXT_MAX_FILE_BYTES") != NULL);
    OK(mpnas_context_set_int(ctx, MPNAS_CONTEXT_MAX_FILE_BYTES, (int64_t)n));
    OK(mpnas_model_load(ctx, tmp, &loaded));
    mpnas_model_free(loaded);
    remove(tmp);
    free(file);
  }
  mpnas_supernet_free(sn);
  mpnas_model_free(m);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* ---- Defect 7: no non-finite output with MPNAS_OK ------------------------------------ */

/* Payload offset and length of section `tag` in a container, 0 if none. */
static size_t section_at(const unsigned char *p, size_t n, const char *tag, size_t *len) {
  size_t off = 32;
  while (off + 24 <= n) {
    uint64_t plen = 0;
    for (int i = 7; i >= 0; i--) plen = plen << 8 | p[off + 8 + i];
    if (memcmp(p + off, tag, 4) == 0) {
      *len = (size_t)plen;
      return off + 24;
    }
    off += 24 + (size_t)plen + (size_t)((8 - plen % 8) % 8);
  }
  return 0;
}

/* Recompute the CRC of the section whose payload starts at `payload`. */
static void fix_section_crc(unsigned char *p, size_t payload, size_t len) {
  uint32_t crc = mpnas__crc32(mpnas__crc32(0, p + payload - 24, 20), p + payload, len);
  for (int i = 0; i < 4; i++) p[payload - 4 + i] = (unsigned char)(crc >> (8 * i));
}

static void put_f32(unsigned char *p, float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(u >> (8 * i));
}

static void test_non_finite(void) {
  alloc_counting c;
  mpnas_context *ctx = alloc_counting_context(&c, 0);
  CHECK(ctx != NULL);
  if (ctx == NULL) return;
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_NONE);
  mpnas_model *m = tiny_model(ctx, sp, 2);
  OK(mpnas_model_train(m, 0, NULL, NULL, 0));

  /* Float pixels that are not finite: refused, naming the image. */
  float *x = malloc(sizeof(float) * NIMG * PER);
  for (int i = 0; i < NIMG * PER; i++) x[i] = (float)images[0][i];
  float out[NIMG * 3];
  double top1, loss;
  mpnas_predictor *p = NULL;
  OK(mpnas_predictor_create(m, &p));
  OK(mpnas_predictor_run(p, 0, MPNAS_DTYPE_F32, x, NIMG, MPNAS_OUTPUT_LOGITS, out, NIMG * 3));
  OK(mpnas_model_evaluate(m, 0, MPNAS_DTYPE_F32, x, labels[0], NIMG, &top1, &loss));
  x[2 * PER + 5] = NAN;
  EXPECT_FAIL(ctx, mpnas_predictor_run(p, 0, MPNAS_DTYPE_F32, x, NIMG, MPNAS_OUTPUT_LOGITS, out,
                                       NIMG * 3));
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_INVALID_ARGUMENT);
  CHECK(strstr(mpnas_context_last_error(ctx), "image 2 ") != NULL);
  x[2 * PER + 5] = 0.0f;
  x[5 * PER] = -INFINITY;
  EXPECT_FAIL(ctx, mpnas_model_evaluate(m, 0, MPNAS_DTYPE_F32, x, labels[0], NIMG, &top1, &loss));
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_INVALID_ARGUMENT);
  CHECK(strstr(mpnas_context_last_error(ctx), "image 5 ") != NULL);
  mpnas_predictor_free(p);
  free(x);

  /* Legal files (finite weights) whose weights overflow float: every weight 2.5e38, the
   * classifier's only, one weight. A prediction or evaluation either fails with
   * MPNAS_E_CORRUPT and a message or gives finite outputs; the first must fail. */
  size_t n = 0;
  unsigned char *file = model_bytes(m, &n);
  size_t len = 0, at = file ? section_at(file, n, "PARW", &len) : 0;
  CHECK(at > 0 && len >= 64);
  for (int variant = 0; variant < 3 && at > 0; variant++) {
    unsigned char *f = malloc(n);
    memcpy(f, file, n);
    size_t first = variant == 1 ? len - 4 * 64 : 0, last = variant == 2 ? 4 : len;
    for (size_t i = first; i < last; i += 4) put_f32(f + at + i, 2.5e38f);
    fix_section_crc(f, at, len);
    mpnas_model *huge = NULL;
    OK(mpnas_model_load_buffer(ctx, f, n, &huge));
    free(f);
    if (huge == NULL) continue;
    OK(mpnas_predictor_create(huge, &p));
    for (int32_t o = MPNAS_OUTPUT_LOGITS; o <= MPNAS_OUTPUT_PROBABILITIES && p; o++) {
      mpnas_context_clear_error(ctx);
      mpnas_status st = mpnas_predictor_run(p, 1, MPNAS_DTYPE_U8, images[1], NIMG, o, out,
                                            NIMG * 3);
      int finite = 1;
      for (int i = 0; i < NIMG * 3 && st == MPNAS_OK; i++) finite &= isfinite(out[i]) != 0;
      CHECK_MSG(st == MPNAS_OK ? finite : st == MPNAS_E_CORRUPT,
                "variant %d, output %d: status %d, finite %d", variant, (int)o, (int)st, finite);
      if (st != MPNAS_OK) CHECK(strstr(mpnas_context_last_error(ctx), "not finite") != NULL);
      if (variant == 0) CHECK(st == MPNAS_E_CORRUPT);
    }
    mpnas_predictor_free(p);
    p = NULL;
    mpnas_context_clear_error(ctx);
    top1 = loss = 0.0;
    mpnas_status st = mpnas_model_evaluate(huge, 1, MPNAS_DTYPE_U8, images[1], labels[1], NIMG,
                                           &top1, &loss);
    CHECK_MSG(st == MPNAS_OK ? isfinite(loss) != 0 : st == MPNAS_E_CORRUPT,
              "variant %d, evaluate: status %d, loss %g", variant, (int)st, loss);
    if (st != MPNAS_OK) CHECK(mpnas_context_last_error(ctx)[0] != '\0');
    if (variant == 0) CHECK(st == MPNAS_E_CORRUPT);
    mpnas_model_free(huge);
  }
  free(file);
  mpnas_model_free(m);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* ---- Defect 4: search checkpoints restore only what the setters accept ---------------- */

/* A file's bytes (plain malloc), *n its length. */
static unsigned char *read_bytes(const char *path, size_t *n) {
  *n = 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *p = malloc(len > 0 ? (size_t)len : 1);
  if (p != NULL && len > 0 && fread(p, 1, (size_t)len, f) == (size_t)len) *n = (size_t)len;
  fclose(f);
  return p;
}

/* The checkpoint of sn's current state. */
static unsigned char *checkpoint_bytes(mpnas_supernet *sn, size_t *n) {
  const char *path = "/tmp/mpnas-rel-search.ckpt";
  *n = 0;
  if (mpnas_supernet_save_checkpoint(sn, path) != MPNAS_OK) return NULL;
  unsigned char *p = read_bytes(path, n);
  remove(path);
  return p;
}

static int same_bytes(const unsigned char *a, size_t na, const unsigned char *b, size_t nb) {
  return a != NULL && b != NULL && na == nb && memcmp(a, b, na) == 0;
}

static void put_le(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_f64(unsigned char *p, double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  put_le(p, u, 8);
}

typedef struct bad_value {
  const char *section;
  size_t at;     /* offset in the payload */
  int bytes;     /* 4 or 8: an integer; 0: an f64 */
  int64_t i;
  double d;
  const char *field; /* expected in the message */
} bad_value;

/* CONF: i32 method, i64 steps, i32 train batch, i32 valid batch, i32 cost, i32 reward,
 * then f64 warmup 28, lr 36, momentum 44, weight decay 52, label smoothing 60, RL rate 68,
 * RL delay 76, RL ramp 84, entropy 92, beta 100, target 108, gamma 116, valid fraction
 * 124. STAT: i64 step 0, i64 optimiser steps 8, stream 16; per domain (56 bytes from 32):
 * stream, loss EMA, accuracy, reward, cost, weight; then i32 latency flag. */
static const bad_value BAD[] = {
    {"CONF", 92, 0, 0, NAN, "MPNAS_SEARCH_ENTROPY_BONUS"},
    {"CONF", 84, 0, 0, 1e300, "MPNAS_SEARCH_RL_RAMP"},
    {"CONF", 20, 4, 7, 0, "MPNAS_SEARCH_COST"},
    {"CONF", 12, 4, 5000, 0, "MPNAS_SEARCH_TRAIN_BATCH"},
    {"CONF", 16, 4, 0, 0, "MPNAS_SEARCH_VALID_BATCH"},
    {"CONF", 24, 4, 2, 0, "MPNAS_SEARCH_REWARD"},
    {"CONF", 0, 4, 9, 0, "MPNAS_SEARCH_METHOD"},
    {"CONF", 4, 8, 0, 0, "MPNAS_SEARCH_STEPS"},
    {"CONF", 28, 0, 0, 2.0, "MPNAS_SEARCH_WARMUP_FRACTION"},
    {"CONF", 36, 0, 0, 0.0, "MPNAS_SEARCH_LEARNING_RATE"},
    {"CONF", 44, 0, 0, 1.0, "MPNAS_SEARCH_MOMENTUM"},
    {"CONF", 52, 0, 0, -1.0, "MPNAS_SEARCH_WEIGHT_DECAY"},
    {"CONF", 60, 0, 0, INFINITY, "MPNAS_SEARCH_LABEL_SMOOTHING"},
    {"CONF", 68, 0, 0, -0.5, "MPNAS_SEARCH_RL_LEARNING_RATE"},
    {"CONF", 76, 0, 0, 1.0, "MPNAS_SEARCH_RL_DELAY_FRACTION"},
    {"CONF", 100, 0, 0, 1.0, "MPNAS_SEARCH_COST_BETA"},
    {"CONF", 108, 0, 0, -1.0, "MPNAS_SEARCH_COST_TARGET"},
    {"CONF", 116, 0, 0, NAN, "MPNAS_SEARCH_SHARING_GAMMA"},
    {"CONF", 124, 0, 0, 0.95, "MPNAS_SEARCH_VALIDATION_FRACTION"},
    {"CONF", 20, 4, MPNAS_COST_LATENCY, 0, "latency table"}, /* the file has none */
    {"STAT", 0, 8, 1000, 0, "step"},
    {"STAT", 8, 8, -1, 0, "optimiser steps"},
    {"STAT", 24, 8, 2, 0, "path sampling stream"},
    {"STAT", 80, 0, 0, NAN, "statistics"},
    {"STAT", 144, 4, 5, 0, "latency flag"},
};

static void test_search_checkpoint_settings(void) {
  alloc_counting c;
  mpnas_context *ctx = alloc_counting_context(&c, 0);
  CHECK(ctx != NULL);
  if (ctx == NULL) return;
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  mpnas_supernet *src = tiny_supernet(ctx, sp, 6);
  OK(mpnas_supernet_search(src, 3, NULL, NULL, 0));
  size_t n = 0;
  unsigned char *good = checkpoint_bytes(src, &n);
  CHECK(good != NULL && n > 0);
  /* A supernet in the middle of another search of the same kind. */
  mpnas_supernet *busy = tiny_supernet(ctx, sp, 6);
  OK(mpnas_supernet_search(busy, 2, NULL, NULL, 0));
  size_t nbusy = 0;
  unsigned char *busy_before = checkpoint_bytes(busy, &nbusy);
  for (size_t k = 0; k < sizeof BAD / sizeof BAD[0] && good != NULL; k++) {
    const bad_value *b = &BAD[k];
    unsigned char *f = malloc(n);
    memcpy(f, good, n);
    size_t len = 0, at = section_at(f, n, b->section, &len);
    CHECK(at > 0 && b->at + 8 <= len);
    if (b->bytes)
      put_le(f + at + b->at, (uint64_t)b->i, b->bytes);
    else
      put_f64(f + at + b->at, b->d);
    fix_section_crc(f, at, len);
    /* Into a fresh supernet: refused, naming the field; still not started. */
    mpnas_supernet *sn = tiny_supernet(ctx, sp, 6);
    OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_ENTROPY_BONUS, 0.5));
    EXPECT_FAIL(ctx, mpnas_supernet_load_checkpoint_buffer(sn, f, n));
    CHECK_MSG(mpnas_context_last_status(ctx) == MPNAS_E_CORRUPT &&
                  strstr(mpnas_context_last_error(ctx), b->field) != NULL,
              "case %zu (%s): status %d, message \"%s\"", k, b->field,
              (int)mpnas_context_last_status(ctx), mpnas_context_last_error(ctx));
    int64_t v = -1;
    double x = -1;
    mpnas_controller *ctrl = NULL;
    OK(mpnas_supernet_get_int(sn, MPNAS_SEARCH_STEP, &v));
    CHECK_EQ_INT(v, 0);
    OK(mpnas_supernet_get_double(sn, MPNAS_SEARCH_ENTROPY_BONUS, &x));
    CHECK(x == 0.5);
    CHECK_EQ_INT(mpnas_supernet_controller(sn, 0, &ctrl), MPNAS_E_STATE); /* not started */
    OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, 7)); /* settings still open */
    mpnas_supernet_free(sn);
    /* Into a supernet whose search has started: refused, the state unchanged. */
    EXPECT_FAIL(ctx, mpnas_supernet_load_checkpoint_buffer(busy, f, n));
    size_t nafter = 0;
    unsigned char *after = checkpoint_bytes(busy, &nafter);
    CHECK_MSG(same_bytes(busy_before, nbusy, after, nafter), "case %zu: the supernet changed",
              k);
    free(after);
    free(f);
  }
  /* Another validation fraction: a fresh supernet splits its data by it; one whose data
   * is split already refuses it, unchanged. */
  if (good != NULL) {
    unsigned char *f = malloc(n);
    memcpy(f, good, n);
    size_t len = 0, at = section_at(f, n, "CONF", &len);
    put_f64(f + at + 124, 0.5);
    fix_section_crc(f, at, len);
    EXPECT_FAIL(ctx, mpnas_supernet_load_checkpoint_buffer(busy, f, n));
    CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_INCOMPATIBLE);
    size_t nafter = 0;
    unsigned char *after = checkpoint_bytes(busy, &nafter);
    CHECK(same_bytes(busy_before, nbusy, after, nafter));
    free(after);
    mpnas_supernet *sn = tiny_supernet(ctx, sp, 6);
    OK(mpnas_supernet_load_checkpoint_buffer(sn, f, n));
    double size = 0;
    OK(mpnas_supernet_domain_stat(sn, 0, MPNAS_STAT_VALID_SIZE, &size));
    CHECK(size == NIMG / 2);
    OK(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
    mpnas_supernet_free(sn);
    free(f);
  }
  /* The checkpoint itself loads, from a file and from a buffer alike. */
  mpnas_supernet *a = tiny_supernet(ctx, sp, 6), *b = tiny_supernet(ctx, sp, 6);
  const char *path = "/tmp/mpnas-rel-good.ckpt";
  OK(mpnas_supernet_save_checkpoint(src, path));
  OK(mpnas_supernet_load_checkpoint(a, path));
  OK(mpnas_supernet_load_checkpoint_buffer(b, good, n));
  remove(path);
  EXPECT_FAIL(ctx, mpnas_supernet_load_checkpoint_buffer(b, NULL, n));
  EXPECT_FAIL(ctx, mpnas_supernet_load_checkpoint_buffer(b, good, n - 1));
  OK(mpnas_supernet_search(a, 0, NULL, NULL, 0));
  OK(mpnas_supernet_search(b, 0, NULL, NULL, 0));
  OK(mpnas_supernet_search(src, 0, NULL, NULL, 0));
  size_t na = 0, nb = 0, ns = 0;
  unsigned char *ba = checkpoint_bytes(a, &na), *bb = checkpoint_bytes(b, &nb);
  unsigned char *bs = checkpoint_bytes(src, &ns);
  CHECK(same_bytes(ba, na, bb, nb));
  CHECK(same_bytes(ba, na, bs, ns));
  free(ba), free(bb), free(bs);
  mpnas_supernet_free(a);
  mpnas_supernet_free(b);
  free(good);
  free(busy_before);
  mpnas_supernet_free(busy);
  mpnas_supernet_free(src);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* A checkpoint of a search with the k-th set of settings after `steps` steps. */
static unsigned char *settings_checkpoint(mpnas_context *ctx, const mpnas_space *sp, int k,
                                          int steps, size_t *n) {
  mpnas_supernet *sn = tiny_supernet(ctx, sp, 8 + k);
  if (k == 1) {
    OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_TRAIN_BATCH, 6));
    OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_LEARNING_RATE, 0.02));
    OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_COST, MPNAS_COST_PARAMS));
    OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_REWARD, MPNAS_REWARD_MNAS));
    OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_ENTROPY_BONUS, 0.01));
    OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_RL_DELAY_FRACTION, 0.0));
    OK(mpnas_supernet_set_int(sn, MPNAS_ABDP_SAMPLING, MPNAS_ABDP_SAMPLE_PROPORTIONAL));
    OK(mpnas_supernet_set_int(sn, MPNAS_ABDP_SIGNAL, MPNAS_ABDP_SIGNAL_LOSS));
  } else if (k == 2) {
    double table[1 + 2 * 4];
    for (int i = 0; i < 9; i++) table[i] = 1e-4 * (i + 1);
    OK(mpnas_supernet_set_latency_table(sn, table, 9));
    OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_COST, MPNAS_COST_LATENCY));
    OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 12));
    OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_RL_DELAY_FRACTION, 0.1));
    OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_SHARING_GAMMA, 0.5));
  }
  OK(mpnas_supernet_search(sn, steps, NULL, NULL, 0));
  unsigned char *p = checkpoint_bytes(sn, n);
  mpnas_supernet_free(sn);
  return p;
}

/* Load checkpoints of different searches in turn into one supernet (searching a little
 * after each), then the last: continuing gives the same search, byte for byte, as a
 * fresh supernet that loaded only the last. */
static void test_checkpoints_in_turn(void) {
  alloc_counting c;
  mpnas_context *ctx = alloc_counting_context(&c, 0);
  CHECK(ctx != NULL);
  if (ctx == NULL) return;
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  unsigned char *ck[3];
  size_t nck[3];
  for (int k = 0; k < 3; k++) {
    ck[k] = settings_checkpoint(ctx, sp, k, 3 + k, &nck[k]);
    CHECK(ck[k] != NULL);
  }
  static const int ORDERS[2][3] = {{0, 1, 2}, {2, 1, 0}};
  for (int o = 0; o < 2; o++) {
    const int *order = ORDERS[o];
    mpnas_supernet *used = tiny_supernet(ctx, sp, 5), *fresh = tiny_supernet(ctx, sp, 5);
    for (int i = 0; i < 3; i++) {
      OK(mpnas_supernet_load_checkpoint_buffer(used, ck[order[i]], nck[order[i]]));
      if (i < 2) OK(mpnas_supernet_search(used, 1 + (int64_t)i, NULL, NULL, 0));
    }
    OK(mpnas_supernet_load_checkpoint_buffer(fresh, ck[order[2]], nck[order[2]]));
    OK(mpnas_supernet_search(used, 0, NULL, NULL, 0));
    OK(mpnas_supernet_search(fresh, 0, NULL, NULL, 0));
    size_t nu = 0, nf = 0;
    unsigned char *bu = checkpoint_bytes(used, &nu), *bf = checkpoint_bytes(fresh, &nf);
    CHECK_MSG(same_bytes(bu, nu, bf, nf), "order %d: the used supernet's search differs", o);
    for (int d = 0; d < 2; d++) {
      int32_t pu[NL], pf[NL];
      OK(mpnas_supernet_path(used, d, pu, NL));
      OK(mpnas_supernet_path(fresh, d, pf, NL));
      CHECK(memcmp(pu, pf, sizeof pu) == 0);
    }
    free(bu), free(bf);
    mpnas_supernet_free(used);
    mpnas_supernet_free(fresh);
  }
  for (int k = 0; k < 3; k++) free(ck[k]);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* ---- Found by fuzzing ---------------------------------------------------------------- */

/* Settings each in range that give no usable reward with the paths' costs (a cost target
 * of 10^-314 overflows C / C0; 10^-300 gave a finite reward of -10^303, which turned the
 * controller's float logits into NaN with MPNAS_OK): the search refuses them with
 * MPNAS_E_STATE and a message naming the reward before its first step. A search
 * checkpoint holding such a target loaded with MPNAS_OK and failed the next step with
 * MPNAS_E_INVALID_ARGUMENT "computing rewards at step 3" (fuzz_search_checkpoint). */
static void test_unusable_reward(void) {
  alloc_counting c;
  mpnas_context *ctx = alloc_counting_context(&c, 0);
  CHECK(ctx != NULL);
  if (ctx == NULL) return;
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  static const struct {
    int32_t reward;
    double target, beta;
  } CASES[] = {{MPNAS_REWARD_ABS, 1e-314, -0.1},
               {MPNAS_REWARD_ABS, 1e-300, -0.1},
               {MPNAS_REWARD_MNAS, 1e18, -100.0}};
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
    mpnas_supernet *sn = tiny_supernet(ctx, sp, 4);
    OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_REWARD, CASES[i].reward));
    OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_COST_TARGET, CASES[i].target));
    OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_COST_BETA, CASES[i].beta));
    OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_RL_DELAY_FRACTION, 0.0));
    EXPECT_FAIL(ctx, mpnas_supernet_search(sn, 0, NULL, NULL, 0));
    CHECK_MSG(mpnas_context_last_status(ctx) == MPNAS_E_STATE &&
                  strstr(mpnas_context_last_error(ctx), "reward") != NULL &&
                  strstr(mpnas_context_last_error(ctx), "MPNAS_SEARCH_COST_TARGET") != NULL,
              "case %zu: status %d, %s", i, (int)mpnas_context_last_status(ctx),
              mpnas_context_last_error(ctx));
    /* Refused before the first step: the search has not started (no controllers yet). */
    int64_t step = -1;
    OK(mpnas_supernet_get_int(sn, MPNAS_SEARCH_STEP, &step));
    CHECK_EQ_INT(step, 0);
    mpnas_controller *ctrl = NULL;
    EXPECT_FAIL(ctx, mpnas_supernet_controller(sn, 0, &ctrl));
    mpnas_supernet_free(sn);
  }
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* The same settings set after a search has begun: the next search call refuses them
 * before any step (the step count stays), and a checkpoint holding them is refused by
 * the loader with MPNAS_E_INCOMPATIBLE, leaving the loading supernet as it was (before,
 * it loaded with MPNAS_OK and the next step failed). */
static void test_unusable_reward_refused_early(void) {
  alloc_counting c;
  mpnas_context *ctx = alloc_counting_context(&c, 0);
  CHECK(ctx != NULL);
  if (ctx == NULL) return;
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  char path[64];
  snprintf(path, sizeof path, "/tmp/mpnas-rel-reward-%d.ckpt", (int)getpid());
  mpnas_supernet *sn = tiny_supernet(ctx, sp, 4);
  OK(mpnas_supernet_search(sn, 1, NULL, NULL, 0));
  OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_COST_TARGET, 1e-300));
  EXPECT_FAIL(ctx, mpnas_supernet_search(sn, 0, NULL, NULL, 0));
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_STATE);
  CHECK(strstr(mpnas_context_last_error(ctx), "MPNAS_SEARCH_COST_TARGET") != NULL);
  int64_t step = -1;
  OK(mpnas_supernet_get_int(sn, MPNAS_SEARCH_STEP, &step));
  CHECK_EQ_INT(step, 1);
  OK(mpnas_supernet_save_checkpoint(sn, path));
  mpnas_supernet_free(sn);

  mpnas_supernet *fresh = tiny_supernet(ctx, sp, 4);
  EXPECT_FAIL(ctx, mpnas_supernet_load_checkpoint(fresh, path));
  CHECK_MSG(mpnas_context_last_status(ctx) == MPNAS_E_INCOMPATIBLE &&
                strstr(mpnas_context_last_error(ctx), "reward") != NULL,
            "status %d, %s", (int)mpnas_context_last_status(ctx), mpnas_context_last_error(ctx));
  double target = -1;
  OK(mpnas_supernet_get_double(fresh, MPNAS_SEARCH_COST_TARGET, &target));
  CHECK(target == 0.0);
  OK(mpnas_supernet_get_int(fresh, MPNAS_SEARCH_STEP, &step));
  CHECK_EQ_INT(step, 0);
  OK(mpnas_supernet_search(fresh, 1, NULL, NULL, 0)); /* still usable */
  mpnas_supernet_free(fresh);
  remove(path);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* ---- Defect 8: domain names, too-small buffers, temporary files ----------------------- */

/* No byte of the last message outside printable ASCII: raw bytes never reach it. */
static int message_is_ascii(mpnas_context *ctx) {
  for (const unsigned char *p = (const unsigned char *)mpnas_context_last_error(ctx); *p; p++)
    if (*p < 0x20 || *p > 0x7e) return 0;
  return 1;
}

/* Names are 1..63 printable ASCII characters, from the API and from files alike. */
/* A model's and a supernet's own space is read-only: through FFI the const of
 * mpnas_model_space / mpnas_supernet_space is lost, and a space changed under a built
 * handle made predictors read past their buffers and saved files that do not load. */
static void test_embedded_space_read_only(void) {
  mpnas_context *ctx = NULL;
  OK(mpnas_context_create(&ctx));
  if (ctx == NULL) return;
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  mpnas_supernet *sn = NULL;
  mpnas_model *m = NULL;
  OK(mpnas_supernet_create(ctx, sp, &sn));
  OK(mpnas_model_create(ctx, sp, &m));
  const mpnas_space *own[2] = {NULL, NULL};
  OK(mpnas_model_space(m, &own[0]));
  OK(mpnas_supernet_space(sn, &own[1]));
  const int32_t k[1] = {7}, e[1] = {16};
  for (int i = 0; i < 2; i++) {
    mpnas_space *s = (mpnas_space *)own[i]; /* what an FFI caller holds */
    if (s == NULL) continue;
    int64_t before = 0, after = -1, layers = 0, layers_after = -1;
    OK(mpnas_space_get_int(s, MPNAS_SPACE_INPUT_HEIGHT, &before));
    OK(mpnas_space_get_int(s, MPNAS_SPACE_NUM_LAYERS, &layers));
    EXPECT_FAIL(ctx, mpnas_space_set_int(s, MPNAS_SPACE_INPUT_HEIGHT, 512));
    CHECK(mpnas_context_last_status(ctx) == MPNAS_E_STATE);
    CHECK(strstr(mpnas_context_last_error(ctx), i == 0 ? "model" : "supernet") != NULL);
    EXPECT_FAIL(ctx, mpnas_space_clear_stages(s));
    EXPECT_FAIL(ctx, mpnas_space_add_stage(s, 8, 1, 1, MPNAS_ACT_RELU, 1));
    EXPECT_FAIL(ctx, mpnas_space_set_choices(s, -1, k, 1, e, 1));
    mpnas_space_free(s); /* not the caller's: left alone */
    OK(mpnas_space_get_int(s, MPNAS_SPACE_INPUT_HEIGHT, &after));
    OK(mpnas_space_get_int(s, MPNAS_SPACE_NUM_LAYERS, &layers_after));
    CHECK(after == before && layers_after == layers);
  }
  OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_HEIGHT, 16)); /* the caller's own: changes */
  mpnas_model_free(m);
  mpnas_supernet_free(sn);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

/* A progress callback that changes the running handle: every such call is refused with
 * MPNAS_E_STATE (clear_data made the step divide by zero; quantize + drop_float left a
 * model training on dropped weights, then crashing evaluate), and the run goes on. */
typedef struct cb_calls {
  int calls, refused, other, named; /* named: the refusal's message names the call */
  mpnas_context *ctx;
} cb_calls;

/* The last refusal named `call` and the run it came from. */
static void note_named(cb_calls *c, const char *call, const char *run) {
  const char *msg = c->ctx != NULL ? mpnas_context_last_error(c->ctx) : NULL;
  char want[128];
  snprintf(want, sizeof want, " %s: called %s", call, run);
  if (msg != NULL && strstr(msg, want) != NULL) c->named++;
}

static void note(cb_calls *c, mpnas_status st) {
  c->calls++;
  if (st == MPNAS_E_STATE) c->refused++;
  else c->other++;
}

static int32_t train_cb(void *user, mpnas_model *m, int64_t step, int64_t total) {
  (void)step;
  (void)total;
  cb_calls *c = user;
  note(c, mpnas_model_clear_data(m));
  note(c, mpnas_model_quantize(m, 4));
  note(c, mpnas_model_drop_float(m));
  note(c, mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, 3));
  note(c, mpnas_model_set_data(m, 0, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images[0], labels[0],
                               NIMG));
  note(c, mpnas_model_train(m, 1, NULL, NULL, 0));
  note_named(c, "mpnas_model_train", "while mpnas_model_train runs");
  return 0;
}

static int32_t search_cb(void *user, mpnas_supernet *sn, int64_t step, int64_t total) {
  (void)step;
  (void)total;
  cb_calls *c = user;
  note(c, mpnas_supernet_set_data(sn, 0, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images[0], labels[0],
                                  NIMG));
  note(c, mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, 2));
  note(c, mpnas_supernet_search(sn, 1, NULL, NULL, 0));
  note_named(c, "mpnas_supernet_search", "while mpnas_supernet_search runs");
  return 0;
}

static void test_changes_from_a_callback_refused(void) {
  mpnas_context *ctx = NULL;
  OK(mpnas_context_create(&ctx));
  if (ctx == NULL) return;
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  mpnas_model *m = tiny_model(ctx, sp, 4);
  cb_calls c = {.ctx = ctx};
  OK(mpnas_model_train(m, 0, train_cb, &c, 1));
  CHECK(c.calls > 0 && c.refused == c.calls && c.other == 0);
  CHECK(c.named == 4); /* the message names the call and the run, at every step */
  int64_t step = 0, q = -1;
  OK(mpnas_model_get_int(m, MPNAS_TRAIN_STEP, &step));
  OK(mpnas_model_get_int(m, MPNAS_MODEL_QUANTIZED, &q));
  CHECK(step == 4 && q == 0);
  double top1 = 0, loss = 0;
  OK(mpnas_model_evaluate(m, 0, MPNAS_DTYPE_U8, images[0], labels[0], NIMG, &top1, &loss));
  OK(mpnas_model_clear_data(m)); /* after the run: allowed */
  mpnas_supernet *sn = tiny_supernet(ctx, sp, 3);
  cb_calls s = {.ctx = ctx};
  OK(mpnas_supernet_search(sn, 0, search_cb, &s, 1));
  CHECK(s.calls > 0 && s.refused == s.calls && s.other == 0);
  CHECK(s.named == 3);
  OK(mpnas_supernet_get_int(sn, MPNAS_SEARCH_STEP, &step));
  CHECK(step == 3);
  mpnas_supernet_free(sn);
  mpnas_model_free(m);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

/* Checkpoints carry the seed the run's splits were drawn with: a model checkpoint saved
 * after the context's seed changed still resumes (in a context with the run's seed) to
 * the uninterrupted run's model, and a search checkpoint is refused by a context with
 * another seed (it loaded and silently drew another validation split). */
static void test_checkpoint_seed_is_the_runs(void) {
  mpnas_context *ctx = NULL;
  OK(mpnas_context_create(&ctx));
  if (ctx == NULL) return;
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  mpnas_model *full = tiny_model(ctx, sp, 6), *half = tiny_model(ctx, sp, 6);
  OK(mpnas_model_train(full, 0, NULL, NULL, 0));
  OK(mpnas_model_train(half, 3, NULL, NULL, 0));
  OK(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 7)); /* e.g. for another model */
  char ck[64], sck[64];
  snprintf(ck, sizeof ck, "/tmp/mpnas-rel-seed-%d.ckpt", (int)getpid());
  snprintf(sck, sizeof sck, "/tmp/mpnas-rel-seed-%d.sckpt", (int)getpid());
  OK(mpnas_model_save_checkpoint(half, ck));
  mpnas_model *resumed = tiny_model(ctx, sp, 6);
  EXPECT_FAIL(ctx, mpnas_model_load_checkpoint(resumed, ck)); /* this context has seed 7 */
  OK(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 0));
  OK(mpnas_model_load_checkpoint(resumed, ck));
  OK(mpnas_model_train(resumed, 0, NULL, NULL, 0));
  size_t na = 0, nb = 0;
  OK(mpnas_model_save_buffer(full, NULL, 0, &na));
  OK(mpnas_model_save_buffer(resumed, NULL, 0, &nb));
  unsigned char *a = malloc(na), *b = malloc(nb);
  CHECK(na == nb && a != NULL && b != NULL);
  if (a && b && na == nb) {
    OK(mpnas_model_save_buffer(full, a, na, &na));
    OK(mpnas_model_save_buffer(resumed, b, nb, &nb));
    CHECK(memcmp(a, b, na) == 0); /* the uninterrupted run's model */
  }
  free(a);
  free(b);
  remove(ck);
  mpnas_supernet *sn = tiny_supernet(ctx, sp, 6);
  OK(mpnas_supernet_search(sn, 3, NULL, NULL, 0));
  OK(mpnas_supernet_save_checkpoint(sn, sck));
  OK(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 5));
  mpnas_supernet *other = tiny_supernet(ctx, sp, 6);
  EXPECT_FAIL(ctx, mpnas_supernet_load_checkpoint(other, sck));
  CHECK(mpnas_context_last_status(ctx) == MPNAS_E_INCOMPATIBLE);
  OK(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 0));
  mpnas_supernet *same = tiny_supernet(ctx, sp, 6);
  OK(mpnas_supernet_load_checkpoint(same, sck));
  remove(sck);
  mpnas_supernet_free(same);
  mpnas_supernet_free(other);
  mpnas_supernet_free(sn);
  mpnas_model_free(resumed);
  mpnas_model_free(half);
  mpnas_model_free(full);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

/* The largest space the setters accept: its MAC count saturates instead of wrapping
 * negative (a signed overflow). */
static void test_huge_space_cost(void) {
  mpnas_context *ctx = NULL;
  OK(mpnas_context_create(&ctx));
  if (ctx == NULL) return;
  mpnas_space *sp = NULL;
  OK(mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp));
  if (sp == NULL) return;
  OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_HEIGHT, 4096));
  OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_WIDTH, 4096));
  OK(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_STRIDE, 1));
  for (int st = 0; st < 4; st++) OK(mpnas_space_add_stage(sp, 8192, 64, 1, MPNAS_ACT_RELU, 0));
  const int32_t k[] = {9}, e[] = {16};
  OK(mpnas_space_set_choices(sp, -1, k, 1, e, 1));
  int64_t layers = 0, macs = -1, params = -1;
  OK(mpnas_space_get_int(sp, MPNAS_SPACE_NUM_LAYERS, &layers));
  int32_t path[256] = {0};
  CHECK(layers == 256);
  OK(mpnas_space_path_cost(sp, path, (size_t)layers, 10, &macs, &params));
  CHECK(macs == INT64_MAX && params > 0);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

/* A space without searchable layers: the search says so (it said "controller: 0 layers"). */
static void test_search_without_layers(void) {
  mpnas_context *ctx = NULL;
  OK(mpnas_context_create(&ctx));
  if (ctx == NULL) return;
  mpnas_space *sp = NULL;
  OK(mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp));
  OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_HEIGHT, IH));
  OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_WIDTH, IW));
  OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_CHANNELS, 1));
  mpnas_supernet *sn = tiny_supernet(ctx, sp, 2);
  EXPECT_FAIL(ctx, mpnas_supernet_search(sn, 0, NULL, NULL, 0));
  CHECK(strstr(mpnas_context_last_error(ctx), "no searchable layers") != NULL);
  mpnas_supernet_free(sn);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

static void test_domain_names(void) {
  alloc_counting c;
  mpnas_context *ctx = alloc_counting_context(&c, 0);
  CHECK(ctx != NULL);
  if (ctx == NULL) return;
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  mpnas_supernet *sn = NULL;
  mpnas_model *m = NULL;
  OK(mpnas_supernet_create(ctx, sp, &sn));
  OK(mpnas_model_create(ctx, sp, &m));
  static const char *const BAD_NAMES[] = {"caf\xc3\xa9", "\xff\xfe", "a\tb", "del\x7f",
                                          "\x80", ""};
  for (size_t i = 0; i < sizeof BAD_NAMES / sizeof BAD_NAMES[0]; i++) {
    EXPECT_FAIL(ctx, mpnas_supernet_add_domain(sn, BAD_NAMES[i], 2, NULL));
    CHECK(message_is_ascii(ctx));
    EXPECT_FAIL(ctx, mpnas_model_add_domain(m, BAD_NAMES[i], 2, PATHS[0], NL, NULL));
    CHECK(message_is_ascii(ctx));
  }
  OK(mpnas_supernet_add_domain(sn, " a~Z 9!", 2, NULL)); /* space and punctuation are fine */
  OK(mpnas_model_add_domain(m, " a~Z 9!", 2, PATHS[0], NL, NULL));
  mpnas_supernet_free(sn);
  mpnas_model_free(m);

  /* Files: a name byte outside printable ASCII (with the CRC fixed) is MPNAS_E_CORRUPT,
   * and the message carries none of the file's bytes. DOMS: count, then "a" (u32 length
   * 1, the byte at 8). The search checkpoint's META: u64, 3 x i32, then "a" at 24. */
  m = tiny_model(ctx, sp, 2);
  OK(mpnas_model_train(m, 0, NULL, NULL, 0));
  size_t n = 0, len = 0;
  unsigned char *file = model_bytes(m, &n);
  size_t at = file != NULL ? section_at(file, n, "DOMS", &len) : 0;
  CHECK(at > 0 && file[at + 8] == 'a');
  sn = tiny_supernet(ctx, sp, 3);
  OK(mpnas_supernet_search(sn, 1, NULL, NULL, 0));
  size_t nck = 0, lck = 0;
  unsigned char *ck = checkpoint_bytes(sn, &nck);
  size_t atck = ck != NULL ? section_at(ck, nck, "META", &lck) : 0;
  CHECK(atck > 0 && ck[atck + 24] == 'a');
  static const unsigned char BYTES[] = {0xe9, 0x80, 0xff, 0x1b, 0x7f};
  for (size_t i = 0; i < sizeof BYTES && at > 0 && atck > 0; i++) {
    file[at + 8] = BYTES[i];
    fix_section_crc(file, at, len);
    mpnas_model *l = NULL;
    EXPECT_FAIL(ctx, mpnas_model_load_buffer(ctx, file, n, &l));
    CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_CORRUPT);
    CHECK_MSG(message_is_ascii(ctx), "byte 0x%02x: %s", BYTES[i], mpnas_context_last_error(ctx));
    ck[atck + 24] = BYTES[i];
    fix_section_crc(ck, atck, lck);
    EXPECT_FAIL(ctx, mpnas_supernet_load_checkpoint_buffer(sn, ck, nck));
    CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_CORRUPT);
    CHECK_MSG(message_is_ascii(ctx), "byte 0x%02x: %s", BYTES[i], mpnas_context_last_error(ctx));
  }
  free(file);
  free(ck);
  mpnas_supernet_free(sn);
  mpnas_model_free(m);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* A buffer too small for the result is MPNAS_E_INVALID_ARGUMENT in every function that
 * fills one (mpnas.h, "Conventions"), and the size it needs is still reported. */
static void test_small_buffers(void) {
  alloc_counting c;
  mpnas_context *ctx = alloc_counting_context(&c, 0);
  CHECK(ctx != NULL);
  if (ctx == NULL) return;
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  mpnas_model *m = tiny_model(ctx, sp, 2);
  OK(mpnas_model_train(m, 0, NULL, NULL, 0));
  char text[4];
  size_t need = 0, size = 0, count = 0;
  EXPECT_FAIL(ctx, mpnas_space_path_string(sp, PATHS[0], NL, text, sizeof text, &need));
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_INVALID_ARGUMENT);
  CHECK(need > sizeof text);
  need = 0;
  OK(mpnas_space_path_string(sp, PATHS[0], NL, NULL, 0, &need)); /* the size only */
  CHECK(need > sizeof text);
  EXPECT_FAIL(ctx, mpnas_model_domain_name(m, 0, text, 1, &need));
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(need, 2);
  EXPECT_FAIL(ctx, mpnas_model_save_buffer(m, text, sizeof text, &size));
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_INVALID_ARGUMENT);
  CHECK(size > sizeof text);
  double d[3];
  EXPECT_FAIL(ctx, mpnas_space_jaccard(sp, &PATHS[0][0], 2, NL, d, 3));
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_INVALID_ARGUMENT);
  EXPECT_FAIL(ctx, mpnas_model_jaccard(m, d, 3));
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_INVALID_ARGUMENT);
  mpnas_supernet *sn = tiny_supernet(ctx, sp, 2);
  EXPECT_FAIL(ctx, mpnas_supernet_latency_table(sn, d, 1, &count));
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(count, 9);
  mpnas_controller *ctrl = NULL;
  const int32_t ops[2] = {4, 4};
  OK(mpnas_controller_create(ctx, ops, 2, &ctrl));
  EXPECT_FAIL(ctx, mpnas_controller_probabilities(ctrl, 0, d, 3));
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_INVALID_ARGUMENT);
  mpnas_predictor *p = NULL;
  float out[2 * 3];
  OK(mpnas_predictor_create(m, &p));
  EXPECT_FAIL(ctx, mpnas_predictor_run(p, 1, MPNAS_DTYPE_U8, images[1], 2, MPNAS_OUTPUT_LOGITS,
                                       out, 5));
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_INVALID_ARGUMENT);
  mpnas_predictor_free(p);
  mpnas_controller_free(ctrl);
  mpnas_supernet_free(sn);
  mpnas_model_free(m);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

static int file_exists(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return access(path, F_OK) == 0;
}

static void touch(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (f != NULL) fclose(f);
}

/* A save removes the temporary files that saves of the same path left behind when their
 * process was killed (pid gone), and nothing else. */
static void test_stale_temp_files(void) {
  char dir[] = "/tmp/mpnas-rel-tmp-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  pid_t dead = fork(); /* a pid that no longer runs once reaped */
  if (dead == 0) _exit(0);
  CHECK(dead > 0);
  waitpid(dead, NULL, 0);
  char stale[2][64], alive[64], other[64], odd[3][64];
  snprintf(stale[0], 64, "m.model.tmp.%ld.0", (long)dead);
  snprintf(stale[1], 64, "m.model.tmp.%ld.17", (long)dead);
  snprintf(alive, 64, "m.model.tmp.%ld.3", (long)getpid()); /* a save of ours under way */
  snprintf(other, 64, "n.model.tmp.%ld.0", (long)dead);     /* another target's */
  snprintf(odd[0], 64, "m.model.tmp.%ld.x", (long)dead);    /* not a name saves make */
  snprintf(odd[1], 64, "m.model.tmp.%ld", (long)dead);
  snprintf(odd[2], 64, "xm.model.tmp.%ld.0", (long)dead);
  const char *all[] = {stale[0], stale[1], alive, other, odd[0], odd[1], odd[2],
                       "m.model.tmp.1.0" /* init: alive */};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) touch(dir, all[i]);

  alloc_counting c;
  mpnas_context *ctx = alloc_counting_context(&c, 0);
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  mpnas_model *m = tiny_model(ctx, sp, 2);
  OK(mpnas_model_train(m, 0, NULL, NULL, 0));
  char path[512];
  snprintf(path, sizeof path, "%s/m.model", dir);
  OK(mpnas_model_save(m, path));
  CHECK(file_exists(dir, "m.model"));
  CHECK(!file_exists(dir, stale[0]) && !file_exists(dir, stale[1]));
  for (size_t i = 2; i < sizeof all / sizeof all[0]; i++)
    CHECK_MSG(file_exists(dir, all[i]), "%s was removed", all[i]);
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, all[i]);
    remove(path);
  }
  snprintf(path, sizeof path, "%s/m.model", dir);
  remove(path);
  CHECK(rmdir(dir) == 0); /* nothing else was left */
  mpnas_model_free(m);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* ---- Defect 9: fork after threads ------------------------------------------------------ */

/* What a host does: train a model, then predict a batch (both start worker threads). */
static mpnas_status train_and_predict(mpnas_context *ctx, const mpnas_space *sp, float *out) {
  mpnas_model *m = tiny_model(ctx, sp, 3);
  mpnas_predictor *p = NULL;
  mpnas_status st = m != NULL ? mpnas_model_train(m, 0, NULL, NULL, 0) : MPNAS_E_NO_MEMORY;
  if (st == MPNAS_OK) st = mpnas_predictor_create(m, &p);
  if (st == MPNAS_OK)
    st = mpnas_predictor_run(p, 1, MPNAS_DTYPE_U8, images[1], NIMG, MPNAS_OUTPUT_LOGITS, out,
                             NIMG * 3);
  mpnas_predictor_free(p);
  mpnas_model_free(m);
  return st;
}

/* Train and predict on two threads, fork, and do it again in the child: the child must
 * finish (it runs on one thread: libgomp's pool does not survive fork), with the same
 * results as the parent (they do not depend on the thread count). An alarm ends a child
 * that hangs. */
static void test_fork_after_threads(void) {
  mpnas_context *ctx = NULL;
  OK(mpnas_context_create(&ctx));
  if (ctx == NULL) return;
  OK(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, 2));
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  static float before[NIMG * 3], after[NIMG * 3];
  OK(train_and_predict(ctx, sp, before));
  fflush(stdout); /* the child must not write the parent's buffered output again */
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    alarm(60);
    mpnas_status st = train_and_predict(ctx, sp, after);
    _exit(st != MPNAS_OK ? 1 : memcmp(before, after, sizeof before) != 0 ? 2 : 0);
  }
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child %s",
            WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? "hung (ended by the alarm)"
            : WIFEXITED(status) && WEXITSTATUS(status) == 2    ? "predicted something else"
                                                               : "failed");
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

/* ---- Issue 11: failure atomicity of the step-running calls ----------------------------- */

/* What a whole cycle ends with: the model file's bytes, logits and evaluation. */
typedef struct cycle_out {
  unsigned char *file;
  size_t n;
  float logits[NIMG * 3];
  double top1, loss;
} cycle_out;

/* One call of the cycle: when it fails (the allocation made to fail), it must leave a
 * message; it is then retried with a healthy allocator and must succeed. */
#define STAGE(call)                                                                         \
  do {                                                                                      \
    mpnas_context_clear_error(ctx);                                                         \
    mpnas_status s_ = (call);                                                               \
    if (s_ != MPNAS_OK) {                                                                   \
      (*failures)++;                                                                        \
      CHECK_MSG(mpnas_context_last_error(ctx)[0] != '\0', "%s, allocation %ld failing: "    \
                "status %d, empty message", #call, k, (int)s_);                             \
      c->fail_at = 0;                                                                       \
      s_ = (call);                                                                          \
      CHECK_MSG(s_ == MPNAS_OK, "%s, allocation %ld failed: the retry gives %d (%s)", #call, \
                k, (int)s_, mpnas_context_last_error(ctx));                                 \
    }                                                                                       \
    if (s_ != MPNAS_OK) goto done;                                                          \
  } while (0)

static mpnas_status save_ckpt_and_read(mpnas_supernet *sn, const char *path,
                                       unsigned char **bytes, size_t *n) {
  mpnas_status st = mpnas_supernet_save_checkpoint(sn, path);
  if (st == MPNAS_OK && (*bytes = read_bytes(path, n)) == NULL) st = MPNAS_E_IO;
  return st;
}

/* Context, space, supernet, domains, data, a search in two calls, its checkpoint saved
 * and loaded (file and buffer), the model from it, training in two calls around its
 * checkpoint, the model saved and loaded, a predictor and an evaluation - allocation k
 * of the whole cycle failing (0: none). Returns whether the cycle finished. */
static int run_cycle(alloc_counting *c, long k, int *failures, cycle_out *out) {
  mpnas_context *ctx = NULL;
  mpnas_space *sp = NULL;
  mpnas_supernet *sn = NULL;
  mpnas_model *m = NULL, *loaded = NULL;
  mpnas_predictor *p = NULL;
  unsigned char *ck = NULL;
  size_t nck = 0;
  int finished = 0;
  char path[64];
  snprintf(path, sizeof path, "/tmp/mpnas-rel-cycle-%d", (int)getpid());
  c->live = c->total = 0;
  c->largest = c->limit = 0;
  c->fail_at = k;
  mpnas_status s0 = mpnas_context_create_with_allocator(&ctx, alloc_counting_malloc,
                                                        alloc_counting_free, c);
  if (s0 != MPNAS_OK) { /* no context: no message to leave */
    (*failures)++;
    CHECK_EQ_INT(s0, MPNAS_E_NO_MEMORY);
    c->fail_at = 0;
    s0 = mpnas_context_create_with_allocator(&ctx, alloc_counting_malloc, alloc_counting_free, c);
  }
  CHECK(s0 == MPNAS_OK);
  if (s0 != MPNAS_OK) return 0;
  STAGE(mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp));
  STAGE(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_HEIGHT, IH));
  STAGE(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_WIDTH, IW));
  STAGE(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_CHANNELS, 1));
  STAGE(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_CHANNELS, 4));
  STAGE(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 8));
  STAGE(mpnas_space_add_stage(sp, 8, NL, 2, MPNAS_ACT_RELU, 0));
  {
    const int32_t ks[] = {3, 5}, es[] = {1, 2};
    STAGE(mpnas_space_set_choices(sp, -1, ks, 2, es, 2));
  }
  STAGE(mpnas_supernet_create(ctx, sp, &sn));
  for (int d = 0; d < 2; d++) {
    STAGE(mpnas_supernet_add_domain(sn, d ? "b" : "a", CLASSES[d], NULL));
    STAGE(mpnas_supernet_set_data(sn, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images[d],
                                  labels[d], NIMG));
  }
  STAGE(mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, 4));
  STAGE(mpnas_supernet_set_int(sn, MPNAS_SEARCH_TRAIN_BATCH, 4));
  STAGE(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 8));
  STAGE(mpnas_supernet_set_double(sn, MPNAS_SEARCH_VALIDATION_FRACTION, 0.25));
  STAGE(mpnas_supernet_search(sn, 2, NULL, NULL, 0));
  STAGE(save_ckpt_and_read(sn, path, &ck, &nck));
  STAGE(mpnas_supernet_load_checkpoint(sn, path));
  STAGE(mpnas_supernet_load_checkpoint_buffer(sn, ck, nck));
  STAGE(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
  STAGE(mpnas_model_create_from_supernet(sn, &m));
  for (int d = 0; d < 2; d++)
    STAGE(mpnas_model_set_data(m, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images[d], labels[d],
                               NIMG));
  STAGE(mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, 4));
  STAGE(mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, 4));
  STAGE(mpnas_model_set_int(m, MPNAS_TRAIN_VALID_BATCH, 8));
  STAGE(mpnas_model_set_int(m, MPNAS_TRAIN_VALID_EVERY, 2));
  STAGE(mpnas_model_train(m, 2, NULL, NULL, 0));
  STAGE(mpnas_model_save_checkpoint(m, path));
  STAGE(mpnas_model_load_checkpoint(m, path));
  STAGE(mpnas_model_train(m, 0, NULL, NULL, 0));
  STAGE(mpnas_model_save(m, path));
  STAGE(mpnas_model_load(ctx, path, &loaded));
  STAGE(mpnas_predictor_create(loaded, &p));
  STAGE(mpnas_predictor_run(p, 1, MPNAS_DTYPE_U8, images[1], NIMG, MPNAS_OUTPUT_LOGITS,
                            out->logits, NIMG * 3));
  STAGE(mpnas_model_evaluate(loaded, 1, MPNAS_DTYPE_U8, images[1], labels[1], NIMG, &out->top1,
                             &out->loss));
  c->fail_at = 0;
  out->file = model_bytes(m, &out->n);
  finished = out->file != NULL;
done:
  c->fail_at = 0;
  free(ck);
  remove(path);
  mpnas_predictor_free(p);
  mpnas_model_free(loaded);
  mpnas_model_free(m);
  mpnas_supernet_free(sn);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  CHECK_MSG(c->live == 0, "cycle, allocation %ld failing: %ld blocks leaked", k, (long)c->live);
  return finished;
}

/* Allocation k = 1, 2, ... of the whole cycle failing in turn: every failing call leaves a
 * message, its retry succeeds, nothing leaks, and the cycle ends with the undisturbed
 * model file, logits and evaluation bit for bit (a failed search or training step is
 * undone, so the retry repeats it exactly). */
static void test_cycle_allocation_failures(void) {
  alloc_counting c;
  cycle_out want = {0}, got;
  int failures = 0;
  CHECK(run_cycle(&c, 0, &failures, &want));
  CHECK_EQ_INT(failures, 0);
  long total = c.total;
  int failed_calls = 0;
  for (long k = 1; k <= total; k++) {
    memset(&got, 0, sizeof got);
    int f = 0;
    int ok = run_cycle(&c, k, &f, &got);
    failed_calls += f;
    CHECK_MSG(ok && same_bytes(got.file, got.n, want.file, want.n) &&
                  memcmp(got.logits, want.logits, sizeof want.logits) == 0 &&
                  got.top1 == want.top1 && got.loss == want.loss,
              "cycle, allocation %ld of %ld failing: the results differ from an undisturbed "
              "run", k, total);
    free(got.file);
  }
  CHECK(failed_calls > 100);
  free(want.file);
}

/* A collective hook of a 2-worker world whose other worker adds nothing (buffers left as
 * they are), failing its fail_at-th call. */
typedef struct hook_state {
  long calls, fail_at;
} hook_state;

static int32_t flaky_hook(void *user, void *buf, int64_t count, int32_t dtype) {
  hook_state *h = user;
  (void)buf, (void)count, (void)dtype;
  return ++h->calls == h->fail_at ? 5 : 0;
}

/* A search and then training (4 steps each, one call per step) with the hook failing its
 * fail_at-th call (0: never); a failing call must leave the handle's checkpoint as before
 * it, and its retry continues. *failed counts the failures; returns the model file. */
static unsigned char *run_with_hook(long fail_at, int *failed, size_t *n) {
  mpnas_context *ctx = NULL;
  OK(mpnas_context_create(&ctx));
  hook_state h = {0, fail_at};
  OK(mpnas_context_set_collective(ctx, flaky_hook, &h, 0, 2));
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  mpnas_supernet *sn = tiny_supernet(ctx, sp, 4);
  unsigned char *file = NULL;
  *n = 0;
  for (int i = 0; i < 4; i++) {
    size_t nb = 0, na = 0;
    unsigned char *before = i > 0 ? checkpoint_bytes(sn, &nb) : NULL;
    mpnas_status st = mpnas_supernet_search(sn, 1, NULL, NULL, 0);
    if (st != MPNAS_OK) {
      (*failed)++;
      CHECK_EQ_INT(st, MPNAS_E_IO);
      int64_t step = -1;
      OK(mpnas_supernet_get_int(sn, MPNAS_SEARCH_STEP, &step));
      CHECK_EQ_INT(step, i);
      if (i > 0) {
        unsigned char *after = checkpoint_bytes(sn, &na);
        CHECK_MSG(same_bytes(before, nb, after, na), "search step %d: a failing hook call %ld "
                  "changed the supernet", i, fail_at);
        free(after);
      }
      OK(mpnas_supernet_search(sn, 1, NULL, NULL, 0));
    }
    free(before);
  }
  mpnas_model *m = NULL;
  OK(mpnas_model_create_from_supernet(sn, &m));
  char path[64];
  snprintf(path, sizeof path, "/tmp/mpnas-rel-hook-%d.ckpt", (int)getpid());
  for (int d = 0; d < 2 && m != NULL; d++)
    OK(mpnas_model_set_data(m, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images[d], labels[d], NIMG));
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, 4));
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, 4));
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_VALID_BATCH, 8));
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_VALID_EVERY, 2));
  for (int i = 0; i < 4 && m != NULL; i++) {
    size_t nb = 0, na = 0;
    unsigned char *before = NULL;
    if (i > 0 && mpnas_model_save_checkpoint(m, path) == MPNAS_OK) before = read_bytes(path, &nb);
    mpnas_status st = mpnas_model_train(m, 1, NULL, NULL, 0);
    if (st != MPNAS_OK) {
      (*failed)++;
      CHECK_EQ_INT(st, MPNAS_E_IO);
      int64_t step = -1;
      OK(mpnas_model_get_int(m, MPNAS_TRAIN_STEP, &step));
      CHECK_EQ_INT(step, i);
      if (i > 0) {
        OK(mpnas_model_save_checkpoint(m, path));
        unsigned char *after = read_bytes(path, &na);
        CHECK_MSG(same_bytes(before, nb, after, na), "training step %d: a failing hook call "
                  "%ld changed the model", i, fail_at);
        free(after);
      }
      OK(mpnas_model_train(m, 1, NULL, NULL, 0));
    }
    free(before);
  }
  remove(path);
  if (m != NULL) file = model_bytes(m, n);
  mpnas_model_free(m);
  mpnas_supernet_free(sn);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  return file;
}

/* The collective hook failing its k-th call, for every call of a search and a training
 * run: the failing step is undone (the checkpoint is as before the call), and retrying
 * gives the undisturbed run's model bit for bit. */
static void test_failing_collective_undone(void) {
  int failed = 0;
  size_t nwant = 0;
  unsigned char *want = run_with_hook(0, &failed, &nwant);
  CHECK(want != NULL && failed == 0);
  int search_fails = 0;
  for (long k = 1; k < 200; k++) {
    int f = 0;
    size_t n = 0;
    unsigned char *got = run_with_hook(k, &f, &n);
    if (f == 0) {
      free(got);
      break;
    }
    search_fails++;
    CHECK_MSG(same_bytes(got, n, want, nwant), "hook call %ld failing: the model differs", k);
    free(got);
  }
  CHECK(search_fails > 8);
  free(want);
}

/* A diverged training loss (a huge learning rate) fails the step with MPNAS_E_STATE and
 * leaves the model as before that step: its checkpoint is unchanged, and the steps that
 * finished are kept. */
static void test_diverged_step_undone(void) {
  mpnas_context *ctx = NULL;
  OK(mpnas_context_create(&ctx));
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_NONE);
  mpnas_model *m = tiny_model(ctx, sp, 50);
  OK(mpnas_model_set_double(m, MPNAS_TRAIN_LEARNING_RATE, 100.0));
  char path[64];
  snprintf(path, sizeof path, "/tmp/mpnas-rel-diverge-%d.ckpt", (int)getpid());
  int diverged = 0;
  for (int i = 0; i < 50 && !diverged; i++) {
    size_t nb = 0, na = 0;
    unsigned char *before = NULL;
    if (i > 0 && mpnas_model_save_checkpoint(m, path) == MPNAS_OK) before = read_bytes(path, &nb);
    mpnas_status st = mpnas_model_train(m, 1, NULL, NULL, 0);
    if (st != MPNAS_OK) {
      diverged = 1;
      CHECK_EQ_INT(st, MPNAS_E_STATE);
      CHECK(strstr(mpnas_context_last_error(ctx), "diverged") != NULL);
      CHECK_MSG(i > 0, "diverged at the first step: nothing to compare");
      int64_t step = -1;
      OK(mpnas_model_get_int(m, MPNAS_TRAIN_STEP, &step));
      CHECK_EQ_INT(step, i);
      OK(mpnas_model_save_checkpoint(m, path));
      unsigned char *after = read_bytes(path, &na);
      CHECK_MSG(same_bytes(before, nb, after, na), "the diverged step %d changed the model", i);
      /* Usable: the same step diverges the same way again, changing nothing. */
      EXPECT_FAIL(ctx, mpnas_model_train(m, 1, NULL, NULL, 0));
      CHECK(strstr(mpnas_context_last_error(ctx), "diverged") != NULL);
      free(after);
      OK(mpnas_model_save_checkpoint(m, path));
      after = read_bytes(path, &na);
      CHECK(same_bytes(before, nb, after, na));
      free(after);
    }
    free(before);
  }
  CHECK(diverged);
  remove(path);
  mpnas_model_free(m);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

/* A trained model whose data is cleared and set again keeps its ABDP state and step when
 * the next training call fails at its first step (the collective hook failing): the
 * preparation that call did is undone too, and the retry continues the run exactly. */
static void test_failed_first_step_keeps_abdp(void) {
  alloc_counting c;
  mpnas_context *ctx = alloc_counting_context(&c, 0);
  hook_state h = {0, 0};
  OK(mpnas_context_set_collective(ctx, flaky_hook, &h, 0, 2));
  mpnas_space *sp = tiny_space(ctx, MPNAS_ACT_RELU);
  mpnas_model *m = tiny_model(ctx, sp, 6);
  mpnas_model *ref = tiny_model(ctx, sp, 6);
  char path[64];
  snprintf(path, sizeof path, "/tmp/mpnas-rel-clear-%d.ckpt", (int)getpid());
  OK(mpnas_model_set_int(m, MPNAS_ABDP_SIGNAL, MPNAS_ABDP_SIGNAL_LOSS));
  OK(mpnas_model_set_int(ref, MPNAS_ABDP_SIGNAL, MPNAS_ABDP_SIGNAL_LOSS));
  OK(mpnas_model_train(m, 3, NULL, NULL, 0));
  OK(mpnas_model_train(ref, 3, NULL, NULL, 0));
  OK(mpnas_model_clear_data(m));
  OK(mpnas_model_clear_data(ref));
  for (int d = 0; d < 2; d++) {
    OK(mpnas_model_set_data(m, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images[d], labels[d], NIMG));
    OK(mpnas_model_set_data(ref, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images[d], labels[d],
                            NIMG));
  }
  double w_ref[2], w_got[2];
  for (int d = 0; d < 2; d++) OK(mpnas_model_domain_stat(m, d, MPNAS_STAT_LOSS_WEIGHT, &w_got[d]));
  h.fail_at = h.calls + 1; /* the first step's gradient sum */
  EXPECT_FAIL(ctx, mpnas_model_train(m, 1, NULL, NULL, 0));
  CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_IO);
  int64_t step = -1;
  OK(mpnas_model_get_int(m, MPNAS_TRAIN_STEP, &step));
  CHECK_EQ_INT(step, 3);
  for (int d = 0; d < 2; d++) {
    OK(mpnas_model_domain_stat(m, d, MPNAS_STAT_LOSS_WEIGHT, &w_ref[d]));
    CHECK_MSG(w_ref[d] == w_got[d], "domain %d: ABDP weight %g, was %g", d, w_ref[d], w_got[d]);
  }
  OK(mpnas_model_train(m, 1, NULL, NULL, 0));
  OK(mpnas_model_train(ref, 1, NULL, NULL, 0));
  size_t na = 0, nb = 0;
  OK(mpnas_model_save_checkpoint(m, path));
  unsigned char *a = read_bytes(path, &na);
  OK(mpnas_model_save_checkpoint(ref, path));
  unsigned char *b = read_bytes(path, &nb);
  CHECK_MSG(same_bytes(a, na, b, nb), "a failed first step after new data changed the run");
  free(a);
  free(b);
  remove(path);
  mpnas_model_free(m);
  mpnas_model_free(ref);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

int main(void) {
  make_data();
  RUN(test_failing_calls_leave_a_message);
  RUN(test_search_allocation_failures);
  RUN(test_train_allocation_failures);
  RUN(test_file_read_bounds);
  RUN(test_non_finite);
  RUN(test_search_checkpoint_settings);
  RUN(test_checkpoints_in_turn);
  RUN(test_unusable_reward);
  RUN(test_unusable_reward_refused_early);
  RUN(test_embedded_space_read_only);
  RUN(test_changes_from_a_callback_refused);
  RUN(test_checkpoint_seed_is_the_runs);
  RUN(test_huge_space_cost);
  RUN(test_search_without_layers);
  RUN(test_domain_names);
  RUN(test_small_buffers);
  RUN(test_stale_temp_files);
  RUN(test_fork_after_threads);
  RUN(test_cycle_allocation_failures);
  RUN(test_failing_collective_undone);
  RUN(test_diverged_step_undone);
  RUN(test_failed_first_step_keeps_abdp);
  return check_finish();
}
