/* model_io.c - the multi-path model's file format (docs/MODEL-FORMAT.md; the container
 * underneath is docs/FILE-CONTAINER.md). The training checkpoint, the same format with
 * two more sections, is read and written in model_checkpoint.c on the parts here that
 * model_io.h shares.
 *
 * One format, magic "MPNASMDL", for both kinds of file:
 *   model file   META SPCE DOMS CONF PARW PARB             (mpnas_model_save), version 1
 *   checkpoint   the same + TRST PARS, META.contents = 1   (mpnas_model_save_checkpoint)
 *   quantised    version 3: a model file + QNT8 (the int8 form, model_quant.c, its floats
 *                as halves); version 2 the same with full floats (files of earlier
 *                writers, or a form whose values do not fit half); without PARW PARB
 *                and META.contents = 2 once the float weights are dropped
 * Files without an int8 form are written as version 1, byte for byte as before version
 * 2 existed, so older readers keep reading them; a reader of version 1 refuses a
 * quantised file with MPNAS_E_VERSION.
 * META: what the file holds and its sizes; SPCE: the full space description; DOMS: the
 * domains (name, classes, hflip, path, input normalisation); CONF: the training settings
 * (ABDP's included); PARW / PARB: the weights and the BN running statistics exactly as
 * the model keeps them (the layout follows from space + paths); TRST: step, optimiser
 * step count, random streams, per-domain statistics, data fingerprints, ABDP state;
 * PARS: the optimiser slots.
 *
 * Reading checks everything before it is used: the container (magic, version, lengths,
 * CRCs), every field against the limits the API enforces, every count against the
 * bytes present, and the arrays' sizes against the layout that the space and paths
 * give - first against a lower bound computed without allocating (so a small file can
 * never make the loader build a huge layout), then exactly once it is built. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "model/model_io.h"
#include "model/model_quant.h"

const mpnas__file_kind mpnas__model_kind = {"MPNASMDL", "model", 3, 1};
const mpnas__file_kind mpnas__model_kind_v1 = {"MPNASMDL", "model", 1, 1};
static const mpnas__file_kind model_kind_v2 = {"MPNASMDL", "model", 2, 1};
#define VERSION_QUANT 2u /* QNT8, the int8 form */
#define VERSION_HALF 3u  /* QNT8's floats as halves */
/* (BN slot, domain) pairs of the layout: (3 nodes + 2) x domains. Bounds the
 * bookkeeping a file can make the loader allocate (24 bytes a pair). */
#define MAX_SLOT_PAIRS ((int64_t)1 << 21)

/* ---- Messages ------------------------------------------------------------------------ */

mpnas_status mpnas__model_bad(mpnas_context *ctx, mpnas_status st, const char *where,
                              const char *fmt, ...) {
  char msg[MPNAS__ERROR_CAPACITY];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return mpnas__fail(ctx, st, "%s: %s", where, msg);
}

/* Make sure the last error names the file: failures reported by the container reader
 * (or anything else below) do not know it. `mark` is the failure count before the load
 * (mpnas__failure_mark): without a failure recorded since, there is no detail to keep. */
mpnas_status mpnas__model_annotate(mpnas_context *ctx, mpnas_status st, uint64_t mark,
                                   const char *where) {
  if (st == MPNAS_OK || ctx == NULL) return st;
  char msg[MPNAS__ERROR_CAPACITY];
  const char *last = ctx->last_error;
  if (mpnas__failure_mark(ctx) == mark || ctx->last_status != st ||
      last[0] == '\0')
    return mpnas__fail(ctx, st, "%s: %s", where, mpnas_status_string(st));
  if (strstr(last, where) != NULL) return st;
  /* Drop the "<status text>: " prefix mpnas__fail put in front. */
  const char *prefix = mpnas_status_string(st);
  size_t n = strlen(prefix);
  if (strncmp(last, prefix, n) == 0 && last[n] == ':' && last[n + 1] == ' ') last += n + 2;
  snprintf(msg, sizeof msg, "%s", last);
  return mpnas__fail(ctx, st, "%s: %s", where, msg);
}

/* ---- Small encoders --------------------------------------------------------------------- */

static float le_f32(const unsigned char *p) {
  uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

void mpnas__decode_f32(float *dst, const unsigned char *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = le_f32(src + 4 * i);
}

/* Index of the first non-finite float of a little-endian array, or n. */
size_t mpnas__first_non_finite(const unsigned char *src, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(le_f32(src + 4 * i))) return i;
  return n;
}

/* ---- The space (SPCE) --------------------------------------------------------------------- */

static void put_list(mpnas__writer *w, const int32_t *v, int32_t n) {
  mpnas__writer_put_u32(w, (uint32_t)n);
  for (int32_t i = 0; i < n; i++) mpnas__writer_put_i32(w, v[i]);
}

static void get_list(mpnas__reader *r, int32_t *v, int32_t *n) {
  *n = (int32_t)mpnas__reader_get_count(r, MPNAS__MAX_CHOICES, sizeof(int32_t));
  for (int32_t i = 0; i < *n; i++) v[i] = mpnas__reader_get_i32(r);
}

/* The space's settings (its table's stored rows), the default lists, the stages. */
static void put_space(mpnas__writer *w, const mpnas_space *s) {
  mpnas__settings_put(w, &mpnas__space_settings, s);
  put_list(w, s->kernels, s->nk);
  put_list(w, s->expansions, s->ne);
  mpnas__writer_put_u32(w, (uint32_t)s->nstages);
  for (int32_t i = 0; i < s->nstages; i++) {
    const mpnas__stage *st = &s->stages[i];
    const int32_t f[] = {st->cout, st->layers, st->stride, st->act, st->skippable,
                         st->own_choices ? 1 : 0};
    for (size_t j = 0; j < sizeof f / sizeof f[0]; j++) mpnas__writer_put_i32(w, f[j]);
    put_list(w, st->kernels, st->own_choices ? st->nk : 0);
    put_list(w, st->expansions, st->own_choices ? st->ne : 0);
  }
}

static void get_space(mpnas__reader *r, mpnas_space *s) {
  mpnas__settings_get(r, &mpnas__space_settings, s);
  get_list(r, s->kernels, &s->nk);
  get_list(r, s->expansions, &s->ne);
  /* A stage takes at least 6 i32 and two u32 counts. */
  s->nstages = (int32_t)mpnas__reader_get_count(r, MPNAS__MAX_STAGES, 8 * sizeof(int32_t));
  for (int32_t i = 0; i < s->nstages; i++) {
    mpnas__stage *st = &s->stages[i];
    int32_t *f[] = {&st->cout, &st->layers, &st->stride, &st->act, &st->skippable,
                    &st->own_choices};
    for (size_t j = 0; j < sizeof f / sizeof f[0]; j++) *f[j] = mpnas__reader_get_i32(r);
    get_list(r, st->kernels, &st->nk);
    get_list(r, st->expansions, &st->ne);
  }
}

/* A choice list as mpnas_space_set_choices accepts it. */
static int list_ok(const int32_t *v, int32_t n, int32_t lo, int32_t hi, int odd) {
  if (n < 1 || n > MPNAS__MAX_CHOICES) return 0;
  for (int32_t i = 0; i < n; i++) {
    if (v[i] < lo || v[i] > hi || (odd && v[i] % 2 == 0)) return 0;
    for (int32_t j = 0; j < i; j++)
      if (v[j] == v[i]) return 0;
  }
  return 1;
}

/* The limits of the space API (api_space.c). Fills why[] and returns 0 on failure. */
static int space_ok(const mpnas_space *s, char *why, size_t cap) {
#define NEED(cond, ...)                 \
  do {                                  \
    if (!(cond)) {                      \
      snprintf(why, cap, __VA_ARGS__);  \
      return 0;                         \
    }                                   \
  } while (0)
  const int32_t A = MPNAS_ACT_HSIGMOID;
  const char *field = mpnas__settings_bad_field(&mpnas__space_settings, s);
  NEED(field == NULL, "%s is out of range (mpnas_space_set_int refuses it)", field);
  NEED(list_ok(s->kernels, s->nk, 1, 9, 1),
       "the default kernel list (1..8 distinct odd sizes 1..9) is invalid");
  NEED(list_ok(s->expansions, s->ne, 1, 16, 0),
       "the default expansion list (1..8 distinct values 1..16) is invalid");
  NEED(mpnas__in_range(s->nstages, 0, MPNAS__MAX_STAGES), "%d stages (0..%d)", (int)s->nstages,
       MPNAS__MAX_STAGES);
  int32_t layers = 0;
  for (int32_t i = 0; i < s->nstages; i++) {
    const mpnas__stage *st = &s->stages[i];
    NEED(mpnas__in_range(st->cout, 1, 8192), "stage %d has %d output channels (1..8192)", (int)i,
         (int)st->cout);
    NEED(mpnas__in_range(st->layers, 1, 64), "stage %d has %d layers (1..64)", (int)i,
         (int)st->layers);
    NEED(mpnas__in_range(st->stride, 1, 2), "stage %d has stride %d (1 or 2)", (int)i,
         (int)st->stride);
    NEED(mpnas__in_range(st->act, 0, A), "stage %d has activation %d (0..%d)", (int)i, (int)st->act,
         (int)A);
    NEED(mpnas__in_range(st->skippable, 0, 1), "stage %d: skippable is %d (0 or 1)", (int)i,
         (int)st->skippable);
    NEED(mpnas__in_range(st->own_choices, 0, 1), "stage %d: own-choices flag is %d (0 or 1)",
         (int)i, (int)st->own_choices);
    if (st->own_choices) {
      NEED(list_ok(st->kernels, st->nk, 1, 9, 1), "stage %d: its kernel list is invalid", (int)i);
      NEED(list_ok(st->expansions, st->ne, 1, 16, 0), "stage %d: its expansion list is invalid",
           (int)i);
    } else {
      NEED(st->nk == 0 && st->ne == 0, "stage %d has choice lists but no own-choices flag",
           (int)i);
    }
    layers += st->layers;
  }
  NEED(layers <= MPNAS__MAX_LAYERS, "%d searchable layers (at most %d)", (int)layers,
       MPNAS__MAX_LAYERS);
  return 1;
#undef NEED
}

static void effective(const mpnas_space *s, const mpnas__stage *st, const int32_t **k, int32_t *nk,
                      const int32_t **e, int32_t *ne) {
  if (st->own_choices) {
    *k = st->kernels, *nk = st->nk, *e = st->expansions, *ne = st->ne;
  } else {
    *k = s->kernels, *nk = s->nk, *e = s->expansions, *ne = s->ne;
  }
}

/* The same network description (what the layout depends on). */
int mpnas__model_space_same(const mpnas_space *a, const mpnas_space *b) {
  if (a->in_h != b->in_h || a->in_w != b->in_w || a->in_c != b->in_c || a->stem_c != b->stem_c ||
      a->stem_k != b->stem_k || a->stem_s != b->stem_s || a->stem_act != b->stem_act ||
      a->head_c != b->head_c || a->head_act != b->head_act || a->se_mode != b->se_mode ||
      a->nstages != b->nstages)
    return 0;
  for (int32_t i = 0; i < a->nstages; i++) {
    const mpnas__stage *x = &a->stages[i], *y = &b->stages[i];
    if (x->cout != y->cout || x->layers != y->layers || x->stride != y->stride ||
        x->act != y->act || x->skippable != y->skippable)
      return 0;
    const int32_t *k1, *e1, *k2, *e2;
    int32_t nk1, ne1, nk2, ne2;
    effective(a, x, &k1, &nk1, &e1, &ne1);
    effective(b, y, &k2, &nk2, &e2, &ne2);
    if (nk1 != nk2 || ne1 != ne2 || memcmp(k1, k2, sizeof(int32_t) * (size_t)nk1) != 0 ||
        memcmp(e1, e2, sizeof(int32_t) * (size_t)ne1) != 0)
      return 0;
  }
  return 1;
}

/* ---- Training settings (CONF) ------------------------------------------------------------- */

/* The training table's stored rows, then ABDP's (both in their tables' order). */
static void put_config(mpnas__writer *w, const mpnas__train_config *c) {
  mpnas__settings_put(w, &mpnas__train_settings, c);
  mpnas__settings_put(w, &mpnas__abdp_settings, &c->abdp);
}

static void get_config(mpnas__reader *r, mpnas__train_config *c) {
  mpnas__settings_get(r, &mpnas__train_settings, c);
  mpnas__settings_get(r, &mpnas__abdp_settings, &c->abdp);
}

/* The settings as mpnas_model_set_int/_double accept them: the first bad one, or NULL. */
static const char *config_bad_field(const mpnas__train_config *c) {
  const char *field = mpnas__settings_bad_field(&mpnas__train_settings, c);
  return field != NULL ? field : mpnas__settings_bad_field(&mpnas__abdp_settings, &c->abdp);
}

/* ---- Domains (DOMS) ----------------------------------------------------------------------- */

static void put_domains(mpnas__writer *w, const mpnas_model *m) {
  mpnas__writer_put_u32(w, (uint32_t)m->ndomains);
  for (int32_t d = 0; d < m->ndomains; d++) {
    const mpnas__domain *dm = &m->domains[d];
    mpnas__writer_put_string(w, dm->name);
    mpnas__writer_put_i32(w, dm->classes);
    mpnas__writer_put_i32(w, dm->hflip);
    mpnas__writer_put_i64(w, dm->bn_updates);
    for (int32_t l = 0; l < m->nlayers; l++) mpnas__writer_put_i32(w, dm->path[l]);
    mpnas__writer_put_f32_array(w, dm->mean, (size_t)m->space.in_c);
    mpnas__writer_put_f32_array(w, dm->invstd, (size_t)m->space.in_c);
  }
}

/* Read and check the DOMS section (selected) for a valid space: *out receives an array
 * of *count domains (free with mpnas__free). */
static mpnas_status get_domains(mpnas_context *ctx, mpnas__reader *r, const mpnas_space *s,
                                const char *where, mpnas__file_domain **out, int32_t *count) {
  *out = NULL;
  *count = 0;
  int32_t L = mpnas__space_num_layers(s), C = s->in_c;
  size_t min_bytes = 4 + 1 + 8 + 8 + 4 * (size_t)L + 8 * (size_t)C;
  int32_t D = (int32_t)mpnas__reader_get_count(r, MPNAS__MAX_DOMAINS, min_bytes);
  if (mpnas__reader_status(r) != MPNAS_OK) return mpnas__reader_status(r);
  if (D < 1) return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where, "the file has no domains");
  mpnas__file_domain *fd = mpnas__calloc(ctx, (size_t)D, sizeof *fd);
  if (fd == NULL) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating %d domains", (int)D);
  mpnas__layer *layers = mpnas__malloc(ctx, sizeof *layers * ((size_t)L + 1));
  if (layers == NULL) {
    mpnas__free(ctx, fd);
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating %d layers", (int)L);
  }
  for (int32_t l = 0; l < L; l++) mpnas__space_layer(s, l, &layers[l]);
  mpnas_status st = MPNAS_OK;
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++) {
    mpnas__file_domain *f = &fd[d];
    mpnas__reader_get_string(r, f->name, sizeof f->name);
    f->classes = mpnas__reader_get_i32(r);
    f->hflip = mpnas__reader_get_i32(r);
    f->bn_updates = mpnas__reader_get_i64(r);
    for (int32_t l = 0; l < L; l++) f->path[l] = mpnas__reader_get_i32(r);
    mpnas__reader_get_f32_array(r, f->mean, (size_t)C);
    mpnas__reader_get_f32_array(r, f->invstd, (size_t)C);
    if ((st = mpnas__reader_status(r)) != MPNAS_OK) break;
    if (mpnas__check_domain(NULL, f->name, 2) != MPNAS_OK) {
      st = mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
               "domain %d: its name is not 1..63 printable ASCII characters", (int)d);
      break;
    }
    if (!mpnas__in_range(f->classes, 2, 65535)) {
      st = mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
                            "domain \"%.40s\" has %d classes (2..65535)", f->name, (int)f->classes);
      break;
    }
    for (int32_t e = 0; e < d && st == MPNAS_OK; e++)
      if (strcmp(fd[e].name, f->name) == 0)
        st =
            mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
                             "domains %d and %d are both named \"%.40s\"", (int)e, (int)d, f->name);
    if (st == MPNAS_OK && (f->bn_updates < 0 || f->bn_updates > ((int64_t)1 << 53)))
      st = mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
                            "domain \"%.40s\": %lld BN updates (0..2^53)", f->name,
                            (long long)f->bn_updates);
    if (st == MPNAS_OK && !mpnas__in_range(f->hflip, 0, 1))
      st = mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where, "domain \"%.40s\": hflip is %d (0 or 1)",
                            f->name, (int)f->hflip);
    for (int32_t l = 0; l < L && st == MPNAS_OK; l++)
      if (f->path[l] < 0 || f->path[l] >= layers[l].nops)
        st = mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
                 "domain \"%.40s\": its path has op %d at layer %d, which has ops 0..%d",
                 f->name, (int)f->path[l], (int)l, (int)layers[l].nops - 1);
    for (int32_t c = 0; c < C && st == MPNAS_OK; c++)
      if (!isfinite(f->mean[c]) || !isfinite(f->invstd[c]) || !(f->invstd[c] > 0.0f))
        st = mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
                 "domain \"%.40s\": input normalisation of channel %d is mean %g, 1/std %g "
                 "(finite, 1/std > 0)",
                 f->name, (int)c, (double)f->mean[c], (double)f->invstd[c]);
  }
  mpnas__free(ctx, layers);
  if (st == MPNAS_OK) mpnas__reader_expect_end(r);
  if (st == MPNAS_OK) st = mpnas__reader_status(r);
  if (st != MPNAS_OK) {
    mpnas__free(ctx, fd);
    return st;
  }
  *out = fd;
  *count = D;
  return MPNAS_OK;
}

void mpnas__file_domain_apply(mpnas__domain *dm, const mpnas__file_domain *f, int32_t in_c) {
  dm->hflip = f->hflip;
  dm->bn_updates = f->bn_updates;
  memcpy(dm->mean, f->mean, sizeof(float) * (size_t)in_c);
  memcpy(dm->invstd, f->invstd, sizeof(float) * (size_t)in_c);
}

/* ---- The layout's size, before building it ------------------------------------------------ */

typedef struct layout_bound {
  int32_t nodes;
  int64_t params;  /* floats of every tensor, alignment padding not counted */
  int64_t buffers; /* floats of every (BN, domain) running mean and variance */
  int64_t pairs;   /* (BN slot, domain) pairs */
} layout_bound;

/* What mpnas__model_build will lay out for m's space and paths (nodes exactly; params
 * and buffers as lower bounds: the build pads each tensor to 16 floats), computed
 * without allocating anything. */
static layout_bound bound_layout(const mpnas_model *m) {
  layout_bound b = {0, 0, 0, 0};
  const mpnas_space *s = &m->space;
  int32_t D = m->ndomains;
  b.params = mpnas__stem_cost(s).params + mpnas__head_cost(s).params;
  for (int32_t d = 0; d < D; d++) {
    b.params += mpnas__classifier_cost(s, m->domains[d].classes).params;
    b.buffers += 2 * (int64_t)s->stem_c + 2 * (int64_t)s->head_c;
  }
  for (int32_t l = 0; l < m->nlayers; l++) {
    const mpnas__layer *ly = &m->layers[l];
    for (int32_t o = 0; o < ly->nops; o++) {
      int32_t users = 0;
      for (int32_t d = 0; d < D; d++) users += m->domains[d].path[l] == o;
      mpnas__op op = mpnas__space_op(s, ly, o);
      if (users == 0 || op.kernel == 0) continue;
      b.nodes++;
      b.params += mpnas__op_cost(ly, op).params;
      int64_t cmid = (int64_t)ly->cin * op.expansion;
      b.buffers += users * ((op.expansion != 1 ? 2 * cmid : 0) + 2 * cmid + 2 * (int64_t)ly->cout);
    }
  }
  b.pairs = (3 * (int64_t)b.nodes + 2) * D;
  return b;
}

/* ---- META ------------------------------------------------------------------------------- */

static void get_meta(mpnas__reader *r, mpnas__model_meta *h) {
  if (mpnas__reader_section(r, "META") != MPNAS_OK) return;
  h->contents = mpnas__reader_get_u32(r);
  h->writer_version = mpnas__reader_get_u32(r);
  h->nlayers = mpnas__reader_get_i32(r);
  h->ndomains = mpnas__reader_get_i32(r);
  h->nnodes = mpnas__reader_get_i32(r);
  h->params = mpnas__reader_get_u64(r);
  h->buffers = mpnas__reader_get_u64(r);
  mpnas__reader_expect_end(r);
}

/* ---- Writing ------------------------------------------------------------------------------ */

/* The sections a checkpoint shares with the model file; model_checkpoint.c adds the
 * training state (TRST, PARS) after them. */
mpnas_status mpnas__model_put_file(mpnas__writer *w, const mpnas_model *m, int with_state) {
  mpnas_context *ctx = m->ctx;
  if (!m->built || !m->norm_ready)
    return mpnas__fail(ctx, MPNAS_E_STATE,
                       "saving a model: it has no weights yet (train it first)");
  if (with_state && m->float_dropped)
    return mpnas__fail(ctx, MPNAS_E_STATE,
                       "saving a checkpoint: the model is int8 only (its float weights were "
                       "dropped)");
  if (with_state && (!m->prepared || m->abdp == NULL))
    return mpnas__fail(ctx, MPNAS_E_STATE,
                       "saving a checkpoint: training has not started, or its data was cleared "
                       "(a checkpoint is the state of a training run)");
  int64_t pairs = (3 * (int64_t)m->nnodes + 2) * m->ndomains;
  if (pairs > MAX_SLOT_PAIRS)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE,
                       "saving a model: %d nodes x %d domains exceed the format's limit of %lld "
                       "(BN, domain) pairs (docs/MODEL-FORMAT.md)",
                       (int)m->nnodes, (int)m->ndomains, (long long)MAX_SLOT_PAIRS);
  int32_t D = m->ndomains;
  mpnas__writer_begin_section(w, "META");
  int quant = !with_state && m->quant != NULL, dropped = quant && m->float_dropped;
  mpnas__writer_put_u32(w, with_state ? MPNAS__CONTENTS_CHECKPOINT
                                      : dropped ? MPNAS__CONTENTS_INT8 : MPNAS__CONTENTS_MODEL);
  mpnas__writer_put_u32(w, MPNAS_VERSION_NUMBER);
  mpnas__writer_put_i32(w, m->nlayers);
  mpnas__writer_put_i32(w, D);
  mpnas__writer_put_i32(w, m->nnodes);
  mpnas__writer_put_u64(w, m->params.total);
  mpnas__writer_put_u64(w, m->params.btotal);
  mpnas__writer_end_section(w);

  mpnas__writer_begin_section(w, "SPCE");
  put_space(w, &m->space);
  mpnas__writer_end_section(w);
  mpnas__writer_begin_section(w, "DOMS");
  put_domains(w, m);
  mpnas__writer_end_section(w);
  mpnas__writer_begin_section(w, "CONF");
  put_config(w, &m->cfg);
  mpnas__writer_end_section(w);
  if (!dropped) {
    mpnas__writer_begin_section(w, "PARW");
    mpnas__writer_put_f32_array(w, m->params.w, m->params.total);
    mpnas__writer_end_section(w);
    mpnas__writer_begin_section(w, "PARB");
    mpnas__writer_put_f32_array(w, m->params.b, m->params.btotal);
    mpnas__writer_end_section(w);
  }
  if (quant) {
    mpnas__writer_begin_section(w, "QNT8");
    mpnas__quant_write(w, m);
    mpnas__writer_end_section(w);
  }
  return mpnas__writer_status(w);
}

/* The lowest version that holds the model: 2 for the int8 form in full floats, 3 with
 * its floats in half precision. */
static const mpnas__file_kind *writer_kind(const mpnas_model *m) {
  if (m->quant == NULL) return &mpnas__model_kind_v1;
  return m->quant->half ? &mpnas__model_kind : &model_kind_v2;
}

mpnas_status mpnas__model_write(const mpnas_model *m, void **data, size_t *size) {
  *data = NULL;
  *size = 0;
  mpnas__writer w;
  mpnas__writer_init(&w, m->ctx, writer_kind(m));
  mpnas_status st = mpnas__model_put_file(&w, m, 0);
  unsigned char *bytes = NULL;
  if (st == MPNAS_OK) st = mpnas__writer_to_memory(&w, &bytes, size);
  mpnas__writer_free(&w);
  if (st == MPNAS_OK) *data = bytes;
  return st;
}

static mpnas_status write_file(const mpnas_model *m, const char *path) {
  mpnas__writer w;
  mpnas__writer_init(&w, m->ctx, writer_kind(m));
  mpnas_status st = mpnas__model_put_file(&w, m, 0);
  if (st == MPNAS_OK) st = mpnas__writer_to_file(&w, path);
  mpnas__writer_free(&w);
  return st;
}

/* ---- Reading: the parts every load shares ------------------------------------------------- */

/* Open the container and read META, SPCE, DOMS, CONF (and check them). */
mpnas_status mpnas__model_parse(mpnas_context *ctx, mpnas__reader *r, const void *data,
                                size_t size, const char *where, mpnas__model_parsed *p) {
  memset(p, 0, sizeof *p);
  mpnas_status st = mpnas__reader_open(r, ctx, &mpnas__model_kind, data, size);
  if (st != MPNAS_OK) return st;
  get_meta(r, &p->h);
  if ((st = mpnas__reader_status(r)) != MPNAS_OK) return st;
  if (p->h.contents != MPNAS__CONTENTS_MODEL && p->h.contents != MPNAS__CONTENTS_CHECKPOINT &&
      !(p->h.contents == MPNAS__CONTENTS_INT8 && r->version >= VERSION_QUANT))
    return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
               "META: unknown contents %u (0 model, 1 checkpoint, 2 int8 model in version >= 2)",
               (unsigned)p->h.contents);
  if (!mpnas__in_range(p->h.ndomains, 1, MPNAS__MAX_DOMAINS))
    return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where, "META: %d domains (1..%d)",
                            (int)p->h.ndomains, MPNAS__MAX_DOMAINS);

  char why[192];
  p->space.ctx = ctx;
  if (mpnas__reader_section(r, "SPCE") == MPNAS_OK) get_space(r, &p->space);
  mpnas__reader_expect_end(r);
  if ((st = mpnas__reader_status(r)) != MPNAS_OK) return st;
  if (!space_ok(&p->space, why, sizeof why))
    return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where, "the space is invalid: %s", why);
  int32_t L = mpnas__space_num_layers(&p->space);
  if (p->h.nlayers != L)
    return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where, "META says %d layers, the space has %d",
               (int)p->h.nlayers, (int)L);

  int32_t D = 0;
  if (mpnas__reader_section(r, "DOMS") != MPNAS_OK) return mpnas__reader_status(r);
  if ((st = get_domains(ctx, r, &p->space, where, &p->doms, &D)) != MPNAS_OK) return st;
  if (D != p->h.ndomains)
    return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where, "META says %d domains, DOMS has %d",
               (int)p->h.ndomains, (int)D);

  if (mpnas__reader_section(r, "CONF") == MPNAS_OK) get_config(r, &p->cfg);
  mpnas__reader_expect_end(r);
  if ((st = mpnas__reader_status(r)) != MPNAS_OK) return st;
  const char *field = config_bad_field(&p->cfg);
  if (field != NULL)
    return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
                            "CONF: the training setting '%s' is out of range", field);
  return MPNAS_OK;
}

/* Select a section holding exactly `count` floats (times `arrays`) and borrow them. */
const unsigned char *mpnas__model_float_section(mpnas_context *ctx, mpnas__reader *r,
                                                const char *tag, uint64_t count, int arrays,
                                                const char *where, mpnas_status *st) {
  *st = MPNAS_OK;
  if (mpnas__reader_section(r, tag) != MPNAS_OK) {
    *st = mpnas__reader_status(r);
    return NULL;
  }
  size_t have = mpnas__reader_remaining(r);
  if (count > (uint64_t)(SIZE_MAX / 8) || have != (size_t)count * 4 * (size_t)arrays) {
    *st = mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
              "section '%s' holds %zu bytes, not the %d x %llu floats META gives", tag, have,
              arrays, (unsigned long long)count);
    return NULL;
  }
  const unsigned char *v = mpnas__reader_get_view(r, have);
  if (v == NULL) *st = mpnas__reader_status(r);
  return v;
}

/* Before building: META's counts against the layout the space and paths give (m holds
 * them), so nothing is allocated that the file's size does not justify. */
mpnas_status mpnas__model_check_bound(mpnas_context *ctx, const mpnas_model *m,
                                      const mpnas__model_meta *h, const char *where) {
  layout_bound b = bound_layout(m);
  if (b.nodes != h->nnodes)
    return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where, "META says %d nodes, the paths use %d",
               (int)h->nnodes, (int)b.nodes);
  if (b.pairs > MAX_SLOT_PAIRS)
    return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
               "%d nodes x %d domains exceed the format's limit of %lld (BN, domain) pairs",
               (int)b.nodes, (int)m->ndomains, (long long)MAX_SLOT_PAIRS);
  if (h->params < (uint64_t)b.params || h->buffers < (uint64_t)b.buffers)
    return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
               "META says %llu weights and %llu statistics, the layout of this space and these "
               "paths needs at least %lld and %lld",
               (unsigned long long)h->params, (unsigned long long)h->buffers,
               (long long)b.params, (long long)b.buffers);
  return MPNAS_OK;
}

/* After building: the exact sizes. */
mpnas_status mpnas__model_check_layout(mpnas_context *ctx, const mpnas_model *m,
                                       const mpnas__model_meta *h, const char *where) {
  if (h->params != (uint64_t)m->params.total || h->buffers != (uint64_t)m->params.btotal ||
      h->nnodes != m->nnodes)
    return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
               "the file holds %llu weights and %llu statistics for %d nodes, the layout of "
               "this space and these paths has %zu and %zu for %d",
               (unsigned long long)h->params, (unsigned long long)h->buffers, (int)h->nnodes,
               m->params.total, m->params.btotal, (int)m->nnodes);
  return MPNAS_OK;
}

/* Weights finite; statistics finite, variances >= 0 (a built model gives the layout). */
mpnas_status mpnas__model_check_values(mpnas_context *ctx, const mpnas_model *m,
                                       const unsigned char *w, const unsigned char *b,
                                       const char *where) {
  size_t i = mpnas__first_non_finite(w, m->params.total);
  if (i < m->params.total)
    return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where, "weight %zu of %zu is not finite (%g)", i,
               m->params.total, (double)le_f32(w + 4 * i));
  i = mpnas__first_non_finite(b, m->params.btotal);
  if (i < m->params.btotal)
    return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
                            "BN statistic %zu of %zu is not finite (%g)", i, m->params.btotal,
                            (double)le_f32(b + 4 * i));
  int32_t D = m->ndomains;
  for (size_t s = 0; s < m->nslots; s++)
    for (int32_t d = 0; d < D; d++) {
      const mpnas__stat_offsets *so = &m->stats[s * (size_t)D + (size_t)d];
      if (so->var == MPNAS__NO_SLOT) continue;
      int c = mpnas__model_slot_channels(m, s);
      for (int k = 0; k < c; k++)
        if (!(le_f32(b + 4 * (so->var + (size_t)k)) >= 0.0f))
          return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
                     "domain \"%.40s\": a BN running variance is negative (%g)",
                     m->domains[d].name, (double)le_f32(b + 4 * (so->var + (size_t)k)));
    }
  return MPNAS_OK;
}

/* ---- Reading a model ---------------------------------------------------------------------- */

static mpnas_status read_model(mpnas_context *ctx, const void *data, size_t size,
                               const char *where, mpnas_model **out) {
  *out = NULL;
  mpnas__reader r;
  mpnas__model_parsed p;
  mpnas_model *m = NULL;
  mpnas_status st = mpnas__model_parse(ctx, &r, data, size, where, &p);
  const unsigned char *w = NULL, *b = NULL;
  int dropped = st == MPNAS_OK && p.h.contents == MPNAS__CONTENTS_INT8;
  if (st == MPNAS_OK && p.h.contents == MPNAS__CONTENTS_CHECKPOINT && r.version >= VERSION_QUANT)
    st = mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where, "a quantised-model version (2, 3) holds no checkpoint");
  /* The arrays' sections must hold exactly what META says (bounded by the file). */
  if (st == MPNAS_OK && !dropped)
    w = mpnas__model_float_section(ctx, &r, "PARW", p.h.params, 1, where, &st);
  if (st == MPNAS_OK && !dropped)
    b = mpnas__model_float_section(ctx, &r, "PARB", p.h.buffers, 1, where, &st);
  if (st == MPNAS_OK) st = mpnas__model_new(ctx, &p.space, &m);
  for (int32_t d = 0; d < p.h.ndomains && st == MPNAS_OK; d++) {
    const mpnas__file_domain *f = &p.doms[d];
    st = mpnas__model_add_domain(m, f->name, f->classes, f->path);
    if (st == MPNAS_OK) mpnas__file_domain_apply(&m->domains[d], f, p.space.in_c);
  }
  if (st == MPNAS_OK) {
    m->cfg = p.cfg;
    st = mpnas__model_check_bound(ctx, m, &p.h, where);
  }
  if (st == MPNAS_OK) st = mpnas__model_build(m);
  if (st == MPNAS_OK) st = mpnas__model_check_layout(ctx, m, &p.h, where);
  if (st == MPNAS_OK && !dropped) st = mpnas__model_check_values(ctx, m, w, b, where);
  /* Version 2: the int8 form, every value checked (model_quant.c). */
  if (st == MPNAS_OK && r.version >= VERSION_QUANT &&
      (st = mpnas__reader_section(&r, "QNT8")) == MPNAS_OK)
    st = mpnas__quant_read(&r, m, r.version >= VERSION_HALF, where);
  if (st == MPNAS_OK) {
    if (dropped) {
      /* The float store stays laid out (zeroed) for the layout's bookkeeping; nothing
       * reads it: every float use is refused. */
      memset(m->params.w, 0, sizeof(float) * m->params.total);
      memset(m->params.b, 0, sizeof(float) * m->params.btotal);
      m->float_dropped = 1;
    } else {
      mpnas__decode_f32(m->params.w, w, m->params.total);
      mpnas__decode_f32(m->params.b, b, m->params.btotal);
    }
    m->norm_ready = 1;
    mpnas__model_fold(m);
    *out = m;
  } else if (m != NULL) {
    mpnas__model_free_contents(m);
    mpnas__free(ctx, m);
  }
  mpnas__free(ctx, p.doms);
  return st;
}

mpnas_status mpnas__model_read(mpnas_context *ctx, const void *data, size_t size,
                               mpnas_model **out) {
  uint64_t mark = mpnas__failure_mark(ctx);
  return mpnas__model_annotate(ctx, read_model(ctx, data, size, "model buffer", out), mark,
                               "model buffer");
}


/* ---- Public entry points ------------------------------------------------------------------ */

mpnas_status mpnas_model_save(const mpnas_model *m, const char *path) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (path == NULL)
    return mpnas__fail(m->ctx, MPNAS_E_INVALID_ARGUMENT, "mpnas_model_save: path is NULL");
  uint64_t mark = mpnas__failure_mark(m->ctx);
  return mpnas__explain(m->ctx, write_file(m, path), mark, "mpnas_model_save");
}

mpnas_status mpnas_model_save_buffer(const mpnas_model *m, void *buf, size_t cap, size_t *size) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (size == NULL)
    return mpnas__fail(m->ctx, MPNAS_E_INVALID_ARGUMENT, "mpnas_model_save_buffer: size is NULL");
  void *data = NULL;
  size_t n = 0;
  uint64_t mark = mpnas__failure_mark(m->ctx);
  mpnas_status st = mpnas__model_write(m, &data, &n);
  if (st != MPNAS_OK) return mpnas__explain(m->ctx, st, mark, "mpnas_model_save_buffer");
  *size = n;
  if (buf != NULL) {
    if (cap < n)
      st = mpnas__fail(m->ctx, MPNAS_E_INVALID_ARGUMENT,
                       "mpnas_model_save_buffer: the model needs %zu bytes, cap is %zu", n, cap);
    else
      memcpy(buf, data, n);
  }
  mpnas__free(m->ctx, data);
  return st;
}

mpnas_status mpnas_model_load(mpnas_context *ctx, const char *path, mpnas_model **out) {
  if (ctx == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (out == NULL || path == NULL)
    return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "mpnas_model_load: %s is NULL",
                       out == NULL ? "out" : "path");
  *out = NULL;
  char where[320];
  snprintf(where, sizeof where, "model file '%.256s'", path);
  uint64_t mark = mpnas__failure_mark(ctx);
  unsigned char *data = NULL;
  size_t len = 0;
  mpnas_status st = mpnas__read_container(ctx, path, &mpnas__model_kind, &data, &len);
  if (st == MPNAS_OK) st = read_model(ctx, data, len, where, out);
  mpnas__free(ctx, data);
  return mpnas__model_annotate(ctx, st, mark, where);
}

mpnas_status mpnas_model_load_buffer(mpnas_context *ctx, const void *data, size_t size,
                                     mpnas_model **out) {
  if (ctx == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (out == NULL || data == NULL)
    return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "mpnas_model_load_buffer: %s is NULL",
                       out == NULL ? "out" : "data");
  *out = NULL;
  return mpnas__model_read(ctx, data, size, out);
}
