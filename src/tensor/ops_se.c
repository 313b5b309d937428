/* ops_se.c - the per-image channel ops: global average pooling, channel scaling, and
 * squeeze-and-excite built from them and the classifier's fully connected op
 * (ops_conv.c). Contracts are in ops.h.
 *
 * Plain loops over rows with the channel loop innermost and contiguous, so the compiler
 * can vectorise them; their per-channel reductions (pooling, channel-scale gradients)
 * go through blocks of MPNAS__OPS_BLOCK channels with double accumulators on the stack: no
 * scratch allocation, and sums over a million rows stay accurate. */
#include <string.h>

#include "common/common.h"
#include "tensor/ops.h"
#include "tensor/ops_loop.h"

/* acc[j] = sum over rows of a[row][c0 + j] (b == NULL) or a*b, for j < nb. */
static void sum_rows(size_t rows, int c, int c0, int nb, const float *a, const float *b,
                     double *acc) {
  for (int j = 0; j < nb; j++) acc[j] = 0.0;
  if (b == NULL) {
    for (size_t i = 0; i < rows; i++) {
      const float *ra = a + i * (size_t)c + c0;
      for (int j = 0; j < nb; j++) acc[j] += (double)ra[j];
    }
  } else {
    for (size_t i = 0; i < rows; i++) {
      const float *ra = a + i * (size_t)c + c0, *rb = b + i * (size_t)c + c0;
      for (int j = 0; j < nb; j++) acc[j] += (double)ra[j] * (double)rb[j];
    }
  }
}

/* ---- Channel scaling ---------------------------------------------------------------- */

/* One image: y[p][c] = x[p][c] * s[c]. */
static void chscale_image(int hw, int c, const float *x, const float *s, float *y) {
  for (size_t p = 0; p < (size_t)hw; p++) {
    const float *row = x + p * (size_t)c;
    float *out = y + p * (size_t)c;
    for (int ch = 0; ch < c; ch++) out[ch] = row[ch] * s[ch];
  }
}

/* One image: ds[c] = sum_p dy[p][c] * x[p][c] (overwritten). */
static void chscale_ds_image(int hw, int c, const float *x, const float *dy, float *ds) {
  for (int c0 = 0; c0 < c; c0 += MPNAS__OPS_BLOCK) {
    int nb = mpnas__ops_block_len(c, c0);
    double acc[MPNAS__OPS_BLOCK];
    sum_rows((size_t)hw, c, c0, nb, dy, x, acc);
    for (int j = 0; j < nb; j++) ds[c0 + j] = (float)acc[j];
  }
}

void mpnas__chscale_fwd(int n, int hw, int c, const float *x, const float *s, float *y) {
  size_t image = (size_t)hw * c;
  for (int i = 0; i < n; i++)
    chscale_image(hw, c, x + i * image, s + (size_t)i * c, y + i * image);
}

void mpnas__chscale_bwd(int n, int hw, int c, const float *x, const float *s, const float *dy,
                        float *dx, float *ds) {
  size_t image = (size_t)hw * c;
  for (int i = 0; i < n; i++) {
    /* ds first: dx may share memory with dy. */
    if (ds != NULL) chscale_ds_image(hw, c, x + i * image, dy + i * image, ds + (size_t)i * c);
    if (dx != NULL) chscale_image(hw, c, dy + i * image, s + (size_t)i * c, dx + i * image);
  }
}

/* ---- Pooling ---------------------------------------------------------------------------- */

static void gap_image(int hw, int c, const float *x, float *y) {
  for (int c0 = 0; c0 < c; c0 += MPNAS__OPS_BLOCK) {
    int nb = mpnas__ops_block_len(c, c0);
    double acc[MPNAS__OPS_BLOCK];
    sum_rows((size_t)hw, c, c0, nb, x, NULL, acc);
    for (int j = 0; j < nb; j++) y[c0 + j] = hw > 0 ? (float)(acc[j] / hw) : 0.0f;
  }
}

void mpnas__gap_fwd(int n, int hw, int c, const float *x, float *y) {
  size_t image = (size_t)hw * c;
  for (int i = 0; i < n; i++) gap_image(hw, c, x + i * image, y + (size_t)i * c);
}

void mpnas__gap_bwd(int n, int hw, int c, const float *dy, float *dx) {
  if (hw <= 0) return;
  size_t image = (size_t)hw * c;
  float inv = 1.0f / (float)hw;
  for (int i = 0; i < n; i++) {
    const float *g = dy + (size_t)i * c;
    for (size_t p = 0; p < (size_t)hw; p++) {
      float *out = dx + i * image + p * (size_t)c;
      for (int ch = 0; ch < c; ch++) out[ch] = g[ch] * inv;
    }
  }
}

/* ---- Squeeze-and-excite ------------------------------------------------------------------
 * saved = pooled [n][c] | z1 [n][r] (fc1 output) | a1 [n][r] (relu(z1)) | z2 [n][c] (fc2
 * output) | gate [n][c] (hsigmoid(z2)). Keeping a1 and gate costs n*(r + c) floats, far
 * less than one activation map, and spares backward recomputing them. */

size_t mpnas__se_saved_floats(int n, int c, int r) {
  return (size_t)n * (3 * (size_t)c + 2 * (size_t)r);
}

/* Worth a thread team: several images and enough elements to cover the start-up. */
static int se_parallel(const mpnas__engine *eng, int n, size_t image) {
  return eng->threads > 1 && n > 1 && (size_t)n * image >= 32768;
}

/* Offsets of the saved arrays, in floats. */
typedef struct se_layout {
  size_t pooled, z1, a1, z2, gate;
} se_layout;

static se_layout se_offsets(int n, int c, int r) {
  se_layout o;
  size_t nc = (size_t)n * c, nr = (size_t)n * r;
  o.pooled = 0;
  o.z1 = o.pooled + nc;
  o.a1 = o.z1 + nr;
  o.z2 = o.a1 + nr;
  o.gate = o.z2 + nc;
  return o;
}

mpnas_status mpnas__se_fwd(const mpnas__engine *eng, mpnas__arena *ws, int n, int hw, int c,
                           int r, const float *x, const mpnas__se_weights *sw, float *saved,
                           float *y) {
  se_layout o = se_offsets(n, c, r);
  float *pooled = saved + o.pooled, *z1 = saved + o.z1, *a1 = saved + o.a1;
  float *z2 = saved + o.z2, *gate = saved + o.gate;
  size_t image = (size_t)hw * c;
  int par = se_parallel(eng, n, image);
  (void)par; /* unused without OpenMP */
  MPNAS__OPS_OMP_FOR(eng->threads, par)
  for (int i = 0; i < n; i++) gap_image(hw, c, x + i * image, pooled + (size_t)i * c);
  mpnas_status st = mpnas__fc_fwd(eng, ws, n, c, r, pooled, sw->w1, sw->b1, z1);
  if (st != MPNAS_OK) return st;
  mpnas__act_fwd(eng, MPNAS__ACT_RELU, (size_t)n * r, z1, a1);
  st = mpnas__fc_fwd(eng, ws, n, r, c, a1, sw->w2, sw->b2, z2);
  if (st != MPNAS_OK) return st;
  mpnas__act_fwd(eng, MPNAS__ACT_HSIGMOID, (size_t)n * c, z2, gate);
  MPNAS__OPS_OMP_FOR(eng->threads, par)
  for (int i = 0; i < n; i++)
    chscale_image(hw, c, x + i * image, gate + (size_t)i * c, y + i * image);
  return MPNAS_OK;
}

mpnas_status mpnas__se_bwd(const mpnas__engine *eng, mpnas__arena *ws, int n, int hw, int c,
                           int r, const float *x, const mpnas__se_weights *sw,
                           const float *saved, const float *dy, float *dx,
                           const mpnas__se_grads *grad) {
  /* The biases are not read: the saved pre-activations already include them. */
  se_layout o = se_offsets(n, c, r);
  const float *pooled = saved + o.pooled, *z1 = saved + o.z1, *a1 = saved + o.a1;
  const float *z2 = saved + o.z2, *gate = saved + o.gate;
  size_t image = (size_t)hw * c;
  int par = se_parallel(eng, n, image);
  (void)par;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas_status st = MPNAS_E_NO_MEMORY;
  float *dgate = mpnas__arena_floats(ws, (size_t)n * c);
  float *da1 = mpnas__arena_floats(ws, (size_t)n * r);
  float *dpooled = dx != NULL ? mpnas__arena_floats(ws, (size_t)n * c) : NULL;
  if (dgate == NULL || da1 == NULL || (dx != NULL && dpooled == NULL)) goto done;

  /* y = x * gate: d gate = sum_p dy * x, then back through hsigmoid, fc2, relu, fc1. */
  MPNAS__OPS_OMP_FOR(eng->threads, par)
  for (int i = 0; i < n; i++)
    chscale_ds_image(hw, c, x + i * image, dy + i * image, dgate + (size_t)i * c);
  mpnas__act_bwd(eng, MPNAS__ACT_HSIGMOID, (size_t)n * c, z2, dgate, dgate);
  st = mpnas__fc_bwd(eng, ws, n, r, c, a1, sw->w2, dgate, da1, grad->w2, grad->b2);
  if (st != MPNAS_OK) goto done;
  mpnas__act_bwd(eng, MPNAS__ACT_RELU, (size_t)n * r, z1, da1, da1);
  st = mpnas__fc_bwd(eng, ws, n, c, r, pooled, sw->w1, da1, dpooled, grad->w1, grad->b1);
  if (st != MPNAS_OK || dx == NULL) goto done;

  /* dx = dy * gate (the scaling path) + dpooled / hw (the pooling path), in one pass. */
  {
    float inv = hw > 0 ? 1.0f / (float)hw : 0.0f;
    MPNAS__OPS_OMP_FOR(eng->threads, par)
    for (int i = 0; i < n; i++) {
      const float *g = gate + (size_t)i * c, *dp = dpooled + (size_t)i * c;
      for (size_t p = 0; p < (size_t)hw; p++) {
        const float *rd = dy + i * image + p * (size_t)c;
        float *out = dx + i * image + p * (size_t)c;
        for (int ch = 0; ch < c; ch++) out[ch] = rd[ch] * g[ch] + dp[ch] * inv;
      }
    }
  }
done:
  mpnas__arena_release(ws, mark);
  return st;
}
