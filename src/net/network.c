/* network.c - see network.h. */
#include "net/network.h"

#include "tensor/ops.h"

#define TAKE(ptr, count)                                   \
  do {                                                     \
    (ptr) = mpnas__arena_floats(ws, (size_t)(count));      \
    if ((ptr) == NULL) return MPNAS_E_NO_MEMORY;           \
  } while (0)

/* The forward passes without a tape keep activations in two ping-pong buffers sized
 * for the widest activation along the path (the stem's, a block's or the head's).
 * inner (may be NULL): the widest tensor inside a block, its expanded activation at the
 * block's input resolution (or the stem's output, if wider). */
static size_t widest_activation(const mpnas__net *net, size_t *inner) {
  int h = mpnas__out_size(net->in_h, net->stem_g.stride);
  int w = mpnas__out_size(net->in_w, net->stem_g.stride);
  size_t widest = (size_t)h * w * net->stem_g.cout, mid = widest;
  for (int l = 0; l < net->nlayers; l++) {
    const mpnas__ib_geom *g = net->layers[l].g;
    if (g == NULL) continue;
    size_t e = (size_t)h * w * g->cmid;
    if (e > mid) mid = e;
    h = mpnas__out_size(h, g->stride);
    w = mpnas__out_size(w, g->stride);
    size_t a = (size_t)h * w * g->cout;
    if (a > widest) widest = a;
  }
  if (inner != NULL) *inner = mid;
  size_t head = (size_t)h * w * net->head_g.cout;
  return head > widest ? head : widest;
}

/* Training: the tapes are taken layer by layer above two gradient buffers (each the
 * widest activation), and the backward releases each layer's tape, with the scratch
 * above it, as soon as that layer's input gradient exists: the arena then holds the
 * tapes of the layers still to go back through, one layer's backward scratch and the
 * two gradients, never every tape and every gradient at once. */
mpnas_status mpnas__net_train(const mpnas__engine *eng, mpnas__arena *ws, mpnas__net *net,
                              int n, const float *x, const int32_t *labels, int backward,
                              float smoothing, float loss_scale, double *loss,
                              int32_t *correct) {
  mpnas_status st;
  mpnas__conv_tape ts, th;
  float *grad[2] = {NULL, NULL};
  if (backward) {
    size_t widest = widest_activation(net, NULL) * (size_t)n;
    TAKE(grad[0], widest);
    TAKE(grad[1], widest);
  }
  int h = net->in_h, w = net->in_w;
  if ((st = mpnas__conv_unit_fwd_train(eng, ws, &net->stem_g, &net->stem, n, h, w, x, &ts)) !=
      MPNAS_OK)
    return st;
  h = mpnas__out_size(h, net->stem_g.stride);
  w = mpnas__out_size(w, net->stem_g.stride);
  const float *cur = ts.y;
  for (int l = 0; l < net->nlayers; l++) {
    mpnas__net_layer *ly = &net->layers[l];
    if (ly->g == NULL) continue; /* zero: identity */
    ly->mark = mpnas__arena_get_mark(ws);
    if ((st = mpnas__ib_fwd_train(eng, ws, ly->g, &ly->w, n, h, w, cur, &ly->tape)) != MPNAS_OK)
      return st;
    cur = ly->tape.y;
    h = ly->tape.ho;
    w = ly->tape.wo;
  }
  const mpnas__conv_geom *hg = &net->head_g;
  mpnas__arena_mark head_mark = mpnas__arena_get_mark(ws);
  if ((st = mpnas__conv_unit_fwd_train(eng, ws, hg, &net->head, n, h, w, cur, &th)) != MPNAS_OK)
    return st;
  int hw = h * w, classes = net->classes;
  float *pooled, *logits, *dlogits = NULL;
  TAKE(pooled, (size_t)n * hg->cout);
  TAKE(logits, (size_t)n * classes);
  if (backward) TAKE(dlogits, (size_t)n * classes);
  mpnas__gap_fwd(n, hw, hg->cout, th.y, pooled);
  if ((st = mpnas__fc_fwd(eng, ws, n, hg->cout, classes, pooled, net->fc_w, net->fc_b,
                          logits)) != MPNAS_OK)
    return st;
  int right = 0;
  *loss = mpnas__softmax_xent(n, classes, logits, labels, backward ? smoothing : 0.0f,
                              dlogits, &right);
  *correct = right;
  if (!backward) return MPNAS_OK;

  for (size_t i = 0; i < (size_t)n * classes; i++) dlogits[i] *= loss_scale;
  float *dpooled, *dhead = grad[0], *dcur = grad[1];
  TAKE(dpooled, (size_t)n * hg->cout);
  if ((st = mpnas__fc_bwd(eng, ws, n, hg->cout, classes, pooled, net->fc_w, dlogits, dpooled,
                          net->fc_gw, net->fc_gb)) != MPNAS_OK)
    return st;
  mpnas__gap_bwd(n, hw, hg->cout, dpooled, dhead);
  if ((st = mpnas__conv_unit_bwd(eng, ws, hg, &net->head, &th, dhead, dcur, &net->head_gr)) !=
      MPNAS_OK)
    return st;
  mpnas__arena_release(ws, head_mark);
  for (int l = net->nlayers - 1; l >= 0; l--) {
    mpnas__net_layer *ly = &net->layers[l];
    if (ly->g == NULL) continue; /* skipped: the gradient passes through unchanged */
    float *dprev = dcur == grad[0] ? grad[1] : grad[0];
    if ((st = mpnas__ib_bwd(eng, ws, ly->g, &ly->w, &ly->tape, dcur, dprev, &ly->gr)) != MPNAS_OK)
      return st;
    if (net->after_backward) net->after_backward(net->user, l);
    mpnas__arena_release(ws, ly->mark); /* this layer's tape */
    dcur = dprev;
  }
  return mpnas__conv_unit_bwd(eng, ws, &net->stem_g, &net->stem, &ts, dcur, NULL, &net->stem_gr);
}

mpnas_status mpnas__net_eval(const mpnas__engine *eng, mpnas__arena *ws, const mpnas__net *net,
                             int n, const float *x, const int32_t *labels, double *loss,
                             int32_t *correct) {
  mpnas_status st;
  size_t widest = widest_activation(net, NULL);
  float *buf[2], *pooled, *logits;
  TAKE(buf[0], widest * (size_t)n);
  TAKE(buf[1], widest * (size_t)n);
  int h = net->in_h, w = net->in_w, cur = 0;
  if ((st = mpnas__conv_unit_fwd_eval(eng, ws, &net->stem_g, &net->stem, n, h, w, x,
                                      buf[cur])) != MPNAS_OK)
    return st;
  h = mpnas__out_size(h, net->stem_g.stride);
  w = mpnas__out_size(w, net->stem_g.stride);
  for (int l = 0; l < net->nlayers; l++) {
    const mpnas__net_layer *ly = &net->layers[l];
    if (ly->g == NULL) continue; /* zero: identity */
    if ((st = mpnas__ib_fwd_eval(eng, ws, ly->g, &ly->w, n, h, w, buf[cur], buf[!cur])) !=
        MPNAS_OK)
      return st;
    cur = !cur;
    h = mpnas__out_size(h, ly->g->stride);
    w = mpnas__out_size(w, ly->g->stride);
  }
  if ((st = mpnas__conv_unit_fwd_eval(eng, ws, &net->head_g, &net->head, n, h, w, buf[cur],
                                      buf[!cur])) != MPNAS_OK)
    return st;
  cur = !cur;
  TAKE(pooled, (size_t)n * net->head_g.cout);
  TAKE(logits, (size_t)n * net->classes);
  mpnas__gap_fwd(n, h * w, net->head_g.cout, buf[cur], pooled);
  if ((st = mpnas__fc_fwd(eng, ws, n, net->head_g.cout, net->classes, pooled, net->fc_w,
                          net->fc_b, logits)) != MPNAS_OK)
    return st;
  int right = 0;
  *loss = mpnas__softmax_xent(n, net->classes, logits, labels, 0.0f, NULL, &right);
  *correct = right;
  return MPNAS_OK;
}

/* Images per chunk of a batched inference: as many as keep a block's widest tensor (its
 * expanded activation, at the block's input resolution) within INFER_CHUNK_FLOATS, at
 * least one, so that the tensors a block passes between its ops stay in the caches (on
 * the 2026-12-05 VM, MBV2-9 at batch 64 and 1 thread: chunks of 1-2 images 1.12-1.13x
 * the throughput of the whole batch at once, 4-8 images 1.10x). Each image's arithmetic
 * is the same in any chunk, so the outputs do not change. */
#define INFER_CHUNK_FLOATS ((size_t)1 << 19) /* 2 MB */

static int infer_chunk_images(const mpnas__net *net) {
  size_t inner;
  widest_activation(net, &inner);
  size_t chunk = inner > 0 ? INFER_CHUNK_FLOATS / inner : 1;
  return chunk < 1 ? 1 : chunk > 4096 ? 4096 : (int)chunk;
}

static mpnas_status infer_chunk(const mpnas__engine *eng, mpnas__arena *ws,
                                const mpnas__net *net, int n, const float *x, float *logits);

mpnas_status mpnas__net_infer(const mpnas__engine *eng, mpnas__arena *ws,
                              const mpnas__net *net, int n, const float *x, float *logits) {
  int chunk = infer_chunk_images(net);
  size_t per = (size_t)net->in_h * net->in_w * net->stem_g.cin;
  mpnas_status st = MPNAS_OK;
  for (int lo = 0; lo < n && st == MPNAS_OK; lo += chunk) {
    int m = n - lo < chunk ? n - lo : chunk;
    mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
    st = infer_chunk(eng, ws, net, m, x + per * (size_t)lo, logits + (size_t)net->classes * lo);
    mpnas__arena_release(ws, mark);
  }
  return st;
}

static mpnas_status infer_chunk(const mpnas__engine *eng, mpnas__arena *ws,
                                const mpnas__net *net, int n, const float *x, float *logits) {
  mpnas_status st;
  int h = net->in_h, w = net->in_w;
  int ho = mpnas__out_size(h, net->stem_g.stride), wo = mpnas__out_size(w, net->stem_g.stride);
  size_t widest = widest_activation(net, NULL);
  float *buf[2], *pooled;
  TAKE(buf[0], widest * (size_t)n);
  TAKE(buf[1], widest * (size_t)n);
  TAKE(pooled, (size_t)n * net->head_g.cout);
  int cur = 0;
  if ((st = mpnas__conv_unit_fwd_infer(eng, ws, &net->stem_g, net->stem.w, NULL, &net->stem_aff,
                                       n, h, w, x, buf[cur])) != MPNAS_OK)
    return st;
  h = ho;
  w = wo;
  for (int l = 0; l < net->nlayers; l++) {
    const mpnas__net_layer *ly = &net->layers[l];
    if (ly->g == NULL) continue;
    if ((st = mpnas__ib_fwd_infer(eng, ws, ly->g, &ly->inf, n, h, w, buf[cur], buf[!cur])) !=
        MPNAS_OK)
      return st;
    cur = !cur;
    h = mpnas__out_size(h, ly->g->stride);
    w = mpnas__out_size(w, ly->g->stride);
  }
  if ((st = mpnas__conv_unit_fwd_infer(eng, ws, &net->head_g, net->head.w, net->head_packed,
                                       &net->head_aff, n, h, w, buf[cur], buf[!cur])) != MPNAS_OK)
    return st;
  cur = !cur;
  mpnas__gap_fwd(n, h * w, net->head_g.cout, buf[cur], pooled);
  return mpnas__fc_fwd(eng, ws, n, net->head_g.cout, net->classes, pooled, net->fc_w, net->fc_b,
                       logits);
}
