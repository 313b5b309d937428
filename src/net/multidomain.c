/* multidomain.c - the multi-domain training skeleton (multidomain.h). */
#include "net/multidomain.h"

#include <math.h>
#include <string.h>

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

/* Domain d's forward and backward pass on its path: count images, the mean loss scaled
 * by loss_scale, gradients accumulated into the params store. */
static mpnas_status train_domain(const mpnas__trainer *t, const mpnas__engine *eng, int32_t d,
                                 const float *x, const int32_t *labels, int32_t count,
                                 float loss_scale, double *loss) {
  mpnas__arena_mark mark = mpnas__arena_get_mark(t->ws);
  mpnas__net net;
  int32_t correct;
  mpnas_status st = t->bind_path(t->owner, d, t->ws, &net);
  if (st == MPNAS_OK)
    st = mpnas__net_train(eng, t->ws, &net, count, x, labels, 1, t->label_smoothing,
                          loss_scale, loss, &correct);
  mpnas__arena_release(t->ws, mark);
  if (st == MPNAS_E_NO_MEMORY)
    return mpnas__fail(t->ctx, st, "workspace allocation failed (batch %d)", (int)count);
  return st;
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

  /* The batch, sized for the largest count a step can give: batch under BALANCED, up to
   * the whole batch x D under PROPORTIONAL (sized for that at once, so the workspace does
   * not grow from step to step). */
  int32_t cap = t->batch;
  if (mpnas__abdp_config_get(t->abdp)->sampling == MPNAS__ABDP_SAMPLE_PROPORTIONAL) cap *= D;
  size_t per = (size_t)t->shape.h * t->shape.w * t->shape.c;
  mpnas__arena_mark mark = mpnas__arena_get_mark(t->ws);
  float *x = mpnas__arena_floats(t->ws, per * (size_t)cap);
  int32_t *labels = mpnas__arena_alloc(t->ws, sizeof(int32_t) * (size_t)cap);
  if (!x || !labels) {
    mpnas__arena_release(t->ws, mark);
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating a batch");
  }
  /* A pass runs a few hundred parallel ops; on a machine where other processes hold some
   * of the processors, each op would wait for them: run on the threads that start
   * promptly now (results do not depend on the thread count). */
  mpnas__engine eng = mpnas__engine_ready(&ctx->engine);

  /* 2. Every domain's pass on its share of the step: all of it, or with W workers this
   * worker's share of the images, each drawn on every worker (streams in step), and the
   * loss scale's share (weight * share / batch), so that the shares' gradients sum to
   * the whole batch's. */
  double loss[MPNAS__MAX_DOMAINS];
  mpnas__params_zero_grad(t->params);
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++) {
    mpnas__domain *dm = &t->domains[d];
    loss[d] = 0.0;
    if (counts[d] == 0) continue;
    int32_t lo, hi;
    mpnas__share(ctx, counts[d], &lo, &hi);
    mpnas__augment aug = {t->augment_pad, dm->hflip};
    mpnas__domain_data_batch_share(&dm->data, t->shape, 0, counts[d], lo, hi, &aug, x, labels);
    if (hi == lo) continue; /* more workers than images: this one adds nothing */
    float loss_scale = (float)(weight[d] * (double)(hi - lo) / (double)t->batch);
    mpnas__engine shared = mpnas__engine_shared(eng, ctx, counts[d]);
    st = train_domain(t, &shared, d, x, labels, hi - lo, loss_scale, &loss[d]);
    if (ctx->world > 1) loss[d] *= hi - lo;
  }
  /* 3. The step's gradients are complete. */
  if (st == MPNAS_OK) st = gradients_complete(t, counts, loss);
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++)
    if (counts[d] > 0) st = record_loss(t, d, loss[d]);
  /* 4. One optimiser step. */
  if (st == MPNAS_OK) mpnas__params_step(t->params, &t->optim, t->lr);
  mpnas__arena_release(t->ws, mark);
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
