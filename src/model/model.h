/* model.h - the multi-path model: the union of the domains' paths as one network
 * (docs/ALGORITHM.md sections 6-8, docs/MODEL.md).
 *
 * Nodes. Every distinct non-zero (layer, op) that some domain's path uses is a node with
 * its own contiguous weights (no in-layer slicing: that was the supernet's trick for
 * search), stored once however many domains use it. The stem, the head and the
 * classifiers (one per domain) complete the network.
 *
 * BatchNorm. gamma and beta belong to the node (shared); the running statistics are kept
 * per (BN, domain): every BN "slot" (a node's bn1/bn2/bn3, the stem's, the head's) has a
 * mean/var pair for each domain that runs through it. At inference domain d's statistics
 * fold into a per-channel scale/shift fused into the kernels' stores, so shared weights
 * stay shared. Training normalises each domain's sub-batch with its own batch statistics.
 *
 * Lifecycle: created with domains and paths (no weights yet) -> built (layout + fresh
 * weights from the context's seed) when training starts, or filled from a saved file ->
 * trained / evaluated / run by predictors. */
#ifndef MPNAS_MODEL_H
#define MPNAS_MODEL_H

#include "common/settings.h"
#include "net/multidomain.h"
#include "net/network.h"
#include "net/space.h"
#include "train/abdp.h"

#define MPNAS__NO_SLOT ((size_t)-1)

/* A BN's running statistics in the params' buffer array. */
typedef struct mpnas__stat_offsets {
  size_t mean, var;
} mpnas__stat_offsets;

typedef struct mpnas__node {
  int32_t layer, op;
  mpnas__ib_geom g;
  mpnas__ib_offsets w;  /* weights and gamma/beta; no running statistics */
  int32_t users;        /* domains whose path uses this node */
} mpnas__node;

/* BN slots: node i's bn1, bn2, bn3 are 3i, 3i+1, 3i+2; the stem 3N, the head 3N+1. */
#define MPNAS__SLOT_STEM(nnodes) (3 * (nnodes))
#define MPNAS__SLOT_HEAD(nnodes) (3 * (nnodes) + 1)

typedef struct mpnas__train_config {
  int64_t steps;
  int32_t batch, valid_batch, valid_every, optimizer, augment_pad;
  double lr, warmup_fraction, momentum, weight_decay, label_smoothing, valid_fraction;
  mpnas__abdp_config abdp;
} mpnas__train_config;

/* The settings (train_config.c): their defaults, and the tables of the MPNAS_TRAIN_* /
 * MPNAS_MODEL_* parameters and of the domains' MPNAS_DOMAIN_* (common/settings.h), for
 * the setters and the loaders alike (the ABDP settings: train/abdp.h). */
void mpnas__train_config_default(mpnas__train_config *c);
extern const mpnas__settings mpnas__train_settings;
extern const mpnas__settings mpnas__domain_settings; /* of an mpnas__domain */

struct mpnas_model {
  mpnas_context *ctx;
  /* Inside mpnas_model_train (its progress callback may call the API): the calls that
   * change the model refuse then (MPNAS_E_STATE); the loop would go on with freed data
   * or weights. */
  int32_t running;
  uint64_t run_seed; /* the context's seed when the training was prepared (its splits') */
  mpnas_space space;
  int32_t nlayers;
  mpnas__layer *layers;          /* [nlayers], derived */
  int32_t *op_offset;            /* [nlayers + 1] flat (layer, op) index */
  int32_t ndomains;
  mpnas__domain *domains;        /* [MPNAS__MAX_DOMAINS] (net/multidomain.h) */
  mpnas__train_config cfg;

  /* Built (first training step or load). */
  int built;
  int32_t nnodes;
  mpnas__node *nodes;
  int32_t *node_of;              /* [total ops] node index or -1 */
  mpnas__conv_offsets stem, head; /* weights and gamma/beta */
  size_t nslots;
  mpnas__stat_offsets *stats;    /* [nslots * ndomains], NO_SLOT where unused */
  mpnas__params params;
  /* Folded inference BN: scale at affine + off, shift right after (c floats each). */
  size_t *affine_off;            /* [nslots * ndomains] */
  float *affine;
  size_t affine_total;
  uint64_t folds;                /* folds so far: packed inference weights older than the
                                    last fold are stale (mpnas__model_pack) */
  int norm_ready;                /* every domain's input normalisation is known */

  /* The int8 form (model_quant.h): NULL until mpnas_model_quantize or a quantised file. */
  struct mpnas__quant *quant;
  uint64_t quant_generation;     /* bumped whenever quant changes: int8 packs older than
                                    this are stale */
  int float_dropped;             /* int8 only: the float weights were dropped (or never
                                    loaded); every float use is refused */

  /* Training state. */
  int prepared;                  /* data split, abdp created */
  mpnas__abdp *abdp;
  mpnas__rng abdp_rng;           /* ABDP's proportional sampling */
  int64_t step;
  mpnas__arena ws;
  mpnas__step_undo undo;         /* a failing step is undone (model_train.c) */
};

/* Lay out nodes, slots and parameters and initialise the weights (idempotent; on failure
 * nothing of it is left). Unbuild frees the layout and weights (back to not built). */
mpnas_status mpnas__model_build(mpnas_model *m);
void mpnas__model_unbuild(mpnas_model *m);
/* Recompute the folded inference BN from the current weights and statistics. */
void mpnas__model_fold(mpnas_model *m);
/* Bind domain d's path into net (layers [nlayers] supplied by the caller): training
 * weights, gradients (into grads, laid out like the params store's; NULL: the store's
 * own), running statistics and inference affines. */
void mpnas__model_bind(mpnas_model *m, int32_t d, float *grads, mpnas__net *net,
                       mpnas__net_layer *layers);
/* Channels of BN slot s (a node's three slots, then the stem's and the head's). */
int mpnas__model_slot_channels(const mpnas_model *m, size_t s);
/* The pointwise weights (every node's expand and project convs, the head's 1x1 conv)
 * packed once in one kernel table's GEMM layout, so that inference does not repack them
 * on every call (a predictor keeps one). Packed from the weights as of a fold: stale
 * after the next fold (training, loading) or when the context's ISA changes, and then
 * packed again by mpnas__model_pack. */
typedef struct mpnas__model_packed {
  const mpnas__kernels *k; /* the layout's kernel table; NULL: nothing packed yet */
  uint64_t folds;          /* the model's fold count it was packed at */
  mpnas__arena store;
  const float **exp, **proj; /* [nnodes] (exp NULL where a node has no expand conv) */
  const float *head;         /* NULL where the head is not a 1x1 stride-1 conv */
} mpnas__model_packed;
void mpnas__model_packed_init(mpnas__model_packed *pk, const mpnas_context *ctx);
void mpnas__model_packed_free(mpnas__model_packed *pk);
/* Pack m's weights for eng's kernels into pk unless pk is current (no work then). On
 * MPNAS_E_NO_MEMORY pk is left empty (k NULL), still usable. */
mpnas_status mpnas__model_pack(const mpnas_model *m, const mpnas__engine *eng,
                               mpnas__model_packed *pk);
/* Images [lo, hi) of a batch on engine eng (one thread's kernels when run in shares)
 * and workspace ws. */
typedef mpnas_status (*mpnas__images_fn)(const void *arg, const mpnas__engine *eng,
                                         mpnas__arena *ws, int lo, int hi);
/* Inference of a batch of n images in contiguous shares, one per thread the context's
 * engine asks for, each run end to end with one thread's kernels on its own child
 * workspace of ws; one thread: fn on all. The threads that start promptly (a probe, as
 * mpnas__engine_ready) take the shares between them: the shares and their workspaces do
 * not depend on the machine's load, so a warmed-up predictor allocates nothing when a
 * thread is late. Each image's arithmetic is the same in any batch and any split of an
 * op's rows, so the outputs are those of one thread, bit for bit. */
mpnas_status mpnas__model_images_in_shares(const mpnas__engine *eng, mpnas__arena *ws, int n,
                                           mpnas__images_fn fn, const void *arg);
/* Logits of n normalised images of domain d (the inference path); packed: current
 * packed weights (mpnas__model_pack) or NULL to pack per call. */
mpnas_status mpnas__model_infer(const mpnas_model *m, mpnas__arena *ws, int32_t d, int n,
                                const float *x, float *logits,
                                const mpnas__model_packed *packed);
/* Training: prepare data and ABDP (idempotent; a failure leaves the model as it was),
 * one step. */
mpnas_status mpnas__model_prepare(mpnas_model *m);
/* The same, with ABDP's state imported from abdp_state[n] (a checkpoint's, checked). */
mpnas_status mpnas__model_prepare_state(mpnas_model *m, const double *abdp_state, size_t n);
mpnas_status mpnas__model_step(mpnas_model *m);
/* Train up to max_steps more steps (0: to the end; arguments checked by the caller),
 * reporting to progress every `every` steps; a failing first step puts back what the
 * call's preparation replaced (docs/API-STABILITY.md). */
mpnas_status mpnas__model_train(mpnas_model *m, int64_t max_steps, mpnas_train_progress_fn progress,
                               void *user, int64_t every);
/* Unique parameters (stem, head, used nodes once, every classifier) and the sum over
 * domains of their paths' MACs. */
void mpnas__model_costs(const mpnas_model *m, int64_t *params, int64_t *macs);
void mpnas__model_free_contents(mpnas_model *m);
/* Drop the int8 form (model_quant.h), if any, and bump quant_generation. Here, not in
 * model_quant.c, because freeing a model needs it and model_quant.c calls this file. */
void mpnas__model_quant_free(mpnas_model *m);
/* Allocate a model shell for a space (copied) with no domains. */
mpnas_status mpnas__model_new(mpnas_context *ctx, const mpnas_space *space, mpnas_model **out);
/* Add a domain (checked by the caller). */
mpnas_status mpnas__model_add_domain(mpnas_model *m, const char *name, int32_t classes,
                                     const int32_t *path);

/* Serialisation: the model file (model_io.c) and a checkpoint, the model with its
 * training state (model_checkpoint.c). */
mpnas_status mpnas__model_write(const mpnas_model *m, void **data, size_t *size);
mpnas_status mpnas__model_read(mpnas_context *ctx, const void *data, size_t size,
                               mpnas_model **out);
mpnas_status mpnas__model_checkpoint_save(const mpnas_model *m, const char *path);
mpnas_status mpnas__model_checkpoint_load(mpnas_model *m, const char *path);
mpnas_status mpnas__model_checkpoint_load_buffer(mpnas_model *m, const void *data, size_t size);

/* Domain d's path as an ONNX model (model_onnx.c, docs/EXPORT.md): *data (free with
 * mpnas__free) and *len. The model must be ready for inference. */
mpnas_status mpnas__model_export_onnx(const mpnas_model *m, int32_t d, unsigned char **data,
                                      size_t *len);

#endif
