/* q8-vnni-avx512.c - int8 kernels with AVX512-VNNI (vpdpbusd on zmm: 16 int32 lanes, four
 * u8 x s8 products added into each, no intermediate saturation) for the "avx512+vnni"
 * table (table-avx2.c), which dispatch.c picks only when CPUID reports AVX-512 F/VL/BW/DQ
 * and AVX512_VNNI. Built with AVX512FLAGS and -mavx512vnni (Makefile: *-vnni-avx512.c).
 *
 * GEMM. The packed layout is that of q8-gemm-x86.h with VNNI (int32 column sums for n
 * rounded up to 16, then per panel of 16 output channels and per group of 4 k, 64
 * bytes: one zmm, lane l holding channel l's four weights; q8-pack-x86.h packs it for
 * both), and the table's packing is its own (the model keys packing on the table). The
 * micro-kernel takes 6 rows x 4 panels (64 channels): 24 zmm accumulators, 4 weight
 * vectors and a broadcast of 4 x bytes per row; smaller tiles at the edges (MR 1-6 x
 * NP 1-4, constants). The epilogue is q8-avx2.h's on 16 lanes (g_out16): the same
 * float operations in the same order, so results are the reference's (and the AVX2
 * kernels') bit for bit. acc = sum (x + 128) w - (x_zero + 128) colsum, exact in
 * int32 modulo 2^32 (kernels.h).
 *
 * Depthwise: q8-dw-vnni-x86.h on ymm with EVEX vpdpbusd (AVX512-VNNI + VL; the CPU need
 * not have AVX-VNNI). */
#include <stdint.h>
#include <string.h>

#include <immintrin.h>

#include "kernels/q8/q8-avx2.h"
#include "kernels/q8/q8-simd.h"

#define Q8_NAME(f) mpnas__##f##__avx512_vnni

/* vpdpbusd in asm with the accumulator tied (see q8-gemm-x86.h: through the intrinsic gcc
 * copied products around and spilled accumulators). "v": any of the 32 vector registers;
 * {evex}: the AVX512-VNNI encoding, never the VEX one of AVX-VNNI. */
MPNAS_AVX2_INLINE __m256i q8_dpbusd(__m256i acc, __m256i x, __m256i w) {
  __asm__("%{evex%} vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w));
  return acc;
}
MPNAS_AVX2_INLINE __m512i q8_dpbusd512(__m512i acc, __m512i x, __m512i w) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w));
  return acc;
}

#include "kernels/q8/q8-dw-vnni-x86.h"

/* ---- GEMM --------------------------------------------------------------------------- */

#define G_MR 6
#define G_NP 4     /* panels of 16 channels per tile */
#define G_KC 1024  /* k per conversion of x (stack: 6 x 1024 bytes) */

#define Q8_VNNI 1
#define Q8_KS 4
#include "kernels/q8/q8-pack-x86.h"

/* One row of x, kc values from p, as u8 = x + 128, zero-padded to a whole group. */
MPNAS_AVX2_INLINE void g_convert(const int8_t *p, int kc, uint8_t *d) {
  int i = 0;
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  for (; i + 64 <= kc; i += 64)
    _mm512_storeu_si512((void *)(d + i), _mm512_xor_si512(_mm512_loadu_si512((const void *)(p + i)), flip));
  if (i < kc) { /* masked: no byte loop */
    const __mmask64 m = (1ull << (kc - i)) - 1; /* kc - i < 64 */
    _mm512_mask_storeu_epi8(d + i, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, p + i), flip));
    i = kc;
  }
  for (; i % 4 != 0; i++) d[i] = 0;
}

/* The epilogue on 16 channels in one zmm: q8-avx2.h's q8_epi8 lane for lane (the same
 * float operations, operands and order: bit-identical), then vpmovsdb (signed saturation
 * to int8, as q8_store16's two saturating packs) and the byte max with qmin. */
typedef struct {
  __m512 inv, oz, hi, rs;
  __m512i rz;
  __m128i lo8;
  int real;
  const float *mult, *bias;
} g_epiz;

MPNAS_AVX2_INLINE g_epiz g_epiz_init(const q8_epi_consts *k) {
  g_epiz z;
  z.inv = _mm512_broadcastss_ps(_mm256_castps256_ps128(k->inv));
  z.oz = _mm512_broadcastss_ps(_mm256_castps256_ps128(k->oz));
  z.hi = _mm512_broadcastss_ps(_mm256_castps256_ps128(k->hi));
  z.rs = _mm512_broadcastss_ps(_mm256_castps256_ps128(k->rs));
  z.rz = _mm512_broadcastd_epi32(_mm256_castsi256_si128(k->rz));
  z.lo8 = k->lo8;
  z.real = k->real;
  z.mult = k->mult;
  z.bias = k->bias;
  return z;
}

/* 16 channels of one row (an accumulator) through the epilogue; nc <= 16 (mask km). */
MPNAS_AVX2_INLINE void g_out16(const g_epiz *z, __m512 m, __m512 b, __m512i a, __mmask16 km,
                               const int8_t *res, int8_t *y) {
  __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), m, b);
  if (z->real) { /* mpnas__avx2_act(MPNAS__ACT_HSWISH, v) */
    const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
    const __m512 r = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, _mm512_set1_ps(3.0f)), zero), six);
    v = _mm512_mul_ps(_mm512_mul_ps(v, r), _mm512_set1_ps(1.0f / 6.0f));
  }
  if (res != NULL) {
    const __m512i r = _mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(km, res)), z->rz);
    v = _mm512_fmadd_ps(z->rs, _mm512_cvtepi32_ps(r), v);
  }
  if (z->real) v = _mm512_fmadd_ps(v, z->inv, z->oz);
  v = _mm512_min_ps(z->hi, v);
  const __m128i o = _mm_max_epi8(_mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v)), z->lo8);
  _mm_mask_storeu_epi8(y, km, o);
}

/* Rows [0, MR) of a row block times panels [b0, b0 + NP): all of k, then the epilogue.
 * x, y and res point at the block's first row; wb at panel b0's weights, cs at its
 * column sums. */
MPNAS_AVX2_INLINE void g_block(const int MR, const int NP, int k, int n, int converted,
                               const int8_t *x, uint8_t xs[][G_KC], const char *wb, size_t pstride,
                               const int32_t *cs, int32_t corr, int j0, const q8_epi_consts *ec,
                               int8_t *y, const int8_t *res) {
  const __m512i vc = _mm512_set1_epi32(corr);
  __m512i init[G_NP];
  for (int p = 0; p < G_NP; p++)
    init[p] = p < NP ? _mm512_sub_epi32(_mm512_setzero_si512(),
                                        _mm512_mullo_epi32(vc, _mm512_loadu_si512((const void *)(cs + 16 * p))))
                     : _mm512_setzero_si512();
  /* Named accumulators (q8-gemm-x86.h: with an array gcc kept memory copies). */
  __m512i a00 = init[0], a01 = init[1], a02 = init[2], a03 = init[3];
  __m512i a10 = init[0], a11 = init[1], a12 = init[2], a13 = init[3];
  __m512i a20 = init[0], a21 = init[1], a22 = init[2], a23 = init[3];
  __m512i a30 = init[0], a31 = init[1], a32 = init[2], a33 = init[3];
  __m512i a40 = init[0], a41 = init[1], a42 = init[2], a43 = init[3];
  __m512i a50 = init[0], a51 = init[1], a52 = init[2], a53 = init[3];
  for (int k0 = 0; k0 < k; k0 += G_KC) {
    const int kc = k - k0 < G_KC ? k - k0 : G_KC;
    if (!converted)
      for (int r = 0; r < MR; r++) g_convert(x + (size_t)r * k + k0, kc, xs[r]);
    const char *wq = wb + (size_t)(k0 / 4) * 64;
    const int nq = (kc + 3) / 4;
    for (int q = 0; q < nq; q++) {
      const char *wp = wq + (size_t)q * 64;
      const __m512i w0 = _mm512_loadu_si512((const void *)wp);
      const __m512i w1 = NP > 1 ? _mm512_loadu_si512((const void *)(wp + pstride)) : w0;
      const __m512i w2 = NP > 2 ? _mm512_loadu_si512((const void *)(wp + 2 * pstride)) : w0;
      const __m512i w3 = NP > 3 ? _mm512_loadu_si512((const void *)(wp + 3 * pstride)) : w0;
#define G_ROW(r)                                                       \
  if (MR > r) {                                                        \
    int32_t xv;                                                        \
    memcpy(&xv, xs[r] + 4 * q, 4);                                     \
    const __m512i xb = _mm512_set1_epi32(xv);                          \
    a##r##0 = q8_dpbusd512(a##r##0, xb, w0);                           \
    if (NP > 1) a##r##1 = q8_dpbusd512(a##r##1, xb, w1);               \
    if (NP > 2) a##r##2 = q8_dpbusd512(a##r##2, xb, w2);               \
    if (NP > 3) a##r##3 = q8_dpbusd512(a##r##3, xb, w3);               \
  }
      G_ROW(0) G_ROW(1) G_ROW(2) G_ROW(3) G_ROW(4) G_ROW(5)
#undef G_ROW
    }
  }
  /* A local copy: the int8 stores may alias *ec. */
  const g_epiz z = g_epiz_init(ec);
  const __m512i acc[G_MR][G_NP] = {{a00, a01, a02, a03}, {a10, a11, a12, a13},
                                   {a20, a21, a22, a23}, {a30, a31, a32, a33},
                                   {a40, a41, a42, a43}, {a50, a51, a52, a53}};
MPNAS_UNROLL(4)
  for (int p = 0; p < NP; p++) {
    const int j = j0 + 16 * p;
    if (j >= n) break;
    const int nc = n - j < 16 ? n - j : 16;
    const __mmask16 km = (__mmask16)(nc >= 16 ? 0xffffu : (1u << nc) - 1);
    const __m512 m = _mm512_maskz_loadu_ps(km, z.mult + j);
    const __m512 b = z.bias != NULL ? _mm512_maskz_loadu_ps(km, z.bias + j) : _mm512_setzero_ps();
MPNAS_UNROLL(6)
    for (int r = 0; r < MR; r++) {
      const size_t row = (size_t)r * n + j;
      g_out16(&z, m, b, acc[r][p], km, res != NULL ? res + row : NULL, y + row);
    }
  }
}

typedef void (*g_block_fn)(int, int, int, const int8_t *, uint8_t[][G_KC], const char *, size_t,
                           const int32_t *, int32_t, int, const q8_epi_consts *, int8_t *,
                           const int8_t *);
#define G_BLOCK_FN(MR, NP)                                                                     \
  static void g_block_##MR##_##NP(int k, int n, int converted, const int8_t *x,                \
                                  uint8_t xs[][G_KC], const char *wb, size_t ps,                \
                                  const int32_t *cs, int32_t corr, int j0,                     \
                                  const q8_epi_consts *ec, int8_t *y, const int8_t *res) {     \
    g_block(MR, NP, k, n, converted, x, xs, wb, ps, cs, corr, j0, ec, y, res);                 \
  }
#define G_BLOCK_ROW(MR) G_BLOCK_FN(MR, 1) G_BLOCK_FN(MR, 2) G_BLOCK_FN(MR, 3) G_BLOCK_FN(MR, 4)
G_BLOCK_ROW(1)
G_BLOCK_ROW(2)
G_BLOCK_ROW(3)
G_BLOCK_ROW(4)
G_BLOCK_ROW(5)
G_BLOCK_ROW(6)
#define G_ENTRY(MR) {g_block_##MR##_1, g_block_##MR##_2, g_block_##MR##_3, g_block_##MR##_4}

void Q8_NAME(q8_gemm)(int m, int k, int n, const int8_t *x, int32_t x_zero, const void *packed,
                      const mpnas__q8_epilogue *e, int8_t *y) {
  static const g_block_fn blocks[G_MR][G_NP] = {G_ENTRY(1), G_ENTRY(2), G_ENTRY(3),
                                                G_ENTRY(4), G_ENTRY(5), G_ENTRY(6)};
  const int nb = q8_panels(n), kq = q8_groups(k);
  const int32_t *cs = packed;
  const char *wbase = (const char *)packed + (size_t)nb * 16 * sizeof(int32_t);
  const size_t ps = (size_t)kq * 64;
  uint8_t xs[G_MR][G_KC] __attribute__((aligned(64)));
  const q8_epi_consts ec = q8_epi_init(e);
  const int32_t corr = x_zero + 128;
  const int converted = k <= G_KC;
  for (int r0 = 0; r0 < m; r0 += G_MR) {
    const int mr = m - r0 < G_MR ? m - r0 : G_MR;
    const int8_t *xr = x + (size_t)r0 * k;
    if (converted)
      for (int r = 0; r < mr; r++) g_convert(xr + (size_t)r * k, k, xs[r]);
    const int8_t *res = e->residual != NULL ? e->residual + (size_t)r0 * n : NULL;
    for (int b = 0; b < nb; b += G_NP) {
      const int np = nb - b < G_NP ? nb - b : G_NP;
      blocks[mr - 1][np - 1](k, n, converted, xr, xs, wbase + (size_t)b * ps, ps, cs + 16 * b,
                             corr, 16 * b, &ec, y + (size_t)r0 * n, res);
    }
  }
}
