/* misc.h - prototypes of the batch-norm and activation kernels (contracts in kernels.h)
 * for each ISA: reference (ref/misc-ref.c: the scalar table and the test oracle),
 * AVX2+FMA (misc-avx2.c), AVX-512 (misc-avx512.c: the same code, misc-x86.h, at 16
 * lanes; bit-identical to AVX2) and NEON (misc-neon.c). Declarations only, so any file may
 * include it; each table-*.c takes its own. */
#ifndef MPNAS_KERNELS_MISC_H
#define MPNAS_KERNELS_MISC_H

#include <stddef.h>

#include "kernels/kernels.h"

/* ---- reference ---- */
void mpnas__f32_bn_stats__ref(int m, int c, size_t ld, const float *x, double *mean,
                              double *m2);
void mpnas__f32_bn_apply__ref(int m, int c, size_t ld, const float *x, const float *mu,
                              const float *k, const float *b, int act, float *norm, float *y);
void mpnas__f32_bn_bwd_reduce__ref(int m, int c, size_t ld, const float *x, const float *dy,
                                   const float *mu, double *s0, double *s1, double *s2);
void mpnas__f32_bn_bwd_reduce_act__ref(int m, int c, size_t ld, const float *x,
                                       const float *dy, const float *mu, const float *k,
                                       const float *b, int act, float *g, double *s0, double *s1,
                                       double *s2);
void mpnas__f32_bn_bwd_dx__ref(int m, int c, size_t ld, const float *x, const float *dy,
                               const float *mu, const float *a, const float *b,
                               const float *d, float *dx);
void mpnas__f32_act_fwd__ref(int act, size_t n, const float *x, float *y);
void mpnas__f32_act_bwd__ref(int act, size_t n, const float *x, const float *dy, float *dx);

/* ---- AVX2+FMA ---- */
void mpnas__f32_bn_stats__avx2(int m, int c, size_t ld, const float *x, double *mean,
                               double *m2);
void mpnas__f32_bn_apply__avx2(int m, int c, size_t ld, const float *x, const float *mu,
                               const float *k, const float *b, int act, float *norm, float *y);
void mpnas__f32_bn_bwd_reduce__avx2(int m, int c, size_t ld, const float *x, const float *dy,
                                    const float *mu, double *s0, double *s1, double *s2);
void mpnas__f32_bn_bwd_reduce_act__avx2(int m, int c, size_t ld, const float *x,
                                        const float *dy, const float *mu, const float *k,
                                        const float *b, int act, float *g, double *s0, double *s1,
                                        double *s2);
void mpnas__f32_bn_bwd_dx__avx2(int m, int c, size_t ld, const float *x, const float *dy,
                                const float *mu, const float *a, const float *b,
                                const float *d, float *dx);
void mpnas__f32_act_fwd__avx2(int act, size_t n, const float *x, float *y);
void mpnas__f32_act_bwd__avx2(int act, size_t n, const float *x, const float *dy, float *dx);

/* ---- AVX-512 F/VL/BW/DQ ---- */
void mpnas__f32_bn_stats__avx512(int m, int c, size_t ld, const float *x, double *mean,
                                 double *m2);
void mpnas__f32_bn_apply__avx512(int m, int c, size_t ld, const float *x, const float *mu,
                                 const float *k, const float *b, int act, float *norm,
                                 float *y);
void mpnas__f32_bn_bwd_reduce__avx512(int m, int c, size_t ld, const float *x,
                                      const float *dy, const float *mu, double *s0,
                                      double *s1, double *s2);
void mpnas__f32_bn_bwd_reduce_act__avx512(int m, int c, size_t ld, const float *x,
                                          const float *dy, const float *mu, const float *k,
                                          const float *b, int act, float *g, double *s0, double *s1,
                                          double *s2);
void mpnas__f32_bn_bwd_dx__avx512(int m, int c, size_t ld, const float *x, const float *dy,
                                  const float *mu, const float *a, const float *b,
                                  const float *d, float *dx);
void mpnas__f32_act_fwd__avx512(int act, size_t n, const float *x, float *y);
void mpnas__f32_act_bwd__avx512(int act, size_t n, const float *x, const float *dy,
                                float *dx);

/* ---- NEON ---- */
void mpnas__f32_bn_stats__neon(int m, int c, size_t ld, const float *x, double *mean,
                               double *m2);
void mpnas__f32_bn_apply__neon(int m, int c, size_t ld, const float *x, const float *mu,
                               const float *k, const float *b, int act, float *norm, float *y);
void mpnas__f32_bn_bwd_reduce__neon(int m, int c, size_t ld, const float *x, const float *dy,
                                    const float *mu, double *s0, double *s1, double *s2);
void mpnas__f32_bn_bwd_reduce_act__neon(int m, int c, size_t ld, const float *x,
                                        const float *dy, const float *mu, const float *k,
                                        const float *b, int act, float *g, double *s0, double *s1,
                                        double *s2);
void mpnas__f32_bn_bwd_dx__neon(int m, int c, size_t ld, const float *x, const float *dy,
                                const float *mu, const float *a, const float *b,
                                const float *d, float *dx);
void mpnas__f32_act_fwd__neon(int act, size_t n, const float *x, float *y);
void mpnas__f32_act_bwd__neon(int act, size_t n, const float *x, const float *dy, float *dx);

#endif
