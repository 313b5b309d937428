/* misc-avx2.c - batch-norm statistics, BN apply fused with the activation, BN backward
 * and the activations, AVX2+FMA (contracts in kernels.h). One ymm holds 8 channels of a
 * row; the last vector of an odd channel count is masked (loads read nothing past the
 * end, stores write nothing past it).
 *
 * Reductions (bn_stats, bn_bwd_reduce) walk the rows in blocks of MPNAS__BN_BLOCK_ROWS
 * and, inside a block, the channels in groups of up to 32 (4 ymm accumulators per
 * quantity). A block's sums accumulate in float - at most 256 terms, so their rounding
 * does not grow with m - and are then folded into the double outputs. bn_stats takes
 * two passes over each block (its mean, then the deviations from that mean, while the
 * block is still in L1/L2), so it reads memory once yet never subtracts two large,
 * nearly equal sums: block k gives n_k, its mean mb + d1 / n_k (d1 = sum (x - mb), which
 * recovers what rounding mb lost) and M2_k = d2 - d1^2 / n_k (d2 = sum (x - mb)^2),
 * merged into the running (mean, M2) by Chan et al.'s update in double:
 *     delta = mean_k - mean;  mean += delta * n_k / n;  M2 += M2_k + delta^2 n_prev n_k / n.
 * Blocks start every 256 rows from the first row passed, and the order of every sum
 * depends only on (m, c) and the channel's index, so a given slice of rows always gives
 * the same bits (the op layer's thread splits rely on that, ops_misc.c). */
#include <string.h>

#include "kernels/misc/misc.h"
#include "kernels/simd-avx2.h"

#define BLOCK MPNAS__BN_BLOCK_ROWS
#define GROUP 32 /* channels per group: 4 ymm */

static int imin(int a, int b) { return a < b ? a : b; }

/* Vector v of a group of NV vectors whose last one is masked when MASKED. */
#define GLOAD(p, v) \
  ((MASKED && (v) == NV - 1) ? _mm256_maskload_ps((p), mask) : _mm256_loadu_ps(p))

/* ---- bn_stats ------------------------------------------------------------------------ */

/* One block of `rows` rows for one group of channels (x at the group's first channel):
 * mb = block mean in float, d1 = sum (x - mb), d2 = sum (x - mb)^2, 8*NV lanes each.
 * Masked lanes load 0, so their mean and deviations are 0. Narrow groups (NV <= 2) split
 * the rows into two interleaved streams so the float adds form independent chains; the
 * two partial sums are added at the end (a fixed order). */
MPNAS_AVX2_INLINE void stats_group(const int NV, const int MASKED, int rows, size_t ld,
                                   const float *x, __m256i mask, float *mb_out,
                                   float *d1_out, float *d2_out) {
  const int U = NV <= 2 ? 2 : 1;
  __m256 s[2][4], mb[4], d1[2][4], d2[2][4];
#pragma GCC unroll 8
  for (int u = 0; u < U; u++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) s[u][v] = d1[u][v] = d2[u][v] = _mm256_setzero_ps();
  int r = 0;
  const float *p = x;
  for (; r + U <= rows; r += U)
#pragma GCC unroll 2
    for (int u = 0; u < U; u++, p += ld)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) s[u][v] = _mm256_add_ps(s[u][v], GLOAD(p + 8 * v, v));
  if (r < rows) /* odd row count with two streams: the last row joins stream 0 */
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) s[0][v] = _mm256_add_ps(s[0][v], GLOAD(p + 8 * v, v));
  const __m256 n = _mm256_set1_ps((float)rows);
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) {
    if (U == 2) s[0][v] = _mm256_add_ps(s[0][v], s[1][v]);
    mb[v] = _mm256_div_ps(s[0][v], n);
  }
  r = 0;
  p = x;
  for (; r + U <= rows; r += U)
#pragma GCC unroll 2
    for (int u = 0; u < U; u++, p += ld)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) {
        __m256 d = _mm256_sub_ps(GLOAD(p + 8 * v, v), mb[v]);
        d1[u][v] = _mm256_add_ps(d1[u][v], d);
        d2[u][v] = _mm256_fmadd_ps(d, d, d2[u][v]);
      }
  if (r < rows)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      __m256 d = _mm256_sub_ps(GLOAD(p + 8 * v, v), mb[v]);
      d1[0][v] = _mm256_add_ps(d1[0][v], d);
      d2[0][v] = _mm256_fmadd_ps(d, d, d2[0][v]);
    }
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) {
    if (U == 2) {
      d1[0][v] = _mm256_add_ps(d1[0][v], d1[1][v]);
      d2[0][v] = _mm256_add_ps(d2[0][v], d2[1][v]);
    }
    _mm256_storeu_ps(mb_out + 8 * v, mb[v]);
    _mm256_storeu_ps(d1_out + 8 * v, d1[0][v]);
    _mm256_storeu_ps(d2_out + 8 * v, d2[0][v]);
  }
}

/* Fold one block (rows, mb, d1, d2 for nch channels) into the running mean/m2 of the
 * rows before it (prev of them; prev == 0 for the first block). */
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

void mpnas__f32_bn_stats__avx2(int m, int c, size_t ld, const float *x, double *mean,
                               double *m2) {
  float mb[GROUP], d1[GROUP], d2[GROUP];
  for (int r0 = 0; r0 < m; r0 += BLOCK) {
    int rows = imin(BLOCK, m - r0);
    const float *xb = x + (size_t)r0 * ld;
    for (int c0 = 0; c0 < c; c0 += GROUP) {
      int nch = imin(GROUP, c - c0), nv = (nch + 7) / 8, tail = nch % 8;
      __m256i mask = mpnas__avx2_tail_mask(tail);
      const float *xg = xb + c0;
      switch (nv * 2 + (tail != 0)) {
        case 2: stats_group(1, 0, rows, ld, xg, mask, mb, d1, d2); break;
        case 3: stats_group(1, 1, rows, ld, xg, mask, mb, d1, d2); break;
        case 4: stats_group(2, 0, rows, ld, xg, mask, mb, d1, d2); break;
        case 5: stats_group(2, 1, rows, ld, xg, mask, mb, d1, d2); break;
        case 6: stats_group(3, 0, rows, ld, xg, mask, mb, d1, d2); break;
        case 7: stats_group(3, 1, rows, ld, xg, mask, mb, d1, d2); break;
        case 8: stats_group(4, 0, rows, ld, xg, mask, mb, d1, d2); break;
        default: stats_group(4, 1, rows, ld, xg, mask, mb, d1, d2); break;
      }
      stats_merge(nch, r0, rows, mb, d1, d2, mean + c0, m2 + c0);
    }
  }
}

/* ---- bn_bwd_reduce -------------------------------------------------------------------- */

/* One block for one group: t0 = sum (x - mu), t1 = sum dy, t2 = sum dy * (x - mu). */
MPNAS_AVX2_INLINE void reduce_group(const int NV, const int MASKED, int rows, size_t ld,
                                    const float *x, const float *dy, const float *mu,
                                    __m256i mask, float *t0, float *t1, float *t2) {
  __m256 a0[4], a1[4], a2[4], vmu[4];
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) {
    a0[v] = a1[v] = a2[v] = _mm256_setzero_ps();
    vmu[v] = GLOAD(mu + 8 * v, v);
  }
  for (int r = 0; r < rows; r++, x += ld, dy += ld)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      __m256 d = _mm256_sub_ps(GLOAD(x + 8 * v, v), vmu[v]);
      __m256 g = GLOAD(dy + 8 * v, v);
      a0[v] = _mm256_add_ps(a0[v], d);
      a1[v] = _mm256_add_ps(a1[v], g);
      a2[v] = _mm256_fmadd_ps(g, d, a2[v]);
    }
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) {
    _mm256_storeu_ps(t0 + 8 * v, a0[v]);
    _mm256_storeu_ps(t1 + 8 * v, a1[v]);
    _mm256_storeu_ps(t2 + 8 * v, a2[v]);
  }
}

void mpnas__f32_bn_bwd_reduce__avx2(int m, int c, size_t ld, const float *x, const float *dy,
                                    const float *mu, double *s0, double *s1, double *s2) {
  float t0[GROUP], t1[GROUP], t2[GROUP];
  for (int ch = 0; ch < c; ch++) s0[ch] = s1[ch] = s2[ch] = 0.0;
  for (int r0 = 0; r0 < m; r0 += BLOCK) {
    int rows = imin(BLOCK, m - r0);
    const float *xb = x + (size_t)r0 * ld, *gb = dy + (size_t)r0 * ld;
    for (int c0 = 0; c0 < c; c0 += GROUP) {
      int nch = imin(GROUP, c - c0), nv = (nch + 7) / 8, tail = nch % 8;
      __m256i mask = mpnas__avx2_tail_mask(tail);
      const float *xg = xb + c0, *gg = gb + c0, *mg = mu + c0;
      switch (nv * 2 + (tail != 0)) {
        case 2: reduce_group(1, 0, rows, ld, xg, gg, mg, mask, t0, t1, t2); break;
        case 3: reduce_group(1, 1, rows, ld, xg, gg, mg, mask, t0, t1, t2); break;
        case 4: reduce_group(2, 0, rows, ld, xg, gg, mg, mask, t0, t1, t2); break;
        case 5: reduce_group(2, 1, rows, ld, xg, gg, mg, mask, t0, t1, t2); break;
        case 6: reduce_group(3, 0, rows, ld, xg, gg, mg, mask, t0, t1, t2); break;
        case 7: reduce_group(3, 1, rows, ld, xg, gg, mg, mask, t0, t1, t2); break;
        case 8: reduce_group(4, 0, rows, ld, xg, gg, mg, mask, t0, t1, t2); break;
        default: reduce_group(4, 1, rows, ld, xg, gg, mg, mask, t0, t1, t2); break;
      }
      for (int j = 0; j < nch; j++) {
        s0[c0 + j] += (double)t0[j];
        s1[c0 + j] += (double)t1[j];
        s2[c0 + j] += (double)t2[j];
      }
    }
  }
}

/* ---- Elementwise passes ----------------------------------------------------------------
 * Templated on the activation (a compile-time constant in each instantiation, so
 * mpnas__avx2_act's switch folds away). */

MPNAS_AVX2_INLINE void apply_rows(const int ACT, const int NORM, int m, int c, size_t ld,
                                  const float *x, const float *mu, const float *k,
                                  const float *b, float *norm, float *y) {
  const int tail = c % 8;
  const __m256i mask = mpnas__avx2_tail_mask(tail);
  for (size_t i = 0; i < (size_t)m; i++) {
    const float *xr = x + i * ld;
    float *nr = NORM ? norm + i * ld : NULL, *yr = y + i * ld;
    int ch = 0;
    for (; ch + 8 <= c; ch += 8) {
      __m256 t = _mm256_sub_ps(_mm256_loadu_ps(xr + ch), _mm256_loadu_ps(mu + ch));
      t = _mm256_fmadd_ps(t, _mm256_loadu_ps(k + ch), _mm256_loadu_ps(b + ch));
      if (NORM) _mm256_storeu_ps(nr + ch, t);
      _mm256_storeu_ps(yr + ch, mpnas__avx2_act(ACT, t));
    }
    if (tail) {
      __m256 t = _mm256_sub_ps(_mm256_maskload_ps(xr + ch, mask),
                               _mm256_maskload_ps(mu + ch, mask));
      t = _mm256_fmadd_ps(t, _mm256_maskload_ps(k + ch, mask), _mm256_maskload_ps(b + ch, mask));
      if (NORM) _mm256_maskstore_ps(nr + ch, mask, t);
      _mm256_maskstore_ps(yr + ch, mask, mpnas__avx2_act(ACT, t));
    }
  }
}

#define APPLY_CASE(A)                                                         \
  case A:                                                                     \
    if (norm != NULL) apply_rows(A, 1, m, c, ld, x, mu, k, b, norm, y);       \
    else apply_rows(A, 0, m, c, ld, x, mu, k, b, NULL, y);                    \
    break;

void mpnas__f32_bn_apply__avx2(int m, int c, size_t ld, const float *x, const float *mu,
                               const float *k, const float *b, int act, float *norm, float *y) {
  switch (act) {
    APPLY_CASE(MPNAS__ACT_RELU)
    APPLY_CASE(MPNAS__ACT_RELU6)
    APPLY_CASE(MPNAS__ACT_HSWISH)
    APPLY_CASE(MPNAS__ACT_SIGMOID)
    APPLY_CASE(MPNAS__ACT_HSIGMOID)
    default: APPLY_CASE(MPNAS__ACT_NONE)
  }
}

void mpnas__f32_bn_bwd_dx__avx2(int m, int c, size_t ld, const float *x, const float *dy,
                                const float *mu, const float *a, const float *b,
                                const float *d, float *dx) {
  const int tail = c % 8;
  const __m256i mask = mpnas__avx2_tail_mask(tail);
  for (size_t i = 0; i < (size_t)m; i++) {
    const float *xr = x + i * ld, *gr = dy + i * ld;
    float *out = dx + i * ld;
    int ch = 0;
    for (; ch + 8 <= c; ch += 8) {
      __m256 t = _mm256_sub_ps(_mm256_loadu_ps(xr + ch), _mm256_loadu_ps(mu + ch));
      t = _mm256_fmadd_ps(_mm256_loadu_ps(b + ch), t, _mm256_loadu_ps(d + ch));
      t = _mm256_fmadd_ps(_mm256_loadu_ps(a + ch), _mm256_loadu_ps(gr + ch), t);
      _mm256_storeu_ps(out + ch, t);
    }
    if (tail) {
      __m256 t = _mm256_sub_ps(_mm256_maskload_ps(xr + ch, mask),
                               _mm256_maskload_ps(mu + ch, mask));
      t = _mm256_fmadd_ps(_mm256_maskload_ps(b + ch, mask), t, _mm256_maskload_ps(d + ch, mask));
      t = _mm256_fmadd_ps(_mm256_maskload_ps(a + ch, mask), _mm256_maskload_ps(gr + ch, mask), t);
      _mm256_maskstore_ps(out + ch, mask, t);
    }
  }
}

/* ---- Activations ---------------------------------------------------------------------- */

/* dy * act'(x) on 8 lanes, the formulas of mpnas__act_grad (act-ref.c), same operations
 * in the same order, so every activation but sigmoid matches the reference bit for bit. */
MPNAS_AVX2_INLINE __m256 act_grad_mul(const int ACT, __m256 x, __m256 g) {
  const __m256 zero = _mm256_setzero_ps();
  switch (ACT) {
    case MPNAS__ACT_RELU: return _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ), g);
    case MPNAS__ACT_RELU6: {
      __m256 in = _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ),
                                _mm256_cmp_ps(x, _mm256_set1_ps(6.0f), _CMP_LT_OQ));
      return _mm256_and_ps(in, g);
    }
    case MPNAS__ACT_HSWISH: {
      __m256 d = _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(2.0f), x),
                                             _mm256_set1_ps(3.0f)),
                               _mm256_set1_ps(1.0f / 6.0f));
      d = _mm256_blendv_ps(d, _mm256_set1_ps(1.0f),
                           _mm256_cmp_ps(x, _mm256_set1_ps(3.0f), _CMP_GE_OQ));
      d = _mm256_blendv_ps(d, zero, _mm256_cmp_ps(x, _mm256_set1_ps(-3.0f), _CMP_LE_OQ));
      return _mm256_mul_ps(g, d);
    }
    case MPNAS__ACT_SIGMOID: {
      __m256 s = mpnas__avx2_act(MPNAS__ACT_SIGMOID, x);
      return _mm256_mul_ps(g, _mm256_mul_ps(s, _mm256_sub_ps(_mm256_set1_ps(1.0f), s)));
    }
    case MPNAS__ACT_HSIGMOID: {
      __m256 in = _mm256_and_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-3.0f), _CMP_GT_OQ),
                                _mm256_cmp_ps(x, _mm256_set1_ps(3.0f), _CMP_LT_OQ));
      return _mm256_and_ps(in, _mm256_mul_ps(g, _mm256_set1_ps(1.0f / 6.0f)));
    }
    default: return g;
  }
}

MPNAS_AVX2_INLINE void act_fwd_impl(const int ACT, size_t n, const float *x, float *y) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
    _mm256_storeu_ps(y + i, mpnas__avx2_act(ACT, v0));
    _mm256_storeu_ps(y + i + 8, mpnas__avx2_act(ACT, v1));
    _mm256_storeu_ps(y + i + 16, mpnas__avx2_act(ACT, v2));
    _mm256_storeu_ps(y + i + 24, mpnas__avx2_act(ACT, v3));
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, mpnas__avx2_act(ACT, _mm256_loadu_ps(x + i)));
  if (i < n) {
    __m256i mask = mpnas__avx2_tail_mask((int)(n - i));
    _mm256_maskstore_ps(y + i, mask, mpnas__avx2_act(ACT, _mm256_maskload_ps(x + i, mask)));
  }
}

MPNAS_AVX2_INLINE void act_bwd_impl(const int ACT, size_t n, const float *x, const float *dy,
                                    float *dx) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    __m256 g0 = _mm256_loadu_ps(dy + i), g1 = _mm256_loadu_ps(dy + i + 8);
    _mm256_storeu_ps(dx + i, act_grad_mul(ACT, v0, g0));
    _mm256_storeu_ps(dx + i + 8, act_grad_mul(ACT, v1, g1));
  }
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dx + i, act_grad_mul(ACT, _mm256_loadu_ps(x + i), _mm256_loadu_ps(dy + i)));
  if (i < n) {
    __m256i mask = mpnas__avx2_tail_mask((int)(n - i));
    __m256 r = act_grad_mul(ACT, _mm256_maskload_ps(x + i, mask), _mm256_maskload_ps(dy + i, mask));
    _mm256_maskstore_ps(dx + i, mask, r);
  }
}

void mpnas__f32_act_fwd__avx2(int act, size_t n, const float *x, float *y) {
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

void mpnas__f32_act_bwd__avx2(int act, size_t n, const float *x, const float *dy, float *dx) {
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
