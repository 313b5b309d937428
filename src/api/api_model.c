/* api_model.c - public entry points for the multi-path model and predictors. */
#include <string.h>

#include "common/common.h"
#include "common/serial.h"
#include "model/model.h"
#include "model/model_quant.h"
#include "model/model_run.h"
#include "search/supernet.h"

#define CTX(m) ((m)->ctx)
/* The calls that change the model are refused while mpnas_model_train runs
 * (from its progress callback): the running loop would go on with what they
 * changed. */
#define REFUSE_WHILE_TRAINING(m)                                               \
  do {                                                                         \
    if ((m)->running)                                                          \
      return mpnas__refuse_while_running(CTX(m), __func__,                     \
                                         "mpnas_model_train");                 \
  } while (0)

struct mpnas_predictor {
  const mpnas_model *model;
  mpnas__arena ws;
  mpnas__model_packed packed; /* the model's pointwise weights, packed once */
  int32_t precision;          /* MPNAS_PRECISION_* */
  mpnas__quant_packed qpacked; /* the int8 weights, packed once (int8 predictors) */
};

static mpnas_status check_path(const mpnas_model *m, const int32_t *path, size_t n) {
  if (path == NULL) return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "path is NULL");
  if (n != (size_t)m->nlayers)
    return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT,
                       "a path has %d entries (one per searchable layer), got %zu",
                       (int)m->nlayers, n);
  if (!mpnas__space_path_valid(&m->space, path))
    return mpnas__fail(CTX(m), MPNAS_E_OUT_OF_RANGE, "the path has an op index out of range");
  return MPNAS_OK;
}

static mpnas_status check_domain(const mpnas_model *m, int32_t d) {
  if (d < 0 || d >= m->ndomains)
    return mpnas__fail(CTX(m), MPNAS_E_OUT_OF_RANGE, "domain %d does not exist (0..%d)", (int)d,
                       (int)m->ndomains - 1);
  return MPNAS_OK;
}

static mpnas_status not_started(const mpnas_model *m, const char *what) {
  if (m->built)
    return mpnas__fail(CTX(m), MPNAS_E_STATE,
                       "%s: the model's layout is fixed once training started or it was loaded",
                       what);
  return MPNAS_OK;
}

static mpnas_status ready(const mpnas_model *m, const char *what) {
  if (!m->built || !m->norm_ready)
    return mpnas__fail(CTX(m), MPNAS_E_STATE, "%s: the model has no weights yet (train or load it)",
                       what);
  return MPNAS_OK;
}

/* Ready, with its float weights (not an int8-only model). */
static mpnas_status has_float(const mpnas_model *m, const char *what) {
  mpnas_status st = ready(m, what);
  if (st == MPNAS_OK && m->float_dropped)
    st = mpnas__fail(CTX(m), MPNAS_E_STATE,
                     "%s: the model is int8 only (its float weights were dropped: "
                     "mpnas_model_drop_float, or an int8-only file)", what);
  return st;
}

mpnas_status mpnas_model_create(mpnas_context *ctx, const mpnas_space *space, mpnas_model **out) {
  if (ctx == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (out == NULL || space == NULL)
    return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "mpnas_model_create: %s is NULL",
                       out == NULL ? "out" : "space");
  return mpnas__model_new(ctx, space, out);
}

void mpnas_model_free(mpnas_model *m) {
  if (m == NULL) return;
  mpnas_context *ctx = m->ctx;
  mpnas__model_free_contents(m);
  mpnas__free(ctx, m);
}

static mpnas_status from_supernet(const mpnas_supernet *sn, mpnas_model **out) {
  mpnas_context *ctx = sn->ctx;
  if (out == NULL) return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "out is NULL");
  *out = NULL;
  if (sn->ndomains < 1) return mpnas__fail(ctx, MPNAS_E_STATE, "the supernet has no domains");
  mpnas_model *m;
  mpnas_status st = mpnas__model_new(ctx, &sn->space, &m);
  if (st != MPNAS_OK) return st;
  int32_t *path = mpnas__malloc(ctx, sizeof(int32_t) * ((size_t)sn->nlayers + 1));
  if (path == NULL) st = mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating a path");
  mpnas__image_shape shape = mpnas__space_image_shape(&sn->space);
  for (int32_t d = 0; d < sn->ndomains && st == MPNAS_OK; d++) {
    const mpnas__domain *sd = &sn->domains[d];
    st = mpnas_supernet_path(sn, d, path, (size_t)sn->nlayers);
    if (st == MPNAS_OK) st = mpnas__model_add_domain(m, sd->name, sd->classes, path);
    if (st == MPNAS_OK) st = mpnas__dataset_clone(ctx, &m->domains[d].data.train, &sd->data.train, shape);
    if (st == MPNAS_OK) st = mpnas__dataset_clone(ctx, &m->domains[d].data.valid, &sd->data.valid, shape);
  }
  mpnas__free(ctx, path);
  if (st != MPNAS_OK) {
    mpnas_model_free(m);
    return st;
  }
  m->cfg.valid_fraction = sn->cfg.valid_fraction;
  *out = m;
  return MPNAS_OK;
}

mpnas_status mpnas_model_create_from_supernet(const mpnas_supernet *sn, mpnas_model **out) {
  if (sn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  uint64_t mark = mpnas__failure_mark(sn->ctx);
  return mpnas__explain(sn->ctx, from_supernet(sn, out), mark,
                        "mpnas_model_create_from_supernet");
}

mpnas_status mpnas_model_add_domain(mpnas_model *m, const char *name, int32_t num_classes,
                                    const int32_t *path, size_t num_layers, int32_t *domain) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_TRAINING(m);
  mpnas_status st = not_started(m, "mpnas_model_add_domain");
  if (st == MPNAS_OK) st = mpnas__check_domain(CTX(m), name, num_classes);
  if (st == MPNAS_OK) st = check_path(m, path, num_layers);
  if (st != MPNAS_OK) return st;
  if ((st = mpnas__domains_check_new(CTX(m), m->domains, m->ndomains, name)) != MPNAS_OK)
    return st;
  if ((st = mpnas__model_add_domain(m, name, num_classes, path)) != MPNAS_OK) return st;
  if (domain) *domain = m->ndomains - 1;
  return MPNAS_OK;
}

mpnas_status mpnas_model_num_domains(const mpnas_model *m, int32_t *count) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (count == NULL) return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "count is NULL");
  *count = m->ndomains;
  return MPNAS_OK;
}

mpnas_status mpnas_model_domain_name(const mpnas_model *m, int32_t domain, char *buf, size_t cap,
                                     size_t *needed) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = check_domain(m, domain);
  if (st != MPNAS_OK) return st;
  size_t len = strlen(m->domains[domain].name) + 1;
  if (needed) *needed = len;
  if (buf == NULL) return needed ? MPNAS_OK : mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "buf is NULL");
  if (cap < len)
    return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "the name needs %zu bytes, cap is %zu",
                       len, cap);
  memcpy(buf, m->domains[domain].name, len);
  return MPNAS_OK;
}

mpnas_status mpnas_model_domain_classes(const mpnas_model *m, int32_t domain, int32_t *n) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = check_domain(m, domain);
  if (st != MPNAS_OK) return st;
  if (n == NULL) return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "num_classes is NULL");
  *n = m->domains[domain].classes;
  return MPNAS_OK;
}

mpnas_status mpnas_model_path(const mpnas_model *m, int32_t domain, int32_t *path, size_t n) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = check_domain(m, domain);
  if (st != MPNAS_OK) return st;
  if (path == NULL || n != (size_t)m->nlayers)
    return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "path needs %d entries", (int)m->nlayers);
  memcpy(path, m->domains[domain].path, sizeof(int32_t) * n);
  return MPNAS_OK;
}

mpnas_status mpnas_model_space(const mpnas_model *m, const mpnas_space **out) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (out == NULL) return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "out is NULL");
  *out = &m->space;
  return MPNAS_OK;
}

mpnas_status mpnas_model_set_data(mpnas_model *m, int32_t domain, int32_t split, int32_t dtype,
                                  const void *images, const int32_t *labels, int64_t count) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_TRAINING(m);
  mpnas_status st = check_domain(m, domain);
  if (st != MPNAS_OK) return st;
  if (m->prepared)
    return mpnas__fail(CTX(m), MPNAS_E_STATE, "mpnas_model_set_data: training has started");
  if (split != MPNAS_SPLIT_TRAIN && split != MPNAS_SPLIT_VALID)
    return mpnas__fail(CTX(m), MPNAS_E_OUT_OF_RANGE,
                       "split must be MPNAS_SPLIT_TRAIN or _VALID, got %d", (int)split);
  mpnas__domain *d = &m->domains[domain];
  mpnas__image_shape shape = mpnas__space_image_shape(&m->space);
  return mpnas__dataset_set(CTX(m), split == MPNAS_SPLIT_TRAIN ? &d->data.train : &d->data.valid,
                            d->name, d->classes, shape, dtype, images, labels, count);
}

mpnas_status mpnas_model_clear_data(mpnas_model *m) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_TRAINING(m);
  for (int32_t d = 0; d < m->ndomains; d++) mpnas__domain_data_free(CTX(m), &m->domains[d].data);
  /* Training cannot go on without data: a later train call prepares again. */
  m->prepared = 0;
  return MPNAS_OK;
}

/* ---- Settings ------------------------------------------------------------------------ */

static mpnas_status locked(const mpnas_model *m, int32_t param) {
  if (m->prepared || m->step > 0)
    return mpnas__fail(CTX(m), MPNAS_E_STATE,
                       "parameter %d cannot change once training has started", (int)param);
  return MPNAS_OK;
}

mpnas_status mpnas_model_set_int(mpnas_model *m, int32_t param, int64_t v) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_TRAINING(m);
  mpnas_context *ctx = CTX(m);
  /* read-only before locked: MPNAS_E_INVALID_ARGUMENT whenever it is asked */
  if (mpnas__settings_read_only(&mpnas__train_settings, param))
    return mpnas__settings_check_int(ctx, &mpnas__train_settings, param, v);
  mpnas_status st = locked(m, param);
  if (st != MPNAS_OK) return st;
  if (mpnas__abdp_is_param(param))
    return mpnas__settings_set_int(ctx, &mpnas__abdp_settings, &m->cfg.abdp, param, v);
  return mpnas__settings_set_int(ctx, &mpnas__train_settings, &m->cfg, param, v);
}

mpnas_status mpnas_model_get_int(const mpnas_model *m, int32_t param, int64_t *v) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (v == NULL) return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "value is NULL");
  if (mpnas__abdp_is_param(param))
    return mpnas__settings_get_int(CTX(m), &mpnas__abdp_settings, &m->cfg.abdp, param, v);
  int64_t params, macs;
  switch (param) {
    case MPNAS_TRAIN_STEP: *v = m->step; return MPNAS_OK;
    case MPNAS_MODEL_NUM_LAYERS: *v = m->nlayers; return MPNAS_OK;
    case MPNAS_MODEL_NUM_NODES: {
      int64_t n = 0;
      for (int32_t l = 0; l < m->nlayers; l++)
        for (int32_t o = 0; o < m->layers[l].nops; o++) {
          int used = 0;
          for (int32_t d = 0; d < m->ndomains; d++) used |= m->domains[d].path[l] == o;
          n += used && mpnas__space_op(&m->space, &m->layers[l], o).kernel != 0;
        }
      *v = n;
      return MPNAS_OK;
    }
    case MPNAS_MODEL_PARAMS: mpnas__model_costs(m, &params, &macs); *v = params; return MPNAS_OK;
    case MPNAS_MODEL_MACS: mpnas__model_costs(m, &params, &macs); *v = macs; return MPNAS_OK;
    case MPNAS_MODEL_QUANTIZED: *v = m->quant == NULL ? 0 : m->float_dropped ? 2 : 1; return MPNAS_OK;
    default: return mpnas__settings_get_int(CTX(m), &mpnas__train_settings, &m->cfg, param, v);
  }
}

mpnas_status mpnas_model_set_double(mpnas_model *m, int32_t param, double value) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_TRAINING(m);
  mpnas_status st = locked(m, param);
  if (st != MPNAS_OK) return st;
  if (mpnas__abdp_is_param(param))
    return mpnas__settings_set_double(CTX(m), &mpnas__abdp_settings, &m->cfg.abdp, param, value);
  return mpnas__settings_set_double(CTX(m), &mpnas__train_settings, &m->cfg, param, value);
}

mpnas_status mpnas_model_get_double(const mpnas_model *m, int32_t param, double *value) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (value == NULL) return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "value is NULL");
  if (mpnas__abdp_is_param(param))
    return mpnas__settings_get_double(CTX(m), &mpnas__abdp_settings, &m->cfg.abdp, param, value);
  return mpnas__settings_get_double(CTX(m), &mpnas__train_settings, &m->cfg, param, value);
}

mpnas_status mpnas_model_set_domain_int(mpnas_model *m, int32_t domain, int32_t param,
                                        int64_t value) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_TRAINING(m);
  mpnas_status st = check_domain(m, domain);
  if (st != MPNAS_OK) return st;
  return mpnas__settings_set_int(CTX(m), &mpnas__domain_settings, &m->domains[domain], param,
                                 value);
}

/* ---- Training and statistics --------------------------------------------------------- */

static mpnas_status train(mpnas_model *m, int64_t max_steps, mpnas_train_progress_fn progress,
                          void *user, int64_t every) {
  if (max_steps < 0 || every < 0)
    return mpnas__fail(CTX(m), MPNAS_E_OUT_OF_RANGE, "max_steps and every must be >= 0");
  if (m->float_dropped)
    return mpnas__fail(CTX(m), MPNAS_E_STATE,
                       "the model is int8 only (its float weights were dropped): it cannot train");
  return mpnas__model_train(m, max_steps, progress, user, every);
}

mpnas_status mpnas_model_train(mpnas_model *m, int64_t max_steps, mpnas_train_progress_fn progress,
                               void *user, int64_t every) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_TRAINING(m);
  uint64_t mark = mpnas__failure_mark(CTX(m));
  m->running = 1;
  mpnas_status st = train(m, max_steps, progress, user, every);
  m->running = 0;
  return mpnas__explain(CTX(m), st, mark, "mpnas_model_train");
}

mpnas_status mpnas_model_domain_stat(const mpnas_model *m, int32_t domain, int32_t stat,
                                     double *value) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = check_domain(m, domain);
  if (st != MPNAS_OK) return st;
  if (value == NULL) return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "value is NULL");
  const mpnas__domain *d = &m->domains[domain];
  mpnas__cost c = mpnas__path_cost(&m->space, d->path, d->classes);
  switch (stat) {
    case MPNAS_STAT_TRAIN_LOSS: *value = d->loss_ema; return MPNAS_OK;
    case MPNAS_STAT_VALID_ACCURACY: *value = d->valid_acc; return MPNAS_OK;
    case MPNAS_STAT_LOSS_WEIGHT: *value = d->weight; return MPNAS_OK;
    case MPNAS_STAT_TRAIN_SIZE:
      *value = (double)(m->prepared ? d->data.ntrain : d->data.train.count);
      return MPNAS_OK;
    case MPNAS_STAT_VALID_SIZE:
      *value = (double)(m->prepared ? d->data.nvalid : d->data.valid.count);
      return MPNAS_OK;
    case MPNAS_STAT_MACS: *value = (double)c.macs; return MPNAS_OK;
    case MPNAS_STAT_PARAMS: *value = (double)c.params; return MPNAS_OK;
    case MPNAS_STAT_BATCH_IMAGES: *value = d->batch_images; return MPNAS_OK;
    default:
      return mpnas__fail(CTX(m), MPNAS_E_UNKNOWN_PARAMETER,
                         "statistic %d does not apply to a model", (int)stat);
  }
}

/* The images handed to evaluate or a predictor (a valid domain): finite pixels too, as
 * mpnas__dataset_set checks training data (a NaN would be absorbed into the outputs). */
static mpnas_status check_images(const mpnas_model *m, int32_t domain, int32_t dtype,
                                 const void *images, int64_t count) {
  if (!mpnas__dtype_valid(dtype))
    return mpnas__fail(CTX(m), MPNAS_E_OUT_OF_RANGE,
                       "dtype must be MPNAS_DTYPE_U8, _F32, _U8_GREY or _F32_GREY, got %d",
                       (int)dtype);
  if (images == NULL) return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "images is NULL");
  if (count < 1 || count > INT32_MAX)
    return mpnas__fail(CTX(m), MPNAS_E_OUT_OF_RANGE, "count must be 1..%d, got %lld", INT32_MAX,
                       (long long)count);
  mpnas__image_shape shape = mpnas__space_image_shape(&m->space);
  return mpnas__check_finite_images(CTX(m), m->domains[domain].name, shape, dtype, images,
                                    count);
}

static mpnas_status evaluate(const mpnas_model *m, int32_t domain, int32_t dtype,
                             const void *images, const int32_t *labels, int64_t count,
                             double *top1, double *loss) {
  mpnas_status st = ready(m, "mpnas_model_evaluate");
  if (st == MPNAS_OK) st = check_domain(m, domain);
  if (st == MPNAS_OK) st = check_images(m, domain, dtype, images, count);
  if (st != MPNAS_OK) return st;
  if (labels == NULL) return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "labels is NULL");
  int32_t classes = m->domains[domain].classes;
  for (int64_t i = 0; i < count; i++)
    if (labels[i] < 0 || labels[i] >= classes)
      return mpnas__fail(CTX(m), MPNAS_E_OUT_OF_RANGE, "label %d of image %lld is outside 0..%d",
                         (int)labels[i], (long long)i, (int)classes - 1);
  return mpnas__model_evaluate(m, domain, dtype, images, labels, count, top1, loss);
}

mpnas_status mpnas_model_evaluate(const mpnas_model *m, int32_t domain, int32_t dtype,
                                  const void *images, const int32_t *labels, int64_t count,
                                  double *top1, double *loss) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  uint64_t mark = mpnas__failure_mark(CTX(m));
  return mpnas__explain(CTX(m), evaluate(m, domain, dtype, images, labels, count, top1, loss),
                        mark, "mpnas_model_evaluate");
}

static mpnas_status gather_paths(const mpnas_model *m, int32_t **paths) {
  size_t L = (size_t)m->nlayers;
  *paths = mpnas__malloc(CTX(m), sizeof(int32_t) * (L * (size_t)m->ndomains + 1));
  if (*paths == NULL) return mpnas__fail(CTX(m), MPNAS_E_NO_MEMORY, "allocating paths");
  for (int32_t d = 0; d < m->ndomains; d++) memcpy(*paths + d * L, m->domains[d].path, sizeof(int32_t) * L);
  return MPNAS_OK;
}

mpnas_status mpnas_model_node_users(const mpnas_model *m, int32_t layer, int32_t op, int32_t *users) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  int32_t *paths;
  mpnas_status st = gather_paths(m, &paths);
  if (st != MPNAS_OK) return st;
  st = mpnas_space_node_users(&m->space, paths, (size_t)m->ndomains, (size_t)m->nlayers, layer, op,
                              users);
  mpnas__free(CTX(m), paths);
  return st;
}

mpnas_status mpnas_model_jaccard(const mpnas_model *m, double *matrix, size_t cap) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  int32_t *paths;
  mpnas_status st = gather_paths(m, &paths);
  if (st != MPNAS_OK) return st;
  st = mpnas_space_jaccard(&m->space, paths, (size_t)m->ndomains, (size_t)m->nlayers, matrix, cap);
  mpnas__free(CTX(m), paths);
  return st;
}

/* ---- ONNX export (model/model_onnx.c) ------------------------------------------------ */

static mpnas_status export_onnx(const mpnas_model *m, int32_t domain, const char *what,
                                unsigned char **data, size_t *len) {
  mpnas_status st = has_float(m, what);
  if (st == MPNAS_OK) st = check_domain(m, domain);
  if (st != MPNAS_OK) return st;
  uint64_t mark = mpnas__failure_mark(CTX(m));
  return mpnas__explain(CTX(m), mpnas__model_export_onnx(m, domain, data, len), mark, what);
}

mpnas_status mpnas_model_export_onnx(const mpnas_model *m, int32_t domain, const char *path) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (path == NULL)
    return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "mpnas_model_export_onnx: path is NULL");
  unsigned char *data = NULL;
  size_t len = 0;
  mpnas_status st = export_onnx(m, domain, "mpnas_model_export_onnx", &data, &len);
  if (st == MPNAS_OK) st = mpnas__write_file_atomic(CTX(m), path, data, len);
  mpnas__free(CTX(m), data);
  return st;
}

mpnas_status mpnas_model_export_onnx_buffer(const mpnas_model *m, int32_t domain, void *buf,
                                            size_t cap, size_t *size) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (size == NULL)
    return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT,
                       "mpnas_model_export_onnx_buffer: size is NULL");
  unsigned char *data = NULL;
  size_t len = 0;
  mpnas_status st = export_onnx(m, domain, "mpnas_model_export_onnx_buffer", &data, &len);
  if (st == MPNAS_OK) {
    *size = len;
    if (buf != NULL && cap < len)
      st = mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT,
                       "mpnas_model_export_onnx_buffer: the ONNX model needs %zu bytes, cap "
                       "is %zu", len, cap);
    else if (buf != NULL)
      memcpy(buf, data, len);
  }
  mpnas__free(CTX(m), data);
  return st;
}

/* ---- Predictors ---------------------------------------------------------------------- */

mpnas_status mpnas_predictor_create(const mpnas_model *m, mpnas_predictor **out) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (out == NULL) return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "out is NULL");
  *out = NULL;
  mpnas_status st = ready(m, "mpnas_predictor_create");
  if (st != MPNAS_OK) return st;
  mpnas_predictor *p = mpnas__calloc(CTX(m), 1, sizeof *p);
  if (p == NULL) return mpnas__fail(CTX(m), MPNAS_E_NO_MEMORY, "allocating a predictor");
  p->model = m;
  mpnas__arena_init(&p->ws, CTX(m));
  mpnas__model_packed_init(&p->packed, CTX(m));
  mpnas__quant_packed_init(&p->qpacked, CTX(m));
  p->precision = m->float_dropped ? MPNAS_PRECISION_INT8 : MPNAS_PRECISION_FLOAT32;
  *out = p;
  return MPNAS_OK;
}

void mpnas_predictor_free(mpnas_predictor *p) {
  if (p == NULL) return;
  const mpnas_context *ctx = p->model->ctx;
  mpnas__arena_destroy(&p->ws);
  mpnas__model_packed_free(&p->packed);
  mpnas__quant_packed_free(&p->qpacked);
  mpnas__free(ctx, p);
}

static mpnas_status predict(mpnas_predictor *p, int32_t domain, int32_t dtype,
                            const void *images, int64_t count, int32_t output, float *out,
                            size_t cap) {
  const mpnas_model *m = p->model;
  mpnas_status st = check_domain(m, domain);
  if (st == MPNAS_OK) st = check_images(m, domain, dtype, images, count);
  if (st != MPNAS_OK) return st;
  if (output != MPNAS_OUTPUT_LOGITS && output != MPNAS_OUTPUT_PROBABILITIES)
    return mpnas__fail(CTX(m), MPNAS_E_OUT_OF_RANGE, "output must be MPNAS_OUTPUT_*, got %d",
                       (int)output);
  int32_t classes = m->domains[domain].classes;
  if (out == NULL || cap / (size_t)classes < (size_t)count)
    return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT,
                       "out needs %lld x %d floats, cap is %zu", (long long)count, (int)classes, cap);
  /* Packed once, again only after the model's weights (or int8 form) or the context's
   * ISA changed. The model may have changed since the precision was set: check again. */
  const mpnas__quant_packed *qpk = NULL;
  if (p->precision == MPNAS_PRECISION_INT8) {
    if (m->quant == NULL)
      return mpnas__fail(CTX(m), MPNAS_E_STATE,
                         "an int8 predictor needs a quantised model (mpnas_model_quantize; "
                         "training drops the int8 form)");
    if (mpnas__quant_pack(m, &CTX(m)->engine, &p->qpacked) != MPNAS_OK)
      return mpnas__fail(CTX(m), MPNAS_E_NO_MEMORY, "packing the model's int8 weights");
    qpk = &p->qpacked;
  } else {
    if ((st = has_float(m, "a float predictor")) != MPNAS_OK) return st;
    if (mpnas__model_pack(m, &CTX(m)->engine, &p->packed) != MPNAS_OK)
      return mpnas__fail(CTX(m), MPNAS_E_NO_MEMORY, "packing the model's weights for inference");
  }
  return mpnas__model_predict(m, &p->ws, &p->packed, qpk, domain, dtype, images, count,
                              output == MPNAS_OUTPUT_PROBABILITIES, out);
}

mpnas_status mpnas_predictor_run(mpnas_predictor *p, int32_t domain, int32_t dtype,
                                 const void *images, int64_t count, int32_t output, float *out,
                                 size_t cap) {
  if (p == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_context *ctx = CTX(p->model);
  uint64_t mark = mpnas__failure_mark(ctx);
  return mpnas__explain(ctx, predict(p, domain, dtype, images, count, output, out, cap), mark,
                        "mpnas_predictor_run");
}

mpnas_status mpnas_predictor_set_precision(mpnas_predictor *p, int32_t precision) {
  if (p == NULL) return MPNAS_E_INVALID_ARGUMENT;
  const mpnas_model *m = p->model;
  if (precision != MPNAS_PRECISION_FLOAT32 && precision != MPNAS_PRECISION_INT8)
    return mpnas__fail(CTX(m), MPNAS_E_OUT_OF_RANGE,
                       "precision must be MPNAS_PRECISION_FLOAT32 or _INT8, got %d", (int)precision);
  if (precision == MPNAS_PRECISION_INT8 && m->quant == NULL)
    return mpnas__fail(CTX(m), MPNAS_E_STATE,
                       "mpnas_predictor_set_precision: the model is not quantised "
                       "(mpnas_model_quantize)");
  if (precision == MPNAS_PRECISION_FLOAT32) {
    mpnas_status st = has_float(m, "mpnas_predictor_set_precision");
    if (st != MPNAS_OK) return st;
  }
  p->precision = precision;
  return MPNAS_OK;
}

mpnas_status mpnas_predictor_get_precision(const mpnas_predictor *p, int32_t *precision) {
  if (p == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (precision == NULL)
    return mpnas__fail(CTX(p->model), MPNAS_E_INVALID_ARGUMENT, "precision is NULL");
  *precision = p->precision;
  return MPNAS_OK;
}

/* ---- Quantisation (model/model_quant.c) ---------------------------------------------- */

mpnas_status mpnas_model_quantize(mpnas_model *m, int32_t images) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_TRAINING(m);
  mpnas_status st = has_float(m, "mpnas_model_quantize");
  if (st != MPNAS_OK) return st;
  if (images < 0 || images > MPNAS__QUANT_MAX_IMAGES)
    return mpnas__fail(CTX(m), MPNAS_E_OUT_OF_RANGE,
                       "mpnas_model_quantize: calibration_images must be 0..%d, got %d",
                       MPNAS__QUANT_MAX_IMAGES, (int)images);
  uint64_t mark = mpnas__failure_mark(CTX(m));
  return mpnas__explain(CTX(m),
                        mpnas__model_quantize(m, images ? images : MPNAS__QUANT_DEFAULT_IMAGES),
                        mark, "mpnas_model_quantize");
}

mpnas_status mpnas_model_drop_float(mpnas_model *m) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_TRAINING(m);
  if (m->quant == NULL)
    return mpnas__fail(CTX(m), MPNAS_E_STATE,
                       "mpnas_model_drop_float: the model is not quantised (mpnas_model_quantize)");
  /* The float store stays laid out (the layout's bookkeeping), zeroed: nothing reads it. */
  memset(m->params.w, 0, sizeof(float) * m->params.total);
  m->float_dropped = 1;
  return MPNAS_OK;
}

/* ---- Files --------------------------------------------------------------------------- */

mpnas_status mpnas_model_save_checkpoint(const mpnas_model *m, const char *path) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (path == NULL) return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "path is NULL");
  uint64_t mark = mpnas__failure_mark(CTX(m));
  return mpnas__explain(CTX(m), mpnas__model_checkpoint_save(m, path), mark,
                        "mpnas_model_save_checkpoint");
}

mpnas_status mpnas_model_load_checkpoint_buffer(mpnas_model *m, const void *data, size_t size) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_TRAINING(m);
  if (data == NULL)
    return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT,
                       "mpnas_model_load_checkpoint_buffer: data is NULL");
  uint64_t mark = mpnas__failure_mark(CTX(m));
  return mpnas__explain(CTX(m), mpnas__model_checkpoint_load_buffer(m, data, size), mark,
                        "mpnas_model_load_checkpoint_buffer");
}

mpnas_status mpnas_model_load_checkpoint(mpnas_model *m, const char *path) {
  if (m == NULL) return MPNAS_E_INVALID_ARGUMENT;
  REFUSE_WHILE_TRAINING(m);
  if (path == NULL) return mpnas__fail(CTX(m), MPNAS_E_INVALID_ARGUMENT, "path is NULL");
  uint64_t mark = mpnas__failure_mark(CTX(m));
  return mpnas__explain(CTX(m), mpnas__model_checkpoint_load(m, path), mark,
                        "mpnas_model_load_checkpoint");
}
