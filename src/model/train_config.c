/* train_config.c - the model's settings: MPNAS_TRAIN_* (and its read-only MPNAS_MODEL_*)
 * and the domains' MPNAS_DOMAIN_*: names, ranges, defaults. One table each
 * (common/settings.h), so the public setters (api_model.c), the model file and checkpoint
 * (their CONF section is the training table's stored rows, in this order: never reorder
 * them; then ABDP's) and mpnas_param_bounds all agree. */
#include <stddef.h>

#include "common/settings.h"
#include "model/model.h"

#define AT(member) offsetof(mpnas__train_config, member)
#define I32 MPNAS__SETTING_I32
#define I64 MPNAS__SETTING_I64
static const mpnas__setting FIELDS[] = {
    MPNAS__INT(MPNAS_TRAIN_STEPS, "steps", I64, AT(steps), 1, 1e8, 2000),
    MPNAS__INT(MPNAS_TRAIN_BATCH, "batch", I32, AT(batch), 1, 4096, 32),
    MPNAS__INT(MPNAS_TRAIN_VALID_BATCH, "valid_batch", I32, AT(valid_batch), 1, 4096, 64),
    MPNAS__INT(MPNAS_TRAIN_VALID_EVERY, "valid_every", I32, AT(valid_every), 1, 1e8, 20),
    MPNAS__ENUM(MPNAS_TRAIN_OPTIMIZER, "optimizer", AT(optimizer), MPNAS_OPTIMIZER_SGD,
                MPNAS_OPTIMIZER_ADAM, MPNAS_OPTIMIZER_SGD, "MPNAS_OPTIMIZER_"),
    MPNAS__INT(MPNAS_TRAIN_AUGMENT_PAD, "augment_pad", I32, AT(augment_pad), 0, 64, 4),
    MPNAS__REAL(MPNAS_TRAIN_LEARNING_RATE, "learning_rate", AT(lr), 0, 100, 0.1,
                MPNAS_PARAM_LO_OPEN),
    MPNAS__REAL(MPNAS_TRAIN_WARMUP_FRACTION, "warmup_fraction", AT(warmup_fraction), 0, 1, 0.05,
                0),
    MPNAS__REAL(MPNAS_TRAIN_MOMENTUM, "momentum", AT(momentum), 0, 0.999, 0.9, 0),
    MPNAS__REAL(MPNAS_TRAIN_WEIGHT_DECAY, "weight_decay", AT(weight_decay), 0, 1, 1e-4, 0),
    MPNAS__REAL(MPNAS_TRAIN_LABEL_SMOOTHING, "label_smoothing", AT(label_smoothing), 0, 0.999,
                0.1, 0),
    MPNAS__REAL(MPNAS_TRAIN_VALIDATION_FRACTION, "validation_fraction", AT(valid_fraction), 0,
                0.9, 0.1, 0),
    MPNAS__READ_ONLY(MPNAS_TRAIN_STEP, "step", I64),
    MPNAS__READ_ONLY(MPNAS_MODEL_NUM_LAYERS, "num_layers", I64),
    MPNAS__READ_ONLY(MPNAS_MODEL_NUM_NODES, "num_nodes", I64),
    MPNAS__READ_ONLY(MPNAS_MODEL_PARAMS, "params", I64),
    MPNAS__READ_ONLY(MPNAS_MODEL_MACS, "macs", I64),
    MPNAS__READ_ONLY(MPNAS_MODEL_QUANTIZED, "quantized", I64),
};
#undef AT

static const mpnas__setting DOMAIN_FIELDS[] = {
    MPNAS__INT(MPNAS_DOMAIN_HFLIP, "hflip", I32, offsetof(mpnas__domain, hflip), 0, 1, 0),
};
#undef I32
#undef I64

const mpnas__settings mpnas__train_settings = {FIELDS, sizeof FIELDS / sizeof FIELDS[0], "model"};
const mpnas__settings mpnas__domain_settings = {
    DOMAIN_FIELDS, sizeof DOMAIN_FIELDS / sizeof DOMAIN_FIELDS[0], "domain"};

void mpnas__train_config_default(mpnas__train_config *c) {
  mpnas__settings_default(&mpnas__train_settings, c);
  mpnas__abdp_config_default(&c->abdp);
}
