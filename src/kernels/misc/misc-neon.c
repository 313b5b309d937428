/* misc-neon.c - batch-norm statistics, BN apply fused with the activation, BN backward
 * and the activations, AArch64 NEON (contracts in kernels.h). The same design as
 * misc-x86.h (read it for the numerics of bn_stats): 4 channels per q-register, groups
 * of up to 16 channels, blocks of MPNAS__BN_BLOCK_ROWS rows whose float sums are folded
 * into double outputs. The last 1-3 channels of a row go through a zero-padded 4-float
 * buffer and the same vector code as the other lanes (no separate scalar formulas).
 * Activations use mpnas__act_f32x4__neon (bit-identical to the reference, sigmoid
 * included: it calls expf lane by lane). */
#include <string.h>

#include "kernels/misc/misc.h"
#include "kernels/simd-neon.h"

#define BLOCK MPNAS__BN_BLOCK_ROWS
#define GROUP 16 /* channels per group: 4 q-registers */

static int imin(int a, int b) { return a < b ? a : b; }

/* The first n (1..3) floats at p, the other lanes 0; and the store of n lanes. */
MPNAS_NEON_INLINE float32x4_t load_part(const float *p, int n) {
  float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int i = 0; i < n; i++) t[i] = p[i];
  return vld1q_f32(t);
}
MPNAS_NEON_INLINE void store_part(float *p, float32x4_t v, int n) {
  float t[4];
  vst1q_f32(t, v);
  for (int i = 0; i < n; i++) p[i] = t[i];
}

/* Vector v of a group of NV vectors whose last one holds only `tail` lanes when PART. */
#define GLOAD(p, v) ((PART && (v) == NV - 1) ? load_part((p), tail) : vld1q_f32(p))

/* ---- bn_stats ------------------------------------------------------------------------ */

/* One block of `rows` rows for one group: mb = block mean (float), d1 = sum (x - mb),
 * d2 = sum (x - mb)^2. Narrow groups use two interleaved row streams (independent add
 * chains), added at the end. */
MPNAS_NEON_INLINE void stats_group(const int NV, const int PART, int tail, int rows,
                                   size_t ld, const float *x, float *mb_out, float *d1_out,
                                   float *d2_out) {
  const int U = NV <= 2 ? 2 : 1;
  float32x4_t s[2][4], mb[4], d1[2][4], d2[2][4];
  const float32x4_t zero = vdupq_n_f32(0.0f);
#pragma GCC unroll 8
  for (int u = 0; u < U; u++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) s[u][v] = d1[u][v] = d2[u][v] = zero;
  int r = 0;
  const float *p = x;
  for (; r + U <= rows; r += U)
#pragma GCC unroll 2
    for (int u = 0; u < U; u++, p += ld)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) s[u][v] = vaddq_f32(s[u][v], GLOAD(p + 4 * v, v));
  if (r < rows)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) s[0][v] = vaddq_f32(s[0][v], GLOAD(p + 4 * v, v));
  const float32x4_t n = vdupq_n_f32((float)rows);
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) {
    if (U == 2) s[0][v] = vaddq_f32(s[0][v], s[1][v]);
    mb[v] = vdivq_f32(s[0][v], n);
  }
  r = 0;
  p = x;
  for (; r + U <= rows; r += U)
#pragma GCC unroll 2
    for (int u = 0; u < U; u++, p += ld)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) {
        float32x4_t d = vsubq_f32(GLOAD(p + 4 * v, v), mb[v]);
        d1[u][v] = vaddq_f32(d1[u][v], d);
        d2[u][v] = vfmaq_f32(d2[u][v], d, d);
      }
  if (r < rows)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      float32x4_t d = vsubq_f32(GLOAD(p + 4 * v, v), mb[v]);
      d1[0][v] = vaddq_f32(d1[0][v], d);
      d2[0][v] = vfmaq_f32(d2[0][v], d, d);
    }
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) {
    if (U == 2) {
      d1[0][v] = vaddq_f32(d1[0][v], d1[1][v]);
      d2[0][v] = vaddq_f32(d2[0][v], d2[1][v]);
    }
    vst1q_f32(mb_out + 4 * v, mb[v]);
    vst1q_f32(d1_out + 4 * v, d1[0][v]);
    vst1q_f32(d2_out + 4 * v, d2[0][v]);
  }
}

/* Fold one block into the running mean/m2 of the `prev` rows before it (misc-x86.h). */
static void stats_merge(int nch, int prev, int rows, const float *mb, const float *d1,
                        const float *d2, double *mean, double *m2) {
  const double nb = rows, inv_nb = 1.0 / nb, tot = (double)prev + nb;
  const double wb = nb / tot, wab = (double)prev * nb / tot;
  for (int j = 0; j < nch; j++) {
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

void mpnas__f32_bn_stats__neon(int m, int c, size_t ld, const float *x, double *mean,
                               double *m2) {
  float mb[GROUP], d1[GROUP], d2[GROUP];
  for (int r0 = 0; r0 < m; r0 += BLOCK) {
    int rows = imin(BLOCK, m - r0);
    const float *xb = x + (size_t)r0 * ld;
    for (int c0 = 0; c0 < c; c0 += GROUP) {
      int nch = imin(GROUP, c - c0), nv = (nch + 3) / 4, tail = nch % 4;
      const float *xg = xb + c0;
      switch (nv * 2 + (tail != 0)) {
        case 2: stats_group(1, 0, tail, rows, ld, xg, mb, d1, d2); break;
        case 3: stats_group(1, 1, tail, rows, ld, xg, mb, d1, d2); break;
        case 4: stats_group(2, 0, tail, rows, ld, xg, mb, d1, d2); break;
        case 5: stats_group(2, 1, tail, rows, ld, xg, mb, d1, d2); break;
        case 6: stats_group(3, 0, tail, rows, ld, xg, mb, d1, d2); break;
        case 7: stats_group(3, 1, tail, rows, ld, xg, mb, d1, d2); break;
        case 8: stats_group(4, 0, tail, rows, ld, xg, mb, d1, d2); break;
        default: stats_group(4, 1, tail, rows, ld, xg, mb, d1, d2); break;
      }
      stats_merge(nch, r0, rows, mb, d1, d2, mean + c0, m2 + c0);
    }
  }
}

/* ---- Elementwise passes (templated on the activation) ---------------------------------- */

/* (x - mu) * k + b for 4 channels (n < 4: the first n, parameters read only that far). */
MPNAS_NEON_INLINE float32x4_t apply4(float32x4_t x, const float *mu, const float *k,
                                     const float *b, int n) {
  float32x4_t t = vsubq_f32(x, n >= 4 ? vld1q_f32(mu) : load_part(mu, n));
  return vfmaq_f32(n >= 4 ? vld1q_f32(b) : load_part(b, n), t,
                   n >= 4 ? vld1q_f32(k) : load_part(k, n));
}

MPNAS_NEON_INLINE void apply_rows(const int ACT, const int NORM, int m, int c, size_t ld,
                                  const float *x, const float *mu, const float *k,
                                  const float *b, float *norm, float *y) {
  const int tail = c % 4;
  for (size_t i = 0; i < (size_t)m; i++) {
    const float *xr = x + i * ld;
    float *nr = NORM ? norm + i * ld : NULL, *yr = y + i * ld;
    int ch = 0;
    for (; ch + 4 <= c; ch += 4) {
      float32x4_t t = apply4(vld1q_f32(xr + ch), mu + ch, k + ch, b + ch, 4);
      if (NORM) vst1q_f32(nr + ch, t);
      vst1q_f32(yr + ch, mpnas__act_f32x4__neon(ACT, t));
    }
    if (tail) {
      float32x4_t t = apply4(load_part(xr + ch, tail), mu + ch, k + ch, b + ch, tail);
      if (NORM) store_part(nr + ch, t, tail);
      store_part(yr + ch, mpnas__act_f32x4__neon(ACT, t), tail);
    }
  }
}

#define APPLY_CASE(A)                                                   \
  case A:                                                               \
    if (norm != NULL) apply_rows(A, 1, m, c, ld, x, mu, k, b, norm, y); \
    else apply_rows(A, 0, m, c, ld, x, mu, k, b, NULL, y);              \
    break;

void mpnas__f32_bn_apply__neon(int m, int c, size_t ld, const float *x, const float *mu,
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

MPNAS_NEON_INLINE float32x4_t dx4(float32x4_t x, float32x4_t g, const float *mu,
                                  const float *a, const float *b, const float *d, int n) {
  float32x4_t t = vsubq_f32(x, n >= 4 ? vld1q_f32(mu) : load_part(mu, n));
  t = vfmaq_f32(n >= 4 ? vld1q_f32(d) : load_part(d, n), n >= 4 ? vld1q_f32(b) : load_part(b, n),
                t);
  return vfmaq_f32(t, n >= 4 ? vld1q_f32(a) : load_part(a, n), g);
}

void mpnas__f32_bn_bwd_dx__neon(int m, int c, size_t ld, const float *x, const float *dy,
                                const float *mu, const float *a, const float *b,
                                const float *d, float *dx) {
  const int tail = c % 4;
  for (size_t i = 0; i < (size_t)m; i++) {
    const float *xr = x + i * ld, *gr = dy + i * ld;
    float *out = dx + i * ld;
    int ch = 0;
    for (; ch + 4 <= c; ch += 4)
      vst1q_f32(out + ch, dx4(vld1q_f32(xr + ch), vld1q_f32(gr + ch), mu + ch, a + ch, b + ch,
                              d + ch, 4));
    if (tail)
      store_part(out + ch,
                 dx4(load_part(xr + ch, tail), load_part(gr + ch, tail), mu + ch, a + ch,
                     b + ch, d + ch, tail),
                 tail);
  }
}

/* ---- Activations ---------------------------------------------------------------------- */

/* dy * act'(x) on 4 lanes: mpnas__act_grad's formulas, same operations in the same order
 * (bit-identical to the reference). */
MPNAS_NEON_INLINE float32x4_t act_grad_mul(const int ACT, float32x4_t x, float32x4_t g) {
  const float32x4_t zero = vdupq_n_f32(0.0f), three = vdupq_n_f32(3.0f);
  const float32x4_t m3 = vdupq_n_f32(-3.0f), sixth = vdupq_n_f32(1.0f / 6.0f);
  switch (ACT) {
    case MPNAS__ACT_RELU: return vbslq_f32(vcgtq_f32(x, zero), g, zero);
    case MPNAS__ACT_RELU6:
      return vbslq_f32(vandq_u32(vcgtq_f32(x, zero), vcltq_f32(x, vdupq_n_f32(6.0f))), g, zero);
    case MPNAS__ACT_HSWISH: {
      float32x4_t d = vmulq_f32(vaddq_f32(vmulq_f32(vdupq_n_f32(2.0f), x), three), sixth);
      d = vbslq_f32(vcgeq_f32(x, three), vdupq_n_f32(1.0f), d);
      d = vbslq_f32(vcleq_f32(x, m3), zero, d);
      return vmulq_f32(g, d);
    }
    case MPNAS__ACT_SIGMOID: {
      float32x4_t s = mpnas__act_f32x4__neon(MPNAS__ACT_SIGMOID, x);
      return vmulq_f32(g, vmulq_f32(s, vsubq_f32(vdupq_n_f32(1.0f), s)));
    }
    case MPNAS__ACT_HSIGMOID:
      return vbslq_f32(vandq_u32(vcgtq_f32(x, m3), vcltq_f32(x, three)), vmulq_f32(g, sixth),
                       zero);
    default: return g;
  }
}

MPNAS_NEON_INLINE void act_fwd_impl(const int ACT, size_t n, const float *x, float *y) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    float32x4_t v0 = vld1q_f32(x + i), v1 = vld1q_f32(x + i + 4);
    float32x4_t v2 = vld1q_f32(x + i + 8), v3 = vld1q_f32(x + i + 12);
    vst1q_f32(y + i, mpnas__act_f32x4__neon(ACT, v0));
    vst1q_f32(y + i + 4, mpnas__act_f32x4__neon(ACT, v1));
    vst1q_f32(y + i + 8, mpnas__act_f32x4__neon(ACT, v2));
    vst1q_f32(y + i + 12, mpnas__act_f32x4__neon(ACT, v3));
  }
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, mpnas__act_f32x4__neon(ACT, vld1q_f32(x + i)));
  if (i < n) {
    int t = (int)(n - i);
    store_part(y + i, mpnas__act_f32x4__neon(ACT, load_part(x + i, t)), t);
  }
}

MPNAS_NEON_INLINE void act_bwd_impl(const int ACT, size_t n, const float *x, const float *dy,
                                    float *dx) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    float32x4_t v0 = vld1q_f32(x + i), v1 = vld1q_f32(x + i + 4);
    float32x4_t g0 = vld1q_f32(dy + i), g1 = vld1q_f32(dy + i + 4);
    vst1q_f32(dx + i, act_grad_mul(ACT, v0, g0));
    vst1q_f32(dx + i + 4, act_grad_mul(ACT, v1, g1));
  }
  for (; i + 4 <= n; i += 4)
    vst1q_f32(dx + i, act_grad_mul(ACT, vld1q_f32(x + i), vld1q_f32(dy + i)));
  if (i < n) {
    int t = (int)(n - i);
    store_part(dx + i, act_grad_mul(ACT, load_part(x + i, t), load_part(dy + i, t)), t);
  }
}

void mpnas__f32_act_fwd__neon(int act, size_t n, const float *x, float *y) {
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

void mpnas__f32_act_bwd__neon(int act, size_t n, const float *x, const float *dy, float *dx) {
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
 * One body, as in misc-x86.h: bn_bwd_reduce is bn_bwd_reduce_act without an activation
 * and without storing g (STORE = 0; t's loads and FMA then feed nothing and compile
 * away). NEON stores a row's last 1-3 channels lane by lane, so narrow rows need no
 * staging here. */

MPNAS_NEON_INLINE void reduce_act_group(const int NV, const int PART, const int ACT,
                                        const int STORE, int tail, int rows, size_t ld,
                                        const float *x, const float *dy, const float *mu,
                                        const float *k, const float *b, float *g, float *t0,
                                        float *t1, float *t2) {
  float32x4_t a0[4], a1[4], a2[4], vmu[4], vk[4], vb[4];
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) {
    a0[v] = a1[v] = a2[v] = vdupq_n_f32(0.0f);
    vmu[v] = GLOAD(mu + 4 * v, v);
    vk[v] = GLOAD(k + 4 * v, v);
    vb[v] = GLOAD(b + 4 * v, v);
  }
  for (int r = 0; r < rows; r++, x += ld, dy += ld) {
    float *gr = STORE ? g + (size_t)r * ld : NULL;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      float32x4_t d = vsubq_f32(GLOAD(x + 4 * v, v), vmu[v]);
      float32x4_t gv = act_grad_mul(ACT, vfmaq_f32(vb[v], d, vk[v]), GLOAD(dy + 4 * v, v));
      if (STORE && PART && v == NV - 1) store_part(gr + 4 * v, gv, tail);
      else if (STORE) vst1q_f32(gr + 4 * v, gv);
      a0[v] = vaddq_f32(a0[v], d);
      a1[v] = vaddq_f32(a1[v], gv);
      a2[v] = vfmaq_f32(a2[v], gv, d);
    }
  }
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) {
    vst1q_f32(t0 + 4 * v, a0[v]);
    vst1q_f32(t1 + 4 * v, a1[v]);
    vst1q_f32(t2 + 4 * v, a2[v]);
  }
}

/* g NULL: not stored (bn_bwd_reduce). */
MPNAS_NEON_INLINE void reduce_act_rows(const int ACT, int m, int c, size_t ld, const float *x,
                                       const float *dy, const float *mu, const float *k,
                                       const float *b, float *g, double *s0, double *s1,
                                       double *s2) {
  float t0[GROUP], t1[GROUP], t2[GROUP];
  for (int r0 = 0; r0 < m; r0 += BLOCK) {
    int rows = imin(BLOCK, m - r0);
    size_t off = (size_t)r0 * ld;
    for (int c0 = 0; c0 < c; c0 += GROUP) {
      int nch = imin(GROUP, c - c0), nv = (nch + 3) / 4, tail = nch % 4;
      const float *xg = x + off + c0, *dg = dy + off + c0;
      float *gg = g != NULL ? g + off + c0 : NULL;
#define RA(NV_, PART_)                                                                  \
  do {                                                                                  \
    if (g != NULL)                                                                      \
      reduce_act_group(NV_, PART_, ACT, 1, tail, rows, ld, xg, dg, mu + c0, k + c0, b + c0, \
                       gg, t0, t1, t2);                                                 \
    else                                                                                \
      reduce_act_group(NV_, PART_, ACT, 0, tail, rows, ld, xg, dg, mu + c0, k + c0, b + c0, \
                       NULL, t0, t1, t2);                                               \
  } while (0)
      switch (nv * 2 + (tail != 0)) {
        case 2: RA(1, 0); break;
        case 3: RA(1, 1); break;
        case 4: RA(2, 0); break;
        case 5: RA(2, 1); break;
        case 6: RA(3, 0); break;
        case 7: RA(3, 1); break;
        case 8: RA(4, 0); break;
        default: RA(4, 1); break;
      }
#undef RA
      for (int j = 0; j < nch; j++) {
        s0[c0 + j] += (double)t0[j];
        s1[c0 + j] += (double)t1[j];
        s2[c0 + j] += (double)t2[j];
      }
    }
  }
}

void mpnas__f32_bn_bwd_reduce__neon(int m, int c, size_t ld, const float *x, const float *dy,
                                    const float *mu, double *s0, double *s1, double *s2) {
  /* k and b: any readable c floats (nothing uses them without an activation) */
  reduce_act_rows(MPNAS__ACT_NONE, m, c, ld, x, dy, mu, mu, mu, NULL, s0, s1, s2);
}

void mpnas__f32_bn_bwd_reduce_act__neon(int m, int c, size_t ld, const float *x,
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
