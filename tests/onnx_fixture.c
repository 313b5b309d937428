/* onnx_fixture.c - the model and reference outputs of tests/test_onnx.sh: trains a small
 * three-domain model on the embedded synthetic set (examples/synthetic.h; a few seconds)
 * whose paths use every form the ONNX export writes (1x1 expand or none, kernels 3 and
 * 5, squeeze-excite, residual adds, a skipped layer; ReLU, ReLU6, hard-swish, sigmoid),
 * and writes into DIR:
 *   model.mpnas                   the model
 *   domains.txt                   one line per domain: NAME CLASSES
 *   NAME.onnx                     mpnas_model_export_onnx of the domain
 *   NAME.input.f32                64 test images, float32 NCHW raw pixel values 0..255
 *   NAME.logits.f32               the predictor's logits for them, float32 [64][classes]
 * Usage: onnx_fixture DIR. Exits non-zero with a message on any failure. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../examples/synthetic.h"
#include "mpnas.h"

#define DOMAINS 3
#define TRAIN_IMAGES 96
#define TEST_IMAGES 64
#define LAYERS 4

static mpnas_context *ctx;

static void ok(mpnas_status st, const char *what) {
  if (st == MPNAS_OK) return;
  fprintf(stderr, "onnx_fixture: %s: %s\n", what, mpnas_context_last_error(ctx));
  exit(1);
}

static void write_floats(const char *dir, const char *name, const char *ext, const float *v,
                         size_t n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(v, sizeof(float), n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "onnx_fixture: cannot write %s\n", path);
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: onnx_fixture DIR\n");
    return 2;
  }
  const char *dir = argv[1];
  ok(mpnas_context_create(&ctx), "context");
  ok(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, 1), "threads");
  /* Stem 8 (stride 2, ReLU6); stages (16,1,2,ReLU) (16,2,1,hard-swish, skippable)
   * (24,1,2,sigmoid); head 32 hard-swish; k {3,5} x e {1,3}, each with and without SE. */
  mpnas_space *sp = NULL;
  ok(mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp), "space");
  ok(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_CHANNELS, 8), "stem");
  ok(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_STRIDE, 2), "stem stride");
  ok(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 32), "head");
  ok(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_ACTIVATION, MPNAS_ACT_HSWISH), "head act");
  ok(mpnas_space_set_int(sp, MPNAS_SPACE_SE_MODE, MPNAS_SE_CHOICE), "se");
  ok(mpnas_space_add_stage(sp, 16, 1, 2, MPNAS_ACT_RELU, 0), "stage");
  ok(mpnas_space_add_stage(sp, 16, 2, 1, MPNAS_ACT_HSWISH, 1), "stage");
  ok(mpnas_space_add_stage(sp, 24, 1, 2, MPNAS_ACT_SIGMOID, 0), "stage");
  const int32_t k[2] = {3, 5}, e[2] = {1, 3};
  ok(mpnas_space_set_choices(sp, -1, k, 2, e, 2), "choices");
  static const char *const paths[DOMAINS] = {
      "k3e1 k5e3-se k3e1 k3e3",
      "k5e3-se k3e1-se zero k5e1-se",
      "k3e3 k3e3 k5e3-se k3e1",
  };
  mpnas_model *m = NULL;
  ok(mpnas_model_create(ctx, sp, &m), "model");
  uint8_t *x = malloc((size_t)TRAIN_IMAGES * SYN_PIXELS);
  int32_t y[TRAIN_IMAGES];
  float *in = malloc(sizeof(float) * TEST_IMAGES * SYN_PIXELS);
  float *logits = malloc(sizeof(float) * TEST_IMAGES * 16);
  if (!x || !in || !logits) return 1;
  for (int d = 0; d < DOMAINS; d++) {
    int32_t path[LAYERS], id;
    ok(mpnas_space_parse_path(sp, paths[d], path, LAYERS), paths[d]);
    ok(mpnas_model_add_domain(m, SYN_NAMES[d], SYN_CLASSES[d], path, LAYERS, &id), "domain");
    for (int i = 0; i < TRAIN_IMAGES; i++) y[i] = syn_image(d, (uint64_t)i, 3, x + (size_t)i * SYN_PIXELS);
    ok(mpnas_model_set_data(m, id, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, x, y, TRAIN_IMAGES), "data");
  }
  mpnas_space_free(sp);
  ok(mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, 40), "steps");
  ok(mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, 16), "batch");
  ok(mpnas_model_train(m, 0, NULL, NULL, 0), "train");
  ok(mpnas_model_clear_data(m), "clear");
  char path[1024];
  snprintf(path, sizeof path, "%s/model.mpnas", dir);
  ok(mpnas_model_save(m, path), "save");

  mpnas_predictor *pred = NULL;
  ok(mpnas_predictor_create(m, &pred), "predictor");
  snprintf(path, sizeof path, "%s/domains.txt", dir);
  FILE *list = fopen(path, "w");
  if (list == NULL) return 1;
  for (int d = 0; d < DOMAINS; d++) {
    const char *name = SYN_NAMES[d];
    int c = SYN_CLASSES[d];
    fprintf(list, "%s %d\n", name, c);
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    ok(mpnas_model_export_onnx(m, d, path), "export");
    /* Test images (indices past the training ones), NHWC uint8 for the predictor and
     * NCHW float for ONNX. */
    for (int i = 0; i < TEST_IMAGES; i++) {
      uint8_t *img = x + (size_t)i * SYN_PIXELS;
      syn_image(d, 100000 + (uint64_t)i, 3, img);
      for (int ch = 0; ch < SYN_CHANNELS; ch++)
        for (int p = 0; p < SYN_SIZE * SYN_SIZE; p++)
          in[((size_t)i * SYN_CHANNELS + ch) * SYN_SIZE * SYN_SIZE + p] = img[p * SYN_CHANNELS + ch];
    }
    ok(mpnas_predictor_run(pred, d, MPNAS_DTYPE_U8, x, TEST_IMAGES, MPNAS_OUTPUT_LOGITS, logits,
                           (size_t)TEST_IMAGES * c),
       "predict");
    write_floats(dir, name, "input.f32", in, (size_t)TEST_IMAGES * SYN_PIXELS);
    write_floats(dir, name, "logits.f32", logits, (size_t)TEST_IMAGES * c);
  }
  if (fclose(list) != 0) return 1;
  mpnas_predictor_free(pred);
  mpnas_model_free(m);
  mpnas_context_free(ctx);
  free(x);
  free(in);
  free(logits);
  return 0;
}
