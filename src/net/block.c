/* block.c - conv unit and inverted bottleneck, forward and backward (see block.h). */
#include "net/block.h"

#include "common/common.h"

#define TAKE(ptr, count)                                   \
  do {                                                     \
    (ptr) = mpnas__arena_floats(ws, (size_t)(count));      \
    if ((ptr) == NULL) return MPNAS_E_NO_MEMORY;           \
  } while (0)

/* Scratch inside a function that must release its arena mark: jump to `done`. */
#define TAKE_TMP(ptr, count)                               \
  do {                                                     \
    (ptr) = mpnas__arena_floats(ws, (size_t)(count));      \
    if ((ptr) == NULL) {                                   \
      st = MPNAS_E_NO_MEMORY;                              \
      goto done;                                           \
    }                                                      \
  } while (0)

/* ---- Conv unit ------------------------------------------------------------------------ */

size_t mpnas__conv_weight_floats(const mpnas__conv_geom *g) {
  return (size_t)g->k * g->k * g->cin * g->cout;
}

/* The conv with its BN folded into the epilogue (bn NULL: none). */
static mpnas_status conv_any_fwd(const mpnas__engine *eng, mpnas__arena *ws,
                                 const mpnas__conv_geom *g, int n, int h, int w,
                                 const float *x, const float *wt, const mpnas__affine *bn,
                                 int act, float *y) {
  const float *scale = bn ? bn->scale : NULL, *shift = bn ? bn->shift : NULL;
  return mpnas__conv_fwd(eng, ws, n, h, w, g->cin, g->cout, g->k, g->stride, x, wt, scale,
                         shift, act, y);
}

/* The conv's output and its batch statistics (mean, m2 [cout], double), taken while the
 * conv produces its output. */
static mpnas_status conv_any_fwd_stats(const mpnas__engine *eng, mpnas__arena *ws,
                                       const mpnas__conv_geom *g, int n, int h, int w,
                                       const float *x, const float *wt, float *y, double *mean,
                                       double *m2) {
  return mpnas__conv_fwd_stats(eng, ws, n, h, w, g->cin, g->cout, g->k, g->stride, x, wt, y,
                               mean, m2);
}

/* Batch statistics of c channels: scratch for mean and m2, released by the caller. */
static double *take_stats(mpnas__arena *ws, int c) {
  return mpnas__arena_alloc(ws, sizeof(double) * 2 * (size_t)(c > 0 ? c : 1));
}

/* What a tape keeps of one BN of c channels: its batch statistics and its coefficients,
 * one block of 4c floats. */
typedef struct bn_saved {
  float *mean, *invstd, *k, *b;
} bn_saved;

static int take_bn_saved(mpnas__arena *ws, int c, bn_saved *s) {
  float *p = mpnas__arena_floats(ws, 4 * (size_t)c);
  if (p == NULL) return 0;
  *s = (bn_saved){p, p + c, p + 2 * (size_t)c, p + 3 * (size_t)c};
  return 1;
}

/* The training-mode BN of bn: without save (evaluation) running statistics untouched
 * and nothing kept, else the running statistics updated and the batch statistics kept. */
static mpnas__bn_train bn_train_of(const mpnas__bn *bn, const bn_saved *save) {
  if (save == NULL)
    return (mpnas__bn_train){bn->gamma, bn->beta, MPNAS__BN_EPS, MPNAS__BN_MOMENTUM, NULL, NULL,
                             NULL, NULL};
  return (mpnas__bn_train){bn->gamma, bn->beta, MPNAS__BN_EPS, MPNAS__BN_MOMENTUM, bn->mean,
                           bn->var, save->mean, save->invstd};
}

/* Training-mode BN of `pre` [m][c] from its statistics (mean = st, m2 = st + c), fused
 * with the activation and an optional residual. save: NULL (evaluation: running
 * statistics untouched, nothing kept), or where the tape keeps the statistics and
 * coefficients (running statistics updated). */
static mpnas_status bn_from_stats(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                                  const float *pre, const double *st, const mpnas__bn *bn,
                                  const bn_saved *save, int act, const float *residual,
                                  float *y) {
  mpnas__bn_train t = bn_train_of(bn, save);
  return mpnas__bn_act_apply_keep(eng, ws, m, c, pre, st, st + c, &t, act, residual, NULL, y,
                                  save ? save->k : NULL, save ? save->b : NULL);
}

/* bn_from_stats's BN and activation for a conv that applies them to its input rows
 * itself (*in, its coefficients in arena scratch); the same running statistics and
 * tape. */
static mpnas_status bn_in_from_stats(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                                     const double *st, const mpnas__bn *bn, const bn_saved *save,
                                     int act, mpnas__bn_act *in) {
  float *coef = mpnas__arena_floats(ws, 3 * (size_t)c);
  if (coef == NULL) return MPNAS_E_NO_MEMORY;
  *in = (mpnas__bn_act){coef, coef + c, coef + 2 * (size_t)c, act};
  mpnas__bn_train t = bn_train_of(bn, save);
  return mpnas__bn_coeffs(eng, ws, m, c, st, st + c, &t, coef, coef + c, coef + 2 * (size_t)c,
                          save ? save->k : NULL, save ? save->b : NULL);
}

mpnas_status mpnas__conv_unit_fwd_train(const mpnas__engine *eng, mpnas__arena *ws,
                                        const mpnas__conv_geom *g,
                                        const mpnas__conv_weights *p, int n, int h, int w,
                                        const float *x, mpnas__conv_tape *t) {
  int ho = mpnas__out_size(h, g->stride), wo = mpnas__out_size(w, g->stride);
  size_t m = (size_t)n * ho * wo, count = m * g->cout;
  t->n = n;
  t->h = h;
  t->w = w;
  t->x = x;
  bn_saved bs;
  TAKE(t->pre, count);
  TAKE(t->y, count);
  if (!take_bn_saved(ws, g->cout, &bs)) return MPNAS_E_NO_MEMORY;
  t->mean = bs.mean;
  t->invstd = bs.invstd;
  t->k = bs.k;
  t->b = bs.b;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas_status st = MPNAS_OK;
  double *stats = take_stats(ws, g->cout);
  if (stats == NULL) {
    st = MPNAS_E_NO_MEMORY;
    goto done;
  }
  st = conv_any_fwd_stats(eng, ws, g, n, h, w, x, p->w, t->pre, stats, stats + g->cout);
  /* BN and the activation in one pass; the backward works from the conv output. */
  if (st == MPNAS_OK)
    st = bn_from_stats(eng, ws, (int)m, g->cout, t->pre, stats, &p->bn, &bs, g->act, NULL,
                       t->y);
done:
  mpnas__arena_release(ws, mark);
  return st;
}

mpnas_status mpnas__conv_unit_fwd_eval(const mpnas__engine *eng, mpnas__arena *ws,
                                       const mpnas__conv_geom *g, const mpnas__conv_weights *p,
                                       int n, int h, int w, const float *x, float *y) {
  int m = n * mpnas__out_size(h, g->stride) * mpnas__out_size(w, g->stride);
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas_status st = MPNAS_OK;
  double *stats = take_stats(ws, g->cout);
  if (stats == NULL) {
    st = MPNAS_E_NO_MEMORY;
    goto done;
  }
  st = conv_any_fwd_stats(eng, ws, g, n, h, w, x, p->w, y, stats, stats + g->cout);
  if (st == MPNAS_OK)
    st = bn_from_stats(eng, ws, m, g->cout, y, stats, &p->bn, NULL, g->act, NULL, y);
done:
  mpnas__arena_release(ws, mark);
  return st;
}

mpnas_status mpnas__conv_unit_bwd(const mpnas__engine *eng, mpnas__arena *ws,
                                  const mpnas__conv_geom *g, const mpnas__conv_weights *p,
                                  const mpnas__conv_tape *t, const float *dy, float *dx,
                                  mpnas__conv_grads *grad) {
  int ho = mpnas__out_size(t->h, g->stride), wo = mpnas__out_size(t->w, g->stride);
  size_t m = (size_t)t->n * ho * wo, count = m * g->cout;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas_status st = MPNAS_OK;
  float *dpre;
  TAKE_TMP(dpre, count);
  const mpnas__bn_act act = {t->mean, t->k, t->b, g->act};
  st = mpnas__bn_bwd(eng, ws, (int)m, g->cout, t->pre, p->bn.gamma, t->mean, t->invstd, &act,
                     dy, dpre, grad->bn.gamma, grad->bn.beta);
  if (st != MPNAS_OK) goto done;
  if (g->k == 1 && g->stride == 1)
    st = mpnas__pw_bwd(eng, ws, t->n * t->h * t->w, g->cin, g->cout, t->x, p->w, dpre, dx,
                       grad->w);
  else
    st = mpnas__conv_bwd(eng, ws, t->n, t->h, t->w, g->cin, g->cout, g->k, g->stride, t->x,
                         p->w, dpre, dx, grad->w);
done:
  mpnas__arena_release(ws, mark);
  return st;
}

/* A pointwise conv with folded BN, its weights packed once (packed) or per call. */
static mpnas_status pw_infer(const mpnas__engine *eng, mpnas__arena *ws, int m, int cin,
                             int cout, const float *x, const float *w, const float *packed,
                             const mpnas__affine *bn, int act, const float *residual,
                             float *y) {
  if (packed == NULL)
    return mpnas__pw_fwd(eng, ws, m, cin, cout, x, w, bn->scale, bn->shift, act, residual, y);
  mpnas__pw_fwd_packed(eng, m, cin, cout, x, packed, bn->scale, bn->shift, act, residual, y);
  return MPNAS_OK;
}

mpnas_status mpnas__conv_unit_fwd_infer(const mpnas__engine *eng, mpnas__arena *ws,
                                        const mpnas__conv_geom *g, const float *w,
                                        const float *packed, const mpnas__affine *bn, int n,
                                        int h, int wd, const float *x, float *y) {
  if (packed != NULL && g->k == 1 && g->stride == 1)
    return pw_infer(eng, ws, n * h * wd, g->cin, g->cout, x, w, packed, bn, g->act, NULL, y);
  return conv_any_fwd(eng, ws, g, n, h, wd, x, w, bn, g->act, y);
}

/* ---- Inverted bottleneck ------------------------------------------------------------- */

void mpnas__ib_geom_init(mpnas__ib_geom *g, int cin, int cout, int expansion, int k,
                         int stride, int act, int use_se) {
  g->cin = cin;
  g->cout = cout;
  g->cmid = cin * expansion;
  g->expand = expansion != 1;
  g->k = k;
  g->stride = stride;
  g->act = act;
  int se = g->cmid / 4 > 8 ? g->cmid / 4 : 8;
  g->se = use_se ? (se + 7) / 8 * 8 : 0;
  g->residual = stride == 1 && cin == cout;
}

/* The inverted bottleneck's forward with batch statistics, shared by the training
 * forward (tape != NULL: the conv outputs and BN statistics kept) and the evaluation
 * forward (tape == NULL: y only). Each conv produces its output and its batch statistics
 * in one pass (ops.h). The next conv applies the expand's BN and activation (and,
 * without squeeze-excite, the depthwise's) to its input rows as it reads them (into a
 * per-thread buffer in cache), so those activated tensors are never written to memory
 * (the backward recomputes them from the tape); the project's BN and the residual make
 * one more pass, into y. The same arithmetic in training and evaluation, so
 * evaluation reproduces training's output bit for bit, except where evaluation takes
 * the expand's statistics from moments (below): there up to their rounding. */
static mpnas_status ib_forward(const mpnas__engine *eng, mpnas__arena *ws,
                               const mpnas__ib_geom *g, const mpnas__ib_weights *p, int n,
                               int h, int w, const float *x, mpnas__ib_tape *t, float *y) {
  mpnas_status st = MPNAS_OK;
  int ho = mpnas__out_size(h, g->stride), wo = mpnas__out_size(w, g->stride);
  int m_in = n * h * w, m_out = n * ho * wo, cm = g->cmid;
  size_t mid_in = (size_t)m_in * cm, mid_out = (size_t)m_out * cm;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  int cmax = cm > g->cout ? cm : g->cout;
  double *stats = take_stats(ws, cmax);
  if (stats == NULL) {
    st = MPNAS_E_NO_MEMORY;
    goto done;
  }
  /* Conv outputs on the tape, or in scratch. The depthwise applies the expand's BN and
   * activation to its input rows as it reads them (mpnas__dw_fwd_stats_bn_in), so the
   * expand's activated output is never written. */
  float *e_pre = NULL, *d_pre, *d_act = NULL;
  /* Evaluation takes a large expanding conv's statistics from its input's moments
   * (ops.h), makes its output a few rows at a time for the depthwise and never writes the
   * expanded tensor (mpnas__expand_dw_fwd_stats). Training writes it to the tape anyway,
   * and statistics taken from it in cache cost less than the moments (measured). */
  int moments = t == NULL && g->expand && mpnas__pw_moments_pay(m_in, g->cin, cm);
  if (g->expand) {
    if (t != NULL) e_pre = t->e_pre;
    else if (!moments) TAKE_TMP(e_pre, mid_in);
  }
  /* Without squeeze-excite the project conv applies the depthwise's BN and activation
   * to its input rows itself (mpnas__pw_fwd_stats_bn_in): d_act is not written then
   * (training needs no buffer for it; evaluation one, the depthwise output's). */
  int bn_in_project = !g->se;
  if (t == NULL || !bn_in_project) TAKE_TMP(d_act, mid_out);
  d_pre = t ? t->d_pre : d_act;
  bn_saved s1 = {0}, s2 = {0}, s3 = {0};
  if (t != NULL) {
    s1 = (bn_saved){t->e_mean, t->e_invstd, t->e_k, t->e_b};
    s2 = (bn_saved){t->d_mean, t->d_invstd, t->d_k, t->d_b};
    s3 = (bn_saved){t->p_mean, t->p_invstd, NULL, NULL};
  }

  mpnas__bn_act in;
  if (moments) {
    st = mpnas__pw_out_moments(eng, ws, m_in, g->cin, cm, x, p->exp_w, stats, stats + cm);
    if (st == MPNAS_OK)
      st = bn_in_from_stats(eng, ws, m_in, cm, stats, &p->bn1, NULL, g->act, &in);
    if (st == MPNAS_OK)
      st = mpnas__expand_dw_fwd_stats(eng, ws, n, h, w, g->cin, cm, g->k, g->stride, x,
                                      p->exp_w, &in, p->dw_w, d_pre, stats, stats + cm);
  } else if (g->expand) {
    st = mpnas__pw_fwd_stats(eng, ws, m_in, g->cin, cm, x, p->exp_w, e_pre, stats, stats + cm);
    if (st == MPNAS_OK)
      st = bn_in_from_stats(eng, ws, m_in, cm, stats, &p->bn1, t ? &s1 : NULL, g->act, &in);
    if (st == MPNAS_OK)
      st = mpnas__dw_fwd_stats_bn_in(eng, ws, n, h, w, cm, g->k, g->stride, e_pre, &in, p->dw_w,
                                     d_pre, stats, stats + cm);
  } else {
    st = mpnas__dw_fwd_stats(eng, ws, n, h, w, cm, g->k, g->stride, x, p->dw_w, d_pre, stats,
                             stats + cm);
  }
  if (st != MPNAS_OK) goto done;
  float *p_pre = t ? t->p_pre : y;
  if (bn_in_project) {
    st = bn_in_from_stats(eng, ws, m_out, cm, stats, &p->bn2, t ? &s2 : NULL, g->act, &in);
    if (st == MPNAS_OK)
      st = mpnas__pw_fwd_stats_bn_in(eng, ws, m_out, cm, g->cout, d_pre, &in, p->proj_w, p_pre,
                                     stats, stats + g->cout);
  } else { /* squeeze-excite between the depthwise's BN and the project conv */
    st = bn_from_stats(eng, ws, m_out, cm, d_pre, stats, &p->bn2, t ? &s2 : NULL, g->act, NULL,
                       d_act);
    if (st != MPNAS_OK) goto done;
    float *saved = t ? t->se_saved : NULL, *se_out = t ? t->se_out : NULL;
    if (saved == NULL) TAKE_TMP(saved, mpnas__se_saved_floats(n, cm, g->se));
    if (se_out == NULL) TAKE_TMP(se_out, mid_out);
    mpnas__se_weights se = {p->se_w1, p->se_b1, p->se_w2, p->se_b2};
    st = mpnas__se_fwd(eng, ws, n, ho * wo, cm, g->se, d_act, &se, saved, se_out);
    if (st == MPNAS_OK)
      st = mpnas__pw_fwd_stats(eng, ws, m_out, cm, g->cout, se_out, p->proj_w, p_pre, stats,
                               stats + g->cout);
  }
  /* Project: BN (no activation) and the residual in one pass over the block's output. */
  if (st == MPNAS_OK)
    st = bn_from_stats(eng, ws, m_out, g->cout, p_pre, stats, &p->bn3, t ? &s3 : NULL,
                       MPNAS__ACT_NONE, g->residual ? x : NULL, y);
done:
  mpnas__arena_release(ws, mark);
  return st;
}

mpnas_status mpnas__ib_fwd_train(const mpnas__engine *eng, mpnas__arena *ws,
                                 const mpnas__ib_geom *g, const mpnas__ib_weights *p, int n,
                                 int h, int w, const float *x, mpnas__ib_tape *t) {
  *t = (mpnas__ib_tape){0};
  t->n = n;
  t->h = h;
  t->w = w;
  t->ho = mpnas__out_size(h, g->stride);
  t->wo = mpnas__out_size(w, g->stride);
  t->x = x;
  int m_in = n * h * w, m_out = n * t->ho * t->wo;
  size_t mid_in = (size_t)m_in * g->cmid, mid_out = (size_t)m_out * g->cmid;
  size_t out_count = (size_t)m_out * g->cout;
  bn_saved s;
  if (g->expand) {
    TAKE(t->e_pre, mid_in);
    if (!take_bn_saved(ws, g->cmid, &s)) return MPNAS_E_NO_MEMORY;
    t->e_mean = s.mean, t->e_invstd = s.invstd, t->e_k = s.k, t->e_b = s.b;
  }
  TAKE(t->d_pre, mid_out);
  if (!take_bn_saved(ws, g->cmid, &s)) return MPNAS_E_NO_MEMORY;
  t->d_mean = s.mean, t->d_invstd = s.invstd, t->d_k = s.k, t->d_b = s.b;
  if (g->se) {
    TAKE(t->se_saved, mpnas__se_saved_floats(n, g->cmid, g->se));
    TAKE(t->se_out, mid_out);
  }
  TAKE(t->p_pre, out_count);
  TAKE(t->y, out_count);
  TAKE(t->p_mean, g->cout);
  TAKE(t->p_invstd, g->cout);
  return ib_forward(eng, ws, g, p, n, h, w, x, t, t->y);
}

mpnas_status mpnas__ib_fwd_eval(const mpnas__engine *eng, mpnas__arena *ws,
                                const mpnas__ib_geom *g, const mpnas__ib_weights *p, int n,
                                int h, int w, const float *x, float *y) {
  return ib_forward(eng, ws, g, p, n, h, w, x, NULL, y);
}

mpnas_status mpnas__ib_bwd(const mpnas__engine *eng, mpnas__arena *ws,
                           const mpnas__ib_geom *g, const mpnas__ib_weights *p,
                           const mpnas__ib_tape *t, const float *dy, float *dx,
                           mpnas__ib_grads *grad) {
  mpnas_status st = MPNAS_OK;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  int m_in = t->n * t->h * t->w, m_out = t->n * t->ho * t->wo, cm = g->cmid;
  size_t mid_in = (size_t)m_in * cm, mid_out = (size_t)m_out * cm;
  /* Scratch in two stages, each released when done: the depthwise stage's gradient dd
   * (overwritten in place from the project's input gradient down to the depthwise
   * output's), then the expand stage. The activated outputs of the expand and the
   * depthwise conv, inputs of the next conv's weight gradient, are not on the tape: that
   * gradient applies their BN and activation to the tape's conv output as it reads it
   * (the _bn_in ops), as the forward did. Only squeeze-excite's backward needs the
   * depthwise's whole, recomputed here. Each activation's backward is folded into its
   * BN's (from the conv output too). */
  const mpnas__bn_act d_act = {t->d_mean, t->d_k, t->d_b, g->act};
  const mpnas__bn_act e_act = {t->e_mean, t->e_k, t->e_b, g->act};
  float *dd, *dp_pre, *dproj_in, *d_coef = NULL;
  TAKE_TMP(dd, mid_out);
  /* Without squeeze-excite the depthwise BN's input gradient is left as g and
   * coefficients, made into dd image by image by the depthwise backward (which reads dd
   * anyway), not in a pass of its own. */
  if (!g->se) TAKE_TMP(d_coef, 3 * (size_t)cm);
  const mpnas__bn_dy d_dy = {t->d_pre, t->d_mean, d_coef};
  const mpnas__bn_dy *dd_bn = d_coef != NULL ? &d_dy : NULL; /* NULL: dd is dy already */
  mpnas__arena_mark stage = mpnas__arena_get_mark(ws);
  TAKE_TMP(dp_pre, (size_t)m_out * g->cout);

  /* Project: BN (linear) then the 1x1 conv. The residual's share of dy joins at the end. */
  st = mpnas__bn_bwd(eng, ws, m_out, g->cout, t->p_pre, p->bn3.gamma, t->p_mean, t->p_invstd,
                     NULL, dy, dp_pre, grad->bn3.gamma, grad->bn3.beta);
  if (st != MPNAS_OK) goto done;
  if (g->se) {
    float *act;
    TAKE_TMP(act, mid_out);
    TAKE_TMP(dproj_in, mid_out);
    mpnas__bn_act_reapply(eng, m_out, cm, t->d_pre, t->d_mean, t->d_k, t->d_b, g->act, NULL,
                          act);
    st = mpnas__pw_bwd(eng, ws, m_out, cm, g->cout, t->se_out, p->proj_w, dp_pre, dproj_in,
                       grad->proj_w);
    if (st != MPNAS_OK) goto done;
    mpnas__se_weights se = {p->se_w1, p->se_b1, p->se_w2, p->se_b2};
    mpnas__se_grads se_grad = {grad->se_w1, grad->se_b1, grad->se_w2, grad->se_b2};
    st = mpnas__se_bwd(eng, ws, t->n, t->ho * t->wo, cm, g->se, act, &se, t->se_saved,
                       dproj_in, dd, &se_grad);
    if (st == MPNAS_OK) /* Depthwise: the activation's and the BN's backward (one op) */
      st = mpnas__bn_bwd(eng, ws, m_out, cm, t->d_pre, p->bn2.gamma, t->d_mean, t->d_invstd,
                         &d_act, dd, dd, grad->bn2.gamma, grad->bn2.beta);
  } else { /* the same, fused with the project conv's input gradient, which it reduces in
            * blocks as the product makes them */
    st = mpnas__pw_dx_bn_bwd(eng, ws, m_out, cm, g->cout, p->proj_w, dp_pre, t->d_pre,
                             p->bn2.gamma, t->d_mean, t->d_invstd, &d_act, d_coef, dd,
                             grad->bn2.gamma, grad->bn2.beta, grad->proj_w);
  }
  if (st != MPNAS_OK) goto done;

  /* Depthwise: the convolution's backward. */
  mpnas__arena_release(ws, stage);
  if (g->expand) {
    float *de, *coef;
    TAKE_TMP(de, mid_in);
    TAKE_TMP(coef, 3 * (size_t)cm);
    /* With its input gradient, reduced by the expand's BN and activation backward as it
     * is made, image by image: de holds g = dy * act', coef the BN input gradient's
     * coefficients, */
    st = mpnas__dw_bwd_expand(eng, ws, t->n, t->h, t->w, cm, g->k, g->stride, t->e_pre, &e_act,
                              p->dw_w, dd, dd_bn, p->bn1.gamma, t->e_invstd, coef, de,
                              grad->dw_w, grad->bn1.gamma, grad->bn1.beta);
    if (st != MPNAS_OK) goto done;
    /* which the expand conv's backward applies to blocks of g as it reads them. The
     * residual's share of dy is added in the product's epilogue. */
    st = mpnas__pw_bwd_bn_dy(eng, ws, m_in, g->cin, cm, t->x, p->exp_w, de, t->e_pre,
                             t->e_mean, coef, g->residual ? dy : NULL, dx, grad->exp_w);
  } else {
    st = mpnas__dw_bwd_bn_dy(eng, ws, t->n, t->h, t->w, cm, g->k, g->stride, t->x, NULL,
                             p->dw_w, dd, dd_bn, dx, grad->dw_w);
    if (st == MPNAS_OK && g->residual && dx != NULL)
      mpnas__add_acc((size_t)m_in * g->cin, dy, dx);
  }
done:
  mpnas__arena_release(ws, mark);
  return st;
}

mpnas_status mpnas__ib_fwd_infer(const mpnas__engine *eng, mpnas__arena *ws,
                                 const mpnas__ib_geom *g, const mpnas__ib_infer *p, int n,
                                 int h, int w, const float *x, float *y) {
  mpnas_status st = MPNAS_OK;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  int ho = mpnas__out_size(h, g->stride), wo = mpnas__out_size(w, g->stride);
  int m_in = n * h * w, m_out = n * ho * wo;
  const float *dw_in = x;
  if (g->expand) {
    float *e;
    TAKE_TMP(e, (size_t)m_in * g->cmid);
    st = pw_infer(eng, ws, m_in, g->cin, g->cmid, x, p->exp_w, p->exp_packed, &p->bn1, g->act,
                  NULL, e);
    if (st != MPNAS_OK) goto done;
    dw_in = e;
  }
  float *d;
  TAKE_TMP(d, (size_t)m_out * g->cmid);
  st = mpnas__dw_fwd(eng, n, h, w, g->cmid, g->k, g->stride, dw_in, p->dw_w, p->bn2.scale,
                     p->bn2.shift, g->act, d);
  if (st != MPNAS_OK) goto done;
  const float *proj_in = d;
  if (g->se) {
    float *saved, *s;
    TAKE_TMP(saved, mpnas__se_saved_floats(n, g->cmid, g->se));
    TAKE_TMP(s, (size_t)m_out * g->cmid);
    mpnas__se_weights se = {p->se_w1, p->se_b1, p->se_w2, p->se_b2};
    st = mpnas__se_fwd(eng, ws, n, ho * wo, g->cmid, g->se, d, &se, saved, s);
    if (st != MPNAS_OK) goto done;
    proj_in = s;
  }
  st = pw_infer(eng, ws, m_out, g->cmid, g->cout, proj_in, p->proj_w, p->proj_packed, &p->bn3,
                MPNAS__ACT_NONE, g->residual ? x : NULL, y);
done:
  mpnas__arena_release(ws, mark);
  return st;
}

/* ---- Parameter layout ---------------------------------------------------------------- */

#define NONE_OFFSET ((size_t)-1)

static int bn_declare(mpnas__params *p, int c, int track_stats, mpnas__bn_offsets *o) {
  o->gamma = mpnas__params_add(p, (size_t)c, MPNAS__PARAM_GAMMA, 0);
  o->beta = mpnas__params_add(p, (size_t)c, MPNAS__PARAM_BETA, 0);
  o->mean = o->var = NONE_OFFSET;
  if (track_stats) {
    o->mean = mpnas__params_add_buffer(p, (size_t)c, MPNAS__PARAM_BETA);
    o->var = mpnas__params_add_buffer(p, (size_t)c, MPNAS__PARAM_ONE);
    if (o->mean == NONE_OFFSET || o->var == NONE_OFFSET) return 0;
  }
  return o->gamma != NONE_OFFSET && o->beta != NONE_OFFSET;
}

static void bn_bind(mpnas__params *p, const mpnas__bn_offsets *o, mpnas__bn *bn,
                    mpnas__bn_grad *grad) {
  bn->gamma = mpnas__pw(p, o->gamma);
  bn->beta = mpnas__pw(p, o->beta);
  bn->mean = o->mean == NONE_OFFSET ? NULL : mpnas__pb(p, o->mean);
  bn->var = o->var == NONE_OFFSET ? NULL : mpnas__pb(p, o->var);
  if (grad) {
    grad->gamma = mpnas__pg(p, o->gamma);
    grad->beta = mpnas__pg(p, o->beta);
  }
}

int mpnas__conv_declare(mpnas__params *p, const mpnas__conv_geom *g, int track_stats,
                        mpnas__conv_offsets *o) {
  o->w = mpnas__params_add(p, mpnas__conv_weight_floats(g), MPNAS__PARAM_CONV,
                           g->k * g->k * g->cin);
  return o->w != NONE_OFFSET && bn_declare(p, g->cout, track_stats, &o->bn);
}

void mpnas__conv_bind(mpnas__params *p, const mpnas__conv_offsets *o, mpnas__conv_weights *w,
                      mpnas__conv_grads *grad) {
  w->w = mpnas__pw(p, o->w);
  if (grad) grad->w = mpnas__pg(p, o->w);
  bn_bind(p, &o->bn, &w->bn, grad ? &grad->bn : NULL);
}

int mpnas__ib_declare(mpnas__params *p, const mpnas__ib_geom *g, int track_stats,
                      mpnas__ib_offsets *o) {
  int ok = 1;
  size_t cmid = (size_t)g->cmid;
  *o = (mpnas__ib_offsets){NONE_OFFSET, NONE_OFFSET, NONE_OFFSET, NONE_OFFSET,
                           NONE_OFFSET, NONE_OFFSET, NONE_OFFSET,
                           {NONE_OFFSET, NONE_OFFSET, NONE_OFFSET, NONE_OFFSET},
                           {NONE_OFFSET, NONE_OFFSET, NONE_OFFSET, NONE_OFFSET},
                           {NONE_OFFSET, NONE_OFFSET, NONE_OFFSET, NONE_OFFSET}};
  if (g->expand) {
    o->exp_w = mpnas__params_add(p, (size_t)g->cin * cmid, MPNAS__PARAM_CONV, g->cin);
    ok &= o->exp_w != NONE_OFFSET && bn_declare(p, g->cmid, track_stats, &o->bn1);
  }
  o->dw_w = mpnas__params_add(p, (size_t)g->k * g->k * cmid, MPNAS__PARAM_CONV, g->k * g->k);
  ok &= o->dw_w != NONE_OFFSET && bn_declare(p, g->cmid, track_stats, &o->bn2);
  if (g->se) {
    o->se_w1 = mpnas__params_add(p, cmid * (size_t)g->se, MPNAS__PARAM_CONV, g->cmid);
    o->se_b1 = mpnas__params_add(p, (size_t)g->se, MPNAS__PARAM_BETA, 0);
    o->se_w2 = mpnas__params_add(p, (size_t)g->se * cmid, MPNAS__PARAM_CONV, g->se);
    o->se_b2 = mpnas__params_add(p, cmid, MPNAS__PARAM_BETA, 0);
    ok &= o->se_w1 != NONE_OFFSET && o->se_b1 != NONE_OFFSET && o->se_w2 != NONE_OFFSET &&
          o->se_b2 != NONE_OFFSET;
  }
  o->proj_w = mpnas__params_add(p, cmid * (size_t)g->cout, MPNAS__PARAM_CONV, g->cmid);
  ok &= o->proj_w != NONE_OFFSET && bn_declare(p, g->cout, track_stats, &o->bn3);
  return ok;
}

static float *at(mpnas__params *p, size_t o) { return o == NONE_OFFSET ? NULL : mpnas__pw(p, o); }
static float *gat(mpnas__params *p, size_t o) { return o == NONE_OFFSET ? NULL : mpnas__pg(p, o); }

void mpnas__ib_bind(mpnas__params *p, const mpnas__ib_geom *g, const mpnas__ib_offsets *o,
                    mpnas__ib_weights *w, mpnas__ib_grads *grad) {
  *w = (mpnas__ib_weights){0};
  w->exp_w = at(p, o->exp_w);
  w->dw_w = at(p, o->dw_w);
  w->se_w1 = at(p, o->se_w1);
  w->se_b1 = at(p, o->se_b1);
  w->se_w2 = at(p, o->se_w2);
  w->se_b2 = at(p, o->se_b2);
  w->proj_w = at(p, o->proj_w);
  if (grad) {
    *grad = (mpnas__ib_grads){0};
    grad->exp_w = gat(p, o->exp_w);
    grad->dw_w = gat(p, o->dw_w);
    grad->se_w1 = gat(p, o->se_w1);
    grad->se_b1 = gat(p, o->se_b1);
    grad->se_w2 = gat(p, o->se_w2);
    grad->se_b2 = gat(p, o->se_b2);
    grad->proj_w = gat(p, o->proj_w);
  }
  if (g->expand) bn_bind(p, &o->bn1, &w->bn1, grad ? &grad->bn1 : NULL);
  bn_bind(p, &o->bn2, &w->bn2, grad ? &grad->bn2 : NULL);
  bn_bind(p, &o->bn3, &w->bn3, grad ? &grad->bn3 : NULL);
}
