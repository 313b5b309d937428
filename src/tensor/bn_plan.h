/* bn_plan.h - the blocks and chunks of batch statistics taken while a conv produces its
 * output (ops.h, "Batch statistics produced with the convolution's output"); shared by
 * ops_conv.c (the producers) and ops_misc.c (where it is implemented). Internal to the
 * tensor engine.
 *
 * An output of `units` units (pointwise: pixels; depthwise: output rows of unit_px = wo
 * pixels, consecutive images' rows following each other) is cut into blocks of
 * per_block units (the whole units that fit in MPNAS__BN_BLOCK_ROWS pixels, at least
 * one) and the blocks into nchunks <= 8 contiguous chunks, all from the shape only. A
 * chunk's partial statistics fold its blocks in order (Chan's update, the bn_stats
 * kernels' own block merge); the chunks are merged in order at the end. Threads take
 * whole chunks, or (fewer chunks than threads) channel slices of every block: either way
 * every block and merge is the same arithmetic. */
#ifndef MPNAS_BN_PLAN_H
#define MPNAS_BN_PLAN_H

#include "tensor/ops.h"

#define MPNAS__BN_MAX_CHUNKS 8

typedef struct mpnas__bn_plan {
  int units, unit_px, per_block, nblocks, nchunks;
  int c;
  double *mean, *m2;   /* [nchunks][c] partial statistics of each chunk */
  double *bmean, *bm2; /* [nchunks][c] one block's statistics (scratch per chunk) */
} mpnas__bn_plan;

/* Lay out the blocks and take the partials from the arena (NULL-free on success). */
mpnas_status mpnas__bn_plan_init(mpnas__bn_plan *p, mpnas__arena *ws, int units, int unit_px,
                                 int c);
/* Blocks [*b0, *b1) of chunk t; units [*u0, *u1) of block b. */
void mpnas__bn_plan_chunk(const mpnas__bn_plan *p, int t, int *b0, int *b1);
void mpnas__bn_plan_block(const mpnas__bn_plan *p, int b, int *u0, int *u1);
/* Take the statistics of block b of chunk t, channels [c0, c1), from y (the whole
 * output, [units * unit_px][c]) and fold them into the chunk's partials. Called for the
 * chunk's blocks in order. */
void mpnas__bn_plan_fold(const mpnas__kernels *kt, mpnas__bn_plan *p, int t, int b, int c0,
                         int c1, const float *y);
/* All the partials from an existing output, threads splitting the channels. */
void mpnas__bn_plan_fold_all(const mpnas__engine *eng, mpnas__bn_plan *p, const float *y);
/* Merge the chunks' partials in order: mean, m2 [c]. */
void mpnas__bn_plan_merge(const mpnas__bn_plan *p, double *mean, double *m2);

/* Whether a producer should run chunk-parallel (fused) given the `parts` threads it
 * would use when splitting its output rows freely: when the chunks spread evenly enough
 * over that many threads. */
int mpnas__bn_plan_fused_team(const mpnas__bn_plan *p, int parts);

#endif
