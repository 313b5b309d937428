/* ref.h - the plain C reference kernels: written for clarity, not speed. They are the
 * scalar ISA's kernels and the oracle every SIMD kernel is tested against. */
#ifndef MPNAS_REF_H
#define MPNAS_REF_H

#include "kernels/kernels.h"

void mpnas__f32_dwconv_fwd__ref(const mpnas__dw_shape *s, const float *x, const float *wt,
                                const float *scale, const float *shift, int act, float *y,
                                int oh0, int oh1);
void mpnas__f32_dwconv_bwd_input__ref(const mpnas__dw_shape *s, const float *dy,
                                      const float *wt, float *dx, int ih0, int ih1);
void mpnas__f32_dwconv_bwd_weight__ref(const mpnas__dw_shape *s, int n, const float *x,
                                       const float *dy, float *dwt, int c0, int c1);

size_t mpnas__f32_gemm_packed_floats__ref(int k, int n);
void mpnas__f32_gemm_pack__ref(int k, int n, const float *w, float *packed);
void mpnas__f32_gemm__ref(int m, int k, int n, const float *x, const float *packed,
                          const float *scale, const float *shift, int act,
                          const float *residual, float *y);
void mpnas__f32_gemm_bwd_weight__ref(int m, int k, int n, const float *x, const float *dy,
                                     float *dw, int k0, int k1);

/* Direct KxK convolution of n images, SAME padding (the oracle for the im2col+GEMM stem
 * op): x [n][h][w][cin], wt [k][k][cin][cout], y [n][ho][wo][cout]. */
void mpnas__f32_conv_fwd__ref(int n, int h, int w, int cin, int cout, int k, int stride,
                              const float *x, const float *wt, float *y);

/* The epilogue every kernel applies to an accumulator of channel c. */
static inline float mpnas__epilogue(float acc, int c, const float *scale, const float *shift,
                                    int act) {
  if (scale != NULL) acc *= scale[c];
  if (shift != NULL) acc += shift[c];
  return mpnas__act_apply(act, acc);
}

#endif
