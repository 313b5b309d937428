/* abdp.c - Adaptive Balanced Domain Prioritization: per-domain batch counts and loss
 * weights (abdp.h, docs/ALGORITHM.md section 5). */
#include "train/abdp.h"

#include <math.h>
#include <string.h>

#include "common/common.h"

#define STATE_VERSION 1
#define STATE_HEADER 3
#define STATE_PER_DOMAIN 5
/* Observation counters stop here so they stay exact in an exported double. */
#define MAX_COUNT ((int64_t)1 << 53)

struct mpnas__abdp {
  mpnas_context *ctx;
  mpnas__abdp_config cfg;
  int32_t ndomains;
  int32_t offset;      /* BALANCED: the domain that gets the next extra image */
  uint64_t total_size; /* N = sum of the sizes */
  uint64_t *cum_size;  /* [D] S_d = sizes[0] + ... + sizes[d] */
  int64_t *n_loss;     /* [D] observations so far */
  int64_t *n_kpi;      /* [D] */
  double *log_classes; /* [D] ln C_d: chance-level cross-entropy */
  double *loss_ema;    /* [D] 0 before the first observation */
  double *kpi_ema;     /* [D] */
  double *weights;     /* [D] */
  double *scratch;     /* [D] update's unclipped weights */
};

/* ---- Config -------------------------------------------------------------------------- */

void mpnas__abdp_config_off(mpnas__abdp_config *cfg) {
  mpnas__abdp_config_default(cfg);
  cfg->sampling = MPNAS__ABDP_SAMPLE_PROPORTIONAL;
  cfg->signal = MPNAS__ABDP_SIGNAL_NONE;
}

/* lo <= x <= hi, false for NaN. */
static int in_range(double x, double lo, double hi) { return x >= lo && x <= hi; }

/* ---- Create / destroy ---------------------------------------------------------------- */

void mpnas__abdp_destroy(mpnas__abdp *a) {
  if (a == NULL) return;
  mpnas_context *ctx = a->ctx;
  mpnas__free(ctx, a->cum_size);
  mpnas__free(ctx, a->n_loss);
  mpnas__free(ctx, a->n_kpi);
  mpnas__free(ctx, a->log_classes);
  mpnas__free(ctx, a->loss_ema);
  mpnas__free(ctx, a->kpi_ema);
  mpnas__free(ctx, a->weights);
  mpnas__free(ctx, a->scratch);
  mpnas__free(ctx, a);
}

mpnas_status mpnas__abdp_create(mpnas_context *ctx, int32_t num_domains, const int32_t *classes,
                                const int64_t *sizes, const mpnas__abdp_config *cfg,
                                mpnas__abdp **out) {
  if (out == NULL) return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "abdp: out is NULL");
  *out = NULL;
  if (ctx == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (classes == NULL || sizes == NULL)
    return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "abdp: classes or sizes is NULL");
  if (num_domains < 1 || num_domains > MPNAS__ABDP_MAX_DOMAINS)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "abdp: %d domains (1..%d)", (int)num_domains,
                       MPNAS__ABDP_MAX_DOMAINS);
  mpnas__abdp_config def;
  if (cfg == NULL) {
    mpnas__abdp_config_default(&def);
    cfg = &def;
  }
  const char *field;
  mpnas_status st = mpnas__abdp_config_check(cfg, &field);
  if (st != MPNAS_OK)
    return mpnas__fail(ctx, st, "abdp: config field %s is %s", field,
                       st == MPNAS_E_UNKNOWN_PARAMETER ? "not a known value" : "out of range");
  int64_t total = 0;
  for (int32_t d = 0; d < num_domains; d++) {
    if (classes[d] < 2 || classes[d] > MPNAS__ABDP_MAX_CLASSES)
      return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "abdp: domain %d has %d classes (2..%d)",
                         (int)d, (int)classes[d], MPNAS__ABDP_MAX_CLASSES);
    if (sizes[d] < 1 || sizes[d] > MPNAS__ABDP_MAX_TOTAL_SIZE - total)
      return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE,
                         "abdp: domain %d has %lld images (>= 1, at most %lld in all)", (int)d,
                         (long long)sizes[d], (long long)MPNAS__ABDP_MAX_TOTAL_SIZE);
    total += sizes[d];
  }

  mpnas__abdp *a = mpnas__calloc(ctx, 1, sizeof *a);
  if (a == NULL) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "abdp: out of memory");
  size_t n = (size_t)num_domains;
  a->ctx = ctx;
  a->cfg = *cfg;
  a->ndomains = num_domains;
  a->cum_size = mpnas__calloc(ctx, n, sizeof *a->cum_size);
  a->n_loss = mpnas__calloc(ctx, n, sizeof *a->n_loss);
  a->n_kpi = mpnas__calloc(ctx, n, sizeof *a->n_kpi);
  a->log_classes = mpnas__calloc(ctx, n, sizeof *a->log_classes);
  a->loss_ema = mpnas__calloc(ctx, n, sizeof *a->loss_ema);
  a->kpi_ema = mpnas__calloc(ctx, n, sizeof *a->kpi_ema);
  a->weights = mpnas__calloc(ctx, n, sizeof *a->weights);
  a->scratch = mpnas__calloc(ctx, n, sizeof *a->scratch);
  if (!a->cum_size || !a->n_loss || !a->n_kpi || !a->log_classes || !a->loss_ema ||
      !a->kpi_ema || !a->weights || !a->scratch) {
    mpnas__abdp_destroy(a);
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "abdp: out of memory");
  }
  uint64_t cum = 0;
  for (size_t d = 0; d < n; d++) {
    cum += (uint64_t)sizes[d];
    a->cum_size[d] = cum;
    a->log_classes[d] = log((double)classes[d]);
    a->weights[d] = 1.0;
  }
  a->total_size = cum;
  *out = a;
  return MPNAS_OK;
}

const mpnas__abdp_config *mpnas__abdp_config_get(const mpnas__abdp *a) { return &a->cfg; }
int32_t mpnas__abdp_num_domains(const mpnas__abdp *a) { return a->ndomains; }

/* ---- Observations -------------------------------------------------------------------- */

static void ema_push(double *ema, int64_t *count, double x, double momentum) {
  /* The first value is taken as is: starting from 0 would read as a tiny loss (or a
   * zero accuracy) for the first ~1/(1-m) steps and skew the weights. */
  *ema = *count == 0 ? x : momentum * *ema + (1.0 - momentum) * x;
  if (*count < MAX_COUNT) (*count)++;
}

mpnas_status mpnas__abdp_observe_loss(mpnas__abdp *a, int32_t d, double loss) {
  if (a == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (d < 0 || d >= a->ndomains)
    return mpnas__fail(a->ctx, MPNAS_E_INVALID_ARGUMENT, "abdp: domain %d of %d", (int)d,
                       (int)a->ndomains);
  if (!(loss >= 0.0) || isinf(loss))
    return mpnas__fail(a->ctx, MPNAS_E_INVALID_ARGUMENT,
                       "abdp: domain %d reported a training loss of %g", (int)d, loss);
  if (loss > MPNAS__ABDP_MAX_LOSS) loss = MPNAS__ABDP_MAX_LOSS;
  ema_push(&a->loss_ema[d], &a->n_loss[d], loss, a->cfg.loss_momentum);
  return MPNAS_OK;
}

mpnas_status mpnas__abdp_observe_kpi(mpnas__abdp *a, int32_t d, double accuracy) {
  if (a == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (d < 0 || d >= a->ndomains)
    return mpnas__fail(a->ctx, MPNAS_E_INVALID_ARGUMENT, "abdp: domain %d of %d", (int)d,
                       (int)a->ndomains);
  if (!in_range(accuracy, 0.0, 1.0))
    return mpnas__fail(a->ctx, MPNAS_E_INVALID_ARGUMENT,
                       "abdp: domain %d reported a validation accuracy of %g", (int)d, accuracy);
  ema_push(&a->kpi_ema[d], &a->n_kpi[d], accuracy, a->cfg.kpi_momentum);
  return MPNAS_OK;
}

double mpnas__abdp_loss_ema(const mpnas__abdp *a, int32_t d) {
  if (a == NULL || d < 0 || d >= a->ndomains || a->n_loss[d] == 0) return NAN;
  return a->loss_ema[d];
}

double mpnas__abdp_kpi_ema(const mpnas__abdp *a, int32_t d) {
  if (a == NULL || d < 0 || d >= a->ndomains || a->n_kpi[d] == 0) return NAN;
  return a->kpi_ema[d];
}

/* ---- Weights ------------------------------------------------------------------------- */

/* sum_i clamp(c * u_i, lo, hi): non-decreasing in c. */
static double clipped_sum(int32_t n, const double *u, double c, double lo, double hi) {
  double s = 0.0;
  for (int32_t i = 0; i < n; i++) {
    double x = c * u[i];
    s += x < lo ? lo : x > hi ? hi : x;
  }
  return s;
}

/* Turn positive relative weights v[n] (largest 1) into weights w = clamp(c * u, lo, hi)
 * with mean 1, where u = n * v / sum(v), in place. Requires 0 <= lo <= 1 <= hi. */
static void fit_weights(int32_t n, double *w, double lo, double hi) {
  if (lo >= 1.0 || hi <= 1.0) {
    /* Every weight >= 1 (or <= 1) with mean 1: all are 1. */
    for (int32_t i = 0; i < n; i++) w[i] = 1.0;
    return;
  }
  double sum = 0.0;
  for (int32_t i = 0; i < n; i++) sum += w[i];
  int inside = 1;
  for (int32_t i = 0; i < n; i++) {
    /* (n * v) / sum, not n * (v / sum): equal v give exactly 1. */
    w[i] = ((double)n * w[i]) / sum;
    if (w[i] < lo || w[i] > hi) inside = 0;
  }
  if (inside) return;

  /* F(c) = clipped_sum is piecewise linear with kinks at c = lo/u_i and hi/u_i. Bracket
   * F(c) = n between the neighbouring kinks b_low <= c <= b_high; F(0) = n*lo <= n and
   * F(hi/min u) = n*hi >= n, so both ends exist. O(n^2), and only when a bound is hit. */
  double target = (double)n, b_low = 0.0, b_high = HUGE_VAL, u_min = HUGE_VAL;
  for (int32_t i = 0; i < n; i++) {
    if (w[i] < u_min) u_min = w[i];
    for (int k = 0; k < 2; k++) {
      double b = (k ? hi : lo) / w[i];
      double f = clipped_sum(n, w, b, lo, hi);
      if (f <= target && b > b_low) b_low = b;
      if (f >= target && b < b_high) b_high = b;
    }
  }
  if (b_high == HUGE_VAL) b_high = hi / u_min; /* rounding only */
  if (b_high < b_low) b_high = b_low;
  /* Between the kinks each weight is either at a bound or free (c * u_i); solve the
   * linear equation for c with the free ones. */
  double mid = 0.5 * (b_low + b_high), fixed = 0.0, free_sum = 0.0;
  for (int32_t i = 0; i < n; i++) {
    double x = mid * w[i];
    if (x <= lo) fixed += lo;
    else if (x >= hi) fixed += hi;
    else free_sum += w[i];
  }
  double c = free_sum > 0.0 ? (target - fixed) / free_sum : b_low;
  if (!(c >= b_low)) c = b_low;
  if (c > b_high) c = b_high;
  for (int32_t i = 0; i < n; i++) {
    double x = c * w[i];
    w[i] = x < lo ? lo : x > hi ? hi : x;
  }
}

static int all_observed(const int64_t *count, int32_t n) {
  for (int32_t i = 0; i < n; i++)
    if (count[i] == 0) return 0;
  return 1;
}

void mpnas__abdp_update(mpnas__abdp *a) {
  const mpnas__abdp_config *cfg = &a->cfg;
  int32_t n = a->ndomains;
  double *z = a->scratch, *w = a->weights;
  int sig = cfg->signal;
  const int64_t *count = sig == MPNAS__ABDP_SIGNAL_KPI ? a->n_kpi : a->n_loss;
  if (sig == MPNAS__ABDP_SIGNAL_NONE || !all_observed(count, n)) {
    for (int32_t d = 0; d < n; d++) w[d] = 1.0;
    return;
  }
  /* Logits z_d; the weights are then D * softmax(z / scale) before clipping. */
  double scale = 1.0;
  for (int32_t d = 0; d < n; d++) {
    if (sig == MPNAS__ABDP_SIGNAL_LOSS) {
      z[d] = a->loss_ema[d] / a->log_classes[d];
      scale = cfg->tau;
    } else if (sig == MPNAS__ABDP_SIGNAL_BOOST) {
      z[d] = a->loss_ema[d];
      scale = cfg->temperature;
    } else {
      /* log((1 - k)^gamma * (-ln k)): log space keeps (1 - k)^gamma from underflowing. */
      double k = a->kpi_ema[d];
      if (k < MPNAS__ABDP_KPI_EPS) k = MPNAS__ABDP_KPI_EPS;
      if (k > 1.0 - MPNAS__ABDP_KPI_EPS) k = 1.0 - MPNAS__ABDP_KPI_EPS;
      z[d] = cfg->gamma * log1p(-k) + log(-log(k));
    }
  }
  double zmax = z[0];
  for (int32_t d = 1; d < n; d++)
    if (z[d] > zmax) zmax = z[d];
  for (int32_t d = 0; d < n; d++) {
    /* z - zmax <= 0 is finite (losses are capped), so the exponent never overflows;
     * the floor keeps every relative weight a positive normal double. */
    double y = (z[d] - zmax) / scale;
    if (y < -MPNAS__ABDP_LOGIT_RANGE) y = -MPNAS__ABDP_LOGIT_RANGE;
    w[d] = exp(y);
  }
  fit_weights(n, w, cfg->w_min, cfg->w_max);
}

const double *mpnas__abdp_weights(const mpnas__abdp *a) { return a->weights; }

/* ---- Sampling ------------------------------------------------------------------------ */

/* Uniform in [0, n), n >= 1, without modulo bias. */
static uint64_t rng_below64(mpnas__rng *rng, uint64_t n) {
  uint64_t threshold = (0 - n) % n; /* 2^64 mod n: the values to reject */
  for (;;) {
    uint64_t hi = mpnas__rng_u32(rng); /* two statements: a fixed draw order */
    uint64_t lo = mpnas__rng_u32(rng);
    uint64_t r = (hi << 32) | lo;
    if (r >= threshold) return r % n;
  }
}

mpnas_status mpnas__abdp_sample_counts(mpnas__abdp *a, mpnas__rng *rng, int32_t batch,
                                       int32_t *counts) {
  if (a == NULL) return MPNAS_E_INVALID_ARGUMENT;
  int proportional = a->cfg.sampling == MPNAS__ABDP_SAMPLE_PROPORTIONAL;
  if (counts == NULL || (proportional && rng == NULL))
    return mpnas__fail(a->ctx, MPNAS_E_INVALID_ARGUMENT, "abdp: counts or rng is NULL");
  if (batch < 0 || batch > MPNAS__ABDP_MAX_BATCH)
    return mpnas__fail(a->ctx, MPNAS_E_INVALID_ARGUMENT, "abdp: batch %d (0..%d)", (int)batch,
                       MPNAS__ABDP_MAX_BATCH);
  int32_t n = a->ndomains;
  if (proportional) {
    /* B * S_d + U < 2^22 * 2^40 + 2^40: no overflow. */
    uint64_t total = a->total_size, b = (uint64_t)batch;
    uint64_t u = rng_below64(rng, total), prev = 0;
    for (int32_t d = 0; d < n; d++) {
      uint64_t cur = (b * a->cum_size[d] + u) / total;
      counts[d] = (int32_t)(cur - prev);
      prev = cur;
    }
  } else {
    int32_t q = batch / n, r = batch % n;
    for (int32_t d = 0; d < n; d++) counts[d] = q;
    for (int32_t j = 0; j < r; j++) counts[(a->offset + j) % n]++;
    a->offset = (a->offset + r) % n;
  }
  return MPNAS_OK;
}

/* ---- State --------------------------------------------------------------------------- */

size_t mpnas__abdp_state_size(const mpnas__abdp *a) {
  return STATE_HEADER + STATE_PER_DOMAIN * (size_t)a->ndomains;
}

mpnas_status mpnas__abdp_export(const mpnas__abdp *a, double *out, size_t n) {
  if (a == NULL || out == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (n < mpnas__abdp_state_size(a))
    return mpnas__fail(a->ctx, MPNAS_E_INVALID_ARGUMENT, "abdp export: %zu doubles, need %zu",
                       n, mpnas__abdp_state_size(a));
  out[0] = STATE_VERSION;
  out[1] = (double)a->ndomains;
  out[2] = (double)a->offset;
  for (int32_t d = 0; d < a->ndomains; d++) {
    double *o = out + STATE_HEADER + (size_t)STATE_PER_DOMAIN * (size_t)d;
    o[0] = a->loss_ema[d];
    o[1] = (double)a->n_loss[d];
    o[2] = a->kpi_ema[d];
    o[3] = (double)a->n_kpi[d];
    o[4] = a->weights[d];
  }
  return MPNAS_OK;
}

/* A whole number in [0, hi]. */
static int is_count(double x, double hi) { return in_range(x, 0.0, hi) && x == floor(x); }

mpnas_status mpnas__abdp_import(mpnas__abdp *a, const double *in, size_t n) {
  if (a == NULL || in == NULL) return MPNAS_E_INVALID_ARGUMENT;
  int32_t nd = a->ndomains;
  if (n < STATE_HEADER)
    return mpnas__fail(a->ctx, MPNAS_E_INVALID_ARGUMENT, "abdp import: %zu doubles", n);
  if (in[0] != STATE_VERSION || in[1] != (double)nd)
    return mpnas__fail(a->ctx, MPNAS_E_INCOMPATIBLE,
                       "abdp import: layout %g for %g domains, expected %d for %d", in[0],
                       in[1], STATE_VERSION, (int)nd);
  if (n < mpnas__abdp_state_size(a))
    return mpnas__fail(a->ctx, MPNAS_E_INVALID_ARGUMENT, "abdp import: %zu doubles, need %zu",
                       n, mpnas__abdp_state_size(a));
  /* Validate everything before touching the handle. */
  int ok = is_count(in[2], (double)(nd - 1));
  for (int32_t d = 0; d < nd && ok; d++) {
    const double *s = in + STATE_HEADER + (size_t)STATE_PER_DOMAIN * (size_t)d;
    ok = in_range(s[0], 0.0, MPNAS__ABDP_MAX_LOSS) && is_count(s[1], (double)MAX_COUNT) &&
         (s[1] > 0.0 || s[0] == 0.0) && in_range(s[2], 0.0, 1.0) &&
         is_count(s[3], (double)MAX_COUNT) && (s[3] > 0.0 || s[2] == 0.0) && isfinite(s[4]);
  }
  if (!ok) return mpnas__fail(a->ctx, MPNAS_E_CORRUPT, "abdp import: malformed state");
  for (int32_t d = 0; d < nd; d++) {
    double wd = in[STATE_HEADER + (size_t)STATE_PER_DOMAIN * (size_t)d + 4];
    if (!in_range(wd, a->cfg.w_min, a->cfg.w_max))
      return mpnas__fail(a->ctx, MPNAS_E_INCOMPATIBLE,
                         "abdp import: weight %g outside this config's [%g, %g]", wd,
                         a->cfg.w_min, a->cfg.w_max);
  }
  a->offset = (int32_t)in[2];
  for (int32_t d = 0; d < nd; d++) {
    const double *s = in + STATE_HEADER + (size_t)STATE_PER_DOMAIN * (size_t)d;
    a->loss_ema[d] = s[0];
    a->n_loss[d] = (int64_t)s[1];
    a->kpi_ema[d] = s[2];
    a->n_kpi[d] = (int64_t)s[3];
    a->weights[d] = s[4];
  }
  return MPNAS_OK;
}
