/* api_space.c - public entry points for search spaces. */
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "common/settings.h"
#include "net/space.h"

#define FAIL(st, ...) mpnas__fail(space->ctx, (st), __VA_ARGS__)

static int valid_act(int64_t a) { return a >= MPNAS_ACT_NONE && a <= MPNAS_ACT_HSIGMOID; }

mpnas_status mpnas_space_create(mpnas_context *ctx, int32_t preset, mpnas_space **out) {
  if (ctx == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (out == NULL) return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "mpnas_space_create: out is NULL");
  *out = NULL;
  if (preset < MPNAS_PRESET_EMPTY || preset > MPNAS_PRESET_MBV2_9)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "unknown space preset %d (MPNAS_PRESET_*)",
                       (int)preset);
  mpnas_space *s = mpnas__calloc(ctx, 1, sizeof *s);
  if (s == NULL) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating a search space");
  s->ctx = ctx;
  mpnas__space_preset(s, preset);
  *out = s;
  return MPNAS_OK;
}

void mpnas_space_free(mpnas_space *space) {
  /* a model's or supernet's own space is freed with its handle */
  if (space != NULL && space->owner == NULL) mpnas__free(space->ctx, space);
}

/* The setters' refusal of a handle's own space (see mpnas_space.owner). */
static mpnas_status writable(mpnas_space *space, const char *call) {
  if (space->owner == NULL) return MPNAS_OK;
  return mpnas__fail(space->ctx, MPNAS_E_STATE,
                     "%s: this space belongs to a %s (mpnas_%s_space gives it read-only); "
                     "create a space of your own to change", call, space->owner, space->owner);
}

static mpnas_status range(mpnas_space *space, const char *name, int64_t v, int64_t lo,
                          int64_t hi) {
  if (v < lo || v > hi)
    return FAIL(MPNAS_E_OUT_OF_RANGE, "%s must be in %lld..%lld, got %lld", name,
                (long long)lo, (long long)hi, (long long)v);
  return MPNAS_OK;
}

mpnas_status mpnas_space_set_int(mpnas_space *space, int32_t param, int64_t value) {
  if (space == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = writable(space, "mpnas_space_set_int");
  if (st != MPNAS_OK) return st;
  return mpnas__settings_set_int(space->ctx, &mpnas__space_settings, space, param, value);
}

mpnas_status mpnas_space_get_int(const mpnas_space *space, int32_t param, int64_t *value) {
  if (space == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (value == NULL)
    return mpnas__fail(space->ctx, MPNAS_E_INVALID_ARGUMENT, "mpnas_space_get_int: value is NULL");
  switch (param) { /* the read-only ones, computed */
    case MPNAS_SPACE_NUM_STAGES: *value = space->nstages; return MPNAS_OK;
    case MPNAS_SPACE_NUM_LAYERS: *value = mpnas__space_num_layers(space); return MPNAS_OK;
    default:
      return mpnas__settings_get_int(space->ctx, &mpnas__space_settings, space, param, value);
  }
}

mpnas_status mpnas_space_clear_stages(mpnas_space *space) {
  if (space == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = writable(space, "mpnas_space_clear_stages");
  if (st != MPNAS_OK) return st;
  space->nstages = 0;
  return MPNAS_OK;
}

mpnas_status mpnas_space_add_stage(mpnas_space *space, int32_t out_channels, int32_t layers,
                                   int32_t stride, int32_t activation, int32_t skippable) {
  if (space == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = writable(space, "mpnas_space_add_stage");
  if (st != MPNAS_OK) return st;
  if ((st = range(space, "stage out_channels", out_channels, 1, 8192)) != MPNAS_OK) return st;
  if ((st = range(space, "stage layers", layers, 1, 64)) != MPNAS_OK) return st;
  if ((st = range(space, "stage stride", stride, 1, 2)) != MPNAS_OK) return st;
  if ((st = range(space, "stage skippable", skippable, 0, 1)) != MPNAS_OK) return st;
  if (!valid_act(activation))
    return FAIL(MPNAS_E_OUT_OF_RANGE, "stage activation must be an MPNAS_ACT_* value, got %d",
                (int)activation);
  if (space->nstages == MPNAS__MAX_STAGES)
    return FAIL(MPNAS_E_OUT_OF_RANGE, "a space holds at most %d stages", MPNAS__MAX_STAGES);
  if (mpnas__space_num_layers(space) + layers > MPNAS__MAX_LAYERS)
    return FAIL(MPNAS_E_OUT_OF_RANGE, "a space holds at most %d layers", MPNAS__MAX_LAYERS);
  mpnas__space_add_stage(space, out_channels, layers, stride, activation, skippable);
  return MPNAS_OK;
}

static mpnas_status check_list(mpnas_space *space, const char *what, const int32_t *v,
                               size_t n, int32_t lo, int32_t hi, int odd) {
  if (v == NULL) return FAIL(MPNAS_E_INVALID_ARGUMENT, "%s list is NULL", what);
  if (n < 1 || n > MPNAS__MAX_CHOICES)
    return FAIL(MPNAS_E_OUT_OF_RANGE, "%s list must have 1..%d entries, got %zu", what,
                MPNAS__MAX_CHOICES, n);
  for (size_t i = 0; i < n; i++) {
    if (v[i] < lo || v[i] > hi || (odd && v[i] % 2 == 0))
      return FAIL(MPNAS_E_OUT_OF_RANGE, "%s[%zu] = %d is not %s in %d..%d", what, i, (int)v[i],
                  odd ? "an odd value" : "a value", (int)lo, (int)hi);
    for (size_t j = 0; j < i; j++)
      if (v[j] == v[i])
        return FAIL(MPNAS_E_INVALID_ARGUMENT, "%s list repeats %d", what, (int)v[i]);
  }
  return MPNAS_OK;
}

mpnas_status mpnas_space_set_choices(mpnas_space *space, int32_t stage, const int32_t *kernels,
                                     size_t num_kernels, const int32_t *expansions,
                                     size_t num_expansions) {
  if (space == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st0 = writable(space, "mpnas_space_set_choices");
  if (st0 != MPNAS_OK) return st0;
  if (stage < -1 || stage >= space->nstages)
    return FAIL(MPNAS_E_OUT_OF_RANGE, "stage %d does not exist (the space has %d; -1 = default)",
                (int)stage, (int)space->nstages);
  mpnas_status st = check_list(space, "kernel", kernels, num_kernels, 1, 9, 1);
  if (st == MPNAS_OK) st = check_list(space, "expansion", expansions, num_expansions, 1, 16, 0);
  if (st != MPNAS_OK) return st;
  int32_t *k = stage < 0 ? space->kernels : space->stages[stage].kernels;
  int32_t *e = stage < 0 ? space->expansions : space->stages[stage].expansions;
  memcpy(k, kernels, sizeof *k * num_kernels);
  memcpy(e, expansions, sizeof *e * num_expansions);
  if (stage < 0) {
    space->nk = (int32_t)num_kernels;
    space->ne = (int32_t)num_expansions;
  } else {
    space->stages[stage].nk = (int32_t)num_kernels;
    space->stages[stage].ne = (int32_t)num_expansions;
    space->stages[stage].own_choices = 1;
  }
  return MPNAS_OK;
}

static mpnas_status get_layer(const mpnas_space *space, int32_t layer, mpnas__layer *l) {
  int32_t n = mpnas__space_num_layers(space);
  if (layer < 0 || layer >= n)
    return mpnas__fail(space->ctx, MPNAS_E_OUT_OF_RANGE, "layer %d does not exist (the space has %d)",
                       (int)layer, (int)n);
  mpnas__space_layer(space, layer, l);
  return MPNAS_OK;
}

mpnas_status mpnas_space_num_ops(const mpnas_space *space, int32_t layer, int32_t *num_ops) {
  if (space == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (num_ops == NULL)
    return mpnas__fail(space->ctx, MPNAS_E_INVALID_ARGUMENT, "mpnas_space_num_ops: num_ops is NULL");
  mpnas__layer l;
  mpnas_status st = get_layer(space, layer, &l);
  if (st == MPNAS_OK) *num_ops = l.nops;
  return st;
}

mpnas_status mpnas_space_op_info(const mpnas_space *space, int32_t layer, int32_t op,
                                 int32_t *kernel, int32_t *expansion, int32_t *se) {
  if (space == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (kernel == NULL || expansion == NULL || se == NULL)
    return mpnas__fail(space->ctx, MPNAS_E_INVALID_ARGUMENT,
                       "mpnas_space_op_info: kernel, expansion or se is NULL");
  mpnas__layer l;
  mpnas_status st = get_layer(space, layer, &l);
  if (st != MPNAS_OK) return st;
  if (op < 0 || op >= l.nops)
    return mpnas__fail(space->ctx, MPNAS_E_OUT_OF_RANGE, "layer %d has ops 0..%d, got %d",
                       (int)layer, (int)l.nops - 1, (int)op);
  mpnas__op o = mpnas__space_op(space, &l, op);
  *kernel = o.kernel;
  *expansion = o.expansion;
  *se = o.se;
  return MPNAS_OK;
}

static mpnas_status check_path(const mpnas_space *space, const int32_t *path, size_t n) {
  int32_t layers = mpnas__space_num_layers(space);
  if (path == NULL) return mpnas__fail(space->ctx, MPNAS_E_INVALID_ARGUMENT, "path is NULL");
  if (n != (size_t)layers)
    return mpnas__fail(space->ctx, MPNAS_E_INVALID_ARGUMENT,
                       "path has %zu entries, the space has %d layers", n, (int)layers);
  for (int32_t i = 0; i < layers; i++) {
    mpnas__layer l;
    mpnas__space_layer(space, i, &l);
    if (path[i] < 0 || path[i] >= l.nops)
      return mpnas__fail(space->ctx, MPNAS_E_OUT_OF_RANGE,
                         "path[%d] = %d, but layer %d has ops 0..%d", (int)i, (int)path[i],
                         (int)i, (int)l.nops - 1);
  }
  return MPNAS_OK;
}

static int op_name(mpnas__op o, char *buf, size_t cap) {
  if (o.kernel == 0) return snprintf(buf, cap, "zero");
  return snprintf(buf, cap, "k%de%d%s", (int)o.kernel, (int)o.expansion, o.se ? "-se" : "");
}

mpnas_status mpnas_space_path_string(const mpnas_space *space, const int32_t *path,
                                     size_t num_layers, char *buf, size_t cap, size_t *needed) {
  if (space == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = check_path(space, path, num_layers);
  if (st != MPNAS_OK) return st;
  size_t len = 0;
  char name[32];
  for (size_t i = 0; i < num_layers; i++) {
    mpnas__layer l;
    mpnas__space_layer(space, (int32_t)i, &l);
    len += (size_t)op_name(mpnas__space_op(space, &l, path[i]), name, sizeof name) + (i ? 1 : 0);
  }
  if (needed) *needed = len + 1;
  if (buf == NULL && needed != NULL) return MPNAS_OK; /* a size query */
  if (buf == NULL || cap < len + 1) /* too small: the sizes disagree (mpnas.h) */
    return mpnas__fail(space->ctx, MPNAS_E_INVALID_ARGUMENT,
                       "path text needs %zu bytes, buffer has %zu", len + 1, buf ? cap : 0);
  size_t at = 0;
  for (size_t i = 0; i < num_layers; i++) {
    mpnas__layer l;
    mpnas__space_layer(space, (int32_t)i, &l);
    if (i) buf[at++] = ' ';
    at += (size_t)op_name(mpnas__space_op(space, &l, path[i]), buf + at, cap - at);
  }
  buf[at] = '\0';
  return MPNAS_OK;
}

mpnas_status mpnas_space_parse_path(const mpnas_space *space, const char *text, int32_t *path,
                                    size_t num_layers) {
  if (space == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (text == NULL || path == NULL)
    return mpnas__fail(space->ctx, MPNAS_E_INVALID_ARGUMENT, "text or path is NULL");
  int32_t layers = mpnas__space_num_layers(space);
  if (num_layers != (size_t)layers)
    return mpnas__fail(space->ctx, MPNAS_E_INVALID_ARGUMENT,
                       "path has %zu entries, the space has %d layers", num_layers, (int)layers);
  const char *p = text;
  for (int32_t i = 0; i < layers; i++) {
    while (*p == ' ') p++;
    size_t n = strcspn(p, " ");
    mpnas__layer l;
    mpnas__space_layer(space, i, &l);
    int32_t found = -1;
    char name[32];
    for (int32_t op = 0; op < l.nops && found < 0; op++) {
      int len = op_name(mpnas__space_op(space, &l, op), name, sizeof name);
      if ((size_t)len == n && strncmp(name, p, n) == 0) found = op;
    }
    if (found < 0)
      return mpnas__fail(space->ctx, MPNAS_E_INVALID_ARGUMENT,
                         "layer %d: \"%.*s\" is not one of its ops", (int)i, (int)(n > 20 ? 20 : n), p);
    path[i] = found;
    p += n;
  }
  while (*p == ' ') p++;
  if (*p != '\0')
    return mpnas__fail(space->ctx, MPNAS_E_INVALID_ARGUMENT, "path text has more than %d ops",
                       (int)layers);
  return MPNAS_OK;
}

mpnas_status mpnas_space_path_cost(const mpnas_space *space, const int32_t *path,
                                   size_t num_layers, int32_t num_classes, int64_t *macs,
                                   int64_t *params) {
  if (space == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (macs == NULL || params == NULL)
    return mpnas__fail(space->ctx, MPNAS_E_INVALID_ARGUMENT, "macs or params is NULL");
  mpnas_status st = check_path(space, path, num_layers);
  if (st != MPNAS_OK) return st;
  if (num_classes < 1 || num_classes > 65535)
    return mpnas__fail(space->ctx, MPNAS_E_OUT_OF_RANGE, "num_classes must be 1..65535, got %d",
                       (int)num_classes);
  mpnas__cost c = mpnas__path_cost(space, path, num_classes);
  *macs = c.macs;
  *params = c.params;
  return MPNAS_OK;
}

static mpnas_status check_paths(const mpnas_space *space, const int32_t *paths, size_t d,
                                size_t num_layers) {
  if (paths == NULL) return mpnas__fail(space->ctx, MPNAS_E_INVALID_ARGUMENT, "paths is NULL");
  if (d < 1 || d > 4096)
    return mpnas__fail(space->ctx, MPNAS_E_OUT_OF_RANGE, "num_domains must be 1..4096, got %zu", d);
  for (size_t i = 0; i < d; i++) {
    mpnas_status st = check_path(space, paths + i * num_layers, num_layers);
    if (st != MPNAS_OK) return st;
  }
  return MPNAS_OK;
}

mpnas_status mpnas_space_jaccard(const mpnas_space *space, const int32_t *paths,
                                 size_t num_domains, size_t num_layers, double *matrix,
                                 size_t cap) {
  if (space == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = check_paths(space, paths, num_domains, num_layers);
  if (st != MPNAS_OK) return st;
  if (matrix == NULL || cap < num_domains * num_domains)
    return mpnas__fail(space->ctx, MPNAS_E_INVALID_ARGUMENT,
                       "matrix needs %zu entries", num_domains * num_domains);
  for (size_t a = 0; a < num_domains; a++)
    for (size_t b = 0; b < num_domains; b++) {
      int inter = 0, uni = 0;
      for (size_t l = 0; l < num_layers; l++) {
        mpnas__layer ly;
        mpnas__space_layer(space, (int32_t)l, &ly);
        int32_t oa = paths[a * num_layers + l], ob = paths[b * num_layers + l];
        int za = mpnas__space_op(space, &ly, oa).kernel == 0;
        int zb = mpnas__space_op(space, &ly, ob).kernel == 0;
        /* Nodes of the two sets at this layer: {oa} unless zero, {ob} unless zero. */
        if (!za && !zb && oa == ob) {
          inter++;
          uni++;
        } else {
          uni += !za + !zb;
        }
      }
      matrix[a * num_domains + b] = uni ? (double)inter / uni : 1.0;
    }
  return MPNAS_OK;
}

mpnas_status mpnas_space_node_users(const mpnas_space *space, const int32_t *paths,
                                    size_t num_domains, size_t num_layers, int32_t layer,
                                    int32_t op, int32_t *users) {
  if (space == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = check_paths(space, paths, num_domains, num_layers);
  if (st != MPNAS_OK) return st;
  if (users == NULL) return mpnas__fail(space->ctx, MPNAS_E_INVALID_ARGUMENT, "users is NULL");
  mpnas__layer l;
  if ((st = get_layer(space, layer, &l)) != MPNAS_OK) return st;
  if (op < 0 || op >= l.nops)
    return mpnas__fail(space->ctx, MPNAS_E_OUT_OF_RANGE, "layer %d has ops 0..%d, got %d",
                       (int)layer, (int)l.nops - 1, (int)op);
  int32_t n = 0;
  for (size_t d = 0; d < num_domains; d++) n += paths[d * num_layers + (size_t)layer] == op;
  *users = n;
  return MPNAS_OK;
}
