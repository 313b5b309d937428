/* test_q8_kernels.c - every int8 kernel table against the reference (ref/q8-ref.c),
 * which defines the contract (kernels.h, "int8 inference").
 *
 * Outputs must be bit-identical to the reference's: the SIMD kernels do the epilogue's
 * float operations in the reference's order, so no tolerance is allowed. Each table
 * this build and CPU can run is tested, found by name (mpnas__kernels_named): scalar
 * (the reference against itself, so the harness runs everywhere), avx2, avx2+vnni, avx512,
 * avx512+vnni (its own int8 kernels, q8-vnni-avx512.c),
 * neon, neon+dotprod.
 *
 * Shapes are awkward on purpose: GEMM m = 1..13 around the 6-row tile, k across the
 * 2 / 4 / 16-byte steps and the 512-k conversion chunk (511, 512, 513, 1100), n around
 * the 8 / 16-channel panels; depthwise K = 1, 3, 5, 7 (specialised) and 9 (the generic
 * path), strides 1 and 2, images from 1x1 up to wider than a 16-output chunk, channels
 * around 8 and 16, partial row ranges. Epilogues: every activation the contract allows
 * (NONE, RELU, RELU6 in the folded form, HSWISH in the real one), clamps [qmin, qmax] at
 * the full range, a zero-point floor and random (equal) bounds, bias and residual NULL
 * or not, zero points at -128, 0, 127 and random, weights at
 * -128 / 127, scales that saturate at both ends, and a scale of 0.5 with no bias, whose
 * outputs fall exactly on .5 (the half-to-even rounding). Inputs are exactly sized at
 * an odd address (sanitizers see over-reads); outputs carry a guard zone, rows outside
 * [oh0, oh1) must stay untouched, and packing must stay within q8_gemm_packed_bytes. */
#include <stdint.h>

#include "check.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"
#include "mpnas.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static uint32_t rng_u32(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}
static int rng_int(int lo, int hi) { return lo + (int)(rng_u32() % (uint32_t)(hi - lo + 1)); }
static float rng_uniform(float lo, float hi) {
  return lo + (hi - lo) * (float)((double)rng_u32() / 4294967296.0);
}

#define GUARD 37
#define SENT ((int8_t)0x5a)

/* n bytes at an odd address, ending where the allocation does. */
typedef struct {
  void *raw;
  int8_t *p;
} bbuf;
static bbuf b_alloc(size_t n) {
  bbuf b;
  b.raw = malloc(n + 1);
  b.p = (int8_t *)b.raw + 1;
  return b;
}
static bbuf b_random(size_t n, int lo, int hi) {
  bbuf b = b_alloc(n);
  for (size_t i = 0; i < n; i++) b.p[i] = (int8_t)rng_int(lo, hi);
  return b;
}
static float *f_random(int n, float lo, float hi) {
  float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  for (int i = 0; i < n; i++) p[i] = rng_uniform(lo, hi);
  return p;
}

static const mpnas__kernels *tables[8];
static int n_tables;

static void find_tables(void) {
  static const char *names[] = {"scalar", "avx2",  "avx2+vnni", "avx512", "avx512+vnni",
                                "neon",   "neon+dotprod"};
  printf("# int8 tables not available on this build or CPU, skipped:");
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (mpnas__kernels_named(names[i]) == NULL) printf(" %s", names[i]);
  printf("\n# int8 tables tested against the reference:");
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const mpnas__kernels *t = mpnas__kernels_named(names[i]);
    if (t == NULL) continue;
    tables[n_tables++] = t;
    printf(" %s", t->name);
  }
  printf("\n");
  fflush(stdout);
}

/* An epilogue of the given style (owning its mult and bias). acc_mag: the typical
 * |accumulator|. style 0: random in range; 1: saturating both ways; 2: exact .5s. */
typedef struct {
  mpnas__q8_epilogue e;
  float *mult, *bias;
} epi;
static const int ACTS[] = {MPNAS__ACT_NONE, MPNAS__ACT_RELU, MPNAS__ACT_RELU6,
                           MPNAS__ACT_HSWISH};
static epi epi_make(int channels, double acc_mag, int style, int act, int with_bias,
                    const int8_t *residual) {
  epi p;
  memset(&p, 0, sizeof p);
  p.mult = malloc(sizeof(float) * (size_t)channels);
  p.bias = with_bias ? f_random(channels, -3.0f, 3.0f) : NULL;
  for (int c = 0; c < channels; c++) {
    if (style == 2) p.mult[c] = 0.5f;
    else p.mult[c] = rng_uniform(0.2f, 1.0f) * (float)(4.0 / acc_mag) * (style == 1 ? 40.0f : 1.0f);
  }
  if (style == 2) { /* exact .5s need no bias */
    free(p.bias);
    p.bias = NULL;
  }
  p.e.mult = p.mult;
  p.e.bias = p.bias;
  p.e.act = act;
  p.e.out_inv_scale = style == 2 ? 1.0f : rng_uniform(15.0f, 40.0f);
  p.e.out_zero = style == 2 ? 0 : (rng_u32() % 3 == 0 ? (rng_u32() % 2 ? -128 : 127) : rng_int(-128, 127));
  p.e.residual = residual;
  p.e.res_scale = rng_uniform(0.01f, 0.2f);
  p.e.res_zero = rng_int(-128, 127);
  if (act != MPNAS__ACT_HSWISH) { /* the folded form: in output units, as a caller folds */
    for (int c = 0; c < channels; c++) {
      p.mult[c] *= p.e.out_inv_scale;
      if (p.bias != NULL) p.bias[c] = p.bias[c] * p.e.out_inv_scale + (float)p.e.out_zero;
    }
    p.e.res_scale *= p.e.out_inv_scale;
  }
  /* The clamp: the full range, a ReLU-like floor, or any bounds (equal ones too). */
  p.e.qmin = -128;
  p.e.qmax = 127;
  switch (rng_u32() % 4) {
    case 0: break;
    case 1: p.e.qmin = p.e.out_zero; break;
    default: {
      int32_t a = rng_int(-128, 127), b = rng_int(-128, 127);
      p.e.qmin = a < b ? a : b;
      p.e.qmax = a < b ? b : a;
    }
  }
  return p;
}
static void epi_free(epi *p) {
  free(p->mult);
  free(p->bias);
}

static int32_t pick_zero(void) {
  switch (rng_u32() % 4) {
    case 0: return -128;
    case 1: return 127;
    case 2: return 0;
    default: return rng_int(-128, 127);
  }
}

/* ---- GEMM ------------------------------------------------------------------------- */

static long gemm_cases;

/* One (m, k, n) case on every table; returns the number of mismatching outputs. */
static void gemm_case(int m, int k, int n, int style, int act, int with_bias, int with_res,
                      int extreme_w) {
  bbuf x = b_random((size_t)m * k, -128, 127);
  bbuf w = b_random((size_t)k * n, -127, 127);
  if (extreme_w)
    for (size_t i = 0; i < (size_t)k * n; i++) w.p[i] = (rng_u32() % 2) ? 127 : -128;
  bbuf res = b_random((size_t)m * n, -128, 127);
  const int32_t xz = pick_zero();
  epi p = epi_make(n, 128.0 * 70.0 * sqrt((double)k), style, act, with_bias,
                   with_res ? res.p : NULL);
  /* the reference */
  void *rp = aligned_alloc(64, (mpnas__q8_gemm_packed_bytes__ref(k, n) + 63) / 64 * 64);
  mpnas__q8_gemm_pack__ref(k, n, w.p, rp);
  int8_t *want = malloc((size_t)m * n);
  mpnas__q8_gemm__ref(m, k, n, x.p, xz, rp, &p.e, want);
  for (int ti = 0; ti < n_tables; ti++) {
    const mpnas__kernels *t = tables[ti];
    const size_t pb = t->q8_gemm_packed_bytes(k, n);
    const size_t alloc = (pb + GUARD + 63) / 64 * 64;
    uint8_t *packed = aligned_alloc(64, alloc);
    memset(packed, 0xa5, alloc);
    t->q8_gemm_pack(k, n, w.p, packed);
    int pack_ok = 1;
    for (size_t i = pb; i < alloc; i++) pack_ok &= packed[i] == 0xa5;
    CHECK_MSG(pack_ok, "%s: pack wrote past q8_gemm_packed_bytes(%d, %d)", t->name, k, n);
    int8_t *y = malloc((size_t)m * n + GUARD);
    memset(y, SENT, (size_t)m * n + GUARD);
    t->q8_gemm(m, k, n, x.p, xz, packed, &p.e, y);
    int bad = 0, first = -1;
    for (size_t i = 0; i < (size_t)m * n; i++)
      if (y[i] != want[i]) {
        if (first < 0) first = (int)i;
        bad++;
      }
    CHECK_MSG(bad == 0,
              "%s gemm m=%d k=%d n=%d style=%d act=%d bias=%d res=%d xz=%d: %d of %d differ "
              "(first at %d: %d, reference %d)",
              t->name, m, k, n, style, act, with_bias, with_res, (int)xz, bad, m * n, first,
              first >= 0 ? y[first] : 0, first >= 0 ? want[first] : 0);
    int guard_ok = 1;
    for (int i = 0; i < GUARD; i++) guard_ok &= y[(size_t)m * n + i] == SENT;
    CHECK_MSG(guard_ok, "%s gemm m=%d k=%d n=%d wrote past y", t->name, m, k, n);
    free(y);
    free(packed);
  }
  gemm_cases++;
  free(want);
  free(rp);
  epi_free(&p);
  free(x.raw);
  free(w.raw);
  free(res.raw);
}

static void test_gemm_shapes(void) {
  static const int MS[] = {1, 2, 5, 6, 7, 12, 13};
  static const int KS[] = {1, 2, 3, 4, 5, 15, 16, 17, 31, 33, 64, 96};
  static const int NS[] = {1, 7, 8, 9, 15, 16, 17, 24, 33, 67};
  for (size_t ki = 0; ki < sizeof KS / sizeof KS[0]; ki++)
    for (size_t ni = 0; ni < sizeof NS / sizeof NS[0]; ni++) {
      const int m = MS[rng_u32() % (sizeof MS / sizeof MS[0])];
      gemm_case(m, KS[ki], NS[ni], 0, ACTS[rng_u32() % 4], (int)(rng_u32() % 2),
                (int)(rng_u32() % 2), 0);
    }
  for (size_t mi = 0; mi < sizeof MS / sizeof MS[0]; mi++) gemm_case(MS[mi], 9, 19, 0, 0, 1, 1, 0);
}

static void test_gemm_epilogues(void) {
  for (int a = 0; a < 4; a++)
    for (int style = 0; style < 3; style++)
      for (int bias = 0; bias < 2; bias++)
        for (int res = 0; res < 2; res++) gemm_case(13, 37, 41, style, ACTS[a], bias, res, 0);
  /* extreme weights and zero points with saturating scales */
  for (int i = 0; i < 6; i++) gemm_case(7, 67, 24, 1, ACTS[i % 4], i % 2, i / 3, 1);
}

static void test_gemm_long_k(void) {
  /* across the 512-k (1024-k with AVX512-VNNI) conversion chunk of the x86 kernels, and
   * the MBV2-9 sizes; 6 x 136 and 13 x 200: more than one 64-channel AVX-512 tile */
  static const int KS[] = {511, 512, 513, 1023, 1024, 1025, 1100, 2100, 384, 192};
  for (size_t i = 0; i < sizeof KS / sizeof KS[0]; i++) {
    gemm_case(7, KS[i], 33, 0, MPNAS__ACT_RELU6, 1, 1, 0);
    gemm_case(6, KS[i], 96, 1, MPNAS__ACT_NONE, 1, 0, 1);
  }
  gemm_case(50, 96, 24, 0, MPNAS__ACT_NONE, 1, 1, 0);
  gemm_case(6, 160, 136, 1, MPNAS__ACT_HSWISH, 1, 1, 0);
  gemm_case(13, 1030, 200, 0, MPNAS__ACT_RELU6, 1, 0, 1);
  printf("    (%ld GEMM cases per table)\n", gemm_cases);
}

/* ---- Depthwise ---------------------------------------------------------------------- */

static long dw_cases;

static void dw_case(int h, int w, int c, int k, int stride, int oh0, int oh1, int style,
                    int act, int with_bias, int extreme_w) {
  mpnas__dw_shape s;
  mpnas__dw_shape_init(&s, h, w, c, k, stride);
  if (oh1 > s.ho) oh1 = s.ho;
  if (oh0 > oh1) oh0 = oh1;
  bbuf x = b_random((size_t)h * w * c, -128, 127);
  bbuf wt = b_random((size_t)k * k * c, -127, 127);
  if (extreme_w)
    for (size_t i = 0; i < (size_t)k * k * c; i++) wt.p[i] = (rng_u32() % 2) ? 127 : -128;
  const int32_t xz = pick_zero();
  epi p = epi_make(c, 128.0 * 70.0 * k, style, act, with_bias, NULL);
  const size_t ny = (size_t)s.ho * s.wo * c;
  int8_t *want = malloc(ny + GUARD);
  memset(want, SENT, ny + GUARD);
  mpnas__q8_dwconv_fwd__ref(&s, x.p, xz, wt.p, &p.e, want, oh0, oh1);
  for (int ti = 0; ti < n_tables; ti++) {
    const mpnas__kernels *t = tables[ti];
    int8_t *y = malloc(ny + GUARD);
    memset(y, SENT, ny + GUARD);
    t->q8_dw_fwd(&s, x.p, xz, wt.p, &p.e, y, oh0, oh1);
    int bad = 0, first = -1;
    for (size_t i = 0; i < ny + GUARD; i++)
      if (y[i] != want[i]) {
        if (first < 0) first = (int)i;
        bad++;
      }
    CHECK_MSG(bad == 0,
              "%s dw h=%d w=%d c=%d k=%d s=%d rows %d-%d style=%d act=%d bias=%d xz=%d: %d "
              "bytes differ (first at %d: %d, reference %d)",
              t->name, h, w, c, k, stride, oh0, oh1, style, act, with_bias, (int)xz, bad,
              first, first >= 0 ? y[first] : 0, first >= 0 ? want[first] : 0);
    free(y);
  }
  dw_cases++;
  free(want);
  epi_free(&p);
  free(x.raw);
  free(wt.raw);
}

static void test_dw_shapes(void) {
  static const int CS[] = {1, 7, 8, 9, 15, 16, 17, 33, 67};
  static const int HW[][2] = {{1, 1}, {2, 2}, {3, 5}, {5, 3}, {4, 7}, {8, 8}, {9, 17}, {6, 37}};
  static const int KK[] = {1, 3, 5, 7, 9};
  for (size_t ki = 0; ki < sizeof KK / sizeof KK[0]; ki++)
    for (int st = 1; st <= 2; st++)
      for (size_t hi = 0; hi < sizeof HW / sizeof HW[0]; hi++) {
        const int c = CS[rng_u32() % (sizeof CS / sizeof CS[0])];
        dw_case(HW[hi][0], HW[hi][1], c, KK[ki], st, 0, 1 << 20, 0, ACTS[rng_u32() % 4],
                (int)(rng_u32() % 2), 0);
      }
  for (size_t ci = 0; ci < sizeof CS / sizeof CS[0]; ci++)
    for (int st = 1; st <= 2; st++) dw_case(7, 11, CS[ci], 3, st, 0, 1 << 20, 0, 0, 1, 0);
}

static void test_dw_rows(void) {
  /* partial row ranges (the op layer's thread split), empty ranges too */
  for (int st = 1; st <= 2; st++)
    for (int k = 3; k <= 7; k += 2) {
      dw_case(13, 19, 24, k, st, 2, 5, 0, MPNAS__ACT_RELU6, 1, 0);
      dw_case(13, 19, 17, k, st, 0, 1, 0, MPNAS__ACT_NONE, 0, 0);
      dw_case(13, 19, 17, k, st, 6, 7, 0, MPNAS__ACT_HSWISH, 1, 0);
      dw_case(13, 19, 17, k, st, 3, 3, 0, MPNAS__ACT_RELU, 1, 0);
    }
  /* rows wider than the VNNI kernel's column chunks (46 outputs at K = 3, 24-26 at 5,
   * 16-18 at 7), with chunk edges falling anywhere in a window, from a row range that
   * starts inside the image */
  for (int st = 1; st <= 2; st++)
    for (int k = 3; k <= 7; k += 2) {
      dw_case(9, 47, 40, k, st, 1, 6, 0, MPNAS__ACT_RELU6, 1, 0);
      dw_case(7, 93, 33, k, st, 0, 1 << 20, 0, MPNAS__ACT_NONE, 1, 0);
      dw_case(6, 100, 16, k, st, 2, 4, 0, MPNAS__ACT_HSWISH, 0, 0);
    }
}

static void test_dw_epilogues(void) {
  for (int a = 0; a < 4; a++)
    for (int style = 0; style < 3; style++)
      for (int bias = 0; bias < 2; bias++) {
        const int k = 3 + 2 * (int)(rng_u32() % 3), st = 1 + (int)(rng_u32() % 2);
        dw_case(6, 9, 40, k, st, 0, 1 << 20, style, ACTS[a], bias, 0);
      }
  for (int i = 0; i < 8; i++) dw_case(5, 21, 19, 3 + 2 * (i % 3), 1 + i % 2, 0, 1 << 20, 1, ACTS[i % 4], i % 2, 1);
}

static void test_dw_mbv2(void) {
  /* the benchmark network's layer shapes (one image, a few rows) */
  dw_case(36, 36, 96, 3, 1, 0, 5, 0, MPNAS__ACT_RELU6, 1, 0);
  dw_case(36, 36, 144, 3, 2, 10, 14, 0, MPNAS__ACT_RELU6, 1, 0);
  dw_case(18, 18, 192, 5, 1, 0, 18, 0, MPNAS__ACT_RELU6, 1, 0);
  dw_case(18, 18, 384, 7, 2, 0, 9, 0, MPNAS__ACT_HSWISH, 1, 0);
  printf("    (%ld depthwise cases per table)\n", dw_cases);
}

/* The contract's fmas are fused, in the reference and in every table: values built so
 * that one rounding and two disagree. acc = A (66, 74, .., 122: A = 2 mod 8) times
 * m = 1 + 2^-20 is A + (A/8 + 1/4) ulps at A's magnitude (ulp 2^-17); with
 * bias = -A + 1/2 - floor(A/8) ulps the fused result is 1/2 + 2^-19, rounded to 1,
 * where rounding the product first leaves exactly 1/2, rounded to 0 (half to even).
 * The residual's fma is checked the same way (acc 0, mult 1, res_scale m, residual A). */
static void test_epilogue_fused(void) {
  enum { M = 3, N = 19, HW = 3 };
  const float m = 1.0f + 0x1p-20f;
  float one[N], bias[N];
  int8_t a[N], w[N], zero_w[N], x[M * N], res[M * N], want[M * N], y[M * N];
  for (int c = 0; c < N; c++) {
    a[c] = (int8_t)(66 + 8 * (c % 8));
    bias[c] = (float)(-a[c]) + 0.5f - (float)(a[c] / 8) * 0x1p-17f;
    one[c] = 1.0f;
    w[c] = a[c];
    zero_w[c] = 0;
  }
  for (int i = 0; i < M * N; i++) {
    x[i] = 1;
    res[i] = a[i % N];
    want[i] = 1;
  }
  float mm[N];
  for (int c = 0; c < N; c++) mm[c] = m;
  mpnas__q8_epilogue e = {mm, bias, MPNAS__ACT_NONE, 1.0f, 0, -128, 127, NULL, 0.0f, 0};
  mpnas__q8_epilogue er = {one, bias, MPNAS__ACT_NONE, 1.0f, 0, -128, 127, res, m, 0};
  mpnas__dw_shape s;
  mpnas__dw_shape_init(&s, HW, HW, N, 1, 1);
  int8_t dx[HW * HW * N], dy[HW * HW * N], dwant[HW * HW * N];
  for (int i = 0; i < HW * HW * N; i++) {
    dx[i] = 1;
    dwant[i] = 1;
  }
  /* the reference itself, then every table */
  void *rp = aligned_alloc(64, (mpnas__q8_gemm_packed_bytes__ref(1, N) + 63) / 64 * 64);
  mpnas__q8_gemm_pack__ref(1, N, w, rp);
  mpnas__q8_gemm__ref(M, 1, N, x, 0, rp, &e, y);
  CHECK(memcmp(y, want, sizeof y) == 0);
  free(rp);
  for (int ti = 0; ti < n_tables; ti++) {
    const mpnas__kernels *t = tables[ti];
    for (int r = 0; r < 2; r++) {
      void *packed = aligned_alloc(64, (t->q8_gemm_packed_bytes(1, N) + 63) / 64 * 64);
      t->q8_gemm_pack(1, N, r ? zero_w : w, packed);
      memset(y, 0, sizeof y);
      t->q8_gemm(M, 1, N, x, 0, packed, r ? &er : &e, y);
      CHECK_MSG(memcmp(y, want, sizeof y) == 0, "%s gemm: a %s fma was not fused", t->name,
                r ? "residual" : "first");
      free(packed);
    }
    memset(dy, 0, sizeof dy);
    t->q8_dw_fwd(&s, dx, 0, w, &e, dy, 0, HW);
    CHECK_MSG(memcmp(dy, dwant, sizeof dy) == 0, "%s dw: the fma was not fused", t->name);
  }
}

static void test_tables(void) {
  CHECK(n_tables >= 1);
  CHECK(mpnas__kernels_named("scalar") == &mpnas__kernels_scalar);
  CHECK(mpnas__kernels_named("no-such-isa") == NULL);
  for (int ti = 0; ti < n_tables; ti++) {
    const mpnas__kernels *t = tables[ti];
    CHECK(t->q8_gemm_packed_bytes && t->q8_gemm_pack && t->q8_gemm && t->q8_dw_fwd);
    CHECK(mpnas__isa_available(t->isa));
    /* forcing an ISA gives one of its variants (their float kernels may differ, as the
     * avx512 GEMM and depthwise do, but test_kernels.c checks they give the same bits) */
    const mpnas__kernels *v = mpnas__kernels_for(t->isa);
    CHECK(v != NULL && v->isa == t->isa);
  }
  const mpnas__kernels *best = mpnas__kernels_for(MPNAS_ISA_AUTO);
  CHECK(best != NULL && mpnas__kernels_named(best->name) == best);
}

int main(void) {
  find_tables();
  RUN(test_tables);
  RUN(test_gemm_shapes);
  RUN(test_gemm_epilogues);
  RUN(test_gemm_long_k);
  RUN(test_dw_shapes);
  RUN(test_dw_rows);
  RUN(test_dw_epilogues);
  RUN(test_dw_mbv2);
  RUN(test_epilogue_fused);
  return check_finish();
}
