/* q8-dotprod-neon.c - the int8 pointwise GEMM with the Armv8.2 dot product (SDOT: four
 * s8 x s8 products added into each int32 lane, signed, so no offset is needed). The only
 * file built with -march=armv8.2-a+dotprod (Makefile); its table,
 * mpnas__kernels_neon_dotprod (table-neon.c), is chosen only when the kernel reports
 * HWCAP_ASIMDDP (dispatch.c). Depthwise stays the NEON one.
 *
 * Packed: int32 column sums, then per panel of 16 output channels and per group of 4 k
 * (k padded to 16), 64 bytes: channels 0-3, 4-7, 8-11, 12-15, each channel's 4 weights
 * contiguous. 16 x values of a row are loaded at a time and lane l of them (4 bytes)
 * dots with group l: 4 rows x 16 channels = 16 accumulators. */
#include <stdint.h>
#include <string.h>

#include "kernels/q8/q8-neon.h"

static size_t panel_bytes(int k) { return (size_t)((k + 15) / 16 * 16) * 16; }

size_t mpnas__q8_gemm_packed_bytes__neon_dotprod(int k, int n) {
  const size_t nb = (size_t)(n + 15) / 16;
  return nb * 16 * sizeof(int32_t) + nb * panel_bytes(k);
}

void mpnas__q8_gemm_pack__neon_dotprod(int k, int n, const int8_t *w, void *packed) {
  const int nb = (n + 15) / 16, k16 = (k + 15) / 16 * 16;
  int32_t *cs = packed;
  for (int j = 0; j < nb * 16; j++) {
    int32_t s = 0;
    for (int i = 0; j < n && i < k; i++) s += w[(size_t)i * n + j];
    cs[j] = s;
  }
  int8_t *wp = (int8_t *)(cs + nb * 16);
  for (int b = 0; b < nb; b++)
    for (int q = 0; q < k16 / 4; q++)
      for (int l = 0; l < 16; l++)
        for (int s = 0; s < 4; s++) {
          const int col = 16 * b + l, row = 4 * q + s;
          *wp++ = (row < k && col < n) ? w[(size_t)row * n + col] : 0;
        }
}

#define Q8D_DOT(L)                                                                     \
  do {                                                                                 \
    const int8x16_t w0 = vld1q_s8(wp + (L) * 64), w1 = vld1q_s8(wp + (L) * 64 + 16);   \
    const int8x16_t w2 = vld1q_s8(wp + (L) * 64 + 32), w3 = vld1q_s8(wp + (L) * 64 + 48); \
    for (int r = 0; r < MR; r++) {                                                     \
      acc[r][0] = vdotq_laneq_s32(acc[r][0], w0, xv[r], L);                            \
      acc[r][1] = vdotq_laneq_s32(acc[r][1], w1, xv[r], L);                            \
      acc[r][2] = vdotq_laneq_s32(acc[r][2], w2, xv[r], L);                            \
      acc[r][3] = vdotq_laneq_s32(acc[r][3], w3, xv[r], L);                            \
    }                                                                                  \
  } while (0)

MPNAS_NEON_INLINE void gemm_kernel(const int MR, int k, const int8_t *x, const void *wpanel,
                                   int32x4_t acc[][4]) {
  const int8_t *wp = wpanel;
  for (int r = 0; r < MR; r++)
    for (int i = 0; i < 4; i++) acc[r][i] = vdupq_n_s32(0);
  for (int k0 = 0; k0 < k; k0 += 16, wp += 4 * 64) {
    int8x16_t xv[4];
    for (int r = 0; r < MR; r++) xv[r] = q8n_ld16(x + (size_t)r * k + k0, k - k0);
    Q8D_DOT(0);
    Q8D_DOT(1);
    Q8D_DOT(2);
    Q8D_DOT(3);
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

void mpnas__q8_gemm__neon_dotprod(int m, int k, int n, const int8_t *x, int32_t x_zero,
                                  const void *packed, const mpnas__q8_epilogue *e, int8_t *y) {
  static const q8n_kernel_fn kern[5] = {NULL, kernel_1, kernel_2, kernel_3, kernel_4};
  q8n_gemm_drive(m, k, n, x, x_zero, packed, panel_bytes(k), e, y, kern);
}
