/* gemm-ref.c - reference GEMM (pointwise convolution) and its weight gradient, plus the
 * direct KxK convolution used as the stem's oracle. The reference "packed" layout is
 * the plain [k][n] weight matrix. */
#include <string.h>

#include "kernels/ref/ref.h"

size_t mpnas__f32_gemm_packed_floats__ref(int k, int n) { return (size_t)k * (size_t)n; }

void mpnas__f32_gemm_pack__ref(int k, int n, const float *w, float *packed) {
  memcpy(packed, w, sizeof(float) * (size_t)k * (size_t)n);
}

void mpnas__f32_gemm__ref(int m, int k, int n, const float *x, const float *packed,
                          const float *scale, const float *shift, int act,
                          const float *residual, float *y) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      float acc = 0.0f;
      for (int p = 0; p < k; p++) acc += x[(size_t)i * k + p] * packed[(size_t)p * n + j];
      float v = mpnas__epilogue(acc, j, scale, shift, act);
      if (residual != NULL) v += residual[(size_t)i * n + j];
      y[(size_t)i * n + j] = v;
    }
}

void mpnas__f32_gemm_bwd_weight__ref(int m, int k, int n, const float *x, const float *dy,
                                     float *dw, int k0, int k1) {
  for (int p = k0; p < k1; p++)
    for (int j = 0; j < n; j++) {
      float acc = 0.0f;
      for (int i = 0; i < m; i++) acc += x[(size_t)i * k + p] * dy[(size_t)i * n + j];
      dw[(size_t)p * n + j] += acc;
    }
}

void mpnas__f32_conv_fwd__ref(int n, int h, int w, int cin, int cout, int k, int stride,
                              const float *x, const float *wt, float *y) {
  int ho = (h + stride - 1) / stride, wo = (w + stride - 1) / stride, pad = k / 2;
  for (int i = 0; i < n; i++)
    for (int oy = 0; oy < ho; oy++)
      for (int ox = 0; ox < wo; ox++)
        for (int co = 0; co < cout; co++) {
          float acc = 0.0f;
          for (int ky = 0; ky < k; ky++) {
            int iy = oy * stride + ky - pad;
            if (iy < 0 || iy >= h) continue;
            for (int kx = 0; kx < k; kx++) {
              int ix = ox * stride + kx - pad;
              if (ix < 0 || ix >= w) continue;
              for (int ci = 0; ci < cin; ci++)
                acc += x[(((size_t)i * h + iy) * w + ix) * cin + ci] *
                       wt[(((size_t)ky * k + kx) * cin + ci) * cout + co];
            }
          }
          y[(((size_t)i * ho + oy) * wo + ox) * cout + co] = acc;
        }
}
