/* supernet.c - weights with in-layer sharing, data batches, and a path's forward and
 * backward pass (see supernet.h). */
#include "search/supernet.h"

#include <math.h>
#include <string.h>

#include "train/optim.h"

/* Random stream ids (one per consumer, rng.h). */
#define STREAM_INIT 1u
#define STREAM_PATHS 2u
#define STREAM_SPLIT 100u
#define STREAM_DATA 1000u
#define STREAM_CONTROLLERS 3000u

int32_t mpnas__supernet_controller_of(const mpnas_supernet *sn, int32_t domain) {
  return sn->cfg.method == MPNAS_METHOD_MULTI_HEAD ? 0 : domain;
}

/* ---- Preparation ------------------------------------------------------------------- */

static size_t image_floats(const mpnas_supernet *sn) {
  return (size_t)sn->space.in_h * sn->space.in_w * sn->space.in_c;
}

static float pixel(const mpnas__dataset *d, size_t at) {
  return d->dtype == MPNAS_DTYPE_U8 ? (float)((const uint8_t *)d->images)[at]
                                    : ((const float *)d->images)[at];
}

static mpnas_status prepare_domain(mpnas_supernet *sn, int32_t di) {
  mpnas__domain *d = &sn->domains[di];
  int64_t n = d->train.count;
  int split = d->valid.count == 0;
  int64_t nvalid = split ? (int64_t)floor((double)n * sn->cfg.valid_fraction) : d->valid.count;
  if (split && nvalid < 1) nvalid = 1;
  int64_t ntrain = split ? n - nvalid : n;
  if (ntrain < 1)
    return mpnas__fail(sn->ctx, MPNAS_E_STATE,
                       "domain \"%s\" has %lld training images: too few to hold out a "
                       "validation split (give one with MPNAS_SPLIT_VALID)",
                       d->name, (long long)n);
  d->train_idx = mpnas__malloc(sn->ctx, sizeof(int64_t) * (size_t)ntrain);
  d->valid_idx = mpnas__malloc(sn->ctx, sizeof(int64_t) * (size_t)nvalid);
  d->sampled = mpnas__calloc(sn->ctx, (size_t)sn->nlayers + 1, sizeof(int32_t));
  if (!d->train_idx || !d->valid_idx || !d->sampled)
    return mpnas__fail(sn->ctx, MPNAS_E_NO_MEMORY, "allocating domain \"%s\"", d->name);
  if (split) {
    /* A seeded shuffle of the training images; the first nvalid are held out. */
    int64_t *perm = mpnas__malloc(sn->ctx, sizeof(int64_t) * (size_t)n);
    if (!perm) return mpnas__fail(sn->ctx, MPNAS_E_NO_MEMORY, "allocating a split");
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    mpnas__rng rng;
    mpnas__rng_seed(&rng, sn->ctx->seed, STREAM_SPLIT + (uint64_t)di);
    for (int64_t i = n - 1; i > 0; i--) {
      int64_t j = (int64_t)(((uint64_t)mpnas__rng_u32(&rng) << 32 | mpnas__rng_u32(&rng)) %
                            (uint64_t)(i + 1));
      int64_t t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    memcpy(d->valid_idx, perm, sizeof(int64_t) * (size_t)nvalid);
    memcpy(d->train_idx, perm + nvalid, sizeof(int64_t) * (size_t)ntrain);
    mpnas__free(sn->ctx, perm);
    d->valid_src = &d->train;
  } else {
    for (int64_t i = 0; i < ntrain; i++) d->train_idx[i] = i;
    for (int64_t i = 0; i < nvalid; i++) d->valid_idx[i] = i;
    d->valid_src = &d->valid;
  }
  d->ntrain = ntrain;
  d->nvalid = nvalid;

  /* Per-channel mean and standard deviation over the training split. */
  int32_t c = sn->space.in_c;
  size_t px = (size_t)sn->space.in_h * sn->space.in_w;
  double sum[64] = {0}, sq[64] = {0};
  for (int64_t i = 0; i < ntrain; i++) {
    size_t base = (size_t)d->train_idx[i] * px * (size_t)c;
    for (size_t p = 0; p < px; p++)
      for (int32_t ch = 0; ch < c; ch++) {
        double v = pixel(&d->train, base + p * (size_t)c + (size_t)ch);
        sum[ch] += v;
        sq[ch] += v * v;
      }
  }
  double count = (double)ntrain * (double)px;
  for (int32_t ch = 0; ch < c; ch++) {
    double mean = sum[ch] / count, var = sq[ch] / count - mean * mean;
    d->mean[ch] = (float)mean;
    d->invstd[ch] = (float)(1.0 / sqrt(var > 1e-12 ? var : 1e-12));
    if (var < 1e-12) d->invstd[ch] = 1.0f; /* a constant channel: only centre it */
  }
  mpnas__rng_seed(&d->rng, sn->ctx->seed, STREAM_DATA + (uint64_t)di);
  d->weight = 1.0;
  d->loss_ema = NAN;
  return MPNAS_OK;
}

static mpnas__conv_geom stem_geom(const mpnas_supernet *sn) {
  mpnas__conv_geom g = {sn->space.in_c, sn->space.stem_c, sn->space.stem_k, sn->space.stem_s,
                        sn->space.stem_act};
  return g;
}

static mpnas__conv_geom head_geom(const mpnas_supernet *sn) {
  int32_t h, w, c;
  mpnas__space_final(&sn->space, &h, &w, &c);
  mpnas__conv_geom g = {c, sn->space.head_c, 1, 1, sn->space.head_act};
  return g;
}

mpnas_status mpnas__supernet_prepare(mpnas_supernet *sn) {
  if (sn->prepared) return MPNAS_OK;
  mpnas_context *ctx = sn->ctx;
  if (sn->ndomains < 1)
    return mpnas__fail(ctx, MPNAS_E_STATE, "the supernet has no domains: add one first");
  for (int32_t d = 0; d < sn->ndomains; d++)
    if (sn->domains[d].train.count == 0)
      return mpnas__fail(ctx, MPNAS_E_STATE, "domain \"%s\" has no training data",
                         sn->domains[d].name);
  if (sn->cfg.method == MPNAS_METHOD_SINGLE_PATH &&
      !mpnas__space_path_valid(&sn->space, sn->fixed_path))
    return mpnas__fail(ctx, MPNAS_E_STATE, "the fixed path is not valid in this space");
  mpnas_status st;
  for (int32_t d = 0; d < sn->ndomains; d++)
    if ((st = prepare_domain(sn, d)) != MPNAS_OK) return st;

  /* Weights: one set, or one per domain for domain-independent search. */
  sn->nsets = sn->cfg.method == MPNAS_METHOD_INDEPENDENT ? sn->ndomains : 1;
  sn->sets = mpnas__calloc(ctx, (size_t)sn->nsets, sizeof *sn->sets);
  if (!sn->sets) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating weight sets");
  mpnas__params_init(&sn->params, ctx);
  mpnas__conv_geom sg = stem_geom(sn), hg = head_geom(sn);
  int ok = 1;
  for (int32_t s = 0; s < sn->nsets && ok; s++) {
    mpnas__weight_set *ws = &sn->sets[s];
    ws->layer = mpnas__calloc(ctx, (size_t)sn->nlayers + 1, sizeof *ws->layer);
    ok = ws->layer != NULL && mpnas__conv_declare(&sn->params, &sg, 0, &ws->stem);
    for (int32_t l = 0; l < sn->nlayers && ok; l++)
      ok = mpnas__ib_declare(&sn->params, &sn->max_geom[l], 0, &ws->layer[l]);
    ok = ok && mpnas__conv_declare(&sn->params, &hg, 0, &ws->head);
  }
  for (int32_t d = 0; d < sn->ndomains && ok; d++) {
    mpnas__domain *dm = &sn->domains[d];
    dm->fc_w = mpnas__params_add(&sn->params, (size_t)hg.cout * (size_t)dm->classes,
                                 MPNAS__PARAM_FC, hg.cout);
    dm->fc_b = mpnas__params_add(&sn->params, (size_t)dm->classes, MPNAS__PARAM_BETA, 0);
    ok = dm->fc_w != (size_t)-1 && dm->fc_b != (size_t)-1;
  }
  if (!ok || mpnas__params_alloc(&sn->params) != MPNAS_OK)
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating the supernet's weights (%zu floats)",
                       sn->params.total);
  mpnas__rng rng;
  mpnas__rng_seed(&rng, ctx->seed, STREAM_INIT);
  mpnas__params_init_values(&sn->params, &rng);

  /* Controllers: one per domain, or one for all (multi-head NAS). */
  int32_t *nops = sn->nops;
  sn->argmax_scratch = mpnas__malloc(ctx, sizeof(int32_t) * ((size_t)sn->nlayers * sn->ndomains + 1));
  if (!sn->argmax_scratch)
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating controller shapes");
  int32_t total_ops = sn->op_offset[sn->nlayers];
  sn->warmup_allowed = mpnas__malloc(ctx, (size_t)total_ops + 1);
  sn->node_params = mpnas__malloc(ctx, sizeof(double) * ((size_t)total_ops + 1));
  sn->ncontrollers = sn->cfg.method == MPNAS_METHOD_MULTI_HEAD ? 1 : sn->ndomains;
  sn->controllers = mpnas__calloc(ctx, (size_t)sn->ncontrollers, sizeof *sn->controllers);
  if (!sn->warmup_allowed || !sn->node_params || !sn->controllers)
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating controllers");
  for (int32_t l = 0; l < sn->nlayers; l++)
    for (int32_t o = 0; o < nops[l]; o++) {
      mpnas__op op = mpnas__space_op(&sn->space, &sn->layers[l], o);
      sn->warmup_allowed[sn->op_offset[l] + o] = op.kernel != 0;
      sn->node_params[sn->op_offset[l] + o] = (double)mpnas__op_cost(&sn->layers[l], op).params;
    }
  st = MPNAS_OK;
  for (int32_t c = 0; c < sn->ncontrollers && st == MPNAS_OK; c++) {
    sn->controllers[c].owner = sn;
    mpnas__rng_seed(&sn->controllers[c].rng, ctx->seed, STREAM_CONTROLLERS + (uint64_t)c);
    st = mpnas__controller_create(ctx, sn->nlayers, nops, &sn->controllers[c].impl);
  }
  if (st != MPNAS_OK) return st;
  mpnas__rng_seed(&sn->rng, ctx->seed, STREAM_PATHS);
  if (sn->cfg.cost == MPNAS_COST_LATENCY && !sn->latency_ready &&
      (st = mpnas__supernet_measure_latency(sn)) != MPNAS_OK)
    return st;
  sn->step = 0;
  sn->prepared = 1;
  return MPNAS_OK;
}

void mpnas__supernet_destroy_state(mpnas_supernet *sn) {
  mpnas_context *ctx = sn->ctx;
  for (int32_t d = 0; d < sn->ndomains; d++) {
    mpnas__free(ctx, sn->domains[d].train_idx);
    mpnas__free(ctx, sn->domains[d].valid_idx);
    mpnas__free(ctx, sn->domains[d].sampled);
    sn->domains[d].train_idx = sn->domains[d].valid_idx = NULL;
    sn->domains[d].sampled = NULL;
  }
  if (sn->sets)
    for (int32_t s = 0; s < sn->nsets; s++) mpnas__free(ctx, sn->sets[s].layer);
  mpnas__free(ctx, sn->sets);
  sn->sets = NULL;
  if (sn->controllers)
    for (int32_t c = 0; c < sn->ncontrollers; c++)
      mpnas__controller_destroy(sn->controllers[c].impl);
  mpnas__free(ctx, sn->controllers);
  sn->controllers = NULL;
  mpnas__free(ctx, sn->warmup_allowed);
  mpnas__free(ctx, sn->node_params);
  mpnas__free(ctx, sn->argmax_scratch);
  sn->argmax_scratch = NULL;
  sn->warmup_allowed = NULL;
  sn->node_params = NULL;
  mpnas__params_destroy(&sn->params);
  mpnas__arena_reset(&sn->ws);
  sn->prepared = 0;
}

/* ---- Batches --------------------------------------------------------------------------- */

void mpnas__supernet_batch(mpnas_supernet *sn, int32_t domain, int valid, int32_t batch,
                           float *x, int32_t *labels) {
  mpnas__domain *d = &sn->domains[domain];
  const mpnas__dataset *src = valid ? d->valid_src : &d->train;
  const int64_t *idx = valid ? d->valid_idx : d->train_idx;
  int64_t n = valid ? d->nvalid : d->ntrain;
  size_t per = image_floats(sn);
  int32_t c = sn->space.in_c;
  for (int32_t b = 0; b < batch; b++) {
    /* Uniform with replacement: the state is two words, trivial to checkpoint. */
    uint64_t r = (uint64_t)mpnas__rng_u32(&d->rng) << 32 | mpnas__rng_u32(&d->rng);
    int64_t i = idx[r % (uint64_t)n];
    size_t base = (size_t)i * per;
    float *dst = x + (size_t)b * per;
    for (size_t p = 0; p < per; p++) {
      int32_t ch = (int32_t)(p % (size_t)c);
      dst[p] = (pixel(src, base + p) - d->mean[ch]) * d->invstd[ch];
    }
    labels[b] = src->labels[i];
  }
}

/* ---- Slicing a layer's maximal weights for one op ------------------------------------ */

/* dst[r][c] = src[r][c] for r < rows, c < cols, src rows of length src_cols. */
static void gather_cols(const float *src, int src_cols, int rows, int cols, float *dst) {
  for (int r = 0; r < rows; r++) memcpy(dst + (size_t)r * cols, src + (size_t)r * src_cols, sizeof(float) * (size_t)cols);
}
static void scatter_cols_add(float *dst, int dst_cols, int rows, int cols, const float *src) {
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) dst[(size_t)r * dst_cols + c] += src[(size_t)r * cols + c];
}
/* The centre k x k crop and first c channels of a [kmax][kmax][cmax] depthwise kernel. */
static void gather_dw(const float *src, int kmax, int cmax, int k, int c, float *dst) {
  int off = (kmax - k) / 2;
  for (int y = 0; y < k; y++)
    for (int x = 0; x < k; x++)
      memcpy(dst + ((size_t)y * k + x) * c, src + ((size_t)(y + off) * kmax + x + off) * cmax,
             sizeof(float) * (size_t)c);
}
static void scatter_dw_add(float *dst, int kmax, int cmax, int k, int c, const float *src) {
  int off = (kmax - k) / 2;
  for (int y = 0; y < k; y++)
    for (int x = 0; x < k; x++) {
      float *d = dst + ((size_t)(y + off) * kmax + x + off) * cmax;
      const float *s = src + ((size_t)y * k + x) * c;
      for (int i = 0; i < c; i++) d[i] += s[i];
    }
}

/* One layer's op as contiguous block weights (gathered where needed). */
typedef struct sliced {
  mpnas__ib_geom g;
  mpnas__ib_weights w;
  mpnas__ib_grads gr;
  mpnas__ib_tape tape;
  mpnas__ib_weights big;  /* the maximal tensors */
  mpnas__ib_grads big_gr;
  int gathered_exp, gathered_dw, gathered_se;
} sliced;

static mpnas_status slice(mpnas_supernet *sn, int32_t set, int32_t l, mpnas__op op, int train,
                          sliced *s) {
  mpnas__arena *ws = &sn->ws;
  const mpnas__layer *ly = &sn->layers[l];
  const mpnas__ib_geom *mg = &sn->max_geom[l];
  memset(s, 0, sizeof *s);
  mpnas__ib_geom_init(&s->g, ly->cin, ly->cout, op.expansion, op.kernel, ly->stride, ly->act,
                      op.se);
  mpnas__ib_bind(&sn->params, mg, &sn->sets[set].layer[l], &s->big, &s->big_gr);
  const mpnas__ib_geom *g = &s->g;
  int cm = g->cmid, cmax = mg->cmid;
  s->w = s->big;  /* prefix slices (BN, biases, project rows) are used in place */
  s->gr = s->big_gr;
#define TMP(ptr, n)                                          \
  do {                                                       \
    (ptr) = mpnas__arena_floats(ws, (size_t)(n));            \
    if ((ptr) == NULL) return MPNAS_E_NO_MEMORY;             \
  } while (0)
  if (g->expand && cm != cmax) {
    s->gathered_exp = 1;
    TMP(s->w.exp_w, (size_t)g->cin * cm);
    gather_cols(s->big.exp_w, cmax, g->cin, cm, s->w.exp_w);
    if (train) {
      TMP(s->gr.exp_w, (size_t)g->cin * cm);
      memset(s->gr.exp_w, 0, sizeof(float) * (size_t)g->cin * cm);
    }
  }
  if (g->k != mg->k || cm != cmax) {
    s->gathered_dw = 1;
    size_t n = (size_t)g->k * g->k * cm;
    TMP(s->w.dw_w, n);
    gather_dw(s->big.dw_w, mg->k, cmax, g->k, cm, s->w.dw_w);
    if (train) {
      TMP(s->gr.dw_w, n);
      memset(s->gr.dw_w, 0, sizeof(float) * n);
    }
  }
  if (g->se && (g->se != mg->se || cm != cmax)) {
    s->gathered_se = 1;
    size_t n = (size_t)cm * g->se;
    TMP(s->w.se_w1, n);
    TMP(s->w.se_w2, n);
    gather_cols(s->big.se_w1, mg->se, cm, g->se, s->w.se_w1);
    gather_cols(s->big.se_w2, cmax, g->se, cm, s->w.se_w2);
    if (train) {
      TMP(s->gr.se_w1, n);
      TMP(s->gr.se_w2, n);
      memset(s->gr.se_w1, 0, sizeof(float) * n);
      memset(s->gr.se_w2, 0, sizeof(float) * n);
    }
  }
#undef TMP
  return MPNAS_OK;
}

static void unslice_grads(const sliced *s, const mpnas__ib_geom *mg) {
  const mpnas__ib_geom *g = &s->g;
  if (s->gathered_exp) scatter_cols_add(s->big_gr.exp_w, mg->cmid, g->cin, g->cmid, s->gr.exp_w);
  if (s->gathered_dw) scatter_dw_add(s->big_gr.dw_w, mg->k, mg->cmid, g->k, g->cmid, s->gr.dw_w);
  if (s->gathered_se) {
    scatter_cols_add(s->big_gr.se_w1, mg->se, g->cmid, g->se, s->gr.se_w1);
    scatter_cols_add(s->big_gr.se_w2, mg->cmid, g->se, g->cmid, s->gr.se_w2);
  }
}

/* ---- A path's forward and backward --------------------------------------------------- */

mpnas_status mpnas__supernet_run(mpnas_supernet *sn, int32_t domain, const int32_t *path,
                                 const float *x, const int32_t *labels, int32_t batch,
                                 int train, float loss_scale, double *loss, int32_t *correct) {
  const mpnas__engine *eng = &sn->ctx->engine;
  mpnas__arena *ws = &sn->ws;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas_status st = MPNAS_OK;
  int32_t set = sn->cfg.method == MPNAS_METHOD_INDEPENDENT ? domain : 0;
  mpnas__weight_set *wset = &sn->sets[set];
  mpnas__domain *dm = &sn->domains[domain];
  mpnas__conv_geom sg = stem_geom(sn), hg = head_geom(sn);
  mpnas__conv_weights stem_w, head_w;
  mpnas__conv_grads stem_g, head_g;
  mpnas__conv_bind(&sn->params, &wset->stem, &stem_w, &stem_g);
  mpnas__conv_bind(&sn->params, &wset->head, &head_w, &head_g);
  sliced *layers = mpnas__arena_alloc(ws, sizeof(sliced) * (size_t)(sn->nlayers + 1));
  if (layers == NULL) { st = MPNAS_E_NO_MEMORY; goto done; }

  mpnas__conv_tape ts, th;
  int32_t h = sn->space.in_h, w = sn->space.in_w;
  st = mpnas__conv_unit_fwd_train(eng, ws, &sg, &stem_w, batch, h, w, x, &ts);
  if (st != MPNAS_OK) goto done;
  mpnas__space_stem_out(&sn->space, &h, &w);
  const float *cur = ts.y;
  for (int32_t l = 0; l < sn->nlayers; l++) {
    mpnas__op op = mpnas__space_op(&sn->space, &sn->layers[l], path[l]);
    layers[l].g.cmid = 0; /* marks a skipped layer */
    if (op.kernel == 0) continue; /* zero: identity through the residual */
    if ((st = slice(sn, set, l, op, train, &layers[l])) != MPNAS_OK) goto done;
    st = mpnas__ib_fwd_train(eng, ws, &layers[l].g, &layers[l].w, batch, h, w, cur,
                             &layers[l].tape);
    if (st != MPNAS_OK) goto done;
    cur = layers[l].tape.y;
    h = layers[l].tape.ho;
    w = layers[l].tape.wo;
  }
  st = mpnas__conv_unit_fwd_train(eng, ws, &hg, &head_w, batch, h, w, cur, &th);
  if (st != MPNAS_OK) goto done;
  int hw = h * w, classes = dm->classes;
  float *pooled = mpnas__arena_floats(ws, (size_t)batch * hg.cout);
  float *logits = mpnas__arena_floats(ws, (size_t)batch * classes);
  float *dlogits = mpnas__arena_floats(ws, (size_t)batch * classes);
  if (!pooled || !logits || !dlogits) { st = MPNAS_E_NO_MEMORY; goto done; }
  mpnas__gap_fwd(batch, hw, hg.cout, th.y, pooled);
  float *fc_w = mpnas__pw(&sn->params, dm->fc_w), *fc_b = mpnas__pw(&sn->params, dm->fc_b);
  st = mpnas__fc_fwd(eng, ws, batch, hg.cout, classes, pooled, fc_w, fc_b, logits);
  if (st != MPNAS_OK) goto done;
  int right = 0;
  *loss = mpnas__softmax_xent(batch, classes, logits, labels,
                              train ? (float)sn->cfg.label_smoothing : 0.0f,
                              train ? dlogits : NULL, &right);
  *correct = right;
  if (!train) goto done;

  for (size_t i = 0; i < (size_t)batch * classes; i++) dlogits[i] *= loss_scale;
  float *dpooled = mpnas__arena_floats(ws, (size_t)batch * hg.cout);
  float *dhead = mpnas__arena_floats(ws, (size_t)batch * hw * hg.cout);
  float *dcur = mpnas__arena_floats(ws, (size_t)batch * hw * hg.cin);
  if (!dpooled || !dhead || !dcur) { st = MPNAS_E_NO_MEMORY; goto done; }
  st = mpnas__fc_bwd(eng, ws, batch, hg.cout, classes, pooled, fc_w, dlogits, dpooled,
                     mpnas__pg(&sn->params, dm->fc_w), mpnas__pg(&sn->params, dm->fc_b));
  if (st != MPNAS_OK) goto done;
  mpnas__gap_bwd(batch, hw, hg.cout, dpooled, dhead);
  st = mpnas__conv_unit_bwd(eng, ws, &hg, &head_w, &th, dhead, dcur, &head_g);
  if (st != MPNAS_OK) goto done;
  for (int32_t l = sn->nlayers - 1; l >= 0; l--) {
    sliced *s = &layers[l];
    if (s->g.cmid == 0) continue; /* skipped: the gradient passes through unchanged */
    float *dprev = mpnas__arena_floats(ws, (size_t)batch * s->tape.h * s->tape.w * s->g.cin);
    if (!dprev) { st = MPNAS_E_NO_MEMORY; goto done; }
    st = mpnas__ib_bwd(eng, ws, &s->g, &s->w, &s->tape, dcur, dprev, &s->gr);
    if (st != MPNAS_OK) goto done;
    unslice_grads(s, &sn->max_geom[l]);
    dcur = dprev;
  }
  st = mpnas__conv_unit_bwd(eng, ws, &sg, &stem_w, &ts, dcur, NULL, &stem_g);
done:
  mpnas__arena_release(ws, mark);
  if (st == MPNAS_E_NO_MEMORY)
    return mpnas__fail(sn->ctx, st, "workspace allocation failed (batch %d)", (int)batch);
  return st;
}
