/* api_param.c - mpnas_param_*: the parameters of each handle kind, described from the
 * settings tables the setters check with (common/settings.h). */
#include "common/settings.h"
#include "model/model.h"
#include "search/supernet.h"

/* Each handle kind's tables (NULL-terminated). */
static const mpnas__settings *const *tables_of(int32_t kind) {
  static const mpnas__settings *const context[] = {&mpnas__context_settings, NULL};
  static const mpnas__settings *const space[] = {&mpnas__space_settings, NULL};
  static const mpnas__settings *const supernet[] = {&mpnas__search_settings,
                                                    &mpnas__abdp_settings, NULL};
  static const mpnas__settings *const model[] = {&mpnas__train_settings, &mpnas__abdp_settings,
                                                 NULL};
  static const mpnas__settings *const domain[] = {&mpnas__domain_settings, NULL};
  switch (kind) {
    case MPNAS_HANDLE_CONTEXT: return context;
    case MPNAS_HANDLE_SPACE: return space;
    case MPNAS_HANDLE_SUPERNET: return supernet;
    case MPNAS_HANDLE_MODEL: return model;
    case MPNAS_HANDLE_MODEL_DOMAIN: return domain;
    default: return NULL;
  }
}

static const mpnas__setting *row(int32_t kind, int32_t param) {
  const mpnas__settings *const *t = tables_of(kind);
  const mpnas__setting *s = NULL;
  for (; t != NULL && *t != NULL && s == NULL; t++) s = mpnas__settings_find(*t, param);
  return s;
}

mpnas_status mpnas_param_list(int32_t handle_kind, int32_t *params, size_t cap, size_t *count) {
  const mpnas__settings *const *t = tables_of(handle_kind);
  if (t == NULL) return MPNAS_E_UNKNOWN_PARAMETER;
  if (params == NULL && cap > 0) return MPNAS_E_INVALID_ARGUMENT;
  /* Codes in increasing order: each time the smallest one above the last written. */
  size_t n = 0;
  int64_t last = INT64_MIN;
  for (;;) {
    int64_t next = INT64_MAX;
    for (const mpnas__settings *const *u = t; *u != NULL; u++)
      for (size_t i = 0; i < (*u)->count; i++)
        if ((*u)->table[i].param > last && (*u)->table[i].param < next)
          next = (*u)->table[i].param;
    if (next == INT64_MAX) break;
    if (n < cap) params[n] = (int32_t)next;
    n++;
    last = next;
  }
  if (count != NULL) *count = n;
  return n <= cap || params == NULL ? MPNAS_OK : MPNAS_E_INVALID_ARGUMENT;
}

mpnas_status mpnas_param_bounds(int32_t handle_kind, int32_t param, int32_t *type, double *lo,
                                double *hi, double *default_value, int32_t *flags) {
  const mpnas__setting *s = row(handle_kind, param);
  if (s == NULL) return MPNAS_E_UNKNOWN_PARAMETER;
  if (type != NULL) *type = s->type == MPNAS__SETTING_REAL ? MPNAS_PARAM_REAL : MPNAS_PARAM_INT;
  if (lo != NULL) *lo = s->lo;
  if (hi != NULL) *hi = s->hi;
  if (default_value != NULL) *default_value = s->def;
  if (flags != NULL) *flags = (int32_t)(s->flags & ~(uint32_t)MPNAS__SETTING_NAN_OK);
  return MPNAS_OK;
}

mpnas_status mpnas_param_names(int32_t handle_kind, int32_t param, const char **name,
                               const char **short_name, const char **values_prefix) {
  const mpnas__setting *s = row(handle_kind, param);
  if (s == NULL) return MPNAS_E_UNKNOWN_PARAMETER;
  if (name != NULL) *name = s->name;
  if (short_name != NULL) *short_name = s->short_name;
  if (values_prefix != NULL) *values_prefix = s->values;
  return MPNAS_OK;
}
