/* space.h - the search space: stem, stages of searchable layers, head; the candidate
 * ops of each layer; costs (MACs, parameters) of ops and paths.
 *
 * The description (what the host sets) is kept small; the per-layer view (input and
 * output widths, resolution, stride, ops) is derived from it on demand, so there is no
 * cached state to keep in sync. Op order in a layer: `zero` first when the layer may be
 * skipped, then for each expansion (in list order), each kernel (in list order), without
 * then with squeeze-excite (when SE is a choice). */
#ifndef MPNAS_SPACE_H
#define MPNAS_SPACE_H

#include <stdint.h>

#include "common/common.h"
#include "data/domain_data.h"
#include "net/block.h"

#define MPNAS__MAX_STAGES 32
#define MPNAS__MAX_CHOICES 8
#define MPNAS__MAX_LAYERS 256

typedef struct mpnas__stage {
  int32_t cout, layers, stride, act, skippable;
  int32_t own_choices; /* 0: uses the space's default lists */
  int32_t nk, ne;
  int32_t kernels[MPNAS__MAX_CHOICES], expansions[MPNAS__MAX_CHOICES];
} mpnas__stage;

struct mpnas_space {
  mpnas_context *ctx;
  /* NULL for a space of the caller's own (mpnas_space_create); "model" or "supernet"
   * for the copy a handle embeds, which mpnas_model_space / mpnas_supernet_space hand
   * out read-only: the public setters refuse it (MPNAS_E_STATE), mpnas_space_free
   * leaves it alone. Through FFI the const of those calls is lost, and a changed space
   * under a built model reads past its buffers. */
  const char *owner;
  int32_t in_h, in_w, in_c;
  int32_t stem_c, stem_k, stem_s, stem_act;
  int32_t head_c, head_act;
  int32_t se_mode;
  int32_t nk, ne; /* default choice lists */
  int32_t kernels[MPNAS__MAX_CHOICES], expansions[MPNAS__MAX_CHOICES];
  int32_t nstages;
  mpnas__stage stages[MPNAS__MAX_STAGES];
};

/* One searchable layer, derived. */
typedef struct mpnas__layer {
  int32_t stage, index_in_stage;
  int32_t cin, cout, stride, act;
  int32_t h, w, ho, wo; /* input and output resolution */
  int32_t skippable;
  int32_t nops;
  int32_t kmax, emax; /* largest kernel and expansion among the ops */
  int32_t has_se;     /* some op has squeeze-excite */
} mpnas__layer;

/* One op of a layer. kernel == 0 means `zero` (skip). */
typedef struct mpnas__op {
  int32_t kernel, expansion, se;
} mpnas__op;

/* Cost of one image through a node or network part. */
typedef struct mpnas__cost {
  int64_t macs, params;
} mpnas__cost;

/* a + b for counts >= 0, saturating at INT64_MAX: the MACs of the largest spaces the
 * setters accept (4096 x 4096 inputs, 256 layers of 8192 channels) add up past it. */
static inline int64_t mpnas__count_add(int64_t a, int64_t b) {
  return a > INT64_MAX - b ? INT64_MAX : a + b;
}

int32_t mpnas__space_num_layers(const mpnas_space *s);
/* Append a stage with the space's own kernel and expansion choices (values checked by
 * the caller; room for it too). */
void mpnas__space_add_stage(mpnas_space *s, int32_t cout, int32_t layers, int32_t stride,
                            int32_t act, int32_t skippable);
/* Fill *l for layer 0 <= layer < num_layers. */
void mpnas__space_layer(const mpnas_space *s, int32_t layer, mpnas__layer *l);
/* Op `op` of a layer (0 <= op < l->nops). */
mpnas__op mpnas__space_op(const mpnas_space *s, const mpnas__layer *l, int32_t op);
/* The input images, the stem conv and the head conv of every network over the space
 * (the supernet's and the model's alike). */
mpnas__image_shape mpnas__space_image_shape(const mpnas_space *s);
mpnas__conv_geom mpnas__space_stem_geom(const mpnas_space *s);
mpnas__conv_geom mpnas__space_head_geom(const mpnas_space *s);
/* Stem output resolution; the last layer's output resolution and width. */
void mpnas__space_stem_out(const mpnas_space *s, int32_t *h, int32_t *w);
void mpnas__space_final(const mpnas_space *s, int32_t *h, int32_t *w, int32_t *c);

mpnas__cost mpnas__op_cost(const mpnas__layer *l, mpnas__op op);
mpnas__cost mpnas__stem_cost(const mpnas_space *s);
mpnas__cost mpnas__head_cost(const mpnas_space *s);
mpnas__cost mpnas__classifier_cost(const mpnas_space *s, int32_t classes);
/* Whole path of one domain, classifier included. */
mpnas__cost mpnas__path_cost(const mpnas_space *s, const int32_t *path, int32_t classes);
/* The reference path: each layer's middle kernel and lower-middle expansion (k5e3 for
 * the default lists), with SE only when SE is always on. The default cost target C0 and
 * the default fixed path of single-path multi-head. */
void mpnas__space_reference_path(const mpnas_space *s, int32_t *path);
/* Check that path[l] is a valid op index for every layer. */
int mpnas__space_path_valid(const mpnas_space *s, const int32_t *path);
/* A 64-bit fingerprint of the space's full description (checkpoints compare it). */
uint64_t mpnas__space_fingerprint(const mpnas_space *s);
/* Fill s with a preset's description. */
void mpnas__space_preset(mpnas_space *s, int32_t preset);
/* The MPNAS_SPACE_* parameters of an mpnas_space (common/settings.h): setters, getters,
 * the model file's SPCE section and its loader all use it. */
struct mpnas__settings;
extern const struct mpnas__settings mpnas__space_settings;

#endif
