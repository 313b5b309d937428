/* q8-ref.c - reference int8 inference kernels (the contract: kernels.h, "int8 inference"). */
#include <math.h>
#include <string.h>

#include "kernels/ref/ref.h"

int8_t mpnas__q8_requantize(const mpnas__q8_epilogue *e, int c, int32_t acc, size_t i) {
  const int real = e->act == MPNAS__ACT_HSWISH;
  float v = fmaf((float)acc, e->mult[c], e->bias != NULL ? e->bias[c] : 0.0f);
  if (real) v = mpnas__act_apply(MPNAS__ACT_HSWISH, v);
  if (e->residual != NULL) v = fmaf(e->res_scale, (float)(e->residual[i] - e->res_zero), v);
  if (real) v = fmaf(v, e->out_inv_scale, (float)e->out_zero);
  const float lo = (float)e->qmin, hi = (float)e->qmax;
  if (!(v > lo)) v = lo; /* also NaN: cannot come from finite inputs */
  if (v > hi) v = hi;
  return (int8_t)nearbyintf(v); /* the default rounding mode: half to even */
}

/* Packed layout: the n column sums (int32), then w as given ([k][n]). */
size_t mpnas__q8_gemm_packed_bytes__ref(int k, int n) {
  return (size_t)n * sizeof(int32_t) + (size_t)k * n;
}

void mpnas__q8_gemm_pack__ref(int k, int n, const int8_t *w, void *packed) {
  int32_t *colsum = packed;
  for (int j = 0; j < n; j++) {
    int32_t s = 0;
    for (int i = 0; i < k; i++) s += w[(size_t)i * n + j];
    colsum[j] = s;
  }
  memcpy(colsum + n, w, (size_t)k * n);
}

void mpnas__q8_gemm__ref(int m, int k, int n, const int8_t *x, int32_t x_zero,
                         const void *packed, const mpnas__q8_epilogue *e, int8_t *y) {
  const int32_t *colsum = packed;
  const int8_t *w = (const int8_t *)(colsum + n);
  for (int r = 0; r < m; r++)
    for (int j = 0; j < n; j++) {
      int32_t acc = 0;
      for (int i = 0; i < k; i++) acc += (int32_t)x[(size_t)r * k + i] * w[(size_t)i * n + j];
      acc -= x_zero * colsum[j];
      size_t at = (size_t)r * n + j;
      y[at] = mpnas__q8_requantize(e, j, acc, at);
    }
}

void mpnas__q8_dwconv_fwd__ref(const mpnas__dw_shape *s, const int8_t *x, int32_t x_zero,
                               const int8_t *wt, const mpnas__q8_epilogue *e, int8_t *y,
                               int oh0, int oh1) {
  for (int oy = oh0; oy < oh1; oy++)
    for (int ox = 0; ox < s->wo; ox++)
      for (int c = 0; c < s->c; c++) {
        int32_t acc = 0;
        for (int ky = 0; ky < s->k; ky++) {
          int iy = oy * s->stride + ky - s->pad;
          if (iy < 0 || iy >= s->h) continue;
          for (int kx = 0; kx < s->k; kx++) {
            int ix = ox * s->stride + kx - s->pad;
            if (ix < 0 || ix >= s->w) continue;
            acc += ((int32_t)x[((size_t)iy * s->w + ix) * s->c + c] - x_zero) *
                   wt[((size_t)ky * s->k + kx) * s->c + c];
          }
        }
        size_t at = ((size_t)oy * s->wo + ox) * s->c + c;
        y[at] = mpnas__q8_requantize(e, c, acc, at);
      }
}
