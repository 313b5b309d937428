/* multidomain.h - the multi-domain training skeleton, one for the search's weight step
 * (search/search.c) and the multi-path model's trainer (model/model_train.c): the
 * domains with their data and input normalisation, ABDP's batch counts and loss
 * weights, each domain's forward and backward pass on its path with its loss scale, and
 * the optimiser step.
 *
 * It lives in net/, not train/, because it runs the network's training pass
 * (net/network.h) and steps the parameter store (net/params.h), which sit above train/
 * in the layer stack. It knows neither the search nor the model: each binds its own
 * weights to a domain's path through a callback (the supernet slices its shared
 * weights, the model binds its nodes and their per-domain BN statistics).
 *
 * One step (mpnas__trainer_step):
 *   1. ABDP splits batch x D images among the domains (count_d) and gives each its loss
 *      weight w_d (both kept in the domain's statistics).
 *   2. The gradients are zeroed; each domain with images draws count_d training images
 *      (augmented as set) and runs forward and backward on its path (with several
 *      threads, whole domains at once, one per thread; each domain's gradients are added
 *      in domain order, so the sum does not depend on the thread count), its mean loss
 *      scaled by w_d * count_d / batch: the step minimises the weighted SUM of the
 *      domains' losses (each head and path gets its full gradient), which is w_d with
 *      BALANCED sampling, and with PROPORTIONAL sampling counts every image of the step
 *      the same, like training on the concatenated data. The loss feeds the domain's
 *      moving average and ABDP. A domain without images adds nothing and reports no loss.
 *   3. The gradients of the step are complete: the one place where data-parallel
 *      training sums them over its workers (gradients_complete in multidomain.c; with
 *      W workers each ran only its share of every domain's images, see
 *      mpnas_context_set_collective).
 *   4. One optimiser step.
 * ABDP's weights are recomputed from its moving averages (mpnas__abdp_update) once per
 * step by the owner, at its own point - the search before the step's sampling, the model
 * after its validation - and each saves them as of that point in its checkpoints. */
#ifndef MPNAS_MULTIDOMAIN_H
#define MPNAS_MULTIDOMAIN_H

#include "data/domain_data.h"
#include "net/network.h"
#include "net/params.h"
#include "train/abdp.h"

/* Domains of a supernet or a model (and so of a file; docs/MODEL-FORMAT.md). */
#define MPNAS__MAX_DOMAINS 256

/* One domain: the search's and the model's alike. */
typedef struct mpnas__domain {
  char name[MPNAS__NAME_MAX];
  int32_t classes;
  mpnas__domain_data data;  /* images, split, input normalisation, batch stream */
  int32_t hflip;            /* random horizontal flips in training batches (the model's
                               MPNAS_DOMAIN_HFLIP; 0 in the search) */
  size_t fc_w, fc_b;        /* classifier offsets in the owner's params store */
  /* Statistics of the last step (valid_acc from the owner's validation). */
  double loss_ema, valid_acc, weight;
  int32_t batch_images;     /* training images drawn in the last step (ABDP) */
  int64_t bn_updates;       /* training passes run, each updating the running BN
                               statistics the owner bound (the model debiases them by this
                               count at folding; the search binds none) */
  /* The search's (search/supernet.h): the path sampled this step [nlayers], its reward
   * and cost. */
  int32_t *sampled;
  double reward, cost;
  /* The model's (model/model.h): the domain's path [nlayers], and the input
   * normalisation its weights were trained with (from data at preparation, or from its
   * file; kept apart from data's, so that it survives the data being cleared and a
   * failed preparation with other data). */
  int32_t *path;
  float mean[MPNAS__MAX_IN_CHANNELS], invstd[MPNAS__MAX_IN_CHANNELS];
} mpnas__domain;

/* Whether a domain named `name` may join domains[0, D): no domain has that name yet
 * (MPNAS_E_INVALID_ARGUMENT) and there is room (MPNAS_E_OUT_OF_RANGE). The name and
 * class count themselves: mpnas__check_domain. */
mpnas_status mpnas__domains_check_new(mpnas_context *ctx, const mpnas__domain *domains,
                                      int32_t D, const char *name);
/* A new domain (zeroed first): its name and classes, no data, statistics not observed
 * yet (NaN), loss weight 1. */
void mpnas__domain_init(mpnas__domain *d, const char *name, int32_t classes);

/* Split every domain's data, compute its input normalisation and seed its batch stream
 * (mpnas__domain_data_prepare; each domain has its own split and batch streams, the
 * same in the search and the model). MPNAS_E_STATE if a domain has no training data
 * (checked first); on any failure no domain is left prepared. */
mpnas_status mpnas__domains_prepare(mpnas_context *ctx, mpnas__domain *domains, int32_t D,
                                    mpnas__image_shape shape, double valid_fraction);
/* Undo mpnas__domains_prepare (the images stay). */
void mpnas__domains_unprepare(const mpnas_context *ctx, mpnas__domain *domains, int32_t D);
/* An ABDP handle (cfg) for the domains: their classes and training-split sizes, or with
 * sizes_known 0 one image each (enough to check a saved state before the data is split:
 * only proportional sampling reads the sizes). */
mpnas_status mpnas__domains_abdp(mpnas_context *ctx, const mpnas__domain *domains, int32_t D,
                                 const mpnas__abdp_config *cfg, int sizes_known,
                                 mpnas__abdp **out);

/* Validation over data-parallel workers: each evaluated its share of every domain's
 * batch (mpnas__share); sum the correct counts right[D] over them (nothing with one). */
mpnas_status mpnas__domains_sum_correct(mpnas_context *ctx, int32_t D, int32_t *right);

/* order[0, n) = the indices 0..n-1 by work[] descending, ties in index order: the order
 * in which whole domains' passes start when they run at once, so that threads taking them
 * as they come finish together. */
void mpnas__largest_first(int32_t n, const double *work, int32_t *order);

/* Multiply-adds of one image through domain d's path for this step: the trainer starts
 * the largest passes first when domains run at once. */
typedef int64_t (*mpnas__pass_macs_fn)(const void *owner, int32_t d);

/* Bind domain d's path for a training pass into net: its weights and gradients (and any
 * running statistics), with scratch taken from ws, which the trainer releases after the
 * pass. The gradients go to `grads`, laid out like the params store's g (the trainer
 * passes its own buffers, see mpnas__trainer_step). Called from several threads at
 * once for different domains: it may write only into ws, grads and the domain's own
 * running statistics. MPNAS_E_NO_MEMORY when ws runs out. */
typedef mpnas_status (*mpnas__bind_path_fn)(void *owner, int32_t d, mpnas__arena *ws,
                                            float *grads, mpnas__net *net);

/* A multi-domain training run as a step sees it: the owner's state (the supernet's or
 * the model's, borrowed: the owner keeps it between steps and saves it) and the settings
 * of the step. */
typedef struct mpnas__trainer {
  mpnas_context *ctx;
  mpnas__image_shape shape;     /* the input images */
  int32_t ndomains;
  mpnas__domain *domains;       /* [ndomains] */
  mpnas__abdp *abdp;            /* batch counts and loss weights */
  mpnas__rng *abdp_rng;         /* ABDP's proportional sampling */
  mpnas__params *params;        /* weights, gradients, optimiser slots */
  mpnas__arena *ws;             /* scratch: the batch and the passes' tapes */
  mpnas__bind_path_fn bind_path;
  mpnas__pass_macs_fn pass_macs; /* NULL: domains start in domain order */
  void *owner;                  /* passed to bind_path and pass_macs */
  /* The step. */
  int64_t step;                 /* its number (for messages) */
  int32_t batch;                /* images per domain: ABDP splits batch x D among them */
  int32_t augment_pad;          /* random crops of the training images (0: none) */
  float label_smoothing;
  mpnas__optim_config optim;
  float lr;                     /* the step's learning rate */
  const char *lr_setting;       /* a non-finite training loss fails the step, advising to
                                   lower this setting; NULL: the loss is only kept out of
                                   ABDP's averages, and training goes on (the search) */
} mpnas__trainer;

/* One step (the top of this file). Nothing is allocated but in t->ws, whose use is back
 * where it was on return, and, with two or more domains, the gradient buffers of the
 * params store (mpnas__params_grad_parts: one per thread running domains at once, or one
 * per domain run at once but the first, up to 64 MB), kept for later steps. On failure
 * the step is incomplete (the optimiser has not stepped; some domains' statistics and
 * batch streams have moved): the owner undoes it with mpnas__step_undo_restore. */
mpnas_status mpnas__trainer_step(const mpnas__trainer *t);

/* Failure atomicity of a step (docs/API-STABILITY.md, "Failure atomicity"): what a
 * search or training step changes in the state the trainer sees, saved before the step
 * and put back when the step fails anywhere (in the trainer, or after it in the owner's
 * validation, rewards or controllers), so that the handle is as before the step and a
 * retry gives the undisturbed run bit for bit. The weights and optimiser slots are not
 * copied: the optimiser steps out of place and mpnas__params_unstep swaps them back.
 * The owner adds what only it changes (its step counter, the search's controllers and
 * path stream). Allocated once, at the first step, before anything changes. */
typedef struct mpnas__step_undo {
  const mpnas_context *ctx;
  int32_t ndomains, path_len;
  mpnas__domain *domains; /* [ndomains]: statistics, batch streams (structs; the images
                             and splits they point to do not change in a step) */
  int32_t *paths;         /* [ndomains * path_len]: the search's sampled paths */
  double *abdp;           /* ABDP's state (mpnas__abdp_export) */
  size_t nabdp;
  float *bn;              /* the params store's buffers: BN running statistics */
  size_t nbn;
  mpnas__rng abdp_rng;
  int64_t opt_steps;      /* params->steps before: the optimiser stepped iff it moved */
} mpnas__step_undo;

/* Allocate u (zeroed, or as left by mpnas__step_undo_free) for t's domains, ABDP and
 * params, the domains' sampled paths being path_len long (0: none); nothing if it is
 * already (for as many domains). MPNAS_E_NO_MEMORY with a message. */
mpnas_status mpnas__step_undo_alloc(mpnas__step_undo *u, const mpnas__trainer *t,
                                    int32_t path_len);
/* Save what a step of t changes (before the step). */
void mpnas__step_undo_save(mpnas__step_undo *u, const mpnas__trainer *t);
/* Put it back (the step failed; also undoes its optimiser step if it took one). */
void mpnas__step_undo_restore(const mpnas__step_undo *u, const mpnas__trainer *t);
void mpnas__step_undo_free(mpnas__step_undo *u);

#endif
