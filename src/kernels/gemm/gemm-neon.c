/* gemm-neon.c - pointwise convolution as GEMM for AArch64 NEON (contracts in kernels.h).
 *
 * Forward: y[m][n] = epilogue(x[m][k] . w[k][n]) with an 8x8 register tile: 8 rows of x
 * times 8 columns of w in 16 accumulators. Per 4 steps of k it loads 4 consecutive x
 * values of each row into one q-register and multiplies them by lane (FMLA by element)
 * against two 4-wide vectors of the packed panel: per k step 16 FMAs for 2 panel loads
 * (+ 8 x loads per 4 steps). 16 accumulators + 8 x + 2 panel registers = 26 of the 32
 * q-registers. Rows are read straight from x (no A packing): 8 rows x k stay in L1.
 *
 * Pack layout: panels of NR = 8 output columns, one after another; panel jb holds
 * w[p][8*jb .. 8*jb+7] for p = 0..k-1 contiguously (k-major, 8 floats per p), the last
 * panel zero-padded. No bias in the pack: the epilogue takes scale/shift separately.
 *
 * Every output element is one accumulator started at zero that adds its k products in
 * ascending k with fused multiply-adds, whatever tile (8, 4, 2 or 1 rows) computes it,
 * so splitting the rows across threads never changes a bit. Likewise the weight
 * gradient: each dw element sums its rows in order in any tile, so the result does not
 * depend on the [k0, k1) split.
 */
#include <math.h>
#include <stddef.h>

#include "kernels/simd-neon.h"

#define NR 8

/* Forward: panels of a column chunk of about this many packed floats (128 KB) stay in
 * L2 while all rows stream past them; the 8 rows of a tile stay in L1. */
#define GEMM_CHUNK_FLOATS 32768
/* Weight gradient: rows are processed in chunks of about this many dy floats, so the
 * dy chunk is reused from L2 by every column block of x. The chunk size depends on n
 * only (never on the k0/k1 split), and each chunk's sums are added to dw in order. */
#define GW_CHUNK_FLOATS 32768

size_t mpnas__f32_gemm_packed_floats__neon(int k, int n) {
  if (k <= 0 || n <= 0) return 0;
  return (size_t)((n + NR - 1) / NR) * NR * (size_t)k;
}

void mpnas__f32_gemm_pack__neon(int k, int n, const float *w, float *packed) {
  for (int j0 = 0; j0 < n; j0 += NR) {
    int nr = n - j0 < NR ? n - j0 : NR;
    float *panel = packed + (size_t)(j0 / NR) * NR * (size_t)k;
    for (int p = 0; p < k; p++) {
      float *dst = panel + (size_t)p * NR;
      const float *src = w + (size_t)p * n + j0;
      int j = 0;
      for (; j < nr; j++) dst[j] = src[j];
      for (; j < NR; j++) dst[j] = 0.0f;
    }
  }
}

/* One MR x 8 tile: rows a[0..MR) (row stride k) times one packed panel b, epilogue, then
 * stored to y (row stride n); only the first nr columns exist. sc/sh point at 8 values
 * (padded by the caller for the last panel) or are NULL; res is the residual tile or
 * NULL. */
MPNAS_NEON_INLINE void gemm_tile(int MR, int k, int n, const float *a, const float *b,
                                 const float *sc, const float *sh, int act, const float *res,
                                 float *y, int nr) {
  float32x4_t c0[8], c1[8];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) c0[r] = c1[r] = vdupq_n_f32(0.0f);
  int p = 0;
  for (; p + 4 <= k; p += 4) {
    float32x4_t av[8];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) av[r] = vld1q_f32(a + (size_t)r * k + p);
    const float *bp = b + (size_t)p * NR;
#define GEMM_LANE(L)                                                              \
  do {                                                                            \
    float32x4_t b0 = vld1q_f32(bp + NR * (L)), b1 = vld1q_f32(bp + NR * (L) + 4); \
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {                        \
      c0[r] = vfmaq_laneq_f32(c0[r], b0, av[r], L);                               \
      c1[r] = vfmaq_laneq_f32(c1[r], b1, av[r], L);                               \
    }                                                                             \
  } while (0)
    GEMM_LANE(0);
    GEMM_LANE(1);
    GEMM_LANE(2);
    GEMM_LANE(3);
#undef GEMM_LANE
  }
  for (; p < k; p++) {
    float32x4_t b0 = vld1q_f32(b + (size_t)p * NR), b1 = vld1q_f32(b + (size_t)p * NR + 4);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      float av = a[(size_t)r * k + p];
      c0[r] = vfmaq_n_f32(c0[r], b0, av);
      c1[r] = vfmaq_n_f32(c1[r], b1, av);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) {
    float32x4_t v0 = mpnas__epilogue_f32x4__neon(c0[r], sc, sh, act);
    float32x4_t v1 = mpnas__epilogue_f32x4__neon(c1[r], sc != NULL ? sc + 4 : NULL,
                                                 sh != NULL ? sh + 4 : NULL, act);
    float *yr = y + (size_t)r * n;
    const float *rr = res != NULL ? res + (size_t)r * n : NULL;
    if (nr == NR) {
      if (rr != NULL) {
        v0 = vaddq_f32(v0, vld1q_f32(rr));
        v1 = vaddq_f32(v1, vld1q_f32(rr + 4));
      }
      vst1q_f32(yr, v0);
      vst1q_f32(yr + 4, v1);
    } else { /* last panel: never touch columns past n */
      float t[NR];
      vst1q_f32(t, v0);
      vst1q_f32(t + 4, v1);
      for (int j = 0; j < nr; j++) yr[j] = rr != NULL ? t[j] + rr[j] : t[j];
    }
  }
}

/* MR rows starting at x (row i0 of the caller) against the panels of columns [j_a, j_b). */
MPNAS_NEON_INLINE void gemm_rows(int MR, int k, int n, const float *x, const float *packed,
                                 const float *scale, const float *shift, int act,
                                 const float *res, float *y, int j_a, int j_b) {
  for (int j0 = j_a; j0 < j_b; j0 += NR) {
    int nr = n - j0 < NR ? n - j0 : NR;
    const float *sc = scale != NULL ? scale + j0 : NULL,
                *sh = shift != NULL ? shift + j0 : NULL;
    float tsc[NR], tsh[NR];
    if (nr < NR) { /* pad scale/shift so the vector epilogue reads no further than n */
      for (int j = 0; j < NR; j++) {
        tsc[j] = sc != NULL && j < nr ? sc[j] : 1.0f;
        tsh[j] = sh != NULL && j < nr ? sh[j] : 0.0f;
      }
      sc = sc != NULL ? tsc : NULL;
      sh = sh != NULL ? tsh : NULL;
    }
    gemm_tile(MR, k, n, x, packed + (size_t)(j0 / NR) * NR * (size_t)k, sc, sh, act,
              res != NULL ? res + j0 : NULL, y + j0, nr);
  }
}

void mpnas__f32_gemm_8x8__neon(int m, int k, int n, const float *x, const float *packed,
                               const float *scale, const float *shift, int act,
                               const float *residual, float *y) {
  int nc = k > 0 ? GEMM_CHUNK_FLOATS / k / NR * NR : n;
  if (nc < NR) nc = NR;
  for (int j_a = 0; j_a < n; j_a += nc) {
    int j_b = n - j_a < nc ? n : j_a + nc;
    for (int i = 0; i < m;) {
      const float *xi = x + (size_t)i * k,
                  *ri = residual != NULL ? residual + (size_t)i * n : NULL;
      float *yi = y + (size_t)i * n;
      /* 8-row tiles, then the row tail as 4 + 2 + 1 */
      int mr = m - i >= 8 ? 8 : m - i >= 4 ? 4 : m - i >= 2 ? 2 : 1;
      switch (mr) {
        case 8: gemm_rows(8, k, n, xi, packed, scale, shift, act, ri, yi, j_a, j_b); break;
        case 4: gemm_rows(4, k, n, xi, packed, scale, shift, act, ri, yi, j_a, j_b); break;
        case 2: gemm_rows(2, k, n, xi, packed, scale, shift, act, ri, yi, j_a, j_b); break;
        default: gemm_rows(1, k, n, xi, packed, scale, shift, act, ri, yi, j_a, j_b); break;
      }
      i += mr;
    }
  }
}

/* ---- Weight gradient: dw[k0:k1][n] += x[m][k0:k1]^T . dy[m][n] -------------------- */

/* dw[q][j0 + 4v] for q < MP, v < NV, over `rows` rows: x points at column p of row 0
 * (row stride k), dy at column j0 of row 0 (row stride n), dw at [p][j0]. Per row: the
 * dy vectors are loaded once and multiplied by each x value (by lane when MP >= 4). */
MPNAS_NEON_INLINE void gw_tile(int MP, int NV, int rows, int k, int n, const float *x,
                               const float *dy, float *dw) {
  float32x4_t acc[8][2];
#pragma GCC unroll 8
  for (int q = 0; q < MP; q++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) acc[q][v] = vdupq_n_f32(0.0f);
  for (int i = 0; i < rows; i++) {
    const float *xi = x + (size_t)i * k, *di = dy + (size_t)i * n;
    float32x4_t d[2];
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) d[v] = vld1q_f32(di + 4 * v);
#define GW_LANE(XV, L, Q)                                          \
  _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) acc[Q][v] = \
      vfmaq_laneq_f32(acc[Q][v], d[v], XV, L)
    if (MP >= 4) {
      float32x4_t xa = vld1q_f32(xi);
      GW_LANE(xa, 0, 0);
      GW_LANE(xa, 1, 1);
      GW_LANE(xa, 2, 2);
      GW_LANE(xa, 3, 3);
    }
    if (MP == 8) {
      float32x4_t xb = vld1q_f32(xi + 4);
      GW_LANE(xb, 0, 4);
      GW_LANE(xb, 1, 5);
      GW_LANE(xb, 2, 6);
      GW_LANE(xb, 3, 7);
    }
#undef GW_LANE
    if (MP == 1) {
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) acc[0][v] = vfmaq_n_f32(acc[0][v], d[v], xi[0]);
    }
  }
#pragma GCC unroll 8
  for (int q = 0; q < MP; q++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) {
      float *p = dw + (size_t)q * n + 4 * v;
      vst1q_f32(p, vaddq_f32(vld1q_f32(p), acc[q][v]));
    }
}

/* MP rows of dw starting at column p of x: 8-wide, then 4-wide column blocks, then the
 * scalar columns (fmaf, the same order as the vector lanes). */
MPNAS_NEON_INLINE void gw_rows(int MP, int rows, int k, int n, const float *x, const float *dy,
                               float *dw) {
  int j = 0;
  for (; j + 8 <= n; j += 8) gw_tile(MP, 2, rows, k, n, x, dy + j, dw + j);
  for (; j + 4 <= n; j += 4) gw_tile(MP, 1, rows, k, n, x, dy + j, dw + j);
  for (; j < n; j++)
    for (int q = 0; q < MP; q++) {
      float acc = 0.0f;
      for (int i = 0; i < rows; i++)
        acc = fmaf(x[(size_t)i * k + q], dy[(size_t)i * n + j], acc);
      dw[(size_t)q * n + j] += acc;
    }
}

void mpnas__f32_gemm_bwd_weight__neon(int m, int k, int n, const float *x, const float *dy,
                                      float *dw, int k0, int k1) {
  if (n <= 0) return;
  int mc = GW_CHUNK_FLOATS / n;
  if (mc < 64) mc = 64;
  if (mc > 512) mc = 512;
  for (int i0 = 0; i0 < m; i0 += mc) {
    int rows = m - i0 < mc ? m - i0 : mc;
    const float *xc = x + (size_t)i0 * k, *dyc = dy + (size_t)i0 * n;
    int p = k0;
    for (; p + 8 <= k1; p += 8) gw_rows(8, rows, k, n, xc + p, dyc, dw + (size_t)p * n);
    for (; p + 4 <= k1; p += 4) gw_rows(4, rows, k, n, xc + p, dyc, dw + (size_t)p * n);
    for (; p < k1; p++) gw_rows(1, rows, k, n, xc + p, dyc, dw + (size_t)p * n);
  }
}
