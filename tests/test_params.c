/* test_params.c - mpnas_param_list / _bounds / _names against what the handles do: for
 * every parameter of every handle kind, a new handle holds the described default, the
 * setter takes both ends of the range and refuses the values just outside it (and the
 * other type, and a read-only parameter), and the setters and getters know no code the
 * list leaves out. tests/param_docs.py holds the header's comments and the Python
 * wrapper to the same descriptions. */
#include <ctype.h>
#include <float.h>
#include <stdint.h>

#include "check.h"
#include "mpnas.h"

static const int32_t KINDS[] = {MPNAS_HANDLE_CONTEXT, MPNAS_HANDLE_SPACE, MPNAS_HANDLE_SUPERNET,
                                MPNAS_HANDLE_MODEL, MPNAS_HANDLE_MODEL_DOMAIN};

typedef struct handles {
  mpnas_context *ctx;
  mpnas_space *space; /* MPNAS_PRESET_EMPTY: the described defaults */
  mpnas_supernet *sn;
  mpnas_model *model;
} handles;

static int make(handles *h) {
  int32_t path[2] = {0, 0}, d;
  mpnas_space *staged = NULL;
  memset(h, 0, sizeof *h);
  return mpnas_context_create(&h->ctx) == MPNAS_OK &&
         mpnas_space_create(h->ctx, MPNAS_PRESET_EMPTY, &h->space) == MPNAS_OK &&
         mpnas_space_create(h->ctx, MPNAS_PRESET_EMPTY, &staged) == MPNAS_OK &&
         mpnas_space_add_stage(staged, 8, 2, 1, MPNAS_ACT_RELU, 1) == MPNAS_OK &&
         mpnas_supernet_create(h->ctx, staged, &h->sn) == MPNAS_OK &&
         mpnas_model_create(h->ctx, staged, &h->model) == MPNAS_OK &&
         mpnas_model_add_domain(h->model, "a", 3, path, 2, &d) == MPNAS_OK &&
         (mpnas_space_free(staged), 1);
}

static void release(handles *h) {
  mpnas_model_free(h->model);
  mpnas_supernet_free(h->sn);
  mpnas_space_free(h->space);
  mpnas_context_free(h->ctx);
}

/* The handle kind's setters and getters (NULL-free: MPNAS_E_UNKNOWN_PARAMETER where a kind
 * has no such function, as for a parameter of the other type). */
static mpnas_status set_int(handles *h, int32_t kind, int32_t p, int64_t v) {
  switch (kind) {
    case MPNAS_HANDLE_CONTEXT: return mpnas_context_set_int(h->ctx, p, v);
    case MPNAS_HANDLE_SPACE: return mpnas_space_set_int(h->space, p, v);
    case MPNAS_HANDLE_SUPERNET: return mpnas_supernet_set_int(h->sn, p, v);
    case MPNAS_HANDLE_MODEL: return mpnas_model_set_int(h->model, p, v);
    default: return mpnas_model_set_domain_int(h->model, 0, p, v);
  }
}
static mpnas_status set_double(handles *h, int32_t kind, int32_t p, double v) {
  switch (kind) {
    case MPNAS_HANDLE_SUPERNET: return mpnas_supernet_set_double(h->sn, p, v);
    case MPNAS_HANDLE_MODEL: return mpnas_model_set_double(h->model, p, v);
    default: return MPNAS_E_UNKNOWN_PARAMETER;
  }
}
/* No getter (a domain's settings): MPNAS_E_UNSUPPORTED. */
static mpnas_status get_int(handles *h, int32_t kind, int32_t p, int64_t *v) {
  switch (kind) {
    case MPNAS_HANDLE_CONTEXT: return mpnas_context_get_int(h->ctx, p, v);
    case MPNAS_HANDLE_SPACE: return mpnas_space_get_int(h->space, p, v);
    case MPNAS_HANDLE_SUPERNET: return mpnas_supernet_get_int(h->sn, p, v);
    case MPNAS_HANDLE_MODEL: return mpnas_model_get_int(h->model, p, v);
    default: return MPNAS_E_UNSUPPORTED;
  }
}
static mpnas_status get_double(handles *h, int32_t kind, int32_t p, double *v) {
  switch (kind) {
    case MPNAS_HANDLE_SUPERNET: return mpnas_supernet_get_double(h->sn, p, v);
    case MPNAS_HANDLE_MODEL: return mpnas_model_get_double(h->model, p, v);
    default: return MPNAS_E_UNKNOWN_PARAMETER;
  }
}

/* A whole-number bound as int64 (the int64 ends are described as +-2^63). */
static int64_t as_i64(double v) {
  if (v >= 0x1p63) return INT64_MAX;
  if (v <= -0x1p63) return INT64_MIN;
  return (int64_t)v;
}

/* The documented rule: the constant without "MPNAS_" and its handle's word, lower case;
 * ABDP's keep "abdp_". */
static int short_name_ok(const char *name, const char *short_name) {
  char want[64];
  const char *p = name + strlen("MPNAS_");
  if (strncmp(name, "MPNAS_", 6) != 0) return 0;
  if (strncmp(p, "ABDP_", 5) != 0) {
    p = strchr(p, '_');
    if (p == NULL) return 0;
    p++;
  }
  size_t n = strlen(p);
  if (n == 0 || n >= sizeof want) return 0;
  for (size_t i = 0; i <= n; i++) want[i] = (char)tolower((unsigned char)p[i]);
  return strcmp(want, short_name) == 0;
}

static void test_lists_and_names(void) {
  for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++) {
    int32_t kind = KINDS[k], params[64];
    size_t n = 0, n2 = 0;
    CHECK_EQ_INT(mpnas_param_list(kind, NULL, 0, &n), MPNAS_OK);
    CHECK(n >= 1 && n <= 64);
    CHECK_EQ_INT(mpnas_param_list(kind, params, 64, &n2), MPNAS_OK);
    CHECK_EQ_INT(n2, n);
    if (n >= 2) {
      int32_t first = -1;
      CHECK_EQ_INT(mpnas_param_list(kind, &first, 1, &n2), MPNAS_E_INVALID_ARGUMENT);
      CHECK_EQ_INT(n2, n); /* the size is still given */
    }
    for (size_t i = 0; i < n && i < 64; i++) {
      CHECK_MSG(i == 0 || params[i] > params[i - 1], "kind %d: codes not increasing", (int)kind);
      const char *name = NULL, *short_name = NULL, *values = NULL;
      int32_t type = -1, flags = -1;
      double lo, hi, def;
      CHECK_EQ_INT(mpnas_param_names(kind, params[i], &name, &short_name, &values), MPNAS_OK);
      CHECK_EQ_INT(mpnas_param_bounds(kind, params[i], &type, &lo, &hi, &def, &flags), MPNAS_OK);
      if (name == NULL || short_name == NULL || values == NULL) {
        CHECK(0);
        continue;
      }
      CHECK_MSG(short_name_ok(name, short_name), "%s is called %s", name, short_name);
      CHECK_MSG((flags & MPNAS_PARAM_ENUM) ? strncmp(values, "MPNAS_", 6) == 0 : values[0] == 0,
                "%s: values prefix \"%s\", flags %d", name, values, (int)flags);
      CHECK_MSG(type == MPNAS_PARAM_INT || type == MPNAS_PARAM_REAL, "%s: type %d", name,
                (int)type);
      if (flags & MPNAS_PARAM_READ_ONLY)
        CHECK_MSG(isnan(lo) && isnan(hi) && isnan(def), "%s: read-only with a range", name);
      else
        CHECK_MSG(lo < hi && (type == MPNAS_PARAM_REAL || (lo == floor(lo) && hi == floor(hi))),
                  "%s: range %g..%g", name, lo, hi);
    }
  }
  /* Only what exists; every out-pointer optional. */
  CHECK_EQ_INT(mpnas_param_list(0, NULL, 0, NULL), MPNAS_E_UNKNOWN_PARAMETER);
  CHECK_EQ_INT(mpnas_param_list(6, NULL, 0, NULL), MPNAS_E_UNKNOWN_PARAMETER);
  CHECK_EQ_INT(mpnas_param_list(MPNAS_HANDLE_SPACE, NULL, 3, NULL), MPNAS_E_INVALID_ARGUMENT);
  /* Codes of another handle's parameters (a model's 21, a search's 14). */
  CHECK_EQ_INT(mpnas_param_bounds(MPNAS_HANDLE_SUPERNET, MPNAS_MODEL_NUM_NODES, NULL, NULL, NULL,
                                  NULL, NULL),
               MPNAS_E_UNKNOWN_PARAMETER);
  CHECK_EQ_INT(mpnas_param_bounds(MPNAS_HANDLE_MODEL, MPNAS_SEARCH_COST, NULL, NULL, NULL, NULL,
                                  NULL),
               MPNAS_E_UNKNOWN_PARAMETER);
  CHECK_EQ_INT(mpnas_param_names(7, MPNAS_CONTEXT_SEED, NULL, NULL, NULL),
               MPNAS_E_UNKNOWN_PARAMETER);
  CHECK_EQ_INT(mpnas_param_names(MPNAS_HANDLE_CONTEXT, MPNAS_CONTEXT_SEED, NULL, NULL, NULL),
               MPNAS_OK);
  /* Two that once disagreed with the header (it said 0..1). */
  double lo, hi;
  int32_t flags;
  CHECK_EQ_INT(mpnas_param_bounds(MPNAS_HANDLE_MODEL, MPNAS_TRAIN_MOMENTUM, NULL, &lo, &hi, NULL,
                                  &flags),
               MPNAS_OK);
  CHECK(lo == 0 && hi == 0.999 && flags == 0);
  CHECK_EQ_INT(mpnas_param_bounds(MPNAS_HANDLE_SUPERNET, MPNAS_ABDP_LOSS_MOMENTUM, NULL, &lo, &hi,
                                  NULL, &flags),
               MPNAS_OK);
  CHECK(lo == 0 && hi == 1 && flags == MPNAS_PARAM_HI_OPEN);
}

/* Setting v must give want, and a successful set must read back. */
static void expect_set(handles *h, int32_t kind, int32_t p, const char *name, int real, double v,
                       mpnas_status want) {
  mpnas_status st = real ? set_double(h, kind, p, v) : set_int(h, kind, p, as_i64(v));
  CHECK_MSG(st == want, "%s = %.17g: status %d, expected %d (%s)", name, v, (int)st, (int)want,
            mpnas_context_last_error(h->ctx));
  if (st != MPNAS_OK || kind == MPNAS_HANDLE_MODEL_DOMAIN) return;
  int64_t i = 0;
  double x = 0;
  st = real ? get_double(h, kind, p, &x) : get_int(h, kind, p, &i);
  CHECK_MSG(st == MPNAS_OK && (real ? x == v : i == as_i64(v)), "%s = %.17g reads back wrong",
            name, v);
}

static void test_handles_follow_the_descriptions(void) {
  handles h;
  if (!make(&h)) {
    CHECK_MSG(0, "handles: %s", mpnas_context_last_error(h.ctx));
    release(&h);
    return;
  }
  for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++) {
    int32_t kind = KINDS[k], params[64];
    size_t n = 0;
    CHECK_EQ_INT(mpnas_param_list(kind, params, 64, &n), MPNAS_OK);
    for (size_t i = 0; i < n; i++) {
      int32_t p = params[i], type, flags;
      double lo, hi, def;
      const char *name;
      mpnas_param_bounds(kind, p, &type, &lo, &hi, &def, &flags);
      mpnas_param_names(kind, p, &name, NULL, NULL);
      int real = type == MPNAS_PARAM_REAL;
      /* The other type is refused; so is any set of a read-only parameter. */
      CHECK_MSG(real ? set_int(&h, kind, p, 1) == MPNAS_E_UNKNOWN_PARAMETER
                     : set_double(&h, kind, p, 1) == MPNAS_E_UNKNOWN_PARAMETER,
                "%s: the setter of the other type took it", name);
      int64_t iv = 0;
      double dv = 0;
      mpnas_status got = real ? get_double(&h, kind, p, &dv) : get_int(&h, kind, p, &iv);
      if (flags & MPNAS_PARAM_READ_ONLY) {
        CHECK_MSG(set_int(&h, kind, p, 0) == MPNAS_E_INVALID_ARGUMENT, "%s: read-only", name);
        CHECK_MSG(got == MPNAS_OK, "%s: no getter", name);
        continue;
      }
      /* A new handle holds the default (NaN: it depends, nothing to compare). */
      if (got != MPNAS_E_UNSUPPORTED && !isnan(def))
        CHECK_MSG(got == MPNAS_OK && (real ? dv == def : iv == as_i64(def)),
                  "%s: a new handle holds %.17g, the default is %.17g", name,
                  real ? dv : (double)iv, def);
      /* ISA: an end may be an ISA this CPU lacks (the bounds say what exists). */
      if (kind == MPNAS_HANDLE_CONTEXT && p == MPNAS_CONTEXT_ISA) continue;
      double below = real ? nextafter(lo, -INFINITY) : lo - 1;
      double above = real ? nextafter(hi, INFINITY) : hi + 1;
      if (lo > -0x1p63) expect_set(&h, kind, p, name, real, below, MPNAS_E_OUT_OF_RANGE);
      if (hi < 0x1p63) expect_set(&h, kind, p, name, real, above, MPNAS_E_OUT_OF_RANGE);
      expect_set(&h, kind, p, name, real, lo,
                 flags & MPNAS_PARAM_LO_OPEN ? MPNAS_E_OUT_OF_RANGE : MPNAS_OK);
      expect_set(&h, kind, p, name, real, hi,
                 flags & MPNAS_PARAM_HI_OPEN ? MPNAS_E_OUT_OF_RANGE : MPNAS_OK);
      if (flags & MPNAS_PARAM_LO_OPEN) expect_set(&h, kind, p, name, real, nextafter(lo, hi), 0);
      if (flags & MPNAS_PARAM_HI_OPEN) expect_set(&h, kind, p, name, real, nextafter(hi, lo), 0);
      if (flags & MPNAS_PARAM_ODD) expect_set(&h, kind, p, name, real, lo + 1, MPNAS_E_OUT_OF_RANGE);
      if (real) expect_set(&h, kind, p, name, real, NAN, MPNAS_E_OUT_OF_RANGE);
    }
    /* The setters and getters take no code the list leaves out. */
    for (int32_t p = -2; p < 260; p++) {
      int listed = 0;
      for (size_t i = 0; i < n; i++) listed |= params[i] == p;
      if (listed) continue;
      int64_t iv;
      double dv;
      mpnas_status a = set_int(&h, kind, p, 1), b = set_double(&h, kind, p, 1);
      mpnas_status c = get_int(&h, kind, p, &iv), d = get_double(&h, kind, p, &dv);
      CHECK_MSG(a == MPNAS_E_UNKNOWN_PARAMETER && b == MPNAS_E_UNKNOWN_PARAMETER &&
                    (c == MPNAS_E_UNKNOWN_PARAMETER || c == MPNAS_E_UNSUPPORTED) &&
                    d == MPNAS_E_UNKNOWN_PARAMETER,
                "kind %d takes parameter %d, which mpnas_param_list leaves out", (int)kind,
                (int)p);
    }
  }
  release(&h);
}

int main(void) {
  RUN(test_lists_and_names);
  RUN(test_handles_follow_the_descriptions);
  return check_finish();
}
