/* q8-neon.h - the requantising epilogue of the int8 kernels (kernels.h) on NEON, shared
 * by q8-neon.c and q8-dotprod-neon.c. Bit-identical to the reference: the same float
 * operations in the same order (its fmaf as vfmaq, nothing else fused: -std=c11 keeps
 * gcc from contracting), maxnm for the lower clamp so NaN goes to qmin as there, vcvtnq
 * (round to nearest, ties to even, like nearbyintf in the default mode). */
#ifndef MPNAS_Q8_NEON_H
#define MPNAS_Q8_NEON_H

#include <string.h>

#include "kernels/q8/q8-simd.h"
#include "kernels/ref/ref.h"
#include "kernels/simd-neon.h"

/* Per-call constants, copied out of the epilogue (int8 stores may alias it). */
typedef struct {
  float32x4_t inv, oz, lo, hi, rs;
  int32x4_t rz;
  int real; /* the real (hard-swish) form of kernels.h; else the folded one */
  const float *mult, *bias;
} q8n_consts;

MPNAS_NEON_INLINE q8n_consts q8n_init(const mpnas__q8_epilogue *e) {
  q8n_consts k;
  k.inv = vdupq_n_f32(e->out_inv_scale);
  k.oz = vdupq_n_f32((float)e->out_zero);
  k.lo = vdupq_n_f32((float)e->qmin);
  k.hi = vdupq_n_f32((float)e->qmax);
  k.rs = vdupq_n_f32(e->res_scale);
  k.rz = vdupq_n_s32(e->res_zero);
  k.real = e->act == MPNAS__ACT_HSWISH;
  k.mult = e->mult;
  k.bias = e->bias;
  return k;
}

/* Multipliers and biases of 16 channels from c, nc <= 16 of them real (a NULL bias is
 * +0, which changes at most the sign of a zero, erased by the rounding). */
typedef struct {
  float32x4_t m[4], b[4];
} q8n_chan;

MPNAS_NEON_INLINE q8n_chan q8n_chan_load(const q8n_consts *k, int c, int nc) {
  float m[16] = {0}, b[16] = {0};
  if (nc > 16) nc = 16;
  memcpy(m, k->mult + c, sizeof(float) * (size_t)nc);
  if (k->bias != NULL) memcpy(b, k->bias + c, sizeof(float) * (size_t)nc);
  q8n_chan ch;
  for (int i = 0; i < 4; i++) {
    ch.m[i] = vld1q_f32(m + 4 * i);
    ch.b[i] = vld1q_f32(b + 4 * i);
  }
  return ch;
}

/* 16 bytes at p, or the first nc (< 16) of them and zeros. */
MPNAS_NEON_INLINE int8x16_t q8n_ld16(const int8_t *p, int nc) {
  if (nc >= 16) return vld1q_s8(p);
  int8_t t[16] = {0};
  memcpy(t, p, (size_t)nc);
  return vld1q_s8(t);
}

MPNAS_NEON_INLINE int32x4_t q8n_epi4(const q8n_consts *k, float32x4_t m, float32x4_t b,
                                     int32x4_t acc, int has_res, int32x4_t res) {
  float32x4_t v = vfmaq_f32(b, vcvtq_f32_s32(acc), m); /* fmaf(acc, m, b) */
  if (k->real) v = mpnas__act_f32x4__neon(MPNAS__ACT_HSWISH, v);
  if (has_res) v = vfmaq_f32(v, k->rs, vcvtq_f32_s32(vsubq_s32(res, k->rz)));
  if (k->real) v = vfmaq_f32(k->oz, v, k->inv);
  /* maxnm takes NaN to qmin as the reference's !(v > lo) does; min then sees no NaN. */
  v = vminq_f32(vmaxnmq_f32(v, k->lo), k->hi);
  return vcvtnq_s32_f32(v);
}

/* Epilogue of 16 channels' accumulators (already zero-corrected) and store nc <= 16
 * bytes at y; res: the residual at these channels or NULL. */
MPNAS_NEON_INLINE void q8n_epi16_store(const q8n_consts *k, const q8n_chan *ch,
                                       const int32x4_t acc[4], const int8_t *res, int8_t *y,
                                       int nc) {
  int32x4_t r[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
  if (res != NULL) {
    int8x16_t rb = q8n_ld16(res, nc);
    int16x8_t r0 = vmovl_s8(vget_low_s8(rb)), r1 = vmovl_high_s8(rb);
    r[0] = vmovl_s16(vget_low_s16(r0));
    r[1] = vmovl_high_s16(r0);
    r[2] = vmovl_s16(vget_low_s16(r1));
    r[3] = vmovl_high_s16(r1);
  }
  int32x4_t v[4];
  for (int i = 0; i < 4; i++) v[i] = q8n_epi4(k, ch->m[i], ch->b[i], acc[i], res != NULL, r[i]);
  int16x8_t h0 = vcombine_s16(vqmovn_s32(v[0]), vqmovn_s32(v[1]));
  int16x8_t h1 = vcombine_s16(vqmovn_s32(v[2]), vqmovn_s32(v[3]));
  int8x16_t out = vcombine_s8(vqmovn_s16(h0), vqmovn_s16(h1));
  if (nc >= 16) vst1q_s8(y, out);
  else {
    int8_t t[16];
    vst1q_s8(t, out);
    memcpy(y, t, (size_t)nc);
  }
}

/* The GEMM driver shared by the NEON tables: rows in blocks of up to 4, output channels
 * in panels of 16 (kernels per block size from Q8N_BLOCK_FN), then the epilogue. */
typedef void (*q8n_kernel_fn)(int k, const int8_t *x, const void *wpanel, int32x4_t acc[][4]);

MPNAS_NEON_INLINE void q8n_gemm_drive(int m, int k, int n, const int8_t *x, int32_t x_zero,
                                      const void *packed, size_t panel_bytes,
                                      const mpnas__q8_epilogue *e, int8_t *y,
                                      const q8n_kernel_fn kern[5]) {
  const int nb = (n + 15) / 16;
  const int32_t *cs = packed;
  const char *wbase = (const char *)packed + (size_t)nb * 16 * sizeof(int32_t);
  const q8n_consts kc = q8n_init(e);
  const int8_t *residual = e->residual;
  for (int b = 0; b < nb; b++) {
    const int j0 = 16 * b, nc = n - j0 < 16 ? n - j0 : 16;
    const q8n_chan ch = q8n_chan_load(&kc, j0, nc);
    int32x4_t corr[4];
    for (int i = 0; i < 4; i++) corr[i] = vmulq_n_s32(vld1q_s32(cs + j0 + 4 * i), x_zero);
    for (int r0 = 0; r0 < m; r0 += 4) {
      const int mr = m - r0 < 4 ? m - r0 : 4;
      int32x4_t acc[4][4];
      kern[mr](k, x + (size_t)r0 * k, wbase + (size_t)b * panel_bytes, acc);
      for (int r = 0; r < mr; r++) {
        for (int i = 0; i < 4; i++) acc[r][i] = vsubq_s32(acc[r][i], corr[i]);
        const size_t at = (size_t)(r0 + r) * n + j0;
        q8n_epi16_store(&kc, &ch, acc[r], residual != NULL ? residual + at : NULL, y + at, nc);
      }
    }
  }
}

#endif
