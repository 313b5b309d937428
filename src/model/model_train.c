/* model_train.c - training the multi-path model from scratch with ABDP
 * (docs/ALGORITHM.md sections 5-6).
 *
 * A step is the multi-domain trainer's (net/multidomain.h), every domain on its path
 * through the model's nodes: ABDP splits D x batch images among the domains (balanced
 * or proportional); each domain with images runs forward and backward on its own
 * sub-batch (its own BN batch statistics, its own running statistics updated), its loss
 * scaled by w_d * count_d / batch; one optimiser step (cosine schedule with linear
 * warmup; weight decay on conv weights only). Then every valid_every steps each domain's
 * validation accuracy (inference path, running statistics) feeds ABDP's KPI signal and
 * the progress statistics, and ABDP's weights are recomputed for the next step. */
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
  mpnas__rng_seed(&m->abdp_rng, ctx->seed, STREAM_SAMPLING);
  m->step = 0;
  m->run_seed = ctx->seed;
  m->prepared = 1;
  return MPNAS_OK;
}

mpnas_status mpnas__model_prepare(mpnas_model *m) { return mpnas__model_prepare_state(m, NULL, 0); }

/* The multi-domain trainer's bind_path (net/multidomain.h): domain d's path through
 * the model's nodes, with its own BN running statistics. */
static mpnas_status bind_path(void *model, int32_t d, mpnas__arena *ws, float *grads,
                              mpnas__net *net) {
  mpnas_model *m = model;
  mpnas__net_layer *layers = mpnas__arena_alloc(ws, sizeof *layers * ((size_t)m->nlayers + 1));
  if (layers == NULL) return MPNAS_E_NO_MEMORY;
  mpnas__model_bind(m, d, grads, net, layers);
  return MPNAS_OK;
}

static int64_t path_macs(const void *model, int32_t d) {
  const mpnas_model *m = model;
  return mpnas__path_cost(&m->space, m->domains[d].path, m->domains[d].classes).macs;
}

/* Validation accuracy of every domain on one batch of its validation split. */
static mpnas_status validate(mpnas_model *m) {
  int32_t n = m->cfg.valid_batch, max_classes = 2;
  for (int32_t d = 0; d < m->ndomains; d++)
    if (m->domains[d].classes > max_classes) max_classes = m->domains[d].classes;
  mpnas__image_shape shape = mpnas__space_image_shape(&m->space);
  float *x = mpnas__arena_floats(&m->ws, (size_t)shape.h * shape.w * shape.c * (size_t)n);
  int32_t *labels = mpnas__arena_alloc(&m->ws, sizeof(int32_t) * (size_t)n);
  float *logits = mpnas__arena_floats(&m->ws, (size_t)n * (size_t)max_classes);
  if (!x || !labels || !logits) return MPNAS_E_NO_MEMORY;
  mpnas__model_fold(m);
  /* With W data-parallel workers each infers its share of every batch; the correct
   * counts are summed. */
  int32_t lo, hi, right[MPNAS__MAX_DOMAINS];
  mpnas__share(m->ctx, n, &lo, &hi);
  for (int32_t d = 0; d < m->ndomains; d++) {
    mpnas__domain *dm = &m->domains[d];
    mpnas__domain_data_batch_share(&dm->data, shape, 1, n, lo, hi, NULL, x, labels);
    right[d] = 0;
    if (hi == lo) continue;
    mpnas_status st = mpnas__model_infer(m, &m->ws, d, hi - lo, x, logits, NULL);
    if (st != MPNAS_OK) return st;
    int r = 0;
    mpnas__softmax_xent(hi - lo, dm->classes, logits, labels, 0.0f, NULL, &r);
    right[d] = r;
  }
  mpnas_status st = mpnas__domains_sum_correct(m->ctx, m->ndomains, right);
  for (int32_t d = 0; d < m->ndomains && st == MPNAS_OK; d++) {
    mpnas__domain *dm = &m->domains[d];
    dm->valid_acc = (double)right[d] / n;
    st = mpnas__abdp_observe_kpi(m->abdp, d, dm->valid_acc);
  }
  return st;
}

static mpnas__trainer model_trainer(mpnas_model *m) {
  mpnas_context *ctx = m->ctx;
  const mpnas__train_config *cfg = &m->cfg;
  mpnas__optim_config opt = {cfg->optimizer, (float)cfg->momentum, 1, 0.9f, 1.0f,
                             (float)cfg->weight_decay};
  if (cfg->optimizer == MPNAS__OPT_ADAM) {
    opt.rho = 0.999f;
    opt.eps = 1e-8f;
  }
  int64_t warm = (int64_t)(cfg->warmup_fraction * (double)cfg->steps);
  const mpnas__trainer trainer = {
      .ctx = ctx,
      .shape = mpnas__space_image_shape(&m->space),
      .ndomains = m->ndomains,
      .domains = m->domains,
      .abdp = m->abdp,
      .abdp_rng = &m->abdp_rng,
      .params = &m->params,
      .ws = &m->ws,
      .bind_path = bind_path,
      .pass_macs = path_macs,
      .owner = m,
      .step = m->step,
      .batch = cfg->batch,
      .augment_pad = cfg->augment_pad,
      .label_smoothing = (float)cfg->label_smoothing,
      .optim = opt,
      .lr = mpnas__lr_cosine((float)cfg->lr, m->step, cfg->steps, warm),
      .lr_setting = "MPNAS_TRAIN_LEARNING_RATE",
  };
  return trainer;
}

static mpnas_status step_once(mpnas_model *m) {
  mpnas_context *ctx = m->ctx;
  const mpnas__train_config *cfg = &m->cfg;
  const mpnas__trainer trainer = model_trainer(m);
  mpnas_status st = mpnas__trainer_step(&trainer);
  if (st != MPNAS_OK) return st;
  m->step++;
  if (m->step % cfg->valid_every == 0 || m->step == cfg->steps)
    if ((st = validate(m)) != MPNAS_OK)
      return st == MPNAS_E_NO_MEMORY ? mpnas__fail(ctx, st, "workspace allocation failed") : st;
  /* ABDP's weights for the next step, from the averages up to this one (checkpoints
   * save them so). */
  mpnas__abdp_update(m->abdp);
  if (m->step == cfg->steps) mpnas__model_fold(m);
  if (mpnas__arena_reset(&m->ws) != MPNAS_OK)
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY,
                       "merging the workspace after step %lld (the step is undone)",
                       (long long)m->step);
  return MPNAS_OK;
}

/* A step, all or nothing (docs/API-STABILITY.md, "Failure atomicity"): on failure the
 * trainer's state, the step counter and the folded BN are as before it. */
mpnas_status mpnas__model_step(mpnas_model *m) {
  mpnas__trainer t = model_trainer(m);
  mpnas_status st = mpnas__step_undo_alloc(&m->undo, &t, 0);
  if (st != MPNAS_OK) return st;
  int64_t step = m->step;
  uint64_t folds = m->folds;
  mpnas__step_undo_save(&m->undo, &t);
  st = step_once(m);
  if (st == MPNAS_OK) return st;
  m->step = step;
  mpnas__step_undo_restore(&m->undo, &t);
  if (m->folds != folds) mpnas__model_fold(m); /* the step folded its weights: refold */
  return st;
}

/* ---- A training call ------------------------------------------------------------------ */

/* What a preparation replaces (mpnas__model_train): NULL domains when the model was
 * prepared already. */
typedef struct prior {
  mpnas__domain *domains; /* [ndomains]: statistics and input normalisation */
  mpnas__abdp *abdp;      /* ABDP with its state, or NULL */
  mpnas__rng abdp_rng;
  int64_t step;
  int built, norm_ready;
} prior;

static mpnas_status prepare_call(mpnas_model *m, prior *pr) {
  *pr = (prior){0};
  if (m->prepared) return MPNAS_OK;
  size_t n = sizeof(mpnas__domain) * (size_t)(m->ndomains > 0 ? m->ndomains : 1);
  pr->domains = mpnas__malloc(m->ctx, n);
  if (pr->domains == NULL)
    return mpnas__fail(m->ctx, MPNAS_E_NO_MEMORY, "allocating a copy of the domains");
  memcpy(pr->domains, m->domains, sizeof(mpnas__domain) * (size_t)m->ndomains);
  *pr = (prior){pr->domains, m->abdp, m->abdp_rng, m->step, m->built, m->norm_ready};
  m->abdp = NULL; /* kept in pr, not destroyed by the preparation */
  mpnas_status st = mpnas__model_prepare(m);
  if (st != MPNAS_OK) {
    m->abdp = pr->abdp;
    mpnas__free(m->ctx, pr->domains);
    *pr = (prior){0};
  }
  return st;
}

/* The call's first step succeeded: what the preparation replaced goes. */
static void prior_drop(mpnas_model *m, prior *pr) {
  if (pr->domains == NULL) return;
  mpnas__abdp_destroy(pr->abdp);
  mpnas__free(m->ctx, pr->domains);
  *pr = (prior){0};
}

/* The call's first step failed (and was undone): undo the preparation too. */
static mpnas_status prior_restore(mpnas_model *m, prior *pr, mpnas_status st) {
  mpnas__domains_unprepare(m->ctx, m->domains, m->ndomains);
  memcpy(m->domains, pr->domains, sizeof(mpnas__domain) * (size_t)m->ndomains);
  mpnas__abdp_destroy(m->abdp);
  m->abdp = pr->abdp;
  m->abdp_rng = pr->abdp_rng;
  m->step = pr->step;
  m->norm_ready = pr->norm_ready;
  if (!pr->built) mpnas__model_unbuild(m);
  m->prepared = 0;
  mpnas__free(m->ctx, pr->domains);
  *pr = (prior){0};
  return st;
}

mpnas_status mpnas__model_train(mpnas_model *m, int64_t max_steps, mpnas_train_progress_fn progress,
                               void *user, int64_t every) {
  /* A preparation in this call replaces ABDP's state (kept from earlier training when
   * the data was cleared and set again), the step counter and the input normalisation:
   * if the call's first step fails, all of it is put back (docs/API-STABILITY.md). */
  prior pr;
  mpnas_status st = prepare_call(m, &pr);
  if (st != MPNAS_OK) return st;
  int64_t done = 0;
  while (m->step < m->cfg.steps && (max_steps == 0 || done < max_steps)) {
    if ((st = mpnas__model_step(m)) != MPNAS_OK) break; /* a failed step changes nothing */
    mpnas__model_quant_free(m); /* the int8 form was of the weights before this step */
    if (done++ == 0) prior_drop(m, &pr);
    int report = m->step == m->cfg.steps || (every > 0 && m->step % every == 0);
    if (progress && report && progress(user, m, m->step, m->cfg.steps) != 0) {
      st = mpnas__fail(m->ctx, MPNAS_E_CANCELLED,
                       "training stopped by the progress callback at step %lld (resumable)",
                       (long long)m->step);
      break;
    }
  }
  if (st != MPNAS_OK && done == 0 && pr.domains != NULL) return prior_restore(m, &pr, st);
  prior_drop(m, &pr);
  mpnas__model_fold(m); /* evaluation and predictors see the latest statistics */
  return st;
}

