/* bench_misc.c - batch norm and activations through the op layer (ops_misc.c) on the
 * shapes of the search loop's small layers, with a context's kernel table and threads.
 *
 *   bench_misc [--threads 1,2] [--reps 41] [--isa auto|scalar|avx2|neon]
 *
 * For each shape (m rows = batch * h * w, c channels) and activation it reports the
 * median and the minimum over `reps` repetitions (after one warm-up) of
 *   fwd    mpnas__bn_act_fwd_train: statistics + BN output + activation output (fused),
 *   fwd2   mpnas__bn_fwd_train then mpnas__act_fwd (the same result in two passes),
 *   bwd    mpnas__act_bwd then mpnas__bn_bwd (dgamma, dbeta, dx),
 * and the bandwidth of the fused forward counted as 3 reads + 2 writes of m*c floats.
 * The minimum is the better estimate on a busy machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "common/common.h"
#include "tensor/ops.h"

typedef struct {
  const char *name;
  int m, c;
} shape;

/* Depthwise/expand outputs of the search space's small layers (batch 16-64). */
static const shape SHAPES[] = {
    {"16x16x16 c48", 16 * 16 * 16, 48}, {"64x8x8 c96", 64 * 8 * 8, 96},
    {"32x16x16 c24", 32 * 16 * 16, 24}, {"32x8x8 c144", 32 * 8 * 8, 144},
    {"32x32x32 c8", 32 * 32 * 32, 8},
};
static const int ACTS[] = {MPNAS__ACT_RELU6, MPNAS__ACT_HSWISH};
static const char *ACT_NAMES[] = {"none", "relu", "relu6", "hswish", "sigmoid", "hsigmoid"};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static float frand(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return (float)((*s >> 8) & 0xffff) / 65536.0f;
}

int main(int argc, char **argv) {
  int threads[8] = {1}, nthreads = 1, reps = 41, isa = MPNAS_ISA_AUTO;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      nthreads = 0;
      for (char *p = strtok(argv[++i], ","); p && nthreads < 8; p = strtok(NULL, ","))
        threads[nthreads++] = atoi(p);
    } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
      const char *v = argv[++i];
      isa = !strcmp(v, "scalar") ? MPNAS_ISA_SCALAR
            : !strcmp(v, "avx2") ? MPNAS_ISA_AVX2
            : !strcmp(v, "neon") ? MPNAS_ISA_NEON
                                 : MPNAS_ISA_AUTO;
    } else {
      fprintf(stderr, "usage: %s [--threads 1,2] [--reps N] [--isa auto|scalar|avx2|neon]\n",
              argv[0]);
      return 2;
    }
  }
  if (reps < 1) reps = 1;
  mpnas_context *ctx = NULL;
  if (mpnas_context_create(&ctx) != MPNAS_OK ||
      mpnas_context_set_int(ctx, MPNAS_CONTEXT_ISA, isa) != MPNAS_OK) {
    fprintf(stderr, "cannot use that ISA here\n");
    return 1;
  }
  double *t[3];
  for (int k = 0; k < 3; k++) t[k] = malloc(sizeof(double) * (size_t)reps);
  printf("%-14s %-7s %3s  %-5s %10s %10s  %s\n", "shape", "act", "thr", "pass", "median us",
         "min us", "(fwd: GB/s at min)");
  for (int ti = 0; ti < nthreads; ti++) {
    if (mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, threads[ti]) != MPNAS_OK) continue;
    const mpnas__engine *eng = &ctx->engine;
    for (int s = 0; s < COUNT(SHAPES); s++)
      for (int a = 0; a < COUNT(ACTS); a++) {
        int m = SHAPES[s].m, c = SHAPES[s].c, act = ACTS[a];
        size_t n = (size_t)m * c;
        float *x = malloc(sizeof(float) * n), *norm = malloc(sizeof(float) * n);
        float *y = malloc(sizeof(float) * n), *dy = malloc(sizeof(float) * n);
        float *dn = malloc(sizeof(float) * n), *dx = malloc(sizeof(float) * n);
        float *g = malloc(sizeof(float) * (size_t)c), *b = malloc(sizeof(float) * (size_t)c);
        float *rm = calloc((size_t)c, sizeof(float)), *rv = calloc((size_t)c, sizeof(float));
        float *sm = malloc(sizeof(float) * (size_t)c), *si = malloc(sizeof(float) * (size_t)c);
        float *dg = calloc((size_t)c, sizeof(float)), *db = calloc((size_t)c, sizeof(float));
        unsigned seed = 1;
        for (size_t i = 0; i < n; i++) {
          x[i] = 4.0f * frand(&seed) - 1.0f;
          dy[i] = frand(&seed) - 0.5f;
        }
        for (int i = 0; i < c; i++) g[i] = 1.0f, b[i] = 0.1f;
        for (int r = -1; r < reps; r++) {
          double t0 = bench_now();
          mpnas__bn_act_fwd_train(
              eng, m, c, x, &(mpnas__bn_train){g, b, 1e-3f, 0.01f, rm, rv, sm, si}, act, norm, y);
          double t1 = bench_now();
          mpnas__bn_fwd_train(eng, m, c, x, &(mpnas__bn_train){g, b, 1e-3f, 0.01f, rm, rv, sm, si},
                              norm);
          mpnas__act_fwd(eng, act, n, norm, y);
          double t2 = bench_now();
          mpnas__act_bwd(eng, act, n, norm, dy, dn);
          mpnas__bn_bwd(eng, NULL, m, c, x, g, sm, si, dn, dx, dg, db);
          double t3 = bench_now();
          if (r >= 0) t[0][r] = t1 - t0, t[1][r] = t2 - t1, t[2][r] = t3 - t2;
        }
        static const char *pass[3] = {"fwd", "fwd2", "bwd"};
        for (int k = 0; k < 3; k++) {
          qsort(t[k], (size_t)reps, sizeof(double), bench_cmp_double);
          double med = t[k][reps / 2], mn = t[k][0];
          printf("%-14s %-7s %3d  %-5s %10.1f %10.1f", SHAPES[s].name, ACT_NAMES[act],
                 eng->threads, pass[k], med * 1e6, mn * 1e6);
          if (k == 0) printf("  %6.1f", 5.0 * (double)n * sizeof(float) / mn * 1e-9);
          printf("\n");
        }
        free(x), free(norm), free(y), free(dy), free(dn), free(dx), free(g), free(b);
        free(rm), free(rv), free(sm), free(si), free(dg), free(db);
      }
  }
  for (int k = 0; k < 3; k++) free(t[k]);
  mpnas_context_free(ctx);
  return 0;
}
