/* settings.c - see settings.h. */
#include "common/settings.h"

const mpnas__setting *mpnas__settings_find(const mpnas__settings *t, int32_t param) {
  for (size_t i = 0; i < t->count; i++)
    if (t->table[i].param == param) return &t->table[i];
  return NULL;
}

int mpnas__settings_read_only(const mpnas__settings *t, int32_t param) {
  const mpnas__setting *s = mpnas__settings_find(t, param);
  return s != NULL && (s->flags & MPNAS_PARAM_READ_ONLY);
}

static int stored(const mpnas__setting *s) { return !(s->flags & MPNAS_PARAM_READ_ONLY); }

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
  if (isnan(v)) return (s->flags & MPNAS__SETTING_NAN_OK) != 0;
  if (s->flags & MPNAS_PARAM_ODD && fmod(v, 2.0) == 0.0) return 0;
  return (s->flags & MPNAS_PARAM_LO_OPEN ? v > s->lo : v >= s->lo) &&
         (s->flags & MPNAS_PARAM_HI_OPEN ? v < s->hi : v <= s->hi);
}

void mpnas__settings_default(const mpnas__settings *t, void *cfg) {
  for (size_t i = 0; i < t->count; i++) {
    const mpnas__setting *s = &t->table[i];
    if (!stored(s)) continue;
    if (s->type == MPNAS__SETTING_I32)
      *(int32_t *)slot(s, cfg) = (int32_t)s->def;
    else if (s->type == MPNAS__SETTING_I64)
      *(int64_t *)slot(s, cfg) = (int64_t)s->def;
    else
      *(double *)slot(s, cfg) = s->def;
  }
}

const mpnas__setting *mpnas__settings_bad(const mpnas__settings *t, const void *cfg) {
  for (size_t i = 0; i < t->count; i++)
    if (stored(&t->table[i]) && !in_range(&t->table[i], value_of(&t->table[i], cfg)))
      return &t->table[i];
  return NULL;
}

const char *mpnas__settings_bad_field(const mpnas__settings *t, const void *cfg) {
  const mpnas__setting *s = mpnas__settings_bad(t, cfg);
  return s != NULL ? s->name : NULL;
}

void mpnas__settings_put(mpnas__writer *w, const mpnas__settings *t, const void *cfg) {
  for (size_t i = 0; i < t->count; i++) {
    const mpnas__setting *s = &t->table[i];
    if (!stored(s)) continue;
    if (s->type == MPNAS__SETTING_I32)
      mpnas__writer_put_i32(w, *(const int32_t *)slot(s, cfg));
    else if (s->type == MPNAS__SETTING_I64)
      mpnas__writer_put_i64(w, *(const int64_t *)slot(s, cfg));
    else
      mpnas__writer_put_f64(w, *(const double *)slot(s, cfg));
  }
}

void mpnas__settings_get(mpnas__reader *r, const mpnas__settings *t, void *cfg) {
  for (size_t i = 0; i < t->count; i++) {
    const mpnas__setting *s = &t->table[i];
    if (!stored(s)) continue;
    if (s->type == MPNAS__SETTING_I32)
      *(int32_t *)slot(s, cfg) = mpnas__reader_get_i32(r);
    else if (s->type == MPNAS__SETTING_I64)
      *(int64_t *)slot(s, cfg) = mpnas__reader_get_i64(r);
    else
      *(double *)slot(s, cfg) = mpnas__reader_get_f64(r);
  }
}

/* The row a setter or getter of the given kind may use, or NULL with the failure
 * recorded: unknown (or the other kind) first, then read-only for a setter. */
static const mpnas__setting *find_kind(mpnas_context *ctx, const mpnas__settings *t,
                                       int32_t param, int real, int set, mpnas_status *st) {
  const mpnas__setting *s = mpnas__settings_find(t, param);
  *st = MPNAS_OK;
  if (s == NULL)
    *st = mpnas__fail(ctx, MPNAS_E_UNKNOWN_PARAMETER, "unknown %s parameter %d", t->what,
                      (int)param);
  else if ((s->type == MPNAS__SETTING_REAL) != real)
    *st = mpnas__fail(ctx, MPNAS_E_UNKNOWN_PARAMETER, "%s parameter %d is not %s parameter",
                      t->what, (int)param, real ? "a real-valued" : "an integer");
  else if (set && !stored(s))
    *st = mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "%s is read-only", s->name);
  return *st == MPNAS_OK ? s : NULL;
}

mpnas_status mpnas__settings_check_int(mpnas_context *ctx, const mpnas__settings *t,
                                       int32_t param, int64_t v) {
  mpnas_status st;
  const mpnas__setting *s = find_kind(ctx, t, param, 0, 1, &st);
  if (s == NULL) return st;
  /* int64 bounds as doubles: compare in double only where that is exact. */
  int ok = (double)v >= -0x1p53 && (double)v <= 0x1p53 ? in_range(s, (double)v)
                                                       : s->lo <= -0x1p63 && s->hi >= 0x1p63;
  if (ok) return MPNAS_OK;
  if (s->flags & MPNAS_PARAM_ODD && v >= s->lo && v <= s->hi)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "%s must be odd, got %lld", s->name,
                       (long long)v);
  if (s->flags & MPNAS_PARAM_ENUM)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "%s must be one of %s* (%lld..%lld), got %lld",
                       s->name, s->values, (long long)s->lo, (long long)s->hi, (long long)v);
  return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "%s must be in %lld..%lld, got %lld", s->name,
                     (long long)s->lo, (long long)s->hi, (long long)v);
}

mpnas_status mpnas__settings_set_int(mpnas_context *ctx, const mpnas__settings *t, void *cfg,
                                     int32_t param, int64_t v) {
  mpnas_status st = mpnas__settings_check_int(ctx, t, param, v);
  if (st != MPNAS_OK) return st;
  const mpnas__setting *s = mpnas__settings_find(t, param);
  if (s->type == MPNAS__SETTING_I32)
    *(int32_t *)slot(s, cfg) = (int32_t)v;
  else
    *(int64_t *)slot(s, cfg) = v;
  return MPNAS_OK;
}

/* A read-only row reaching a generic getter is a caller's bug. */
static mpnas_status no_field(mpnas_context *ctx, const mpnas__setting *s) {
  return mpnas__fail(ctx, MPNAS_E_INTERNAL, "%s has no stored value", s->name);
}

mpnas_status mpnas__settings_get_int(mpnas_context *ctx, const mpnas__settings *t,
                                     const void *cfg, int32_t param, int64_t *v) {
  mpnas_status st;
  const mpnas__setting *s = find_kind(ctx, t, param, 0, 0, &st);
  if (s == NULL) return st;
  if (!stored(s)) return no_field(ctx, s);
  *v = s->type == MPNAS__SETTING_I32 ? *(const int32_t *)slot(s, cfg)
                                     : *(const int64_t *)slot(s, cfg);
  return MPNAS_OK;
}

mpnas_status mpnas__settings_set_double(mpnas_context *ctx, const mpnas__settings *t, void *cfg,
                                        int32_t param, double v) {
  mpnas_status st;
  const mpnas__setting *s = find_kind(ctx, t, param, 1, 1, &st);
  if (s == NULL) return st;
  /* NaN is how a config says "default"; a host sets a number. */
  if (!isnan(v) && in_range(s, v)) {
    *(double *)slot(s, cfg) = v;
    return MPNAS_OK;
  }
  int open = (s->flags & (MPNAS_PARAM_LO_OPEN | MPNAS_PARAM_HI_OPEN)) != 0; /* "(0..100]" */
  return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "%s must be in %s%g..%g%s, got %g", s->name,
                     !open ? "" : s->flags & MPNAS_PARAM_LO_OPEN ? "(" : "[", s->lo, s->hi,
                     !open ? "" : s->flags & MPNAS_PARAM_HI_OPEN ? ")" : "]", v);
}

mpnas_status mpnas__settings_get_double(mpnas_context *ctx, const mpnas__settings *t,
                                        const void *cfg, int32_t param, double *v) {
  mpnas_status st;
  const mpnas__setting *s = find_kind(ctx, t, param, 1, 0, &st);
  if (s == NULL) return st;
  if (!stored(s)) return no_field(ctx, s);
  *v = *(const double *)slot(s, cfg);
  return MPNAS_OK;
}
