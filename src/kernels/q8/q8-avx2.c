/* q8-avx2.c - int8 inference kernels, AVX2 (kernels.h, "int8 inference"; the reference
 * is ref/q8-ref.c and every output matches it exactly).
 *
 * Pointwise GEMM: q8-gemm-x86.h with int16 pairs and _mm256_madd_epi16.
 *
 * Depthwise forward: 16 channels per step, and pairs of kernel ROWS per _mm256_madd_epi16:
 * the bytes of input rows 2g and 2g+1 at one pixel are interleaved (unpack) and widened
 * to int16 pairs once per pixel and output row, then each pair feeds the K outputs
 * whose window covers that pixel (one madd per tap pair and 8 channels, where widening
 * each tap separately cost a convert, a subtract and a shuffle per tap and lost to the
 * float kernel). The weights' pairs are built once per channel block. Pixels outside the
 * image are given the value x_zero and the zero point comes off at the end
 * (acc = sum x * w - x_zero * sum w), so the inner loops have no bounds checks and no
 * subtraction. Loop order: channel block, output row, chunks of DW_OC outputs (the
 * widened pixels of a chunk sit in a stack buffer), register tiles of DW_T outputs.
 * K = 1, 3, 5, 7 at stride 1 and 2 are specialised; anything else takes the reference.
 * Since 2026-12-04 (branch wip/q8b), K = 3, 5, 7 pair kernel COLUMNS instead of rows,
 * so that each input row's pairs serve all the output rows that read it (cr_run,
 * below; dw_run keeps K = 1). */
#include <stdint.h>
#include <string.h>

#include "kernels/q8/q8-avx2.h"
#include "kernels/q8/q8-simd.h"

#define Q8_VNNI 0
#define Q8_NAME(f) mpnas__##f##__avx2
#include "kernels/q8/q8-gemm-x86.h"

#define DW_MAXK 7
#define DW_MAXG 4 /* row pairs of the largest K */
#define DW_OC 16  /* outputs per chunk */
#define DW_T 4    /* outputs per register tile: 8 accumulators + 2 weights */
#define DW_COLS ((DW_OC - 1) * 2 + DW_MAXK)

/* 16 bytes at p, or the first nc (< 16) of them. */
MPNAS_AVX2_INLINE __m128i ld16(const int8_t *p, int nc) {
  if (nc >= 16) return _mm_loadu_si128((const __m128i *)(const void *)p);
  int8_t t[16] = {0};
  memcpy(t, p, (size_t)nc);
  return _mm_loadu_si128((const __m128i *)(const void *)t);
}

/* Interleave two rows' 16 bytes and widen: int16 pairs for channels 0-7 and 8-15. */
MPNAS_AVX2_INLINE void pair16(__m128i a, __m128i b, __m256i *out) {
  out[0] = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a, b));
  out[1] = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(a, b));
}

typedef struct {
  const mpnas__dw_shape *s;
  q8_epi_consts ec;
  q8_chan ch[2];
  int cb, nc;
  __m256i corr[2];
} dw_ctx;

/* Requantise and store outputs t0 .. t0 + T - 1 of a tile (both depthwise forms): the
 * zero-point correction comes off the int32 sums, then the epilogue of q8-simd.h. */
MPNAS_AVX2_INLINE void tile_store(const int T, const dw_ctx *d, __m256i acc[][2], int t0,
                                  int8_t *out) {
  const int c = d->s->c;
  for (int t = 0; t < T; t++) {
    int8_t *q = out + (size_t)(t0 + t) * c;
    __m256i v0 = q8_epi8(&d->ec, d->ch[0], _mm256_sub_epi32(acc[t][0], d->corr[0]), NULL,
                         d->nc < 8 ? d->nc : 8);
    if (d->nc <= 8) {
      q8_store8(q, v0, d->nc, d->ec.lo8);
      continue;
    }
    __m256i v1 = q8_epi8(&d->ec, d->ch[1], _mm256_sub_epi32(acc[t][1], d->corr[1]), NULL,
                         d->nc - 8);
    q8_store16(q, v0, v1, d->nc, d->ec.lo8);
  }
}

/* Outputs t0 .. t0+T-1 of the chunk: P holds the chunk's widened pixels. */
MPNAS_AVX2_INLINE void dw_tile(const int K, const int S, const int T, const dw_ctx *d,
                               __m256i P[][DW_COLS][2], __m256i W[][DW_MAXK][2], int t0,
                               int8_t *out) {
  const int G = (K + 1) / 2;
  __m256i acc[DW_T][2];
MPNAS_UNROLL(4)
  for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm256_setzero_si256();
MPNAS_UNROLL(4)
  for (int g = 0; g < G; g++)
MPNAS_UNROLL(7)
    for (int kx = 0; kx < K; kx++) {
      const __m256i w0 = W[g][kx][0], w1 = W[g][kx][1];
MPNAS_UNROLL(4)
      for (int t = 0; t < T; t++) {
        const int col = (t0 + t) * S + kx;
        acc[t][0] = _mm256_add_epi32(acc[t][0], _mm256_madd_epi16(P[g][col][0], w0));
        acc[t][1] = _mm256_add_epi32(acc[t][1], _mm256_madd_epi16(P[g][col][1], w1));
      }
    }
  tile_store(T, d, acc, t0, out);
}

MPNAS_AVX2_INLINE void dw_run(const int K, const int S, const mpnas__dw_shape *s,
                              const int8_t *x, int32_t x_zero, const int8_t *wt,
                              const mpnas__q8_epilogue *e, int8_t *y, int oh0, int oh1) {
  const int G = (K + 1) / 2, c = s->c;
  const __m128i xzv = _mm_set1_epi8((char)x_zero);
  __m256i W[DW_MAXG][DW_MAXK][2];
  __m256i P[DW_MAXG][DW_COLS][2];
  dw_ctx d;
  d.s = s;
  d.ec = q8_epi_init(e);
  for (int cb = 0; cb < c; cb += 16) {
    d.cb = cb;
    d.nc = c - cb < 16 ? c - cb : 16;
    __m256i ws0 = _mm256_setzero_si256(), ws1 = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int g = 0; g < G; g++)
      for (int kx = 0; kx < K; kx++) {
        __m128i a = ld16(wt + ((size_t)(2 * g) * K + kx) * c + cb, d.nc);
        __m128i b = 2 * g + 1 < K ? ld16(wt + ((size_t)(2 * g + 1) * K + kx) * c + cb, d.nc)
                                  : _mm_setzero_si128();
        pair16(a, b, W[g][kx]);
        ws0 = _mm256_add_epi32(ws0, _mm256_madd_epi16(W[g][kx][0], ones));
        ws1 = _mm256_add_epi32(ws1, _mm256_madd_epi16(W[g][kx][1], ones));
      }
    d.ch[0] = q8_chan_load(&d.ec, cb, d.nc);
    d.ch[1] = d.nc > 8 ? q8_chan_load(&d.ec, cb + 8, d.nc - 8) : d.ch[0];
    d.corr[0] = _mm256_mullo_epi32(ws0, _mm256_set1_epi32(x_zero));
    d.corr[1] = _mm256_mullo_epi32(ws1, _mm256_set1_epi32(x_zero));
    for (int oy = oh0; oy < oh1; oy++) {
      const int8_t *rp[2 * DW_MAXG];
      for (int ky = 0; ky < 2 * G; ky++) {
        const int iy = oy * S + ky - s->pad;
        rp[ky] = (ky < K && iy >= 0 && iy < s->h) ? x + (size_t)iy * s->w * c + cb : NULL;
      }
      int8_t *yrow = y + (size_t)oy * s->wo * c + cb;
      for (int ox0 = 0; ox0 < s->wo; ox0 += DW_OC) {
        const int noc = s->wo - ox0 < DW_OC ? s->wo - ox0 : DW_OC;
        const int ncols = (noc - 1) * S + K, ix0 = ox0 * S - s->pad;
        for (int g = 0; g < G; g++)
          for (int col = 0; col < ncols; col++) {
            const int ix = ix0 + col;
            const int in = ix >= 0 && ix < s->w;
            __m128i a = (in && rp[2 * g]) ? ld16(rp[2 * g] + (size_t)ix * c, d.nc) : xzv;
            __m128i b = (in && rp[2 * g + 1]) ? ld16(rp[2 * g + 1] + (size_t)ix * c, d.nc) : xzv;
            pair16(a, b, P[g][col]);
          }
        int8_t *out = yrow + (size_t)ox0 * c;
        int t = 0;
        for (; t + DW_T <= noc; t += DW_T) dw_tile(K, S, DW_T, &d, P, W, t, out);
        for (; t < noc; t++) dw_tile(K, S, 1, &d, P, W, t, out);
      }
    }
  }
}

/* ---- K = 3, 5, 7: the column-pair form, rows reused ------------------------------------
 * As q8-vnni-avx2.c's column quads: for one input row, pair j holds pixels j and j+1 per
 * channel, widened to int16 pairs; a window row of K taps is the pairs at its columns
 * 0, 2, .., K-1 (the last one's second weight zero) against (w[ky][2g], w[ky][2g+1]):
 * the same number of madds as the row pairs above. Each input row's pairs are built
 * once per column chunk, kept in a ring of K rows (slot iy % K) and read by every
 * output row whose window covers that row, where dw_run rebuilt them per output row.
 * Exact int32 sums in another order: bit-identical outputs. */
#define CR_RING (3 * 93)         /* pairs in the ring (2 vectors of 32 bytes each) */
#define CR_COLS 96               /* pairs per row and chunk, at most (K = 3: 93) */
#define CR_PIX (2 * CR_COLS + 2) /* pixels a chunk's pairs read, at most */
/* Outputs per column chunk: the pairs of K rows in the ring. */
#define CR_CW(K, S) (CR_RING / (K) - 2 * (((K) + 1) / 2 - 1) / (S))

MPNAS_AVX2_INLINE void cr_build(const int S, const mpnas__dw_shape *s, const int8_t *xr, int nc,
                                int j0, int ncols, __m128i xzv, __m256i out[][2]) {
  __m128i px[CR_PIX];
  const int npx = S * (ncols - 1) + 2;
  for (int p = 0; p < npx; p++) {
    const int ix = j0 + p;
    px[p] = (ix >= 0 && ix < s->w) ? ld16(xr + (size_t)ix * s->c, nc) : xzv;
  }
  for (int c = 0; c < ncols; c++) pair16(px[S * c], px[S * c + 1], out[c]);
}

/* Outputs t0 .. t0 + T - 1 of the chunk; rows[ky]: window row ky's pairs. */
MPNAS_AVX2_INLINE void cr_tile(const int K, const int S, const int T, const dw_ctx *d,
                               const __m256i *const rows[DW_MAXK], __m256i W[][DW_MAXG][2],
                               int t0, int8_t *out) {
  const int G = (K + 1) / 2;
  __m256i acc[DW_T][2];
MPNAS_UNROLL(4)
  for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm256_setzero_si256();
MPNAS_UNROLL(7)
  for (int ky = 0; ky < K; ky++)
MPNAS_UNROLL(4)
    for (int g = 0; g < G; g++) {
      const __m256i w0 = W[ky][g][0], w1 = W[ky][g][1];
MPNAS_UNROLL(4)
      for (int t = 0; t < T; t++) {
        const __m256i *p = rows[ky] + (size_t)(t0 + t + 2 * g / S) * 2;
        acc[t][0] = _mm256_add_epi32(acc[t][0], _mm256_madd_epi16(p[0], w0));
        acc[t][1] = _mm256_add_epi32(acc[t][1], _mm256_madd_epi16(p[1], w1));
      }
    }
  tile_store(T, d, acc, t0, out);
}

MPNAS_AVX2_INLINE void cr_run(const int K, const int S, const mpnas__dw_shape *s,
                              const int8_t *x, int32_t x_zero, const int8_t *wt,
                              const mpnas__q8_epilogue *e, int8_t *y, int oh0, int oh1) {
  const int G = (K + 1) / 2, c = s->c;
  const __m128i xzv = _mm_set1_epi8((char)x_zero);
  __m256i W[DW_MAXK][DW_MAXG][2];
  __m256i ring[CR_RING][2], pad[CR_COLS][2];
  const int CW = CR_CW(K, S), RC = CR_RING / K;
  int tag[DW_MAXK];
  pair16(xzv, xzv, pad[0]);
  for (int cc = 1; cc < CR_COLS; cc++) pad[cc][0] = pad[0][0], pad[cc][1] = pad[0][1];
  dw_ctx d;
  d.s = s;
  d.ec = q8_epi_init(e);
  for (int cb = 0; cb < c; cb += 16) {
    d.cb = cb;
    d.nc = c - cb < 16 ? c - cb : 16;
    __m256i ws0 = _mm256_setzero_si256(), ws1 = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int ky = 0; ky < K; ky++)
      for (int g = 0; g < G; g++) {
        __m128i a = ld16(wt + ((size_t)ky * K + 2 * g) * c + cb, d.nc);
        __m128i b = 2 * g + 1 < K ? ld16(wt + ((size_t)ky * K + 2 * g + 1) * c + cb, d.nc)
                                  : _mm_setzero_si128();
        pair16(a, b, W[ky][g]);
        ws0 = _mm256_add_epi32(ws0, _mm256_madd_epi16(W[ky][g][0], ones));
        ws1 = _mm256_add_epi32(ws1, _mm256_madd_epi16(W[ky][g][1], ones));
      }
    d.ch[0] = q8_chan_load(&d.ec, cb, d.nc);
    d.ch[1] = d.nc > 8 ? q8_chan_load(&d.ec, cb + 8, d.nc - 8) : d.ch[0];
    d.corr[0] = _mm256_mullo_epi32(ws0, _mm256_set1_epi32(x_zero));
    d.corr[1] = _mm256_mullo_epi32(ws1, _mm256_set1_epi32(x_zero));
    for (int ox0 = 0; ox0 < s->wo; ox0 += CW) {
      const int noc = s->wo - ox0 < CW ? s->wo - ox0 : CW;
      const int ncols = noc + 2 * (G - 1) / S, j0 = ox0 * S - s->pad;
      for (int i = 0; i < K; i++) tag[i] = -1;
      for (int oy = oh0; oy < oh1; oy++) {
        const __m256i *rows[DW_MAXK];
        for (int ky = 0; ky < K; ky++) {
          const int iy = oy * S + ky - s->pad;
          if (iy < 0 || iy >= s->h) {
            rows[ky] = &pad[0][0];
            continue;
          }
          const int slot = iy % K;
          if (tag[slot] != iy) {
            cr_build(S, s, x + (size_t)iy * s->w * c + cb, d.nc, j0, ncols, xzv,
                     ring + (size_t)slot * RC);
            tag[slot] = iy;
          }
          rows[ky] = &ring[(size_t)slot * RC][0];
        }
        int8_t *out = y + ((size_t)oy * s->wo + ox0) * c + cb;
        int t = 0;
        for (; t + DW_T <= noc; t += DW_T) cr_tile(K, S, DW_T, &d, rows, W, t, out);
        for (; t < noc; t++) cr_tile(K, S, 1, &d, rows, W, t, out);
      }
    }
  }
}

#define CR_FN(K, S)                                                                          \
  static void cr_##K##_##S(const mpnas__dw_shape *s, const int8_t *x, int32_t x_zero,         \
                           const int8_t *wt, const mpnas__q8_epilogue *e, int8_t *y, int oh0, \
                           int oh1) {                                                        \
    cr_run(K, S, s, x, x_zero, wt, e, y, oh0, oh1);                                          \
  }
CR_FN(3, 1)
CR_FN(5, 1)
CR_FN(7, 1)
CR_FN(3, 2)
CR_FN(5, 2)
CR_FN(7, 2)

#define DW_FN(K, S)                                                                          \
  static void dw_##K##_##S(const mpnas__dw_shape *s, const int8_t *x, int32_t x_zero,         \
                           const int8_t *wt, const mpnas__q8_epilogue *e, int8_t *y, int oh0, \
                           int oh1) {                                                        \
    dw_run(K, S, s, x, x_zero, wt, e, y, oh0, oh1);                                          \
  }
DW_FN(1, 1) /* K = 1: one tap per row, nothing to reuse across output rows */
DW_FN(1, 2)

void mpnas__q8_dwconv_fwd__avx2(const mpnas__dw_shape *s, const int8_t *x, int32_t x_zero,
                                const int8_t *wt, const mpnas__q8_epilogue *e, int8_t *y,
                                int oh0, int oh1) {
  mpnas__q8_dw_fwd_fn f = NULL;
  if (s->stride == 1 || s->stride == 2) {
    const int i = s->stride - 1;
    switch (s->k) {
      case 1: f = i ? dw_1_2 : dw_1_1; break;
      case 3: f = i ? cr_3_2 : cr_3_1; break;
      case 5: f = i ? cr_5_2 : cr_5_1; break;
      case 7: f = i ? cr_7_2 : cr_7_1; break;
      default: break;
    }
  }
  if (f == NULL) f = mpnas__q8_dwconv_fwd__ref; /* other K: rare, and exact either way */
  f(s, x, x_zero, wt, e, y, oh0, oh1);
}
