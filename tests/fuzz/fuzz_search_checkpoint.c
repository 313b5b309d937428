/* fuzz_search_checkpoint.c - libFuzzer target: a search checkpoint in memory
 * (mpnas_supernet_load_checkpoint_buffer) loaded into the supernet that gen_corpus.c's
 * checkpoints were made from (fz_supernet: same space, domains, data and seed).
 *
 * Half of the inputs (by a hash of the bytes) load into a fresh supernet, half into one
 * that has searched a step already. Oracle: a refused checkpoint leaves a clear status
 * and a message and the supernet's settings, step and controllers as they were; an
 * accepted one must search a step, give every domain a path and finite controller
 * probabilities, and a model made from it must train a step and predict (finite
 * outputs, or the documented failures). docs/FUZZING.md. */
#include "fuzz_mutator.h"
#include "fuzz_setup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mpnas_context *ctx; /* one for the whole run */
static mpnas_space *space;

/* What a refused load must leave alone: every setting, the step, the controllers. */
#define NPARAMS 31
#define NPROBS 64
typedef struct snapshot {
  double v[NPARAMS];
  double probs[NPROBS];
} snapshot;

static void take(const mpnas_supernet *sn, snapshot *s) {
  static const int32_t INTS[] = {MPNAS_SEARCH_METHOD, MPNAS_SEARCH_STEPS,
                                 MPNAS_SEARCH_TRAIN_BATCH, MPNAS_SEARCH_VALID_BATCH,
                                 MPNAS_SEARCH_COST, MPNAS_SEARCH_REWARD, MPNAS_SEARCH_STEP,
                                 MPNAS_ABDP_SAMPLING, MPNAS_ABDP_SIGNAL};
  static const int32_t REALS[] = {
      MPNAS_SEARCH_WARMUP_FRACTION, MPNAS_SEARCH_LEARNING_RATE, MPNAS_SEARCH_MOMENTUM,
      MPNAS_SEARCH_WEIGHT_DECAY, MPNAS_SEARCH_LABEL_SMOOTHING, MPNAS_SEARCH_RL_LEARNING_RATE,
      MPNAS_SEARCH_RL_DELAY_FRACTION, MPNAS_SEARCH_RL_RAMP, MPNAS_SEARCH_ENTROPY_BONUS,
      MPNAS_SEARCH_COST_BETA, MPNAS_SEARCH_COST_TARGET, MPNAS_SEARCH_SHARING_GAMMA,
      MPNAS_SEARCH_VALIDATION_FRACTION, MPNAS_ABDP_TAU, MPNAS_ABDP_GAMMA,
      MPNAS_ABDP_TEMPERATURE, MPNAS_ABDP_LOSS_MOMENTUM, MPNAS_ABDP_KPI_MOMENTUM,
      MPNAS_ABDP_W_MIN, MPNAS_ABDP_W_MAX};
  memset(s, 0, sizeof *s);
  size_t k = 0;
  for (size_t i = 0; i < sizeof INTS / sizeof INTS[0]; i++) {
    int64_t v = 0;
    fz_check(ctx, mpnas_supernet_get_int(sn, INTS[i], &v), "mpnas_supernet_get_int");
    s->v[k++] = (double)v;
  }
  for (size_t i = 0; i < sizeof REALS / sizeof REALS[0]; i++)
    fz_check(ctx, mpnas_supernet_get_double(sn, REALS[i], &s->v[k++]),
             "mpnas_supernet_get_double");
  /* The controllers exist once the search has started. */
  size_t p = 0;
  for (int32_t d = 0; d < 2; d++) {
    mpnas_controller *c = NULL;
    if (mpnas_supernet_controller((mpnas_supernet *)(uintptr_t)sn, d, &c) != MPNAS_OK) break;
    for (int32_t l = 0; l < FZ_LAYERS; l++, p += 5)
      fz_check(ctx, mpnas_controller_probabilities(c, l, s->probs + p, 5), "probabilities");
  }
  mpnas_context_clear_error(ctx);
}

/* After a step: every domain has a path within its layers' ops and a controller whose
 * probabilities are finite and add up to 1. */
static void check_controllers(mpnas_supernet *sn) {
  for (int32_t d = 0; d < 2; d++) {
    int32_t path[FZ_LAYERS];
    if (!fz_ran(ctx, mpnas_supernet_path(sn, d, path, FZ_LAYERS), "mpnas_supernet_path")) continue;
    mpnas_controller *c = NULL;
    fz_check(ctx, mpnas_supernet_controller(sn, d, &c), "mpnas_supernet_controller");
    for (int32_t l = 0; l < FZ_LAYERS && c != NULL; l++) {
      int32_t ops = 0;
      mpnas_space_num_ops(space, l, &ops);
      if (path[l] < 0 || path[l] >= ops) FZ_FAIL("domain %d: op %d at layer %d", d, path[l], l);
      double probs[16], sum = 0.0;
      fz_check(ctx, mpnas_controller_probabilities(c, l, probs, 16), "probabilities");
      for (int32_t o = 0; o < ops; o++) sum += probs[o];
      if (!(fabs(sum - 1.0) < 1e-6))
        FZ_FAIL("domain %d, layer %d: the controller's probabilities add up to %g", d, l, sum);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (ctx == NULL && ((ctx = fz_context()) == NULL || (space = fz_space(ctx)) == NULL))
    FZ_FAIL("no context or space");
  mpnas_supernet *sn = fz_supernet(ctx, space);
  if (sn == NULL) FZ_FAIL("fz_supernet: %s", mpnas_context_last_error(ctx));
  int searched = mpnas__crc32(0, data, size) & 1;
  if (searched && mpnas_supernet_search(sn, 1, NULL, NULL, 0) != MPNAS_OK)
    FZ_FAIL("the first step: %s", mpnas_context_last_error(ctx));
  snapshot before, after;
  take(sn, &before);

  mpnas_status st = mpnas_supernet_load_checkpoint_buffer(sn, data, size);
  fz_check(ctx, st, "mpnas_supernet_load_checkpoint_buffer");
  if (st != MPNAS_OK) {
    take(sn, &after);
    if (memcmp(&before, &after, sizeof before) != 0)
      FZ_FAIL("a refused checkpoint changed the supernet's settings, step or controllers");
    mpnas_supernet_free(sn);
    return 0;
  }
  if (fz_ran(ctx, mpnas_supernet_search(sn, 1, NULL, NULL, 0), "mpnas_supernet_search"))
    check_controllers(sn);
  mpnas_model *m = NULL;
  if (fz_ran(ctx, mpnas_model_create_from_supernet(sn, &m), "mpnas_model_create_from_supernet")) {
    fz_check(ctx, mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, 3), "set batch");
    fz_check(ctx, mpnas_model_set_int(m, MPNAS_TRAIN_VALID_BATCH, 3), "set valid batch");
    fz_train_step(ctx, m);
    fz_predict(ctx, m);
    mpnas_model_free(m);
  }
  mpnas_supernet_free(sn);
  return 0;
}
