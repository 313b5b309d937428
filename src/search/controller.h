/* controller.h - one domain's REINFORCE controller (docs/ALGORITHM.md section 3.5).
 *
 * The policy is one independent categorical distribution per searchable layer: layer l
 * has n_ops[l] >= 1 candidate ops and its own logits, zero at creation (uniform). A path
 * is one op index per layer (int32_t path[n_layers]).
 *
 * Training, per search step (TuNAS mechanics):
 *   advantage = R - b            b = zero-debiased EMA of the PREVIOUS rewards
 *   loss      = -advantage * log pi(path) - entropy_coef * H(pi)
 *   one Adam step on the logits (beta1 = 0, beta2 = 0.999, eps = 1e-8, no weight decay)
 *   then b absorbs R.
 *
 * Baseline. b_t = ema_t / (1 - mu^t) with ema_t = mu*ema_{t-1} + (1-mu)*R_t, ema_0 = 0,
 * mu = 0.95 ("zero-debiased": b is an honest weighted mean of the rewards seen, even
 * after one reward). It is kept in the equivalent running form
 * b_t = b_{t-1} + w_t (R_t - b_{t-1}), w_t = (1-mu)/(1-mu^t), so b_1 = R_1 exactly.
 * The advantage uses the baseline BEFORE the current reward: a baseline that contains
 * the reward it is compared with shrinks the advantage by the factor (1 - w_t) and
 * correlates with the sampled action, which biases the gradient. Consequence: the very
 * first update has no baseline; it only seeds b with R and takes no Adam step.
 *
 * Entropy H(pi) = sum over layers of -sum_j p_j ln p_j (nats; a 1-op layer adds 0).
 *
 * Determinism. Sampling draws exactly one mpnas__rng_uniform per layer (warmup sampling
 * with p > 0 draws three), whatever the logits, so the caller's rng advances by a fixed
 * amount per path. Export/import captures every number the next update reads, so a
 * controller restored from an export continues bit for bit like the original.
 *
 * Nothing here allocates after create; update/sample/etc. use only the controller's own
 * buffers. One controller is used by one thread at a time. */
#ifndef MPNAS_SEARCH_CONTROLLER_H
#define MPNAS_SEARCH_CONTROLLER_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"
#include "mpnas.h"

#define MPNAS__CONTROLLER_BASELINE_MOMENTUM 0.95
#define MPNAS__CONTROLLER_ADAM_BETA2 0.999f
#define MPNAS__CONTROLLER_ADAM_EPS 1e-8f
/* Limits checked by create (keep every flat index in int32_t). */
#define MPNAS__CONTROLLER_MAX_LAYERS 4096
#define MPNAS__CONTROLLER_MAX_OPS 4096

/* Fields are read-only outside controller.c (tests may poke logits for finite
 * differences). Flat arrays hold layer l's ops at [offset[l], offset[l] + n_ops[l]). */
typedef struct mpnas__controller {
  mpnas_context *ctx;
  int32_t n_layers;
  int32_t total_ops;  /* sum of n_ops */
  int32_t *n_ops;     /* [n_layers] */
  int32_t *offset;    /* [n_layers + 1] */
  float *logits;      /* [total_ops] */
  float *adam_m;      /* [total_ops] first moment; with beta1 = 0 it is just the last g */
  float *adam_v;      /* [total_ops] second moment */
  float *grad;        /* [total_ops] scratch for update */
  int64_t adam_t;     /* Adam steps taken (the bias correction's t) */
  int64_t n_rewards;  /* rewards absorbed into the baseline */
  double baseline;    /* debiased baseline b (0 before the first reward) */
  double momentum_pow; /* mu^n_rewards, kept by multiplication: no pow() drift */
  double last_advantage; /* of the last update (0 on the seeding one) */
} mpnas__controller;

/* Create a controller with n_layers >= 1 layers of n_ops[l] >= 1 ops (both at most the
 * MAX limits above). Memory comes from ctx's allocator; errors are recorded on ctx. */
mpnas_status mpnas__controller_create(mpnas_context *ctx, int32_t n_layers,
                                      const int32_t *n_ops, mpnas__controller **out);
/* Free a controller (NULL: no-op). */
void mpnas__controller_destroy(mpnas__controller *c);
/* Copy src's learned state (logits, Adam moments and step, baseline) into dst, a
 * controller of the same layers and ops: a search step saves and, when it fails,
 * restores its controllers so (search/search.c). */
void mpnas__controller_copy_state(mpnas__controller *dst, const mpnas__controller *src);

/* Draw a path from pi with the caller's rng (one uniform per layer). */
void mpnas__controller_sample(const mpnas__controller *c, mpnas__rng *rng, int32_t *path);

/* Warmup sampling (docs/ALGORITHM.md section 3.2): draw from pi, then with probability p replace
 * each layer's op by one drawn uniformly from that layer's allowed ops. `allowed` is a
 * flat [total_ops] mask (non-zero = may be forced in warmup, i.e. the non-zero ops);
 * NULL allows every op. A layer with no allowed op keeps the policy's draw. p <= 0 is
 * exactly mpnas__controller_sample (same draws); otherwise three uniforms per layer. */
void mpnas__controller_sample_warmup(const mpnas__controller *c, mpnas__rng *rng, float p,
                                     const uint8_t *allowed, int32_t *path);

/* log pi(path) = sum over layers of log softmax(logits_l)[path[l]] (path assumed valid). */
double mpnas__controller_log_prob(const mpnas__controller *c, const int32_t *path);
/* softmax of every layer's logits into out[total_ops]. */
void mpnas__controller_probs(const mpnas__controller *c, float *out);
/* The most likely op per layer (ties: the lowest index) into path[n_layers]. */
void mpnas__controller_argmax(const mpnas__controller *c, int32_t *path);
/* The largest probability of each layer into out[n_layers]; 1.0 for 1-op layers. */
void mpnas__controller_max_probs(const mpnas__controller *c, float *out);
/* Convergence: the smallest of the per-layer max probabilities (1 = fully decided). */
double mpnas__controller_convergence(const mpnas__controller *c);
/* H(pi) in nats, summed over layers. */
double mpnas__controller_entropy(const mpnas__controller *c);
/* The current debiased baseline (0 before any reward). */
double mpnas__controller_baseline(const mpnas__controller *c);

/* The REINFORCE loss -advantage * log pi(path) - entropy_coef * H(pi) at the current
 * logits, and (if grad != NULL) its analytic gradient w.r.t. the logits into
 * grad[total_ops]:
 *   g_j = -advantage * ([j == path[l]] - p_j) + entropy_coef * p_j * (ln p_j + H_l). */
double mpnas__controller_loss_grad(const mpnas__controller *c, const int32_t *path,
                                   double advantage, double entropy_coef, float *grad);

/* Feed a reward to the baseline only (no logits change): for the steps before RL
 * starts, so the baseline is warm when it does. Non-finite rewards are ignored. */
void mpnas__controller_observe(mpnas__controller *c, double reward);

/* One REINFORCE step for `path` (as sampled) and its reward; see the top of this file.
 * lr >= 0 (lr = 0 still advances Adam's second moment and t, as a TF optimiser at rate 0
 * would; to keep the slots untouched call mpnas__controller_observe instead).
 * *advantage_out (may be NULL) receives R - b. Fails with MPNAS_E_INVALID_ARGUMENT on
 * an out-of-range path entry or a non-finite reward / lr / coefficient, changing nothing. */
mpnas_status mpnas__controller_update(mpnas__controller *c, const int32_t *path,
                                      double reward, float lr, float entropy_coef,
                                      double *advantage_out);

/* The full state as a flat array of doubles (every value in it is exact in a double:
 * floats, counters < 2^53, the baseline). Layout, version 1:
 *   [0] 1 (layout version)  [1] n_layers  [2 .. 2+L) n_ops
 *   then adam_t, n_rewards, baseline, momentum_pow, last_advantage
 *   then logits[T], adam_m[T], adam_v[T]           (T = total_ops)
 * mpnas__controller_state_size gives its length (2 + L + 5 + 3T). */
size_t mpnas__controller_state_size(const mpnas__controller *c);
/* Write the state to out[n]; n must be at least state_size (MPNAS_E_INVALID_ARGUMENT). */
mpnas_status mpnas__controller_export(const mpnas__controller *c, double *out, size_t n);
/* Restore a state written by export. The layout version and shape must match this
 * controller's (MPNAS_E_INCOMPATIBLE otherwise); a malformed value (non-finite, negative
 * counter or second moment, non-integer counter) gives MPNAS_E_CORRUPT. On failure the
 * controller is left unchanged. */
mpnas_status mpnas__controller_import(mpnas__controller *c, const double *in, size_t n);

/* RL learning rate at `step` of `total_steps` (TuNAS): 0 while step < delay_fraction *
 * total_steps, then base_lr * ramp^f with f = (step - delay) / (total - delay) rising
 * linearly from 0 to 1 at step == total_steps (so x`ramp` in log space; the midpoint
 * gives the geometric mean base_lr * sqrt(ramp)); steps past the end keep
 * base_lr * ramp. Defaults: delay_fraction 0.25, ramp 10. Returns 0 for meaningless
 * input (total_steps <= 0, delay_fraction outside [0, 1), ramp <= 0, non-finite). */
#define MPNAS__RL_DELAY_FRACTION 0.25
#define MPNAS__RL_RAMP 10.0
float mpnas__rl_lr(int64_t step, int64_t total_steps, float base_lr, double delay_fraction,
                   double ramp);

#endif
