/* abdp_param.c - the public MPNAS_ABDP_* parameters onto an mpnas__abdp_config, shared
 * by the supernet's and the model's setters so both validate the same way. */
#include "train/abdp.h"

#include "common/common.h"

static double *double_field(mpnas__abdp_config *c, int32_t param) {
  switch (param) {
    case MPNAS_ABDP_TAU: return &c->tau;
    case MPNAS_ABDP_GAMMA: return &c->gamma;
    case MPNAS_ABDP_TEMPERATURE: return &c->temperature;
    case MPNAS_ABDP_LOSS_MOMENTUM: return &c->loss_momentum;
    case MPNAS_ABDP_KPI_MOMENTUM: return &c->kpi_momentum;
    case MPNAS_ABDP_W_MIN: return &c->w_min;
    case MPNAS_ABDP_W_MAX: return &c->w_max;
    default: return NULL;
  }
}

int mpnas__abdp_is_param(int32_t param) {
  return param >= MPNAS_ABDP_SAMPLING && param <= MPNAS_ABDP_W_MAX;
}

/* Set on a copy, check the whole config, then commit: a rejected value changes nothing. */
static mpnas_status commit(mpnas_context *ctx, mpnas__abdp_config *cfg,
                           const mpnas__abdp_config *next) {
  const char *field = NULL;
  mpnas_status st = mpnas__abdp_config_check(next, &field);
  if (st != MPNAS_OK)
    return mpnas__fail(ctx, st, "ABDP setting rejected: %s is invalid or out of range",
                       field ? field : "a field");
  *cfg = *next;
  return MPNAS_OK;
}

mpnas_status mpnas__abdp_param_set_int(mpnas_context *ctx, mpnas__abdp_config *cfg,
                                       int32_t param, int64_t v) {
  mpnas__abdp_config next = *cfg;
  if (param == MPNAS_ABDP_SAMPLING || param == MPNAS_ABDP_SIGNAL) {
    int32_t *slot = param == MPNAS_ABDP_SAMPLING ? &next.sampling : &next.signal;
    int64_t hi = param == MPNAS_ABDP_SAMPLING ? MPNAS_ABDP_SAMPLE_PROPORTIONAL
                                              : MPNAS_ABDP_SIGNAL_BOOST;
    if (v < 0 || v > hi)
      return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "%s must be 0..%lld, got %lld",
                         param == MPNAS_ABDP_SAMPLING ? "MPNAS_ABDP_SAMPLING" : "MPNAS_ABDP_SIGNAL",
                         (long long)hi, (long long)v);
    *slot = (int32_t)v;
    return commit(ctx, cfg, &next);
  }
  return mpnas__fail(ctx, MPNAS_E_UNKNOWN_PARAMETER, "ABDP parameter %d is not an integer parameter",
                     (int)param);
}

mpnas_status mpnas__abdp_param_get_int(mpnas_context *ctx, const mpnas__abdp_config *cfg,
                                       int32_t param, int64_t *v) {
  if (param == MPNAS_ABDP_SAMPLING) *v = cfg->sampling;
  else if (param == MPNAS_ABDP_SIGNAL) *v = cfg->signal;
  else
    return mpnas__fail(ctx, MPNAS_E_UNKNOWN_PARAMETER,
                       "ABDP parameter %d is not an integer parameter", (int)param);
  return MPNAS_OK;
}

mpnas_status mpnas__abdp_param_set_double(mpnas_context *ctx, mpnas__abdp_config *cfg,
                                          int32_t param, double v) {
  mpnas__abdp_config next = *cfg;
  double *slot = double_field(&next, param);
  if (slot == NULL)
    return mpnas__fail(ctx, MPNAS_E_UNKNOWN_PARAMETER,
                       "ABDP parameter %d is not a real-valued parameter", (int)param);
  *slot = v;
  return commit(ctx, cfg, &next);
}

mpnas_status mpnas__abdp_param_get_double(mpnas_context *ctx, const mpnas__abdp_config *cfg,
                                          int32_t param, double *v) {
  double *slot = double_field((mpnas__abdp_config *)(uintptr_t)cfg, param);
  if (slot == NULL)
    return mpnas__fail(ctx, MPNAS_E_UNKNOWN_PARAMETER,
                       "ABDP parameter %d is not a real-valued parameter", (int)param);
  *v = *slot;
  return MPNAS_OK;
}
