/* abdp.h - Adaptive Balanced Domain Prioritization (docs/ALGORITHM.md section 5).
 *
 * Two independent parts, used by the multi-domain trainer (net/multidomain.h) that the
 * search's weight step and the multi-path model's training share:
 *
 * 1. Sampling: how many images of each domain go into a step's batch of B images.
 *    BALANCED      B / D per domain whatever the dataset sizes. When D does not divide
 *                  B, the r = B mod D extra images ROTATE: step t gives one extra image
 *                  to domains o, o+1, ..., o+r-1 (mod D), then o += r. Every domain's
 *                  running total stays within 1 of every other's, and after any multiple
 *                  of D steps the totals are exactly equal. No random numbers are drawn.
 *    PROPORTIONAL  by dataset size, like naive training on the concatenated data:
 *                  E[count_d] = B * n_d / N exactly (N = sum of n_d). Systematic
 *                  sampling with one random offset per step, in integer arithmetic:
 *                  with S_d = n_0 + ... + n_d and U uniform in [0, N),
 *                    count_d = floor((B*S_d + U) / N) - floor((B*S_{d-1} + U) / N),
 *                  so every count is the floor or the ceiling of its expectation, the
 *                  counts sum to B exactly, and (Hermite's identity) the mean over U is
 *                  exactly B * n_d / N. A domain with B * n_d < N gets 0 images on
 *                  most steps (and 1 on the others): tiny domains may see no image in a
 *                  step. Draws one uniform 64-bit number below N per step (two
 *                  mpnas__rng_u32; rejection adds more with probability < 2^-24).
 *
 * 2. Adaptive loss weights w_d, recomputed by mpnas__abdp_update (call it once per step),
 *    plain numbers the caller multiplies the domain losses by (no gradient flows through
 *    them). From one signal:
 *    NONE   w_d = 1 exactly.
 *    LOSS   w = D * softmax(l / tau), l_d = EMA of domain d's training loss / ln(C_d)
 *           (C_d classes: chance level of an untrained classifier is l_d = 1).
 *    KPI    from the EMA k_d of domain d's validation accuracy, clamped to
 *           [eps, 1 - eps] (eps = MPNAS__ABDP_KPI_EPS), focal-style as in dynamic task
 *           prioritisation: w_d proportional to (1 - k_d)^gamma * (-ln k_d), scaled to
 *           mean 1 (computed in log space, so any gamma is safe).
 *    BOOST  w = D * softmax(L / temperature) on the raw training-loss EMA L_d: the stable
 *           form of the third-party loss sum_d exp(L_d / w). Unlike LOSS it is not
 *           normalised by chance level, so domains with many classes weigh more.
 *    Softmaxes subtract the largest logit first: no overflow whatever the losses.
 *    Clipping: the weights are then brought into [w_min, w_max] with mean 1. The result
 *    is the fixed point that "clip, renormalise to mean 1, repeat" aims at, computed
 *    exactly instead of iterated (plain iteration converges slowly when most weights
 *    sit at a bound, and its limit depends on the path it took):
 *      w_d = clamp(c * v_d, w_min, w_max)  with the one scale c > 0 that gives mean 1,
 *    where v_d are the unclipped weights. It preserves order (a larger signal never gets
 *    a smaller weight) and leaves weights already inside the bounds untouched. Relative
 *    unclipped weights below exp(-MPNAS__ABDP_LOGIT_RANGE) of the largest are raised to
 *    that (far below any sensible w_min). The config requires w_min <= 1 <= w_max, the
 *    only bounds a mean of 1 can satisfy (w_min = w_max = 1 gives all ones).
 *    Until every domain has at least one observation of the signal's input, all weights
 *    are 1: prioritising the domains that happened to report first would be arbitrary.
 *
 *    "off", the paper's ablation baseline (plain joint training), is the combination
 *    PROPORTIONAL + NONE: mpnas__abdp_config_off.
 *
 * Observations. observe_loss / observe_kpi keep an exponential moving average per
 * domain: the first value is taken as is, then ema = m * ema + (1 - m) * x. Invalid
 * input (NaN, infinity, a negative loss, an accuracy outside [0, 1]) is rejected with
 * MPNAS_E_INVALID_ARGUMENT and leaves the state unchanged: a diverged domain must not
 * silently poison the others' weights. Losses above MPNAS__ABDP_MAX_LOSS are accepted
 * but counted as that value (a huge loss gets the largest weight, not an overflow).
 *
 * Defaults (chosen by the MDD-6 measurements of docs/RESULTS.md and docs/ABDP.md:
 * balanced sampling +17 points over proportional; no weighting signal beat NONE):
 *   sampling BALANCED, signal NONE: balanced sampling is the part of ABDP that the
 *     dataset-size imbalance calls for; no adaptive signal has helped yet (our prototype:
 *     LOSS -0.6 points, normalised BOOST -11 points on textures). It also reproduces the
 *     search loop's behaviour before ABDP (equal sub-batches, unit weights).
 *   tau 1 (LOSS), gamma 2 (KPI, the focal-loss value), temperature 1 (BOOST),
 *   loss_momentum 0.9, kpi_momentum 0.9, w_min 0.25, w_max 4.
 *
 * Determinism and checkpoints: the state (EMAs, observation counts, the rotation offset,
 * the current weights) exports to a flat double array; a handle restored from it
 * continues exactly like the original (the caller saves its own rng).
 *
 * Nothing allocates after create. One handle is used by one thread at a time. */
#ifndef MPNAS_TRAIN_ABDP_H
#define MPNAS_TRAIN_ABDP_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"
#include "common/serial.h"
#include "common/settings.h"
#include "mpnas.h"

enum {
  MPNAS__ABDP_SAMPLE_BALANCED = 0,
  MPNAS__ABDP_SAMPLE_PROPORTIONAL = 1
};

enum {
  MPNAS__ABDP_SIGNAL_NONE = 0,
  MPNAS__ABDP_SIGNAL_LOSS = 1,
  MPNAS__ABDP_SIGNAL_KPI = 2,
  MPNAS__ABDP_SIGNAL_BOOST = 3
};

/* Limits. B * N must fit in 63 bits for the exact proportional sampling. */
#define MPNAS__ABDP_MAX_DOMAINS 1024
#define MPNAS__ABDP_MAX_CLASSES 65535
#define MPNAS__ABDP_MAX_BATCH (1 << 22)
#define MPNAS__ABDP_MAX_TOTAL_SIZE ((int64_t)1 << 40)
#define MPNAS__ABDP_MAX_LOSS 1e100
#define MPNAS__ABDP_KPI_EPS 1e-6
#define MPNAS__ABDP_LOGIT_RANGE 600.0
/* Ranges of the config (config_check): temperatures in [MIN_TEMP, MAX_TEMP], gamma in
 * [0, MAX_GAMMA], momenta in [0, 1), w_min in [0, 1], w_max in [1, MAX_WEIGHT]. */
#define MPNAS__ABDP_MIN_TEMP 1e-6
#define MPNAS__ABDP_MAX_TEMP 1e6
#define MPNAS__ABDP_MAX_GAMMA 100.0
#define MPNAS__ABDP_MAX_WEIGHT 1e6

typedef struct mpnas__abdp_config {
  int32_t sampling;     /* MPNAS__ABDP_SAMPLE_*, default BALANCED */
  int32_t signal;       /* MPNAS__ABDP_SIGNAL_*, default NONE */
  double tau;           /* LOSS softmax temperature, default 1 */
  double gamma;         /* KPI focal exponent, default 2 */
  double temperature;   /* BOOST softmax temperature, default 1 */
  double loss_momentum; /* EMA momentum of training losses, default 0.9 (0: last value) */
  double kpi_momentum;  /* EMA momentum of validation accuracies, default 0.9 */
  double w_min, w_max;  /* weight clip, defaults 0.25 and 4 */
} mpnas__abdp_config;

typedef struct mpnas__abdp mpnas__abdp;

/* The settings' table (abdp_param.c; common/settings.h): the public MPNAS_ABDP_*
 * parameters of an mpnas__abdp_config, for the supernet's and the model's setters, the
 * checks below and the files. */
extern const mpnas__settings mpnas__abdp_settings;
int mpnas__abdp_is_param(int32_t param);

/* The defaults listed at the top of this file. */
void mpnas__abdp_config_default(mpnas__abdp_config *cfg);
/* "off": the defaults with PROPORTIONAL sampling and signal NONE. */
void mpnas__abdp_config_off(mpnas__abdp_config *cfg);
/* MPNAS_OK; MPNAS_E_UNKNOWN_PARAMETER for an unknown sampling or signal value;
 * MPNAS_E_OUT_OF_RANGE for a value outside the ranges above (NaN included);
 * MPNAS_E_INVALID_ARGUMENT for cfg == NULL. Needs no context; if `field` is not NULL it
 * receives the offending field's parameter name ("MPNAS_ABDP_TAU"; NULL on success) for
 * the caller's message. Every field is checked, whatever the signal, so a config is valid
 * or not as a whole: exactly what the setters accept. */
mpnas_status mpnas__abdp_config_check(const mpnas__abdp_config *cfg, const char **field);

/* Create for D domains (1..MAX_DOMAINS) with classes[d] in 2..MAX_CLASSES and training
 * set sizes[d] >= 1 (sum at most MAX_TOTAL_SIZE); both arrays are copied. cfg NULL means
 * the defaults. Errors (recorded on ctx): MPNAS_E_INVALID_ARGUMENT (NULL pointers),
 * MPNAS_E_OUT_OF_RANGE, MPNAS_E_UNKNOWN_PARAMETER (config), MPNAS_E_NO_MEMORY. */
mpnas_status mpnas__abdp_create(mpnas_context *ctx, int32_t num_domains, const int32_t *classes,
                                const int64_t *sizes, const mpnas__abdp_config *cfg,
                                mpnas__abdp **out);
/* Free (NULL: no-op). */
void mpnas__abdp_destroy(mpnas__abdp *a);

/* The config in use (read-only) and the number of domains. */
const mpnas__abdp_config *mpnas__abdp_config_get(const mpnas__abdp *a);
int32_t mpnas__abdp_num_domains(const mpnas__abdp *a);

/* Feed domain d's training loss (finite, >= 0) of this step into its EMA. */
mpnas_status mpnas__abdp_observe_loss(mpnas__abdp *a, int32_t d, double loss);
/* Feed domain d's validation accuracy (in [0, 1]) into its EMA. */
mpnas_status mpnas__abdp_observe_kpi(mpnas__abdp *a, int32_t d, double accuracy);
/* The current EMAs (NaN before the first observation or for a bad d). */
double mpnas__abdp_loss_ema(const mpnas__abdp *a, int32_t d);
double mpnas__abdp_kpi_ema(const mpnas__abdp *a, int32_t d);

/* Recompute the weights from the current EMAs (see the top of this file). */
void mpnas__abdp_update(mpnas__abdp *a);
/* The current weights [D]: 1 each until the first update; valid until the next update,
 * import or destroy. Always finite, within [w_min, w_max], mean 1 (to rounding). */
const double *mpnas__abdp_weights(const mpnas__abdp *a);

/* This step's images per domain into counts[D] for a batch of `batch` images
 * (0..MAX_BATCH); they sum to `batch`. `rng` is used by PROPORTIONAL only (may be NULL
 * for BALANCED). MPNAS_E_INVALID_ARGUMENT (recorded on the context) for a NULL counts,
 * a NULL rng when needed, or a batch out of range; the state is then unchanged. */
mpnas_status mpnas__abdp_sample_counts(mpnas__abdp *a, mpnas__rng *rng, int32_t batch,
                                       int32_t *counts);

/* The state as doubles (each exact in a double). Layout, version 1:
 *   [0] 1 (layout version)  [1] D  [2] rotation offset (0..D-1)
 *   then per domain d: loss_ema, loss observations, kpi_ema, kpi observations, weight
 *   (an EMA not yet observed is stored as 0).
 * Length 3 + 5 D (mpnas__abdp_state_size). */
size_t mpnas__abdp_state_size(const mpnas__abdp *a);
/* Write the state to out[n], n >= state_size (MPNAS_E_INVALID_ARGUMENT otherwise). */
mpnas_status mpnas__abdp_export(const mpnas__abdp *a, double *out, size_t n);
/* Restore a state written by export into a handle made with the same D (and, to
 * continue exactly, the same config). MPNAS_E_INVALID_ARGUMENT (NULL, n too small),
 * MPNAS_E_INCOMPATIBLE (layout version or D), MPNAS_E_CORRUPT (a value out of its
 * domain: non-finite, a negative or non-integer count, an EMA with a count of 0 that is
 * not 0, an accuracy outside [0, 1], ...). On failure the handle is unchanged. */
mpnas_status mpnas__abdp_import(mpnas__abdp *a, const double *in, size_t n);

/* Serialisation (abdp_io.c): ABDP's state in the search checkpoint and the model's files,
 * one encoding for both (the settings: mpnas__settings_put with mpnas__abdp_settings).
 * The state: u32 count, then that many f64 (mpnas__abdp_export's layout). Writing
 * fails only for want of memory (recorded on the writer's context). */
mpnas_status mpnas__abdp_state_write(mpnas__writer *w, const mpnas__abdp *a);
/* Read a state written for D domains into a new array *state of *n values (free it with
 * mpnas__free; NULL on failure). The count is bounded by the section's bytes and a
 * generous multiple of D before anything is allocated; the values are checked by
 * mpnas__abdp_import. */
mpnas_status mpnas__abdp_state_read(mpnas__reader *r, mpnas_context *ctx, int32_t D,
                                    double **state, size_t *n);

#endif
