/* bench_search.c - milliseconds per search step of the 32 px preset on the embedded
 * synthetic domains (examples/synthetic.h), split into its training and validation parts.
 *
 *   bench_search [--steps 20] [--warm 3] [--threads 1,2] [--train-batch 16]
 *                [--valid-batch 128] [--images 600] [--p 0.5] [--real] [--per-domain]
 *                [--verbose] [--kernels NAME] [--json]
 *
 * One step is what mpnas__supernet_step does (src/search/search.c), timed in parts:
 *   paths  every domain samples a path (warmup mixing probability --p: each layer takes
 *          a random non-zero op with probability p, else the controller's sample);
 *   train  zero the gradients; per domain a training batch forward + backward
 *          (mpnas__supernet_run, train = 1); one SGD step;
 *   valid  every domain's validation batch forward (mpnas__supernet_validate: the
 *          domains run concurrently when there are several threads); with --per-domain,
 *          mpnas__supernet_batch + mpnas__supernet_run(train = 0) domain by domain.
 * The controllers are not updated (their cost is microseconds), so the paths of a run
 * depend only on the seed: the same steps are timed before and after a change.
 * --real instead times mpnas__supernet_step itself (the whole step, the controllers
 * included). Prints per thread count the median and minimum over the timed steps
 * (after --warm untimed ones) and the minor page faults per timed step; --verbose also
 * each step's times and page faults. --kernels NAME runs the kernel table of that name
 * (mpnas__kernels_named: "avx2", "avx512", ...; bit-identical results) instead of the
 * CPU's default, for side-by-side comparisons of the tables. --json adds one JSON line
 * per thread count ({"bench": "search", "threads", "step_ms", "step_min_ms", and without
 * --real "train_ms", "valid_ms"}: medians over the timed steps) for bench/ab_compare.py.
 *
 * Built with -DBENCH_OLD_TREE it compiles against a tree from before
 * mpnas__supernet_validate and the per-worker workspaces (7dab889), for before/after
 * comparisons (validation domain by domain). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "../examples/synthetic.h"
#include "bench_util.h"
#include "common/common.h"
#include "search/supernet.h"
#include "train/optim.h"

static long minor_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

static double minimum(const double *v, int n) {
  double m = v[0];
  for (int i = 1; i < n; i++)
    if (v[i] < m) m = v[i];
  return m;
}

typedef struct {
  int steps, warm, train_batch, valid_batch, images, real, per_domain, verbose, json;
  double p;
  const char *kernels; /* --kernels, or NULL */
} options;

static int die(mpnas_context *ctx, const char *what) {
  fprintf(stderr, "bench_search: %s: %s\n", what, ctx ? mpnas_context_last_error(ctx) : "");
  return 1;
}

/* One step in timed parts (see the header). */
static mpnas_status step_parts(mpnas_supernet *sn, double p, float *x, int32_t *labels,
                               double *t_train, double *t_valid, int32_t *correct_total,
                               double *macs, int per_domain) {
  const mpnas__search_config *cfg = &sn->cfg;
  mpnas_status st = MPNAS_OK;
  *macs = 0.0;
  for (int32_t d = 0; d < sn->ndomains; d++) {
    mpnas__controller_sample_warmup(sn->controllers[mpnas__supernet_controller_of(sn, d)].impl,
                                    &sn->rng, (float)p, sn->warmup_allowed,
                                    sn->domains[d].sampled);
    *macs += (double)mpnas__path_cost(&sn->space, sn->domains[d].sampled,
                                      sn->domains[d].classes).macs;
  }
  double t0 = bench_now();
  mpnas__params_zero_grad(&sn->params);
  for (int32_t d = 0; d < sn->ndomains && st == MPNAS_OK; d++) {
    double loss;
    int32_t right;
    mpnas__supernet_batch(sn, d, 0, cfg->train_batch, x, labels);
    st = mpnas__supernet_run(sn, d, sn->domains[d].sampled, x, labels, cfg->train_batch, 1,
                             1.0f, &loss, &right);
  }
  mpnas__optim_config opt = {MPNAS__OPT_SGD, (float)cfg->momentum, 1, 0.0f, 0.0f,
                             (float)cfg->weight_decay};
  mpnas__params_step(&sn->params, &opt, (float)cfg->lr);
  double t1 = bench_now();
  (void)per_domain;
#if !defined(BENCH_OLD_TREE)
  if (!per_domain) {
    st = mpnas__supernet_validate(sn);
    for (int32_t d = 0; d < sn->ndomains; d++)
      *correct_total += (int32_t)(sn->domains[d].valid_acc * cfg->valid_batch + 0.5);
  } else
#endif
  {
    for (int32_t d = 0; d < sn->ndomains && st == MPNAS_OK; d++) {
      double loss;
      int32_t right;
      mpnas__supernet_batch(sn, d, 1, cfg->valid_batch, x, labels);
      st = mpnas__supernet_run(sn, d, sn->domains[d].sampled, x, labels, cfg->valid_batch, 0,
                               1.0f, &loss, &right);
      *correct_total += right;
    }
  }
  double t2 = bench_now();
  mpnas_status rs = mpnas__arena_reset(&sn->ws);
  *t_train = t1 - t0;
  *t_valid = t2 - t1;
  return st != MPNAS_OK ? st : rs;
}

static int run(const options *o, int threads) {
  mpnas_context *ctx = NULL;
  mpnas_space *space = NULL;
  mpnas_supernet *sn = NULL;
  if (mpnas_context_create(&ctx) != MPNAS_OK) return die(NULL, "context");
  if (mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, threads) != MPNAS_OK ||
      mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 1) != MPNAS_OK)
    return die(ctx, "context settings");
  if (o->kernels) {
    const mpnas__kernels *k = mpnas__kernels_named(o->kernels);
    if (k == NULL) {
      fprintf(stderr, "bench_search: no kernel table %s on this CPU or in this build\n", o->kernels);
      return 2;
    }
    ctx->engine.k = k; /* nothing below sets the context's ISA or threads again */
  }
  if (mpnas_space_create(ctx, MPNAS_PRESET_32PX, &space) != MPNAS_OK ||
      mpnas_supernet_create(ctx, space, &sn) != MPNAS_OK)
    return die(ctx, "supernet");
  uint8_t *images = malloc((size_t)o->images * SYN_PIXELS);
  int32_t *lab = malloc(sizeof(int32_t) * (size_t)o->images);
  if (!images || !lab) return die(ctx, "memory");
  for (int d = 0; d < SYN_DOMAINS; d++) {
    int32_t id;
    for (int i = 0; i < o->images; i++)
      lab[i] = syn_image(d, (uint64_t)i, 7, images + (size_t)i * SYN_PIXELS);
    if (mpnas_supernet_add_domain(sn, SYN_NAMES[d], SYN_CLASSES[d], &id) != MPNAS_OK ||
        mpnas_supernet_set_data(sn, id, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images, lab,
                                o->images) != MPNAS_OK)
      return die(ctx, "data");
  }
  free(images);
  free(lab);
  int total = o->warm + o->steps;
  if (mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, o->real ? 4 * total : 1000) != MPNAS_OK ||
      mpnas_supernet_set_int(sn, MPNAS_SEARCH_TRAIN_BATCH, o->train_batch) != MPNAS_OK ||
      mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, o->valid_batch) != MPNAS_OK)
    return die(ctx, "search settings");
  if (mpnas__supernet_prepare(sn) != MPNAS_OK) return die(ctx, "prepare");

  size_t per = (size_t)SYN_PIXELS;
  int32_t big = o->train_batch > o->valid_batch ? o->train_batch : o->valid_batch;
  float *x = malloc(sizeof(float) * per * (size_t)big);
  int32_t *labels = malloc(sizeof(int32_t) * (size_t)big);
  double *tt = calloc((size_t)total, sizeof(double)), *tv = calloc((size_t)total, sizeof(double));
  double *ts = calloc((size_t)total, sizeof(double));
  if (!x || !labels || !tt || !tv || !ts) return die(ctx, "memory");
  double macs_sum = 0.0; /* per image, summed over the domains' paths and the timed steps */
  long faults_warm = 0, faults_timed = 0;
  int32_t correct = 0;
  for (int s = 0; s < total; s++) {
    long f0 = minor_faults();
    double t0 = bench_now();
    if (o->real) {
      if (mpnas__supernet_step(sn) != MPNAS_OK) return die(ctx, "step");
    } else {
      double macs;
      if (step_parts(sn, o->p, x, labels, &tt[s], &tv[s], &correct, &macs, o->per_domain) !=
          MPNAS_OK)
        return die(ctx, "step");
      if (s >= o->warm) macs_sum += macs;
    }
    ts[s] = bench_now() - t0;
    long f = minor_faults() - f0;
    if (o->verbose && o->real) /* the library's step: no phase times to show */
      printf("  step %3d: %8.1f ms, %ld page faults\n", s, 1e3 * ts[s], f);
    else if (o->verbose)
      printf("  step %3d: %8.1f ms (train %7.1f, valid %7.1f), %ld page faults\n", s,
             1e3 * ts[s], 1e3 * tt[s], 1e3 * tv[s], f);
    if (s < o->warm) faults_warm += f;
    else faults_timed += f;
  }
  int n = o->steps;
  double *t_step = ts + o->warm, *t_train = tt + o->warm, *t_valid = tv + o->warm;
  double step_min = minimum(t_step, n), train_min = minimum(t_train, n);
  double valid_min = minimum(t_valid, n);
  double step_med = bench_median(t_step, n), train_med = bench_median(t_train, n);
  double valid_med = bench_median(t_valid, n);
  if (o->real)
    printf("threads %d  step %8.1f ms (min %8.1f)", threads, 1e3 * step_med, 1e3 * step_min);
  else
    printf("threads %d  step %8.1f ms (min %8.1f)  train %8.1f (min %8.1f)  valid %8.1f "
           "(min %8.1f)",
           threads, 1e3 * step_med, 1e3 * step_min, 1e3 * train_med, 1e3 * train_min,
           1e3 * valid_med, 1e3 * valid_min);
  printf("  faults/step %ld (warm-up %ld)\n", faults_timed / (n > 0 ? n : 1),
         faults_warm / (o->warm > 0 ? o->warm : 1));
  if (o->json) {
    printf("{\"bench\": \"search\", \"threads\": %d, \"step_ms\": %.2f, \"step_min_ms\": %.2f",
           threads, 1e3 * step_med, 1e3 * step_min);
    if (!o->real) printf(", \"train_ms\": %.2f, \"valid_ms\": %.2f", 1e3 * train_med, 1e3 * valid_med);
    printf("}\n");
  }
  {
    /* The workspace's high-water marks: the step's own, and each worker's (the
     * validation's per-thread workspaces, when there are any). */
    printf("           workspace high-water %.1f MB", (double)sn->ws.high_water / 1048576.0);
#if !defined(BENCH_OLD_TREE)
    for (int i = 0; i < sn->ws.nkids; i++)
      printf("%s%.1f", i ? ", " : "; per worker ", (double)sn->ws.kids[i].high_water / 1048576.0);
    printf("%s", sn->ws.nkids ? " MB" : "");
#endif
    printf("\n");
  }
  if (!o->real) {
    /* Forward MACs per step (paths' costs x images); training counts 3x (forward, input
     * and weight gradients). GFLOP/s from the mean time. */
    double sum_t = 0.0, sum_v = 0.0, per_step = macs_sum / n;
    for (int i = 0; i < n; i++) sum_t += t_train[i], sum_v += t_valid[i];
    double ft = 2.0 * 3.0 * per_step * o->train_batch, fv = 2.0 * per_step * o->valid_batch;
    printf("           GFLOP/step train %.2f valid %.2f; GFLOP/s (mean) train %.1f valid %.1f\n",
           ft * 1e-9, fv * 1e-9, ft * n / sum_t * 1e-9, fv * n / sum_v * 1e-9);
  }
  fflush(stdout);
  free(x);
  free(labels);
  free(tt);
  free(tv);
  free(ts);
  mpnas_supernet_free(sn);
  mpnas_space_free(space);
  mpnas_context_free(ctx);
  return 0;
}

int main(int argc, char **argv) {
  options o = {20, 3, 16, 128, 600, 0, 0, 0, 0, 0.5, NULL};
  int threads[8] = {1, 2}, nthreads = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (!strcmp(a, "--threads") && more) {
      nthreads = 0;
      for (char *p = strtok(argv[++i], ","); p && nthreads < 8; p = strtok(NULL, ","))
        threads[nthreads++] = atoi(p);
    } else if (!strcmp(a, "--steps") && more) {
      o.steps = atoi(argv[++i]);
    } else if (!strcmp(a, "--warm") && more) {
      o.warm = atoi(argv[++i]);
    } else if (!strcmp(a, "--train-batch") && more) {
      o.train_batch = atoi(argv[++i]);
    } else if (!strcmp(a, "--valid-batch") && more) {
      o.valid_batch = atoi(argv[++i]);
    } else if (!strcmp(a, "--images") && more) {
      o.images = atoi(argv[++i]);
    } else if (!strcmp(a, "--p") && more) {
      o.p = atof(argv[++i]);
    } else if (!strcmp(a, "--real")) {
      o.real = 1;
    } else if (!strcmp(a, "--per-domain")) {
      o.per_domain = 1;
    } else if (!strcmp(a, "--verbose")) {
      o.verbose = 1;
    } else if (!strcmp(a, "--json")) {
      o.json = 1;
    } else if (!strcmp(a, "--kernels") && more) {
      o.kernels = argv[++i];
    } else {
      fprintf(stderr,
              "usage: %s [--steps N] [--warm N] [--threads 1,2] [--train-batch N] "
              "[--valid-batch N] [--images N] [--p P] [--real] [--per-domain] [--verbose] [--kernels NAME] "
              "[--json]\n",
              argv[0]);
      return 2;
    }
  }
  if (o.steps < 1) o.steps = 1;
  if (o.warm < 0) o.warm = 0;
  if (o.images < 20) o.images = 20;
  printf("search step, preset 32px, %d synthetic domains, train batch %d, valid batch %d, "
         "p %.2f, %d timed steps after %d%s%s%s%s\n",
         SYN_DOMAINS, o.train_batch, o.valid_batch, o.p, o.steps, o.warm,
         o.kernels ? ", kernels " : "", o.kernels ? o.kernels : "",
         o.real ? " (mpnas__supernet_step)" : "",
         o.per_domain ? " (validation domain by domain)" : "");
  for (int t = 0; t < nthreads; t++)
    if (run(&o, threads[t]) != 0) return 1;
  return 0;
}
