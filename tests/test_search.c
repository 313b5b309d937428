/* test_search.c - the search phase through the public API: spaces, controllers, the
 * search loop, the comparison methods, cost and sharing terms, checkpoints, and bad
 * input. Searches here use tiny spaces so each runs in seconds. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mpnas.h"

#define OKC(call) CHECK_MSG((call) == MPNAS_OK, "%s failed: %s", #call, mpnas_context_last_error(ctx))

/* ---- Synthetic data ---------------------------------------------------------------- */
static uint64_t rng_state;
static uint32_t rnd(void) {
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (uint32_t)(rng_state >> 33);
}

#define IMG_H 12
#define IMG_W 36
#define IMG (IMG_H * IMG_W)

/* "wide": two 2x2 dots on one row, 10 px apart (class 0) or 16 px apart (class 1).
 * Telling them apart needs a receptive field covering a whole pair: the tiny space's
 * all-3x3 path has a receptive field of 9 (stem 3 + 2 per layer), so it sees one dot at
 * a time and global pooling of dot detectors cannot tell the distance; one 7x7 layer
 * gives 13 and sees the near pair. The dots stay >= 9 px from the left and right
 * borders, so no unit that sees the zero padding ever sees a dot (positions near a
 * border would otherwise leak the class to a small receptive field).
 * "easy": one dot (class 0) or two dots (class 1): counting works at any receptive
 * field, so the cheapest (3x3) path is enough and the cost term prefers it. */
static void make_domain(int wide, int n, uint64_t seed, uint8_t *img, int32_t *lab) {
  rng_state = seed;
  for (int i = 0; i < n; i++) {
    int cls = (int)(rnd() % 2);
    lab[i] = cls;
    uint8_t *p = img + (size_t)i * IMG;
    for (int k = 0; k < IMG; k++) p[k] = (uint8_t)(rnd() % 40);
    int y = 2 + (int)(rnd() % (IMG_H - 5)), xs[2], nd = 2;
    xs[0] = 9 + (int)(rnd() % 4); /* 9..12 */
    if (wide) {
      xs[1] = xs[0] + (cls ? 16 : 10); /* <= 28, 2 px wide: ends >= 6 px from the border */
    } else {
      xs[1] = 20 + (int)(rnd() % 6);
      nd = cls ? 2 : 1;
    }
    for (int d = 0; d < nd; d++)
      for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) p[(y + dy) * IMG_W + xs[d] + dx] = 255;
  }
}

/* A tiny space: 12x36x1 input, stem 8 ch, one stage of 3 layers choosing k3 or k7
 * (expansion 2), no skips, head 16. */
static mpnas_space *tiny_space(mpnas_context *ctx) {
  mpnas_space *sp = NULL;
  CHECK_EQ_INT(mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp), MPNAS_OK);
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_HEIGHT, IMG_H));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_WIDTH, IMG_W));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_CHANNELS, 1));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_CHANNELS, 8));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 16));
  OKC(mpnas_space_add_stage(sp, 8, 3, 1, MPNAS_ACT_RELU, 0));
  const int32_t k[] = {3, 7}, e[] = {2};
  OKC(mpnas_space_set_choices(sp, -1, k, 2, e, 1));
  return sp;
}

/* A supernet over the tiny space with `nd` domains: wide[d] says which generator (0
 * easy, 1 wide, 2 "noise": easy images with random labels, nothing to learn), sizes[d]
 * how many images (NULL: 400 each). */
static mpnas_supernet *sized_supernet(mpnas_context *ctx, mpnas_space *sp, int nd,
                                      const int *wide, const int *sizes, int steps) {
  mpnas_supernet *sn = NULL;
  OKC(mpnas_supernet_create(ctx, sp, &sn));
  int nmax = 400;
  for (int d = 0; sizes && d < nd; d++)
    if (sizes[d] > nmax) nmax = sizes[d];
  uint8_t *img = malloc((size_t)nmax * IMG);
  int32_t *lab = malloc(sizeof(int32_t) * (size_t)nmax);
  for (int d = 0; d < nd; d++) {
    int n = sizes ? sizes[d] : 400;
    char name[16];
    snprintf(name, sizeof name, "%s%d", wide[d] == 2 ? "noise" : wide[d] ? "wide" : "easy", d);
    int32_t di = -1;
    OKC(mpnas_supernet_add_domain(sn, name, 2, &di));
    CHECK_EQ_INT(di, d);
    make_domain(wide[d] == 1, n, 100 + (uint64_t)d, img, lab);
    if (wide[d] == 2)
      for (int i = 0; i < n; i++) lab[i] = (int32_t)(rnd() % 2);
    OKC(mpnas_supernet_set_data(sn, di, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, img, lab, n));
  }
  free(img);
  free(lab);
  OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, steps));
  OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_TRAIN_BATCH, 16));
  OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 64));
  OKC(mpnas_supernet_set_double(sn, MPNAS_SEARCH_VALIDATION_FRACTION, 0.25));
  return sn;
}

static mpnas_supernet *tiny_supernet(mpnas_context *ctx, mpnas_space *sp, int nd,
                                     const int *wide, int steps) {
  return sized_supernet(ctx, sp, nd, wide, NULL, steps);
}

static int receptive_field(const mpnas_space *sp, const int32_t *path, int layers) {
  int rf = 3; /* the stem */
  for (int l = 0; l < layers; l++) {
    int32_t k, e, se;
    mpnas_space_op_info(sp, l, path[l], &k, &e, &se);
    rf += k > 0 ? k - 1 : 0;
  }
  return rf;
}

/* ---- Spaces ---------------------------------------------------------------------------- */

static void test_space_presets(void) {
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas_space *sp = NULL;
  int64_t v;
  /* 32 px preset: 10 searchable layers; first layers of stages cannot skip. */
  OKC(mpnas_space_create(ctx, MPNAS_PRESET_32PX, &sp));
  OKC(mpnas_space_get_int(sp, MPNAS_SPACE_NUM_LAYERS, &v));
  CHECK_EQ_INT(v, 10);
  int32_t nops;
  OKC(mpnas_space_num_ops(sp, 0, &nops));
  CHECK_EQ_INT(nops, 6); /* k{3,5,7} x e{3,6} */
  OKC(mpnas_space_num_ops(sp, 1, &nops));
  CHECK_EQ_INT(nops, 7); /* + zero */
  int32_t k, e, se;
  OKC(mpnas_space_op_info(sp, 1, 0, &k, &e, &se));
  CHECK(k == 0 && e == 0 && se == 0);
  OKC(mpnas_space_op_info(sp, 1, 1, &k, &e, &se));
  CHECK(k == 3 && e == 3 && se == 0);
  OKC(mpnas_space_op_info(sp, 1, 6, &k, &e, &se));
  CHECK(k == 7 && e == 6);
  /* Path text round trip and cost. */
  int32_t path[10] = {0, 0, 1, 2, 3, 4, 5, 6, 1, 0}, back[10];
  char text[256];
  size_t need = 0;
  OKC(mpnas_space_path_string(sp, path, 10, text, sizeof text, &need));
  CHECK(strncmp(text, "k3e3 zero k5e3 k5e3", 19) == 0);
  CHECK_EQ_INT(need, strlen(text) + 1);
  OKC(mpnas_space_parse_path(sp, text, back, 10));
  CHECK(memcmp(path, back, sizeof path) == 0);
  CHECK_EQ_INT(mpnas_space_path_string(sp, path, 10, text, 5, &need), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_space_parse_path(sp, "k3e3 k9e9", back, 10), MPNAS_E_INVALID_ARGUMENT);
  CHECK(strstr(mpnas_context_last_error(ctx), "k9e9") != NULL);
  int64_t macs_small, params_small, macs_big, params_big;
  int32_t small[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, bigp[10] = {5, 6, 5, 6, 6, 5, 6, 6, 5, 6};
  OKC(mpnas_space_path_cost(sp, small, 10, 10, &macs_small, &params_small));
  OKC(mpnas_space_path_cost(sp, bigp, 10, 10, &macs_big, &params_big));
  CHECK(macs_small < macs_big && params_small < params_big);
  printf("    32px preset: smallest path %.1f MMAC / %.0f k params, largest %.1f MMAC / %.0f k\n",
         macs_small / 1e6, params_small / 1e3, macs_big / 1e6, params_big / 1e3);
  mpnas_space_free(sp);

  /* MBV2-9: one fixed path; BENCHMARKS.md says ~0.42 M parameters, ~83 MFLOP. */
  OKC(mpnas_space_create(ctx, MPNAS_PRESET_MBV2_9, &sp));
  OKC(mpnas_space_get_int(sp, MPNAS_SPACE_NUM_LAYERS, &v));
  CHECK_EQ_INT(v, 9);
  int32_t fixed[9] = {0};
  for (int l = 0; l < 9; l++) {
    OKC(mpnas_space_num_ops(sp, l, &nops));
    CHECK_EQ_INT(nops, 1);
  }
  int64_t macs, params;
  OKC(mpnas_space_path_cost(sp, fixed, 9, 10, &macs, &params));
  printf("    MBV2-9: %.3f M parameters, %.1f MFLOP\n", params / 1e6, 2.0 * macs / 1e6);
  CHECK(params > 400000 && params < 440000);
  CHECK(2 * macs > 75000000 && 2 * macs < 90000000);
  mpnas_space_free(sp);

  OKC(mpnas_space_create(ctx, MPNAS_PRESET_MOBILENET_V3, &sp));
  OKC(mpnas_space_get_int(sp, MPNAS_SPACE_INPUT_HEIGHT, &v));
  CHECK_EQ_INT(v, 224);
  OKC(mpnas_space_num_ops(sp, 2, &nops));
  CHECK_EQ_INT(nops, 1 + 3 * 2 * 2); /* zero + k x e x SE on/off */
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

static void test_space_errors(void) {
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas_space *sp = NULL;
  CHECK_EQ_INT(mpnas_space_create(NULL, 0, &sp), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_space_create(ctx, 99, &sp), MPNAS_E_OUT_OF_RANGE);
  CHECK(sp == NULL);
  OKC(mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp));
  CHECK_EQ_INT(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_KERNEL, 4), MPNAS_E_OUT_OF_RANGE);
  CHECK(strstr(mpnas_context_last_error(ctx), "odd") != NULL);
  CHECK_EQ_INT(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_HEIGHT, 0), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_space_set_int(sp, 1234, 0), MPNAS_E_UNKNOWN_PARAMETER);
  CHECK_EQ_INT(mpnas_space_set_int(sp, MPNAS_SPACE_NUM_LAYERS, 3), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_space_add_stage(sp, 16, 2, 3, MPNAS_ACT_RELU, 1), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_space_add_stage(sp, 16, 0, 1, MPNAS_ACT_RELU, 1), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_space_add_stage(sp, 16, 2, 1, 77, 1), MPNAS_E_OUT_OF_RANGE);
  OKC(mpnas_space_add_stage(sp, 16, 2, 1, MPNAS_ACT_RELU, 1));
  const int32_t dup[] = {3, 3}, even[] = {4}, e[] = {2};
  CHECK_EQ_INT(mpnas_space_set_choices(sp, 0, dup, 2, e, 1), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_space_set_choices(sp, 0, even, 1, e, 1), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_space_set_choices(sp, 5, e, 1, e, 1), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_space_set_choices(sp, 0, NULL, 1, e, 1), MPNAS_E_INVALID_ARGUMENT);
  int32_t nops;
  CHECK_EQ_INT(mpnas_space_num_ops(sp, 2, &nops), MPNAS_E_OUT_OF_RANGE);
  int32_t path[2] = {0, 99};
  int64_t m, p;
  CHECK_EQ_INT(mpnas_space_path_cost(sp, path, 2, 10, &m, &p), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_space_path_cost(sp, path, 3, 10, &m, &p), MPNAS_E_INVALID_ARGUMENT);
  mpnas_space_free(sp);
  mpnas_space_free(NULL);
  mpnas_context_free(ctx);
}

static void test_jaccard_and_usage(void) {
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas_space *sp = NULL;
  OKC(mpnas_space_create(ctx, MPNAS_PRESET_32PX, &sp));
  /* Domain 0 and 1 share layers 0-4 (5 nodes) and differ on 5-9; domain 2 skips every
   * skippable layer (zero ops are not nodes). */
  int32_t paths[3][10] = {{1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
                          {1, 1, 1, 1, 1, 2, 2, 2, 2, 2},
                          {1, 0, 1, 0, 0, 1, 0, 0, 1, 0}};
  double j[9];
  OKC(mpnas_space_jaccard(sp, &paths[0][0], 3, 10, j, 9));
  CHECK_NEAR(j[0], 1.0, 1e-12);
  CHECK_NEAR(j[1], 5.0 / 15.0, 1e-12); /* |A n B| = 5, |A u B| = 15 */
  CHECK_NEAR(j[3], j[1], 1e-12);
  /* Domain 2 uses layers 0 (op 1), 2 (op 1), 5 (op 1), 8 (op 1): 4 nodes, all in A. */
  CHECK_NEAR(j[2], 4.0 / 10.0, 1e-12);
  int32_t users;
  OKC(mpnas_space_node_users(sp, &paths[0][0], 3, 10, 0, 1, &users));
  CHECK_EQ_INT(users, 3);
  OKC(mpnas_space_node_users(sp, &paths[0][0], 3, 10, 5, 2, &users));
  CHECK_EQ_INT(users, 1);
  OKC(mpnas_space_node_users(sp, &paths[0][0], 3, 10, 5, 3, &users));
  CHECK_EQ_INT(users, 0);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

/* ---- Controllers ------------------------------------------------------------------------- */

static void test_controller_api_converges(void) {
  /* A synthetic reward whose best path is known: the fraction of layers matching a
   * hidden target. With RL lr 0.1 the target's probability passes 0.9 in every layer
   * within 600 updates (measured: median ~170 for 7 layers x 7 ops). */
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 5));
  int32_t ops[7] = {7, 7, 7, 7, 7, 7, 7}, target[7] = {3, 0, 6, 2, 5, 1, 4};
  mpnas_controller *c = NULL;
  OKC(mpnas_controller_create(ctx, ops, 7, &c));
  int converged_at = -1;
  for (int it = 0; it < 600 && converged_at < 0; it++) {
    int32_t path[7];
    OKC(mpnas_controller_sample(c, path, 7));
    double r = 0;
    for (int l = 0; l < 7; l++) r += path[l] == target[l];
    OKC(mpnas_controller_update(c, path, 7, r / 7.0, 0.1, 0.0));
    double probs[7];
    int all = 1;
    for (int l = 0; l < 7; l++) {
      OKC(mpnas_controller_probabilities(c, l, probs, 7));
      all &= probs[target[l]] > 0.9;
    }
    if (all) converged_at = it + 1;
  }
  printf("    converged after %d updates\n", converged_at);
  CHECK(converged_at > 0);
  int32_t best[7];
  OKC(mpnas_controller_argmax(c, best, 7));
  CHECK(memcmp(best, target, sizeof best) == 0);
  double maxp[7], logp;
  OKC(mpnas_controller_max_probabilities(c, maxp, 7));
  for (int l = 0; l < 7; l++) CHECK(maxp[l] > 0.9);
  OKC(mpnas_controller_log_probability(c, best, 7, &logp));
  CHECK(logp > 7 * log(0.9));
  /* Errors. */
  int32_t bad[7] = {0, 0, 0, 0, 0, 0, 9};
  CHECK_EQ_INT(mpnas_controller_update(c, bad, 7, 1.0, 0.1, 0), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_controller_update(c, best, 6, 1.0, 0.1, 0), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_controller_update(c, best, 7, 1.0, -1.0, 0), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_controller_probabilities(c, 7, maxp, 7), MPNAS_E_OUT_OF_RANGE);
  mpnas_controller_free(c);
  int32_t zero_ops[2] = {3, 0};
  CHECK(mpnas_controller_create(ctx, zero_ops, 2, &c) != MPNAS_OK);
  CHECK(c == NULL);
  mpnas_context_free(ctx);
}

/* ---- Search ------------------------------------------------------------------------------- */

typedef struct {
  int calls;
  int64_t last_step;
  int cancel_at;
} progress_log;

static int32_t on_progress(void *user, mpnas_supernet *sn, int64_t step, int64_t total) {
  progress_log *p = user;
  (void)sn;
  (void)total;
  p->calls++;
  p->last_step = step;
  return p->cancel_at > 0 && step >= p->cancel_at;
}

static void read_paths(mpnas_supernet *sn, int nd, int32_t *paths) {
  for (int d = 0; d < nd; d++) mpnas_supernet_path(sn, d, paths + d * 3, 3);
}

static void test_search_known_answer(void) {
  /* Two "wide" domains need a 7x7 layer somewhere (receptive field >= 13); two "easy"
   * domains do not, and the MAC cost term makes them prefer the cheap 3x3 everywhere, so
   * the two easy domains share every node. See make_domain for why this is known. */
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 1));
  mpnas_space *sp = tiny_space(ctx);
  int wide[4] = {1, 1, 0, 0};
  mpnas_supernet *sn = tiny_supernet(ctx, sp, 4, wide, 300);
  /* The supernet must learn the wide task before the controllers commit: half the
   * budget is warmup (random ops) and RL delay. */
  OKC(mpnas_supernet_set_double(sn, MPNAS_SEARCH_WARMUP_FRACTION, 0.5));
  OKC(mpnas_supernet_set_double(sn, MPNAS_SEARCH_RL_DELAY_FRACTION, 0.5));
  /* A cost target at the all-3x3 path: any 7x7 costs reward, so it is chosen only when
   * it buys accuracy. */
  int32_t cheap[3] = {0, 0, 0};
  int64_t macs, params;
  OKC(mpnas_space_path_cost(sp, cheap, 3, 2, &macs, &params));
  OKC(mpnas_supernet_set_double(sn, MPNAS_SEARCH_COST_TARGET, (double)macs));
  progress_log log = {0, 0, 0};
  double t0 = check_seconds();
  OKC(mpnas_supernet_search(sn, 0, on_progress, &log, 50));
  printf("    search: %.1fs for 300 steps of 4 domains\n", check_seconds() - t0);
  CHECK_EQ_INT(log.calls, 6);
  CHECK_EQ_INT(log.last_step, 300);
  int32_t paths[12];
  read_paths(sn, 4, paths);
  for (int d = 0; d < 4; d++) {
    char text[64];
    double acc;
    mpnas_space_path_string(sp, paths + 3 * d, 3, text, sizeof text, NULL);
    mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_VALID_ACCURACY, &acc);
    printf("    domain %d (%s): %s  RF %d  valid acc %.2f\n", d, wide[d] ? "wide" : "easy", text,
           receptive_field(sp, paths + 3 * d, 3), acc);
  }
  for (int d = 0; d < 2; d++) CHECK(receptive_field(sp, paths + 3 * d, 3) >= 13);
  for (int d = 0; d < 4; d++) {
    double acc;
    OKC(mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_VALID_ACCURACY, &acc));
    CHECK(acc >= 0.9);
  }
  for (int d = 2; d < 4; d++) CHECK_EQ_INT(receptive_field(sp, paths + 3 * d, 3), 9);
  CHECK(memcmp(paths + 6, paths + 9, 3 * sizeof(int32_t)) == 0);
  mpnas_supernet_free(sn);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}


/* ---- Determinism, checkpoints, methods ------------------------------------------------ */

static void save_and_read(mpnas_supernet *sn, const char *path, unsigned char **buf, long *len) {
  mpnas_context *ctx = NULL; /* for OKC's message only */
  (void)ctx;
  CHECK_EQ_INT(mpnas_supernet_save_checkpoint(sn, path), MPNAS_OK);
  FILE *f = fopen(path, "rb");
  CHECK(f != NULL);
  if (!f) return;
  fseek(f, 0, SEEK_END);
  *len = ftell(f);
  fseek(f, 0, SEEK_SET);
  *buf = malloc((size_t)*len);
  CHECK(fread(*buf, 1, (size_t)*len, f) == (size_t)*len);
  fclose(f);
}

static void test_seed_and_resume(void) {
  /* Same seed: identical paths and state. Stop after 12 of 24 steps, save, load into a
   * fresh supernet, finish: the final checkpoint equals the uninterrupted one byte for
   * byte (weights, optimiser, controllers, random streams). */
  int wide[2] = {1, 0};
  unsigned char *full = NULL, *resumed = NULL, *again = NULL;
  long nfull = 0, nresumed = 0, nagain = 0;
  for (int run = 0; run < 3; run++) {
    mpnas_context *ctx = NULL;
    CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
    OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 9));
    mpnas_space *sp = tiny_space(ctx);
    mpnas_supernet *sn = tiny_supernet(ctx, sp, 2, wide, 24);
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 16));
    if (run < 2) {
      OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
      save_and_read(sn, "/tmp/mpnas-test-full.ckpt", run == 0 ? &full : &again,
                    run == 0 ? &nfull : &nagain);
    } else {
      progress_log stop = {0, 0, 12};
      CHECK_EQ_INT(mpnas_supernet_search(sn, 0, on_progress, &stop, 4), MPNAS_E_CANCELLED);
      CHECK(strstr(mpnas_context_last_error(ctx), "step 12") != NULL);
      OKC(mpnas_supernet_save_checkpoint(sn, "/tmp/mpnas-test-half.ckpt"));
      mpnas_supernet_free(sn);
      sn = tiny_supernet(ctx, sp, 2, wide, 24);
      OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 16));
      OKC(mpnas_supernet_load_checkpoint(sn, "/tmp/mpnas-test-half.ckpt"));
      int64_t step;
      OKC(mpnas_supernet_get_int(sn, MPNAS_SEARCH_STEP, &step));
      CHECK_EQ_INT(step, 12);
      OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
      save_and_read(sn, "/tmp/mpnas-test-resumed.ckpt", &resumed, &nresumed);
    }
    mpnas_supernet_free(sn);
    mpnas_space_free(sp);
    mpnas_context_free(ctx);
  }
  CHECK(nfull > 0 && nfull == nagain && nfull == nresumed);
  if (full && again) CHECK_MSG(memcmp(full, again, (size_t)nfull) == 0, "same seed, different state");
  if (full && resumed)
    CHECK_MSG(memcmp(full, resumed, (size_t)nfull) == 0, "resumed search differs from uninterrupted");
  free(full);
  free(again);
  free(resumed);
  remove("/tmp/mpnas-test-full.ckpt");
  remove("/tmp/mpnas-test-half.ckpt");
  remove("/tmp/mpnas-test-resumed.ckpt");
}

static void test_methods(void) {
  int wide[3] = {1, 0, 0};
  for (int method = MPNAS_METHOD_MPNAS; method <= MPNAS_METHOD_SINGLE_PATH; method++) {
    mpnas_context *ctx = NULL;
    CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
    mpnas_space *sp = tiny_space(ctx);
    mpnas_supernet *sn = tiny_supernet(ctx, sp, 3, wide, 30);
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 16));
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_METHOD, method));
    OKC(mpnas_supernet_set_double(sn, MPNAS_SEARCH_RL_LEARNING_RATE, 0.5));
    int32_t fixed[3] = {1, 0, 1};
    OKC(mpnas_supernet_set_fixed_path(sn, fixed, 3));
    OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
    int32_t paths[9];
    read_paths(sn, 3, paths);
    mpnas_controller *c0, *c1;
    OKC(mpnas_supernet_controller(sn, 0, &c0));
    OKC(mpnas_supernet_controller(sn, 1, &c1));
    if (method == MPNAS_METHOD_MULTI_HEAD) {
      CHECK(c0 == c1); /* one controller for all: one path */
      CHECK(memcmp(paths, paths + 3, 12) == 0 && memcmp(paths, paths + 6, 12) == 0);
    } else {
      CHECK(c0 != c1);
    }
    if (method == MPNAS_METHOD_SINGLE_PATH)
      for (int d = 0; d < 3; d++) CHECK(memcmp(paths + 3 * d, fixed, 12) == 0);
    /* Weights: one set shared by all, or one per domain for domain-independent NAS. */
    int64_t step;
    OKC(mpnas_supernet_get_int(sn, MPNAS_SEARCH_STEP, &step));
    CHECK_EQ_INT(step, 30);
    double acc;
    OKC(mpnas_supernet_domain_stat(sn, 2, MPNAS_STAT_VALID_ACCURACY, &acc));
    CHECK(acc >= 0.0 && acc <= 1.0);
    /* Locked once started. */
    CHECK_EQ_INT(mpnas_supernet_set_int(sn, MPNAS_SEARCH_METHOD, MPNAS_METHOD_MPNAS), MPNAS_E_STATE);
    mpnas_supernet_free(sn);
    mpnas_space_free(sp);
    mpnas_context_free(ctx);
  }
}

static void test_checkpoint_sizes_by_method(void) {
  /* Domain-independent NAS holds one weight set per domain: its checkpoint is about D
   * times the shared supernet's. */
  long size[2] = {0, 0};
  int wide[3] = {1, 0, 0};
  for (int i = 0; i < 2; i++) {
    mpnas_context *ctx = NULL;
    CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
    mpnas_space *sp = tiny_space(ctx);
    mpnas_supernet *sn = tiny_supernet(ctx, sp, 3, wide, 2);
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 8));
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_METHOD, i ? MPNAS_METHOD_INDEPENDENT : MPNAS_METHOD_MPNAS));
    OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
    unsigned char *buf = NULL;
    save_and_read(sn, "/tmp/mpnas-test-size.ckpt", &buf, &size[i]);
    free(buf);
    mpnas_supernet_free(sn);
    mpnas_space_free(sp);
    mpnas_context_free(ctx);
  }
  remove("/tmp/mpnas-test-size.ckpt");
  CHECK_MSG(size[1] > 2 * size[0], "independent %ld vs shared %ld bytes", size[1], size[0]);
}

static void test_search_bad_input(void) {
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas_space *sp = tiny_space(ctx);
  mpnas_supernet *sn = NULL;
  CHECK_EQ_INT(mpnas_supernet_create(ctx, NULL, &sn), MPNAS_E_INVALID_ARGUMENT);
  OKC(mpnas_supernet_create(ctx, sp, &sn));
  int32_t d;
  /* No domains yet. */
  CHECK_EQ_INT(mpnas_supernet_search(sn, 0, NULL, NULL, 0), MPNAS_E_STATE);
  CHECK(strstr(mpnas_context_last_error(ctx), "no domains") != NULL);
  CHECK_EQ_INT(mpnas_supernet_add_domain(sn, "one", 1, &d), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_supernet_add_domain(sn, "", 3, &d), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_supernet_add_domain(sn, NULL, 3, &d), MPNAS_E_INVALID_ARGUMENT);
  OKC(mpnas_supernet_add_domain(sn, "a", 3, &d));
  CHECK_EQ_INT(mpnas_supernet_add_domain(sn, "a", 3, &d), MPNAS_E_INVALID_ARGUMENT);
  uint8_t img[4 * IMG] = {0};
  int32_t lab[4] = {0, 1, 2, 3};
  /* Label 3 is out of range for 3 classes; nothing is stored. */
  CHECK_EQ_INT(mpnas_supernet_set_data(sn, 0, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, img, lab, 4),
               MPNAS_E_OUT_OF_RANGE);
  CHECK(strstr(mpnas_context_last_error(ctx), "label 3") != NULL);
  CHECK_EQ_INT(mpnas_supernet_set_data(sn, 0, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, img, lab, 0),
               MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_supernet_set_data(sn, 0, 7, MPNAS_DTYPE_U8, img, lab, 3), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_supernet_set_data(sn, 0, MPNAS_SPLIT_TRAIN, 9, img, lab, 3), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_supernet_set_data(sn, 1, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, img, lab, 3), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_supernet_set_data(sn, 0, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, NULL, lab, 3), MPNAS_E_INVALID_ARGUMENT);
  float fimg[IMG] = {0};
  fimg[5] = NAN;
  CHECK_EQ_INT(mpnas_supernet_set_data(sn, 0, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_F32, fimg, lab, 1), MPNAS_E_INVALID_ARGUMENT);
  /* Still no training data: the search refuses, with the domain's name. */
  CHECK_EQ_INT(mpnas_supernet_search(sn, 0, NULL, NULL, 0), MPNAS_E_STATE);
  CHECK(strstr(mpnas_context_last_error(ctx), "\"a\"") != NULL);
  /* One image cannot be split into train and validation. */
  OKC(mpnas_supernet_set_data(sn, 0, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, img, lab, 1));
  CHECK_EQ_INT(mpnas_supernet_search(sn, 0, NULL, NULL, 0), MPNAS_E_STATE);
  /* Parameters. */
  CHECK_EQ_INT(mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, 0), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_supernet_set_int(sn, 999, 0), MPNAS_E_UNKNOWN_PARAMETER);
  CHECK_EQ_INT(mpnas_supernet_set_double(sn, MPNAS_SEARCH_LEARNING_RATE, -1), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_supernet_set_double(sn, MPNAS_SEARCH_COST_BETA, 0.5), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_supernet_set_double(sn, MPNAS_SEARCH_STEPS, 5.0), MPNAS_E_UNKNOWN_PARAMETER);
  int32_t path[3] = {0, 0, 5};
  CHECK_EQ_INT(mpnas_supernet_set_fixed_path(sn, path, 3), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_supernet_set_fixed_path(sn, path, 2), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_supernet_path(sn, 0, path, 3), MPNAS_E_STATE);
  mpnas_controller *c;
  CHECK_EQ_INT(mpnas_supernet_controller(sn, 0, &c), MPNAS_E_STATE);
  CHECK_EQ_INT(mpnas_supernet_save_checkpoint(sn, "/tmp/mpnas-x.ckpt"), MPNAS_E_STATE);
  mpnas_supernet_free(sn);

  /* A checkpoint from a different search space: INCOMPATIBLE, and the supernet still
   * works afterwards. */
  int wide[1] = {0};
  sn = tiny_supernet(ctx, sp, 1, wide, 3);
  OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 8));
  OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
  OKC(mpnas_supernet_save_checkpoint(sn, "/tmp/mpnas-test-other.ckpt"));
  mpnas_supernet_free(sn);
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 24));
  sn = tiny_supernet(ctx, sp, 1, wide, 3);
  OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 8));
  CHECK_EQ_INT(mpnas_supernet_load_checkpoint(sn, "/tmp/mpnas-test-other.ckpt"), MPNAS_E_INCOMPATIBLE);
  CHECK(strstr(mpnas_context_last_error(ctx), "different search space") != NULL);
  CHECK_EQ_INT(mpnas_supernet_load_checkpoint(sn, "/nonexistent/x.ckpt"), MPNAS_E_IO);
  /* A corrupt checkpoint (one flipped byte) is refused too. */
  FILE *f = fopen("/tmp/mpnas-test-other.ckpt", "r+b");
  CHECK(f != NULL);
  if (f) {
    fseek(f, 100, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 100, SEEK_SET);
    fputc(ch ^ 0x10, f);
    fclose(f);
  }
  CHECK_EQ_INT(mpnas_supernet_load_checkpoint(sn, "/tmp/mpnas-test-other.ckpt"), MPNAS_E_CORRUPT);
  OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
  remove("/tmp/mpnas-test-other.ckpt");
  mpnas_supernet_free(sn);
  mpnas_supernet_free(NULL);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

static double mean_path_macs(mpnas_supernet *sn, const mpnas_space *sp, int nd) {
  double total = 0;
  for (int d = 0; d < nd; d++) {
    int32_t path[3];
    int64_t macs, params;
    mpnas_supernet_path(sn, d, path, 3);
    mpnas_space_path_cost(sp, path, 3, 2, &macs, &params);
    total += (double)macs;
  }
  return total / nd;
}

static void test_cost_target(void) {
  /* Easy domains reach full accuracy on any path, so the cost term decides: a tight MAC
   * target (the all-3x3 path) must give cheaper argmax paths than a loose one (all
   * 7x7). */
  double macs[2];
  for (int loose = 0; loose < 2; loose++) {
    mpnas_context *ctx = NULL;
    CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
    OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 3));
    mpnas_space *sp = tiny_space(ctx);
    const int32_t k[] = {3, 5, 7}, e[] = {2};
    OKC(mpnas_space_set_choices(sp, -1, k, 3, e, 1));
    int wide[2] = {0, 0};
    mpnas_supernet *sn = tiny_supernet(ctx, sp, 2, wide, 150);
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 32));
    int32_t target[3] = {loose ? 2 : 0, loose ? 2 : 0, loose ? 2 : 0};
    int64_t c0, params;
    OKC(mpnas_space_path_cost(sp, target, 3, 2, &c0, &params));
    OKC(mpnas_supernet_set_double(sn, MPNAS_SEARCH_COST_TARGET, (double)c0));
    OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
    macs[loose] = mean_path_macs(sn, sp, 2);
    mpnas_supernet_free(sn);
    mpnas_space_free(sp);
    mpnas_context_free(ctx);
  }
  printf("    mean argmax path: %.0f kMAC with a tight target, %.0f kMAC with a loose one\n",
         macs[0] / 1e3, macs[1] / 1e3);
  CHECK(macs[0] < macs[1]);
}

static double mean_jaccard(mpnas_supernet *sn, const mpnas_space *sp, int nd) {
  int32_t paths[3 * 8];
  double j[64], sum = 0;
  read_paths(sn, nd, paths);
  mpnas_space_jaccard(sp, paths, (size_t)nd, 3, j, 64);
  for (int a = 0; a < nd; a++)
    for (int b = a + 1; b < nd; b++) sum += j[a * nd + b];
  return sum / (nd * (nd - 1) / 2);
}

static void test_sharing_aware_cost(void) {
  /* Three easy domains, no cost term: every path is equally good, so independent
   * controllers settle on unrelated nodes; with the sharing term (a domain is charged
   * its share of the joint model's parameters) they converge on common nodes. Same data
   * and seed, gamma 0 vs the default (0.5). */
  double jac[2];
  for (int on = 0; on < 2; on++) {
    mpnas_context *ctx = NULL;
    CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
    OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 4));
    mpnas_space *sp = tiny_space(ctx);
    const int32_t k[] = {3, 5, 7}, e[] = {1, 2};
    OKC(mpnas_space_set_choices(sp, -1, k, 3, e, 2));
    int wide[3] = {0, 0, 0};
    mpnas_supernet *sn = tiny_supernet(ctx, sp, 3, wide, 150);
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 32));
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_COST, MPNAS_COST_NONE));
    OKC(mpnas_supernet_set_double(sn, MPNAS_SEARCH_RL_LEARNING_RATE, 0.1));
    double gamma = -1;
    OKC(mpnas_supernet_get_double(sn, MPNAS_SEARCH_SHARING_GAMMA, &gamma));
    CHECK(gamma == 0.5); /* on by default */
    if (!on) OKC(mpnas_supernet_set_double(sn, MPNAS_SEARCH_SHARING_GAMMA, 0.0));
    OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
    jac[on] = mean_jaccard(sn, sp, 3);
    mpnas_supernet_free(sn);
    mpnas_space_free(sp);
    mpnas_context_free(ctx);
  }
  printf("    mean Jaccard: %.2f without the sharing term, %.2f with it\n", jac[0], jac[1]);
  CHECK(jac[1] > jac[0]);
}

static void test_sharing_only_in_mpnas(void) {
  /* The sharing term prices what a path adds to ONE joint model: with independent
   * supernets nothing is shared, so the default gamma must change nothing there. Same
   * seed, default gamma vs 0: identical rewards and paths. */
  double reward[2][2];
  int32_t paths[2][6];
  for (int g = 0; g < 2; g++) {
    mpnas_context *ctx = NULL;
    CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
    OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 9));
    mpnas_space *sp = tiny_space(ctx);
    int wide[2] = {0, 1};
    mpnas_supernet *sn = tiny_supernet(ctx, sp, 2, wide, 40);
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_METHOD, MPNAS_METHOD_INDEPENDENT));
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 16));
    if (g) OKC(mpnas_supernet_set_double(sn, MPNAS_SEARCH_SHARING_GAMMA, 0.0));
    OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
    for (int d = 0; d < 2; d++)
      OKC(mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_REWARD, &reward[g][d]));
    read_paths(sn, 2, paths[g]);
    mpnas_supernet_free(sn);
    mpnas_space_free(sp);
    mpnas_context_free(ctx);
  }
  CHECK(reward[0][0] == reward[1][0] && reward[0][1] == reward[1][1]);
  CHECK(memcmp(paths[0], paths[1], sizeof paths[0]) == 0);
}

static void test_latency_cost(void) {
  /* The latency table: one entry per node plus the fixed parts, measured on this CPU; a
   * 7x7 node takes longer than a 3x3 one; a table can be saved and installed; a search
   * with the latency cost and the MnasNet reward form runs. */
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas_space *sp = tiny_space(ctx);
  int wide[1] = {0};
  mpnas_supernet *sn = tiny_supernet(ctx, sp, 1, wide, 10);
  size_t n = 0;
  OKC(mpnas_supernet_latency_table(sn, NULL, 0, &n));
  CHECK_EQ_INT(n, 1 + 3 * 2);
  double table[7], table2[7];
  OKC(mpnas_supernet_latency_table(sn, table, 7, &n));
  for (int i = 0; i < 7; i++) CHECK(table[i] > 0.0);
  printf("    latency: fixed %.1f us, layer 0: k3 %.1f us, k7 %.1f us\n", table[0] * 1e6,
         table[1] * 1e6, table[2] * 1e6);
  CHECK(table[2] > table[1]); /* layer 0: op 1 (k7) slower than op 0 (k3) */
  CHECK_EQ_INT(mpnas_supernet_latency_table(sn, table2, 3, &n), MPNAS_E_INVALID_ARGUMENT);
  table2[0] = -1;
  CHECK_EQ_INT(mpnas_supernet_set_latency_table(sn, table2, 7), MPNAS_E_OUT_OF_RANGE);
  for (int i = 0; i < 7; i++) table2[i] = 1e-3 * (i + 1);
  OKC(mpnas_supernet_set_latency_table(sn, table2, 7));
  OKC(mpnas_supernet_latency_table(sn, table, 7, &n));
  CHECK(memcmp(table, table2, sizeof table) == 0);
  OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_COST, MPNAS_COST_LATENCY));
  OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_REWARD, MPNAS_REWARD_MNAS));
  OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 8));
  double beta;
  OKC(mpnas_supernet_get_double(sn, MPNAS_SEARCH_COST_BETA, &beta));
  CHECK_NEAR(beta, -0.07, 1e-12);
  OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
  double cost;
  OKC(mpnas_supernet_domain_stat(sn, 0, MPNAS_STAT_COST, &cost));
  /* With the installed table a path costs fixed + its three nodes: 1e-3 * (1 + ...). */
  CHECK(cost >= 1e-3 * (1 + 2 + 4 + 6) - 1e-12 && cost <= 1e-3 * (1 + 3 + 5 + 7) + 1e-12);
  mpnas_supernet_free(sn);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

/* ---- ABDP in the search ------------------------------------------------------------------ */

#define ABDP_MAX_STEPS 64

/* What a progress callback called every step saw: each domain's loss weight and images. */
typedef struct {
  int nd, steps;
  double weight[ABDP_MAX_STEPS][4];
  int images[ABDP_MAX_STEPS][4];
} abdp_log;

static int32_t on_abdp_progress(void *user, mpnas_supernet *sn, int64_t step, int64_t total) {
  abdp_log *log = user;
  (void)total;
  if (step < 1 || step > ABDP_MAX_STEPS) return 0;
  for (int d = 0; d < log->nd; d++) {
    double w = NAN, n = NAN;
    mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_LOSS_WEIGHT, &w);
    mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_BATCH_IMAGES, &n);
    log->weight[step - 1][d] = w;
    log->images[step - 1][d] = (int)n;
  }
  log->steps = (int)step;
  return 0;
}

static void test_abdp_signal_prioritises_harder_domain(void) {
  /* An easy domain (learnt within tens of steps) and a noise domain (random labels: its
   * loss stays at chance, its accuracy near 1/2). With the LOSS and with the KPI signal
   * the noise domain must end with the larger weight; every step's weights lie in
   * [w_min, w_max] with mean 1; balanced sampling keeps 16 images each. */
  for (int signal = MPNAS_ABDP_SIGNAL_LOSS; signal <= MPNAS_ABDP_SIGNAL_KPI; signal++) {
    mpnas_context *ctx = NULL;
    CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
    OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 6));
    mpnas_space *sp = tiny_space(ctx);
    int kind[2] = {0, 2};
    mpnas_supernet *sn = tiny_supernet(ctx, sp, 2, kind, 50);
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 16));
    OKC(mpnas_supernet_set_int(sn, MPNAS_ABDP_SIGNAL, signal));
    OKC(mpnas_supernet_set_double(sn, MPNAS_ABDP_TAU, 0.25));
    OKC(mpnas_supernet_set_double(sn, MPNAS_ABDP_W_MIN, 0.5));
    OKC(mpnas_supernet_set_double(sn, MPNAS_ABDP_W_MAX, 1.5));
    static abdp_log log;
    memset(&log, 0, sizeof log);
    log.nd = 2;
    OKC(mpnas_supernet_search(sn, 0, on_abdp_progress, &log, 1));
    CHECK_EQ_INT(log.steps, 50);
    int bad = 0;
    for (int t = 0; t < log.steps; t++) {
      double sum = 0;
      for (int d = 0; d < 2; d++) {
        double w = log.weight[t][d];
        bad += !(w >= 0.5 && w <= 1.5) || log.images[t][d] != 16;
        sum += w;
      }
      bad += !(fabs(sum / 2 - 1.0) <= 1e-12);
    }
    CHECK_MSG(bad == 0, "%d steps with weights outside [0.5, 1.5], mean != 1 or counts != 16", bad);
    /* Step 1 has no observations yet: weights 1. */
    CHECK(log.weight[0][0] == 1.0 && log.weight[0][1] == 1.0);
    double w_easy = log.weight[49][0], w_noise = log.weight[49][1], l_easy, l_noise;
    OKC(mpnas_supernet_domain_stat(sn, 0, MPNAS_STAT_TRAIN_LOSS, &l_easy));
    OKC(mpnas_supernet_domain_stat(sn, 1, MPNAS_STAT_TRAIN_LOSS, &l_noise));
    printf("    %s: weights easy %.3f, noise %.3f (training losses %.3f, %.3f)\n",
           signal == MPNAS_ABDP_SIGNAL_LOSS ? "loss" : "kpi ", w_easy, w_noise, l_easy, l_noise);
    CHECK(w_noise > w_easy);
    CHECK(w_noise > 1.0 && w_easy < 1.0);
    mpnas_supernet_free(sn);
    mpnas_space_free(sp);
    mpnas_context_free(ctx);
  }
}

static void test_abdp_sampling_counts(void) {
  /* Training sets of 75 and 225 images after the split (1:3). Batch 2 x 5 = 10 images a
   * step: PROPORTIONAL gives the small domain 2.5 on average (2 or 3, summing to 10),
   * BALANCED 5 and 5 every step. Then a tiny domain (15 images against 300, batch 8:
   * 0.38 expected) gets no image on most steps, and the search still runs. Signal NONE:
   * every weight stays 1. */
  for (int mode = 0; mode < 3; mode++) {
    mpnas_context *ctx = NULL;
    CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
    OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 8));
    mpnas_space *sp = tiny_space(ctx);
    int kind[2] = {0, 0}, sizes[2] = {100, 300}, tiny_sizes[2] = {20, 400};
    int steps = 64, tb = mode == 2 ? 4 : 5;
    mpnas_supernet *sn = sized_supernet(ctx, sp, 2, kind, mode == 2 ? tiny_sizes : sizes, steps);
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_TRAIN_BATCH, tb));
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 8));
    int64_t v;
    OKC(mpnas_supernet_get_int(sn, MPNAS_ABDP_SAMPLING, &v));
    CHECK_EQ_INT(v, MPNAS_ABDP_SAMPLE_BALANCED); /* the default */
    if (mode != 1)
      OKC(mpnas_supernet_set_int(sn, MPNAS_ABDP_SAMPLING, MPNAS_ABDP_SAMPLE_PROPORTIONAL));
    double images;
    OKC(mpnas_supernet_domain_stat(sn, 0, MPNAS_STAT_BATCH_IMAGES, &images));
    CHECK(images == 0.0); /* no step yet */
    static abdp_log log;
    memset(&log, 0, sizeof log);
    log.nd = 2;
    OKC(mpnas_supernet_search(sn, 0, on_abdp_progress, &log, 1));
    CHECK_EQ_INT(log.steps, steps);
    double ntrain[2];
    for (int d = 0; d < 2; d++) OKC(mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_TRAIN_SIZE, &ntrain[d]));
    int total[2] = {0, 0}, bad = 0, empty = 0;
    for (int t = 0; t < log.steps; t++) {
      int c0 = log.images[t][0], c1 = log.images[t][1];
      total[0] += c0;
      total[1] += c1;
      bad += c0 + c1 != 2 * tb || log.weight[t][0] != 1.0 || log.weight[t][1] != 1.0;
      if (mode == 0) bad += c0 != 2 && c0 != 3;
      if (mode == 1) bad += c0 != 5 || c1 != 5;
      if (mode == 2) bad += c0 > 1, empty += c0 == 0;
    }
    CHECK_MSG(bad == 0, "mode %d: %d steps with unexpected counts or weights", mode, bad);
    double frac = (double)total[0] / (total[0] + total[1]);
    if (mode == 0) {
      CHECK(ntrain[0] == 75 && ntrain[1] == 225);
      printf("    proportional: %d and %d images over %d steps (small share %.3f, expected 0.25)\n",
             total[0], total[1], steps, frac);
      CHECK_NEAR(frac, 0.25, 0.03); /* standard deviation 0.5 * sqrt(64) / 640 = 0.006 */
    } else if (mode == 1) {
      CHECK(total[0] == total[1]);
    } else {
      double expect = ntrain[0] / (ntrain[0] + ntrain[1]), loss;
      printf("    tiny domain: %d images over %d steps (share %.3f, expected %.3f), %d steps without\n",
             total[0], steps, frac, expect, empty);
      CHECK(empty > steps / 2 && total[0] > 0);
      OKC(mpnas_supernet_domain_stat(sn, 0, MPNAS_STAT_TRAIN_LOSS, &loss));
      CHECK(isfinite(loss));
    }
    mpnas_supernet_free(sn);
    mpnas_space_free(sp);
    mpnas_context_free(ctx);
  }
}

static void test_abdp_resume(void) {
  /* ABDP on (signal LOSS, PROPORTIONAL sampling, tau 0.5): stop after 12 of 24 steps,
   * save, load into a fresh supernet left at the ABDP defaults, finish. The checkpoint
   * brings the ABDP settings along, and the final state (ABDP's moving averages, weights
   * and sampling stream included) equals the uninterrupted run's byte for byte. */
  int kind[2] = {0, 2}, sizes[2] = {150, 300};
  unsigned char *full = NULL, *resumed = NULL;
  long nfull = 0, nresumed = 0;
  double w_end = 1.0;
  for (int run = 0; run < 2; run++) {
    mpnas_context *ctx = NULL;
    CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
    OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 10));
    mpnas_space *sp = tiny_space(ctx);
    mpnas_supernet *sn = sized_supernet(ctx, sp, 2, kind, sizes, 24);
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 16));
    OKC(mpnas_supernet_set_int(sn, MPNAS_ABDP_SIGNAL, MPNAS_ABDP_SIGNAL_LOSS));
    OKC(mpnas_supernet_set_int(sn, MPNAS_ABDP_SAMPLING, MPNAS_ABDP_SAMPLE_PROPORTIONAL));
    OKC(mpnas_supernet_set_double(sn, MPNAS_ABDP_TAU, 0.5));
    if (run == 0) {
      OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
      OKC(mpnas_supernet_domain_stat(sn, 1, MPNAS_STAT_LOSS_WEIGHT, &w_end));
      save_and_read(sn, "/tmp/mpnas-test-abdp-full.ckpt", &full, &nfull);
    } else {
      progress_log stop = {0, 0, 12};
      CHECK_EQ_INT(mpnas_supernet_search(sn, 0, on_progress, &stop, 4), MPNAS_E_CANCELLED);
      OKC(mpnas_supernet_save_checkpoint(sn, "/tmp/mpnas-test-abdp-half.ckpt"));
      mpnas_supernet_free(sn);
      sn = sized_supernet(ctx, sp, 2, kind, sizes, 24);
      OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 16));
      OKC(mpnas_supernet_load_checkpoint(sn, "/tmp/mpnas-test-abdp-half.ckpt"));
      int64_t v;
      double tau;
      OKC(mpnas_supernet_get_int(sn, MPNAS_ABDP_SIGNAL, &v));
      CHECK_EQ_INT(v, MPNAS_ABDP_SIGNAL_LOSS);
      OKC(mpnas_supernet_get_int(sn, MPNAS_ABDP_SAMPLING, &v));
      CHECK_EQ_INT(v, MPNAS_ABDP_SAMPLE_PROPORTIONAL);
      OKC(mpnas_supernet_get_double(sn, MPNAS_ABDP_TAU, &tau));
      CHECK(tau == 0.5);
      OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
      save_and_read(sn, "/tmp/mpnas-test-abdp-resumed.ckpt", &resumed, &nresumed);
    }
    mpnas_supernet_free(sn);
    mpnas_space_free(sp);
    mpnas_context_free(ctx);
  }
  printf("    noise domain's weight after 24 steps: %.3f\n", w_end);
  CHECK(w_end > 1.0); /* ABDP's state mattered */
  CHECK(nfull > 0 && nfull == nresumed);
  if (full && resumed && nfull == nresumed)
    CHECK_MSG(memcmp(full, resumed, (size_t)nfull) == 0, "resumed ABDP search differs from uninterrupted");
  free(full);
  free(resumed);
  remove("/tmp/mpnas-test-abdp-full.ckpt");
  remove("/tmp/mpnas-test-abdp-half.ckpt");
  remove("/tmp/mpnas-test-abdp-resumed.ckpt");
}

/* CRC-32 (IEEE, as zlib) for rewriting a container header below. */
static uint32_t crc32_ieee(const unsigned char *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

static uint64_t get_le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static void put_le(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Remove the last section of a container (docs/FILE-CONTAINER.md) if its tag is `tag`:
 * the section count, total length and header CRC are rewritten. Returns the new length. */
static long drop_last_section(unsigned char *buf, long len, const char *tag) {
  uint32_t count = (uint32_t)get_le(buf + 12, 4);
  size_t off = 32, last = 0;
  for (uint32_t i = 0; i < count; i++) {
    uint64_t n = get_le(buf + off + 8, 8);
    last = off;
    off += 24 + (size_t)n + (size_t)((8 - n % 8) % 8);
  }
  if (memcmp(buf + last, tag, 4) != 0 || off != (size_t)len) return len;
  put_le(buf + 12, count - 1, 4);
  put_le(buf + 16, last, 8);
  put_le(buf + 28, crc32_ieee(buf, 28), 4);
  return (long)last;
}

static void test_abdp_checkpoint_without_section(void) {
  /* A checkpoint as written before ABDP (no ABDP section) still loads, with ABDP at its
   * defaults whatever the supernet was set to, and resumes exactly as an uninterrupted
   * default search: the two final checkpoints agree byte for byte outside the ABDP
   * section (whose moving averages restarted at the load). */
  int kind[2] = {1, 0};
  unsigned char *full = NULL, *resumed = NULL;
  long nfull = 0, nresumed = 0;
  for (int run = 0; run < 2; run++) {
    mpnas_context *ctx = NULL;
    CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
    OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 12));
    mpnas_space *sp = tiny_space(ctx);
    mpnas_supernet *sn = tiny_supernet(ctx, sp, 2, kind, 20);
    OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 16));
    if (run == 0) {
      OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
      save_and_read(sn, "/tmp/mpnas-test-abdp-old-full.ckpt", &full, &nfull);
    } else {
      OKC(mpnas_supernet_search(sn, 10, NULL, NULL, 0));
      unsigned char *half = NULL;
      long nhalf = 0;
      save_and_read(sn, "/tmp/mpnas-test-abdp-old-half.ckpt", &half, &nhalf);
      long nold = half ? drop_last_section(half, nhalf, "ABDP") : 0;
      CHECK(nold > 0 && nold < nhalf);
      FILE *f = fopen("/tmp/mpnas-test-abdp-old-half.ckpt", "wb");
      CHECK(f != NULL);
      if (f && half) {
        CHECK(fwrite(half, 1, (size_t)nold, f) == (size_t)nold);
        fclose(f);
      }
      free(half);
      mpnas_supernet_free(sn);
      sn = tiny_supernet(ctx, sp, 2, kind, 20);
      OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 16));
      OKC(mpnas_supernet_set_int(sn, MPNAS_ABDP_SIGNAL, MPNAS_ABDP_SIGNAL_LOSS));
      OKC(mpnas_supernet_set_int(sn, MPNAS_ABDP_SAMPLING, MPNAS_ABDP_SAMPLE_PROPORTIONAL));
      OKC(mpnas_supernet_load_checkpoint(sn, "/tmp/mpnas-test-abdp-old-half.ckpt"));
      int64_t v;
      OKC(mpnas_supernet_get_int(sn, MPNAS_ABDP_SIGNAL, &v));
      CHECK_EQ_INT(v, MPNAS_ABDP_SIGNAL_NONE);
      OKC(mpnas_supernet_get_int(sn, MPNAS_ABDP_SAMPLING, &v));
      CHECK_EQ_INT(v, MPNAS_ABDP_SAMPLE_BALANCED);
      double images;
      OKC(mpnas_supernet_domain_stat(sn, 0, MPNAS_STAT_BATCH_IMAGES, &images));
      CHECK(images == 16.0);
      OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
      save_and_read(sn, "/tmp/mpnas-test-abdp-old-resumed.ckpt", &resumed, &nresumed);
    }
    mpnas_supernet_free(sn);
    mpnas_space_free(sp);
    mpnas_context_free(ctx);
  }
  if (full && resumed) {
    nfull = drop_last_section(full, nfull, "ABDP");
    nresumed = drop_last_section(resumed, nresumed, "ABDP");
    CHECK(nfull > 0 && nfull == nresumed);
    if (nfull == nresumed)
      CHECK_MSG(memcmp(full, resumed, (size_t)nfull) == 0,
                "a search resumed from a checkpoint without ABDP differs from the default one");
  }
  free(full);
  free(resumed);
  remove("/tmp/mpnas-test-abdp-old-full.ckpt");
  remove("/tmp/mpnas-test-abdp-old-half.ckpt");
  remove("/tmp/mpnas-test-abdp-old-resumed.ckpt");
}

static void test_abdp_bad_params(void) {
  /* Defaults as documented; a rejected value (unknown enum value, w_min > 1, w_max < 1,
   * NaN, momentum 1) returns its status, names the field and changes nothing; a double
   * parameter through set_int (and the reverse) is UNKNOWN_PARAMETER; once the search
   * has started every ABDP parameter is locked (MPNAS_E_STATE). */
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas_space *sp = tiny_space(ctx);
  int kind[1] = {0};
  mpnas_supernet *sn = tiny_supernet(ctx, sp, 1, kind, 2);
  OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 8));
  int64_t v;
  double x;
  OKC(mpnas_supernet_get_int(sn, MPNAS_ABDP_SAMPLING, &v));
  CHECK_EQ_INT(v, MPNAS_ABDP_SAMPLE_BALANCED);
  OKC(mpnas_supernet_get_int(sn, MPNAS_ABDP_SIGNAL, &v));
  CHECK_EQ_INT(v, MPNAS_ABDP_SIGNAL_NONE);
  const int32_t dparam[7] = {MPNAS_ABDP_TAU, MPNAS_ABDP_GAMMA, MPNAS_ABDP_TEMPERATURE,
                             MPNAS_ABDP_LOSS_MOMENTUM, MPNAS_ABDP_KPI_MOMENTUM,
                             MPNAS_ABDP_W_MIN, MPNAS_ABDP_W_MAX};
  const double dflt[7] = {1.0, 2.0, 1.0, 0.9, 0.9, 0.25, 4.0};
  for (int i = 0; i < 7; i++) {
    OKC(mpnas_supernet_get_double(sn, dparam[i], &x));
    CHECK_NEAR(x, dflt[i], 0.0);
  }
  /* Rejected values. */
  CHECK_EQ_INT(mpnas_supernet_set_int(sn, MPNAS_ABDP_SIGNAL, 7), MPNAS_E_OUT_OF_RANGE);
  CHECK(strstr(mpnas_context_last_error(ctx), "SIGNAL") != NULL);
  CHECK_EQ_INT(mpnas_supernet_set_int(sn, MPNAS_ABDP_SAMPLING, -1), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_supernet_set_double(sn, MPNAS_ABDP_W_MIN, 1.5), MPNAS_E_OUT_OF_RANGE);
  CHECK(strstr(mpnas_context_last_error(ctx), "MPNAS_ABDP_W_MIN") != NULL);
  CHECK_EQ_INT(mpnas_supernet_set_double(sn, MPNAS_ABDP_W_MAX, 0.5), MPNAS_E_OUT_OF_RANGE);
  CHECK(strstr(mpnas_context_last_error(ctx), "MPNAS_ABDP_W_MAX") != NULL);
  CHECK_EQ_INT(mpnas_supernet_set_double(sn, MPNAS_ABDP_TAU, NAN), MPNAS_E_OUT_OF_RANGE);
  CHECK(strstr(mpnas_context_last_error(ctx), "MPNAS_ABDP_TAU") != NULL);
  CHECK_EQ_INT(mpnas_supernet_set_double(sn, MPNAS_ABDP_GAMMA, -1.0), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_supernet_set_double(sn, MPNAS_ABDP_LOSS_MOMENTUM, 1.0), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_supernet_set_double(sn, MPNAS_ABDP_KPI_MOMENTUM, INFINITY), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_supernet_set_double(sn, MPNAS_ABDP_SIGNAL, 1.0), MPNAS_E_UNKNOWN_PARAMETER);
  CHECK_EQ_INT(mpnas_supernet_set_int(sn, MPNAS_ABDP_TAU, 1), MPNAS_E_UNKNOWN_PARAMETER);
  CHECK_EQ_INT(mpnas_supernet_get_double(sn, MPNAS_ABDP_SAMPLING, &x), MPNAS_E_UNKNOWN_PARAMETER);
  CHECK_EQ_INT(mpnas_supernet_get_int(sn, MPNAS_ABDP_W_MAX, &v), MPNAS_E_UNKNOWN_PARAMETER);
  /* Nothing changed. */
  OKC(mpnas_supernet_get_int(sn, MPNAS_ABDP_SAMPLING, &v));
  CHECK_EQ_INT(v, MPNAS_ABDP_SAMPLE_BALANCED);
  OKC(mpnas_supernet_get_int(sn, MPNAS_ABDP_SIGNAL, &v));
  CHECK_EQ_INT(v, MPNAS_ABDP_SIGNAL_NONE);
  for (int i = 0; i < 7; i++) {
    OKC(mpnas_supernet_get_double(sn, dparam[i], &x));
    CHECK_NEAR(x, dflt[i], 0.0);
  }
  /* Accepted values, including the bounds. */
  OKC(mpnas_supernet_set_int(sn, MPNAS_ABDP_SIGNAL, MPNAS_ABDP_SIGNAL_BOOST));
  OKC(mpnas_supernet_set_double(sn, MPNAS_ABDP_W_MIN, 1.0));
  OKC(mpnas_supernet_set_double(sn, MPNAS_ABDP_W_MAX, 1.0));
  OKC(mpnas_supernet_set_double(sn, MPNAS_ABDP_TEMPERATURE, 2.5));
  OKC(mpnas_supernet_get_double(sn, MPNAS_ABDP_TEMPERATURE, &x));
  CHECK(x == 2.5);
  /* Locked once started; reading still works. */
  OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
  CHECK_EQ_INT(mpnas_supernet_set_int(sn, MPNAS_ABDP_SIGNAL, MPNAS_ABDP_SIGNAL_NONE), MPNAS_E_STATE);
  CHECK_EQ_INT(mpnas_supernet_set_int(sn, MPNAS_ABDP_SAMPLING, MPNAS_ABDP_SAMPLE_PROPORTIONAL),
               MPNAS_E_STATE);
  CHECK_EQ_INT(mpnas_supernet_set_double(sn, MPNAS_ABDP_TAU, 2.0), MPNAS_E_STATE);
  CHECK_EQ_INT(mpnas_supernet_set_double(sn, MPNAS_ABDP_TAU, NAN), MPNAS_E_STATE);
  OKC(mpnas_supernet_get_int(sn, MPNAS_ABDP_SIGNAL, &v));
  CHECK_EQ_INT(v, MPNAS_ABDP_SIGNAL_BOOST);
  OKC(mpnas_supernet_get_double(sn, MPNAS_ABDP_TAU, &x));
  CHECK(x == 1.0);
  /* w_min = w_max = 1: every weight 1 whatever the signal; one domain gets the batch. */
  OKC(mpnas_supernet_domain_stat(sn, 0, MPNAS_STAT_LOSS_WEIGHT, &x));
  CHECK(x == 1.0);
  OKC(mpnas_supernet_domain_stat(sn, 0, MPNAS_STAT_BATCH_IMAGES, &x));
  CHECK(x == 16.0);
  mpnas_supernet_free(sn);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

int main(void) {
  RUN(test_space_presets);
  RUN(test_space_errors);
  RUN(test_jaccard_and_usage);
  RUN(test_controller_api_converges);
  RUN(test_seed_and_resume);
  RUN(test_methods);
  RUN(test_checkpoint_sizes_by_method);
  RUN(test_search_bad_input);
  RUN(test_latency_cost);
  RUN(test_cost_target);
  RUN(test_sharing_aware_cost);
  RUN(test_sharing_only_in_mpnas);
  RUN(test_search_known_answer);
  RUN(test_abdp_signal_prioritises_harder_domain);
  RUN(test_abdp_sampling_counts);
  RUN(test_abdp_resume);
  RUN(test_abdp_checkpoint_without_section);
  RUN(test_abdp_bad_params);
  return check_finish();
}
