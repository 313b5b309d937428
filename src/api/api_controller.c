/* api_controller.c - public entry points for controllers (standalone or a supernet's). */
#include <math.h>
#include <string.h>

#include "common/common.h"
#include "search/supernet.h"

#define STREAM_STANDALONE 7u

static mpnas_context *ctx_of(const mpnas_controller *c) { return c->impl->ctx; }

mpnas_status mpnas_controller_create(mpnas_context *ctx, const int32_t *ops_per_layer,
                                     size_t num_layers, mpnas_controller **out) {
  if (ctx == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (out == NULL || ops_per_layer == NULL)
    return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "mpnas_controller_create: %s is NULL",
                       out == NULL ? "out" : "ops_per_layer");
  *out = NULL;
  if (num_layers < 1 || num_layers > MPNAS__CONTROLLER_MAX_LAYERS)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "num_layers must be 1..%d, got %zu",
                       MPNAS__CONTROLLER_MAX_LAYERS, num_layers);
  mpnas_controller *c = mpnas__calloc(ctx, 1, sizeof *c);
  if (c == NULL) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating a controller");
  mpnas_status st = mpnas__controller_create(ctx, (int32_t)num_layers, ops_per_layer, &c->impl);
  if (st != MPNAS_OK) {
    mpnas__free(ctx, c);
    return st;
  }
  mpnas__rng_seed(&c->rng, ctx->seed, STREAM_STANDALONE);
  *out = c;
  return MPNAS_OK;
}

void mpnas_controller_free(mpnas_controller *ctrl) {
  if (ctrl == NULL || ctrl->owner != NULL) return; /* a supernet's controllers are its own */
  mpnas_context *ctx = ctx_of(ctrl);
  mpnas__controller_destroy(ctrl->impl);
  mpnas__free(ctx, ctrl);
}

mpnas_status mpnas_controller_num_layers(const mpnas_controller *ctrl, int32_t *num_layers) {
  if (ctrl == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (num_layers == NULL)
    return mpnas__fail(ctx_of(ctrl), MPNAS_E_INVALID_ARGUMENT, "num_layers is NULL");
  *num_layers = ctrl->impl->n_layers;
  return MPNAS_OK;
}

static mpnas_status check_len(const mpnas_controller *ctrl, const void *p, size_t n) {
  if (p == NULL) return mpnas__fail(ctx_of(ctrl), MPNAS_E_INVALID_ARGUMENT, "output pointer is NULL");
  if (n != (size_t)ctrl->impl->n_layers)
    return mpnas__fail(ctx_of(ctrl), MPNAS_E_INVALID_ARGUMENT,
                       "got %zu entries, the controller has %d layers", n, (int)ctrl->impl->n_layers);
  return MPNAS_OK;
}

static mpnas_status check_path(const mpnas_controller *ctrl, const int32_t *path, size_t n) {
  mpnas_status st = check_len(ctrl, path, n);
  if (st != MPNAS_OK) return st;
  for (size_t l = 0; l < n; l++)
    if (path[l] < 0 || path[l] >= ctrl->impl->n_ops[l])
      return mpnas__fail(ctx_of(ctrl), MPNAS_E_OUT_OF_RANGE, "path[%zu] = %d, layer has %d ops", l,
                         (int)path[l], (int)ctrl->impl->n_ops[l]);
  return MPNAS_OK;
}

mpnas_status mpnas_controller_probabilities(const mpnas_controller *ctrl, int32_t layer,
                                            double *probs, size_t cap) {
  if (ctrl == NULL) return MPNAS_E_INVALID_ARGUMENT;
  const mpnas__controller *c = ctrl->impl;
  if (layer < 0 || layer >= c->n_layers)
    return mpnas__fail(c->ctx, MPNAS_E_OUT_OF_RANGE, "layer %d does not exist (%d layers)",
                       (int)layer, (int)c->n_layers);
  if (probs == NULL || cap < (size_t)c->n_ops[layer])
    return mpnas__fail(c->ctx, MPNAS_E_INVALID_ARGUMENT, "probs needs %d entries", (int)c->n_ops[layer]);
  /* Softmax of one layer, in double, with the maximum subtracted. */
  const float *z = c->logits + c->offset[layer];
  int32_t n = c->n_ops[layer];
  double m = z[0], sum = 0.0;
  for (int32_t i = 1; i < n; i++) if (z[i] > m) m = z[i];
  for (int32_t i = 0; i < n; i++) sum += (probs[i] = exp((double)z[i] - m));
  for (int32_t i = 0; i < n; i++) probs[i] /= sum;
  return MPNAS_OK;
}

mpnas_status mpnas_controller_argmax(const mpnas_controller *ctrl, int32_t *path, size_t n) {
  if (ctrl == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = check_len(ctrl, path, n);
  if (st == MPNAS_OK) mpnas__controller_argmax(ctrl->impl, path);
  return st;
}

mpnas_status mpnas_controller_max_probabilities(const mpnas_controller *ctrl, double *max_probs,
                                                size_t n) {
  if (ctrl == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = check_len(ctrl, max_probs, n);
  if (st != MPNAS_OK) return st;
  for (int32_t l = 0; l < ctrl->impl->n_layers; l++) {
    double p[MPNAS__CONTROLLER_MAX_OPS];
    mpnas_controller_probabilities(ctrl, l, p, MPNAS__CONTROLLER_MAX_OPS);
    double best = 0.0;
    for (int32_t i = 0; i < ctrl->impl->n_ops[l]; i++) if (p[i] > best) best = p[i];
    max_probs[l] = best;
  }
  return MPNAS_OK;
}

mpnas_status mpnas_controller_sample(mpnas_controller *ctrl, int32_t *path, size_t n) {
  if (ctrl == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = check_len(ctrl, path, n);
  if (st == MPNAS_OK) mpnas__controller_sample(ctrl->impl, &ctrl->rng, path);
  return st;
}

mpnas_status mpnas_controller_log_probability(const mpnas_controller *ctrl, const int32_t *path,
                                              size_t n, double *logp) {
  if (ctrl == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = check_path(ctrl, path, n);
  if (st != MPNAS_OK) return st;
  if (logp == NULL) return mpnas__fail(ctx_of(ctrl), MPNAS_E_INVALID_ARGUMENT, "logp is NULL");
  *logp = mpnas__controller_log_prob(ctrl->impl, path);
  return MPNAS_OK;
}

mpnas_status mpnas_controller_update(mpnas_controller *ctrl, const int32_t *path, size_t n,
                                     double reward, double learning_rate, double entropy_bonus) {
  if (ctrl == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = check_path(ctrl, path, n);
  if (st != MPNAS_OK) return st;
  if (!isfinite(reward))
    return mpnas__fail(ctx_of(ctrl), MPNAS_E_INVALID_ARGUMENT, "reward is not finite");
  if (!(learning_rate > 0.0 && learning_rate <= 100.0))
    return mpnas__fail(ctx_of(ctrl), MPNAS_E_OUT_OF_RANGE, "learning_rate must be in (0, 100], got %g",
                       learning_rate);
  if (!(entropy_bonus >= 0.0 && entropy_bonus <= 100.0))
    return mpnas__fail(ctx_of(ctrl), MPNAS_E_OUT_OF_RANGE, "entropy_bonus must be in [0, 100], got %g",
                       entropy_bonus);
  return mpnas__controller_update(ctrl->impl, path, reward, (float)learning_rate,
                                  (float)entropy_bonus, NULL);
}
