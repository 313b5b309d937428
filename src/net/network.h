/* network.h - one path through a network, end to end: stem -> inverted bottlenecks (a
 * layer may be skipped) -> head -> global average pool -> classifier -> softmax loss.
 *
 * The caller binds every layer's weights (and gradients) first: the multi-path model
 * binds a node's own tensors with the running statistics of the domain it runs; the
 * search supernet's training pass binds gathered slices and scatters their gradients
 * back in after_backward (both through the multi-domain trainer's bind_path,
 * net/multidomain.h, which runs the training pass). The walk along a path lives here
 * once, in its three forms: training (tape, backward), evaluation (batch statistics, no
 * tape: the search's validation) and inference (folded BN). Tapes and scratch come
 * from the arena; the arena mark is the caller's. */
#ifndef MPNAS_NETWORK_H
#define MPNAS_NETWORK_H

#include "net/block.h"

typedef struct mpnas__net_layer {
  const mpnas__ib_geom *g; /* NULL: the layer is skipped (zero op) */
  mpnas__ib_weights w;
  mpnas__ib_grads gr;
  mpnas__ib_infer inf;     /* inference form (mpnas__net_infer) */
  mpnas__ib_tape tape;
  mpnas__arena_mark mark;  /* where the tape starts in the arena (mpnas__net_train) */
} mpnas__net_layer;

typedef struct mpnas__net {
  int in_h, in_w;
  mpnas__conv_geom stem_g, head_g;
  mpnas__conv_weights stem, head;
  mpnas__conv_grads stem_gr, head_gr;
  mpnas__affine stem_aff, head_aff; /* inference */
  const float *head_packed;         /* inference: the head conv's packed weights or NULL */
  int nlayers;
  mpnas__net_layer *layers;
  int classes;
  const float *fc_w, *fc_b;
  float *fc_gw, *fc_gb;
  /* Called after layer l's backward (e.g. to scatter sliced gradients); may be NULL. */
  void (*after_backward)(void *user, int layer);
  void *user;
} mpnas__net;

/* Forward with batch statistics (updating the bound running statistics, if any) and,
 * when `backward`, the backward pass of loss_scale * mean loss, accumulating into the
 * bound gradients. Returns the mean loss (label smoothing applies only when backward)
 * and the number of correct top-1 predictions. The backward gives each layer's tape
 * back to the arena once that layer's input gradient exists (layers[].mark), so the
 * tapes do not outlive their use; the caller releases the rest with its mark. */
mpnas_status mpnas__net_train(const mpnas__engine *eng, mpnas__arena *ws, mpnas__net *net,
                              int n, const float *x, const int32_t *labels, int backward,
                              float smoothing, float loss_scale, double *loss,
                              int32_t *correct);

/* Evaluation: the training forward's arithmetic (batch statistics, so the same bits as
 * mpnas__net_train's forward for the same batch) without a tape, running statistics
 * untouched. The mean loss (no smoothing) and the number of correct top-1 predictions
 * of n labelled images. Scratch: two activation buffers, the widest block's own. */
mpnas_status mpnas__net_eval(const mpnas__engine *eng, mpnas__arena *ws, const mpnas__net *net,
                             int n, const float *x, const int32_t *labels, double *loss,
                             int32_t *correct);

/* Inference with the bound folded BN (stem_aff, head_aff, layers[].inf): logits [n][classes]. */
mpnas_status mpnas__net_infer(const mpnas__engine *eng, mpnas__arena *ws,
                              const mpnas__net *net, int n, const float *x, float *logits);

#endif
