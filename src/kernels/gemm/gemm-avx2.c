/* gemm-avx2.c - pointwise convolution as GEMM, AVX2+FMA: y = x . w with the fused
 * epilogue, and the weight gradient dw += x^T . dy.
 *
 * Packed weights: the n output channels are cut into panels of 16 columns; panel q
 * holds rows p = 0..k-1 of its 16 columns contiguously (k x 16, K-major), zero-padded
 * past n. When the last panel would hold 8 columns or fewer it is 8 wide instead, so
 * n = 24 (a common bottleneck width) wastes nothing. Panel q starts at q * 16 * k.
 *
 * Forward micro-kernels: 6 rows x 16 columns (12 ymm accumulators, 2 B loads and 6
 * broadcasts of x per k step) and, for an 8-wide panel, 12 rows x 8 columns (12
 * accumulators). x is read in place: its rows are the pixels' channel vectors, already
 * contiguous in k. Blocking: MC rows of x (kept in L2) x KC of k (a 16-wide panel
 * slice of KC x 16 floats stays in L1 while the MC rows stream past it).
 */
#include "kernels/simd-avx2.h"

/* Cache blocking (floats): a KC x 16 panel slice is 12 KiB (L1 holds it plus the x
 * rows of a micro-tile); an MC x KC block of x is at most 72 KiB (L2). */
#define KC 192
#define MC 96 /* a multiple of both tile heights, 6 and 12 */

/* ---- Packing --------------------------------------------------------------------- */

/* Width of the panel holding columns [j, j + 16). */
static int panel_width(int n, int j) { return n - j <= 8 ? 8 : 16; }

size_t mpnas__f32_gemm_packed_floats__avx2(int k, int n) {
  int full = (n - 1) / 16; /* panels before the last one */
  return (size_t)k * (size_t)(16 * full + panel_width(n, 16 * full));
}

void mpnas__f32_gemm_pack__avx2(int k, int n, const float *w, float *packed) {
  for (int j = 0; j < n; j += 16) {
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

/* One MR x (8*NV) tile of y over a k-slice of kc: a points at x[i][p0] (row stride
 * lda), b at the panel's row p0 (8*NV floats per row), c at y[i][j] (row stride ldc),
 * nc valid columns. `first` starts from zero instead of the partial sums already in c;
 * `e` (non-NULL on the last k-slice) applies the epilogue. */
MPNAS_AVX2_INLINE void gemm_tile(const int MR, const int NV, int kc, const float *a,
                                 size_t lda, const float *b, float *c, size_t ldc, int nc,
                                 int first, const epilogue *e) {
  __m256 acc[12][2];
  const int n0 = nc < 8 ? nc : 8, n1 = nc - 8 < 0 ? 0 : nc - 8;
  const __m256i m0 = mpnas__avx2_tail_mask(n0), m1 = mpnas__avx2_tail_mask(n1 < 8 ? n1 : 8);
MPNAS_UNROLL(12)
  for (int r = 0; r < MR; r++) {
    acc[r][0] = first ? _mm256_setzero_ps() : mpnas__avx2_load(c + r * ldc, n0, m0);
    if (NV == 2) acc[r][1] = first ? _mm256_setzero_ps() : mpnas__avx2_load(c + r * ldc + 8, n1, m1);
  }
  for (int p = 0; p < kc; p++) {
    const __m256 b0 = _mm256_loadu_ps(b + (size_t)p * 8 * NV);
    const __m256 b1 = _mm256_loadu_ps(b + (size_t)p * 8 * NV + 8 * (NV - 1));
MPNAS_UNROLL(12)
    for (int r = 0; r < MR; r++) {
      const __m256 av = _mm256_broadcast_ss(a + r * lda + p);
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      if (NV == 2) acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  if (e != NULL && (e->scale || e->shift || e->act != MPNAS__ACT_NONE)) {
    __m256 s0 = _mm256_set1_ps(1.0f), s1 = s0, t0 = _mm256_setzero_ps(), t1 = t0;
    if (e->scale) {
      s0 = mpnas__avx2_load(e->scale, n0, m0);
      if (NV == 2) s1 = mpnas__avx2_load(e->scale + 8, n1, m1);
    }
    if (e->shift) {
      t0 = mpnas__avx2_load(e->shift, n0, m0);
      if (NV == 2) t1 = mpnas__avx2_load(e->shift + 8, n1, m1);
    }
MPNAS_UNROLL(12)
    for (int r = 0; r < MR; r++) {
      acc[r][0] = mpnas__avx2_act(e->act, _mm256_fmadd_ps(acc[r][0], s0, t0));
      if (NV == 2) acc[r][1] = mpnas__avx2_act(e->act, _mm256_fmadd_ps(acc[r][1], s1, t1));
    }
  }
  if (e != NULL && e->residual) {
MPNAS_UNROLL(12)
    for (int r = 0; r < MR; r++) {
      acc[r][0] = _mm256_add_ps(acc[r][0], mpnas__avx2_load(e->residual + r * ldc, n0, m0));
      if (NV == 2)
        acc[r][1] = _mm256_add_ps(acc[r][1], mpnas__avx2_load(e->residual + r * ldc + 8, n1, m1));
    }
  }
MPNAS_UNROLL(12)
  for (int r = 0; r < MR; r++) {
    mpnas__avx2_store(c + r * ldc, acc[r][0], n0, m0);
    if (NV == 2) mpnas__avx2_store(c + r * ldc + 8, acc[r][1], n1, m1);
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
TILE(1, 2) TILE(2, 2) TILE(3, 2) TILE(4, 2) TILE(5, 2) TILE(6, 2)
TILE(1, 1) TILE(2, 1) TILE(3, 1) TILE(4, 1) TILE(5, 1) TILE(6, 1)
TILE(7, 1) TILE(8, 1) TILE(9, 1) TILE(10, 1) TILE(11, 1) TILE(12, 1)
static const tile_fn tiles16[7] = {NULL, tile_1x2, tile_2x2, tile_3x2, tile_4x2, tile_5x2, tile_6x2};
static const tile_fn tiles8[13] = {NULL,      tile_1x1, tile_2x1, tile_3x1,  tile_4x1,
                                   tile_5x1,  tile_6x1, tile_7x1, tile_8x1,  tile_9x1,
                                   tile_10x1, tile_11x1, tile_12x1};

void mpnas__f32_gemm__avx2(int m, int k, int n, const float *x, const float *packed,
                           const float *scale, const float *shift, int act,
                           const float *residual, float *y) {
  const int kslices = k > 0 ? (k + KC - 1) / KC : 1;
  const int panels16 = panel_width(n, 16 * ((n - 1) / 16)) == 16 ? (n + 15) / 16 : (n - 1) / 16;
  const int has8 = (n + 15) / 16 > panels16;
  for (int i0 = 0; i0 < m; i0 += MC) {
    int mc = m - i0 < MC ? m - i0 : MC;
    /* The first pass over a block of x rows is the only one that reads them from
     * memory, and 6 interleaved row streams defeat the hardware prefetcher: prefetch the
     * next block in even portions over this block's micro-tiles. */
    int next = m - (i0 + mc) < MC ? m - (i0 + mc) : MC;
    const char *pf = (const char *)(x + (size_t)(i0 + mc) * k);
    const char *pf_end = pf + sizeof(float) * (size_t)next * k;
    int calls = kslices * (panels16 * ((mc + 5) / 6) + has8 * ((mc + 11) / 12));
    int per_call = (int)((size_t)(pf_end - pf) / 64 / (size_t)calls) + 1;
    int p0 = 0;
    do { /* k-slices; k == 0 still makes one (empty) slice so y gets the epilogue */
      int kc = k - p0 < KC ? k - p0 : KC, first = p0 == 0, last = p0 + kc >= k;
      for (int j = 0; j < n; j += 16) {
        int W = panel_width(n, j), nc = n - j < W ? n - j : W, MR = W == 16 ? 6 : 12;
        const float *b = packed + (size_t)j * k + (size_t)p0 * W;
        const tile_fn *tiles = W == 16 ? tiles16 : tiles8;
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

/* Rows of x and dy reduced per pass before the partial sums are added to dw: a column
 * block's dy strip and the x rows of one pass stay in L1 while every row block of dw
 * sweeps them (64 measured best for the k = 16..96 shapes, and within 2% of 128 for
 * k = 384). A fixed size, so the summation order of every dw element is the same
 * whatever [k0, k1) is (thread-count independence). */
#define MB 64

/* dw[p..p+MR)[j..j+8*NV) += sum over rows [i0, i1) of x[i][p+r] * dy[i][j..]. MASKED
 * (nc < 8*NV) is a compile-time variant: a runtime choice of load inside the row loop
 * makes clang split the loop and leave the accumulators in memory. */
MPNAS_AVX2_INLINE void dw_tile(const int MR, const int NV, const int MASKED, int i0, int i1,
                               int k, int n, const float *x, const float *dy, float *dw, int p,
                               int j, int nc) {
  __m256 acc[12][2];
  const int n0 = nc < 8 ? nc : 8, n1 = nc - 8 < 0 ? 0 : nc - 8;
  const __m256i m0 = mpnas__avx2_tail_mask(n0), m1 = mpnas__avx2_tail_mask(n1 < 8 ? n1 : 8);
  MPNAS_UNROLL(12)
  for (int r = 0; r < MR; r++) {
    acc[r][0] = _mm256_setzero_ps();
    acc[r][1] = _mm256_setzero_ps();
  }
  const float *xp = x + (size_t)i0 * k + p, *dp = dy + (size_t)i0 * n + j;
  for (int i = i0; i < i1; i++, xp += k, dp += n) {
    const __m256 d0 = MASKED ? _mm256_maskload_ps(dp, m0) : _mm256_loadu_ps(dp);
    const __m256 d1 = NV == 1 ? d0 : (MASKED ? _mm256_maskload_ps(dp + 8, m1) : _mm256_loadu_ps(dp + 8));
    MPNAS_UNROLL(12)
    for (int r = 0; r < MR; r++) {
      const __m256 xv = _mm256_broadcast_ss(xp + r);
      acc[r][0] = _mm256_fmadd_ps(xv, d0, acc[r][0]);
      if (NV == 2) acc[r][1] = _mm256_fmadd_ps(xv, d1, acc[r][1]);
    }
  }
  MPNAS_UNROLL(12)
  for (int r = 0; r < MR; r++) {
    float *o = dw + (size_t)(p + r) * n + j;
    mpnas__avx2_store(o, _mm256_add_ps(mpnas__avx2_load(o, n0, m0), acc[r][0]), n0, m0);
    if (NV == 2)
      mpnas__avx2_store(o + 8, _mm256_add_ps(mpnas__avx2_load(o + 8, n1, m1), acc[r][1]), n1, m1);
  }
}

typedef void (*dw_tile_fn)(int i0, int i1, int k, int n, const float *x, const float *dy,
                           float *dw, int p, int j, int nc);
#define DWTILE(MR, NV)                                                                     \
  static void dwtile_##MR##x##NV(int i0, int i1, int k, int n, const float *x,              \
                                 const float *dy, float *dw, int p, int j, int nc) {        \
    if (nc < 8 * NV) dw_tile(MR, NV, 1, i0, i1, k, n, x, dy, dw, p, j, nc);                 \
    else dw_tile(MR, NV, 0, i0, i1, k, n, x, dy, dw, p, j, nc);                             \
  }
DWTILE(1, 2) DWTILE(2, 2) DWTILE(3, 2) DWTILE(4, 2) DWTILE(5, 2) DWTILE(6, 2)
DWTILE(1, 1) DWTILE(2, 1) DWTILE(3, 1) DWTILE(4, 1) DWTILE(5, 1) DWTILE(6, 1)
DWTILE(7, 1) DWTILE(8, 1) DWTILE(9, 1) DWTILE(10, 1) DWTILE(11, 1) DWTILE(12, 1)
static const dw_tile_fn dwtiles16[7] = {NULL,       dwtile_1x2, dwtile_2x2, dwtile_3x2,
                                        dwtile_4x2, dwtile_5x2, dwtile_6x2};
static const dw_tile_fn dwtiles8[13] = {NULL,        dwtile_1x1,  dwtile_2x1, dwtile_3x1,
                                        dwtile_4x1,  dwtile_5x1,  dwtile_6x1, dwtile_7x1,
                                        dwtile_8x1,  dwtile_9x1,  dwtile_10x1, dwtile_11x1,
                                        dwtile_12x1};

void mpnas__f32_gemm_bwd_weight__avx2(int m, int k, int n, const float *x, const float *dy,
                                      float *dw, int k0, int k1) {
  const int jtiles = (n + 15) / 16;
  for (int i0 = 0; i0 < m; i0 += MB) {
    int i1 = m - i0 < MB ? m : i0 + MB, next = m - i1 < MB ? m - i1 : MB;
    /* prefetch the next block of x and dy rows over this block's tiles (they come from
     * memory once, in a strided pattern the hardware prefetcher misses) */
    const char *px = (const char *)(x + (size_t)i1 * k), *py = (const char *)(dy + (size_t)i1 * n);
    const char *px_end = px + sizeof(float) * (size_t)next * k;
    const char *py_end = py + sizeof(float) * (size_t)next * n;
    int calls = jtiles * ((k1 - k0 + 5) / 6);
    calls = calls > 0 ? calls : 1;
    int per_x = (int)((size_t)(px_end - px) / 64 / (size_t)calls) + 1;
    int per_y = (int)((size_t)(py_end - py) / 64 / (size_t)calls) + 1;
    for (int j = 0; j < n; j += 16) {
      int nc = n - j < 16 ? n - j : 16, MR = nc > 8 ? 6 : 12;
      const dw_tile_fn *t = nc > 8 ? dwtiles16 : dwtiles8;
      for (int p = k0; p < k1; p += MR) {
        int mr = k1 - p < MR ? k1 - p : MR;
        for (int q = 0; q < per_x && px < px_end; q++, px += 64) _mm_prefetch(px, _MM_HINT_T0);
        for (int q = 0; q < per_y && py < py_end; q++, py += 64) _mm_prefetch(py, _MM_HINT_T0);
        t[mr](i0, i1, k, n, x, dy, dw, p, j, nc);
      }
    }
  }
}
