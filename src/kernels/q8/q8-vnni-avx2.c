/* q8-vnni-avx2.c - int8 kernels with AVX-VNNI (_mm256_dpbusd_avx_epi32: four u8 x s8
 * products added into each int32 lane in one instruction, no intermediate saturation):
 * the pointwise GEMM (q8-gemm-x86.h) and the depthwise forward (below). The only file
 * built with -mavxvnni (Makefile); its table, mpnas__kernels_avx2_vnni (table-avx2.c),
 * is chosen only when CPUID reports AVX-VNNI (dispatch.c). */
#include <stdint.h>
#include <string.h>

#include "kernels/q8/q8-avx2.h"
#include "kernels/q8/q8-simd.h"

#define Q8_VNNI 1
#define Q8_NAME(f) mpnas__##f##__avx2_vnni
#include "kernels/q8/q8-gemm-x86.h"

/* ---- Depthwise forward with VPDPBUSD -------------------------------------------------
 * Four kernel ROWS per instruction: at each pixel the bytes of input rows 4q..4q+3 are
 * interleaved per channel (two rounds of unpacks), made unsigned (x + 128) and dotted
 * with the matching four weights, so a 3x3 window costs 3 dpbusd per 8 channels where
 * the AVX2 kernel needs 6 madd + 6 add. 32 channels per step; the unpacks work within
 * 128-bit lanes, so an accumulator holds channels (4i..4i+3 | 16+4i..16+4i+3) and two
 * permutes per pair of accumulators restore channel order before the epilogue. Pixels
 * outside the image take the value x_zero; acc = sum (x + 128) w - (x_zero + 128) sum w.
 * Loop order as in q8-avx2.c: channel block, output row, chunks of VD_OC outputs
 * (widened pixels in a stack buffer), register tiles of VD_T outputs. */

#define VD_MAXK 7
#define VD_MAXQ 2 /* row quads of the largest K */
#define VD_OC 16
#define VD_T 2 /* 8 accumulators + 4 weight vectors */
#define VD_COLS ((VD_OC - 1) * 2 + VD_MAXK)

/* 32 bytes at p, or the first nc (< 32) of them. */
MPNAS_AVX2_INLINE __m256i ld32(const int8_t *p, int nc) {
  if (nc >= 32) return _mm256_loadu_si256((const __m256i *)(const void *)p);
  if (nc == 16)
    return _mm256_inserti128_si256(_mm256_setzero_si256(),
                                   _mm_loadu_si128((const __m128i *)(const void *)p), 0);
  int8_t t[32] = {0};
  memcpy(t, p, (size_t)nc);
  return _mm256_loadu_si256((const __m256i *)(const void *)t);
}

/* Interleave four rows' bytes per channel: out[i] = channels (4i..4i+3 | 16+4i..). */
MPNAS_AVX2_INLINE void quad32(const __m256i r[4], __m256i out[4]) {
  const __m256i a = _mm256_unpacklo_epi8(r[0], r[1]), b = _mm256_unpackhi_epi8(r[0], r[1]);
  const __m256i c = _mm256_unpacklo_epi8(r[2], r[3]), d = _mm256_unpackhi_epi8(r[2], r[3]);
  out[0] = _mm256_unpacklo_epi16(a, c);
  out[1] = _mm256_unpackhi_epi16(a, c);
  out[2] = _mm256_unpacklo_epi16(b, d);
  out[3] = _mm256_unpackhi_epi16(b, d);
}

/* Lane order (4i.. | 16+4i..) of v[0..3] -> channels 0-7, 8-15, 16-23, 24-31. */
MPNAS_AVX2_INLINE void unscramble(const __m256i v[4], __m256i o[4]) {
  o[0] = _mm256_permute2x128_si256(v[0], v[1], 0x20);
  o[1] = _mm256_permute2x128_si256(v[2], v[3], 0x20);
  o[2] = _mm256_permute2x128_si256(v[0], v[1], 0x31);
  o[3] = _mm256_permute2x128_si256(v[2], v[3], 0x31);
}

typedef struct {
  q8_epi_consts ec;
  q8_chan ch[4];
  __m256i corr[4]; /* channel order */
  int c, nc;
} vd_ctx;

MPNAS_AVX2_INLINE void vd_tile(const int K, const int S, const int T, const vd_ctx *d,
                               __m256i P[][VD_COLS][4], __m256i W[][VD_MAXK][4], int t0,
                               int8_t *out) {
  const int Q = (K + 3) / 4;
  __m256i acc[VD_T][4];
MPNAS_UNROLL(2)
  for (int t = 0; t < T; t++)
    for (int i = 0; i < 4; i++) acc[t][i] = _mm256_setzero_si256();
MPNAS_UNROLL(2)
  for (int q = 0; q < Q; q++)
MPNAS_UNROLL(7)
    for (int kx = 0; kx < K; kx++) {
      __m256i w[4];
      for (int i = 0; i < 4; i++) w[i] = W[q][kx][i];
MPNAS_UNROLL(2)
      for (int t = 0; t < T; t++) {
        const int col = (t0 + t) * S + kx;
        for (int i = 0; i < 4; i++) acc[t][i] = q8_dpbusd(acc[t][i], P[q][col][i], w[i]);
      }
    }
  for (int t = 0; t < T; t++) {
    int8_t *o = out + (size_t)(t0 + t) * d->c;
    __m256i a[4], v[4];
    unscramble(acc[t], a);
    for (int g = 0; g < 4; g++) {
      const int ng = d->nc - 8 * g;
      v[g] = ng > 0 ? q8_epi8(&d->ec, d->ch[g], _mm256_sub_epi32(a[g], d->corr[g]), NULL,
                              ng < 8 ? ng : 8)
                    : _mm256_setzero_si256();
    }
    if (d->nc <= 8) q8_store8(o, v[0], d->nc, d->ec.lo8);
    else q8_store16(o, v[0], v[1], d->nc < 16 ? d->nc : 16, d->ec.lo8);
    if (d->nc > 16) {
      if (d->nc <= 24) q8_store8(o + 16, v[2], d->nc - 16, d->ec.lo8);
      else q8_store16(o + 16, v[2], v[3], d->nc - 16, d->ec.lo8);
    }
  }
}

MPNAS_AVX2_INLINE void vd_run(const int K, const int S, const mpnas__dw_shape *s,
                              const int8_t *x, int32_t x_zero, const int8_t *wt,
                              const mpnas__q8_epilogue *e, int8_t *y, int oh0, int oh1) {
  const int Q = (K + 3) / 4, c = s->c;
  const __m256i flip = _mm256_set1_epi8((char)0x80);
  const __m256i xzv = _mm256_xor_si256(_mm256_set1_epi8((char)x_zero), flip);
  __m256i W[VD_MAXQ][VD_MAXK][4];
  __m256i P[VD_MAXQ][VD_COLS][4];
  vd_ctx d;
  d.ec = q8_epi_init(e);
  d.c = c;
  for (int cb = 0; cb < c; cb += 32) {
    d.nc = c - cb < 32 ? c - cb : 32;
    __m256i ws[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                     _mm256_setzero_si256()};
    const __m256i ones = _mm256_set1_epi8(1);
    for (int q = 0; q < Q; q++)
      for (int kx = 0; kx < K; kx++) {
        __m256i r[4];
        for (int i = 0; i < 4; i++) {
          const int ky = 4 * q + i;
          r[i] = ky < K ? ld32(wt + ((size_t)ky * K + kx) * c + cb, d.nc) : _mm256_setzero_si256();
        }
        quad32(r, W[q][kx]);
        for (int i = 0; i < 4; i++) ws[i] = _mm256_dpbusd_avx_epi32(ws[i], ones, W[q][kx][i]);
      }
    __m256i wsum[4];
    unscramble(ws, wsum);
    const __m256i vz = _mm256_set1_epi32(x_zero + 128);
    for (int g = 0; g < 4; g++) {
      d.corr[g] = _mm256_mullo_epi32(wsum[g], vz);
      const int ng = d.nc - 8 * g;
      d.ch[g] = q8_chan_load(&d.ec, cb + 8 * g, ng > 0 ? ng : 1);
    }
    for (int oy = oh0; oy < oh1; oy++) {
      const int8_t *rp[4 * VD_MAXQ];
      for (int ky = 0; ky < 4 * Q; ky++) {
        const int iy = oy * S + ky - s->pad;
        rp[ky] = (ky < K && iy >= 0 && iy < s->h) ? x + (size_t)iy * s->w * c + cb : NULL;
      }
      int8_t *yrow = y + (size_t)oy * s->wo * c + cb;
      for (int ox0 = 0; ox0 < s->wo; ox0 += VD_OC) {
        const int noc = s->wo - ox0 < VD_OC ? s->wo - ox0 : VD_OC;
        const int ncols = (noc - 1) * S + K, ix0 = ox0 * S - s->pad;
        for (int q = 0; q < Q; q++)
          for (int col = 0; col < ncols; col++) {
            const int ix = ix0 + col;
            const int in = ix >= 0 && ix < s->w;
            __m256i r[4];
            for (int i = 0; i < 4; i++) {
              const int8_t *p = rp[4 * q + i];
              r[i] = (in && p) ? _mm256_xor_si256(ld32(p + (size_t)ix * c, d.nc), flip) : xzv;
            }
            quad32(r, P[q][col]);
          }
        int8_t *out = yrow + (size_t)ox0 * c;
        int t = 0;
        for (; t + VD_T <= noc; t += VD_T) vd_tile(K, S, VD_T, &d, P, W, t, out);
        for (; t < noc; t++) vd_tile(K, S, 1, &d, P, W, t, out);
      }
    }
  }
}

#define VD_FN(K, S)                                                                          \
  static void vd_##K##_##S(const mpnas__dw_shape *s, const int8_t *x, int32_t x_zero,         \
                           const int8_t *wt, const mpnas__q8_epilogue *e, int8_t *y, int oh0, \
                           int oh1) {                                                        \
    vd_run(K, S, s, x, x_zero, wt, e, y, oh0, oh1);                                          \
  }
VD_FN(3, 1)
VD_FN(5, 1)
VD_FN(7, 1)
VD_FN(3, 2)
VD_FN(5, 2)
VD_FN(7, 2)

void mpnas__q8_dwconv_fwd__avx2_vnni(const mpnas__dw_shape *s, const int8_t *x, int32_t x_zero,
                                     const int8_t *wt, const mpnas__q8_epilogue *e, int8_t *y,
                                     int oh0, int oh1) {
  mpnas__q8_dw_fwd_fn f = NULL;
  if (s->stride == 1 || s->stride == 2) {
    const int i = s->stride - 1;
    switch (s->k) {
      case 3: f = i ? vd_3_2 : vd_3_1; break;
      case 5: f = i ? vd_5_2 : vd_5_1; break;
      case 7: f = i ? vd_7_2 : vd_7_1; break;
      default: break;
    }
  }
  /* K = 1 would waste three of four rows; it and the rest take the AVX2 kernel */
  if (f == NULL) f = mpnas__q8_dwconv_fwd__avx2;
  f(s, x, x_zero, wt, e, y, oh0, oh1);
}
