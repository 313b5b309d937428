/* test_ops_misc.c - the non-convolution ops (src/tensor/ops_misc.c): hand-computed
 * forward values and finite-difference gradient checks for every op. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/common.h"
#include "gradcheck.h"
#include "tensor/ops.h"

/* The engine the BN and activation tests run on: main() runs them once per kernel table
 * this build and CPU support (scalar = the reference, then AVX2 or NEON), on one thread;
 * the large-m case also runs on two (the threaded paths; test_misc_kernels checks that
 * the thread count changes no bit). */
static mpnas__engine ENG_STORAGE;
static const mpnas__engine *const ENG = &ENG_STORAGE;

static float *fvec(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static float *fvec_fill(size_t n, uint64_t seed, float lo, float hi) {
  float *p = fvec(n);
  gc_fill(p, n, seed, lo, hi);
  return p;
}

/* ---- Batch norm ---------------------------------------------------------------------- */

static void test_bn_forward_hand(void) {
  /* x = [1,2,3,4]: mean 2.5, biased var (2.25+0.25+0.25+2.25)/4 = 1.25, eps 0:
   * xhat = (x - 2.5)/sqrt(1.25) = [-1.3416408, -0.4472136, 0.4472136, 1.3416408];
   * gamma 2, beta 1: y = 2*xhat + 1. */
  float x[4] = {1, 2, 3, 4}, y[4], gamma = 2.0f, beta = 1.0f, sm, si;
  mpnas__bn_fwd_train(ENG, 4, 1, x,
                      &(mpnas__bn_train){&gamma, &beta, 0.0f, 0.1f, NULL, NULL, &sm, &si}, y);
  CHECK_NEAR(sm, 2.5, 1e-7);
  CHECK_NEAR(si, 0.894427191, 1e-6);
  const double xhat[4] = {-1.3416407865, -0.4472135955, 0.4472135955, 1.3416407865};
  for (int i = 0; i < 4; i++) CHECK_NEAR(y[i], 2.0 * xhat[i] + 1.0, 2e-6);

  /* In place (y == x) gives the same. */
  mpnas__bn_fwd_train(ENG, 4, 1, x,
                      &(mpnas__bn_train){&gamma, &beta, 0.0f, 0.1f, NULL, NULL, &sm, &si}, x);
  for (int i = 0; i < 4; i++) CHECK_NEAR(x[i], y[i], 0.0);
}

static void test_bn_running_stats(void) {
  /* Two channels interleaved: channel 0 sees [1,2,3,4] then [2,4,6,8]; channel 1 is
   * constant 5 (zero variance). momentum 0.1, running mean 0 / var 1 initially.
   * Step 1: mean 2.5, unbiased var 5/3: rm = 0.25, rv = 0.9 + 0.1*5/3 = 1.0666667.
   * Step 2: mean 5, unbiased var 20/3: rm = 0.9*0.25 + 0.5 = 0.725,
   *         rv = 0.9*1.0666667 + 0.1*20/3 = 1.6266667.
   * Channel 1: rm = 0.5 then 0.95; rv = 0.9 then 0.81. */
  float a[8] = {1, 5, 2, 5, 3, 5, 4, 5}, b[8] = {2, 5, 4, 5, 6, 5, 8, 5}, y[8];
  float rm[2] = {0, 0}, rv[2] = {1, 1}, sm[2], si[2];
  mpnas__bn_fwd_train(ENG, 4, 2, a, &(mpnas__bn_train){NULL, NULL, 1e-5f, 0.1f, rm, rv, sm, si}, y);
  CHECK_NEAR(rm[0], 0.25, 1e-7);
  CHECK_NEAR(rv[0], 1.0 + 0.1 * (5.0 / 3.0 - 1.0), 1e-6);
  CHECK_NEAR(rm[1], 0.5, 1e-7);
  CHECK_NEAR(rv[1], 0.9, 1e-7);
  /* Constant channel: output 0 (beta), invstd = 1/sqrt(eps). */
  for (int i = 0; i < 4; i++) CHECK_NEAR(y[2 * i + 1], 0.0, 0.0);
  CHECK_NEAR(si[1], 1.0 / sqrt(1e-5), 1e-2);
  mpnas__bn_fwd_train(ENG, 4, 2, b, &(mpnas__bn_train){NULL, NULL, 1e-5f, 0.1f, rm, rv, sm, si}, y);
  CHECK_NEAR(rm[0], 0.725, 1e-6);
  CHECK_NEAR(rv[0], 1.6266667, 1e-6);
  CHECK_NEAR(rm[1], 0.95, 1e-6);
  CHECK_NEAR(rv[1], 0.81, 1e-6);
  CHECK_NEAR(sm[0], 5.0, 1e-7);
  CHECK_NEAR(si[0], 1.0 / sqrt(5.0 + 1e-5), 1e-6);
}

/* Large m with |mean| >> std: a one-pass float E[x^2]-E[x]^2 gets the variance wrong
 * by orders of magnitude here; two passes in double match a double reference. */
static void test_bn_large_m_accuracy(void) {
  int m = 1 << 20, c = 3;
  int threads = ENG_STORAGE.threads;
  ENG_STORAGE.threads = 2;
  float *x = fvec((size_t)m * c), *y = fvec((size_t)m * c);
  gc_fill(x, (size_t)m * c, 11, -1.0f, 1.0f);
  for (size_t i = 0; i < (size_t)m * c; i++) x[i] += (i % 3 == 0) ? 1e4f : (i % 3 == 1 ? -300.0f : 0.0f);
  float sm[3], si[3], rm[3] = {0, 0, 0}, rv[3] = {0, 0, 0};
  mpnas__bn_fwd_train(ENG, m, c, x, &(mpnas__bn_train){NULL, NULL, 1e-5f, 1.0f, rm, rv, sm, si}, y);
  for (int ch = 0; ch < c; ch++) {
    double s = 0, ss = 0;
    for (int i = 0; i < m; i++) s += x[(size_t)i * c + ch];
    double mean = s / m;
    for (int i = 0; i < m; i++) {
      double d = x[(size_t)i * c + ch] - mean;
      ss += d * d;
    }
    double var = ss / m;
    CHECK_NEAR(sm[ch], mean, 1e-6 * fabs(mean) + 1e-7);
    CHECK_NEAR(si[ch], 1.0 / sqrt(var + 1e-5), 1e-5 / sqrt(var));
    CHECK_NEAR(rv[ch], ss / (m - 1), 1e-5 * var);
    /* The output is standardised. */
    double ym = 0, yv = 0;
    for (int i = 0; i < m; i++) ym += y[(size_t)i * c + ch];
    ym /= m;
    for (int i = 0; i < m; i++) yv += (y[(size_t)i * c + ch] - ym) * (y[(size_t)i * c + ch] - ym);
    yv /= m;
    CHECK_NEAR(ym, 0.0, 1e-4);
    CHECK_NEAR(yv, var / (var + 1e-5), 1e-3);
  }
  /* BN is shift-invariant, so backward on x and on x minus its offset (exact in float
   * here) must agree: checks that the float-rounded save_mean costs nothing. */
  float *xs = fvec((size_t)m * c), *ys = fvec((size_t)m * c), *dy = fvec((size_t)m * c);
  float *dx = fvec((size_t)m * c), *dxs = fvec((size_t)m * c);
  float sms[3], sis[3], dg[3] = {0, 0, 0}, db[3] = {0, 0, 0}, dgs[3] = {0, 0, 0}, dbs[3] = {0, 0, 0};
  float gamma[3] = {1.5f, 0.5f, 1.0f};
  gc_fill(dy, (size_t)m * c, 12, -1.0f, 1.0f);
  for (size_t i = 0; i < (size_t)m * c; i++)
    xs[i] = x[i] - ((i % 3 == 0) ? 1e4f : (i % 3 == 1 ? -300.0f : 0.0f));
  mpnas__bn_fwd_train(ENG, m, c, x,
                      &(mpnas__bn_train){gamma, NULL, 1e-5f, 0.1f, NULL, NULL, sm, si}, y);
  mpnas__bn_fwd_train(ENG, m, c, xs,
                      &(mpnas__bn_train){gamma, NULL, 1e-5f, 0.1f, NULL, NULL, sms, sis}, ys);
  mpnas__bn_bwd(ENG, NULL, m, c, x, gamma, sm, si, NULL, dy, dx, dg, db);
  mpnas__bn_bwd(ENG, NULL, m, c, xs, gamma, sms, sis, NULL, dy, dxs, dgs, dbs);
  double worst_y = 0, worst_dx = 0;
  for (size_t i = 0; i < (size_t)m * c; i++) {
    /* Plain ifs: aarch64 gcc 12.2 crashes vectorising an fmax reduction here. */
    double ey = fabs(y[i] - ys[i]), ed = fabs(dx[i] - dxs[i]);
    if (ey > worst_y) worst_y = ey;
    if (ed > worst_dx) worst_dx = ed;
  }
  CHECK_MSG(worst_y <= 1e-5, "shifted forward differs by %g", worst_y);
  CHECK_MSG(worst_dx <= 1e-5, "shifted backward differs by %g", worst_dx);
  for (int ch = 0; ch < c; ch++) {
    CHECK_NEAR(dg[ch], dgs[ch], 1e-5 * (1 + fabs(dgs[ch])));
    CHECK_NEAR(db[ch], dbs[ch], 1e-5 * (1 + fabs(dbs[ch])));
  }
  free(xs), free(ys), free(dy), free(dx), free(dxs);
  free(x);
  free(y);
  ENG_STORAGE.threads = threads;
}

static void test_bn_infer_equals_fold(void) {
  int m = 37, c = 71; /* c crosses the 64-channel block */
  float *x = fvec_fill((size_t)m * c, 1, -3, 3), *y = fvec((size_t)m * c);
  float *gamma = fvec_fill(c, 2, 0.5f, 1.5f), *beta = fvec_fill(c, 3, -1, 1);
  float *rm = fvec_fill(c, 4, -1, 1), *rv = fvec_fill(c, 5, 0.1f, 2.0f);
  float *scale = fvec(c), *shift = fvec(c);
  float eps = 1e-3f;
  mpnas__bn_fwd_infer(m, c, x, gamma, beta, rm, rv, eps, y);
  mpnas__bn_fold(c, gamma, beta, rm, rv, eps, scale, shift);
  for (int i = 0; i < m; i++)
    for (int ch = 0; ch < c; ch++) {
      size_t k = (size_t)i * c + ch;
      float folded = x[k] * scale[ch] + shift[ch];
      CHECK_NEAR(y[k], folded, 1e-6 * (1 + fabs(folded)));
      double def = gamma[ch] * (x[k] - (double)rm[ch]) / sqrt((double)rv[ch] + eps) + beta[ch];
      CHECK_NEAR(y[k], def, 2e-6 * (1 + fabs(def)));
    }
  /* In place. */
  mpnas__bn_fwd_infer(m, c, x, gamma, beta, rm, rv, eps, x);
  CHECK(memcmp(x, y, sizeof(float) * (size_t)m * c) == 0);
  free(x), free(y), free(gamma), free(beta), free(rm), free(rv), free(scale), free(shift);
}

typedef struct bn_case {
  int m, c;
  float eps;
  float *x, *gamma, *beta, *probe, *y, *sm, *si;
} bn_case;

static double bn_loss(void *user) {
  bn_case *b = user;
  mpnas__bn_fwd_train(ENG, b->m, b->c, b->x,
                      &(mpnas__bn_train){b->gamma, b->beta, b->eps, 0.1f, NULL, NULL, b->sm, b->si},
                      b->y);
  return gc_dot(b->y, b->probe, (size_t)b->m * b->c);
}

static int bn_gradcheck(int m, int c, uint64_t seed) {
  bn_case b = {m, c, 1e-3f, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
  size_t mc = (size_t)m * c;
  b.x = fvec_fill(mc, seed, 0.5f, 2.5f); /* nonzero mean on purpose */
  b.gamma = fvec_fill(c, seed + 1, 0.5f, 1.5f);
  b.beta = fvec_fill(c, seed + 2, -0.5f, 0.5f);
  b.probe = fvec_fill(mc, seed + 3, -1, 1);
  b.y = fvec(mc);
  b.sm = fvec(c);
  b.si = fvec(c);
  float *dx = fvec(mc), *dg = fvec(c), *db = fvec(c), *dg2 = fvec(c), *db2 = fvec(c);
  /* Parameter gradients accumulate: start from 0.25 and subtract it afterwards. */
  for (int i = 0; i < c; i++) dg[i] = db[i] = dg2[i] = db2[i] = 0.25f;
  bn_loss(&b);
  mpnas__bn_bwd(ENG, NULL, m, c, b.x, b.gamma, b.sm, b.si, NULL, b.probe, dx, dg, db);
  mpnas__bn_bwd(ENG, NULL, m, c, b.x, b.gamma, b.sm, b.si, NULL, b.probe, NULL, dg2, db2);
  int bad = 0;
  for (int i = 0; i < c; i++) {
    bad += dg[i] != dg2[i] || db[i] != db2[i]; /* dx == NULL changes nothing else */
    dg[i] -= 0.25f;
    db[i] -= 0.25f;
  }
  double h = mc > 200 ? 1e-2 : 1e-3;
  bad += gc_check("bn.x", b.x, mc, dx, bn_loss, &b, h, 2e-3, 1e-2, 150);
  bad += gc_check("bn.gamma", b.gamma, c, dg, bn_loss, &b, h, 2e-3, 1e-2, 0);
  bad += gc_check("bn.beta", b.beta, c, db, bn_loss, &b, h, 2e-3, 1e-2, 0);
  if (bad) printf("    (bn m=%d c=%d)\n", m, c);
  free(b.x), free(b.gamma), free(b.beta), free(b.probe), free(b.y), free(b.sm), free(b.si);
  free(dx), free(dg), free(db), free(dg2), free(db2);
  return bad;
}

static void test_bn_gradcheck(void) {
  const int ms[] = {2, 5, 1500};
  const int cs[] = {1, 7, 9, 17, 70};
  uint64_t seed = 100;
  for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
    for (size_t b = 0; b < sizeof cs / sizeof cs[0]; b++) CHECK_EQ_INT(bn_gradcheck(ms[a], cs[b], seed++), 0);
}

/* ---- Activations ------------------------------------------------------------------------ */

static const int all_acts[] = {MPNAS__ACT_NONE, MPNAS__ACT_RELU, MPNAS__ACT_RELU6,
                               MPNAS__ACT_HSWISH, MPNAS__ACT_SIGMOID, MPNAS__ACT_HSIGMOID};
#define NACTS (sizeof all_acts / sizeof all_acts[0])

static void test_act_values(void) {
  /* Points including every kink: 0 and 6 (relu, relu6), -3 and 3 (hswish, hsigmoid). */
  const float pts[] = {-7, -3, -1, 0, 1, 2, 3, 6, 7};
  enum { NP = sizeof pts / sizeof pts[0] };
  /* hswish(x) = x*relu6(x+3)/6: -1 -> -1*2/6, 1 -> 4/6, 2 -> 2*5/6; hsigmoid(x) = relu6(x+3)/6. */
  const double want[][NP] = {
      /* NONE */ {-7, -3, -1, 0, 1, 2, 3, 6, 7},
      /* RELU */ {0, 0, 0, 0, 1, 2, 3, 6, 7},
      /* RELU6 */ {0, 0, 0, 0, 1, 2, 3, 6, 6},
      /* HSWISH */ {0, 0, -1.0 / 3, 0, 2.0 / 3, 5.0 / 3, 3, 6, 7},
      /* SIGMOID */ {0.000911051194, 0.0474258732, 0.268941421, 0.5, 0.731058579,
                     0.880797078, 0.952574127, 0.997527377, 0.999088949},
      /* HSIGMOID */ {0, 0, 1.0 / 3, 0.5, 2.0 / 3, 5.0 / 6, 1, 1, 1},
  };
  /* Derivatives; at kinks the flat side (kernels.h): relu'(0) = 0, relu6'(0) =
   * relu6'(6) = 0, hswish'(-3) = 0, hswish'(3) = 1, hsigmoid'(+-3) = 0. */
  const double dwant[][NP] = {
      /* NONE */ {1, 1, 1, 1, 1, 1, 1, 1, 1},
      /* RELU */ {0, 0, 0, 0, 1, 1, 1, 1, 1},
      /* RELU6 */ {0, 0, 0, 0, 1, 1, 1, 0, 0},
      /* HSWISH: (2x+3)/6 inside */ {0, 0, 1.0 / 6, 0.5, 5.0 / 6, 7.0 / 6, 1, 1, 1},
      /* SIGMOID s(1-s) */ {0.000910221180, 0.0451766597, 0.196611933, 0.25, 0.196611933,
                            0.104993585, 0.0451766597, 0.00246650929, 0.000910221180},
      /* HSIGMOID */ {0, 0, 1.0 / 6, 1.0 / 6, 1.0 / 6, 1.0 / 6, 0, 0, 0},
  };
  float y[NP], d[NP], ones[NP];
  for (int i = 0; i < NP; i++) ones[i] = 1.0f;
  for (size_t a = 0; a < NACTS; a++) {
    int act = all_acts[a];
    mpnas__act_fwd(ENG, act, NP, pts, y);
    mpnas__act_bwd(ENG, act, NP, pts, ones, d);
    for (int i = 0; i < NP; i++) {
      CHECK_MSG(fabs(y[i] - want[a][i]) <= 1e-6, "act %d (%g) = %.9g, want %.9g", act,
                (double)pts[i], (double)y[i], want[a][i]);
      CHECK_MSG(fabs(d[i] - dwant[a][i]) <= 1e-6, "act %d '(%g) = %.9g, want %.9g", act,
                (double)pts[i], (double)d[i], dwant[a][i]);
      /* The reference definition in act-ref.c. */
      CHECK_NEAR(y[i], mpnas__act_apply(act, pts[i]), 1e-7);
      CHECK_NEAR(d[i], mpnas__act_grad(act, pts[i]), 1e-7);
    }
  }
}

/* Every value of a dense sweep matches the reference definition, in place too. */
static void test_act_matches_reference(void) {
  enum { N = 4001 };
  float *x = fvec(N), *y = fvec(N), *dy = fvec_fill(N, 9, -2, 2), *dx = fvec(N);
  for (int i = 0; i < N; i++) x[i] = -10.0f + 0.005f * (float)i;
  for (size_t a = 0; a < NACTS; a++) {
    int act = all_acts[a];
    mpnas__act_fwd(ENG, act, N, x, y);
    mpnas__act_bwd(ENG, act, N, x, dy, dx);
    int bad = 0;
    for (int i = 0; i < N; i++) {
      float r = mpnas__act_apply(act, x[i]), g = dy[i] * mpnas__act_grad(act, x[i]);
      bad += !(fabsf(y[i] - r) <= 1e-6f * (1 + fabsf(r)));
      bad += !(fabsf(dx[i] - g) <= 1e-6f * (1 + fabsf(g)));
    }
    CHECK_MSG(bad == 0, "act %d: %d mismatches with act-ref.c", act, bad);
    /* dx may equal dy; y may equal x. */
    memcpy(y, dy, sizeof(float) * N);
    mpnas__act_bwd(ENG, act, N, x, y, y);
    CHECK(memcmp(y, dx, sizeof(float) * N) == 0);
    float *x2 = fvec(N), *y2 = fvec(N);
    memcpy(x2, x, sizeof(float) * N);
    mpnas__act_fwd(ENG, act, N, x2, y2);
    mpnas__act_fwd(ENG, act, N, x2, x2);
    CHECK(memcmp(x2, y2, sizeof(float) * N) == 0);
    free(x2);
    free(y2);
  }
  free(x), free(y), free(dy), free(dx);
}

typedef struct act_case {
  int act;
  size_t n;
  float *x, *y, *probe;
} act_case;

static double act_loss(void *user) {
  act_case *a = user;
  mpnas__act_fwd(ENG, a->act, a->n, a->x, a->y);
  return gc_dot(a->y, a->probe, a->n);
}

static void test_act_gradcheck(void) {
  enum { N = 300 };
  const float kinks[] = {0.0f, 6.0f, -3.0f, 3.0f};
  for (size_t a = 0; a < NACTS; a++) {
    act_case c = {all_acts[a], N, fvec_fill(N, 20 + a, -8, 8), fvec(N), fvec_fill(N, 30 + a, -1, 1)};
    /* Keep samples 0.05 away from every kink so the finite difference stays on one
     * piece. */
    for (int i = 0; i < N; i++)
      for (int k = 0; k < 4; k++)
        if (fabsf(c.x[i] - kinks[k]) < 0.05f) c.x[i] = kinks[k] + 0.1f;
    float *dx = fvec(N);
    mpnas__act_bwd(ENG, c.act, N, c.x, c.probe, dx);
    int bad = gc_check("act.x", c.x, N, dx, act_loss, &c, 1e-3, 1e-4, 1e-3, 0);
    CHECK_MSG(bad == 0, "act %d: %d gradient mismatches", c.act, bad);
    free(c.x), free(c.y), free(c.probe), free(dx);
  }
}

/* ---- Elementwise, channel scale, pooling ------------------------------------------------ */

typedef struct add_case {
  size_t n;
  float *a, *b, *y, *probe;
} add_case;

static double add_loss(void *user) {
  add_case *c = user;
  mpnas__add_fwd(c->n, c->a, c->b, c->y);
  return gc_dot(c->y, c->probe, c->n);
}

static void test_add(void) {
  enum { N = 67 };
  add_case c = {N, fvec_fill(N, 1, -2, 2), fvec_fill(N, 2, -2, 2), fvec(N), fvec_fill(N, 3, -1, 1)};
  add_loss(&c);
  for (int i = 0; i < N; i++) CHECK_NEAR(c.y[i], c.a[i] + c.b[i], 0.0);
  /* Backward of y = a + b: dy flows to both; add_acc accumulates onto what is there. */
  float *da = fvec(N), *db = fvec(N);
  for (int i = 0; i < N; i++) db[i] = 0.5f;
  mpnas__add_acc(N, c.probe, da);
  mpnas__add_acc(N, c.probe, db);
  for (int i = 0; i < N; i++) {
    CHECK_NEAR(db[i], c.probe[i] + 0.5f, 1e-7);
    db[i] -= 0.5f;
  }
  CHECK_EQ_INT(gc_check("add.a", c.a, N, da, add_loss, &c, 1e-2, 1e-5, 1e-4, 0), 0);
  CHECK_EQ_INT(gc_check("add.b", c.b, N, db, add_loss, &c, 1e-2, 1e-5, 1e-4, 0), 0);
  /* In place: y == a. */
  add_loss(&c); /* gc_check leaves y from a perturbed evaluation */
  float *a2 = fvec(N);
  memcpy(a2, c.a, sizeof(float) * N);
  mpnas__add_fwd(N, a2, c.b, a2);
  CHECK(memcmp(a2, c.y, sizeof(float) * N) == 0);
  free(c.a), free(c.b), free(c.y), free(c.probe), free(da), free(db), free(a2);
}

typedef struct chs_case {
  int n, hw, c;
  float *x, *s, *y, *probe;
} chs_case;

static double chs_loss(void *user) {
  chs_case *k = user;
  mpnas__chscale_fwd(k->n, k->hw, k->c, k->x, k->s, k->y);
  return gc_dot(k->y, k->probe, (size_t)k->n * k->hw * k->c);
}

static void test_chscale(void) {
  const int cs[] = {1, 9, 70};
  for (size_t t = 0; t < 3; t++) {
    int n = 2, hw = 15, c = cs[t];
    size_t total = (size_t)n * hw * c;
    chs_case k = {n, hw, c, fvec_fill(total, 5 + t, -2, 2), fvec_fill((size_t)n * c, 6 + t, -1.5f, 1.5f),
                  fvec(total), fvec_fill(total, 7 + t, -1, 1)};
    chs_loss(&k);
    for (int i = 0; i < n; i++)
      for (int p = 0; p < hw; p++)
        for (int ch = 0; ch < c; ch++) {
          size_t q = ((size_t)i * hw + p) * c + ch;
          CHECK_NEAR(k.y[q], k.x[q] * k.s[(size_t)i * c + ch], 0.0);
        }
    float *dx = fvec(total), *ds = fvec((size_t)n * c);
    for (size_t i = 0; i < (size_t)n * c; i++) ds[i] = 123.0f; /* ds is overwritten */
    mpnas__chscale_bwd(n, hw, c, k.x, k.s, k.probe, dx, ds);
    CHECK_EQ_INT(gc_check("chscale.x", k.x, total, dx, chs_loss, &k, 1e-2, 1e-4, 1e-4, 0), 0);
    CHECK_EQ_INT(gc_check("chscale.s", k.s, (size_t)n * c, ds, chs_loss, &k, 1e-2, 1e-4, 1e-4, 0), 0);
    /* NULL outputs are skipped; dx may share memory with dy. */
    float *ds2 = fvec((size_t)n * c), *d2 = fvec(total);
    mpnas__chscale_bwd(n, hw, c, k.x, k.s, k.probe, NULL, ds2);
    CHECK(memcmp(ds, ds2, sizeof(float) * (size_t)n * c) == 0);
    memcpy(d2, k.probe, sizeof(float) * total);
    mpnas__chscale_bwd(n, hw, c, k.x, k.s, d2, d2, ds2);
    CHECK(memcmp(d2, dx, sizeof(float) * total) == 0);
    CHECK(memcmp(ds, ds2, sizeof(float) * (size_t)n * c) == 0);
    free(k.x), free(k.s), free(k.y), free(k.probe), free(dx), free(ds), free(ds2), free(d2);
  }
}

typedef struct gap_case {
  int n, hw, c;
  float *x, *y, *probe;
} gap_case;

static double gap_loss(void *user) {
  gap_case *g = user;
  mpnas__gap_fwd(g->n, g->hw, g->c, g->x, g->y);
  return gc_dot(g->y, g->probe, (size_t)g->n * g->c);
}

static void test_gap(void) {
  /* Hand case: one image of 3 pixels, 2 channels. */
  float x[6] = {1, 10, 2, 20, 6, 60}, y[2];
  mpnas__gap_fwd(1, 3, 2, x, y);
  CHECK_NEAR(y[0], 3.0, 1e-7);
  CHECK_NEAR(y[1], 30.0, 1e-6);

  const int cs[] = {1, 13, 70};
  for (size_t t = 0; t < 3; t++) {
    int n = 3, hw = 25, c = cs[t];
    size_t total = (size_t)n * hw * c;
    gap_case g = {n, hw, c, fvec_fill(total, 40 + t, -2, 2), fvec((size_t)n * c),
                  fvec_fill((size_t)n * c, 50 + t, -1, 1)};
    float *dx = fvec(total);
    mpnas__gap_bwd(n, hw, c, g.probe, dx);
    CHECK_EQ_INT(gc_check("gap.x", g.x, total, dx, gap_loss, &g, 1e-2, 1e-5, 1e-4, 0), 0);
    free(g.x), free(g.y), free(g.probe), free(dx);
  }
}

/* ---- Squeeze-and-excite ------------------------------------------------------------------ */

typedef struct se_case {
  mpnas__engine eng;
  mpnas__arena *ws;
  int n, hw, c, r;
  float *x, *w1, *b1, *w2, *b2, *saved, *y, *probe;
} se_case;

static double se_loss(void *user) {
  se_case *s = user;
  mpnas__se_weights sw = {s->w1, s->b1, s->w2, s->b2};
  mpnas_status st = mpnas__se_fwd(&s->eng, s->ws, s->n, s->hw, s->c, s->r, s->x, &sw, s->saved,
                                  s->y);
  CHECK_EQ_INT(st, MPNAS_OK);
  return gc_dot(s->y, s->probe, (size_t)s->n * s->hw * s->c);
}

/* Direct double-precision SE forward, the oracle. */
static void se_naive(const se_case *s, double *y, int *relu_on, int *gate_ramp) {
  int n = s->n, hw = s->hw, c = s->c, r = s->r;
  double *pool = calloc((size_t)c, sizeof(double)), *a1 = calloc((size_t)r, sizeof(double));
  for (int i = 0; i < n; i++) {
    const float *xi = s->x + (size_t)i * hw * c;
    for (int ch = 0; ch < c; ch++) {
      pool[ch] = 0;
      for (int p = 0; p < hw; p++) pool[ch] += xi[(size_t)p * c + ch];
      pool[ch] /= hw;
    }
    for (int j = 0; j < r; j++) {
      double z = s->b1[j];
      for (int ch = 0; ch < c; ch++) z += pool[ch] * s->w1[(size_t)ch * r + j];
      a1[j] = z > 0 ? z : 0;
      *relu_on += z > 0;
    }
    for (int ch = 0; ch < c; ch++) {
      double z = s->b2[ch];
      for (int j = 0; j < r; j++) z += a1[j] * s->w2[(size_t)j * c + ch];
      *gate_ramp += z > -3 && z < 3;
      double g = (z + 3) / 6;
      g = g < 0 ? 0 : (g > 1 ? 1 : g);
      for (int p = 0; p < hw; p++)
        y[((size_t)i * hw + p) * c + ch] = xi[(size_t)p * c + ch] * g;
    }
  }
  free(pool);
  free(a1);
}

/* ---- BN over data-parallel workers ---------------------------------------------------
 * Two threads stand for two workers, each with its share of the rows and a sum over both
 * (mpnas__workers): their outputs, dx and running statistics equal one process's on all
 * the rows, and their dgamma / dbeta add up to its (up to summation order). */
typedef struct {
  pthread_barrier_t bar;
  double *slot[2];
} two_world;
typedef struct {
  two_world *w;
  mpnas_context *ctx;
  int rank, r0, r1, c; /* rows [r0, r1) of the batch */
  const float *x, *dy, *gamma, *beta;
  float *y, *dx, *dg, *db, *rm, *rv; /* y, dx: the whole batch's layout */
  mpnas_status st;
} two_worker;

static int32_t two_sum(void *user, double *buf, int64_t n) {
  two_worker *me = user;
  two_world *w = me->w;
  double *tmp = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
  w->slot[me->rank] = buf;
  pthread_barrier_wait(&w->bar);
  const double *other = w->slot[1 - me->rank];
  for (int64_t i = 0; i < n; i++) tmp[i] = me->rank == 0 ? buf[i] + other[i] : other[i] + buf[i];
  pthread_barrier_wait(&w->bar); /* both have read the other's buffer */
  memcpy(buf, tmp, sizeof(double) * (size_t)n);
  free(tmp);
  return 0;
}

/* BN forward (statistics, apply with ReLU) and backward on rows [r0, r1). */
static mpnas_status bn_pass(const mpnas__engine *eng, mpnas__arena *ws, int r0, int r1, int c,
                            const float *x, const float *dy, const float *gamma,
                            const float *beta, float *y, float *dx, float *dg, float *db,
                            float *rm, float *rv) {
  int m = r1 - r0;
  size_t off = (size_t)r0 * c;
  double *st = mpnas__arena_alloc(ws, sizeof(double) * 2 * (size_t)c);
  float *sm = mpnas__arena_floats(ws, (size_t)c), *si = mpnas__arena_floats(ws, (size_t)c);
  float *norm = mpnas__arena_floats(ws, (size_t)(m > 0 ? m : 1) * c);
  float *dn = mpnas__arena_floats(ws, (size_t)(m > 0 ? m : 1) * c);
  if (!st || !sm || !si || !norm || !dn) return MPNAS_E_NO_MEMORY;
  mpnas_status s = MPNAS_OK;
  if (m > 0) s = mpnas__bn_stats(eng, ws, m, c, x + off, st, st + c);
  mpnas__bn_train bn = {gamma, beta, 1e-5f, 0.1f, rm, rv, sm, si};
  if (s == MPNAS_OK)
    s = mpnas__bn_act_apply(eng, ws, m, c, x + off, st, st + c, &bn, MPNAS__ACT_RELU, NULL, norm,
                            y + off);
  if (s != MPNAS_OK) return s;
  /* ReLU's backward by hand, then BN's. */
  for (size_t i = 0; i < (size_t)m * c; i++) dn[i] = norm[i] > 0.0f ? dy[off + i] : 0.0f;
  return mpnas__bn_bwd(eng, ws, m, c, x + off, gamma, sm, si, NULL, dn, dx + off, dg, db);
}

static void *two_worker_run(void *arg) {
  two_worker *me = arg;
  mpnas__arena ws;
  mpnas__arena_init(&ws, me->ctx);
  mpnas__workers wk = {two_sum, me};
  mpnas__engine eng = *ENG;
  eng.workers = &wk;
  me->st = bn_pass(&eng, &ws, me->r0, me->r1, me->c, me->x, me->dy, me->gamma, me->beta, me->y,
                   me->dx, me->dg, me->db, me->rm, me->rv);
  mpnas__arena_destroy(&ws);
  return NULL;
}

static void test_bn_over_workers(void) {
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  if (ctx == NULL) return;
  /* c across the reduction (64) and apply (256) widths; an empty share; uneven shares;
   * a mean far from 0 (the two-sum variance must not cancel). */
  const int shapes[][3] = {{37, 70, 18}, {9, 3, 0}, {300, 260, 111}, {64, 5, 63}};
  for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
    int m = shapes[sh][0], c = shapes[sh][1], split = shapes[sh][2];
    size_t n = (size_t)m * c;
    float *x = fvec_fill(n, 11 + sh, 95.0f, 105.0f), *dy = fvec_fill(n, 12 + sh, -1.0f, 1.0f);
    float *gamma = fvec_fill((size_t)c, 13, 0.5f, 1.5f), *beta = fvec_fill((size_t)c, 14, -0.5f, 0.5f);
    float *y1 = fvec(n), *dx1 = fvec(n), *dg1 = fvec((size_t)c), *db1 = fvec((size_t)c);
    float *rm1 = fvec((size_t)c), *rv1 = fvec_fill((size_t)c, 15, 1.0f, 1.0f);
    float *y2 = fvec(n), *dx2 = fvec(n), *dg2[2] = {fvec((size_t)c), fvec((size_t)c)},
          *db2[2] = {fvec((size_t)c), fvec((size_t)c)};
    float *rm2[2] = {fvec((size_t)c), fvec((size_t)c)};
    float *rv2[2] = {fvec_fill((size_t)c, 15, 1.0f, 1.0f), fvec_fill((size_t)c, 15, 1.0f, 1.0f)};
    mpnas__arena ws;
    mpnas__arena_init(&ws, ctx);
    CHECK_EQ_INT(bn_pass(ENG, &ws, 0, m, c, x, dy, gamma, beta, y1, dx1, dg1, db1, rm1, rv1),
                 MPNAS_OK);
    mpnas__arena_destroy(&ws);
    two_world w;
    pthread_barrier_init(&w.bar, NULL, 2);
    two_worker wk[2];
    pthread_t th[2];
    for (int r = 0; r < 2; r++) {
      wk[r] = (two_worker){&w, ctx, r, r == 0 ? 0 : split, r == 0 ? split : m, c, x, dy, gamma,
                           beta, y2, dx2, dg2[r], db2[r], rm2[r], rv2[r], MPNAS_OK};
      pthread_create(&th[r], NULL, two_worker_run, &wk[r]);
    }
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&w.bar);
    CHECK_EQ_INT(wk[0].st, MPNAS_OK);
    CHECK_EQ_INT(wk[1].st, MPNAS_OK);
    double worst = 0.0;
#define TWO_DIFF(a, b)                                  \
  do {                                                  \
    double d_ = fabs((double)(a) - (double)(b));        \
    double s_ = fabs((double)(b)) > 1.0 ? fabs((double)(b)) : 1.0; \
    if (d_ / s_ > worst) worst = d_ / s_;               \
  } while (0)
    for (size_t i = 0; i < n; i++) {
      TWO_DIFF(y2[i], y1[i]);
      TWO_DIFF(dx2[i], dx1[i]);
    }
    for (int ch = 0; ch < c; ch++) {
      TWO_DIFF(dg2[0][ch] + dg2[1][ch], dg1[ch]);
      TWO_DIFF(db2[0][ch] + db2[1][ch], db1[ch]);
      for (int r = 0; r < 2; r++) {
        TWO_DIFF(rm2[r][ch], rm1[ch]);
        TWO_DIFF(rv2[r][ch], rv1[ch]);
      }
    }
#undef TWO_DIFF
    CHECK_MSG(worst < 2e-5, "m %d c %d split %d: largest relative difference %.3g", m, c, split,
              worst);
    free(x), free(dy), free(gamma), free(beta), free(y1), free(dx1), free(dg1), free(db1);
    free(rm1), free(rv1), free(y2), free(dx2);
    for (int r = 0; r < 2; r++) free(dg2[r]), free(db2[r]), free(rm2[r]), free(rv2[r]);
  }
  mpnas_context_free(ctx);
}

static void test_se(void) {
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  if (ctx == NULL) return;
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  /* Odd hw (3x3, 5x5, 7x7), c not a multiple of 8, r small; the last shape is big
   * enough for the ops to split images across threads. */
  const int shapes[][4] = {{2, 9, 13, 5}, {3, 25, 11, 3}, {1, 1, 70, 8}, {4, 49, 203, 12}};
  for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
    se_case s;
    s.eng = ctx->engine;
    s.ws = &ws;
    s.n = shapes[t][0], s.hw = shapes[t][1], s.c = shapes[t][2], s.r = shapes[t][3];
    int n = s.n, hw = s.hw, c = s.c, r = s.r;
    size_t total = (size_t)n * hw * c, nsaved = mpnas__se_saved_floats(n, c, r);
    s.x = fvec_fill(total, 60 + t, -2, 3);
    /* Scales keep fc2's output mostly inside hsigmoid's (-3, 3) ramp. */
    float s1 = 2.5f / sqrtf((float)c), s2 = 3.0f / sqrtf((float)r);
    s.w1 = fvec_fill((size_t)c * r, 61 + t, -s1, s1);
    s.b1 = fvec_fill(r, 62 + t, -0.3f, 0.5f);
    s.w2 = fvec_fill((size_t)r * c, 63 + t, -s2, s2);
    s.b2 = fvec_fill(c, 64 + t, -1, 1);
    const mpnas__se_weights sw = {s.w1, s.b1, s.w2, s.b2};
    s.saved = fvec(nsaved);
    s.y = fvec(total);
    s.probe = fvec_fill(total, 65 + t, -1, 1);

    mpnas__arena_mark m0 = mpnas__arena_get_mark(&ws);
    se_loss(&s);
    double *ref = calloc(total, sizeof(double));
    int relu_on = 0, gate_ramp = 0;
    se_naive(&s, ref, &relu_on, &gate_ramp);
    /* Not a vacuous check: enough ReLUs pass and enough gates sit on the ramp. */
    CHECK_MSG(relu_on * 4 >= n * r && gate_ramp * 2 >= n * c, "relu on %d/%d, ramp %d/%d",
              relu_on, n * r, gate_ramp, n * c);
    int bad = 0;
    for (size_t i = 0; i < total; i++) bad += !(fabs(s.y[i] - ref[i]) <= 1e-5 * (1 + fabs(ref[i])));
    CHECK_MSG(bad == 0, "se forward: %d mismatches with the naive version", bad);

    float *dx = fvec(total), *dw1 = fvec((size_t)c * r), *db1 = fvec(r);
    float *dw2 = fvec((size_t)r * c), *db2 = fvec(c);
    /* Weight gradients accumulate: start from 0.5 and take it off afterwards. */
    for (size_t i = 0; i < (size_t)c * r; i++) dw1[i] = dw2[i] = 0.5f;
    for (int i = 0; i < r; i++) db1[i] = 0.5f;
    for (int i = 0; i < c; i++) db2[i] = 0.5f;
    CHECK_EQ_INT(mpnas__se_bwd(&s.eng, &ws, n, hw, c, r, s.x, &sw, s.saved, s.probe, dx,
                               &(mpnas__se_grads){dw1, db1, dw2, db2}),
                 MPNAS_OK);
    mpnas__arena_mark m1 = mpnas__arena_get_mark(&ws);
    CHECK(m0.cur == m1.cur && m0.used == m1.used); /* scratch returned */
    for (size_t i = 0; i < (size_t)c * r; i++) dw1[i] -= 0.5f, dw2[i] -= 0.5f;
    for (int i = 0; i < r; i++) db1[i] -= 0.5f;
    for (int i = 0; i < c; i++) db2[i] -= 0.5f;

    /* dx == NULL gives the same weight gradients. */
    float *e1 = fvec((size_t)c * r), *e2 = fvec((size_t)r * c), *eb1 = fvec(r), *eb2 = fvec(c);
    CHECK_EQ_INT(mpnas__se_bwd(&s.eng, &ws, n, hw, c, r, s.x, &sw, s.saved, s.probe, NULL,
                               &(mpnas__se_grads){e1, eb1, e2, eb2}),
                 MPNAS_OK);
    for (size_t i = 0; i < (size_t)c * r; i++) {
      CHECK_NEAR(e1[i], dw1[i], 1e-6 * (1 + fabs(dw1[i])));
      CHECK_NEAR(e2[i], dw2[i], 1e-6 * (1 + fabs(dw2[i])));
    }

    /* On the big shape, x, w1 and b1 reach every output of an image (~10^4 re-rounded
     * floats), so they need a larger step to keep that noise / 2h below atol; w2 and
     * b2 reach one channel only and keep the small step, which rarely crosses a kink. */
    double hg = total > 10000 ? 1e-2 : 1e-3, h = 1e-3, atol = 1e-3, rtol = 1e-2;
    size_t most = 300; /* a strided sample on the big shape */
    CHECK_EQ_INT(gc_check("se.x", s.x, total, dx, se_loss, &s, hg, atol, rtol, most), 0);
    CHECK_EQ_INT(gc_check("se.w1", s.w1, (size_t)c * r, dw1, se_loss, &s, hg, atol, rtol, most), 0);
    CHECK_EQ_INT(gc_check("se.b1", s.b1, r, db1, se_loss, &s, hg, atol, rtol, most), 0);
    CHECK_EQ_INT(gc_check("se.w2", s.w2, (size_t)r * c, dw2, se_loss, &s, h, atol, rtol, most), 0);
    CHECK_EQ_INT(gc_check("se.b2", s.b2, c, db2, se_loss, &s, h, atol, rtol, most), 0);

    /* The thread count does not change the result (per-image work, no reductions). */
    se_case s3 = s;
    s3.eng.threads = 3;
    float *y3 = fvec(total), *dx3 = fvec(total), *f1 = fvec((size_t)c * r), *f2 = fvec((size_t)r * c);
    float *saved3 = fvec(nsaved), *fb1 = fvec(r), *fb2 = fvec(c);
    s3.saved = saved3;
    s3.y = y3;
    se_loss(&s);
    se_loss(&s3);
    CHECK(memcmp(s.y, y3, sizeof(float) * total) == 0);
    memset(e1, 0, sizeof(float) * (size_t)c * r);
    memset(e2, 0, sizeof(float) * (size_t)c * r);
    memset(eb1, 0, sizeof(float) * (size_t)r);
    memset(eb2, 0, sizeof(float) * (size_t)c);
    mpnas__se_bwd(&s.eng, &ws, n, hw, c, r, s.x, &sw, s.saved, s.probe, dx,
                  &(mpnas__se_grads){e1, eb1, e2, eb2});
    mpnas__se_bwd(&s3.eng, &ws, n, hw, c, r, s.x, &sw, saved3, s.probe, dx3,
                  &(mpnas__se_grads){f1, fb1, f2, fb2});
    CHECK(memcmp(dx, dx3, sizeof(float) * total) == 0);
    CHECK(memcmp(e1, f1, sizeof(float) * (size_t)c * r) == 0);
    CHECK(memcmp(e2, f2, sizeof(float) * (size_t)c * r) == 0);
    CHECK(memcmp(eb1, fb1, sizeof(float) * (size_t)r) == 0);
    CHECK(memcmp(eb2, fb2, sizeof(float) * (size_t)c) == 0);

    free(ref), free(dx), free(dw1), free(db1), free(dw2), free(db2), free(e1), free(e2);
    free(eb1), free(eb2), free(y3), free(dx3), free(f1), free(f2), free(saved3), free(fb1), free(fb2);
    free(s.x), free(s.w1), free(s.b1), free(s.w2), free(s.b2), free(s.saved), free(s.y), free(s.probe);
  }
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

/* ---- Loss ------------------------------------------------------------------------------- */

static void test_xent_hand(void) {
  /* Row 0: logits [1,2,3], label 2, eps 0.1, K 3: target t = [1/30, 1/30, 0.9 + 1/30].
   *   lse = 3 + log(e^-2 + e^-1 + 1) = 3.4076059644; loss = lse - t.l = 3.4076059644 - 2.9
   *   = 0.5076059644; softmax p = [0.0900305732, 0.2447284711, 0.6652409558], grad p - t.
   * Row 1: logits [0,1,0], label 0 (wrong argmax): t = [0.9333, 0.0333, 0.0333],
   *   lse = 1 + log(2 e^-1 + 1) = 1.5514447139, t.l = 1/30: loss 1.5181113806;
   *   p = [0.2119416, 0.5761169, 0.2119416], grad p - t.
   * Mean loss 1.0128586725; gradients of the mean are halved. */
  const float logits[6] = {1, 2, 3, 0, 1, 0};
  const int32_t labels[2] = {2, 0};
  float d[6];
  int correct = -1;
  float loss = mpnas__softmax_xent(2, 3, logits, labels, 0.1f, d, &correct);
  CHECK_NEAR(loss, 1.0128586725, 1e-6);
  CHECK_EQ_INT(correct, 1);
  const double want[6] = {0.0283486199, 0.1056975689, -0.1340461888,
                          -0.3606958879, 0.2713917757, 0.0893041121};
  for (int i = 0; i < 6; i++) CHECK_NEAR(d[i], want[i], 1e-6);
  /* Single row alone. */
  loss = mpnas__softmax_xent(1, 3, logits, labels, 0.1f, NULL, NULL);
  CHECK_NEAR(loss, 0.5076059644, 1e-6);
  /* No smoothing: -log p[label] = lse - 3 = 0.4076059644. */
  loss = mpnas__softmax_xent(1, 3, logits, labels, 0.0f, d, NULL);
  CHECK_NEAR(loss, 0.4076059644, 1e-6);
  CHECK_NEAR(d[2], 0.6652409558 - 1.0, 1e-6);
}

static void test_xent_stable(void) {
  /* Shifting logits by 1000 changes nothing. */
  const float big[3] = {1001, 1002, 1003};
  const int32_t label = 2;
  float d[3];
  float loss = mpnas__softmax_xent(1, 3, big, &label, 0.1f, d, NULL);
  CHECK_NEAR(loss, 0.5076059644, 1e-5);
  CHECK_NEAR(d[2], -0.2680923776, 1e-6);
  /* exp(200) overflows float: z = l - max keeps it finite. logits [0, 200, -200],
   * label 0, eps 0.1: loss = sum t_k (lse - l_k) ~ 0.9333*200 + 0.0333*0 + 0.0333*400
   * = 200; p ~ [0, 1, 0], grad ~ [-0.9333, 0.9667, -0.0333]. */
  const float wide[3] = {0, 200, -200};
  const int32_t l0 = 0;
  int correct = -1;
  loss = mpnas__softmax_xent(1, 3, wide, &l0, 0.1f, d, &correct);
  CHECK(isfinite(loss));
  CHECK_NEAR(loss, 200.0, 1e-3);
  CHECK_NEAR(d[0], -(0.9 + 0.1 / 3), 1e-6);
  CHECK_NEAR(d[1], 1.0 - 0.1 / 3, 1e-6);
  CHECK_NEAR(d[2], -0.1 / 3, 1e-6);
  CHECK_EQ_INT(correct, 0);
}

typedef struct xent_case {
  int m, k;
  float smoothing;
  float *logits;
  int32_t *labels;
} xent_case;

static double xent_loss(void *user) {
  xent_case *x = user;
  return mpnas__softmax_xent(x->m, x->k, x->logits, x->labels, x->smoothing, NULL, NULL);
}

static void test_xent_gradcheck(void) {
  const float smooth[2] = {0.0f, 0.1f};
  const int ks[2] = {7, 10};
  for (int t = 0; t < 2; t++) {
    int m = 5, k = ks[t];
    xent_case x = {m, k, smooth[t], fvec_fill((size_t)m * k, 70 + t, -3, 3), NULL};
    x.labels = calloc((size_t)m, sizeof(int32_t));
    for (int i = 0; i < m; i++) x.labels[i] = (int32_t)((i * 3 + t) % k);
    float *d = fvec((size_t)m * k);
    mpnas__softmax_xent(m, k, x.logits, x.labels, x.smoothing, d, NULL);
    /* Each row's gradient sums to zero (softmax and target both sum to one). */
    for (int i = 0; i < m; i++) {
      double s = 0;
      for (int j = 0; j < k; j++) s += d[(size_t)i * k + j];
      CHECK_NEAR(s, 0.0, 1e-6);
    }
    CHECK_EQ_INT(gc_check("xent.logits", x.logits, (size_t)m * k, d, xent_loss, &x, 1e-2, 1e-4, 1e-2, 0), 0);
    free(x.logits), free(x.labels), free(d);
  }
}

int main(void) {
  static const int isas[] = {MPNAS_ISA_SCALAR, MPNAS_ISA_AVX2, MPNAS_ISA_NEON};
  for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
    const mpnas__kernels *k = mpnas__isa_available(isas[i]) ? mpnas__kernels_for(isas[i]) : NULL;
    if (k == NULL) continue;
    ENG_STORAGE.k = k;
    ENG_STORAGE.threads = 1;
    printf("# batch norm and activations on the %s kernels\n", k->name);
    RUN(test_bn_forward_hand);
    RUN(test_bn_running_stats);
    RUN(test_bn_large_m_accuracy);
    RUN(test_bn_infer_equals_fold);
    RUN(test_bn_gradcheck);
    RUN(test_bn_over_workers);
    RUN(test_act_values);
    RUN(test_act_matches_reference);
    RUN(test_act_gradcheck);
  }
  RUN(test_add);
  RUN(test_chscale);
  RUN(test_gap);
  RUN(test_se);
  RUN(test_xent_hand);
  RUN(test_xent_stable);
  RUN(test_xent_gradcheck);
  return check_finish();
}
