/* gemm-x86.h - pointwise convolution as GEMM on x86, written once for both vector widths:
 * y = x . w with the fused epilogue, and the weight gradient dw += x^T . dy.
 * gemm-avx2.c includes it at 8 lanes (ymm), gemm-avx512.c at 16 (zmm), each after
 * vec-x86.h and act-x86.h for its width, with these defined:
 *   GX_NAME(f)         the function names' suffix (f##__avx2, f##__avx512)
 *   GX_MR2, GX_MR1     rows of a wide tile (2 vectors per row) and of a narrow one (1)
 *   GX_DW_MR1          rows of dw in the weight gradient's narrow tile (its wide tile
 *                      has GX_MR2)
 *   GX_FOR_MR2(X, NV)  X(1, NV) X(2, NV) ... X(GX_MR2, NV); GX_FOR_MR1 and
 *                      GX_FOR_DW_MR1 likewise
 *   GX_BCAST(p)        *p in every lane
 *   GX_LOADN(p, n, m), GX_STOREN(p, v, n, m)   a whole vector when n >= lanes, else the
 *                      first n lanes (tail mask m; masked lanes read 0, never touched)
 *
 * Bit-identical at both widths. Lanes are output channels, so the width changes which
 * channels one instruction handles, never the operations on one element: each output is
 * acc = 0, then acc = fma(x[i][p], w[p][j], acc) for p = 0, 1, ..., k-1 (a k-slice
 * boundary stores the partial sum in y and reloads it, which changes nothing), then the
 * epilogue's fma with scale and shift (skipped when both are NULL and act is NONE), the
 * activation (act-x86.h) and the residual add. The weight gradient sums each dw element
 * over blocks of MB = 64 rows from zero and adds each block's sum to dw. So results do
 * not depend on which x86 table runs (tests/test_kernels.c: test_gemm_avx512_vs_avx2).
 *
 * Packed weights: the n output channels are cut into panels of 2L columns (L the lanes);
 * panel q holds rows p = 0..k-1 of its columns contiguously (k x 2L, K-major), zero-padded
 * past n. When the last panel would hold L columns or fewer it is L wide instead, so
 * n = 24 wastes nothing at 8 lanes; with GX_HALF (16 lanes) one of L + 1 .. L + L/2
 * columns is L + L/2 wide, so n = 24 wastes nothing there either (panel_width). Panel q
 * starts at q * 2L * k. The panels differ between the widths, so a model packed under
 * one table repacks under the other.
 *
 * Forward micro-kernels: GX_MR2 rows x 2L columns (2 B loads and GX_MR2 broadcasts of x
 * per k step) and, for an L-wide panel, GX_MR1 rows x L. x is read in place: its rows
 * are the pixels' channel vectors, already contiguous in k. Blocking: MC rows of x (kept
 * in L2) x KC of k (a panel slice of KC x 2L floats stays in L1 while the MC rows stream
 * past it). Tile heights: 6 x 16 / 12 x 8 with 16 ymm registers; 8 x 32 / 8 x 16 with 32
 * zmm (docs/PERFORMANCE.md, "AVX-512 kernel table": 6 to 10 rows measured alike there,
 * 12 and 14 slower; each row of a tile needs a pointer register, and the 16 rows of a
 * 16 x 16 tile did not fit: "Zen 4 again"). The weight gradient's narrow tile reads x
 * through one pointer and keeps 16 rows of dw at 16 lanes. */
#define GX_L VEC_LANES
#define KC 192
#define MC 96 /* a multiple of every tile height (6, 12, 8, 16) */
_Static_assert(MC % GX_MR2 == 0 && MC % GX_MR1 == 0 && GX_MR1 <= 16 && GX_MR2 <= 16 &&
                   GX_DW_MR1 <= 16 && GX_MR2 <= GX_DW_MR1,
               "tile sizes");

/* ---- Packing --------------------------------------------------------------------- */

/* Width of the panel holding columns [j, j + 2L): 2L, or for the last panel the
 * narrowest kind that holds its columns: L, and with half vectors (GX_HALF) L + L/2.
 * (An L/2-wide panel measured no faster than L on Zen 4: its tile is bound by the
 * broadcasts of x, one per FMA either way.) */
static int panel_width(int n, int j) {
  const int r = n - j;
#if defined(GX_HALF)
  if (r > GX_L && r <= GX_L + GX_L / 2) return GX_L + GX_L / 2;
#endif
  return r <= GX_L ? GX_L : 2 * GX_L;
}

size_t GX_NAME(mpnas__f32_gemm_packed_floats)(int k, int n) {
  int full = (n - 1) / (2 * GX_L); /* panels before the last one */
  return (size_t)k * (size_t)(2 * GX_L * full + panel_width(n, 2 * GX_L * full));
}

void GX_NAME(mpnas__f32_gemm_pack)(int k, int n, const float *w, float *packed) {
  for (int j = 0; j < n; j += 2 * GX_L) {
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

/* With GX_HALF, a tile's columns may end in a half vector (L/2 lanes: the x86 AVX-512
 * build's ymm, at half the cost of a zmm where the CPU splits 512-bit operations in two);
 * the same operations per lane, so the same bits. GX_IF_HALF(...) is its code. */
#if defined(GX_HALF)
#define GX_IF_HALF(...) __VA_ARGS__
#else
#define GX_IF_HALF(...)
#endif
#define GX_MR_MAX (GX_MR1 > GX_MR2 ? GX_MR1 : GX_MR2)

/* One MR x (L*NV + L/2*HF) tile of y (NV 1 or 2) over a k-slice of kc: a points at
 * x[i][p0] (row stride lda), b at the panel's row p0 (as many floats per row as the tile
 * has columns), c at y[i][j] (row stride ldc), nc valid columns. `first` starts from
 * zero instead of the partial sums already in c; `e` (non-NULL on the last k-slice)
 * applies the epilogue. */
MPNAS_AVX2_INLINE void gemm_tile(const int MR, const int NV, const int HF, int kc,
                                 const float *a, size_t lda, const float *b, float *c,
                                 size_t ldc, int nc, int first, const epilogue *e) {
  const int BW = GX_L * NV + GX_L / 2 * HF; /* floats per row of b */
  V_F acc[GX_MR_MAX][2];
  GX_IF_HALF(GX_H_F hacc[GX_MR_MAX];)
  const int n0 = nc < GX_L ? nc : GX_L, n1 = nc - GX_L < 0 ? 0 : nc - GX_L;
  const int nh = nc - GX_L * NV < 0 ? 0 : nc - GX_L * NV; /* the half vector's (<= L/2) */
  const V_TAILMASK m0 = V_TAIL(n0), m1 = V_TAIL(n1); /* n0, n1 <= L */
  (void)nh;
MPNAS_UNROLL(16)
  for (int r = 0; r < MR; r++) {
    acc[r][0] = first ? V_ZERO() : GX_LOADN(c + r * ldc, n0, m0);
    if (NV == 2) acc[r][1] = first ? V_ZERO() : GX_LOADN(c + r * ldc + GX_L, n1, m1);
    GX_IF_HALF(if (HF) hacc[r] = first ? GX_H_ZERO() : GX_H_LOADN(c + r * ldc + GX_L * NV, nh);)
  }
  for (int p = 0; p < kc; p++) {
    const float *bp = b + (size_t)p * BW;
    const V_F b0 = V_LOAD(bp), b1 = NV == 2 ? V_LOAD(bp + GX_L) : b0; /* none past the row */
    GX_IF_HALF(const GX_H_F bh = HF ? GX_H_LOAD(bp + GX_L * NV) : GX_H_ZERO();)
MPNAS_UNROLL(16)
    for (int r = 0; r < MR; r++) {
      const V_F av = GX_BCAST(a + r * lda + p);
      acc[r][0] = V_FMA(av, b0, acc[r][0]);
      if (NV == 2) acc[r][1] = V_FMA(av, b1, acc[r][1]);
      GX_IF_HALF(if (HF) hacc[r] = GX_H_FMA(GX_H_LOW(av), bh, hacc[r]);)
    }
  }
  if (e != NULL && (e->scale || e->shift || e->act != MPNAS__ACT_NONE)) {
    V_F s0 = V_SET1(1.0f), s1 = s0, t0 = V_ZERO(), t1 = t0;
    GX_IF_HALF(GX_H_F sh = GX_H_SET1(1.0f), th = GX_H_ZERO();)
    if (e->scale) {
      s0 = GX_LOADN(e->scale, n0, m0);
      if (NV == 2) s1 = GX_LOADN(e->scale + GX_L, n1, m1);
      GX_IF_HALF(if (HF) sh = GX_H_LOADN(e->scale + GX_L * NV, nh);)
    }
    if (e->shift) {
      t0 = GX_LOADN(e->shift, n0, m0);
      if (NV == 2) t1 = GX_LOADN(e->shift + GX_L, n1, m1);
      GX_IF_HALF(if (HF) th = GX_H_LOADN(e->shift + GX_L * NV, nh);)
    }
MPNAS_UNROLL(16)
    for (int r = 0; r < MR; r++) {
      acc[r][0] = V_FN(act)(e->act, V_FMA(acc[r][0], s0, t0));
      if (NV == 2) acc[r][1] = V_FN(act)(e->act, V_FMA(acc[r][1], s1, t1));
      GX_IF_HALF(if (HF) hacc[r] = GX_H_ACT(e->act, GX_H_FMA(hacc[r], sh, th));)
    }
  }
  if (e != NULL && e->residual) {
MPNAS_UNROLL(16)
    for (int r = 0; r < MR; r++) {
      const float *res = e->residual + r * ldc;
      acc[r][0] = V_ADD(acc[r][0], GX_LOADN(res, n0, m0));
      if (NV == 2) acc[r][1] = V_ADD(acc[r][1], GX_LOADN(res + GX_L, n1, m1));
      GX_IF_HALF(if (HF) hacc[r] = GX_H_ADD(hacc[r], GX_H_LOADN(res + GX_L * NV, nh));)
    }
  }
MPNAS_UNROLL(16)
  for (int r = 0; r < MR; r++) {
    GX_STOREN(c + r * ldc, acc[r][0], n0, m0);
    if (NV == 2) GX_STOREN(c + r * ldc + GX_L, acc[r][1], n1, m1);
    GX_IF_HALF(if (HF) GX_H_STOREN(c + r * ldc + GX_L * NV, hacc[r], nh);)
  }
}

/* One instantiation per tile height and width (tile_<rows>x<full vectors>_<half>), so a
 * tile is a direct call with constant sizes; panel_tiles picks the set by the panel's
 * width. */
typedef void (*tile_fn)(int kc, const float *a, size_t lda, const float *b, float *c,
                        size_t ldc, int nc, int first, const epilogue *e);
#define TILE(MR, NV, HF)                                                                   \
  static void tile_##MR##x##NV##_##HF(int kc, const float *a, size_t lda, const float *b,  \
                                      float *c, size_t ldc, int nc, int first,             \
                                      const epilogue *e) {                                 \
    gemm_tile(MR, NV, HF, kc, a, lda, b, c, ldc, nc, first, e);                             \
  }
#define TILE_ENTRY(MR, NV, HF) tile_##MR##x##NV##_##HF,
#define TILE_FULL(MR, NV) TILE(MR, NV, 0)
#define ENTRY_FULL(MR, NV) TILE_ENTRY(MR, NV, 0)
GX_FOR_MR2(TILE_FULL, 2)
GX_FOR_MR1(TILE_FULL, 1)
static const tile_fn tiles_wide[GX_MR_MAX + 1] = {NULL, GX_FOR_MR2(ENTRY_FULL, 2)};
static const tile_fn tiles_narrow[GX_MR_MAX + 1] = {NULL, GX_FOR_MR1(ENTRY_FULL, 1)};
#if defined(GX_HALF) /* L + L/2 wide, with the wide tile's rows */
#define TILE_HALF(MR, NV) TILE(MR, NV, 1)
#define ENTRY_HALF(MR, NV) TILE_ENTRY(MR, NV, 1)
GX_FOR_MR2(TILE_HALF, 1)
static const tile_fn tiles_wide_half[GX_MR_MAX + 1] = {NULL, GX_FOR_MR2(ENTRY_HALF, 1)};
#endif

/* A panel of width W: its tiles' height, and its tiles (by height). */
static int panel_rows(int W) { return W > GX_L ? GX_MR2 : GX_MR1; }
static const tile_fn *panel_tiles(int W) {
#if defined(GX_HALF)
  if (W == GX_L + GX_L / 2) return tiles_wide_half;
#endif
  return W > GX_L ? tiles_wide : tiles_narrow;
}

void GX_NAME(mpnas__f32_gemm)(int m, int k, int n, const float *x, const float *packed,
                              const float *scale, const float *shift, int act,
                              const float *residual, float *y) {
  const int kslices = k > 0 ? (k + KC - 1) / KC : 1;
  const int P = 2 * GX_L, last_j = P * ((n - 1) / P);
  const int last_W = panel_width(n, last_j);
  const int last_MR = panel_rows(last_W);
  const int panels_wide = last_W == P ? (n + P - 1) / P : (n - 1) / P;
  const int has_last = (n + P - 1) / P > panels_wide; /* a last panel narrower than 2L */
  for (int i0 = 0; i0 < m; i0 += MC) {
    int mc = m - i0 < MC ? m - i0 : MC;
    /* The first pass over a block of x rows is the only one that reads them from
     * memory, and the tile's interleaved row streams defeat the hardware prefetcher:
     * prefetch the next block in even portions over this block's micro-tiles. */
    int next = m - (i0 + mc) < MC ? m - (i0 + mc) : MC;
    const char *pf = (const char *)(x + (size_t)(i0 + mc) * k);
    const char *pf_end = pf + sizeof(float) * (size_t)next * k;
    int calls = kslices * (panels_wide * ((mc + GX_MR2 - 1) / GX_MR2) +
                           has_last * ((mc + last_MR - 1) / last_MR));
    int per_call = (int)((size_t)(pf_end - pf) / 64 / (size_t)calls) + 1;
    int p0 = 0;
    do { /* k-slices; k == 0 still makes one (empty) slice so y gets the epilogue */
      int kc = k - p0 < KC ? k - p0 : KC, first = p0 == 0, last = p0 + kc >= k;
      for (int j = 0; j < n; j += P) {
        int W = panel_width(n, j), nc = n - j < W ? n - j : W, MR = panel_rows(W);
        const tile_fn *tiles = panel_tiles(W);
        const float *b = packed + (size_t)j * k + (size_t)p0 * W;
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
 * whatever [k0, k1) is (thread-count independence) and whichever width runs, and a
 * caller may pass the rows in blocks of it (weight_grad_in_blocks, kernels.h). */
#define MB MPNAS__GEMM_BWD_ROWS

/* dw[p..p+MR)[j..j+L*NV) += sum over rows [i0, i1) of x[i][p+r] * dy[i][j..]. MASKED
 * (nc < L*NV) is a compile-time variant: a runtime choice of load inside the row loop
 * makes clang split the loop and leave the accumulators in memory. */
MPNAS_AVX2_INLINE void dw_tile(const int MR, const int NV, const int MASKED, int i0, int i1,
                               int k, int n, const float *x, const float *dy, float *dw, int p,
                               int j, int nc) {
  V_F acc[GX_DW_MR1][2];
  const int n0 = nc < GX_L ? nc : GX_L, n1 = nc - GX_L < 0 ? 0 : nc - GX_L;
  const V_TAILMASK m0 = V_TAIL(n0), m1 = V_TAIL(n1); /* n0, n1 <= L */
  MPNAS_UNROLL(16)
  for (int r = 0; r < MR; r++) {
    acc[r][0] = V_ZERO();
    acc[r][1] = V_ZERO();
  }
  const float *xp = x + (size_t)i0 * k + p, *dp = dy + (size_t)i0 * n + j;
  for (int i = i0; i < i1; i++, xp += k, dp += n) {
    const V_F d0 = MASKED ? V_LOADM(dp, m0) : V_LOAD(dp);
    const V_F d1 = NV == 1 ? d0 : (MASKED ? V_LOADM(dp + GX_L, m1) : V_LOAD(dp + GX_L));
    MPNAS_UNROLL(16)
    for (int r = 0; r < MR; r++) {
      const V_F xv = GX_BCAST(xp + r);
      acc[r][0] = V_FMA(xv, d0, acc[r][0]);
      if (NV == 2) acc[r][1] = V_FMA(xv, d1, acc[r][1]);
    }
  }
  MPNAS_UNROLL(16)
  for (int r = 0; r < MR; r++) {
    float *o = dw + (size_t)(p + r) * n + j;
    GX_STOREN(o, V_ADD(GX_LOADN(o, n0, m0), acc[r][0]), n0, m0);
    if (NV == 2) GX_STOREN(o + GX_L, V_ADD(GX_LOADN(o + GX_L, n1, m1), acc[r][1]), n1, m1);
  }
}

typedef void (*dw_tile_fn)(int i0, int i1, int k, int n, const float *x, const float *dy,
                           float *dw, int p, int j, int nc);
#define DWTILE(MR, NV)                                                                     \
  static void dwtile_##MR##x##NV(int i0, int i1, int k, int n, const float *x,              \
                                 const float *dy, float *dw, int p, int j, int nc) {        \
    if (nc < GX_L * NV) dw_tile(MR, NV, 1, i0, i1, k, n, x, dy, dw, p, j, nc);              \
    else dw_tile(MR, NV, 0, i0, i1, k, n, x, dy, dw, p, j, nc);                             \
  }
#define DWTILE_ENTRY(MR, NV) dwtile_##MR##x##NV,
GX_FOR_MR2(DWTILE, 2)
GX_FOR_DW_MR1(DWTILE, 1)
static const dw_tile_fn dwtiles_wide[GX_MR2 + 1] = {NULL, GX_FOR_MR2(DWTILE_ENTRY, 2)};
static const dw_tile_fn dwtiles_narrow[GX_DW_MR1 + 1] = {NULL, GX_FOR_DW_MR1(DWTILE_ENTRY, 1)};

void GX_NAME(mpnas__f32_gemm_bwd_weight)(int m, int k, int n, const float *x, const float *dy,
                                         float *dw, int k0, int k1) {
  const int P = 2 * GX_L, jtiles = (n + P - 1) / P;
  for (int i0 = 0; i0 < m; i0 += MB) {
    int i1 = m - i0 < MB ? m : i0 + MB, next = m - i1 < MB ? m - i1 : MB;
    /* prefetch the next block of x and dy rows over this block's tiles (they come from
     * memory once, in a strided pattern the hardware prefetcher misses) */
    const char *px = (const char *)(x + (size_t)i1 * k), *py = (const char *)(dy + (size_t)i1 * n);
    const char *px_end = px + sizeof(float) * (size_t)next * k;
    const char *py_end = py + sizeof(float) * (size_t)next * n;
    int calls = jtiles * ((k1 - k0 + GX_MR2 - 1) / GX_MR2);
    calls = calls > 0 ? calls : 1;
    int per_x = (int)((size_t)(px_end - px) / 64 / (size_t)calls) + 1;
    int per_y = (int)((size_t)(py_end - py) / 64 / (size_t)calls) + 1;
    for (int j = 0; j < n; j += P) {
      int nc = n - j < P ? n - j : P, MR = nc > GX_L ? GX_MR2 : GX_DW_MR1;
      const dw_tile_fn *t = nc > GX_L ? dwtiles_wide : dwtiles_narrow;
      for (int p = k0; p < k1; p += MR) {
        int mr = k1 - p < MR ? k1 - p : MR;
        for (int q = 0; q < per_x && px < px_end; q++, px += 64) _mm_prefetch(px, _MM_HINT_T0);
        for (int q = 0; q < per_y && py < py_end; q++, py += 64) _mm_prefetch(py, _MM_HINT_T0);
        t[mr](i0, i1, k, n, x, dy, dw, p, j, nc);
      }
    }
  }
}
