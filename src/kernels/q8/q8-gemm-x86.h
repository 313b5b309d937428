/* q8-gemm-x86.h - the x86 int8 pointwise GEMM, written once and included by
 * q8-avx2.c (Q8_VNNI 0) and q8-vnni-avx2.c (Q8_VNNI 1), which define Q8_NAME(f) for
 * their function names. Only the inner product differs:
 *  - AVX2: weights widened to int16 at pack time, KS = 2 k per 32-bit lane, x widened
 *    to int16 pairs once per row block; _mm256_madd_epi16 then adds two int16 products
 *    into int32 exactly (|sum| <= 2 * 128 * 128, no saturation, unlike maddubs).
 *  - VNNI: KS = 4 k per lane as bytes; x is made unsigned (x + 128) for
 *    _mm256_dpbusd_avx_epi32 (u8 x s8, four products added into int32, no
 *    intermediate saturation), and the 128 is taken off with the zero point.
 * Packed layout (64-byte aligned pieces): int32 column sums for n rounded up to 16, then
 * per panel of 16 output channels and per group of KS k, 64 bytes: channels 0-7 then
 * 8-15, each lane holding that channel's KS weights (zero past k or n).
 * Micro-kernel 6 rows x 16 channels (12 accumulators + 2 weight vectors + 1 broadcast;
 * without VNNI each product needs a register too, and gcc spills accumulators in the k
 * loop, but a 4-row tile with no spill measured 5-10% slower on the Zen 5 VM, bench-q8
 * --only pw --isa avx2, 3 alternating runs, 2026-12-04: not kept);
 * the x rows of a block are converted into a stack buffer, KC k at a time.
 * acc = sum x * w - (x_zero [+ 128]) * colsum is exact in int32 (kernels.h). */
#ifndef Q8_VNNI
#error "define Q8_VNNI and Q8_NAME before including q8-gemm-x86.h"
#endif

#define Q8_MR 6
#define Q8_KC 512 /* k per conversion of x (stack: 6 x 512 x 2 bytes) */
#if Q8_VNNI
#define Q8_KS 4
/* vpdpbusd in asm with the accumulator tied ("+x"): through the intrinsic, gcc 12 gave
 * each product a fresh register, then copied it back and spilled accumulators in every
 * k step (measured in q8_block_6: 5 stores and 10 moves per 12 dot products). */
MPNAS_AVX2_INLINE __m256i q8_dpbusd(__m256i acc, __m256i x, __m256i w) {
  __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(x), "x"(w)); /* %{ %}: literal braces */
  return acc;
}
#define Q8_DOT(acc, x, w) q8_dpbusd(acc, x, w)
#else
#define Q8_KS 2
#define Q8_DOT(acc, x, w) _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))
#endif

#include "kernels/q8/q8-pack-x86.h"

/* One row of x, k values from p, into the conversion buffer (int16, or u8 = x + 128),
 * padded with zeros to a whole group (its weights are zero anyway). */
MPNAS_AVX2_INLINE void q8_convert(const int8_t *p, int kc, int32_t *dst) {
  int i = 0;
#if Q8_VNNI
  uint8_t *d = (uint8_t *)dst;
  const __m256i flip = _mm256_set1_epi8((char)0x80);
  for (; i + 32 <= kc; i += 32)
    _mm256_storeu_si256((__m256i *)(void *)(d + i),
                        _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(p + i)), flip));
  for (; i + 16 <= kc; i += 16)
    _mm_storeu_si128((__m128i *)(void *)(d + i),
                     _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + i)),
                                   _mm256_castsi256_si128(flip)));
  if (i + 8 <= kc) { /* k = 24, 40, ..: no byte loop for 8 of them */
    _mm_storel_epi64((__m128i *)(void *)(d + i),
                     _mm_xor_si128(_mm_loadl_epi64((const __m128i *)(const void *)(p + i)),
                                   _mm256_castsi256_si128(flip)));
    i += 8;
  }
  for (; i < kc; i++) d[i] = (uint8_t)(p[i] + 128);
  for (; i % 4 != 0; i++) d[i] = 0;
#else
  int16_t *d = (int16_t *)dst;
  for (; i + 16 <= kc; i += 16)
    _mm256_storeu_si256((__m256i *)(void *)(d + i),
                        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(p + i))));
  if (i + 8 <= kc) {
    _mm_storeu_si128((__m128i *)(void *)(d + i),
                     _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(const void *)(p + i))));
    i += 8;
  }
  for (; i < kc; i++) d[i] = p[i];
  if (i % 2 != 0) d[i] = 0;
#endif
}

/* Rows [0, MR) of a row block times panel b: accumulate over all of k (converting x
 * per chunk unless `converted`, i.e. k <= KC and done once per row block), then the
 * epilogue. x, y and res point at the block's first row. */
MPNAS_AVX2_INLINE void q8_block(const int MR, int k, int n, int converted, const int8_t *x,
                                int32_t xs[][Q8_KC / Q8_KS], const char *wb, const int32_t *cs,
                                int32_t corr, int j0, const q8_epi_consts *ec, int8_t *y,
                                const int8_t *res) {
  /* The accumulators start at -(x_zero [+ 128]) * colsum, so the epilogue has no zero
   * correction to subtract: the same int32 result (the sum wraps modulo 2^32 on the way
   * and ends in range, kernels.h). */
  const __m256i vc = _mm256_set1_epi32(corr);
  const __m256i c0 = _mm256_mullo_epi32(vc, _mm256_load_si256((const __m256i *)(const void *)cs));
  const __m256i c1 = _mm256_mullo_epi32(vc, _mm256_load_si256((const __m256i *)(const void *)(cs + 8)));
  const __m256i n0 = _mm256_sub_epi32(_mm256_setzero_si256(), c0);
  const __m256i n1 = _mm256_sub_epi32(_mm256_setzero_si256(), c1);
  __m256i acc[Q8_MR][2];
MPNAS_UNROLL(6)
  for (int r = 0; r < Q8_MR; r++) acc[r][0] = n0, acc[r][1] = n1;
  for (int k0 = 0; k0 < k; k0 += Q8_KC) {
    const int kc = k - k0 < Q8_KC ? k - k0 : Q8_KC;
    if (!converted)
      for (int r = 0; r < MR; r++) q8_convert(x + (size_t)r * k + k0, kc, xs[r]);
    const __m256i *wq = (const __m256i *)(const void *)(wb + (size_t)(k0 / Q8_KS) * 64);
    const int nq = (kc + Q8_KS - 1) / Q8_KS;
    /* Named accumulators, not acc[][]: with the array gcc kept memory copies of some and
     * stored them in every k step. MR is a constant, so unused rows vanish. */
    __m256i a00 = acc[0][0], a01 = acc[0][1], a10 = acc[1][0], a11 = acc[1][1];
    __m256i a20 = acc[2][0], a21 = acc[2][1], a30 = acc[3][0], a31 = acc[3][1];
    __m256i a40 = acc[4][0], a41 = acc[4][1], a50 = acc[5][0], a51 = acc[5][1];
    for (int q = 0; q < nq; q++) {
      const __m256i w0 = _mm256_load_si256(wq + 2 * q), w1 = _mm256_load_si256(wq + 2 * q + 1);
#define Q8_ROW(r)                                                \
  if (MR > r) {                                                  \
    const __m256i xb = _mm256_set1_epi32(xs[r][q]);              \
    a##r##0 = Q8_DOT(a##r##0, xb, w0);                           \
    a##r##1 = Q8_DOT(a##r##1, xb, w1);                           \
  }
      Q8_ROW(0) Q8_ROW(1) Q8_ROW(2) Q8_ROW(3) Q8_ROW(4) Q8_ROW(5)
#undef Q8_ROW
    }
    acc[0][0] = a00, acc[0][1] = a01, acc[1][0] = a10, acc[1][1] = a11;
    acc[2][0] = a20, acc[2][1] = a21, acc[3][0] = a30, acc[3][1] = a31;
    acc[4][0] = a40, acc[4][1] = a41, acc[5][0] = a50, acc[5][1] = a51;
  }
  /* A local copy: the int8 stores below may alias *ec, which would be reloaded after
   * each of them. */
  const q8_epi_consts ek = *ec;
  const int nc = n - j0 < 16 ? n - j0 : 16;
  const q8_chan ch0 = q8_chan_load(&ek, j0, nc);
  const q8_chan ch1 = nc > 8 ? q8_chan_load(&ek, j0 + 8, nc - 8) : ch0;
  int r0 = 0;
  if (nc == 16) {
    /* A full panel, two rows at a time: packs_epi32 of a row's two vectors holds its
     * channels (0-3 8-11 | 4-7 12-15) as int16, packs_epi16 of two rows' bytes (r 0-3,
     * 8-11, r+1 0-3, 8-11 | r 4-7, 12-15, r+1 4-7, 12-15), and one dword permute puts
     * row r in the low half, row r+1 in the high one: 7 operations per 32 outputs where
     * q8_store16 takes 7 per 16. Saturation and the byte max as q8_store16. */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i lo = _mm256_broadcastsi128_si256(ek.lo8);
MPNAS_UNROLL(3)
    for (; r0 + 1 < MR; r0 += 2) {
      const size_t row = (size_t)r0 * n + j0;
      const __m256i v00 = q8_epi8(&ek, ch0, acc[r0][0], res != NULL ? res + row : NULL, 8);
      const __m256i v01 = q8_epi8(&ek, ch1, acc[r0][1], res != NULL ? res + row + 8 : NULL, 8);
      const __m256i v10 = q8_epi8(&ek, ch0, acc[r0 + 1][0], res != NULL ? res + row + n : NULL, 8);
      const __m256i v11 =
          q8_epi8(&ek, ch1, acc[r0 + 1][1], res != NULL ? res + row + n + 8 : NULL, 8);
      __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(v00, v01), _mm256_packs_epi32(v10, v11));
      b = _mm256_max_epi8(_mm256_permutevar8x32_epi32(b, order), lo);
      _mm_storeu_si128((__m128i *)(void *)(y + row), _mm256_castsi256_si128(b));
      _mm_storeu_si128((__m128i *)(void *)(y + row + n), _mm256_extracti128_si256(b, 1));
    }
  }
  /* Unrolled so that acc is indexed by constants only: with a loop here gcc kept a
   * memory copy of the 12 accumulators and stored them in every k step. From 0, not
   * r0: clang 14 cannot fully unroll a loop with a variable start (-Wpass-failed). */
MPNAS_UNROLL(6)
  for (int r = 0; r < MR; r++) {
    if (r < r0) continue;
    const size_t row = (size_t)r * n + j0;
    __m256i v0 = q8_epi8(&ek, ch0, acc[r][0], res != NULL ? res + row : NULL,
                         nc < 8 ? nc : 8);
    if (nc <= 8) {
      q8_store8(y + row, v0, nc, ek.lo8);
      continue;
    }
    __m256i v1 = q8_epi8(&ek, ch1, acc[r][1],
                         res != NULL ? res + row + 8 : NULL, nc - 8);
    q8_store16(y + row, v0, v1, nc, ek.lo8);
  }
}

#define Q8_BLOCK_FN(MR)                                                                   \
  static void q8_block_##MR(int k, int n, int converted, const int8_t *x,                 \
                            int32_t xs[][Q8_KC / Q8_KS], const char *wb, const int32_t *cs, \
                            int32_t corr, int j0, const q8_epi_consts *ec, int8_t *y,     \
                            const int8_t *res) {                                          \
    q8_block(MR, k, n, converted, x, xs, wb, cs, corr, j0, ec, y, res);                   \
  }
Q8_BLOCK_FN(1)
Q8_BLOCK_FN(2)
Q8_BLOCK_FN(3)
Q8_BLOCK_FN(4)
Q8_BLOCK_FN(5)
Q8_BLOCK_FN(6)

void Q8_NAME(q8_gemm)(int m, int k, int n, const int8_t *x, int32_t x_zero, const void *packed,
                      const mpnas__q8_epilogue *e, int8_t *y) {
  typedef void (*block_fn)(int, int, int, const int8_t *, int32_t[][Q8_KC / Q8_KS], const char *,
                           const int32_t *, int32_t, int, const q8_epi_consts *, int8_t *,
                           const int8_t *);
  static const block_fn blocks[Q8_MR + 1] = {NULL,      q8_block_1, q8_block_2, q8_block_3,
                                              q8_block_4, q8_block_5, q8_block_6};
  const int nb = q8_panels(n), kq = q8_groups(k);
  const int32_t *cs = packed;
  const char *wbase = (const char *)packed + (size_t)nb * 16 * sizeof(int32_t);
  int32_t xs[Q8_MR][Q8_KC / Q8_KS] __attribute__((aligned(32)));
  const q8_epi_consts ec = q8_epi_init(e);
#if Q8_VNNI
  const int32_t corr = x_zero + 128;
#else
  const int32_t corr = x_zero;
#endif
  const int converted = k <= Q8_KC;
  for (int r0 = 0; r0 < m; r0 += Q8_MR) {
    const int mr = m - r0 < Q8_MR ? m - r0 : Q8_MR;
    const int8_t *xr = x + (size_t)r0 * k;
    if (converted)
      for (int r = 0; r < mr; r++) q8_convert(xr + (size_t)r * k, k, xs[r]);
    const int8_t *res = e->residual != NULL ? e->residual + (size_t)r0 * n : NULL;
    for (int b = 0; b < nb; b++)
      blocks[mr](k, n, converted, xr, xs, wbase + (size_t)b * kq * 64, cs + 16 * b, corr, 16 * b,
                 &ec, y + (size_t)r0 * n, res);
  }
}
