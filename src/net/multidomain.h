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
 * weights, the model binds its nodes). */
#ifndef MPNAS_MULTIDOMAIN_H
#define MPNAS_MULTIDOMAIN_H

#include "data/domain_data.h"
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
                               statistics the owner bound (the model debiases its by this
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

#endif
