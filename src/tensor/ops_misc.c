/* ops_misc.c - batch norm, activations, elementwise adds and the loss. Contracts are in
 * ops.h. (Pooling, channel scaling and squeeze-and-excite: ops_se.c; convolutions and
 * the classifier: ops_conv.c.)
 *
 * Batch norm and the activations - the hot memory-bound passes of training - run
 * through the engine's kernel table (kernels.h; src/kernels/misc/), with the thread
 * split described at "Threads" below. The rest are plain loops over rows with the
 * channel loop innermost and contiguous, so the compiler can vectorise them. */
#include <math.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "common/common.h"
#include "tensor/bn_plan.h"
#include "tensor/ops_loop.h"
#include "tensor/ops.h"

/* ---- Threads for the memory-bound passes -------------------------------------------
 * Batch norm and the activations run through the kernel table (eng->k: reference, AVX2
 * or NEON, src/kernels/misc/). They are memory-bound, so they take a thread team only
 * when every thread gets at least MISC_PAR_MIN floats to stream.
 *
 * Elementwise passes (BN apply, BN input gradient, activations) split rows or values
 * into contiguous parts: each element's arithmetic does not depend on the split.
 *
 * Reductions (BN statistics, the sums of BN backward) cut the rows into a FIXED list of
 * at most MISC_CHUNKS chunks that depends on m only (whole blocks of
 * MPNAS__BN_BLOCK_ROWS rows, split as evenly as possible). Threads take whole chunks;
 * each chunk's partial result goes to its own slot, and the slots are merged in chunk
 * order after the parallel loop (statistics: Chan's pairwise update in double; sums:
 * plain double additions). So the statistics, dgamma and dbeta are bit-identical for
 * any thread count, with or without OpenMP - not merely for a given one. Partials live
 * on the stack: MISC_CHUNKS x MISC_CB doubles per quantity (at most 12 KB). */
#define MISC_PAR_MIN 65536  /* floats per thread: 256 KB, several microseconds */
#define MISC_CHUNKS 8       /* fixed row chunks of a reduction: at most 8 useful threads */
#define MISC_CB 64          /* channels per reduction pass (the partials' width) */
#define MISC_APPLY_CB 256   /* channels per elementwise pass (the parameters' width) */

/* Parts to split `floats` of streaming work into: 1 when single-threaded or small,
 * never more than max_parts. */
static int misc_team(const mpnas__engine *eng, size_t floats, size_t max_parts) {
  size_t nt = eng->threads > 1 ? (size_t)eng->threads : 1;
  size_t by_work = floats / MISC_PAR_MIN;
  if (by_work < nt) nt = by_work;
  if (nt > max_parts) nt = max_parts;
  return nt < 1 ? 1 : (int)nt;
}

/* Part t of `parts` of [0, total), cut at multiples of `granule`: [*b, *e). */
static void misc_split(size_t total, int parts, int t, size_t granule, size_t *b, size_t *e) {
  size_t units = (total + granule - 1) / granule;
  size_t lo = units * (size_t)t / (size_t)parts * granule;
  size_t hi = units * (size_t)(t + 1) / (size_t)parts * granule;
  *b = lo < total ? lo : total;
  *e = hi < total ? hi : total;
}

/* The fixed chunking of m rows for reductions. */
static int misc_chunks(int m) {
  int blocks = (m + MPNAS__BN_BLOCK_ROWS - 1) / MPNAS__BN_BLOCK_ROWS;
  return blocks < MISC_CHUNKS ? (blocks < 1 ? 1 : blocks) : MISC_CHUNKS;
}

int mpnas__reduce_chunks(int m) { return misc_chunks(m); }

void mpnas__reduce_chunk_rows(int m, int t, int *r0, int *r1) {
  size_t b, e;
  misc_split((size_t)(m > 0 ? m : 0), misc_chunks(m), t, MPNAS__BN_BLOCK_ROWS, &b, &e);
  *r0 = (int)b, *r1 = (int)e;
}

/* ---- Batch normalisation ------------------------------------------------------------ */

/* mean[j], m2[j] of channels [c0, c0 + nb) over all m rows, through the kernel on each
 * fixed chunk and Chan's merge in chunk order. */
static void bn_stats_cols(const mpnas__engine *eng, int m, int c, int c0, int nb,
                          const float *x, double *mean, double *m2) {
  double pmean[MISC_CHUNKS][MISC_CB], pm2[MISC_CHUNKS][MISC_CB];
  int nchunks = misc_chunks(m);
  int team = misc_team(eng, (size_t)m * (size_t)nb, (size_t)nchunks);
  const mpnas__kernels *kt = eng->k;
  (void)team; /* unused without OpenMP */
  MPNAS__OPS_OMP_FOR(team, team > 1)
  for (int t = 0; t < nchunks; t++) {
    size_t r0, r1;
    misc_split((size_t)m, nchunks, t, MPNAS__BN_BLOCK_ROWS, &r0, &r1);
    kt->bn_stats((int)(r1 - r0), nb, (size_t)c, x + r0 * (size_t)c + c0, pmean[t], pm2[t]);
  }
  size_t r0, r1;
  misc_split((size_t)m, nchunks, 0, MPNAS__BN_BLOCK_ROWS, &r0, &r1);
  double n = (double)(r1 - r0);
  for (int j = 0; j < nb; j++) {
    mean[j] = pmean[0][j];
    m2[j] = pm2[0][j];
  }
  for (int t = 1; t < nchunks; t++) {
    misc_split((size_t)m, nchunks, t, MPNAS__BN_BLOCK_ROWS, &r0, &r1);
    double nk = (double)(r1 - r0), tot = n + nk;
    for (int j = 0; j < nb; j++) {
      double delta = pmean[t][j] - mean[j];
      mean[j] += delta * (nk / tot);
      m2[j] += pm2[t][j] + delta * delta * (n * nk / tot);
    }
    n = tot;
  }
}

/* norm = (x - mu) * k + b, y = act(norm) over channels [c0, c0 + nb), rows split. */
static void bn_apply_cols(const mpnas__engine *eng, int m, int c, int c0, int nb,
                          const float *x, const float *mu, const float *k, const float *b,
                          int act, float *norm, float *y) {
  int team = misc_team(eng, (size_t)m * (size_t)nb, (size_t)m);
  const mpnas__kernels *kt = eng->k;
  MPNAS__OPS_OMP_FOR(team, team > 1)
  for (int t = 0; t < team; t++) {
    size_t r0, r1;
    misc_split((size_t)m, team, t, 1, &r0, &r1);
    size_t off = r0 * (size_t)c + c0;
    if (r1 > r0)
      kt->bn_apply((int)(r1 - r0), nb, (size_t)c, x + off, mu, k, b, act,
                   norm != NULL ? norm + off : NULL, y + off);
  }
}

/* One channel's training-mode BN from its statistics over m rows: the float mean and
 * invstd backward uses, the apply coefficients (t = (x - mu) * k + b) and the running
 * statistics' update (when tracked). */
static void bn_channel(double rows, int ch, double mean, double m2, const mpnas__bn_train *bn,
                       float *mu_out, float *invstd_out, float *k_out, float *b_out) {
  double ss = m2 > 0.0 ? m2 : 0.0; /* rounding can leave -tiny for constants */
  double var = ss / rows;
  double invstd = 1.0 / sqrt(var + (double)bn->eps);
  float mu = (float)mean, kj;
  *mu_out = mu;
  *invstd_out = (float)invstd;
  kj = (float)((bn->gamma != NULL ? (double)bn->gamma[ch] : 1.0) * invstd);
  *k_out = kj;
  /* Centre on the float mean (what backward sees) and fold the rounding residual into
   * the shift, so the output mean stays 0 even when |mean| >> std. */
  *b_out = (float)((bn->beta != NULL ? (double)bn->beta[ch] : 0.0) - (mean - (double)mu) * kj);
  float momentum = bn->momentum;
  if (bn->running_mean != NULL)
    bn->running_mean[ch] = (1.0f - momentum) * bn->running_mean[ch] + momentum * (float)mean;
  if (bn->running_var != NULL) {
    /* Unbiased for the running estimate; a single row has no spread to report. */
    double unbiased = rows > 1.0 ? ss / (rows - 1.0) : 0.0;
    bn->running_var[ch] = (1.0f - momentum) * bn->running_var[ch] + momentum * (float)unbiased;
  }
}

void mpnas__bn_act_fwd_train(const mpnas__engine *eng, int m, int c, const float *x,
                             const mpnas__bn_train *bn, int act, float *norm, float *y) {
  float *save_mean = bn->save_mean, *save_invstd = bn->save_invstd;
  if (m <= 0) { /* no rows: no statistics; leave the running ones alone */
    for (int ch = 0; ch < c; ch++) {
      save_mean[ch] = 0.0f;
      save_invstd[ch] = 1.0f;
    }
    return;
  }
  /* Channels in slices of MISC_APPLY_CB: statistics of the slice (MISC_CB at a time),
   * then one apply pass over it. Slices are disjoint channels, so writing y or norm over
   * x in one slice cannot disturb another's statistics. */
  for (int a0 = 0; a0 < c; a0 += MISC_APPLY_CB) {
    int na = c - a0 < MISC_APPLY_CB ? c - a0 : MISC_APPLY_CB;
    float k[MISC_APPLY_CB], b[MISC_APPLY_CB];
    for (int c0 = a0; c0 < a0 + na; c0 += MISC_CB) {
      int nb = a0 + na - c0 < MISC_CB ? a0 + na - c0 : MISC_CB;
      double mean[MISC_CB], m2[MISC_CB];
      bn_stats_cols(eng, m, c, c0, nb, x, mean, m2);
      for (int j = 0; j < nb; j++) {
        int ch = c0 + j;
        bn_channel((double)m, ch, mean[j], m2[j], bn, &save_mean[ch], &save_invstd[ch],
                   &k[ch - a0], &b[ch - a0]);
      }
    }
    /* (x - mean) * k + shift rather than x * k + shift': no cancellation for large means. */
    bn_apply_cols(eng, m, c, a0, na, x, save_mean + a0, k, b, act, norm, y);
  }
}

void mpnas__bn_fwd_train(const mpnas__engine *eng, int m, int c, const float *x,
                         const mpnas__bn_train *bn, float *y) {
  mpnas__bn_act_fwd_train(eng, m, c, x, bn, MPNAS__ACT_NONE, NULL, y);
}

/* ---- Statistics by blocks, and BN from them (bn_plan.h) ------------------------------- */

mpnas_status mpnas__bn_plan_init(mpnas__bn_plan *p, mpnas__arena *ws, int units, int unit_px,
                                 int c) {
  *p = (mpnas__bn_plan){0};
  p->units = units;
  p->unit_px = unit_px;
  p->c = c;
  p->per_block = unit_px >= MPNAS__BN_BLOCK_ROWS ? 1 : MPNAS__BN_BLOCK_ROWS / unit_px;
  p->nblocks = (units + p->per_block - 1) / p->per_block;
  if (p->nblocks < 1) p->nblocks = 1;
  p->nchunks = p->nblocks < MPNAS__BN_MAX_CHUNKS ? p->nblocks : MPNAS__BN_MAX_CHUNKS;
  size_t n = (size_t)p->nchunks * (size_t)c;
  double *all = mpnas__arena_alloc(ws, sizeof(double) * 4 * (n ? n : 1));
  if (all == NULL) return MPNAS_E_NO_MEMORY;
  p->mean = all;
  p->m2 = all + n;
  p->bmean = all + 2 * n;
  p->bm2 = all + 3 * n;
  return MPNAS_OK;
}

void mpnas__bn_plan_chunk(const mpnas__bn_plan *p, int t, int *b0, int *b1) {
  *b0 = (int)((long long)p->nblocks * t / p->nchunks);
  *b1 = (int)((long long)p->nblocks * (t + 1) / p->nchunks);
}

void mpnas__bn_plan_block(const mpnas__bn_plan *p, int b, int *u0, int *u1) {
  long long lo = (long long)b * p->per_block, hi = lo + p->per_block;
  *u0 = (int)(lo < p->units ? lo : p->units);
  *u1 = (int)(hi < p->units ? hi : p->units);
}

void mpnas__bn_plan_fold(const mpnas__kernels *kt, mpnas__bn_plan *p, int t, int b, int c0,
                         int c1, const float *y) {
  int b0, b1, u0, u1, s0, s1;
  mpnas__bn_plan_chunk(p, t, &b0, &b1);
  mpnas__bn_plan_block(p, b0, &s0, &s1);
  mpnas__bn_plan_block(p, b, &u0, &u1);
  int rows = (u1 - u0) * p->unit_px, prev = (u0 - s0) * p->unit_px;
  if (rows <= 0 || c1 <= c0) return;
  size_t c = (size_t)p->c;
  double *mean = p->mean + (size_t)t * c, *m2 = p->m2 + (size_t)t * c;
  double *bmean = p->bmean + (size_t)t * c, *bm2 = p->bm2 + (size_t)t * c;
  kt->bn_stats(rows, c1 - c0, c, y + (size_t)u0 * p->unit_px * c + c0, bmean + c0, bm2 + c0);
  if (prev == 0) {
    memcpy(mean + c0, bmean + c0, sizeof(double) * (size_t)(c1 - c0));
    memcpy(m2 + c0, bm2 + c0, sizeof(double) * (size_t)(c1 - c0));
    return;
  }
  /* The kernels' own merge of one block into the rows before it (misc-x86.h). */
  const double nb = rows, tot = (double)prev + nb;
  const double wb = nb / tot, wab = (double)prev * nb / tot;
  for (int j = c0; j < c1; j++) {
    double delta = bmean[j] - mean[j];
    mean[j] = mean[j] + delta * wb;
    m2[j] = m2[j] + (bm2[j] + delta * delta * wab);
  }
}

void mpnas__bn_plan_fold_all(const mpnas__engine *eng, mpnas__bn_plan *p, const float *y) {
  size_t floats = (size_t)p->units * (size_t)p->unit_px * (size_t)p->c;
  int team = misc_team(eng, floats, ((size_t)p->c + MISC_CB - 1) / MISC_CB);
  const mpnas__kernels *kt = eng->k;
  MPNAS__OPS_OMP_FOR(team, team > 1)
  for (int part = 0; part < team; part++) {
    size_t c0, c1;
    misc_split((size_t)p->c, team, part, MISC_CB, &c0, &c1);
    if (c1 <= c0) continue;
    for (int t = 0; t < p->nchunks; t++) {
      int b0, b1;
      mpnas__bn_plan_chunk(p, t, &b0, &b1);
      for (int b = b0; b < b1; b++) mpnas__bn_plan_fold(kt, p, t, b, (int)c0, (int)c1, y);
    }
  }
}

void mpnas__bn_plan_merge(const mpnas__bn_plan *p, double *mean, double *m2) {
  int c = p->c;
  /* bn_stats_cols's merge of the chunks, in chunk order. */
  for (int t = 0; t < p->nchunks; t++) {
    int b0, b1, u0, u1, e0, e1;
    mpnas__bn_plan_chunk(p, t, &b0, &b1);
    mpnas__bn_plan_block(p, b0, &u0, &e0);
    mpnas__bn_plan_block(p, b1 - 1, &e1, &u1);
    (void)e0;
    (void)e1;
    double nk = (double)(u1 - u0) * p->unit_px;
    const double *pm = p->mean + (size_t)t * c, *pv = p->m2 + (size_t)t * c;
    if (t == 0) {
      memcpy(mean, pm, sizeof(double) * (size_t)c);
      memcpy(m2, pv, sizeof(double) * (size_t)c);
      continue;
    }
    double n = (double)u0 * p->unit_px, tot = n + nk;
    for (int j = 0; j < c; j++) {
      double delta = pm[j] - mean[j];
      mean[j] += delta * (nk / tot);
      m2[j] += pv[j] + delta * delta * (n * nk / tot);
    }
  }
}

int mpnas__bn_plan_fused_team(const mpnas__bn_plan *p, int parts) {
  if (parts <= 1) return 1;
  if (p->nchunks < parts) return 0;
  return p->nchunks % parts == 0 || p->nchunks >= 4 * parts ? parts : 0;
}

mpnas_status mpnas__bn_stats(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                             const float *x, double *mean, double *m2) {
  if (m <= 0 || c <= 0) return MPNAS_OK;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas__bn_plan plan;
  if (mpnas__bn_plan_init(&plan, ws, m, 1, c) != MPNAS_OK) {
    mpnas__arena_release(ws, mark);
    return MPNAS_E_NO_MEMORY;
  }
  int team = misc_team(eng, (size_t)m * (size_t)c, (size_t)plan.nchunks);
  if (team > 1 && mpnas__bn_plan_fused_team(&plan, team) == team) {
    /* Row chunks across threads. */
    const mpnas__kernels *kt = eng->k;
    MPNAS__OPS_OMP_FOR(team, team > 1)
    for (int t = 0; t < plan.nchunks; t++) {
      int b0, b1;
      mpnas__bn_plan_chunk(&plan, t, &b0, &b1);
      for (int b = b0; b < b1; b++) mpnas__bn_plan_fold(kt, &plan, t, b, 0, c, x);
    }
  } else {
    mpnas__bn_plan_fold_all(eng, &plan, x);
  }
  mpnas__bn_plan_merge(&plan, mean, m2);
  mpnas__arena_release(ws, mark);
  return MPNAS_OK;
}

/* Rows per step of the apply pass with a residual: the residual add follows the BN
 * while the rows are in L1/L2. */
#define MISC_RESIDUAL_ROWS 64

/* The mean and m2 of every channel over all workers' rows, from this worker's m rows:
 * one sum of the rows and of each channel's m * mean, then one of each worker's m2 about
 * the common mean (exact where a sum of squares would cancel). g: 2c + 1 doubles,
 * receives the means [c] and the m2s [c]. */
static mpnas_status bn_stats_over_workers(const mpnas__workers *wk, int m, int c,
                                          const double *mean, const double *m2, double *g,
                                          double *rows) {
  for (int ch = 0; ch < c; ch++) g[ch] = m > 0 ? (double)m * mean[ch] : 0.0;
  g[c] = m > 0 ? m : 0;
  int32_t st = wk->sum_f64(wk->user, g, (int64_t)c + 1);
  if (st != 0) return (mpnas_status)st;
  *rows = g[c];
  for (int ch = 0; ch < c; ch++) g[ch] = *rows > 0.0 ? g[ch] / *rows : 0.0;
  for (int ch = 0; ch < c; ch++) {
    double d = m > 0 ? mean[ch] - g[ch] : 0.0;
    g[c + ch] = m > 0 ? m2[ch] + (double)m * d * d : 0.0;
  }
  return (mpnas_status)wk->sum_f64(wk->user, g + c, c);
}

mpnas_status mpnas__bn_act_apply(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                                 const float *x, const double *mean, const double *m2,
                                 const mpnas__bn_train *bn, int act, const float *residual,
                                 float *norm, float *y) {
  return mpnas__bn_act_apply_keep(eng, ws, m, c, x, mean, m2, bn, act, residual, norm, y, NULL,
                                  NULL);
}

mpnas_status mpnas__bn_coeffs(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                              const double *mean, const double *m2, const mpnas__bn_train *bn,
                              float *mu, float *k, float *b, float *save_k, float *save_b) {
  float *save_mean = bn->save_mean, *save_invstd = bn->save_invstd;
  mpnas__bn_train untracked;
  if (eng->shard != 0) { /* another shard of this batch updates the running statistics */
    untracked = *bn;
    untracked.running_mean = untracked.running_var = NULL;
    bn = &untracked;
  }
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  double rows = m > 0 ? m : 0;
  if (eng->workers != NULL) { /* the statistics of the whole batch, over the workers */
    double *g = mpnas__arena_alloc(ws, sizeof(double) * (2 * (size_t)c + 1));
    if (g == NULL) return MPNAS_E_NO_MEMORY;
    mpnas_status st = bn_stats_over_workers(eng->workers, m, c, mean, m2, g, &rows);
    if (st != MPNAS_OK) {
      mpnas__arena_release(ws, mark);
      return st;
    }
    mean = g;
    m2 = g + c;
  }
  for (int ch = 0; ch < c; ch++) {
    float invstd = 1.0f;
    if (rows > 0.0) {
      bn_channel(rows, ch, mean[ch], m2[ch], bn, &mu[ch], &invstd, &k[ch], &b[ch]);
    } else { /* no rows anywhere: no statistics; leave the running ones alone */
      mu[ch] = 0.0f;
      k[ch] = 1.0f;
      b[ch] = 0.0f;
    }
    if (save_mean != NULL) save_mean[ch] = mu[ch];
    if (save_invstd != NULL) save_invstd[ch] = invstd;
    if (save_k != NULL) save_k[ch] = k[ch];
    if (save_b != NULL) save_b[ch] = b[ch];
  }
  mpnas__arena_release(ws, mark);
  return MPNAS_OK;
}

mpnas_status mpnas__bn_act_apply_keep(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                                      const float *x, const double *mean, const double *m2,
                                      const mpnas__bn_train *bn, int act, const float *residual,
                                      float *norm, float *y, float *save_k, float *save_b) {
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  float *mu = mpnas__arena_floats(ws, 3 * (size_t)c);
  if (mu == NULL) return MPNAS_E_NO_MEMORY;
  float *k = mu + c, *b = k + c;
  mpnas_status st = mpnas__bn_coeffs(eng, ws, m, c, mean, m2, bn, mu, k, b, save_k, save_b);
  if (st != MPNAS_OK || m <= 0) {
    mpnas__arena_release(ws, mark);
    return st;
  }
  int team = misc_team(eng, (size_t)m * (size_t)c, (size_t)m);
  const mpnas__kernels *kt = eng->k;
  MPNAS__OPS_OMP_FOR(team, team > 1)
  for (int t = 0; t < team; t++) {
    size_t r0, r1;
    misc_split((size_t)m, team, t, 1, &r0, &r1);
    if (residual == NULL) {
      size_t off = r0 * (size_t)c;
      if (r1 > r0)
        kt->bn_apply((int)(r1 - r0), c, (size_t)c, x + off, mu, k, b, act,
                     norm != NULL ? norm + off : NULL, y + off);
      continue;
    }
    for (size_t i0 = r0; i0 < r1; i0 += MISC_RESIDUAL_ROWS) {
      size_t i1 = i0 + MISC_RESIDUAL_ROWS < r1 ? i0 + MISC_RESIDUAL_ROWS : r1;
      size_t off = i0 * (size_t)c, count = (i1 - i0) * (size_t)c;
      kt->bn_apply((int)(i1 - i0), c, (size_t)c, x + off, mu, k, b, act,
                   norm != NULL ? norm + off : NULL, y + off);
      mpnas__add_fwd(count, y + off, residual + off, y + off);
    }
  }
  mpnas__arena_release(ws, mark);
  return MPNAS_OK;
}

void mpnas__bn_act_reapply(const mpnas__engine *eng, int m, int c, const float *x,
                           const float *mu, const float *k, const float *b, int act,
                           float *norm, float *y) {
  /* mpnas__bn_act_apply_keep's pass (the kernel is elementwise: any split, the same bits). */
  bn_apply_cols(eng, m, c, 0, c, x, mu, k, b, act, norm, y);
}

void mpnas__bn_fold(int c, const float *gamma, const float *beta, const float *running_mean,
                    const float *running_var, float eps, float *scale, float *shift) {
  for (int ch = 0; ch < c; ch++) {
    double s = (gamma != NULL ? (double)gamma[ch] : 1.0) / sqrt((double)running_var[ch] + eps);
    scale[ch] = (float)s;
    shift[ch] = (float)((beta != NULL ? (double)beta[ch] : 0.0) - (double)running_mean[ch] * s);
  }
}

void mpnas__bn_fwd_infer(int m, int c, const float *x, const float *gamma, const float *beta,
                         const float *running_mean, const float *running_var, float eps,
                         float *y) {
  /* Exactly the folded form the fused kernels use, so both paths agree. */
  for (int c0 = 0; c0 < c; c0 += MPNAS__OPS_BLOCK) {
    int nb = mpnas__ops_block_len(c, c0);
    float k[MPNAS__OPS_BLOCK], b[MPNAS__OPS_BLOCK];
    mpnas__bn_fold(nb, gamma != NULL ? gamma + c0 : NULL, beta != NULL ? beta + c0 : NULL,
                   running_mean + c0, running_var + c0, eps, k, b);
    for (size_t i = 0; i < (size_t)m; i++) {
      const float *row = x + i * (size_t)c + c0;
      float *out = y + i * (size_t)c + c0;
      for (int j = 0; j < nb; j++) out[j] = row[j] * k[j] + b[j];
    }
  }
}

/* s0, s1, s2 of channels [c0, c0 + nb) (bn_bwd_reduce's sums) over all m rows: the
 * kernel on each fixed chunk, added in chunk order. With act, of g = dy * act'(t),
 * stored to g (bn_bwd_reduce_act). */
static void bn_reduce_cols(const mpnas__engine *eng, int m, int c, int c0, int nb,
                           const float *x, const float *dy, const float *mu,
                           const mpnas__bn_act *act, float *g, double *s0, double *s1,
                           double *s2) {
  double p[3][MISC_CHUNKS][MISC_CB];
  int nchunks = misc_chunks(m);
  int team = misc_team(eng, 2 * (size_t)m * (size_t)nb, (size_t)nchunks);
  const mpnas__kernels *kt = eng->k;
  (void)team;
  MPNAS__OPS_OMP_FOR(team, team > 1)
  for (int t = 0; t < nchunks; t++) {
    size_t r0, r1;
    misc_split((size_t)m, nchunks, t, MPNAS__BN_BLOCK_ROWS, &r0, &r1);
    size_t off = r0 * (size_t)c + c0;
    for (int j = 0; j < nb; j++) p[0][t][j] = p[1][t][j] = p[2][t][j] = 0.0;
    if (act != NULL)
      kt->bn_bwd_reduce_act((int)(r1 - r0), nb, (size_t)c, x + off, dy + off, mu, act->k + c0,
                            act->b + c0, act->act, g + off, p[0][t], p[1][t], p[2][t]);
    else
      kt->bn_bwd_reduce((int)(r1 - r0), nb, (size_t)c, x + off, dy + off, mu, p[0][t],
                        p[1][t], p[2][t]);
  }
  for (int j = 0; j < nb; j++) {
    s0[j] = p[0][0][j];
    s1[j] = p[1][0][j];
    s2[j] = p[2][0][j];
  }
  for (int t = 1; t < nchunks; t++)
    for (int j = 0; j < nb; j++) {
      s0[j] += p[0][t][j];
      s1[j] += p[1][t][j];
      s2[j] += p[2][t][j];
    }
}

/* One channel's backward coefficients (dx = a*dy + b*(x - save_mean) + d) from the
 * whole batch's sums s0, s1, s2 over `rows` rows, and the parameter gradients from this
 * worker's ls1, ls2 (the same sums when the rows are all here): the gradient sum over
 * the workers adds those up. */
static void bn_bwd_channel(double rows, double invstd, double gamma, double s0, double s1,
                           double s2, double ls1, double ls2, float *dgamma, float *dbeta,
                           float *a, float *b, float *d) {
  double r = s0 / rows;
  double s2c = s2 - r * s1;
  if (dbeta != NULL) *dbeta += (float)ls1;
  if (dgamma != NULL) *dgamma += (float)((ls2 - r * ls1) * invstd);
  double gi = gamma * invstd;
  double bj = -gi * invstd * invstd * s2c / rows;
  *a = (float)gi;
  *b = (float)bj;
  *d = (float)(-gi * s1 / rows - bj * r);
}

/* dx of channels [a0, a0 + na) from their coefficients, rows split. */
static void bn_bwd_apply(const mpnas__engine *eng, int m, int c, int a0, int na, const float *x,
                         const float *dy, const float *save_mean, const float *a,
                         const float *b, const float *d, float *dx) {
  int team = misc_team(eng, (size_t)m * (size_t)na, (size_t)m);
  const mpnas__kernels *kt = eng->k;
  MPNAS__OPS_OMP_FOR(team, team > 1)
  for (int t = 0; t < team; t++) {
    size_t r0, r1;
    misc_split((size_t)m, team, t, 1, &r0, &r1);
    size_t off = r0 * (size_t)c + a0;
    if (r1 > r0)
      kt->bn_bwd_dx((int)(r1 - r0), na, (size_t)c, x + off, dy + off, save_mean + a0, a, b, d,
                    dx + off);
  }
}

/* dx and the parameter gradients from every channel's sums, s = [s0 | s1 | s2 | rows |
 * ls1 | ls2] (5c + 1 doubles, s0..s2 this worker's on entry): this worker's s1, s2 kept
 * for dgamma / dbeta, one sum over the workers (if any), then per slice of channels the
 * coefficients and dx from dy (g after an activation) - or, with coef, the coefficients
 * stored there (a | b | d, 3c floats) and dx left alone. Without workers the bits of
 * mpnas__bn_bwd's own slice-by-slice loop. */
static mpnas_status bn_bwd_finish(const mpnas__engine *eng, int m, int c, const float *x,
                                  const float *gamma, const float *save_mean,
                                  const float *save_invstd, const float *dy, double *s,
                                  float *coef, float *dx, float *dgamma, float *dbeta) {
  double *s0 = s, *s1 = s + c, *s2 = s + 2 * (size_t)c, *ls1 = s + 3 * (size_t)c + 1,
         *ls2 = ls1 + c;
  memcpy(ls1, s1, sizeof(double) * (size_t)c);
  memcpy(ls2, s2, sizeof(double) * (size_t)c);
  s[3 * (size_t)c] = m > 0 ? m : 0;
  mpnas_status st = MPNAS_OK;
  if (eng->workers != NULL)
    st = (mpnas_status)eng->workers->sum_f64(eng->workers->user, s, 3 * (int64_t)c + 1);
  double rows = s[3 * (size_t)c];
  for (int a0 = 0; a0 < c && st == MPNAS_OK && rows > 0.0; a0 += MISC_APPLY_CB) {
    int na = c - a0 < MISC_APPLY_CB ? c - a0 : MISC_APPLY_CB;
    float a[MISC_APPLY_CB], b[MISC_APPLY_CB], d[MISC_APPLY_CB];
    for (int ch = a0; ch < a0 + na; ch++)
      bn_bwd_channel(rows, save_invstd[ch], gamma != NULL ? (double)gamma[ch] : 1.0, s0[ch],
                     s1[ch], s2[ch], ls1[ch], ls2[ch], dgamma != NULL ? &dgamma[ch] : NULL,
                     dbeta != NULL ? &dbeta[ch] : NULL, &a[ch - a0], &b[ch - a0], &d[ch - a0]);
    if (coef != NULL) {
      memcpy(coef + a0, a, sizeof(float) * (size_t)na);
      memcpy(coef + c + a0, b, sizeof(float) * (size_t)na);
      memcpy(coef + 2 * (size_t)c + a0, d, sizeof(float) * (size_t)na);
    } else if (dx != NULL && m > 0) {
      bn_bwd_apply(eng, m, c, a0, na, x, dy, save_mean, a, b, d, dx);
    }
  }
  return st;
}

void mpnas__bn_bwd_apply_coef(const mpnas__engine *eng, int m, int c, const float *x,
                              const float *g, const float *save_mean, const float *coef,
                              float *dx) {
  if (m > 0 && c > 0)
    bn_bwd_apply(eng, m, c, 0, c, x, g, save_mean, coef, coef + c, coef + 2 * (size_t)c, dx);
}

/* The backward over the workers: every channel's sums first, then bn_bwd_finish. */
static mpnas_status bn_bwd_over_workers(const mpnas__engine *eng, mpnas__arena *ws, int m,
                                        int c, const float *x, const float *gamma,
                                        const float *save_mean, const float *save_invstd,
                                        const mpnas__bn_act *act, const float *dy,
                                        float *dx, float *dgamma, float *dbeta) {
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  double *s = mpnas__arena_alloc(ws, sizeof(double) * (5 * (size_t)c + 1));
  if (s == NULL) return MPNAS_E_NO_MEMORY;
  double *s0 = s, *s1 = s + c, *s2 = s + 2 * (size_t)c;
  for (int c0 = 0; c0 < c; c0 += MISC_CB) {
    int nb = c - c0 < MISC_CB ? c - c0 : MISC_CB;
    if (m > 0) {
      bn_reduce_cols(eng, m, c, c0, nb, x, dy, save_mean + c0, act, dx, s0 + c0, s1 + c0,
                     s2 + c0);
    } else {
      for (int j = c0; j < c0 + nb; j++) s0[j] = s1[j] = s2[j] = 0.0;
    }
  }
  if (act != NULL) dy = dx; /* the reduction stored dy * act' there */
  mpnas_status st =
      bn_bwd_finish(eng, m, c, x, gamma, save_mean, save_invstd, dy, s, NULL, dx, dgamma, dbeta);
  mpnas__arena_release(ws, mark);
  return st;
}

/* Rows a producer makes at a time in mpnas__bn_bwd_produced: whole blocks of the
 * reduction, about 256 KB of the gradient (in L2 when the kernel reduces them). */
#define PRODUCED_FLOATS 65536

mpnas_status mpnas__bn_bwd_produced(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                                    const float *x, const float *gamma,
                                    const float *save_mean, const float *save_invstd,
                                    const mpnas__bn_act *act, mpnas__rows_producer produce,
                                    const void *arg, int threads, float *coef, float *dx,
                                    float *dgamma, float *dbeta) {
  if (coef != NULL) /* what no rows anywhere leave: a consumer of none reads nothing */
    memset(coef, 0, sizeof(float) * 3 * (size_t)(c > 0 ? c : 0));
  if (m <= 0 && eng->workers == NULL) return MPNAS_OK;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  int nchunks = misc_chunks(m);
  double *s = mpnas__arena_alloc(ws, sizeof(double) * (5 * (size_t)c + 1));
  double *p = mpnas__arena_alloc(ws, sizeof(double) * 3 * (size_t)nchunks * (size_t)c);
  if (s == NULL || p == NULL) {
    mpnas__arena_release(ws, mark);
    return MPNAS_E_NO_MEMORY;
  }
  /* Chunk t's sums at p + 3tc: bn_reduce_cols' chunks, each reduced in the same blocks
   * (the kernel adds block by block), so the same bits. */
  memset(p, 0, sizeof(double) * 3 * (size_t)nchunks * (size_t)c);
  size_t step = (size_t)(PRODUCED_FLOATS / (c > 0 ? c : 1) / MPNAS__BN_BLOCK_ROWS);
  step = (step > 0 ? step : 1) * MPNAS__BN_BLOCK_ROWS;
  int team = threads < nchunks ? threads : nchunks;
  team = team > 1 ? team : 1;
  const mpnas__kernels *kt = eng->k;
  (void)team;
  MPNAS__OPS_OMP_FOR(team, team > 1)
  for (int t = 0; t < nchunks; t++) {
    size_t r0, r1;
    misc_split((size_t)(m > 0 ? m : 0), nchunks, t, MPNAS__BN_BLOCK_ROWS, &r0, &r1);
    double *pt = p + 3 * (size_t)t * c;
    int slot = 0;
#if defined(_OPENMP)
    slot = omp_get_thread_num(); /* < team <= threads */
#endif
    for (size_t b0 = r0; b0 < r1; b0 += step) {
      size_t b1 = r1 - b0 < step ? r1 : b0 + step, off = b0 * (size_t)c;
      produce(arg, slot, (int)b0, (int)b1);
      kt->bn_bwd_reduce_act((int)(b1 - b0), c, (size_t)c, x + off, dx + off, save_mean, act->k,
                            act->b, act->act, dx + off, pt, pt + c, pt + 2 * (size_t)c);
    }
  }
  for (int q = 0; q < 3; q++) {
    double *sq = s + (size_t)q * c;
    memcpy(sq, p + (size_t)q * c, sizeof(double) * (size_t)c);
    for (int t = 1; t < nchunks; t++)
      for (int j = 0; j < c; j++) sq[j] += p[(3 * (size_t)t + (size_t)q) * c + (size_t)j];
  }
  mpnas_status st =
      bn_bwd_finish(eng, m, c, x, gamma, save_mean, save_invstd, dx, s, coef, dx, dgamma, dbeta);
  mpnas__arena_release(ws, mark);
  return st;
}

mpnas_status mpnas__bn_bwd(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                           const float *x, const float *gamma, const float *save_mean,
                           const float *save_invstd, const mpnas__bn_act *act,
                           const float *dy, float *dx, float *dgamma, float *dbeta) {
  if (eng->workers != NULL)
    return bn_bwd_over_workers(eng, ws, m, c, x, gamma, save_mean, save_invstd, act, dy, dx,
                               dgamma, dbeta);
  if (m <= 0) return MPNAS_OK;
  /* With xhat = (x - mean) * invstd, S1 = sum dy, S2 = sum dy * (x - mean):
   *   dbeta = S1, dgamma = invstd * S2,
   *   dx = gamma*invstd * (dy - S1/m - xhat * invstd * S2/m)
   *      = a*dy + b*(x - mean) + d with per-channel a, b, d.
   * save_mean is the batch mean rounded to float; the same pass sums x - save_mean to
   * recover the rounding residual r, and x - mean = (x - save_mean) - r. Slices of
   * MISC_APPLY_CB channels: all their sums before any of their dx, so dx may be dy. */
  for (int a0 = 0; a0 < c; a0 += MISC_APPLY_CB) {
    int na = c - a0 < MISC_APPLY_CB ? c - a0 : MISC_APPLY_CB;
    float a[MISC_APPLY_CB], b[MISC_APPLY_CB], d[MISC_APPLY_CB];
    for (int c0 = a0; c0 < a0 + na; c0 += MISC_CB) {
      int nb = a0 + na - c0 < MISC_CB ? a0 + na - c0 : MISC_CB;
      double s0[MISC_CB], s1[MISC_CB], s2[MISC_CB];
      bn_reduce_cols(eng, m, c, c0, nb, x, dy, save_mean + c0, act, dx, s0, s1, s2);
      for (int j = 0; j < nb; j++) {
        int ch = c0 + j;
        bn_bwd_channel((double)m, save_invstd[ch], gamma != NULL ? (double)gamma[ch] : 1.0,
                       s0[j], s1[j], s2[j], s1[j], s2[j], dgamma != NULL ? &dgamma[ch] : NULL,
                       dbeta != NULL ? &dbeta[ch] : NULL, &a[ch - a0], &b[ch - a0],
                       &d[ch - a0]);
      }
    }
    if (dx != NULL)
      bn_bwd_apply(eng, m, c, a0, na, x, act != NULL ? dx : dy, save_mean, a, b, d, dx);
  }
  return MPNAS_OK;
}

/* ---- Activations ---------------------------------------------------------------------
 * The kernels' act_fwd / act_bwd over contiguous parts of 64-float granules. */

#define MISC_ACT_GRANULE 64

void mpnas__act_fwd(const mpnas__engine *eng, int act, size_t count, const float *x, float *y) {
  int team = misc_team(eng, count, count / MISC_ACT_GRANULE);
  const mpnas__kernels *kt = eng->k;
  MPNAS__OPS_OMP_FOR(team, team > 1)
  for (int t = 0; t < team; t++) {
    size_t i0, i1;
    misc_split(count, team, t, MISC_ACT_GRANULE, &i0, &i1);
    if (i1 > i0) kt->act_fwd(act, i1 - i0, x + i0, y + i0);
  }
}

void mpnas__act_bwd(const mpnas__engine *eng, int act, size_t count, const float *x,
                    const float *dy, float *dx) {
  int team = misc_team(eng, 2 * count, count / MISC_ACT_GRANULE);
  const mpnas__kernels *kt = eng->k;
  MPNAS__OPS_OMP_FOR(team, team > 1)
  for (int t = 0; t < team; t++) {
    size_t i0, i1;
    misc_split(count, team, t, MISC_ACT_GRANULE, &i0, &i1);
    if (i1 > i0) kt->act_bwd(act, i1 - i0, x + i0, dy + i0, dx + i0);
  }
}

/* ---- Elementwise ---------------------------------------------------------------------- */

void mpnas__add_fwd(size_t count, const float *a, const float *b, float *y) {
  for (size_t i = 0; i < count; i++) y[i] = a[i] + b[i];
}

void mpnas__add_acc(size_t count, const float *src, float *dst) {
  for (size_t i = 0; i < count; i++) dst[i] += src[i];
}

/* ---- Loss ------------------------------------------------------------------------------- */

float mpnas__softmax_xent(int m, int classes, const float *logits, const int32_t *labels,
                          float smoothing, float *dlogits, int *correct) {
  if (correct != NULL) *correct = 0;
  if (m <= 0 || classes <= 0) return 0.0f;
  /* Target t = (1-eps) one-hot + eps/K. With z = logits - max (so exp never overflows)
   * and S = sum exp(z): loss = log S - (1-eps) z[label] - (eps/K) sum z, and the
   * gradient of the mean is (softmax - t) / m. */
  double off = (double)smoothing / classes, on = 1.0 - (double)smoothing;
  float inv_m = 1.0f / (float)m;
  float off_m = (float)(off / m), on_m = (float)(on / m);
  double total = 0.0;
  int ncorrect = 0;
  for (int i = 0; i < m; i++) {
    const float *z = logits + (size_t)i * classes;
    float *dz = dlogits != NULL ? dlogits + (size_t)i * classes : NULL;
    int label = labels[i];
    float mx = z[0];
    int arg = 0;
    for (int k = 1; k < classes; k++)
      if (z[k] > mx) {
        mx = z[k];
        arg = k;
      }
    if (arg == label) ncorrect++;
    double s = 0.0, sz = 0.0;
    for (int k = 0; k < classes; k++) {
      float zk = z[k] - mx;
      float e = expf(zk);
      s += e;
      sz += zk;
      if (dz != NULL) dz[k] = e;
    }
    total += log(s) - on * (double)(z[label] - mx) - off * sz;
    if (dz != NULL) {
      float p_scale = (float)(1.0 / s) * inv_m;
      for (int k = 0; k < classes; k++) dz[k] = dz[k] * p_scale - off_m;
      dz[label] -= on_m;
    }
  }
  if (correct != NULL) *correct = ncorrect;
  return (float)(total / m);
}
