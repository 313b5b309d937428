/* checkpoint.c - save and restore the complete search state (docs/MODEL-FORMAT.md
 * describes the container; this file the sections of a search checkpoint).
 *
 * Sections: META (what the state belongs to: space fingerprint, method, domains and the
 * sizes/label checksums of their data), CONF (every search setting), STAT (step, random
 * streams, statistics, latency table), PARW / PARS / PARB (weights, optimiser slots, BN
 * buffers), CTRL (controllers), ABDP (its settings, sampling stream, last batch counts
 * and state). Loading checks everything before changing anything.
 *
 * SEED (the seed the search's splits and streams were drawn with) was added the same way
 * (2026-12-05): a checkpoint made with another seed is refused, as a model checkpoint's
 * is; one without the section loads as before.
 *
 * ABDP was added without changing the format version (1): the reader looks sections up
 * by tag, so a checkpoint written before it (no ABDP section) still loads, as a search
 * that ran with ABDP's defaults (BALANCED, signal NONE: exactly the search of that
 * time), with a fresh ABDP state (its moving averages restart; with signal NONE they
 * affect nothing, and BALANCED sampling has no state to lose). A library older than
 * ABDP reading a newer checkpoint ignores the section and resumes without ABDP. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/serial.h"
#include "search/supernet.h"

static const mpnas__file_kind checkpoint_kind = {"MPNASCKP", "search checkpoint", 1, 1};

/* The ABDP sampling stream's id: the same as STREAM_ABDP in supernet.c (an old
 * checkpoint without an ABDP section resumes with the stream prepare would seed). */
#define ABDP_STREAM 3u

static uint32_t labels_crc(const mpnas__dataset *d) {
  return d->count ? mpnas__crc32(0, d->labels, sizeof(int32_t) * (size_t)d->count) : 0;
}

mpnas_status mpnas__supernet_save(const mpnas_supernet *sn, const char *path) {
  mpnas__writer w;
  mpnas__writer_init(&w, sn->ctx, &checkpoint_kind);
  mpnas__writer_begin_section(&w, "META");
  mpnas__writer_put_u64(&w, mpnas__space_fingerprint(&sn->space));
  mpnas__writer_put_i32(&w, sn->cfg.method);
  mpnas__writer_put_i32(&w, sn->nlayers);
  mpnas__writer_put_i32(&w, sn->ndomains);
  for (int32_t d = 0; d < sn->ndomains; d++) {
    const mpnas__domain *dm = &sn->domains[d];
    mpnas__writer_put_string(&w, dm->name);
    mpnas__writer_put_i32(&w, dm->classes);
    mpnas__writer_put_i64(&w, dm->data.train.count);
    mpnas__writer_put_i64(&w, dm->data.valid.count);
    mpnas__writer_put_u32(&w, labels_crc(&dm->data.train));
    mpnas__writer_put_u32(&w, labels_crc(&dm->data.valid));
  }
  mpnas__writer_put_u64(&w, sn->params.total);
  mpnas__writer_put_u64(&w, sn->params.btotal);
  mpnas__writer_put_i32(&w, sn->ncontrollers);
  mpnas__writer_end_section(&w);

  mpnas__writer_begin_section(&w, "CONF");
  mpnas__settings_put(&w, &mpnas__search_settings, &sn->cfg);
  mpnas__writer_end_section(&w);

  mpnas__writer_begin_section(&w, "STAT");
  mpnas__writer_put_i64(&w, sn->step);
  mpnas__writer_put_i64(&w, sn->params.steps);
  mpnas__writer_put_rng(&w, &sn->rng);
  for (int32_t d = 0; d < sn->ndomains; d++) {
    const mpnas__domain *dm = &sn->domains[d];
    mpnas__writer_put_rng(&w, &dm->data.rng);
    const double v[] = {dm->loss_ema, dm->valid_acc, dm->reward, dm->cost, dm->weight};
    for (size_t i = 0; i < 5; i++) mpnas__writer_put_f64(&w, v[i]);
  }
  mpnas__writer_put_i32(&w, sn->latency_ready);
  mpnas__writer_put_f64(&w, sn->fixed_latency);
  for (int32_t i = 0; i < sn->op_offset[sn->nlayers]; i++)
    mpnas__writer_put_f64(&w, sn->node_latency[i]);
  mpnas__writer_end_section(&w);

  mpnas__writer_begin_section(&w, "PARW");
  mpnas__writer_put_f32_array(&w, sn->params.w, sn->params.total);
  mpnas__writer_end_section(&w);
  mpnas__writer_begin_section(&w, "PARS");
  mpnas__writer_put_f32_array(&w, sn->params.s1, sn->params.total);
  mpnas__writer_put_f32_array(&w, sn->params.s2, sn->params.total);
  mpnas__writer_end_section(&w);
  mpnas__writer_begin_section(&w, "PARB");
  mpnas__writer_put_f32_array(&w, sn->params.b, sn->params.btotal);
  mpnas__writer_end_section(&w);

  mpnas__writer_begin_section(&w, "CTRL");
  for (int32_t c = 0; c < sn->ncontrollers; c++) {
    const mpnas__controller *ctrl = sn->controllers[c].impl;
    size_t n = mpnas__controller_state_size(ctrl);
    mpnas__writer_put_u32(&w, (uint32_t)n);
    double *buf = mpnas__malloc(sn->ctx, sizeof(double) * n);
    if (buf == NULL) {
      mpnas__writer_free(&w);
      return mpnas__fail(sn->ctx, MPNAS_E_NO_MEMORY, "saving a controller");
    }
    mpnas__controller_export(ctrl, buf, n);
    for (size_t i = 0; i < n; i++) mpnas__writer_put_f64(&w, buf[i]);
    mpnas__free(sn->ctx, buf);
    mpnas__writer_put_rng(&w, &sn->controllers[c].rng);
  }
  mpnas__writer_end_section(&w);

  /* SEED before ABDP, which stays the last section (tests drop it to make a file as
   * written before it). */
  mpnas__writer_begin_section(&w, "SEED");
  mpnas__writer_put_u64(&w, sn->prepared ? sn->run_seed : sn->ctx->seed);
  mpnas__writer_end_section(&w);

  /* ABDP: settings, sampling stream, the last step's counts, then the handle's state
   * (u32 length + doubles, mpnas__abdp_export's layout). */
  mpnas__writer_begin_section(&w, "ABDP");
  mpnas__settings_put(&w, &mpnas__abdp_settings, &sn->abdp_cfg);
  mpnas__writer_put_rng(&w, &sn->abdp_rng);
  for (int32_t d = 0; d < sn->ndomains; d++) mpnas__writer_put_i32(&w, sn->domains[d].batch_images);
  mpnas_status st = mpnas__abdp_state_write(&w, sn->abdp);
  mpnas__writer_end_section(&w);
  if (st == MPNAS_OK) st = mpnas__writer_to_file(&w, path);
  mpnas__writer_free(&w);
  return st;
}

/* SEED (absent from checkpoints written before it): the search must go on with the
 * seed it was made with, or its validation split and random streams are others. */
static mpnas_status check_seed(const mpnas_supernet *sn, mpnas__reader *r, const char *where) {
  if (!mpnas__reader_has_section(r, "SEED") || mpnas__reader_section(r, "SEED") != MPNAS_OK)
    return MPNAS_OK;
  uint64_t seed = mpnas__reader_get_u64(r);
  mpnas_status st = mpnas__reader_status(r);
  if (st != MPNAS_OK) return st;
  uint64_t here = sn->prepared ? sn->run_seed : sn->ctx->seed;
  if (seed != here)
    return mpnas__fail(sn->ctx, MPNAS_E_INCOMPATIBLE,
                       "%s: the checkpoint was made with MPNAS_CONTEXT_SEED %llu, this search "
                       "has %llu (the validation split and the random streams follow the seed)",
                       where, (unsigned long long)seed, (unsigned long long)here);
  return MPNAS_OK;
}

/* Everything a checkpoint holds, read and checked before the supernet is touched. */
typedef struct loaded {
  mpnas__search_config cfg;
  int64_t step, opt_steps;
  mpnas__rng rng, *domain_rng;
  double *domain_stats; /* 5 per domain */
  int32_t latency_ready;
  double fixed_latency, *node_latency;
  float *w, *s1, *s2, *b;
  double **ctrl_state;
  size_t *ctrl_size;
  mpnas__rng *ctrl_rng;
  /* ABDP; without the section: the defaults, a fresh stream and state (abdp_state NULL). */
  mpnas__abdp_config abdp_cfg;
  mpnas__rng abdp_rng;
  int32_t *batch_images;
  double *abdp_state;
  size_t abdp_size;
  mpnas__abdp *abdp; /* made from the above once the supernet is prepared */
  size_t total, btotal; /* META's sizes of the weights and the BN buffers */
  int32_t nctrl;        /* META's controller count */
} loaded;

static mpnas_status incompatible(mpnas_supernet *sn, const char *where, const char *why) {
  return mpnas__fail(sn->ctx, MPNAS_E_INCOMPATIBLE, "%s does not fit this supernet: %s", where,
                     why);
}

static mpnas_status read_meta(mpnas_supernet *sn, mpnas__reader *r, const char *where,
                              size_t *total, size_t *btotal, int32_t *nctrl) {
  char why[160];
  if (mpnas__reader_section(r, "META") != MPNAS_OK) return mpnas__reader_status(r);
  uint64_t fp = mpnas__reader_get_u64(r);
  int32_t method = mpnas__reader_get_i32(r), layers = mpnas__reader_get_i32(r);
  int32_t ndom = mpnas__reader_get_i32(r);
  if (mpnas__reader_status(r) != MPNAS_OK) return mpnas__reader_status(r);
  if (fp != mpnas__space_fingerprint(&sn->space) || layers != sn->nlayers)
    return incompatible(sn, where, "it was made for a different search space");
  if (method != sn->cfg.method && sn->prepared)
    return incompatible(sn, where, "it was made with a different search method");
  if (ndom != sn->ndomains) {
    snprintf(why, sizeof why, "it has %d domains, this supernet %d", (int)ndom, (int)sn->ndomains);
    return incompatible(sn, where, why);
  }
  for (int32_t d = 0; d < ndom; d++) {
    char name[MPNAS__NAME_MAX];
    mpnas__reader_get_string(r, name, sizeof name);
    int32_t classes = mpnas__reader_get_i32(r);
    int64_t ntrain = mpnas__reader_get_i64(r), nvalid = mpnas__reader_get_i64(r);
    uint32_t ct = mpnas__reader_get_u32(r), cv = mpnas__reader_get_u32(r);
    if (mpnas__reader_status(r) != MPNAS_OK) return mpnas__reader_status(r);
    const mpnas__domain *dm = &sn->domains[d];
    /* A name no supernet accepts is a corrupt file, not another supernet's; checked
     * first so that raw bytes from the file never reach a message. */
    if (mpnas__check_domain(NULL, name, 2) != MPNAS_OK)
      return mpnas__fail(sn->ctx, MPNAS_E_CORRUPT,
                         "%s: META: the name of domain %d is not 1..63 printable ASCII "
                         "characters",
                         where, (int)d);
    if (strcmp(name, dm->name) != 0 || classes != dm->classes) {
      snprintf(why, sizeof why, "domain %d is \"%.40s\" (%d classes) there", (int)d, name, (int)classes);
      return incompatible(sn, where, why);
    }
    if (ntrain != dm->data.train.count || nvalid != dm->data.valid.count || ct != labels_crc(&dm->data.train) ||
        cv != labels_crc(&dm->data.valid)) {
      snprintf(why, sizeof why, "the data of domain \"%.40s\" differs from the data it was made with", name);
      return incompatible(sn, where, why);
    }
  }
  *total = (size_t)mpnas__reader_get_u64(r);
  *btotal = (size_t)mpnas__reader_get_u64(r);
  *nctrl = mpnas__reader_get_i32(r);
  mpnas__reader_expect_end(r);
  return mpnas__reader_status(r);
}

static void free_loaded(mpnas_context *ctx, loaded *l, int32_t nctrl) {
  mpnas__free(ctx, l->domain_rng);
  mpnas__free(ctx, l->domain_stats);
  mpnas__free(ctx, l->node_latency);
  mpnas__free(ctx, l->w);
  mpnas__free(ctx, l->s1);
  mpnas__free(ctx, l->s2);
  mpnas__free(ctx, l->b);
  if (l->ctrl_state)
    for (int32_t c = 0; c < nctrl; c++) mpnas__free(ctx, l->ctrl_state[c]);
  mpnas__free(ctx, l->ctrl_state);
  mpnas__free(ctx, l->ctrl_size);
  mpnas__free(ctx, l->ctrl_rng);
  mpnas__free(ctx, l->batch_images);
  mpnas__free(ctx, l->abdp_state);
  mpnas__abdp_destroy(l->abdp);
}

static int nan_or_in(double v, double lo, double hi) { return isnan(v) || (v >= lo && v <= hi); }

/* The values of STAT as the search would have left them (a CRC-valid file may hold
 * anything): NULL, or what is wrong. */
static const char *stat_bad_field(const loaded *l, int32_t D, int32_t T) {
  if (l->step < 0 || l->step > l->cfg.steps) return "step";
  if (l->opt_steps < 0 || l->opt_steps > ((int64_t)1 << 53)) return "optimiser steps";
  if (!mpnas__rng_valid(&l->rng)) return "path sampling stream";
  for (int32_t d = 0; d < D; d++) {
    const double *v = l->domain_stats + 5 * d; /* loss EMA, accuracy, reward, cost, weight */
    if (!mpnas__rng_valid(&l->domain_rng[d])) return "a domain's batch stream";
    if (!nan_or_in(v[0], 0.0, INFINITY) || !nan_or_in(v[1], 0.0, 1.0) ||
        !(isnan(v[2]) || isfinite(v[2])) || !(isnan(v[3]) || isfinite(v[3])) ||
        !(isfinite(v[4]) && v[4] >= 0.0))
      return "a domain's statistics";
  }
  if (l->latency_ready != 0 && l->latency_ready != 1) return "latency flag";
  int ok = mpnas__latency_valid(l->fixed_latency);
  for (int32_t i = 0; i < T; i++) ok &= mpnas__latency_valid(l->node_latency[i]);
  if (!ok) return "latency table";
  if (!l->latency_ready && l->cfg.cost == MPNAS_COST_LATENCY)
    return "latency table (MPNAS_COST_LATENCY without one)";
  return NULL;
}

static mpnas_status oom(mpnas_context *ctx, const char *where) {
  return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "loading %s", where);
}

/* CONF: every setting as the setters accept it, and settings this supernet can follow. */
static mpnas_status read_conf(mpnas_supernet *sn, mpnas__reader *r, const char *where,
                              loaded *l) {
  if (mpnas__reader_section(r, "CONF") == MPNAS_OK)
    mpnas__settings_get(r, &mpnas__search_settings, &l->cfg);
  mpnas__reader_expect_end(r);
  mpnas_status st = mpnas__reader_status(r);
  if (st != MPNAS_OK) return st;
  const char *field = mpnas__settings_bad_field(&mpnas__search_settings, &l->cfg);
  if (field != NULL)
    return mpnas__fail(sn->ctx, MPNAS_E_CORRUPT, "%s: CONF: the setting %s is out of range",
                       where, field);
  if (sn->prepared && l->cfg.method != sn->cfg.method)
    return incompatible(sn, where, "it was made with a different search method");
  /* The split is made once, at prepare: a prepared supernet's data cannot follow another
   * validation fraction (as the model's checkpoint refuses it). */
  if (sn->prepared && l->cfg.valid_fraction != sn->cfg.valid_fraction) {
    char why[160];
    snprintf(why, sizeof why,
             "its data was split with validation fraction %g, this supernet's with %g",
             l->cfg.valid_fraction, sn->cfg.valid_fraction);
    return incompatible(sn, where, why);
  }
  return MPNAS_OK;
}

/* STAT: step, random streams, the domains' statistics, the latency table. */
static mpnas_status read_stat(mpnas_supernet *sn, mpnas__reader *r, const char *where,
                              loaded *l) {
  mpnas_context *ctx = sn->ctx;
  int32_t D = sn->ndomains, T = sn->op_offset[sn->nlayers];
  l->domain_rng = mpnas__malloc(ctx, sizeof(mpnas__rng) * (size_t)D);
  l->domain_stats = mpnas__malloc(ctx, sizeof(double) * 5 * (size_t)D);
  l->node_latency = mpnas__malloc(ctx, sizeof(double) * ((size_t)T + 1));
  if (!l->domain_rng || !l->domain_stats || !l->node_latency) return oom(ctx, where);
  if (mpnas__reader_section(r, "STAT") == MPNAS_OK) {
    l->step = mpnas__reader_get_i64(r);
    l->opt_steps = mpnas__reader_get_i64(r);
    mpnas__reader_get_rng(r, &l->rng);
    for (int32_t d = 0; d < D; d++) {
      mpnas__reader_get_rng(r, &l->domain_rng[d]);
      for (int i = 0; i < 5; i++) l->domain_stats[5 * d + i] = mpnas__reader_get_f64(r);
    }
    l->latency_ready = mpnas__reader_get_i32(r);
    l->fixed_latency = mpnas__reader_get_f64(r);
    for (int32_t i = 0; i < T; i++) l->node_latency[i] = mpnas__reader_get_f64(r);
    mpnas__reader_expect_end(r);
  }
  mpnas_status st = mpnas__reader_status(r);
  if (st != MPNAS_OK) return st;
  const char *field = stat_bad_field(l, D, T);
  if (field != NULL)
    return mpnas__fail(ctx, MPNAS_E_CORRUPT, "%s: STAT: the %s is out of range", where, field);
  return MPNAS_OK;
}

/* ABDP (absent from checkpoints written before it: the defaults, a fresh stream). */
static mpnas_status read_abdp(mpnas_supernet *sn, mpnas__reader *r, const char *where,
                              loaded *l) {
  mpnas_context *ctx = sn->ctx;
  int32_t D = sn->ndomains;
  mpnas__abdp_config_default(&l->abdp_cfg);
  mpnas__rng_seed(&l->abdp_rng, ctx->seed, ABDP_STREAM);
  l->batch_images = mpnas__calloc(ctx, (size_t)D, sizeof(int32_t));
  if (!l->batch_images) return oom(ctx, where);
  if (!mpnas__reader_has_section(r, "ABDP")) {
    for (int32_t d = 0; d < D; d++) l->batch_images[d] = l->step > 0 ? l->cfg.train_batch : 0;
    return MPNAS_OK;
  }
  mpnas_status st = MPNAS_OK;
  if (mpnas__reader_section(r, "ABDP") == MPNAS_OK) {
    mpnas__settings_get(r, &mpnas__abdp_settings, &l->abdp_cfg);
    mpnas__reader_get_rng(r, &l->abdp_rng);
    for (int32_t d = 0; d < D; d++) l->batch_images[d] = mpnas__reader_get_i32(r);
    /* The layout is checked by import (make_abdp). */
    st = mpnas__abdp_state_read(r, ctx, D, &l->abdp_state, &l->abdp_size);
  }
  mpnas__reader_expect_end(r);
  if (st == MPNAS_OK) st = mpnas__reader_status(r);
  if (st != MPNAS_OK) return st;
  int counts_ok = mpnas__rng_valid(&l->abdp_rng);
  for (int32_t d = 0; d < D; d++)
    counts_ok &= l->batch_images[d] >= 0 && l->batch_images[d] <= 4096 * D;
  const char *field = NULL;
  if (mpnas__abdp_config_check(&l->abdp_cfg, &field) != MPNAS_OK || !counts_ok)
    return mpnas__fail(ctx, MPNAS_E_CORRUPT, "%s: ABDP: the %s is out of range", where,
                       field ? field : "sampling stream or batch counts");
  return MPNAS_OK;
}

/* PARW, PARS, PARB and CTRL, once their sizes are known to fit the supernet. */
static mpnas_status read_arrays(mpnas_supernet *sn, mpnas__reader *r, const char *where,
                                loaded *l) {
  mpnas_context *ctx = sn->ctx;
  size_t total = l->total, btotal = l->btotal;
  int32_t nctrl = l->nctrl;
  l->w = mpnas__malloc(ctx, sizeof(float) * (total + 1));
  l->s1 = mpnas__malloc(ctx, sizeof(float) * (total + 1));
  l->s2 = mpnas__malloc(ctx, sizeof(float) * (total + 1));
  l->b = mpnas__malloc(ctx, sizeof(float) * (btotal + 1));
  l->ctrl_state = mpnas__calloc(ctx, (size_t)nctrl + 1, sizeof(double *));
  l->ctrl_size = mpnas__calloc(ctx, (size_t)nctrl + 1, sizeof(size_t));
  l->ctrl_rng = mpnas__calloc(ctx, (size_t)nctrl + 1, sizeof(mpnas__rng));
  if (!l->w || !l->s1 || !l->s2 || !l->b || !l->ctrl_state || !l->ctrl_size || !l->ctrl_rng)
    return oom(ctx, where);
  if (mpnas__reader_section(r, "PARW") == MPNAS_OK) mpnas__reader_get_f32_array(r, l->w, total);
  mpnas__reader_expect_end(r);
  if (mpnas__reader_section(r, "PARS") == MPNAS_OK) {
    mpnas__reader_get_f32_array(r, l->s1, total);
    mpnas__reader_get_f32_array(r, l->s2, total);
  }
  mpnas__reader_expect_end(r);
  if (mpnas__reader_section(r, "PARB") == MPNAS_OK) mpnas__reader_get_f32_array(r, l->b, btotal);
  mpnas__reader_expect_end(r);
  if (mpnas__reader_section(r, "CTRL") == MPNAS_OK)
    for (int32_t c = 0; c < nctrl && mpnas__reader_status(r) == MPNAS_OK; c++) {
      size_t want = mpnas__controller_state_size(sn->controllers[c].impl);
      size_t n = mpnas__reader_get_count(r, (uint32_t)want, sizeof(double));
      if (mpnas__reader_status(r) != MPNAS_OK) break;
      if (n != want)
        return mpnas__fail(ctx, MPNAS_E_CORRUPT, "%s: controller %d has %zu values, expected %zu",
                           where, (int)c, n, want);
      l->ctrl_state[c] = mpnas__malloc(ctx, sizeof(double) * n);
      if (!l->ctrl_state[c]) return oom(ctx, where);
      l->ctrl_size[c] = n;
      for (size_t i = 0; i < n; i++) l->ctrl_state[c][i] = mpnas__reader_get_f64(r);
      mpnas__reader_get_rng(r, &l->ctrl_rng[c]);
    }
  mpnas__reader_expect_end(r);
  mpnas_status st = mpnas__reader_status(r);
  if (st != MPNAS_OK) return st;
  for (int32_t c = 0; c < nctrl; c++)
    if (!mpnas__rng_valid(&l->ctrl_rng[c]))
      return mpnas__fail(ctx, MPNAS_E_CORRUPT, "%s: CTRL: controller %d's stream is invalid",
                         where, (int)c);
  return MPNAS_OK;
}

/* ABDP: a new handle with the checkpoint's settings and state, swapped in at commit. */
static mpnas_status make_abdp(mpnas_supernet *sn, const char *where, loaded *l) {
  mpnas_context *ctx = sn->ctx;
  mpnas_status st = mpnas__domains_abdp(ctx, sn->domains, sn->ndomains, &l->abdp_cfg, 1, &l->abdp);
  if (st != MPNAS_OK || !l->abdp_state) return st;
  if (l->abdp_size != mpnas__abdp_state_size(l->abdp))
    return mpnas__fail(ctx, MPNAS_E_CORRUPT, "%s: ABDP state of %zu values, expected %zu", where,
                       l->abdp_size, mpnas__abdp_state_size(l->abdp));
  if ((st = mpnas__abdp_import(l->abdp, l->abdp_state, l->abdp_size)) != MPNAS_OK)
    return mpnas__fail(ctx, st, "%s: its ABDP state is invalid", where);
  return MPNAS_OK;
}

/* Controllers: import with a backup, so a bad state leaves every controller as it was. */
static mpnas_status import_controllers(mpnas_supernet *sn, const char *where, const loaded *l) {
  mpnas_context *ctx = sn->ctx;
  int32_t nctrl = l->nctrl;
  mpnas_status st = MPNAS_OK;
  double **backup = mpnas__calloc(ctx, (size_t)nctrl + 1, sizeof(double *));
  int ok = backup != NULL;
  for (int32_t c = 0; c < nctrl && ok; c++) {
    size_t n = mpnas__controller_state_size(sn->controllers[c].impl);
    backup[c] = mpnas__malloc(ctx, sizeof(double) * n);
    ok = backup[c] != NULL;
    if (ok) mpnas__controller_export(sn->controllers[c].impl, backup[c], n);
  }
  int32_t done = 0;
  for (; ok && done < nctrl; done++) {
    st = mpnas__controller_import(sn->controllers[done].impl, l->ctrl_state[done],
                                  l->ctrl_size[done]);
    if (st != MPNAS_OK) break;
  }
  if (ok && st != MPNAS_OK)
    for (int32_t c = 0; c < done; c++)
      mpnas__controller_import(sn->controllers[c].impl, backup[c], l->ctrl_size[c]);
  if (backup)
    for (int32_t c = 0; c < nctrl; c++) mpnas__free(ctx, backup[c]);
  mpnas__free(ctx, backup);
  if (!ok) return oom(ctx, where);
  if (st != MPNAS_OK) return mpnas__fail(ctx, st, "%s: a controller's state is invalid", where);
  return MPNAS_OK;
}

/* Everything checked: commit. Every piece of state a search step reads comes from the
 * checkpoint, so a supernet that loaded other checkpoints before continues exactly as a
 * fresh one loading this one. */
static void commit(mpnas_supernet *sn, loaded *l) {
  int32_t D = sn->ndomains, T = sn->op_offset[sn->nlayers];
  sn->cfg = l->cfg;
  sn->step = l->step;
  sn->params.steps = l->opt_steps;
  sn->rng = l->rng;
  memcpy(sn->params.w, l->w, sizeof(float) * l->total);
  memcpy(sn->params.s1, l->s1, sizeof(float) * l->total);
  memcpy(sn->params.s2, l->s2, sizeof(float) * l->total);
  memcpy(sn->params.b, l->b, sizeof(float) * l->btotal);
  for (int32_t d = 0; d < D; d++) {
    mpnas__domain *dm = &sn->domains[d];
    dm->data.rng = l->domain_rng[d];
    const double *v = l->domain_stats + 5 * d;
    dm->loss_ema = v[0], dm->valid_acc = v[1], dm->reward = v[2], dm->cost = v[3], dm->weight = v[4];
  }
  for (int32_t c = 0; c < l->nctrl; c++) sn->controllers[c].rng = l->ctrl_rng[c];
  mpnas__abdp_destroy(sn->abdp);
  sn->abdp = l->abdp;
  l->abdp = NULL;
  sn->abdp_cfg = l->abdp_cfg;
  sn->abdp_rng = l->abdp_rng;
  for (int32_t d = 0; d < D; d++) sn->domains[d].batch_images = l->batch_images[d];
  /* The checkpoint's latency table, or none (then a later request measures one). */
  sn->latency_ready = l->latency_ready;
  sn->fixed_latency = l->fixed_latency;
  memcpy(sn->node_latency, l->node_latency, sizeof(double) * (size_t)T);
}

/* Load a checkpoint held in data[0, len) ("where" names it in messages). Everything is
 * read and checked before the supernet changes; a supernet that was not prepared is
 * prepared with the checkpoint's settings and, if the checkpoint is then refused,
 * returned to its unprepared state. */
static mpnas_status load(mpnas_supernet *sn, const unsigned char *data, size_t len,
                         const char *where) {
  mpnas__reader r;
  loaded l;
  memset(&l, 0, sizeof l);
  mpnas__search_config keep = sn->cfg;
  int prepared_here = 0;
  mpnas_status st = mpnas__reader_open(&r, sn->ctx, &checkpoint_kind, data, len);
  if (st == MPNAS_OK) st = read_meta(sn, &r, where, &l.total, &l.btotal, &l.nctrl);
  if (st == MPNAS_OK) st = check_seed(sn, &r, where);
  if (st == MPNAS_OK && (l.nctrl < 0 || l.nctrl > sn->ndomains))
    st = mpnas__fail(sn->ctx, MPNAS_E_CORRUPT, "%s: %d controllers for %d domains", where,
                     (int)l.nctrl, (int)sn->ndomains);
  if (st == MPNAS_OK) st = read_conf(sn, &r, where, &l);
  if (st == MPNAS_OK) st = read_stat(sn, &r, where, &l);
  if (st == MPNAS_OK) st = read_abdp(sn, &r, where, &l);
  /* The weights' size follows from the space, domains and method: check it against a
   * supernet prepared with the checkpoint's settings before reading the arrays. */
  if (st == MPNAS_OK && !sn->prepared) {
    sn->cfg = l.cfg;
    prepared_here = 1;
    st = mpnas__supernet_prepare(sn);
  }
  if (st == MPNAS_OK && (sn->params.total != l.total || sn->params.btotal != l.btotal ||
                         sn->ncontrollers != l.nctrl))
    st = incompatible(sn, where, "its weights have a different shape");
  /* Settings each in range can still give no usable reward with this supernet's paths
   * (a CRC-valid file with a cost target of 10^-300): refused here, not at the next step.
   * The latency cost is checked when the search starts, with the table it will use. */
  if (st == MPNAS_OK && l.cfg.cost != MPNAS_COST_LATENCY)
    st = mpnas__supernet_check_reward(sn, &l.cfg, MPNAS_E_INCOMPATIBLE, where);
  if (st == MPNAS_OK) st = read_arrays(sn, &r, where, &l);
  if (st == MPNAS_OK) st = make_abdp(sn, where, &l);
  if (st == MPNAS_OK) st = import_controllers(sn, where, &l);
  if (st == MPNAS_OK) commit(sn, &l);
  if (st != MPNAS_OK && prepared_here) {
    mpnas__supernet_destroy_state(sn);
    sn->cfg = keep;
  }
  free_loaded(sn->ctx, &l, l.nctrl);
  return st;
}

mpnas_status mpnas__supernet_load(mpnas_supernet *sn, const char *path) {
  char where[320];
  snprintf(where, sizeof where, "search checkpoint '%.256s'", path);
  unsigned char *data = NULL;
  size_t len = 0;
  mpnas_status st = mpnas__read_container(sn->ctx, path, &checkpoint_kind, &data, &len);
  if (st == MPNAS_OK) st = load(sn, data, len, where);
  mpnas__free(sn->ctx, data);
  return st;
}

mpnas_status mpnas__supernet_load_buffer(mpnas_supernet *sn, const void *data, size_t size) {
  return load(sn, data, size, "search checkpoint buffer");
}
