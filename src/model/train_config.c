/* train_config.c - the MPNAS_TRAIN_* settings of the multi-path model: defaults and
 * ranges. One table (common/settings.h), so the public setters (api_model.c) and the
 * model and checkpoint loaders (model_io.c) accept exactly the same values. */
#include <stddef.h>

#include "common/settings.h"
#include "model/model.h"

#define AT(member) offsetof(mpnas__train_config, member)
#define I32 MPNAS__SETTING_I32
#define I64 MPNAS__SETTING_I64
#define REAL MPNAS__SETTING_REAL
static const mpnas__setting FIELDS[] = {
    {MPNAS_TRAIN_STEPS, "MPNAS_TRAIN_STEPS", I64, AT(steps), 1, 1e8, 0, 0},
    {MPNAS_TRAIN_BATCH, "MPNAS_TRAIN_BATCH", I32, AT(batch), 1, 4096, 0, 0},
    {MPNAS_TRAIN_OPTIMIZER, "MPNAS_TRAIN_OPTIMIZER", I32, AT(optimizer), MPNAS_OPTIMIZER_SGD,
     MPNAS_OPTIMIZER_ADAM, 0, 0},
    {MPNAS_TRAIN_AUGMENT_PAD, "MPNAS_TRAIN_AUGMENT_PAD", I32, AT(augment_pad), 0, 64, 0, 0},
    {MPNAS_TRAIN_VALID_BATCH, "MPNAS_TRAIN_VALID_BATCH", I32, AT(valid_batch), 1, 4096, 0, 0},
    {MPNAS_TRAIN_VALID_EVERY, "MPNAS_TRAIN_VALID_EVERY", I32, AT(valid_every), 1, 1e8, 0, 0},
    {MPNAS_TRAIN_LEARNING_RATE, "MPNAS_TRAIN_LEARNING_RATE", REAL, AT(lr), 0, 100, 1, 0},
    {MPNAS_TRAIN_WARMUP_FRACTION, "MPNAS_TRAIN_WARMUP_FRACTION", REAL, AT(warmup_fraction), 0, 1,
     0, 0},
    {MPNAS_TRAIN_MOMENTUM, "MPNAS_TRAIN_MOMENTUM", REAL, AT(momentum), 0, 0.999, 0, 0},
    {MPNAS_TRAIN_WEIGHT_DECAY, "MPNAS_TRAIN_WEIGHT_DECAY", REAL, AT(weight_decay), 0, 1, 0, 0},
    {MPNAS_TRAIN_LABEL_SMOOTHING, "MPNAS_TRAIN_LABEL_SMOOTHING", REAL, AT(label_smoothing), 0,
     0.999, 0, 0},
    {MPNAS_TRAIN_VALIDATION_FRACTION, "MPNAS_TRAIN_VALIDATION_FRACTION", REAL,
     AT(valid_fraction), 0, 0.9, 0, 0},
};
#undef AT
#undef I32
#undef I64
#undef REAL

const mpnas__settings mpnas__train_settings = {FIELDS, sizeof FIELDS / sizeof FIELDS[0], "model"};

void mpnas__train_config_default(mpnas__train_config *c) {
  c->steps = 2000;
  c->batch = 32;
  c->valid_batch = 64;
  c->valid_every = 20;
  c->optimizer = MPNAS__OPT_SGD;
  c->augment_pad = 4;
  c->lr = 0.1;
  c->warmup_fraction = 0.05;
  c->momentum = 0.9;
  c->weight_decay = 1e-4;
  c->label_smoothing = 0.1;
  c->valid_fraction = 0.1;
  mpnas__abdp_config_default(&c->abdp);
}
