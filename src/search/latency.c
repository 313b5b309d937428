/* latency.c - the latency cost model: every node (layer, op) of the space timed once on
 * this CPU, batch 1, with the inference kernels the deployed model will use (BN folded,
 * activations fused). A path's latency is the sum of its nodes plus the fixed parts
 * (stem, head, pooling, a classifier). TuNAS had only a learned latency model; timing
 * the real kernels here is cheap (a few hundred small forward passes). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "search/supernet.h"

#define LATENCY_REPEATS 7

static double now_seconds(void) {
  struct timespec ts;
  timespec_get(&ts, TIME_UTC);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of LATENCY_REPEATS timings of one inverted bottleneck (after a warm-up run). */
static mpnas_status time_block(mpnas_supernet *sn, const mpnas__ib_geom *g, int h, int w,
                               double *seconds) {
  mpnas__arena *ws = &sn->ws;
  const mpnas__engine usable = mpnas__engine_usable(&sn->ctx->engine);
  const mpnas__engine *eng = &usable;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  size_t mid = (size_t)g->cmid, big = mid * (size_t)(g->cin > g->cout ? g->cin : g->cout);
  size_t need = (size_t)g->k * g->k * mid + 2 * big + 2 * mid * (size_t)(g->se + 1) + 8 * mid;
  size_t in = (size_t)h * w * g->cin;
  size_t out = (size_t)mpnas__out_size(h, g->stride) * mpnas__out_size(w, g->stride) * g->cout;
  float *weights = mpnas__arena_floats(ws, need), *x = mpnas__arena_floats(ws, in);
  float *y = mpnas__arena_floats(ws, out);
  if (!weights || !x || !y) {
    mpnas__arena_release(ws, mark);
    return MPNAS_E_NO_MEMORY;
  }
  for (size_t i = 0; i < need; i++) weights[i] = 0.01f * (float)(i % 17);
  for (size_t i = 0; i < in; i++) x[i] = 0.1f * (float)(i % 7);
  /* Every tensor reads from the same small weight pool: values do not matter here. */
  const float *scale = weights + need - 2 * mid, *shift = weights;
  /* The pointwise weights packed once, outside the timed runs, as a predictor has them. */
  float *exp_packed = NULL, *proj_packed;
  if (g->expand &&
      (exp_packed = mpnas__arena_floats(ws, mpnas__pw_packed_floats(eng, g->cin, g->cmid))))
    mpnas__pw_pack(eng, g->cin, g->cmid, weights, exp_packed);
  if ((proj_packed = mpnas__arena_floats(ws, mpnas__pw_packed_floats(eng, g->cmid, g->cout))))
    mpnas__pw_pack(eng, g->cmid, g->cout, weights, proj_packed);
  if ((g->expand && exp_packed == NULL) || proj_packed == NULL) {
    mpnas__arena_release(ws, mark);
    return MPNAS_E_NO_MEMORY;
  }
  mpnas__ib_infer p = {weights, weights, weights, weights, weights, weights, weights,
                       {(float *)scale, (float *)shift}, {(float *)scale, (float *)shift},
                       {(float *)scale, (float *)shift}, exp_packed, proj_packed};
  double t[LATENCY_REPEATS];
  mpnas_status st = mpnas__ib_fwd_infer(eng, ws, g, &p, 1, h, w, x, y);
  for (int r = 0; r < LATENCY_REPEATS && st == MPNAS_OK; r++) {
    double t0 = now_seconds();
    st = mpnas__ib_fwd_infer(eng, ws, g, &p, 1, h, w, x, y);
    t[r] = now_seconds() - t0;
  }
  qsort(t, LATENCY_REPEATS, sizeof t[0], cmp_double);
  *seconds = t[LATENCY_REPEATS / 2];
  mpnas__arena_release(ws, mark);
  return st;
}

int mpnas__latency_valid(double seconds) { return seconds >= 0.0 && isfinite(seconds); }

mpnas_status mpnas__supernet_measure_latency(mpnas_supernet *sn) {
  mpnas_status st = MPNAS_OK;
  for (int32_t l = 0; l < sn->nlayers && st == MPNAS_OK; l++) {
    const mpnas__layer *ly = &sn->layers[l];
    for (int32_t o = 0; o < ly->nops && st == MPNAS_OK; o++) {
      mpnas__op op = mpnas__space_op(&sn->space, ly, o);
      double t = 0.0;
      if (op.kernel != 0) {
        mpnas__ib_geom g;
        mpnas__ib_geom_init(&g, ly->cin, ly->cout, op.expansion, op.kernel, ly->stride,
                            ly->act, op.se);
        st = time_block(sn, &g, ly->h, ly->w, &t);
      }
      sn->node_latency[sn->op_offset[l] + o] = t;
    }
  }
  /* The fixed parts, modelled by their MACs at the rate the nodes ran at. */
  double node_time = 0, node_macs = 0;
  for (int32_t l = 0; l < sn->nlayers; l++)
    for (int32_t o = 0; o < sn->layers[l].nops; o++) {
      node_time += sn->node_latency[sn->op_offset[l] + o];
      node_macs += (double)mpnas__op_cost(&sn->layers[l],
                                          mpnas__space_op(&sn->space, &sn->layers[l], o)).macs;
    }
  double fixed_macs = (double)(mpnas__stem_cost(&sn->space).macs + mpnas__head_cost(&sn->space).macs);
  sn->fixed_latency = node_macs > 0 ? fixed_macs * node_time / node_macs : 0.0;
  mpnas__arena_reset(&sn->ws);
  if (st != MPNAS_OK) return mpnas__fail(sn->ctx, st, "measuring node latencies");
  sn->latency_ready = 1;
  return MPNAS_OK;
}
