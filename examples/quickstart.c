/* quickstart.c - the whole libmpnas pipeline on several image domains at once.
 *
 * What it does, step by step:
 *   1. loads the domains: MDD-6 from data/mdd6 when `make data` has built it, else the
 *      embedded procedural set (examples/synthetic.h: shapes, gratings, colours,
 *      counts), so it runs offline on a fresh machine;
 *   2. describes the search space (the 32x32 preset) and creates the supernet;
 *   3. runs the MPNAS search: one controller per domain chooses that domain's path,
 *      with a progress bar;
 *   4. prints each domain's path, the cost of each, the Jaccard similarity of the
 *      domains' node sets and the node usage per layer (shared / exclusive / unused).
 *   (Deriving the multi-path model, training it with ABDP, evaluating and saving it
 *   come with the model issue; see docs/SEARCH.md for what exists today.)
 *
 * Usage: quickstart [steps] [threads]      (defaults: 600 steps, 2 threads)
 * Build: make examples; run: make demo. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpnas.h"
#include "synthetic.h"

#define TRAIN_PER_DOMAIN 2000

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
  int64_t steps = argc > 1 ? atoll(argv[1]) : 600;
  int64_t threads = argc > 2 ? atoll(argv[2]) : 2;
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
  printf("data: the embedded procedural set (%d domains x %d images, 32x32x3)\n", SYN_DOMAINS,
         TRAIN_PER_DOMAIN);
  for (int d = 0; d < SYN_DOMAINS; d++) {
    int32_t id;
    for (int i = 0; i < TRAIN_PER_DOMAIN; i++)
      labels[i] = syn_image(d, (uint64_t)i, 7, images + (size_t)i * SYN_PIXELS);
    if (mpnas_supernet_add_domain(sn, SYN_NAMES[d], SYN_CLASSES[d], &id) != MPNAS_OK ||
        mpnas_supernet_set_data(sn, id, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images, labels,
                                TRAIN_PER_DOMAIN) != MPNAS_OK)
      return fail(ctx, "adding a domain");
  }
  free(images);
  free(labels);

  /* 3. Search. */
  if (mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, steps) != MPNAS_OK) return fail(ctx, "steps");
  printf("search: %lld steps, one controller per domain\n", (long long)steps);
  progress_state prog = {now(), SYN_DOMAINS};
  if (mpnas_supernet_search(sn, 0, on_progress, &prog, 10) != MPNAS_OK) return fail(ctx, "search");
  double search_seconds = now() - prog.start;

  /* 4. Results. */
  int64_t layers;
  mpnas_space_get_int(space, MPNAS_SPACE_NUM_LAYERS, &layers);
  int32_t *paths = malloc(sizeof(int32_t) * (size_t)(layers * SYN_DOMAINS));
  printf("\n%-9s %-62s %8s %8s %6s\n", "domain", "path", "MMAC", "kparams", "acc");
  for (int d = 0; d < SYN_DOMAINS; d++) {
    int32_t *path = paths + d * layers;
    char text[512];
    int64_t macs, params;
    double acc;
    mpnas_supernet_path(sn, d, path, (size_t)layers);
    mpnas_space_path_string(space, path, (size_t)layers, text, sizeof text, NULL);
    mpnas_space_path_cost(space, path, (size_t)layers, SYN_CLASSES[d], &macs, &params);
    mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_VALID_ACCURACY, &acc);
    printf("%-9s %-62s %8.2f %8.1f %6.2f\n", SYN_NAMES[d], text, macs / 1e6, params / 1e3, acc);
  }
  double jac[SYN_DOMAINS * SYN_DOMAINS];
  mpnas_space_jaccard(space, paths, SYN_DOMAINS, (size_t)layers, jac, SYN_DOMAINS * SYN_DOMAINS);
  printf("\nJaccard similarity of the domains' node sets:\n%9s", "");
  for (int b = 0; b < SYN_DOMAINS; b++) printf(" %8s", SYN_NAMES[b]);
  printf("\n");
  for (int a = 0; a < SYN_DOMAINS; a++) {
    printf("%-9s", SYN_NAMES[a]);
    for (int b = 0; b < SYN_DOMAINS; b++) printf(" %8.2f", jac[a * SYN_DOMAINS + b]);
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
      mpnas_space_node_users(space, paths, SYN_DOMAINS, (size_t)layers, l, op, &users);
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
