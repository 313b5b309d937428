/* dwconv-avx2.c - depthwise KxK convolution, AVX2+FMA (ymm: 8 channels per vector): the
 * kernels of dwconv-x86.h for the "avx2" tables. Tail masks are integer vectors for
 * vmaskmovps. */
#include "kernels/simd-avx2.h"

typedef __m256 dw_vec;
typedef __m256i dw_mask;
#define DW_W 8
#define DW_INLINE MPNAS_AVX2_INLINE
#define DW_NAME(f) f##__avx2
#define dw_zero() _mm256_setzero_ps()
#define dw_one() _mm256_set1_ps(1.0f)
#define dw_no_mask() _mm256_setzero_si256()
#define dw_tail_mask(n) mpnas__avx2_tail_mask(n)
#define dw_load(p) _mm256_loadu_ps(p)
#define dw_loadm(p, m) _mm256_maskload_ps((p), (m))
#define dw_store(p, v) _mm256_storeu_ps((p), (v))
#define dw_storem(p, m, v) _mm256_maskstore_ps((p), (m), (v))
#define dw_load_n(p, n, m) mpnas__avx2_load((p), (n), (m))
#define dw_store_n(p, v, n, m) mpnas__avx2_store((p), (v), (n), (m))
#define dw_fma(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define dw_add(a, b) _mm256_add_ps((a), (b))
#define dw_act(act, v) mpnas__avx2_act((act), (v))

/* Row tile widths: KX weights + T accumulators + one source vector within the 16 ymm
 * registers, and the benchmark widths (36, 18, 9 outputs) in whole tiles where
 * possible. */
#define DW_TMAX 16
#define DW_T_1_1 9
#define DW_T_2_1 9
#define DW_T_3_1 9
#define DW_T_4_1 9
#define DW_T_5_1 9
#define DW_T_7_1 6
#define DW_T_3_2 9
#define DW_T_5_2 9
#define DW_T_7_2 5
/* Weight gradient: 5x5 takes kernel rows in pairs (10 accumulators), 7x7 one row at a
 * time (R = 2 measured no faster). */
#define DW_R5 2
#define DW_R7 1

#include "kernels/dwconv/dwconv-x86.h"
