/* params.c - every library parameter by name, for `--set key=value` and `mpnas params`.
 *
 * The parameters, their names (the library's short names, as the Python package uses
 * them, and the header's constants), types and read-only flags are read from the
 * library's own description (mpnas_param_list, _names, _bounds), so a new parameter
 * needs no change here; only the names of enumerated values are kept below (the library
 * gives their constants' prefix, not the names). A key is TABLE.NAME (context., space.,
 * search., train.; domain.DOMAIN.hflip for a domain's setting), a NAME that only one
 * table has, or the header's constant (MPNAS_SEARCH_STEPS). The library checks every
 * value's range and its message is shown as it is. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct named_value {
  const char *name;
  int64_t value;
} named_value;

static const named_value ISA[] = {{"auto", 0}, {"scalar", 1}, {"avx2", 2}, {"neon", 3}, {0, 0}};
static const named_value LOG_LEVEL[] = {{"none", 0}, {"error", 1}, {"warning", 2}, {"info", 3},
                                        {"debug", 4}, {0, 0}};
static const named_value ACTIVATION[] = {{"none", 0}, {"relu", 1}, {"relu6", 2}, {"hswish", 3},
                                         {"sigmoid", 4}, {"hsigmoid", 5}, {0, 0}};
static const named_value SE_MODE[] = {{"never", 0}, {"choice", 1}, {"always", 2}, {0, 0}};
static const named_value METHOD[] = {{"mpnas", 0}, {"independent", 1}, {"multi_head", 2},
                                     {"single_path", 3}, {0, 0}};
static const named_value COST[] = {{"none", 0}, {"macs", 1}, {"params", 2}, {"latency", 3}, {0, 0}};
static const named_value REWARD[] = {{"abs", 0}, {"mnas", 1}, {0, 0}};
static const named_value OPTIMIZER[] = {{"sgd", 0}, {"rmsprop", 1}, {"adam", 2}, {0, 0}};
static const named_value SAMPLING[] = {{"balanced", 0}, {"proportional", 1}, {0, 0}};
static const named_value SIGNAL[] = {{"none", 0}, {"loss", 1}, {"kpi", 2}, {"boost", 3}, {0, 0}};
static const named_value PRESET[] = {{"empty", 0}, {"32px", 1}, {"mobilenet_v3", 2},
                                     {"mbv2_9", 3}, {0, 0}};

/* The value names of each enumeration, by its constants' prefix (mpnas_param_names). */
static const struct {
  const char *prefix;
  const named_value *values;
} ENUMS[] = {{"MPNAS_ISA_", ISA},          {"MPNAS_LOG_", LOG_LEVEL},
             {"MPNAS_ACT_", ACTIVATION},   {"MPNAS_SE_", SE_MODE},
             {"MPNAS_METHOD_", METHOD},    {"MPNAS_COST_", COST},
             {"MPNAS_REWARD_", REWARD},    {"MPNAS_OPTIMIZER_", OPTIMIZER},
             {"MPNAS_ABDP_SAMPLE_", SAMPLING}, {"MPNAS_ABDP_SIGNAL_", SIGNAL}};

typedef struct param_spec {
  const char *name;     /* the library's short name */
  const char *constant; /* the header's constant */
  int32_t code;
  char type;                  /* 'i' integer, 'd' real */
  const named_value *values;  /* names of an enumeration, or NULL */
  int read_only;
} param_spec;

/* The tables in PARAMS_* order: key prefix, the library's handle kind. */
static const struct {
  const char *prefix;
  int32_t kind;
} TABLES[] = {
    {"context", MPNAS_HANDLE_CONTEXT}, {"space", MPNAS_HANDLE_SPACE},
    {"search", MPNAS_HANDLE_SUPERNET}, {"train", MPNAS_HANDLE_MODEL},
    {"domain", MPNAS_HANDLE_MODEL_DOMAIN},
};
#define NUM_TABLES 5
#define MAX_PARAMS 128 /* of one table; more are not listed */

static const named_value *enum_values(const char *prefix) {
  for (size_t e = 0; e < sizeof ENUMS / sizeof ENUMS[0]; e++)
    if (strcmp(ENUMS[e].prefix, prefix) == 0) return ENUMS[e].values;
  return NULL;
}

/* Table t's parameters in increasing code order, ending with a NULL name: read from the
 * library on first use. */
static const param_spec *table_params(int t) {
  static param_spec specs[NUM_TABLES][MAX_PARAMS + 1];
  static int loaded;
  for (int u = 0; u < NUM_TABLES && !loaded; u++) {
    int32_t codes[MAX_PARAMS], kind = TABLES[u].kind;
    size_t n = 0;
    mpnas_param_list(kind, NULL, 0, &n);
    if (n > MAX_PARAMS) n = MAX_PARAMS;
    mpnas_param_list(kind, codes, n, NULL);
    for (size_t i = 0; i < n; i++) {
      param_spec *p = &specs[u][i];
      const char *prefix = "";
      int32_t type = MPNAS_PARAM_INT, flags = 0;
      mpnas_param_names(kind, codes[i], &p->constant, &p->name, &prefix);
      mpnas_param_bounds(kind, codes[i], &type, NULL, NULL, NULL, &flags);
      p->code = codes[i];
      p->type = type == MPNAS_PARAM_REAL ? 'd' : 'i';
      p->read_only = (flags & MPNAS_PARAM_READ_ONLY) != 0;
      /* The active ISA reads as an ISA's name, though not settable as one. */
      p->values = enum_values(kind == MPNAS_HANDLE_CONTEXT && codes[i] == MPNAS_CONTEXT_ISA_ACTIVE
                                  ? "MPNAS_ISA_"
                                  : prefix);
    }
  }
  loaded = 1;
  return specs[t];
}

int cli_preset_code(const char *name) {
  for (const named_value *v = PRESET; v->name; v++)
    if (strcmp(v->name, name) == 0) return (int)v->value;
  return -1;
}

static const param_spec *in_table(int t, const char *name, size_t len) {
  for (const param_spec *p = table_params(t); p->name; p++)
    if (strlen(p->name) == len && strncmp(p->name, name, len) == 0) return p;
  return NULL;
}

/* A resolved key: the table, the parameter, the domain (PARAMS_DOMAIN). */
typedef struct resolved {
  int table;
  const param_spec *param;
  char domain[CLI_NAME_CAP];
} resolved;

/* Resolve the key of "key=value" (key = set[0..len)). Returns 0, or EXIT_USAGE with a
 * message when quiet is 0. */
static int resolve(const char *set, size_t len, resolved *r, int quiet) {
  memset(r, 0, sizeof *r);
  char key[160];
  if (len >= sizeof key) len = sizeof key - 1;
  memcpy(key, set, len);
  key[len] = 0;
  if (strncmp(key, "MPNAS_", 6) == 0) { /* a header constant */
    for (int t = 0; t < NUM_TABLES; t++)
      for (const param_spec *p = table_params(t); p->name; p++) {
        if (strcmp(p->constant, key) == 0 && t != PARAMS_DOMAIN) {
          r->table = t;
          r->param = p;
          /* MPNAS_ABDP_* belong to search and train alike: the key cannot choose */
          if (strncmp(p->name, "abdp_", 5) == 0) goto ambiguous;
          return 0;
        }
      }
    goto unknown;
  }
  const char *dot = strchr(key, '.');
  if (dot) {
    size_t plen = (size_t)(dot - key);
    for (int t = 0; t < NUM_TABLES; t++) {
      if (strlen(TABLES[t].prefix) != plen || strncmp(key, TABLES[t].prefix, plen) != 0) continue;
      const char *name = dot + 1;
      if (t == PARAMS_DOMAIN) { /* domain.NAME.hflip: NAME may hold dots, the last one ends it */
        const char *last = strrchr(name, '.');
        size_t dlen = last ? (size_t)(last - name) : 0;
        if (dlen == 0 || dlen >= CLI_NAME_CAP) goto unknown;
        memcpy(r->domain, name, dlen);
        r->domain[dlen] = 0;
        name = last + 1;
      }
      r->table = t;
      r->param = in_table(t, name, strlen(name));
      if (r->param) return 0;
    }
    goto unknown;
  }
  int found = 0;
  for (int t = 0; t < NUM_TABLES; t++) {
    const param_spec *p = t == PARAMS_DOMAIN ? NULL : in_table(t, key, strlen(key));
    if (p && found++ == 0) {
      r->table = t;
      r->param = p;
    }
  }
  if (found == 1) return 0;
  if (found > 1) goto ambiguous;
unknown:
  if (!quiet) cli_error("--set %s: unknown parameter \"%s\" (`mpnas params` lists them)", set, key);
  return EXIT_USAGE;
ambiguous:
  if (!quiet)
    cli_error("--set %s: \"%s\" is a parameter of both the search and the training: "
              "say search.%s or train.%s",
              set, key, r->param->name, r->param->name);
  return EXIT_USAGE;
}

/* The value of "key=value" as the parameter's type: an integer, an enumeration's name
 * or a real. Returns 0, or EXIT_USAGE with a message. */
static int parse_value(const char *set, const param_spec *p, int64_t *i, double *d) {
  const char *v = strchr(set, '=') + 1;
  char *end;
  if (p->values)
    for (const named_value *n = p->values; n->name; n++)
      if (strcmp(n->name, v) == 0) {
        *i = n->value;
        return 0;
      }
  errno = 0;
  if (p->type == 'i') {
    *i = strtoll(v, &end, 10);
    if (!errno && end != v && !*end) return 0;
  } else {
    *d = strtod(v, &end);
    if (end != v && !*end && isfinite(*d)) return 0;
  }
  char names[256] = "";
  for (const named_value *n = p->values; n && n->name; n++)
    snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", n == p->values ? "" : ", ",
             n->name);
  if (p->values) cli_error("--set %s: one of %s expected", set, names);
  else cli_error("--set %s: %s expected", set, p->type == 'i' ? "an integer" : "a finite number");
  return EXIT_USAGE;
}

int cli_params_is(const char *set, const char *name) {
  const char *eq = strchr(set, '=');
  resolved r;
  return eq && resolve(set, (size_t)(eq - set), &r, 1) == 0 && strcmp(r.param->name, name) == 0;
}

int cli_params_table_of(const char *set) {
  const char *eq = strchr(set, '=');
  resolved r;
  return eq && resolve(set, (size_t)(eq - set), &r, 1) == 0 ? r.table : -1;
}

int cli_params_check(const cli_options *o) {
  for (int i = 0; i < o->nsets; i++) {
    const char *set = o->sets[i], *eq = strchr(set, '=');
    resolved r;
    int64_t iv;
    double dv;
    if (!eq) {
      cli_error("--set %s: KEY=VALUE expected", set);
      return EXIT_USAGE;
    }
    if (resolve(set, (size_t)(eq - set), &r, 0)) return EXIT_USAGE;
    if (r.param->read_only) {
      cli_error("--set %s: %s.%s is read-only", set, TABLES[r.table].prefix, r.param->name);
      return EXIT_USAGE;
    }
    if (parse_value(set, r.param, &iv, &dv)) return EXIT_USAGE;
  }
  return 0;
}

/* Set one parameter on its handle. */
static mpnas_status set_one(const resolved *r, void *handle, int64_t i, double d) {
  int32_t code = r->param->code;
  int is_int = r->param->type == 'i';
  switch (r->table) {
    case PARAMS_CONTEXT: return mpnas_context_set_int(handle, code, i);
    case PARAMS_SPACE: return mpnas_space_set_int(handle, code, i);
    case PARAMS_SEARCH:
      return is_int ? mpnas_supernet_set_int(handle, code, i) : mpnas_supernet_set_double(handle, code, d);
    case PARAMS_TRAIN:
      return is_int ? mpnas_model_set_int(handle, code, i) : mpnas_model_set_double(handle, code, d);
    default: {
      int32_t domain = cli_model_domain(handle, r->domain);
      return domain < 0 ? MPNAS_E_INVALID_ARGUMENT : mpnas_model_set_domain_int(handle, domain, code, i);
    }
  }
}

int cli_params_apply(const cli_options *o, int table, void *handle, mpnas_context *ctx) {
  for (int k = 0; k < o->nsets; k++) {
    const char *set = o->sets[k], *eq = strchr(set, '=');
    resolved r;
    int64_t i = 0;
    double d = 0;
    /* The command line's settings were checked (cli_params_check); run.conf's are
     * checked here: a line without '=', an unknown key or a bad value stops. */
    if (!eq) {
      cli_error("--set %s: KEY=VALUE expected", set);
      return EXIT_USAGE;
    }
    if (resolve(set, (size_t)(eq - set), &r, 0)) return EXIT_USAGE;
    if (r.table != table) continue;
    if (parse_value(set, r.param, &i, &d)) return EXIT_USAGE;
    mpnas_status st = set_one(&r, handle, i, d);
    if (st == MPNAS_E_INVALID_ARGUMENT && r.table == PARAMS_DOMAIN) return EXIT_USAGE;
    if (st != MPNAS_OK) {
      char what[300];
      snprintf(what, sizeof what, "--set %s", set);
      int rc = cli_library_error(ctx, st, what);
      return rc == EXIT_LIBRARY ? rc : EXIT_USAGE;
    }
  }
  return 0;
}

/* ---- mpnas params ------------------------------------------------------------------- */

static mpnas_status get_one(int t, const param_spec *p, const void *handle, int64_t *i, double *d) {
  switch (t) {
    case PARAMS_CONTEXT: return mpnas_context_get_int(handle, p->code, i);
    case PARAMS_SPACE: return mpnas_space_get_int(handle, p->code, i);
    case PARAMS_SEARCH:
      return p->type == 'i' ? mpnas_supernet_get_int(handle, p->code, i)
                            : mpnas_supernet_get_double(handle, p->code, d);
    default:
      return p->type == 'i' ? mpnas_model_get_int(handle, p->code, i)
                            : mpnas_model_get_double(handle, p->code, d);
  }
}

static void print_param(int t, const param_spec *p, const void *handle) {
  char key[96], value[64] = "";
  int64_t i = 0;
  double d = 0;
  if (t == PARAMS_DOMAIN) snprintf(key, sizeof key, "domain.DOMAIN.%s", p->name);
  else snprintf(key, sizeof key, "%s.%s", TABLES[t].prefix, p->name);
  if (handle && get_one(t, p, handle, &i, &d) == MPNAS_OK) {
    if (p->type == 'd') snprintf(value, sizeof value, "%g", d);
    else snprintf(value, sizeof value, "%lld", (long long)i);
    for (const named_value *n = p->values; n && n->name; n++)
      if (n->value == i) snprintf(value, sizeof value, "%s", n->name);
  } else if (t == PARAMS_DOMAIN) {
    snprintf(value, sizeof value, "0");
  }
  printf("%-30s %-7s %-12s", key, p->type == 'i' ? (p->values ? "name" : "integer") : "real",
         value[0] ? value : "-");
  if (p->read_only) printf(" read-only");
  for (const named_value *n = p->values; n && n->name; n++)
    printf("%s%s", n == p->values ? " values: " : ", ", n->name);
  printf("\n");
}

int cli_params_list(const char *preset, int names_only) {
  if (names_only) { /* the names, for tests/test_cli.sh */
    for (int t = 0; t < NUM_TABLES; t++)
      for (const param_spec *p = table_params(t); p->name; p++)
        printf("%s.%s\n", TABLES[t].prefix, p->name);
    return 0;
  }
  mpnas_context *ctx = NULL;
  mpnas_space *space = NULL;
  mpnas_supernet *sn = NULL;
  mpnas_model *model = NULL;
  mpnas_status st;
  int rc = 0;
  if (mpnas_context_create(&ctx) != MPNAS_OK) return EXIT_LIBRARY;
  if ((st = mpnas_space_create(ctx, cli_preset_code(preset), &space)) != MPNAS_OK ||
      (st = mpnas_supernet_create(ctx, space, &sn)) != MPNAS_OK ||
      (st = mpnas_model_create(ctx, space, &model)) != MPNAS_OK) {
    rc = cli_library_error(ctx, st, "params");
  } else {
    const void *handles[NUM_TABLES] = {ctx, space, sn, model, NULL};
    printf("# --set KEY=VALUE: the keys, their type, the default (preset %s) and the values of\n"
           "# an enumeration; a name only one table has may go without its table.\n",
           preset);
    for (int t = 0; t < NUM_TABLES; t++)
      for (const param_spec *p = table_params(t); p->name; p++) print_param(t, p, handles[t]);
  }
  mpnas_model_free(model);
  mpnas_supernet_free(sn);
  mpnas_space_free(space);
  mpnas_context_free(ctx);
  return rc;
}
