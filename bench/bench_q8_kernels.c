/* bench_q8_kernels.c - int8 against float32 inference kernels, side by side, on the
 * pointwise and depthwise layers of the MBV2-9 reference network (MPNAS_PRESET_MBV2_9,
 * src/net/space.c: 32x32 input, stem 32 channels at stride 1, stages (t, c, n, s, k)
 * = (1,16,1,1,3) (6,24,2,1,3) (6,32,2,2,5) (6,64,2,2,3) (6,96,1,1,7) (6,160,1,2,5),
 * head 320).
 *
 *   bench_q8_kernels [--batch 32] [--rounds 15] [--only SUBSTR] [--isa NAME]
 *
 * One thread, the kernels called directly (no op layer): the float table's gemm (weights
 * packed once, as a predictor does) and dw_fwd with scale, shift and ReLU6 (the project
 * convs: no activation, + residual where the network has one), against each int8 table
 * this CPU runs (avx2, avx2+vnni and avx512+vnni on x86, neon and neon+dotprod on Arm; --isa picks
 * one) with the matching int8 epilogue. Each round times float and every int8 table
 * once, alternating, so machine noise hits all of them alike; the figures are medians
 * over rounds, in GMAC/s (multiply-adds per second; depthwise N*C*Ho*Wo*K*K, pointwise
 * N*H*W*Cin*Cout) and the ratio int8 / float (above 1: int8 faster). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "kernels/kernels.h"
#include "mpnas.h"

typedef struct {
  const char *name;
  int dw;          /* 1: depthwise, 0: pointwise */
  int h, cin, cout; /* input size (square), channels (depthwise: cin = cout) */
  int k, s;        /* depthwise kernel and stride */
  int residual;    /* pointwise project with a residual */
} layer;

/* Every distinct conv of MBV2-9 at 32 px (repeats of a shape listed once). */
static const layer LAYERS[] = {
    {"dw3s1 c32 32px", 1, 32, 32, 32, 3, 1, 0},   {"pw 32>16 32px", 0, 32, 32, 16, 1, 1, 0},
    {"pw 16>96 32px", 0, 32, 16, 96, 1, 1, 0},    {"dw3s1 c96 32px", 1, 32, 96, 96, 3, 1, 0},
    {"pw 96>24 32px", 0, 32, 96, 24, 1, 1, 0},    {"pw 24>144 32px", 0, 32, 24, 144, 1, 1, 0},
    {"dw3s1 c144 32px", 1, 32, 144, 144, 3, 1, 0}, {"pw 144>24 32px +r", 0, 32, 144, 24, 1, 1, 1},
    {"dw5s2 c144 32px", 1, 32, 144, 144, 5, 2, 0}, {"pw 144>32 16px", 0, 16, 144, 32, 1, 1, 0},
    {"pw 32>192 16px", 0, 16, 32, 192, 1, 1, 0},  {"dw5s1 c192 16px", 1, 16, 192, 192, 5, 1, 0},
    {"pw 192>32 16px +r", 0, 16, 192, 32, 1, 1, 1}, {"dw3s2 c192 16px", 1, 16, 192, 192, 3, 2, 0},
    {"pw 192>64 8px", 0, 8, 192, 64, 1, 1, 0},    {"pw 64>384 8px", 0, 8, 64, 384, 1, 1, 0},
    {"dw3s1 c384 8px", 1, 8, 384, 384, 3, 1, 0},  {"pw 384>64 8px +r", 0, 8, 384, 64, 1, 1, 1},
    {"dw7s1 c384 8px", 1, 8, 384, 384, 7, 1, 0},  {"pw 384>96 8px", 0, 8, 384, 96, 1, 1, 0},
    {"pw 96>576 8px", 0, 8, 96, 576, 1, 1, 0},    {"dw5s2 c576 8px", 1, 8, 576, 576, 5, 2, 0},
    {"pw 576>160 4px", 0, 4, 576, 160, 1, 1, 0},  {"pw 160>320 4px", 0, 4, 160, 320, 1, 1, 0},
};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define MAXT 4

static uint64_t rng = 0x853c49e6748fea9bULL;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 16);
}
static void *xmalloc(size_t n) {
  void *p = aligned_alloc(64, (n + 63) / 64 * 64);
  if (p == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  return p;
}
static float *frand(size_t n, float lo, float hi) {
  float *p = xmalloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (float)(rnd() % 10000) / 10000.0f;
  return p;
}
static int8_t *brand(size_t n) {
  int8_t *p = xmalloc(n);
  for (size_t i = 0; i < n; i++) p[i] = (int8_t)(rnd() % 255 - 127);
  return p;
}

int main(int argc, char **argv) {
  int batch = 32, rounds = 15;
  const char *only = NULL, *isa = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!strcmp(argv[i], "--isa") && i + 1 < argc) isa = argv[++i];
    else {
      fprintf(stderr, "usage: %s [--batch N] [--rounds N] [--only SUBSTR] [--isa NAME]\n", argv[0]);
      return 2;
    }
  }
  if (batch < 1 || rounds < 1) return 2;
  const mpnas__kernels *fl = mpnas__kernels_for(MPNAS_ISA_AUTO);
  const mpnas__kernels *q[MAXT];
  int nq = 0;
  /* not "avx512": its int8 kernels are avx2's */
  static const char *names[] = {"avx2", "avx2+vnni", "avx512+vnni", "neon", "neon+dotprod", "scalar"};
  for (int i = 0; i < COUNT(names); i++) {
    if (isa ? strcmp(isa, names[i]) != 0 : !strcmp(names[i], "scalar")) continue;
    const mpnas__kernels *t = mpnas__kernels_named(names[i]);
    if (t != NULL && nq < MAXT) q[nq++] = t;
  }
  if (nq == 0) q[nq++] = mpnas__kernels_named("scalar");
  printf("# float kernels: %s; batch %d, 1 thread, %d alternating rounds, medians; GMAC/s\n",
         fl->name, batch, rounds);
  printf("%-20s %9s", "layer", "float");
  for (int t = 0; t < nq; t++) printf(" %12s %7s", q[t]->name, "x");
  printf("\n");
  double geo[MAXT] = {0};
  int nlayers = 0;
  for (int li = 0; li < COUNT(LAYERS); li++) {
    const layer *L = &LAYERS[li];
    if (only && !strstr(L->name, only)) continue;
    nlayers++;
    const int n = batch, h = L->h, cin = L->cin, cout = L->cout;
    mpnas__dw_shape s;
    mpnas__dw_shape_init(&s, h, h, cin, L->dw ? L->k : 1, L->dw ? L->s : 1);
    const size_t nx = (size_t)n * h * h * cin;
    const size_t ny = L->dw ? (size_t)n * s.ho * s.wo * cout : (size_t)n * h * h * cout;
    const size_t nw = L->dw ? (size_t)L->k * L->k * cin : (size_t)cin * cout;
    const double macs = L->dw ? (double)ny * L->k * L->k : (double)ny * cin;
    float *x = frand(nx, -1, 1), *w = frand(nw, -0.5f, 0.5f), *y = xmalloc(ny * sizeof(float));
    float *res = L->residual ? frand(ny, -1, 1) : NULL;
    float *scale = frand((size_t)cout, 0.5f, 1.5f), *shift = frand((size_t)cout, -0.1f, 0.1f);
    int8_t *xq = brand(nx), *wq = brand(nw), *yq = xmalloc(ny), *rq = L->residual ? brand(ny) : NULL;
    float *mult = frand((size_t)cout, 1e-5f, 3e-5f);
    /* The folded form (kernels.h); ReLU6 as its clamp [zero, 6 / scale + zero]. */
    mpnas__q8_epilogue e = {mult, shift, L->residual ? MPNAS__ACT_NONE : MPNAS__ACT_RELU6,
                            20.0f, -5, L->residual ? -128 : -5, L->residual ? 127 : 115,
                            rq, 0.05f, 3};
    const int act = L->residual ? MPNAS__ACT_NONE : MPNAS__ACT_RELU6;
    float *fpack = NULL;
    void *qpack[MAXT] = {NULL};
    if (!L->dw) {
      fpack = xmalloc(fl->gemm_packed_floats(cin, cout) * sizeof(float));
      fl->gemm_pack(cin, cout, w, fpack);
      for (int t = 0; t < nq; t++) {
        qpack[t] = xmalloc(q[t]->q8_gemm_packed_bytes(cin, cout));
        q[t]->q8_gemm_pack(cin, cout, wq, qpack[t]);
      }
    }
    double *tf = malloc(sizeof(double) * (size_t)rounds), *tq[MAXT];
    for (int t = 0; t < nq; t++) tq[t] = malloc(sizeof(double) * (size_t)rounds);
    for (int r = -1; r < rounds; r++) { /* round -1: warm-up */
      double t0 = bench_now();
      if (L->dw)
        for (int i = 0; i < n; i++)
          fl->dw_fwd(&s, x + (size_t)i * h * h * cin, w, scale, shift, act,
                     y + (size_t)i * s.ho * s.wo * cout, 0, s.ho);
      else fl->gemm(n * h * h, cin, cout, x, fpack, scale, shift, act, res, y);
      double t1 = bench_now();
      if (r >= 0) tf[r] = t1 - t0;
      for (int t = 0; t < nq; t++) {
        t0 = bench_now();
        if (L->dw)
          for (int i = 0; i < n; i++)
            q[t]->q8_dw_fwd(&s, xq + (size_t)i * h * h * cin, 7, wq, &e,
                            yq + (size_t)i * s.ho * s.wo * cout, 0, s.ho);
        else q[t]->q8_gemm(n * h * h, cin, cout, xq, 7, qpack[t], &e, yq);
        t1 = bench_now();
        if (r >= 0) tq[t][r] = t1 - t0;
      }
    }
    const double mf = bench_median(tf, rounds);
    printf("%-20s %9.2f", L->name, macs / mf * 1e-9);
    for (int t = 0; t < nq; t++) {
      const double mq = bench_median(tq[t], rounds);
      printf(" %12.2f %6.2fx", macs / mq * 1e-9, mf / mq);
      geo[t] += log(mf / mq);
    }
    printf("\n");
    fflush(stdout);
    free(x), free(w), free(y), free(res), free(scale), free(shift), free(xq), free(wq), free(yq),
        free(rq), free(mult), free(fpack), free(tf);
    for (int t = 0; t < nq; t++) free(qpack[t]), free(tq[t]);
  }
  if (nlayers > 0) {
    printf("%-20s %9s", "geometric mean", "");
    for (int t = 0; t < nq; t++) printf(" %12s %6.2fx", "", exp(geo[t] / nlayers));
    printf("\n");
  }
  return 0;
}
