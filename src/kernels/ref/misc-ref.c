/* misc-ref.c - reference batch-norm and activation kernels (contracts in kernels.h): the
 * scalar table's kernels and the oracle of tests/test_misc_kernels.c. Plain loops, the
 * channel loop innermost and contiguous; statistics accumulate in double and take two
 * passes (mean, then squared deviations), which is exact enough for any m and any
 * |mean| / std. The activation formulas are those of act-ref.c with the switch hoisted
 * out of the loops. */
#include <math.h>
#include <string.h>

#include "kernels/misc/misc.h"

void mpnas__f32_bn_stats__ref(int m, int c, size_t ld, const float *x, double *mean,
                              double *m2) {
  for (int ch = 0; ch < c; ch++) mean[ch] = m2[ch] = 0.0;
  for (size_t i = 0; i < (size_t)m; i++) {
    const float *row = x + i * ld;
    for (int ch = 0; ch < c; ch++) mean[ch] += (double)row[ch];
  }
  for (int ch = 0; ch < c; ch++) mean[ch] /= m;
  for (size_t i = 0; i < (size_t)m; i++) {
    const float *row = x + i * ld;
    for (int ch = 0; ch < c; ch++) {
      double d = (double)row[ch] - mean[ch];
      m2[ch] += d * d;
    }
  }
}

void mpnas__f32_bn_apply__ref(int m, int c, size_t ld, const float *x, const float *mu,
                              const float *k, const float *b, int act, float *norm, float *y) {
  /* Two passes, as an unfused BN then activation would do: t into norm (or y), then the
   * activation from there into y. */
  float *t = norm != NULL ? norm : y;
  for (size_t i = 0; i < (size_t)m; i++) {
    const float *row = x + i * ld;
    float *out = t + i * ld;
    for (int ch = 0; ch < c; ch++) out[ch] = (row[ch] - mu[ch]) * k[ch] + b[ch];
  }
  if (act == MPNAS__ACT_NONE && t == y) return;
  if (ld == (size_t)c) {
    mpnas__f32_act_fwd__ref(act, (size_t)m * ld, t, y);
  } else {
    for (size_t i = 0; i < (size_t)m; i++)
      mpnas__f32_act_fwd__ref(act, (size_t)c, t + i * ld, y + i * ld);
  }
}

void mpnas__f32_bn_bwd_reduce__ref(int m, int c, size_t ld, const float *x, const float *dy,
                                   const float *mu, double *s0, double *s1, double *s2) {
  for (size_t i = 0; i < (size_t)m; i++) {
    const float *rx = x + i * ld, *rd = dy + i * ld;
    for (int ch = 0; ch < c; ch++) {
      double centred = (double)rx[ch] - (double)mu[ch];
      s0[ch] += centred;
      s1[ch] += (double)rd[ch];
      s2[ch] += (double)rd[ch] * centred;
    }
  }
}

static inline float relu6(float v) { return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v); }

/* dy * act'(v): act_bwd's formulas below, one value. */
static inline float act_grad_mul(int act, float v, float dy) {
  switch (act) {
    case MPNAS__ACT_RELU: return v > 0.0f ? dy : 0.0f;
    case MPNAS__ACT_RELU6: return (v > 0.0f && v < 6.0f) ? dy : 0.0f;
    case MPNAS__ACT_HSWISH:
      return dy * (v <= -3.0f ? 0.0f : (v >= 3.0f ? 1.0f : (2.0f * v + 3.0f) * (1.0f / 6.0f)));
    case MPNAS__ACT_SIGMOID: {
      float s = 1.0f / (1.0f + expf(-v));
      return dy * (s * (1.0f - s));
    }
    case MPNAS__ACT_HSIGMOID: return (v > -3.0f && v < 3.0f) ? dy * (1.0f / 6.0f) : 0.0f;
    default: return dy;
  }
}

void mpnas__f32_bn_bwd_reduce_act__ref(int m, int c, size_t ld, const float *x,
                                       const float *dy, const float *mu, const float *k,
                                       const float *b, int act, float *g, double *s0,
                                       double *s1, double *s2) {
  for (size_t i = 0; i < (size_t)m; i++) {
    const float *rx = x + i * ld, *rd = dy + i * ld;
    float *rg = g + i * ld;
    for (int ch = 0; ch < c; ch++) {
      float t = (rx[ch] - mu[ch]) * k[ch] + b[ch]; /* bn_apply's t */
      float gv = act_grad_mul(act, t, rd[ch]);
      double centred = (double)rx[ch] - (double)mu[ch];
      rg[ch] = gv;
      s0[ch] += centred;
      s1[ch] += (double)gv;
      s2[ch] += (double)gv * centred;
    }
  }
}

void mpnas__f32_bn_bwd_dx__ref(int m, int c, size_t ld, const float *x, const float *dy,
                               const float *mu, const float *a, const float *b,
                               const float *d, float *dx) {
  for (size_t i = 0; i < (size_t)m; i++) {
    const float *rx = x + i * ld, *rd = dy + i * ld;
    float *out = dx + i * ld;
    for (int ch = 0; ch < c; ch++) out[ch] = a[ch] * rd[ch] + b[ch] * (rx[ch] - mu[ch]) + d[ch];
  }
}

void mpnas__f32_act_fwd__ref(int act, size_t n, const float *x, float *y) {
  switch (act) {
    case MPNAS__ACT_RELU:
      for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
      break;
    case MPNAS__ACT_RELU6:
      for (size_t i = 0; i < n; i++) y[i] = relu6(x[i]);
      break;
    case MPNAS__ACT_HSWISH:
      for (size_t i = 0; i < n; i++) y[i] = x[i] * relu6(x[i] + 3.0f) * (1.0f / 6.0f);
      break;
    case MPNAS__ACT_SIGMOID:
      for (size_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
      break;
    case MPNAS__ACT_HSIGMOID:
      for (size_t i = 0; i < n; i++) y[i] = relu6(x[i] + 3.0f) * (1.0f / 6.0f);
      break;
    default:
      if (y != x) memmove(y, x, n * sizeof(float));
      break;
  }
}

void mpnas__f32_act_bwd__ref(int act, size_t n, const float *x, const float *dy, float *dx) {
  switch (act) {
    case MPNAS__ACT_RELU:
      for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
      break;
    case MPNAS__ACT_RELU6:
      for (size_t i = 0; i < n; i++) dx[i] = (x[i] > 0.0f && x[i] < 6.0f) ? dy[i] : 0.0f;
      break;
    case MPNAS__ACT_HSWISH:
      for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float g = v <= -3.0f ? 0.0f : (v >= 3.0f ? 1.0f : (2.0f * v + 3.0f) * (1.0f / 6.0f));
        dx[i] = dy[i] * g;
      }
      break;
    case MPNAS__ACT_SIGMOID:
      for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-x[i]));
        dx[i] = dy[i] * (s * (1.0f - s));
      }
      break;
    case MPNAS__ACT_HSIGMOID:
      for (size_t i = 0; i < n; i++)
        dx[i] = (x[i] > -3.0f && x[i] < 3.0f) ? dy[i] * (1.0f / 6.0f) : 0.0f;
      break;
    default:
      if (dx != dy) memmove(dx, dy, n * sizeof(float));
      break;
  }
}
