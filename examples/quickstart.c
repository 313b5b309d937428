/* quickstart.c - the whole libmpnas pipeline on several image domains at once.
 *
 * What it does, step by step:
 *   1. loads the domains: MDD-6 from data/mdd6 when `make data` has built it (at most
 *      2000 training and 2000 test images per domain, grey replicated to RGB), else the
 *      embedded procedural set (examples/synthetic.h: shapes, gratings, colours,
 *      counts), so it runs offline on a fresh machine;
 *   2. describes the search space (the 32x32 preset) and creates the supernet;
 *   3. runs the MPNAS search: one controller per domain chooses that domain's path,
 *      with a progress bar;
 *   4. derives the multi-path model from the domains' paths (shared nodes stored once)
 *      and trains it from scratch with ABDP (balanced sampling by default);
 *   5. evaluates every domain on its test split and prints a result table: per-domain
 *      top-1, MACs, the model's unique parameters against separate per-domain models,
 *      shared / exclusive / unused nodes, the Jaccard similarity of the node sets;
 *   6. saves the model (out/quickstart.mpnas), reloads it and checks the reloaded model
 *      predicts the same, and writes the figures out/architecture.svg and
 *      out/jaccard.svg.
 *
 * Usage: quickstart [search_steps] [train_steps] [threads] [out_dir]
 *        (defaults: the library's search settings (400 steps), 600, 2, out)
 * The search runs with the library's defaults, as an application that sets nothing
 * would; a short training run keeps `make demo` to a few minutes on 2 cores.
 * Build: make examples; run: make demo. */
#define _POSIX_C_SOURCE 200809L /* mkdir */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "idx.h"
#include "mpnas.h"
#include "svg_figures.h"
#include "synthetic.h"

#define PER_DOMAIN 2000 /* training (and test) images per domain: a cap for MDD-6 */
#define MAX_DOMAINS 8

static const char *const MDD6[] = {"fmnist", "mnist", "letters", "emoji", "textures", "icons"};

typedef struct split {
  uint8_t *x;
  int32_t *y;
  int64_t n;
} split;

typedef struct domain {
  char name[32];
  int32_t classes;
  split train, test;
} domain;

/* Count the classes: the largest label + 1. */
static int32_t count_classes(const uint8_t *labels, int64_t n) {
  int32_t c = 0;
  for (int64_t i = 0; i < n; i++)
    if (labels[i] + 1 > c) c = labels[i] + 1;
  return c;
}

/* Load one split of an MDD-6 domain, at most `cap` images, as 32x32x3 (grey replicated
 * to RGB). Returns 0 on success, -1 if the files are not there or malformed. */
static int load_mdd6(const char *name, const char *which, int64_t cap, split *out,
                     int32_t *classes) {
  char path[256], err[256];
  idx_array im, lb;
  snprintf(path, sizeof path, "data/mdd6/%s/%s-images.idx", name, which);
  if (idx_read(path, &im, err, sizeof err) != 0) return -1;
  snprintf(path, sizeof path, "data/mdd6/%s/%s-labels.idx", name, which);
  if (idx_read(path, &lb, err, sizeof err) != 0) {
    fprintf(stderr, "quickstart: %s\n", err);
    free(im.data);
    return -1;
  }
  int64_t n = im.dims[0] < cap ? im.dims[0] : cap;
  int64_t ch = im.ndim == 4 ? im.dims[3] : 1;
  if (lb.ndim != 1 || lb.dims[0] != im.dims[0] || im.dims[1] != SYN_SIZE ||
      im.dims[2] != SYN_SIZE || (ch != 1 && ch != 3)) {
    fprintf(stderr, "quickstart: %s: unexpected shapes\n", path);
    free(im.data);
    free(lb.data);
    return -1;
  }
  out->x = malloc((size_t)n * SYN_PIXELS);
  out->y = malloc(sizeof(int32_t) * (size_t)n);
  out->n = n;
  if (!out->x || !out->y) exit(1);
  for (int64_t i = 0; i < n; i++) {
    for (int p = 0; p < SYN_SIZE * SYN_SIZE; p++)
      for (int c = 0; c < 3; c++)
        out->x[(size_t)i * SYN_PIXELS + (size_t)p * 3 + (size_t)c] =
            im.data[((size_t)i * SYN_SIZE * SYN_SIZE + (size_t)p) * (size_t)ch +
                    (ch == 3 ? (size_t)c : 0)];
    out->y[i] = lb.data[i];
  }
  if (classes) *classes = count_classes(lb.data, lb.dims[0]);
  free(im.data);
  free(lb.data);
  return 0;
}

/* `n` procedural images of a synthetic domain starting at index `first`. */
static void make_synthetic(int d, int64_t n, uint64_t first, split *out) {
  out->x = malloc((size_t)n * SYN_PIXELS);
  out->y = malloc(sizeof(int32_t) * (size_t)n);
  out->n = n;
  if (!out->x || !out->y) exit(1);
  for (int64_t i = 0; i < n; i++)
    out->y[i] = syn_image(d, first + (uint64_t)i, 7, out->x + (size_t)i * SYN_PIXELS);
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
  const char *label;
} progress_state;

static void bar(const progress_state *p, int64_t step, int64_t total) {
  int width = 24, filled = (int)(width * step / total);
  printf("\r  %s [%.*s%*s] %5lld/%lld %5.0fs", p->label, filled, "########################",
         width - filled, "", (long long)step, (long long)total, now() - p->start);
}

/* Search progress: each domain's validation accuracy on its sampled path. */
static int32_t on_search(void *user, mpnas_supernet *sn, int64_t step, int64_t total) {
  progress_state *p = user;
  bar(p, step, total);
  printf("  acc");
  for (int32_t d = 0; d < p->domains; d++) {
    double acc;
    mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_VALID_ACCURACY, &acc);
    printf(" %.2f", acc);
  }
  fflush(stdout);
  if (step == total) printf("\n");
  return 0;
}

/* Training progress: validation accuracy and ABDP loss weight per domain. */
static int32_t on_train(void *user, mpnas_model *m, int64_t step, int64_t total) {
  progress_state *p = user;
  bar(p, step, total);
  printf("  acc/w");
  for (int32_t d = 0; d < p->domains; d++) {
    double acc, w;
    mpnas_model_domain_stat(m, d, MPNAS_STAT_VALID_ACCURACY, &acc);
    mpnas_model_domain_stat(m, d, MPNAS_STAT_LOSS_WEIGHT, &w);
    if (acc == acc) printf(" %.2f/%.2f", acc, w);
    else printf(" -/%.2f", w);
  }
  fflush(stdout);
  if (step == total) printf("\n");
  return 0;
}

int main(int argc, char **argv) {
  int64_t search_steps = argc > 1 ? atoll(argv[1]) : 0; /* 0: the library's default */
  int64_t train_steps = argc > 2 ? atoll(argv[2]) : 600;
  int64_t threads = argc > 3 ? atoll(argv[3]) : 2;
  const char *out_dir = argc > 4 ? argv[4] : "out";
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

  /* 1. Data: MDD-6 when `make data` has built it, else the embedded set. */
  domain dom[MAX_DOMAINS];
  int32_t nd = 0;
  for (int d = 0; d < 6; d++) {
    domain *o = &dom[nd];
    if (load_mdd6(MDD6[d], "train", PER_DOMAIN, &o->train, &o->classes) != 0) break;
    if (load_mdd6(MDD6[d], "test", PER_DOMAIN, &o->test, NULL) != 0) {
      fprintf(stderr, "quickstart: data/mdd6/%s has no test split: run `make data` again\n", MDD6[d]);
      return 1;
    }
    snprintf(o->name, sizeof o->name, "%s", MDD6[d]);
    nd++;
  }
  if (nd > 0 && nd < 6) {
    fprintf(stderr, "quickstart: data/mdd6 is incomplete: run `make data` again\n");
    return 1;
  }
  if (nd == 6) {
    printf("data: MDD-6 from data/mdd6 (6 domains, at most %d training and %d test images each)\n",
           PER_DOMAIN, PER_DOMAIN);
  } else {
    printf("data: the embedded procedural set (%d domains, %d training + 500 test images each, "
           "32x32x3; `make data` for MDD-6)\n", SYN_DOMAINS, PER_DOMAIN);
    for (int d = 0; d < SYN_DOMAINS; d++) {
      snprintf(dom[d].name, sizeof dom[d].name, "%s", SYN_NAMES[d]);
      dom[d].classes = SYN_CLASSES[d];
      make_synthetic(d, PER_DOMAIN, 0, &dom[d].train);
      make_synthetic(d, 500, 1000000, &dom[d].test);
    }
    nd = SYN_DOMAINS;
  }

  /* 2-3. Space, supernet, search. */
  mpnas_space *space = NULL;
  mpnas_supernet *sn = NULL;
  if (mpnas_space_create(ctx, MPNAS_PRESET_32PX, &space) != MPNAS_OK) return fail(ctx, "space");
  if (mpnas_supernet_create(ctx, space, &sn) != MPNAS_OK) return fail(ctx, "supernet");
  for (int32_t d = 0; d < nd; d++)
    if (mpnas_supernet_add_domain(sn, dom[d].name, dom[d].classes, NULL) != MPNAS_OK ||
        mpnas_supernet_set_data(sn, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, dom[d].train.x,
                                dom[d].train.y, dom[d].train.n) != MPNAS_OK)
      return fail(ctx, "adding a domain");
  if (search_steps > 0 && mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, search_steps) != MPNAS_OK)
    return fail(ctx, "search settings");
  if (mpnas_supernet_get_int(sn, MPNAS_SEARCH_STEPS, &search_steps) != MPNAS_OK)
    return fail(ctx, "search settings");
  printf("\nsearch: %lld steps, one controller per domain\n", (long long)search_steps);
  progress_state prog = {now(), nd, "search"};
  if (mpnas_supernet_search(sn, 0, on_search, &prog, 10) != MPNAS_OK) return fail(ctx, "search");
  double search_seconds = now() - prog.start;

  int64_t layers;
  mpnas_space_get_int(space, MPNAS_SPACE_NUM_LAYERS, &layers);
  int32_t *path = malloc(sizeof(int32_t) * (size_t)layers);
  printf("\n%-9s %s\n", "domain", "path");
  for (int32_t d = 0; d < nd; d++) {
    char text[512];
    mpnas_supernet_path(sn, d, path, (size_t)layers);
    mpnas_space_path_string(space, path, (size_t)layers, text, sizeof text, NULL);
    printf("%-9s %s\n", dom[d].name, text);
  }

  /* 4. The multi-path model, trained from scratch with ABDP. */
  mpnas_model *model = NULL;
  if (mpnas_model_create_from_supernet(sn, &model) != MPNAS_OK) return fail(ctx, "deriving the model");
  mpnas_supernet_free(sn); /* the model has its own copy of the data */
  if (mpnas_model_set_int(model, MPNAS_TRAIN_STEPS, train_steps) != MPNAS_OK)
    return fail(ctx, "training settings");
  printf("\ntraining the multi-path model from scratch: %lld steps of 32 images per domain\n",
         (long long)train_steps);
  prog = (progress_state){now(), nd, "train "};
  if (mpnas_model_train(model, 0, on_train, &prog, 10) != MPNAS_OK) return fail(ctx, "training");
  double train_seconds = now() - prog.start;

  /* 5. Results. */
  printf("\n%-9s %7s %8s %8s %8s %7s\n", "domain", "classes", "MMAC", "kparams", "top-1", "loss");
  double mean = 0.0, separate = 0.0;
  for (int32_t d = 0; d < nd; d++) {
    double top1, loss, macs, params;
    if (mpnas_model_evaluate(model, d, MPNAS_DTYPE_U8, dom[d].test.x, dom[d].test.y,
                             dom[d].test.n, &top1, &loss) != MPNAS_OK)
      return fail(ctx, "evaluating");
    mpnas_model_domain_stat(model, d, MPNAS_STAT_MACS, &macs);
    mpnas_model_domain_stat(model, d, MPNAS_STAT_PARAMS, &params);
    printf("%-9s %7d %8.2f %8.1f %7.1f%% %7.3f\n", dom[d].name, (int)dom[d].classes, macs / 1e6,
           params / 1e3, 100.0 * top1, loss);
    mean += top1 / nd;
    separate += params;
  }
  int64_t unique, total_macs, nodes;
  mpnas_model_get_int(model, MPNAS_MODEL_PARAMS, &unique);
  mpnas_model_get_int(model, MPNAS_MODEL_MACS, &total_macs);
  mpnas_model_get_int(model, MPNAS_MODEL_NUM_NODES, &nodes);
  printf("%-9s %7s %8.2f %8.1f %7.1f%%\n", "all", "", total_macs / 1e6, unique / 1e3, 100.0 * mean);
  int shared = 0, exclusive = 0, unused = 0;
  for (int32_t l = 0; l < layers; l++) {
    int32_t nops;
    mpnas_space_num_ops(space, l, &nops);
    for (int32_t op = 0; op < nops; op++) {
      int32_t k, e, se, users;
      mpnas_space_op_info(space, l, op, &k, &e, &se);
      if (k == 0) continue; /* `zero` is not a node */
      mpnas_model_node_users(model, l, op, &users);
      if (users >= 2) shared++;
      else if (users == 1) exclusive++;
      else unused++;
    }
  }
  printf("\nunique parameters %.1f k (separate per-domain models: %.1f k, %+.0f%%); "
         "nodes: %d shared, %d exclusive, %d unused\n",
         unique / 1e3, separate / 1e3, 100.0 * (unique - separate) / separate, shared, exclusive,
         unused);
  double jac[MAX_DOMAINS * MAX_DOMAINS];
  mpnas_model_jaccard(model, jac, (size_t)nd * nd);
  printf("\nJaccard similarity of the domains' node sets:\n%9s", "");
  for (int32_t b = 0; b < nd; b++) printf(" %8s", dom[b].name);
  printf("\n");
  for (int32_t a = 0; a < nd; a++) {
    printf("%-9s", dom[a].name);
    for (int32_t b = 0; b < nd; b++) printf(" %8.2f", jac[a * nd + b]);
    printf("\n");
  }
  printf("\nsearch %.0f s, training %.0f s\n", search_seconds, train_seconds);

  /* 6. Save, reload, check, figures. */
  char file[512], arch[512], jfile[512];
  mkdir(out_dir, 0777);
  snprintf(file, sizeof file, "%s/quickstart.mpnas", out_dir);
  snprintf(arch, sizeof arch, "%s/architecture.svg", out_dir);
  snprintf(jfile, sizeof jfile, "%s/jaccard.svg", out_dir);
  if (mpnas_model_clear_data(model) != MPNAS_OK || mpnas_model_save(model, file) != MPNAS_OK)
    return fail(ctx, "saving the model");
  mpnas_model *again = NULL;
  if (mpnas_model_load(ctx, file, &again) != MPNAS_OK) return fail(ctx, "reloading the model");
  mpnas_predictor *p1 = NULL, *p2 = NULL;
  int32_t c0 = dom[0].classes;
  int64_t n0 = dom[0].test.n < 64 ? dom[0].test.n : 64;
  float *a = malloc(sizeof(float) * (size_t)(n0 * c0)), *b = malloc(sizeof(float) * (size_t)(n0 * c0));
  if (mpnas_predictor_create(model, &p1) != MPNAS_OK || mpnas_predictor_create(again, &p2) != MPNAS_OK ||
      mpnas_predictor_run(p1, 0, MPNAS_DTYPE_U8, dom[0].test.x, n0, MPNAS_OUTPUT_LOGITS, a,
                          (size_t)(n0 * c0)) != MPNAS_OK ||
      mpnas_predictor_run(p2, 0, MPNAS_DTYPE_U8, dom[0].test.x, n0, MPNAS_OUTPUT_LOGITS, b,
                          (size_t)(n0 * c0)) != MPNAS_OK)
    return fail(ctx, "predicting");
  int same = memcmp(a, b, sizeof(float) * (size_t)(n0 * c0)) == 0;
  printf("\nmodel saved to %s; reloaded, its predictions are %s\n", file,
         same ? "bit-identical" : "DIFFERENT (a bug: please report it)");
  if (svg_write_architecture(model, arch) != 0 || svg_write_jaccard(model, jfile) != 0)
    fprintf(stderr, "quickstart: could not write the figures to %s\n", out_dir);
  else
    printf("figures: %s, %s\n", arch, jfile);
  mpnas_predictor_free(p1);
  mpnas_predictor_free(p2);
  free(a);
  free(b);
  mpnas_model_free(again);
  mpnas_model_free(model);
  for (int32_t d = 0; d < nd; d++) {
    free(dom[d].train.x);
    free(dom[d].train.y);
    free(dom[d].test.x);
    free(dom[d].test.y);
  }
  free(path);
  mpnas_space_free(space);
  mpnas_context_free(ctx);
  return same ? 0 : 1;
}
