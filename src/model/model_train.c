/* model_train.c - training the multi-path model from scratch with ABDP
 * (docs/ALGORITHM.md sections 5-6).
 *
 * A step: ABDP splits D x batch images among the domains (balanced or proportional);
 * each domain with images runs its path forward and backward on its own sub-batch (its
 * own BN batch statistics, its own running statistics updated), its loss scaled by
 * w_d * count_d / batch so that balanced sampling gives the weighted sum of the domain
 * means and proportional sampling counts every image alike; one optimiser step
 * (cosine schedule with linear warmup; weight decay on conv weights only); every
 * valid_every steps each domain's validation accuracy (inference path, running
 * statistics) feeds ABDP's KPI signal and the progress statistics. */
#include <math.h>
#include <string.h>

#include "model/model.h"
#include "train/optim.h"

#define STREAM_SAMPLING 2u /* ABDP's proportional sampling (the domains' data streams:
                              net/multidomain.c) */

/* Everything that can fail first (the layout, the splits, ABDP and its state), then the
 * model's own fields: a failure undoes what this call built and leaves the rest
 * untouched, so the model is as before and a retry starts clean. */
mpnas_status mpnas__model_prepare_state(mpnas_model *m, const double *abdp_state, size_t n) {
  if (m->prepared) return MPNAS_OK;
  mpnas_context *ctx = m->ctx;
  int32_t D = m->ndomains;
  if (D < 1) return mpnas__fail(ctx, MPNAS_E_STATE, "the model has no domains: add one first");
  mpnas_status st = mpnas__domains_prepare(ctx, m->domains, D, mpnas__space_image_shape(&m->space),
                                           m->cfg.valid_fraction);
  if (st != MPNAS_OK) return st;
  int built_here = !m->built;
  mpnas__abdp *abdp = NULL;
  st = mpnas__model_build(m);
  if (st == MPNAS_OK) st = mpnas__domains_abdp(ctx, m->domains, D, &m->cfg.abdp, 1, &abdp);
  if (st == MPNAS_OK && abdp_state != NULL) st = mpnas__abdp_import(abdp, abdp_state, n);
  if (st != MPNAS_OK) {
    mpnas__abdp_destroy(abdp);
    mpnas__domains_unprepare(ctx, m->domains, D);
    if (built_here) mpnas__model_unbuild(m);
    return st;
  }
  for (int32_t d = 0; d < D; d++) {
    mpnas__domain *dm = &m->domains[d];
    memcpy(dm->mean, dm->data.mean, sizeof dm->mean);
    memcpy(dm->invstd, dm->data.invstd, sizeof dm->invstd);
  }
  m->norm_ready = 1;
  mpnas__abdp_destroy(m->abdp);
  m->abdp = abdp;
  mpnas__rng_seed(&m->rng, ctx->seed, STREAM_SAMPLING);
  m->step = 0;
  m->prepared = 1;
  return MPNAS_OK;
}

mpnas_status mpnas__model_prepare(mpnas_model *m) { return mpnas__model_prepare_state(m, NULL, 0); }

/* Validation accuracy of every domain on one batch of its validation split. */
static mpnas_status validate(mpnas_model *m, float *x, int32_t *labels, float *logits) {
  int32_t n = m->cfg.valid_batch;
  mpnas__model_fold(m);
  for (int32_t d = 0; d < m->ndomains; d++) {
    mpnas__domain *dm = &m->domains[d];
    mpnas__domain_data_batch(&dm->data, mpnas__space_image_shape(&m->space), 1, n, NULL, x, labels);
    mpnas_status st = mpnas__model_infer(m, &m->ws, d, n, x, logits);
    if (st != MPNAS_OK) return st;
    int right = 0;
    mpnas__softmax_xent(n, dm->classes, logits, labels, 0.0f, NULL, &right);
    dm->valid_acc = (double)right / n;
    if ((st = mpnas__abdp_observe_kpi(m->abdp, d, dm->valid_acc)) != MPNAS_OK) return st;
  }
  return MPNAS_OK;
}

mpnas_status mpnas__model_step(mpnas_model *m) {
  mpnas_context *ctx = m->ctx;
  const mpnas__train_config *cfg = &m->cfg;
  int32_t D = m->ndomains, B = cfg->batch;
  mpnas_status st;
  int32_t counts[MPNAS__MAX_DOMAINS];
  if ((st = mpnas__abdp_sample_counts(m->abdp, &m->rng, B * D, counts)) != MPNAS_OK) return st;
  const double *w = mpnas__abdp_weights(m->abdp);

  int32_t big = B * D > cfg->valid_batch ? B * D : cfg->valid_batch;
  int32_t max_classes = 2;
  for (int32_t d = 0; d < D; d++)
    if (m->domains[d].classes > max_classes) max_classes = m->domains[d].classes;
  size_t per = (size_t)m->space.in_h * m->space.in_w * m->space.in_c;
  float *x = mpnas__arena_floats(&m->ws, per * (size_t)big);
  int32_t *labels = mpnas__arena_alloc(&m->ws, sizeof(int32_t) * (size_t)big);
  float *logits = mpnas__arena_floats(&m->ws, (size_t)cfg->valid_batch * max_classes);
  mpnas__net_layer *layers =
      mpnas__arena_alloc(&m->ws, sizeof *layers * ((size_t)m->nlayers + 1));
  if (!x || !labels || !logits || !layers)
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating a batch");

  /* A pass runs a few hundred parallel ops; on a machine where other processes hold
   * some of the processors, each op would wait for them: run on the threads that start
   * promptly now (as the search does; results do not depend on the thread count). */
  mpnas__engine eng = mpnas__engine_ready(&ctx->engine);

  mpnas__params_zero_grad(&m->params);
  for (int32_t d = 0; d < D; d++) {
    mpnas__domain *dm = &m->domains[d];
    dm->batch_images = counts[d];
    dm->weight = w[d];
    if (counts[d] == 0) continue;
    mpnas__augment aug = {cfg->augment_pad, dm->hflip};
    mpnas__domain_data_batch(&dm->data, mpnas__space_image_shape(&m->space), 0, counts[d], &aug,
                             x, labels);
    mpnas__net net;
    mpnas__model_bind(m, d, &net, layers);
    mpnas__arena_mark mark = mpnas__arena_get_mark(&m->ws);
    double loss;
    int32_t right;
    st = mpnas__net_train(&eng, &m->ws, &net, counts[d], x, labels, 1,
                          (float)cfg->label_smoothing, (float)(w[d] * counts[d] / B), &loss,
                          &right);
    mpnas__arena_release(&m->ws, mark);
    if (st == MPNAS_E_NO_MEMORY)
      return mpnas__fail(ctx, st, "workspace allocation failed (batch %d)", (int)counts[d]);
    if (st != MPNAS_OK) return st;
    if (!isfinite(loss))
      return mpnas__fail(ctx, MPNAS_E_STATE,
                         "training diverged: domain \"%s\" has a non-finite loss at step %lld "
                         "(lower MPNAS_TRAIN_LEARNING_RATE)",
                         dm->name, (long long)m->step);
    dm->bn_updates++;
    dm->loss_ema = isnan(dm->loss_ema) ? loss : 0.9 * dm->loss_ema + 0.1 * loss;
    if ((st = mpnas__abdp_observe_loss(m->abdp, d, loss)) != MPNAS_OK) return st;
  }
  mpnas__optim_config opt = {cfg->optimizer, (float)cfg->momentum, 1, 0.9f, 1.0f,
                             (float)cfg->weight_decay};
  if (cfg->optimizer == MPNAS__OPT_ADAM) {
    opt.rho = 0.999f;
    opt.eps = 1e-8f;
  }
  int64_t warm = (int64_t)(cfg->warmup_fraction * (double)cfg->steps);
  mpnas__params_step(&m->params, &opt, mpnas__lr_cosine((float)cfg->lr, m->step, cfg->steps, warm));
  m->step++;
  if (m->step % cfg->valid_every == 0 || m->step == cfg->steps)
    if ((st = validate(m, x, labels, logits)) != MPNAS_OK)
      return st == MPNAS_E_NO_MEMORY ? mpnas__fail(ctx, st, "workspace allocation failed") : st;
  mpnas__abdp_update(m->abdp);
  if (m->step == cfg->steps) mpnas__model_fold(m);
  if (mpnas__arena_reset(&m->ws) != MPNAS_OK)
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY,
                       "merging the workspace after step %lld (the step itself is done)",
                       (long long)m->step);
  return MPNAS_OK;
}
