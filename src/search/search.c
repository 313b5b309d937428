/* search.c - one search step and the cost model (docs/ALGORITHM.md section 3).
 *
 * A step: every domain samples its path (warmup: random non-zero ops with a probability
 * falling linearly 1 -> 0 over the warmup fraction); ABDP (docs/ABDP.md) recomputes the
 * loss weights w_d and splits the step's train_batch * D images among the domains
 * (count_d); one SGD step on the weighted sum of the domains' losses; then every domain
 * evaluates its path on a validation batch, gets a reward from accuracy, cost and
 * (optionally) sharing, and its controller takes one REINFORCE step (after the RL
 * delay; before it, the reward only warms the baseline). The training losses and
 * validation accuracies feed ABDP's moving averages for the next step's weights. */
#include <math.h>
#include <string.h>

#include "search/supernet.h"
#include "train/optim.h"

/* Cost of a domain's path in the configured unit. */
static double path_cost(const mpnas_supernet *sn, int32_t d, const int32_t *path) {
  mpnas__cost c = mpnas__path_cost(&sn->space, path, sn->domains[d].classes);
  switch (sn->cfg.cost) {
    case MPNAS_COST_PARAMS: return (double)c.params;
    case MPNAS_COST_LATENCY: {
      double t = sn->fixed_latency;
      for (int32_t l = 0; l < sn->nlayers; l++) t += sn->node_latency[sn->op_offset[l] + path[l]];
      return t;
    }
    default: return (double)c.macs;
  }
}

static double target_cost(const mpnas_supernet *sn, int32_t d) {
  if (sn->cfg.target > 0) return sn->cfg.target;
  return path_cost(sn, d, sn->fixed_path_reference);
}

/* The unit of the sharing term: the parameters of the reference path's nodes (> 0: a
 * reference path has a non-zero op on every layer that cannot be skipped, and at least
 * one such layer exists). */
static double reference_params(const mpnas_supernet *sn) {
  double p = 0.0;
  for (int32_t l = 0; l < sn->nlayers; l++)
    p += sn->node_params[sn->op_offset[l] + sn->fixed_path_reference[l]];
  return p > 0.0 ? p : 1.0;
}

/* The loss-weighting hook: ABDP's weights from the moving averages observed up to the
 * previous step (one update per step; all 1 with signal NONE or before every domain has
 * reported), and this step's images per domain out of train_batch * D. BALANCED gives
 * every domain train_batch images and draws no random number, so the defaults reproduce
 * the search as it was before ABDP bit for bit. */
static mpnas_status loss_weights(mpnas_supernet *sn) {
  int32_t D = sn->ndomains;
  mpnas__abdp_update(sn->abdp);
  mpnas_status st = mpnas__abdp_sample_counts(sn->abdp, &sn->abdp_rng, sn->cfg.train_batch * D,
                                              sn->abdp_counts);
  if (st != MPNAS_OK) return st;
  const double *w = mpnas__abdp_weights(sn->abdp);
  for (int32_t d = 0; d < D; d++) {
    sn->domains[d].weight = w[d];
    sn->domains[d].batch_images = sn->abdp_counts[d];
  }
  return MPNAS_OK;
}

/* A value ABDP accepts as an observation: a diverged (non-finite) loss is left out, so it
 * neither stops the search (it did not before ABDP) nor reaches the other domains' weights. */
static int observable_loss(double loss) { return loss >= 0.0 && isfinite(loss); }

mpnas_status mpnas__supernet_step(mpnas_supernet *sn) {
  mpnas_context *ctx = sn->ctx;
  const mpnas__search_config *cfg = &sn->cfg;
  int32_t D = sn->ndomains, L = sn->nlayers;
  int64_t step = sn->step, total = cfg->steps;
  mpnas_status st = MPNAS_OK;

  /* 1. Paths. */
  double warm_steps = cfg->warmup_fraction * (double)total;
  float p = (double)step < warm_steps ? (float)(1.0 - (double)step / warm_steps) : 0.0f;
  for (int32_t d = 0; d < D; d++) {
    int32_t *path = sn->domains[d].sampled;
    if (cfg->method == MPNAS_METHOD_SINGLE_PATH) {
      memcpy(path, sn->fixed_path, sizeof(int32_t) * (size_t)L);
    } else if (cfg->method == MPNAS_METHOD_MULTI_HEAD && d > 0) {
      memcpy(path, sn->domains[0].sampled, sizeof(int32_t) * (size_t)L);
    } else {
      mpnas__controller_sample_warmup(sn->controllers[mpnas__supernet_controller_of(sn, d)].impl,
                                      &sn->rng, p, sn->warmup_allowed, path);
    }
  }

  /* 2. One optimiser step on the weighted sum of the domains' losses. */
  if ((st = loss_weights(sn)) != MPNAS_OK) return st;
  mpnas__params_zero_grad(&sn->params);
  size_t per = (size_t)sn->space.in_h * sn->space.in_w * sn->space.in_c;
  /* Batch buffers for the largest count a step can give: train_batch under BALANCED,
   * up to the whole train_batch * D under PROPORTIONAL (sized for that at once, so the
   * buffers do not grow from step to step). */
  int32_t train_cap = cfg->train_batch;
  if (sn->abdp_cfg.sampling == MPNAS__ABDP_SAMPLE_PROPORTIONAL) train_cap *= D;
  int32_t big = train_cap > cfg->valid_batch ? train_cap : cfg->valid_batch;
  float *x = mpnas__arena_floats(&sn->ws, per * (size_t)big);
  int32_t *labels = mpnas__arena_alloc(&sn->ws, sizeof(int32_t) * (size_t)big);
  if (!x || !labels) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating a batch");
  /* The step minimises the weighted SUM of the domains' losses: each domain's head and
   * path get its full gradient (a mean would slow every head down by 1/D). Domain d's
   * mean loss over its count_d images is scaled by w_d * count_d / train_batch: with
   * BALANCED sampling that is w_d, and with PROPORTIONAL every image of the step counts
   * the same, like training on the concatenated data. A domain without images this
   * step adds nothing and reports no training loss. */
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++) {
    mpnas__domain *dm = &sn->domains[d];
    int32_t count = sn->abdp_counts[d];
    if (count == 0) continue;
    double loss;
    int32_t right;
    float scale = (float)(dm->weight * (double)count / (double)cfg->train_batch);
    mpnas__supernet_batch(sn, d, 0, count, x, labels);
    st = mpnas__supernet_run(sn, d, dm->sampled, x, labels, count, 1, scale, &loss, &right);
    if (st != MPNAS_OK) break;
    dm->loss_ema = isnan(dm->loss_ema) ? loss : 0.9 * dm->loss_ema + 0.1 * loss;
    if (observable_loss(loss)) st = mpnas__abdp_observe_loss(sn->abdp, d, loss);
  }
  if (st != MPNAS_OK) return st;
  mpnas__optim_config opt = {MPNAS__OPT_SGD, (float)cfg->momentum, 1, 0.0f, 0.0f,
                             (float)cfg->weight_decay};
  mpnas__params_step(&sn->params, &opt, mpnas__lr_cosine((float)cfg->lr, step, total, 0));

  /* 3. Validation accuracy, cost and reward of each domain's path. */
  mpnas__reward_config rc;
  mpnas__reward_config_default(&rc);
  rc.form = cfg->cost == MPNAS_COST_NONE ? MPNAS__REWARD_NONE
            : cfg->reward == MPNAS_REWARD_MNAS ? MPNAS__REWARD_MNAS
                                               : MPNAS__REWARD_ABS;
  if (!isnan(cfg->beta)) rc.beta = cfg->beta;
  /* Sharing is charged only where the domains' paths form one model. */
  rc.sharing_gamma = cfg->method == MPNAS_METHOD_MPNAS ? cfg->gamma : 0.0;
  int32_t *argmax = sn->argmax_scratch;
  for (int32_t d = 0; d < D; d++)
    mpnas__controller_argmax(sn->controllers[mpnas__supernet_controller_of(sn, d)].impl,
                             argmax + (size_t)d * L);
  st = mpnas__supernet_validate(sn); /* every domain's valid_acc (domains run in parallel) */
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++) {
    mpnas__domain *dm = &sn->domains[d];
    if ((st = mpnas__abdp_observe_kpi(sn->abdp, d, dm->valid_acc)) != MPNAS_OK) break;
    dm->cost = path_cost(sn, d, dm->sampled);
    rc.target_cost = target_cost(sn, d);
    double added = 0.0;
    if (rc.sharing_gamma != 0.0) {
      st = mpnas__reward_added_params(L, sn->nops, sn->node_params, D, argmax, d, dm->sampled,
                                      &added);
      if (st != MPNAS_OK) break;
      added /= reference_params(sn);
    }
    st = mpnas__reward(&rc, dm->valid_acc, dm->cost, added, &dm->reward);
    /* Every setting is in its range, yet together with the paths' costs they can give no
     * usable reward (a target 10^300 times below the costs, beta -100 with MNAS, a
     * latency table of zeros): a state of this search, named as such, like a diverged
     * loss. */
    if (st != MPNAS_OK)
      return mpnas__fail(ctx, MPNAS_E_STATE,
                         "the reward of domain \"%s\" at step %lld is not usable: cost %g "
                         "against a target cost of %g with beta %g (%s); set "
                         "MPNAS_SEARCH_COST_TARGET near the paths' costs or a smaller |beta|",
                         dm->name, (long long)step, dm->cost, rc.target_cost, rc.beta,
                         st == MPNAS_E_OUT_OF_RANGE && rc.target_cost > 0.0
                             ? "it overflows"
                             : "a zero cost or target");
  }
  if (st != MPNAS_OK) return mpnas__fail(ctx, st, "computing rewards at step %lld", (long long)step);

  /* 4. REINFORCE (or, before the RL delay, only warm the baselines). */
  if (cfg->method != MPNAS_METHOD_SINGLE_PATH) {
    float rl_lr = mpnas__rl_lr(step, total, (float)cfg->rl_lr, cfg->rl_delay, cfg->rl_ramp);
    int32_t nc = sn->ncontrollers;
    for (int32_t c = 0; c < nc && st == MPNAS_OK; c++) {
      double r = 0.0;
      if (cfg->method == MPNAS_METHOD_MULTI_HEAD) {
        for (int32_t d = 0; d < D; d++) r += sn->domains[d].reward;
        r /= D;
      } else {
        r = sn->domains[c].reward;
      }
      mpnas__controller *ctrl = sn->controllers[c].impl;
      if (rl_lr > 0.0f)
        st = mpnas__controller_update(ctrl, sn->domains[c].sampled, r, rl_lr,
                                      (float)cfg->entropy, NULL);
      else
        mpnas__controller_observe(ctrl, r);
    }
  }
  sn->step++;
  if (st != MPNAS_OK) return st;
  if (mpnas__arena_reset(&sn->ws) != MPNAS_OK)
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY,
                       "merging the workspace after step %lld (the step itself is done)",
                       (long long)step);
  return MPNAS_OK;
}
