/* test_block.c - the network blocks (src/net/block.c): gradients of a whole inverted
 * bottleneck and conv unit against finite differences, and the fused inference path
 * against the training path when the running statistics equal the batch statistics. */
#include <string.h>

#include "check.h"
#include "common/common.h"
#include "gradcheck.h"
#include "net/block.h"
#include "search/supernet.h"

typedef struct {
  mpnas_context *ctx;
  mpnas__params params;
  mpnas__ib_geom g;
  mpnas__ib_offsets o;
  mpnas__ib_weights w;
  mpnas__ib_grads gr;
  mpnas__arena ws;
  int n, h, wd;
  float *x, *probe;
  size_t out_count;
} ib_case;

static double ib_loss(void *user) {
  ib_case *c = user;
  mpnas__arena_mark mark = mpnas__arena_get_mark(&c->ws);
  mpnas__ib_tape t;
  mpnas_status st = mpnas__ib_fwd_train(&c->ctx->engine, &c->ws, &c->g, &c->w, c->n, c->h,
                                        c->wd, c->x, &t);
  double l = st == MPNAS_OK ? gc_dot(t.y, c->probe, c->out_count) : NAN;
  mpnas__arena_release(&c->ws, mark);
  return l;
}

static void ib_setup_isa(ib_case *c, int isa, int threads, int n, int h, int w, int cin,
                         int cout, int e, int k, int stride, int act, int se) {
  memset(c, 0, sizeof *c);
  CHECK_EQ_INT(mpnas_context_create(&c->ctx), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_int(c->ctx, MPNAS_CONTEXT_ISA, isa), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_int(c->ctx, MPNAS_CONTEXT_THREADS, threads), MPNAS_OK);
  mpnas__ib_geom_init(&c->g, cin, cout, e, k, stride, act, se);
  mpnas__params_init(&c->params, c->ctx);
  CHECK(mpnas__ib_declare(&c->params, &c->g, 0, &c->o));
  CHECK_EQ_INT(mpnas__params_alloc(&c->params), MPNAS_OK);
  mpnas__rng rng;
  mpnas__rng_seed(&rng, 7, 1);
  mpnas__params_init_values(&c->params, &rng);
  /* Non-trivial BN affine so their gradients are exercised. */
  for (size_t i = 0; i < c->params.total; i++)
    if (c->params.w[i] == 1.0f) c->params.w[i] = 0.8f + 0.05f * (float)(i % 7);
  mpnas__ib_bind(&c->params, &c->g, &c->o, &c->w, &c->gr);
  mpnas__arena_init(&c->ws, c->ctx);
  c->n = n;
  c->h = h;
  c->wd = w;
  size_t in_count = (size_t)n * h * w * cin;
  c->out_count = (size_t)n * mpnas__out_size(h, stride) * mpnas__out_size(w, stride) * cout;
  c->x = malloc(sizeof(float) * in_count);
  c->probe = malloc(sizeof(float) * c->out_count);
  gc_fill(c->x, in_count, 11, -1.0f, 1.0f);
  gc_fill(c->probe, c->out_count, 12, -1.0f, 1.0f);
}

static void ib_setup(ib_case *c, int n, int h, int w, int cin, int cout, int e, int k,
                     int stride, int act, int se) {
  ib_setup_isa(c, MPNAS_ISA_SCALAR, 1, n, h, w, cin, cout, e, k, stride, act, se);
}

static void ib_teardown(ib_case *c) {
  mpnas__arena_destroy(&c->ws);
  mpnas__params_destroy(&c->params);
  mpnas_context_free(c->ctx);
  free(c->x);
  free(c->probe);
}

static void check_ib_gradients(int n, int h, int w, int cin, int cout, int e, int k,
                               int stride, int act, int se) {
  ib_case c;
  ib_setup(&c, n, h, w, cin, cout, e, k, stride, act, se);
  mpnas__ib_tape t;
  CHECK_EQ_INT(mpnas__ib_fwd_train(&c.ctx->engine, &c.ws, &c.g, &c.w, n, h, w, c.x, &t),
               MPNAS_OK);
  size_t in_count = (size_t)n * h * w * cin;
  float *dx = malloc(sizeof(float) * in_count);
  mpnas__params_zero_grad(&c.params);
  CHECK_EQ_INT(mpnas__ib_bwd(&c.ctx->engine, &c.ws, &c.g, &c.w, &t, c.probe, dx, &c.gr),
               MPNAS_OK);
  /* Smooth activations keep central differences clean; a kink crossed by the 1e-2
   * step (relu in SE) can cost a few entries, hence the small allowance. */
  int bad = gc_check("x", c.x, in_count, dx, ib_loss, &c, 1e-2, 2e-3, 2e-2, 200);
  float *gcopy = malloc(sizeof(float) * c.params.total);
  memcpy(gcopy, c.params.g, sizeof(float) * c.params.total);
  bad += gc_check("params", c.params.w, c.params.total, gcopy, ib_loss, &c, 1e-2, 2e-3, 2e-2,
                  400);
  CHECK_MSG(bad <= (se ? 3 : 0), "%d gradient mismatches (cin %d cout %d e %d k %d s %d se %d)",
            bad, cin, cout, e, k, stride, se);
  free(gcopy);
  free(dx);
  ib_teardown(&c);
}

static void test_ib_gradients(void) {
  check_ib_gradients(2, 5, 5, 4, 4, 3, 3, 1, MPNAS__ACT_SIGMOID, 0);  /* residual */
  check_ib_gradients(2, 5, 4, 3, 5, 2, 5, 2, MPNAS__ACT_SIGMOID, 0);  /* stride 2 */
  check_ib_gradients(3, 3, 3, 5, 5, 1, 3, 1, MPNAS__ACT_SIGMOID, 0);  /* no expand */
  check_ib_gradients(2, 4, 3, 3, 3, 3, 3, 1, MPNAS__ACT_SIGMOID, 1);  /* SE */
  check_ib_gradients(2, 3, 3, 4, 6, 6, 7, 2, MPNAS__ACT_HSWISH, 0);   /* k7, hswish */
}

static void test_ib_infer_matches_train(void) {
  /* With running statistics equal to the batch statistics, the fused inference path
   * must give the training path's output. */
  ib_case c;
  ib_setup(&c, 3, 6, 5, 8, 8, 3, 5, 1, MPNAS__ACT_HSWISH, 1);
  mpnas__ib_tape t;
  CHECK_EQ_INT(mpnas__ib_fwd_train(&c.ctx->engine, &c.ws, &c.g, &c.w, c.n, c.h, c.wd, c.x, &t),
               MPNAS_OK);
  int cm = c.g.cmid, co = c.g.cout;
  float *sc1 = malloc(sizeof(float) * cm), *sh1 = malloc(sizeof(float) * cm);
  float *sc2 = malloc(sizeof(float) * cm), *sh2 = malloc(sizeof(float) * cm);
  float *sc3 = malloc(sizeof(float) * co), *sh3 = malloc(sizeof(float) * co);
  float *var = malloc(sizeof(float) * (cm > co ? cm : co));
  /* invstd = 1/sqrt(var + eps)  =>  var = 1/invstd^2 - eps */
#define FOLD(C, mean, invstd, bn, sc, sh)                                              \
  for (int i = 0; i < (C); i++) var[i] = 1.0f / ((invstd)[i] * (invstd)[i]) - MPNAS__BN_EPS; \
  mpnas__bn_fold((C), (bn).gamma, (bn).beta, (mean), var, MPNAS__BN_EPS, (sc), (sh));
  FOLD(cm, t.e_mean, t.e_invstd, c.w.bn1, sc1, sh1);
  FOLD(cm, t.d_mean, t.d_invstd, c.w.bn2, sc2, sh2);
  FOLD(co, t.p_mean, t.p_invstd, c.w.bn3, sc3, sh3);
#undef FOLD
  mpnas__ib_infer inf = {c.w.exp_w, c.w.dw_w, c.w.proj_w, c.w.se_w1, c.w.se_b1, c.w.se_w2,
                         c.w.se_b2, {sc1, sh1}, {sc2, sh2}, {sc3, sh3}, NULL, NULL};
  float *y = malloc(sizeof(float) * c.out_count);
  CHECK_EQ_INT(mpnas__ib_fwd_infer(&c.ctx->engine, &c.ws, &c.g, &inf, c.n, c.h, c.wd, c.x, y),
               MPNAS_OK);
  double maxdiff = 0;
  for (size_t i = 0; i < c.out_count; i++) {
    double d = fabs((double)y[i] - t.y[i]);
    if (d > maxdiff) maxdiff = d;
  }
  CHECK_MSG(maxdiff < 2e-4, "infer vs train max difference %g", maxdiff);
  /* The pointwise weights packed once (as predictors run them) give the same bits as
   * packing per call. */
  const mpnas__engine *eng = &c.ctx->engine;
  float *pe = malloc(sizeof(float) * mpnas__pw_packed_floats(eng, c.g.cin, cm));
  float *pp = malloc(sizeof(float) * mpnas__pw_packed_floats(eng, cm, co));
  float *y2 = malloc(sizeof(float) * c.out_count);
  mpnas__pw_pack(eng, c.g.cin, cm, c.w.exp_w, pe);
  mpnas__pw_pack(eng, cm, co, c.w.proj_w, pp);
  inf.exp_packed = pe;
  inf.proj_packed = pp;
  CHECK_EQ_INT(mpnas__ib_fwd_infer(eng, &c.ws, &c.g, &inf, c.n, c.h, c.wd, c.x, y2), MPNAS_OK);
  CHECK(memcmp(y, y2, sizeof(float) * c.out_count) == 0);
  free(pe); free(pp); free(y2);
  free(sc1); free(sh1); free(sc2); free(sh2); free(sc3); free(sh3); free(var); free(y);
  ib_teardown(&c);
}

/* The training forward as it was before the statistics moved into the conv passes:
 * each conv's output, then mpnas__bn_act_fwd_train over it. y [m_out][cout]. */
static void ib_fwd_unfused(const mpnas__engine *eng, mpnas__arena *ws, const mpnas__ib_geom *g,
                           const mpnas__ib_weights *p, int n, int h, int w, const float *x,
                           float *y) {
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  int ho = mpnas__out_size(h, g->stride), wo = mpnas__out_size(w, g->stride);
  int m_in = n * h * w, m_out = n * ho * wo, cm = g->cmid;
  float *e = mpnas__arena_floats(ws, (size_t)m_in * cm);
  float *d = mpnas__arena_floats(ws, (size_t)m_out * cm);
  float *s = mpnas__arena_floats(ws, (size_t)m_out * cm);
  float *saved = mpnas__arena_floats(ws, mpnas__se_saved_floats(n, cm, g->se ? g->se : 1));
  float *mean = mpnas__arena_floats(ws, (size_t)(cm > g->cout ? cm : g->cout));
  float *inv = mpnas__arena_floats(ws, (size_t)(cm > g->cout ? cm : g->cout));
  CHECK(e && d && s && saved && mean && inv);
  const float *dw_in = x;
  if (g->expand) {
    CHECK_EQ_INT(mpnas__pw_fwd(eng, ws, m_in, g->cin, cm, x, p->exp_w, NULL, NULL, 0, NULL, e),
                 MPNAS_OK);
    mpnas__bn_act_fwd_train(eng, m_in, cm, e,
                            &(mpnas__bn_train){p->bn1.gamma, p->bn1.beta, MPNAS__BN_EPS,
                                               MPNAS__BN_MOMENTUM, NULL, NULL, mean, inv},
                            g->act, NULL, e);
    dw_in = e;
  }
  CHECK_EQ_INT(mpnas__dw_fwd(eng, n, h, w, cm, g->k, g->stride, dw_in, p->dw_w, NULL, NULL, 0,
                             d), MPNAS_OK);
  mpnas__bn_act_fwd_train(eng, m_out, cm, d,
                          &(mpnas__bn_train){p->bn2.gamma, p->bn2.beta, MPNAS__BN_EPS,
                                             MPNAS__BN_MOMENTUM, NULL, NULL, mean, inv},
                          g->act, NULL, d);
  const float *proj_in = d;
  if (g->se) {
    mpnas__se_weights se = {p->se_w1, p->se_b1, p->se_w2, p->se_b2};
    CHECK_EQ_INT(mpnas__se_fwd(eng, ws, n, ho * wo, cm, g->se, d, &se, saved, s), MPNAS_OK);
    proj_in = s;
  }
  CHECK_EQ_INT(mpnas__pw_fwd(eng, ws, m_out, cm, g->cout, proj_in, p->proj_w, NULL, NULL, 0,
                             NULL, y), MPNAS_OK);
  mpnas__bn_fwd_train(eng, m_out, g->cout, y,
                      &(mpnas__bn_train){p->bn3.gamma, p->bn3.beta, MPNAS__BN_EPS,
                                         MPNAS__BN_MOMENTUM, NULL, NULL, mean, inv},
                      y);
  if (g->residual) mpnas__add_fwd((size_t)m_out * g->cout, y, x, y);
  mpnas__arena_release(ws, mark);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (!(d <= m)) m = d; /* NaN propagates */
  }
  return m;
}

/* The evaluation forward (batch statistics, no tape) against the training forward's
 * output: the same arithmetic, so the same bits on the same engine, except where the
 * evaluation takes a large expand's statistics from its input's moments (then within
 * 1e-4); both against the unfused ops up to rounding; and the same bits for 1 and 2
 * threads. */
static void check_ib_eval(int isa, int n, int h, int w, int cin, int cout, int e, int k,
                          int stride, int act, int se) {
  float *first = NULL;
  for (int threads = 1; threads <= 2; threads++) {
    ib_case c;
    ib_setup_isa(&c, isa, threads, n, h, w, cin, cout, e, k, stride, act, se);
    const mpnas__engine *eng = &c.ctx->engine;
    mpnas__ib_tape t;
    CHECK_EQ_INT(mpnas__ib_fwd_train(eng, &c.ws, &c.g, &c.w, n, h, w, c.x, &t), MPNAS_OK);
    float *y = malloc(sizeof(float) * c.out_count), *ref = malloc(sizeof(float) * c.out_count);
    gc_fill(y, c.out_count, 99, -1.0f, 1.0f);
    CHECK_EQ_INT(mpnas__ib_fwd_eval(eng, &c.ws, &c.g, &c.w, n, h, w, c.x, y), MPNAS_OK);
    ib_fwd_unfused(eng, &c.ws, &c.g, &c.w, n, h, w, c.x, ref);
    double d_train = max_abs_diff(y, t.y, c.out_count);
    double d_ref = max_abs_diff(y, ref, c.out_count);
    int moments = e != 1 && mpnas__pw_moments_pay(n * h * w, cin, cin * e);
    CHECK_MSG(moments ? d_train < 1e-4 : d_train == 0.0, "isa %d thr %d eval vs train %g (n %d %dx%d %d->%d e%d k%d s%d se%d)",
              isa, threads, d_train, n, h, w, cin, cout, e, k, stride, se);
    CHECK_MSG(d_ref < 2e-5, "isa %d thr %d eval vs unfused ops %g (n %d %dx%d %d->%d e%d k%d)",
              isa, threads, d_ref, n, h, w, cin, cout, e, k);
    if (threads == 1) {
      first = y;
      y = NULL;
    } else {
      double d_thr = max_abs_diff(y, first, c.out_count);
      CHECK_MSG(d_thr == 0.0, "isa %d: 2 threads vs 1 differ by %g (n %d %dx%d %d->%d e%d k%d)",
                isa, d_thr, n, h, w, cin, cout, e, k);
    }
    free(y);
    free(ref);
    ib_teardown(&c);
  }
  free(first);
}

static void test_ib_eval_matches_train(void) {
  int isas[2] = {MPNAS_ISA_SCALAR, MPNAS_ISA_AUTO};
  for (int i = 0; i < 2; i++) {
    int isa = isas[i];
    check_ib_eval(isa, 3, 6, 5, 8, 8, 3, 5, 1, MPNAS__ACT_HSWISH, 1);   /* residual, SE */
    check_ib_eval(isa, 4, 9, 7, 5, 6, 6, 3, 2, MPNAS__ACT_RELU6, 0);    /* stride 2 */
    check_ib_eval(isa, 2, 5, 5, 12, 12, 1, 7, 1, MPNAS__ACT_RELU, 0);   /* no expand */
    check_ib_eval(isa, 4, 32, 32, 8, 16, 32, 3, 2, MPNAS__ACT_RELU6, 0); /* moments */
    check_ib_eval(isa, 8, 32, 32, 24, 24, 6, 5, 1, MPNAS__ACT_HSWISH, 0); /* moments */
    /* Many blocks and chunks: the search's first layer at batch 16 (8x8 output: blocks
     * of 4 images), and 12-wide rows (blocks of 21 rows, crossing images). */
    check_ib_eval(isa, 16, 16, 16, 16, 24, 6, 7, 2, MPNAS__ACT_RELU6, 0);
    check_ib_eval(isa, 20, 12, 12, 24, 24, 3, 5, 1, MPNAS__ACT_HSWISH, 0);
    check_ib_eval(isa, 9, 10, 10, 40, 40, 6, 3, 1, MPNAS__ACT_HSWISH, 1);
  }
}

typedef struct {
  mpnas_context *ctx;
  mpnas__conv_geom g;
  mpnas__conv_weights w;
  mpnas__arena ws;
  int n, h, wd;
  float *x, *probe;
  size_t out_count;
} conv_case;

static double conv_loss(void *user) {
  conv_case *c = user;
  mpnas__arena_mark mark = mpnas__arena_get_mark(&c->ws);
  mpnas__conv_tape t;
  mpnas_status st = mpnas__conv_unit_fwd_train(&c->ctx->engine, &c->ws, &c->g, &c->w, c->n,
                                               c->h, c->wd, c->x, &t);
  double l = st == MPNAS_OK ? gc_dot(t.y, c->probe, c->out_count) : NAN;
  mpnas__arena_release(&c->ws, mark);
  return l;
}

static void check_conv_unit(int k, int stride) {
  conv_case c;
  memset(&c, 0, sizeof c);
  CHECK_EQ_INT(mpnas_context_create(&c.ctx), MPNAS_OK);
  c.g = (mpnas__conv_geom){3, 5, k, stride, MPNAS__ACT_SIGMOID};
  mpnas__params params;
  mpnas__params_init(&params, c.ctx);
  mpnas__conv_offsets o;
  CHECK(mpnas__conv_declare(&params, &c.g, 1, &o));
  CHECK_EQ_INT(mpnas__params_alloc(&params), MPNAS_OK);
  mpnas__rng rng;
  mpnas__rng_seed(&rng, 3, 3);
  mpnas__params_init_values(&params, &rng);
  mpnas__conv_grads gr;
  mpnas__conv_bind(&params, &o, &c.w, &gr);
  mpnas__arena_init(&c.ws, c.ctx);
  c.n = 2;
  c.h = 5;
  c.wd = 6;
  size_t in_count = (size_t)c.n * c.h * c.wd * c.g.cin;
  c.out_count = (size_t)c.n * mpnas__out_size(c.h, stride) * mpnas__out_size(c.wd, stride) * 5;
  c.x = malloc(sizeof(float) * in_count);
  c.probe = malloc(sizeof(float) * c.out_count);
  gc_fill(c.x, in_count, 5, -1, 1);
  gc_fill(c.probe, c.out_count, 6, -1, 1);
  mpnas__conv_tape t;
  CHECK_EQ_INT(mpnas__conv_unit_fwd_train(&c.ctx->engine, &c.ws, &c.g, &c.w, c.n, c.h, c.wd,
                                          c.x, &t), MPNAS_OK);
  /* Running statistics moved from (0, 1) toward the batch's. */
  CHECK(c.w.bn.mean[0] != 0.0f && c.w.bn.var[0] != 1.0f);
  float *dx = malloc(sizeof(float) * in_count);
  mpnas__params_zero_grad(&params);
  CHECK_EQ_INT(mpnas__conv_unit_bwd(&c.ctx->engine, &c.ws, &c.g, &c.w, &t, c.probe, dx, &gr),
               MPNAS_OK);
  int bad = gc_check("x", c.x, in_count, dx, conv_loss, &c, 1e-2, 2e-3, 2e-2, 200);
  float *gcopy = malloc(sizeof(float) * params.total);
  memcpy(gcopy, params.g, sizeof(float) * params.total);
  bad += gc_check("params", params.w, params.total, gcopy, conv_loss, &c, 1e-2, 2e-3, 2e-2, 300);
  CHECK_MSG(bad == 0, "%d conv unit gradient mismatches (k %d stride %d)", bad, k, stride);
  free(gcopy); free(dx); free(c.x); free(c.probe);
  mpnas__arena_destroy(&c.ws);
  mpnas__params_destroy(&params);
  mpnas_context_free(c.ctx);
}

static void test_conv_unit_gradients(void) {
  check_conv_unit(3, 1);
  check_conv_unit(3, 2);
  check_conv_unit(1, 1);
}

/* The conv unit's evaluation forward: the training forward's output, running
 * statistics untouched. */
static void check_conv_eval(int isa, int threads, int k, int stride, int n, int h, int w) {
  mpnas_context *ctx;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_ISA, isa), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, threads), MPNAS_OK);
  mpnas__conv_geom g = {3, 16, k, stride, MPNAS__ACT_RELU6};
  if (k == 1) g.cin = 24;
  mpnas__params params;
  mpnas__params_init(&params, ctx);
  mpnas__conv_offsets o;
  CHECK(mpnas__conv_declare(&params, &g, 1, &o));
  CHECK_EQ_INT(mpnas__params_alloc(&params), MPNAS_OK);
  mpnas__rng rng;
  mpnas__rng_seed(&rng, 3, 3);
  mpnas__params_init_values(&params, &rng);
  mpnas__conv_weights cw;
  mpnas__conv_bind(&params, &o, &cw, NULL);
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  size_t in_count = (size_t)n * h * w * g.cin;
  size_t out_count = (size_t)n * mpnas__out_size(h, stride) * mpnas__out_size(w, stride) * g.cout;
  float *x = malloc(sizeof(float) * in_count), *y = malloc(sizeof(float) * out_count);
  gc_fill(x, in_count, 5, -1, 1);
  float rm0 = cw.bn.mean[0], rv0 = cw.bn.var[0];
  CHECK_EQ_INT(mpnas__conv_unit_fwd_eval(&ctx->engine, &ws, &g, &cw, n, h, w, x, y), MPNAS_OK);
  CHECK(cw.bn.mean[0] == rm0 && cw.bn.var[0] == rv0);
  mpnas__conv_tape t;
  CHECK_EQ_INT(mpnas__conv_unit_fwd_train(&ctx->engine, &ws, &g, &cw, n, h, w, x, &t), MPNAS_OK);
  CHECK(cw.bn.mean[0] != rm0 && cw.bn.var[0] != rv0);
  double d = max_abs_diff(y, t.y, out_count);
  CHECK_MSG(d == 0.0, "conv unit eval vs train %g (isa %d thr %d k %d s %d n %d)", d, isa,
            threads, k, stride, n);
  free(x);
  free(y);
  mpnas__arena_destroy(&ws);
  mpnas__params_destroy(&params);
  mpnas_context_free(ctx);
}

static void test_conv_unit_eval(void) {
  for (int isa = 0; isa < 2; isa++)
    for (int threads = 1; threads <= 2; threads++) {
      int which = isa ? MPNAS_ISA_AUTO : MPNAS_ISA_SCALAR;
      check_conv_eval(which, threads, 3, 1, 4, 7, 9);
      check_conv_eval(which, threads, 3, 2, 3, 8, 8);
      check_conv_eval(which, threads, 1, 1, 40, 4, 4);
    }
}

/* ---- The supernet's evaluation path ---------------------------------------------------
 * mpnas__supernet_run(train = 0) evaluates with batch statistics on the tape-free
 * forward above; mpnas__supernet_validate runs every domain's validation batch, whole
 * domains on parallel threads. Both must reproduce the training forward exactly. */

/* A small space (12x12 input, SE as a choice, 5 layers) with `nd` domains of random
 * images, prepared, on `threads` threads. */
static mpnas_supernet *eval_supernet(mpnas_context **ctx, mpnas_space **sp, int threads,
                                     int nd) {
  CHECK_EQ_INT(mpnas_context_create(ctx), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_int(*ctx, MPNAS_CONTEXT_THREADS, threads), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_int(*ctx, MPNAS_CONTEXT_SEED, 5), MPNAS_OK);
  CHECK_EQ_INT(mpnas_space_create(*ctx, MPNAS_PRESET_EMPTY, sp), MPNAS_OK);
  CHECK_EQ_INT(mpnas_space_set_int(*sp, MPNAS_SPACE_INPUT_HEIGHT, 12), MPNAS_OK);
  CHECK_EQ_INT(mpnas_space_set_int(*sp, MPNAS_SPACE_INPUT_WIDTH, 12), MPNAS_OK);
  CHECK_EQ_INT(mpnas_space_set_int(*sp, MPNAS_SPACE_STEM_CHANNELS, 8), MPNAS_OK);
  CHECK_EQ_INT(mpnas_space_set_int(*sp, MPNAS_SPACE_HEAD_CHANNELS, 24), MPNAS_OK);
  CHECK_EQ_INT(mpnas_space_set_int(*sp, MPNAS_SPACE_SE_MODE, MPNAS_SE_CHOICE), MPNAS_OK);
  CHECK_EQ_INT(mpnas_space_add_stage(*sp, 8, 2, 1, MPNAS_ACT_RELU6, 1), MPNAS_OK);
  CHECK_EQ_INT(mpnas_space_add_stage(*sp, 16, 3, 2, MPNAS_ACT_HSWISH, 1), MPNAS_OK);
  const int32_t k[] = {3, 5}, e[] = {2, 4};
  CHECK_EQ_INT(mpnas_space_set_choices(*sp, -1, k, 2, e, 2), MPNAS_OK);
  mpnas_supernet *sn = NULL;
  CHECK_EQ_INT(mpnas_supernet_create(*ctx, *sp, &sn), MPNAS_OK);
  int n = 60;
  uint8_t *img = malloc((size_t)n * 12 * 12 * 3);
  int32_t *lab = malloc(sizeof(int32_t) * (size_t)n);
  uint64_t r = 77;
  for (int d = 0; d < nd; d++) {
    char name[8] = {'d', (char)('0' + d), 0};
    int32_t id;
    for (int i = 0; i < n * 12 * 12 * 3; i++) {
      r = r * 6364136223846793005ULL + 1442695040888963407ULL;
      img[i] = (uint8_t)(r >> 56);
    }
    for (int i = 0; i < n; i++) lab[i] = (int32_t)((img[i * 5] + d) % 3);
    CHECK_EQ_INT(mpnas_supernet_add_domain(sn, name, 3, &id), MPNAS_OK);
    CHECK_EQ_INT(mpnas_supernet_set_data(sn, id, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, img, lab, n),
                 MPNAS_OK);
  }
  free(img);
  free(lab);
  CHECK_EQ_INT(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 37), MPNAS_OK);
  CHECK_EQ_INT(mpnas__supernet_prepare(sn), MPNAS_OK);
  /* Paths: every op of every layer over the domains and calls (zero, SE, gathered and
   * maximal slices), fixed so that both supernets of a comparison use the same. */
  for (int d = 0; d < nd; d++)
    for (int32_t l = 0; l < sn->nlayers; l++)
      sn->domains[d].sampled[l] = (int32_t)((3 * d + 5 * l + 1) % sn->nops[l]);
  return sn;
}

static void free_eval_supernet(mpnas_context *ctx, mpnas_space *sp, mpnas_supernet *sn) {
  mpnas_supernet_free(sn);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

static void test_supernet_eval_matches_train(void) {
  /* The evaluation forward's loss is the training forward's (no label smoothing): the
   * same logits, so the same bits. */
  for (int threads = 1; threads <= 2; threads++) {
    mpnas_context *ctx;
    mpnas_space *sp;
    mpnas_supernet *sn = eval_supernet(&ctx, &sp, threads, 3);
    sn->cfg.label_smoothing = 0.0;
    int32_t batch = sn->cfg.valid_batch;
    size_t per = 12 * 12 * 3;
    float *x = malloc(sizeof(float) * per * (size_t)batch);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)batch);
    for (int round = 0; round < 4; round++)
      for (int d = 0; d < sn->ndomains; d++) {
        if (round > 0)
          for (int32_t l = 0; l < sn->nlayers; l++)
            sn->domains[d].sampled[l] = (sn->domains[d].sampled[l] + round) % sn->nops[l];
        mpnas__supernet_batch(sn, d, 1, batch, x, lab);
        double l0 = -1.0, l1 = -2.0;
        int32_t r0 = -1, r1 = -2;
        CHECK_EQ_INT(mpnas__supernet_run(sn, d, sn->domains[d].sampled, x, lab, batch, 0, 1.0f,
                                         &l0, &r0), MPNAS_OK);
        CHECK_EQ_INT(mpnas__supernet_run(sn, d, sn->domains[d].sampled, x, lab, batch, 1, 1.0f,
                                         &l1, &r1), MPNAS_OK);
        CHECK_MSG(l0 == l1 && r0 == r1, "thr %d domain %d: eval loss %.9g (%d right), train %.9g (%d)",
                  threads, d, l0, (int)r0, l1, (int)r1);
        CHECK_EQ_INT(mpnas__arena_reset(&sn->ws), MPNAS_OK);
      }
    free(x);
    free(lab);
    free_eval_supernet(ctx, sp, sn);
  }
}

static void test_supernet_validate(void) {
  /* mpnas__supernet_validate against batch + run domain by domain, on one thread: the
   * same accuracies, and the data streams left where the domain-by-domain draws leave
   * them. 2 and 3 threads over 3 domains cover the concurrent and the left-over paths. */
  for (int threads = 1; threads <= 3; threads++) {
    mpnas_context *ca, *cb;
    mpnas_space *sa, *sb;
    mpnas_supernet *a = eval_supernet(&ca, &sa, threads, 3);
    mpnas_supernet *b = eval_supernet(&cb, &sb, 1, 3);
    int32_t batch = b->cfg.valid_batch;
    size_t per = 12 * 12 * 3;
    float *x = malloc(sizeof(float) * per * (size_t)batch);
    float *x2 = malloc(sizeof(float) * per * (size_t)batch);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)batch);
    for (int round = 0; round < 3; round++) {
      CHECK_EQ_INT(mpnas__supernet_validate(a), MPNAS_OK);
      for (int d = 0; d < b->ndomains; d++) {
        double loss;
        int32_t right;
        mpnas__supernet_batch(b, d, 1, batch, x, lab);
        CHECK_EQ_INT(mpnas__supernet_run(b, d, b->domains[d].sampled, x, lab, batch, 0, 1.0f,
                                         &loss, &right), MPNAS_OK);
        double acc = (double)right / batch;
        CHECK_MSG(a->domains[d].valid_acc == acc, "threads %d round %d domain %d: %g vs %g",
                  threads, round, d, a->domains[d].valid_acc, acc);
      }
      CHECK_EQ_INT(mpnas__arena_reset(&a->ws), MPNAS_OK);
      CHECK_EQ_INT(mpnas__arena_reset(&b->ws), MPNAS_OK);
    }
    for (int d = 0; d < b->ndomains; d++) {
      mpnas__supernet_batch(a, d, 1, batch, x, lab);
      mpnas__supernet_batch(b, d, 1, batch, x2, lab);
      CHECK(memcmp(x, x2, sizeof(float) * per * (size_t)batch) == 0);
    }
    free(x);
    free(x2);
    free(lab);
    free_eval_supernet(ca, sa, a);
    free_eval_supernet(cb, sb, b);
  }
}

static void test_arena_settles(void) {
  /* After the first step's growth and a reset, repeating the same work allocates
   * nothing more. */
  ib_case c;
  ib_setup(&c, 2, 8, 8, 8, 8, 6, 5, 1, MPNAS__ACT_RELU6, 1);
  size_t after_first = 0;
  for (int step = 0; step < 3; step++) {
    mpnas__ib_tape t;
    CHECK_EQ_INT(mpnas__ib_fwd_train(&c.ctx->engine, &c.ws, &c.g, &c.w, c.n, c.h, c.wd, c.x, &t),
                 MPNAS_OK);
    float *dx = mpnas__arena_floats(&c.ws, (size_t)c.n * c.h * c.wd * 8);
    CHECK(dx != NULL);
    mpnas__params_zero_grad(&c.params);
    CHECK_EQ_INT(mpnas__ib_bwd(&c.ctx->engine, &c.ws, &c.g, &c.w, &t, c.probe, dx, &c.gr),
                 MPNAS_OK);
    CHECK_EQ_INT(mpnas__arena_reset(&c.ws), MPNAS_OK);
    if (step == 0) after_first = c.ws.allocations;
  }
  CHECK_EQ_INT(c.ws.allocations, after_first);
  CHECK_EQ_INT(c.ws.nchunks, 1);
  ib_teardown(&c);
}

int main(void) {
  RUN(test_ib_gradients);
  RUN(test_ib_infer_matches_train);
  RUN(test_ib_eval_matches_train);
  RUN(test_conv_unit_gradients);
  RUN(test_conv_unit_eval);
  RUN(test_arena_settles);
  RUN(test_supernet_eval_matches_train);
  RUN(test_supernet_validate);
  return check_finish();
}
