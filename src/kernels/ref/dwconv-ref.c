/* dwconv-ref.c - reference depthwise convolution: forward, input and weight gradients. */
#include "kernels/ref/ref.h"

void mpnas__f32_dwconv_fwd__ref(const mpnas__dw_shape *s, const float *x, const float *wt,
                                const float *scale, const float *shift, int act, float *y,
                                int oh0, int oh1) {
  for (int oy = oh0; oy < oh1; oy++)
    for (int ox = 0; ox < s->wo; ox++)
      for (int c = 0; c < s->c; c++) {
        float acc = 0.0f;
        for (int ky = 0; ky < s->k; ky++) {
          int iy = oy * s->stride + ky - s->pad;
          if (iy < 0 || iy >= s->h) continue;
          for (int kx = 0; kx < s->k; kx++) {
            int ix = ox * s->stride + kx - s->pad;
            if (ix < 0 || ix >= s->w) continue;
            acc += x[((size_t)iy * s->w + ix) * s->c + c] * wt[((size_t)ky * s->k + kx) * s->c + c];
          }
        }
        y[((size_t)oy * s->wo + ox) * s->c + c] = mpnas__epilogue(acc, c, scale, shift, act);
      }
}

void mpnas__f32_dwconv_bwd_input__ref(const mpnas__dw_shape *s, const float *dy,
                                      const float *wt, float *dx, int ih0, int ih1) {
  /* Gather form: input pixel (iy, ix) receives from every output pixel whose window
   * covers it, i.e. oy*stride + ky - pad == iy. */
  for (int iy = ih0; iy < ih1; iy++)
    for (int ix = 0; ix < s->w; ix++)
      for (int c = 0; c < s->c; c++) {
        float acc = 0.0f;
        for (int ky = 0; ky < s->k; ky++) {
          int ty = iy + s->pad - ky;
          if (ty < 0 || ty % s->stride != 0) continue;
          int oy = ty / s->stride;
          if (oy >= s->ho) continue;
          for (int kx = 0; kx < s->k; kx++) {
            int tx = ix + s->pad - kx;
            if (tx < 0 || tx % s->stride != 0) continue;
            int ox = tx / s->stride;
            if (ox >= s->wo) continue;
            acc += dy[((size_t)oy * s->wo + ox) * s->c + c] * wt[((size_t)ky * s->k + kx) * s->c + c];
          }
        }
        dx[((size_t)iy * s->w + ix) * s->c + c] = acc;
      }
}

void mpnas__f32_dwconv_bwd_weight__ref(const mpnas__dw_shape *s, int n, const float *x,
                                       const float *dy, float *dwt, int c0, int c1) {
  size_t in_image = (size_t)s->h * s->w * s->c, out_image = (size_t)s->ho * s->wo * s->c;
  for (int ky = 0; ky < s->k; ky++)
    for (int kx = 0; kx < s->k; kx++)
      for (int c = c0; c < c1; c++) {
        float acc = 0.0f;
        for (int i = 0; i < n; i++)
          for (int oy = 0; oy < s->ho; oy++) {
            int iy = oy * s->stride + ky - s->pad;
            if (iy < 0 || iy >= s->h) continue;
            for (int ox = 0; ox < s->wo; ox++) {
              int ix = ox * s->stride + kx - s->pad;
              if (ix < 0 || ix >= s->w) continue;
              acc += x[i * in_image + ((size_t)iy * s->w + ix) * s->c + c] *
                     dy[i * out_image + ((size_t)oy * s->wo + ox) * s->c + c];
            }
          }
        dwt[((size_t)ky * s->k + kx) * s->c + c] += acc;
      }
}
