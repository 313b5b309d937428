/* gemm-avx2.c - pointwise convolution as GEMM, AVX2+FMA (ymm, 8 lanes): gemm-x86.h with
 * 16-column panels (8 when the last panel has 8 columns or fewer, so n = 24 wastes
 * nothing), tiles of 6 rows x 16 columns (12 accumulators, 2 B loads and 6 broadcasts of
 * x per k step) and 12 x 8 for an 8-wide panel. The "avx2" tables' GEMM. */
#include "kernels/simd-avx2.h"

#define VEC_LANES 8
#include "kernels/vec-x86.h"
/* mpnas__avx2_act: simd-avx2.h */

#define GX_NAME(f) f##__avx2
#define GX_MR2 6
#define GX_MR1 12
#define GX_FOR_MR2(X, NV) X(1, NV) X(2, NV) X(3, NV) X(4, NV) X(5, NV) X(6, NV)
#define GX_FOR_MR1(X, NV) \
  GX_FOR_MR2(X, NV) X(7, NV) X(8, NV) X(9, NV) X(10, NV) X(11, NV) X(12, NV)
#define GX_DW_MR1 GX_MR1
#define GX_FOR_DW_MR1 GX_FOR_MR1
#define GX_BCAST(p) _mm256_broadcast_ss(p)
#define GX_LOADN(p, n, m) mpnas__avx2_load((p), (n), (m))
#define GX_STOREN(p, v, n, m) mpnas__avx2_store((p), (v), (n), (m))
#include "kernels/gemm/gemm-x86.h"
