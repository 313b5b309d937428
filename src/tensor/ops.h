/* ops.h - the tensor engine's operators, forward and backward.
 *
 * Layout NHWC float32, contiguous; a "row" is one pixel's channel vector, so a
 * [n][h][w][c] tensor is also an [m = n*h*w][c] matrix. Ops take raw pointers with
 * explicit sizes (the network code owns shapes); they assume valid arguments (the public
 * API checks them once). Ops that need scratch memory take the workspace arena and
 * return everything they took from it before returning. They return MPNAS_OK or
 * MPNAS_E_NO_MEMORY (only when the arena cannot grow).
 *
 * Gradient conventions everywhere:
 *  - input gradients (dx) are OVERWRITTEN; a NULL dx means "not needed" and is skipped;
 *  - parameter gradients (dw, dgamma, ...) are ACCUMULATED (+=), so the caller zeroes
 *    them once per optimiser step and shared weights collect every use.
 *
 * Threading: ops with an engine argument split work over eng->threads OpenMP threads
 * (when built with OpenMP). For a fixed thread count results are bit-identical run to
 * run; the weight gradients do not depend on the thread count at all.
 *
 * Where each lives: conv-like ops (conv, pointwise, depthwise, fc) in ops_conv.c on top
 * of the kernel table; BN, activations, adds and the loss in ops_misc.c, where BN and the
 * activations also run on the kernel table; pooling, channel scaling and squeeze-excite
 * in ops_se.c. ops_se.c uses the other two, ops_conv.c uses ops_misc.c's BN planning,
 * ops_misc.c uses neither (no cycle: tests/check_layers.py).
 */
#ifndef MPNAS_OPS_H
#define MPNAS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "tensor/arena.h"

/* SAME-padded output size: ceil(in / stride). */
static inline int mpnas__out_size(int in, int stride) { return (in + stride - 1) / stride; }

/* ---- Threads ---------------------------------------------------------------------------
 * *eng with its thread count cut to the threads that started a trivial parallel region
 * promptly (within 1 ms of the first): the others were waiting for a processor, taken
 * by other processes. On an oversubscribed machine a team meets at every op's end, and
 * each meeting costs the scheduler slice of whichever thread is off a processor
 * (milliseconds, made worse by OpenMP's spin-waiting); a caller about to run many small
 * parallel ops (a training pass, a batch of inference) runs on this engine instead.
 * Results never depend on the thread count (docs/THREADING.md), so this changes only
 * the speed. eng itself without OpenMP or with one thread. Includes
 * mpnas__engine_usable's check. */
mpnas__engine mpnas__engine_ready(const mpnas__engine *eng);
/* *eng, on one thread in a process forked from the one that started the library's
 * OpenMP threads (libgomp's thread pool does not survive fork: a parallel region in the
 * child would wait forever). Every entry point takes its engine through this function
 * or mpnas__engine_ready, never straight from the context. */
mpnas__engine mpnas__engine_usable(const mpnas__engine *eng);
/* The work split of the convolution and int8 ops (ops_conv.c): the number of parts for
 * `work` multiply-adds (1 when single-threaded or below ~32k per thread; at most
 * max_parts), and part t of `parts` of [0, total) cut at multiples of granule. */
int mpnas__team_size(const mpnas__engine *eng, double work, int max_parts);
void mpnas__split_range(int total, int parts, int t, int granule, int *b, int *e);

/* ---- Convolutions ----------------------------------------------------------------- */

/* A BN and activation as a forward applies them: act((x - mu) * k + b), per-channel mu,
 * k, b (mpnas__bn_coeffs), an MPNAS__ACT_*. */
typedef struct mpnas__bn_act {
  const float *mu, *k, *b;
  int act;
} mpnas__bn_act;

/* KxK convolution (the stem), SAME padding, stride 1 or 2, any odd k.
 * x [n][h][w][cin], w [k][k][cin][cout], y [n][ho][wo][cout]; epilogue as kernels.h
 * (scale/shift/residual may be NULL). */
mpnas_status mpnas__conv_fwd(const mpnas__engine *eng, mpnas__arena *ws, int n, int h, int w,
                             int cin, int cout, int k, int stride, const float *x,
                             const float *wt, const float *scale, const float *shift,
                             int act, float *y);
/* mpnas__conv_fwd without an epilogue, and y's batch statistics (mean, m2 [cout],
 * double) taken as each block of output rows is made: those of mpnas__bn_stats over y,
 * bit for bit. Each thread makes its rows' im2col a few rows at a time in a buffer in
 * cache. */
mpnas_status mpnas__conv_fwd_stats(const mpnas__engine *eng, mpnas__arena *ws, int n, int h,
                                   int w, int cin, int cout, int k, int stride, const float *x,
                                   const float *wt, float *y, double *mean, double *m2);
mpnas_status mpnas__conv_bwd(const mpnas__engine *eng, mpnas__arena *ws, int n, int h, int w,
                             int cin, int cout, int k, int stride, const float *x,
                             const float *wt, const float *dy, float *dx, float *dwt);

/* Pointwise 1x1 convolution over m rows: y[m][cout] = x[m][cin] . w[cin][cout], epilogue
 * as kernels.h. */
mpnas_status mpnas__pw_fwd(const mpnas__engine *eng, mpnas__arena *ws, int m, int cin,
                           int cout, const float *x, const float *wt, const float *scale,
                           const float *shift, int act, const float *residual, float *y);
/* The same with w packed beforehand (inference packs each weight once, not per call):
 * packed holds mpnas__pw_packed_floats(eng, cin, cout) floats written by mpnas__pw_pack
 * with the same kernel table. Never allocates. */
size_t mpnas__pw_packed_floats(const mpnas__engine *eng, int cin, int cout);
void mpnas__pw_pack(const mpnas__engine *eng, int cin, int cout, const float *wt,
                    float *packed);
void mpnas__pw_fwd_packed(const mpnas__engine *eng, int m, int cin, int cout, const float *x,
                          const float *packed, const float *scale, const float *shift, int act,
                          const float *residual, float *y);
mpnas_status mpnas__pw_bwd(const mpnas__engine *eng, mpnas__arena *ws, int m, int cin,
                           int cout, const float *x, const float *wt, const float *dy,
                           float *dx, float *dwt);
/* mpnas__pw_bwd for the input act((x - mu) * k + b) (in, a forward's BN and activation
 * on x's cin channels), which the weight gradient normalises a few blocks of rows at a
 * time into a per-thread buffer in L2 as it goes, so the normalised input is never
 * written whole (where the kernels allow it, kernels.h weight_grad_in_blocks; else it is,
 * to arena scratch). The bits of mpnas__bn_act_reapply then mpnas__pw_bwd. in NULL:
 * x as it is. residual (NULL or [m][cin]) is added to dx in the product's epilogue: the
 * bits of adding it afterwards. */
mpnas_status mpnas__pw_bwd_bn_in(const mpnas__engine *eng, mpnas__arena *ws, int m, int cin,
                                 int cout, const float *x, const mpnas__bn_act *in,
                                 const float *wt, const float *dy, const float *residual,
                                 float *dx, float *dwt);

/* Depthwise KxK, SAME padding: x [n][h][w][c], wt [k][k][c], y [n][ho][wo][c]. */
mpnas_status mpnas__dw_fwd(const mpnas__engine *eng, int n, int h, int w, int c, int k,
                           int stride, const float *x, const float *wt, const float *scale,
                           const float *shift, int act, float *y);
/* The depthwise backward: dx (or NULL) overwritten, dwt (or NULL) accumulated. The
 * weight gradient is summed over fixed chunks of images (partials in ws scratch), so its
 * bits do not depend on the thread count; a thread makes its images' input gradients
 * with their weight-gradient sums, while dy is in cache. */
mpnas_status mpnas__dw_bwd(const mpnas__engine *eng, mpnas__arena *ws, int n, int h, int w,
                           int c, int k, int stride, const float *x, const float *wt,
                           const float *dy, float *dx, float *dwt);
/* mpnas__dw_bwd for the input act((x - mu) * k + b) (in), which the weight gradient
 * normalises an image at a time into a per-thread image buffer (ws scratch): the bits of
 * mpnas__bn_act_reapply then mpnas__dw_bwd. in NULL: mpnas__dw_bwd. */
mpnas_status mpnas__dw_bwd_bn_in(const mpnas__engine *eng, mpnas__arena *ws, int n, int h,
                                 int w, int c, int k, int stride, const float *x,
                                 const mpnas__bn_act *in, const float *wt, const float *dy,
                                 float *dx, float *dwt);
/* A BN's input gradient given as g and coefficients: a*g + b*(x - mu) + d per channel
 * (coef = a | b | d, from mpnas__bn_bwd_produced; x the BN's input, mu its saved mean). */
typedef struct mpnas__bn_dy {
  const float *x, *mu, *coef;
} mpnas__bn_dy;
/* mpnas__dw_bwd_bn_in whose output gradient dy is the BN input gradient dy_bn of g (its x
 * has the depthwise output's shape): each image's dy is made over its g as the weight
 * gradient's sums (and the input gradient, where a thread makes it with them) read it, so
 * dy is written once and not read back for them; g holds dy after. With no weight
 * gradient, dy is made whole first. The bits of mpnas__bn_bwd_apply_coef then
 * mpnas__dw_bwd_bn_in. dy_bn NULL: g is dy already (mpnas__dw_bwd_bn_in on g). */
mpnas_status mpnas__dw_bwd_bn_dy(const mpnas__engine *eng, mpnas__arena *ws, int n, int h,
                                 int w, int c, int k, int stride, const float *x,
                                 const mpnas__bn_act *in, const float *wt, float *g,
                                 const mpnas__bn_dy *dy_bn, float *dx, float *dwt);
/* The depthwise conv's input gradient (its output's gradient dz) and the backward of the
 * BN and activation before the conv (x the BN's input [n][h][w][c], act as in
 * mpnas__bn_bwd), fused as mpnas__pw_dx_bn_bwd: dx receives the BN's input gradient, the
 * bits of mpnas__dw_bwd's dx then mpnas__bn_bwd in place - or with coef, g and the
 * coefficients (mpnas__bn_bwd_produced). Scratch: an image per thread when w does not
 * divide MPNAS__BN_BLOCK_ROWS. */
mpnas_status mpnas__dw_dx_bn_bwd(const mpnas__engine *eng, mpnas__arena *ws, int n, int h,
                                 int w, int c, int k, int stride, const float *wt,
                                 const float *dz, const float *x, const float *gamma,
                                 const float *save_mean, const float *save_invstd,
                                 const mpnas__bn_act *act, float *coef, float *dx,
                                 float *dgamma, float *dbeta);
/* The depthwise conv's backward in an expand block: mpnas__dw_bwd_bn_dy (no dx) then
 * mpnas__dw_dx_bn_bwd with coef, whose BN is `in`'s (x its input, in->mu its saved mean),
 * in one pass where the images nest in the BN's row chunks (mpnas__reduce_chunk_rows) as
 * the weight gradient's chunks of images do: each image's dy made over its g into a
 * thread's buffer, its weight gradient, input gradient and the BN's sums of its rows,
 * while x's, dy's and dx's image are in cache - g is then left as it is, and dy not
 * written. The same bits either way; elsewhere (or without dwt) those two calls, g
 * holding dy after. dx receives g of the BN before the conv, coef its coefficients.
 * Scratch: an input and an output image per thread. */
mpnas_status mpnas__dw_bwd_expand(const mpnas__engine *eng, mpnas__arena *ws, int n, int h,
                                  int w, int c, int k, int stride, const float *x,
                                  const mpnas__bn_act *in, const float *wt, float *g,
                                  const mpnas__bn_dy *dy_bn, const float *gamma,
                                  const float *save_invstd, float *coef, float *dx,
                                  float *dwt, float *dgamma, float *dbeta);
/* mpnas__pw_bwd_bn_in without a BN on its input whose output gradient dy is a BN's input
 * gradient, a*g + b*(bx - mu) + d per output channel (coef = a | b | d, from
 * mpnas__bn_bwd_produced): each thread makes blocks of dy rows into a buffer (in L2) as
 * the weight and input gradients read them, so dy is never written. The bits of
 * mpnas__bn_bwd_apply_coef then mpnas__pw_bwd_bn_in. Where the kernels sum the weight
 * gradient in other blocks (weight_grad_in_blocks 0), it is those two calls, dy written
 * over g (so g is not const). */
mpnas_status mpnas__pw_bwd_bn_dy(const mpnas__engine *eng, mpnas__arena *ws, int m, int cin,
                                 int cout, const float *x, const float *wt, float *g,
                                 const float *bx, const float *mu, const float *coef,
                                 const float *residual, float *dx, float *dwt);

/* The input gradient of a 1x1 conv (w [c][cout], its output's gradient dz [m][cout]) and
 * the backward of the BN and activation before the conv (x the BN's input, act as in
 * mpnas__bn_bwd), fused: the conv's rows made as the BN's sums take them
 * (mpnas__bn_bwd_produced). dx [m][c] receives the BN's input gradient: the bits of
 * mpnas__pw_bwd's dx then mpnas__bn_bwd in place - or with coef, g and the coefficients
 * (mpnas__bn_bwd_produced). With dwt, also the conv's weight gradient from the BN's
 * output (x through act, as mpnas__pw_bwd_bn_in): in the same pass, each block of x's
 * rows read once for both, where the weight gradient's chunks of rows nest in the BN's
 * (mpnas__reduce_chunk_rows) and the kernels sum in blocks; else in a pass of its own
 * first. The same bits either way. */
mpnas_status mpnas__pw_dx_bn_bwd(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                                 int cout, const float *wt, const float *dz, const float *x,
                                 const float *gamma, const float *save_mean,
                                 const float *save_invstd, const mpnas__bn_act *act,
                                 float *coef, float *dx, float *dgamma, float *dbeta,
                                 float *dwt);

/* Fully connected: y[m][out] = x[m][in] . w[in][out] + b[out] (b may be NULL). */
mpnas_status mpnas__fc_fwd(const mpnas__engine *eng, mpnas__arena *ws, int m, int in, int out,
                           const float *x, const float *wt, const float *b, float *y);
mpnas_status mpnas__fc_bwd(const mpnas__engine *eng, mpnas__arena *ws, int m, int in, int out,
                           const float *x, const float *wt, const float *dy, float *dx,
                           float *dwt, float *db);

/* ---- Batch normalisation over m rows of c channels ----------------------------------
 * Training: batch mean/variance (biased) per channel; y = gamma*(x-mean)*invstd + beta;
 * running stats updated as r = (1-momentum)*r + momentum*batch (running_var uses the
 * unbiased batch variance; running pointers may be NULL to skip). save_mean/save_invstd
 * [c] receive what backward needs. y may equal x. The statistics and the parameter
 * gradients of mpnas__bn_bwd do not depend on eng->threads (ops_misc.c, "Threads"). */
typedef struct mpnas__bn_train { /* a training-mode BN and what it writes besides y */
  const float *gamma, *beta;         /* NULL: 1 and 0 */
  float eps, momentum;
  float *running_mean, *running_var; /* updated when non-NULL */
  float *save_mean, *save_invstd;    /* [c]; only mpnas__bn_act_apply takes NULL (not kept) */
} mpnas__bn_train;
void mpnas__bn_fwd_train(const mpnas__engine *eng, int m, int c, const float *x,
                         const mpnas__bn_train *bn, float *y);
/* The same fused with an activation, in one pass over the data after the statistics:
 * norm (may be NULL) receives the BN output, y = act(BN output). Either may equal x;
 * norm != y unless act is MPNAS__ACT_NONE. */
void mpnas__bn_act_fwd_train(const mpnas__engine *eng, int m, int c, const float *x,
                             const mpnas__bn_train *bn, int act, float *norm, float *y);
/* ---- Batch statistics produced with the convolution's output ------------------------
 * Training-mode BN needs every channel's batch mean and variance before it can normalise
 * any pixel, so a conv + BN costs a pass over the conv's output for the statistics and
 * another to normalise. These ops compute the output in blocks of about
 * MPNAS__BN_BLOCK_ROWS pixels and take each block's statistics (the bn_stats kernel)
 * right after producing it, while it is in cache: the statistics pass does not read
 * memory again. mean / m2 [c] (double, overwritten) receive each channel's mean and sum
 * of squared deviations over all pixels (as kernels.h's bn_stats); mpnas__bn_act_apply
 * then normalises in one pass.
 *
 * Blocks: 256 pixel rows (pointwise, mpnas__bn_stats), or the whole output rows that fit
 * in 256 pixels (depthwise: max(1, 256 / wo) rows, consecutive images' rows following
 * each other). Blocks are folded in order into at most 8 fixed chunks and the chunks
 * merged in order (Chan's update in double), the scheme of mpnas__bn_act_fwd_train's
 * statistics. Nothing depends on eng->threads: with fewer chunks than threads the ops
 * produce the output first and then take the same block statistics split by channels.
 * When the blocks are 256 pixels (always for pointwise; depthwise when wo divides 256)
 * the result is mpnas__bn_act_fwd_train's statistics up to the rounding of the double
 * merges (on AVX2 bit for bit). */
mpnas_status mpnas__pw_fwd_stats(const mpnas__engine *eng, mpnas__arena *ws, int m, int cin,
                                 int cout, const float *x, const float *wt, float *y,
                                 double *mean, double *m2);
mpnas_status mpnas__dw_fwd_stats(const mpnas__engine *eng, mpnas__arena *ws, int n, int h,
                                 int w, int c, int k, int stride, const float *x,
                                 const float *wt, float *y, double *mean, double *m2);
/* mpnas__pw_fwd_stats of act((x - mu) * k + b) instead of x (a BN and activation from
 * mpnas__bn_coeffs, on the input's cin channels): each block of rows is normalised into
 * a small per-thread buffer just before its product, so the normalised tensor is never
 * written to memory and read back. y and the statistics are those of
 * mpnas__bn_act_apply_keep then mpnas__pw_fwd_stats, bit for bit (the BN kernel is
 * elementwise, the product's rows independent of each other). in NULL: x as it is
 * (mpnas__pw_fwd_stats). */
mpnas_status mpnas__pw_fwd_stats_bn_in(const mpnas__engine *eng, mpnas__arena *ws, int m,
                                       int cin, int cout, const float *x,
                                       const mpnas__bn_act *in, const float *wt, float *y,
                                       double *mean, double *m2);
/* mpnas__dw_fwd_stats of act((x - mu) * k + b) instead of x, the input rows each block of
 * output rows reads normalised into a per-thread image buffer just before the kernel
 * reads them (scratch: an input image per thread). The same bits as
 * mpnas__bn_act_apply_keep then mpnas__dw_fwd_stats. in NULL: x as it is
 * (mpnas__dw_fwd_stats). */
mpnas_status mpnas__dw_fwd_stats_bn_in(const mpnas__engine *eng, mpnas__arena *ws, int n,
                                       int h, int w, int c, int k, int stride, const float *x,
                                       const mpnas__bn_act *in, const float *wt, float *y,
                                       double *mean, double *m2);
/* The batch statistics (mean, m2 [cout], as above) of the pointwise conv y = x . wt
 * ([m][cin] . [cin][cout]) computed from x's moments, without y: per 256-row block x's
 * mean and centred cross products (cin x cin, the gemm_bwd_weight kernel), merged in
 * block order in double (Chan's update), then mean = mean(x) . w_j and m2 = w_j^T S w_j
 * per output channel. Costs a product of cin / cout of the conv's and a read of x; equal
 * to the statistics of y up to rounding (not bit for bit: a different sum). Its blocks
 * do not depend on the thread count. mpnas__pw_moments_pay (a rule on the shape) says
 * where an evaluation takes an expand conv's statistics this way (src/net/block.c). */
int mpnas__pw_moments_pay(int m, int cin, int cout);
mpnas_status mpnas__pw_out_moments(const mpnas__engine *eng, mpnas__arena *ws, int m, int cin,
                                   int cout, const float *x, const float *wt, double *mean,
                                   double *m2);
/* mpnas__dw_fwd_stats_bn_in whose input, the expand conv's output x . exp_w ([n][h][w][cin]
 * . [cin][c]), is made a few rows at a time into the per-thread image buffer just before
 * it is normalised there (in: from the expand's statistics, e.g. mpnas__pw_out_moments):
 * the expanded tensor is never written to memory. The same bits as mpnas__pw_fwd then
 * mpnas__dw_fwd_stats_bn_in (the product's rows do not depend on how many are made at
 * once). For evaluation: nothing of the expand is kept for a backward. */
mpnas_status mpnas__expand_dw_fwd_stats(const mpnas__engine *eng, mpnas__arena *ws, int n,
                                        int h, int w, int cin, int c, int k, int stride,
                                        const float *x, const float *exp_w,
                                        const mpnas__bn_act *in, const float *wt, float *y,
                                        double *mean, double *m2);
/* The statistics of an existing [m][c] tensor, 256-row blocks. */
mpnas_status mpnas__bn_stats(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                             const float *x, double *mean, double *m2);
/* Training-mode BN from statistics (over m rows), fused with the activation and an
 * optional residual, in one pass: what mpnas__bn_act_fwd_train does after its
 * statistics; norm (may be NULL) receives the BN output, y = act(BN output)
 * + residual (residual may be NULL; added after the activation, as kernels.h's
 * epilogue). norm and y may equal x; residual must not overlap y. Scratch: 3c floats.
 * With eng->workers, mean and m2 are this worker's and the BN uses the whole batch's
 * (two sums over the workers; m may then be 0 on some). */
mpnas_status mpnas__bn_act_apply(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                                 const float *x, const double *mean, const double *m2,
                                 const mpnas__bn_train *bn, int act, const float *residual,
                                 float *norm, float *y);

/* mpnas__bn_act_apply that also writes the per-channel coefficients it applied, k and b
 * [c] (y = (x - save_mean) * k + b before the activation), for mpnas__bn_act_reapply. */
mpnas_status mpnas__bn_act_apply_keep(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                                      const float *x, const double *mean, const double *m2,
                                      const mpnas__bn_train *bn, int act, const float *residual,
                                      float *norm, float *y, float *k, float *b);
/* What mpnas__bn_act_apply_keep computes before its pass over the rows: the BN's
 * coefficients mu, k, b [c] (output = (x - mu) * k + b), the same running-statistics
 * update, save_mean / save_invstd / save_k / save_b (each may be NULL) and, with
 * eng->workers, the same sums over the workers. For an op that applies the BN itself
 * (mpnas__pw_fwd_stats_bn_in). */
mpnas_status mpnas__bn_coeffs(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                              const double *mean, const double *m2, const mpnas__bn_train *bn,
                              float *mu, float *k, float *b, float *save_k, float *save_b);

/* mpnas__bn_act_apply_keep's output again, without a residual, from the same x and what
 * it saved (save_mean as mu, k, b): the same bits, element for element. The backward
 * pass recomputes an activation's output this way from the conv output the tape keeps,
 * where a weight gradient needs it, instead of keeping it (a pass over memory instead of
 * a tensor for the whole step). norm may be NULL; norm != y unless act is
 * MPNAS__ACT_NONE. */
void mpnas__bn_act_reapply(const mpnas__engine *eng, int m, int c, const float *x,
                           const float *mu, const float *k, const float *b, int act,
                           float *norm, float *y);

/* Inference with running statistics. y may equal x. */
void mpnas__bn_fwd_infer(int m, int c, const float *x, const float *gamma, const float *beta,
                         const float *running_mean, const float *running_var, float eps,
                         float *y);
/* Fold inference BN into a per-channel scale/shift for the kernels' fused epilogue. */
void mpnas__bn_fold(int c, const float *gamma, const float *beta, const float *running_mean,
                    const float *running_var, float eps, float *scale, float *shift);
/* Backward of the training forward. x is the BN input; dx may be NULL or equal dy.
 * With act (not NULL: the activation the forward applied to this BN's output, act->mu ==
 * save_mean), dy is the gradient of the activation's output and dx is required: it first
 * receives dy * act'(t), in the pass of the sums, then the BN's input gradient (the bits
 * of mpnas__act_bwd then this backward without act, in one pass over memory fewer).
 * dgamma / dbeta receive this worker's part (the gradient sum over workers adds them).
 * Scratch only with eng->workers (5c + 1 doubles; ws may be NULL without); fails only
 * then (no memory, or the workers' sum's status). */
mpnas_status mpnas__bn_bwd(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                           const float *x, const float *gamma, const float *save_mean,
                           const float *save_invstd, const mpnas__bn_act *act,
                           const float *dy, float *dx, float *dgamma, float *dbeta);
/* Rows [r0, r1) of a gradient written by its producer (e.g. a conv's input gradient), on
 * thread `slot` (0 .. threads - 1 of the call that runs it, for per-thread scratch). */
typedef void (*mpnas__rows_producer)(const void *arg, int slot, int r0, int r1);
/* mpnas__bn_bwd with act whose dy is made by produce, block by block as the sums need
 * it, each block reduced while it is in cache: dx [m][c] receives dy, then g, then the BN's
 * input gradient - the bits of produce over all rows and then mpnas__bn_bwd(..., act, dx,
 * dx, ...), in two passes over memory fewer. With coef (3c floats) dx keeps g and coef
 * receives the input gradient's coefficients a | b | d (dx = a*g + b*(x - save_mean) + d,
 * mpnas__bn_bwd_apply_coef), for a consumer to apply as it reads g. produce runs on up to
 * `threads` threads at once, each call on its own rows (whole blocks of
 * MPNAS__BN_BLOCK_ROWS rows but the last). Scratch: (5 + 3 * 8)c + 1 doubles. Fails only
 * for scratch or the workers' sum. */
mpnas_status mpnas__bn_bwd_produced(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                                    const float *x, const float *gamma,
                                    const float *save_mean, const float *save_invstd,
                                    const mpnas__bn_act *act, mpnas__rows_producer produce,
                                    const void *arg, int threads, float *coef, float *dx,
                                    float *dgamma, float *dbeta);
/* The fixed row chunks of m rows that the reductions above sum separately and then in
 * order (so their bits do not depend on the thread count): at most 8, of whole
 * MPNAS__BN_BLOCK_ROWS blocks, depending on m alone. Chunk t's rows: [*r0, *r1). */
int mpnas__reduce_chunks(int m);
void mpnas__reduce_chunk_rows(int m, int t, int *r0, int *r1);
/* dx = a*g + b*(x - save_mean) + d per channel, coef = a | b | d (dx may be g). */
void mpnas__bn_bwd_apply_coef(const mpnas__engine *eng, int m, int c, const float *x,
                              const float *g, const float *save_mean, const float *coef,
                              float *dx);

/* ---- Activations (MPNAS__ACT_*) over count values ---------------------------------- */
/* y may equal x. */
void mpnas__act_fwd(const mpnas__engine *eng, int act, size_t count, const float *x, float *y);
/* dx = dy * act'(x), x the pre-activation input. dx may equal dy. */
void mpnas__act_bwd(const mpnas__engine *eng, int act, size_t count, const float *x,
                    const float *dy, float *dx);

/* ---- Elementwise --------------------------------------------------------------------- */
/* Residual add: y = a + b (y may equal a or b). */
void mpnas__add_fwd(size_t count, const float *a, const float *b, float *y);
/* Accumulate a gradient: dst += src (the backward of a residual add is dy to both). */
void mpnas__add_acc(size_t count, const float *src, float *dst);
/* Per-image channel scaling: y[i][p][c] = x[i][p][c] * s[i][c] for n images of hw pixels. */
void mpnas__chscale_fwd(int n, int hw, int c, const float *x, const float *s, float *y);
/* dx = dy * s (may be NULL); ds[i][c] = sum_p dy*x (overwritten, may be NULL). */
void mpnas__chscale_bwd(int n, int hw, int c, const float *x, const float *s, const float *dy,
                        float *dx, float *ds);

/* ---- Pooling --------------------------------------------------------------------------- */
/* Global average pool: y[i][c] = mean over the hw pixels of image i. */
void mpnas__gap_fwd(int n, int hw, int c, const float *x, float *y);
void mpnas__gap_bwd(int n, int hw, int c, const float *dy, float *dx);

/* ---- Squeeze-and-excite ---------------------------------------------------------------
 * y = x * hsigmoid(fc2(relu(fc1(gap(x))))) per image and channel; fc1: c -> r with w1
 * [c][r], b1 [r]; fc2: r -> c with w2 [r][c], b2 [c]. `saved` holds what backward needs:
 * mpnas__se_saved_floats(n, c, r) floats, written by forward, read by backward. */
size_t mpnas__se_saved_floats(int n, int c, int r);
typedef struct mpnas__se_weights {
  const float *w1, *b1, *w2, *b2;
} mpnas__se_weights;
typedef struct mpnas__se_grads { /* accumulated into (+=) */
  float *w1, *b1, *w2, *b2;
} mpnas__se_grads;
mpnas_status mpnas__se_fwd(const mpnas__engine *eng, mpnas__arena *ws, int n, int hw, int c,
                           int r, const float *x, const mpnas__se_weights *sw, float *saved,
                           float *y);
/* dx (overwritten) may be NULL. */
mpnas_status mpnas__se_bwd(const mpnas__engine *eng, mpnas__arena *ws, int n, int hw, int c,
                           int r, const float *x, const mpnas__se_weights *sw,
                           const float *saved, const float *dy, float *dx,
                           const mpnas__se_grads *grad);

/* ---- Loss ------------------------------------------------------------------------------
 * Softmax cross-entropy with label smoothing eps over m rows of `classes` logits: the
 * target is (1-eps) on the label plus eps/classes on every class. Returns the MEAN loss
 * over rows; dlogits (may be NULL) receives the gradient of that mean; *correct (may be
 * NULL) the number of rows whose argmax equals the label. */
float mpnas__softmax_xent(int m, int classes, const float *logits, const int32_t *labels,
                          float smoothing, float *dlogits, int *correct);

#endif
