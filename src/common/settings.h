/* settings.h - a handle's numeric settings as a table: which parameter, where it lives in
 * the handle's config struct, its range. The public setters and the file loaders both
 * check with it, so a loaded file can only hold values a setter would have accepted
 * (the search's MPNAS_SEARCH_* in search/search_config.c, the model's MPNAS_TRAIN_* in
 * model/train_config.c; ABDP's own train/abdp_param.c follows the same rule). */
#ifndef MPNAS_SETTINGS_H
#define MPNAS_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

typedef enum { MPNAS__SETTING_I32, MPNAS__SETTING_I64, MPNAS__SETTING_REAL } mpnas__setting_type;

typedef struct mpnas__setting {
  int32_t param;    /* the public enum value */
  const char *name; /* its constant's name, for messages */
  mpnas__setting_type type;
  size_t offset;    /* offsetof in the config struct */
  double lo, hi;    /* inclusive range */
  int lo_open;      /* (lo, hi] instead: learning rates */
  int nan_ok;       /* NaN stored means "the default" (never set by a host) */
} mpnas__setting;

typedef struct mpnas__settings {
  const mpnas__setting *table;
  size_t count;
  const char *what; /* "search", "model": for messages */
} mpnas__settings;

/* The name of the first setting of cfg outside its range, or NULL. */
const char *mpnas__settings_bad_field(const mpnas__settings *t, const void *cfg);
/* Set / get by parameter. A parameter not in the table (or of the other kind) is
 * MPNAS_E_UNKNOWN_PARAMETER, a value outside its range (NaN included) is
 * MPNAS_E_OUT_OF_RANGE naming it; either way cfg is unchanged and the failure is
 * recorded on ctx. */
mpnas_status mpnas__settings_set_int(mpnas_context *ctx, const mpnas__settings *t, void *cfg,
                                     int32_t param, int64_t v);
mpnas_status mpnas__settings_get_int(mpnas_context *ctx, const mpnas__settings *t,
                                     const void *cfg, int32_t param, int64_t *v);
mpnas_status mpnas__settings_set_double(mpnas_context *ctx, const mpnas__settings *t, void *cfg,
                                        int32_t param, double v);
mpnas_status mpnas__settings_get_double(mpnas_context *ctx, const mpnas__settings *t,
                                        const void *cfg, int32_t param, double *v);

#endif
