/* bench_mdd.c - the paper's comparison on MDD-6 with its real dataset sizes
 * (ALGORITHM.md section 7; `make bench-mdd`, long, not in CI).
 *
 * Rows (every row trains from scratch with the same budget: --train-steps steps of
 * --batch images per domain per step):
 *   independent   domain-independent NAS: each domain searched alone (own weights and
 *                 controller) and trained alone as its own model; params and MACs summed
 *   single-path   single-path multi-head: one fixed path (the space's reference path)
 *                 for every domain, no search, one joint model
 *   multi-head    multi-head NAS: one controller for all domains, one joint model
 *   mpnas/<abdp>  MPNAS paths, trained with ABDP off (proportional, weights 1), balanced,
 *                 balanced+loss, balanced+kpi, balanced+boost  (--seeds seeds each)
 *   mpnas-share   MPNAS with the sharing-aware cost (gamma --gamma), balanced
 *   random        a random path per domain with MACs within 10% of that domain's MPNAS
 *                 path (TuNAS's control: does the search beat random choice?), balanced
 * Reported per row: test top-1 per domain and the mean, unique parameters, total MACs,
 * search and training wall time; rows run with several seeds show mean and min..max.
 *
 * Usage: bench_mdd [--search-steps N] [--train-steps N] [--batch N] [--seeds N]
 *                  [--threads N] [--rows a,b,...] [--out FILE.md] [--figures DIR]
 *                  [--data DIR]
 * Needs `make data` (data/mdd6). */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "idx.h"
#include "mpnas.h"
#include "svg_figures.h"

#define D 6
#define PIX (32 * 32 * 3)
#define MAX_SEEDS 8
#define MAX_LAYERS 64

static const char *const NAMES[D] = {"fmnist", "mnist", "letters", "emoji", "textures", "icons"};

typedef struct split {
  uint8_t *x;
  int32_t *y;
  int64_t n;
} split;

static split train_set[D], test_set[D];
static mpnas_context *figure_ctx; /* the context of the model kept for the figures */
static int32_t classes[D];

typedef struct options {
  int64_t search_steps, train_steps, batch, seeds, threads;
  double gamma;
  const char *rows, *out, *figures, *data;
} options;
static options opt = {600, 1500, 32, 2, 2, 1.0, "all", NULL, NULL, "data/mdd6"};

static double now(void) {
  struct timespec ts;
  timespec_get(&ts, TIME_UTC);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(mpnas_context *ctx, const char *what) {
  fprintf(stderr, "bench_mdd: %s: %s\n", what, ctx ? mpnas_context_last_error(ctx) : "");
  exit(1);
}
#define OK(call, what) \
  do {                 \
    if ((call) != MPNAS_OK) die(ctx, what); \
  } while (0)

static void load(const char *name, const char *which, split *s, int32_t *ncls) {
  char path[512], err[256];
  idx_array im, lb;
  snprintf(path, sizeof path, "%s/%s/%s-images.idx", opt.data, name, which);
  if (idx_read(path, &im, err, sizeof err) != 0) {
    fprintf(stderr, "bench_mdd: %s (run `make data` first)\n", err);
    exit(1);
  }
  snprintf(path, sizeof path, "%s/%s/%s-labels.idx", opt.data, name, which);
  if (idx_read(path, &lb, err, sizeof err) != 0) {
    fprintf(stderr, "bench_mdd: %s\n", err);
    exit(1);
  }
  int64_t n = im.dims[0], ch = im.ndim == 4 ? im.dims[3] : 1;
  s->x = malloc((size_t)n * PIX);
  s->y = malloc(sizeof(int32_t) * (size_t)n);
  s->n = n;
  if (!s->x || !s->y) exit(1);
  for (int64_t i = 0; i < n; i++) {
    for (int p = 0; p < 32 * 32; p++)
      for (int c = 0; c < 3; c++)
        s->x[(size_t)i * PIX + (size_t)p * 3 + (size_t)c] =
            im.data[((size_t)i * 1024 + (size_t)p) * (size_t)ch + (ch == 3 ? (size_t)c : 0)];
    s->y[i] = lb.data[i];
    if (ncls && lb.data[i] + 1 > *ncls) *ncls = lb.data[i] + 1;
  }
  free(im.data);
  free(lb.data);
}

/* One measured configuration. */
typedef struct result {
  double top1[D], mean, search_s, train_s;
  int64_t params, macs;
} result;

static mpnas_context *new_context(uint64_t seed) {
  mpnas_context *ctx = NULL;
  if (mpnas_context_create(&ctx) != MPNAS_OK) exit(1);
  OK(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, opt.threads), "threads");
  OK(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, (int64_t)seed), "seed");
  return ctx;
}

static int32_t search_progress(void *user, mpnas_supernet *sn, int64_t step, int64_t total) {
  (void)sn;
  fprintf(stderr, "\r    %s search %lld/%lld   ", (const char *)user, (long long)step, (long long)total);
  return 0;
}
static int32_t train_progress(void *user, mpnas_model *m, int64_t step, int64_t total) {
  (void)m;
  fprintf(stderr, "\r    %s train %lld/%lld    ", (const char *)user, (long long)step, (long long)total);
  return 0;
}

/* Search: paths [D][L]; domains = the indices searched (all D, or one for independent). */
static double search(uint64_t seed, int32_t method, double gamma, const int *domains, int nd,
                     int32_t *paths, int64_t L, const char *label) {
  mpnas_context *ctx = new_context(seed);
  mpnas_space *sp = NULL;
  mpnas_supernet *sn = NULL;
  OK(mpnas_space_create(ctx, MPNAS_PRESET_32PX, &sp), "space");
  OK(mpnas_supernet_create(ctx, sp, &sn), "supernet");
  for (int i = 0; i < nd; i++) {
    int d = domains[i];
    OK(mpnas_supernet_add_domain(sn, NAMES[d], classes[d], NULL), "domain");
    OK(mpnas_supernet_set_data(sn, i, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, train_set[d].x,
                               train_set[d].y, train_set[d].n), "data");
  }
  OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_METHOD, method), "method");
  OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, opt.search_steps), "steps");
  if (gamma > 0) OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_SHARING_GAMMA, gamma), "gamma");
  double t0 = now();
  OK(mpnas_supernet_search(sn, 0, search_progress, (void *)label, 50), "search");
  double secs = now() - t0;
  for (int i = 0; i < nd; i++)
    OK(mpnas_supernet_path(sn, i, paths + (size_t)domains[i] * L, (size_t)L), "path");
  mpnas_supernet_free(sn);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  return secs;
}

/* Train a model over `nd` domains with their paths; evaluate each on its test split. */
static void train(uint64_t seed, const int *domains, int nd, const int32_t *paths, int64_t L,
                  int32_t sampling, int32_t signal, result *r, mpnas_model **keep,
                  const char *label) {
  mpnas_context *ctx = new_context(seed);
  mpnas_space *sp = NULL;
  mpnas_model *m = NULL;
  OK(mpnas_space_create(ctx, MPNAS_PRESET_32PX, &sp), "space");
  OK(mpnas_model_create(ctx, sp, &m), "model");
  for (int i = 0; i < nd; i++) {
    int d = domains[i];
    OK(mpnas_model_add_domain(m, NAMES[d], classes[d], paths + (size_t)d * L, (size_t)L, NULL),
       "domain");
    OK(mpnas_model_set_data(m, i, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, train_set[d].x,
                            train_set[d].y, train_set[d].n), "data");
  }
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, opt.train_steps), "steps");
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, opt.batch), "batch");
  OK(mpnas_model_set_int(m, MPNAS_ABDP_SAMPLING, sampling), "sampling");
  OK(mpnas_model_set_int(m, MPNAS_ABDP_SIGNAL, signal), "signal");
  double t0 = now();
  OK(mpnas_model_train(m, 0, train_progress, (void *)label, 50), "train");
  r->train_s += now() - t0;
  for (int i = 0; i < nd; i++) {
    int d = domains[i];
    OK(mpnas_model_evaluate(m, i, MPNAS_DTYPE_U8, test_set[d].x, test_set[d].y, test_set[d].n,
                            &r->top1[d], NULL), "evaluate");
  }
  int64_t p, c;
  OK(mpnas_model_get_int(m, MPNAS_MODEL_PARAMS, &p), "params");
  OK(mpnas_model_get_int(m, MPNAS_MODEL_MACS, &c), "macs");
  r->params += p;
  r->macs += c;
  OK(mpnas_model_clear_data(m), "clear");
  mpnas_space_free(sp);
  if (keep) { /* freed at the end of main */
    *keep = m;
    figure_ctx = ctx;
  } else {
    mpnas_model_free(m);
    mpnas_context_free(ctx);
  }
}

static void finish(result *r) {
  r->mean = 0;
  for (int d = 0; d < D; d++) r->mean += r->top1[d] / D;
}

/* ---- Output -------------------------------------------------------------------------- */

static FILE *out;
static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  if (out) {
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
  }
  fflush(stdout);
}

/* One table row from n results (n > 1: mean and min..max). */
static void row(const char *name, const result *r, int n) {
  emit("| %s | %d |", name, n);
  for (int k = 0; k <= D; k++) {
    double lo = 1, hi = 0, sum = 0;
    for (int i = 0; i < n; i++) {
      double v = k < D ? r[i].top1[k] : r[i].mean;
      sum += v;
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
    }
    if (n > 1) emit(" %.1f (%.1f-%.1f) |", 100 * sum / n, 100 * lo, 100 * hi);
    else emit(" %.1f |", 100 * sum);
  }
  double s = 0, t = 0;
  for (int i = 0; i < n; i++) {
    s += r[i].search_s;
    t += r[i].train_s;
  }
  emit(" %.2f | %.1f | %.0f | %.0f |\n", r[0].params / 1e6, r[0].macs / 1e6, s / n, t / n);
}

static int wanted(const char *name) {
  if (strcmp(opt.rows, "all") == 0) return 1;
  size_t len = strlen(name);
  for (const char *p = opt.rows; (p = strstr(p, name)) != NULL; p += len)
    if ((p == opt.rows || p[-1] == ',') && (p[len] == ',' || p[len] == '\0')) return 1;
  return 0;
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--search-steps")) opt.search_steps = atoll(v);
    else if (!strcmp(k, "--train-steps")) opt.train_steps = atoll(v);
    else if (!strcmp(k, "--batch")) opt.batch = atoll(v);
    else if (!strcmp(k, "--seeds")) opt.seeds = atoll(v);
    else if (!strcmp(k, "--threads")) opt.threads = atoll(v);
    else if (!strcmp(k, "--gamma")) opt.gamma = atof(v);
    else if (!strcmp(k, "--rows")) opt.rows = v;
    else if (!strcmp(k, "--out")) opt.out = v;
    else if (!strcmp(k, "--figures")) opt.figures = v;
    else if (!strcmp(k, "--data")) opt.data = v;
    else {
      fprintf(stderr, "bench_mdd: unknown option %s\n", k);
      return 2;
    }
  }
  if (opt.seeds < 1 || opt.seeds > MAX_SEEDS) opt.seeds = 2;
  for (int d = 0; d < D; d++) {
    load(NAMES[d], "train", &train_set[d], &classes[d]);
    load(NAMES[d], "test", &test_set[d], NULL);
  }
  mpnas_context *ctx = new_context(0);
  mpnas_space *sp = NULL;
  OK(mpnas_space_create(ctx, MPNAS_PRESET_32PX, &sp), "space");
  int64_t L;
  OK(mpnas_space_get_int(sp, MPNAS_SPACE_NUM_LAYERS, &L), "layers");
  if (opt.out && !(out = fopen(opt.out, "w"))) {
    fprintf(stderr, "bench_mdd: cannot write %s\n", opt.out);
    return 1;
  }
  time_t t = time(NULL);
  char date[64];
  strftime(date, sizeof date, "%Y-%m-%d", gmtime(&t));
  emit("## MDD-6 comparison (%s)\n\n", date);
  emit("Command: `bench_mdd --search-steps %lld --train-steps %lld --batch %lld --seeds %lld "
       "--threads %lld --gamma %g --rows %s`  \n",
       (long long)opt.search_steps, (long long)opt.train_steps, (long long)opt.batch,
       (long long)opt.seeds, (long long)opt.threads, opt.gamma, opt.rows);
  emit("Data: MDD-6 at its real sizes, training sets");
  for (int d = 0; d < D; d++) emit(" %s %lld%s", NAMES[d], (long long)train_set[d].n, d + 1 < D ? "," : "");
  emit("; test sets complete. Top-1 in %%, test split; params in millions (unique), MACs in "
       "millions summed over domains; times in seconds (wall).\n\n");
  emit("| method | seeds |");
  for (int d = 0; d < D; d++) emit(" %s |", NAMES[d]);
  emit(" mean | params (M) | MACs (M) | search s | train s |\n|---|---|");
  for (int d = 0; d <= D; d++) emit("---|");
  emit("---|---|---|---|\n");

  int all[D] = {0, 1, 2, 3, 4, 5};
  int32_t paths[MAX_SEEDS][D * MAX_LAYERS];
  double mpnas_search_s[MAX_SEEDS];
  int have_mpnas = 0;

  if (wanted("independent")) {
    result r = {0};
    int32_t p[D * MAX_LAYERS];
    r.search_s = search(0, MPNAS_METHOD_INDEPENDENT, 0, all, D, p, L, "independent");
    for (int d = 0; d < D; d++) train(0, &all[d], 1, p, L, MPNAS_ABDP_SAMPLE_BALANCED,
                                      MPNAS_ABDP_SIGNAL_NONE, &r, NULL, NAMES[d]);
    finish(&r);
    row("domain-independent NAS (separate models)", &r, 1);
  }
  if (wanted("single-path")) {
    result r = {0};
    int32_t p[D * MAX_LAYERS], ref[MAX_LAYERS];
    mpnas_supernet *sn = NULL;
    OK(mpnas_supernet_create(ctx, sp, &sn), "supernet");
    /* The supernet's default fixed path is the space's reference path. */
    OK(mpnas_supernet_add_domain(sn, "x", 2, NULL), "domain");
    OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_METHOD, MPNAS_METHOD_SINGLE_PATH), "method");
    OK(mpnas_supernet_path(sn, 0, ref, (size_t)L), "reference path");
    mpnas_supernet_free(sn);
    for (int d = 0; d < D; d++) memcpy(p + d * L, ref, sizeof(int32_t) * (size_t)L);
    train(0, all, D, p, L, MPNAS_ABDP_SAMPLE_BALANCED, MPNAS_ABDP_SIGNAL_NONE, &r, NULL, "single-path");
    finish(&r);
    row("single-path multi-head", &r, 1);
  }
  if (wanted("multi-head")) {
    result r = {0};
    int32_t p[D * MAX_LAYERS];
    r.search_s = search(0, MPNAS_METHOD_MULTI_HEAD, 0, all, D, p, L, "multi-head");
    train(0, all, D, p, L, MPNAS_ABDP_SAMPLE_BALANCED, MPNAS_ABDP_SIGNAL_NONE, &r, NULL, "multi-head");
    finish(&r);
    row("multi-head NAS", &r, 1);
  }
  static const struct { const char *row, *name; int32_t sampling, signal; } modes[] = {
      {"mpnas-off", "MPNAS, ABDP off (proportional, w = 1)", MPNAS_ABDP_SAMPLE_PROPORTIONAL, MPNAS_ABDP_SIGNAL_NONE},
      {"mpnas-balanced", "MPNAS, ABDP balanced", MPNAS_ABDP_SAMPLE_BALANCED, MPNAS_ABDP_SIGNAL_NONE},
      {"mpnas-loss", "MPNAS, ABDP balanced + loss", MPNAS_ABDP_SAMPLE_BALANCED, MPNAS_ABDP_SIGNAL_LOSS},
      {"mpnas-kpi", "MPNAS, ABDP balanced + kpi", MPNAS_ABDP_SAMPLE_BALANCED, MPNAS_ABDP_SIGNAL_KPI},
      {"mpnas-boost", "MPNAS, ABDP balanced + boost", MPNAS_ABDP_SAMPLE_BALANCED, MPNAS_ABDP_SIGNAL_BOOST}};
  mpnas_model *figure_model = NULL;
  for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
    if (!wanted(modes[k].row)) continue;
    if (!have_mpnas) {
      for (int s = 0; s < opt.seeds; s++) {
        char label[32];
        snprintf(label, sizeof label, "mpnas seed %d", s);
        mpnas_search_s[s] = search((uint64_t)s, MPNAS_METHOD_MPNAS, 0, all, D, paths[s], L, label);
      }
      have_mpnas = 1;
    }
    result r[MAX_SEEDS];
    memset(r, 0, sizeof r);
    for (int s = 0; s < opt.seeds; s++) {
      r[s].search_s = mpnas_search_s[s];
      int keep = opt.figures && !figure_model && modes[k].sampling == MPNAS_ABDP_SAMPLE_BALANCED && s == 0;
      train((uint64_t)s, all, D, paths[s], L, modes[k].sampling, modes[k].signal, &r[s],
            keep ? &figure_model : NULL, modes[k].row);
      finish(&r[s]);
    }
    row(modes[k].name, r, (int)opt.seeds);
  }
  if (wanted("mpnas-share")) {
    result r = {0};
    int32_t p[D * MAX_LAYERS];
    r.search_s = search(0, MPNAS_METHOD_MPNAS, opt.gamma, all, D, p, L, "mpnas-share");
    train(0, all, D, p, L, MPNAS_ABDP_SAMPLE_BALANCED, MPNAS_ABDP_SIGNAL_NONE, &r, NULL, "mpnas-share");
    finish(&r);
    row("MPNAS + sharing-aware cost, balanced", &r, 1);
  }
  if (wanted("random") && have_mpnas) {
    result r[MAX_SEEDS];
    memset(r, 0, sizeof r);
    for (int s = 0; s < opt.seeds; s++) {
      /* Per domain, a uniformly random path whose MACs are within 10% of the MPNAS path's. */
      int32_t p[D * MAX_LAYERS];
      uint64_t state = 0x9e3779b97f4a7c15ull * (uint64_t)(s + 1);
      for (int d = 0; d < D; d++) {
        int64_t target, tp, macs, params;
        OK(mpnas_space_path_cost(sp, paths[s] + d * L, (size_t)L, classes[d], &target, &tp), "cost");
        for (int tries = 0;; tries++) {
          for (int64_t l = 0; l < L; l++) {
            int32_t nops;
            OK(mpnas_space_num_ops(sp, (int32_t)l, &nops), "ops");
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            p[d * L + l] = (int32_t)((state >> 33) % (uint64_t)nops);
          }
          OK(mpnas_space_path_cost(sp, p + d * L, (size_t)L, classes[d], &macs, &params), "cost");
          if ((macs > target * 0.9 && macs < target * 1.1) || tries > 100000) break;
        }
      }
      train((uint64_t)s, all, D, p, L, MPNAS_ABDP_SAMPLE_BALANCED, MPNAS_ABDP_SIGNAL_NONE, &r[s],
            NULL, "random");
      finish(&r[s]);
    }
    row("random paths at MPNAS's cost, balanced", r, (int)opt.seeds);
  }
  emit("\nMachine: %lld thread(s); see docs/PERFORMANCE.md for the CPU.\n", (long long)opt.threads);
  if (figure_model && opt.figures) {
    char a[512], j[512];
    mkdir(opt.figures, 0777);
    snprintf(a, sizeof a, "%s/mdd6-architecture.svg", opt.figures);
    snprintf(j, sizeof j, "%s/mdd6-jaccard.svg", opt.figures);
    /* Links relative to the markdown file when both live under docs/. */
    const char *ra = strncmp(a, "docs/", 5) == 0 ? a + 5 : a, *rj = strncmp(j, "docs/", 5) == 0 ? j + 5 : j;
    if (svg_write_architecture(figure_model, a) == 0 && svg_write_jaccard(figure_model, j) == 0)
      emit("\nFigures (MPNAS seed 0, balanced): ![architecture](%s) ![jaccard](%s)\n", ra, rj);
  }
  mpnas_model_free(figure_model);
  mpnas_context_free(figure_ctx);
  if (out) fclose(out);
  fprintf(stderr, "\n");
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
  return 0;
}
