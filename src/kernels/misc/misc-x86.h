/* misc-x86.h - batch-norm statistics, BN apply fused with the activation, BN backward
 * and the activations (contracts in kernels.h), written once for both x86 widths with
 * the operations of vec-x86.h (VEC_LANES = VW lanes per vector): misc-avx2.c includes it
 * at 8 lanes (ymm, AVX2+FMA), misc-avx512.c at 16 (zmm, AVX-512). MISC_NAME(f) names the
 * exported kernels. One vector holds VW channels of a row; the last vector of a channel
 * count that is not a multiple of VW is masked (loads read nothing past the end, stores
 * write nothing past it).
 *
 * Both widths give the same bits: lanes are channels, and every channel goes through
 * the same float/double operations in the same order whatever the width; where the
 * order depends on how channels are grouped (the reductions' groups and row streams
 * below), the grouping is in channels, not vectors.
 *
 * Reductions (bn_stats, bn_bwd_reduce) walk the rows in blocks of MPNAS__BN_BLOCK_ROWS
 * and, inside a block, the channels in groups of up to 32 (4 ymm or 2 zmm accumulators
 * per quantity; bn_bwd_reduce 128 with zmm, RGROUP below). A block's sums accumulate in
 * float - at most 256 terms, so their rounding does not grow with m - and are then
 * folded into the double outputs. bn_stats takes
 * two passes over each block (its mean, then the deviations from that mean, while the
 * block is still in L1/L2), so it reads memory once yet never subtracts two large,
 * nearly equal sums: block k gives n_k, its mean mb + d1 / n_k (d1 = sum (x - mb), which
 * recovers what rounding mb lost) and M2_k = d2 - d1^2 / n_k (d2 = sum (x - mb)^2),
 * merged into the running (mean, M2) by Chan et al.'s update in double:
 *     delta = mean_k - mean;  mean += delta * n_k / n;  M2 += M2_k + delta^2 n_prev n_k / n.
 * Blocks start every 256 rows from the first row passed, and the order of every sum
 * depends only on (m, c) and the channel's index, so a given slice of rows always gives
 * the same bits (the op layer's thread splits rely on that, ops_misc.c). */

#define VW VEC_LANES
#define BLOCK MPNAS__BN_BLOCK_ROWS
#define GROUP 32        /* channels per reduction group */
#define GV (GROUP / VW) /* vectors per full group */
#define ACT V_FN(act)

static int imin(int a, int b) { return a < b ? a : b; }

/* Vector v of a group of NV vectors whose last one is masked when MASKED. */
#define GLOAD(p, v) (((MASKED) && (v) == NV - 1) ? V_LOADM((p), mask) : V_LOAD(p))

/* ---- bn_stats ------------------------------------------------------------------------ */

/* Vectors stats_group takes at once: a group, or (zmm) up to three whole groups side by
 * side (below). */
#if VW == 16
#define STATS_NV_MAX (3 * GV)
#else
#define STATS_NV_MAX GV
#endif

/* One block of `rows` rows for one group of channels (x at the group's first channel):
 * mb = block mean in float, d1 = sum (x - mb), d2 = sum (x - mb)^2, VW*NV lanes each.
 * Masked lanes load 0, so their mean and deviations are 0. Narrow groups (16 channels
 * or fewer, U = 2) split the rows into two interleaved streams so the float adds form
 * independent chains; the two partial sums are added at the end (a fixed order). */
MPNAS_AVX2_INLINE void stats_group(const int NV, const int MASKED, const int U, int rows,
                                   size_t ld, const float *x, V_TAILMASK mask, float *mb_out,
                                   float *d1_out, float *d2_out) {
  V_F s[2][STATS_NV_MAX], mb[STATS_NV_MAX], d1[2][STATS_NV_MAX], d2[2][STATS_NV_MAX];
#pragma GCC unroll 8
  for (int u = 0; u < U; u++)
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) s[u][v] = d1[u][v] = d2[u][v] = V_ZERO();
  int r = 0;
  const float *p = x;
  for (; r + U <= rows; r += U)
#pragma GCC unroll 2
    for (int u = 0; u < U; u++, p += ld)
#pragma GCC unroll 8
      for (int v = 0; v < NV; v++) s[u][v] = V_ADD(s[u][v], GLOAD(p + VW * v, v));
  if (r < rows) /* odd row count with two streams: the last row joins stream 0 */
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) s[0][v] = V_ADD(s[0][v], GLOAD(p + VW * v, v));
  const V_F n = V_SET1((float)rows);
#pragma GCC unroll 8
  for (int v = 0; v < NV; v++) {
    if (U == 2) s[0][v] = V_ADD(s[0][v], s[1][v]);
    mb[v] = V_DIV(s[0][v], n);
  }
  r = 0;
  p = x;
  for (; r + U <= rows; r += U)
#pragma GCC unroll 2
    for (int u = 0; u < U; u++, p += ld)
#pragma GCC unroll 8
      for (int v = 0; v < NV; v++) {
        V_F d = V_SUB(GLOAD(p + VW * v, v), mb[v]);
        d1[u][v] = V_ADD(d1[u][v], d);
        d2[u][v] = V_FMA(d, d, d2[u][v]);
      }
  if (r < rows)
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
      V_F d = V_SUB(GLOAD(p + VW * v, v), mb[v]);
      d1[0][v] = V_ADD(d1[0][v], d);
      d2[0][v] = V_FMA(d, d, d2[0][v]);
    }
#pragma GCC unroll 8
  for (int v = 0; v < NV; v++) {
    if (U == 2) {
      d1[0][v] = V_ADD(d1[0][v], d1[1][v]);
      d2[0][v] = V_ADD(d2[0][v], d2[1][v]);
    }
    V_STORE(mb_out + VW * v, mb[v]);
    V_STORE(d1_out + VW * v, d1[0][v]);
    V_STORE(d2_out + VW * v, d2[0][v]);
  }
}

/* Fold one block (rows, mb, d1, d2 for nch channels) into the running mean/m2 of the
 * rows before it (prev of them; prev == 0 for the first block). Once per block and
 * channel, so 4 doubles (ymm) at both widths. */
static void stats_merge(int nch, int prev, int rows, const float *mb, const float *d1,
                        const float *d2, double *mean, double *m2) {
  const double nb = rows, inv_nb = 1.0 / nb, tot = (double)prev + nb;
  const double wb = nb / tot, wab = (double)prev * nb / tot;
  const __m256d vinv = _mm256_set1_pd(inv_nb), vwb = _mm256_set1_pd(wb),
                vwab = _mm256_set1_pd(wab);
  int j = 0;
  for (; j + 4 <= nch; j += 4) {
    __m256d m = _mm256_cvtps_pd(_mm_loadu_ps(mb + j));
    __m256d s1 = _mm256_cvtps_pd(_mm_loadu_ps(d1 + j));
    __m256d s2 = _mm256_cvtps_pd(_mm_loadu_ps(d2 + j));
    __m256d bm = _mm256_add_pd(m, _mm256_mul_pd(s1, vinv));
    __m256d bm2 = _mm256_sub_pd(s2, _mm256_mul_pd(_mm256_mul_pd(s1, s1), vinv));
    if (prev == 0) {
      _mm256_storeu_pd(mean + j, bm);
      _mm256_storeu_pd(m2 + j, bm2);
    } else {
      __m256d mu = _mm256_loadu_pd(mean + j);
      __m256d delta = _mm256_sub_pd(bm, mu);
      _mm256_storeu_pd(mean + j, _mm256_add_pd(mu, _mm256_mul_pd(delta, vwb)));
      __m256d add = _mm256_add_pd(bm2, _mm256_mul_pd(_mm256_mul_pd(delta, delta), vwab));
      _mm256_storeu_pd(m2 + j, _mm256_add_pd(_mm256_loadu_pd(m2 + j), add));
    }
  }
  for (; j < nch; j++) { /* the same operations, one channel at a time */
    double s1 = d1[j], bm = (double)mb[j] + s1 * inv_nb;
    double bm2 = (double)d2[j] - s1 * s1 * inv_nb;
    if (prev == 0) {
      mean[j] = bm;
      m2[j] = bm2;
    } else {
      double delta = bm - mean[j];
      mean[j] = mean[j] + delta * wb;
      m2[j] = m2[j] + (bm2 + delta * delta * wab);
    }
  }
}

/* Call F(NV, MASKED, ...) for a group of nch channels (nv vectors, the last one masked
 * when tail != 0), with the vector count a compile-time constant in each call: up to 2,
 * 4 or 8 vectors (NV_SWITCH2 / 4 / 8). */
#define NV_CASES(F, NV, ...)                                                  \
  case 2 * (NV): F(NV, 0, __VA_ARGS__); break;                                \
  case 2 * (NV) + 1: F(NV, 1, __VA_ARGS__); break;
#define NV_SWITCH2(F, ...)                                                    \
  switch (nv * 2 + (tail != 0)) {                                             \
    NV_CASES(F, 1, __VA_ARGS__)                                               \
    case 4: F(2, 0, __VA_ARGS__); break;                                      \
    default: F(2, 1, __VA_ARGS__); break;                                     \
  }
#define NV_SWITCH4(F, ...)                                                    \
  switch (nv * 2 + (tail != 0)) {                                             \
    NV_CASES(F, 1, __VA_ARGS__) NV_CASES(F, 2, __VA_ARGS__)                   \
    NV_CASES(F, 3, __VA_ARGS__)                                               \
    case 8: F(4, 0, __VA_ARGS__); break;                                      \
    default: F(4, 1, __VA_ARGS__); break;                                     \
  }
#define NV_SWITCH8(F, ...)                                                    \
  switch (nv * 2 + (tail != 0)) {                                             \
    NV_CASES(F, 1, __VA_ARGS__) NV_CASES(F, 2, __VA_ARGS__)                   \
    NV_CASES(F, 3, __VA_ARGS__) NV_CASES(F, 4, __VA_ARGS__)                   \
    NV_CASES(F, 5, __VA_ARGS__) NV_CASES(F, 6, __VA_ARGS__)                   \
    NV_CASES(F, 7, __VA_ARGS__)                                               \
    case 16: F(8, 0, __VA_ARGS__); break;                                     \
    default: F(8, 1, __VA_ARGS__); break;                                     \
  }
#if VW == 8
#define GROUP_SWITCH NV_SWITCH4
#else
#define GROUP_SWITCH NV_SWITCH2
#endif

/* Two row streams exactly when the group has 16 channels or fewer (at either width). */
#define STATS_GROUP(NV_, MASKED_, ...) \
  stats_group(NV_, MASKED_, (NV_) * VW <= 16 ? 2 : 1, __VA_ARGS__)

void MISC_NAME(mpnas__f32_bn_stats)(int m, int c, size_t ld, const float *x, double *mean,
                                    double *m2) {
  float mb[3 * GROUP], d1[3 * GROUP], d2[3 * GROUP];
  for (int r0 = 0; r0 < m; r0 += BLOCK) {
    int rows = imin(BLOCK, m - r0);
    const float *xb = x + (size_t)r0 * ld;
    int c0 = 0;
#if VW == 16
    /* Whole groups three or two at a time: every lane's sums are the group's own, in the
     * same order (so the bits of the 8-lane code), but with 4-6 independent chains of
     * adds instead of 2, which at 256 rows a block bound the pass (search step: bn_stats
     * 5.8% of a step). */
    for (; c0 + 3 * GROUP <= c; c0 += 3 * GROUP) {
      stats_group(3 * GV, 0, 1, rows, ld, xb + c0, V_TAIL(0), mb, d1, d2);
      stats_merge(3 * GROUP, r0, rows, mb, d1, d2, mean + c0, m2 + c0);
    }
    if (c0 + 2 * GROUP <= c) {
      stats_group(2 * GV, 0, 1, rows, ld, xb + c0, V_TAIL(0), mb, d1, d2);
      stats_merge(2 * GROUP, r0, rows, mb, d1, d2, mean + c0, m2 + c0);
      c0 += 2 * GROUP;
    }
#endif
    for (; c0 < c; c0 += GROUP) {
      int nch = imin(GROUP, c - c0), nv = (nch + VW - 1) / VW, tail = nch % VW;
      V_TAILMASK mask = V_TAIL(tail);
      const float *xg = xb + c0;
      GROUP_SWITCH(STATS_GROUP, rows, ld, xg, mask, mb, d1, d2)
      stats_merge(nch, r0, rows, mb, d1, d2, mean + c0, m2 + c0);
    }
  }
}

/* ---- Elementwise passes ----------------------------------------------------------------
 * Templated on the activation (a compile-time constant in each instantiation, so the
 * activation's switch folds away). */

/* Rows of fewer than NARROW_MAX channels with a masked tail, one after the other (ld ==
 * c), are taken as one flat run of m * c values by the elementwise passes: a row's
 * masked store reaches into the next row, and when the pass runs in place the next
 * row's loads wait for it (measured 2-5x slower in place for c = 3..24). The
 * per-channel parameters are repeated over P = lcm(c, VW) values (narrow_params), so
 * every value gets its own channel's parameters: the same bits. */
#define NARROW_MAX 32

static int is_narrow(int m, int c, size_t ld) {
  return ld == (size_t)c && c < NARROW_MAX && c % VW != 0 && m > 1;
}

/* dst[q] = src[q % c] for q < P = lcm(c, VW); returns P. */
static int narrow_params(int c, const float *src, float *dst) {
  int a = c, b = VW;
  while (b != 0) {
    int t = a % b;
    a = b;
    b = t;
  }
  const int P = c / a * VW;
  for (int q = 0; q < P; q++) dst[q] = src[q % c];
  return P;
}

MPNAS_AVX2_INLINE void apply_rows(const int A, const int NORM, int m, int c, size_t ld,
                                  const float *x, const float *mu, const float *k,
                                  const float *b, float *norm, float *y) {
  const int tail = c % VW;
  const V_TAILMASK mask = V_TAIL(tail);
  for (size_t i = 0; i < (size_t)m; i++) {
    const float *xr = x + i * ld;
    float *nr = NORM ? norm + i * ld : NULL, *yr = y + i * ld;
    int ch = 0;
    for (; ch + VW <= c; ch += VW) {
      V_F t = V_SUB(V_LOAD(xr + ch), V_LOAD(mu + ch));
      t = V_FMA(t, V_LOAD(k + ch), V_LOAD(b + ch));
      if (NORM) V_STORE(nr + ch, t);
      V_STORE(yr + ch, ACT(A, t));
    }
    if (tail) {
      V_F t = V_SUB(V_LOADM(xr + ch, mask), V_LOADM(mu + ch, mask));
      t = V_FMA(t, V_LOADM(k + ch, mask), V_LOADM(b + ch, mask));
      if (NORM) V_STOREM(nr + ch, mask, t);
      V_STOREM(yr + ch, mask, ACT(A, t));
    }
  }
}

/* apply_rows over narrow rows (is_narrow) as one flat run. */
MPNAS_AVX2_INLINE void apply_flat(const int A, const int NORM, int m, int c, const float *x,
                                  const float *mu, const float *k, const float *b,
                                  float *norm, float *y) {
  float pm[NARROW_MAX * VW], pk[NARROW_MAX * VW], pb[NARROW_MAX * VW];
  const int P = narrow_params(c, mu, pm);
  narrow_params(c, k, pk);
  narrow_params(c, b, pb);
  const size_t n = (size_t)m * c;
  size_t i = 0;
  int q = 0;
  for (; i + VW <= n; i += VW, q = q + VW == P ? 0 : q + VW) {
    V_F t = V_SUB(V_LOAD(x + i), V_LOAD(pm + q));
    t = V_FMA(t, V_LOAD(pk + q), V_LOAD(pb + q));
    if (NORM) V_STORE(norm + i, t);
    V_STORE(y + i, ACT(A, t));
  }
  if (i < n) {
    const V_TAILMASK mask = V_TAIL((int)(n - i));
    V_F t = V_SUB(V_LOADM(x + i, mask), V_LOADM(pm + q, mask));
    t = V_FMA(t, V_LOADM(pk + q, mask), V_LOADM(pb + q, mask));
    if (NORM) V_STOREM(norm + i, mask, t);
    V_STOREM(y + i, mask, ACT(A, t));
  }
}

#define APPLY_CASE(A)                                                         \
  case A:                                                                     \
    if (is_narrow(m, c, ld) && norm != NULL)                                  \
      apply_flat(A, 1, m, c, x, mu, k, b, norm, y);                           \
    else if (is_narrow(m, c, ld))                                             \
      apply_flat(A, 0, m, c, x, mu, k, b, NULL, y);                           \
    else if (norm != NULL)                                                    \
      apply_rows(A, 1, m, c, ld, x, mu, k, b, norm, y);                       \
    else                                                                      \
      apply_rows(A, 0, m, c, ld, x, mu, k, b, NULL, y);                       \
    break;

void MISC_NAME(mpnas__f32_bn_apply)(int m, int c, size_t ld, const float *x, const float *mu,
                                    const float *k, const float *b, int act, float *norm,
                                    float *y) {
  switch (act) {
    APPLY_CASE(MPNAS__ACT_RELU)
    APPLY_CASE(MPNAS__ACT_RELU6)
    APPLY_CASE(MPNAS__ACT_HSWISH)
    APPLY_CASE(MPNAS__ACT_SIGMOID)
    APPLY_CASE(MPNAS__ACT_HSIGMOID)
    default: APPLY_CASE(MPNAS__ACT_NONE)
  }
}

/* bn_bwd_dx over narrow rows (is_narrow) as one flat run. */
static void bn_bwd_dx_flat(int m, int c, const float *x, const float *dy, const float *mu,
                           const float *a, const float *b, const float *d, float *dx) {
  float pm[NARROW_MAX * VW], pa[NARROW_MAX * VW], pb[NARROW_MAX * VW], pd[NARROW_MAX * VW];
  const int P = narrow_params(c, mu, pm);
  narrow_params(c, a, pa);
  narrow_params(c, b, pb);
  narrow_params(c, d, pd);
  const size_t n = (size_t)m * c;
  size_t i = 0;
  int q = 0;
  for (; i + VW <= n; i += VW, q = q + VW == P ? 0 : q + VW) {
    V_F t = V_SUB(V_LOAD(x + i), V_LOAD(pm + q));
    t = V_FMA(V_LOAD(pb + q), t, V_LOAD(pd + q));
    V_STORE(dx + i, V_FMA(V_LOAD(pa + q), V_LOAD(dy + i), t));
  }
  if (i < n) {
    const V_TAILMASK mask = V_TAIL((int)(n - i));
    V_F t = V_SUB(V_LOADM(x + i, mask), V_LOADM(pm + q, mask));
    t = V_FMA(V_LOADM(pb + q, mask), t, V_LOADM(pd + q, mask));
    V_STOREM(dx + i, mask, V_FMA(V_LOADM(pa + q, mask), V_LOADM(dy + i, mask), t));
  }
}

void MISC_NAME(mpnas__f32_bn_bwd_dx)(int m, int c, size_t ld, const float *x, const float *dy,
                                     const float *mu, const float *a, const float *b,
                                     const float *d, float *dx) {
  if (is_narrow(m, c, ld)) {
    bn_bwd_dx_flat(m, c, x, dy, mu, a, b, d, dx);
    return;
  }
  const int tail = c % VW;
  const V_TAILMASK mask = V_TAIL(tail);
  for (size_t i = 0; i < (size_t)m; i++) {
    const float *xr = x + i * ld, *gr = dy + i * ld;
    float *out = dx + i * ld;
    int ch = 0;
    for (; ch + VW <= c; ch += VW) {
      V_F t = V_SUB(V_LOAD(xr + ch), V_LOAD(mu + ch));
      t = V_FMA(V_LOAD(b + ch), t, V_LOAD(d + ch));
      t = V_FMA(V_LOAD(a + ch), V_LOAD(gr + ch), t);
      V_STORE(out + ch, t);
    }
    if (tail) {
      V_F t = V_SUB(V_LOADM(xr + ch, mask), V_LOADM(mu + ch, mask));
      t = V_FMA(V_LOADM(b + ch, mask), t, V_LOADM(d + ch, mask));
      t = V_FMA(V_LOADM(a + ch, mask), V_LOADM(gr + ch, mask), t);
      V_STOREM(out + ch, mask, t);
    }
  }
}

/* ---- Activations ---------------------------------------------------------------------- */

/* dy * act'(x), the formulas of mpnas__act_grad (act-ref.c), same operations in the
 * same order, so every activation but sigmoid matches the reference bit for bit. */
MPNAS_AVX2_INLINE V_F act_grad_mul(const int A, V_F x, V_F g) {
  const V_F zero = V_ZERO();
  switch (A) {
    case MPNAS__ACT_RELU: return V_KEEP(V_CMP(x, zero, _CMP_GT_OQ), g);
    case MPNAS__ACT_RELU6: {
      V_CMPMASK in = V_CMP_AND(V_CMP(x, zero, _CMP_GT_OQ), V_CMP(x, V_SET1(6.0f), _CMP_LT_OQ));
      return V_KEEP(in, g);
    }
    case MPNAS__ACT_HSWISH: {
      V_F d = V_MUL(V_ADD(V_MUL(V_SET1(2.0f), x), V_SET1(3.0f)), V_SET1(1.0f / 6.0f));
      d = V_BLEND(d, V_SET1(1.0f), V_CMP(x, V_SET1(3.0f), _CMP_GE_OQ));
      d = V_BLEND(d, zero, V_CMP(x, V_SET1(-3.0f), _CMP_LE_OQ));
      return V_MUL(g, d);
    }
    case MPNAS__ACT_SIGMOID: {
      V_F s = ACT(MPNAS__ACT_SIGMOID, x);
      return V_MUL(g, V_MUL(s, V_SUB(V_SET1(1.0f), s)));
    }
    case MPNAS__ACT_HSIGMOID: {
      V_CMPMASK in = V_CMP_AND(V_CMP(x, V_SET1(-3.0f), _CMP_GT_OQ),
                               V_CMP(x, V_SET1(3.0f), _CMP_LT_OQ));
      return V_KEEP(in, V_MUL(g, V_SET1(1.0f / 6.0f)));
    }
    default: return g;
  }
}

MPNAS_AVX2_INLINE void act_fwd_impl(const int A, size_t n, const float *x, float *y) {
  size_t i = 0;
  for (; i + 4 * VW <= n; i += 4 * VW) {
    V_F v0 = V_LOAD(x + i), v1 = V_LOAD(x + i + VW);
    V_F v2 = V_LOAD(x + i + 2 * VW), v3 = V_LOAD(x + i + 3 * VW);
    V_STORE(y + i, ACT(A, v0));
    V_STORE(y + i + VW, ACT(A, v1));
    V_STORE(y + i + 2 * VW, ACT(A, v2));
    V_STORE(y + i + 3 * VW, ACT(A, v3));
  }
  for (; i + VW <= n; i += VW) V_STORE(y + i, ACT(A, V_LOAD(x + i)));
  if (i < n) {
    V_TAILMASK mask = V_TAIL((int)(n - i));
    V_STOREM(y + i, mask, ACT(A, V_LOADM(x + i, mask)));
  }
}

MPNAS_AVX2_INLINE void act_bwd_impl(const int A, size_t n, const float *x, const float *dy,
                                    float *dx) {
  size_t i = 0;
  for (; i + 2 * VW <= n; i += 2 * VW) {
    V_F v0 = V_LOAD(x + i), v1 = V_LOAD(x + i + VW);
    V_F g0 = V_LOAD(dy + i), g1 = V_LOAD(dy + i + VW);
    V_STORE(dx + i, act_grad_mul(A, v0, g0));
    V_STORE(dx + i + VW, act_grad_mul(A, v1, g1));
  }
  for (; i + VW <= n; i += VW) V_STORE(dx + i, act_grad_mul(A, V_LOAD(x + i), V_LOAD(dy + i)));
  if (i < n) {
    V_TAILMASK mask = V_TAIL((int)(n - i));
    V_STOREM(dx + i, mask, act_grad_mul(A, V_LOADM(x + i, mask), V_LOADM(dy + i, mask)));
  }
}

void MISC_NAME(mpnas__f32_act_fwd)(int act, size_t n, const float *x, float *y) {
  switch (act) {
    case MPNAS__ACT_RELU: act_fwd_impl(MPNAS__ACT_RELU, n, x, y); break;
    case MPNAS__ACT_RELU6: act_fwd_impl(MPNAS__ACT_RELU6, n, x, y); break;
    case MPNAS__ACT_HSWISH: act_fwd_impl(MPNAS__ACT_HSWISH, n, x, y); break;
    case MPNAS__ACT_SIGMOID: act_fwd_impl(MPNAS__ACT_SIGMOID, n, x, y); break;
    case MPNAS__ACT_HSIGMOID: act_fwd_impl(MPNAS__ACT_HSIGMOID, n, x, y); break;
    default:
      if (y != x) memmove(y, x, n * sizeof(float));
      break;
  }
}

void MISC_NAME(mpnas__f32_act_bwd)(int act, size_t n, const float *x, const float *dy,
                                   float *dx) {
  switch (act) {
    case MPNAS__ACT_RELU: act_bwd_impl(MPNAS__ACT_RELU, n, x, dy, dx); break;
    case MPNAS__ACT_RELU6: act_bwd_impl(MPNAS__ACT_RELU6, n, x, dy, dx); break;
    case MPNAS__ACT_HSWISH: act_bwd_impl(MPNAS__ACT_HSWISH, n, x, dy, dx); break;
    case MPNAS__ACT_SIGMOID: act_bwd_impl(MPNAS__ACT_SIGMOID, n, x, dy, dx); break;
    case MPNAS__ACT_HSIGMOID: act_bwd_impl(MPNAS__ACT_HSIGMOID, n, x, dy, dx); break;
    default:
      if (dx != dy) memmove(dx, dy, n * sizeof(float));
      break;
  }
}

/* ---- bn_bwd_reduce and bn_bwd_reduce_act ---------------------------------------------
 * One body: bn_bwd_reduce is bn_bwd_reduce_act without an activation and without storing
 * g (G = 0; t's loads and FMA then feed nothing and compile away). The activation A and
 * G are compile-time constants of each instantiation. G = 2: narrow rows one after the
 * other (as bn_bwd_dx_flat) store g through a small stack buffer copied out every
 * STAGE_ROWS rows: stored straight, a row's masked store reaches into the next rows,
 * whose loads (g over dy) then wait for it (measured 1.8-3.4x slower in place for c =
 * 3..12). Only where g goes changes, not a value. */
#define STAGE_ROWS 64
/* Channels per group of bn_bwd_reduce(_act): 4 ymm (32 channels; 16 registers hold no
 * more) or 8 zmm (128). Each channel's sums run over the rows alone, so the grouping
 * changes no bits; a wider group makes fewer strided passes over a block's rows (144
 * channels: 2 instead of 5; the fused BN backward 1.04-1.3x faster alone at c = 48 and
 * 96, about 1% end to end, docs/PERFORMANCE.md). */
#if VW == 16
#define RGV 8
#define RGROUP_SWITCH NV_SWITCH8
#else
#define RGV 4
#define RGROUP_SWITCH NV_SWITCH4
#endif
#define RGROUP (RGV * VW)

/* One block for one group: t0 = sum (x - mu), t1 = sum g, t2 = sum g * (x - mu), with
 * g = dy * act'((x - mu) * k + b) stored (G = 1: to g, 2: through stage). */
MPNAS_AVX2_INLINE void reduce_act_group(const int NV, const int MASKED, const int A,
                                        const int G, int rows, size_t ld, const float *x,
                                        const float *dy, const float *mu, const float *k,
                                        const float *b, V_TAILMASK mask, float *g,
                                        float *stage, float *t0, float *t1, float *t2) {
  V_F a0[RGV], a1[RGV], a2[RGV], vmu[RGV], vk[RGV], vb[RGV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; v++) {
    a0[v] = a1[v] = a2[v] = V_ZERO();
    vmu[v] = GLOAD(mu + VW * v, v);
    vk[v] = GLOAD(k + VW * v, v);
    vb[v] = GLOAD(b + VW * v, v);
  }
  for (int r = 0; r < rows; r++, x += ld, dy += ld) {
    float *gr = G == 2 ? stage + (size_t)(r % STAGE_ROWS) * ld
                       : (G == 1 ? g + (size_t)r * ld : NULL);
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
      V_F d = V_SUB(GLOAD(x + VW * v, v), vmu[v]);
      V_F gv = act_grad_mul(A, V_FMA(d, vk[v], vb[v]), GLOAD(dy + VW * v, v));
      if (G != 0 && MASKED && v == NV - 1) V_STOREM(gr + VW * v, mask, gv);
      else if (G != 0) V_STORE(gr + VW * v, gv);
      a0[v] = V_ADD(a0[v], d);
      a1[v] = V_ADD(a1[v], gv);
      a2[v] = V_FMA(gv, d, a2[v]);
    }
    if (G == 2 && (r % STAGE_ROWS == STAGE_ROWS - 1 || r == rows - 1)) {
      int r0 = r - r % STAGE_ROWS; /* rows [r0, r] are whole and contiguous (ld == c) */
      memcpy(g + (size_t)r0 * ld, stage, sizeof(float) * (size_t)(r + 1 - r0) * ld);
    }
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; v++) {
    V_STORE(t0 + VW * v, a0[v]);
    V_STORE(t1 + VW * v, a1[v]);
    V_STORE(t2 + VW * v, a2[v]);
  }
}

/* Blocks of BLOCK rows, groups of GROUP channels: each block's float sums folded into
 * the double outputs. g NULL: not stored (bn_bwd_reduce). */
MPNAS_AVX2_INLINE void reduce_act_rows(const int A, int m, int c, size_t ld, const float *x,
                                       const float *dy, const float *mu, const float *k,
                                       const float *b, float *g, double *s0, double *s1,
                                       double *s2) {
  float t0[RGROUP], t1[RGROUP], t2[RGROUP], buf[STAGE_ROWS * NARROW_MAX];
  int staged = g != NULL && is_narrow(m, c, ld);
  for (int r0 = 0; r0 < m; r0 += BLOCK) {
    int rows = imin(BLOCK, m - r0);
    size_t off = (size_t)r0 * ld;
    for (int c0 = 0; c0 < c; c0 += RGROUP) {
      int nch = imin(RGROUP, c - c0), nv = (nch + VW - 1) / VW, tail = nch % VW;
      V_TAILMASK mask = V_TAIL(tail);
      const float *xg = x + off + c0, *dg = dy + off + c0;
      float *gg = g != NULL ? g + off + c0 : NULL;
#define REDUCE_ONLY(NV_, MASKED_, ...) reduce_act_group(NV_, MASKED_, A, 0, __VA_ARGS__)
#define REDUCE_ACT(NV_, MASKED_, ...) reduce_act_group(NV_, MASKED_, A, 1, __VA_ARGS__)
#define REDUCE_STAGED(NV_, MASKED_, ...) reduce_act_group(NV_, 1, A, 2, __VA_ARGS__)
      if (g == NULL)
        RGROUP_SWITCH(REDUCE_ONLY, rows, ld, xg, dg, mu + c0, k + c0, b + c0, mask, NULL, NULL,
                     t0, t1, t2)
      else if (staged) /* narrow: one group, with a tail */
        RGROUP_SWITCH(REDUCE_STAGED, rows, ld, xg, dg, mu + c0, k + c0, b + c0, mask, gg, buf,
                     t0, t1, t2)
      else
        RGROUP_SWITCH(REDUCE_ACT, rows, ld, xg, dg, mu + c0, k + c0, b + c0, mask, gg, NULL,
                     t0, t1, t2)
#undef REDUCE_STAGED
#undef REDUCE_ACT
#undef REDUCE_ONLY
      for (int j = 0; j < nch; j++) {
        s0[c0 + j] += (double)t0[j];
        s1[c0 + j] += (double)t1[j];
        s2[c0 + j] += (double)t2[j];
      }
    }
  }
}

void MISC_NAME(mpnas__f32_bn_bwd_reduce)(int m, int c, size_t ld, const float *x,
                                         const float *dy, const float *mu, double *s0,
                                         double *s1, double *s2) {
  /* k and b: any readable c floats (nothing uses them without an activation) */
  reduce_act_rows(MPNAS__ACT_NONE, m, c, ld, x, dy, mu, mu, mu, NULL, s0, s1, s2);
}

void MISC_NAME(mpnas__f32_bn_bwd_reduce_act)(int m, int c, size_t ld, const float *x,
                                             const float *dy, const float *mu, const float *k,
                                             const float *b, int act, float *g, double *s0,
                                             double *s1, double *s2) {
  switch (act) {
#define REDUCE_ACT_CASE(A) \
  case A: reduce_act_rows(A, m, c, ld, x, dy, mu, k, b, g, s0, s1, s2); break;
    REDUCE_ACT_CASE(MPNAS__ACT_RELU)
    REDUCE_ACT_CASE(MPNAS__ACT_RELU6)
    REDUCE_ACT_CASE(MPNAS__ACT_HSWISH)
    REDUCE_ACT_CASE(MPNAS__ACT_SIGMOID)
    REDUCE_ACT_CASE(MPNAS__ACT_HSIGMOID)
    default: REDUCE_ACT_CASE(MPNAS__ACT_NONE)
#undef REDUCE_ACT_CASE
  }
}
