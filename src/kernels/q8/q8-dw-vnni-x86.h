/* q8-dw-vnni-x86.h - the x86 VPDPBUSD depthwise forward on 32 channels (ymm), written once
 * and included by q8-vnni-avx2.c (AVX-VNNI, VEX encoding) and q8-vnni-avx512.c
 * (AVX512-VNNI + VL, EVEX encoding), which define Q8_NAME(f) and
 * q8_dpbusd(acc, u8, s8) before including it. */
/* ---- Depthwise forward with VPDPBUSD -------------------------------------------------
 * Four kernel taps per instruction: bytes of four pixels are interleaved per channel (two
 * rounds of unpacks, quad32), made unsigned (x + 128) and dotted with the matching four
 * weights. 32 channels per step; the unpacks work within 128-bit lanes, so an
 * accumulator holds channels (4i..4i+3 | 16+4i..16+4i+3) and two permutes per pair of
 * accumulators restore channel order before the epilogue (unscramble). Pixels outside
 * the image take the value x_zero; acc = sum (x + 128) w - (x_zero + 128) sum w.
 *
 * Which four taps: before 2026-12-04 (branch wip/q8b) four kernel ROWS at one pixel,
 * interleaved again for every output row; that interleave (4 loads, 4 xors, 8 unpacks per pixel and quad)
 * cost about as much as the dot products, and made the 32 px layers only 1.1-1.5x the
 * float kernel. Now four kernel COLUMNS of one row: for an input row, quad j holds pixels
 * j, j+1, j+2, j+3 per channel, and a window row of K taps is the quad at its first
 * column and, for K = 5 and 7, the one 4 columns on, against the weights (w[ky][0..3]),
 * (w[ky][4..6], 0): the same number of dpbusd (K x ceil(K / 4) per 8 channels). Each
 * input row's quads are built once per column chunk and kept in a ring of K rows (slot
 * iy % K: a window's K rows are consecutive, so never share a slot); they serve every
 * output row whose window covers that row: K output rows at stride 1, about K / 2 at
 * stride 2 (which needs only every other quad). Rows outside the image read a row of
 * x_zero quads. The int32 sums are the same numbers added in another order: exact, so
 * the outputs are the reference's bit for bit (kernels.h). Loop order: channel block,
 * column chunk (as wide as the ring allows: 46 outputs for K = 3, 24-26 for 5, 16-18
 * for 7; narrower chunks measured slower), output row, register tiles of 2 outputs. */

#define VD_MAXK 7
#define VD_MAXQ 2 /* column quads of the largest K */

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

/* The column-quad kernel (see the top of this section). */
#define VR_RING (7 * 20)         /* quads in the ring: 7 rows of 20 (K = 7: 16 outputs) */
#define VR_COLS 48               /* quads per row and chunk, at most (K = 3: 46) */
#define VR_PIX (2 * VR_COLS + 4) /* pixels a chunk's quads read, at most */
/* Outputs per column chunk: the quads of K rows in the ring. */
#define VR_CW(K, S) (VR_RING / (K) - 4 * (((K) + 3) / 4 - 1) / (S))

typedef __m256i vr_row[VR_COLS][4];

/* Input row xr (NULL: outside the image) -> its quads at columns j0 + S c, c < ncols. */
MPNAS_AVX2_INLINE void vr_build(const int S, const mpnas__dw_shape *s, const int8_t *xr, int nc,
                                int j0, int ncols, __m256i xzv, __m256i flip, __m256i out[][4]) {
  __m256i px[VR_PIX];
  const int npx = S * (ncols - 1) + 4;
  for (int p = 0; p < npx; p++) {
    const int ix = j0 + p;
    px[p] = (ix >= 0 && ix < s->w) ? _mm256_xor_si256(ld32(xr + (size_t)ix * s->c, nc), flip)
                                   : xzv;
  }
  for (int c = 0; c < ncols; c++) quad32(px + S * c, out[c]);
}

MPNAS_AVX2_INLINE void vr_store(const vd_ctx *d, __m256i acc[4], int8_t *o) {
  __m256i a[4], v[4];
  unscramble(acc, a);
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

/* Outputs t0 .. t0 + T - 1 of the chunk (T <= 2); rows[ky]: window row ky's quads. */
MPNAS_AVX2_INLINE void vr_tile(const int K, const int S, const int T, const vd_ctx *d,
                               const __m256i *const rows[VD_MAXK], __m256i W[][VD_MAXQ][4],
                               int t0, int8_t *out) {
  const int NQ = (K + 3) / 4;
  __m256i acc[2][4];
MPNAS_UNROLL(2)
  for (int t = 0; t < T; t++)
    for (int i = 0; i < 4; i++) acc[t][i] = _mm256_setzero_si256();
MPNAS_UNROLL(7)
  for (int ky = 0; ky < K; ky++)
MPNAS_UNROLL(2)
    for (int q = 0; q < NQ; q++) {
      __m256i w[4];
      for (int i = 0; i < 4; i++) w[i] = W[ky][q][i];
MPNAS_UNROLL(2)
      for (int t = 0; t < T; t++) {
        const __m256i *p = rows[ky] + (size_t)(t0 + t + 4 * q / S) * 4;
        for (int i = 0; i < 4; i++) acc[t][i] = q8_dpbusd(acc[t][i], p[i], w[i]);
      }
    }
  for (int t = 0; t < T; t++) vr_store(d, acc[t], out + (size_t)(t0 + t) * d->c);
}

MPNAS_AVX2_INLINE void vr_run(const int K, const int S, const mpnas__dw_shape *s,
                              const int8_t *x, int32_t x_zero, const int8_t *wt,
                              const mpnas__q8_epilogue *e, int8_t *y, int oh0, int oh1) {
  const int NQ = (K + 3) / 4, c = s->c;
  const __m256i flip = _mm256_set1_epi8((char)0x80);
  const __m256i xzv = _mm256_xor_si256(_mm256_set1_epi8((char)x_zero), flip);
  __m256i W[VD_MAXK][VD_MAXQ][4];
  __m256i ring[VR_RING][4];
  vr_row pad;
  const int CW = VR_CW(K, S), RC = VR_RING / K; /* ring row ky: ring[RC ky ..] */
  int tag[VD_MAXK];
  vd_ctx d;
  d.ec = q8_epi_init(e);
  d.c = c;
  for (int cc = 0; cc < VR_COLS; cc++)
    for (int i = 0; i < 4; i++) pad[cc][i] = xzv; /* quads of x_zero: any interleave of it */
  for (int cb = 0; cb < c; cb += 32) {
    d.nc = c - cb < 32 ? c - cb : 32;
    __m256i ws[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                     _mm256_setzero_si256()};
    const __m256i ones = _mm256_set1_epi8(1);
    for (int ky = 0; ky < K; ky++)
      for (int q = 0; q < NQ; q++) {
        __m256i r[4];
        for (int i = 0; i < 4; i++) {
          const int kx = 4 * q + i;
          r[i] = kx < K ? ld32(wt + ((size_t)ky * K + kx) * c + cb, d.nc) : _mm256_setzero_si256();
        }
        quad32(r, W[ky][q]);
        for (int i = 0; i < 4; i++) ws[i] = q8_dpbusd(ws[i], ones, W[ky][q][i]);
      }
    __m256i wsum[4];
    unscramble(ws, wsum);
    const __m256i vz = _mm256_set1_epi32(x_zero + 128);
    for (int g = 0; g < 4; g++) {
      d.corr[g] = _mm256_mullo_epi32(wsum[g], vz);
      const int ng = d.nc - 8 * g;
      d.ch[g] = q8_chan_load(&d.ec, cb + 8 * g, ng > 0 ? ng : 1);
    }
    for (int ox0 = 0; ox0 < s->wo; ox0 += CW) {
      const int noc = s->wo - ox0 < CW ? s->wo - ox0 : CW;
      const int ncols = noc + 4 * (NQ - 1) / S, j0 = ox0 * S - s->pad;
      for (int i = 0; i < K; i++) tag[i] = -1;
      for (int oy = oh0; oy < oh1; oy++) {
        const __m256i *rows[VD_MAXK];
        for (int ky = 0; ky < K; ky++) {
          const int iy = oy * S + ky - s->pad;
          if (iy < 0 || iy >= s->h) {
            rows[ky] = &pad[0][0];
            continue;
          }
          const int slot = iy % K;
          if (tag[slot] != iy) {
            vr_build(S, s, x + (size_t)iy * s->w * c + cb, d.nc, j0, ncols, xzv, flip,
                     ring + (size_t)slot * RC);
            tag[slot] = iy;
          }
          rows[ky] = &ring[(size_t)slot * RC][0];
        }
        int8_t *out = y + ((size_t)oy * s->wo + ox0) * c + cb;
        int t = 0;
        for (; t + 2 <= noc; t += 2) vr_tile(K, S, 2, &d, rows, W, t, out);
        if (t < noc) vr_tile(K, S, 1, &d, rows, W, t, out);
      }
    }
  }
}

#define VR_FN(K, S)                                                                          \
  static void vr_##K##_##S(const mpnas__dw_shape *s, const int8_t *x, int32_t x_zero,         \
                           const int8_t *wt, const mpnas__q8_epilogue *e, int8_t *y, int oh0, \
                           int oh1) {                                                        \
    vr_run(K, S, s, x, x_zero, wt, e, y, oh0, oh1);                                          \
  }
VR_FN(3, 1)
VR_FN(5, 1)
VR_FN(7, 1)
VR_FN(3, 2)
VR_FN(5, 2)
VR_FN(7, 2)

void Q8_NAME(q8_dwconv_fwd)(const mpnas__dw_shape *s, const int8_t *x, int32_t x_zero,
                                 const int8_t *wt, const mpnas__q8_epilogue *e, int8_t *y,
                                 int oh0, int oh1) {
  mpnas__q8_dw_fwd_fn f = NULL;
  if (s->stride == 1 || s->stride == 2) {
    const int i = s->stride - 1;
    switch (s->k) {
      case 3: f = i ? vr_3_2 : vr_3_1; break;
      case 5: f = i ? vr_5_2 : vr_5_1; break;
      case 7: f = i ? vr_7_2 : vr_7_1; break;
      default: break;
    }
  }
  /* K = 1 would waste three of four rows; it and the rest take the AVX2 kernel */
  if (f == NULL) f = mpnas__q8_dwconv_fwd__avx2;
  f(s, x, x_zero, wt, e, y, oh0, oh1);
}
