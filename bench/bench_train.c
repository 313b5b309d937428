/* bench_train.c - end-to-end speed of the MBV2-9 reference network
 * (shared/design/BENCHMARKS.md, "End-to-end reference network MBV2-9") through the
 * public model API: training throughput, eval throughput at batch 64 and batch-1
 * latency, to set beside PyTorch's figures (bench/bench_train_torch_compare.py).
 *
 *   bench_train [--threads 1,2] [--rounds 5] [--steps 10] [--warm 3] [--batch 64]
 *               [--images 3200] [--augment 0] [--f32] [--lat-reps 200] [--json]
 *               [--train-only] [--int8] [--kernels NAME] [--shard]
 *
 * One domain, 10 classes, random 32x32x3 images (uint8, or float with --f32) and random
 * labels; the space is MPNAS_PRESET_MBV2_9, whose one path is op 0 of every layer.
 *
 * train  `--warm` (>= 1) untimed steps (the first builds the model; the first two fault
 *        in the ~0.35 GB workspace), then `--rounds` times: one mpnas_model_train call of
 *        `--steps` steps, timed; the figure is the median over rounds of time / steps.
 *        A step is everything mpnas_model_train does per step: ABDP's split (one
 *        domain: all `batch` images), drawing and normalising the batch (and its random
 *        crop when --augment > 0), forward + backward, one SGD (Nesterov) step; plus
 *        one BN fold per call. Periodic validation is off: MPNAS_TRAIN_VALID_EVERY and
 *        MPNAS_TRAIN_STEPS are 10^8, so neither the every-N nor the last-step
 *        validation runs. The settings follow bench_train_torch.py's step where they
 *        can: lr 0.01 without warm-up, momentum 0.9, no weight decay, no label
 *        smoothing, no augmentation (PyTorch's step takes a ready tensor).
 * eval   a predictor on the trained model: median of `rounds x steps` runs of one
 *        batch (MPNAS_OUTPUT_LOGITS) after two warm-up runs.
 * lat    the same predictor on one image: median of `--lat-reps` runs.
 * --train-only skips eval and lat (for profiling the training step: perf record -g).
 * --shard trains with MPNAS_CONTEXT_SHARD_BATCH 1 (a shard of the batch per thread).
 * --kernels NAME runs the kernel table of that name (mpnas__kernels_named: "avx2",
 *        "avx2+vnni", "avx512", ...; set on the context's engine, so this benchmark
 *        includes the library's internal headers) instead of the best one of the ISA.
 * --int8 also quantises the trained model (mpnas_model_quantize, calibrated on 64 of the
 *        images; docs/QUANTIZATION.md) and measures batch-1 latency of a float and an
 *        int8 predictor side by side: the two run alternately on the same image, each
 *        a median of `--lat-reps` runs, so load on the machine hits both alike.
 *
 * FLOPs per image forward = 2 x MPNAS_MODEL_MACS; training counts 3x forward (forward,
 * input and weight gradients), as bench_kernels.c and the PyTorch script do. Also
 * printed: the library's allocations (through the context's allocator), minor page
 * faults and the process's CPU time (user + system, all threads) per timed training
 * step - on a loaded machine a steadier figure than the wall time, as time spent waiting
 * for a processor is not counted - and the process's peak RSS after the timed training
 * (getrusage; it only grows, so with several thread counts later lines include earlier
 * ones: run one thread count per process to compare memory). */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"
#include "common/common.h" /* the context's engine, for --kernels */
#include "mpnas.h"

#define CLASSES 10

static struct rusage usage_now(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru;
}

/* Counts the library's allocations; atomic because worker threads may allocate. Large
 * blocks get the default allocator's huge-page advice, so that the figures are a default
 * context's. */
static atomic_long n_allocs;
static void *count_malloc(void *user, size_t size) {
  (void)user;
  atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
  void *p = malloc(size);
  mpnas__huge_page_advice(p, size);
  return p;
}
static void count_free(void *user, void *ptr) {
  (void)user;
  free(ptr);
}

typedef struct {
  int rounds, steps, warm, batch, images, augment, f32, lat_reps, json, train_only, int8;
  const char *kernels; /* --kernels, or NULL */
  int shard;           /* --shard: MPNAS_CONTEXT_SHARD_BATCH 1 */
} options;

static mpnas_context *ctx;

static void check(mpnas_status st, const char *what) {
  if (st != MPNAS_OK) {
    fprintf(stderr, "bench_train: %s: %s (%s)\n", what, mpnas_status_string(st),
            mpnas_context_last_error(ctx));
    exit(1);
  }
}

/* Random images and labels (a fixed LCG: the same data for every run). */
static void make_data(const options *o, size_t per, void **images, int32_t **labels) {
  size_t n = (size_t)o->images * per;
  uint8_t *u8 = o->f32 ? NULL : malloc(n);
  float *f = o->f32 ? malloc(sizeof(float) * n) : NULL;
  *labels = malloc(sizeof(int32_t) * (size_t)o->images);
  if ((!u8 && !f) || !*labels) {
    fprintf(stderr, "bench_train: out of memory\n");
    exit(1);
  }
  uint64_t s = 12345;
  for (size_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    if (u8) u8[i] = (uint8_t)(s >> 56);
    else f[i] = (float)((double)(s >> 40) / (double)(1ULL << 24)) - 0.5f;
  }
  for (int i = 0; i < o->images; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    (*labels)[i] = (int32_t)((s >> 33) % CLASSES);
  }
  *images = u8 ? (void *)u8 : (void *)f;
}

/* Eval seconds per batch of o->batch (median of rounds x steps runs) and per single
 * image (median of o->lat_reps) through one predictor; t is scratch for the samples. */
static void eval(const options *o, const mpnas_model *m, int32_t d, int32_t dtype,
                 const void *images, size_t per, double *t, double *t_eval, double *t_lat) {
  mpnas_predictor *p = NULL;
  check(mpnas_predictor_create(m, &p), "predictor");
  size_t cap = (size_t)CLASSES * o->batch;
  float *out = malloc(sizeof(float) * cap);
  if (!out) exit(1);
  int n = o->rounds * o->steps;
  for (int i = 0; i < n + 2; i++) {
    double t0 = bench_now();
    check(mpnas_predictor_run(p, d, dtype, images, o->batch, MPNAS_OUTPUT_LOGITS, out, cap),
          "eval");
    if (i >= 2) t[i - 2] = bench_now() - t0;
  }
  *t_eval = bench_median(t, n);
  size_t bytes = o->f32 ? sizeof(float) : 1;
  for (int i = 0; i < o->lat_reps + 10; i++) {
    /* A different image each run, as a stream of requests would be. */
    const char *img = (const char *)images + (size_t)(i % o->images) * per * bytes;
    double t0 = bench_now();
    check(mpnas_predictor_run(p, d, dtype, img, 1, MPNAS_OUTPUT_LOGITS, out, cap), "latency");
    if (i >= 10) t[i - 10] = bench_now() - t0;
  }
  *t_lat = bench_median(t, o->lat_reps);
  free(out);
  mpnas_predictor_free(p);
}

/* Batch-1 latency of float and int8 predictors, alternating (median of o->lat_reps each). */
static void latency_int8(const options *o, mpnas_model *m, int32_t d, int32_t dtype,
                         const void *images, size_t per, double *t_f, double *t_q) {
  check(mpnas_model_quantize(m, 64), "quantize");
  mpnas_predictor *pf = NULL, *pq = NULL;
  check(mpnas_predictor_create(m, &pf), "predictor");
  check(mpnas_predictor_create(m, &pq), "predictor");
  check(mpnas_predictor_set_precision(pq, MPNAS_PRECISION_INT8), "int8 predictor");
  float out[CLASSES];
  double *tf = malloc(sizeof(double) * (size_t)o->lat_reps);
  double *tq = malloc(sizeof(double) * (size_t)o->lat_reps);
  if (!tf || !tq) exit(1);
  size_t bytes = o->f32 ? sizeof(float) : 1;
  for (int i = 0; i < o->lat_reps + 10; i++) {
    const char *img = (const char *)images + (size_t)(i % o->images) * per * bytes;
    double t0 = bench_now();
    check(mpnas_predictor_run(pf, d, dtype, img, 1, MPNAS_OUTPUT_LOGITS, out, CLASSES), "latency");
    double t1 = bench_now();
    check(mpnas_predictor_run(pq, d, dtype, img, 1, MPNAS_OUTPUT_LOGITS, out, CLASSES), "int8 latency");
    double t2 = bench_now();
    if (i >= 10) {
      tf[i - 10] = t1 - t0;
      tq[i - 10] = t2 - t1;
    }
  }
  *t_f = bench_median(tf, o->lat_reps);
  *t_q = bench_median(tq, o->lat_reps);
  free(tf);
  free(tq);
  mpnas_predictor_free(pf);
  mpnas_predictor_free(pq);
}

static void run(const options *o, int threads) {
  check(mpnas_context_create_with_allocator(&ctx, count_malloc, count_free, NULL), "context");
  check(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, threads), "threads");
  check(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SHARD_BATCH, o->shard), "shard_batch");
  if (o->kernels) {
    const mpnas__kernels *k = mpnas__kernels_named(o->kernels);
    if (k == NULL) {
      fprintf(stderr, "bench_train: no kernel table %s on this CPU or in this build\n", o->kernels);
      exit(2);
    }
    ctx->engine.k = k; /* nothing below sets the context's ISA or threads again */
  }
  if (!o->json) printf("# kernels: %s\n", ctx->engine.k->name);
  mpnas_space *space = NULL;
  mpnas_model *m = NULL;
  check(mpnas_space_create(ctx, MPNAS_PRESET_MBV2_9, &space), "space");
  int64_t nlayers = 0, in_h, in_w, in_c;
  check(mpnas_space_get_int(space, MPNAS_SPACE_NUM_LAYERS, &nlayers), "layers");
  if (nlayers > 64) check(MPNAS_E_INTERNAL, "more layers than this benchmark expects");
  mpnas_space_get_int(space, MPNAS_SPACE_INPUT_HEIGHT, &in_h);
  mpnas_space_get_int(space, MPNAS_SPACE_INPUT_WIDTH, &in_w);
  mpnas_space_get_int(space, MPNAS_SPACE_INPUT_CHANNELS, &in_c);
  int32_t path[64] = {0}, d; /* every layer of MBV2-9 has one op, index 0 */
  check(mpnas_model_create(ctx, space, &m), "model");
  check(mpnas_model_add_domain(m, "random", CLASSES, path, (size_t)nlayers, &d), "domain");

  size_t per = (size_t)(in_h * in_w * in_c);
  int32_t dtype = o->f32 ? MPNAS_DTYPE_F32 : MPNAS_DTYPE_U8;
  void *images;
  int32_t *labels;
  make_data(o, per, &images, &labels);
  check(mpnas_model_set_data(m, d, MPNAS_SPLIT_TRAIN, dtype, images, labels, o->images), "data");
  check(mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, o->batch), "batch");
  check(mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, 100000000), "steps");
  check(mpnas_model_set_int(m, MPNAS_TRAIN_VALID_EVERY, 100000000), "valid every");
  check(mpnas_model_set_int(m, MPNAS_TRAIN_AUGMENT_PAD, o->augment), "augment");
  check(mpnas_model_set_double(m, MPNAS_TRAIN_LEARNING_RATE, 0.01), "lr");
  check(mpnas_model_set_double(m, MPNAS_TRAIN_WARMUP_FRACTION, 0.0), "warmup");
  check(mpnas_model_set_double(m, MPNAS_TRAIN_WEIGHT_DECAY, 0.0), "weight decay");
  check(mpnas_model_set_double(m, MPNAS_TRAIN_LABEL_SMOOTHING, 0.0), "label smoothing");
  int64_t macs = 0, params = 0;
  check(mpnas_model_get_int(m, MPNAS_MODEL_MACS, &macs), "macs");
  check(mpnas_model_get_int(m, MPNAS_MODEL_PARAMS, &params), "params");
  double flops = 2.0 * (double)macs; /* per image, forward */

  /* Training. The first call also builds the model and prepares the data (untimed). */
  check(mpnas_model_train(m, o->warm, NULL, NULL, 0), "warm-up");
  int timed = o->rounds * o->steps;
  double *t = malloc(sizeof(double) * (size_t)(timed + o->lat_reps));
  if (!t) exit(1);
  long allocs0 = atomic_load(&n_allocs);
  struct rusage ru0 = usage_now();
  for (int r = 0; r < o->rounds; r++) {
    double t0 = bench_now();
    check(mpnas_model_train(m, o->steps, NULL, NULL, 0), "train");
    t[r] = (bench_now() - t0) / o->steps;
  }
  double allocs = (double)(atomic_load(&n_allocs) - allocs0) / timed;
  struct rusage ru1 = usage_now();
  double faults = (double)(ru1.ru_minflt - ru0.ru_minflt) / timed;
  double cpu_s = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 1e-6 * (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec +
                                 ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
  double cpu_ms = 1e3 * cpu_s / timed;
  double t_step = bench_median(t, o->rounds), train_img_s = o->batch / t_step;
  double rss_mb = (double)usage_now().ru_maxrss / 1024.0; /* training's peak */
  double t_eval = 0.0, t_lat = 0.0;
  if (!o->train_only) eval(o, m, d, dtype, images, per, t, &t_eval, &t_lat);
  double t_lat_f = 0.0, t_lat_q = 0.0;
  if (!o->train_only && o->int8) latency_int8(o, m, d, dtype, images, per, &t_lat_f, &t_lat_q);

  double eval_img_s = t_eval > 0.0 ? o->batch / t_eval : 0.0;
  if (o->json) {
    printf("{\"bench\": \"train\", \"net\": \"MBV2-9\", \"threads\": %d, \"batch\": %d, "
           "\"dtype\": \"%s\", \"augment\": %d, \"params\": %lld, \"mflops_per_img_fwd\": %.2f, "
           "\"train_step_ms\": %.2f, \"train_img_s\": %.1f, \"train_gflops\": %.2f, "
           "\"eval_b_img_s\": %.1f, \"eval_b_gflops\": %.2f, \"eval_b1_latency_ms\": %.3f, "
           "\"allocs_per_step\": %.1f, \"faults_per_step\": %.1f, \"cpu_ms_per_step\": %.1f, "
           "\"peak_rss_mb\": %.1f}\n",
           threads, o->batch, o->f32 ? "f32" : "u8", o->augment, (long long)params,
           flops * 1e-6, t_step * 1e3, train_img_s, 3.0 * flops * train_img_s * 1e-9,
           eval_img_s, flops * eval_img_s * 1e-9, t_lat * 1e3, allocs, faults, cpu_ms, rss_mb);
    if (o->int8)
      printf("{\"bench\": \"latency_int8\", \"net\": \"MBV2-9\", \"threads\": %d, "
             "\"b1_float_ms\": %.3f, \"b1_int8_ms\": %.3f}\n",
             threads, t_lat_f * 1e3, t_lat_q * 1e3);
  } else {
    printf("threads %d  train %7.1f img/s (%6.1f ms/step, %5.1f GFLOP/s)", threads, train_img_s,
           t_step * 1e3, 3.0 * flops * train_img_s * 1e-9);
    if (!o->train_only)
      printf("  eval b%d %7.1f img/s (%5.1f GFLOP/s)  b1 %6.3f ms", o->batch, eval_img_s,
             flops * eval_img_s * 1e-9, t_lat * 1e3);
    printf("\n           per training step: %.1f allocations, %.1f minor page faults, "
           "%.1f ms CPU; peak RSS so far %.1f MB\n",
           allocs, faults, cpu_ms, rss_mb);
    if (o->int8 && !o->train_only)
      printf("           batch-1 latency, alternating: float %.3f ms, int8 %.3f ms (%.2fx)\n",
             t_lat_f * 1e3, t_lat_q * 1e3, t_lat_q > 0 ? t_lat_f / t_lat_q : 0.0);
  }
  fflush(stdout);
  free(t);
  free(images);
  free(labels);
  mpnas_model_free(m);
  mpnas_space_free(space);
  mpnas_context_free(ctx);
  ctx = NULL;
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench_train [--threads 1,2] [--rounds R] [--steps S] [--warm W] [--batch B] "
          "[--images N] [--augment PAD] [--f32] [--lat-reps N] [--json] [--train-only] [--int8] [--kernels NAME] [--shard]\n");
  exit(2);
}

int main(int argc, char **argv) {
  options o = {5, 10, 3, 64, 64 * 50, 0, 0, 200, 0, 0, 0, NULL, 0};
  int threads[8] = {1, 2}, nthreads = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (!strcmp(a, "--json")) o.json = 1;
    else if (!strcmp(a, "--f32")) o.f32 = 1;
    else if (!strcmp(a, "--shard")) o.shard = 1;
    else if (!strcmp(a, "--train-only")) o.train_only = 1;
    else if (!strcmp(a, "--int8")) o.int8 = 1;
    else if (!strcmp(a, "--threads") && more) {
      nthreads = 0;
      for (char *s = strtok(argv[++i], ","); s && nthreads < 8; s = strtok(NULL, ","))
        threads[nthreads++] = atoi(s);
    } else if (!strcmp(a, "--rounds") && more) o.rounds = atoi(argv[++i]);
    else if (!strcmp(a, "--steps") && more) o.steps = atoi(argv[++i]);
    else if (!strcmp(a, "--warm") && more) o.warm = atoi(argv[++i]);
    else if (!strcmp(a, "--batch") && more) o.batch = atoi(argv[++i]);
    else if (!strcmp(a, "--images") && more) o.images = atoi(argv[++i]);
    else if (!strcmp(a, "--augment") && more) o.augment = atoi(argv[++i]);
    else if (!strcmp(a, "--lat-reps") && more) o.lat_reps = atoi(argv[++i]);
    else if (!strcmp(a, "--kernels") && more) o.kernels = argv[++i];
    else usage();
  }
  if (o.rounds < 1 || o.steps < 1 || o.warm < 1 || o.batch < 1 || o.lat_reps < 1 ||
      o.images < o.batch)
    usage();
  if (!o.json)
    printf("# libmpnas %s, MBV2-9, batch %d, %s images, augment pad %d; train: median of %d "
           "rounds of %d steps after %d; eval: median of %d runs; latency: median of %d\n",
           mpnas_version_string(), o.batch, o.f32 ? "float" : "uint8", o.augment, o.rounds,
           o.steps, o.warm, o.rounds * o.steps, o.lat_reps);
  for (int i = 0; i < nthreads; i++) run(&o, threads[i]);
  return 0;
}
