/* misc-avx512.c - the batch-norm and activation kernels of the "avx512" tables:
 * misc-x86.h at 16 lanes (zmm, AVX-512 F/VL/BW/DQ), bit-identical to misc-avx2.c (the
 * same code at 8 lanes; tests/test_kernels.c compares them with memcmp).
 *
 * Where zmm pays (bench_misc --kernels, docs/PERFORMANCE.md "AVX-512 BN and
 * activations"): sigmoid (the vector exp is compute: 1.3-2.2x), the reductions bn_stats
 * and bn_bwd_reduce (1.05-1.5x: half the accumulator chains per channel group), and every
 * pass whose operands sit in L2 (up to 1.8x). Streaming from memory, the elementwise
 * passes without exp measured 3-15% slower with zmm than with ymm on this Zen 5 (the same
 * bytes; ymm keeps more loads in flight per byte?), so past STREAM_FLOATS elements they
 * run the AVX2 kernels. Both widths give the same bits, so the switch changes no result. */
#include <string.h>

#include "kernels/misc/misc.h"
#include "kernels/simd-avx2.h"

#define VEC_LANES 16
#include "kernels/vec-x86.h"
#include "kernels/act-x86.h" /* mpnas__avx512_exp, mpnas__avx512_act */
#define MISC_API static
#define MISC_NAME(f) f##__zmm
#include "kernels/misc/misc-x86.h"

/* Elements (m * c, or n) past which an elementwise pass without exp takes the ymm
 * kernel: 4 MiB per operand, well past L2 (1 MiB). Measured: 2 MiB operands still
 * 1.0-1.3x with zmm, 8 MiB ones 0.85-0.97x. */
#define STREAM_FLOATS ((size_t)1 << 20)

static int stream_ymm(size_t elems, int act) {
  return act != MPNAS__ACT_SIGMOID && elems > STREAM_FLOATS;
}

void mpnas__f32_bn_stats__avx512(int m, int c, size_t ld, const float *x, double *mean,
                                 double *m2) {
  mpnas__f32_bn_stats__zmm(m, c, ld, x, mean, m2);
}

void mpnas__f32_bn_bwd_reduce__avx512(int m, int c, size_t ld, const float *x,
                                      const float *dy, const float *mu, double *s0,
                                      double *s1, double *s2) {
  mpnas__f32_bn_bwd_reduce__zmm(m, c, ld, x, dy, mu, s0, s1, s2);
}

void mpnas__f32_bn_apply__avx512(int m, int c, size_t ld, const float *x, const float *mu,
                                 const float *k, const float *b, int act, float *norm,
                                 float *y) {
  if (stream_ymm((size_t)m * (size_t)c, act))
    mpnas__f32_bn_apply__avx2(m, c, ld, x, mu, k, b, act, norm, y);
  else
    mpnas__f32_bn_apply__zmm(m, c, ld, x, mu, k, b, act, norm, y);
}

void mpnas__f32_bn_bwd_dx__avx512(int m, int c, size_t ld, const float *x, const float *dy,
                                  const float *mu, const float *a, const float *b,
                                  const float *d, float *dx) {
  if (stream_ymm((size_t)m * (size_t)c, MPNAS__ACT_NONE))
    mpnas__f32_bn_bwd_dx__avx2(m, c, ld, x, dy, mu, a, b, d, dx);
  else
    mpnas__f32_bn_bwd_dx__zmm(m, c, ld, x, dy, mu, a, b, d, dx);
}

void mpnas__f32_act_fwd__avx512(int act, size_t n, const float *x, float *y) {
  if (stream_ymm(n, act)) mpnas__f32_act_fwd__avx2(act, n, x, y);
  else mpnas__f32_act_fwd__zmm(act, n, x, y);
}

void mpnas__f32_act_bwd__avx512(int act, size_t n, const float *x, const float *dy,
                                float *dx) {
  if (stream_ymm(n, act)) mpnas__f32_act_bwd__avx2(act, n, x, dy, dx);
  else mpnas__f32_act_bwd__zmm(act, n, x, dy, dx);
}
