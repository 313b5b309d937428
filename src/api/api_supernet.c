/* api_supernet.c - public entry points for the supernet and the search. */
#include <math.h>
#include <string.h>

#include "common/common.h"
#include "search/supernet.h"

#define CTX(sn) ((sn)->ctx)
/* The calls that change the supernet are refused while mpnas_supernet_search
 * runs (from its progress callback): the running loop would go on with what
 * they changed. */
#define REFUSE_WHILE_SEARCHING(sn)                                             \
  do {                                                                         \
    if ((sn)->running)                                                         \
      return mpnas__refuse_while_running(CTX(sn), __func__,                    \
                                         "mpnas_supernet_search");             \
  } while (0)

mpnas_status mpnas_supernet_create(mpnas_context *ctx, const mpnas_space *space,
                                   mpnas_supernet **out) {
  if (ctx == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (out == NULL || space == NULL)
    return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "mpnas_supernet_create: %s is NULL",
                       out == NULL ? "out" : "space");
  *out = NULL;
  return mpnas__supernet_new(ctx, space, out);
}

void mpnas_supernet_free(mpnas_supernet *sn) { mpnas__supernet_delete(sn); }

mpnas_status mpnas_supernet_space(const mpnas_supernet *sn, const mpnas_space **out) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (out == NULL) return mpnas__fail(CTX(sn), MPNAS_E_INVALID_ARGUMENT, "out is NULL");
  *out = &sn->space;
  return MPNAS_OK;
}

static mpnas_status not_started(const mpnas_supernet *sn, const char *what) {
  if (sn->prepared)
    return mpnas__fail(CTX(sn), MPNAS_E_STATE, "%s: the search has already started", what);
  return MPNAS_OK;
}

mpnas_status mpnas_supernet_add_domain(mpnas_supernet *sn, const char *name,
                                       int32_t num_classes, int32_t *domain) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_SEARCHING(sn);
  mpnas_status st = not_started(sn, "mpnas_supernet_add_domain");
  if (st != MPNAS_OK) return st;
  if ((st = mpnas__check_domain(CTX(sn), name, num_classes)) != MPNAS_OK) return st;
  if ((st = mpnas__domains_check_new(CTX(sn), sn->domains, sn->ndomains, name)) != MPNAS_OK)
    return st;
  mpnas__domain_init(&sn->domains[sn->ndomains], name, num_classes);
  if (domain) *domain = sn->ndomains;
  sn->ndomains++;
  return MPNAS_OK;
}

mpnas_status mpnas_supernet_num_domains(const mpnas_supernet *sn, int32_t *count) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (count == NULL) return mpnas__fail(CTX(sn), MPNAS_E_INVALID_ARGUMENT, "count is NULL");
  *count = sn->ndomains;
  return MPNAS_OK;
}

static mpnas_status check_domain(const mpnas_supernet *sn, int32_t domain) {
  if (domain < 0 || domain >= sn->ndomains)
    return mpnas__fail(CTX(sn), MPNAS_E_OUT_OF_RANGE, "domain %d does not exist (%d domains)",
                       (int)domain, (int)sn->ndomains);
  return MPNAS_OK;
}

mpnas_status mpnas_supernet_set_data(mpnas_supernet *sn, int32_t domain, int32_t split,
                                     int32_t dtype, const void *images, const int32_t *labels,
                                     int64_t count) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_SEARCHING(sn);
  mpnas_context *ctx = CTX(sn);
  mpnas_status st = not_started(sn, "mpnas_supernet_set_data");
  if (st == MPNAS_OK) st = check_domain(sn, domain);
  if (st != MPNAS_OK) return st;
  if (split != MPNAS_SPLIT_TRAIN && split != MPNAS_SPLIT_VALID)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "split must be MPNAS_SPLIT_TRAIN or _VALID, got %d", (int)split);
  mpnas__domain *d = &sn->domains[domain];
  mpnas__image_shape shape = mpnas__space_image_shape(&sn->space);
  return mpnas__dataset_set(ctx, split == MPNAS_SPLIT_TRAIN ? &d->data.train : &d->data.valid,
                            d->name, d->classes, shape, dtype, images, labels, count);
}

/* ---- Parameters ------------------------------------------------------------------------ */

static mpnas_status locked(mpnas_supernet *sn, int32_t param) {
  if (sn->prepared && (param == MPNAS_SEARCH_METHOD || param == MPNAS_SEARCH_STEPS ||
                       param == MPNAS_SEARCH_COST || param == MPNAS_SEARCH_VALIDATION_FRACTION))
    return mpnas__fail(CTX(sn), MPNAS_E_STATE,
                       "search parameter %d cannot change once the search has started", (int)param);
  return MPNAS_OK;
}

/* The MPNAS_ABDP_* parameters fix how the search samples and weighs: they change only
 * before it starts (the ABDP handle is made with them at prepare). */
static mpnas_status abdp_locked(mpnas_supernet *sn, int32_t param) {
  if (sn->prepared)
    return mpnas__fail(CTX(sn), MPNAS_E_STATE,
                       "ABDP parameter %d cannot change once the search has started", (int)param);
  return MPNAS_OK;
}

mpnas_status mpnas_supernet_set_int(mpnas_supernet *sn, int32_t param, int64_t v) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_SEARCHING(sn);
  if (mpnas__abdp_is_param(param)) {
    mpnas_status st = abdp_locked(sn, param);
    return st != MPNAS_OK
               ? st
               : mpnas__settings_set_int(CTX(sn), &mpnas__abdp_settings, &sn->abdp_cfg, param, v);
  }
  mpnas_status st = locked(sn, param);
  if (st != MPNAS_OK) return st;
  return mpnas__settings_set_int(CTX(sn), &mpnas__search_settings, &sn->cfg, param, v);
}

mpnas_status mpnas_supernet_get_int(const mpnas_supernet *sn, int32_t param, int64_t *v) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (v == NULL) return mpnas__fail(CTX(sn), MPNAS_E_INVALID_ARGUMENT, "value is NULL");
  if (mpnas__abdp_is_param(param))
    return mpnas__settings_get_int(CTX(sn), &mpnas__abdp_settings, &sn->abdp_cfg, param, v);
  if (param == MPNAS_SEARCH_STEP) {
    *v = sn->step;
    return MPNAS_OK;
  }
  return mpnas__settings_get_int(CTX(sn), &mpnas__search_settings, &sn->cfg, param, v);
}

mpnas_status mpnas_supernet_set_double(mpnas_supernet *sn, int32_t param, double value) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_SEARCHING(sn);
  if (mpnas__abdp_is_param(param)) {
    mpnas_status st = abdp_locked(sn, param);
    return st != MPNAS_OK ? st
                          : mpnas__settings_set_double(CTX(sn), &mpnas__abdp_settings,
                                                       &sn->abdp_cfg, param, value);
  }
  mpnas_status st = locked(sn, param);
  if (st != MPNAS_OK) return st;
  return mpnas__settings_set_double(CTX(sn), &mpnas__search_settings, &sn->cfg, param, value);
}

mpnas_status mpnas_supernet_get_double(const mpnas_supernet *sn, int32_t param, double *value) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (value == NULL) return mpnas__fail(CTX(sn), MPNAS_E_INVALID_ARGUMENT, "value is NULL");
  if (mpnas__abdp_is_param(param))
    return mpnas__settings_get_double(CTX(sn), &mpnas__abdp_settings, &sn->abdp_cfg, param,
                                      value);
  mpnas_status st =
      mpnas__settings_get_double(CTX(sn), &mpnas__search_settings, &sn->cfg, param, value);
  if (st == MPNAS_OK && param == MPNAS_SEARCH_COST_BETA && isnan(*value))
    *value = sn->cfg.reward == MPNAS_REWARD_MNAS ? MPNAS__REWARD_MNAS_BETA : MPNAS__REWARD_ABS_BETA;
  return st;
}

static mpnas_status check_path_arg(const mpnas_supernet *sn, const int32_t *path, size_t n) {
  if (path == NULL) return mpnas__fail(CTX(sn), MPNAS_E_INVALID_ARGUMENT, "path is NULL");
  if (n != (size_t)sn->nlayers)
    return mpnas__fail(CTX(sn), MPNAS_E_INVALID_ARGUMENT, "path has %zu entries, the space %d layers",
                       n, (int)sn->nlayers);
  return MPNAS_OK;
}

mpnas_status mpnas_supernet_set_fixed_path(mpnas_supernet *sn, const int32_t *path, size_t n) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_SEARCHING(sn);
  mpnas_status st = not_started(sn, "mpnas_supernet_set_fixed_path");
  if (st == MPNAS_OK) st = check_path_arg(sn, path, n);
  if (st != MPNAS_OK) return st;
  if (!mpnas__space_path_valid(&sn->space, path))
    return mpnas__fail(CTX(sn), MPNAS_E_OUT_OF_RANGE, "the path has an op index outside its layer's ops");
  memcpy(sn->fixed_path, path, sizeof(int32_t) * n);
  return MPNAS_OK;
}

/* ---- Running the search ----------------------------------------------------------------- */

static mpnas_status search(mpnas_supernet *sn, int64_t max_steps,
                           mpnas_search_progress_fn progress, void *user, int64_t every) {
  if (max_steps < 0 || every < 0)
    return mpnas__fail(CTX(sn), MPNAS_E_OUT_OF_RANGE, "max_steps and every must be >= 0");
  int was_prepared = sn->prepared;
  mpnas_status st = mpnas__supernet_prepare(sn);
  /* The latency cost needs the table: measured now unless the host set one. */
  if (st == MPNAS_OK && sn->cfg.cost == MPNAS_COST_LATENCY && !sn->latency_ready)
    st = mpnas__supernet_measure_latency(sn);
  if (st == MPNAS_OK)
    st = mpnas__supernet_check_reward(sn, &sn->cfg, MPNAS_E_STATE, "before the search step");
  if (st != MPNAS_OK) {
    if (!was_prepared) mpnas__supernet_destroy_state(sn); /* not started after all */
    return st;
  }
  int64_t done = 0;
  while (sn->step < sn->cfg.steps && (max_steps == 0 || done < max_steps)) {
    st = mpnas__supernet_step(sn);
    /* The step is undone; a search this call started is undone with it (the handle
     * is as before the call: data and settings can still change). */
    if (st != MPNAS_OK && !was_prepared && sn->step == 0) mpnas__supernet_destroy_state(sn);
    if (st != MPNAS_OK) return st;
    done++;
    int report = sn->step == sn->cfg.steps || (every > 0 && sn->step % every == 0);
    if (progress && report && progress(user, sn, sn->step, sn->cfg.steps) != 0)
      return mpnas__fail(CTX(sn), MPNAS_E_CANCELLED,
                         "search stopped by the progress callback at step %lld (resumable)",
                         (long long)sn->step);
  }
  return MPNAS_OK;
}

mpnas_status mpnas_supernet_search(mpnas_supernet *sn, int64_t max_steps,
                                   mpnas_search_progress_fn progress, void *user, int64_t every) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_SEARCHING(sn);
  uint64_t mark = mpnas__failure_mark(CTX(sn));
  sn->running = 1;
  mpnas_status st = search(sn, max_steps, progress, user, every);
  sn->running = 0;
  return mpnas__explain(CTX(sn), st, mark, "mpnas_supernet_search");
}

mpnas_status mpnas_supernet_domain_stat(const mpnas_supernet *sn, int32_t domain, int32_t stat,
                                        double *value) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (value == NULL) return mpnas__fail(CTX(sn), MPNAS_E_INVALID_ARGUMENT, "value is NULL");
  mpnas_status st = check_domain(sn, domain);
  if (st != MPNAS_OK) return st;
  const mpnas__domain *d = &sn->domains[domain];
  switch (stat) {
    case MPNAS_STAT_TRAIN_LOSS: *value = d->loss_ema; return MPNAS_OK;
    case MPNAS_STAT_VALID_ACCURACY: *value = d->valid_acc; return MPNAS_OK;
    case MPNAS_STAT_REWARD: *value = d->reward; return MPNAS_OK;
    case MPNAS_STAT_COST: *value = d->cost; return MPNAS_OK;
    case MPNAS_STAT_LOSS_WEIGHT: *value = d->weight; return MPNAS_OK;
    case MPNAS_STAT_BATCH_IMAGES: *value = (double)d->batch_images; return MPNAS_OK;
    case MPNAS_STAT_TRAIN_SIZE:
      *value = (double)(sn->prepared ? d->data.ntrain : d->data.train.count);
      return MPNAS_OK;
    case MPNAS_STAT_VALID_SIZE:
      *value = (double)(sn->prepared ? d->data.nvalid : d->data.valid.count);
      return MPNAS_OK;
    default:
      return mpnas__fail(CTX(sn), MPNAS_E_UNKNOWN_PARAMETER, "unknown domain statistic %d", (int)stat);
  }
}

mpnas_status mpnas_supernet_controller(mpnas_supernet *sn, int32_t domain,
                                       mpnas_controller **ctrl) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (ctrl == NULL) return mpnas__fail(CTX(sn), MPNAS_E_INVALID_ARGUMENT, "ctrl is NULL");
  mpnas_status st = check_domain(sn, domain);
  if (st != MPNAS_OK) return st;
  if (!sn->prepared)
    return mpnas__fail(CTX(sn), MPNAS_E_STATE,
                       "controllers exist once the search has started (mpnas_supernet_search)");
  *ctrl = &sn->controllers[mpnas__supernet_controller_of(sn, domain)];
  return MPNAS_OK;
}

mpnas_status mpnas_supernet_path(const mpnas_supernet *sn, int32_t domain, int32_t *path,
                                 size_t n) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = check_domain(sn, domain);
  if (st == MPNAS_OK) st = check_path_arg(sn, path, n);
  if (st != MPNAS_OK) return st;
  if (sn->cfg.method == MPNAS_METHOD_SINGLE_PATH) {
    memcpy(path, sn->fixed_path, sizeof(int32_t) * n);
    return MPNAS_OK;
  }
  if (!sn->prepared)
    return mpnas__fail(CTX(sn), MPNAS_E_STATE, "no path yet: the search has not started");
  mpnas__controller_argmax(sn->controllers[mpnas__supernet_controller_of(sn, domain)].impl, path);
  return MPNAS_OK;
}

mpnas_status mpnas_supernet_latency_table(mpnas_supernet *sn, double *seconds, size_t cap,
                                          size_t *count) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  size_t n = 1 + (size_t)sn->op_offset[sn->nlayers];
  if (count) *count = n;
  if (seconds == NULL) return MPNAS_OK;
  if (cap < n)
    return mpnas__fail(CTX(sn), MPNAS_E_INVALID_ARGUMENT, "the latency table has %zu entries, cap is %zu", n, cap);
  if (!sn->latency_ready) {
    uint64_t mark = mpnas__failure_mark(CTX(sn));
    mpnas_status st = mpnas__supernet_measure_latency(sn);
    if (st != MPNAS_OK) return mpnas__explain(CTX(sn), st, mark, "mpnas_supernet_latency_table");
  }
  seconds[0] = sn->fixed_latency;
  memcpy(seconds + 1, sn->node_latency, sizeof(double) * (n - 1));
  return MPNAS_OK;
}

mpnas_status mpnas_supernet_set_latency_table(mpnas_supernet *sn, const double *seconds,
                                              size_t count) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_SEARCHING(sn);
  size_t n = 1 + (size_t)sn->op_offset[sn->nlayers];
  if (seconds == NULL || count != n)
    return mpnas__fail(CTX(sn), MPNAS_E_INVALID_ARGUMENT,
                       "the latency table of this space has %zu entries, got %zu", n, count);
  for (size_t i = 0; i < n; i++)
    if (!mpnas__latency_valid(seconds[i]))
      return mpnas__fail(CTX(sn), MPNAS_E_OUT_OF_RANGE, "latency entry %zu is not a finite time >= 0", i);
  sn->fixed_latency = seconds[0];
  memcpy(sn->node_latency, seconds + 1, sizeof(double) * (n - 1));
  sn->latency_ready = 1;
  return MPNAS_OK;
}

mpnas_status mpnas_supernet_save_checkpoint(const mpnas_supernet *sn, const char *path) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (path == NULL) return mpnas__fail(CTX(sn), MPNAS_E_INVALID_ARGUMENT, "path is NULL");
  if (!sn->prepared)
    return mpnas__fail(CTX(sn), MPNAS_E_STATE, "nothing to save: the search has not started");
  uint64_t mark = mpnas__failure_mark(CTX(sn));
  return mpnas__explain(CTX(sn), mpnas__supernet_save(sn, path), mark,
                        "mpnas_supernet_save_checkpoint");
}

mpnas_status mpnas_supernet_load_checkpoint_buffer(mpnas_supernet *sn, const void *data,
                                                   size_t size) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_SEARCHING(sn);
  if (data == NULL)
    return mpnas__fail(CTX(sn), MPNAS_E_INVALID_ARGUMENT,
                       "mpnas_supernet_load_checkpoint_buffer: data is NULL");
  uint64_t mark = mpnas__failure_mark(CTX(sn));
  return mpnas__explain(CTX(sn), mpnas__supernet_load_buffer(sn, data, size), mark,
                        "mpnas_supernet_load_checkpoint_buffer");
}

mpnas_status mpnas_supernet_load_checkpoint(mpnas_supernet *sn, const char *path) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_SEARCHING(sn);
  if (path == NULL) return mpnas__fail(CTX(sn), MPNAS_E_INVALID_ARGUMENT, "path is NULL");
  uint64_t mark = mpnas__failure_mark(CTX(sn));
  return mpnas__explain(CTX(sn), mpnas__supernet_load(sn, path), mark,
                        "mpnas_supernet_load_checkpoint");
}
