/* ops_q8.h - int8 inference ops over the kernel table's int8 contract (kernels.h, "int8
 * inference"): the pointwise GEMM and the depthwise forward split across threads like
 * their float twins (ops_conv.c), and the conversions between float and int8 tensors
 * the quantised network needs around what stays float (stem, squeeze-excite, pooling,
 * classifier). A quantised tensor: real = scale * (q - zero), one (scale, zero) per
 * tensor. Weights: symmetric per output channel, real = w_scale[c] * q, |q| <= 127.
 * Ops never allocate; results do not depend on the thread count (rows are independent). */
#ifndef MPNAS_OPS_Q8_H
#define MPNAS_OPS_Q8_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

/* One tensor's affine quantisation. */
typedef struct mpnas__qparams {
  float scale;  /* > 0 */
  int32_t zero; /* -128..127 */
} mpnas__qparams;

/* The affine that maps [lo, hi] (widened to contain 0, so that real zero - padding,
 * ReLU's floor - is exact) onto -128..127. A degenerate range gets scale 1. */
mpnas__qparams mpnas__q8_affine(float lo, float hi);

/* q = clamp(round-half-even(x / scale) + zero) over count values. */
void mpnas__q8_quantize(size_t count, const float *restrict x, mpnas__qparams p,
                        int8_t *restrict q);
/* x = scale * (q - zero). */
void mpnas__q8_dequantize(size_t count, const int8_t *q, mpnas__qparams p, float *x);
/* Global average pool of n images of hw pixels x c channels, dequantised: y [n][c]. */
void mpnas__q8_gap(int n, int hw, int c, const int8_t *q, mpnas__qparams p, float *y);

/* Symmetric per-column quantisation of w [rows][cols] (the output channel is the last
 * index, for pointwise [cin][cout] and depthwise [k][k][c] weights alike):
 * scale[j] = max_i |w[i][j]| / 127 (1 for an all-zero column), q = round(w / scale). */
void mpnas__q8_quantize_weights(int rows, int cols, const float *w, float *scale, int8_t *q);

/* Pointwise: y[m][n] = epilogue(sum_k (x[m][k] - x_zero) * w[k][n]), w packed by the
 * same table's q8_gemm_pack; e->residual (if any) laid out as y. */
void mpnas__q8_pw_fwd(const mpnas__engine *eng, int m, int k, int n, const int8_t *x,
                      int32_t x_zero, const void *packed, const mpnas__q8_epilogue *e,
                      int8_t *y);
/* Depthwise KxK, SAME padding, n images: x [n][h][w][c], wt [k][k][c] -> y [n][ho][wo][c];
 * e->residual must be NULL. */
void mpnas__q8_dw_fwd(const mpnas__engine *eng, int n, int h, int w, int c, int k, int stride,
                      const int8_t *x, int32_t x_zero, const int8_t *wt,
                      const mpnas__q8_epilogue *e, int8_t *y);

#endif
