/* block.h - the network's building blocks, forward (training and inference) and
 * backward, on top of the tensor engine. Both the search supernet (which gathers a
 * sampled op's weight slices into contiguous buffers first) and the multi-path model
 * (whose nodes own contiguous weights) run their layers through these functions, so the
 * maths of a block exists once.
 *
 * Blocks:
 *  - conv unit: KxK convolution + BN + activation (the stem; with k = 1 the head's 1x1);
 *  - inverted bottleneck (MobileNetV2/V3): [1x1 expand + BN + act] -> depthwise KxK +
 *    BN + act -> [squeeze-excite] -> 1x1 project + BN (linear) -> [+ input].
 *
 * Training forward uses batch statistics (optionally updating running statistics) and
 * records in a tape, allocated from the arena, what backward needs. Inference uses
 * per-channel scale/shift folded from the BN running statistics, fused into the kernels'
 * stores. Parameter gradients accumulate (+=), input gradients overwrite. */
#ifndef MPNAS_BLOCK_H
#define MPNAS_BLOCK_H

#include "net/params.h"
#include "tensor/ops.h"

#define MPNAS__BN_EPS 1e-3f
#define MPNAS__BN_MOMENTUM 0.01f /* running = 0.99 * running + 0.01 * batch */

/* One batch-norm layer's parameters and (optional) running statistics. */
typedef struct mpnas__bn {
  float *gamma, *beta;     /* [c] */
  float *mean, *var;       /* running statistics [c], NULL = not tracked */
} mpnas__bn;

/* Its gradients (same shapes; accumulated). */
typedef struct mpnas__bn_grad {
  float *gamma, *beta;
} mpnas__bn_grad;

/* Inference form of a BN: y = x * scale + shift. */
typedef struct mpnas__affine {
  float *scale, *shift;
} mpnas__affine;

/* ---- Conv unit: conv KxK (stride) + BN + act ---------------------------------------- */
typedef struct mpnas__conv_geom {
  int cin, cout, k, stride, act;
} mpnas__conv_geom;

typedef struct mpnas__conv_weights {
  float *w; /* [k][k][cin][cout] */
  mpnas__bn bn;
} mpnas__conv_weights;

typedef struct mpnas__conv_grads {
  float *w;
  mpnas__bn_grad bn;
} mpnas__conv_grads;

/* What a training forward keeps for the backward. BN's output (the activation's input)
 * and the activation's output are not kept inside a block: whatever in the backward
 * needs them applies the conv output's BN coefficients (mean, k, b) as it reads it (BN
 * backward with the activation's folded in, the next conv's weight gradient through
 * small buffers; squeeze-excite's backward recomputes its input whole,
 * mpnas__bn_act_reapply), the same bits, where keeping them would hold two more tensors
 * of every BN for the whole step. */
typedef struct mpnas__conv_tape {
  int n, h, w;           /* input size */
  const float *x;        /* input (not owned: the caller keeps it alive) */
  float *pre;            /* conv output */
  float *mean, *invstd;  /* BN batch statistics */
  float *k, *b;          /* BN's coefficients (mpnas__bn_train's save_k, save_b) */
  float *y;              /* output (after activation) */
} mpnas__conv_tape;

size_t mpnas__conv_weight_floats(const mpnas__conv_geom *g); /* conv weights only */

mpnas_status mpnas__conv_unit_fwd_train(const mpnas__engine *eng, mpnas__arena *ws,
                                        const mpnas__conv_geom *g,
                                        const mpnas__conv_weights *p, int n, int h, int w,
                                        const float *x, mpnas__conv_tape *tape);
/* dx may be NULL (the stem's input needs no gradient). */
mpnas_status mpnas__conv_unit_bwd(const mpnas__engine *eng, mpnas__arena *ws,
                                  const mpnas__conv_geom *g, const mpnas__conv_weights *p,
                                  const mpnas__conv_tape *tape, const float *dy, float *dx,
                                  mpnas__conv_grads *grad);
/* Evaluation with batch statistics and no tape (the search's validation pass: TuNAS
 * evaluates a path with batch statistics): y = the training forward's output, the same
 * arithmetic (so the same bits for the same batch), but each BN normalises its conv's
 * output in place and nothing is kept; running statistics are not updated. Scratch from
 * the arena, released before returning. y must not alias x. */
mpnas_status mpnas__conv_unit_fwd_eval(const mpnas__engine *eng, mpnas__arena *ws,
                                       const mpnas__conv_geom *g, const mpnas__conv_weights *p,
                                       int n, int h, int w, const float *x, float *y);
/* Inference with folded BN. packed: a 1x1 stride-1 conv's weights packed by
 * mpnas__pw_pack with eng's kernels, or NULL (packed here, per call). */
mpnas_status mpnas__conv_unit_fwd_infer(const mpnas__engine *eng, mpnas__arena *ws,
                                        const mpnas__conv_geom *g, const float *w,
                                        const float *packed, const mpnas__affine *bn, int n,
                                        int h, int wd, const float *x, float *y);

/* ---- Inverted bottleneck -------------------------------------------------------------- */
typedef struct mpnas__ib_geom {
  int cin, cout;
  int cmid;      /* expanded width; == cin with expand == 0 */
  int expand;    /* 1: there is a 1x1 expand conv (expansion ratio != 1) */
  int k, stride, act;
  int se;        /* squeeze-excite bottleneck width, 0 = no SE */
  int residual;  /* stride 1 and cin == cout */
} mpnas__ib_geom;

/* Fill a geometry from the block's description. SE width = max(8, cmid / 4) rounded up
 * to a multiple of 8 (MobileNetV3's rule). */
void mpnas__ib_geom_init(mpnas__ib_geom *g, int cin, int cout, int expansion, int k,
                         int stride, int act, int use_se);

typedef struct mpnas__ib_weights {
  float *exp_w;        /* [cin][cmid] (unused without expand) */
  mpnas__bn bn1;       /* [cmid] */
  float *dw_w;         /* [k][k][cmid] */
  mpnas__bn bn2;       /* [cmid] */
  float *se_w1, *se_b1, *se_w2, *se_b2; /* [cmid][se], [se], [se][cmid], [cmid] */
  float *proj_w;       /* [cmid][cout] */
  mpnas__bn bn3;       /* [cout] */
} mpnas__ib_weights;

typedef struct mpnas__ib_grads {
  float *exp_w;
  mpnas__bn_grad bn1;
  float *dw_w;
  mpnas__bn_grad bn2;
  float *se_w1, *se_b1, *se_w2, *se_b2;
  float *proj_w;
  mpnas__bn_grad bn3;
} mpnas__ib_grads;

/* As mpnas__conv_tape: each BN + activation is applied again in the backward. */
typedef struct mpnas__ib_tape {
  int n, h, w, ho, wo;
  const float *x;                       /* input (not owned) */
  float *e_pre;                         /* expand: conv out */
  float *e_mean, *e_invstd, *e_k, *e_b; /* and its BN's statistics and coefficients */
  float *d_pre;                         /* depthwise: conv out */
  float *d_mean, *d_invstd, *d_k, *d_b;
  float *se_saved, *se_out;             /* squeeze-excite state and output */
  float *p_pre;                         /* project conv out */
  float *p_mean, *p_invstd;
  float *y;                             /* block output */
} mpnas__ib_tape;

/* Inference parameters: BN folded into per-channel affine transforms. exp_packed and
 * proj_packed: the expand and project weights packed once (mpnas__pw_pack with the
 * engine's kernels), or NULL to pack them per call. */
typedef struct mpnas__ib_infer {
  const float *exp_w, *dw_w, *proj_w;
  const float *se_w1, *se_b1, *se_w2, *se_b2;
  mpnas__affine bn1, bn2, bn3;
  const float *exp_packed, *proj_packed;
} mpnas__ib_infer;

mpnas_status mpnas__ib_fwd_train(const mpnas__engine *eng, mpnas__arena *ws,
                                 const mpnas__ib_geom *g, const mpnas__ib_weights *p, int n,
                                 int h, int w, const float *x, mpnas__ib_tape *tape);
mpnas_status mpnas__ib_bwd(const mpnas__engine *eng, mpnas__arena *ws,
                           const mpnas__ib_geom *g, const mpnas__ib_weights *p,
                           const mpnas__ib_tape *tape, const float *dy, float *dx,
                           mpnas__ib_grads *grad);
/* Evaluation with batch statistics and no tape, as mpnas__conv_unit_fwd_eval: y = the
 * training forward's tape->y, running statistics untouched. Scratch: the expand and
 * depthwise outputs (m_in * cmid + m_out * cmid floats, plus SE's), released before
 * returning. y must not alias x. */
mpnas_status mpnas__ib_fwd_eval(const mpnas__engine *eng, mpnas__arena *ws,
                                const mpnas__ib_geom *g, const mpnas__ib_weights *p, int n,
                                int h, int w, const float *x, float *y);
/* y must not alias x. */
mpnas_status mpnas__ib_fwd_infer(const mpnas__engine *eng, mpnas__arena *ws,
                                 const mpnas__ib_geom *g, const mpnas__ib_infer *p, int n,
                                 int h, int w, const float *x, float *y);

/* ---- Parameter layout in a mpnas__params store ------------------------------------- */
/* Where one BN's tensors sit (mean/var are buffers; (size_t)-1 when not tracked). */
typedef struct mpnas__bn_offsets {
  size_t gamma, beta, mean, var;
} mpnas__bn_offsets;

typedef struct mpnas__conv_offsets {
  size_t w;
  mpnas__bn_offsets bn;
} mpnas__conv_offsets;

typedef struct mpnas__ib_offsets {
  size_t exp_w, dw_w, se_w1, se_b1, se_w2, se_b2, proj_w;
  mpnas__bn_offsets bn1, bn2, bn3;
} mpnas__ib_offsets;

/* Declare a block's tensors in a store (before mpnas__params_alloc). track_stats: also
 * declare BN running statistics. Returns 0 when memory ran out. */
int mpnas__conv_declare(mpnas__params *p, const mpnas__conv_geom *g, int track_stats,
                        mpnas__conv_offsets *o);
int mpnas__ib_declare(mpnas__params *p, const mpnas__ib_geom *g, int track_stats,
                      mpnas__ib_offsets *o);
/* After allocation: the pointers into the store (grads may be NULL). */
void mpnas__conv_bind(mpnas__params *p, const mpnas__conv_offsets *o, mpnas__conv_weights *w,
                      mpnas__conv_grads *grad);
void mpnas__ib_bind(mpnas__params *p, const mpnas__ib_geom *g, const mpnas__ib_offsets *o,
                    mpnas__ib_weights *w, mpnas__ib_grads *grad);

#endif
