/* abdp_param.c - the MPNAS_ABDP_* settings of an mpnas__abdp_config: names, ranges,
 * defaults. One table (common/settings.h), shared by the supernet's and the model's
 * setters, mpnas__abdp_config_check (so ABDP itself and every loader) and
 * mpnas_param_bounds. The search checkpoint's ABDP section and the model's CONF section
 * hold its stored rows in this order: never reorder them. */
#include <stddef.h>

#include "common/settings.h"
#include "train/abdp.h"

#define AT(member) offsetof(mpnas__abdp_config, member)
static const mpnas__setting FIELDS[] = {
    MPNAS__ENUM(MPNAS_ABDP_SAMPLING, "abdp_sampling", AT(sampling), MPNAS_ABDP_SAMPLE_BALANCED,
                MPNAS_ABDP_SAMPLE_PROPORTIONAL, MPNAS_ABDP_SAMPLE_BALANCED, "MPNAS_ABDP_SAMPLE_"),
    MPNAS__ENUM(MPNAS_ABDP_SIGNAL, "abdp_signal", AT(signal), MPNAS_ABDP_SIGNAL_NONE,
                MPNAS_ABDP_SIGNAL_BOOST, MPNAS_ABDP_SIGNAL_NONE, "MPNAS_ABDP_SIGNAL_"),
    MPNAS__REAL(MPNAS_ABDP_TAU, "abdp_tau", AT(tau), MPNAS__ABDP_MIN_TEMP, MPNAS__ABDP_MAX_TEMP,
                1, 0),
    MPNAS__REAL(MPNAS_ABDP_GAMMA, "abdp_gamma", AT(gamma), 0, MPNAS__ABDP_MAX_GAMMA, 2, 0),
    MPNAS__REAL(MPNAS_ABDP_TEMPERATURE, "abdp_temperature", AT(temperature),
                MPNAS__ABDP_MIN_TEMP, MPNAS__ABDP_MAX_TEMP, 1, 0),
    /* Momentum 1 would freeze the first value forever. */
    MPNAS__REAL(MPNAS_ABDP_LOSS_MOMENTUM, "abdp_loss_momentum", AT(loss_momentum), 0, 1, 0.9,
                MPNAS_PARAM_HI_OPEN),
    MPNAS__REAL(MPNAS_ABDP_KPI_MOMENTUM, "abdp_kpi_momentum", AT(kpi_momentum), 0, 1, 0.9,
                MPNAS_PARAM_HI_OPEN),
    /* Weights have mean 1: w_min above 1 or w_max below it leave no set of weights. */
    MPNAS__REAL(MPNAS_ABDP_W_MIN, "abdp_w_min", AT(w_min), 0, 1, 0.25, 0),
    MPNAS__REAL(MPNAS_ABDP_W_MAX, "abdp_w_max", AT(w_max), 1, MPNAS__ABDP_MAX_WEIGHT, 4, 0),
};
#undef AT

const mpnas__settings mpnas__abdp_settings = {FIELDS, sizeof FIELDS / sizeof FIELDS[0], "ABDP"};

int mpnas__abdp_is_param(int32_t param) {
  return mpnas__settings_find(&mpnas__abdp_settings, param) != NULL;
}

void mpnas__abdp_config_default(mpnas__abdp_config *cfg) {
  mpnas__settings_default(&mpnas__abdp_settings, cfg);
}

mpnas_status mpnas__abdp_config_check(const mpnas__abdp_config *cfg, const char **field) {
  if (field != NULL) *field = NULL;
  if (cfg == NULL) return MPNAS_E_INVALID_ARGUMENT;
  const mpnas__setting *bad = mpnas__settings_bad(&mpnas__abdp_settings, cfg);
  if (bad == NULL) return MPNAS_OK;
  if (field != NULL) *field = bad->name;
  return bad->flags & MPNAS_PARAM_ENUM ? MPNAS_E_UNKNOWN_PARAMETER : MPNAS_E_OUT_OF_RANGE;
}
