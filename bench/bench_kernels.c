/* bench_kernels.c - depthwise and pointwise convolution through the op layer
 * (mpnas__dw_fwd/bwd, mpnas__pw_fwd/bwd) on the benchmark shapes of
 * docs/PERFORMANCE.md, with a context's kernel table and thread count.
 *
 *   bench_kernels [--threads 1,2] [--reps 15] [--only SUBSTR] [--isa auto|scalar|avx2|neon]
 *                 [--json] [--no-peak] [--mode fwd|fwdbwd|both|parts] [--cputime]
 *                 [--kernels NAME] [--compare NAME,NAME --rounds R]
 *
 * For each shape and thread count: median time of `reps` repetitions (after warm-up)
 * of the forward pass and of forward+backward (dx and dw), GFLOP/s and the fraction of
 * the machine's fp32 FMA peak, measured here with a register-only FMA loop. FLOPs:
 * depthwise 2*N*C*Ho*Wo*K*K, pointwise 2*N*Cin*Cout*H*W; forward+backward counts 3x
 * the forward (forward, input gradient, weight gradient). --json prints one JSON
 * object per line instead of the table (bench/bench_torch.py reads it). --mode parts
 * times the input gradient ("bwd-dx") and the weight gradient ("bwd-dw") alone as well,
 * each counted as one forward's FLOPs.
 *
 * The pointwise ops pack the weights on every call, as training does (weights change
 * every step); the packing is part of the measured time.
 *
 * --kernels NAME runs one kernel table by name (mpnas__kernels_named: "avx2",
 * "avx2+vnni", "avx512", ...) instead of the ISA's best. --compare A,B times the
 * depthwise and pointwise shapes with both tables side by side: `--rounds` rounds, each timing every
 * shape and mode with A then B (each a median of `reps`), so load from other processes
 * hits both alike; it prints the median over rounds, the range and B's speed-up. The
 * fraction of peak is taken against the FMA peak of each table's vector width (the
 * 256-bit loop for avx2 tables, a 512-bit one for avx512 tables). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "common/common.h"
#include "tensor/arena.h"
#include "tensor/ops.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

/* The shapes (NHWC float32, batch 32); keep in sync with bench_torch.py. */
typedef struct {
  const char *name;
  int n, c, h, w, k, s;
} dw_shape;
typedef struct {
  const char *name;
  int n, cin, cout, h, w;
} pw_shape;
static const dw_shape DW[] = {
    {"dw3s1_c96_36", 32, 96, 36, 36, 3, 1},   {"dw3s2_c144_36", 32, 144, 36, 36, 3, 2},
    {"dw3s1_c192_18", 32, 192, 18, 18, 3, 1}, {"dw5s1_c192_18", 32, 192, 18, 18, 5, 1},
    {"dw7s1_c384_18", 32, 384, 18, 18, 7, 1}, {"dw7s2_c384_18", 32, 384, 18, 18, 7, 2},
};
static const pw_shape PW[] = {
    {"pw_16to96_36", 32, 16, 96, 36, 36},   {"pw_96to24_36", 32, 96, 24, 36, 36},
    {"pw_32to192_18", 32, 32, 192, 18, 18}, {"pw_192to64_18", 32, 192, 64, 18, 18},
    {"pw_64to384_18", 32, 64, 384, 18, 18}, {"pw_384to96_18", 32, 384, 96, 18, 18},
};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* --cputime: time with the process's CPU clock instead of the wall clock. Only for
 * 1-thread tuning on a busy machine (it ignores time spent descheduled). */
static clockid_t bench_clock = CLOCK_MONOTONIC;
static double now(void) { return bench_clock_seconds(bench_clock); }

/* ---- Peak: independent FMA chains, registers only -------------------------------- */

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_PEAK 1
/* 12 independent chains hide the FMA latency on two FMA pipes. */
__attribute__((target("avx2,fma"), noinline)) static float fma_loop(long iters, float seed) {
  __m256 a[12];
  for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps(seed + (float)i);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
  }
  __m256 s = a[0];
  for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

/* The same with 512-bit registers (the avx512 tables' peak; only run where the CPU has
 * AVX-512F). */
__attribute__((target("avx512f,fma"), noinline)) static float fma_loop512(long iters, float seed) {
  __m512 a[12];
  for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps(seed + (float)i);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
  }
  __m512 s = a[0];
  for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, a[i]);
  float out[16];
  _mm512_storeu_ps(out, s);
  return out[0];
}

/* Median GFLOP/s of the AVX2 FMA loop (wide: the AVX-512 one) on `threads` threads. */
static double measure_peak_w(int threads, int wide) {
  const long iters = 20000000;
  double g[7];
  volatile float sink = 0.0f;
  for (int r = 0; r < 7; r++) {
    double t0 = now();
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
    {
      float v = wide ? fma_loop512(iters, 1.0f + (float)omp_get_thread_num())
                     : fma_loop(iters, 1.0f + (float)omp_get_thread_num());
#pragma omp atomic
      sink += v;
    }
#else
    threads = 1;
    sink += wide ? fma_loop512(iters, 1.0f) : fma_loop(iters, 1.0f);
#endif
    g[r] = (double)threads * iters * 12 * (wide ? 16 : 8) * 2 / (now() - t0) * 1e-9;
  }
  (void)sink;
  return bench_median(g, 7);
}
static double measure_peak(int threads) { return measure_peak_w(threads, 0); }
static int have_peak512(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}
#else
#define HAVE_PEAK 0
static double measure_peak_w(int threads, int wide) {
  (void)threads, (void)wide;
  return 0.0;
}
static double measure_peak(int threads) { return measure_peak_w(threads, 0); }
static int have_peak512(void) { return 0; }
#endif

/* ---- Data ------------------------------------------------------------------------ */

static float *alloc_floats(size_t n, uint64_t seed) {
  float *p = NULL;
  if (posix_memalign((void **)&p, 64, sizeof(float) * (n ? n : 1)) != 0) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  /* Tensors as the library's own workspace holds them (the default allocator's advice). */
  mpnas__huge_page_advice(p, sizeof(float) * n);
  uint64_t s = seed * 2654435761ULL + 12345;
  for (size_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    p[i] = (float)((double)(s >> 40) / (double)(1ULL << 24)) - 0.5f;
  }
  return p;
}

/* ---- Options and output ------------------------------------------------------------ */

typedef struct {
  int threads[8], nthreads;
  int reps;
  const char *only;
  int isa;
  int json;
  int peak;
  int do_fwd, do_fwdbwd, do_parts;
  const char *kernels;    /* --kernels */
  const char *compare[2]; /* --compare A,B */
  int rounds;
} options;

static double peaks[1025];

static void report(const options *o, const char *name, int threads, const char *mode,
                   double ms, double flops) {
  double gf = flops / (ms * 1e-3) * 1e-9;
  if (o->json) {
    printf("{\"kernel\": \"%s\", \"threads\": %d, \"mode\": \"%s\", \"median_ms\": %.4f, "
           "\"gflops\": %.2f}\n",
           name, threads, mode, ms, gf);
  } else {
    double pk = threads <= 1024 ? peaks[threads] : 0.0;
    if (pk > 0.0)
      printf("%-15s %3d  %-8s %9.3f ms %8.1f GFLOP/s %6.1f%% of peak\n", name, threads, mode, ms,
             gf, 100.0 * gf / pk);
    else
      printf("%-15s %3d  %-8s %9.3f ms %8.1f GFLOP/s\n", name, threads, mode, ms, gf);
  }
  fflush(stdout);
}

/* Time `fn` reps times after two warm-up calls; median in ms. */
#define TIME_MEDIAN(reps, result, body)                \
  do {                                                 \
    double t_[256];                                    \
    int n_ = (reps) > 256 ? 256 : (reps);              \
    for (int w_ = 0; w_ < 2; w_++) { body; }           \
    for (int r_ = 0; r_ < n_; r_++) {                  \
      double t0_ = now();                              \
      body;                                            \
      t_[r_] = (now() - t0_) * 1e3;                    \
    }                                                  \
    (result) = bench_median(t_, n_);                   \
  } while (0)

static int check(mpnas_status st, const char *what) {
  if (st != MPNAS_OK) {
    fprintf(stderr, "%s failed: %d\n", what, (int)st);
    exit(1);
  }
  return 0;
}

static void bench_dw(const options *o, const mpnas__engine *eng, mpnas__arena *ws,
                     const dw_shape *d, int threads) {
  int ho = (d->h + d->s - 1) / d->s, wo = (d->w + d->s - 1) / d->s;
  size_t nx = (size_t)d->n * d->h * d->w * d->c, ny = (size_t)d->n * ho * wo * d->c;
  size_t nw = (size_t)d->k * d->k * d->c;
  float *x = alloc_floats(nx, 1), *w = alloc_floats(nw, 2), *y = alloc_floats(ny, 3);
  float *dy = alloc_floats(ny, 4), *dx = alloc_floats(nx, 5), *dw = alloc_floats(nw, 6);
  double flops = 2.0 * d->n * d->c * ho * wo * d->k * d->k, ms;
  if (o->do_fwd) {
    TIME_MEDIAN(o->reps, ms,
                check(mpnas__dw_fwd(eng, d->n, d->h, d->w, d->c, d->k, d->s, x, w, NULL, NULL,
                                    MPNAS__ACT_NONE, y),
                      "dw_fwd"));
    report(o, d->name, threads, "fwd", ms, flops);
  }
  if (o->do_fwdbwd) {
    TIME_MEDIAN(o->reps, ms, {
      check(mpnas__dw_fwd(eng, d->n, d->h, d->w, d->c, d->k, d->s, x, w, NULL, NULL,
                          MPNAS__ACT_NONE, y),
            "dw_fwd");
      check(mpnas__dw_bwd(eng, ws, d->n, d->h, d->w, d->c, d->k, d->s, x, w, dy, dx, dw), "dw_bwd");
    });
    report(o, d->name, threads, "fwd+bwd", ms, 3.0 * flops);
  }
  if (o->do_parts) {
    TIME_MEDIAN(o->reps, ms,
                check(mpnas__dw_bwd(eng, ws, d->n, d->h, d->w, d->c, d->k, d->s, x, w, dy, dx,
                                    NULL),
                      "dw_bwd"));
    report(o, d->name, threads, "bwd-dx", ms, flops);
    TIME_MEDIAN(o->reps, ms,
                check(mpnas__dw_bwd(eng, ws, d->n, d->h, d->w, d->c, d->k, d->s, x, w, dy, NULL,
                                    dw),
                      "dw_bwd"));
    report(o, d->name, threads, "bwd-dw", ms, flops);
  }
  free(x), free(w), free(y), free(dy), free(dx), free(dw);
}

static void bench_pw(const options *o, const mpnas__engine *eng, mpnas__arena *ws,
                     const pw_shape *p, int threads) {
  int m = p->n * p->h * p->w;
  size_t nx = (size_t)m * p->cin, ny = (size_t)m * p->cout, nw = (size_t)p->cin * p->cout;
  float *x = alloc_floats(nx, 1), *w = alloc_floats(nw, 2), *y = alloc_floats(ny, 3);
  float *dy = alloc_floats(ny, 4), *dx = alloc_floats(nx, 5), *dw = alloc_floats(nw, 6);
  double flops = 2.0 * m * p->cin * p->cout, ms;
  if (o->do_fwd) {
    TIME_MEDIAN(o->reps, ms,
                check(mpnas__pw_fwd(eng, ws, m, p->cin, p->cout, x, w, NULL, NULL,
                                    MPNAS__ACT_NONE, NULL, y),
                      "pw_fwd"));
    report(o, p->name, threads, "fwd", ms, flops);
  }
  if (o->do_fwdbwd) {
    TIME_MEDIAN(o->reps, ms, {
      check(mpnas__pw_fwd(eng, ws, m, p->cin, p->cout, x, w, NULL, NULL, MPNAS__ACT_NONE, NULL, y),
            "pw_fwd");
      check(mpnas__pw_bwd(eng, ws, m, p->cin, p->cout, x, w, dy, dx, dw), "pw_bwd");
    });
    report(o, p->name, threads, "fwd+bwd", ms, 3.0 * flops);
  }
  if (o->do_parts) {
    TIME_MEDIAN(o->reps, ms,
                check(mpnas__pw_bwd(eng, ws, m, p->cin, p->cout, x, w, dy, dx, NULL), "pw_bwd"));
    report(o, p->name, threads, "bwd-dx", ms, flops);
    TIME_MEDIAN(o->reps, ms,
                check(mpnas__pw_bwd(eng, ws, m, p->cin, p->cout, x, w, dy, NULL, dw), "pw_bwd"));
    report(o, p->name, threads, "bwd-dw", ms, flops);
  }
  free(x), free(w), free(y), free(dy), free(dx), free(dw);
}

/* One line of --compare: median, range and GFLOP/s of each table's R round times. */
static void compare_line(const char *name, int threads, const char *mode, double t[2][64], int R,
                         double flops, const mpnas__kernels *tk[2], const double pk[2]) {
  double med[2], lo[2], hi[2];
  for (int q = 0; q < 2; q++) {
    lo[q] = hi[q] = t[q][0];
    for (int r = 1; r < R; r++) {
      lo[q] = t[q][r] < lo[q] ? t[q][r] : lo[q];
      hi[q] = t[q][r] > hi[q] ? t[q][r] : hi[q];
    }
    med[q] = bench_median(t[q], R);
  }
  printf("%-15s %2d %-8s", name, threads, mode);
  for (int q = 0; q < 2; q++) {
    double gf = flops / (med[q] * 1e-3) * 1e-9;
    printf(" | %-11s %8.3f ms (%.3f-%.3f) %6.1f GF/s", tk[q]->name, med[q], lo[q], hi[q], gf);
    if (pk[q] > 0.0) printf(" %5.1f%%", 100.0 * gf / pk[q]);
  }
  printf(" | %.2fx\n", med[0] / med[1]);
  fflush(stdout);
}

/* --compare on the depthwise shapes: forward, forward+backward, and with --mode parts
 * the input and weight gradients alone. */
static void compare_dw(const options *o, const mpnas__engine *base, mpnas__arena *ws,
                       const mpnas__kernels *tk[2], const dw_shape *d, int threads,
                       const double pk[2]) {
  int ho = (d->h + d->s - 1) / d->s, wo = (d->w + d->s - 1) / d->s;
  size_t nx = (size_t)d->n * d->h * d->w * d->c, ny = (size_t)d->n * ho * wo * d->c;
  size_t nw = (size_t)d->k * d->k * d->c;
  float *x = alloc_floats(nx, 1), *w = alloc_floats(nw, 2), *y = alloc_floats(ny, 3);
  float *dy = alloc_floats(ny, 4), *dx = alloc_floats(nx, 5), *dw = alloc_floats(nw, 6);
  double flops = 2.0 * d->n * d->c * ho * wo * d->k * d->k;
  static const char *modes[4] = {"fwd", "fwd+bwd", "bwd-dx", "bwd-dw"};
  const double mult[4] = {1.0, 3.0, 1.0, 1.0};
  const int on[4] = {o->do_fwd, o->do_fwdbwd, o->do_parts, o->do_parts};
  for (int md = 0; md < 4; md++) {
    if (!on[md]) continue;
    double t[2][64];
    int R = o->rounds > 64 ? 64 : o->rounds;
    for (int r = 0; r < R; r++)
      for (int q = 0; q < 2; q++) {
        mpnas__engine e = *base;
        e.k = tk[q];
        double ms;
        if (md == 0 || md == 1)
          TIME_MEDIAN(o->reps, ms, {
            check(mpnas__dw_fwd(&e, d->n, d->h, d->w, d->c, d->k, d->s, x, w, NULL, NULL,
                                MPNAS__ACT_NONE, y), "dw_fwd");
            if (md == 1)
              check(mpnas__dw_bwd(&e, ws, d->n, d->h, d->w, d->c, d->k, d->s, x, w, dy, dx, dw),
                    "dw_bwd");
          });
        else
          TIME_MEDIAN(o->reps, ms,
                      check(mpnas__dw_bwd(&e, ws, d->n, d->h, d->w, d->c, d->k, d->s, x, w, dy,
                                          md == 2 ? dx : NULL, md == 3 ? dw : NULL), "dw_bwd"));
        t[q][r] = ms;
      }
    compare_line(d->name, threads, modes[md], t, R, mult[md] * flops, tk, pk);
  }
  free(x), free(w), free(y), free(dy), free(dx), free(dw);
}

/* --compare: the pointwise shapes with tables a and b alternately (see the top). */
static int is_wide(const mpnas__kernels *t) { return strncmp(t->name, "avx512", 6) == 0; }

static void compare_pw(const options *o, const mpnas__engine *base, mpnas__arena *ws,
                       const mpnas__kernels *tk[2], const pw_shape *p, int threads,
                       const double pk[2]) {
  int m = p->n * p->h * p->w;
  size_t nx = (size_t)m * p->cin, ny = (size_t)m * p->cout, nw = (size_t)p->cin * p->cout;
  float *x = alloc_floats(nx, 1), *w = alloc_floats(nw, 2), *y = alloc_floats(ny, 3);
  float *dy = alloc_floats(ny, 4), *dx = alloc_floats(nx, 5), *dw = alloc_floats(nw, 6);
  double flops = 2.0 * m * p->cin * p->cout;
  static const char *modes[3] = {"fwd", "fwd+bwd", "bwd-dw"};
  const double mult[3] = {1.0, 3.0, 1.0};
  const int on[3] = {o->do_fwd, o->do_fwdbwd, o->do_parts};
  for (int md = 0; md < 3; md++) {
    if (!on[md]) continue;
    double t[2][64];
    int R = o->rounds > 64 ? 64 : o->rounds;
    for (int r = 0; r < R; r++)
      for (int q = 0; q < 2; q++) {
        mpnas__engine e = *base;
        e.k = tk[q];
        double ms;
        if (md == 0)
          TIME_MEDIAN(o->reps, ms,
                      check(mpnas__pw_fwd(&e, ws, m, p->cin, p->cout, x, w, NULL, NULL,
                                          MPNAS__ACT_NONE, NULL, y), "pw_fwd"));
        else if (md == 1)
          TIME_MEDIAN(o->reps, ms, {
            check(mpnas__pw_fwd(&e, ws, m, p->cin, p->cout, x, w, NULL, NULL, MPNAS__ACT_NONE,
                                NULL, y), "pw_fwd");
            check(mpnas__pw_bwd(&e, ws, m, p->cin, p->cout, x, w, dy, dx, dw), "pw_bwd");
          });
        else
          TIME_MEDIAN(o->reps, ms,
                      check(mpnas__pw_bwd(&e, ws, m, p->cin, p->cout, x, w, dy, NULL, dw), "pw_bwd"));
        t[q][r] = ms;
      }
    compare_line(p->name, threads, modes[md], t, R, mult[md] * flops, tk, pk);
  }
  free(x), free(w), free(y), free(dy), free(dx), free(dw);
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench_kernels [--threads 1,2] [--reps N] [--only SUBSTR] "
          "[--isa auto|scalar|avx2|neon] [--mode fwd|fwdbwd|both|parts] [--json] [--no-peak] "
          "[--cputime] [--kernels NAME] [--compare NAME,NAME --rounds R]\n");
  exit(2);
}

int main(int argc, char **argv) {
  options o;
  memset(&o, 0, sizeof o);
  o.threads[0] = 1, o.threads[1] = 2, o.nthreads = 2;
  o.reps = 15;
  o.isa = MPNAS_ISA_AUTO;
  o.peak = 1;
  o.do_fwd = o.do_fwdbwd = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--json")) o.json = 1, o.peak = 0;
    else if (!strcmp(a, "--no-peak")) o.peak = 0;
    else if (!strcmp(a, "--cputime")) bench_clock = CLOCK_PROCESS_CPUTIME_ID;
    else if (!strcmp(a, "--threads") && v) {
      o.nthreads = 0;
      for (char *s = argv[++i]; *s && o.nthreads < 8;) {
        o.threads[o.nthreads++] = (int)strtol(s, &s, 10);
        if (*s == ',') s++;
        else if (*s) usage();
      }
    } else if (!strcmp(a, "--reps") && v) o.reps = atoi(argv[++i]);
    else if (!strcmp(a, "--only") && v) o.only = argv[++i];
    else if (!strcmp(a, "--mode") && v) {
      const char *m = argv[++i];
      o.do_parts = !strcmp(m, "parts");
      o.do_fwd = !strcmp(m, "fwd") || !strcmp(m, "both") || o.do_parts;
      o.do_fwdbwd = !strcmp(m, "fwdbwd") || !strcmp(m, "both") || o.do_parts;
      if (!o.do_fwd && !o.do_fwdbwd) usage();
    } else if (!strcmp(a, "--isa") && v) {
      const char *m = argv[++i];
      o.isa = !strcmp(m, "scalar") ? MPNAS_ISA_SCALAR
              : !strcmp(m, "avx2") ? MPNAS_ISA_AVX2
              : !strcmp(m, "neon") ? MPNAS_ISA_NEON
                                   : MPNAS_ISA_AUTO;
    } else if (!strcmp(a, "--kernels") && v) o.kernels = argv[++i];
    else if (!strcmp(a, "--compare") && v) {
      static char buf[128];
      snprintf(buf, sizeof buf, "%s", argv[++i]);
      char *comma = strchr(buf, ',');
      if (comma == NULL) usage();
      *comma = 0;
      o.compare[0] = buf, o.compare[1] = comma + 1;
    } else if (!strcmp(a, "--rounds") && v) o.rounds = atoi(argv[++i]);
    else usage();
  }
  if (o.reps < 1) o.reps = 1;
  if (o.rounds < 1) o.rounds = 5;

  mpnas_context *ctx = NULL;
  check(mpnas_context_create(&ctx), "mpnas_context_create");
  check(mpnas_context_set_int(ctx, MPNAS_CONTEXT_ISA, o.isa), "MPNAS_CONTEXT_ISA");
  int64_t active = 0, omp = 0;
  mpnas_context_get_int(ctx, MPNAS_CONTEXT_ISA_ACTIVE, &active);
  mpnas_context_get_int(ctx, MPNAS_CONTEXT_OPENMP, &omp);
  if (!o.json) {
    printf("# libmpnas %s, kernels %s, OpenMP %s, %d repetitions (median)\n",
           mpnas_version_string(), ctx->engine.k->name, omp ? "on" : "off", o.reps);
    if (o.peak && HAVE_PEAK && !o.compare[0])
      for (int t = 0; t < o.nthreads; t++) {
        int th = o.threads[t];
        if (th < 1 || th > 1024) continue;
        peaks[th] = measure_peak(th);
        printf("# AVX2 FMA peak, %d thread%s: %.1f GFLOP/s\n", th, th > 1 ? "s" : "", peaks[th]);
      }
  }
  (void)active;
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  if (o.compare[0]) {
    const mpnas__kernels *tk[2] = {mpnas__kernels_named(o.compare[0]),
                                   mpnas__kernels_named(o.compare[1])};
    if (!tk[0] || !tk[1]) {
      fprintf(stderr, "--compare: no table %s here\n", !tk[0] ? o.compare[0] : o.compare[1]);
      return 2;
    }
    printf("# %s against %s: median over %d alternating rounds (range), each round "
           "a median of %d repetitions; last column: %s time / %s time\n",
           tk[1]->name, tk[0]->name, o.rounds, o.reps, tk[0]->name, tk[1]->name);
    for (int t = 0; t < o.nthreads; t++) {
      int th = o.threads[t];
      check(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, th), "MPNAS_CONTEXT_THREADS");
      double pk[2] = {0.0, 0.0};
      for (int q = 0; q < 2 && o.peak && HAVE_PEAK; q++) {
        int wide = is_wide(tk[q]);
        if (wide && !have_peak512()) continue;
        /* the best of three medians: other load on the machine only lowers it */
        for (int r = 0; r < 3; r++) {
          double g = measure_peak_w(ctx->engine.threads, wide);
          pk[q] = g > pk[q] ? g : pk[q];
        }
        printf("# %s FMA peak, %d thread%s: %.1f GFLOP/s\n", wide ? "AVX-512" : "AVX2",
               ctx->engine.threads, ctx->engine.threads > 1 ? "s" : "", pk[q]);
      }
      for (int i = 0; i < COUNT(DW); i++)
        if (!o.only || strstr(DW[i].name, o.only))
          compare_dw(&o, &ctx->engine, &ws, tk, &DW[i], ctx->engine.threads, pk);
      for (int i = 0; i < COUNT(PW); i++)
        if (!o.only || strstr(PW[i].name, o.only))
          compare_pw(&o, &ctx->engine, &ws, tk, &PW[i], ctx->engine.threads, pk);
    }
    mpnas__arena_destroy(&ws);
    mpnas_context_free(ctx);
    return 0;
  }
  const mpnas__kernels *forced = NULL;
  if (o.kernels) {
    forced = mpnas__kernels_named(o.kernels);
    if (forced == NULL) {
      fprintf(stderr, "--kernels: no table %s here\n", o.kernels);
      return 2;
    }
    if (!o.json) printf("# forced kernel table: %s\n", forced->name);
  }
  for (int t = 0; t < o.nthreads; t++) {
    int th = o.threads[t];
    check(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, th), "MPNAS_CONTEXT_THREADS");
    if (forced) ctx->engine.k = forced;
    const mpnas__engine *eng = &ctx->engine;
    for (int i = 0; i < COUNT(DW); i++)
      if (!o.only || strstr(DW[i].name, o.only)) bench_dw(&o, eng, &ws, &DW[i], eng->threads);
    for (int i = 0; i < COUNT(PW); i++)
      if (!o.only || strstr(PW[i].name, o.only)) bench_pw(&o, eng, &ws, &PW[i], eng->threads);
  }
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
  return 0;
}
