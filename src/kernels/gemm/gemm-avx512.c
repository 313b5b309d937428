/* gemm-avx512.c - pointwise convolution as GEMM, AVX-512 (F, VL, BW, DQ): y = x . w with
 * the fused epilogue, and the weight gradient dw += x^T . dy. The "avx512" tables'
 * GEMM (table-avx2.c; dispatch.c picks them where the CPU has AVX-512 and the OS saves
 * the zmm state).
 *
 * Bit-identical to gemm-avx2.c. Every output element is the same chain of fused
 * multiply-adds in the same order: acc = 0, then acc = fma(x[i][p], w[p][j], acc) for
 * p = 0, 1, ..., k-1 (a k-slice boundary stores the partial sum in y and reloads it,
 * which changes nothing), then the same epilogue operations (skipped, as there, when
 * scale and shift are NULL and act is NONE; the activations and the vector exp are the
 * AVX2 ones on 16 lanes). The weight gradient sums each dw element over blocks of MB =
 * 64 rows from zero and adds each block's sum to dw, as there. So results do not depend
 * on which x86 table runs, and tests/test_kernels.c checks it with exact equality.
 *
 * What 512 bits change is the tile: 8 x 32 (16 zmm accumulators, 2 B loads and 8
 * broadcasts per k step, against 6 x 16 with 12 ymm in gemm-avx2.c: 2.7x the FLOPs per
 * broadcast). The 32 registers would hold up to 14 x 32, but on the benchmark shapes
 * (docs/PERFORMANCE.md, "AVX-512 kernel table") 6, 8 and 10 rows measured alike and 12
 * and 14 slower; 8 keeps the tails small. The sizes are #ifndef so a build can try
 * others (-DMR32=.. -DMR16=.. -DMC=.., MC a multiple of both).
 *
 * Packed weights: the n output channels are cut into panels of 32 columns; panel q
 * holds rows p = 0..k-1 of its 32 columns contiguously (k x 32, K-major), zero-padded
 * past n. When the last panel would hold 16 columns or fewer it is 16 wide instead.
 * Panel q starts at q * 32 * k. A 32-wide panel runs MR32 rows per micro-tile, a 16-wide
 * one MR16 (one accumulator per row).
 */
#include "kernels/simd-avx2.h"
#include "kernels/simd-avx512.h"

/* Cache blocking (floats): a KC x 32 panel slice is 24 KiB (L1 holds it plus the x rows
 * of a micro-tile); an MC x KC block of x is at most 72 KiB (L2). KC changes no result
 * (a k-slice's partial sums are stored in y and reloaded exactly). */
#define KC 192
#ifndef MR32
#define MR32 8 /* rows of a 32-wide tile (2 accumulators each) */
#endif
#ifndef MR16
#define MR16 16 /* rows of a 16-wide tile */
#endif
#ifndef MC
#define MC 96 /* a multiple of both tile heights */
#endif

#define MPNAS_AVX512_INLINE MPNAS_AVX2_INLINE

/* Lanes [0, n) set, n in 0..16. */
MPNAS_AVX512_INLINE __mmask16 tail_mask(int n) {
  return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

/* mpnas__avx512_exp and mpnas__avx512_act: act-x86.h at 16 lanes, the AVX2 code's
 * operations on 16 lanes (max/min keep the AVX2 operand order, so NaN and -0 come out
 * the same). */
#define VEC_LANES 16
#include "kernels/vec-x86.h"
#include "kernels/act-x86.h"
#include "kernels/vec-x86-end.h"

/* Load 16 floats, or the first n (the rest read as 0, nothing past them touched). */
MPNAS_AVX512_INLINE __m512 load16(const float *p, int n, __mmask16 m) {
  return n >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}
MPNAS_AVX512_INLINE void store16(float *p, __m512 v, int n, __mmask16 m) {
  if (n >= 16) _mm512_storeu_ps(p, v);
  else _mm512_mask_storeu_ps(p, m, v);
}

/* ---- Packing --------------------------------------------------------------------- */

/* Width of the panel holding columns [j, j + 32). */
static int panel_width(int n, int j) { return n - j <= 16 ? 16 : 32; }

size_t mpnas__f32_gemm_packed_floats__avx512(int k, int n) {
  int full = (n - 1) / 32; /* panels before the last one */
  return (size_t)k * (size_t)(32 * full + panel_width(n, 32 * full));
}

void mpnas__f32_gemm_pack__avx512(int k, int n, const float *w, float *packed) {
  for (int j = 0; j < n; j += 32) {
    int W = panel_width(n, j), nc = n - j < W ? n - j : W;
    float *dst = packed + (size_t)j * k;
    for (int p = 0; p < k; p++) {
      const float *src = w + (size_t)p * n + j;
      int c = 0;
      for (; c < nc; c++) dst[(size_t)p * W + c] = src[c];
      for (; c < W; c++) dst[(size_t)p * W + c] = 0.0f;
    }
  }
}

/* ---- Forward micro-kernel -------------------------------------------------------- */

typedef struct {
  const float *scale, *shift; /* at column j of the tile, or NULL */
  const float *residual;      /* at [i][j] of the tile (row stride ldc), or NULL */
  int act;
} epilogue;

/* One MR x (16*NV) tile of y over a k-slice of kc: a points at x[i][p0] (row stride
 * lda), b at the panel's row p0 (16*NV floats per row), c at y[i][j] (row stride ldc),
 * nc valid columns. `first` starts from zero instead of the partial sums already in c;
 * `e` (non-NULL on the last k-slice) applies the epilogue. */
MPNAS_AVX512_INLINE void gemm_tile(const int MR, const int NV, int kc, const float *a,
                                   size_t lda, const float *b, float *c, size_t ldc, int nc,
                                   int first, const epilogue *e) {
  __m512 acc[28][2];
  const int n0 = nc < 16 ? nc : 16, n1 = nc - 16 < 0 ? 0 : nc - 16;
  const __mmask16 m0 = tail_mask(n0), m1 = tail_mask(n1);
  MPNAS_UNROLL(28)
  for (int r = 0; r < MR; r++) {
    acc[r][0] = first ? _mm512_setzero_ps() : load16(c + r * ldc, n0, m0);
    if (NV == 2) acc[r][1] = first ? _mm512_setzero_ps() : load16(c + r * ldc + 16, n1, m1);
  }
  for (int p = 0; p < kc; p++) {
    const __m512 b0 = _mm512_loadu_ps(b + (size_t)p * 16 * NV);
    const __m512 b1 = _mm512_loadu_ps(b + (size_t)p * 16 * NV + 16 * (NV - 1));
    MPNAS_UNROLL(28)
    for (int r = 0; r < MR; r++) {
      const __m512 av = _mm512_set1_ps(a[r * lda + p]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      if (NV == 2) acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  if (e != NULL && (e->scale || e->shift || e->act != MPNAS__ACT_NONE)) {
    __m512 s0 = _mm512_set1_ps(1.0f), s1 = s0, t0 = _mm512_setzero_ps(), t1 = t0;
    if (e->scale) {
      s0 = load16(e->scale, n0, m0);
      if (NV == 2) s1 = load16(e->scale + 16, n1, m1);
    }
    if (e->shift) {
      t0 = load16(e->shift, n0, m0);
      if (NV == 2) t1 = load16(e->shift + 16, n1, m1);
    }
    MPNAS_UNROLL(28)
    for (int r = 0; r < MR; r++) {
      acc[r][0] = mpnas__avx512_act(e->act, _mm512_fmadd_ps(acc[r][0], s0, t0));
      if (NV == 2) acc[r][1] = mpnas__avx512_act(e->act, _mm512_fmadd_ps(acc[r][1], s1, t1));
    }
  }
  if (e != NULL && e->residual) {
    MPNAS_UNROLL(28)
    for (int r = 0; r < MR; r++) {
      acc[r][0] = _mm512_add_ps(acc[r][0], load16(e->residual + r * ldc, n0, m0));
      if (NV == 2)
        acc[r][1] = _mm512_add_ps(acc[r][1], load16(e->residual + r * ldc + 16, n1, m1));
    }
  }
  MPNAS_UNROLL(28)
  for (int r = 0; r < MR; r++) {
    store16(c + r * ldc, acc[r][0], n0, m0);
    if (NV == 2) store16(c + r * ldc + 16, acc[r][1], n1, m1);
  }
}

/* One instantiation per tile height, so a tile is a direct call with constant sizes. */
typedef void (*tile_fn)(int kc, const float *a, size_t lda, const float *b, float *c,
                        size_t ldc, int nc, int first, const epilogue *e);
#define TILE(MR, NV)                                                                       \
  static void tile_##MR##x##NV(int kc, const float *a, size_t lda, const float *b,          \
                               float *c, size_t ldc, int nc, int first, const epilogue *e) { \
    gemm_tile(MR, NV, kc, a, lda, b, c, ldc, nc, first, e);                                 \
  }
#define TILES_1_14(NV)                                                                      \
  TILE(1, NV) TILE(2, NV) TILE(3, NV) TILE(4, NV) TILE(5, NV) TILE(6, NV) TILE(7, NV)       \
  TILE(8, NV) TILE(9, NV) TILE(10, NV) TILE(11, NV) TILE(12, NV) TILE(13, NV) TILE(14, NV)
TILES_1_14(2)
TILES_1_14(1)
TILE(15, 1) TILE(16, 1) TILE(17, 1) TILE(18, 1) TILE(19, 1) TILE(20, 1) TILE(21, 1)
TILE(22, 1) TILE(23, 1) TILE(24, 1) TILE(25, 1) TILE(26, 1) TILE(27, 1) TILE(28, 1)
#define LIST_1_14(P, NV)                                                                    \
  P##1x##NV, P##2x##NV, P##3x##NV, P##4x##NV, P##5x##NV, P##6x##NV, P##7x##NV, P##8x##NV,   \
  P##9x##NV, P##10x##NV, P##11x##NV, P##12x##NV, P##13x##NV, P##14x##NV
#define LIST_15_28(P, NV)                                                                   \
  P##15x##NV, P##16x##NV, P##17x##NV, P##18x##NV, P##19x##NV, P##20x##NV, P##21x##NV,       \
  P##22x##NV, P##23x##NV, P##24x##NV, P##25x##NV, P##26x##NV, P##27x##NV, P##28x##NV
static const tile_fn tiles32[15] = {NULL, LIST_1_14(tile_, 2)};
static const tile_fn tiles16[29] = {NULL, LIST_1_14(tile_, 1), LIST_15_28(tile_, 1)};
_Static_assert(MR32 <= 14 && MR16 <= 28 && MC % MR32 == 0 && MC % MR16 == 0, "tile sizes");

void mpnas__f32_gemm__avx512(int m, int k, int n, const float *x, const float *packed,
                             const float *scale, const float *shift, int act,
                             const float *residual, float *y) {
  const int kslices = k > 0 ? (k + KC - 1) / KC : 1;
  const int panels32 = panel_width(n, 32 * ((n - 1) / 32)) == 32 ? (n + 31) / 32 : (n - 1) / 32;
  const int has16 = (n + 31) / 32 > panels32;
  for (int i0 = 0; i0 < m; i0 += MC) {
    int mc = m - i0 < MC ? m - i0 : MC;
    /* prefetch the next block of x rows in even portions over this block's micro-tiles
     * (as gemm-avx2.c: interleaved row streams defeat the hardware prefetcher) */
    int next = m - (i0 + mc) < MC ? m - (i0 + mc) : MC;
    const char *pf = (const char *)(x + (size_t)(i0 + mc) * k);
    const char *pf_end = pf + sizeof(float) * (size_t)next * k;
    int calls = kslices * (panels32 * ((mc + MR32 - 1) / MR32) + has16 * ((mc + MR16 - 1) / MR16));
    int per_call = (int)((size_t)(pf_end - pf) / 64 / (size_t)calls) + 1;
    int p0 = 0;
    do { /* k-slices; k == 0 still makes one (empty) slice so y gets the epilogue */
      int kc = k - p0 < KC ? k - p0 : KC, first = p0 == 0, last = p0 + kc >= k;
      for (int j = 0; j < n; j += 32) {
        int W = panel_width(n, j), nc = n - j < W ? n - j : W, MR = W == 32 ? MR32 : MR16;
        const float *b = packed + (size_t)j * k + (size_t)p0 * W;
        const tile_fn *tiles = W == 32 ? tiles32 : tiles16;
        for (int i = i0; i < i0 + mc; i += MR) {
          int mr = i0 + mc - i < MR ? i0 + mc - i : MR;
          for (int q = 0; q < per_call && pf < pf_end; q++, pf += 64) _mm_prefetch(pf, _MM_HINT_T0);
          epilogue e = {scale ? scale + j : NULL, shift ? shift + j : NULL,
                        residual ? residual + (size_t)i * n + j : NULL, act};
          tiles[mr](kc, x + (size_t)i * k + p0, (size_t)k, b, y + (size_t)i * n + j, (size_t)n,
                    nc, first, last ? &e : NULL);
        }
      }
      p0 += kc;
    } while (p0 < k);
  }
}

/* ---- Weight gradient ------------------------------------------------------------- */

/* Rows of x and dy per block, as gemm-avx2.c's MB: each dw element is the sum of its
 * blocks' sums, each block summed from zero; the same blocks give the same result. */
#define MB 64
#ifndef DMR32
#define DMR32 8 /* rows of dw per 32-column tile */
#endif
#ifndef DMR16
#define DMR16 16 /* per 16-column tile */
#endif

/* dw[p..p+MR)[j..j+16*NV) += sum over rows [i0, i1) of x[i][p+r] * dy[i][j..]. MASKED
 * (nc < 16*NV) is a compile-time variant, as in gemm-avx2.c. */
MPNAS_AVX512_INLINE void dw_tile(const int MR, const int NV, const int MASKED, int i0, int i1,
                                 int k, int n, const float *x, const float *dy, float *dw,
                                 int p, int j, int nc) {
  __m512 acc[28][2];
  const int n0 = nc < 16 ? nc : 16, n1 = nc - 16 < 0 ? 0 : nc - 16;
  const __mmask16 m0 = tail_mask(n0), m1 = tail_mask(n1);
  MPNAS_UNROLL(28)
  for (int r = 0; r < MR; r++) {
    acc[r][0] = _mm512_setzero_ps();
    acc[r][1] = _mm512_setzero_ps();
  }
  const float *xp = x + (size_t)i0 * k + p, *dp = dy + (size_t)i0 * n + j;
  for (int i = i0; i < i1; i++, xp += k, dp += n) {
    const __m512 d0 = MASKED ? _mm512_maskz_loadu_ps(m0, dp) : _mm512_loadu_ps(dp);
    const __m512 d1 = NV == 1 ? d0 : (MASKED ? _mm512_maskz_loadu_ps(m1, dp + 16) : _mm512_loadu_ps(dp + 16));
    MPNAS_UNROLL(28)
    for (int r = 0; r < MR; r++) {
      const __m512 xv = _mm512_set1_ps(xp[r]);
      acc[r][0] = _mm512_fmadd_ps(xv, d0, acc[r][0]);
      if (NV == 2) acc[r][1] = _mm512_fmadd_ps(xv, d1, acc[r][1]);
    }
  }
  MPNAS_UNROLL(28)
  for (int r = 0; r < MR; r++) {
    float *o = dw + (size_t)(p + r) * n + j;
    store16(o, _mm512_add_ps(load16(o, n0, m0), acc[r][0]), n0, m0);
    if (NV == 2) store16(o + 16, _mm512_add_ps(load16(o + 16, n1, m1), acc[r][1]), n1, m1);
  }
}

typedef void (*dw_tile_fn)(int i0, int i1, int k, int n, const float *x, const float *dy,
                           float *dw, int p, int j, int nc);
#define DWTILE(MR, NV)                                                                     \
  static void dwtile_##MR##x##NV(int i0, int i1, int k, int n, const float *x,              \
                                 const float *dy, float *dw, int p, int j, int nc) {        \
    if (nc < 16 * NV) dw_tile(MR, NV, 1, i0, i1, k, n, x, dy, dw, p, j, nc);                \
    else dw_tile(MR, NV, 0, i0, i1, k, n, x, dy, dw, p, j, nc);                             \
  }
#define DWTILES_1_14(NV)                                                                    \
  DWTILE(1, NV) DWTILE(2, NV) DWTILE(3, NV) DWTILE(4, NV) DWTILE(5, NV) DWTILE(6, NV)       \
  DWTILE(7, NV) DWTILE(8, NV) DWTILE(9, NV) DWTILE(10, NV) DWTILE(11, NV) DWTILE(12, NV)    \
  DWTILE(13, NV) DWTILE(14, NV)
DWTILES_1_14(2)
DWTILES_1_14(1)
DWTILE(15, 1) DWTILE(16, 1) DWTILE(17, 1) DWTILE(18, 1) DWTILE(19, 1) DWTILE(20, 1)
DWTILE(21, 1) DWTILE(22, 1) DWTILE(23, 1) DWTILE(24, 1) DWTILE(25, 1) DWTILE(26, 1)
DWTILE(27, 1) DWTILE(28, 1)
static const dw_tile_fn dwtiles32[15] = {NULL, LIST_1_14(dwtile_, 2)};
static const dw_tile_fn dwtiles16[29] = {NULL, LIST_1_14(dwtile_, 1), LIST_15_28(dwtile_, 1)};
_Static_assert(DMR32 <= 14 && DMR16 <= 28, "dw tile sizes");

void mpnas__f32_gemm_bwd_weight__avx512(int m, int k, int n, const float *x, const float *dy,
                                        float *dw, int k0, int k1) {
  const int jtiles = (n + 31) / 32;
  for (int i0 = 0; i0 < m; i0 += MB) {
    int i1 = m - i0 < MB ? m : i0 + MB, next = m - i1 < MB ? m - i1 : MB;
    /* prefetch the next block of x and dy rows over this block's tiles */
    const char *px = (const char *)(x + (size_t)i1 * k), *py = (const char *)(dy + (size_t)i1 * n);
    const char *px_end = px + sizeof(float) * (size_t)next * k;
    const char *py_end = py + sizeof(float) * (size_t)next * n;
    int calls = jtiles * ((k1 - k0 + DMR32 - 1) / DMR32);
    calls = calls > 0 ? calls : 1;
    int per_x = (int)((size_t)(px_end - px) / 64 / (size_t)calls) + 1;
    int per_y = (int)((size_t)(py_end - py) / 64 / (size_t)calls) + 1;
    for (int j = 0; j < n; j += 32) {
      int nc = n - j < 32 ? n - j : 32, MR = nc > 16 ? DMR32 : DMR16;
      const dw_tile_fn *t = nc > 16 ? dwtiles32 : dwtiles16;
      for (int p = k0; p < k1; p += MR) {
        int mr = k1 - p < MR ? k1 - p : MR;
        for (int q = 0; q < per_x && px < px_end; q++, px += 64) _mm_prefetch(px, _MM_HINT_T0);
        for (int q = 0; q < per_y && py < py_end; q++, py += 64) _mm_prefetch(py, _MM_HINT_T0);
        t[mr](i0, i1, k, n, x, dy, dw, p, j, nc);
      }
    }
  }
}
