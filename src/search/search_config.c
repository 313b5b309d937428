/* search_config.c - the MPNAS_SEARCH_* settings: defaults and ranges. One table
 * (common/settings.h), so the public setters (api_supernet.c) and the checkpoint loader
 * (checkpoint.c) accept exactly the same values. */
#include <math.h>
#include <stddef.h>

#include "common/settings.h"
#include "search/supernet.h"

#define AT(member) offsetof(mpnas__search_config, member)
#define I32 MPNAS__SETTING_I32
#define I64 MPNAS__SETTING_I64
#define REAL MPNAS__SETTING_REAL
static const mpnas__setting FIELDS[] = {
    {MPNAS_SEARCH_METHOD, "MPNAS_SEARCH_METHOD", I32, AT(method), MPNAS_METHOD_MPNAS,
     MPNAS_METHOD_SINGLE_PATH, 0, 0},
    {MPNAS_SEARCH_STEPS, "MPNAS_SEARCH_STEPS", I64, AT(steps), 1, 1e8, 0, 0},
    {MPNAS_SEARCH_TRAIN_BATCH, "MPNAS_SEARCH_TRAIN_BATCH", I32, AT(train_batch), 1, 4096, 0, 0},
    {MPNAS_SEARCH_VALID_BATCH, "MPNAS_SEARCH_VALID_BATCH", I32, AT(valid_batch), 1, 4096, 0, 0},
    {MPNAS_SEARCH_COST, "MPNAS_SEARCH_COST", I32, AT(cost), MPNAS_COST_NONE, MPNAS_COST_LATENCY,
     0, 0},
    {MPNAS_SEARCH_REWARD, "MPNAS_SEARCH_REWARD", I32, AT(reward), MPNAS_REWARD_ABS,
     MPNAS_REWARD_MNAS, 0, 0},
    {MPNAS_SEARCH_WARMUP_FRACTION, "MPNAS_SEARCH_WARMUP_FRACTION", REAL, AT(warmup_fraction), 0,
     1, 0, 0},
    {MPNAS_SEARCH_LEARNING_RATE, "MPNAS_SEARCH_LEARNING_RATE", REAL, AT(lr), 0, 100, 1, 0},
    {MPNAS_SEARCH_MOMENTUM, "MPNAS_SEARCH_MOMENTUM", REAL, AT(momentum), 0, 0.999, 0, 0},
    {MPNAS_SEARCH_WEIGHT_DECAY, "MPNAS_SEARCH_WEIGHT_DECAY", REAL, AT(weight_decay), 0, 1, 0, 0},
    {MPNAS_SEARCH_LABEL_SMOOTHING, "MPNAS_SEARCH_LABEL_SMOOTHING", REAL, AT(label_smoothing), 0,
     0.999, 0, 0},
    {MPNAS_SEARCH_RL_LEARNING_RATE, "MPNAS_SEARCH_RL_LEARNING_RATE", REAL, AT(rl_lr), 0, 100, 1,
     0},
    {MPNAS_SEARCH_RL_DELAY_FRACTION, "MPNAS_SEARCH_RL_DELAY_FRACTION", REAL, AT(rl_delay), 0,
     0.999, 0, 0},
    {MPNAS_SEARCH_RL_RAMP, "MPNAS_SEARCH_RL_RAMP", REAL, AT(rl_ramp), 1, 1e6, 0, 0},
    {MPNAS_SEARCH_ENTROPY_BONUS, "MPNAS_SEARCH_ENTROPY_BONUS", REAL, AT(entropy), 0, 100, 0, 0},
    {MPNAS_SEARCH_COST_BETA, "MPNAS_SEARCH_COST_BETA", REAL, AT(beta), -100, 0, 0, 1},
    {MPNAS_SEARCH_COST_TARGET, "MPNAS_SEARCH_COST_TARGET", REAL, AT(target), 0, 1e18, 0, 0},
    {MPNAS_SEARCH_SHARING_GAMMA, "MPNAS_SEARCH_SHARING_GAMMA", REAL, AT(gamma), 0, 100, 0, 0},
    {MPNAS_SEARCH_VALIDATION_FRACTION, "MPNAS_SEARCH_VALIDATION_FRACTION", REAL,
     AT(valid_fraction), 0, 0.9, 0, 0},
};
#undef AT
#undef I32
#undef I64
#undef REAL

const mpnas__settings mpnas__search_settings = {FIELDS, sizeof FIELDS / sizeof FIELDS[0],
                                                "search"};

void mpnas__search_config_default(mpnas__search_config *c) {
  c->method = MPNAS_METHOD_MPNAS;
  c->steps = 1000;
  c->train_batch = 16;
  c->valid_batch = 128;
  c->warmup_fraction = 0.25;
  c->lr = 0.05;
  c->momentum = 0.9;
  c->weight_decay = 3e-4;
  c->label_smoothing = 0.1;
  c->rl_lr = 0.05;
  c->rl_delay = MPNAS__RL_DELAY_FRACTION;
  c->rl_ramp = MPNAS__RL_RAMP;
  c->entropy = 0.0;
  c->cost = MPNAS_COST_MACS;
  c->reward = MPNAS_REWARD_ABS;
  c->beta = NAN; /* the reward form's own default */
  c->target = 0.0;
  c->gamma = MPNAS__REWARD_SHARING_GAMMA;
  c->valid_fraction = 0.1;
}

