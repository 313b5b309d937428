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

size_t mpnas__q8_gemm_packed_bytes__ref(int k, int n);
void mpnas__q8_gemm_pack__ref(int k, int n, const int8_t *w, void *packed);
void mpnas__q8_gemm__ref(int m, int k, int n, const int8_t *x, int32_t x_zero,
                         const void *packed, const mpnas__q8_epilogue *e, int8_t *y);
void mpnas__q8_dwconv_fwd__ref(const mpnas__dw_shape *s, const int8_t *x, int32_t x_zero,
                               const int8_t *wt, const mpnas__q8_epilogue *e, int8_t *y,
                               int oh0, int oh1);
/* The int8 epilogue for channel c's accumulator, output element i (kernels.h); SIMD
 * kernels use it for their remainders. */
int8_t mpnas__q8_requantize(const mpnas__q8_epilogue *e, int c, int32_t acc, size_t i);

/* The epilogue every kernel applies to an accumulator of channel c. */
static inline float mpnas__epilogue(float acc, int c, const float *scale, const float *shift,
                                    int act) {
  if (scale != NULL) acc *= scale[c];
  if (shift != NULL) acc += shift[c];
  return mpnas__act_apply(act, acc);
}

#endif
