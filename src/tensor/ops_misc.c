/* ops_misc.c - the non-convolution ops: batch norm, activations, elementwise, global
 * average pooling, squeeze-and-excite and the loss. Contracts are in ops.h.
 *
 * Loops run over rows with the channel loop innermost and contiguous, so the compiler
 * can vectorise them. Per-channel reductions (BN statistics, pooling, channel-scale
 * gradients) go through blocks of MISC_BLOCK channels with double accumulators on the
 * stack: no scratch allocation, and sums over a million rows stay accurate. */
#include <math.h>
#include <string.h>

#include "common/common.h"
#include "tensor/ops.h"

#if defined(_OPENMP)
#define MISC_PRAGMA(x) _Pragma(#x)
/* Split a loop over images across the engine's threads; each image is independent, so
 * results do not depend on the thread count. */
#define MISC_OMP_FOR(threads, cond) \
  MISC_PRAGMA(omp parallel for num_threads(threads) schedule(static) if (cond))
#else
#define MISC_OMP_FOR(threads, cond)
#endif

#define MISC_BLOCK 64

static int block_len(int c, int c0) { return c - c0 < MISC_BLOCK ? c - c0 : MISC_BLOCK; }

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

/* ---- Batch normalisation ------------------------------------------------------------ */

void mpnas__bn_fwd_train(int m, int c, const float *x, const float *gamma, const float *beta,
                         float eps, float momentum, float *running_mean, float *running_var,
                         float *save_mean, float *save_invstd, float *y) {
  if (m <= 0) { /* no rows: no statistics; leave the running ones alone */
    for (int ch = 0; ch < c; ch++) {
      save_mean[ch] = 0.0f;
      save_invstd[ch] = 1.0f;
    }
    return;
  }
  /* Two passes per channel block (mean, then squared deviations), both in double: the
   * one-pass E[x^2] - E[x]^2 loses everything when |mean| >> std. Blocks are disjoint
   * channels, so writing y over x in one block cannot disturb another's statistics. */
  for (int c0 = 0; c0 < c; c0 += MISC_BLOCK) {
    int nb = block_len(c, c0);
    double mean[MISC_BLOCK], ss[MISC_BLOCK];
    float mu[MISC_BLOCK], k[MISC_BLOCK], b[MISC_BLOCK];
    sum_rows((size_t)m, c, c0, nb, x, NULL, mean);
    for (int j = 0; j < nb; j++) {
      mean[j] /= m;
      ss[j] = 0.0;
    }
    for (size_t i = 0; i < (size_t)m; i++) {
      const float *row = x + i * (size_t)c + c0;
      for (int j = 0; j < nb; j++) {
        double d = (double)row[j] - mean[j];
        ss[j] += d * d;
      }
    }
    for (int j = 0; j < nb; j++) {
      int ch = c0 + j;
      double var = ss[j] / m;
      double invstd = 1.0 / sqrt(var + (double)eps);
      mu[j] = (float)mean[j];
      save_mean[ch] = mu[j];
      save_invstd[ch] = (float)invstd;
      k[j] = (float)((gamma != NULL ? (double)gamma[ch] : 1.0) * invstd);
      /* Centre on the float mean (what backward sees) and fold the rounding residual
       * into the shift, so the output mean stays 0 even when |mean| >> std. */
      b[j] = (float)((beta != NULL ? (double)beta[ch] : 0.0) - (mean[j] - (double)mu[j]) * k[j]);
      if (running_mean != NULL)
        running_mean[ch] = (1.0f - momentum) * running_mean[ch] + momentum * (float)mean[j];
      if (running_var != NULL) {
        /* Unbiased for the running estimate; a single row has no spread to report. */
        double unbiased = m > 1 ? ss[j] / (m - 1) : 0.0;
        running_var[ch] = (1.0f - momentum) * running_var[ch] + momentum * (float)unbiased;
      }
    }
    /* (x - mean) * k + shift rather than x * k + shift': no cancellation for large means. */
    for (size_t i = 0; i < (size_t)m; i++) {
      const float *row = x + i * (size_t)c + c0;
      float *out = y + i * (size_t)c + c0;
      for (int j = 0; j < nb; j++) out[j] = (row[j] - mu[j]) * k[j] + b[j];
    }
  }
}

void mpnas__bn_fold(int c, const float *gamma, const float *beta, const float *running_mean,
                    const float *running_var, float eps, float *scale, float *shift) {
  for (int ch = 0; ch < c; ch++) {
    double s = (gamma != NULL ? (double)gamma[ch] : 1.0) / sqrt((double)running_var[ch] + eps);
    scale[ch] = (float)s;
    shift[ch] = (float)((beta != NULL ? (double)beta[ch] : 0.0) - (double)running_mean[ch] * s);
  }
}

void mpnas__bn_fwd_infer(int m, int c, const float *x, const float *gamma, const float *beta,
                         const float *running_mean, const float *running_var, float eps,
                         float *y) {
  /* Exactly the folded form the fused kernels use, so both paths agree. */
  for (int c0 = 0; c0 < c; c0 += MISC_BLOCK) {
    int nb = block_len(c, c0);
    float k[MISC_BLOCK], b[MISC_BLOCK];
    mpnas__bn_fold(nb, gamma != NULL ? gamma + c0 : NULL, beta != NULL ? beta + c0 : NULL,
                   running_mean + c0, running_var + c0, eps, k, b);
    for (size_t i = 0; i < (size_t)m; i++) {
      const float *row = x + i * (size_t)c + c0;
      float *out = y + i * (size_t)c + c0;
      for (int j = 0; j < nb; j++) out[j] = row[j] * k[j] + b[j];
    }
  }
}

void mpnas__bn_bwd(int m, int c, const float *x, const float *gamma, const float *save_mean,
                   const float *save_invstd, const float *dy, float *dx, float *dgamma,
                   float *dbeta) {
  if (m <= 0) return;
  /* With xhat = (x - mean) * invstd, S1 = sum dy, S2 = sum dy * (x - mean):
   *   dbeta = S1, dgamma = invstd * S2,
   *   dx = gamma*invstd * (dy - S1/m - xhat * invstd * S2/m)
   *      = a*dy + b*(x - mean) + d with per-channel a, b, d.
   * save_mean is the batch mean rounded to float; the same pass sums x - save_mean to
   * recover the rounding residual r, and x - mean = (x - save_mean) - r. */
  for (int c0 = 0; c0 < c; c0 += MISC_BLOCK) {
    int nb = block_len(c, c0);
    double s0[MISC_BLOCK], s1[MISC_BLOCK], s2[MISC_BLOCK];
    float mu[MISC_BLOCK], a[MISC_BLOCK], b[MISC_BLOCK], d[MISC_BLOCK];
    for (int j = 0; j < nb; j++) {
      s0[j] = 0.0;
      s1[j] = 0.0;
      s2[j] = 0.0;
      mu[j] = save_mean[c0 + j];
    }
    for (size_t i = 0; i < (size_t)m; i++) {
      const float *rx = x + i * (size_t)c + c0, *rd = dy + i * (size_t)c + c0;
      for (int j = 0; j < nb; j++) {
        double centred = (double)rx[j] - (double)mu[j];
        s0[j] += centred;
        s1[j] += (double)rd[j];
        s2[j] += (double)rd[j] * centred;
      }
    }
    for (int j = 0; j < nb; j++) {
      int ch = c0 + j;
      double invstd = save_invstd[ch];
      double r = s0[j] / m;
      double s2c = s2[j] - r * s1[j];
      if (dbeta != NULL) dbeta[ch] += (float)s1[j];
      if (dgamma != NULL) dgamma[ch] += (float)(s2c * invstd);
      double gi = (gamma != NULL ? (double)gamma[ch] : 1.0) * invstd;
      double bj = -gi * invstd * invstd * s2c / m;
      a[j] = (float)gi;
      b[j] = (float)bj;
      d[j] = (float)(-gi * s1[j] / m - bj * r);
    }
    if (dx == NULL) continue;
    for (size_t i = 0; i < (size_t)m; i++) {
      const float *rx = x + i * (size_t)c + c0, *rd = dy + i * (size_t)c + c0;
      float *out = dx + i * (size_t)c + c0;
      for (int j = 0; j < nb; j++) out[j] = a[j] * rd[j] + b[j] * (rx[j] - mu[j]) + d[j];
    }
  }
}

/* ---- Activations --------------------------------------------------------------------
 * The same formulas as mpnas__act_apply / mpnas__act_grad (act-ref.c), with the switch
 * hoisted out of the loop so each case vectorises. */

static inline float misc_relu6(float v) { return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v); }

void mpnas__act_fwd(int act, size_t count, const float *x, float *y) {
  switch (act) {
    case MPNAS__ACT_RELU:
      for (size_t i = 0; i < count; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
      break;
    case MPNAS__ACT_RELU6:
      for (size_t i = 0; i < count; i++) y[i] = misc_relu6(x[i]);
      break;
    case MPNAS__ACT_HSWISH:
      for (size_t i = 0; i < count; i++) y[i] = x[i] * misc_relu6(x[i] + 3.0f) * (1.0f / 6.0f);
      break;
    case MPNAS__ACT_SIGMOID:
      for (size_t i = 0; i < count; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
      break;
    case MPNAS__ACT_HSIGMOID:
      for (size_t i = 0; i < count; i++) y[i] = misc_relu6(x[i] + 3.0f) * (1.0f / 6.0f);
      break;
    default:
      if (y != x) memmove(y, x, count * sizeof(float));
      break;
  }
}

void mpnas__act_bwd(int act, size_t count, const float *x, const float *dy, float *dx) {
  switch (act) {
    case MPNAS__ACT_RELU:
      for (size_t i = 0; i < count; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
      break;
    case MPNAS__ACT_RELU6:
      for (size_t i = 0; i < count; i++) dx[i] = (x[i] > 0.0f && x[i] < 6.0f) ? dy[i] : 0.0f;
      break;
    case MPNAS__ACT_HSWISH:
      for (size_t i = 0; i < count; i++) {
        float v = x[i];
        float g = v <= -3.0f ? 0.0f : (v >= 3.0f ? 1.0f : (2.0f * v + 3.0f) * (1.0f / 6.0f));
        dx[i] = dy[i] * g;
      }
      break;
    case MPNAS__ACT_SIGMOID:
      for (size_t i = 0; i < count; i++) {
        float s = 1.0f / (1.0f + expf(-x[i]));
        dx[i] = dy[i] * (s * (1.0f - s));
      }
      break;
    case MPNAS__ACT_HSIGMOID:
      for (size_t i = 0; i < count; i++)
        dx[i] = (x[i] > -3.0f && x[i] < 3.0f) ? dy[i] * (1.0f / 6.0f) : 0.0f;
      break;
    default:
      if (dx != dy) memmove(dx, dy, count * sizeof(float));
      break;
  }
}

/* ---- Elementwise ---------------------------------------------------------------------- */

void mpnas__add_fwd(size_t count, const float *a, const float *b, float *y) {
  for (size_t i = 0; i < count; i++) y[i] = a[i] + b[i];
}

void mpnas__add_acc(size_t count, const float *src, float *dst) {
  for (size_t i = 0; i < count; i++) dst[i] += src[i];
}

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
  for (int c0 = 0; c0 < c; c0 += MISC_BLOCK) {
    int nb = block_len(c, c0);
    double acc[MISC_BLOCK];
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
  for (int c0 = 0; c0 < c; c0 += MISC_BLOCK) {
    int nb = block_len(c, c0);
    double acc[MISC_BLOCK];
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
                           int r, const float *x, const float *w1, const float *b1,
                           const float *w2, const float *b2, float *saved, float *y) {
  se_layout o = se_offsets(n, c, r);
  float *pooled = saved + o.pooled, *z1 = saved + o.z1, *a1 = saved + o.a1;
  float *z2 = saved + o.z2, *gate = saved + o.gate;
  size_t image = (size_t)hw * c;
  int par = se_parallel(eng, n, image);
  (void)par; /* unused without OpenMP */
  MISC_OMP_FOR(eng->threads, par)
  for (int i = 0; i < n; i++) gap_image(hw, c, x + i * image, pooled + (size_t)i * c);
  mpnas_status st = mpnas__fc_fwd(eng, ws, n, c, r, pooled, w1, b1, z1);
  if (st != MPNAS_OK) return st;
  mpnas__act_fwd(MPNAS__ACT_RELU, (size_t)n * r, z1, a1);
  st = mpnas__fc_fwd(eng, ws, n, r, c, a1, w2, b2, z2);
  if (st != MPNAS_OK) return st;
  mpnas__act_fwd(MPNAS__ACT_HSIGMOID, (size_t)n * c, z2, gate);
  MISC_OMP_FOR(eng->threads, par)
  for (int i = 0; i < n; i++)
    chscale_image(hw, c, x + i * image, gate + (size_t)i * c, y + i * image);
  return MPNAS_OK;
}

mpnas_status mpnas__se_bwd(const mpnas__engine *eng, mpnas__arena *ws, int n, int hw, int c,
                           int r, const float *x, const float *w1, const float *b1,
                           const float *w2, const float *b2, const float *saved,
                           const float *dy, float *dx, float *dw1, float *db1, float *dw2,
                           float *db2) {
  (void)b1; /* the saved pre-activations already include the biases */
  (void)b2;
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
  MISC_OMP_FOR(eng->threads, par)
  for (int i = 0; i < n; i++)
    chscale_ds_image(hw, c, x + i * image, dy + i * image, dgate + (size_t)i * c);
  mpnas__act_bwd(MPNAS__ACT_HSIGMOID, (size_t)n * c, z2, dgate, dgate);
  st = mpnas__fc_bwd(eng, ws, n, r, c, a1, w2, dgate, da1, dw2, db2);
  if (st != MPNAS_OK) goto done;
  mpnas__act_bwd(MPNAS__ACT_RELU, (size_t)n * r, z1, da1, da1);
  st = mpnas__fc_bwd(eng, ws, n, c, r, pooled, w1, da1, dpooled, dw1, db1);
  if (st != MPNAS_OK || dx == NULL) goto done;

  /* dx = dy * gate (the scaling path) + dpooled / hw (the pooling path), in one pass. */
  {
    float inv = hw > 0 ? 1.0f / (float)hw : 0.0f;
    MISC_OMP_FOR(eng->threads, par)
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

/* ---- Loss ------------------------------------------------------------------------------- */

float mpnas__softmax_xent(int m, int classes, const float *logits, const int32_t *labels,
                          float smoothing, float *dlogits, int *correct) {
  if (correct != NULL) *correct = 0;
  if (m <= 0 || classes <= 0) return 0.0f;
  /* Target t = (1-eps) one-hot + eps/K. With z = logits - max (so exp never overflows)
   * and S = sum exp(z): loss = log S - (1-eps) z[label] - (eps/K) sum z, and the
   * gradient of the mean is (softmax - t) / m. */
  double off = (double)smoothing / classes, on = 1.0 - (double)smoothing;
  float inv_m = 1.0f / (float)m;
  float off_m = (float)(off / m), on_m = (float)(on / m);
  double total = 0.0;
  int ncorrect = 0;
  for (int i = 0; i < m; i++) {
    const float *z = logits + (size_t)i * classes;
    float *dz = dlogits != NULL ? dlogits + (size_t)i * classes : NULL;
    int label = labels[i];
    float mx = z[0];
    int arg = 0;
    for (int k = 1; k < classes; k++)
      if (z[k] > mx) {
        mx = z[k];
        arg = k;
      }
    if (arg == label) ncorrect++;
    double s = 0.0, sz = 0.0;
    for (int k = 0; k < classes; k++) {
      float zk = z[k] - mx;
      float e = expf(zk);
      s += e;
      sz += zk;
      if (dz != NULL) dz[k] = e;
    }
    total += log(s) - on * (double)(z[label] - mx) - off * sz;
    if (dz != NULL) {
      float p_scale = (float)(1.0 / s) * inv_m;
      for (int k = 0; k < classes; k++) dz[k] = dz[k] * p_scale - off_m;
      dz[label] -= on_m;
    }
  }
  if (correct != NULL) *correct = ncorrect;
  return (float)(total / m);
}
