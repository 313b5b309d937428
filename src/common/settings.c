/* settings.c - see settings.h. */
#include "common/settings.h"

#include <math.h>

static const mpnas__setting *find(const mpnas__settings *t, int32_t param) {
  for (size_t i = 0; i < t->count; i++)
    if (t->table[i].param == param) return &t->table[i];
  return NULL;
}

static void *slot(const mpnas__setting *s, const void *cfg) {
  return (char *)(uintptr_t)cfg + s->offset;
}

static double value_of(const mpnas__setting *s, const void *cfg) {
  switch (s->type) {
    case MPNAS__SETTING_I32: return (double)*(const int32_t *)slot(s, cfg);
    case MPNAS__SETTING_I64: return (double)*(const int64_t *)slot(s, cfg);
    default: return *(const double *)slot(s, cfg);
  }
}

static int in_range(const mpnas__setting *s, double v) {
  if (isnan(v)) return s->nan_ok;
  return (s->lo_open ? v > s->lo : v >= s->lo) && v <= s->hi;
}

const char *mpnas__settings_bad_field(const mpnas__settings *t, const void *cfg) {
  for (size_t i = 0; i < t->count; i++)
    if (!in_range(&t->table[i], value_of(&t->table[i], cfg))) return t->table[i].name;
  return NULL;
}

static const mpnas__setting *find_kind(mpnas_context *ctx, const mpnas__settings *t,
                                       int32_t param, int real, mpnas_status *st) {
  const mpnas__setting *s = find(t, param);
  *st = MPNAS_OK;
  if (s == NULL || (s->type == MPNAS__SETTING_REAL) != real)
    *st = mpnas__fail(ctx, MPNAS_E_UNKNOWN_PARAMETER, "%s parameter %d is not %s parameter",
                      t->what, (int)param, real ? "a real-valued" : "an integer");
  return *st == MPNAS_OK ? s : NULL;
}

mpnas_status mpnas__settings_set_int(mpnas_context *ctx, const mpnas__settings *t, void *cfg,
                                     int32_t param, int64_t v) {
  mpnas_status st;
  const mpnas__setting *s = find_kind(ctx, t, param, 0, &st);
  if (s == NULL) return st;
  if (!in_range(s, (double)v))
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "%s must be in %lld..%lld, got %lld", s->name,
                       (long long)s->lo, (long long)s->hi, (long long)v);
  if (s->type == MPNAS__SETTING_I32)
    *(int32_t *)slot(s, cfg) = (int32_t)v;
  else
    *(int64_t *)slot(s, cfg) = v;
  return MPNAS_OK;
}

mpnas_status mpnas__settings_get_int(mpnas_context *ctx, const mpnas__settings *t,
                                     const void *cfg, int32_t param, int64_t *v) {
  mpnas_status st;
  const mpnas__setting *s = find_kind(ctx, t, param, 0, &st);
  if (s == NULL) return st;
  *v = s->type == MPNAS__SETTING_I32 ? *(const int32_t *)slot(s, cfg)
                                     : *(const int64_t *)slot(s, cfg);
  return MPNAS_OK;
}

mpnas_status mpnas__settings_set_double(mpnas_context *ctx, const mpnas__settings *t, void *cfg,
                                        int32_t param, double v) {
  mpnas_status st;
  const mpnas__setting *s = find_kind(ctx, t, param, 1, &st);
  if (s == NULL) return st;
  /* NaN is how a config says "default"; a host sets a number. */
  if (isnan(v) || !in_range(s, v))
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "%s must be in %s%g..%g%s, got %g", s->name,
                       s->lo_open ? "(" : "", s->lo, s->hi, s->lo_open ? "]" : "", v);
  *(double *)slot(s, cfg) = v;
  return MPNAS_OK;
}

mpnas_status mpnas__settings_get_double(mpnas_context *ctx, const mpnas__settings *t,
                                        const void *cfg, int32_t param, double *v) {
  mpnas_status st;
  const mpnas__setting *s = find_kind(ctx, t, param, 1, &st);
  if (s == NULL) return st;
  *v = *(const double *)slot(s, cfg);
  return MPNAS_OK;
}
