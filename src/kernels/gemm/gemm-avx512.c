/* gemm-avx512.c - pointwise convolution as GEMM, AVX-512 (F, VL, BW, DQ; zmm, 16 lanes):
 * gemm-x86.h with 32-column panels (16 when the last panel has 16 columns or fewer),
 * tiles of 8 rows x 32 columns (16 accumulators, 2 B loads and 8 broadcasts per k step:
 * 2.7x the FLOPs per broadcast of the AVX2 tile) and 8 x 16 for a 16-wide panel (16 x 16
 * in the weight gradient). The "avx512" tables' GEMM (table-avx2.c; dispatch.c picks
 * them where the CPU has AVX-512 and the OS saves the zmm state), bit-identical to
 * gemm-avx2.c (gemm-x86.h). The 32 registers would hold up to 14 x 32, but on the
 * benchmark shapes (docs/PERFORMANCE.md, "AVX-512 kernel table") 6, 8 and 10 rows
 * measured alike and 12 and 14 slower; 8 keeps the tails small. */
#include "kernels/simd-avx2.h"
#include "kernels/simd-avx512.h"

#define VEC_LANES 16
#include "kernels/vec-x86.h"
#include "kernels/act-x86.h" /* mpnas__avx512_exp, mpnas__avx512_act */

/* 16 floats, or the first n (the rest read as 0; masked lanes are never touched). */
MPNAS_AVX2_INLINE __m512 load16(const float *p, int n, __mmask16 m) {
  return n >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}
MPNAS_AVX2_INLINE void store16(float *p, __m512 v, int n, __mmask16 m) {
  if (n >= 16) _mm512_storeu_ps(p, v);
  else _mm512_mask_storeu_ps(p, m, v);
}
/* The half vectors: 8 floats in a ymm, or the first n of them. */
MPNAS_AVX2_INLINE __m256 load8(const float *p, int n) {
  return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskz_loadu_ps((__mmask8)((1u << n) - 1u), p);
}
MPNAS_AVX2_INLINE void store8(float *p, __m256 v, int n) {
  if (n >= 8) _mm256_storeu_ps(p, v);
  else _mm256_mask_storeu_ps(p, (__mmask8)((1u << n) - 1u), v);
}

#define GX_NAME(f) f##__avx512
#define GX_MR2 8
#define GX_MR1 8
#define GX_FOR_MR2(X, NV) X(1, NV) X(2, NV) X(3, NV) X(4, NV) X(5, NV) X(6, NV) X(7, NV) X(8, NV)
#define GX_FOR_MR1(X, NV) GX_FOR_MR2(X, NV)
#define GX_DW_MR1 16
#define GX_FOR_DW_MR1(X, NV)                                                                \
  GX_FOR_MR2(X, NV) X(9, NV) X(10, NV) X(11, NV) X(12, NV) X(13, NV) X(14, NV) X(15, NV)   \
  X(16, NV)
#define GX_BCAST(p) _mm512_set1_ps(*(p))
#define GX_LOADN(p, n, m) load16((p), (n), (m))
#define GX_STOREN(p, v, n, m) store16((p), (v), (n), (m))
/* A last panel of 17-24 columns is 24 wide, ending in a ymm: the same operations per
 * lane as a zmm (the activation is act-x86.h at 8 lanes, simd-avx2.h), half the work
 * where the CPU executes 512-bit operations as two halves (Zen 4), the same number of
 * instructions elsewhere. */
#define GX_HALF 1
#define GX_H_F __m256
#define GX_H_ZERO() _mm256_setzero_ps()
#define GX_H_SET1(x) _mm256_set1_ps(x)
#define GX_H_LOAD(p) _mm256_loadu_ps(p)
#define GX_H_LOADN(p, n) load8((p), (n))
#define GX_H_STOREN(p, v, n) store8((p), (v), (n))
#define GX_H_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define GX_H_ADD(a, b) _mm256_add_ps((a), (b))
#define GX_H_LOW(v) _mm512_castps512_ps256(v)
#define GX_H_ACT(act, v) mpnas__avx2_act((act), (v))
#include "kernels/gemm/gemm-x86.h"
