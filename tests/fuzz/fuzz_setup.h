/* fuzz_setup.h - what the fuzz targets (tests/fuzz/fuzz_*.c) and their corpus generator
 * (gen_corpus.c) share: tiny spaces, data, models and supernets built the same way in
 * both (a checkpoint loads only into a handle made like the one that wrote it), and the
 * semantic oracle. Everything is small so that one execution takes milliseconds.
 * docs/FUZZING.md describes the targets. */
#ifndef MPNAS_FUZZ_SETUP_H
#define MPNAS_FUZZ_SETUP_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpnas.h"

/* ---- Findings ------------------------------------------------------------------------ */

/* A finding: say what, then abort (libFuzzer keeps the input as a crash artifact). */
#define FZ_FAIL(...)                        \
  do {                                      \
    fprintf(stderr, "fuzz oracle: ");       \
    fprintf(stderr, __VA_ARGS__);           \
    fprintf(stderr, "\n");                  \
    abort();                                \
  } while (0)

/* The failure contract (docs/API-STABILITY.md) for a call that returned st: a failure
 * leaves its own status and a non-empty message of printable ASCII (raw bytes from a
 * file must never reach it), and is never MPNAS_E_INTERNAL. Returns st. */
static inline mpnas_status fz_check(mpnas_context *ctx, mpnas_status st, const char *call) {
  if (st == MPNAS_OK) return st;
  const char *msg = mpnas_context_last_error(ctx);
  if (msg == NULL || msg[0] == '\0') FZ_FAIL("%s: status %d with an empty message", call, st);
  for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
    if (*p < 0x20 || *p > 0x7e) FZ_FAIL("%s: byte 0x%02x in the message: %s", call, *p, msg);
  if (mpnas_context_last_status(ctx) != st)
    FZ_FAIL("%s: returned %d, last status %d (%s)", call, st, mpnas_context_last_status(ctx), msg);
  if (st == MPNAS_E_INTERNAL) FZ_FAIL("%s: MPNAS_E_INTERNAL: %s", call, msg);
  return st;
}

/* After a successful load, the next step or prediction must run: st is MPNAS_OK, or one
 * of the failures the header documents for a legal file or legal settings (training that
 * diverges: MPNAS_E_STATE "diverged"; a search reward the settings make unusable:
 * MPNAS_E_STATE "reward ... not usable"; outputs that overflow float: MPNAS_E_CORRUPT "not
 * finite"). Anything else means the load accepted something it should have refused. */
static inline int fz_ran(mpnas_context *ctx, mpnas_status st, const char *call) {
  fz_check(ctx, st, call);
  if (st == MPNAS_OK) return 1;
  const char *msg = mpnas_context_last_error(ctx);
  if (st == MPNAS_E_STATE && strstr(msg, "diverged") != NULL) return 0;
  if (st == MPNAS_E_STATE && strstr(msg, "reward") && strstr(msg, "not usable")) return 0;
  if (st == MPNAS_E_CORRUPT && strstr(msg, "finite") != NULL) return 0;
  FZ_FAIL("%s after a successful load: status %d: %s", call, st, msg);
  return 0;
}

/* ---- Data ---------------------------------------------------------------------------- */

static inline uint32_t fz_hash(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  return x ^ (x >> 16);
}

/* `count` images of `per` bytes and labels in 0..classes-1, the same for the same seed. */
static inline void fz_data(uint32_t seed, int count, size_t per, int32_t classes,
                           unsigned char *images, int32_t *labels) {
  for (size_t i = 0; i < (size_t)count * per; i++)
    images[i] = (unsigned char)fz_hash(seed * 7919u + (uint32_t)i);
  for (int i = 0; i < count; i++) labels[i] = (int32_t)(fz_hash(seed + 31u * (uint32_t)i) % (uint32_t)classes);
}

/* ---- The checkpoint targets' handles --------------------------------------------------
 * 8x8x1 inputs, stem 2 (3x3, stride 1, ReLU), one stage of 2 layers (2 channels, stride 2,
 * ReLU, the second skippable) choosing k {3, 5} x e {1, 2} (4 ops, 5 with zero), head 4
 * (hard-swish); domains "a" (2 classes) and "b" (3 classes), 12 training images each;
 * seed 1, one thread. As narrow as it gets, so that a checkpoint (weights and two
 * optimiser slots) stays under 10 KB. */
#define FZ_H 8
#define FZ_W 8
#define FZ_C 1
#define FZ_PER (FZ_H * FZ_W * FZ_C)
#define FZ_LAYERS 2
#define FZ_IMAGES 12
static const int32_t FZ_CLASSES[2] = {2, 3};
static const char *const FZ_NAMES[2] = {"a", "b"};
static const int32_t FZ_PATHS[2][FZ_LAYERS] = {{1, 4}, {1, 0}}; /* a node shared; b skips layer 2 */

static inline mpnas_context *fz_context(void) {
  mpnas_context *ctx = NULL;
  if (mpnas_context_create(&ctx) != MPNAS_OK) return NULL;
  mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, 1);
  mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 1);
  return ctx;
}

static inline mpnas_space *fz_space(mpnas_context *ctx) {
  mpnas_space *sp = NULL;
  if (mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp) != MPNAS_OK) return NULL;
  mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_HEIGHT, FZ_H);
  mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_WIDTH, FZ_W);
  mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_CHANNELS, FZ_C);
  mpnas_space_set_int(sp, MPNAS_SPACE_STEM_CHANNELS, 2);
  mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 4);
  mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_ACTIVATION, MPNAS_ACT_HSWISH);
  const int32_t k[] = {3, 5}, e[] = {1, 2};
  mpnas_space_set_choices(sp, -1, k, 2, e, 2);
  if (mpnas_space_add_stage(sp, 2, FZ_LAYERS, 2, MPNAS_ACT_RELU, 1) != MPNAS_OK) {
    mpnas_space_free(sp);
    return NULL;
  }
  return sp;
}

/* The model the model checkpoint target loads into: fz_space, both domains with their
 * paths and data. NULL on failure. */
static inline mpnas_model *fz_model(mpnas_context *ctx, const mpnas_space *sp) {
  static unsigned char images[FZ_IMAGES * FZ_PER];
  static int32_t labels[FZ_IMAGES];
  mpnas_model *m = NULL;
  if (mpnas_model_create(ctx, sp, &m) != MPNAS_OK) return NULL;
  for (int d = 0; d < 2; d++) {
    fz_data(100u + (uint32_t)d, FZ_IMAGES, FZ_PER, FZ_CLASSES[d], images, labels);
    if (mpnas_model_add_domain(m, FZ_NAMES[d], FZ_CLASSES[d], FZ_PATHS[d], FZ_LAYERS, NULL) !=
            MPNAS_OK ||
        mpnas_model_set_data(m, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images, labels,
                             FZ_IMAGES) != MPNAS_OK) {
      mpnas_model_free(m);
      return NULL;
    }
  }
  mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, 4);
  mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, 3);
  mpnas_model_set_int(m, MPNAS_TRAIN_VALID_BATCH, 3);
  mpnas_model_set_int(m, MPNAS_TRAIN_VALID_EVERY, 2);
  mpnas_model_set_double(m, MPNAS_TRAIN_VALIDATION_FRACTION, 0.25);
  return m;
}

/* The supernet the search checkpoint target loads into: fz_space, both domains, data. */
static inline mpnas_supernet *fz_supernet(mpnas_context *ctx, const mpnas_space *sp) {
  static unsigned char images[FZ_IMAGES * FZ_PER];
  static int32_t labels[FZ_IMAGES];
  mpnas_supernet *sn = NULL;
  if (mpnas_supernet_create(ctx, sp, &sn) != MPNAS_OK) return NULL;
  for (int d = 0; d < 2; d++) {
    fz_data(200u + (uint32_t)d, FZ_IMAGES, FZ_PER, FZ_CLASSES[d], images, labels);
    if (mpnas_supernet_add_domain(sn, FZ_NAMES[d], FZ_CLASSES[d], NULL) != MPNAS_OK ||
        mpnas_supernet_set_data(sn, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images, labels,
                                FZ_IMAGES) != MPNAS_OK) {
      mpnas_supernet_free(sn);
      return NULL;
    }
  }
  mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, 4);
  mpnas_supernet_set_int(sn, MPNAS_SEARCH_TRAIN_BATCH, 3);
  mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 3);
  mpnas_supernet_set_double(sn, MPNAS_SEARCH_VALIDATION_FRACTION, 0.25);
  return sn;
}

/* ---- The oracle's steps ---------------------------------------------------------------- */

/* Predict two images of every domain (logits, then probabilities) with a model that
 * loaded or trained: MPNAS_OK with finite outputs (probabilities in [0, 1]), or a
 * documented failure (fz_ran). The caller keeps the model small enough to be quick. */
static inline void fz_predict(mpnas_context *ctx, const mpnas_model *m) {
  const mpnas_space *sp = NULL;
  int64_t h = 0, w = 0, c = 0;
  int32_t D = 0;
  fz_check(ctx, mpnas_model_space(m, &sp), "mpnas_model_space");
  fz_check(ctx, mpnas_model_num_domains(m, &D), "mpnas_model_num_domains");
  mpnas_space_get_int(sp, MPNAS_SPACE_INPUT_HEIGHT, &h);
  mpnas_space_get_int(sp, MPNAS_SPACE_INPUT_WIDTH, &w);
  mpnas_space_get_int(sp, MPNAS_SPACE_INPUT_CHANNELS, &c);
  size_t per = (size_t)(h * w * c);
  mpnas_predictor *p = NULL;
  if (!fz_ran(ctx, mpnas_predictor_create(m, &p), "mpnas_predictor_create")) return;
  unsigned char *images = malloc(2 * per);
  for (int32_t d = 0; d < D && images != NULL; d++) {
    int32_t classes = 0;
    fz_check(ctx, mpnas_model_domain_classes(m, d, &classes), "mpnas_model_domain_classes");
    int32_t labels[2];
    fz_data(300u + (uint32_t)d, 2, per, classes, images, labels);
    float *out = malloc(sizeof(float) * 2 * (size_t)classes);
    for (int32_t o = MPNAS_OUTPUT_LOGITS; o <= MPNAS_OUTPUT_PROBABILITIES && out != NULL; o++) {
      mpnas_status st = mpnas_predictor_run(p, d, MPNAS_DTYPE_U8, images, 2, o, out,
                                            2 * (size_t)classes);
      if (!fz_ran(ctx, st, "mpnas_predictor_run")) continue;
      for (int32_t i = 0; i < 2 * classes; i++)
        if (!isfinite(out[i]) || (o == MPNAS_OUTPUT_PROBABILITIES && !(out[i] >= 0.0f && out[i] <= 1.0f)))
          FZ_FAIL("mpnas_predictor_run returned MPNAS_OK with output %d = %g (domain %d, "
                  "output kind %d)", (int)i, (double)out[i], (int)d, (int)o);
    }
    free(out);
  }
  free(images);
  mpnas_predictor_free(p);
}

/* One training step of a model (with its data set): it runs (fz_ran) and, if it was not
 * at its last step already, the domains that drew images have a finite loss (before any
 * step the loss is NaN, "none yet", whatever a checkpoint says they drew). */
static inline void fz_train_step(mpnas_context *ctx, mpnas_model *m) {
  int64_t before = 0, after = 0;
  mpnas_model_get_int(m, MPNAS_TRAIN_STEP, &before);
  if (!fz_ran(ctx, mpnas_model_train(m, 1, NULL, NULL, 0), "mpnas_model_train")) return;
  mpnas_model_get_int(m, MPNAS_TRAIN_STEP, &after);
  if (after == before) return;
  int32_t D = 0;
  mpnas_model_num_domains(m, &D);
  for (int32_t d = 0; d < D; d++) {
    double loss = 0.0, weight = 0.0, drew = 0.0;
    fz_check(ctx, mpnas_model_domain_stat(m, d, MPNAS_STAT_TRAIN_LOSS, &loss), "domain_stat");
    fz_check(ctx, mpnas_model_domain_stat(m, d, MPNAS_STAT_LOSS_WEIGHT, &weight), "domain_stat");
    fz_check(ctx, mpnas_model_domain_stat(m, d, MPNAS_STAT_BATCH_IMAGES, &drew), "domain_stat");
    if (!isfinite(weight) || (drew > 0 && !isfinite(loss)))
      FZ_FAIL("mpnas_model_train returned MPNAS_OK with domain %d's loss %g, weight %g",
              (int)d, loss, weight);
  }
}

#endif
