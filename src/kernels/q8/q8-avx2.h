/* q8-avx2.h - helpers shared by the x86 int8 kernels (q8-avx2.c, q8-vnni-avx2.c): the
 * requantising epilogue of kernels.h on 8 channels, and the pointwise GEMM driver, which
 * each file instantiates with its own inner product (Q8_VNNI 0: int16 pairs and
 * _mm256_madd_epi16; 1: unsigned x signed byte quads and _mm256_dpbusd_avx_epi32).
 *
 * Exactness. Every output must equal the reference's bit for bit, so the epilogue does
 * the reference's float operations in its order, its fmaf as _mm256_fmadd_ps and nothing
 * else fused (-std=c11 keeps gcc from contracting, and clang does not contract across
 * intrinsic calls), and rounds with cvtps (half to even, like nearbyintf). */
#ifndef MPNAS_Q8_AVX2_H
#define MPNAS_Q8_AVX2_H

#include <string.h>

#include "kernels/ref/ref.h"
#include "kernels/simd-avx2.h"

/* The epilogue's per-call constants, copied out of the mpnas__q8_epilogue: stores
 * through int8_t pointers may alias anything, so fields read through e would be
 * reloaded after every store. */
typedef struct {
  __m256 inv, oz, hi, rs;
  __m256i rz;
  __m128i lo8; /* qmin in every byte: the stores' lower clamp */
  int real;    /* the real (hard-swish) form of kernels.h; else the folded one */
  const float *mult, *bias;
} q8_epi_consts;

MPNAS_AVX2_INLINE q8_epi_consts q8_epi_init(const mpnas__q8_epilogue *e) {
  q8_epi_consts k;
  k.inv = _mm256_set1_ps(e->out_inv_scale);
  k.oz = _mm256_set1_ps((float)e->out_zero);
  k.hi = _mm256_set1_ps((float)e->qmax);
  k.rs = _mm256_set1_ps(e->res_scale);
  k.rz = _mm256_set1_epi32(e->res_zero);
  k.lo8 = _mm_set1_epi8((char)e->qmin);
  k.real = e->act == MPNAS__ACT_HSWISH;
  k.mult = e->mult;
  k.bias = e->bias;
  return k;
}

/* The per-channel multiplier and bias of channels [c, c + nc), nc <= 8 (a NULL bias
 * is 0: adding +0 changes nothing but the sign of a zero, which rounding erases). */
typedef struct {
  __m256 m, b;
} q8_chan;
MPNAS_AVX2_INLINE q8_chan q8_chan_load(const q8_epi_consts *k, int c, int nc) {
  const __m256i mask = mpnas__avx2_tail_mask(nc < 8 ? nc : 8);
  q8_chan ch;
  ch.m = mpnas__avx2_load(k->mult + c, nc, mask);
  ch.b = k->bias != NULL ? mpnas__avx2_load(k->bias + c, nc, mask) : _mm256_setzero_ps();
  return ch;
}

/* 8 int32 accumulators -> int32 lanes <= qmax, to be stored by q8_store8 / q8_store16
 * (whose saturating packs and byte max finish the clamp to [qmin, qmax]). res: the
 * residual's bytes for these channels (nc <= 8 of them read), or NULL. */
MPNAS_AVX2_INLINE __m256i q8_epi8(const q8_epi_consts *k, q8_chan ch, __m256i acc,
                                  const int8_t *res, int nc) {
  __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), ch.m, ch.b);
  if (k->real) v = mpnas__avx2_act(MPNAS__ACT_HSWISH, v);
  if (res != NULL) {
    int64_t r8 = 0;
    if (nc >= 8) memcpy(&r8, res, 8);
    else memcpy(&r8, res, (size_t)nc);
    __m256i r = _mm256_sub_epi32(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(r8)), k->rz);
    v = _mm256_fmadd_ps(k->rs, _mm256_cvtepi32_ps(r), v);
  }
  if (k->real) v = _mm256_fmadd_ps(v, k->inv, k->oz);
  /* Only the upper clamp is done in float: min_ps(hi, v) gives v when v is NaN, and
   * cvtps_epi32 turns NaN, -inf and anything below -2^31 into INT32_MIN; the stores'
   * saturating packs take every lane below -128 to -128 and their byte max lifts
   * everything to qmin, so the result is the reference's clamp-then-round (rounding
   * is monotone and qmin an integer). The lower clamp on bytes costs one operation per
   * 16 outputs instead of one per 8. */
  v = _mm256_min_ps(k->hi, v);
  return _mm256_cvtps_epi32(v);
}

/* Store 8 int32 lanes <= qmax as nc <= 8 bytes, clamped below to qmin (lo8). */
MPNAS_AVX2_INLINE void q8_store8(int8_t *y, __m256i v, int nc, __m128i lo8) {
  __m128i p = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  p = _mm_max_epi8(_mm_packs_epi16(p, p), lo8);
  if (nc >= 8) _mm_storel_epi64((__m128i *)(void *)y, p);
  else {
    int64_t b = _mm_cvtsi128_si64(p);
    memcpy(y, &b, (size_t)nc);
  }
}

/* Store two 8-lane results as nc <= 16 bytes, clamped below to qmin (lo8). */
MPNAS_AVX2_INLINE void q8_store16(int8_t *y, __m256i a, __m256i b, int nc, __m128i lo8) {
  __m128i pa = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
  __m128i pb = _mm_packs_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
  __m128i p = _mm_max_epi8(_mm_packs_epi16(pa, pb), lo8);
  if (nc >= 16) _mm_storeu_si128((__m128i *)(void *)y, p);
  else {
    int8_t tmp[16];
    _mm_storeu_si128((__m128i *)(void *)tmp, p);
    memcpy(y, tmp, (size_t)nc);
  }
}

#endif
