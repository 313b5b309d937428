/* params.h - a network's trainable parameters as one flat store.
 *
 * Every tensor (conv weights, BN gamma/beta, classifier weights and bias) is a slice
 * of one float array, with its gradient and optimiser slots at the same offset in
 * parallel arrays. One store makes initialisation, zeroing gradients, the optimiser
 * step, weight decay exemptions and saving (one array each) single loops, and keeps
 * pointers stable once allocated. Running BN statistics are not trainable: they live in
 * a second plain array ("buffers") with no gradient, allocated right after g (g[total
 * rounded up to 1] then b[btotal]), so one call sums both over data-parallel workers. */
#ifndef MPNAS_PARAMS_H
#define MPNAS_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "common/rng.h"

/* What a tensor is decides its initialisation and whether weight decay applies. */
enum {
  MPNAS__PARAM_CONV = 0,     /* He-normal init from fan_in, decayed */
  MPNAS__PARAM_FC = 1,       /* classifier weights: He-normal, not decayed (TuNAS) */
  MPNAS__PARAM_GAMMA = 2,    /* BN scale: 1, not decayed */
  MPNAS__PARAM_BETA = 3,     /* BN shift / biases: 0, not decayed */
  MPNAS__PARAM_ONE = 4       /* 1, no gradient use (running variance buffers) */
};

typedef struct mpnas__param_info {
  size_t offset, count;
  int32_t kind;
  int32_t fan_in;
} mpnas__param_info;

/* Optimisers (values shared with the public API's enum). */
enum { MPNAS__OPT_SGD = 0, MPNAS__OPT_RMSPROP = 1, MPNAS__OPT_ADAM = 2 };

typedef struct mpnas__optim_config {
  int32_t kind;
  float momentum;     /* SGD momentum / RMSProp momentum; Adam beta1 */
  int32_t nesterov;   /* SGD only */
  float rho;          /* RMSProp decay; Adam beta2 */
  float eps;          /* RMSProp / Adam epsilon */
  float weight_decay; /* applied to CONV tensors only */
} mpnas__optim_config;

typedef struct mpnas__params {
  const mpnas_context *ctx;
  mpnas__param_info *info;
  int count, cap;
  size_t total;          /* floats */
  float *w, *g, *s1, *s2; /* values, gradients, optimiser slots (allocated together) */
  /* The optimiser writes the new w, s1, s2 here and swaps them in: after a step these
   * hold the values before it, so a failing training step can be undone
   * (mpnas__params_unstep) without copying the weights. */
  float *w_old, *s1_old, *s2_old;
  int64_t steps;         /* optimiser steps taken (Adam's t) */
  /* Non-trainable buffers (BN running statistics). */
  mpnas__param_info *binfo;
  int bcount, bcap;
  size_t btotal;
  float *b;
  /* Gradient buffers for passes that run at once (mpnas__params_grad_parts), each laid
   * out like g and zero whenever no pass is using it. */
  float *parts;
  int nparts;
} mpnas__params;

void mpnas__params_init(mpnas__params *p, const mpnas_context *ctx);
/* Declare a tensor (before allocation); returns its offset or (size_t)-1 on OOM. */
size_t mpnas__params_add(mpnas__params *p, size_t count, int32_t kind, int32_t fan_in);
/* Declare a buffer tensor (running mean: kind BETA = zeros, running var: kind ONE). */
size_t mpnas__params_add_buffer(mpnas__params *p, size_t count, int32_t kind);
/* Allocate every array (zeroed) once all tensors are declared. */
mpnas_status mpnas__params_alloc(mpnas__params *p);
/* Initialise values by kind (He-normal draws from rng, in declaration order). */
void mpnas__params_init_values(mpnas__params *p, mpnas__rng *rng);
void mpnas__params_zero_grad(mpnas__params *p);
/* n zeroed gradient buffers of `total` floats, one after another (allocated on first
 * use, then kept: whoever uses one leaves it zero). NULL if memory ran out. */
float *mpnas__params_grad_parts(mpnas__params *p, int n);
/* One optimiser step over every tensor with learning rate lr (out of place: the values
 * before it stay in w_old, s1_old, s2_old until the next step). */
void mpnas__params_step(mpnas__params *p, const mpnas__optim_config *cfg, float lr);
/* Undo the last mpnas__params_step (once, and only if nothing wrote w, s1 or s2 since). */
void mpnas__params_unstep(mpnas__params *p);
void mpnas__params_destroy(mpnas__params *p);

static inline float *mpnas__pw(mpnas__params *p, size_t offset) { return p->w + offset; }
static inline float *mpnas__pg(mpnas__params *p, size_t offset) { return p->g + offset; }
static inline float *mpnas__pb(mpnas__params *p, size_t offset) { return p->b + offset; }

#endif
