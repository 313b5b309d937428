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
#include <stdio.h>
#include <string.h>

#include "search/supernet.h"
#include "train/optim.h"

/* Cost of a domain's path in the unit of cfg (the supernet's or one being loaded). */
static double path_cost(const mpnas_supernet *sn, const mpnas__search_config *cfg, int32_t d,
                        const int32_t *path) {
  mpnas__cost c = mpnas__path_cost(&sn->space, path, sn->domains[d].classes);
  switch (cfg->cost) {
    case MPNAS_COST_PARAMS: return (double)c.params;
    case MPNAS_COST_LATENCY: {
      double t = sn->fixed_latency;
      for (int32_t l = 0; l < sn->nlayers; l++) t += sn->node_latency[sn->op_offset[l] + path[l]];
      return t;
    }
    default: return (double)c.macs;
  }
}

static double target_cost(const mpnas_supernet *sn, const mpnas__search_config *cfg,
                          int32_t d) {
  if (cfg->target > 0) return cfg->target;
  return path_cost(sn, cfg, d, sn->fixed_path_reference);
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

/* The reward's form, beta and sharing strength from the search settings. */
static void reward_config(const mpnas__search_config *cfg, mpnas__reward_config *rc) {
  mpnas__reward_config_default(rc);
  rc->form = cfg->cost == MPNAS_COST_NONE ? MPNAS__REWARD_NONE
             : cfg->reward == MPNAS_REWARD_MNAS ? MPNAS__REWARD_MNAS
                                                : MPNAS__REWARD_ABS;
  if (!isnan(cfg->beta)) rc->beta = cfg->beta;
  /* Sharing is charged only where the domains' paths form one model. */
  rc->sharing_gamma = cfg->method == MPNAS_METHOD_MPNAS ? cfg->gamma : 0.0;
}

/* Settings each in their range can still give no usable reward with the paths' costs
 * (a target 10^300 times below them, beta -100 with MNAS, a latency table of zeros).
 * The reward is monotone in the cost on either side of C0, so trying each domain's
 * cheapest and dearest paths (per layer the op that changes the reference path's cost
 * least / most; the cost is a sum over layers) with the worst and best accuracy and the
 * largest sharing charge finds any such combination before a search step does. */
static mpnas_status unusable_reward(mpnas_context *ctx, mpnas_status code, const char *where,
                                    const char *name, mpnas_status st, double cost,
                                    const mpnas__reward_config *rc) {
  return mpnas__fail(ctx, code,
                     "%s: the reward of domain \"%s\" is not usable: cost %g against a target "
                     "cost of %g with beta %g (%s); set MPNAS_SEARCH_COST_TARGET near the "
                     "paths' costs or a smaller |beta|",
                     where, name, cost, rc->target_cost, rc->beta,
                     st == MPNAS_E_OUT_OF_RANGE && rc->target_cost > 0.0 ? "it overflows"
                                                                         : "a zero cost or target");
}

mpnas_status mpnas__supernet_check_reward(mpnas_supernet *sn, const mpnas__search_config *cfg,
                                          mpnas_status code, const char *where) {
  int32_t L = sn->nlayers;
  int32_t *extreme = sn->argmax_scratch; /* [2 * L] of its [max(D, 2) * L] */
  mpnas__reward_config rc;
  reward_config(cfg, &rc);
  double share_max = 0.0; /* a path of each layer's biggest node, shared with nobody */
  for (int32_t l = 0; l < L; l++) {
    double most = 0.0;
    for (int32_t j = 0; j < sn->nops[l]; j++)
      most = fmax(most, sn->node_params[sn->op_offset[l] + j]);
    share_max += most;
  }
  share_max /= reference_params(sn);
  for (int32_t d = 0; d < sn->ndomains; d++) {
    int32_t *cheap = extreme, *dear = extreme + L;
    memcpy(cheap, sn->fixed_path_reference, sizeof(int32_t) * (size_t)L);
    memcpy(dear, sn->fixed_path_reference, sizeof(int32_t) * (size_t)L);
    for (int32_t l = 0; l < L; l++) {
      int32_t *probe = cheap; /* cheap differs from the reference only at layers < l */
      int32_t ref = sn->fixed_path_reference[l], lo = ref, hi = ref;
      double clo = INFINITY, chi = -INFINITY;
      for (int32_t j = 0; j < sn->nops[l]; j++) {
        probe[l] = j;
        double c = path_cost(sn, cfg, d, probe);
        if (c < clo) clo = c, lo = j;
        if (c > chi) chi = c, hi = j;
      }
      cheap[l] = lo;
      dear[l] = hi;
    }
    rc.target_cost = target_cost(sn, cfg, d);
    const double costs[2] = {path_cost(sn, cfg, d, cheap), path_cost(sn, cfg, d, dear)};
    for (int k = 0; k < 2; k++)
      for (int q = 0; q <= 1; q++) {
        double r;
        double share = rc.sharing_gamma != 0.0 ? share_max : 0.0;
        mpnas_status st = mpnas__reward(&rc, (double)q, costs[k], share, &r);
        if (st != MPNAS_OK)
          return unusable_reward(sn->ctx, code, where, sn->domains[d].name, st, costs[k], &rc);
      }
  }
  return MPNAS_OK;
}

/* Step 2, the weights: one optimiser step on the weighted sum of the domains' losses,
 * every domain on its sampled path (the multi-domain trainer, net/multidomain.h). ABDP's
 * weights come from the moving averages observed up to the previous step (one update
 * per step, here; all 1 with signal NONE or before every domain has reported), and its
 * counts split train_batch * D images among the domains. BALANCED gives every domain
 * train_batch images and draws no random number, so the defaults reproduce the search
 * as it was before ABDP bit for bit. A diverged (non-finite) loss does not stop the
 * search (it did not before ABDP); it is only kept out of ABDP's averages. */
static mpnas__trainer weight_trainer(mpnas_supernet *sn) {
  const mpnas__search_config *cfg = &sn->cfg;
  const mpnas__trainer trainer = {
      .ctx = sn->ctx,
      .shape = mpnas__space_image_shape(&sn->space),
      .ndomains = sn->ndomains,
      .domains = sn->domains,
      .abdp = sn->abdp,
      .abdp_rng = &sn->abdp_rng,
      .params = &sn->params,
      .ws = &sn->ws,
      .bind_path = mpnas__supernet_bind_sampled,
      .pass_macs = mpnas__supernet_sampled_macs,
      .owner = sn,
      .step = sn->step,
      .batch = cfg->train_batch,
      .augment_pad = 0,
      .label_smoothing = (float)cfg->label_smoothing,
      .optim = {MPNAS__OPT_SGD, (float)cfg->momentum, 1, 0.0f, 0.0f, (float)cfg->weight_decay},
      .lr = mpnas__lr_cosine((float)cfg->lr, sn->step, cfg->steps, 0),
      .lr_setting = NULL,
  };
  return trainer;
}

static mpnas_status weight_step(mpnas_supernet *sn) {
  mpnas__abdp_update(sn->abdp);
  const mpnas__trainer trainer = weight_trainer(sn);
  return mpnas__trainer_step(&trainer);
}

/* ---- Undoing a failed step (docs/API-STABILITY.md, "Failure atomicity") ------------- */

/* The undo state, allocated once, before the first step changes anything. */
static mpnas_status undo_alloc(mpnas_supernet *sn) {
  mpnas__trainer t = weight_trainer(sn);
  mpnas_status st = mpnas__step_undo_alloc(&sn->undo, &t, sn->nlayers);
  if (st != MPNAS_OK || sn->undo_ctrl != NULL) return st;
  int32_t nc = sn->ncontrollers;
  sn->undo_ctrl = mpnas__calloc(sn->ctx, (size_t)nc, sizeof *sn->undo_ctrl);
  for (int32_t c = 0; c < nc && sn->undo_ctrl != NULL && st == MPNAS_OK; c++)
    st = mpnas__controller_create(sn->ctx, sn->nlayers, sn->nops, &sn->undo_ctrl[c]);
  if (sn->undo_ctrl == NULL || st != MPNAS_OK) {
    mpnas__supernet_undo_free(sn);
    return mpnas__fail(sn->ctx, MPNAS_E_NO_MEMORY, "allocating the state a failed step restores");
  }
  return MPNAS_OK;
}

static void undo_save(mpnas_supernet *sn) {
  mpnas__trainer t = weight_trainer(sn);
  mpnas__step_undo_save(&sn->undo, &t);
  for (int32_t c = 0; c < sn->ncontrollers; c++)
    mpnas__controller_copy_state(sn->undo_ctrl[c], sn->controllers[c].impl);
  sn->undo_rng = sn->rng;
}

/* Back to as before the step: st is the step's failure, returned. */
static mpnas_status undo_restore(mpnas_supernet *sn, int64_t step, mpnas_status st) {
  sn->step = step;
  mpnas__trainer t = weight_trainer(sn);
  mpnas__step_undo_restore(&sn->undo, &t);
  for (int32_t c = 0; c < sn->ncontrollers; c++)
    mpnas__controller_copy_state(sn->controllers[c].impl, sn->undo_ctrl[c]);
  sn->rng = sn->undo_rng;
  return st;
}

static mpnas_status step_once(mpnas_supernet *sn) {
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
  if ((st = weight_step(sn)) != MPNAS_OK) return st;

  /* 3. Validation accuracy, cost and reward of each domain's path. */
  mpnas__reward_config rc;
  reward_config(cfg, &rc);
  int32_t *argmax = sn->argmax_scratch;
  for (int32_t d = 0; d < D; d++)
    mpnas__controller_argmax(sn->controllers[mpnas__supernet_controller_of(sn, d)].impl,
                             argmax + (size_t)d * L);
  st = mpnas__supernet_validate(sn); /* every domain's valid_acc (domains run in parallel) */
  if (st == MPNAS_E_IO) return st; /* the collective hook failed: keep its message */
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++) {
    mpnas__domain *dm = &sn->domains[d];
    if ((st = mpnas__abdp_observe_kpi(sn->abdp, d, dm->valid_acc)) != MPNAS_OK) break;
    dm->cost = path_cost(sn, cfg, d, dm->sampled);
    rc.target_cost = target_cost(sn, cfg, d);
    double share = 0.0;
    if (rc.sharing_gamma != 0.0) {
      st = mpnas__reward_param_share(L, sn->nops, sn->node_params, D, argmax, d, dm->sampled,
                                     &share);
      if (st != MPNAS_OK) break;
      share /= reference_params(sn);
    }
    st = mpnas__reward(&rc, dm->valid_acc, dm->cost, share, &dm->reward);
    /* mpnas__supernet_check_reward refuses such settings before the first step; kept
     * as the last line of defence (a latency table set by the host mid-search). */
    if (st != MPNAS_OK) {
      char where[48];
      snprintf(where, sizeof where, "step %lld", (long long)step);
      return unusable_reward(ctx, MPNAS_E_STATE, where, dm->name, st, dm->cost, &rc);
    }
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
                       "merging the workspace after step %lld (the step is undone)",
                       (long long)step);
  return MPNAS_OK;
}

/* A step, all or nothing: on failure everything it changed is put back. */
mpnas_status mpnas__supernet_step(mpnas_supernet *sn) {
  mpnas_status st = undo_alloc(sn);
  if (st != MPNAS_OK) return st;
  int64_t step = sn->step;
  undo_save(sn);
  st = step_once(sn);
  return st == MPNAS_OK ? st : undo_restore(sn, step, st);
}
