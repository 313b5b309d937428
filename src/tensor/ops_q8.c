/* ops_q8.c - int8 inference ops (see ops_q8.h). The thread split is ops_conv.c's
 * (mpnas__team_size / mpnas__split_range: static parts of whole rows), so the int8
 * forward spreads over the same threads as the float one. */
#include "tensor/ops_q8.h"

#include "tensor/ops.h"

#include <math.h>

/* GEMM rows are split at multiples of 8 (SIMD register tiles). */
#define Q8_ROW_GRANULE 8

mpnas__qparams mpnas__q8_affine(float lo, float hi) {
  mpnas__qparams p = {1.0f, 0};
  if (!(lo <= 0.0f)) lo = 0.0f; /* also NaN */
  if (!(hi >= 0.0f)) hi = 0.0f;
  double range = (double)hi - (double)lo;
  if (!(range > 1e-30) || !isfinite(range)) return p;
  double scale = range / 255.0;
  double zero = nearbyint(-128.0 - (double)lo / scale);
  if (zero < -128.0) zero = -128.0;
  if (zero > 127.0) zero = 127.0;
  p.scale = (float)scale;
  p.zero = (int32_t)zero;
  return p;
}

/* clamp(round-half-even(x * inv + zero), -128, 127), NaN -> -128. nearbyintf's
 * half-to-even in the default rounding mode without a libm call: adding and taking
 * away 1.5 * 2^23 rounds |v| < 2^22 to an integer. The rounding comes before the clamps
 * (clamping first made gcc branch to store the bounds, and not vectorise - ~10 ns a
 * value, the int8 forward's largest part): the results are the same, because the round
 * trip is monotone in v (so v <= -128.5 gives <= -128 and v >= 127.5 gives >= 128, which
 * the clamps take to the bounds, as clamping first does), exact for |v| < 2^22, keeps
 * infinities, and NaN fails both comparisons as before. */
static int8_t quantize_one(float x, float inv, float zero) {
  float v = x * inv + zero;
  v = (v + 12582912.0f) - 12582912.0f;
  v = v > -128.0f ? v : -128.0f; /* NaN too */
  v = v < 127.0f ? v : 127.0f;
  return (int8_t)(int32_t)v;
}

void mpnas__q8_quantize(size_t count, const float *restrict x, mpnas__qparams p,
                        int8_t *restrict q) {
  float inv = 1.0f / p.scale, zero = (float)p.zero;
  for (size_t i = 0; i < count; i++) q[i] = quantize_one(x[i], inv, zero);
}

void mpnas__q8_dequantize(size_t count, const int8_t *q, mpnas__qparams p, float *x) {
  for (size_t i = 0; i < count; i++) x[i] = p.scale * (float)((int32_t)q[i] - p.zero);
}

void mpnas__q8_gap(int n, int hw, int c, const int8_t *q, mpnas__qparams p, float *y) {
  for (int i = 0; i < n; i++) {
    const int8_t *img = q + (size_t)i * hw * c;
    float *out = y + (size_t)i * c;
    for (int ch = 0; ch < c; ch++) {
      int64_t sum = 0; /* exact: hw * 255 is far below 2^63 */
      for (int px = 0; px < hw; px++) sum += img[(size_t)px * c + ch];
      double mean = (double)sum / (double)hw;
      out[ch] = (float)((double)p.scale * (mean - (double)p.zero));
    }
  }
}

void mpnas__q8_quantize_weights(int rows, int cols, const float *w, float *scale, int8_t *q) {
  for (int j = 0; j < cols; j++) {
    float mx = 0.0f;
    for (int i = 0; i < rows; i++) {
      float a = fabsf(w[(size_t)i * cols + j]);
      if (a > mx) mx = a;
    }
    float s = mx > 0.0f ? mx / 127.0f : 1.0f;
    if (!(s > 0.0f)) s = 1.0f; /* a subnormal max underflows: the column is zero anyway */
    scale[j] = s;
    for (int i = 0; i < rows; i++) {
      float v = nearbyintf(w[(size_t)i * cols + j] / s);
      if (v > 127.0f) v = 127.0f;
      if (v < -127.0f) v = -127.0f;
      q[(size_t)i * cols + j] = (int8_t)v;
    }
  }
}

/* One part of a pointwise GEMM: rows [r0, r1) of part t of parts. */
static void pw_part(const mpnas__engine *eng, int parts, int t, int m, int k, int n,
                    const int8_t *x, int32_t x_zero, const void *packed,
                    const mpnas__q8_epilogue *e, int8_t *y) {
  int r0, r1;
  mpnas__split_range(m, parts, t, Q8_ROW_GRANULE, &r0, &r1);
  if (r1 <= r0) return;
  /* The kernel indexes the residual like its own y: hand it this slice's rows. */
  mpnas__q8_epilogue part = *e;
  if (e->residual != NULL) part.residual = e->residual + (size_t)r0 * n;
  eng->k->q8_gemm(r1 - r0, k, n, x + (size_t)r0 * k, x_zero, packed, &part, y + (size_t)r0 * n);
}

/* One team member's rows of a depthwise conv (rows, not images, are split, as ops_conv.c's
 * dw_part): one call per image touched. */
static void dw_part(const mpnas__engine *eng, int parts, int t, int n, const mpnas__dw_shape *s,
                    const int8_t *x, int32_t x_zero, const int8_t *wt,
                    const mpnas__q8_epilogue *e, int8_t *y) {
  int rows = n * s->ho, r0, r1;
  size_t in_image = (size_t)s->h * s->w * s->c, out_image = (size_t)s->ho * s->wo * s->c;
  mpnas__split_range(rows, parts, t, 1, &r0, &r1);
  for (int i = r0 / s->ho; i < n && i * s->ho < r1; i++) {
    int oh0 = r0 - i * s->ho, oh1 = r1 - i * s->ho;
    if (oh0 < 0) oh0 = 0;
    if (oh1 > s->ho) oh1 = s->ho;
    eng->k->q8_dw_fwd(s, x + i * in_image, x_zero, wt, e, y + i * out_image, oh0, oh1);
  }
}

/* A team of one calls its part directly: even with its if clause false, an OpenMP
 * parallel region costs libgomp a team set-up and a barrier whose FUTEX_WAKE is a system
 * call (about 1 us, ~45 regions per MBV2-9 int8 forward: 3% of its batch-1 time). */
void mpnas__q8_pw_fwd(const mpnas__engine *eng, int m, int k, int n, const int8_t *x,
                      int32_t x_zero, const void *packed, const mpnas__q8_epilogue *e,
                      int8_t *y) {
  if (m <= 0 || n <= 0) return;
  int units = (m + Q8_ROW_GRANULE - 1) / Q8_ROW_GRANULE;
  int parts = mpnas__team_size(eng, (double)m * k * n, units);
  if (parts <= 1) {
    pw_part(eng, 1, 0, m, k, n, x, x_zero, packed, e, y);
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel for num_threads(parts) schedule(static, 1)
#endif
  for (int t = 0; t < parts; t++) pw_part(eng, parts, t, m, k, n, x, x_zero, packed, e, y);
}

void mpnas__q8_dw_fwd(const mpnas__engine *eng, int n, int h, int w, int c, int k, int stride,
                      const int8_t *x, int32_t x_zero, const int8_t *wt,
                      const mpnas__q8_epilogue *e, int8_t *y) {
  mpnas__dw_shape s;
  mpnas__dw_shape_init(&s, h, w, c, k, stride);
  int rows = n * s.ho;
  if (rows <= 0 || c <= 0) return;
  int parts = mpnas__team_size(eng, (double)rows * s.wo * c * k * k, rows);
  if (parts <= 1) {
    dw_part(eng, 1, 0, n, &s, x, x_zero, wt, e, y);
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel for num_threads(parts) schedule(static, 1)
#endif
  for (int t = 0; t < parts; t++) dw_part(eng, parts, t, n, &s, x, x_zero, wt, e, y);
}
