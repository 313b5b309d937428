/* multidomain.c - the multi-domain training skeleton (multidomain.h). */
#include "net/multidomain.h"

#include <math.h>
#include <string.h>

#if defined(_OPENMP)
#include <omp.h>
#endif

/* Random stream ids of a domain's data (rng.h: one stream per consumer): its
 * validation split and its batches. */
#define STREAM_SPLIT 100u
#define STREAM_DATA 1000u

/* ---- Domains ----------------------------------------------------------------------- */

mpnas_status mpnas__domains_check_new(mpnas_context *ctx, const mpnas__domain *domains,
                                      int32_t D, const char *name) {
  for (int32_t d = 0; d < D; d++)
    if (strcmp(domains[d].name, name) == 0)
      return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "a domain named \"%s\" exists", name);
  if (D >= MPNAS__MAX_DOMAINS)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "at most %d domains", MPNAS__MAX_DOMAINS);
  return MPNAS_OK;
}

void mpnas__domain_init(mpnas__domain *d, const char *name, int32_t classes) {
  memset(d, 0, sizeof *d);
  memcpy(d->name, name, strlen(name) + 1);
  d->classes = classes;
  d->loss_ema = d->valid_acc = d->reward = d->cost = NAN;
  d->weight = 1.0;
}

mpnas_status mpnas__domains_prepare(mpnas_context *ctx, mpnas__domain *domains, int32_t D,
                                    mpnas__image_shape shape, double valid_fraction) {
  for (int32_t d = 0; d < D; d++)
    if (domains[d].data.train.count == 0)
      return mpnas__fail(ctx, MPNAS_E_STATE, "domain \"%s\" has no training data",
                         domains[d].name);
  mpnas_status st = MPNAS_OK;
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++)
    st = mpnas__domain_data_prepare(ctx, &domains[d].data, domains[d].name, shape,
                                    valid_fraction, STREAM_SPLIT + (uint64_t)d,
                                    STREAM_DATA + (uint64_t)d);
  if (st != MPNAS_OK) mpnas__domains_unprepare(ctx, domains, D);
  return st;
}

void mpnas__domains_unprepare(const mpnas_context *ctx, mpnas__domain *domains, int32_t D) {
  for (int32_t d = 0; d < D; d++) mpnas__domain_data_unprepare(ctx, &domains[d].data);
}

mpnas_status mpnas__domains_abdp(mpnas_context *ctx, const mpnas__domain *domains, int32_t D,
                                 const mpnas__abdp_config *cfg, int sizes_known,
                                 mpnas__abdp **out) {
  int32_t classes[MPNAS__MAX_DOMAINS];
  int64_t sizes[MPNAS__MAX_DOMAINS];
  if (D > MPNAS__MAX_DOMAINS)
    return mpnas__fail(ctx, MPNAS_E_INTERNAL, "%d domains (at most %d)", (int)D,
                       MPNAS__MAX_DOMAINS);
  for (int32_t d = 0; d < D; d++) {
    classes[d] = domains[d].classes;
    sizes[d] = sizes_known ? domains[d].data.ntrain : 1;
  }
  return mpnas__abdp_create(ctx, D, classes, sizes, cfg, out);
}

mpnas_status mpnas__domains_sum_correct(mpnas_context *ctx, int32_t D, int32_t *right) {
  if (ctx->world <= 1) return MPNAS_OK;
  int64_t sum[MPNAS__MAX_DOMAINS];
  for (int32_t d = 0; d < D; d++) sum[d] = right[d];
  mpnas_status st = mpnas__allreduce(ctx, sum, D, MPNAS_COLLECTIVE_I64, "the validation counts");
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++) right[d] = (int32_t)sum[d];
  return st;
}

/* ---- The step ---------------------------------------------------------------------- */

/* Threads that run whole domains' passes at once (more are not used for that). */
#define MAX_PASS_THREADS 64

/* Where one domain's pass runs: a workspace, the batch drawn into it (sized for the
 * largest count a step can give, so that the workspace does not grow from step to step),
 * and a gradient buffer laid out like the params store's g, zero between passes
 * (mpnas__params_grad_parts). */
typedef struct pass_slot {
  mpnas__arena *ws;
  float *x;
  int32_t *labels;
  float *grads;
} pass_slot;

static mpnas_status slot_init(const mpnas__trainer *t, mpnas__arena *ws, int32_t cap,
                              float *grads, pass_slot *slot) {
  size_t per = (size_t)t->shape.h * t->shape.w * t->shape.c;
  slot->ws = ws;
  slot->x = mpnas__arena_floats(ws, per * (size_t)cap);
  slot->labels = mpnas__arena_alloc(ws, sizeof(int32_t) * (size_t)cap);
  slot->grads = grads;
  return slot->x && slot->labels ? MPNAS_OK : MPNAS_E_NO_MEMORY;
}

/* Domain d's part of the step, on the slot's workspace and batch: draw this worker's
 * share of its `count` images (each domain draws from its own stream, so the order in
 * which domains run does not change the images), then forward and backward on its path,
 * the mean loss scaled by loss_scale, gradients accumulated into `grads`. loss: the
 * mean loss (x this worker's images with W workers). No message is set (this may run on
 * a worker thread): the caller reports a failure. */
static mpnas_status domain_pass(const mpnas__trainer *t, const mpnas__engine *eng,
                                const pass_slot *slot, int32_t d, int32_t count,
                                float *grads, double *loss) {
  mpnas_context *ctx = t->ctx;
  mpnas__domain *dm = &t->domains[d];
  int32_t lo, hi;
  mpnas__share(ctx, count, &lo, &hi);
  mpnas__augment aug = {t->augment_pad, dm->hflip};
  mpnas__domain_data_batch_share(&dm->data, t->shape, 0, count, lo, hi, &aug, slot->x,
                                 slot->labels);
  if (hi == lo) return MPNAS_OK; /* more workers than images: this one adds nothing */
  /* The loss scale's share (weight * share / batch), so that the workers' gradients sum
   * to the whole batch's. */
  float loss_scale = (float)(t->domains[d].weight * (double)(hi - lo) / (double)t->batch);
  mpnas__engine shared = mpnas__engine_shared(*eng, ctx, count);
  mpnas__arena_mark mark = mpnas__arena_get_mark(slot->ws);
  mpnas__net net;
  int32_t correct;
  mpnas_status st = t->bind_path(t->owner, d, slot->ws, grads, &net);
  if (st == MPNAS_OK)
    st = mpnas__net_train(&shared, slot->ws, &net, hi - lo, slot->x, slot->labels, 1,
                          t->label_smoothing, loss_scale, loss, &correct);
  mpnas__arena_release(slot->ws, mark);
  if (ctx->world > 1) *loss *= hi - lo;
  return st;
}

/* p->g += grads, and grads zeroed again. A pass touches the tensors on its path only,
 * and of a supernet's widest tensors only its op's slice: blocks of zeros are skipped
 * (adding zeros would change nothing but the sign of a zero). */
static void merge_grads(mpnas__params *p, float *grads) {
  enum { BLOCK = 64 };
  size_t n = p->total;
  float *g = p->g;
  for (size_t b = 0; b < n; b += BLOCK) {
    size_t e = b + BLOCK < n ? b + BLOCK : n;
    int nonzero = 0;
    for (size_t j = b; j < e; j++) nonzero |= grads[j] != 0.0f;
    if (!nonzero) continue;
    for (size_t j = b; j < e; j++) {
      g[j] += grads[j];
      grads[j] = 0.0f;
    }
  }
}

/* A domain's training loss into its statistics and ABDP's moving average. */
static mpnas_status record_loss(const mpnas__trainer *t, int32_t d, double loss) {
  mpnas__domain *dm = &t->domains[d];
  if (!isfinite(loss) && t->lr_setting != NULL)
    return mpnas__fail(t->ctx, MPNAS_E_STATE,
                       "training diverged: domain \"%s\" has a non-finite loss at step %lld "
                       "(lower %s)",
                       dm->name, (long long)t->step, t->lr_setting);
  dm->bn_updates++;
  dm->loss_ema = isnan(dm->loss_ema) ? loss : 0.9 * dm->loss_ema + 0.1 * loss;
  /* A diverged loss is not an observation: it would reach the other domains' weights. */
  if (!(loss >= 0.0 && isfinite(loss))) return MPNAS_OK;
  return mpnas__abdp_observe_loss(t->abdp, d, loss);
}

/* The gradients of this step are complete here: every domain's pass has added into
 * t->params->g, and nothing has read them yet. With W > 1 data-parallel workers
 * (mpnas_context_set_collective), each having run its share of the step's images with
 * its share of each loss scale, one call sums the gradients - and the BN running
 * statistics, in the same block, which are then averaged (each worker updated them from
 * the whole batch's statistics, or from its share where a domain had fewer images than
 * workers) - so every worker takes the same optimiser step; a second sums the losses
 * (loss[d]: this worker's mean loss times its images), which become the step's mean. */
static mpnas_status gradients_complete(const mpnas__trainer *t, const int32_t *counts,
                                       double *loss) {
  mpnas_context *ctx = t->ctx;
  if (ctx->world <= 1) return MPNAS_OK;
  mpnas__params *p = t->params;
  size_t n = (size_t)(p->b - p->g) + p->btotal;
  mpnas_status st = mpnas__allreduce(ctx, p->g, (int64_t)n, MPNAS_COLLECTIVE_F32,
                                     "the gradients");
  if (st == MPNAS_OK)
    st = mpnas__allreduce(ctx, loss, t->ndomains, MPNAS_COLLECTIVE_F64, "the training losses");
  if (st != MPNAS_OK) return st;
  float inv = 1.0f / (float)ctx->world;
  for (size_t i = 0; i < p->btotal; i++) p->b[i] *= inv;
  for (int32_t d = 0; d < t->ndomains; d++)
    if (counts[d] > 0) loss[d] /= counts[d];
  return MPNAS_OK;
}

mpnas_status mpnas__trainer_step(const mpnas__trainer *t) {
  mpnas_context *ctx = t->ctx;
  int32_t D = t->ndomains;
  if (D < 1 || D > MPNAS__MAX_DOMAINS)
    return mpnas__fail(ctx, MPNAS_E_INTERNAL, "a step of %d domains (1..%d)", (int)D,
                       MPNAS__MAX_DOMAINS);

  /* 1. ABDP: this step's images per domain and loss weights. */
  int32_t counts[MPNAS__MAX_DOMAINS];
  mpnas_status st = mpnas__abdp_sample_counts(t->abdp, t->abdp_rng, t->batch * D, counts);
  if (st != MPNAS_OK) return st;
  const double *weight = mpnas__abdp_weights(t->abdp);
  for (int32_t d = 0; d < D; d++) {
    t->domains[d].weight = weight[d];
    t->domains[d].batch_images = counts[d];
  }

  /* 2. Every domain's pass on its share of the step (all of it, or with W workers this
   * worker's share of its images, each drawn on every worker: streams in step). The
   * gradients are summed in domain order, whatever runs where, so the result does not
   * depend on the thread count: the first domain's pass accumulates into the zeroed
   * store, each later one into a zeroed buffer of its own that is then added in
   * (merge_grads), in order. */
  int32_t cap = t->batch;
  if (mpnas__abdp_config_get(t->abdp)->sampling == MPNAS__ABDP_SAMPLE_PROPORTIONAL) cap *= D;
  int32_t run[MPNAS__MAX_DOMAINS], nrun = 0;
  double loss[MPNAS__MAX_DOMAINS];
  mpnas_status status[MPNAS__MAX_DOMAINS];
  for (int32_t d = 0; d < D; d++) {
    loss[d] = 0.0;
    if (counts[d] > 0) run[nrun++] = d;
  }
  mpnas__params *p = t->params;
  mpnas__params_zero_grad(p);
  /* A pass runs a few hundred parallel ops; on a machine where other processes hold some
   * of the processors, each op would wait for them: run on the threads that start
   * promptly now (results do not depend on the thread count). */
  mpnas__engine eng = mpnas__engine_ready(&ctx->engine);
  /* With several threads, whole domains run at once, each on one thread with its own
   * workspace (as the search's validation does): one parallel region per step instead of
   * the ops' own splits meeting at every op. Domains left over (not a multiple of the
   * threads) run after, one by one on all the threads. Not with several workers: their
   * BN sums over the workers must come in one order on all. */
  int threads = eng.threads, par = 0;
  if (threads > 1 && nrun >= 2 && ctx->world == 1) {
    if (threads > nrun) threads = nrun;
    if (threads > MAX_PASS_THREADS) threads = MAX_PASS_THREADS;
    par = nrun / threads * threads;
  }
  mpnas__arena_mark mark = mpnas__arena_get_mark(t->ws);
  pass_slot main_slot, slots[MAX_PASS_THREADS];
  mpnas__arena_mark kid_mark[MAX_PASS_THREADS];
  mpnas__arena *kids = NULL;
  int nslots = 0;
  float *parts = nrun > 1 ? mpnas__params_grad_parts(p, par > 0 ? threads : 1) : NULL;
  st = nrun > 1 && parts == NULL ? MPNAS_E_NO_MEMORY : MPNAS_OK;
  if (st == MPNAS_OK) st = slot_init(t, t->ws, cap, parts, &main_slot);
  if (st == MPNAS_OK && par > 0) {
    kids = mpnas__arena_kids(t->ws, threads);
    if (kids == NULL) st = MPNAS_E_NO_MEMORY;
  }
  for (; nslots < threads && par > 0 && st == MPNAS_OK; nslots++) {
    kid_mark[nslots] = mpnas__arena_get_mark(&kids[nslots]);
    st = slot_init(t, &kids[nslots], cap, parts + (size_t)nslots * p->total, &slots[nslots]);
  }
  for (int32_t i = 0; i < nrun; i++) status[i] = st;
  if (st == MPNAS_OK && par > 0) {
    mpnas__engine one = eng;
    one.threads = 1;
#if defined(_OPENMP)
#pragma omp parallel for ordered num_threads(threads) schedule(dynamic, 1)
#endif
    for (int32_t i = 0; i < par; i++) {
      int k = 0;
#if defined(_OPENMP)
      k = omp_get_thread_num(); /* < threads: the team is at most that large */
#endif
      int32_t d = run[i];
      status[i] = domain_pass(t, &one, &slots[k], d, counts[d], i == 0 ? p->g : slots[k].grads,
                              &loss[d]);
#if defined(_OPENMP)
#pragma omp ordered
#endif
      if (i > 0 && status[i] == MPNAS_OK) merge_grads(p, slots[k].grads);
    }
  }
  for (int32_t i = par; i < nrun && st == MPNAS_OK; i++) {
    int32_t d = run[i];
    status[i] = domain_pass(t, &eng, &main_slot, d, counts[d], i == 0 ? p->g : main_slot.grads,
                            &loss[d]);
    if (status[i] != MPNAS_OK) break;
    if (i > 0) merge_grads(p, main_slot.grads);
  }
  for (int i = 0; i < nslots; i++) mpnas__arena_release(&kids[i], kid_mark[i]);
  mpnas__arena_release(t->ws, mark);
  for (int32_t i = 0; i < nrun && st == MPNAS_OK; i++) st = status[i];
  if (st != MPNAS_OK && parts != NULL) /* a failed pass left its part unmerged */
    memset(parts, 0, sizeof(float) * p->total * (size_t)(par > 0 ? threads : 1));
  if (st == MPNAS_E_NO_MEMORY)
    return mpnas__fail(ctx, st, "workspace allocation failed (batch %d)", (int)t->batch);
  /* 3. The step's gradients are complete. */
  if (st == MPNAS_OK) st = gradients_complete(t, counts, loss);
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++)
    if (counts[d] > 0) st = record_loss(t, d, loss[d]);
  /* 4. One optimiser step. */
  if (st == MPNAS_OK) mpnas__params_step(t->params, &t->optim, t->lr);
  return st;
}

/* ---- Undoing a failed step --------------------------------------------------------- */

mpnas_status mpnas__step_undo_alloc(mpnas__step_undo *u, const mpnas__trainer *t,
                                    int32_t path_len) {
  if (u->domains != NULL && u->ndomains == t->ndomains && u->path_len == path_len &&
      u->nabdp == mpnas__abdp_state_size(t->abdp) && u->nbn == t->params->btotal)
    return MPNAS_OK;
  mpnas__step_undo_free(u); /* none yet, or for other domains (added since) */
  mpnas_context *ctx = t->ctx;
  int32_t D = t->ndomains;
  *u = (mpnas__step_undo){.ctx = ctx, .ndomains = D, .path_len = path_len};
  u->nabdp = mpnas__abdp_state_size(t->abdp);
  u->nbn = t->params->btotal;
  u->domains = mpnas__malloc(ctx, sizeof *u->domains * (size_t)D);
  u->paths = mpnas__malloc(ctx, sizeof(int32_t) * ((size_t)D * (size_t)path_len + 1));
  u->abdp = mpnas__malloc(ctx, sizeof(double) * u->nabdp);
  u->bn = mpnas__malloc(ctx, sizeof(float) * (u->nbn + 1));
  if (!u->domains || !u->paths || !u->abdp || !u->bn) {
    mpnas__step_undo_free(u);
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating the state a failed step restores");
  }
  return MPNAS_OK;
}

void mpnas__step_undo_save(mpnas__step_undo *u, const mpnas__trainer *t) {
  int32_t D = u->ndomains;
  memcpy(u->domains, t->domains, sizeof *u->domains * (size_t)D);
  for (int32_t d = 0; d < D && u->path_len > 0; d++)
    memcpy(u->paths + (size_t)d * u->path_len, t->domains[d].sampled,
           sizeof(int32_t) * (size_t)u->path_len);
  mpnas__abdp_export(t->abdp, u->abdp, u->nabdp); /* sized by state_size: cannot fail */
  if (u->nbn > 0) memcpy(u->bn, t->params->b, sizeof(float) * u->nbn);
  u->abdp_rng = *t->abdp_rng;
  u->opt_steps = t->params->steps;
}

void mpnas__step_undo_restore(const mpnas__step_undo *u, const mpnas__trainer *t) {
  int32_t D = u->ndomains;
  memcpy(t->domains, u->domains, sizeof *u->domains * (size_t)D);
  for (int32_t d = 0; d < D && u->path_len > 0; d++)
    memcpy(t->domains[d].sampled, u->paths + (size_t)d * u->path_len,
           sizeof(int32_t) * (size_t)u->path_len);
  mpnas__abdp_import(t->abdp, u->abdp, u->nabdp); /* its own export: valid */
  if (u->nbn > 0) memcpy(t->params->b, u->bn, sizeof(float) * u->nbn);
  *t->abdp_rng = u->abdp_rng;
  if (t->params->steps != u->opt_steps) mpnas__params_unstep(t->params);
}

void mpnas__step_undo_free(mpnas__step_undo *u) {
  if (u->ctx != NULL) {
    mpnas__free(u->ctx, u->domains);
    mpnas__free(u->ctx, u->paths);
    mpnas__free(u->ctx, u->abdp);
    mpnas__free(u->ctx, u->bn);
  }
  *u = (mpnas__step_undo){0};
}
