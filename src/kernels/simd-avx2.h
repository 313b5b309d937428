/* simd-avx2.h - the AVX2+FMA kernels' prototypes and the helpers they share. Include
 * only from *-avx2.c and *-avx512.c files (the ones compiled with -mavx2 -mfma). Channel tails use
 * masks from tail_mask(); the activations match mpnas__act_apply (act-ref.c). */
#ifndef MPNAS_SIMD_AVX2_H
#define MPNAS_SIMD_AVX2_H

#include <immintrin.h>
#include <stddef.h>

#include "kernels/kernels.h"

/* The kernels of mpnas__kernels_avx2 (table-avx2.c). */
void mpnas__f32_dwconv_fwd__avx2(const mpnas__dw_shape *s, const float *x, const float *wt,
                                 const float *scale, const float *shift, int act, float *y,
                                 int oh0, int oh1);
void mpnas__f32_dwconv_bwd_input__avx2(const mpnas__dw_shape *s, const float *dy,
                                       const float *wt, float *dx, int ih0, int ih1);
void mpnas__f32_dwconv_bwd_weight__avx2(const mpnas__dw_shape *s, int n, const float *x,
                                        const float *dy, float *dwt, int c0, int c1);
size_t mpnas__f32_gemm_packed_floats__avx2(int k, int n);
void mpnas__f32_gemm_pack__avx2(int k, int n, const float *w, float *packed);
void mpnas__f32_gemm__avx2(int m, int k, int n, const float *x, const float *packed,
                           const float *scale, const float *shift, int act,
                           const float *residual, float *y);
void mpnas__f32_gemm_bwd_weight__avx2(int m, int k, int n, const float *x, const float *dy,
                                      float *dw, int k0, int k1);

/* Kernels are written as generic inline functions whose tile sizes are compile-time
 * constants at each call; forcing the inlining lets the compiler unroll them and keep
 * the accumulator arrays in registers. */
#define MPNAS_AVX2_INLINE static inline __attribute__((always_inline))

/* Fully unroll the next loop (its trip count is a compile-time constant once inlined).
 * clang ignores "#pragma GCC unroll", and left to itself it may interleave such a loop
 * instead of unrolling it; either way the accumulator arrays then stay in memory.
 * Sanitizer builds skip the forced unrolling: instrumenting the fully unrolled tiles
 * took clang over 12 minutes for dwconv-avx2.c (41 s without), and those builds are
 * for checking, not speed. */
#define MPNAS__PRAGMA(x) _Pragma(#x)
#if defined(__SANITIZE_ADDRESS__)
#define MPNAS__SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define MPNAS__SANITIZED 1
#endif
#endif
#if defined(MPNAS__SANITIZED)
#define MPNAS_UNROLL(n)
#elif defined(__clang__)
#define MPNAS_UNROLL(n) MPNAS__PRAGMA(clang loop unroll(full) vectorize(disable) interleave(disable))
#else
#define MPNAS_UNROLL(n) MPNAS__PRAGMA(GCC unroll n)
#endif

/* Lanes [0, n) set, n in 0..8. */
MPNAS_AVX2_INLINE __m256i mpnas__avx2_tail_mask(int n) {
  static const int bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256((const __m256i *)(const void *)(bits + 8 - n));
}

/* mpnas__avx2_exp(x) and mpnas__avx2_act(act, v): act-x86.h at 8 lanes (the same code
 * gives the AVX-512 kernels their 16-lane twins, bit for bit). */
#define VEC_LANES 8
#include "kernels/vec-x86.h"
#include "kernels/act-x86.h"
#include "kernels/vec-x86-end.h"

/* Load 8 floats, or the first n of them (n < 8, the rest read as 0). */
MPNAS_AVX2_INLINE __m256 mpnas__avx2_load(const float *p, int n, __m256i mask) {
  return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask);
}
MPNAS_AVX2_INLINE void mpnas__avx2_store(float *p, __m256 v, int n, __m256i mask) {
  if (n >= 8) _mm256_storeu_ps(p, v);
  else _mm256_maskstore_ps(p, mask, v);
}

#endif
