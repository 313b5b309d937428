/* test_ops_conv.c - the convolution-like ops (ops_conv.c): hand-computed cases, the
 * direct-convolution oracle, finite-difference gradients of inputs and parameters, the
 * fused epilogue, thread-count independence, arena hygiene and out-of-memory.
 *
 * Every test runs on the scalar engine of a real context, then once more on the
 * MPNAS_ISA_AUTO engine when that is a SIMD one (AVX2 or NEON; looser tolerances there:
 * the SIMD kernels reorder float sums). */
#include <stdint.h>

#include "check.h"
#include "common/common.h"
#include "gradcheck.h"
#include "kernels/ref/ref.h"
#include "tensor/ops.h"

static mpnas_context *g_ctx;        /* context whose engine the tests use */
static const mpnas__engine *g_eng;  /* &g_ctx->engine */
static double g_tol;                /* relative tolerance against a reference result */
static int g_exact;                 /* 1 on the scalar engine: splits must be bit-exact */

/* ---- helpers ------------------------------------------------------------------------ */

static float *rnd(size_t n, uint64_t seed, float lo, float hi) {
  float *p = malloc(sizeof(float) * (n ? n : 1));
  gc_fill(p, n, seed, lo, hi);
  return p;
}
static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static float *filled(size_t n, float v) {
  float *p = malloc(sizeof(float) * (n ? n : 1));
  for (size_t i = 0; i < n; i++) p[i] = v;
  return p;
}

/* Count entries with |a - b| > tol * (1 + |b|), printing the first few. */
static int count_diff(const char *what, const float *a, const float *b, size_t n, double tol) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (!(d <= tol * (1.0 + fabs((double)b[i])))) {
      if (bad < 3) printf("    %s[%zu]: %.9g vs %.9g\n", what, i, (double)a[i], (double)b[i]);
      bad++;
    }
  }
  return bad;
}
static int same_bits(const float *a, const float *b, size_t n) {
  return memcmp(a, b, sizeof(float) * n) == 0;
}

/* An arena must be back where it was after every op. */
#define CHECK_ARENA_AT(ws, mk) \
  CHECK((ws)->cur == (mk).cur && (ws)->used == (mk).used)

/* ---- hand-computed forward cases ------------------------------------------------------ */

/* x = 1..9 on a 3x3 image; the kernel reads the pixel above (weight 1), the centre (10)
 * and the pixel below-right (100): y = x[oy-1][ox] + 10 x[oy][ox] + 100 x[oy+1][ox+1]. */
static const float hand_x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const float hand_k[9] = {0, 1, 0, 0, 10, 0, 0, 0, 100};
static const float hand_y1[9] = {510, 620, 30, 841, 952, 63, 74, 85, 96};
/* Stride 2 keeps output pixels (0,0), (0,2), (2,0), (2,2) of stride 1. */
static const float hand_y2[4] = {510, 30, 74, 96};
/* Box sums of x (all-ones kernel), clipped at the borders. */
static const float hand_box1[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};

static void test_hand_conv(void) {
  mpnas__arena ws;
  mpnas__arena_init(&ws, g_ctx);
  /* Two output channels: channel 0 the kernel above, channel 1 all ones; the weight
   * layout is [ky][kx][cin][cout]. */
  float wt[18], y[18];
  for (int t = 0; t < 9; t++) {
    wt[t * 2 + 0] = hand_k[t];
    wt[t * 2 + 1] = 1.0f;
  }
  CHECK(mpnas__conv_fwd(g_eng, &ws, 1, 3, 3, 1, 2, 3, 1, hand_x, wt, NULL, NULL,
                        MPNAS__ACT_NONE, y) == MPNAS_OK);
  for (int p = 0; p < 9; p++) {
    CHECK_NEAR(y[p * 2 + 0], hand_y1[p], 1e-4);
    CHECK_NEAR(y[p * 2 + 1], hand_box1[p], 1e-4);
  }
  CHECK(mpnas__conv_fwd(g_eng, &ws, 1, 3, 3, 1, 2, 3, 2, hand_x, wt, NULL, NULL,
                        MPNAS__ACT_NONE, y) == MPNAS_OK);
  static const float box2[4] = {12, 16, 24, 28};
  for (int p = 0; p < 4; p++) {
    CHECK_NEAR(y[p * 2 + 0], hand_y2[p], 1e-4);
    CHECK_NEAR(y[p * 2 + 1], box2[p], 1e-4);
  }
  /* 1x1, stride 2: the corner pixels times the weight 2. */
  float w1 = 2.0f;
  CHECK(mpnas__conv_fwd(g_eng, &ws, 1, 3, 3, 1, 1, 1, 2, hand_x, &w1, NULL, NULL,
                        MPNAS__ACT_NONE, y) == MPNAS_OK);
  CHECK_NEAR(y[0], 2, 0);
  CHECK_NEAR(y[1], 6, 0);
  CHECK_NEAR(y[2], 14, 0);
  CHECK_NEAR(y[3], 18, 0);
  /* Epilogue on the hand case: relu(2 * y - 1000) = 20, 240, 0, 682, 904, 0, 0, 0, 0. */
  float scale = 2.0f, shift = -1000.0f;
  static const float fused[9] = {20, 240, 0, 682, 904, 0, 0, 0, 0};
  CHECK(mpnas__conv_fwd(g_eng, &ws, 1, 3, 3, 1, 1, 3, 1, hand_x, hand_k, &scale, &shift,
                        MPNAS__ACT_RELU, y) == MPNAS_OK);
  for (int p = 0; p < 9; p++) CHECK_NEAR(y[p], fused[p], 1e-3);
  CHECK_EQ_INT(ws.used, 0);
  mpnas__arena_destroy(&ws);
}

static void test_hand_depthwise(void) {
  /* Channel 0: the hand image and kernel; channel 1: an all-ones image and kernel, which
   * counts the taps inside the image (4 at corners, 6 on edges, 9 inside). */
  float x[18], wt[18], y[18];
  for (int p = 0; p < 9; p++) {
    x[p * 2 + 0] = hand_x[p];
    x[p * 2 + 1] = 1.0f;
    wt[p * 2 + 0] = hand_k[p];
    wt[p * 2 + 1] = 1.0f;
  }
  static const float taps[9] = {4, 6, 4, 6, 9, 6, 4, 6, 4};
  CHECK(mpnas__dw_fwd(g_eng, 1, 3, 3, 2, 3, 1, x, wt, NULL, NULL, MPNAS__ACT_NONE, y) ==
        MPNAS_OK);
  for (int p = 0; p < 9; p++) {
    CHECK_NEAR(y[p * 2 + 0], hand_y1[p], 1e-4);
    CHECK_NEAR(y[p * 2 + 1], taps[p], 1e-4);
  }
  CHECK(mpnas__dw_fwd(g_eng, 1, 3, 3, 2, 3, 2, x, wt, NULL, NULL, MPNAS__ACT_NONE, y) ==
        MPNAS_OK);
  for (int p = 0; p < 4; p++) {
    CHECK_NEAR(y[p * 2 + 0], hand_y2[p], 1e-4);
    CHECK_NEAR(y[p * 2 + 1], 4, 1e-4);
  }
  /* Backward by hand, channel 1, stride 2, dy = 1 at the four outputs: each input pixel
   * gets one per output window covering it: corners 1, edges 2, centre 4. dwt for the
   * all-ones image: per tap, the number of output windows where that tap is inside
   * (centre tap 4, edge taps 2, corner taps 1). */
  float dy[8], dx[18], dwt[18];
  for (int p = 0; p < 4; p++) {
    dy[p * 2 + 0] = 0.0f;
    dy[p * 2 + 1] = 1.0f;
  }
  for (int i = 0; i < 18; i++) dwt[i] = 0.5f; /* accumulates onto 0.5 */
  mpnas__arena ws;
  mpnas__arena_init(&ws, g_ctx);
  CHECK(mpnas__dw_bwd(g_eng, &ws, 1, 3, 3, 2, 3, 2, x, wt, dy, dx, dwt) == MPNAS_OK);
  CHECK_EQ_INT(ws.used, 0);
  mpnas__arena_destroy(&ws);
  static const float cover[9] = {1, 2, 1, 2, 4, 2, 1, 2, 1};
  for (int p = 0; p < 9; p++) {
    CHECK_NEAR(dx[p * 2 + 0], 0, 0);
    CHECK_NEAR(dx[p * 2 + 1], cover[p], 1e-5);
    CHECK_NEAR(dwt[p * 2 + 0], 0.5, 0);
    CHECK_NEAR(dwt[p * 2 + 1], 0.5 + cover[p], 1e-5);
  }
}

static void test_hand_pointwise_fc(void) {
  mpnas__arena ws;
  mpnas__arena_init(&ws, g_ctx);
  /* [[1,2],[3,4]] . [[5,6],[7,8]] = [[19,22],[43,50]]. */
  const float x[4] = {1, 2, 3, 4}, w[4] = {5, 6, 7, 8};
  float y[6];
  CHECK(mpnas__pw_fwd(g_eng, &ws, 2, 2, 2, x, w, NULL, NULL, MPNAS__ACT_NONE, NULL, y) ==
        MPNAS_OK);
  CHECK_NEAR(y[0], 19, 0);
  CHECK_NEAR(y[1], 22, 0);
  CHECK_NEAR(y[2], 43, 0);
  CHECK_NEAR(y[3], 50, 0);
  /* 2 -> 3 channels: [[1,2],[3,4]] . [[1,0,-1],[2,1,0]] = [[5,2,-1],[11,4,-3]]. */
  const float w23[6] = {1, 0, -1, 2, 1, 0};
  CHECK(mpnas__pw_fwd(g_eng, &ws, 2, 2, 3, x, w23, NULL, NULL, MPNAS__ACT_NONE, NULL, y) ==
        MPNAS_OK);
  static const float y23[6] = {5, 2, -1, 11, 4, -3};
  for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], y23[i], 0);
  /* Residual after the activation: relu([[5,2,-1],[11,4,-3]]) + 10. */
  const float res[6] = {10, 10, 10, 10, 10, 10};
  CHECK(mpnas__pw_fwd(g_eng, &ws, 2, 2, 3, x, w23, NULL, NULL, MPNAS__ACT_RELU, res, y) ==
        MPNAS_OK);
  static const float yr[6] = {15, 12, 10, 21, 14, 10};
  for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], yr[i], 0);
  /* fc adds the bias [0.5, -1]. */
  const float b[2] = {0.5f, -1.0f};
  CHECK(mpnas__fc_fwd(g_eng, &ws, 2, 2, 2, x, w, b, y) == MPNAS_OK);
  CHECK_NEAR(y[0], 19.5, 0);
  CHECK_NEAR(y[1], 21, 0);
  CHECK_NEAR(y[2], 43.5, 0);
  CHECK_NEAR(y[3], 49, 0);
  /* Backward with dy = I: dx = dy . w^T = w^T = [[5,7],[6,8]]; dW = x^T . dy = x^T =
   * [[1,3],[2,4]] accumulated onto 1; db = column sums of dy = [1,1] onto [2,2]. */
  const float dy[4] = {1, 0, 0, 1};
  float dx[4] = {99, 99, 99, 99}, dw[4] = {1, 1, 1, 1}, db[2] = {2, 2};
  CHECK(mpnas__fc_bwd(g_eng, &ws, 2, 2, 2, x, w, dy, dx, dw, db) == MPNAS_OK);
  static const float edx[4] = {5, 7, 6, 8}, edw[4] = {2, 4, 3, 5};
  for (int i = 0; i < 4; i++) {
    CHECK_NEAR(dx[i], edx[i], 0);
    CHECK_NEAR(dw[i], edw[i], 0);
  }
  CHECK_NEAR(db[0], 3, 0);
  CHECK_NEAR(db[1], 3, 0);
  /* dx == NULL: only the parameter gradients, accumulated once more. */
  CHECK(mpnas__fc_bwd(g_eng, &ws, 2, 2, 2, x, w, dy, NULL, dw, db) == MPNAS_OK);
  static const float edw2[4] = {3, 7, 5, 9};
  for (int i = 0; i < 4; i++) CHECK_NEAR(dw[i], edw2[i], 0);
  CHECK_NEAR(db[0], 4, 0);
  /* pw_bwd on the same numbers. */
  float pdx[4], pdw[4] = {0, 0, 0, 0};
  CHECK(mpnas__pw_bwd(g_eng, &ws, 2, 2, 2, x, w, dy, pdx, pdw) == MPNAS_OK);
  for (int i = 0; i < 4; i++) {
    CHECK_NEAR(pdx[i], edx[i], 0);
    CHECK_NEAR(pdw[i], edw[i] - 1, 0);
  }
  /* Empty problems are no-ops. */
  CHECK(mpnas__pw_fwd(g_eng, &ws, 0, 2, 2, x, w, NULL, NULL, 0, NULL, y) == MPNAS_OK);
  CHECK(mpnas__pw_bwd(g_eng, &ws, 0, 2, 2, x, w, dy, pdx, pdw) == MPNAS_OK);
  CHECK_EQ_INT(ws.used, 0);
  mpnas__arena_destroy(&ws);
}

/* ---- against oracles ------------------------------------------------------------------ */

typedef struct conv_case {
  int n, h, w, cin, cout, k, s;
} conv_case;

/* Direct backward of the KxK conv in double: dx (overwritten) and dw (overwritten). */
static void conv_bwd_oracle(const conv_case *c, const float *x, const float *wt,
                            const float *dy, double *dx, double *dw) {
  int ho = mpnas__out_size(c->h, c->s), wo = mpnas__out_size(c->w, c->s), pad = c->k / 2;
  memset(dx, 0, sizeof(double) * (size_t)c->n * c->h * c->w * c->cin);
  memset(dw, 0, sizeof(double) * (size_t)c->k * c->k * c->cin * c->cout);
  for (int i = 0; i < c->n; i++)
    for (int oy = 0; oy < ho; oy++)
      for (int ox = 0; ox < wo; ox++)
        for (int ky = 0; ky < c->k; ky++)
          for (int kx = 0; kx < c->k; kx++) {
            int iy = oy * c->s + ky - pad, ix = ox * c->s + kx - pad;
            if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) continue;
            for (int ci = 0; ci < c->cin; ci++)
              for (int co = 0; co < c->cout; co++) {
                size_t xi = (((size_t)i * c->h + iy) * c->w + ix) * c->cin + ci;
                size_t wi = (((size_t)ky * c->k + kx) * c->cin + ci) * c->cout + co;
                double g = dy[(((size_t)i * ho + oy) * wo + ox) * c->cout + co];
                dx[xi] += g * wt[wi];
                dw[wi] += g * x[xi];
              }
          }
}

static int count_diff_d(const char *what, const float *a, const double *b, size_t n,
                        double tol) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (!(d <= tol * (1.0 + fabs(b[i])))) {
      if (bad < 3) printf("    %s[%zu]: %.9g vs %.9g\n", what, i, (double)a[i], b[i]);
      bad++;
    }
  }
  return bad;
}

static void test_conv_vs_oracle(void) {
  static const conv_case cases[] = {
      {1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 3, 5, 3, 2}, {2, 5, 7, 3, 8, 3, 2},
      {1, 8, 8, 3, 16, 3, 2}, {3, 7, 5, 4, 9, 5, 1}, {2, 6, 6, 3, 5, 1, 2},
      {1, 9, 9, 1, 3, 7, 2},  {2, 4, 4, 17, 7, 3, 1}, {2, 3, 10, 9, 1, 5, 2},
      /* large enough for several im2col chunks (4 images of 1024 x 400 columns) */
      {4, 32, 32, 16, 8, 5, 1},
  };
  mpnas__arena ws;
  mpnas__arena_init(&ws, g_ctx);
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
    const conv_case *c = &cases[ci];
    int ho = mpnas__out_size(c->h, c->s), wo = mpnas__out_size(c->w, c->s);
    size_t nx = (size_t)c->n * c->h * c->w * c->cin, nw = (size_t)c->k * c->k * c->cin * c->cout;
    size_t ny = (size_t)c->n * ho * wo * c->cout;
    float *x = rnd(nx, 1 + ci, -1, 1), *wt = rnd(nw, 100 + ci, -1, 1);
    float *y = filled(ny, NAN), *yref = zeros(ny);
    mpnas__arena_mark mk = mpnas__arena_get_mark(&ws);
    CHECK(mpnas__conv_fwd(g_eng, &ws, c->n, c->h, c->w, c->cin, c->cout, c->k, c->s, x, wt,
                          NULL, NULL, MPNAS__ACT_NONE, y) == MPNAS_OK);
    CHECK_ARENA_AT(&ws, mk);
    mpnas__f32_conv_fwd__ref(c->n, c->h, c->w, c->cin, c->cout, c->k, c->s, x, wt, yref);
    CHECK_MSG(count_diff("conv y", y, yref, ny, g_tol) == 0, "case %zu", ci);

    /* Backward against the double oracle: dx overwritten, dw accumulated onto 0.25. */
    float *dy = rnd(ny, 200 + ci, -1, 1), *dx = filled(nx, 1e30f), *dw = filled(nw, 0.25f);
    double *dxd = malloc(sizeof(double) * nx), *dwd = malloc(sizeof(double) * nw);
    CHECK(mpnas__conv_bwd(g_eng, &ws, c->n, c->h, c->w, c->cin, c->cout, c->k, c->s, x, wt,
                          dy, dx, dw) == MPNAS_OK);
    CHECK_ARENA_AT(&ws, mk);
    conv_bwd_oracle(c, x, wt, dy, dxd, dwd);
    for (size_t i = 0; i < nw; i++) dwd[i] += 0.25;
    /* dW sums n*ho*wo products: allow for that many roundings. */
    double tol_w = g_tol * (1.0 + sqrt((double)c->n * ho * wo) / 4.0);
    CHECK_MSG(count_diff_d("conv dx", dx, dxd, nx, g_tol) == 0, "case %zu", ci);
    CHECK_MSG(count_diff_d("conv dw", dw, dwd, nw, tol_w) == 0, "case %zu", ci);
    /* Each gradient alone gives the same numbers. */
    float *dx2 = filled(nx, -7.0f), *dw2 = filled(nw, 0.25f);
    CHECK(mpnas__conv_bwd(g_eng, &ws, c->n, c->h, c->w, c->cin, c->cout, c->k, c->s, x, wt,
                          dy, dx2, NULL) == MPNAS_OK);
    CHECK(mpnas__conv_bwd(g_eng, &ws, c->n, c->h, c->w, c->cin, c->cout, c->k, c->s, x, wt,
                          dy, NULL, dw2) == MPNAS_OK);
    CHECK(same_bits(dx, dx2, nx));
    CHECK(same_bits(dw, dw2, nw));
    CHECK_ARENA_AT(&ws, mk);
    free(x), free(wt), free(y), free(yref), free(dy), free(dx), free(dw), free(dxd), free(dwd);
    free(dx2), free(dw2);
  }
  mpnas__arena_destroy(&ws);
}

/* Pointwise and depthwise ops against the reference kernels called directly on whole
 * tensors (on the scalar engine this checks the splitting; on SIMD, the kernels). */
static void test_pw_dw_vs_ref(void) {
  mpnas__arena ws;
  mpnas__arena_init(&ws, g_ctx);
  static const int pw[][3] = {{1, 1, 1}, {7, 3, 9}, {5, 17, 7}, {13, 9, 1}, {35, 16, 17},
                              {300, 40, 24}, {1000, 8, 33}};
  for (size_t t = 0; t < sizeof pw / sizeof pw[0]; t++) {
    int m = pw[t][0], cin = pw[t][1], cout = pw[t][2];
    float *x = rnd((size_t)m * cin, 10 + t, -1, 1), *w = rnd((size_t)cin * cout, 20 + t, -1, 1);
    float *y = zeros((size_t)m * cout), *yr = zeros((size_t)m * cout);
    float *dy = rnd((size_t)m * cout, 30 + t, -1, 1);
    float *dx = zeros((size_t)m * cin), *dxr = zeros((size_t)m * cin);
    float *dw = zeros((size_t)cin * cout), *dwr = zeros((size_t)cin * cout);
    float *wT = zeros((size_t)cin * cout);
    CHECK(mpnas__pw_fwd(g_eng, &ws, m, cin, cout, x, w, NULL, NULL, 0, NULL, y) == MPNAS_OK);
    CHECK(mpnas__pw_bwd(g_eng, &ws, m, cin, cout, x, w, dy, dx, dw) == MPNAS_OK);
    mpnas__f32_gemm__ref(m, cin, cout, x, w, NULL, NULL, 0, NULL, yr);
    for (int p = 0; p < cin; p++)
      for (int j = 0; j < cout; j++) wT[(size_t)j * cin + p] = w[(size_t)p * cout + j];
    mpnas__f32_gemm__ref(m, cout, cin, dy, wT, NULL, NULL, 0, NULL, dxr);
    mpnas__f32_gemm_bwd_weight__ref(m, cin, cout, x, dy, dwr, 0, cin);
    CHECK_MSG(count_diff("pw y", y, yr, (size_t)m * cout, g_tol) == 0, "pw case %zu", t);
    CHECK_MSG(count_diff("pw dx", dx, dxr, (size_t)m * cin, g_tol) == 0, "pw case %zu", t);
    CHECK_MSG(count_diff("pw dw", dw, dwr, (size_t)cin * cout, g_tol * (1 + sqrt(m) / 4)) == 0,
              "pw case %zu", t);
    free(x), free(w), free(y), free(yr), free(dy), free(dx), free(dxr), free(dw), free(dwr);
    free(wT);
  }
  static const int dw[][6] = {{2, 5, 7, 3, 3, 1},  {2, 5, 7, 3, 3, 2},  {1, 1, 1, 7, 3, 1},
                              {1, 1, 1, 7, 5, 2},  {2, 6, 5, 17, 5, 1}, {1, 7, 7, 9, 7, 2},
                              {3, 16, 12, 40, 3, 1}, {2, 15, 15, 33, 5, 2}, {1, 20, 9, 72, 7, 1}};
  for (size_t t = 0; t < sizeof dw / sizeof dw[0]; t++) {
    int n = dw[t][0], h = dw[t][1], w = dw[t][2], c = dw[t][3], k = dw[t][4], s = dw[t][5];
    mpnas__dw_shape sh;
    mpnas__dw_shape_init(&sh, h, w, c, k, s);
    size_t nx = (size_t)n * h * w * c, ny = (size_t)n * sh.ho * sh.wo * c, nw = (size_t)k * k * c;
    size_t in_img = (size_t)h * w * c, out_img = (size_t)sh.ho * sh.wo * c;
    float *x = rnd(nx, 40 + t, -1, 1), *wt = rnd(nw, 50 + t, -1, 1), *dy = rnd(ny, 60 + t, -1, 1);
    float *y = zeros(ny), *yr = zeros(ny), *dx = zeros(nx), *dxr = zeros(nx);
    float *dwt = zeros(nw), *dwtr = zeros(nw);
    CHECK(mpnas__dw_fwd(g_eng, n, h, w, c, k, s, x, wt, NULL, NULL, 0, y) == MPNAS_OK);
    CHECK(mpnas__dw_bwd(g_eng, &ws, n, h, w, c, k, s, x, wt, dy, dx, dwt) == MPNAS_OK);
    for (int i = 0; i < n; i++) {
      mpnas__f32_dwconv_fwd__ref(&sh, x + i * in_img, wt, NULL, NULL, 0, yr + i * out_img, 0,
                                 sh.ho);
      mpnas__f32_dwconv_bwd_input__ref(&sh, dy + i * out_img, wt, dxr + i * in_img, 0, h);
    }
    mpnas__f32_dwconv_bwd_weight__ref(&sh, n, x, dy, dwtr, 0, c);
    CHECK_MSG(count_diff("dw y", y, yr, ny, g_tol) == 0, "dw case %zu", t);
    CHECK_MSG(count_diff("dw dx", dx, dxr, nx, g_tol) == 0, "dw case %zu", t);
    CHECK_MSG(count_diff("dw dwt", dwt, dwtr, nw, g_tol * (1 + sqrt((double)ny / c) / 4)) == 0,
              "dw case %zu", t);
    free(x), free(wt), free(dy), free(y), free(yr), free(dx), free(dxr), free(dwt), free(dwtr);
  }
  CHECK_EQ_INT(ws.used, 0);
  mpnas__arena_destroy(&ws);
}

/* ---- finite-difference gradient checks ---------------------------------------------------
 * L = sum(y * probe); the ops are linear in x and w (no epilogue), so central differences
 * are exact up to float rounding of the forward pass. */
#define GC_H 0.05
#define GC_ATOL 2e-3
#define GC_RTOL 2e-3
#define GC_MAX 120

enum { OP_CONV, OP_PW, OP_DW, OP_FC };

typedef struct gc_prob {
  int op;
  int n, h, w, cin, cout, k, s; /* pw/fc: m = n, in = cin, out = cout */
  float *x, *wt, *b, *y, *probe;
  size_t nx, nw, ny;
  mpnas__arena *ws;
} gc_prob;

static void gc_forward(gc_prob *p) {
  mpnas_status st = MPNAS_OK;
  switch (p->op) {
    case OP_CONV:
      st = mpnas__conv_fwd(g_eng, p->ws, p->n, p->h, p->w, p->cin, p->cout, p->k, p->s, p->x,
                           p->wt, NULL, NULL, MPNAS__ACT_NONE, p->y);
      break;
    case OP_PW:
      st = mpnas__pw_fwd(g_eng, p->ws, p->n, p->cin, p->cout, p->x, p->wt, NULL, NULL,
                         MPNAS__ACT_NONE, NULL, p->y);
      break;
    case OP_DW:
      st = mpnas__dw_fwd(g_eng, p->n, p->h, p->w, p->cin, p->k, p->s, p->x, p->wt, NULL, NULL,
                         MPNAS__ACT_NONE, p->y);
      break;
    case OP_FC:
      st = mpnas__fc_fwd(g_eng, p->ws, p->n, p->cin, p->cout, p->x, p->wt, p->b, p->y);
      break;
  }
  CHECK(st == MPNAS_OK);
}

static double gc_loss(void *user) {
  gc_prob *p = user;
  gc_forward(p);
  return gc_dot(p->y, p->probe, p->ny);
}

static void gc_run(int op, int n, int h, int w, int cin, int cout, int k, int s, int with_bias,
                   uint64_t seed) {
  mpnas__arena ws;
  mpnas__arena_init(&ws, g_ctx);
  gc_prob p = {0};
  p.op = op, p.n = n, p.h = h, p.w = w, p.cin = cin, p.cout = cout, p.k = k, p.s = s;
  p.ws = &ws;
  int ho = mpnas__out_size(h, s), wo = mpnas__out_size(w, s);
  switch (op) {
    case OP_CONV:
      p.nx = (size_t)n * h * w * cin, p.nw = (size_t)k * k * cin * cout;
      p.ny = (size_t)n * ho * wo * cout;
      break;
    case OP_DW:
      p.nx = (size_t)n * h * w * cin, p.nw = (size_t)k * k * cin, p.ny = (size_t)n * ho * wo * cin;
      break;
    default:
      p.nx = (size_t)n * cin, p.nw = (size_t)cin * cout, p.ny = (size_t)n * cout;
      break;
  }
  p.x = rnd(p.nx, seed, -1, 1);
  p.wt = rnd(p.nw, seed + 1, -1, 1);
  p.b = with_bias ? rnd((size_t)cout, seed + 2, -1, 1) : NULL;
  p.y = zeros(p.ny);
  p.probe = rnd(p.ny, seed + 3, -1, 1);
  /* dx pre-filled with garbage (must be overwritten); dw and db start at 0.5 (must
   * accumulate): the analytic gradient is then what was added. */
  float *dx = filled(p.nx, 1e30f), *dw = filled(p.nw, 0.5f);
  float *db = with_bias ? filled((size_t)cout, 0.5f) : NULL;
  mpnas_status st = MPNAS_OK;
  switch (op) {
    case OP_CONV:
      st = mpnas__conv_bwd(g_eng, &ws, n, h, w, cin, cout, k, s, p.x, p.wt, p.probe, dx, dw);
      break;
    case OP_PW:
      st = mpnas__pw_bwd(g_eng, &ws, n, cin, cout, p.x, p.wt, p.probe, dx, dw);
      break;
    case OP_DW:
      st = mpnas__dw_bwd(g_eng, &ws, n, h, w, cin, k, s, p.x, p.wt, p.probe, dx, dw);
      break;
    case OP_FC:
      st = mpnas__fc_bwd(g_eng, &ws, n, cin, cout, p.x, p.wt, p.probe, dx, dw, db);
      break;
  }
  CHECK(st == MPNAS_OK);
  for (size_t i = 0; i < p.nw; i++) dw[i] -= 0.5f;
  if (db != NULL)
    for (int i = 0; i < cout; i++) db[i] -= 0.5f;
  static const char *names[] = {"conv", "pw", "dw", "fc"};
  char what[96];
  snprintf(what, sizeof what, "%s n%d h%d w%d c%d/%d k%d s%d dx", names[op], n, h, w, cin, cout,
           k, s);
  int bad = gc_check(what, p.x, p.nx, dx, gc_loss, &p, GC_H, GC_ATOL, GC_RTOL, GC_MAX);
  what[strlen(what) - 2] = 'd', what[strlen(what) - 1] = 'w';
  bad += gc_check(what, p.wt, p.nw, dw, gc_loss, &p, GC_H, GC_ATOL, GC_RTOL, GC_MAX);
  if (db != NULL) bad += gc_check("fc db", p.b, (size_t)cout, db, gc_loss, &p, GC_H, GC_ATOL,
                                  GC_RTOL, GC_MAX);
  CHECK_MSG(bad == 0, "%s: %d gradient mismatches", names[op], bad);
  CHECK_EQ_INT(ws.used, 0);
  free(p.x), free(p.wt), free(p.b), free(p.y), free(p.probe), free(dx), free(dw), free(db);
  mpnas__arena_destroy(&ws);
}

static void test_gradcheck_conv(void) {
  static const conv_case cases[] = {
      {2, 5, 7, 3, 7, 3, 1}, {2, 5, 7, 3, 7, 3, 2}, {1, 1, 1, 3, 5, 3, 1}, {1, 1, 1, 3, 5, 3, 2},
      {2, 4, 3, 1, 9, 5, 1}, {2, 6, 5, 7, 3, 5, 2}, {3, 3, 3, 9, 2, 1, 1}, {2, 5, 5, 3, 4, 1, 2},
      {1, 7, 7, 17, 3, 3, 2}, {1, 2, 2, 3, 8, 5, 2},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const conv_case *c = &cases[i];
    gc_run(OP_CONV, c->n, c->h, c->w, c->cin, c->cout, c->k, c->s, 0, 1000 + 10 * i);
  }
}

static void test_gradcheck_pointwise(void) {
  static const int cases[][3] = {{1, 1, 1}, {7, 3, 9}, {5, 17, 7}, {13, 9, 1}, {35, 16, 17}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    gc_run(OP_PW, cases[i][0], 1, 1, cases[i][1], cases[i][2], 1, 1, 0, 2000 + 10 * i);
}

static void test_gradcheck_depthwise(void) {
  static const int cases[][6] = {{2, 5, 7, 3, 3, 1}, {2, 5, 7, 3, 3, 2}, {1, 1, 1, 7, 3, 1},
                                 {1, 1, 1, 7, 5, 2}, {2, 6, 5, 17, 5, 1}, {1, 7, 7, 9, 7, 2},
                                 {2, 4, 4, 1, 7, 1}, {1, 9, 8, 33, 3, 2}, {2, 3, 5, 7, 5, 2}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const int *c = cases[i];
    gc_run(OP_DW, c[0], c[1], c[2], c[3], c[3], c[4], c[5], 0, 3000 + 10 * i);
  }
}

static void test_gradcheck_fc(void) {
  static const int cases[][4] = {{1, 1, 1, 1}, {4, 7, 3, 1}, {3, 17, 10, 1}, {5, 9, 4, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    gc_run(OP_FC, cases[i][0], 1, 1, cases[i][1], cases[i][2], 1, 1, cases[i][3],
           4000 + 10 * i);
}

/* ---- fused epilogue -------------------------------------------------------------------------
 * Each op with (scale, shift, act, residual) against the plain op followed by the same
 * steps done by hand. */
static void unfused(size_t rows, int c, float *y, const float *scale, const float *shift,
                    int act, const float *res) {
  for (size_t r = 0; r < rows; r++)
    for (int j = 0; j < c; j++) {
      float v = y[r * c + j];
      if (scale != NULL) v *= scale[j];
      if (shift != NULL) v += shift[j];
      v = mpnas__act_apply(act, v);
      if (res != NULL) v += res[r * c + j];
      y[r * c + j] = v;
    }
}

static void test_fused_epilogue(void) {
  mpnas__arena ws;
  mpnas__arena_init(&ws, g_ctx);
  /* conv 2x7x5x3 -> 11, k3 s2; pw 37 rows 9 -> 19; dw 2x6x7x19 k5 s1. Inputs scaled so
   * pre-activations cover every piece of every activation (about -8..8). */
  const int n = 2, h = 7, w = 5, cin = 3, cout = 11, k = 3, s = 2;
  const int m = 37, pin = 9, pout = 19;
  const int dn = 2, dh = 6, dwd = 7, dc = 19, dk = 5;
  int ho = mpnas__out_size(h, s), wo = mpnas__out_size(w, s);
  size_t cy = (size_t)n * ho * wo * cout, py = (size_t)m * pout, dy = (size_t)dn * dh * dwd * dc;
  float *cx = rnd((size_t)n * h * w * cin, 1, -2, 2), *cw = rnd((size_t)k * k * cin * cout, 2, -1, 1);
  float *px = rnd((size_t)m * pin, 3, -2, 2), *pw = rnd((size_t)pin * pout, 4, -1, 1);
  float *pres = rnd(py, 5, -1, 1);
  float *dx = rnd((size_t)dn * dh * dwd * dc, 6, -2, 2), *dwt = rnd((size_t)dk * dk * dc, 7, -0.5, 0.5);
  float *scale = rnd(32, 8, 0.5f, 2.0f), *shift = rnd(32, 9, -3.0f, 3.0f);
  float *got = zeros(cy + py + dy), *want = zeros(cy + py + dy);
  int bad = 0;
  for (int act = 0; act < MPNAS__ACT_COUNT; act++)
    for (int variant = 0; variant < 4; variant++) {
      const float *sc = (variant & 1) ? scale : NULL, *sh = (variant & 2) ? shift : NULL;
      /* conv */
      CHECK(mpnas__conv_fwd(g_eng, &ws, n, h, w, cin, cout, k, s, cx, cw, sc, sh, act, got) ==
            MPNAS_OK);
      CHECK(mpnas__conv_fwd(g_eng, &ws, n, h, w, cin, cout, k, s, cx, cw, NULL, NULL, 0,
                            want) == MPNAS_OK);
      unfused(cy / cout, cout, want, sc, sh, act, NULL);
      bad += count_diff("conv epilogue", got, want, cy, g_tol);
      /* pointwise, with and without the residual */
      for (int r = 0; r < 2; r++) {
        const float *res = r ? pres : NULL;
        CHECK(mpnas__pw_fwd(g_eng, &ws, m, pin, pout, px, pw, sc, sh, act, res, got) ==
              MPNAS_OK);
        CHECK(mpnas__pw_fwd(g_eng, &ws, m, pin, pout, px, pw, NULL, NULL, 0, NULL, want) ==
              MPNAS_OK);
        unfused((size_t)m, pout, want, sc, sh, act, res);
        bad += count_diff("pw epilogue", got, want, py, g_tol);
      }
      /* depthwise */
      CHECK(mpnas__dw_fwd(g_eng, dn, dh, dwd, dc, dk, 1, dx, dwt, sc, sh, act, got) ==
            MPNAS_OK);
      CHECK(mpnas__dw_fwd(g_eng, dn, dh, dwd, dc, dk, 1, dx, dwt, NULL, NULL, 0, want) ==
            MPNAS_OK);
      unfused(dy / dc, dc, want, sc, sh, act, NULL);
      bad += count_diff("dw epilogue", got, want, dy, g_tol);
    }
  CHECK_MSG(bad == 0, "%d epilogue mismatches", bad);
  /* The pre-activations did reach every region: some negative, some above 6. */
  CHECK(mpnas__pw_fwd(g_eng, &ws, m, pin, pout, px, pw, scale, shift, 0, NULL, got) == MPNAS_OK);
  int below = 0, above = 0;
  for (size_t i = 0; i < py; i++) below += got[i] < -3.0f, above += got[i] > 6.0f;
  CHECK(below > 0 && above > 0);
  free(cx), free(cw), free(px), free(pw), free(pres), free(dx), free(dwt), free(scale);
  free(shift), free(got), free(want);
  mpnas__arena_destroy(&ws);
}

/* ---- threads ---------------------------------------------------------------------------------
 * Engines with 1, 2 and 3 threads (copies of the context's engine; without OpenMP the
 * parts run one after another, which still exercises the splits). Weight gradients must
 * be bit-identical for every thread count; forward outputs and input gradients are
 * bit-identical on the scalar engine and within tolerance elsewhere; a fixed thread count
 * is bit-identical run to run. */
typedef struct thr_out {
  float *y, *dx, *dw;
} thr_out;

static void thr_run(const mpnas__engine *eng, mpnas__arena *ws, int op, const float *x,
                    const float *wt, const float *dy, thr_out *o, size_t nw) {
  memset(o->dw, 0, sizeof(float) * nw);
  mpnas_status a = MPNAS_OK, b = MPNAS_OK;
  switch (op) {
    case OP_CONV: /* n3 33x33 4 -> 16, k5 s2 */
      a = mpnas__conv_fwd(eng, ws, 3, 33, 33, 4, 16, 5, 2, x, wt, NULL, NULL, 0, o->y);
      b = mpnas__conv_bwd(eng, ws, 3, 33, 33, 4, 16, 5, 2, x, wt, dy, o->dx, o->dw);
      break;
    case OP_PW: /* 1000 rows 24 -> 40 */
      a = mpnas__pw_fwd(eng, ws, 1000, 24, 40, x, wt, NULL, NULL, 0, NULL, o->y);
      b = mpnas__pw_bwd(eng, ws, 1000, 24, 40, x, wt, dy, o->dx, o->dw);
      break;
    case OP_DW: /* n2 20x20 40, k5 s2 */
      a = mpnas__dw_fwd(eng, 2, 20, 20, 40, 5, 2, x, wt, NULL, NULL, 0, o->y);
      b = mpnas__dw_bwd(eng, ws, 2, 20, 20, 40, 5, 2, x, wt, dy, o->dx, o->dw);
      break;
    case OP_FC: /* 64 rows 256 -> 40; the bias gradient is checked with dw */
      a = mpnas__fc_fwd(eng, ws, 64, 256, 40, x, wt, wt, o->y);
      b = mpnas__fc_bwd(eng, ws, 64, 256, 40, x, wt, dy, o->dx, o->dw, o->dw + 256 * 40);
      break;
  }
  CHECK(a == MPNAS_OK && b == MPNAS_OK);
}

static void test_threads(void) {
  /* sizes: x, w (+ fc bias), y */
  static const size_t sz[4][3] = {{3 * 33 * 33 * 4, 25 * 4 * 16, 3 * 17 * 17 * 16},
                                  {1000 * 24, 24 * 40, 1000 * 40},
                                  {2 * 20 * 20 * 40, 25 * 40, 2 * 10 * 10 * 40},
                                  {64 * 256, 256 * 40 + 40, 64 * 40}};
  mpnas__arena ws;
  mpnas__arena_init(&ws, g_ctx);
  for (int op = 0; op < 4; op++) {
    size_t nx = sz[op][0], nw = sz[op][1], ny = sz[op][2];
    float *x = rnd(nx, 70 + op, -1, 1), *wt = rnd(nw, 80 + op, -1, 1), *dy = rnd(ny, 90 + op, -1, 1);
    thr_out o[4];
    for (int t = 0; t < 4; t++) o[t] = (thr_out){zeros(ny), zeros(nx), zeros(nw)};
    for (int t = 0; t < 3; t++) {
      mpnas__engine e = *g_eng;
      e.threads = t + 1;
      thr_run(&e, &ws, op, x, wt, dy, &o[t], nw);
    }
    mpnas__engine e2 = *g_eng;
    e2.threads = 2;
    thr_run(&e2, &ws, op, x, wt, dy, &o[3], nw); /* again, to compare run to run */
    for (int t = 1; t < 3; t++) {
      CHECK_MSG(same_bits(o[t].dw, o[0].dw, nw), "op %d: dw differs for %d threads", op, t + 1);
      if (g_exact) {
        CHECK_MSG(same_bits(o[t].y, o[0].y, ny), "op %d: y differs for %d threads", op, t + 1);
        CHECK_MSG(same_bits(o[t].dx, o[0].dx, nx), "op %d: dx differs for %d threads", op,
                  t + 1);
      } else {
        CHECK(count_diff("threads y", o[t].y, o[0].y, ny, g_tol) == 0);
        CHECK(count_diff("threads dx", o[t].dx, o[0].dx, nx, g_tol) == 0);
      }
    }
    CHECK_MSG(same_bits(o[3].y, o[1].y, ny) && same_bits(o[3].dx, o[1].dx, nx) &&
                  same_bits(o[3].dw, o[1].dw, nw),
              "op %d: two runs with 2 threads differ", op);
    for (int t = 0; t < 4; t++) free(o[t].y), free(o[t].dx), free(o[t].dw);
    free(x), free(wt), free(dy);
  }
  CHECK_EQ_INT(ws.used, 0);
  mpnas__arena_destroy(&ws);

  /* The same through the public setting (real OpenMP threads when built with it). */
  mpnas_context *ctx = NULL;
  CHECK(mpnas_context_create(&ctx) == MPNAS_OK);
  if (ctx == NULL) return;
  CHECK(mpnas_context_set_int(ctx, MPNAS_CONTEXT_ISA, g_eng->k->isa) == MPNAS_OK);
  CHECK(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, 2) == MPNAS_OK);
  mpnas__arena_init(&ws, ctx);
  float *x = rnd(1000 * 24, 5, -1, 1), *wt = rnd(24 * 40, 6, -1, 1), *dy = rnd(1000 * 40, 7, -1, 1);
  thr_out a = {zeros(1000 * 40), zeros(1000 * 24), zeros(24 * 40)};
  thr_out b = {zeros(1000 * 40), zeros(1000 * 24), zeros(24 * 40)};
  thr_run(&ctx->engine, &ws, OP_PW, x, wt, dy, &a, 24 * 40);
  mpnas__engine e1 = ctx->engine;
  e1.threads = 1;
  thr_run(&e1, &ws, OP_PW, x, wt, dy, &b, 24 * 40);
  CHECK(same_bits(a.dw, b.dw, 24 * 40));
  CHECK(count_diff("api threads y", a.y, b.y, 1000 * 40, g_exact ? 0.0 : g_tol) == 0);
  free(a.y), free(a.dx), free(a.dw), free(b.y), free(b.dx), free(b.dw), free(x), free(wt), free(dy);
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

/* ---- workspace ------------------------------------------------------------------------------- */

/* The arena grows on the first call only; later calls reuse it. */
static void test_arena_reuse(void) {
  mpnas__arena ws;
  mpnas__arena_init(&ws, g_ctx);
  float *x = rnd(2 * 9 * 9 * 3, 1, -1, 1), *wt = rnd(9 * 3 * 8, 2, -1, 1);
  float *y = zeros(2 * 81 * 8), *dx = zeros(2 * 9 * 9 * 3), *dw = zeros(9 * 3 * 8);
  for (int rep = 0; rep < 3; rep++) {
    CHECK(mpnas__conv_fwd(g_eng, &ws, 2, 9, 9, 3, 8, 3, 2, x, wt, NULL, NULL, 0, y) == MPNAS_OK);
    CHECK(mpnas__conv_bwd(g_eng, &ws, 2, 9, 9, 3, 8, 3, 2, x, wt, y, dx, dw) == MPNAS_OK);
    CHECK(mpnas__pw_fwd(g_eng, &ws, 2 * 81, 3, 8, x, wt, NULL, NULL, 0, NULL, y) == MPNAS_OK);
    CHECK(mpnas__pw_bwd(g_eng, &ws, 2 * 81, 3, 8, x, wt, y, dx, dw) == MPNAS_OK);
    if (rep == 0) CHECK(mpnas__arena_reset(&ws) == MPNAS_OK);
    CHECK_EQ_INT(ws.used, 0);
  }
  CHECK_EQ_INT(ws.nchunks, 1);
  size_t allocs = ws.allocations;
  CHECK(mpnas__conv_bwd(g_eng, &ws, 2, 9, 9, 3, 8, 3, 2, x, wt, y, dx, dw) == MPNAS_OK);
  CHECK_EQ_INT(ws.allocations, allocs);
  free(x), free(wt), free(y), free(dx), free(dw);
  mpnas__arena_destroy(&ws);
}

/* An allocator that refuses everything after the context itself exists. */
static int g_allow_alloc;
static void *refusing_malloc(void *user, size_t size) {
  (void)user;
  return g_allow_alloc ? malloc(size) : NULL;
}
static void plain_free(void *user, void *p) {
  (void)user;
  free(p);
}

static void test_no_memory(void) {
  mpnas_context *ctx = NULL;
  g_allow_alloc = 1;
  CHECK(mpnas_context_create_with_allocator(&ctx, refusing_malloc, plain_free, NULL) ==
        MPNAS_OK);
  if (ctx == NULL) return;
  CHECK(mpnas_context_set_int(ctx, MPNAS_CONTEXT_ISA, g_eng->k->isa) == MPNAS_OK);
  g_allow_alloc = 0;
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  const mpnas__engine *e = &ctx->engine;
  float x[2 * 5 * 5 * 3] = {0}, wt[9 * 3 * 4] = {0}, y[2 * 3 * 3 * 4] = {0}, dx[2 * 5 * 5 * 3];
  float dw[9 * 3 * 4] = {0};
  CHECK(mpnas__conv_fwd(e, &ws, 2, 5, 5, 3, 4, 3, 2, x, wt, NULL, NULL, 0, y) ==
        MPNAS_E_NO_MEMORY);
  CHECK(mpnas__conv_bwd(e, &ws, 2, 5, 5, 3, 4, 3, 2, x, wt, y, dx, dw) == MPNAS_E_NO_MEMORY);
  CHECK(mpnas__pw_fwd(e, &ws, 4, 3, 4, x, wt, NULL, NULL, 0, NULL, y) == MPNAS_E_NO_MEMORY);
  CHECK(mpnas__pw_bwd(e, &ws, 4, 3, 4, x, wt, y, dx, dw) == MPNAS_E_NO_MEMORY);
  CHECK(mpnas__fc_fwd(e, &ws, 4, 3, 4, x, wt, NULL, y) == MPNAS_E_NO_MEMORY);
  CHECK(mpnas__fc_bwd(e, &ws, 4, 3, 4, x, wt, y, dx, dw, NULL) == MPNAS_E_NO_MEMORY);
  CHECK_EQ_INT(ws.used, 0);
  /* Only parameter gradients: pointwise needs no scratch then, up to one chunk of rows;
   * from two chunks on (65 rows) the partials take some. */
  CHECK(mpnas__pw_bwd(e, &ws, 4, 3, 4, x, wt, y, NULL, dw) == MPNAS_OK);
  static const float xm[65 * 4], dym[65 * 4];
  CHECK(mpnas__pw_bwd(e, &ws, 65, 4, 4, xm, wt, dym, NULL, dw) == MPNAS_E_NO_MEMORY);
  CHECK_EQ_INT(ws.used, 0);
  /* The depthwise weight gradient's partials of image chunks need scratch from two
   * images on; the forward, the input gradient alone and one image need none. */
  CHECK(mpnas__dw_bwd(e, &ws, 2, 5, 5, 3, 3, 1, x, wt, x, dx, dw) == MPNAS_E_NO_MEMORY);
  CHECK_EQ_INT(ws.used, 0);
  CHECK(mpnas__dw_bwd(e, &ws, 2, 5, 5, 3, 3, 1, x, wt, x, dx, NULL) == MPNAS_OK);
  CHECK(mpnas__dw_bwd(e, &ws, 1, 5, 5, 3, 3, 1, x, wt, x, dx, dw) == MPNAS_OK);
  CHECK(mpnas__dw_fwd(e, 2, 5, 5, 3, 3, 1, x, wt, NULL, NULL, 0, dx) == MPNAS_OK);
  /* Statistics from moments and the expand made into the depthwise's buffer: scratch. */
  double st[8];
  float coef[3 * 4] = {0};
  mpnas__bn_act in = {coef, coef + 4, coef + 8, MPNAS__ACT_RELU};
  CHECK(mpnas__pw_out_moments(e, &ws, 4, 3, 4, x, wt, st, st + 4) == MPNAS_E_NO_MEMORY);
  CHECK(mpnas__expand_dw_fwd_stats(e, &ws, 2, 5, 5, 3, 4, 3, 2, x, wt, &in, wt, y, st, st + 4) ==
        MPNAS_E_NO_MEMORY);
  CHECK_EQ_INT(ws.used, 0);
  mpnas__arena_destroy(&ws);
  g_allow_alloc = 1;
  mpnas_context_free(ctx);
}

/* The depthwise backward over image chunks (ops_conv.c): for batches of 1 to 37 images
 * (one chunk an image, then uneven chunks of two or three) and 1-3 threads, dwt
 * accumulates the reference's sum and is bit-identical for every thread count and to the
 * weight gradient made alone (whole chunks a call); dx, made image by image beside the
 * weight gradient when each thread has two images, equals the input gradient made alone
 * (by rows) bit for bit. The last shape's dy images (221 KB) make groups of two within
 * its chunks of two or three (DW_DY_GROUP_BYTES), the last group of a chunk shorter. */
static void test_dw_bwd_image_chunks(void) {
  static const int shapes[][6] = {{1, 6, 5, 19, 3, 1},  {4, 7, 6, 40, 3, 2}, {5, 6, 6, 17, 5, 1},
                                  {17, 5, 7, 33, 3, 1}, {37, 4, 4, 24, 3, 2},
                                  {40, 48, 48, 24, 3, 1}};
  mpnas__arena ws;
  mpnas__arena_init(&ws, g_ctx);
  for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
    int n = shapes[t][0], h = shapes[t][1], w = shapes[t][2], c = shapes[t][3];
    int k = shapes[t][4], s = shapes[t][5];
    mpnas__dw_shape sh;
    mpnas__dw_shape_init(&sh, h, w, c, k, s);
    size_t nx = (size_t)n * h * w * c, ny = (size_t)n * sh.ho * sh.wo * c, nw = (size_t)k * k * c;
    float *x = rnd(nx, 300 + t, -1, 1), *wt = rnd(nw, 310 + t, -1, 1);
    float *dy = rnd(ny, 320 + t, -1, 1), *dxr = zeros(nx), *dwr = zeros(nw);
    float *dx[3], *dw[3];
    for (int i = 0; i < n; i++)
      mpnas__f32_dwconv_bwd_input__ref(&sh, dy + (size_t)i * sh.ho * sh.wo * c, wt,
                                       dxr + (size_t)i * h * w * c, 0, h);
    mpnas__f32_dwconv_bwd_weight__ref(&sh, n, x, dy, dwr, 0, c);
    for (size_t i = 0; i < nw; i++) dwr[i] += 0.5f;
    for (int th = 0; th < 3; th++) {
      mpnas__engine e = *g_eng;
      e.threads = th + 1;
      dx[th] = filled(nx, 1e30f), dw[th] = filled(nw, 0.5f);
      CHECK(mpnas__dw_bwd(&e, &ws, n, h, w, c, k, s, x, wt, dy, dx[th], dw[th]) == MPNAS_OK);
      CHECK_EQ_INT(ws.used, 0);
      float *alone = filled(nx, 1e30f), *dw_alone = filled(nw, 0.5f);
      CHECK(mpnas__dw_bwd(&e, &ws, n, h, w, c, k, s, x, wt, dy, alone, NULL) == MPNAS_OK);
      CHECK(mpnas__dw_bwd(&e, &ws, n, h, w, c, k, s, x, wt, dy, NULL, dw_alone) == MPNAS_OK);
      CHECK_MSG(same_bits(dx[th], alone, nx), "dw case %zu, %d threads: dx differs", t, th + 1);
      CHECK_MSG(same_bits(dw[th], dw_alone, nw), "dw case %zu, %d threads: dw alone differs", t,
                th + 1);
      free(alone), free(dw_alone);
      CHECK_MSG(count_diff("chunks dx", dx[th], dxr, nx, g_tol) == 0, "dw case %zu", t);
      double tol = g_tol * (1 + sqrt((double)ny / c));
      CHECK_MSG(count_diff("chunks dw", dw[th], dwr, nw, tol) == 0, "dw case %zu, %d threads", t,
                th + 1);
      CHECK_MSG(same_bits(dw[th], dw[0], nw), "dw case %zu: dw differs for %d threads", t, th + 1);
    }
    for (int th = 0; th < 3; th++) free(dx[th]), free(dw[th]);
    free(x), free(wt), free(dy), free(dxr), free(dwr);
  }
  mpnas__arena_destroy(&ws);
}

/* The pointwise weight gradient's two splits (ops_conv.c): by chunks of rows (partials
 * added in order; m = 1000 and 4099, 1 to 8 chunks, uneven) and by ranges of dw's rows
 * (wide weights over few rows). For 1-3 threads: the reference's sum and the same bits. */
static void test_pw_bwd_weight_splits(void) {
  static const int shapes[][3] = {{1000, 24, 40}, {4099, 16, 96}, {130, 7, 5},
                                  {40, 8, 8},     {200, 96, 320}, {64, 300, 48}};
  mpnas__arena ws;
  mpnas__arena_init(&ws, g_ctx);
  for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
    int m = shapes[t][0], k = shapes[t][1], n = shapes[t][2];
    size_t nx = (size_t)m * k, ny = (size_t)m * n, nw = (size_t)k * n;
    float *x = rnd(nx, 400 + t, -1, 1), *dy = rnd(ny, 410 + t, -1, 1), *want = zeros(nw);
    float *dw[3];
    mpnas__f32_gemm_bwd_weight__ref(m, k, n, x, dy, want, 0, k);
    for (size_t i = 0; i < nw; i++) want[i] += 0.5f;
    for (int th = 0; th < 3; th++) {
      mpnas__engine e = *g_eng;
      e.threads = th + 1;
      dw[th] = filled(nw, 0.5f);
      CHECK(mpnas__pw_bwd(&e, &ws, m, k, n, x, NULL, dy, NULL, dw[th]) == MPNAS_OK);
      CHECK_EQ_INT(ws.used, 0);
      CHECK_MSG(count_diff("pw dw", dw[th], want, nw, g_tol * (1 + sqrt((double)m))) == 0,
                "pw case %zu, %d threads", t, th + 1);
      CHECK_MSG(same_bits(dw[th], dw[0], nw), "pw case %zu: dw differs for %d threads", t,
                th + 1);
    }
    for (int th = 0; th < 3; th++) free(dw[th]);
    free(x), free(dy), free(want);
  }
  mpnas__arena_destroy(&ws);
}

/* ---- main ------------------------------------------------------------------------------------- */

static void run_all(void) {
  char name[128];
#define RUN_ON(fn)                                                       \
  do {                                                                   \
    snprintf(name, sizeof name, "%s [%s]", #fn, g_eng->k->name);         \
    check__run(name, fn);                                                \
  } while (0)
  RUN_ON(test_hand_conv);
  RUN_ON(test_hand_depthwise);
  RUN_ON(test_hand_pointwise_fc);
  RUN_ON(test_conv_vs_oracle);
  RUN_ON(test_pw_dw_vs_ref);
  RUN_ON(test_gradcheck_conv);
  RUN_ON(test_gradcheck_pointwise);
  RUN_ON(test_gradcheck_depthwise);
  RUN_ON(test_gradcheck_fc);
  RUN_ON(test_fused_epilogue);
  RUN_ON(test_threads);
  RUN_ON(test_dw_bwd_image_chunks);
  RUN_ON(test_pw_bwd_weight_splits);
  RUN_ON(test_arena_reuse);
  RUN_ON(test_no_memory);
#undef RUN_ON
}

int main(void) {
  mpnas_context *ctx = NULL;
  if (mpnas_context_create(&ctx) != MPNAS_OK ||
      mpnas_context_set_int(ctx, MPNAS_CONTEXT_ISA, MPNAS_ISA_SCALAR) != MPNAS_OK) {
    printf("FAIL cannot create a scalar context\n");
    mpnas_context_free(ctx);
    return check_finish() + 1;
  }
  g_ctx = ctx;
  g_eng = &ctx->engine;
  g_tol = 1e-5;
  g_exact = 1;
  run_all();

  /* The fastest engine here (AVX2 on x86-64, NEON on aarch64), if it is not scalar. */
  CHECK(mpnas_context_set_int(ctx, MPNAS_CONTEXT_ISA, MPNAS_ISA_AUTO) == MPNAS_OK);
  if (ctx->engine.k->isa != MPNAS_ISA_SCALAR) {
    /* SIMD kernels reorder sums (and use FMA): relative 1e-4 of (1 + |value|). */
    g_tol = 1e-4;
    g_exact = 0;
    run_all();
  }
  mpnas_context_free(ctx);
  return check_finish();
}
