/* dwconv-avx512.c - depthwise KxK convolution, AVX-512 (F, VL, BW, DQ; zmm: 16 channels
 * per vector, opmask tails): the kernels of dwconv-x86.h for the "avx512" tables
 * (table-avx2.c). Bit-identical to dwconv-avx2.c (see dwconv-x86.h): the same fma
 * chains, and the epilogue's activations are mpnas__avx2_act's operations on 16 lanes. */
#include "kernels/simd-avx2.h"
#include "kernels/simd-avx512.h"

#define DW_INLINE MPNAS_AVX2_INLINE

/* mpnas__avx512_exp and mpnas__avx512_act: act-x86.h at 16 lanes, the AVX2 code's
 * operations on 16 lanes (max/min keep the AVX2 operand order, so NaN and -0 come out
 * the same). */
#define VEC_LANES 16
#include "kernels/vec-x86.h"
#include "kernels/act-x86.h"
#include "kernels/vec-x86-end.h"

/* Lanes [0, n) set, n in 0..16. */
DW_INLINE __mmask16 dw_tail_mask16(int n) {
  return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}
/* 16 floats, or the first n (the rest read as 0; masked lanes are never touched). */
DW_INLINE __m512 dw_load16(const float *p, int n, __mmask16 m) {
  return n >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}
DW_INLINE void dw_store16(float *p, __m512 v, int n, __mmask16 m) {
  if (n >= 16) _mm512_storeu_ps(p, v);
  else _mm512_mask_storeu_ps(p, m, v);
}

typedef __m512 dw_vec;
typedef __mmask16 dw_mask;
#define DW_W 16
#define DW_NAME(f) f##__avx512
#define dw_zero() _mm512_setzero_ps()
#define dw_one() _mm512_set1_ps(1.0f)
#define dw_no_mask() ((__mmask16)0xffff)
#define dw_tail_mask(n) dw_tail_mask16(n)
#define dw_load(p) _mm512_loadu_ps(p)
#define dw_loadm(p, m) _mm512_maskz_loadu_ps((m), (p))
#define dw_store(p, v) _mm512_storeu_ps((p), (v))
#define dw_storem(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
#define dw_load_n(p, n, m) dw_load16((p), (n), (m))
#define dw_store_n(p, v, n, m) dw_store16((p), (v), (n), (m))
#define dw_fma(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define dw_add(a, b) _mm512_add_ps((a), (b))
#define dw_act(act, v) mpnas__avx512_act((act), (v))

/* Row tile widths: the AVX2 ones, but 9 for 7x7 (7 weights + 9 accumulators + a
 * source vector fit the 32 zmm registers; rows of 18 and 9 outputs are whole tiles).
 * Tiles of 18 (36 outputs in 2) measured 0.4-0.9x these: the 18-wide rows' interiors
 * are narrower than 18. Weight gradient: the 5 rows of 5x5 in one group (25
 * accumulators, one pass over the band instead of 3), 7x7 in groups of 4 and 3 (28
 * accumulators + dy + x = 30 registers). */
#define DW_TMAX 16
#define DW_T_1_1 9
#define DW_T_2_1 9
#define DW_T_3_1 9
#define DW_T_4_1 9
#define DW_T_5_1 9
#define DW_T_7_1 9
#define DW_T_3_2 9
#define DW_T_5_2 9
#define DW_T_7_2 9
#define DW_R5 5
#define DW_R7 4

#include "kernels/dwconv/dwconv-x86.h"
