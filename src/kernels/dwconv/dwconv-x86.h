/* dwconv-x86.h - depthwise KxK convolution on x86 vectors: forward with the fused
 * epilogue, input gradient and weight gradient, written once for two widths. Included
 * by dwconv-avx2.c (ymm, 8 channels) and dwconv-avx512.c (zmm, 16 channels), which
 * define before the include:
 *   dw_vec, dw_mask, DW_W             vector and tail-mask types, lanes per vector
 *   dw_zero(), dw_one(), dw_no_mask(), dw_tail_mask(n) (lanes [0, n) set)
 *   dw_load(p), dw_loadm(p, m), dw_store(p, v), dw_storem(p, m, v) (masked lanes read 0)
 *   dw_load_n(p, n, m), dw_store_n(p, v, n, m)  (whole vector when n >= DW_W)
 *   dw_fma(a, b, c) = a*b + c fused, dw_add(a, b), dw_act(act, v)
 *   DW_INLINE, DW_NAME(f), DW_TMAX
 *   DW_T_<KX>_<S>: row tile widths; DW_R5, DW_R7: kernel rows per weight-gradient group
 * NHWC: a vector holds DW_W channels of a pixel; the last channel block of a channel
 * count that is not a multiple uses masked loads and stores.
 *
 * Lanes are channels, so the width changes no channel's arithmetic: every output is the
 * same chain of fused multiply-adds in the same order at both widths (the order of
 * (row, column) pairs, independent of T; the weight gradient's band size depends on the
 * shape only), followed by the same epilogue. The tile widths and row groups only
 * choose which outputs are computed together. So the two tables agree bit for bit
 * (tests/test_kernels.c: test_dw_avx512_vs_avx2).
 *
 * Forward and input gradient share one building block, a row tile: T consecutive
 * outputs of one channel block, accumulated over a list of (source row, weight row)
 * pairs. For each pair the KX weights sit in registers and every source pixel the T
 * outputs touch is loaded once and multiplied into each accumulator it feeds, so a
 * tile costs KX + (T-1)*S + KX loads for T*KX FMAs. Interior tiles carry no bounds
 * checks; tiles touching the left or right border skip out-of-image pixels (the checks
 * are on compile-time column indices, so they cost a compare each, not a branch per
 * FMA). Rows out of the image are simply left out of the list.
 *
 *  - forward: source rows are the K input rows of an output row, weights w[ky][kx].
 *  - input gradient, stride 1: a correlation of dy with the flipped kernel (the source
 *    rows are dy rows, weights walked backwards).
 *  - input gradient, stride 2: the input pixels of one row split by column parity;
 *    each class only sees the taps of one parity, about K/2 of them, and those form a
 *    stride-1 correlation over dy columns again, written to every other pixel.
 *
 * K = 3, 5, 7 are specialised (taps unrolled); any other odd K takes a generic per-pixel
 * path.
 *
 * Weight gradient: per image and channel block, the taps of R kernel rows (R*K vector
 * accumulators: all 9 for 3x3, DW_R5 / DW_R7 rows for 5x5 / 7x7) stay in registers while the
 * image's output pixels stream past once per row group; the sums are added to dwt per
 * image. The order of every channel's sum is independent of [c0, c1).
 */
#include <stdint.h>

#define MAXK 7 /* largest specialised kernel */

/* Software prefetch of the forward and input gradient (see plan_prefetch): how many
 * output rows ahead. */
#ifndef DW_PF_AHEAD
#define DW_PF_AHEAD 1
#endif

/* ---- The row tile ---------------------------------------------------------------- */

/* Keeps v in a register from here on. Without it gcc folds the load of a source pixel
 * into every FMA that uses it (up to KX of them): one load per FMA, which ran the 3x3
 * forward at half the FMA peak on Zen 4 (docs/PERFORMANCE.md, "Zen 4 again"). An empty
 * asm statement: no instruction, no change to any result. */
#define DW_IN_REGISTER(v) __asm__("" : "+v"(v))

/* acc[t] += sum_{j < KX} src[col0 + t*S + j] * wv[j] for t < T (pixels ps floats
 * apart). With CHECK, columns outside [0, ncols) are skipped. */
DW_INLINE void row_acc(const int KX, const int S, const int T, const int CHECK,
                       const int MASK, dw_vec *acc, const float *src, size_t ps,
                       int col0, int ncols, const dw_vec *wv, dw_mask mask) {
  /* Walk the columns with one address (precomputed offsets would not fit the GPRs). It
   * is kept as an integer because in checked tiles it starts outside the row; it becomes
   * a pointer only for columns inside. */
  uintptr_t p = (uintptr_t)src + (uintptr_t)((ptrdiff_t)col0 * (ptrdiff_t)(ps * sizeof(float)));
  const uintptr_t step = ps * sizeof(float);
MPNAS_UNROLL(64)
  for (int col = 0; col < (T - 1) * S + KX; col++, p += step) {
    const int ci = col0 + col;
    if (CHECK && (ci < 0 || ci >= ncols)) continue;
    const float *q = (const float *)p;
    dw_vec xv = MASK ? dw_loadm(q, mask) : dw_load(q);
    DW_IN_REGISTER(xv);
MPNAS_UNROLL(32)
    for (int t = 0; t < T; t++) {
      const int j = col - t * S;
      if (j >= 0 && j < KX) acc[t] = dw_fma(xv, wv[j], acc[t]);
    }
  }
}

/* Cache lines [p, end) to prefetch, `per` of them per step of the work spread over,
 * into L1 (hint _MM_HINT_T0) or L2 (_MM_HINT_T1). */
typedef struct {
  const char *p, *end;
  int per, hint;
} prefetch_range;

DW_INLINE void prefetch_step(prefetch_range *r) {
  if (r->p >= r->end) return;
  /* the cursor in a register: through r, gcc stored it back on every line */
  const char *p = r->p;
  const char *end = (size_t)(r->end - p) > (size_t)r->per * 64 ? p + (size_t)r->per * 64 : r->end;
  if (r->hint == _MM_HINT_T0)
    for (; p < end; p += 64) _mm_prefetch(p, _MM_HINT_T0);
  else
    for (; p < end; p += 64) _mm_prefetch(p, _MM_HINT_T1);
  r->p = p;
}

/* One output row's work: (source row, weight row) pairs and the epilogue. Pointers are
 * at channel 0; the row function walks the channel blocks itself. */
typedef struct {
  int nrows;                   /* (source row, weight row) pairs */
  const float *src[2 * MAXK];  /* source rows */
  const float *wrow[2 * MAXK]; /* weight rows, at the walk's first tap */
  ptrdiff_t wstep;             /* floats from one tap of the walk to the next */
  size_t ps;                   /* floats between pixels (= channels) */
  int ncols;                   /* pixels in a source row */
  int c;                       /* channels */
  const float *scale, *shift;  /* epilogue (NULL: 1 and 0) */
  int act, has_epi;
  prefetch_range in;           /* source rows the next output row needs first */
  prefetch_range out;          /* the next output row (its lines are written, so read
                                  for ownership: without this the stores wait on memory) */
} row_job;

/* Outputs [o, o + T) of channel block cb: output o reads source columns
 * cbase + o*S + [0, KX) and is stored at out + o*ostride + cb. */
DW_INLINE void tile(const int KX, const int S, const int T, const int CHECK,
                    const int MASK, const row_job *jb, int cbase, int o, float *out,
                    size_t ostride, int cb, dw_mask mask) {
  dw_vec acc[DW_TMAX];
MPNAS_UNROLL(32)
  for (int t = 0; t < T; t++) acc[t] = dw_zero();
  for (int r = 0; r < jb->nrows; r++) {
    dw_vec wv[MAXK];
MPNAS_UNROLL(8)
    for (int j = 0; j < KX; j++) {
      const float *wp = jb->wrow[r] + cb + j * jb->wstep;
      wv[j] = MASK ? dw_loadm(wp, mask) : dw_load(wp);
    }
    row_acc(KX, S, T, CHECK, MASK, acc, jb->src[r] + cb, jb->ps, cbase + o * S, jb->ncols, wv,
            mask);
  }
  dw_vec vs = dw_one(), vt = dw_zero();
  if (jb->has_epi) {
    if (jb->scale) vs = MASK ? dw_loadm(jb->scale + cb, mask) : dw_load(jb->scale + cb);
    if (jb->shift) vt = MASK ? dw_loadm(jb->shift + cb, mask) : dw_load(jb->shift + cb);
  }
MPNAS_UNROLL(32)
  for (int t = 0; t < T; t++) {
    dw_vec v = acc[t];
    if (jb->has_epi) v = dw_act(jb->act, dw_fma(v, vs, vt));
    float *q = out + (size_t)(o + t) * ostride + cb;
    if (MASK) dw_storem(q, mask, v);
    else dw_store(q, v);
  }
}

/* The same tile position for every channel block: the blocks of a pixel share cache
 * lines, so they go back to back. */
DW_INLINE void tile_all(const int KX, const int S, const int T, const int CHECK,
                        row_job *jb, int cbase, int o, float *out, size_t ostride) {
  int cb = 0;
  for (; cb + DW_W <= jb->c; cb += DW_W) {
    prefetch_step(&jb->in);
    prefetch_step(&jb->out);

    tile(KX, S, T, CHECK, 0, jb, cbase, o, out, ostride, cb, dw_no_mask());
  }
  if (cb < jb->c)
    tile(KX, S, T, CHECK, 1, jb, cbase, o, out, ostride, cb, dw_tail_mask(jb->c - cb));
}

/* Outputs [0, nout) of a row narrower than the row function's tile T: checked tiles of
 * 8, 4 or 2 (no wider than T; the last shifted left to end at the row's end, recomputing
 * a few outputs), single outputs below that. Each output's sum is the same chain of fmas
 * in any tile, so the width changes no bit. (One output at a time loaded the KX weights
 * for every output: 8-wide rows ran at 30-40 GFLOP/s.) */
DW_INLINE void tile_row_narrow(const int KX, const int S, const int T, row_job *jb,
                               int cbase, int nout, float *out, size_t ostride) {
  const int w = T >= 8 && nout >= 8 ? 8 : T >= 4 && nout >= 4 ? 4 : T >= 2 && nout >= 2 ? 2 : 1;
  for (int o = 0; o < nout; o += w) {
    const int st = o + w <= nout ? o : nout - w;
    if (w == 8) tile_all(KX, S, 8, 1, jb, cbase, st, out, ostride);
    else if (w == 4) tile_all(KX, S, 4, 1, jb, cbase, st, out, ostride);
    else if (w == 2) tile_all(KX, S, 2, 1, jb, cbase, st, out, ostride);
    else tile_all(KX, S, 1, 1, jb, cbase, st, out, ostride);
  }
}

/* Outputs [0, nout) of a row. Those whose KX columns all lie inside the source row go
 * in unchecked tiles of T, the last one shifted left to end at the interior's end
 * (recomputing a few outputs rather than checking bounds); each border (about pad/S
 * outputs) gets one checked tile of T. Rows whose interior is narrower than T go in
 * checked tiles, rows shorter than T in narrower checked tiles (tile_row_narrow). */
DW_INLINE void tile_row(const int KX, const int S, const int T, row_job *jb,
                        int cbase, int nout, float *out, size_t ostride) {
  int o_lo = cbase >= 0 ? 0 : (-cbase + S - 1) / S;
  int o_hi = jb->ncols - KX - cbase >= 0 ? (jb->ncols - KX - cbase) / S + 1 : 0;
  if (o_lo > nout) o_lo = nout;
  if (o_hi > nout) o_hi = nout;
  if (o_hi < o_lo) o_hi = o_lo;
  if (o_hi - o_lo < T && nout >= T) {
    /* interior narrower than a tile (wide kernels on narrow rows, the stride-2 input
     * gradient's parity classes): checked tiles, the last shifted left */
    for (int o = 0; o < nout; o += T)
      tile_all(KX, S, T, 1, jb, cbase, o + T <= nout ? o : nout - T, out, ostride);
    return;
  }
  if (o_hi - o_lo < T) {
    tile_row_narrow(KX, S, T, jb, cbase, nout, out, ostride);
    return;
  }
  int o = o_lo, end = o_hi;
  if (o_lo > 0) {
    tile_all(KX, S, T, 1, jb, cbase, 0, out, ostride);
    o = T;
  }
  if (o_hi < nout) {
    tile_all(KX, S, T, 1, jb, cbase, nout - T, out, ostride);
    if (nout - T < end) end = nout - T;
  }
  while (o < end) {
    const int st = o + T <= o_hi ? o : o_hi - T;
    tile_all(KX, S, T, 0, jb, cbase, st, out, ostride);
    o = st + T;
  }
}

/* One instantiation per (KX, S), T = DW_T_KX_S from the including file. */
typedef void (*row_fn)(row_job *jb, int cbase, int nout, float *out, size_t ostride);
#define ROW_FN(KX, S, T)                                                                  \
  static void row_##KX##_##S(row_job *jb, int cbase, int nout, float *out,                \
                             size_t ostride) {                                            \
    tile_row(KX, S, T, jb, cbase, nout, out, ostride);                                    \
  }
ROW_FN(1, 1, DW_T_1_1)
ROW_FN(2, 1, DW_T_2_1)
ROW_FN(3, 1, DW_T_3_1)
ROW_FN(4, 1, DW_T_4_1)
ROW_FN(5, 1, DW_T_5_1)
ROW_FN(7, 1, DW_T_7_1)
ROW_FN(3, 2, DW_T_3_2)
ROW_FN(5, 2, DW_T_5_2)
ROW_FN(7, 2, DW_T_7_2)

/* The row function for (kx, s) and its tile width T (fn NULL where there is none). */
typedef struct {
  row_fn fn;
  int T;
} row_kind;
#define ROW_KIND(KX, S) ((row_kind){row_##KX##_##S, DW_T_##KX##_##S})
static row_kind row_for(int kx, int s) {
  if (s == 1) {
    switch (kx) {
      case 1: return ROW_KIND(1, 1);
      case 2: return ROW_KIND(2, 1);
      case 3: return ROW_KIND(3, 1);
      case 4: return ROW_KIND(4, 1);
      case 5: return ROW_KIND(5, 1);
      case 7: return ROW_KIND(7, 1);
      default: return (row_kind){NULL, 0};
    }
  }
  switch (kx) {
    case 3: return ROW_KIND(3, 2);
    case 5: return ROW_KIND(5, 2);
    case 7: return ROW_KIND(7, 2);
    default: return (row_kind){NULL, 0};
  }
}

static int specialised(int k) { return k == 3 || k == 5 || k == 7; }

/* ---- Generic odd K (per pixel, runtime taps) -------------------------------------- */

/* One output pixel of the forward pass for channels [cb, cb + DW_W) (masked if nch < DW_W). */
static dw_vec fwd_pixel_generic(const mpnas__dw_shape *s, const float *x, const float *wt,
                                int oy, int ox, int cb, dw_mask mask, int nch) {
  dw_vec acc = dw_zero();
  for (int ky = 0; ky < s->k; ky++) {
    int iy = oy * s->stride + ky - s->pad;
    if (iy < 0 || iy >= s->h) continue;
    for (int kx = 0; kx < s->k; kx++) {
      int ix = ox * s->stride + kx - s->pad;
      if (ix < 0 || ix >= s->w) continue;
      dw_vec xv = dw_load_n(x + ((size_t)iy * s->w + ix) * s->c + cb, nch, mask);
      dw_vec wv = dw_load_n(wt + ((size_t)ky * s->k + kx) * s->c + cb, nch, mask);
      acc = dw_fma(xv, wv, acc);
    }
  }
  return acc;
}

/* One input pixel of the input gradient (gather form, as the reference). */
static dw_vec bwd_pixel_generic(const mpnas__dw_shape *s, const float *dy, const float *wt,
                                int iy, int ix, int cb, dw_mask mask, int nch) {
  dw_vec acc = dw_zero();
  for (int ky = 0; ky < s->k; ky++) {
    int ty = iy + s->pad - ky;
    if (ty < 0 || ty % s->stride != 0 || ty / s->stride >= s->ho) continue;
    int oy = ty / s->stride;
    for (int kx = 0; kx < s->k; kx++) {
      int tx = ix + s->pad - kx;
      if (tx < 0 || tx % s->stride != 0 || tx / s->stride >= s->wo) continue;
      int ox = tx / s->stride;
      dw_vec dv = dw_load_n(dy + ((size_t)oy * s->wo + ox) * s->c + cb, nch, mask);
      dw_vec wv = dw_load_n(wt + ((size_t)ky * s->k + kx) * s->c + cb, nch, mask);
      acc = dw_fma(dv, wv, acc);
    }
  }
  return acc;
}

/* ---- Forward ---------------------------------------------------------------------- */

/* Tile positions in a row of nout outputs in tiles of T: at least this many (tile_row
 * adds one where the borders shift a tile), so a row's prefetches spread over this many
 * positions are all issued before the row ends. */
static int row_tiles(int nout, int T) { return nout > 0 ? (nout + T - 1) / T : 0; }

/* Where the next rows go. The sources into L1, except for stride 2: the forward's next
 * output row needs two new source rows (41 KB at 144 channels x 36 pixels, more than
 * L1), and into L2 both stride-2 passes measured faster on Zen 4 (forward 1.15-1.8x,
 * input gradient 1.1-1.5x at batch 32), stride 1 0.85-1.27x depending on the shape
 * (docs/PERFORMANCE.md, "Stride-2 depthwise sources prefetched into L2"). The next
 * output row only into L2: into L1 it evicted the sources of wide rows (7x7 stride-2
 * input gradient 10% slower). */
static int source_hint(int stride) { return stride == 2 ? _MM_HINT_T1 : _MM_HINT_T0; }
#define DW_OUTPUT_HINT _MM_HINT_T1

/* Rows [r0, r1) of an array of nr rows of `rowf` floats, in even portions over `tiles`
 * tile positions of one output row, each of them per channel block of c channels. Row
 * by row in NHWC, the tiles sweep each row in a pattern (pixel strides, channel blocks
 * interleaved) the hardware prefetcher does not follow, so loads would wait on memory;
 * so would the stores, for the lines they must first read. Prefetching the next row's
 * sources and the next output row measured 1.2-1.5x faster on the 3x3 shapes at batch
 * 32 than the sources alone. */
static prefetch_range plan_prefetch(const float *base, size_t rowf, int r0, int r1, int nr,
                                    int tiles, int c, int hint) {
  prefetch_range r = {NULL, NULL, 0, hint};
  if (r0 < 0) r0 = 0;
  if (r1 > nr) r1 = nr;
  if (r1 <= r0) return r;
  r.p = (const char *)(base + (size_t)r0 * rowf);
  r.end = (const char *)(base + (size_t)r1 * rowf);
  size_t lines = (size_t)(r.end - r.p) / 64 + 1;
  size_t calls = (size_t)(tiles > 0 ? tiles : 1) * (size_t)((c + DW_W - 1) / DW_W);
  r.per = (int)(lines / calls) + 1;
  return r;
}

/* Both passes go output row by output row; within a row, tile position by tile
 * position over all channel blocks. The few source rows a row needs stay in L1/L2
 * while it is computed, and every source row comes from memory once. */

void DW_NAME(mpnas__f32_dwconv_fwd)(const mpnas__dw_shape *s, const float *x, const float *wt,
                                    const float *scale, const float *shift, int act, float *y,
                                    int oh0, int oh1) {
  const int c = s->c, K = s->k, S = s->stride;
  const size_t xrow = (size_t)s->w * c, yrow = (size_t)s->wo * c;
  const int has_epi = scale != NULL || shift != NULL || act != MPNAS__ACT_NONE;
  if (!specialised(K)) {
    for (int oy = oh0; oy < oh1; oy++)
      for (int ox = 0; ox < s->wo; ox++)
        for (int cb = 0; cb < c; cb += DW_W) {
          const int nch = c - cb < DW_W ? c - cb : DW_W;
          const dw_mask mask = dw_tail_mask(nch);
          dw_vec v = fwd_pixel_generic(s, x, wt, oy, ox, cb, mask, nch);
          if (has_epi) {
            dw_vec vs = scale ? dw_load_n(scale + cb, nch, mask) : dw_one();
            dw_vec vt = shift ? dw_load_n(shift + cb, nch, mask) : dw_zero();
            v = dw_act(act, dw_fma(v, vs, vt));
          }
          dw_store_n(y + (size_t)oy * yrow + (size_t)ox * c + cb, v, nch, mask);
        }
    return;
  }
  const row_kind row = row_for(K, S);
  const int tiles = row_tiles(s->wo, row.T);
  row_job jb;
  jb.wstep = c;
  jb.ps = (size_t)c;
  jb.ncols = s->w;
  jb.c = c;
  jb.scale = scale;
  jb.shift = shift;
  jb.act = act;
  jb.has_epi = has_epi;
  for (int oy = oh0; oy < oh1; oy++) {
    jb.nrows = 0;
    for (int ky = 0; ky < K; ky++) {
      const int iy = oy * S + ky - s->pad;
      if (iy < 0 || iy >= s->h) continue;
      jb.src[jb.nrows] = x + (size_t)iy * xrow;
      jb.wrow[jb.nrows] = wt + (size_t)ky * K * c;
      jb.nrows++;
    }
    jb.in = plan_prefetch(x, xrow, (oy + DW_PF_AHEAD - 1) * S - s->pad + K,
                          (oy + DW_PF_AHEAD) * S - s->pad + K, s->h, tiles, c, source_hint(S));
    jb.out = plan_prefetch(y, yrow, oy + DW_PF_AHEAD, oy + DW_PF_AHEAD + 1, oh1, tiles, c,
                           DW_OUTPUT_HINT);

    row.fn(&jb, -s->pad, s->wo, y + (size_t)oy * yrow, (size_t)c);
  }
}

/* ---- Input gradient --------------------------------------------------------------- */

/* Stride 2: the pixels px, px + 2, ... of a row of w (a parity class), and how many of
 * a K-wide kernel's taps reach them: those kx with kx = (px + pad) mod 2. */
static int parity_pixels(int w, int px) { return (w - px + 1) / 2; }
static int parity_taps(int K, int pad, int px) { return (K - (px + pad) % 2 + 1) / 2; }

void DW_NAME(mpnas__f32_dwconv_bwd_input)(const mpnas__dw_shape *s, const float *dy,
                                          const float *wt, float *dx, int ih0, int ih1) {
  const int c = s->c, K = s->k, S = s->stride, pad = s->pad;
  const size_t xrow = (size_t)s->w * c, yrow = (size_t)s->wo * c;
  if (!specialised(K)) {
    for (int iy = ih0; iy < ih1; iy++)
      for (int ix = 0; ix < s->w; ix++)
        for (int cb = 0; cb < c; cb += DW_W) {
          const int nch = c - cb < DW_W ? c - cb : DW_W;
          const dw_mask mask = dw_tail_mask(nch);
          dw_store_n(dx + (size_t)iy * xrow + (size_t)ix * c + cb,
                            bwd_pixel_generic(s, dy, wt, iy, ix, cb, mask, nch), nch, mask);
        }
    return;
  }
  row_job jb;
  jb.ps = (size_t)c;
  jb.ncols = s->wo;
  jb.c = c;
  jb.scale = jb.shift = NULL;
  jb.act = MPNAS__ACT_NONE;
  jb.has_epi = 0;
  /* tile positions per input row: stride 2 runs a row in two parity classes */
  int tiles = row_tiles(s->w, row_for(K, 1).T);
  if (S == 2) {
    tiles = 0;
    for (int px = 0; px < 2 && px < s->w; px++)
      tiles += row_tiles(parity_pixels(s->w, px), row_for(parity_taps(K, pad, px), 1).T);
  }
  for (int iy = ih0; iy < ih1; iy++) {
    /* dy rows feeding input row iy: oy = (iy + pad - ky) / S for the ky that divide */
    int kys[MAXK];
    jb.nrows = 0;
    for (int ky = 0; ky < K; ky++) {
      const int ty = iy + pad - ky;
      if (ty < 0 || ty % S != 0 || ty / S >= s->ho) continue;
      kys[jb.nrows] = ky;
      jb.src[jb.nrows] = dy + (size_t)(ty / S) * yrow;
      jb.nrows++;
    }
    float *xr = dx + (size_t)iy * xrow;
    /* the next input row's highest dy row, if this row does not use it yet */
    const int next_top = (iy + 1 + pad) / S;
    jb.in = plan_prefetch(dy, yrow, next_top, next_top > (iy + pad) / S ? next_top + 1 : next_top,
                          s->ho, tiles, c, source_hint(S));
    jb.out = plan_prefetch(dx, xrow, iy + 1, iy + 2, ih1, tiles, c, DW_OUTPUT_HINT);
    if (S == 1) {
      /* dx[ix] = sum_j dy[ix - pad + j] * w[ky][K-1-j] */
      for (int r = 0; r < jb.nrows; r++) jb.wrow[r] = wt + ((size_t)kys[r] * K + K - 1) * c;
      jb.wstep = -(ptrdiff_t)c;
      row_for(K, 1).fn(&jb, -pad, s->w, xr, (size_t)c);
      continue;
    }
    /* stride 2: pixels ix = px + 2u take taps kx = rr + 2q, q < Q, from dy column
     * ox = u + b - q; walking q backwards makes it a stride-1 correlation */
    for (int px = 0; px < 2 && px < s->w; px++) {
      const int rr = (px + pad) % 2, Q = parity_taps(K, pad, px), b = (px + pad - rr) / 2;
      for (int r = 0; r < jb.nrows; r++) jb.wrow[r] = wt + ((size_t)kys[r] * K + rr + 2 * (Q - 1)) * c;
      jb.wstep = -2 * (ptrdiff_t)c;
      row_for(Q, 1).fn(&jb, b - (Q - 1), parity_pixels(s->w, px), xr + (size_t)px * c,
                       2 * (size_t)c);
    }
  }
}

/* ---- Weight gradient -------------------------------------------------------------- */

/* Prefetch cursors over the rows the next band needs (see plan_prefetch): two ranges
 * (x rows, dy rows), `per` cache lines of each per step. For 3x3 stride 1 (little work
 * per pixel) a step is an output pixel of the first row group: spreading the prefetches
 * that finely measured 1.1-1.6x faster there. For the others a step is an output row of
 * any row group: per-pixel checks measured 1.1-1.2x slower in their longer loops. */
#define PF_PER_PIXEL(K, S) ((K) == 3 && (S) == 1)
/* Where the next band goes. A band is sized to live in L2, and for 3x3 (9 FMAs per
 * loaded x vector) the prefetches into L1 evicted lines of the current band before
 * their use: into L2 measured 1.2-1.7x faster for 3x3, 10-15% slower for 7x7. */
#define PF_TO_L2(K) ((K) == 3)
typedef struct {
  const char *p[2], *end[2];
  int per;
} bww_prefetch;

DW_INLINE void bww_prefetch_step(const int K, bww_prefetch *pf) {
  for (int t = 0; t < 2; t++)
    for (int q = 0; q < pf->per && pf->p[t] < pf->end[t]; q++, pf->p[t] += 64) {
      if (PF_TO_L2(K)) _mm_prefetch(pf->p[t], _MM_HINT_T1);
      else _mm_prefetch(pf->p[t], _MM_HINT_T0);
    }
}

/* Accumulate the taps of kernel rows [ky0, ky0 + R) over output pixels [ox0, ox1) of
 * one output row: acc[r][kx] += x[row r][ox*S + kx - pad] * dy[ox]. With ROWCHECK,
 * xr[r] may be NULL (a kernel row outside the image); with CHECK, columns outside [0, w)
 * are skipped. Interior rows and columns take the unchecked instantiation. */
DW_INLINE void bww_run(const int K, const int R, const int S, const int CHECK,
                       const int ROWCHECK, const int MASK, dw_vec acc[][MAXK],
                       const float *const *xr, const float *dyr, size_t ps, int ox0,
                       int ox1, int pad, int w, bww_prefetch *pf, dw_mask mask) {
  const float *dp = dyr + (size_t)ox0 * ps;
  for (int ox = ox0; ox < ox1; ox++, dp += ps) {
    if (PF_PER_PIXEL(K, S)) bww_prefetch_step(K, pf);
    const dw_vec dv = MASK ? dw_loadm(dp, mask) : dw_load(dp);
    const int ix0 = ox * S - pad;
    /* an integer address: at the left border it starts before the row (see row_acc) */
    const uintptr_t off = (uintptr_t)((ptrdiff_t)ix0 * (ptrdiff_t)(ps * sizeof(float)));
MPNAS_UNROLL(8)
    for (int r = 0; r < R; r++) {
      if (ROWCHECK && xr[r] == NULL) continue;
      uintptr_t xa = (uintptr_t)xr[r] + off;
MPNAS_UNROLL(8)
      for (int kx = 0; kx < K; kx++, xa += ps * sizeof(float)) {
        if (CHECK && (ix0 + kx < 0 || ix0 + kx >= w)) continue;
        const float *xp = (const float *)xa;
        const dw_vec xv = MASK ? dw_loadm(xp, mask) : dw_load(xp);
        acc[r][kx] = dw_fma(xv, dv, acc[r][kx]);
      }
    }
  }
}

/* One output row: border columns checked, the interior [a, b) not. */
DW_INLINE void bww_row(const int K, const int R, const int S, const int ROWCHECK,
                       const int MASK, dw_vec acc[][MAXK], const float *const *xr,
                       const float *dyr, size_t ps, int a, int b, int wo, int pad,
                       int w, bww_prefetch *pf, dw_mask mask) {
  bww_run(K, R, S, 1, ROWCHECK, MASK, acc, xr, dyr, ps, 0, a, pad, w, pf, mask);
  bww_run(K, R, S, 0, ROWCHECK, MASK, acc, xr, dyr, ps, a, b, pad, w, pf, mask);
  bww_run(K, R, S, 1, ROWCHECK, MASK, acc, xr, dyr, ps, b, wo, pad, w, pf, mask);
}

/* Output rows [oy0, oy1) of one channel block, kernel rows [ky0, ky0 + R): the band's
 * sums are added to dwt. Row by row, the R*K accumulators stay in registers. */
DW_INLINE void bww_group(const int K, const int R, const int S, const int MASK,
                         const mpnas__dw_shape *s, const float *x, const float *dy,
                         float *dwt, int ky0, int cb, int oy0, int oy1,
                         bww_prefetch *pf, dw_mask mask) {
  const int c = s->c, pad = s->pad;
  const size_t ps = (size_t)c;
  /* output columns [a, b) have all K taps inside the row */
  const int a = (pad + S - 1) / S < s->wo ? (pad + S - 1) / S : s->wo;
  int b = s->w - K + pad >= 0 ? (s->w - K + pad) / S + 1 : 0;
  b = b < a ? a : (b > s->wo ? s->wo : b);
  dw_vec acc[MAXK][MAXK];
MPNAS_UNROLL(8)
  for (int r = 0; r < R; r++)
MPNAS_UNROLL(8)
    for (int kx = 0; kx < K; kx++) acc[r][kx] = dw_zero();
  for (int oy = oy0; oy < oy1; oy++) {
    if (!PF_PER_PIXEL(K, S)) bww_prefetch_step(K, pf);
    const float *xr[MAXK];
    int nvalid = 0;
MPNAS_UNROLL(8)
    for (int r = 0; r < R; r++) {
      const int iy = oy * S + ky0 + r - pad;
      xr[r] = iy >= 0 && iy < s->h ? x + (size_t)iy * s->w * c + cb : NULL;
      nvalid += xr[r] != NULL;
    }
    const float *dyr = dy + (size_t)oy * s->wo * c + cb;
    if (nvalid == R) bww_row(K, R, S, 0, MASK, acc, xr, dyr, ps, a, b, s->wo, pad, s->w, pf, mask);
    else if (nvalid > 0) bww_row(K, R, S, 1, MASK, acc, xr, dyr, ps, a, b, s->wo, pad, s->w, pf, mask);
  }
MPNAS_UNROLL(8)
  for (int r = 0; r < R; r++) {
MPNAS_UNROLL(8)
    for (int kx = 0; kx < K; kx++) {
      float *o = dwt + ((size_t)(ky0 + r) * K + kx) * c + cb;
      if (MASK) dw_storem(o, mask, dw_add(dw_loadm(o, mask), acc[r][kx]));
      else dw_store(o, dw_add(dw_load(o), acc[r][kx]));
    }
  }
}

/* A band of output rows over channels [c0, c1): per channel block, the kernel rows in
 * groups of R (R*K accumulators + dy + one x vector within the registers: DW_R5, DW_R7
 * from the including file), the remainder group with K % R rows. */
DW_INLINE void bww_band(const int K, const int R, const int S,
                        const mpnas__dw_shape *s, const float *x, const float *dy,
                        float *dwt, int oy0, int oy1, int c0, int c1,
                        bww_prefetch *pf) {
  for (int cb = c0; cb < c1; cb += DW_W) {
    const int nch = c1 - cb < DW_W ? c1 - cb : DW_W;
    const dw_mask mask = dw_tail_mask(nch);
    bww_prefetch none = {{NULL, NULL}, {NULL, NULL}, 0};
    int ky0 = 0;
    for (; ky0 + R <= K; ky0 += R) {
      bww_prefetch *p = ky0 == 0 || !PF_PER_PIXEL(K, S) ? pf : &none;
      if (nch < DW_W) bww_group(K, R, S, 1, s, x, dy, dwt, ky0, cb, oy0, oy1, p, mask);
      else bww_group(K, R, S, 0, s, x, dy, dwt, ky0, cb, oy0, oy1, p, mask);
    }
    if (K % R != 0) {
      bww_prefetch *p = ky0 == 0 || !PF_PER_PIXEL(K, S) ? pf : &none;
      if (nch < DW_W) bww_group(K, K % R, S, 1, s, x, dy, dwt, ky0, cb, oy0, oy1, p, mask);
      else bww_group(K, K % R, S, 0, s, x, dy, dwt, ky0, cb, oy0, oy1, p, mask);
    }
  }
}

typedef void (*bww_fn)(const mpnas__dw_shape *s, const float *x, const float *dy, float *dwt,
                       int oy0, int oy1, int c0, int c1, bww_prefetch *pf);
#define BWW_FN(K, R, S)                                                                    \
  static void bww_##K##_##S(const mpnas__dw_shape *s, const float *x, const float *dy,       \
                            float *dwt, int oy0, int oy1, int c0, int c1, bww_prefetch *pf) { \
    bww_band(K, R, S, s, x, dy, dwt, oy0, oy1, c0, c1, pf);                                 \
  }
BWW_FN(3, 3, 1)
BWW_FN(3, 3, 2)
BWW_FN(5, DW_R5, 1)
BWW_FN(5, DW_R5, 2)
BWW_FN(7, DW_R7, 1)
BWW_FN(7, DW_R7, 2)

/* Generic K, one image and channel block: one tap at a time over the image. */
static void bww_generic(const mpnas__dw_shape *s, const float *x, const float *dy, float *dwt,
                        int cb, int nch) {
  const int c = s->c, K = s->k, S = s->stride;
  const dw_mask mask = dw_tail_mask(nch);
  for (int ky = 0; ky < K; ky++)
    for (int kx = 0; kx < K; kx++) {
      dw_vec acc = dw_zero();
      for (int oy = 0; oy < s->ho; oy++) {
        int iy = oy * S + ky - s->pad;
        if (iy < 0 || iy >= s->h) continue;
        for (int ox = 0; ox < s->wo; ox++) {
          int ix = ox * S + kx - s->pad;
          if (ix < 0 || ix >= s->w) continue;
          dw_vec xv = dw_load_n(x + ((size_t)iy * s->w + ix) * c + cb, nch, mask);
          dw_vec dv = dw_load_n(dy + ((size_t)oy * s->wo + ox) * c + cb, nch, mask);
          acc = dw_fma(xv, dv, acc);
        }
      }
      float *o = dwt + ((size_t)ky * K + kx) * c + cb;
      dw_store_n(o, dw_add(dw_load_n(o, nch, mask), acc), nch, mask);
    }
}

/* Bytes of x and dy rows a band of the weight gradient keeps in L2 across the channel
 * blocks (a quarter of a 1 MiB L2: measured best or near-best on the dw shapes). */
#define BAND_BYTES (256 * 1024)

void DW_NAME(mpnas__f32_dwconv_bwd_weight)(const mpnas__dw_shape *s, int n, const float *x,
                                           const float *dy, float *dwt, int c0, int c1) {
  const int c = s->c, K = s->k, S = s->stride, pad = s->pad;
  const size_t xrow = (size_t)s->w * c, yrow = (size_t)s->wo * c;
  const size_t in_image = (size_t)s->h * xrow, out_image = (size_t)s->ho * yrow;
  if (c1 <= c0) return;
  bww_fn fn = NULL;
  if (K == 3) fn = S == 1 ? bww_3_1 : bww_3_2;
  if (K == 5) fn = S == 1 ? bww_5_1 : bww_5_2;
  if (K == 7) fn = S == 1 ? bww_7_1 : bww_7_2;
  /* Bands of output rows whose x and dy rows fit in L2: the first channel block brings
   * them from memory, the others find them in L2, and within a block the rows slide
   * through L1. The band size depends on the shape only (not on [c0, c1)), so every
   * channel's order of additions is fixed. */
  const size_t row_bytes = sizeof(float) * ((size_t)S * xrow + yrow);
  int band = (int)(BAND_BYTES / (row_bytes ? row_bytes : 1));
  band = band < 1 ? 1 : (band > s->ho ? s->ho : band);
  /* Image by image, each band's sums added to dwt in turn: a caller may pass the images
   * one at a time with the same bits (weight_grad_in_blocks, kernels.h). */
  for (int i = 0; i < n; i++) {
    const float *xi = x + i * in_image, *dyi = dy + i * out_image;
    if (fn == NULL) {
      for (int cb = c0; cb < c1; cb += DW_W)
        bww_generic(s, xi, dyi, dwt, cb, c1 - cb < DW_W ? c1 - cb : DW_W);
      continue;
    }
    for (int oy0 = 0; oy0 < s->ho; oy0 += band) {
      const int oy1 = s->ho - oy0 < band ? s->ho : oy0 + band;
      /* prefetch the next band's new rows, spread over this band; after the last band
       * of an image, the next image's first band */
      bww_prefetch pf;
      if (oy1 < s->ho) {
        const int nb1 = s->ho - oy1 < band ? s->ho : oy1 + band;
        int r0 = oy1 * S - pad + K - S, r1 = nb1 * S - pad + K;
        r0 = r0 < 0 ? 0 : r0;
        r1 = r1 > s->h ? s->h : r1;
        pf.p[0] = (const char *)(xi + (size_t)r0 * xrow);
        pf.end[0] = r1 > r0 ? (const char *)(xi + (size_t)r1 * xrow) : pf.p[0];
        pf.p[1] = (const char *)(dyi + (size_t)oy1 * yrow);
        pf.end[1] = (const char *)(dyi + (size_t)nb1 * yrow);
      } else if (i + 1 < n) {
        const int nb1 = band, r1 = band * S - pad + K < s->h ? band * S - pad + K : s->h;
        pf.p[0] = (const char *)(xi + in_image);
        pf.end[0] = (const char *)(xi + in_image + (size_t)r1 * xrow);
        pf.p[1] = (const char *)(dyi + out_image);
        pf.end[1] = (const char *)(dyi + out_image + (size_t)nb1 * yrow);
      } else {
        pf.p[0] = pf.end[0] = pf.p[1] = pf.end[1] = (const char *)xi; /* nothing */
      }
      size_t lines = (size_t)(pf.end[0] - pf.p[0] > pf.end[1] - pf.p[1] ? pf.end[0] - pf.p[0]
                                                                         : pf.end[1] - pf.p[1]) / 64;
      const int ngroups =
          K == 3 ? 1 : (K == 5 ? (5 + DW_R5 - 1) / DW_R5 : (7 + DW_R7 - 1) / DW_R7);
      size_t calls = (size_t)((c1 - c0 + DW_W - 1) / DW_W) * (size_t)(oy1 - oy0) *
                     (size_t)(PF_PER_PIXEL(K, S) ? s->wo : ngroups);
      pf.per = (int)(lines / calls) + 1;
      fn(s, xi, dyi, dwt, oy0, oy1, c0, c1, &pf);
    }
  }
}
