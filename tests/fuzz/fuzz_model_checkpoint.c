/* fuzz_model_checkpoint.c - libFuzzer target: a model checkpoint in memory
 * (mpnas_model_load_checkpoint_buffer) loaded into the model that gen_corpus.c's
 * checkpoints were made from (fz_model: same space, domains, paths, data and seed).
 *
 * Half of the inputs (by a hash of the bytes) load into a fresh model, half into one
 * that has trained a step already (its layout built, its data split). Oracle: a refused
 * checkpoint leaves a clear status and a message and the model exactly as it was (its
 * saved bytes and step); an accepted one must train a step (finite loss, or the
 * documented divergence) and predict (finite outputs, or MPNAS_E_CORRUPT for weights
 * that overflow float). docs/FUZZING.md. */
#include "fuzz_mutator.h"
#include "fuzz_setup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mpnas_context *ctx; /* one for the whole run */
static mpnas_space *space;

/* The model's file bytes (malloc), or NULL when it has no weights yet. */
static unsigned char *saved(const mpnas_model *m, size_t *n) {
  *n = 0;
  if (mpnas_model_save_buffer(m, NULL, 0, n) != MPNAS_OK) return NULL;
  unsigned char *p = malloc(*n);
  if (p != NULL && mpnas_model_save_buffer(m, p, *n, n) != MPNAS_OK) FZ_FAIL("save failed");
  return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (ctx == NULL && ((ctx = fz_context()) == NULL || (space = fz_space(ctx)) == NULL))
    FZ_FAIL("no context or space");
  mpnas_model *m = fz_model(ctx, space);
  if (m == NULL) FZ_FAIL("fz_model: %s", mpnas_context_last_error(ctx));
  int trained = mpnas__crc32(0, data, size) & 1;
  if (trained && mpnas_model_train(m, 1, NULL, NULL, 0) != MPNAS_OK)
    FZ_FAIL("the first step: %s", mpnas_context_last_error(ctx));
  size_t nbefore = 0, nafter = 0;
  unsigned char *before = saved(m, &nbefore);
  int64_t step_before = -1, step_after = -2;
  mpnas_model_get_int(m, MPNAS_TRAIN_STEP, &step_before);

  mpnas_context_clear_error(ctx);
  mpnas_status st = mpnas_model_load_checkpoint_buffer(m, data, size);
  fz_check(ctx, st, "mpnas_model_load_checkpoint_buffer");
  if (st != MPNAS_OK) {
    unsigned char *after = saved(m, &nafter);
    mpnas_model_get_int(m, MPNAS_TRAIN_STEP, &step_after);
    if (step_after != step_before || nafter != nbefore ||
        (nbefore > 0 && memcmp(before, after, nbefore) != 0))
      FZ_FAIL("a refused checkpoint changed the model (step %lld -> %lld, %zu -> %zu bytes)",
              (long long)step_before, (long long)step_after, nbefore, nafter);
    free(after);
  } else {
    fz_train_step(ctx, m);
    fz_predict(ctx, m);
  }
  free(before);
  mpnas_model_free(m);
  return 0;
}
