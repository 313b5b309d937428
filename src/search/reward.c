/* reward.c - the search reward, see reward.h. Pure functions: no context, no state. */
#include "search/reward.h"

#include <math.h>
#include <stddef.h>

void mpnas__reward_config_default(mpnas__reward_config *cfg) {
  cfg->form = MPNAS__REWARD_ABS;
  cfg->beta = MPNAS__REWARD_ABS_BETA;
  cfg->target_cost = 0.0;
  cfg->sharing_gamma = MPNAS__REWARD_SHARING_GAMMA;
}

mpnas_status mpnas__reward_config_check(const mpnas__reward_config *cfg) {
  if (cfg == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (cfg->form != MPNAS__REWARD_NONE && cfg->form != MPNAS__REWARD_ABS &&
      cfg->form != MPNAS__REWARD_MNAS)
    return MPNAS_E_UNKNOWN_PARAMETER;
  if (!isfinite(cfg->sharing_gamma)) return MPNAS_E_OUT_OF_RANGE;
  if (cfg->form == MPNAS__REWARD_NONE) return MPNAS_OK; /* beta and C0 unused */
  if (!isfinite(cfg->beta) || !isfinite(cfg->target_cost) || !(cfg->target_cost > 0.0))
    return MPNAS_E_OUT_OF_RANGE;
  return MPNAS_OK;
}

mpnas_status mpnas__reward(const mpnas__reward_config *cfg, double quality, double cost,
                           double share, double *out) {
  mpnas_status st = mpnas__reward_config_check(cfg);
  if (st != MPNAS_OK) return st;
  if (out == NULL || !isfinite(quality) || !isfinite(share) || share < 0.0)
    return MPNAS_E_INVALID_ARGUMENT;
  double r = quality;
  if (cfg->form != MPNAS__REWARD_NONE) {
    if (!isfinite(cost) || cost < 0.0) return MPNAS_E_INVALID_ARGUMENT;
    double ratio = cost / cfg->target_cost;
    if (cfg->form == MPNAS__REWARD_ABS) {
      r = quality + cfg->beta * fabs(ratio - 1.0);
    } else {
      if (!(cost > 0.0)) return MPNAS_E_INVALID_ARGUMENT;
      r = quality * pow(ratio, cfg->beta);
    }
  }
  if (cfg->sharing_gamma != 0.0) r -= cfg->sharing_gamma * share;
  if (!(fabs(r) <= MPNAS__REWARD_MAX)) return MPNAS_E_OUT_OF_RANGE; /* e.g. a huge ratio ^ beta */
  *out = r;
  return MPNAS_OK;
}

mpnas_status mpnas__reward_param_share(int32_t n_layers, const int32_t *n_ops,
                                       const double *node_params, int32_t n_domains,
                                       const int32_t *argmax_paths, int32_t domain,
                                       const int32_t *path, double *out) {
  if (n_ops == NULL || node_params == NULL || path == NULL || out == NULL || n_layers < 1 ||
      domain < 0 || domain >= n_domains || (n_domains > 1 && argmax_paths == NULL))
    return MPNAS_E_INVALID_ARGUMENT;
  double share = 0.0;
  size_t offset = 0;
  for (int32_t l = 0; l < n_layers; l++) {
    int32_t op = path[l];
    if (n_ops[l] < 1 || op < 0 || op >= n_ops[l]) return MPNAS_E_INVALID_ARGUMENT;
    double p = node_params[offset + (size_t)op];
    if (!isfinite(p) || p < 0.0) return MPNAS_E_INVALID_ARGUMENT;
    int users = 1; /* this domain */
    for (int32_t e = 0; e < n_domains; e++) {
      if (e == domain) continue;
      int32_t other = argmax_paths[(size_t)e * (size_t)n_layers + (size_t)l];
      if (other < 0 || other >= n_ops[l]) return MPNAS_E_INVALID_ARGUMENT;
      users += other == op;
    }
    share += p / users;
    offset += (size_t)n_ops[l];
  }
  *out = share;
  return MPNAS_OK;
}
