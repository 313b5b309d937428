/* supernet.c - weights with in-layer sharing, data batches, and a path's forward and
 * backward pass (see supernet.h): both passes bind the gathered slices to an mpnas__net
 * and run it through net/network.c, where the walk along a path lives. */
#include "search/supernet.h"

#include <math.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "net/network.h"
#include "train/optim.h"

/* Random stream ids (one per consumer, rng.h). */
#define STREAM_INIT 1u
#define STREAM_PATHS 2u
#define STREAM_ABDP 3u /* proportional sampling's draws; checkpoint.c seeds it alike */
/* (The domains' split and batch streams, 100 + d and 1000 + d: net/multidomain.c.) */
#define STREAM_CONTROLLERS 3000u

int32_t mpnas__supernet_controller_of(const mpnas_supernet *sn, int32_t domain) {
  return sn->cfg.method == MPNAS_METHOD_MULTI_HEAD ? 0 : domain;
}

/* ---- Preparation ------------------------------------------------------------------- */

static mpnas_status prepare(mpnas_supernet *sn) {
  mpnas_context *ctx = sn->ctx;
  if (sn->ndomains < 1)
    return mpnas__fail(ctx, MPNAS_E_STATE, "the supernet has no domains: add one first");
  if (sn->nlayers < 1)
    return mpnas__fail(ctx, MPNAS_E_STATE,
                       "the space has no searchable layers: a search needs at least one "
                       "(add a stage)");
  mpnas_status st = mpnas__domains_prepare(ctx, sn->domains, sn->ndomains,
                                           mpnas__space_image_shape(&sn->space),
                                           sn->cfg.valid_fraction);
  if (st != MPNAS_OK) return st;
  if (sn->cfg.method == MPNAS_METHOD_SINGLE_PATH &&
      !mpnas__space_path_valid(&sn->space, sn->fixed_path))
    return mpnas__fail(ctx, MPNAS_E_STATE, "the fixed path is not valid in this space");
  for (int32_t d = 0; d < sn->ndomains; d++) {
    mpnas__domain *dm = &sn->domains[d];
    dm->sampled = mpnas__calloc(ctx, (size_t)sn->nlayers + 1, sizeof(int32_t));
    if (!dm->sampled)
      return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating domain \"%s\"", dm->name);
    dm->weight = 1.0;
    dm->loss_ema = NAN;
    dm->batch_images = 0;
  }

  /* Weights: one set, or one per domain for domain-independent search. */
  sn->nsets = sn->cfg.method == MPNAS_METHOD_INDEPENDENT ? sn->ndomains : 1;
  sn->sets = mpnas__calloc(ctx, (size_t)sn->nsets, sizeof *sn->sets);
  if (!sn->sets) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating weight sets");
  mpnas__params_init(&sn->params, ctx);
  mpnas__conv_geom sg = mpnas__space_stem_geom(&sn->space), hg = mpnas__space_head_geom(&sn->space);
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
  /* [D * L] argmax paths in a step; at least [2 * L] for mpnas__supernet_check_reward. */
  sn->argmax_scratch = mpnas__malloc(
      ctx, sizeof(int32_t) * ((size_t)sn->nlayers * (sn->ndomains > 2 ? sn->ndomains : 2) + 1));
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

  /* ABDP: batch counts and loss weights, over the training sizes after the split. */
  mpnas__abdp_destroy(sn->abdp);
  sn->abdp = NULL;
  st = mpnas__domains_abdp(ctx, sn->domains, sn->ndomains, &sn->abdp_cfg, 1, &sn->abdp);
  if (st != MPNAS_OK) return st;
  mpnas__rng_seed(&sn->abdp_rng, ctx->seed, STREAM_ABDP);
  sn->step = 0;
  sn->run_seed = ctx->seed;
  sn->prepared = 1;
  return MPNAS_OK;
}

/* A preparation that fails part-way (an allocation, a split) frees what it built: the
 * supernet is as it was, and a retry starts clean instead of overwriting (leaking) the
 * failed attempt's pieces. */
mpnas_status mpnas__supernet_prepare(mpnas_supernet *sn) {
  if (sn->prepared) return MPNAS_OK;
  mpnas_status st = prepare(sn);
  if (st != MPNAS_OK) mpnas__supernet_destroy_state(sn);
  return st;
}

void mpnas__supernet_undo_free(mpnas_supernet *sn) {
  mpnas__step_undo_free(&sn->undo);
  if (sn->undo_ctrl != NULL)
    for (int32_t c = 0; c < sn->ncontrollers; c++) mpnas__controller_destroy(sn->undo_ctrl[c]);
  mpnas__free(sn->ctx, sn->undo_ctrl);
  sn->undo_ctrl = NULL;
}

/* ---- Construction: the space's layers, their maximal geometry and ops, the reference path -- */

mpnas_status mpnas__supernet_new(mpnas_context *ctx, const mpnas_space *space,
                                 mpnas_supernet **out) {
  int32_t L = mpnas__space_num_layers(space);
  mpnas_supernet *sn = mpnas__calloc(ctx, 1, sizeof *sn);
  if (sn == NULL) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating a supernet");
  sn->ctx = ctx;
  sn->space = *space;
  sn->space.ctx = ctx;
  sn->space.owner = "supernet";
  sn->nlayers = L;
  mpnas__search_config_default(&sn->cfg);
  mpnas__abdp_config_default(&sn->abdp_cfg); /* BALANCED, signal NONE: the search as before */
  mpnas__arena_init(&sn->ws, ctx);
  size_t l1 = (size_t)L + 1;
  sn->layers = mpnas__calloc(ctx, l1, sizeof *sn->layers);
  sn->max_geom = mpnas__calloc(ctx, l1, sizeof *sn->max_geom);
  sn->nops = mpnas__calloc(ctx, l1, sizeof(int32_t));
  sn->op_offset = mpnas__calloc(ctx, l1, sizeof(int32_t));
  sn->fixed_path = mpnas__calloc(ctx, l1, sizeof(int32_t));
  sn->fixed_path_reference = mpnas__calloc(ctx, l1, sizeof(int32_t));
  sn->domains = mpnas__calloc(ctx, MPNAS__MAX_DOMAINS, sizeof *sn->domains);
  if (!sn->layers || !sn->max_geom || !sn->nops || !sn->op_offset || !sn->fixed_path ||
      !sn->fixed_path_reference || !sn->domains) {
    mpnas__supernet_delete(sn);
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating a supernet");
  }
  for (int32_t l = 0; l < L; l++) {
    mpnas__layer *ly = &sn->layers[l];
    mpnas__space_layer(&sn->space, l, ly);
    mpnas__ib_geom_init(&sn->max_geom[l], ly->cin, ly->cout, ly->emax, ly->kmax, ly->stride,
                        ly->act, ly->has_se);
    sn->nops[l] = ly->nops;
    sn->op_offset[l + 1] = sn->op_offset[l] + ly->nops;
  }
  sn->node_latency = mpnas__calloc(ctx, (size_t)sn->op_offset[L] + 1, sizeof(double));
  if (!sn->node_latency) {
    mpnas__supernet_delete(sn);
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating a supernet");
  }
  mpnas__space_reference_path(&sn->space, sn->fixed_path_reference);
  memcpy(sn->fixed_path, sn->fixed_path_reference, sizeof(int32_t) * (size_t)L);
  *out = sn;
  return MPNAS_OK;
}

void mpnas__supernet_delete(mpnas_supernet *sn) {
  if (sn == NULL) return;
  mpnas_context *ctx = sn->ctx;
  mpnas__supernet_destroy_state(sn);
  mpnas__arena_destroy(&sn->ws);
  if (sn->domains)
    for (int32_t d = 0; d < sn->ndomains; d++) {
      mpnas__domain_data_free(ctx, &sn->domains[d].data);
    }
  mpnas__free(ctx, sn->domains);
  mpnas__free(ctx, sn->layers);
  mpnas__free(ctx, sn->max_geom);
  mpnas__free(ctx, sn->nops);
  mpnas__free(ctx, sn->op_offset);
  mpnas__free(ctx, sn->fixed_path);
  mpnas__free(ctx, sn->fixed_path_reference);
  mpnas__free(ctx, sn->node_latency);
  mpnas__free(ctx, sn);
}

void mpnas__supernet_destroy_state(mpnas_supernet *sn) {
  mpnas_context *ctx = sn->ctx;
  mpnas__supernet_undo_free(sn); /* before the controllers: it counts them */
  mpnas__domains_unprepare(ctx, sn->domains, sn->ndomains);
  for (int32_t d = 0; d < sn->ndomains; d++) {
    mpnas__free(ctx, sn->domains[d].sampled);
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
  mpnas__abdp_destroy(sn->abdp);
  sn->abdp = NULL;
  mpnas__params_destroy(&sn->params);
  mpnas__arena_reset(&sn->ws);
  sn->prepared = 0;
}

/* ---- Batches --------------------------------------------------------------------------- */

void mpnas__supernet_batch(mpnas_supernet *sn, int32_t domain, int valid, int32_t batch,
                           float *x, int32_t *labels) {
  mpnas__domain_data_batch(&sn->domains[domain].data, mpnas__space_image_shape(&sn->space), valid,
                           batch, NULL, x, labels);
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
  mpnas__ib_weights big;  /* the maximal tensors */
  mpnas__ib_grads big_gr;
  int gathered_exp, gathered_dw, gathered_se;
} sliced;

static mpnas_status slice(mpnas_supernet *sn, mpnas__params *params, mpnas__arena *ws,
                          int32_t set, int32_t l, mpnas__op op, int train, sliced *s) {
  const mpnas__layer *ly = &sn->layers[l];
  const mpnas__ib_geom *mg = &sn->max_geom[l];
  memset(s, 0, sizeof *s);
  mpnas__ib_geom_init(&s->g, ly->cin, ly->cout, op.expansion, op.kernel, ly->stride, ly->act,
                      op.se);
  mpnas__ib_bind(params, mg, &sn->sets[set].layer[l], &s->big, &s->big_gr);
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

/* A pass along a path: every layer's op sliced first (gathered where it is narrower
 * than the layer's widest op), then the path runs through src/net/network.c - the
 * training pass with each layer's gathered gradients scattered back right after its
 * backward, the evaluation pass (train = 0: no gradients) as it is. */
typedef struct sliced_path {
  const mpnas_supernet *sn;
  const sliced *layers; /* [nlayers] */
} sliced_path;

static void unslice_layer(void *user, int layer) {
  const sliced_path *p = user;
  unslice_grads(&p->layers[layer], &p->sn->max_geom[layer]);
}

/* Bind a domain's `path` for a training (train = 1) or evaluation pass into net; the
 * slices live in ws. A training pass's gradients go to `grads`, laid out like the
 * params store's (NULL: the store's own). */
static mpnas_status bind_path(mpnas_supernet *sn, mpnas__arena *ws, int32_t domain,
                              const int32_t *path, int train, float *grads, mpnas__net *net) {
  mpnas_status st;
  mpnas__params params = sn->params; /* a view: the weights, and where gradients go */
  if (grads != NULL) params.g = grads;
  int32_t set = sn->cfg.method == MPNAS_METHOD_INDEPENDENT ? domain : 0;
  mpnas__weight_set *wset = &sn->sets[set];
  mpnas__domain *dm = &sn->domains[domain];
  sliced *slices = mpnas__arena_alloc(ws, sizeof *slices * ((size_t)sn->nlayers + 1));
  mpnas__net_layer *layers = mpnas__arena_alloc(ws, sizeof *layers * ((size_t)sn->nlayers + 1));
  sliced_path *scatter = mpnas__arena_alloc(ws, sizeof *scatter);
  if (!slices || !layers || !scatter) return MPNAS_E_NO_MEMORY;
  memset(net, 0, sizeof *net);
  net->in_h = sn->space.in_h;
  net->in_w = sn->space.in_w;
  net->stem_g = mpnas__space_stem_geom(&sn->space);
  net->head_g = mpnas__space_head_geom(&sn->space);
  mpnas__conv_bind(&params, &wset->stem, &net->stem, train ? &net->stem_gr : NULL);
  mpnas__conv_bind(&params, &wset->head, &net->head, train ? &net->head_gr : NULL);
  net->nlayers = sn->nlayers;
  net->layers = layers;
  for (int32_t l = 0; l < sn->nlayers; l++) {
    memset(&layers[l], 0, sizeof layers[l]);
    mpnas__op op = mpnas__space_op(&sn->space, &sn->layers[l], path[l]);
    if (op.kernel == 0) continue; /* zero: g stays NULL, identity through the residual */
    if ((st = slice(sn, &params, ws, set, l, op, train, &slices[l])) != MPNAS_OK) return st;
    layers[l].g = &slices[l].g;
    layers[l].w = slices[l].w;
    if (train) layers[l].gr = slices[l].gr;
  }
  net->classes = dm->classes;
  net->fc_w = mpnas__pw(&params, dm->fc_w);
  net->fc_b = mpnas__pw(&params, dm->fc_b);
  if (!train) return MPNAS_OK;
  net->fc_gw = mpnas__pg(&params, dm->fc_w);
  net->fc_gb = mpnas__pg(&params, dm->fc_b);
  *scatter = (sliced_path){sn, slices};
  net->after_backward = unslice_layer;
  net->user = scatter;
  return MPNAS_OK;
}

mpnas_status mpnas__supernet_bind_sampled(void *sn, int32_t domain, mpnas__arena *ws,
                                          float *grads, mpnas__net *net) {
  mpnas_supernet *s = sn;
  return bind_path(s, ws, domain, s->domains[domain].sampled, 1, grads, net);
}

static mpnas_status run_train(mpnas_supernet *sn, const mpnas__engine *eng, mpnas__arena *ws,
                              int32_t domain, const int32_t *path, const float *x,
                              const int32_t *labels, int32_t batch, float loss_scale,
                              double *loss, int32_t *correct) {
  mpnas__net net;
  mpnas_status st = bind_path(sn, ws, domain, path, 1, NULL, &net);
  if (st != MPNAS_OK) return st;
  return mpnas__net_train(eng, ws, &net, batch, x, labels, 1, (float)sn->cfg.label_smoothing,
                          loss_scale, loss, correct);
}

static mpnas_status run_eval(mpnas_supernet *sn, const mpnas__engine *eng, mpnas__arena *ws,
                             int32_t domain, const int32_t *path, const float *x,
                             const int32_t *labels, int32_t batch, double *loss,
                             int32_t *correct) {
  mpnas__net net;
  mpnas_status st = bind_path(sn, ws, domain, path, 0, NULL, &net);
  if (st != MPNAS_OK) return st;
  return mpnas__net_eval(eng, ws, &net, batch, x, labels, loss, correct);
}

mpnas_status mpnas__supernet_run(mpnas_supernet *sn, int32_t domain, const int32_t *path,
                                 const float *x, const int32_t *labels, int32_t batch,
                                 int train, float loss_scale, double *loss, int32_t *correct) {
  /* A pass runs a few hundred parallel ops; if some of the threads are off a processor
   * right now (other processes), each op would wait for them: run on those available. */
  mpnas__engine local = mpnas__engine_ready(&sn->ctx->engine);
  const mpnas__engine *eng = &local;
  mpnas__arena *ws = &sn->ws;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas_status st =
      train ? run_train(sn, eng, ws, domain, path, x, labels, batch, loss_scale, loss, correct)
            : run_eval(sn, eng, ws, domain, path, x, labels, batch, loss, correct);
  mpnas__arena_release(ws, mark);
  if (st == MPNAS_E_NO_MEMORY)
    return mpnas__fail(sn->ctx, st, "workspace allocation failed (batch %d)", (int)batch);
  return st;
}

int64_t mpnas__supernet_sampled_macs(const void *sn, int32_t domain) {
  const mpnas_supernet *s = sn;
  const mpnas__domain *dm = &s->domains[domain];
  return mpnas__path_cost(&s->space, dm->sampled, dm->classes).macs;
}

/* The domains in the order their evaluations start: the largest sampled paths (by
 * multiply-adds) first (the paths of a step differ by up to 1.8x in multiply-adds: over
 * 14 steps of bench_search, in domain order the later of two threads would finish 4.7%
 * past the even share, largest first 1.5%). */
static void validation_order(const mpnas_supernet *sn, int32_t *order) {
  double macs[MPNAS__MAX_DOMAINS];
  for (int32_t d = 0; d < sn->ndomains; d++) macs[d] = (double)mpnas__supernet_sampled_macs(sn, d);
  mpnas__largest_first(sn->ndomains, macs, order);
}

/* Images [lo, hi) of domain d's next validation batch into x and labels. */
static void draw_valid(mpnas_supernet *sn, int32_t d, int32_t lo, int32_t hi, float *x,
                       int32_t *labels) {
  mpnas__domain_data_batch_share(&sn->domains[d].data, mpnas__space_image_shape(&sn->space), 1,
                                 sn->cfg.valid_batch, lo, hi, NULL, x, labels);
}

mpnas_status mpnas__supernet_validate(mpnas_supernet *sn) {
  const mpnas__engine usable = mpnas__engine_usable(&sn->ctx->engine);
  const mpnas__engine *eng = &usable;
  mpnas__arena *ws = &sn->ws;
  int32_t D = sn->ndomains, batch = sn->cfg.valid_batch;
  size_t per = (size_t)sn->space.in_h * sn->space.in_w * sn->space.in_c;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas_status st = MPNAS_OK;
  float *x = mpnas__arena_floats(ws, per * (size_t)batch * (size_t)D);
  int32_t *labels = mpnas__arena_alloc(ws, sizeof(int32_t) * (size_t)batch * (size_t)D);
  int32_t *right = mpnas__arena_alloc(ws, sizeof(int32_t) * (size_t)D);
  mpnas_status *status = mpnas__arena_alloc(ws, sizeof(mpnas_status) * (size_t)D);
  if (!x || !labels || !right || !status) {
    st = MPNAS_E_NO_MEMORY;
    goto done;
  }
  /* Each domain draws its batch just before its evaluation, on the thread that runs it:
   * each draws from its own stream, so the images do not depend on where or in which
   * order the domains run. With W data-parallel workers each evaluates its share of every
   * batch, and the correct counts are summed. */
  int32_t lo, hi;
  mpnas__share(sn->ctx, batch, &lo, &hi);
  int32_t share = hi - lo;
  /* With several threads, whole domains run concurrently, each on one thread with its
   * own workspace: no synchronisation inside a forward pass, where the ops' own thread
   * split would meet at every op (and wait for any thread another process holds: the
   * domains are handed out dynamically). Domains left over (D not a multiple of the
   * threads) run one after another on all the threads. The results are the same either
   * way: nothing in a forward depends on the thread count (docs/THREADING.md). Not with
   * several workers: their BN sums over the workers must come in one order on all. */
  int threads = eng->threads, par = 0;
  if (threads > 1 && D >= 2 && share > 0 && sn->ctx->world == 1) {
    if (threads > D) threads = D;
    par = D / threads * threads;
  }
  for (int32_t d = 0; d < D; d++) status[d] = MPNAS_OK;
  int32_t order[MPNAS__MAX_DOMAINS];
  validation_order(sn, order);
  if (par > 0) {
    mpnas__arena *kids = mpnas__arena_kids(ws, threads);
    if (kids == NULL) {
      st = MPNAS_E_NO_MEMORY;
      goto done;
    }
    mpnas__engine one = *eng;
    one.threads = 1;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
#endif
    for (int32_t i = 0; i < par; i++) {
      int32_t d = order[i], slot = 0;
#if defined(_OPENMP)
      slot = omp_get_thread_num(); /* < threads: the team is at most that large */
#endif
      mpnas__arena *kw = &kids[slot];
      mpnas__arena_mark km = mpnas__arena_get_mark(kw);
      double loss;
      draw_valid(sn, d, lo, hi, x + per * (size_t)batch * d, labels + (size_t)batch * d);
      status[d] = run_eval(sn, &one, kw, d, sn->domains[d].sampled,
                           x + per * (size_t)batch * d, labels + (size_t)batch * d, share,
                           &loss, &right[d]);
      mpnas__arena_release(kw, km);
    }
  }
  mpnas__engine local =
      mpnas__engine_shared(par < D ? mpnas__engine_ready(eng) : *eng, sn->ctx, batch);
  for (int32_t i = par; i < D; i++) {
    int32_t d = order[i];
    right[d] = 0;
    /* a worker without images still draws: the streams stay in step */
    draw_valid(sn, d, lo, hi, x + per * (size_t)batch * d, labels + (size_t)batch * d);
    if (share == 0) continue; /* more workers than images */
    mpnas__arena_mark dm = mpnas__arena_get_mark(ws);
    double loss;
    status[d] = run_eval(sn, &local, ws, d, sn->domains[d].sampled,
                         x + per * (size_t)batch * d, labels + (size_t)batch * d, share, &loss,
                         &right[d]);
    mpnas__arena_release(ws, dm);
  }
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++) st = status[d];
  if (st == MPNAS_OK) st = mpnas__domains_sum_correct(sn->ctx, D, right);
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++)
    sn->domains[d].valid_acc = (double)right[d] / batch;
done:
  mpnas__arena_release(ws, mark);
  if (st == MPNAS_E_NO_MEMORY)
    return mpnas__fail(sn->ctx, st, "workspace allocation failed (validation batch %d)",
                       (int)batch);
  return st;
}
