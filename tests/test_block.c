/* test_block.c - the network blocks (src/net/block.c): gradients of a whole inverted
 * bottleneck and conv unit against finite differences, and the fused inference path
 * against the training path when the running statistics equal the batch statistics. */
#include <string.h>

#include "check.h"
#include "common/common.h"
#include "gradcheck.h"
#include "net/block.h"

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

static void ib_setup(ib_case *c, int n, int h, int w, int cin, int cout, int e, int k,
                     int stride, int act, int se) {
  memset(c, 0, sizeof *c);
  CHECK_EQ_INT(mpnas_context_create(&c->ctx), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_int(c->ctx, MPNAS_CONTEXT_ISA, MPNAS_ISA_SCALAR), MPNAS_OK);
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
                         c.w.se_b2, {sc1, sh1}, {sc2, sh2}, {sc3, sh3}};
  float *y = malloc(sizeof(float) * c.out_count);
  CHECK_EQ_INT(mpnas__ib_fwd_infer(&c.ctx->engine, &c.ws, &c.g, &inf, c.n, c.h, c.wd, c.x, y),
               MPNAS_OK);
  double maxdiff = 0;
  for (size_t i = 0; i < c.out_count; i++) {
    double d = fabs((double)y[i] - t.y[i]);
    if (d > maxdiff) maxdiff = d;
  }
  CHECK_MSG(maxdiff < 2e-4, "infer vs train max difference %g", maxdiff);
  free(sc1); free(sh1); free(sc2); free(sh2); free(sc3); free(sh3); free(var); free(y);
  ib_teardown(&c);
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
  RUN(test_conv_unit_gradients);
  RUN(test_arena_settles);
  return check_finish();
}
