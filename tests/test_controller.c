/* test_controller.c - the per-domain REINFORCE controller and the reward
 * (src/search/controller.c, src/search/reward.c; docs/ALGORITHM.md section 3). */
#include <stdint.h>

#include "check.h"
#include "gradcheck.h"
#include "search/controller.h"
#include "search/reward.h"

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

/* ---- (a) convergence on a synthetic reward ----------------------------------------- */

/* Reward = fraction of layers whose op equals a hidden target + uniform noise in
 * [-0.05, 0.05). Returns the number of updates after which the target op has
 * probability > 0.9 in every layer (max_updates + 1 if never). */
static int updates_to_converge(mpnas_context *ctx, int32_t n_layers, const int32_t *n_ops,
                               uint64_t seed, float lr, int max_updates) {
  mpnas__controller *c = NULL;
  if (mpnas__controller_create(ctx, n_layers, n_ops, &c) != MPNAS_OK) return -1;
  mpnas__rng sample_rng, target_rng, noise_rng;
  mpnas__rng_seed(&sample_rng, seed, 1);
  mpnas__rng_seed(&target_rng, seed, 2);
  mpnas__rng_seed(&noise_rng, seed, 3);
  int32_t target[16], path[16];
  float probs[16 * 8];
  for (int32_t l = 0; l < n_layers; l++)
    target[l] = (int32_t)mpnas__rng_below(&target_rng, (uint32_t)n_ops[l]);
  int u;
  for (u = 1; u <= max_updates; u++) {
    mpnas__controller_sample(c, &sample_rng, path);
    int match = 0;
    for (int32_t l = 0; l < n_layers; l++) match += path[l] == target[l];
    double reward = (double)match / n_layers + 0.1 * ((double)mpnas__rng_uniform(&noise_rng) - 0.5);
    if (mpnas__controller_update(c, path, reward, lr, 0.0f, NULL) != MPNAS_OK) u = max_updates;
    mpnas__controller_probs(c, probs);
    int done = 1;
    for (int32_t l = 0; l < n_layers; l++)
      if (!(probs[c->offset[l] + target[l]] > 0.9f)) done = 0;
    if (done) break;
  }
  int32_t best[16];
  mpnas__controller_argmax(c, best);
  for (int32_t l = 0; u <= max_updates && l < n_layers; l++)
    if (best[l] != target[l]) u = max_updates + 1;
  mpnas__controller_destroy(c);
  return u;
}

/* Measured with lr 0.1 (constant), entropy 0, seeds 1..20 (see each config). The bounds
 * keep a margin of ~1.5x over the measured worst seed and ~1.3x over the median, so a
 * change of libm rounding cannot flip them, while a wrong sign or a step that does not
 * learn fails them. Subtler slips (a baseline that already contains R, Adam with
 * beta1 = 0.9) move these numbers by less than 10%: tests (b)-(d) pin the exact
 * formulas instead. Over 500 seeds the 7x7 case took median 174, 90th percentile 245,
 * 99th 571, worst 1398 updates (lr 0.05: median 274, worst 457): at lr 0.1 REINFORCE
 * sometimes commits early to a wrong op and needs hundreds of steps to leave it, and a
 * 12-layer x 7-op space did not converge within 5000 updates in 2 of 500 seeds. */
typedef struct {
  const char *name;
  int32_t n_layers;
  int32_t n_ops[16];
  int median_bound, max_bound;
} conv_case;

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static void test_convergence(void) {
  static const conv_case cases[] = {
      /* measured: min 124, median 169, max 305 */
      {"7 layers x 7 ops", 7, {7, 7, 7, 7, 7, 7, 7}, 220, 460},
      /* measured: min 87, median 118, max 261 */
      {"7 layers, 1-op layers mixed in", 7, {7, 1, 7, 1, 7, 7, 1}, 155, 400},
      /* measured: min 28, median 41, max 46 */
      {"3 layers of 2, 3, 1 ops", 3, {2, 3, 1}, 55, 70},
      /* nothing to learn: converged after the first (seeding) update */
      {"all layers 1 op", 4, {1, 1, 1, 1}, 1, 1},
  };
  mpnas_context *ctx = new_ctx();
  CHECK(ctx != NULL);
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    int u[20];
    for (int s = 0; s < 20; s++)
      u[s] = updates_to_converge(ctx, cases[k].n_layers, cases[k].n_ops, (uint64_t)s + 1, 0.1f,
                                 5000);
    qsort(u, 20, sizeof u[0], cmp_int);
    printf("    %-32s lr 0.1: updates to p(best) > 0.9, seeds 1..20: min %d median %d max %d\n",
           cases[k].name, u[0], u[10], u[19]);
    CHECK_MSG(u[0] >= 1 && u[19] <= cases[k].max_bound, "%s: worst %d > %d", cases[k].name,
              u[19], cases[k].max_bound);
    CHECK_MSG(u[10] <= cases[k].median_bound, "%s: median %d > %d", cases[k].name, u[10],
              cases[k].median_bound);
  }
  mpnas_context_free(ctx);
}

/* ---- (b) gradient of the REINFORCE loss vs finite differences ---------------------- */

typedef struct {
  const mpnas__controller *c;
  const int32_t *path;
  double advantage, entropy_coef;
} loss_args;

static double loss_of(void *user) {
  loss_args *a = user;
  return mpnas__controller_loss_grad(a->c, a->path, a->advantage, a->entropy_coef, NULL);
}

static void test_gradient(void) {
  mpnas_context *ctx = new_ctx();
  const int32_t n_ops[5] = {7, 1, 3, 2, 5};
  mpnas__controller *c = NULL;
  CHECK(mpnas__controller_create(ctx, 5, n_ops, &c) == MPNAS_OK);
  if (c == NULL) return;
  gc_fill(c->logits, (size_t)c->total_ops, 11, -2.0f, 2.0f);
  const int32_t path[5] = {3, 0, 2, 0, 4};
  const double adv[3] = {0.7, -1.3, 0.0}, ent[3] = {0.0, 0.25, 0.5};
  float grad[18];
  for (int k = 0; k < 3; k++) {
    loss_args a = {c, path, adv[k], ent[k]};
    double loss = mpnas__controller_loss_grad(c, path, adv[k], ent[k], grad);
    CHECK_NEAR(loss, loss_of(&a), 1e-12);
    CHECK_NEAR(loss, -adv[k] * mpnas__controller_log_prob(c, path) -
                         ent[k] * mpnas__controller_entropy(c), 1e-9);
    CHECK(gc_check("logits", c->logits, (size_t)c->total_ops, grad, loss_of, &a, 1e-3, 2e-5,
                   1e-3, 0) == 0);
    /* A 1-op layer has nothing to learn. */
    CHECK(grad[c->offset[1]] == 0.0f);
  }
  /* Each layer's gradient sums to zero (softmax is shift-invariant). */
  (void)mpnas__controller_loss_grad(c, path, 0.9, 0.3, grad);
  for (int32_t l = 0; l < 5; l++) {
    double s = 0;
    for (int32_t j = 0; j < n_ops[l]; j++) s += grad[c->offset[l] + j];
    CHECK_NEAR(s, 0.0, 1e-6);
  }
  mpnas__controller_destroy(c);
  mpnas_context_free(ctx);
}

/* ---- (c) zero-debiased baseline ------------------------------------------------------ */

static void test_baseline(void) {
  mpnas_context *ctx = new_ctx();
  const int32_t n_ops[2] = {3, 4};
  mpnas__controller *c = NULL;
  CHECK(mpnas__controller_create(ctx, 2, n_ops, &c) == MPNAS_OK);
  if (c == NULL) return;
  CHECK(mpnas__controller_baseline(c) == 0.0);
  const int32_t path[2] = {1, 2};
  const double r1 = 0.3137;
  double adv = 99.0;
  CHECK(mpnas__controller_update(c, path, r1, 0.1f, 0.0f, &adv) == MPNAS_OK);
  CHECK(mpnas__controller_baseline(c) == r1); /* exactly */
  CHECK(adv == 0.0);                           /* the seeding update: no baseline yet */
  CHECK(c->adam_t == 0);
  for (int32_t i = 0; i < c->total_ops; i++) CHECK(c->logits[i] == 0.0f);

  /* Later: advantage uses the baseline before R, and b = ema / (1 - 0.95^t). */
  const double rewards[6] = {0.5, 0.1, 0.9, 0.42, 0.77, 0.05};
  double ema = 0.05 * r1;
  for (int t = 0; t < 6; t++) {
    double before = mpnas__controller_baseline(c);
    CHECK(mpnas__controller_update(c, path, rewards[t], 0.1f, 0.0f, &adv) == MPNAS_OK);
    CHECK(adv == rewards[t] - before);
    ema = 0.95 * ema + 0.05 * rewards[t];
    CHECK_NEAR(mpnas__controller_baseline(c), ema / (1.0 - pow(0.95, t + 2)), 1e-12);
  }
  CHECK(c->adam_t == 6);

  /* observe feeds the baseline only. */
  float before[7];
  memcpy(before, c->logits, sizeof before);
  mpnas__controller_observe(c, 0.6);
  ema = 0.95 * ema + 0.05 * 0.6;
  CHECK_NEAR(mpnas__controller_baseline(c), ema / (1.0 - pow(0.95, 8)), 1e-12);
  CHECK(memcmp(before, c->logits, sizeof before) == 0);
  CHECK(c->adam_t == 6);

  /* A rejected update changes nothing. */
  const int32_t bad[2] = {1, 4};
  double b = mpnas__controller_baseline(c);
  CHECK(mpnas__controller_update(c, bad, 0.5, 0.1f, 0.0f, NULL) == MPNAS_E_INVALID_ARGUMENT);
  CHECK(mpnas__controller_update(c, path, NAN, 0.1f, 0.0f, NULL) == MPNAS_E_INVALID_ARGUMENT);
  CHECK(mpnas__controller_update(c, path, 0.5, -0.1f, 0.0f, NULL) == MPNAS_E_INVALID_ARGUMENT);
  CHECK(mpnas_context_last_status(ctx) == MPNAS_E_INVALID_ARGUMENT);
  CHECK(mpnas__controller_baseline(c) == b);
  CHECK(memcmp(before, c->logits, sizeof before) == 0);
  CHECK(c->adam_t == 6 && c->n_rewards == 8);
  mpnas__controller_destroy(c);
  mpnas_context_free(ctx);
}

/* ---- (d) Adam with beta1 = 0 on a hand-computed case --------------------------------- */

static void test_adam_step(void) {
  mpnas_context *ctx = new_ctx();
  const int32_t n_ops[1] = {2};
  mpnas__controller *c = NULL;
  CHECK(mpnas__controller_create(ctx, 1, n_ops, &c) == MPNAS_OK);
  if (c == NULL) return;
  const int32_t op0[1] = {0}, op1[1] = {1};
  /* R1 = 1 seeds the baseline (no step). */
  CHECK(mpnas__controller_update(c, op0, 1.0, 0.1f, 0.0f, NULL) == MPNAS_OK);
  /* R2 = 2 on op 0: A = 1, p = (.5, .5), g = -A([j = 0] - p) = (-.5, .5).
   * t = 1: v = 0.001 * .25, vhat = v / (1 - 0.999) = .25, step = 0.1 * .5 / (.5 + 1e-8)
   * -> logits (+0.0999999980, -0.0999999980). */
  CHECK(mpnas__controller_update(c, op0, 2.0, 0.1f, 0.0f, NULL) == MPNAS_OK);
  CHECK_NEAR(c->logits[0], 0.09999999800, 1e-7);
  CHECK_NEAR(c->logits[1], -0.09999999800, 1e-7);
  CHECK_NEAR(c->adam_v[0], 0.00025, 1e-8); /* (1 - 0.999f) rounds in float */
  CHECK(c->adam_m[0] == -0.5f); /* beta1 = 0: m is the last gradient */
  /* b = 1 + (0.05 / (1 - 0.95^2)) * (2 - 1) = 1.5128205128. R3 = 0 on op 1: A = -b,
   * p0 = sigmoid(0.2) = 0.549834, g0 = A p0 = -0.8318001, g1 = +0.8318001;
   * v = 0.999 * 0.00025 + 0.001 g0^2, vhat = v / (1 - 0.999^2), logit0 -= 0.1 g0 /
   * (sqrt(vhat) + 1e-8) -> 0.2211944089 (and its negative for logit 1). */
  CHECK_NEAR(mpnas__controller_baseline(c), 1.5128205128205128, 1e-12);
  double adv = 0;
  CHECK(mpnas__controller_update(c, op1, 0.0, 0.1f, 0.0f, &adv) == MPNAS_OK);
  CHECK_NEAR(adv, -1.5128205128205128, 1e-12);
  CHECK_NEAR(c->logits[0], 0.2211944089, 2e-7);
  CHECK_NEAR(c->logits[1], -0.2211944089, 2e-7);
  CHECK(c->adam_t == 2);
  mpnas__controller_destroy(c);
  mpnas_context_free(ctx);
}

/* ---- (e) RL learning-rate schedule --------------------------------------------------- */

static void test_rl_lr(void) {
  const float base = 0.1f;
  const int64_t total = 1000; /* delay = 250 steps */
  CHECK(mpnas__rl_lr(0, total, base, MPNAS__RL_DELAY_FRACTION, MPNAS__RL_RAMP) == 0.0f);
  CHECK(mpnas__rl_lr(249, total, base, 0.25, 10.0) == 0.0f);
  CHECK_NEAR(mpnas__rl_lr(250, total, base, 0.25, 10.0), 0.1, 1e-7);             /* start */
  CHECK_NEAR(mpnas__rl_lr(625, total, base, 0.25, 10.0), 0.1 * sqrt(10.0), 1e-7); /* middle */
  CHECK_NEAR(mpnas__rl_lr(1000, total, base, 0.25, 10.0), 1.0, 1e-6);             /* end */
  CHECK_NEAR(mpnas__rl_lr(5000, total, base, 0.25, 10.0), 1.0, 1e-6);             /* after */
  /* Linear in log space: log lr at 1/4 of the ramp is a quarter of the way. */
  CHECK_NEAR(log10(mpnas__rl_lr(437, total, base, 0.25, 10.0)), -1.0 + 187.0 / 750.0, 1e-6);
  float prev = 0.0f;
  for (int64_t s = 250; s <= 1000; s++) {
    float lr = mpnas__rl_lr(s, total, base, 0.25, 10.0);
    CHECK(lr > prev);
    prev = lr;
  }
  /* No delay; ramp 1 = constant; meaningless input gives 0. */
  CHECK_NEAR(mpnas__rl_lr(0, total, base, 0.0, 10.0), 0.1, 1e-7);
  CHECK_NEAR(mpnas__rl_lr(700, total, base, 0.25, 1.0), 0.1, 1e-7);
  CHECK(mpnas__rl_lr(500, 0, base, 0.25, 10.0) == 0.0f);
  CHECK(mpnas__rl_lr(500, total, base, 1.0, 10.0) == 0.0f);
  CHECK(mpnas__rl_lr(500, total, base, -0.1, 10.0) == 0.0f);
  CHECK(mpnas__rl_lr(500, total, base, 0.25, 0.0) == 0.0f);
  CHECK(mpnas__rl_lr(500, total, base, NAN, 10.0) == 0.0f);
}

/* ---- (f) export / import: a resumed controller continues exactly -------------------- */

static double synthetic_reward(const int32_t *path, int32_t n, mpnas__rng *noise) {
  int match = 0;
  for (int32_t l = 0; l < n; l++) match += path[l] == (l % 3);
  return (double)match / n + 0.1 * ((double)mpnas__rng_uniform(noise) - 0.5);
}

static void test_export_import(void) {
  mpnas_context *ctx = new_ctx();
  const int32_t n_ops[5] = {4, 1, 6, 3, 5};
  mpnas__controller *a = NULL, *b = NULL;
  CHECK(mpnas__controller_create(ctx, 5, n_ops, &a) == MPNAS_OK);
  CHECK(mpnas__controller_create(ctx, 5, n_ops, &b) == MPNAS_OK);
  if (a == NULL || b == NULL) return;
  mpnas__rng rng, noise;
  mpnas__rng_seed(&rng, 7, 1);
  mpnas__rng_seed(&noise, 7, 2);
  int32_t pa[5], pb[5];
  for (int s = 0; s < 60; s++) {
    mpnas__controller_sample(a, &rng, pa);
    CHECK(mpnas__controller_update(a, pa, synthetic_reward(pa, 5, &noise), 0.1f, 0.01f, NULL) ==
          MPNAS_OK);
  }
  size_t n = mpnas__controller_state_size(a);
  CHECK_EQ_INT(n, 2 + 5 + 5 + 3 * 19);
  double *state = malloc(n * sizeof *state);
  CHECK(mpnas__controller_export(a, state, n - 1) == MPNAS_E_INVALID_ARGUMENT);
  CHECK(mpnas__controller_export(a, state, n) == MPNAS_OK);
  CHECK(mpnas__controller_import(b, state, n) == MPNAS_OK);
  mpnas__rng rng_b = rng, noise_b = noise; /* the caller saves its rng state alongside */

  /* Continue both, with a warmup sample mixed in: identical paths, bits and baseline. */
  int same = 1;
  for (int s = 0; s < 200; s++) {
    if (s % 7 == 0) {
      mpnas__controller_sample_warmup(a, &rng, 0.5f, NULL, pa);
      mpnas__controller_sample_warmup(b, &rng_b, 0.5f, NULL, pb);
    } else {
      mpnas__controller_sample(a, &rng, pa);
      mpnas__controller_sample(b, &rng_b, pb);
    }
    same &= memcmp(pa, pb, sizeof pa) == 0;
    CHECK(mpnas__controller_update(a, pa, synthetic_reward(pa, 5, &noise), 0.1f, 0.01f, NULL) ==
          MPNAS_OK);
    CHECK(mpnas__controller_update(b, pb, synthetic_reward(pb, 5, &noise_b), 0.1f, 0.01f,
                                   NULL) == MPNAS_OK);
  }
  CHECK(same);
  CHECK(memcmp(a->logits, b->logits, 19 * sizeof(float)) == 0);
  CHECK(memcmp(a->adam_v, b->adam_v, 19 * sizeof(float)) == 0);
  CHECK(a->baseline == b->baseline && a->adam_t == b->adam_t && a->n_rewards == b->n_rewards);

  /* Import checks: shape, version, malformed values; a failure changes nothing. */
  float logits_before[19];
  memcpy(logits_before, b->logits, sizeof logits_before);
  const int32_t other_ops[5] = {4, 1, 6, 3, 4};
  mpnas__controller *c = NULL;
  CHECK(mpnas__controller_create(ctx, 5, other_ops, &c) == MPNAS_OK);
  CHECK(mpnas__controller_import(c, state, n) == MPNAS_E_INCOMPATIBLE);
  CHECK(mpnas__controller_import(b, state, n - 1) == MPNAS_E_INCOMPATIBLE);
  double saved = state[0];
  state[0] = 2.0;
  CHECK(mpnas__controller_import(b, state, n) == MPNAS_E_INCOMPATIBLE);
  state[0] = saved;
  size_t v0 = 2 + 5 + 5 + 2 * 19; /* first adam_v entry */
  saved = state[v0];
  state[v0] = -1.0;
  CHECK(mpnas__controller_import(b, state, n) == MPNAS_E_CORRUPT);
  state[v0] = saved;
  saved = state[2 + 5 + 5];
  state[2 + 5 + 5] = NAN;
  CHECK(mpnas__controller_import(b, state, n) == MPNAS_E_CORRUPT);
  state[2 + 5 + 5] = saved;
  saved = state[2 + 5];
  state[2 + 5] = 1.5; /* adam_t must be an integer */
  CHECK(mpnas__controller_import(b, state, n) == MPNAS_E_CORRUPT);
  state[2 + 5] = saved;
  /* A baseline beyond any reward (found by fuzz_search_checkpoint: 1e300 overflowed the
   * float gradient into NaN logits at the next update), or such an advantage. */
  saved = state[2 + 5 + 2];
  state[2 + 5 + 2] = 1e300;
  CHECK(mpnas__controller_import(b, state, n) == MPNAS_E_CORRUPT);
  state[2 + 5 + 2] = -2e15;
  CHECK(mpnas__controller_import(b, state, n) == MPNAS_E_CORRUPT);
  state[2 + 5 + 2] = saved;
  saved = state[2 + 5 + 4];
  state[2 + 5 + 4] = 3e15;
  CHECK(mpnas__controller_import(b, state, n) == MPNAS_E_CORRUPT);
  state[2 + 5 + 4] = saved;
  CHECK(memcmp(logits_before, b->logits, sizeof logits_before) == 0);
  free(state);
  mpnas__controller_destroy(c);
  mpnas__controller_destroy(a);
  mpnas__controller_destroy(b);
  mpnas_context_free(ctx);
}

/* ---- (g) rewards ----------------------------------------------------------------------- */

static void test_rewards(void) {
  mpnas__reward_config cfg;
  mpnas__reward_config_default(&cfg);
  CHECK(cfg.form == MPNAS__REWARD_ABS && cfg.beta == -0.1 && cfg.sharing_gamma == MPNAS__REWARD_SHARING_GAMMA);
  double r = 0;
  /* The default has no target cost: the caller must set one. */
  CHECK(mpnas__reward(&cfg, 0.8, 150.0, 0.0, &r) == MPNAS_E_OUT_OF_RANGE);
  cfg.target_cost = 100.0;
  /* ABS: 0.8 - 0.1 * |1.5 - 1| = 0.75, symmetric: 0.8 - 0.1 * |0.5 - 1| = 0.75. */
  CHECK(mpnas__reward(&cfg, 0.8, 150.0, 0.0, &r) == MPNAS_OK);
  CHECK_NEAR(r, 0.75, 1e-15);
  CHECK(mpnas__reward(&cfg, 0.8, 50.0, 0.0, &r) == MPNAS_OK);
  CHECK_NEAR(r, 0.75, 1e-15);
  CHECK(mpnas__reward(&cfg, 0.8, 100.0, 0.0, &r) == MPNAS_OK);
  CHECK(r == 0.8);
  CHECK(mpnas__reward(&cfg, 0.8, 0.0, 0.0, &r) == MPNAS_OK); /* ABS accepts C = 0 */
  CHECK_NEAR(r, 0.7, 1e-15);
  /* MNAS: 0.8 * 2^-0.07 = 0.76211039844, 0.8 * 0.5^-0.07 = 0.83977334690. */
  cfg.form = MPNAS__REWARD_MNAS;
  cfg.beta = MPNAS__REWARD_MNAS_BETA;
  CHECK(mpnas__reward(&cfg, 0.8, 200.0, 0.0, &r) == MPNAS_OK);
  CHECK_NEAR(r, 0.7621103984351499, 1e-14);
  CHECK(mpnas__reward(&cfg, 0.8, 50.0, 0.0, &r) == MPNAS_OK);
  CHECK_NEAR(r, 0.839773346898454, 1e-14);
  CHECK(mpnas__reward(&cfg, 0.8, 0.0, 0.0, &r) == MPNAS_E_INVALID_ARGUMENT);
  /* NONE: R = Q whatever the cost or C0. */
  cfg.form = MPNAS__REWARD_NONE;
  cfg.target_cost = 0.0;
  CHECK(mpnas__reward(&cfg, 0.8, 1e9, 0.0, &r) == MPNAS_OK);
  CHECK(r == 0.8);
  /* Sharing term: - gamma * A (A = added parameters in units of a reference path). */
  cfg.form = MPNAS__REWARD_ABS;
  cfg.beta = -0.1;
  cfg.target_cost = 100.0;
  cfg.sharing_gamma = 0.1;
  CHECK(mpnas__reward(&cfg, 0.8, 150.0, 2.0 / 3.0, &r) == MPNAS_OK);
  CHECK_NEAR(r, 0.75 - 0.1 * 2.0 / 3.0, 1e-15);
  CHECK(mpnas__reward(&cfg, 0.8, 150.0, -0.5, &r) == MPNAS_E_INVALID_ARGUMENT);
  /* Errors. */
  CHECK(mpnas__reward(&cfg, NAN, 150.0, 0.0, &r) == MPNAS_E_INVALID_ARGUMENT);
  CHECK(mpnas__reward(&cfg, 0.8, -1.0, 0.0, &r) == MPNAS_E_INVALID_ARGUMENT);
  CHECK(mpnas__reward(&cfg, 0.8, 150.0, 0.0, NULL) == MPNAS_E_INVALID_ARGUMENT);
  /* A reward the controller cannot use: beyond 10^15 in magnitude, or not finite. */
  cfg.target_cost = 1e-300;
  CHECK(mpnas__reward(&cfg, 0.8, 150.0, 0.0, &r) == MPNAS_E_OUT_OF_RANGE);
  cfg.target_cost = 1e-314; /* a denormal: C / C0 overflows */
  CHECK(mpnas__reward(&cfg, 0.8, 150.0, 0.0, &r) == MPNAS_E_OUT_OF_RANGE);
  cfg.target_cost = 1e-12;
  CHECK(mpnas__reward(&cfg, 0.8, 150.0, 0.0, &r) == MPNAS_OK); /* -1.5e13: still usable */
  cfg.form = MPNAS__REWARD_MNAS;
  cfg.beta = -100.0;
  cfg.target_cost = 1e6;
  CHECK(mpnas__reward(&cfg, 0.8, 150.0, 0.0, &r) == MPNAS_E_OUT_OF_RANGE);
  cfg.form = 7;
  CHECK(mpnas__reward_config_check(&cfg) == MPNAS_E_UNKNOWN_PARAMETER);
  cfg.form = MPNAS__REWARD_MNAS;
  cfg.target_cost = -5.0;
  CHECK(mpnas__reward_config_check(&cfg) == MPNAS_E_OUT_OF_RANGE);

  /* Parameter shares. 3 layers of 3, 2, 4 ops; params per node (op 0 of layer 2 is a
   * zero op: 0 parameters). */
  const int32_t n_ops[3] = {3, 2, 4};
  const double params[9] = {100, 200, 300, /* layer 0 */ 50, 80, /* layer 1 */
                            0, 10, 20, 40 /* layer 2 */};
  /* Domain 1's path {1, 0, 3}: nodes of 200 + 50 + 40 parameters. */
  const int32_t path[3] = {1, 0, 3};
  double s = -1;
  /* Every node shared with one other domain: domain 0 uses (0,1) and (1,0), domain 2
   * uses (2,3); each node costs half. Row 1 (own) is ignored even though it differs. */
  const int32_t shared[9] = {1, 0, 0, /**/ 2, 1, 1, /**/ 0, 1, 3};
  CHECK(mpnas__reward_param_share(3, n_ops, params, 3, shared, 1, path, &s) == MPNAS_OK);
  CHECK(s == 145.0);
  /* Every node shared by all three domains: a third each. */
  const int32_t all[9] = {1, 0, 3, /**/ 0, 1, 0, /**/ 1, 0, 3};
  CHECK(mpnas__reward_param_share(3, n_ops, params, 3, all, 1, path, &s) == MPNAS_OK);
  CHECK(fabs(s - 290.0 / 3) < 1e-12);
  /* Fully exclusive: nobody else uses any of its nodes; its own row equals its path. */
  const int32_t exclusive[9] = {0, 1, 0, /**/ 1, 0, 3, /**/ 2, 1, 2};
  CHECK(mpnas__reward_param_share(3, n_ops, params, 3, exclusive, 1, path, &s) == MPNAS_OK);
  CHECK(s == 290.0);
  /* Partial: only (0,1) shared (domain 2) -> 100 + 50 + 40. */
  const int32_t partial[9] = {0, 1, 0, /**/ 1, 0, 3, /**/ 1, 1, 1};
  CHECK(mpnas__reward_param_share(3, n_ops, params, 3, partial, 1, path, &s) == MPNAS_OK);
  CHECK(s == 190.0);
  /* A bigger shared node costs more than a small one (its share of it): sharing does
   * not make size free. (0,2) of 300 with domain 0: 150 + 25 + 20. */
  const int32_t big_shared[9] = {2, 0, 0, /**/ 2, 1, 1, /**/ 0, 1, 3};
  const int32_t path_big[3] = {2, 0, 3};
  CHECK(mpnas__reward_param_share(3, n_ops, params, 3, big_shared, 1, path_big, &s) ==
        MPNAS_OK);
  CHECK(s == 195.0);
  /* A zero op costs nothing: path {1, 0, 0}, nobody shares. */
  const int32_t path_zero[3] = {1, 0, 0};
  CHECK(mpnas__reward_param_share(3, n_ops, params, 3, exclusive, 1, path_zero, &s) ==
        MPNAS_OK);
  CHECK(s == 250.0);
  /* One domain: no other path, everything its own. */
  CHECK(mpnas__reward_param_share(3, n_ops, params, 1, NULL, 0, path, &s) == MPNAS_OK);
  CHECK(s == 290.0);
  /* The shares of all domains on their argmax paths add up to the joint model's node
   * parameters: rows {1,0,3}, {2,0,3}, {0,1,0} use nodes 200, 300, 100 / 50, 80 / 40, 0. */
  const int32_t joint[9] = {1, 0, 3, /**/ 2, 0, 3, /**/ 0, 1, 0};
  double total = 0.0;
  for (int32_t d = 0; d < 3; d++) {
    CHECK(mpnas__reward_param_share(3, n_ops, params, 3, joint, d, joint + 3 * d, &s) ==
          MPNAS_OK);
    total += s;
  }
  CHECK(fabs(total - (200 + 300 + 100 + 50 + 80 + 40 + 0)) < 1e-9);
  /* Errors. */
  const int32_t bad_path[3] = {1, 2, 3};
  CHECK(mpnas__reward_param_share(3, n_ops, params, 3, shared, 1, bad_path, &s) ==
        MPNAS_E_INVALID_ARGUMENT);
  CHECK(mpnas__reward_param_share(3, n_ops, params, 3, shared, 3, path, &s) ==
        MPNAS_E_INVALID_ARGUMENT);
  CHECK(mpnas__reward_param_share(3, n_ops, params, 3, NULL, 1, path, &s) ==
        MPNAS_E_INVALID_ARGUMENT);
  const double neg[9] = {100, -200, 300, 50, 80, 0, 10, 20, 40};
  CHECK(mpnas__reward_param_share(3, n_ops, neg, 3, shared, 1, path, &s) ==
        MPNAS_E_INVALID_ARGUMENT);
}

/* ---- (h) warmup sampling ------------------------------------------------------------- */

static void test_warmup(void) {
  mpnas_context *ctx = new_ctx();
  /* Layer ops: op 0 is the zero op where a layer has one. Layer 3 allows only op 2,
   * layer 4 allows nothing (keeps the policy), layer 1 has one op. */
  const int32_t n_ops[5] = {7, 1, 4, 3, 2};
  const uint8_t allowed[17] = {0, 1, 1, 1, 1, 1, 1, /**/ 1, /**/ 0, 1, 1, 1, /**/ 0, 0, 1,
                               /**/ 0, 0};
  mpnas__controller *c = NULL;
  CHECK(mpnas__controller_create(ctx, 5, n_ops, &c) == MPNAS_OK);
  if (c == NULL) return;
  /* The policy strongly prefers op 0 everywhere. */
  for (int32_t l = 0; l < 5; l++) c->logits[c->offset[l]] = 12.0f;
  mpnas__rng rng;
  mpnas__rng_seed(&rng, 3, 9);
  int32_t path[5];
  int counts[7] = {0};
  int bad = 0, layer4_zero = 0;
  const int n = 6000;
  for (int s = 0; s < n; s++) {
    mpnas__controller_sample_warmup(c, &rng, 1.0f, allowed, path);
    for (int32_t l = 0; l < 4; l++) bad += !allowed[c->offset[l] + path[l]];
    layer4_zero += path[4] == 0;
    counts[path[0]]++;
  }
  CHECK_EQ_INT(bad, 0);
  CHECK(layer4_zero > n * 0.99); /* nothing allowed: the policy's op 0 stays */
  /* Uniform over the 6 allowed ops of layer 0: each ~1000 +- 4 sigma (~37). */
  for (int j = 1; j < 7; j++) CHECK_MSG(abs(counts[j] - n / 6) < 150, "op %d: %d", j, counts[j]);

  /* p = 0.5: op 0 (policy ~ 1.0, never forced) in about half the draws. */
  int zeros = 0;
  for (int s = 0; s < n; s++) {
    mpnas__controller_sample_warmup(c, &rng, 0.5f, allowed, path);
    zeros += path[0] == 0;
  }
  CHECK_MSG(abs(zeros - n / 2) < 250, "p = 0.5: op 0 in %d of %d", zeros, n);

  /* p = 0 is plain sampling: same paths and the same rng position. */
  mpnas__rng r1, r2;
  mpnas__rng_seed(&r1, 5, 1);
  mpnas__rng_seed(&r2, 5, 1);
  gc_fill(c->logits, (size_t)c->total_ops, 4, -1.0f, 1.0f);
  int32_t q[5];
  int same = 1;
  for (int s = 0; s < 500; s++) {
    mpnas__controller_sample_warmup(c, &r1, 0.0f, allowed, path);
    mpnas__controller_sample(c, &r2, q);
    same &= memcmp(path, q, sizeof q) == 0;
  }
  CHECK(same);
  CHECK(r1.state == r2.state);
  mpnas__controller_destroy(c);
  mpnas_context_free(ctx);
}

/* ---- (i) reproducible sampling; sampling frequencies ---------------------------------- */

static void test_sampling(void) {
  mpnas_context *ctx = new_ctx();
  const int32_t n_ops[4] = {7, 3, 1, 5};
  mpnas__controller *c = NULL;
  CHECK(mpnas__controller_create(ctx, 4, n_ops, &c) == MPNAS_OK);
  if (c == NULL) return;
  gc_fill(c->logits, (size_t)c->total_ops, 21, -1.5f, 1.5f);
  int32_t a[4], b[4];
  mpnas__rng r1, r2, r3;
  mpnas__rng_seed(&r1, 42, 0);
  mpnas__rng_seed(&r2, 42, 0);
  mpnas__rng_seed(&r3, 43, 0);
  int same = 1, differ = 0;
  for (int s = 0; s < 300; s++) {
    mpnas__controller_sample(c, &r1, a);
    mpnas__controller_sample(c, &r2, b);
    same &= memcmp(a, b, sizeof a) == 0;
    mpnas__controller_sample(c, &r3, b);
    differ |= memcmp(a, b, sizeof a) != 0;
  }
  CHECK(same);
  CHECK(differ);

  /* Frequencies follow the softmax. */
  float probs[16];
  mpnas__controller_probs(c, probs);
  int counts[16] = {0};
  const int n = 20000;
  for (int s = 0; s < n; s++) {
    mpnas__controller_sample(c, &r1, a);
    for (int32_t l = 0; l < 4; l++) counts[c->offset[l] + a[l]]++;
  }
  for (int32_t i = 0; i < c->total_ops; i++) {
    double sd = sqrt(n * probs[i] * (1.0 - probs[i]));
    CHECK_MSG(fabs(counts[i] - n * probs[i]) <= 5 * sd + 1, "op %d: %d vs %.1f", (int)i,
              counts[i], n * probs[i]);
  }
  mpnas__controller_destroy(c);
  mpnas_context_free(ctx);
}

/* ---- Queries: probabilities, argmax, convergence, entropy, log-probability ----------- */

static void test_queries(void) {
  mpnas_context *ctx = new_ctx();
  const int32_t n_ops[3] = {4, 1, 3};
  mpnas__controller *c = NULL;
  CHECK(mpnas__controller_create(ctx, 3, n_ops, &c) == MPNAS_OK);
  if (c == NULL) return;
  /* Uniform at creation. */
  float probs[8], maxp[3];
  int32_t path[3];
  mpnas__controller_probs(c, probs);
  CHECK_NEAR(probs[0], 0.25, 1e-7);
  CHECK(probs[4] == 1.0f);
  CHECK_NEAR(probs[7], 1.0 / 3.0, 1e-7);
  CHECK_NEAR(mpnas__controller_entropy(c), log(4.0) + log(3.0), 1e-12);
  CHECK_NEAR(mpnas__controller_convergence(c), 0.25, 1e-12);
  mpnas__controller_argmax(c, path);
  CHECK(path[0] == 0 && path[1] == 0 && path[2] == 0); /* ties: lowest index */
  const int32_t p0[3] = {2, 0, 1};
  CHECK_NEAR(mpnas__controller_log_prob(c, p0), -log(12.0), 1e-12);

  /* Set logits by hand. Layer 0: (0, ln 2, ln 3, ln 4) -> p = (1, 2, 3, 4) / 10. */
  c->logits[0] = 0.0f;
  c->logits[1] = (float)log(2.0);
  c->logits[2] = (float)log(3.0);
  c->logits[3] = (float)log(4.0);
  c->logits[5] = 1000.0f; /* large logits must not overflow */
  c->logits[6] = 999.0f;
  c->logits[7] = -1000.0f;
  mpnas__controller_probs(c, probs);
  for (int j = 0; j < 4; j++) CHECK_NEAR(probs[j], (j + 1) / 10.0, 1e-6);
  CHECK_NEAR(probs[5], 1.0 / (1.0 + exp(-1.0)), 1e-6);
  CHECK(probs[7] >= 0.0f && probs[7] < 1e-30f);
  mpnas__controller_max_probs(c, maxp);
  CHECK_NEAR(maxp[0], 0.4, 1e-6);
  CHECK(maxp[1] == 1.0f);
  CHECK_NEAR(maxp[2], 1.0 / (1.0 + exp(-1.0)), 1e-6);
  CHECK_NEAR(mpnas__controller_convergence(c), 0.4, 1e-6);
  mpnas__controller_argmax(c, path);
  CHECK(path[0] == 3 && path[1] == 0 && path[2] == 0);
  const int32_t p1[3] = {1, 0, 2};
  double lp = mpnas__controller_log_prob(c, p1);
  CHECK(isfinite(lp));
  CHECK_NEAR(lp, log(0.2) + (-2000.0 - log(1.0 + exp(-1.0))), 1e-3);
  mpnas__controller_destroy(c);
  mpnas_context_free(ctx);
}

/* ---- Creation errors, allocator use, no allocation per step --------------------------- */

static void test_create_and_memory(void) {
  mpnas_context *ctx = new_ctx();
  mpnas__controller *c = (mpnas__controller *)&c; /* must be reset to NULL on failure */
  const int32_t zero_ops[2] = {3, 0};
  CHECK(mpnas__controller_create(ctx, 2, zero_ops, &c) == MPNAS_E_OUT_OF_RANGE);
  CHECK(c == NULL);
  CHECK(mpnas__controller_create(ctx, 0, zero_ops, &c) == MPNAS_E_OUT_OF_RANGE);
  CHECK(mpnas__controller_create(ctx, 2, NULL, &c) == MPNAS_E_INVALID_ARGUMENT);
  const int32_t huge[1] = {MPNAS__CONTROLLER_MAX_OPS + 1};
  CHECK(mpnas__controller_create(ctx, 1, huge, &c) == MPNAS_E_OUT_OF_RANGE);
  mpnas__controller_destroy(NULL);

  /* Every allocation failure point gives NO_MEMORY and leaks nothing. */
  const int32_t n_ops[3] = {5, 1, 3};
  for (long k = 0; k < 3; k++) {
    long start_frees = g_stats.frees, start_allocs = g_stats.allocs;
    g_stats.fail_after = start_allocs + k;
    CHECK(mpnas__controller_create(ctx, 3, n_ops, &c) == MPNAS_E_NO_MEMORY);
    CHECK(c == NULL);
    CHECK_EQ_INT(g_stats.allocs - start_allocs, g_stats.frees - start_frees);
  }
  g_stats.fail_after = -1;

  long live = g_stats.allocs - g_stats.frees; /* the context's own blocks */
  CHECK(mpnas__controller_create(ctx, 3, n_ops, &c) == MPNAS_OK);
  if (c == NULL) return;
  /* The per-step path allocates nothing. */
  long allocs = g_stats.allocs;
  mpnas__rng rng;
  mpnas__rng_seed(&rng, 1, 1);
  int32_t path[3];
  float buf[9];
  double state[64];
  CHECK(mpnas__controller_state_size(c) <= 64);
  for (int s = 0; s < 100; s++) {
    mpnas__controller_sample(c, &rng, path);
    mpnas__controller_sample_warmup(c, &rng, 0.5f, NULL, path);
    CHECK(mpnas__controller_update(c, path, 0.01 * s, 0.1f, 0.01f, NULL) == MPNAS_OK);
    mpnas__controller_probs(c, buf);
    mpnas__controller_max_probs(c, buf);
    (void)mpnas__controller_entropy(c);
    CHECK(mpnas__controller_export(c, state, 64) == MPNAS_OK);
    CHECK(mpnas__controller_import(c, state, mpnas__controller_state_size(c)) == MPNAS_OK);
  }
  CHECK_EQ_INT(g_stats.allocs, allocs);
  mpnas__controller_destroy(c);
  CHECK_EQ_INT(g_stats.allocs - g_stats.frees, live);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(g_stats.allocs, g_stats.frees);
}

int main(void) {
  RUN(test_convergence);
  RUN(test_gradient);
  RUN(test_baseline);
  RUN(test_adam_step);
  RUN(test_rl_lr);
  RUN(test_export_import);
  RUN(test_rewards);
  RUN(test_warmup);
  RUN(test_sampling);
  RUN(test_queries);
  RUN(test_create_and_memory);
  return check_finish();
}
