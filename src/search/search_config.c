/* search_config.c - the MPNAS_SEARCH_* settings: names, ranges, defaults. One table
 * (common/settings.h), so the public setters (api_supernet.c), the checkpoint (its CONF
 * section is this table's stored rows, in this order: never reorder them) and
 * mpnas_param_bounds all agree. */
#include <math.h>
#include <stddef.h>

#include "common/settings.h"
#include "search/supernet.h"

#define AT(member) offsetof(mpnas__search_config, member)
#define I32 MPNAS__SETTING_I32
#define I64 MPNAS__SETTING_I64
static const mpnas__setting FIELDS[] = {
    MPNAS__ENUM(MPNAS_SEARCH_METHOD, "method", AT(method), MPNAS_METHOD_MPNAS,
                MPNAS_METHOD_SINGLE_PATH, MPNAS_METHOD_MPNAS, "MPNAS_METHOD_"),
    MPNAS__INT(MPNAS_SEARCH_STEPS, "steps", I64, AT(steps), 1, 1e8, 400),
    MPNAS__INT(MPNAS_SEARCH_TRAIN_BATCH, "train_batch", I32, AT(train_batch), 1, 4096, 16),
    MPNAS__INT(MPNAS_SEARCH_VALID_BATCH, "valid_batch", I32, AT(valid_batch), 1, 4096, 128),
    MPNAS__ENUM(MPNAS_SEARCH_COST, "cost", AT(cost), MPNAS_COST_NONE, MPNAS_COST_LATENCY,
                MPNAS_COST_MACS, "MPNAS_COST_"),
    MPNAS__ENUM(MPNAS_SEARCH_REWARD, "reward", AT(reward), MPNAS_REWARD_ABS, MPNAS_REWARD_MNAS,
                MPNAS_REWARD_ABS, "MPNAS_REWARD_"),
    MPNAS__REAL(MPNAS_SEARCH_WARMUP_FRACTION, "warmup_fraction", AT(warmup_fraction), 0, 1,
                0.25, 0),
    MPNAS__REAL(MPNAS_SEARCH_LEARNING_RATE, "learning_rate", AT(lr), 0, 100, 0.05,
                MPNAS_PARAM_LO_OPEN),
    MPNAS__REAL(MPNAS_SEARCH_MOMENTUM, "momentum", AT(momentum), 0, 0.999, 0.9, 0),
    MPNAS__REAL(MPNAS_SEARCH_WEIGHT_DECAY, "weight_decay", AT(weight_decay), 0, 1, 3e-4, 0),
    MPNAS__REAL(MPNAS_SEARCH_LABEL_SMOOTHING, "label_smoothing", AT(label_smoothing), 0, 0.999,
                0.1, 0),
    MPNAS__REAL(MPNAS_SEARCH_RL_LEARNING_RATE, "rl_learning_rate", AT(rl_lr), 0, 100, 0.05,
                MPNAS_PARAM_LO_OPEN),
    MPNAS__REAL(MPNAS_SEARCH_RL_DELAY_FRACTION, "rl_delay_fraction", AT(rl_delay), 0, 0.999,
                MPNAS__RL_DELAY_FRACTION, 0),
    MPNAS__REAL(MPNAS_SEARCH_RL_RAMP, "rl_ramp", AT(rl_ramp), 1, 1e6, MPNAS__RL_RAMP, 0),
    MPNAS__REAL(MPNAS_SEARCH_ENTROPY_BONUS, "entropy_bonus", AT(entropy), 0, 100, 0, 0),
    /* NaN: the reward form's own exponent (the getter says which). */
    MPNAS__REAL(MPNAS_SEARCH_COST_BETA, "cost_beta", AT(beta), -100, 0, NAN,
                MPNAS__SETTING_NAN_OK),
    MPNAS__REAL(MPNAS_SEARCH_COST_TARGET, "cost_target", AT(target), 0, 1e18, 0, 0),
    MPNAS__REAL(MPNAS_SEARCH_SHARING_GAMMA, "sharing_gamma", AT(gamma), 0, 100,
                MPNAS__REWARD_SHARING_GAMMA, 0),
    MPNAS__REAL(MPNAS_SEARCH_VALIDATION_FRACTION, "validation_fraction", AT(valid_fraction), 0,
                0.9, 0.1, 0),
    MPNAS__READ_ONLY(MPNAS_SEARCH_STEP, "step", I64),
};
#undef AT
#undef I32
#undef I64

const mpnas__settings mpnas__search_settings = {FIELDS, sizeof FIELDS / sizeof FIELDS[0],
                                                "search"};

void mpnas__search_config_default(mpnas__search_config *c) {
  mpnas__settings_default(&mpnas__search_settings, c);
}
