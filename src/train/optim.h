/* optim.h - optimisers, learning-rate schedules and initialisation.
 *
 * Each optimiser updates one parameter tensor of `count` floats in place from its
 * gradient g, keeping its state in caller-owned slot buffers (zero-initialised by the
 * caller, saved with checkpoints). Weight decay is L2 added to the gradient
 * (g + wd * w), applied per tensor so callers can exempt BN and classifiers. */
#ifndef MPNAS_OPTIM_H
#define MPNAS_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"

/* SGD with momentum mu: v = mu*v + g; w -= lr * (nesterov ? g + mu*v : v).
 * slot: v [count]. */
void mpnas__sgd_step(size_t count, float *w, const float *g, float *v, float lr, float mu,
                     int nesterov, float wd);

/* RMSProp in the TuNAS / TensorFlow form (decay rho = 0.9, momentum mu = 0.9, eps = 1.0):
 * ms = rho*ms + (1-rho)*g^2; mom = mu*mom + lr*g / sqrt(ms + eps); w -= mom.
 * slots: ms [count] (TF initialises it to 1.0: the caller fills it), mom [count]. */
void mpnas__rmsprop_step(size_t count, float *w, const float *g, float *ms, float *mom,
                         float lr, float rho, float mu, float eps, float wd);

/* Adam with bias correction; t = 1 for the first step. slots: m, v [count]. */
void mpnas__adam_step(size_t count, float *w, const float *g, float *m, float *v, int64_t t,
                      float lr, float beta1, float beta2, float eps, float wd);

/* The same steps out of place: read w and the slots, write w_out and the slots' _out
 * arrays (which may be the inputs themselves; results are identical either way). */
void mpnas__sgd_step_to(size_t count, const float *w, const float *g, const float *v,
                        float *w_out, float *v_out, float lr, float mu, int nesterov,
                        float wd);
void mpnas__rmsprop_step_to(size_t count, const float *w, const float *g, const float *ms,
                            const float *mom, float *w_out, float *ms_out, float *mom_out,
                            float lr, float rho, float mu, float eps, float wd);
void mpnas__adam_step_to(size_t count, const float *w, const float *g, const float *m,
                         const float *v, float *w_out, float *m_out, float *v_out, int64_t t,
                         float lr, float beta1, float beta2, float eps, float wd);

/* Cosine decay with linear warmup: lr rises linearly from base/warmup... to base over
 * `warmup` steps (step 0 gets base_lr * 1/warmup), then follows
 * base_lr * 0.5 * (1 + cos(pi * (step - warmup) / (total - warmup))) down to 0 at
 * step == total. Steps past total return 0. */
float mpnas__lr_cosine(float base_lr, int64_t step, int64_t total, int64_t warmup);

/* He (Kaiming) normal initialisation: w ~ N(0, 2 / fan_in). */
void mpnas__init_he(mpnas__rng *rng, size_t count, int fan_in, float *w);

#endif
