/* q8-neon.c - int8 inference kernels, AArch64 NEON (kernels.h, "int8 inference"; every
 * output matches ref/q8-ref.c exactly).
 *
 * Pointwise GEMM: weights widened to int16 at pack time (panels of 16 output channels,
 * k padded to 8, 32 bytes per k); 8 values of an x row are widened at a time and each
 * multiplies a weight row into 16 int32 accumulators with SMLAL by lane (4 rows x 16
 * channels = 16 accumulators). acc = sum x * w - x_zero * colsum.
 *
 * Depthwise forward: 16 channels per step; each tap's 16 bytes are widened with the zero
 * point taken off in the same instruction (SSUBL) and multiplied into 4 int32
 * accumulators (SMLAL); the weights of a channel block are widened once into a stack
 * array. Interior pixels run the K x K taps unrolled; border pixels clip the tap ranges.
 * K = 1, 3, 5, 7 are specialised, other odd K run the same code with a run-time K up to
 * 7, and larger K take the reference. */
#include <stdint.h>
#include <string.h>

#include "kernels/q8/q8-neon.h"

/* ---- GEMM ------------------------------------------------------------------------- */

static size_t panel_bytes(int k) { return (size_t)((k + 7) / 8 * 8) * 16 * sizeof(int16_t); }

size_t mpnas__q8_gemm_packed_bytes__neon(int k, int n) {
  const size_t nb = (size_t)(n + 15) / 16;
  return nb * 16 * sizeof(int32_t) + nb * panel_bytes(k);
}

void mpnas__q8_gemm_pack__neon(int k, int n, const int8_t *w, void *packed) {
  const int nb = (n + 15) / 16, k8 = (k + 7) / 8 * 8;
  int32_t *cs = packed;
  for (int j = 0; j < nb * 16; j++) {
    int32_t s = 0;
    for (int i = 0; j < n && i < k; i++) s += w[(size_t)i * n + j];
    cs[j] = s;
  }
  int16_t *wp = (int16_t *)(void *)(cs + nb * 16);
  for (int b = 0; b < nb; b++)
    for (int i = 0; i < k8; i++)
      for (int l = 0; l < 16; l++) {
        const int col = 16 * b + l;
        *wp++ = (i < k && col < n) ? w[(size_t)i * n + col] : 0;
      }
}

/* x rows: 8 values widened; weight rows 16 int16 each. */
#define Q8N_MLAL(L)                                                                   \
  do {                                                                                \
    const int16x8_t w0 = vld1q_s16(wp + (L) * 16), w1 = vld1q_s16(wp + (L) * 16 + 8); \
    for (int r = 0; r < MR; r++) {                                                    \
      acc[r][0] = vmlal_laneq_s16(acc[r][0], vget_low_s16(w0), xv[r], L);             \
      acc[r][1] = vmlal_high_laneq_s16(acc[r][1], w0, xv[r], L);                      \
      acc[r][2] = vmlal_laneq_s16(acc[r][2], vget_low_s16(w1), xv[r], L);             \
      acc[r][3] = vmlal_high_laneq_s16(acc[r][3], w1, xv[r], L);                      \
    }                                                                                 \
  } while (0)

MPNAS_NEON_INLINE void gemm_kernel(const int MR, int k, const int8_t *x, const void *wpanel,
                                   int32x4_t acc[][4]) {
  const int16_t *wp = wpanel;
  for (int r = 0; r < MR; r++)
    for (int i = 0; i < 4; i++) acc[r][i] = vdupq_n_s32(0);
  for (int k0 = 0; k0 < k; k0 += 8, wp += 8 * 16) {
    int16x8_t xv[4];
    for (int r = 0; r < MR; r++) {
      const int8_t *xr = x + (size_t)r * k + k0;
      if (k0 + 8 <= k) xv[r] = vmovl_s8(vld1_s8(xr));
      else {
        int8_t t[8] = {0};
        memcpy(t, xr, (size_t)(k - k0));
        xv[r] = vmovl_s8(vld1_s8(t));
      }
    }
    Q8N_MLAL(0);
    Q8N_MLAL(1);
    Q8N_MLAL(2);
    Q8N_MLAL(3);
    Q8N_MLAL(4);
    Q8N_MLAL(5);
    Q8N_MLAL(6);
    Q8N_MLAL(7);
  }
}

#define KERNEL_FN(MR)                                                                  \
  static void kernel_##MR(int k, const int8_t *x, const void *w, int32x4_t acc[][4]) { \
    gemm_kernel(MR, k, x, w, acc);                                                     \
  }
KERNEL_FN(1)
KERNEL_FN(2)
KERNEL_FN(3)
KERNEL_FN(4)

void mpnas__q8_gemm__neon(int m, int k, int n, const int8_t *x, int32_t x_zero,
                          const void *packed, const mpnas__q8_epilogue *e, int8_t *y) {
  static const q8n_kernel_fn kern[5] = {NULL, kernel_1, kernel_2, kernel_3, kernel_4};
  q8n_gemm_drive(m, k, n, x, x_zero, packed, panel_bytes(k), e, y, kern);
}

/* ---- Depthwise ---------------------------------------------------------------------- */

#define DW_MAXK 7

/* acc += (x - x_zero) * w over 16 channels of one tap. */
MPNAS_NEON_INLINE void dw_tap(int32x4_t acc[4], int8x16_t xv, int8x16_t xz,
                              const int16x8_t *w) {
  const int16x8_t lo = vsubl_s8(vget_low_s8(xv), vget_low_s8(xz));
  const int16x8_t hi = vsubl_high_s8(xv, xz);
  acc[0] = vmlal_s16(acc[0], vget_low_s16(lo), vget_low_s16(w[0]));
  acc[1] = vmlal_high_s16(acc[1], lo, w[0]);
  acc[2] = vmlal_s16(acc[2], vget_low_s16(hi), vget_low_s16(w[1]));
  acc[3] = vmlal_high_s16(acc[3], hi, w[1]);
}

MPNAS_NEON_INLINE void dw_run(const int K, const int S, const mpnas__dw_shape *s,
                              const int8_t *x, int32_t x_zero, const int8_t *wt,
                              const mpnas__q8_epilogue *e, int8_t *y, int oh0, int oh1) {
  const int c = s->c, pad = s->pad;
  const int8x16_t xz = vdupq_n_s8((int8_t)x_zero);
  const q8n_consts kc = q8n_init(e);
  int16x8_t W[DW_MAXK * DW_MAXK][2];
  for (int cb = 0; cb < c; cb += 16) {
    const int nc = c - cb < 16 ? c - cb : 16;
    for (int t = 0; t < K * K; t++) {
      const int8x16_t wv = q8n_ld16(wt + (size_t)t * c + cb, nc);
      W[t][0] = vmovl_s8(vget_low_s8(wv));
      W[t][1] = vmovl_high_s8(wv);
    }
    const q8n_chan ch = q8n_chan_load(&kc, cb, nc);
    for (int oy = oh0; oy < oh1; oy++) {
      const int iy0 = oy * S - pad;
      const int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = s->h - iy0 < K ? s->h - iy0 : K;
      int8_t *yrow = y + (size_t)oy * s->wo * c + cb;
      for (int ox = 0; ox < s->wo; ox++) {
        const int ix0 = ox * S - pad;
        const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = s->w - ix0 < K ? s->w - ix0 : K;
        int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
        const int8_t *base = x + ((size_t)iy0 * s->w + ix0) * c + cb;
        if (kx0 == 0 && kx1 == K && nc == 16) {
          for (int ky = ky0; ky < ky1; ky++)
            for (int kx = 0; kx < K; kx++) /* constant trip count: unrolled */
              dw_tap(acc, vld1q_s8(base + ((ptrdiff_t)ky * s->w + kx) * c), xz, W[ky * K + kx]);
        } else {
          for (int ky = ky0; ky < ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++)
              dw_tap(acc, q8n_ld16(base + ((ptrdiff_t)ky * s->w + kx) * c, nc), xz,
                     W[ky * K + kx]);
        }
        q8n_epi16_store(&kc, &ch, acc, NULL, yrow + (size_t)ox * c, nc);
      }
    }
  }
}

#define DW_FN(K, S)                                                                          \
  static void dw_##K##_##S(const mpnas__dw_shape *s, const int8_t *x, int32_t x_zero,         \
                           const int8_t *wt, const mpnas__q8_epilogue *e, int8_t *y, int oh0, \
                           int oh1) {                                                        \
    dw_run(K, S, s, x, x_zero, wt, e, y, oh0, oh1);                                          \
  }
DW_FN(1, 1)
DW_FN(3, 1)
DW_FN(5, 1)
DW_FN(7, 1)
DW_FN(1, 2)
DW_FN(3, 2)
DW_FN(5, 2)
DW_FN(7, 2)

void mpnas__q8_dwconv_fwd__neon(const mpnas__dw_shape *s, const int8_t *x, int32_t x_zero,
                                const int8_t *wt, const mpnas__q8_epilogue *e, int8_t *y,
                                int oh0, int oh1) {
  mpnas__q8_dw_fwd_fn f = NULL;
  if (s->stride == 1 || s->stride == 2) {
    const int i = s->stride - 1;
    switch (s->k) {
      case 1: f = i ? dw_1_2 : dw_1_1; break;
      case 3: f = i ? dw_3_2 : dw_3_1; break;
      case 5: f = i ? dw_5_2 : dw_5_1; break;
      case 7: f = i ? dw_7_2 : dw_7_1; break;
      default: break;
    }
  }
  if (f == NULL) f = mpnas__q8_dwconv_fwd__ref; /* K > 7: rare, and exact either way */
  f(s, x, x_zero, wt, e, y, oh0, oh1);
}
