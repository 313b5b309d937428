/* fuzz_model.c - libFuzzer target: a model file in memory (mpnas_model_load_buffer).
 *
 * Oracle: a failing load leaves a clear status and a message (fz_check) and no model. A
 * load that succeeds must give a model that works: saving it and loading the bytes again
 * is a fixed point, it predicts (finite outputs, or MPNAS_E_CORRUPT for weights that
 * overflow float), and after data is handed in it trains a step (finite loss, or the
 * documented divergence) and predicts again. A quantised model (format version 2 or 3) also
 * predicts in int8; an int8-only one refuses to train with MPNAS_E_STATE (and its
 * default predictor is the int8 one). docs/FUZZING.md. */
#include "fuzz_mutator.h"
#include "fuzz_setup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Larger models (the space comes from the file: 4096 x 4096 inputs are legal) are loaded
 * and freed but not run, so that an execution stays within milliseconds. */
#define MAX_MACS 4000000
#define MAX_PIXELS 12288
#define IMAGES 10

static mpnas_context *ctx; /* one for the whole run */

/* save(m) must load again and save to the same bytes. */
static void check_fixed_point(const mpnas_model *m) {
  size_t n = 0, n2 = 0;
  fz_check(ctx, mpnas_model_save_buffer(m, NULL, 0, &n), "mpnas_model_save_buffer");
  unsigned char *a = malloc(n), *b = malloc(n);
  if (a == NULL || b == NULL) FZ_FAIL("out of memory for %zu bytes", n);
  if (mpnas_model_save_buffer(m, a, n, &n) != MPNAS_OK)
    FZ_FAIL("a loaded model does not save: %s", mpnas_context_last_error(ctx));
  mpnas_model *again = NULL;
  if (mpnas_model_load_buffer(ctx, a, n, &again) != MPNAS_OK)
    FZ_FAIL("a saved model does not load: %s", mpnas_context_last_error(ctx));
  if (mpnas_model_save_buffer(again, b, n, &n2) != MPNAS_OK || n2 != n || memcmp(a, b, n) != 0)
    FZ_FAIL("save(load(save(m))) differs from save(m) (%zu and %zu bytes)", n, n2);
  mpnas_model_free(again);
  free(a);
  free(b);
}

/* Two images of every domain through an int8 predictor: finite outputs, or a documented
 * failure (fz_ran). */
static void predict_int8(const mpnas_model *m, size_t per) {
  int32_t D = 0;
  mpnas_model_num_domains(m, &D);
  mpnas_predictor *p = NULL;
  if (!fz_ran(ctx, mpnas_predictor_create(m, &p), "mpnas_predictor_create")) return;
  if (!fz_ran(ctx, mpnas_predictor_set_precision(p, MPNAS_PRECISION_INT8),
              "mpnas_predictor_set_precision")) {
    mpnas_predictor_free(p);
    return;
  }
  unsigned char *images = malloc(2 * per);
  for (int32_t d = 0; d < D && images != NULL; d++) {
    int32_t classes = 0, labels[2];
    mpnas_model_domain_classes(m, d, &classes);
    fz_data(350u + (uint32_t)d, 2, per, classes, images, labels);
    float *out = malloc(sizeof(float) * 2 * (size_t)classes);
    if (out != NULL && fz_ran(ctx, mpnas_predictor_run(p, d, MPNAS_DTYPE_U8, images, 2,
                                                       MPNAS_OUTPUT_LOGITS, out,
                                                       2 * (size_t)classes),
                              "mpnas_predictor_run (int8)"))
      for (int32_t i = 0; i < 2 * classes; i++)
        if (!isfinite(out[i])) FZ_FAIL("an int8 predictor returned %g", (double)out[i]);
    free(out);
  }
  free(images);
  mpnas_predictor_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (ctx == NULL && (ctx = fz_context()) == NULL) FZ_FAIL("no context");
  mpnas_context_clear_error(ctx);
  mpnas_model *m = NULL;
  mpnas_status st = mpnas_model_load_buffer(ctx, data, size, &m);
  fz_check(ctx, st, "mpnas_model_load_buffer");
  if (st != MPNAS_OK) {
    if (m != NULL) FZ_FAIL("a failed load returned a model");
    return 0;
  }
  check_fixed_point(m);

  const mpnas_space *sp = NULL;
  int64_t h = 0, w = 0, c = 0, macs = 0;
  int32_t D = 0;
  mpnas_model_space(m, &sp);
  mpnas_space_get_int(sp, MPNAS_SPACE_INPUT_HEIGHT, &h);
  mpnas_space_get_int(sp, MPNAS_SPACE_INPUT_WIDTH, &w);
  mpnas_space_get_int(sp, MPNAS_SPACE_INPUT_CHANNELS, &c);
  fz_check(ctx, mpnas_model_get_int(m, MPNAS_MODEL_MACS, &macs), "MPNAS_MODEL_MACS");
  fz_check(ctx, mpnas_model_num_domains(m, &D), "mpnas_model_num_domains");
  if (macs > MAX_MACS || h * w * c > MAX_PIXELS) {
    mpnas_model_free(m);
    return 0;
  }
  fz_predict(ctx, m);
  int64_t quantized = 0;
  fz_check(ctx, mpnas_model_get_int(m, MPNAS_MODEL_QUANTIZED, &quantized), "QUANTIZED");
  if (quantized > 0) predict_int8(m, (size_t)(h * w * c));
  if (quantized == 2) {
    mpnas_status ts = mpnas_model_train(m, 1, NULL, NULL, 0);
    fz_check(ctx, ts, "mpnas_model_train");
    if (ts != MPNAS_E_STATE || strstr(mpnas_context_last_error(ctx), "int8 only") == NULL)
      FZ_FAIL("an int8-only model trained (status %d)", (int)ts);
    mpnas_model_free(m);
    return 0;
  }

  /* Training goes on from the loaded state with the file's settings, on a few images of
   * each domain; only the batch sizes are capped (for speed). */
  size_t per = (size_t)(h * w * c);
  unsigned char *images = malloc(IMAGES * per);
  int32_t labels[IMAGES];
  for (int32_t d = 0; d < D && images != NULL; d++) {
    int32_t classes = 0;
    mpnas_model_domain_classes(m, d, &classes);
    fz_data(400u + (uint32_t)d, IMAGES, per, classes, images, labels);
    if (fz_check(ctx, mpnas_model_set_data(m, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images,
                                           labels, IMAGES),
                 "mpnas_model_set_data") != MPNAS_OK)
      FZ_FAIL("a loaded model refuses its data: %s", mpnas_context_last_error(ctx));
  }
  free(images);
  int64_t batch = 0, valid_batch = 0;
  mpnas_model_get_int(m, MPNAS_TRAIN_BATCH, &batch);
  mpnas_model_get_int(m, MPNAS_TRAIN_VALID_BATCH, &valid_batch);
  if (batch > 4) fz_check(ctx, mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, 4), "set batch");
  if (valid_batch > 4)
    fz_check(ctx, mpnas_model_set_int(m, MPNAS_TRAIN_VALID_BATCH, 4), "set valid batch");
  fz_train_step(ctx, m);
  fz_predict(ctx, m);
  mpnas_model_free(m);
  return 0;
}
