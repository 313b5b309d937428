/* test_e2e.c - end to end on the tensor engine: a small CNN (stem, two inverted
 * bottlenecks - one with squeeze-excite, one residual -, a 1x1 head, global pooling, a
 * classifier) learns a synthetic 4-class image problem to >= 95% training accuracy in
 * seconds, and the same seed gives bit-identical weights twice. */
#include <string.h>

#include "check.h"
#include "common/common.h"
#include "net/block.h"
#include "train/optim.h"

#define IMG 16
#define CH 3
#define CLASSES 4
#define TRAIN 512
#define BATCH 32
#define STEPS 100 /* enough for >= 95%; the reproducibility runs use fewer */

/* Four visually distinct classes with random phase, colour and noise: horizontal
 * stripes, vertical stripes, a bright square at a random place, a checkerboard. */
static void make_data(float *images, int32_t *labels, uint64_t seed) {
  mpnas__rng rng;
  mpnas__rng_seed(&rng, seed, 99);
  for (int i = 0; i < TRAIN; i++) {
    int cls = i % CLASSES;
    labels[i] = cls;
    int phase = (int)mpnas__rng_below(&rng, 4);
    int bx = (int)mpnas__rng_below(&rng, IMG - 5), by = (int)mpnas__rng_below(&rng, IMG - 5);
    float tint[CH];
    for (int c = 0; c < CH; c++) tint[c] = 0.5f + mpnas__rng_uniform(&rng);
    for (int y = 0; y < IMG; y++)
      for (int x = 0; x < IMG; x++) {
        float v;
        switch (cls) {
          case 0: v = ((y + phase) / 2) % 2 ? 1.0f : -1.0f; break;
          case 1: v = ((x + phase) / 2) % 2 ? 1.0f : -1.0f; break;
          case 2: v = (x >= bx && x < bx + 5 && y >= by && y < by + 5) ? 1.0f : -1.0f; break;
          default: v = (((x + phase) / 2) + ((y + phase) / 2)) % 2 ? 1.0f : -1.0f;
        }
        for (int c = 0; c < CH; c++)
          images[((size_t)i * IMG * IMG + y * IMG + x) * CH + c] =
              v * tint[c] + 0.4f * mpnas__rng_normal(&rng);
      }
  }
}

typedef struct {
  mpnas_context *ctx;
  mpnas__params params;
  mpnas__conv_geom stem_g, head_g;
  mpnas__ib_geom b1_g, b2_g;
  mpnas__conv_offsets stem_o, head_o;
  mpnas__ib_offsets b1_o, b2_o;
  size_t fc_w, fc_b;
  mpnas__arena ws;
} net;

static void net_create(net *n, uint64_t seed) {
  memset(n, 0, sizeof *n);
  CHECK_EQ_INT(mpnas_context_create(&n->ctx), MPNAS_OK);
  CHECK_EQ_INT(mpnas_context_set_int(n->ctx, MPNAS_CONTEXT_SEED, (int64_t)seed), MPNAS_OK);
  n->stem_g = (mpnas__conv_geom){CH, 8, 3, 1, MPNAS__ACT_RELU6};
  mpnas__ib_geom_init(&n->b1_g, 8, 16, 3, 3, 2, MPNAS__ACT_RELU6, 1);
  mpnas__ib_geom_init(&n->b2_g, 16, 16, 3, 5, 1, MPNAS__ACT_HSWISH, 0);
  n->head_g = (mpnas__conv_geom){16, 32, 1, 1, MPNAS__ACT_RELU6};
  mpnas__params_init(&n->params, n->ctx);
  CHECK(mpnas__conv_declare(&n->params, &n->stem_g, 1, &n->stem_o));
  CHECK(mpnas__ib_declare(&n->params, &n->b1_g, 1, &n->b1_o));
  CHECK(mpnas__ib_declare(&n->params, &n->b2_g, 1, &n->b2_o));
  CHECK(mpnas__conv_declare(&n->params, &n->head_g, 1, &n->head_o));
  n->fc_w = mpnas__params_add(&n->params, 32 * CLASSES, MPNAS__PARAM_FC, 32);
  n->fc_b = mpnas__params_add(&n->params, CLASSES, MPNAS__PARAM_BETA, 0);
  CHECK_EQ_INT(mpnas__params_alloc(&n->params), MPNAS_OK);
  mpnas__rng rng;
  mpnas__rng_seed(&rng, seed, 1);
  mpnas__params_init_values(&n->params, &rng);
  mpnas__arena_init(&n->ws, n->ctx);
}

static void net_destroy(net *n) {
  mpnas__arena_destroy(&n->ws);
  mpnas__params_destroy(&n->params);
  mpnas_context_free(n->ctx);
}

/* One forward (batch statistics) and, if train, backward + optimiser step. Returns the
 * number of correct predictions. */
static int net_step(net *n, const float *x, const int32_t *y, int batch, int train,
                    const mpnas__optim_config *opt, float lr) {
  const mpnas__engine *eng = &n->ctx->engine;
  mpnas__arena *ws = &n->ws;
  mpnas__conv_weights stem_w, head_w;
  mpnas__conv_grads stem_gr, head_gr;
  mpnas__ib_weights b1_w, b2_w;
  mpnas__ib_grads b1_gr, b2_gr;
  mpnas__conv_bind(&n->params, &n->stem_o, &stem_w, &stem_gr);
  mpnas__conv_bind(&n->params, &n->head_o, &head_w, &head_gr);
  mpnas__ib_bind(&n->params, &n->b1_g, &n->b1_o, &b1_w, &b1_gr);
  mpnas__ib_bind(&n->params, &n->b2_g, &n->b2_o, &b2_w, &b2_gr);

  mpnas__conv_tape ts, th;
  mpnas__ib_tape t1, t2;
  CHECK_EQ_INT(mpnas__conv_unit_fwd_train(eng, ws, &n->stem_g, &stem_w, batch, IMG, IMG, x, &ts), MPNAS_OK);
  CHECK_EQ_INT(mpnas__ib_fwd_train(eng, ws, &n->b1_g, &b1_w, batch, IMG, IMG, ts.y, &t1), MPNAS_OK);
  CHECK_EQ_INT(mpnas__ib_fwd_train(eng, ws, &n->b2_g, &b2_w, batch, t1.ho, t1.wo, t1.y, &t2), MPNAS_OK);
  CHECK_EQ_INT(mpnas__conv_unit_fwd_train(eng, ws, &n->head_g, &head_w, batch, t2.ho, t2.wo, t2.y, &th), MPNAS_OK);
  int hw = t2.ho * t2.wo;
  float *pooled = mpnas__arena_floats(ws, (size_t)batch * 32);
  float *logits = mpnas__arena_floats(ws, (size_t)batch * CLASSES);
  float *dlogits = mpnas__arena_floats(ws, (size_t)batch * CLASSES);
  mpnas__gap_fwd(batch, hw, 32, th.y, pooled);
  CHECK_EQ_INT(mpnas__fc_fwd(eng, ws, batch, 32, CLASSES, pooled, mpnas__pw(&n->params, n->fc_w),
                             mpnas__pw(&n->params, n->fc_b), logits), MPNAS_OK);
  int correct = 0;
  mpnas__softmax_xent(batch, CLASSES, logits, y, 0.1f, dlogits, &correct);
  if (train) {
    mpnas__params_zero_grad(&n->params);
    float *dpooled = mpnas__arena_floats(ws, (size_t)batch * 32);
    float *dhead = mpnas__arena_floats(ws, (size_t)batch * hw * 32);
    float *d2 = mpnas__arena_floats(ws, (size_t)batch * hw * 16);
    float *d1 = mpnas__arena_floats(ws, (size_t)batch * hw * 16);
    float *ds = mpnas__arena_floats(ws, (size_t)batch * IMG * IMG * 8);
    CHECK_EQ_INT(mpnas__fc_bwd(eng, ws, batch, 32, CLASSES, pooled, mpnas__pw(&n->params, n->fc_w),
                               dlogits, dpooled, mpnas__pg(&n->params, n->fc_w),
                               mpnas__pg(&n->params, n->fc_b)), MPNAS_OK);
    mpnas__gap_bwd(batch, hw, 32, dpooled, dhead);
    CHECK_EQ_INT(mpnas__conv_unit_bwd(eng, ws, &n->head_g, &head_w, &th, dhead, d2, &head_gr), MPNAS_OK);
    CHECK_EQ_INT(mpnas__ib_bwd(eng, ws, &n->b2_g, &b2_w, &t2, d2, d1, &b2_gr), MPNAS_OK);
    CHECK_EQ_INT(mpnas__ib_bwd(eng, ws, &n->b1_g, &b1_w, &t1, d1, ds, &b1_gr), MPNAS_OK);
    CHECK_EQ_INT(mpnas__conv_unit_bwd(eng, ws, &n->stem_g, &stem_w, &ts, ds, NULL, &stem_gr), MPNAS_OK);
    mpnas__params_step(&n->params, opt, lr);
  }
  CHECK_EQ_INT(mpnas__arena_reset(ws), MPNAS_OK);
  return correct;
}

/* Train from `seed`; returns the training accuracy; leaves the weights in *out. */
static double train(uint64_t seed, int threads, int steps, float **weights_out, size_t *count) {
  static float images[TRAIN * IMG * IMG * CH];
  static int32_t labels[TRAIN];
  make_data(images, labels, 1234);
  net n;
  net_create(&n, seed);
  CHECK_EQ_INT(mpnas_context_set_int(n.ctx, MPNAS_CONTEXT_THREADS, threads), MPNAS_OK);
  mpnas__optim_config opt = {MPNAS__OPT_SGD, 0.9f, 1, 0.9f, 1e-8f, 1e-4f};
  mpnas__rng rng;
  mpnas__rng_seed(&rng, seed, 2);
  float batch_x[BATCH * IMG * IMG * CH];
  int32_t batch_y[BATCH];
  for (int step = 0; step < steps; step++) {
    for (int b = 0; b < BATCH; b++) {
      int i = (int)mpnas__rng_below(&rng, TRAIN);
      memcpy(batch_x + (size_t)b * IMG * IMG * CH, images + (size_t)i * IMG * IMG * CH,
             sizeof(float) * IMG * IMG * CH);
      batch_y[b] = labels[i];
    }
    float lr = mpnas__lr_cosine(0.1f, step, steps, 10);
    net_step(&n, batch_x, batch_y, BATCH, 1, &opt, lr);
  }
  int correct = 0;
  for (int i = 0; i < TRAIN; i += 64)
    correct += net_step(&n, images + (size_t)i * IMG * IMG * CH, labels + i, 64, 0, &opt, 0);
  *count = n.params.total;
  *weights_out = malloc(sizeof(float) * n.params.total);
  memcpy(*weights_out, n.params.w, sizeof(float) * n.params.total);
  net_destroy(&n);
  return (double)correct / TRAIN;
}

static void test_learns_and_is_reproducible(void) {
  double t0 = check_seconds();
  float *w1, *w2;
  size_t n1, n2;
  double acc1 = train(42, 1, STEPS, &w1, &n1);
  double t1 = check_seconds();
  double acc2 = train(42, 1, STEPS, &w2, &n2);
  printf("    training accuracy %.3f (%.2fs per run of %d steps, batch %d)\n", acc1, t1 - t0,
         STEPS, BATCH);
  CHECK_MSG(acc1 >= 0.95, "training accuracy %.3f < 0.95", acc1);
  CHECK(acc1 == acc2);
  CHECK_EQ_INT(n1, n2);
  CHECK_MSG(memcmp(w1, w2, sizeof(float) * n1) == 0, "same seed gave different weights");
  free(w1);
  free(w2);
}

static void test_seed_matters_and_threads_reproducible(void) {
  /* A different seed gives different weights (the seed is really used); two threads
   * are reproducible too. */
  float *w1, *w2, *w3;
  size_t n1, n2, n3;
  train(42, 1, 20, &w1, &n1);
  train(43, 1, 20, &w2, &n2);
  CHECK(memcmp(w1, w2, sizeof(float) * n1) != 0);
  double a = train(7, 2, 20, &w3, &n3);
  float *w4;
  double b = train(7, 2, 20, &w4, &n3);
  CHECK(a == b);
  CHECK_MSG(memcmp(w3, w4, sizeof(float) * n3) == 0, "2 threads not reproducible");
  free(w1); free(w2); free(w3); free(w4);
}

int main(void) {
  RUN(test_learns_and_is_reproducible);
  RUN(test_seed_matters_and_threads_reproducible);
  return check_finish();
}
