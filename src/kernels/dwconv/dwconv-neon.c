/* dwconv-neon.c - depthwise convolution for AArch64 NEON: forward, input gradient and
 * weight gradient (contracts in kernels.h).
 *
 * NHWC puts channels innermost, so every kernel vectorises over channels: blocks of 16
 * channels (4 q-registers), then blocks of 4, then a scalar tail for c % 4. Every
 * channel sums its terms in one fixed order with fused multiply-adds (fmaf in the
 * tail), so a channel's result does not depend on which block it falls in: splitting
 * the channels or rows across threads never changes a bit.
 *
 * Forward and input gradient share one building block, dw_window: a rectangle of taps,
 * each tap being (input pointer, weight pointer) advanced by a row and a column step.
 * Forward windows clip the kernel at the image border; the input gradient (gather form)
 * walks dy backwards (negative steps) and the weights by `stride` taps, so stride 2
 * needs no zero insertion and no scatter. Interior pixels use windows of constant size
 * (K = 3, 5, 7 specialised: the K tap columns unrolled, 4 accumulators per 16 channels)
 * without any bounds check; only border pixels compute a clipped window.
 */
#include <math.h>
#include <stddef.h>

#include "kernels/simd-neon.h"
#include "kernels/ref/ref.h"

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* out[ch] = epilogue(sum over r < nrow, q < ncol of
 *                    src[r*srow + q*scol + ch] * w[r*wrow + q*wcol + ch]) for ch < c.
 * Inlined with constant nrow/ncol where the caller knows them, so the taps unroll. */
MPNAS_NEON_INLINE void dw_window(int nrow, int ncol, const float *src, ptrdiff_t srow,
                                 ptrdiff_t scol, const float *w, ptrdiff_t wrow,
                                 ptrdiff_t wcol, int c, const float *scale, const float *shift,
                                 int act, float *out) {
  int ch = 0;
  for (; ch + 16 <= c; ch += 16) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (int r = 0; r < nrow; r++) {
#pragma GCC unroll 7
      for (int q = 0; q < ncol; q++) {
        const float *sp = src + r * srow + q * scol + ch, *wp = w + r * wrow + q * wcol + ch;
        a0 = vfmaq_f32(a0, vld1q_f32(sp), vld1q_f32(wp));
        a1 = vfmaq_f32(a1, vld1q_f32(sp + 4), vld1q_f32(wp + 4));
        a2 = vfmaq_f32(a2, vld1q_f32(sp + 8), vld1q_f32(wp + 8));
        a3 = vfmaq_f32(a3, vld1q_f32(sp + 12), vld1q_f32(wp + 12));
      }
    }
    const float *sc = scale != NULL ? scale + ch : NULL,
                *sh = shift != NULL ? shift + ch : NULL;
    vst1q_f32(out + ch, mpnas__epilogue_f32x4__neon(a0, sc, sh, act));
    vst1q_f32(out + ch + 4,
              mpnas__epilogue_f32x4__neon(a1, sc ? sc + 4 : NULL, sh ? sh + 4 : NULL, act));
    vst1q_f32(out + ch + 8,
              mpnas__epilogue_f32x4__neon(a2, sc ? sc + 8 : NULL, sh ? sh + 8 : NULL, act));
    vst1q_f32(out + ch + 12,
              mpnas__epilogue_f32x4__neon(a3, sc ? sc + 12 : NULL, sh ? sh + 12 : NULL, act));
  }
  for (; ch + 4 <= c; ch += 4) {
    float32x4_t a0 = vdupq_n_f32(0.0f);
    for (int r = 0; r < nrow; r++) {
#pragma GCC unroll 7
      for (int q = 0; q < ncol; q++)
        a0 = vfmaq_f32(a0, vld1q_f32(src + r * srow + q * scol + ch),
                       vld1q_f32(w + r * wrow + q * wcol + ch));
    }
    vst1q_f32(out + ch, mpnas__epilogue_f32x4__neon(a0, scale != NULL ? scale + ch : NULL,
                                                    shift != NULL ? shift + ch : NULL, act));
  }
  for (; ch < c; ch++) {
    float a = 0.0f;
    for (int r = 0; r < nrow; r++)
      for (int q = 0; q < ncol; q++)
        a = fmaf(src[r * srow + q * scol + ch], w[r * wrow + q * wcol + ch], a);
    out[ch] = mpnas__epilogue(a, ch, scale, shift, act);
  }
}

/* dw_window for any window: constant-size copies for the shapes that occur (square
 * 3/5/7 windows, and clipped windows of up to 7 columns), a generic loop otherwise.
 * An empty window (an input pixel no output reads, with stride 2) writes epilogue(0). */
static void dw_window_any(int nrow, int ncol, const float *src, ptrdiff_t srow, ptrdiff_t scol,
                          const float *w, ptrdiff_t wrow, ptrdiff_t wcol, int c,
                          const float *scale, const float *shift, int act, float *out) {
#define DW_WINDOW(NR, NC) \
  dw_window(NR, NC, src, srow, scol, w, wrow, wcol, c, scale, shift, act, out)
  if (nrow == ncol) {
    switch (ncol) {
      case 3: DW_WINDOW(3, 3); return;
      case 5: DW_WINDOW(5, 5); return;
      case 7: DW_WINDOW(7, 7); return;
      default: break;
    }
  }
  switch (ncol) {
    case 1: DW_WINDOW(nrow, 1); return;
    case 2: DW_WINDOW(nrow, 2); return;
    case 3: DW_WINDOW(nrow, 3); return;
    case 4: DW_WINDOW(nrow, 4); return;
    case 5: DW_WINDOW(nrow, 5); return;
    case 6: DW_WINDOW(nrow, 6); return;
    case 7: DW_WINDOW(nrow, 7); return;
    default: DW_WINDOW(nrow, ncol); return;
  }
#undef DW_WINDOW
}

/* Output columns [*lo, *hi) whose whole kernel window lies inside the input row
 * (ox*stride - pad >= 0 and ox*stride - pad + k <= w); *lo <= *hi <= wo. */
static void interior_columns(const mpnas__dw_shape *s, int *lo, int *hi) {
  int a = imin((s->pad + s->stride - 1) / s->stride, s->wo);
  int b = s->w - s->k + s->pad >= 0 ? (s->w - s->k + s->pad) / s->stride + 1 : 0;
  b = imin(b, s->wo);
  *lo = a;
  *hi = imax(a, b);
}

/* ---- Forward ----------------------------------------------------------------------- */

/* One output pixel whose window is clipped by the left/right border (rows already
 * clipped to [ky_lo, ky_lo + nrow)). */
static void dw_fwd_border_px(const mpnas__dw_shape *s, const float *x, const float *wt,
                             const float *scale, const float *shift, int act, float *y, int oy,
                             int ox, int ky_lo, int nrow) {
  const int k = s->k, c = s->c;
  int iy = oy * s->stride - s->pad + ky_lo, ix0 = ox * s->stride - s->pad;
  int kx_lo = imax(0, -ix0), kx_hi = imin(k, s->w - ix0);
  const float *src = x + ((ptrdiff_t)iy * s->w + ix0 + kx_lo) * c;
  const float *w = wt + ((ptrdiff_t)ky_lo * k + kx_lo) * c;
  dw_window_any(nrow, kx_hi - kx_lo, src, (ptrdiff_t)s->w * c, c, w, (ptrdiff_t)k * c, c, c,
                scale, shift, act, y + ((ptrdiff_t)oy * s->wo + ox) * c);
}

/* Forward over output rows [oh0, oh1), K constant (3, 5, 7) or not (generic). */
MPNAS_NEON_INLINE void dw_fwd_rows(int K, const mpnas__dw_shape *s, const float *x,
                                   const float *wt, const float *scale, const float *shift,
                                   int act, float *y, int oh0, int oh1) {
  const int S = s->stride, c = s->c;
  const ptrdiff_t xrow = (ptrdiff_t)s->w * c, wrow = (ptrdiff_t)K * c;
  int ox_lo, ox_hi;
  interior_columns(s, &ox_lo, &ox_hi);
  for (int oy = oh0; oy < oh1; oy++) {
    int iy0 = oy * S - s->pad;
    int ky_lo = imax(0, -iy0), nrow = imin(K, s->h - iy0) - ky_lo;
    const float *xr = x + (ptrdiff_t)(iy0 + ky_lo) * xrow;
    const float *wr = wt + ky_lo * wrow;
    float *yr = y + (ptrdiff_t)oy * s->wo * c;
    for (int ox = 0; ox < ox_lo; ox++)
      dw_fwd_border_px(s, x, wt, scale, shift, act, y, oy, ox, ky_lo, nrow);
    if (nrow == K) {
      for (int ox = ox_lo; ox < ox_hi; ox++)
        dw_window(K, K, xr + ((ptrdiff_t)ox * S - s->pad) * c, xrow, c, wr, wrow, c, c, scale,
                  shift, act, yr + (ptrdiff_t)ox * c);
    } else { /* top or bottom rows: fewer kernel rows, still whole kernel columns */
      for (int ox = ox_lo; ox < ox_hi; ox++)
        dw_window(nrow, K, xr + ((ptrdiff_t)ox * S - s->pad) * c, xrow, c, wr, wrow, c, c,
                  scale, shift, act, yr + (ptrdiff_t)ox * c);
    }
    for (int ox = ox_hi; ox < s->wo; ox++)
      dw_fwd_border_px(s, x, wt, scale, shift, act, y, oy, ox, ky_lo, nrow);
  }
}

static void dw_fwd_k3(const mpnas__dw_shape *s, const float *x, const float *wt,
                      const float *scale, const float *shift, int act, float *y, int oh0,
                      int oh1) {
  dw_fwd_rows(3, s, x, wt, scale, shift, act, y, oh0, oh1);
}
static void dw_fwd_k5(const mpnas__dw_shape *s, const float *x, const float *wt,
                      const float *scale, const float *shift, int act, float *y, int oh0,
                      int oh1) {
  dw_fwd_rows(5, s, x, wt, scale, shift, act, y, oh0, oh1);
}
static void dw_fwd_k7(const mpnas__dw_shape *s, const float *x, const float *wt,
                      const float *scale, const float *shift, int act, float *y, int oh0,
                      int oh1) {
  dw_fwd_rows(7, s, x, wt, scale, shift, act, y, oh0, oh1);
}

void mpnas__f32_dwconv_fwd__neon(const mpnas__dw_shape *s, const float *x, const float *wt,
                                 const float *scale, const float *shift, int act, float *y,
                                 int oh0, int oh1) {
  switch (s->k) {
    case 3: dw_fwd_k3(s, x, wt, scale, shift, act, y, oh0, oh1); break;
    case 5: dw_fwd_k5(s, x, wt, scale, shift, act, y, oh0, oh1); break;
    case 7: dw_fwd_k7(s, x, wt, scale, shift, act, y, oh0, oh1); break;
    default: dw_fwd_rows(s->k, s, x, wt, scale, shift, act, y, oh0, oh1); break;
  }
}

/* ---- Input gradient ----------------------------------------------------------------- */

/* Taps of one axis that reach input coordinate i: kernel offsets kk = *first,
 * *first + stride, ... (*count of them), reading output coordinates *o0, *o0 - 1, ...
 * (kk must satisfy kk = i + pad - o*stride with 0 <= kk < k and 0 <= o < out). */
static void grad_taps(int i, int pad, int stride, int k, int out, int *first, int *count,
                      int *o0) {
  int t = i + pad;
  int lo = imax(0, t - stride * (out - 1)), hi = imin(k - 1, t);
  *count = 0;
  *first = 0;
  *o0 = 0;
  if (lo > hi) return;
  int kk = lo + (t - lo) % stride;
  if (kk > hi) return;
  *first = kk;
  *count = (hi - kk) / stride + 1;
  *o0 = (t - kk) / stride;
}

void mpnas__f32_dwconv_bwd_input__neon(const mpnas__dw_shape *s, const float *dy,
                                       const float *wt, float *dx, int ih0, int ih1) {
  const int k = s->k, S = s->stride, c = s->c;
  const ptrdiff_t dyrow = (ptrdiff_t)s->wo * c;
  for (int i = ih0; i < ih1; i++) {
    int ky, nrow, oy;
    grad_taps(i, s->pad, S, k, s->ho, &ky, &nrow, &oy);
    for (int j = 0; j < s->w; j++) {
      int kx, ncol, ox;
      grad_taps(j, s->pad, S, k, s->wo, &kx, &ncol, &ox);
      /* taps walk dy up/left while the weights walk down/right by `stride` taps */
      dw_window_any(nrow, ncol, dy + (oy * dyrow + (ptrdiff_t)ox * c), -dyrow, -(ptrdiff_t)c,
                    wt + ((ptrdiff_t)ky * k + kx) * c, (ptrdiff_t)S * k * c, (ptrdiff_t)S * c,
                    c, NULL, NULL, MPNAS__ACT_NONE, dx + ((ptrdiff_t)i * s->w + j) * c);
    }
  }
}

/* ---- Weight gradient ---------------------------------------------------------------
 * dwt[tap][ch] += sum over images, output rows, output columns (in that order) of
 * x[tap pixel][ch] * dy[pixel][ch], each (tap, channel) in its own accumulator started
 * at zero and added to dwt once at the end. Every path below keeps exactly that order,
 * so a channel's result is the same in any block and for any [c0, c1) split. */

/* Columns [*lo, *hi) of output pixels whose tap column kx is inside the image. */
static void tap_columns(const mpnas__dw_shape *s, int kx, int *lo, int *hi) {
  int off = kx - s->pad; /* ix = ox*stride + off must lie in [0, w) */
  int a = off >= 0 ? 0 : (-off + s->stride - 1) / s->stride;
  int b = s->w - 1 - off >= 0 ? (s->w - 1 - off) / s->stride + 1 : 0;
  *lo = imin(a, s->wo);
  *hi = imax(*lo, imin(b, s->wo));
}

/* Channels [ch, ch + 4*NV), K constant: one pass over the pixels per kernel row ky, with
 * K*NV accumulators (one per tap column and vector) kept in registers. dy is loaded
 * once per pixel and reused by the K tap columns. */
MPNAS_NEON_INLINE void dwgw_rows(int K, int NV, const mpnas__dw_shape *s, int n,
                                 const float *x, const float *dy, float *dwt, int ch) {
  const int S = s->stride, c = s->c;
  const size_t in_image = (size_t)s->h * s->w * c, out_image = (size_t)s->ho * s->wo * c;
  int ox_lo, ox_hi;
  interior_columns(s, &ox_lo, &ox_hi);
  for (int ky = 0; ky < K; ky++) {
    float32x4_t acc[7][4];
#pragma GCC unroll 7
    for (int kx = 0; kx < K; kx++)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[kx][v] = vdupq_n_f32(0.0f);
    for (int img = 0; img < n; img++)
      for (int oy = 0; oy < s->ho; oy++) {
        int iy = oy * S + ky - s->pad;
        if (iy < 0 || iy >= s->h) continue;
        const float *xr = x + img * in_image + (size_t)iy * s->w * c + ch;
        const float *dr = dy + img * out_image + (size_t)oy * s->wo * c + ch;
        /* ox in three runs, in order: left border, interior (no checks), right border */
#define DWGW_RUN(A, B, CHECK)                                           \
  for (int ox = (A); ox < (B); ox++) {                                  \
    float32x4_t d[4];                                                   \
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) d[v] =         \
        vld1q_f32(dr + (size_t)ox * c + 4 * v);                         \
    int ix0 = ox * S - s->pad;                                          \
    _Pragma("GCC unroll 7") for (int kx = 0; kx < K; kx++) {            \
      int ix = ix0 + kx;                                                \
      if ((CHECK) && (ix < 0 || ix >= s->w)) continue;                  \
      const float *xp = xr + (ptrdiff_t)ix * c;                         \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[kx][v] = \
          vfmaq_f32(acc[kx][v], vld1q_f32(xp + 4 * v), d[v]);           \
    }                                                                   \
  }
        DWGW_RUN(0, ox_lo, 1)
        DWGW_RUN(ox_lo, ox_hi, 0)
        DWGW_RUN(ox_hi, s->wo, 1)
#undef DWGW_RUN
      }
#pragma GCC unroll 7
    for (int kx = 0; kx < K; kx++)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) {
        float *p = dwt + ((size_t)ky * K + kx) * c + ch + 4 * v;
        vst1q_f32(p, vaddq_f32(vld1q_f32(p), acc[kx][v]));
      }
  }
}

/* Channels [ch, ch + 4*NV), any k: one pass per tap, over the columns where it is valid. */
MPNAS_NEON_INLINE void dwgw_taps(int NV, const mpnas__dw_shape *s, int n, const float *x,
                                 const float *dy, float *dwt, int ch) {
  const int S = s->stride, c = s->c;
  const size_t in_image = (size_t)s->h * s->w * c, out_image = (size_t)s->ho * s->wo * c;
  for (int ky = 0; ky < s->k; ky++)
    for (int kx = 0; kx < s->k; kx++) {
      int lo, hi;
      tap_columns(s, kx, &lo, &hi);
      float32x4_t acc[4];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[v] = vdupq_n_f32(0.0f);
      for (int img = 0; img < n; img++)
        for (int oy = 0; oy < s->ho; oy++) {
          int iy = oy * S + ky - s->pad;
          if (iy < 0 || iy >= s->h) continue;
          const float *xr = x + img * in_image + (size_t)iy * s->w * c + ch;
          const float *dr = dy + img * out_image + (size_t)oy * s->wo * c + ch;
          for (int ox = lo; ox < hi; ox++) {
            const float *xp = xr + (ptrdiff_t)(ox * S + kx - s->pad) * c,
                        *dp = dr + (size_t)ox * c;
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
              acc[v] = vfmaq_f32(acc[v], vld1q_f32(xp + 4 * v), vld1q_f32(dp + 4 * v));
          }
        }
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) {
        float *p = dwt + ((size_t)ky * s->k + kx) * c + ch + 4 * v;
        vst1q_f32(p, vaddq_f32(vld1q_f32(p), acc[v]));
      }
    }
}

/* One channel, any k: the scalar twin of dwgw_taps. */
static void dwgw_channel(const mpnas__dw_shape *s, int n, const float *x, const float *dy,
                         float *dwt, int ch) {
  const int S = s->stride, c = s->c;
  const size_t in_image = (size_t)s->h * s->w * c, out_image = (size_t)s->ho * s->wo * c;
  for (int ky = 0; ky < s->k; ky++)
    for (int kx = 0; kx < s->k; kx++) {
      int lo, hi;
      tap_columns(s, kx, &lo, &hi);
      float acc = 0.0f;
      for (int img = 0; img < n; img++)
        for (int oy = 0; oy < s->ho; oy++) {
          int iy = oy * S + ky - s->pad;
          if (iy < 0 || iy >= s->h) continue;
          const float *xr = x + img * in_image + (size_t)iy * s->w * c + ch;
          const float *dr = dy + img * out_image + (size_t)oy * s->wo * c + ch;
          for (int ox = lo; ox < hi; ox++)
            acc = fmaf(xr[(ptrdiff_t)(ox * S + kx - s->pad) * c], dr[(size_t)ox * c], acc);
        }
      dwt[((size_t)ky * s->k + kx) * c + ch] += acc;
    }
}

static void dwgw_k3(const mpnas__dw_shape *s, int n, const float *x, const float *dy,
                    float *dwt, int c0, int c1) {
  int ch = c0;
  for (; ch + 16 <= c1; ch += 16) dwgw_rows(3, 4, s, n, x, dy, dwt, ch);
  for (; ch + 4 <= c1; ch += 4) dwgw_rows(3, 1, s, n, x, dy, dwt, ch);
  for (; ch < c1; ch++) dwgw_channel(s, n, x, dy, dwt, ch);
}
static void dwgw_k5(const mpnas__dw_shape *s, int n, const float *x, const float *dy,
                    float *dwt, int c0, int c1) {
  int ch = c0;
  for (; ch + 16 <= c1; ch += 16) dwgw_rows(5, 4, s, n, x, dy, dwt, ch);
  for (; ch + 4 <= c1; ch += 4) dwgw_rows(5, 1, s, n, x, dy, dwt, ch);
  for (; ch < c1; ch++) dwgw_channel(s, n, x, dy, dwt, ch);
}
static void dwgw_k7(const mpnas__dw_shape *s, int n, const float *x, const float *dy,
                    float *dwt, int c0, int c1) {
  int ch = c0; /* 7 tap columns x 2 vectors = 14 accumulators */
  for (; ch + 8 <= c1; ch += 8) dwgw_rows(7, 2, s, n, x, dy, dwt, ch);
  for (; ch + 4 <= c1; ch += 4) dwgw_rows(7, 1, s, n, x, dy, dwt, ch);
  for (; ch < c1; ch++) dwgw_channel(s, n, x, dy, dwt, ch);
}
static void dwgw_generic(const mpnas__dw_shape *s, int n, const float *x, const float *dy,
                         float *dwt, int c0, int c1) {
  int ch = c0;
  for (; ch + 16 <= c1; ch += 16) dwgw_taps(4, s, n, x, dy, dwt, ch);
  for (; ch + 4 <= c1; ch += 4) dwgw_taps(1, s, n, x, dy, dwt, ch);
  for (; ch < c1; ch++) dwgw_channel(s, n, x, dy, dwt, ch);
}

void mpnas__f32_dwconv_bwd_weight__neon(const mpnas__dw_shape *s, int n, const float *x,
                                        const float *dy, float *dwt, int c0, int c1) {
  switch (s->k) {
    case 3: dwgw_k3(s, n, x, dy, dwt, c0, c1); break;
    case 5: dwgw_k5(s, n, x, dy, dwt, c0, c1); break;
    case 7: dwgw_k7(s, n, x, dy, dwt, c0, c1); break;
    default: dwgw_generic(s, n, x, dy, dwt, c0, c1); break;
  }
}
