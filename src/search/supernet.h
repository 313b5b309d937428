/* supernet.h - the one-shot super-network, the domains' data, and the search state.
 *
 * Weights: every layer owns one set of maximal tensors (expand conv of the largest
 * expansion, depthwise kernel of the largest size, SE of the widest bottleneck, project
 * conv, BN). An op uses the prefix channels of each and the centre crop of the
 * depthwise kernel (TuNAS in-layer sharing, docs/ALGORITHM.md section 3.1). Slices that are a
 * contiguous prefix are used in place; the others (expand columns, depthwise crop, SE
 * second FC columns) are gathered into scratch before the op runs and their gradients
 * scattered back after. MPNAS_METHOD_INDEPENDENT keeps one such weight set per domain;
 * the other methods one set for all. Classifiers are always per domain. */
#ifndef MPNAS_SUPERNET_H
#define MPNAS_SUPERNET_H

#include "common/settings.h"
#include "net/block.h"
#include "net/multidomain.h"
#include "search/controller.h"
#include "search/reward.h"
#include "net/space.h"
#include "train/abdp.h"

/* Offsets of one weight set. */
typedef struct mpnas__weight_set {
  mpnas__conv_offsets stem, head;
  mpnas__ib_offsets *layer; /* [nlayers] at the layer's maximal geometry */
} mpnas__weight_set;

/* Search settings (the MPNAS_SEARCH_* parameters). */
typedef struct mpnas__search_config {
  int32_t method;
  int64_t steps;
  int32_t train_batch, valid_batch;
  double warmup_fraction, lr, momentum, weight_decay, label_smoothing;
  double rl_lr, rl_delay, rl_ramp, entropy;
  int32_t cost, reward;
  double beta, target, gamma, valid_fraction;
} mpnas__search_config;

struct mpnas_controller {
  mpnas__controller *impl;
  mpnas_supernet *owner; /* NULL for a standalone controller */
  mpnas__rng rng;        /* standalone sampling */
};

struct mpnas_supernet {
  mpnas_context *ctx;
  int32_t running; /* inside mpnas_supernet_search: as mpnas_model.running */
  uint64_t run_seed; /* the context's seed when the search was prepared (its splits') */
  mpnas_space space;
  int32_t nlayers;
  mpnas__layer *layers;     /* [nlayers], derived once */
  mpnas__ib_geom *max_geom; /* [nlayers] the maximal geometry of each layer */
  int32_t ndomains;
  mpnas__domain *domains;   /* [MPNAS__MAX_DOMAINS] (net/multidomain.h) */
  mpnas__search_config cfg;
  int32_t *fixed_path;      /* [nlayers] */
  int32_t *fixed_path_reference; /* [nlayers] the reference path (default C0) */
  int32_t *nops;            /* [nlayers] ops per layer */
  /* Created by prepare (first search call). */
  int prepared;
  int32_t nsets;
  mpnas__weight_set *sets;
  mpnas__params params;
  int32_t ncontrollers;
  mpnas_controller *controllers; /* [ncontrollers] */
  uint8_t *warmup_allowed;       /* [total ops] 1 for non-zero ops */
  double *node_params;           /* [total ops] parameter count of each node */
  int32_t *op_offset;            /* [nlayers + 1] flat (layer, op) index */
  int32_t *argmax_scratch;       /* [ndomains * nlayers] */
  /* Latency cost model: seconds per node (flat (layer, op) index) and for the fixed
   * parts (stem, head, a classifier), measured on this CPU or set by the host. */
  double *node_latency;
  double fixed_latency;
  int latency_ready;
  mpnas__rng rng;                /* path sampling */
  /* ABDP (docs/ABDP.md): settings (MPNAS_ABDP_*, fixed once the search starts), the
   * handle and its sampling stream (created by prepare). */
  mpnas__abdp_config abdp_cfg;
  mpnas__abdp *abdp;
  mpnas__rng abdp_rng;
  int64_t step;
  mpnas__arena ws;
  /* A failing step is undone (search.c): the trainer's state, the controllers' and the
   * path stream as before the step (allocated at the first step). */
  mpnas__step_undo undo;
  mpnas__controller **undo_ctrl; /* [ncontrollers] */
  mpnas__rng undo_rng;
};

/* The settings (search_config.c): their defaults, and the table of the MPNAS_SEARCH_*
 * parameters of an mpnas__search_config with the setters' ranges (NaN allowed only for
 * the cost exponent, where it means the reward form's default), for the setters and the
 * checkpoint loader alike (common/settings.h). */
void mpnas__search_config_default(mpnas__search_config *c);
extern const mpnas__settings mpnas__search_settings;

/* A supernet over a copy of space with the default settings and no domains
 * (mpnas_supernet_create's work; ctx and space not NULL), and its end (NULL: nothing). */
mpnas_status mpnas__supernet_new(mpnas_context *ctx, const mpnas_space *space,
                                 mpnas_supernet **out);
void mpnas__supernet_delete(mpnas_supernet *sn);
/* Build the weights, controllers, validation splits and normalisation (idempotent). On
 * failure nothing of it is left (mpnas__supernet_destroy_state). */
mpnas_status mpnas__supernet_prepare(mpnas_supernet *sn);
/* Forward a batch of one domain through `path` with batch statistics. If train, also
 * backward with the loss scaled by `loss_scale`, accumulating gradients. Returns the
 * mean loss and the number of correct predictions. */
mpnas_status mpnas__supernet_run(mpnas_supernet *sn, int32_t domain, const int32_t *path,
                                 const float *x, const int32_t *labels, int32_t batch,
                                 int train, float loss_scale, double *loss, int32_t *correct);
/* Free the undo state of the search's steps (allocated by the first step, search.c). */
void mpnas__supernet_undo_free(mpnas_supernet *sn);
/* Multiply-adds of one image through domain's sampled path (an mpnas__pass_macs_fn). */
int64_t mpnas__supernet_sampled_macs(const void *sn, int32_t domain);
/* The multi-domain trainer's bind_path for the search's weight step (net/multidomain.h):
 * domain d's sampled path, its weights sliced into ws, its gradients into grads. `sn` is
 * the supernet. */
mpnas_status mpnas__supernet_bind_sampled(void *sn, int32_t domain, mpnas__arena *ws,
                                          float *grads, mpnas__net *net);
/* Every domain's sampled path on a fresh validation batch of cfg.valid_batch images
 * (drawn as mpnas__supernet_batch does): sets each domain's valid_acc. The results of
 * mpnas__supernet_batch + mpnas__supernet_run(train = 0) domain by domain; with several
 * threads, whole domains run concurrently (one per thread). */
mpnas_status mpnas__supernet_validate(mpnas_supernet *sn);
/* Draw a batch of a domain's train (valid = 0) or validation (valid = 1) images,
 * normalised, into x [batch][H][W][C] and labels. */
void mpnas__supernet_batch(mpnas_supernet *sn, int32_t domain, int valid, int32_t batch,
                           float *x, int32_t *labels);
/* One search step (sample, weights, rewards, controllers). */
mpnas_status mpnas__supernet_step(mpnas_supernet *sn);
/* `code` (message prefixed by `where`) when cfg's reward, cost and target give no usable
 * reward on some domain's cheapest or dearest path; needs a prepared supernet (and, for
 * the latency cost, its table). */
mpnas_status mpnas__supernet_check_reward(mpnas_supernet *sn, const mpnas__search_config *cfg,
                                          mpnas_status code, const char *where);
void mpnas__supernet_destroy_state(mpnas_supernet *sn);
/* The controller index a domain uses. */
int32_t mpnas__supernet_controller_of(const mpnas_supernet *sn, int32_t domain);

/* Time every node once (batch 1, inference kernels) into node_latency. */
mpnas_status mpnas__supernet_measure_latency(mpnas_supernet *sn);
/* A latency table entry as the setter and the checkpoint loader accept it: finite, >= 0. */
int mpnas__latency_valid(double seconds);

mpnas_status mpnas__supernet_save(const mpnas_supernet *sn, const char *path);
/* Load a search checkpoint from a file or a buffer (checkpoint.c): on failure the
 * supernet is left as it was. */
mpnas_status mpnas__supernet_load(mpnas_supernet *sn, const char *path);
mpnas_status mpnas__supernet_load_buffer(mpnas_supernet *sn, const void *data, size_t size);

#endif
