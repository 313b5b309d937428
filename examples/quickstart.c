/* quickstart.c - the whole libmpnas pipeline on several image domains at once.
 *
 * What it does, step by step:
 *   1. loads the domains: MDD-6 from data/mdd6 when `make data` has built it (at most
 *      2000 training images per domain, grey replicated to RGB), else the embedded
 *      procedural set (examples/synthetic.h: shapes, gratings, colours, counts), so it
 *      runs offline on a fresh machine;
 *   2. describes the search space (the 32x32 preset) and creates the supernet;
 *   3. runs the MPNAS search: one controller per domain chooses that domain's path,
 *      with a progress bar;
 *   4. prints each domain's path, the cost of each, the Jaccard similarity of the
 *      domains' node sets and the node usage per layer (shared / exclusive / unused).
 *   (Deriving the multi-path model, training it with ABDP, evaluating and saving it
 *   come with the model issue; see docs/SEARCH.md for what exists today.)
 *
 * Usage: quickstart [steps] [threads] [valid_batch]   (defaults: 150, 2, 32)
 * The defaults keep `make demo` to a few minutes on 2 cores: a short search with 32
 * validation images per domain per step (the library's default is 128: less reward
 * noise, 4x the validation cost; see docs/SEARCH.md).
 * Build: make examples; run: make demo. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "idx.h"
#include "mpnas.h"
#include "synthetic.h"

#define TRAIN_PER_DOMAIN 2000 /* images per domain handed to the search (a cap for MDD-6) */
#define MAX_DOMAINS 8

static const char *const MDD6[] = {"fmnist", "mnist", "letters", "emoji", "textures", "icons"};

/* Count the classes: the largest label + 1. */
static int32_t count_classes(const uint8_t *labels, int64_t n) {
  int32_t c = 0;
  for (int64_t i = 0; i < n; i++)
    if (labels[i] + 1 > c) c = labels[i] + 1;
  return c;
}

/* Load one MDD-6 domain's training split, at most `cap` images, as 32x32x3 (grey
 * replicated to RGB). Returns the image count, 0 if the files are not there. */
static int64_t load_mdd6(const char *domain, int64_t cap, uint8_t *images, int32_t *labels,
                         int32_t *classes) {
  char path[256], err[256];
  idx_array im, lb;
  snprintf(path, sizeof path, "data/mdd6/%s/train-images.idx", domain);
  if (idx_read(path, &im, err, sizeof err) != 0) return 0;
  snprintf(path, sizeof path, "data/mdd6/%s/train-labels.idx", domain);
  if (idx_read(path, &lb, err, sizeof err) != 0) {
    fprintf(stderr, "quickstart: %s\n", err);
    free(im.data);
    return 0;
  }
  int64_t n = im.dims[0] < cap ? im.dims[0] : cap;
  int64_t ch = im.ndim == 4 ? im.dims[3] : 1;
  if (lb.ndim != 1 || lb.dims[0] != im.dims[0] || im.dims[1] != SYN_SIZE || im.dims[2] != SYN_SIZE ||
      (ch != 1 && ch != 3)) {
    fprintf(stderr, "quickstart: %s: unexpected shapes\n", domain);
    free(im.data);
    free(lb.data);
    return 0;
  }
  for (int64_t i = 0; i < n; i++) {
    for (int p = 0; p < SYN_SIZE * SYN_SIZE; p++)
      for (int c = 0; c < 3; c++)
        images[(size_t)i * SYN_PIXELS + (size_t)p * 3 + (size_t)c] =
            im.data[((size_t)i * SYN_SIZE * SYN_SIZE + (size_t)p) * (size_t)ch + (ch == 3 ? (size_t)c : 0)];
    labels[i] = lb.data[i];
  }
  *classes = count_classes(lb.data, lb.dims[0]);
  free(im.data);
  free(lb.data);
  return n;
}

static int fail(mpnas_context *ctx, const char *what) {
  fprintf(stderr, "quickstart: %s: %s\n", what, mpnas_context_last_error(ctx));
  return 1;
}

static double now(void) {
  struct timespec ts;
  timespec_get(&ts, TIME_UTC);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
  double start;
  int32_t domains;
} progress_state;

/* A one-line progress bar with each domain's validation accuracy. */
static int32_t on_progress(void *user, mpnas_supernet *sn, int64_t step, int64_t total) {
  progress_state *p = user;
  int width = 30, filled = (int)(width * step / total);
  double elapsed = now() - p->start;
  printf("\r  [%.*s%*s] %5lld/%lld  %5.0fs  acc", filled, "##############################",
         width - filled, "", (long long)step, (long long)total, elapsed);
  for (int32_t d = 0; d < p->domains; d++) {
    double acc;
    mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_VALID_ACCURACY, &acc);
    printf(" %.2f", acc);
  }
  fflush(stdout);
  if (step == total) printf("\n");
  return 0;
}

int main(int argc, char **argv) {
  int64_t steps = argc > 1 ? atoll(argv[1]) : 150;
  int64_t threads = argc > 2 ? atoll(argv[2]) : 2;
  int64_t valid_batch = argc > 3 ? atoll(argv[3]) : 32;
  mpnas_context *ctx = NULL;
  if (mpnas_context_create(&ctx) != MPNAS_OK) return 1;
  if (mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, threads) != MPNAS_OK ||
      mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 1) != MPNAS_OK)
    return fail(ctx, "settings");
  int64_t isa;
  mpnas_context_get_int(ctx, MPNAS_CONTEXT_ISA_ACTIVE, &isa);
  printf("libmpnas %s, kernels: %s, %lld thread(s)\n", mpnas_version_string(),
         isa == MPNAS_ISA_AVX2 ? "avx2" : isa == MPNAS_ISA_NEON ? "neon" : "scalar",
         (long long)threads);

  /* 1-2. Space and supernet with the embedded domains. */
  mpnas_space *space = NULL;
  mpnas_supernet *sn = NULL;
  if (mpnas_space_create(ctx, MPNAS_PRESET_32PX, &space) != MPNAS_OK) return fail(ctx, "space");
  if (mpnas_supernet_create(ctx, space, &sn) != MPNAS_OK) return fail(ctx, "supernet");
  uint8_t *images = malloc((size_t)TRAIN_PER_DOMAIN * SYN_PIXELS);
  int32_t *labels = malloc(sizeof(int32_t) * TRAIN_PER_DOMAIN);
  if (!images || !labels) return 1;
  const char *names[MAX_DOMAINS];
  int32_t classes[MAX_DOMAINS], ndomains = 0;
  for (int d = 0; d < 6; d++) { /* MDD-6 when `make data` has built it */
    int32_t c, id;
    int64_t n = load_mdd6(MDD6[d], TRAIN_PER_DOMAIN, images, labels, &c);
    if (n == 0) break;
    if (mpnas_supernet_add_domain(sn, MDD6[d], c, &id) != MPNAS_OK ||
        mpnas_supernet_set_data(sn, id, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images, labels, n) != MPNAS_OK)
      return fail(ctx, "adding an MDD-6 domain");
    names[ndomains] = MDD6[d];
    classes[ndomains++] = c;
  }
  if (ndomains > 0 && ndomains < 6) return fail(ctx, "data/mdd6 is incomplete: run `make data` again");
  if (ndomains == 6) {
    printf("data: MDD-6 from data/mdd6 (6 domains, at most %d training images each)\n", TRAIN_PER_DOMAIN);
  } else {
    printf("data: the embedded procedural set (%d domains x %d images, 32x32x3; `make data` for MDD-6)\n",
           SYN_DOMAINS, TRAIN_PER_DOMAIN);
    for (int d = 0; d < SYN_DOMAINS; d++) {
      int32_t id;
      for (int i = 0; i < TRAIN_PER_DOMAIN; i++)
        labels[i] = syn_image(d, (uint64_t)i, 7, images + (size_t)i * SYN_PIXELS);
      if (mpnas_supernet_add_domain(sn, SYN_NAMES[d], SYN_CLASSES[d], &id) != MPNAS_OK ||
          mpnas_supernet_set_data(sn, id, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images, labels,
                                  TRAIN_PER_DOMAIN) != MPNAS_OK)
        return fail(ctx, "adding a domain");
      names[ndomains] = SYN_NAMES[d];
      classes[ndomains++] = SYN_CLASSES[d];
    }
  }
  free(images);
  free(labels);

  /* 3. Search. */
  if (mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, steps) != MPNAS_OK ||
      mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, valid_batch) != MPNAS_OK)
    return fail(ctx, "search settings");
  printf("search: %lld steps, one controller per domain\n", (long long)steps);
  progress_state prog = {now(), ndomains};
  if (mpnas_supernet_search(sn, 0, on_progress, &prog, 10) != MPNAS_OK) return fail(ctx, "search");
  double search_seconds = now() - prog.start;

  /* 4. Results. */
  int64_t layers;
  mpnas_space_get_int(space, MPNAS_SPACE_NUM_LAYERS, &layers);
  int32_t *paths = malloc(sizeof(int32_t) * (size_t)(layers * ndomains));
  printf("\n%-9s %-62s %8s %8s %6s\n", "domain", "path", "MMAC", "kparams", "acc");
  for (int d = 0; d < ndomains; d++) {
    int32_t *path = paths + d * layers;
    char text[512];
    int64_t macs, params;
    double acc;
    mpnas_supernet_path(sn, d, path, (size_t)layers);
    mpnas_space_path_string(space, path, (size_t)layers, text, sizeof text, NULL);
    mpnas_space_path_cost(space, path, (size_t)layers, classes[d], &macs, &params);
    mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_VALID_ACCURACY, &acc);
    printf("%-9s %-62s %8.2f %8.1f %6.2f\n", names[d], text, macs / 1e6, params / 1e3, acc);
  }
  double jac[MAX_DOMAINS * MAX_DOMAINS];
  size_t nd = (size_t)ndomains;
  mpnas_space_jaccard(space, paths, nd, (size_t)layers, jac, nd * nd);
  printf("\nJaccard similarity of the domains' node sets:\n%9s", "");
  for (size_t b = 0; b < nd; b++) printf(" %8s", names[b]);
  printf("\n");
  for (size_t a = 0; a < nd; a++) {
    printf("%-9s", names[a]);
    for (size_t b = 0; b < nd; b++) printf(" %8.2f", jac[a * nd + b]);
    printf("\n");
  }
  int shared = 0, exclusive = 0, unused = 0;
  for (int32_t l = 0; l < layers; l++) {
    int32_t nops;
    mpnas_space_num_ops(space, l, &nops);
    for (int32_t op = 0; op < nops; op++) {
      int32_t k, e, se, users;
      mpnas_space_op_info(space, l, op, &k, &e, &se);
      if (k == 0) continue; /* `zero` is not a node */
      mpnas_space_node_users(space, paths, nd, (size_t)layers, l, op, &users);
      if (users >= 2) shared++;
      else if (users == 1) exclusive++;
      else unused++;
    }
  }
  printf("\nnodes: %d shared, %d exclusive, %d unused; search took %.0f s\n", shared, exclusive,
         unused, search_seconds);
  free(paths);
  mpnas_supernet_free(sn);
  mpnas_space_free(space);
  mpnas_context_free(ctx);
  return 0;
}
