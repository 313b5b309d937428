/* q8-simd.h - the SIMD int8 kernels' prototypes (kernels.h, "int8 inference"), for the
 * tables (table-avx2.c, table-neon.c). Each is defined in src/kernels/q8/ in a file
 * compiled with its ISA's flags, so only the tables of this build's ISA are used. */
#ifndef MPNAS_Q8_SIMD_H
#define MPNAS_Q8_SIMD_H

#include "kernels/kernels.h"

#define MPNAS__Q8_DECLARE(isa)                                                               \
  size_t mpnas__q8_gemm_packed_bytes__##isa(int k, int n);                                 \
  void mpnas__q8_gemm_pack__##isa(int k, int n, const int8_t *w, void *packed);            \
  void mpnas__q8_gemm__##isa(int m, int k, int n, const int8_t *x, int32_t x_zero,         \
                             const void *packed, const mpnas__q8_epilogue *e, int8_t *y); \
  void mpnas__q8_dwconv_fwd__##isa(const mpnas__dw_shape *s, const int8_t *x,              \
                                   int32_t x_zero, const int8_t *wt,                       \
                                   const mpnas__q8_epilogue *e, int8_t *y, int oh0, int oh1);

/* q8-avx2.c, q8-vnni-avx2.c (AVX-VNNI), q8-vnni-avx512.c (AVX512-VNNI), q8-neon.c,
 * q8-dotprod-neon.c */
MPNAS__Q8_DECLARE(avx2)
MPNAS__Q8_DECLARE(avx2_vnni)
MPNAS__Q8_DECLARE(avx512_vnni)
MPNAS__Q8_DECLARE(neon)
MPNAS__Q8_DECLARE(neon_dotprod)

#endif
