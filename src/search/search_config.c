/* search_config.c - the MPNAS_SEARCH_* settings: defaults, ranges, and setting them by
 * parameter. One table, so the public setters (api_supernet.c) and the checkpoint loader
 * (checkpoint.c) accept exactly the same values (as abdp_param.c does for MPNAS_ABDP_*). */
#include <math.h>
#include <stddef.h>

#include "search/supernet.h"

/* A setting: its parameter and name, where it lives in the config, and its range. */
typedef struct field {
  int32_t param;
  const char *name;
  enum { I32, I64, REAL } type;
  size_t offset;
  double lo, hi;
  int lo_open; /* (lo, hi] instead of [lo, hi]: learning rates */
  int nan_ok;  /* NaN means "the default": the cost exponent (each reward form has its own) */
} field;

#define AT(member) offsetof(mpnas__search_config, member)
static const field FIELDS[] = {
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
#define NFIELDS (sizeof FIELDS / sizeof FIELDS[0])

static const field *find(int32_t param) {
  for (size_t i = 0; i < NFIELDS; i++)
    if (FIELDS[i].param == param) return &FIELDS[i];
  return NULL;
}

static void *slot(const field *f, const mpnas__search_config *c) {
  return (char *)(uintptr_t)c + f->offset;
}

static double value_of(const field *f, const mpnas__search_config *c) {
  switch (f->type) {
    case I32: return (double)*(const int32_t *)slot(f, c);
    case I64: return (double)*(const int64_t *)slot(f, c);
    default: return *(const double *)slot(f, c);
  }
}

static int in_range(const field *f, double v) {
  if (isnan(v)) return f->nan_ok;
  return (f->lo_open ? v > f->lo : v >= f->lo) && v <= f->hi;
}

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
  c->gamma = 0.0;
  c->valid_fraction = 0.1;
}

const char *mpnas__search_config_bad_field(const mpnas__search_config *c) {
  for (size_t i = 0; i < NFIELDS; i++)
    if (!in_range(&FIELDS[i], value_of(&FIELDS[i], c))) return FIELDS[i].name;
  return NULL;
}

static mpnas_status out_of_range(mpnas_context *ctx, const field *f, double v) {
  return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "%s must be in %s%g..%g%s, got %g", f->name,
                     f->lo_open ? "(" : "", f->lo, f->hi, f->lo_open ? "]" : "", v);
}

mpnas_status mpnas__search_config_set_int(mpnas_context *ctx, mpnas__search_config *c,
                                          int32_t param, int64_t v) {
  const field *f = find(param);
  if (f == NULL || f->type == REAL)
    return mpnas__fail(ctx, MPNAS_E_UNKNOWN_PARAMETER,
                       "search parameter %d is not an integer parameter", (int)param);
  if (!in_range(f, (double)v))
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "%s must be in %lld..%lld, got %lld", f->name,
                       (long long)f->lo, (long long)f->hi, (long long)v);
  if (f->type == I32)
    *(int32_t *)slot(f, c) = (int32_t)v;
  else
    *(int64_t *)slot(f, c) = v;
  return MPNAS_OK;
}

mpnas_status mpnas__search_config_get_int(mpnas_context *ctx, const mpnas__search_config *c,
                                          int32_t param, int64_t *v) {
  const field *f = find(param);
  if (f == NULL || f->type == REAL)
    return mpnas__fail(ctx, MPNAS_E_UNKNOWN_PARAMETER,
                       "search parameter %d is not an integer parameter", (int)param);
  *v = f->type == I32 ? *(const int32_t *)slot(f, c) : *(const int64_t *)slot(f, c);
  return MPNAS_OK;
}

mpnas_status mpnas__search_config_set_double(mpnas_context *ctx, mpnas__search_config *c,
                                             int32_t param, double v) {
  const field *f = find(param);
  if (f == NULL || f->type != REAL)
    return mpnas__fail(ctx, MPNAS_E_UNKNOWN_PARAMETER,
                       "search parameter %d is not a real-valued parameter", (int)param);
  /* NaN is how the config says "default"; a host sets a number. */
  if (isnan(v) || !in_range(f, v)) return out_of_range(ctx, f, v);
  *(double *)slot(f, c) = v;
  return MPNAS_OK;
}

mpnas_status mpnas__search_config_get_double(mpnas_context *ctx, const mpnas__search_config *c,
                                             int32_t param, double *v) {
  const field *f = find(param);
  if (f == NULL || f->type != REAL)
    return mpnas__fail(ctx, MPNAS_E_UNKNOWN_PARAMETER,
                       "search parameter %d is not a real-valued parameter", (int)param);
  *v = *(const double *)slot(f, c);
  return MPNAS_OK;
}
