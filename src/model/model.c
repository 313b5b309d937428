/* model.c - the multi-path model's structure: domains, nodes, parameters, folded BN,
 * binding a domain's path, inference and costs (see model.h). */
#include "model/model.h"

#include "model/model_quant.h"

#include <math.h>
#include <string.h>

#define STREAM_INIT 1u

mpnas_status mpnas__model_new(mpnas_context *ctx, const mpnas_space *space, mpnas_model **out) {
  *out = NULL;
  int32_t L = mpnas__space_num_layers(space);
  mpnas_model *m = mpnas__calloc(ctx, 1, sizeof *m);
  if (m == NULL) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating a model");
  m->ctx = ctx;
  m->space = *space;
  m->space.ctx = ctx;
  m->space.owner = "model";
  m->nlayers = L;
  mpnas__train_config_default(&m->cfg);
  mpnas__arena_init(&m->ws, ctx);
  size_t l1 = (size_t)L + 1;
  m->layers = mpnas__calloc(ctx, l1, sizeof *m->layers);
  m->op_offset = mpnas__calloc(ctx, l1, sizeof(int32_t));
  m->domains = mpnas__calloc(ctx, MPNAS__MAX_DOMAINS, sizeof *m->domains);
  if (!m->layers || !m->op_offset || !m->domains) {
    mpnas__model_free_contents(m);
    mpnas__free(ctx, m);
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating a model");
  }
  for (int32_t l = 0; l < L; l++) {
    mpnas__space_layer(&m->space, l, &m->layers[l]);
    m->op_offset[l + 1] = m->op_offset[l] + m->layers[l].nops;
  }
  *out = m;
  return MPNAS_OK;
}

mpnas_status mpnas__model_add_domain(mpnas_model *m, const char *name, int32_t classes,
                                     const int32_t *path) {
  int32_t *own_path = mpnas__calloc(m->ctx, (size_t)m->nlayers + 1, sizeof(int32_t));
  if (own_path == NULL) return mpnas__fail(m->ctx, MPNAS_E_NO_MEMORY, "allocating a path");
  memcpy(own_path, path, sizeof(int32_t) * (size_t)m->nlayers);
  mpnas__domain *d = &m->domains[m->ndomains];
  mpnas__domain_init(d, name, classes);
  d->path = own_path;
  for (int c = 0; c < MPNAS__MAX_IN_CHANNELS; c++) d->invstd[c] = 1.0f;
  m->ndomains++;
  return MPNAS_OK;
}

void mpnas__model_quant_free(mpnas_model *m) {
  if (m->quant == NULL) return;
  mpnas__arena_destroy(&m->quant->store);
  mpnas__free(m->ctx, m->quant);
  m->quant = NULL;
  m->quant_generation++;
}

void mpnas__model_free_contents(mpnas_model *m) {
  mpnas_context *ctx = m->ctx;
  mpnas__step_undo_free(&m->undo);
  mpnas__model_quant_free(m);
  if (m->domains)
    for (int32_t d = 0; d < m->ndomains; d++) {
      mpnas__domain_data_free(ctx, &m->domains[d].data);
      mpnas__free(ctx, m->domains[d].path);
    }
  mpnas__free(ctx, m->domains);
  mpnas__free(ctx, m->layers);
  mpnas__free(ctx, m->op_offset);
  mpnas__free(ctx, m->nodes);
  mpnas__free(ctx, m->node_of);
  mpnas__free(ctx, m->stats);
  mpnas__free(ctx, m->affine_off);
  mpnas__free(ctx, m->affine);
  mpnas__params_destroy(&m->params);
  mpnas__abdp_destroy(m->abdp);
  mpnas__arena_destroy(&m->ws);
}

/* ---- Geometry -------------------------------------------------------------------------- */

int mpnas__model_slot_channels(const mpnas_model *m, size_t s) {
  size_t N = (size_t)m->nnodes;
  if (s == MPNAS__SLOT_STEM(N)) return m->space.stem_c;
  if (s == MPNAS__SLOT_HEAD(N)) return m->space.head_c;
  const mpnas__node *nd = &m->nodes[s / 3];
  return s % 3 == 2 ? nd->g.cout : nd->g.cmid;
}

/* gamma/beta offsets of slot s (NULL for a node's missing bn1). */
static const mpnas__bn_offsets *slot_bn(const mpnas_model *m, size_t s) {
  size_t N = (size_t)m->nnodes;
  if (s == MPNAS__SLOT_STEM(N)) return &m->stem.bn;
  if (s == MPNAS__SLOT_HEAD(N)) return &m->head.bn;
  const mpnas__node *nd = &m->nodes[s / 3];
  if (s % 3 == 0) return nd->g.expand ? &nd->w.bn1 : NULL;
  return s % 3 == 1 ? &nd->w.bn2 : &nd->w.bn3;
}

/* Does domain d run through slot s? */
static int slot_used_by(const mpnas_model *m, size_t s, int32_t d) {
  size_t N = (size_t)m->nnodes;
  if (s >= MPNAS__SLOT_STEM(N)) return 1;
  if (slot_bn(m, s) == NULL) return 0;
  const mpnas__node *nd = &m->nodes[s / 3];
  return m->domains[d].path[nd->layer] == nd->op;
}

/* ---- Build --------------------------------------------------------------------------- */

void mpnas__model_unbuild(mpnas_model *m) {
  mpnas_context *ctx = m->ctx;
  mpnas__free(ctx, m->nodes);
  mpnas__free(ctx, m->node_of);
  mpnas__free(ctx, m->stats);
  mpnas__free(ctx, m->affine_off);
  mpnas__free(ctx, m->affine);
  m->nodes = NULL;
  m->node_of = NULL;
  m->stats = NULL;
  m->affine_off = NULL;
  m->affine = NULL;
  m->nnodes = 0;
  m->nslots = 0;
  m->affine_total = 0;
  mpnas__params_destroy(&m->params);
  m->built = 0;
}

static mpnas_status build(mpnas_model *m) {
  mpnas_context *ctx = m->ctx;
  int32_t L = m->nlayers, D = m->ndomains, total_ops = m->op_offset[L];
  if (D < 1) return mpnas__fail(ctx, MPNAS_E_STATE, "the model has no domains: add one first");
  m->node_of = mpnas__malloc(ctx, sizeof(int32_t) * ((size_t)total_ops + 1));
  m->nodes = mpnas__calloc(ctx, (size_t)total_ops + 1, sizeof *m->nodes);
  if (!m->node_of || !m->nodes) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating nodes");
  /* Nodes in layer order, op order within a layer. */
  m->nnodes = 0;
  for (int32_t l = 0; l < L; l++)
    for (int32_t o = 0; o < m->layers[l].nops; o++) {
      int32_t users = 0;
      for (int32_t d = 0; d < D; d++) users += m->domains[d].path[l] == o;
      mpnas__op op = mpnas__space_op(&m->space, &m->layers[l], o);
      m->node_of[m->op_offset[l] + o] = -1;
      if (users == 0 || op.kernel == 0) continue;
      mpnas__node *nd = &m->nodes[m->nnodes];
      nd->layer = l;
      nd->op = o;
      nd->users = users;
      const mpnas__layer *ly = &m->layers[l];
      mpnas__ib_geom_init(&nd->g, ly->cin, ly->cout, op.expansion, op.kernel, ly->stride,
                          ly->act, op.se);
      m->node_of[m->op_offset[l] + o] = m->nnodes++;
    }

  /* Parameters: stem, nodes, head, classifiers; then running statistics per slot and
   * domain. Declaration order fixes the initial weights for a seed. */
  mpnas__params_init(&m->params, ctx);
  mpnas__conv_geom sg = mpnas__space_stem_geom(&m->space), hg = mpnas__space_head_geom(&m->space);
  int ok = mpnas__conv_declare(&m->params, &sg, 0, &m->stem);
  for (int32_t i = 0; i < m->nnodes && ok; i++)
    ok = mpnas__ib_declare(&m->params, &m->nodes[i].g, 0, &m->nodes[i].w);
  ok = ok && mpnas__conv_declare(&m->params, &hg, 0, &m->head);
  for (int32_t d = 0; d < D && ok; d++) {
    mpnas__domain *dm = &m->domains[d];
    dm->fc_w = mpnas__params_add(&m->params, (size_t)hg.cout * (size_t)dm->classes,
                                 MPNAS__PARAM_FC, hg.cout);
    dm->fc_b = mpnas__params_add(&m->params, (size_t)dm->classes, MPNAS__PARAM_BETA, 0);
    ok = dm->fc_w != (size_t)-1 && dm->fc_b != (size_t)-1;
  }
  m->nslots = 3 * (size_t)m->nnodes + 2;
  size_t n = m->nslots * (size_t)D;
  m->stats = mpnas__malloc(ctx, sizeof *m->stats * n);
  m->affine_off = mpnas__malloc(ctx, sizeof(size_t) * n);
  if (!ok || !m->stats || !m->affine_off)
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating the model's layout");
  m->affine_total = 0;
  for (size_t s = 0; s < m->nslots && ok; s++)
    for (int32_t d = 0; d < D && ok; d++) {
      mpnas__stat_offsets *so = &m->stats[s * D + d];
      so->mean = so->var = MPNAS__NO_SLOT;
      m->affine_off[s * D + d] = MPNAS__NO_SLOT;
      if (!slot_used_by(m, s, d)) continue;
      size_t c = (size_t)mpnas__model_slot_channels(m, s);
      so->mean = mpnas__params_add_buffer(&m->params, c, MPNAS__PARAM_BETA);
      so->var = mpnas__params_add_buffer(&m->params, c, MPNAS__PARAM_ONE);
      ok = so->mean != (size_t)-1 && so->var != (size_t)-1;
      m->affine_off[s * D + d] = m->affine_total;
      m->affine_total += 2 * c;
    }
  m->affine = mpnas__malloc(ctx, sizeof(float) * (m->affine_total + 1));
  if (!ok || !m->affine || mpnas__params_alloc(&m->params) != MPNAS_OK)
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating the model's weights (%zu floats)",
                       m->params.total);
  mpnas__rng rng;
  mpnas__rng_seed(&rng, ctx->seed, STREAM_INIT);
  mpnas__params_init_values(&m->params, &rng);
  m->built = 1;
  mpnas__model_fold(m);
  return MPNAS_OK;
}

/* A build that fails part-way frees what it made (a retry would overwrite it). */
mpnas_status mpnas__model_build(mpnas_model *m) {
  if (m->built) return MPNAS_OK;
  mpnas_status st = build(m);
  if (st != MPNAS_OK) mpnas__model_unbuild(m);
  return st;
}

/* Running statistics are an EMA, r_t = (1-m) r_{t-1} + m b_t, started at mean 0 and
 * variance 1, so after t updates the start still weighs (1-m)^t: 37% after 100 steps at
 * m = 0.01, enough to wreck a short training run's inference. Folding removes it, as
 * Adam debiases its moments: r_hat = (r_t - (1-m)^t r_0) / (1 - (1-m)^t), a weighted mean
 * of the batch statistics alone. The stored statistics stay the plain EMA. */
void mpnas__model_fold(mpnas_model *m) {
  int32_t D = m->ndomains;
  m->folds++;
  for (size_t s = 0; s < m->nslots; s++)
    for (int32_t d = 0; d < D; d++) {
      size_t off = m->affine_off[s * D + d];
      if (off == MPNAS__NO_SLOT) continue;
      const mpnas__bn_offsets *bo = slot_bn(m, s);
      const mpnas__stat_offsets *so = &m->stats[s * D + d];
      int c = mpnas__model_slot_channels(m, s);
      const float *mean = m->params.b + so->mean, *var = m->params.b + so->var;
      float *scale = m->affine + off, *shift = m->affine + off + c;
      int64_t t = m->domains[d].bn_updates;
      if (t > 0) {
        double start = pow(1.0 - (double)MPNAS__BN_MOMENTUM, (double)t), keep = 1.0 - start;
        /* Debiased variance into `scale` and mean into `shift`: mpnas__bn_fold reads each
         * channel's variance and mean before it writes that channel's scale and shift. */
        for (int ch = 0; ch < c; ch++) {
          double v = ((double)var[ch] - start) / keep;
          scale[ch] = (float)(v > 0.0 ? v : 0.0);
          shift[ch] = (float)((double)mean[ch] / keep);
        }
        var = scale;
        mean = shift;
      }
      mpnas__bn_fold(c, m->params.w + bo->gamma, m->params.w + bo->beta, mean, var,
                     MPNAS__BN_EPS, scale, shift);
    }
}

/* ---- Binding a domain's path --------------------------------------------------------- */

static void bind_stats(mpnas_model *m, size_t s, int32_t d, mpnas__bn *bn, mpnas__affine *aff) {
  const mpnas__stat_offsets *so = &m->stats[s * m->ndomains + d];
  size_t off = m->affine_off[s * m->ndomains + d];
  bn->mean = m->params.b + so->mean;
  bn->var = m->params.b + so->var;
  aff->scale = m->affine + off;
  aff->shift = m->affine + off + mpnas__model_slot_channels(m, s);
}

void mpnas__model_bind(mpnas_model *m, int32_t d, float *grads, mpnas__net *net,
                       mpnas__net_layer *layers) {
  size_t N = (size_t)m->nnodes;
  mpnas__params params = m->params; /* a view: the weights, and where gradients go */
  if (grads != NULL) params.g = grads;
  mpnas__domain *dm = &m->domains[d];
  memset(net, 0, sizeof *net);
  net->in_h = m->space.in_h;
  net->in_w = m->space.in_w;
  net->stem_g = mpnas__space_stem_geom(&m->space);
  net->head_g = mpnas__space_head_geom(&m->space);
  mpnas__conv_bind(&params, &m->stem, &net->stem, &net->stem_gr);
  mpnas__conv_bind(&params, &m->head, &net->head, &net->head_gr);
  bind_stats(m, MPNAS__SLOT_STEM(N), d, &net->stem.bn, &net->stem_aff);
  bind_stats(m, MPNAS__SLOT_HEAD(N), d, &net->head.bn, &net->head_aff);
  net->nlayers = m->nlayers;
  net->layers = layers;
  for (int32_t l = 0; l < m->nlayers; l++) {
    mpnas__net_layer *ly = &layers[l];
    memset(ly, 0, sizeof *ly);
    int32_t node = m->node_of[m->op_offset[l] + dm->path[l]];
    if (node < 0) continue; /* zero op */
    const mpnas__node *nd = &m->nodes[node];
    ly->g = &nd->g;
    mpnas__ib_bind(&params, &nd->g, &nd->w, &ly->w, &ly->gr);
    mpnas__affine a1 = {0}, a2, a3;
    if (nd->g.expand) bind_stats(m, 3 * (size_t)node, d, &ly->w.bn1, &a1);
    bind_stats(m, 3 * (size_t)node + 1, d, &ly->w.bn2, &a2);
    bind_stats(m, 3 * (size_t)node + 2, d, &ly->w.bn3, &a3);
    ly->inf = (mpnas__ib_infer){ly->w.exp_w, ly->w.dw_w, ly->w.proj_w, ly->w.se_w1, ly->w.se_b1,
                                ly->w.se_w2, ly->w.se_b2, a1, a2, a3, NULL, NULL};
  }
  net->classes = dm->classes;
  net->fc_w = mpnas__pw(&params, dm->fc_w);
  net->fc_b = mpnas__pw(&params, dm->fc_b);
  net->fc_gw = mpnas__pg(&params, dm->fc_w);
  net->fc_gb = mpnas__pg(&params, dm->fc_b);
}

/* ---- Packed inference weights -------------------------------------------------------- */

void mpnas__model_packed_init(mpnas__model_packed *pk, const mpnas_context *ctx) {
  memset(pk, 0, sizeof *pk);
  mpnas__arena_init(&pk->store, ctx);
}

void mpnas__model_packed_free(mpnas__model_packed *pk) {
  mpnas__arena_destroy(&pk->store);
  pk->k = NULL;
}

/* A copy of w [cin][cout] packed in the store, or NULL when memory ran out. */
static const float *pack_one(const mpnas__engine *eng, mpnas__arena *store, int cin, int cout,
                             const float *w) {
  float *packed = mpnas__arena_floats(store, mpnas__pw_packed_floats(eng, cin, cout));
  if (packed != NULL) mpnas__pw_pack(eng, cin, cout, w, packed);
  return packed;
}

mpnas_status mpnas__model_pack(const mpnas_model *m, const mpnas__engine *eng,
                               mpnas__model_packed *pk) {
  if (pk->k == eng->k && pk->folds == m->folds) return MPNAS_OK;
  const mpnas_context *ctx = pk->store.ctx;
  mpnas__model_packed_free(pk); /* the old layout's sizes may differ: start afresh */
  mpnas__model_packed_init(pk, ctx);
  size_t N = (size_t)m->nnodes;
  mpnas__arena *st = &pk->store;
  pk->exp = mpnas__arena_alloc(st, sizeof *pk->exp * (N ? N : 1));
  pk->proj = mpnas__arena_alloc(st, sizeof *pk->proj * (N ? N : 1));
  int ok = pk->exp != NULL && pk->proj != NULL;
  const float *w = m->params.w;
  for (size_t i = 0; i < N && ok; i++) {
    const mpnas__node *nd = &m->nodes[i];
    pk->exp[i] = NULL;
    if (nd->g.expand)
      ok = (pk->exp[i] = pack_one(eng, st, nd->g.cin, nd->g.cmid, w + nd->w.exp_w)) != NULL;
    if (ok) ok = (pk->proj[i] = pack_one(eng, st, nd->g.cmid, nd->g.cout, w + nd->w.proj_w)) != NULL;
  }
  mpnas__conv_geom hg = mpnas__space_head_geom(&m->space);
  pk->head = NULL;
  if (ok && hg.k == 1 && hg.stride == 1)
    ok = (pk->head = pack_one(eng, st, hg.cin, hg.cout, w + m->head.w)) != NULL;
  if (!ok) {
    mpnas__model_packed_free(pk);
    mpnas__model_packed_init(pk, ctx);
    return MPNAS_E_NO_MEMORY;
  }
  pk->k = eng->k;
  pk->folds = m->folds;
  return MPNAS_OK;
}

/* Shares of images beyond this many threads are not worth their workspaces. */
#define MAX_SHARES 64

mpnas_status mpnas__model_images_in_shares(const mpnas__engine *engine, mpnas__arena *ws, int n,
                                           mpnas__images_fn fn, const void *arg) {
  const mpnas__engine usable = mpnas__engine_usable(engine);
  int shares = usable.threads < n ? usable.threads : n;
  if (shares > MAX_SHARES) shares = MAX_SHARES;
  if (shares <= 1) return n > 0 ? fn(arg, &usable, ws, 0, n) : MPNAS_OK;
  mpnas__arena *kids = mpnas__arena_kids(ws, shares);
  if (kids == NULL) return MPNAS_E_NO_MEMORY;
  int team = mpnas__engine_ready(engine).threads; /* the shares over the prompt threads */
  if (team > shares) team = shares;
  mpnas__engine one = usable;
  one.threads = 1;
  mpnas_status status[MAX_SHARES];
#if defined(_OPENMP)
#pragma omp parallel for num_threads(team) schedule(static, 1)
#endif
  for (int k = 0; k < shares; k++) {
    int lo = (int)((int64_t)n * k / shares), hi = (int)((int64_t)n * (k + 1) / shares);
    mpnas__arena_mark mark = mpnas__arena_get_mark(&kids[k]);
    status[k] = fn(arg, &one, &kids[k], lo, hi);
    mpnas__arena_release(&kids[k], mark);
  }
  for (int k = 0; k < shares; k++)
    if (status[k] != MPNAS_OK) return status[k];
  return MPNAS_OK;
}

/* mpnas__net_infer on images [lo, hi) of a batch (mpnas__images_fn). */
typedef struct infer_share {
  const mpnas__net *net;
  const float *x;
  float *logits;
  size_t per; /* floats per image */
} infer_share;

static mpnas_status infer_images(const void *arg, const mpnas__engine *eng, mpnas__arena *ws,
                                 int lo, int hi) {
  const infer_share *a = arg;
  return mpnas__net_infer(eng, ws, a->net, hi - lo, a->x + a->per * (size_t)lo,
                          a->logits + (size_t)a->net->classes * (size_t)lo);
}

mpnas_status mpnas__model_infer(const mpnas_model *m, mpnas__arena *ws, int32_t d, int n,
                                const float *x, float *logits,
                                const mpnas__model_packed *packed) {
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas__net net;
  mpnas__net_layer *layers = mpnas__arena_alloc(ws, sizeof *layers * ((size_t)m->nlayers + 1));
  if (layers == NULL) return MPNAS_E_NO_MEMORY;
  /* Binding only reads the model; it takes a non-const pointer because the same
   * binding also serves training. Nothing below writes through it. */
  mpnas__model_bind((mpnas_model *)(uintptr_t)m, d, NULL, &net, layers);
  /* Batches run in shares on the threads that start promptly now (see
   * mpnas__model_images_in_shares). */
  mpnas__engine eng = mpnas__engine_usable(&m->ctx->engine);
  if (packed != NULL && packed->k == eng.k && packed->folds == m->folds) { /* current */
    const mpnas__domain *dm = &m->domains[d];
    net.head_packed = packed->head;
    for (int32_t l = 0; l < m->nlayers; l++) {
      int32_t node = m->node_of[m->op_offset[l] + dm->path[l]];
      if (node < 0) continue;
      layers[l].inf.exp_packed = packed->exp[node];
      layers[l].inf.proj_packed = packed->proj[node];
    }
  }
  /* A batch goes to the threads in shares of images (the same bits as one thread). */
  infer_share share = {&net, x, logits,
                       (size_t)m->space.in_h * (size_t)m->space.in_w * (size_t)m->space.in_c};
  mpnas_status st = mpnas__model_images_in_shares(&m->ctx->engine, ws, n, infer_images, &share);
  mpnas__arena_release(ws, mark);
  return st;
}

/* ---- Costs --------------------------------------------------------------------------- */

void mpnas__model_costs(const mpnas_model *m, int64_t *params, int64_t *macs) {
  int64_t p = mpnas__stem_cost(&m->space).params + mpnas__head_cost(&m->space).params, c = 0;
  for (int32_t l = 0; l < m->nlayers; l++)
    for (int32_t o = 0; o < m->layers[l].nops; o++) {
      int used = 0;
      for (int32_t d = 0; d < m->ndomains; d++) used |= m->domains[d].path[l] == o;
      if (used) p += mpnas__op_cost(&m->layers[l], mpnas__space_op(&m->space, &m->layers[l], o)).params;
    }
  for (int32_t d = 0; d < m->ndomains; d++) {
    p += mpnas__classifier_cost(&m->space, m->domains[d].classes).params;
    c = mpnas__count_add(c, mpnas__path_cost(&m->space, m->domains[d].path, m->domains[d].classes).macs);
  }
  *params = p;
  *macs = c;
}
