/* optim.c - optimisers, the learning-rate schedule and He initialisation (optim.h). */
#include "train/optim.h"

#include <math.h>

/* The steps read the old weights and slots and write the new ones to separate arrays
 * (the same arrays for an in-place step): the trainer keeps the old ones so that a step
 * failing after the update can be undone (net/multidomain.h). Each element is read
 * before it is written, so in == out gives the in-place results bit for bit. */
void mpnas__sgd_step_to(size_t count, const float *w, const float *g, const float *v,
                        float *w_out, float *v_out, float lr, float mu, int nesterov,
                        float wd) {
  /* Two loops so neither carries a branch per element. */
  if (nesterov) {
    for (size_t i = 0; i < count; i++) {
      float gi = g[i] + wd * w[i];
      float vi = mu * v[i] + gi;
      v_out[i] = vi;
      w_out[i] = w[i] - lr * (gi + mu * vi);
    }
  } else {
    for (size_t i = 0; i < count; i++) {
      float vi = mu * v[i] + (g[i] + wd * w[i]);
      v_out[i] = vi;
      w_out[i] = w[i] - lr * vi;
    }
  }
}

void mpnas__sgd_step(size_t count, float *w, const float *g, float *v, float lr, float mu,
                     int nesterov, float wd) {
  mpnas__sgd_step_to(count, w, g, v, w, v, lr, mu, nesterov, wd);
}

void mpnas__rmsprop_step_to(size_t count, const float *w, const float *g, const float *ms,
                            const float *mom, float *w_out, float *ms_out, float *mom_out,
                            float lr, float rho, float mu, float eps, float wd) {
  for (size_t i = 0; i < count; i++) {
    float gi = g[i] + wd * w[i];
    float s = rho * ms[i] + (1.0f - rho) * gi * gi;
    ms_out[i] = s;
    float mi = mu * mom[i] + lr * gi / sqrtf(s + eps);
    mom_out[i] = mi;
    w_out[i] = w[i] - mi;
  }
}

void mpnas__rmsprop_step(size_t count, float *w, const float *g, float *ms, float *mom,
                         float lr, float rho, float mu, float eps, float wd) {
  mpnas__rmsprop_step_to(count, w, g, ms, mom, w, ms, mom, lr, rho, mu, eps, wd);
}

void mpnas__adam_step_to(size_t count, const float *w, const float *g, const float *m,
                         const float *v, float *w_out, float *m_out, float *v_out, int64_t t,
                         float lr, float beta1, float beta2, float eps, float wd) {
  if (t < 1) t = 1; /* t = 0 would divide by a zero bias correction */
  /* w -= lr * mhat / (sqrt(vhat) + eps) with mhat = m / (1 - beta1^t) and
   * vhat = v / (1 - beta2^t); the corrections are per step, computed once in double. */
  double bc1 = 1.0 - pow((double)beta1, (double)t);
  double bc2 = 1.0 - pow((double)beta2, (double)t);
  float step = (float)(lr / bc1);
  float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
  for (size_t i = 0; i < count; i++) {
    float gi = g[i] + wd * w[i];
    float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m_out[i] = mi;
    v_out[i] = vi;
    w_out[i] = w[i] - step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
  }
}

void mpnas__adam_step(size_t count, float *w, const float *g, float *m, float *v, int64_t t,
                      float lr, float beta1, float beta2, float eps, float wd) {
  mpnas__adam_step_to(count, w, g, m, v, w, m, v, t, lr, beta1, beta2, eps, wd);
}

float mpnas__lr_cosine(float base_lr, int64_t step, int64_t total, int64_t warmup) {
  if (step < 0) step = 0;
  if (step >= total) return 0.0f;
  if (step < warmup) return (float)((double)base_lr * (double)(step + 1) / (double)warmup);
  if (warmup < 0) warmup = 0;
  double progress = (double)(step - warmup) / (double)(total - warmup);
  return (float)((double)base_lr * 0.5 * (1.0 + cos(3.14159265358979323846 * progress)));
}

void mpnas__init_he(mpnas__rng *rng, size_t count, int fan_in, float *w) {
  double sd = sqrt(2.0 / (double)(fan_in > 0 ? fan_in : 1));
  for (size_t i = 0; i < count; i++) w[i] = (float)(sd * (double)mpnas__rng_normal(rng));
}
