/* bench_misc.c - batch norm and activations through the op layer (ops_misc.c) on the
 * shapes of the search loop's small layers, with a context's kernel table and threads.
 *
 *   bench_misc [--threads 1,2] [--reps 41] [--isa auto|scalar|avx2|neon]
 *   bench_misc --kernels [--tables avx2,avx512] [--reps 41] [--offset 0..15]
 *
 * For each shape (m rows = batch * h * w, c channels) and activation it reports the
 * median and the minimum over `reps` repetitions (after one warm-up) of
 *   fwd    mpnas__bn_act_fwd_train: statistics + BN output + activation output (fused),
 *   fwd2   mpnas__bn_fwd_train then mpnas__act_fwd (the same result in two passes),
 *   bwd    mpnas__act_bwd then mpnas__bn_bwd (dgamma, dbeta, dx),
 *   bwd1   mpnas__bn_bwd with the activation folded in (the same result, a pass fewer),
 * and the bandwidth of the fused forward counted as 3 reads + 2 writes of m*c floats.
 * The minimum is the better estimate on a busy machine.
 *
 * --kernels times each BN / activation kernel alone (one thread, no op layer) for each
 * named kernel table, the tables alternating within every repetition so they see the
 * same machine load, on MobileNetV2-like training shapes (m = batch 64 x 18 x 18 rows)
 * and smaller ones down to L2-sized, buffers 64-byte aligned as the library's (or
 * --offset floats past that). It reports per table the median, min and max in us, the
 * bytes moved per second at the median (the kernel's reads + writes, counted once) and
 * the ratio of the first table's median to each other's. On the passes that stream from
 * L3 or memory, differences up to about 15% between tables are this benchmark's error:
 * the same kernel reached through two tables has measured 0.86-1.16x of itself
 * (docs/PERFORMANCE.md, "AVX-512 BN and activations"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "common/common.h"
#include "kernels/kernels.h"
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

/* ---- --kernels ---------------------------------------------------------------------- */

static const shape KSHAPES[] = {
    {"64x18x18 c96", 64 * 18 * 18, 96},   {"64x18x18 c144", 64 * 18 * 18, 144},
    {"64x18x18 c192", 64 * 18 * 18, 192}, {"64x9x9 c384", 64 * 9 * 9, 384},
    {"16x9x9 c96", 16 * 9 * 9, 96},       {"32x9x9 c96", 32 * 9 * 9, 96},
    {"64x9x9 c96", 64 * 9 * 9, 96},
    {"8x8x8 c96 (L2)", 8 * 8 * 8, 96},    {"8x8x8 c17 (L2)", 8 * 8 * 8, 17},
};

enum { K_STATS, K_APPLY, K_APPLY_NORM, K_REDUCE, K_DX, K_ACT_FWD, K_ACT_BWD, K_COUNT };
static const char *KNAMES[] = {"bn_stats",  "bn_apply",  "bn_apply+norm", "bn_bwd_reduce",
                               "bn_bwd_dx", "act_fwd",   "act_bwd"};
static const int KBYTES[] = {1, 2, 3, 2, 3, 2, 3}; /* floats read + written per element */

typedef struct {
  float *x, *dy, *y, *norm, *out, *mu, *k, *b, *a, *d;
  double *s[3];
} kbufs;

static void run_kernel(const mpnas__kernels *K, int which, int act, int m, int c,
                       const kbufs *B) {
  size_t n = (size_t)m * c, ld = (size_t)c;
  switch (which) {
    case K_STATS: K->bn_stats(m, c, ld, B->x, B->s[0], B->s[1]); break;
    case K_APPLY: K->bn_apply(m, c, ld, B->x, B->mu, B->k, B->b, act, NULL, B->y); break;
    case K_APPLY_NORM:
      K->bn_apply(m, c, ld, B->x, B->mu, B->k, B->b, act, B->norm, B->y);
      break;
    case K_REDUCE: K->bn_bwd_reduce(m, c, ld, B->x, B->dy, B->mu, B->s[0], B->s[1], B->s[2]); break;
    case K_DX: K->bn_bwd_dx(m, c, ld, B->x, B->dy, B->mu, B->a, B->b, B->d, B->out); break;
    case K_ACT_FWD: K->act_fwd(act, n, B->x, B->y); break;
    default: K->act_bwd(act, n, B->x, B->dy, B->out); break;
  }
}

static int bench_kernels_mode(char *table_list, int reps, int offset) {
  const mpnas__kernels *tabs[4];
  int nt = 0;
  for (char *p = strtok(table_list, ","); p && nt < 4; p = strtok(NULL, ",")) {
    tabs[nt] = mpnas__kernels_named(p);
    if (tabs[nt] == NULL) {
      fprintf(stderr, "no kernel table \"%s\" here\n", p);
      return 1;
    }
    nt++;
  }
  double *t[4];
  for (int i = 0; i < nt; i++) t[i] = malloc(sizeof(double) * (size_t)reps);
  printf("%-15s %-14s %-8s", "shape", "kernel", "act");
  for (int i = 0; i < nt; i++) printf(" | %-11s %8s %8s %8s %6s", tabs[i]->name, "med us", "min", "max", "GB/s");
  printf(" | ratio\n");
  for (int s = 0; s < COUNT(KSHAPES); s++) {
    int m = KSHAPES[s].m, c = KSHAPES[s].c;
    size_t n = (size_t)m * c;
    kbufs B;
    float **big[] = {&B.x, &B.dy, &B.y, &B.norm, &B.out}, **small[] = {&B.mu, &B.k, &B.b, &B.a, &B.d};
    unsigned seed = 7;
    /* 64-byte aligned as the library's arenas are (plus `offset` floats, to see what
     * misalignment costs) */
    void *raw[10];
    for (int i = 0; i < 5; i++) {
      raw[i] = aligned_alloc(64, sizeof(float) * (n + 16 + (size_t)offset) + 64);
      *big[i] = (float *)raw[i] + offset;
      for (size_t j = 0; j < n; j++) (*big[i])[j] = 8.0f * frand(&seed) - 4.0f;
      raw[5 + i] = aligned_alloc(64, sizeof(float) * (size_t)(c + 16 + offset) + 64);
      *small[i] = (float *)raw[5 + i] + offset;
      for (int j = 0; j < c; j++) (*small[i])[j] = frand(&seed);
    }
    for (int i = 0; i < 3; i++) B.s[i] = malloc(sizeof(double) * (size_t)c);
    for (int which = 0; which < K_COUNT; which++) {
      static const int acts_apply[] = {MPNAS__ACT_RELU6, MPNAS__ACT_HSWISH, MPNAS__ACT_SIGMOID};
      int nacts = (which == K_STATS || which == K_REDUCE || which == K_DX) ? 1 : 3;
      for (int ai = 0; ai < nacts; ai++) {
        int act = nacts == 1 ? MPNAS__ACT_NONE : acts_apply[ai];
        for (int r = -2; r < reps; r++)
          for (int i = 0; i < nt; i++) {
            /* alternate which table goes first, so neither always follows the other */
            int ti = (r & 1) ? nt - 1 - i : i;
            double t0 = bench_now();
            run_kernel(tabs[ti], which, act, m, c, &B);
            double t1 = bench_now();
            if (r >= 0) t[ti][r] = t1 - t0;
          }
        printf("%-15s %-14s %-8s", KSHAPES[s].name, KNAMES[which], nacts == 1 ? "-" : ACT_NAMES[act]);
        double med0 = 0.0;
        for (int i = 0; i < nt; i++) {
          qsort(t[i], (size_t)reps, sizeof(double), bench_cmp_double);
          double med = t[i][reps / 2];
          if (i == 0) med0 = med;
          printf(" | %-11s %8.1f %8.1f %8.1f %6.1f", "", med * 1e6, t[i][0] * 1e6,
                 t[i][reps - 1] * 1e6, (double)KBYTES[which] * (double)n * sizeof(float) / med * 1e-9);
        }
        printf(" |");
        for (int i = 1; i < nt; i++) printf(" %.2fx", med0 / t[i][reps / 2]);
        printf("\n");
        fflush(stdout);
      }
    }
    for (int i = 0; i < 10; i++) free(raw[i]);
    for (int i = 0; i < 3; i++) free(B.s[i]);
  }
  for (int i = 0; i < nt; i++) free(t[i]);
  return 0;
}

int main(int argc, char **argv) {
  int threads[8] = {1}, nthreads = 1, reps = 41, isa = MPNAS_ISA_AUTO, kernels = 0, offset = 0;
  char table_list[128] = "avx2,avx512";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--kernels")) {
      kernels = 1;
    } else if (!strcmp(argv[i], "--offset") && i + 1 < argc) {
      offset = atoi(argv[++i]);
      if (offset < 0 || offset > 15) offset = 0;
    } else if (!strcmp(argv[i], "--tables") && i + 1 < argc) {
      snprintf(table_list, sizeof table_list, "%s", argv[++i]);
    } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
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
      fprintf(stderr,
              "usage: %s [--threads 1,2] [--reps N] [--isa auto|scalar|avx2|neon]\n"
              "       %s --kernels [--tables avx2,avx512] [--reps N] [--offset floats]\n",
              argv[0], argv[0]);
      return 2;
    }
  }
  if (reps < 1) reps = 1;
  if (kernels) return bench_kernels_mode(table_list, reps, offset);
  mpnas_context *ctx = NULL;
  if (mpnas_context_create(&ctx) != MPNAS_OK ||
      mpnas_context_set_int(ctx, MPNAS_CONTEXT_ISA, isa) != MPNAS_OK) {
    fprintf(stderr, "cannot use that ISA here\n");
    return 1;
  }
  double *t[4];
  for (int k = 0; k < 4; k++) t[k] = malloc(sizeof(double) * (size_t)reps);
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
          mpnas__bn_bwd(eng, NULL, m, c, x, g, sm, si, NULL, dn, dx, dg, db);
          double t3 = bench_now();
          mpnas__bn_bwd(eng, NULL, m, c, x, g, sm, si, &(mpnas__bn_act){sm, si, b, act}, dy, dx,
                        dg, db);
          double t4 = bench_now();
          if (r >= 0) t[0][r] = t1 - t0, t[1][r] = t2 - t1, t[2][r] = t3 - t2, t[3][r] = t4 - t3;
        }
        static const char *pass[4] = {"fwd", "fwd2", "bwd", "bwd1"};
        for (int k = 0; k < 4; k++) {
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
  for (int k = 0; k < 4; k++) free(t[k]);
  mpnas_context_free(ctx);
  return 0;
}
