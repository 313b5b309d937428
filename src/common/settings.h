/* settings.h - a handle's numeric parameters as a table, one row each: code, names,
 * type, where the value lives in the handle's config struct, range, default, flags. The
 * public setters and getters, the defaults of a new handle, the file savers and loaders
 * (a section of settings is the table's stored rows, in table order) and the public
 * description mpnas_param_bounds / mpnas_param_names (api/api_param.c) all read it, so
 * none of them can disagree with another. The tables: the search's MPNAS_SEARCH_* in
 * search/search_config.c, the model's MPNAS_TRAIN_* / MPNAS_MODEL_* and the domains'
 * MPNAS_DOMAIN_* in model/train_config.c, MPNAS_ABDP_* in train/abdp_param.c, the
 * space's in net/space.c, the context's in api/api_context.c. */
#ifndef MPNAS_SETTINGS_H
#define MPNAS_SETTINGS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "common/serial.h"

/* How a row's value is stored (the public type is int for both integer kinds). */
typedef enum { MPNAS__SETTING_I32, MPNAS__SETTING_I64, MPNAS__SETTING_REAL } mpnas__setting_type;

/* Flags: the public MPNAS_PARAM_* bits (read-only, open bounds, enumeration, odd), plus
 * this one of the library's own: NaN stored means "the default" (never set by a host). */
#define MPNAS__SETTING_NAN_OK 0x100

typedef struct mpnas__setting {
  int32_t param;          /* the public enum value */
  const char *name;       /* its constant's name, for messages */
  const char *short_name; /* the name the Python wrapper gives it ("steps") */
  mpnas__setting_type type;
  size_t offset;          /* offsetof in the config struct (read-only rows: none) */
  double lo, hi;          /* range, ends included unless flagged open */
  double def;             /* what a new handle holds */
  uint32_t flags;         /* MPNAS_PARAM_* | MPNAS__SETTING_NAN_OK */
  const char *values;     /* enumerations: the prefix of the values' constants, else "" */
} mpnas__setting;

typedef struct mpnas__settings {
  const mpnas__setting *table;
  size_t count;
  const char *what; /* "search", "model": for messages */
} mpnas__settings;

/* Rows. P is the parameter's constant (the row takes its name from it), SHORT its short
 * name, AT the offsetof of its field, T its storage (MPNAS__SETTING_I32 / _I64). */
#define MPNAS__INT(P, SHORT, T, AT, LO, HI, DEF) MPNAS__INT_FLAGS(P, SHORT, T, AT, LO, HI, DEF, 0)
#define MPNAS__INT_FLAGS(P, SHORT, T, AT, LO, HI, DEF, FLAGS) \
  {P, #P, SHORT, T, AT, LO, HI, DEF, FLAGS, ""}
#define MPNAS__ENUM(P, SHORT, AT, FIRST, LAST, DEF, PREFIX) \
  {P, #P, SHORT, MPNAS__SETTING_I32, AT, FIRST, LAST, DEF, MPNAS_PARAM_ENUM, PREFIX}
#define MPNAS__REAL(P, SHORT, AT, LO, HI, DEF, FLAGS) \
  {P, #P, SHORT, MPNAS__SETTING_REAL, AT, LO, HI, DEF, FLAGS, ""}
/* A value the handle computes: get only, no range, no default, no field. */
#define MPNAS__READ_ONLY(P, SHORT, T) {P, #P, SHORT, T, 0, NAN, NAN, NAN, MPNAS_PARAM_READ_ONLY, ""}

/* The row of param, or NULL. */
const mpnas__setting *mpnas__settings_find(const mpnas__settings *t, int32_t param);
int mpnas__settings_read_only(const mpnas__settings *t, int32_t param);
/* Every stored row of cfg to its default. */
void mpnas__settings_default(const mpnas__settings *t, void *cfg);
/* The first stored row of cfg outside its range, or NULL. */
const mpnas__setting *mpnas__settings_bad(const mpnas__settings *t, const void *cfg);
/* Its name, or NULL. */
const char *mpnas__settings_bad_field(const mpnas__settings *t, const void *cfg);
/* The stored rows of cfg in table order: i32, i64 or f64 each (a file section). */
void mpnas__settings_put(mpnas__writer *w, const mpnas__settings *t, const void *cfg);
void mpnas__settings_get(mpnas__reader *r, const mpnas__settings *t, void *cfg);
/* Whether a setter may take v for param, recording why not on ctx:
 * MPNAS_E_UNKNOWN_PARAMETER (not in the table, or of the other kind),
 * MPNAS_E_INVALID_ARGUMENT (read-only), MPNAS_E_OUT_OF_RANGE (NaN included). */
mpnas_status mpnas__settings_check_int(mpnas_context *ctx, const mpnas__settings *t,
                                       int32_t param, int64_t v);
/* Set / get by parameter: set checks as above and leaves cfg unchanged on failure. A
 * read-only row has no field: its getter is the handle's own. */
mpnas_status mpnas__settings_set_int(mpnas_context *ctx, const mpnas__settings *t, void *cfg,
                                     int32_t param, int64_t v);
mpnas_status mpnas__settings_get_int(mpnas_context *ctx, const mpnas__settings *t,
                                     const void *cfg, int32_t param, int64_t *v);
mpnas_status mpnas__settings_set_double(mpnas_context *ctx, const mpnas__settings *t, void *cfg,
                                        int32_t param, double v);
mpnas_status mpnas__settings_get_double(mpnas_context *ctx, const mpnas__settings *t,
                                        const void *cfg, int32_t param, double *v);

#endif
