/* simd-avx512.h - the AVX-512 float kernels' prototypes (gemm/gemm-avx512.c,
 * dwconv/dwconv-avx512.c; the BN and activation kernels' are in misc/misc.h, with their
 * other ISAs'). Only prototypes: any file may include it (table-avx2.c does, to fill the
 * "avx512" tables); the kernels themselves are compiled with -mavx512f -mavx512vl
 * -mavx512bw -mavx512dq (the Makefile's rule for *-avx512.c files) and run only where
 * dispatch.c found AVX-512 in the CPU and its zmm state enabled by the OS. */
#ifndef MPNAS_SIMD_AVX512_H
#define MPNAS_SIMD_AVX512_H

#include <stddef.h>

size_t mpnas__f32_gemm_packed_floats__avx512(int k, int n);
void mpnas__f32_gemm_pack__avx512(int k, int n, const float *w, float *packed);
void mpnas__f32_gemm__avx512(int m, int k, int n, const float *x, const float *packed,
                             const float *scale, const float *shift, int act,
                             const float *residual, float *y);
void mpnas__f32_gemm_bwd_weight__avx512(int m, int k, int n, const float *x, const float *dy,
                                        float *dw, int k0, int k1);

/* Depthwise (dwconv/dwconv-avx512.c; bit-identical to the AVX2 kernels). */
struct mpnas__dw_shape;
void mpnas__f32_dwconv_fwd__avx512(const struct mpnas__dw_shape *s, const float *x,
                                   const float *wt, const float *scale, const float *shift,
                                   int act, float *y, int oh0, int oh1);
void mpnas__f32_dwconv_bwd_input__avx512(const struct mpnas__dw_shape *s, const float *dy,
                                         const float *wt, float *dx, int ih0, int ih1);
void mpnas__f32_dwconv_bwd_weight__avx512(const struct mpnas__dw_shape *s, int n,
                                          const float *x, const float *dy, float *dwt, int c0,
                                          int c1);

#endif
