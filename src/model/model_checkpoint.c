/* model_checkpoint.c - the multi-path model's training checkpoint (docs/MODEL-FORMAT.md):
 * a model file (model_io.c) with META.contents = 1 and two more sections,
 *   TRST: step, optimiser step count, random streams, per-domain statistics, data
 *         fingerprints, ABDP state;
 *   PARS: the optimiser slots.
 * Loading checks that the checkpoint is this model's (space, domains, paths, seed, data)
 * and every value before changing anything: a refused checkpoint leaves the model as it
 * was. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/model_io.h"
#include "model/model_quant.h"

/* CRC-32 of `count` values of `elem` bytes (1 or 4) as little-endian bytes, so a
 * fingerprint does not depend on the host's byte order. */
static uint32_t crc_le(uint32_t crc, const void *data, size_t count, size_t elem) {
  if (elem == 1) return mpnas__crc32(crc, data, count);
  const unsigned char *p = data;
  unsigned char buf[1024];
  while (count > 0) {
    size_t n = count < sizeof buf / 4 ? count : sizeof buf / 4;
    for (size_t i = 0; i < n; i++) {
      uint32_t u;
      memcpy(&u, p + 4 * i, 4);
      buf[4 * i] = (unsigned char)u;
      buf[4 * i + 1] = (unsigned char)(u >> 8);
      buf[4 * i + 2] = (unsigned char)(u >> 16);
      buf[4 * i + 3] = (unsigned char)(u >> 24);
    }
    crc = mpnas__crc32(crc, buf, 4 * n);
    p += 4 * n;
    count -= n;
  }
  return crc;
}

/* ---- Writing ------------------------------------------------------------------------------ */

static void data_fingerprint(mpnas__writer *w, const mpnas__dataset *ds, size_t per_image) {
  size_t elem = ds->dtype == MPNAS_DTYPE_F32 ? 4 : 1;
  size_t n = (size_t)ds->count;
  mpnas__writer_put_i32(w, ds->dtype);
  mpnas__writer_put_i64(w, ds->count);
  mpnas__writer_put_u32(w, n ? crc_le(0, ds->labels, n, 4) : 0);
  mpnas__writer_put_u32(w, n ? crc_le(0, ds->images, n * per_image, elem) : 0);
}

/* TRST and PARS, after the model file's sections. */
static mpnas_status put_train_state(mpnas__writer *w, const mpnas_model *m) {
  size_t per_image = (size_t)m->space.in_h * m->space.in_w * m->space.in_c;
  mpnas__writer_begin_section(w, "TRST");
  /* the seed the run's splits were drawn with, not the context's now (it may have
   * changed since: a resume with it would draw other splits) */
  mpnas__writer_put_u64(w, m->prepared ? m->run_seed : m->ctx->seed);
  mpnas__writer_put_i64(w, m->step);
  mpnas__writer_put_i64(w, m->params.steps);
  mpnas__writer_put_rng(w, &m->abdp_rng);
  for (int32_t d = 0; d < m->ndomains; d++) {
    const mpnas__domain *dm = &m->domains[d];
    mpnas__writer_put_rng(w, &dm->data.rng);
    mpnas__writer_put_f64(w, dm->loss_ema);
    mpnas__writer_put_f64(w, dm->valid_acc);
    mpnas__writer_put_f64(w, dm->weight);
    mpnas__writer_put_i32(w, dm->batch_images);
    data_fingerprint(w, &dm->data.train, per_image);
    data_fingerprint(w, &dm->data.valid, per_image);
  }
  mpnas_status st = mpnas__abdp_state_write(w, m->abdp);
  mpnas__writer_end_section(w);
  if (st != MPNAS_OK) return st;
  mpnas__writer_begin_section(w, "PARS");
  mpnas__writer_put_f32_array(w, m->params.s1, m->params.total);
  mpnas__writer_put_f32_array(w, m->params.s2, m->params.total);
  mpnas__writer_end_section(w);
  return mpnas__writer_status(w);
}

mpnas_status mpnas__model_checkpoint_save(const mpnas_model *m, const char *path) {
  mpnas__writer w;
  mpnas__writer_init(&w, m->ctx, &mpnas__model_kind_v1);
  mpnas_status st = mpnas__model_put_file(&w, m, 1);
  if (st == MPNAS_OK) st = put_train_state(&w, m);
  if (st == MPNAS_OK) st = mpnas__writer_to_file(&w, path);
  mpnas__writer_free(&w);
  return st;
}

/* ---- Reading ------------------------------------------------------------------------------ */

static int real_in(double v, double lo, double hi) { return v >= lo && v <= hi; }

typedef struct fingerprint {
  int32_t dtype;
  int64_t count;
  uint32_t labels, images;
} fingerprint;

static void get_fingerprint(mpnas__reader *r, fingerprint *f) {
  f->dtype = mpnas__reader_get_i32(r);
  f->count = mpnas__reader_get_i64(r);
  f->labels = mpnas__reader_get_u32(r);
  f->images = mpnas__reader_get_u32(r);
}

static int same_data(const fingerprint *f, const mpnas__dataset *ds, size_t per_image) {
  if (f->count != ds->count) return 0;
  if (ds->count == 0) return 1;
  size_t n = (size_t)ds->count;
  return f->dtype == ds->dtype && f->labels == crc_le(0, ds->labels, n, 4) &&
         f->images == crc_le(0, ds->images, n * per_image, ds->dtype == MPNAS_DTYPE_F32 ? 4 : 1);
}

typedef struct domain_state {
  mpnas__rng rng;
  double loss_ema, valid_acc, weight;
  int32_t batch_images;
  fingerprint train, valid;
} domain_state;

typedef struct train_state {
  uint64_t seed;
  int64_t step, opt_steps;
  mpnas__rng abdp_rng; /* ABDP's proportional sampling */
  domain_state *dom; /* [D] */
  double *abdp;      /* [nabdp] */
  size_t nabdp;
} train_state;

static void free_train_state(mpnas_context *ctx, train_state *t) {
  mpnas__free(ctx, t->dom);
  mpnas__free(ctx, t->abdp);
}

static mpnas_status get_train_state(mpnas_context *ctx, mpnas__reader *r, int32_t D,
                                    const mpnas__train_config *cfg, const char *where,
                                    train_state *t) {
  memset(t, 0, sizeof *t);
  if (mpnas__reader_section(r, "TRST") != MPNAS_OK) return mpnas__reader_status(r);
  t->seed = mpnas__reader_get_u64(r);
  t->step = mpnas__reader_get_i64(r);
  t->opt_steps = mpnas__reader_get_i64(r);
  mpnas__reader_get_rng(r, &t->abdp_rng);
  mpnas_status st = mpnas__reader_status(r);
  if (st != MPNAS_OK) return st;
  t->dom = mpnas__calloc(ctx, (size_t)D, sizeof *t->dom);
  if (t->dom == NULL) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating %d domains", (int)D);
  for (int32_t d = 0; d < D; d++) {
    domain_state *s = &t->dom[d];
    mpnas__reader_get_rng(r, &s->rng);
    s->loss_ema = mpnas__reader_get_f64(r);
    s->valid_acc = mpnas__reader_get_f64(r);
    s->weight = mpnas__reader_get_f64(r);
    s->batch_images = mpnas__reader_get_i32(r);
    get_fingerprint(r, &s->train);
    get_fingerprint(r, &s->valid);
  }
  if ((st = mpnas__abdp_state_read(r, ctx, D, &t->abdp, &t->nabdp)) != MPNAS_OK) return st;
  mpnas__reader_expect_end(r);
  if ((st = mpnas__reader_status(r)) != MPNAS_OK) return st;

  /* Values. */
  if (t->step < 0 || t->step > cfg->steps || t->opt_steps < 0 ||
      t->opt_steps > ((int64_t)1 << 53) || !mpnas__rng_valid(&t->abdp_rng))
    return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
               "TRST: step %lld (0..%lld), optimiser steps %lld or random stream out of range",
               (long long)t->step, (long long)cfg->steps, (long long)t->opt_steps);
  for (int32_t d = 0; d < D; d++) {
    const domain_state *s = &t->dom[d];
    const fingerprint *f[2] = {&s->train, &s->valid};
    /* The loss average is finite once observed: a non-finite training loss fails the
     * model's step (the search's, which goes on after one, keeps it in its own file). */
    int ok = mpnas__rng_valid(&s->rng) &&
             (isnan(s->loss_ema) || (s->loss_ema >= 0.0 && isfinite(s->loss_ema))) &&
             (isnan(s->valid_acc) || real_in(s->valid_acc, 0.0, 1.0)) && isfinite(s->weight) &&
             s->weight >= 0.0 && mpnas__in_range(s->batch_images, 0, (int64_t)cfg->batch * D);
    for (int i = 0; i < 2; i++)
      ok = ok && f[i]->count >= 0 && mpnas__in_range(f[i]->dtype, MPNAS_DTYPE_U8, MPNAS_DTYPE_F32);
    if (!ok)
      return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
                              "TRST: the state of domain %d is out of range", (int)d);
  }
  return MPNAS_OK;
}

/* An ABDP handle for m's domains with cfg, holding `state`; real_sizes 0: one image per
 * domain (mpnas__domains_abdp: enough to check a state before the data is split). */
static mpnas_status make_abdp(const mpnas_model *m, const mpnas__abdp_config *cfg,
                              const double *state, size_t n, int real_sizes, const char *where,
                              mpnas__abdp **out) {
  mpnas_context *ctx = m->ctx;
  mpnas_status st = mpnas__domains_abdp(ctx, m->domains, m->ndomains, cfg, real_sizes, out);
  if (st != MPNAS_OK) return st;
  if (n != mpnas__abdp_state_size(*out)) {
    st = mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where,
                          "TRST: an ABDP state of %zu values, expected %zu", n,
                          mpnas__abdp_state_size(*out));
  } else if (mpnas__abdp_import(*out, state, n) != MPNAS_OK) {
    st = mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where, "TRST: the ABDP state is invalid (%s)",
             ctx->last_error);
  }
  if (st != MPNAS_OK) {
    mpnas__abdp_destroy(*out);
    *out = NULL;
  }
  return st;
}

/* Is it a checkpoint of this model: its contents, space, domains and their paths? */
static mpnas_status check_model(const mpnas_model *m, const mpnas__model_parsed *p,
                                const char *where) {
  mpnas_context *ctx = m->ctx;
  int32_t D = m->ndomains, L = m->nlayers;
  if (p->h.contents != MPNAS__CONTENTS_CHECKPOINT)
    return mpnas__model_bad(ctx, MPNAS_E_INCOMPATIBLE, where,
                            "a model file without training state, not a checkpoint "
                            "(mpnas_model_load reads it)");
  if (!mpnas__model_space_same(&p->space, &m->space))
    return mpnas__model_bad(ctx, MPNAS_E_INCOMPATIBLE, where,
                            "the checkpoint was made for a different space");
  if (p->h.ndomains != D)
    return mpnas__model_bad(ctx, MPNAS_E_INCOMPATIBLE, where,
                            "the checkpoint has %d domains, the model %d", (int)p->h.ndomains,
                            (int)D);
  for (int32_t d = 0; d < D; d++) {
    const mpnas__file_domain *f = &p->doms[d];
    const mpnas__domain *dm = &m->domains[d];
    if (strcmp(f->name, dm->name) != 0 || f->classes != dm->classes)
      return mpnas__model_bad(ctx, MPNAS_E_INCOMPATIBLE, where,
                              "domain %d is \"%.40s\" with %d classes in the checkpoint, "
                              "\"%.40s\" with %d in the model",
                              (int)d, f->name, (int)f->classes, dm->name, (int)dm->classes);
    if (L > 0 && memcmp(f->path, dm->path, sizeof(int32_t) * (size_t)L) != 0)
      return mpnas__model_bad(ctx, MPNAS_E_INCOMPATIBLE, where,
                              "domain \"%.40s\" has a different path in the checkpoint",
                              dm->name);
  }
  return MPNAS_OK;
}

/* Was it made by this training run: the same seed, data and validation split? */
static mpnas_status check_run(const mpnas_model *m, const mpnas__model_parsed *p,
                              const train_state *t, const char *where) {
  mpnas_context *ctx = m->ctx;
  size_t per_image = (size_t)m->space.in_h * m->space.in_w * m->space.in_c;
  uint64_t here = m->prepared ? m->run_seed : ctx->seed; /* a prepared run keeps its own */
  if (t->seed != here)
    return mpnas__model_bad(ctx, MPNAS_E_INCOMPATIBLE, where,
                            "the checkpoint was made with MPNAS_CONTEXT_SEED %llu, this %s "
                            "has %llu (the validation split follows the seed)",
                            (unsigned long long)t->seed, m->prepared ? "training" : "context",
                            (unsigned long long)here);
  for (int32_t d = 0; d < m->ndomains; d++) {
    const mpnas__domain *dm = &m->domains[d];
    if (!same_data(&t->dom[d].train, &dm->data.train, per_image) ||
        !same_data(&t->dom[d].valid, &dm->data.valid, per_image))
      return mpnas__model_bad(
          ctx, MPNAS_E_INCOMPATIBLE, where,
          "the data of domain \"%.40s\" differs from the data the checkpoint was made with "
          "(%lld + %lld images there, %lld + %lld here; or other images or labels)",
          dm->name, (long long)t->dom[d].train.count, (long long)t->dom[d].valid.count,
          (long long)dm->data.train.count, (long long)dm->data.valid.count);
  }
  if (m->prepared && p->cfg.valid_fraction != m->cfg.valid_fraction)
    return mpnas__model_bad(ctx, MPNAS_E_INCOMPATIBLE, where,
                            "the model's data was already split with validation fraction %g, "
                            "the checkpoint used %g",
                            m->cfg.valid_fraction, p->cfg.valid_fraction);
  return MPNAS_OK;
}

/* The arrays a[] = PARW, PARB, PARS: exact sizes from META, checked against the file and
 * the layout (which a model not built yet builds here: *built_here). */
static mpnas_status read_arrays(mpnas_model *m, mpnas__reader *r, const mpnas__model_parsed *p,
                                const char *where, const unsigned char *a[3], int *built_here) {
  mpnas_context *ctx = m->ctx;
  mpnas_status st;
  a[0] = mpnas__model_float_section(ctx, r, "PARW", p->h.params, 1, where, &st);
  if (st == MPNAS_OK)
    a[1] = mpnas__model_float_section(ctx, r, "PARB", p->h.buffers, 1, where, &st);
  if (st == MPNAS_OK)
    a[2] = mpnas__model_float_section(ctx, r, "PARS", p->h.params, 2, where, &st);
  if (st != MPNAS_OK) return st;
  if (!m->built) {
    /* Same space and paths as the file: its layout is the one the model will build. */
    if ((st = mpnas__model_check_bound(ctx, m, &p->h, where)) != MPNAS_OK) return st;
    if ((st = mpnas__model_build(m)) != MPNAS_OK) return st;
    *built_here = 1;
  }
  if ((st = mpnas__model_check_layout(ctx, m, &p->h, where)) != MPNAS_OK) return st;
  if ((st = mpnas__model_check_values(ctx, m, a[0], a[1], where)) != MPNAS_OK) return st;
  size_t i = mpnas__first_non_finite(a[2], 2 * m->params.total);
  if (i < 2 * m->params.total)
    return mpnas__model_bad(ctx, MPNAS_E_CORRUPT, where, "optimiser slot %zu is not finite", i);
  return MPNAS_OK;
}

/* ABDP with the checkpoint's state, checked on a scratch handle before anything is
 * prepared; then the model prepared (the split, ABDP) with the checkpoint's settings or,
 * prepared already, given a new ABDP handle: the last steps that can fail. */
static mpnas_status install_abdp(mpnas_model *m, const mpnas__model_parsed *p,
                                 const train_state *t, const char *where) {
  mpnas__abdp *abdp = NULL;
  mpnas_status st = make_abdp(m, &p->cfg.abdp, t->abdp, t->nabdp, 0, where, &abdp);
  if (st != MPNAS_OK) return st;
  mpnas__abdp_destroy(abdp);
  if (!m->prepared) {
    mpnas__train_config keep = m->cfg;
    m->cfg = p->cfg;
    st = mpnas__model_prepare_state(m, t->abdp, t->nabdp);
    if (st != MPNAS_OK) m->cfg = keep;
    return st;
  }
  if ((st = make_abdp(m, &p->cfg.abdp, t->abdp, t->nabdp, 1, where, &abdp)) != MPNAS_OK)
    return st;
  mpnas__abdp_destroy(m->abdp);
  m->abdp = abdp;
  return MPNAS_OK;
}

/* Everything checked: the checkpoint's settings, state and arrays into the model. */
static void commit(mpnas_model *m, const mpnas__model_parsed *p, const train_state *t,
                   const unsigned char *const a[3]) {
  m->cfg = p->cfg;
  m->step = t->step;
  mpnas__model_quant_free(m); /* the int8 form was of the weights being replaced */
  m->params.steps = t->opt_steps;
  m->abdp_rng = t->abdp_rng;
  mpnas__decode_f32(m->params.w, a[0], m->params.total);
  mpnas__decode_f32(m->params.b, a[1], m->params.btotal);
  mpnas__decode_f32(m->params.s1, a[2], m->params.total);
  mpnas__decode_f32(m->params.s2, a[2] + 4 * m->params.total, m->params.total);
  for (int32_t d = 0; d < m->ndomains; d++) {
    mpnas__domain *dm = &m->domains[d];
    const domain_state *ds = &t->dom[d];
    mpnas__file_domain_apply(dm, &p->doms[d], m->space.in_c);
    dm->data.rng = ds->rng;
    dm->loss_ema = ds->loss_ema;
    dm->valid_acc = ds->valid_acc;
    dm->weight = ds->weight;
    dm->batch_images = ds->batch_images;
  }
  m->norm_ready = 1;
  mpnas__model_fold(m);
}

/* Load a checkpoint held in data[0, size) ("where" names it in messages): everything
 * is read and checked before the model changes; a refused checkpoint leaves it as it
 * was (a layout built here is undone). */
static mpnas_status checkpoint_load(mpnas_model *m, const void *data, size_t size,
                                    const char *where) {
  mpnas_context *ctx = m->ctx;
  mpnas__reader r;
  mpnas__model_parsed p;
  train_state t;
  memset(&t, 0, sizeof t);
  const unsigned char *a[3] = {NULL, NULL, NULL};
  int built_here = 0;
  mpnas_status st = mpnas__model_parse(ctx, &r, data, size, where, &p);
  if (st == MPNAS_OK && m->float_dropped)
    st = mpnas__model_bad(ctx, MPNAS_E_STATE, where,
                          "the model is int8 only (its float weights were dropped): it cannot "
                          "train");
  if (st == MPNAS_OK) st = check_model(m, &p, where);
  if (st == MPNAS_OK) st = get_train_state(ctx, &r, m->ndomains, &p.cfg, where, &t);
  if (st == MPNAS_OK) st = check_run(m, &p, &t, where);
  if (st == MPNAS_OK) st = read_arrays(m, &r, &p, where, a, &built_here);
  if (st == MPNAS_OK) st = install_abdp(m, &p, &t, where);
  if (st == MPNAS_OK) commit(m, &p, &t, a);
  if (st != MPNAS_OK && built_here) mpnas__model_unbuild(m); /* as it was */
  free_train_state(ctx, &t);
  mpnas__free(ctx, p.doms);
  return st;
}

mpnas_status mpnas__model_checkpoint_load(mpnas_model *m, const char *path) {
  mpnas_context *ctx = m->ctx;
  char where[320];
  snprintf(where, sizeof where, "checkpoint '%.256s'", path);
  uint64_t mark = mpnas__failure_mark(ctx);
  unsigned char *data = NULL;
  size_t len = 0;
  mpnas_status st = mpnas__read_container(ctx, path, &mpnas__model_kind, &data, &len);
  if (st == MPNAS_OK) st = checkpoint_load(m, data, len, where);
  mpnas__free(ctx, data);
  return mpnas__model_annotate(ctx, st, mark, where);
}

mpnas_status mpnas__model_checkpoint_load_buffer(mpnas_model *m, const void *data, size_t size) {
  const char *where = "model checkpoint buffer";
  uint64_t mark = mpnas__failure_mark(m->ctx);
  return mpnas__model_annotate(m->ctx, checkpoint_load(m, data, size, where), mark, where);
}
