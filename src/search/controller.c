/* controller.c - per-domain REINFORCE controller, see controller.h. */
#include "search/controller.h"

#include <math.h>
#include <string.h>

#include "common/common.h"
#include "search/reward.h"
#include "train/optim.h"

#define STATE_LAYOUT_VERSION 1.0
#define STATE_SCALARS 5 /* adam_t, n_rewards, baseline, momentum_pow, last_advantage */

mpnas_status mpnas__controller_create(mpnas_context *ctx, int32_t n_layers,
                                      const int32_t *n_ops, mpnas__controller **out) {
  if (out == NULL) return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "controller: out is NULL");
  *out = NULL;
  if (ctx == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (n_ops == NULL)
    return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "controller: n_ops is NULL");
  if (n_layers < 1 || n_layers > MPNAS__CONTROLLER_MAX_LAYERS)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "controller: %d layers (1..%d)",
                       (int)n_layers, MPNAS__CONTROLLER_MAX_LAYERS);
  int32_t total = 0;
  for (int32_t l = 0; l < n_layers; l++) {
    if (n_ops[l] < 1 || n_ops[l] > MPNAS__CONTROLLER_MAX_OPS)
      return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "controller: layer %d has %d ops (1..%d)",
                         (int)l, (int)n_ops[l], MPNAS__CONTROLLER_MAX_OPS);
    total += n_ops[l]; /* <= 4096 * 4096: no overflow */
  }

  mpnas__controller *c = mpnas__calloc(ctx, 1, sizeof *c);
  if (c == NULL) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "controller: out of memory");
  c->ctx = ctx;
  c->n_layers = n_layers;
  c->total_ops = total;
  c->n_ops = mpnas__calloc(ctx, (size_t)(2 * n_layers + 1), sizeof(int32_t));
  c->logits = mpnas__calloc(ctx, (size_t)total * 4, sizeof(float));
  if (c->n_ops == NULL || c->logits == NULL) {
    mpnas__controller_destroy(c);
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "controller: out of memory");
  }
  c->offset = c->n_ops + n_layers;
  c->adam_m = c->logits + total;
  c->adam_v = c->adam_m + total;
  c->grad = c->adam_v + total;
  c->offset[0] = 0;
  for (int32_t l = 0; l < n_layers; l++) {
    c->n_ops[l] = n_ops[l];
    c->offset[l + 1] = c->offset[l] + n_ops[l];
  }
  c->momentum_pow = 1.0;
  *out = c;
  return MPNAS_OK;
}

void mpnas__controller_destroy(mpnas__controller *c) {
  if (c == NULL) return;
  const mpnas_context *ctx = c->ctx;
  mpnas__free(ctx, c->logits);
  mpnas__free(ctx, c->n_ops);
  mpnas__free(ctx, c);
}

void mpnas__controller_copy_state(mpnas__controller *dst, const mpnas__controller *src) {
  /* logits, adam_m and adam_v are contiguous (create); grad is scratch. */
  memcpy(dst->logits, src->logits, sizeof(float) * 3 * (size_t)src->total_ops);
  dst->adam_t = src->adam_t;
  dst->n_rewards = src->n_rewards;
  dst->baseline = src->baseline;
  dst->momentum_pow = src->momentum_pow;
  dst->last_advantage = src->last_advantage;
}

/* ---- Per-layer softmax helpers (double, max-subtracted: no overflow, no log(0)) ---- */

static double layer_max(const float *z, int32_t n) {
  double m = z[0];
  for (int32_t j = 1; j < n; j++)
    if (z[j] > m) m = z[j];
  return m;
}

/* log of sum exp(z_j - max). p_j = exp(z_j - max - lse), ln p_j = z_j - max - lse. */
static double layer_lse(const float *z, int32_t n, double max) {
  double s = 0.0;
  for (int32_t j = 0; j < n; j++) s += exp((double)z[j] - max);
  return log(s); /* s >= 1: the max term is exp(0) */
}

/* Inverse-CDF draw from layer l's softmax with a given uniform u in [0, 1). */
static int32_t layer_draw(const mpnas__controller *c, int32_t l, double u) {
  const float *z = c->logits + c->offset[l];
  int32_t n = c->n_ops[l];
  if (n == 1) return 0;
  double max = layer_max(z, n);
  double shift = max + layer_lse(z, n, max);
  double cum = 0.0;
  int32_t last_positive = 0;
  for (int32_t j = 0; j < n; j++) {
    double p = exp((double)z[j] - shift);
    if (p > 0.0) last_positive = j;
    cum += p;
    if (u < cum) return j;
  }
  /* Rounding left cum just below 1 and u above it: the last op that can occur. */
  return last_positive;
}

void mpnas__controller_sample(const mpnas__controller *c, mpnas__rng *rng, int32_t *path) {
  for (int32_t l = 0; l < c->n_layers; l++) {
    double u = mpnas__rng_uniform(rng); /* drawn even for 1-op layers: fixed consumption */
    path[l] = layer_draw(c, l, u);
  }
}

void mpnas__controller_sample_warmup(const mpnas__controller *c, mpnas__rng *rng, float p,
                                     const uint8_t *allowed, int32_t *path) {
  if (!(p > 0.0f)) {
    mpnas__controller_sample(c, rng, path);
    return;
  }
  for (int32_t l = 0; l < c->n_layers; l++) {
    double u_policy = mpnas__rng_uniform(rng);
    float u_coin = mpnas__rng_uniform(rng);
    double u_pick = mpnas__rng_uniform(rng);
    path[l] = layer_draw(c, l, u_policy);
    if (!(u_coin < p)) continue;
    int32_t n = c->n_ops[l], base = c->offset[l], count = 0;
    for (int32_t j = 0; j < n; j++) count += (allowed == NULL || allowed[base + j]) ? 1 : 0;
    if (count == 0) continue;
    /* 24-bit u: the floor's non-uniformity is below count * 2^-24, irrelevant here. */
    int32_t k = (int32_t)(u_pick * (double)count);
    if (k >= count) k = count - 1;
    for (int32_t j = 0; j < n; j++) {
      if (allowed != NULL && !allowed[base + j]) continue;
      if (k-- == 0) {
        path[l] = j;
        break;
      }
    }
  }
}

double mpnas__controller_log_prob(const mpnas__controller *c, const int32_t *path) {
  double lp = 0.0;
  for (int32_t l = 0; l < c->n_layers; l++) {
    const float *z = c->logits + c->offset[l];
    int32_t n = c->n_ops[l];
    double max = layer_max(z, n);
    lp += (double)z[path[l]] - max - layer_lse(z, n, max);
  }
  return lp;
}

void mpnas__controller_probs(const mpnas__controller *c, float *out) {
  for (int32_t l = 0; l < c->n_layers; l++) {
    const float *z = c->logits + c->offset[l];
    int32_t n = c->n_ops[l];
    double max = layer_max(z, n);
    double shift = max + layer_lse(z, n, max);
    for (int32_t j = 0; j < n; j++) out[c->offset[l] + j] = (float)exp((double)z[j] - shift);
  }
}

void mpnas__controller_argmax(const mpnas__controller *c, int32_t *path) {
  for (int32_t l = 0; l < c->n_layers; l++) {
    const float *z = c->logits + c->offset[l];
    int32_t best = 0;
    for (int32_t j = 1; j < c->n_ops[l]; j++)
      if (z[j] > z[best]) best = j;
    path[l] = best;
  }
}

void mpnas__controller_max_probs(const mpnas__controller *c, float *out) {
  for (int32_t l = 0; l < c->n_layers; l++) {
    const float *z = c->logits + c->offset[l];
    int32_t n = c->n_ops[l];
    double max = layer_max(z, n);
    /* The max logit's probability is exp(0 - lse). */
    out[l] = (float)exp(-layer_lse(z, n, max));
  }
}

double mpnas__controller_convergence(const mpnas__controller *c) {
  double worst = 1.0;
  for (int32_t l = 0; l < c->n_layers; l++) {
    const float *z = c->logits + c->offset[l];
    int32_t n = c->n_ops[l];
    double pmax = exp(-layer_lse(z, n, layer_max(z, n)));
    if (pmax < worst) worst = pmax;
  }
  return worst;
}

/* Entropy of one layer; ln p_j = z_j - shift. */
static double layer_entropy(const float *z, int32_t n, double shift) {
  double h = 0.0;
  for (int32_t j = 0; j < n; j++) {
    double lp = (double)z[j] - shift;
    h -= exp(lp) * lp;
  }
  return h;
}

double mpnas__controller_entropy(const mpnas__controller *c) {
  double h = 0.0;
  for (int32_t l = 0; l < c->n_layers; l++) {
    const float *z = c->logits + c->offset[l];
    int32_t n = c->n_ops[l];
    double max = layer_max(z, n);
    h += layer_entropy(z, n, max + layer_lse(z, n, max));
  }
  return h;
}

double mpnas__controller_baseline(const mpnas__controller *c) { return c->baseline; }

double mpnas__controller_loss_grad(const mpnas__controller *c, const int32_t *path,
                                   double advantage, double entropy_coef, float *grad) {
  double log_prob = 0.0, entropy = 0.0;
  for (int32_t l = 0; l < c->n_layers; l++) {
    const float *z = c->logits + c->offset[l];
    int32_t n = c->n_ops[l];
    double max = layer_max(z, n);
    double shift = max + layer_lse(z, n, max);
    double h = layer_entropy(z, n, shift);
    log_prob += (double)z[path[l]] - shift;
    entropy += h;
    if (grad == NULL) continue;
    float *g = grad + c->offset[l];
    for (int32_t j = 0; j < n; j++) {
      double lp = (double)z[j] - shift;
      double p = exp(lp);
      /* d ln p_a / dz_j = [j == a] - p_j;  dH_l / dz_j = -p_j (ln p_j + H_l). */
      double dlogp = (j == path[l] ? 1.0 : 0.0) - p;
      g[j] = (float)(-advantage * dlogp + entropy_coef * p * (lp + h));
    }
  }
  return -advantage * log_prob - entropy_coef * entropy;
}

void mpnas__controller_observe(mpnas__controller *c, double reward) {
  if (!isfinite(reward)) return;
  const double mu = MPNAS__CONTROLLER_BASELINE_MOMENTUM;
  c->n_rewards++;
  c->momentum_pow *= mu;
  /* w_t = (1-mu)/(1-mu^t) is exactly 1 at t = 1, so b_1 = R_1 bit for bit. */
  double w = (1.0 - mu) / (1.0 - c->momentum_pow);
  c->baseline += w * (reward - c->baseline);
}

mpnas_status mpnas__controller_update(mpnas__controller *c, const int32_t *path,
                                      double reward, float lr, float entropy_coef,
                                      double *advantage_out) {
  if (c == NULL || path == NULL)
    return mpnas__fail(c ? c->ctx : NULL, MPNAS_E_INVALID_ARGUMENT,
                       "controller update: NULL controller or path");
  if (!isfinite(reward) || !isfinite(lr) || lr < 0.0f || !isfinite(entropy_coef))
    return mpnas__fail(c->ctx, MPNAS_E_INVALID_ARGUMENT,
                       "controller update: reward %g, lr %g, entropy_coef %g (finite, lr >= 0)",
                       reward, (double)lr, (double)entropy_coef);
  for (int32_t l = 0; l < c->n_layers; l++)
    if (path[l] < 0 || path[l] >= c->n_ops[l])
      return mpnas__fail(c->ctx, MPNAS_E_INVALID_ARGUMENT,
                         "controller update: layer %d op %d outside 0..%d", (int)l,
                         (int)path[l], (int)c->n_ops[l] - 1);

  double advantage = 0.0;
  if (c->n_rewards > 0) {
    advantage = reward - c->baseline;
    (void)mpnas__controller_loss_grad(c, path, advantage, entropy_coef, c->grad);
    c->adam_t++;
    mpnas__adam_step((size_t)c->total_ops, c->logits, c->grad, c->adam_m, c->adam_v, c->adam_t,
                     lr, 0.0f, MPNAS__CONTROLLER_ADAM_BETA2, MPNAS__CONTROLLER_ADAM_EPS, 0.0f);
  }
  mpnas__controller_observe(c, reward);
  c->last_advantage = advantage;
  if (advantage_out != NULL) *advantage_out = advantage;
  return MPNAS_OK;
}

/* ---- State export / import ---------------------------------------------------------- */

size_t mpnas__controller_state_size(const mpnas__controller *c) {
  return 2u + (size_t)c->n_layers + STATE_SCALARS + 3u * (size_t)c->total_ops;
}

mpnas_status mpnas__controller_export(const mpnas__controller *c, double *out, size_t n) {
  if (c == NULL || out == NULL) return MPNAS_E_INVALID_ARGUMENT;
  size_t need = mpnas__controller_state_size(c);
  if (n < need)
    return mpnas__fail(c->ctx, MPNAS_E_INVALID_ARGUMENT,
                       "controller export: buffer of %zu doubles, need %zu", n, need);
  size_t k = 0;
  out[k++] = STATE_LAYOUT_VERSION;
  out[k++] = (double)c->n_layers;
  for (int32_t l = 0; l < c->n_layers; l++) out[k++] = (double)c->n_ops[l];
  out[k++] = (double)c->adam_t;
  out[k++] = (double)c->n_rewards;
  out[k++] = c->baseline;
  out[k++] = c->momentum_pow;
  out[k++] = c->last_advantage;
  /* logits, adam_m, adam_v are consecutive in one block (create). */
  for (int32_t i = 0; i < 3 * c->total_ops; i++) out[k++] = (double)c->logits[i];
  return MPNAS_OK;
}

/* A counter: a finite non-negative integer below 2^53. */
static int is_counter(double x) {
  return isfinite(x) && x >= 0.0 && x < 9007199254740992.0 && x == floor(x);
}

mpnas_status mpnas__controller_import(mpnas__controller *c, const double *in, size_t n) {
  if (c == NULL || in == NULL) return MPNAS_E_INVALID_ARGUMENT;
  size_t need = mpnas__controller_state_size(c);
  if (n < 2 || in[0] != STATE_LAYOUT_VERSION || in[1] != (double)c->n_layers || n != need)
    return mpnas__fail(c->ctx, MPNAS_E_INCOMPATIBLE,
                       "controller import: state of %zu doubles does not match a %d-layer "
                       "controller (%zu)", n, (int)c->n_layers, need);
  for (int32_t l = 0; l < c->n_layers; l++)
    if (in[2 + l] != (double)c->n_ops[l])
      return mpnas__fail(c->ctx, MPNAS_E_INCOMPATIBLE,
                         "controller import: layer %d has %g ops, expected %d", (int)l,
                         in[2 + l], (int)c->n_ops[l]);
  const double *s = in + 2 + c->n_layers;
  const double *arrays = s + STATE_SCALARS;
  /* The baseline is a weighted mean of rewards, which are at most MPNAS__REWARD_MAX in
   * magnitude, and an advantage their difference: a larger one would overflow the
   * float gradient (and Adam's square of it) into NaN logits at the next update. */
  int ok = is_counter(s[0]) && is_counter(s[1]) && fabs(s[2]) <= MPNAS__REWARD_MAX &&
           isfinite(s[3]) && s[3] >= 0.0 && s[3] <= 1.0 && fabs(s[4]) <= 2.0 * MPNAS__REWARD_MAX;
  for (int32_t i = 0; ok && i < 3 * c->total_ops; i++) {
    double x = arrays[i];
    /* Each must be a float exactly (export wrote floats); v >= 0. */
    ok = isfinite(x) && (double)(float)x == x && (i < 2 * c->total_ops || x >= 0.0);
  }
  if (!ok) return mpnas__fail(c->ctx, MPNAS_E_CORRUPT, "controller import: malformed state");
  c->adam_t = (int64_t)s[0];
  c->n_rewards = (int64_t)s[1];
  c->baseline = s[2];
  c->momentum_pow = s[3];
  c->last_advantage = s[4];
  for (int32_t i = 0; i < 3 * c->total_ops; i++) c->logits[i] = (float)arrays[i];
  return MPNAS_OK;
}

/* ---- RL schedule -------------------------------------------------------------------- */

float mpnas__rl_lr(int64_t step, int64_t total_steps, float base_lr, double delay_fraction,
                   double ramp) {
  if (total_steps <= 0 || !isfinite(base_lr) || !isfinite(delay_fraction) ||
      !(delay_fraction >= 0.0 && delay_fraction < 1.0) || !isfinite(ramp) || !(ramp > 0.0))
    return 0.0f;
  double total = (double)total_steps;
  double delay = delay_fraction * total;
  double s = (double)step;
  if (s < delay) return 0.0f;
  double f = (s - delay) / (total - delay);
  if (f > 1.0) f = 1.0;
  return (float)((double)base_lr * pow(ramp, f));
}
