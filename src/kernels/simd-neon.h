/* simd-neon.h - the AArch64 NEON kernels (dwconv/dwconv-neon.c, gemm/gemm-neon.c), which
 * table-neon.c gathers into mpnas__kernels_neon, and the vector epilogue they share.
 * Included by *-neon.c only (the Makefile builds those for aarch64 only). */
#ifndef MPNAS_SIMD_NEON_H
#define MPNAS_SIMD_NEON_H

#include <arm_neon.h>

#include "kernels/kernels.h"

/* Kernels are inline functions whose tile sizes are compile-time constants at each call
 * site; forced inlining lets the compiler unroll them and keep accumulator arrays in
 * registers. */
#define MPNAS_NEON_INLINE static inline __attribute__((always_inline))

void mpnas__f32_dwconv_fwd__neon(const mpnas__dw_shape *s, const float *x, const float *wt,
                                 const float *scale, const float *shift, int act, float *y,
                                 int oh0, int oh1);
void mpnas__f32_dwconv_bwd_input__neon(const mpnas__dw_shape *s, const float *dy,
                                       const float *wt, float *dx, int ih0, int ih1);
void mpnas__f32_dwconv_bwd_weight__neon(const mpnas__dw_shape *s, int n, const float *x,
                                        const float *dy, float *dwt, int c0, int c1);

size_t mpnas__f32_gemm_packed_floats__neon(int k, int n);
void mpnas__f32_gemm_pack__neon(int k, int n, const float *w, float *packed);
void mpnas__f32_gemm_8x8__neon(int m, int k, int n, const float *x, const float *packed,
                               const float *scale, const float *shift, int act,
                               const float *residual, float *y);
void mpnas__f32_gemm_bwd_weight__neon(int m, int k, int n, const float *x, const float *dy,
                                      float *dw, int k0, int k1);

/* The activation on 4 lanes. Each lane is bit-identical to mpnas__act_apply (the same
 * operations in the same order, selects instead of min/max so NaN and -0 agree too), so
 * a channel gives the same value whether it falls in a vector or in a scalar tail. */
MPNAS_NEON_INLINE float32x4_t mpnas__act_f32x4__neon(int act, float32x4_t v) {
  const float32x4_t zero = vdupq_n_f32(0.0f), six = vdupq_n_f32(6.0f);
  const float32x4_t three = vdupq_n_f32(3.0f), sixth = vdupq_n_f32(1.0f / 6.0f);
  float32x4_t r;
  switch (act) {
    case MPNAS__ACT_RELU: return vbslq_f32(vcgtq_f32(v, zero), v, zero);
    case MPNAS__ACT_RELU6:
      r = vbslq_f32(vcgtq_f32(v, six), six, v);
      return vbslq_f32(vcltq_f32(v, zero), zero, r);
    case MPNAS__ACT_HSWISH:
    case MPNAS__ACT_HSIGMOID: {
      float32x4_t t = vaddq_f32(v, three);
      r = vbslq_f32(vcgtq_f32(t, six), six, t);
      r = vbslq_f32(vcltq_f32(t, zero), zero, r);
      if (act == MPNAS__ACT_HSWISH) r = vmulq_f32(v, r);
      return vmulq_f32(r, sixth);
    }
    case MPNAS__ACT_SIGMOID: {
      /* libm's expf lane by lane: exact agreement with the reference matters more
       * here than speed (sigmoid gates squeeze-excite: short vectors) */
      float t[4];
      vst1q_f32(t, v);
      for (int i = 0; i < 4; i++) t[i] = mpnas__act_apply(MPNAS__ACT_SIGMOID, t[i]);
      return vld1q_f32(t);
    }
    default: return v;
  }
}

/* y = act(acc * scale + shift) for 4 channels, scale/shift pointing at those channels
 * or NULL. Multiply then add (not fused), as the reference does. */
MPNAS_NEON_INLINE float32x4_t mpnas__epilogue_f32x4__neon(float32x4_t acc, const float *scale,
                                                          const float *shift, int act) {
  if (scale != NULL) acc = vmulq_f32(acc, vld1q_f32(scale));
  if (shift != NULL) acc = vaddq_f32(acc, vld1q_f32(shift));
  return mpnas__act_f32x4__neon(act, acc);
}

#endif
