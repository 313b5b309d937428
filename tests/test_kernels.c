/* test_kernels.c - every SIMD kernel table against the scalar reference (the oracle).
 *
 * ISA-generic: it tests each table with float kernels of its own that this build and CPU
 * can run (avx2 and avx512 on x86-64, neon on aarch64, by name: mpnas__kernels_named;
 * the +vnni / +dotprod variants share them), and the scalar table against itself so the
 * harness runs everywhere. The avx512 table's GEMM, depthwise, BN and activation kernels
 * must also give exactly the avx2 table's results (test_gemm_avx512_vs_avx2,
 * test_dw_avx512_vs_avx2, test_misc_avx512_vs_avx2). Shapes are chosen to be awkward:
 * channel counts around the vector widths (1, 7, 8, 9, 17, 33, 67), images of 1x1, 2x2, 3x5 and odd sizes smaller than
 * the kernel, K = 1, 3, 5, 7, 9 (9 exercises any generic path), both strides, partial
 * row ranges and partial channel ranges, GEMM with m = 1..13 and n, k off the tiles,
 * every activation, scale / shift / residual both NULL and not.
 *
 * Tolerance. For every output the test also runs the reference on |x| and |w| with no
 * epilogue, which gives S = sum |terms| of that output. A different summation order
 * (vector lanes, split accumulators, FMA) changes a float sum by at most about
 * n * 2^-24 * S in the worst case and far less in practice; we allow
 *     |acc - acc_ref| <= 1e-5 * S                  (about 170 ulp of S)
 * and propagate it through the epilogue:
 *     tol = slope * |scale| * 1e-5 * S + 4e-6 * (|y_ref| + |residual| + |shift|) + 2e-6 (sigmoid only)
 * where slope is the activation's largest derivative (1.5 for hswish, 1 otherwise)
 * and the middle term covers the rounding of the epilogue's own few operations and a
 * vectorised exp (sigmoid) accurate to ~1e-6 relative.
 *
 * Beyond values it checks that kernels write nothing outside their range (rows outside
 * [oh0, oh1) / [ih0, ih1), channels outside [c0, c1), k-rows outside [k0, k1), a guard
 * zone after every output, the pack buffer's end), that weight gradients accumulate, and
 * that weight gradients are bit-identical whether computed in one call or split into
 * ranges (the op layer relies on that for thread-count independence). Inputs are
 * allocated to their exact size at a misaligned address so sanitizers catch over-reads.
 */
#include <stdint.h>

#include "check.h"
#include "kernels/kernels.h"
#include "mpnas.h"

/* ---- Test data --------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rng_u32(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}
static float rng_uniform(float lo, float hi) {
  return lo + (hi - lo) * (float)((double)rng_u32() / 4294967296.0);
}
static int rng_int(int lo, int hi) { /* [lo, hi] */
  return lo + (int)(rng_u32() % (uint32_t)(hi - lo + 1));
}

#define GUARD 19              /* floats after each output checked to stay untouched */
#define SENTINEL (-12345.25f) /* value kernels never produce from our data */

/* An input buffer: exactly n floats at a misaligned address, so an aligned vector load
 * would fault and a read past the end is a heap overflow (seen by sanitizers). */
typedef struct {
  void *raw;
  float *p;
} tbuf;

static tbuf in_alloc(size_t n) {
  tbuf b;
  /* malloc's result is 16-byte aligned, so one float in is never 32-byte aligned, and
   * the block ends exactly where the allocation does */
  b.raw = malloc(sizeof(float) * (n + 1));
  b.p = (float *)b.raw + 1;
  return b;
}
static tbuf in_random(size_t n, float lo, float hi) {
  tbuf b = in_alloc(n);
  for (size_t i = 0; i < n; i++) b.p[i] = rng_uniform(lo, hi);
  return b;
}
static tbuf in_abs(const float *x, size_t n) {
  tbuf b = in_alloc(n);
  for (size_t i = 0; i < n; i++) b.p[i] = fabsf(x[i]);
  return b;
}
/* An output buffer: n floats plus GUARD sentinels after, misaligned by one float. */
static tbuf out_alloc(size_t n) {
  tbuf b;
  b.raw = malloc(sizeof(float) * (n + GUARD + 16) + 64);
  uintptr_t a = ((uintptr_t)b.raw + 31) & ~(uintptr_t)31;
  b.p = (float *)a + 1;
  for (size_t i = 0; i < n + GUARD; i++) b.p[i] = SENTINEL;
  return b;
}
static int guard_ok(const tbuf *b, size_t n) {
  for (size_t i = n; i < n + GUARD; i++)
    if (b->p[i] != SENTINEL) return 0;
  return 1;
}
static void tfree(tbuf *b) {
  free(b->raw);
  b->raw = NULL;
  b->p = NULL;
}

/* ---- Tolerances -------------------------------------------------------------------- */

static double act_slope(int act) { return act == MPNAS__ACT_HSWISH ? 1.5 : 1.0; }

/* Bound on |y - y_ref| for one output (see the comment at the top). */
static double tol_out(double sumabs, double scale, double shift, double yref, double res,
                      int act) {
  double t = act_slope(act) * fabs(scale) * 1e-5 * sumabs;
  t += 4e-6 * (fabs(yref) + fabs(res) + fabs(shift));
  if (act == MPNAS__ACT_SIGMOID) t += 2e-6;
  return t;
}

static const char *act_name(int act) {
  static const char *names[] = {"none", "relu", "relu6", "hswish", "sigmoid", "hsigmoid"};
  return act >= 0 && act < MPNAS__ACT_COUNT ? names[act] : "?";
}

/* ---- The tables under test --------------------------------------------------------- */

static const mpnas__kernels *tables[4];
static int n_tables;
static const mpnas__kernels *const oracle = &mpnas__kernels_scalar;

static void find_tables(void) {
  static const char *names[] = {"scalar", "avx2", "avx512", "neon"};
  printf("# tables tested against the scalar reference:");
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const mpnas__kernels *t = mpnas__kernels_named(names[i]);
    if (t == NULL) continue;
    tables[n_tables++] = t;
    printf(" %s", t->name);
  }
  printf("\n");
  if (n_tables == 1) printf("# (only scalar here: no SIMD table in this build or CPU)\n");
  fflush(stdout);
}

/* ---- Depthwise forward ------------------------------------------------------------- */

static const int CHANNELS[] = {1, 7, 8, 9, 17, 33, 67};
/* 4 and 8: rows narrower than the widest tiles, in tiles of 4 and 8 (dwconv-x86.h). */
static const int SIZES[][2] = {{1, 1}, {2, 2}, {3, 5},  {5, 3}, {7, 7},
                               {9, 11}, {13, 6}, {4, 4}, {8, 8}};
static const int KS[] = {1, 3, 5, 7, 9};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Run one dw forward case on table t over output rows [oh0, oh1) and compare. */
static int dw_fwd_case(const mpnas__kernels *t, int h, int w, int c, int k, int stride,
                       int act, int use_scale, int use_shift, int oh0, int oh1) {
  mpnas__dw_shape s;
  mpnas__dw_shape_init(&s, h, w, c, k, stride);
  size_t nx = (size_t)h * w * c, nw = (size_t)k * k * c, ny = (size_t)s.ho * s.wo * c;
  tbuf x = in_random(nx, -1.0f, 1.0f), wt = in_random(nw, -1.0f, 1.0f);
  tbuf sc = in_random((size_t)c, -3.0f, 3.0f), sh = in_random((size_t)c, -4.0f, 4.0f);
  tbuf xa = in_abs(x.p, nx), wa = in_abs(wt.p, nw);
  tbuf y = out_alloc(ny), yr = out_alloc(ny), ya = out_alloc(ny);
  const float *scale = use_scale ? sc.p : NULL, *shift = use_shift ? sh.p : NULL;

  oracle->dw_fwd(&s, x.p, wt.p, scale, shift, act, yr.p, oh0, oh1);
  oracle->dw_fwd(&s, xa.p, wa.p, NULL, NULL, MPNAS__ACT_NONE, ya.p, oh0, oh1);
  t->dw_fwd(&s, x.p, wt.p, scale, shift, act, y.p, oh0, oh1);

  int bad = 0;
  size_t row0 = (size_t)oh0 * s.wo * c, row1 = (size_t)oh1 * s.wo * c;
  for (size_t i = 0; i < ny && bad < 3; i++) {
    int ch = (int)(i % (size_t)c);
    if (i < row0 || i >= row1) {
      if (y.p[i] != SENTINEL) {
        CHECK_MSG(0, "%s dw_fwd h=%d w=%d c=%d k=%d s=%d rows [%d,%d): wrote outside at %zu",
                  t->name, h, w, c, k, stride, oh0, oh1, i);
        bad++;
      }
      continue;
    }
    double tol = tol_out(ya.p[i], scale ? scale[ch] : 1.0, shift ? shift[ch] : 0.0, yr.p[i],
                         0.0, act);
    if (!(fabs((double)y.p[i] - (double)yr.p[i]) <= tol)) {
      CHECK_MSG(0,
                "%s dw_fwd h=%d w=%d c=%d k=%d s=%d act=%s scale=%d shift=%d rows [%d,%d) "
                "at %zu: %.9g vs ref %.9g (tol %.3g)",
                t->name, h, w, c, k, stride, act_name(act), use_scale, use_shift, oh0, oh1, i,
                (double)y.p[i], (double)yr.p[i], tol);
      bad++;
    }
  }
  if (!guard_ok(&y, ny)) {
    CHECK_MSG(0, "%s dw_fwd h=%d w=%d c=%d k=%d s=%d: wrote past the end", t->name, h, w, c,
              k, stride);
    bad++;
  }
  tfree(&x), tfree(&wt), tfree(&sc), tfree(&sh), tfree(&xa), tfree(&wa);
  tfree(&y), tfree(&yr), tfree(&ya);
  return bad;
}

static void test_dw_fwd_shapes(void) {
  int cases = 0;
  for (int ti = 0; ti < n_tables; ti++)
    for (int ci = 0; ci < COUNT(CHANNELS); ci++)
      for (int si = 0; si < COUNT(SIZES); si++)
        for (int ki = 0; ki < COUNT(KS); ki++)
          for (int stride = 1; stride <= 2; stride++) {
            int h = SIZES[si][0], w = SIZES[si][1], ho = (h + stride - 1) / stride;
            int v = cases++;
            int act = v % MPNAS__ACT_COUNT;
            /* all rows, then a partial range inside */
            dw_fwd_case(tables[ti], h, w, CHANNELS[ci], KS[ki], stride, act, v & 1,
                        (v >> 1) & 1, 0, ho);
            if (ho > 1) {
              int a = rng_int(0, ho - 1), b = rng_int(a + 1, ho);
              dw_fwd_case(tables[ti], h, w, CHANNELS[ci], KS[ki], stride, (act + 3) % 6,
                          (v >> 2) & 1, (v >> 3) & 1, a, b);
            }
          }
}

/* Every activation with every scale/shift combination, on a few shapes. */
static void test_dw_fwd_epilogues(void) {
  static const int shapes[][5] = {/* h w c k stride */
                                  {7, 7, 67, 7, 1}, {9, 11, 17, 3, 2}, {6, 5, 9, 5, 1},
                                  {13, 6, 33, 3, 1}, {5, 8, 8, 7, 2}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int si = 0; si < COUNT(shapes); si++)
      for (int act = 0; act < MPNAS__ACT_COUNT; act++)
        for (int ss = 0; ss < 4; ss++) {
          const int *p = shapes[si];
          int ho = (p[0] + p[4] - 1) / p[4];
          dw_fwd_case(tables[ti], p[0], p[1], p[2], p[3], p[4], act, ss & 1, ss >> 1, 0, ho);
        }
}

/* Forward on larger images (interior paths with many pixels; rows at the edges alone). */
static void test_dw_fwd_large(void) {
  static const int shapes[][5] = {{36, 36, 24, 3, 1}, {36, 35, 19, 3, 2}, {18, 18, 40, 5, 1},
                                  {18, 17, 48, 7, 1}, {19, 18, 41, 7, 2}, {20, 23, 13, 5, 2},
                                  {16, 16, 16, 11, 1}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int si = 0; si < COUNT(shapes); si++) {
      const int *p = shapes[si];
      int ho = (p[0] + p[4] - 1) / p[4];
      dw_fwd_case(tables[ti], p[0], p[1], p[2], p[3], p[4], si % 6, 1, 1, 0, ho);
      dw_fwd_case(tables[ti], p[0], p[1], p[2], p[3], p[4], MPNAS__ACT_RELU6, 1, 0, 0, 1);
      dw_fwd_case(tables[ti], p[0], p[1], p[2], p[3], p[4], MPNAS__ACT_NONE, 0, 1, ho - 1, ho);
      dw_fwd_case(tables[ti], p[0], p[1], p[2], p[3], p[4], MPNAS__ACT_HSWISH, 1, 1, 1, ho / 2 + 1);
    }
}

/* ---- Depthwise input gradient ------------------------------------------------------ */

static void dw_bwd_input_case(const mpnas__kernels *t, int h, int w, int c, int k, int stride,
                              int ih0, int ih1) {
  mpnas__dw_shape s;
  mpnas__dw_shape_init(&s, h, w, c, k, stride);
  size_t nx = (size_t)h * w * c, nw = (size_t)k * k * c, ny = (size_t)s.ho * s.wo * c;
  tbuf dy = in_random(ny, -1.0f, 1.0f), wt = in_random(nw, -1.0f, 1.0f);
  tbuf dya = in_abs(dy.p, ny), wa = in_abs(wt.p, nw);
  tbuf dx = out_alloc(nx), dxr = out_alloc(nx), dxa = out_alloc(nx);
  oracle->dw_bwd_input(&s, dy.p, wt.p, dxr.p, ih0, ih1);
  oracle->dw_bwd_input(&s, dya.p, wa.p, dxa.p, ih0, ih1);
  t->dw_bwd_input(&s, dy.p, wt.p, dx.p, ih0, ih1);
  int bad = 0;
  size_t r0 = (size_t)ih0 * w * c, r1 = (size_t)ih1 * w * c;
  for (size_t i = 0; i < nx && bad < 3; i++) {
    if (i < r0 || i >= r1) {
      if (dx.p[i] != SENTINEL) {
        CHECK_MSG(0, "%s dw_bwd_input h=%d w=%d c=%d k=%d s=%d rows [%d,%d): wrote outside at %zu",
                  t->name, h, w, c, k, stride, ih0, ih1, i);
        bad++;
      }
      continue;
    }
    double tol = tol_out(dxa.p[i], 1.0, 0.0, dxr.p[i], 0.0, MPNAS__ACT_NONE);
    if (!(fabs((double)dx.p[i] - (double)dxr.p[i]) <= tol)) {
      CHECK_MSG(0, "%s dw_bwd_input h=%d w=%d c=%d k=%d s=%d rows [%d,%d) at %zu: %.9g vs ref %.9g (tol %.3g)",
                t->name, h, w, c, k, stride, ih0, ih1, i, (double)dx.p[i], (double)dxr.p[i], tol);
      bad++;
    }
  }
  if (!guard_ok(&dx, nx)) {
    CHECK_MSG(0, "%s dw_bwd_input h=%d w=%d c=%d k=%d s=%d: wrote past the end", t->name, h, w,
              c, k, stride);
  }
  tfree(&dy), tfree(&wt), tfree(&dya), tfree(&wa), tfree(&dx), tfree(&dxr), tfree(&dxa);
}

static void test_dw_bwd_input(void) {
  for (int ti = 0; ti < n_tables; ti++)
    for (int ci = 0; ci < COUNT(CHANNELS); ci++)
      for (int si = 0; si < COUNT(SIZES); si++)
        for (int ki = 0; ki < COUNT(KS); ki++)
          for (int stride = 1; stride <= 2; stride++) {
            int h = SIZES[si][0], w = SIZES[si][1];
            dw_bwd_input_case(tables[ti], h, w, CHANNELS[ci], KS[ki], stride, 0, h);
            if (h > 1) {
              int a = rng_int(0, h - 1), b = rng_int(a + 1, h);
              dw_bwd_input_case(tables[ti], h, w, CHANNELS[ci], KS[ki], stride, a, b);
            }
          }
  static const int large[][5] = {{36, 36, 24, 3, 1}, {36, 35, 19, 3, 2}, {18, 18, 40, 5, 1},
                                 {18, 17, 48, 7, 1}, {19, 18, 41, 7, 2}, {20, 23, 13, 5, 2}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int si = 0; si < COUNT(large); si++) {
      const int *p = large[si];
      dw_bwd_input_case(tables[ti], p[0], p[1], p[2], p[3], p[4], 0, p[0]);
      dw_bwd_input_case(tables[ti], p[0], p[1], p[2], p[3], p[4], 0, 1);
      dw_bwd_input_case(tables[ti], p[0], p[1], p[2], p[3], p[4], p[0] - 1, p[0]);
      dw_bwd_input_case(tables[ti], p[0], p[1], p[2], p[3], p[4], 3, p[0] / 2 + 2);
    }
}

/* ---- Depthwise weight gradient ----------------------------------------------------- */

static void dw_bwd_weight_case(const mpnas__kernels *t, int n, int h, int w, int c, int k,
                               int stride, int c0, int c1) {
  mpnas__dw_shape s;
  mpnas__dw_shape_init(&s, h, w, c, k, stride);
  size_t nx = (size_t)n * h * w * c, nw = (size_t)k * k * c, ny = (size_t)n * s.ho * s.wo * c;
  tbuf x = in_random(nx, -1.0f, 1.0f), dy = in_random(ny, -1.0f, 1.0f);
  tbuf xa = in_abs(x.p, nx), dya = in_abs(dy.p, ny);
  tbuf init = in_random(nw, -1.0f, 1.0f);
  tbuf dw = out_alloc(nw), dwr = out_alloc(nw), dwa = out_alloc(nw), dws = out_alloc(nw);
  for (size_t i = 0; i < nw; i++) {
    dw.p[i] = dwr.p[i] = dws.p[i] = init.p[i]; /* weight gradients accumulate */
    dwa.p[i] = 0.0f;
  }
  oracle->dw_bwd_weight(&s, n, x.p, dy.p, dwr.p, c0, c1);
  oracle->dw_bwd_weight(&s, n, xa.p, dya.p, dwa.p, c0, c1);
  t->dw_bwd_weight(&s, n, x.p, dy.p, dw.p, c0, c1);
  /* the same range in two calls split at a random channel: must be bit-identical */
  int cm = rng_int(c0, c1);
  t->dw_bwd_weight(&s, n, x.p, dy.p, dws.p, c0, cm);
  t->dw_bwd_weight(&s, n, x.p, dy.p, dws.p, cm, c1);
  int bad = 0;
  for (size_t i = 0; i < nw && bad < 3; i++) {
    int ch = (int)(i % (size_t)c);
    if (ch < c0 || ch >= c1) {
      if (dw.p[i] != init.p[i]) {
        CHECK_MSG(0, "%s dw_bwd_weight n=%d h=%d w=%d c=%d k=%d s=%d ch [%d,%d): wrote channel %d",
                  t->name, n, h, w, c, k, stride, c0, c1, ch);
        bad++;
      }
      continue;
    }
    double tol = tol_out(dwa.p[i], 1.0, 0.0, dwr.p[i], init.p[i], MPNAS__ACT_NONE);
    if (!(fabs((double)dw.p[i] - (double)dwr.p[i]) <= tol)) {
      CHECK_MSG(0, "%s dw_bwd_weight n=%d h=%d w=%d c=%d k=%d s=%d ch [%d,%d) at %zu: %.9g vs ref %.9g (tol %.3g)",
                t->name, n, h, w, c, k, stride, c0, c1, i, (double)dw.p[i], (double)dwr.p[i], tol);
      bad++;
    }
    if (dws.p[i] != dw.p[i]) {
      CHECK_MSG(0, "%s dw_bwd_weight n=%d h=%d w=%d c=%d k=%d s=%d: split at channel %d not bit-identical at %zu",
                t->name, n, h, w, c, k, stride, cm, i);
      bad++;
    }
  }
  if (!guard_ok(&dw, nw)) {
    CHECK_MSG(0, "%s dw_bwd_weight c=%d k=%d: wrote past the end", t->name, c, k);
  }
  tfree(&x), tfree(&dy), tfree(&xa), tfree(&dya), tfree(&init);
  tfree(&dw), tfree(&dwr), tfree(&dwa), tfree(&dws);
}

static void test_dw_bwd_weight(void) {
  int v = 0;
  for (int ti = 0; ti < n_tables; ti++)
    for (int ci = 0; ci < COUNT(CHANNELS); ci++)
      for (int si = 0; si < COUNT(SIZES); si++)
        for (int ki = 0; ki < COUNT(KS); ki++)
          for (int stride = 1; stride <= 2; stride++) {
            int c = CHANNELS[ci], n = 1 + (v++ % 3);
            dw_bwd_weight_case(tables[ti], n, SIZES[si][0], SIZES[si][1], c, KS[ki], stride, 0, c);
            if (c > 1) {
              int a = rng_int(0, c - 1), b = rng_int(a + 1, c);
              dw_bwd_weight_case(tables[ti], n, SIZES[si][0], SIZES[si][1], c, KS[ki], stride, a, b);
            }
          }
  static const int large[][6] = {/* n h w c k s */
                                 {2, 36, 36, 24, 3, 1}, {1, 36, 35, 19, 3, 2},
                                 {2, 18, 18, 40, 5, 1}, {1, 18, 17, 48, 7, 1},
                                 {2, 19, 18, 41, 7, 2}, {3, 20, 23, 13, 5, 2}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int si = 0; si < COUNT(large); si++) {
      const int *p = large[si];
      dw_bwd_weight_case(tables[ti], p[0], p[1], p[2], p[3], p[4], p[5], 0, p[3]);
      dw_bwd_weight_case(tables[ti], p[0], p[1], p[2], p[3], p[4], p[5], 3, p[3] - 2);
      if (p[3] > 9) dw_bwd_weight_case(tables[ti], p[0], p[1], p[2], p[3], p[4], p[5], 8, p[3] < 16 ? p[3] : 16);
    }
}

/* ---- GEMM (pointwise) -------------------------------------------------------------- */

/* Pack with table t, checking it stays inside gemm_packed_floats(k, n). */
static tbuf pack_for(const mpnas__kernels *t, int k, int n, const float *w) {
  size_t np = t->gemm_packed_floats(k, n);
  tbuf p = out_alloc(np);
  t->gemm_pack(k, n, w, p.p);
  CHECK_MSG(guard_ok(&p, np), "%s gemm_pack k=%d n=%d wrote past gemm_packed_floats", t->name,
            k, n);
  return p;
}

static int gemm_case(const mpnas__kernels *t, int m, int k, int n, int act, int use_scale,
                     int use_shift, int use_res) {
  size_t nx = (size_t)m * k, nw = (size_t)k * n, ny = (size_t)m * n;
  tbuf x = in_random(nx, -1.0f, 1.0f), w = in_random(nw, -1.0f, 1.0f);
  tbuf sc = in_random((size_t)n, -3.0f, 3.0f), sh = in_random((size_t)n, -4.0f, 4.0f);
  tbuf res = in_random(ny, -2.0f, 2.0f);
  tbuf xa = in_abs(x.p, nx), wa = in_abs(w.p, nw);
  tbuf y = out_alloc(ny), yr = out_alloc(ny), ya = out_alloc(ny);
  const float *scale = use_scale ? sc.p : NULL, *shift = use_shift ? sh.p : NULL;
  const float *residual = use_res ? res.p : NULL;

  tbuf pr = pack_for(oracle, k, n, w.p), pa = pack_for(oracle, k, n, wa.p);
  tbuf pt = pack_for(t, k, n, w.p);
  oracle->gemm(m, k, n, x.p, pr.p, scale, shift, act, residual, yr.p);
  oracle->gemm(m, k, n, xa.p, pa.p, NULL, NULL, MPNAS__ACT_NONE, NULL, ya.p);
  t->gemm(m, k, n, x.p, pt.p, scale, shift, act, residual, y.p);

  int bad = 0;
  for (size_t i = 0; i < ny && bad < 3; i++) {
    int j = (int)(i % (size_t)n);
    double tol = tol_out(ya.p[i], scale ? scale[j] : 1.0, shift ? shift[j] : 0.0, yr.p[i],
                         residual ? residual[i] : 0.0, act);
    if (!(fabs((double)y.p[i] - (double)yr.p[i]) <= tol)) {
      CHECK_MSG(0, "%s gemm m=%d k=%d n=%d act=%s scale=%d shift=%d res=%d at [%zu][%d]: %.9g vs ref %.9g (tol %.3g)",
                t->name, m, k, n, act_name(act), use_scale, use_shift, use_res, i / (size_t)n, j,
                (double)y.p[i], (double)yr.p[i], tol);
      bad++;
    }
  }
  if (!guard_ok(&y, ny)) {
    CHECK_MSG(0, "%s gemm m=%d k=%d n=%d: wrote past the end", t->name, m, k, n);
    bad++;
  }
  tfree(&x), tfree(&w), tfree(&sc), tfree(&sh), tfree(&res), tfree(&xa), tfree(&wa);
  tfree(&y), tfree(&yr), tfree(&ya), tfree(&pr), tfree(&pa), tfree(&pt);
  return bad;
}

static void test_gemm_small(void) {
  static const int ns[] = {1, 2, 7, 8, 9, 15, 16, 17, 23, 24, 33, 47, 67, 101};
  static const int ks[] = {1, 2, 3, 7, 8, 16, 17, 33, 67};
  int v = 0;
  for (int ti = 0; ti < n_tables; ti++)
    for (int m = 1; m <= 13; m++)
      for (int ni = 0; ni < COUNT(ns); ni++)
        for (int ki = 0; ki < COUNT(ks); ki++, v++)
          gemm_case(tables[ti], m, ks[ki], ns[ni], v % MPNAS__ACT_COUNT, (v >> 1) & 1,
                    (v >> 2) & 1, (v / 7) & 1);
}

static void test_gemm_epilogues(void) {
  static const int shapes[][3] = {{13, 17, 33}, {6, 64, 16}, {7, 9, 67}, {1, 3, 5}, {12, 33, 24}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int si = 0; si < COUNT(shapes); si++)
      for (int act = 0; act < MPNAS__ACT_COUNT; act++)
        for (int e = 0; e < 8; e++)
          gemm_case(tables[ti], shapes[si][0], shapes[si][1], shapes[si][2], act, e & 1,
                    (e >> 1) & 1, (e >> 2) & 1);
}

/* Sizes past typical cache blocks (k > 256, n > 256, m > a few hundred). */
static void test_gemm_large(void) {
  static const int shapes[][3] = {{100, 67, 200}, {37, 515, 61},  {64, 384, 96},
                                  {300, 16, 96},  {19, 96, 389},  {129, 1030, 9},
                                  {50, 192, 64},  {333, 32, 192}, {7, 700, 300}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int si = 0; si < COUNT(shapes); si++)
      gemm_case(tables[ti], shapes[si][0], shapes[si][1], shapes[si][2], si % MPNAS__ACT_COUNT,
                si & 1, (si >> 1) & 1, (si >> 2) & 1);
}

/* ---- GEMM weight gradient ---------------------------------------------------------- */

static void gemm_bwd_weight_case(const mpnas__kernels *t, int m, int k, int n, int k0, int k1) {
  size_t nx = (size_t)m * k, ndy = (size_t)m * n, nw = (size_t)k * n;
  tbuf x = in_random(nx, -1.0f, 1.0f), dy = in_random(ndy, -1.0f, 1.0f);
  tbuf xa = in_abs(x.p, nx), dya = in_abs(dy.p, ndy), init = in_random(nw, -1.0f, 1.0f);
  tbuf dw = out_alloc(nw), dwr = out_alloc(nw), dwa = out_alloc(nw), dws = out_alloc(nw);
  for (size_t i = 0; i < nw; i++) {
    dw.p[i] = dwr.p[i] = dws.p[i] = init.p[i];
    dwa.p[i] = 0.0f;
  }
  oracle->gemm_bwd_weight(m, k, n, x.p, dy.p, dwr.p, k0, k1);
  oracle->gemm_bwd_weight(m, k, n, xa.p, dya.p, dwa.p, k0, k1);
  t->gemm_bwd_weight(m, k, n, x.p, dy.p, dw.p, k0, k1);
  int km = rng_int(k0, k1);
  t->gemm_bwd_weight(m, k, n, x.p, dy.p, dws.p, k0, km);
  t->gemm_bwd_weight(m, k, n, x.p, dy.p, dws.p, km, k1);
  int bad = 0;
  for (size_t i = 0; i < nw && bad < 3; i++) {
    int p = (int)(i / (size_t)n);
    if (p < k0 || p >= k1) {
      if (dw.p[i] != init.p[i]) {
        CHECK_MSG(0, "%s gemm_bwd_weight m=%d k=%d n=%d rows [%d,%d): wrote row %d", t->name,
                  m, k, n, k0, k1, p);
        bad++;
      }
      continue;
    }
    double tol = tol_out(dwa.p[i], 1.0, 0.0, dwr.p[i], init.p[i], MPNAS__ACT_NONE);
    if (!(fabs((double)dw.p[i] - (double)dwr.p[i]) <= tol)) {
      CHECK_MSG(0, "%s gemm_bwd_weight m=%d k=%d n=%d rows [%d,%d) at [%d][%zu]: %.9g vs ref %.9g (tol %.3g)",
                t->name, m, k, n, k0, k1, p, i % (size_t)n, (double)dw.p[i], (double)dwr.p[i], tol);
      bad++;
    }
    if (dws.p[i] != dw.p[i]) {
      CHECK_MSG(0, "%s gemm_bwd_weight m=%d k=%d n=%d: split at row %d not bit-identical at %zu",
                t->name, m, k, n, km, i);
      bad++;
    }
  }
  if (!guard_ok(&dw, nw)) {
    CHECK_MSG(0, "%s gemm_bwd_weight m=%d k=%d n=%d: wrote past the end", t->name, m, k, n);
  }
  tfree(&x), tfree(&dy), tfree(&xa), tfree(&dya), tfree(&init);
  tfree(&dw), tfree(&dwr), tfree(&dwa), tfree(&dws);
}

static void test_gemm_bwd_weight(void) {
  static const int ms[] = {1, 2, 3, 5, 13, 64, 101};
  static const int ks[] = {1, 2, 7, 9, 17, 67};
  static const int ns[] = {1, 7, 8, 9, 17, 33, 67};
  for (int ti = 0; ti < n_tables; ti++)
    for (int mi = 0; mi < COUNT(ms); mi++)
      for (int ki = 0; ki < COUNT(ks); ki++)
        for (int ni = 0; ni < COUNT(ns); ni++) {
          int k = ks[ki];
          gemm_bwd_weight_case(tables[ti], ms[mi], k, ns[ni], 0, k);
          if (k > 1) {
            int a = rng_int(0, k - 1), b = rng_int(a + 1, k);
            gemm_bwd_weight_case(tables[ti], ms[mi], k, ns[ni], a, b);
          }
        }
  static const int large[][3] = {{500, 96, 24}, {300, 16, 96}, {130, 192, 64}, {257, 33, 385}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int si = 0; si < COUNT(large); si++) {
      const int *p = large[si];
      gemm_bwd_weight_case(tables[ti], p[0], p[1], p[2], 0, p[1]);
      gemm_bwd_weight_case(tables[ti], p[0], p[1], p[2], 5, p[1] / 2 + 3);
    }
}

/* ---- AVX-512 GEMM against AVX2: bit-identical ------------------------------------ */

/* The avx512 table's GEMM does each output's fma chain in the AVX2 kernel's order, so
 * its results (forward with every epilogue, and the weight gradient) must equal the
 * avx2 table's exactly: trained weights must not depend on which x86 table runs. */
static int gemm_identical_case(const mpnas__kernels *a, const mpnas__kernels *b, int m, int k,
                               int n, int act, int use_scale, int use_shift, int use_res) {
  size_t nx = (size_t)m * k, nw = (size_t)k * n, ny = (size_t)m * n;
  tbuf x = in_random(nx, -1.0f, 1.0f), w = in_random(nw, -1.0f, 1.0f);
  tbuf sc = in_random((size_t)n, -3.0f, 3.0f), sh = in_random((size_t)n, -4.0f, 4.0f);
  tbuf res = in_random(ny, -2.0f, 2.0f), init = in_random(nw, -1.0f, 1.0f);
  tbuf ya = out_alloc(ny), yb = out_alloc(ny), dwa = out_alloc(nw), dwb = out_alloc(nw);
  const float *scale = use_scale ? sc.p : NULL, *shift = use_shift ? sh.p : NULL;
  const float *residual = use_res ? res.p : NULL;
  tbuf pa = pack_for(a, k, n, w.p), pb = pack_for(b, k, n, w.p);
  a->gemm(m, k, n, x.p, pa.p, scale, shift, act, residual, ya.p);
  b->gemm(m, k, n, x.p, pb.p, scale, shift, act, residual, yb.p);
  int bad = 0;
  for (size_t i = 0; i < ny && bad < 3; i++)
    if (memcmp(&ya.p[i], &yb.p[i], sizeof(float)) != 0) {
      CHECK_MSG(0, "%s vs %s gemm m=%d k=%d n=%d act=%s scale=%d shift=%d res=%d at [%zu][%zu]: %.9g vs %.9g",
                b->name, a->name, m, k, n, act_name(act), use_scale, use_shift, use_res,
                i / (size_t)n, i % (size_t)n, (double)yb.p[i], (double)ya.p[i]);
      bad++;
    }
  CHECK_MSG(guard_ok(&yb, ny), "%s gemm m=%d k=%d n=%d: wrote past the end", b->name, m, k, n);
  /* weight gradient of x (m x k) and y as dy (m x n), over all rows and a part */
  int k0 = k > 2 ? 1 : 0, k1 = k > 3 ? k - 1 : k;
  for (int part = 0; part < 2; part++) {
    int r0 = part ? k0 : 0, r1 = part ? k1 : k;
    for (size_t i = 0; i < nw; i++) dwa.p[i] = dwb.p[i] = init.p[i];
    a->gemm_bwd_weight(m, k, n, x.p, ya.p, dwa.p, r0, r1);
    b->gemm_bwd_weight(m, k, n, x.p, ya.p, dwb.p, r0, r1);
    for (size_t i = 0; i < nw && bad < 3; i++)
      if (memcmp(&dwa.p[i], &dwb.p[i], sizeof(float)) != 0) {
        CHECK_MSG(0, "%s vs %s gemm_bwd_weight m=%d k=%d n=%d rows [%d,%d) at [%zu][%zu]: %.9g vs %.9g",
                  b->name, a->name, m, k, n, r0, r1, i / (size_t)n, i % (size_t)n,
                  (double)dwb.p[i], (double)dwa.p[i]);
        bad++;
      }
    CHECK_MSG(guard_ok(&dwb, nw), "%s gemm_bwd_weight m=%d k=%d n=%d: wrote past the end",
              b->name, m, k, n);
  }
  tfree(&x), tfree(&w), tfree(&sc), tfree(&sh), tfree(&res), tfree(&init);
  tfree(&ya), tfree(&yb), tfree(&dwa), tfree(&dwb), tfree(&pa), tfree(&pb);
  return bad;
}

static void test_gemm_avx512_vs_avx2(void) {
  const mpnas__kernels *a = mpnas__kernels_named("avx2"), *b = mpnas__kernels_named("avx512");
  if (a == NULL || b == NULL) {
    printf("# (no avx512 table here: skipped)\n");
    return;
  }
  /* the avx512 tables differ from their avx2 twins in every float kernel (the depthwise,
   * BN and activation ones: test_dw_avx512_vs_avx2, test_misc_avx512_vs_avx2) and, for
   * "avx512+vnni", the int8 kernels (AVX512-VNNI, which a CPU may have without AVX-VNNI:
   * test_q8_kernels.c checks them against the reference) */
  const mpnas__kernels *av = mpnas__kernels_named("avx2+vnni"), *bv = mpnas__kernels_named("avx512+vnni");
  const mpnas__kernels *pairs[2][2] = {{a, b}, {av, bv}};
  for (int i = 0; i < 2; i++) {
    const mpnas__kernels *x = pairs[i][0], *y = pairs[i][1];
    if (x == NULL || y == NULL) continue;
    CHECK(x->isa == y->isa);
    if (i == 0)
      CHECK(x->q8_gemm_packed_bytes == y->q8_gemm_packed_bytes &&
            x->q8_gemm_pack == y->q8_gemm_pack && x->q8_gemm == y->q8_gemm &&
            x->q8_dw_fwd == y->q8_dw_fwd);
    else
      CHECK(x->q8_gemm != y->q8_gemm && x->q8_dw_fwd != y->q8_dw_fwd);
  }
  static const int ns[] = {1, 3, 8, 15, 16, 17, 24, 31, 32, 33, 47, 48, 49, 56, 64, 65, 96, 101};
  static const int ks[] = {0, 1, 2, 7, 16, 33, 191, 192, 193, 400};
  int v = 0;
  for (int m = 1; m <= 30; m += (m < 14 ? 1 : 5))
    for (int ni = 0; ni < COUNT(ns); ni++)
      for (int ki = 0; ki < COUNT(ks); ki++, v++)
        if (ks[ki] > 0 || (v & 3) == 0)
          gemm_identical_case(a, b, m, ks[ki], ns[ni], v % MPNAS__ACT_COUNT, (v >> 1) & 1,
                              (v >> 2) & 1, (v / 7) & 1);
  /* every activation with every epilogue combination */
  static const int shapes[][3] = {{13, 17, 33}, {25, 64, 16}, {7, 9, 67}, {1, 3, 5}, {26, 33, 24},
                                  {9, 20, 56}};
  for (int si = 0; si < COUNT(shapes); si++)
    for (int act = 0; act < MPNAS__ACT_COUNT; act++)
      for (int e = 0; e < 8; e++)
        gemm_identical_case(a, b, shapes[si][0], shapes[si][1], shapes[si][2], act, e & 1,
                            (e >> 1) & 1, (e >> 2) & 1);
  /* past the cache blocks (m > 96, k > 192) and the weight gradient's 64-row blocks */
  static const int large[][3] = {{100, 67, 200}, {37, 515, 61}, {300, 16, 96}, {129, 1030, 9},
                                 {333, 32, 192}, {197, 385, 24}, {500, 96, 24}, {257, 33, 385}};
  for (int si = 0; si < COUNT(large); si++)
    gemm_identical_case(a, b, large[si][0], large[si][1], large[si][2], si % MPNAS__ACT_COUNT,
                        si & 1, (si >> 1) & 1, (si >> 2) & 1);
}

/* ---- AVX-512 depthwise against AVX2: bit-identical -------------------------------- */

/* Lanes are channels, so dwconv-avx512.c does every output's fma chain and epilogue in
 * dwconv-avx2.c's order (dwconv-x86.h): all three passes must match the avx2 table's
 * bit for bit, on the whole buffer (rows and channels outside the range untouched). */
static int buffers_identical(const char *what, const mpnas__kernels *a, const mpnas__kernels *b,
                             const tbuf *ya, const tbuf *yb, size_t n, int h, int w, int c,
                             int k, int stride, int r0, int r1) {
  int bad = 0;
  for (size_t i = 0; i < n + GUARD && bad < 3; i++)
    if (memcmp(&ya->p[i], &yb->p[i], sizeof(float)) != 0) {
      CHECK_MSG(0, "%s vs %s %s h=%d w=%d c=%d k=%d s=%d range [%d,%d) at %zu: %.9g vs %.9g",
                b->name, a->name, what, h, w, c, k, stride, r0, r1, i, (double)yb->p[i],
                (double)ya->p[i]);
      bad++;
    }
  return bad;
}

static int dw_identical_case(const mpnas__kernels *a, const mpnas__kernels *b, int n, int h,
                             int w, int c, int k, int stride, int act, int use_scale,
                             int use_shift, int r0, int r1, int c0, int c1) {
  mpnas__dw_shape s;
  mpnas__dw_shape_init(&s, h, w, c, k, stride);
  const size_t nx = (size_t)n * h * w * c, nw = (size_t)k * k * c;
  const size_t ny = (size_t)n * s.ho * s.wo * c;
  tbuf x = in_random(nx, -2.0f, 2.0f), wt = in_random(nw, -1.0f, 1.0f);
  tbuf dy = in_random(ny, -1.0f, 1.0f), init = in_random(nw, -1.0f, 1.0f);
  tbuf sc = in_random((size_t)c, -3.0f, 3.0f), sh = in_random((size_t)c, -4.0f, 4.0f);
  const float *scale = use_scale ? sc.p : NULL, *shift = use_shift ? sh.p : NULL;
  /* one image for the forward and input gradient (they take rows of one image) */
  const size_t ny1 = (size_t)s.ho * s.wo * c, nx1 = (size_t)h * w * c;
  tbuf ya = out_alloc(ny1), yb = out_alloc(ny1), dxa = out_alloc(nx1), dxb = out_alloc(nx1);
  tbuf dwa = out_alloc(nw), dwb = out_alloc(nw);
  const int oh0 = r0 < s.ho ? r0 : 0, oh1 = r1 < s.ho ? r1 : s.ho;
  const int ih0 = r0 < h ? r0 : 0, ih1 = r1 < h ? r1 : h;
  a->dw_fwd(&s, x.p, wt.p, scale, shift, act, ya.p, oh0, oh1);
  b->dw_fwd(&s, x.p, wt.p, scale, shift, act, yb.p, oh0, oh1);
  int bad = buffers_identical("dw_fwd", a, b, &ya, &yb, ny1, h, w, c, k, stride, oh0, oh1);
  a->dw_bwd_input(&s, dy.p, wt.p, dxa.p, ih0, ih1);
  b->dw_bwd_input(&s, dy.p, wt.p, dxb.p, ih0, ih1);
  bad += buffers_identical("dw_bwd_input", a, b, &dxa, &dxb, nx1, h, w, c, k, stride, ih0, ih1);
  for (size_t i = 0; i < nw; i++) dwa.p[i] = dwb.p[i] = init.p[i];
  a->dw_bwd_weight(&s, n, x.p, dy.p, dwa.p, c0, c1);
  b->dw_bwd_weight(&s, n, x.p, dy.p, dwb.p, c0, c1);
  bad += buffers_identical("dw_bwd_weight", a, b, &dwa, &dwb, nw, h, w, c, k, stride, c0, c1);
  tfree(&x), tfree(&wt), tfree(&dy), tfree(&init), tfree(&sc), tfree(&sh);
  tfree(&ya), tfree(&yb), tfree(&dxa), tfree(&dxb), tfree(&dwa), tfree(&dwb);
  return bad;
}

static void test_dw_avx512_vs_avx2(void) {
  const mpnas__kernels *a = mpnas__kernels_named("avx2"), *b = mpnas__kernels_named("avx512");
  if (a == NULL || b == NULL) {
    printf("# (no avx512 table here: skipped)\n");
    return;
  }
  /* distinct kernels (else this compares a function with itself), shared by +vnni */
  CHECK(a->dw_fwd != b->dw_fwd && a->dw_bwd_input != b->dw_bwd_input &&
        a->dw_bwd_weight != b->dw_bwd_weight);
  const mpnas__kernels *bv = mpnas__kernels_named("avx512+vnni");
  CHECK(bv == NULL || (bv->dw_fwd == b->dw_fwd && bv->dw_bwd_input == b->dw_bwd_input &&
                       bv->dw_bwd_weight == b->dw_bwd_weight));
  static const int chans[] = {1, 7, 8, 9, 15, 16, 17, 24, 31, 33, 100};
  static const int sizes[][2] = {{1, 1}, {2, 3}, {7, 5}, {36, 36}};
  static const int ks[] = {3, 5, 7, 9};
  int v = 0;
  for (int ci = 0; ci < COUNT(chans); ci++)
    for (int si = 0; si < COUNT(sizes); si++)
      for (int ki = 0; ki < COUNT(ks); ki++)
        for (int stride = 1; stride <= 2; stride++, v++) {
          const int c = chans[ci], h = sizes[si][0], w = sizes[si][1];
          if (h == 36 && (c > 33 || ks[ki] == 9) && (v & 3) != 0) continue; /* time */
          const int n = h == 36 ? 1 : 2;
          /* all rows and channels; then a part of each */
          dw_identical_case(a, b, n, h, w, c, ks[ki], stride, v % MPNAS__ACT_COUNT, v & 1,
                            (v >> 1) & 1, 0, h, 0, c);
          const int r0 = h > 2 ? 1 + v % 3 : 0, r1 = h > 2 ? h - 1 - v % 2 : h;
          const int c0 = c > 3 ? 1 + v % 3 : 0, c1 = c > 5 ? c - 1 - (v % 2) * 2 : c;
          dw_identical_case(a, b, n, h, w, c, ks[ki], stride, (v + 3) % MPNAS__ACT_COUNT,
                            (v >> 2) & 1, (v >> 3) & 1, r0, r1 > r0 ? r1 : h, c0, c1);
        }
  /* every activation with every epilogue combination, on a tail and a full block */
  static const int epi[][4] = {{7, 5, 17, 3}, {9, 11, 33, 5}, {36, 36, 24, 3}, {13, 6, 100, 7}};
  for (int ei = 0; ei < COUNT(epi); ei++)
    for (int act = 0; act < MPNAS__ACT_COUNT; act++)
      for (int e = 0; e < 4; e++)
        dw_identical_case(a, b, 1, epi[ei][0], epi[ei][1], epi[ei][2], epi[ei][3], 1 + (e & 1),
                          act, e & 1, (e >> 1) & 1, 0, epi[ei][0], 0, epi[ei][2]);
}

/* ---- AVX-512 BN and activations against AVX2: bit-identical ---------------------- */

/* misc-x86.h at 16 lanes does every channel's operations in the order it does at 8, so
 * the avx512 tables' BN and activation kernels must give the avx2 ones' bits (training
 * must not depend on which x86 table runs), sentinels in the row gaps and after the
 * end included (NaN outputs only need to be NaN in both: floats_alike). Data: per-channel offsets (so the statistics' deviations matter), every
 * activation's kinks, and when `special`, NaN, infinities, -0 and large values. */
/* Equal bits, or both NaN: which NaN an operation returns when both operands are NaN
 * depends on their order, and compilers may commute IEEE additions (clang does), so
 * only NaN payloads and signs may differ between the two tables. */
static int floats_alike(const float *a, const float *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(&a[i], &b[i], sizeof(float)) != 0 && !(isnan(a[i]) && isnan(b[i]))) return 0;
  return 1;
}
static int doubles_alike(const double *a, const double *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(&a[i], &b[i], sizeof(double)) != 0 && !(isnan(a[i]) && isnan(b[i]))) return 0;
  return 1;
}

static int misc_identical_case(const mpnas__kernels *a, const mpnas__kernels *b, int m, int c,
                               size_t ld, int act, int special) {
  static const float specials[] = {0.0f, -0.0f, 6.0f, -3.0f, 3.0f, 100.0f, -100.0f,
                                   NAN, INFINITY, -INFINITY, 1e-30f, 3e38f};
  size_t n = m > 0 ? (size_t)(m - 1) * ld + (size_t)c : 0, cells = n + GUARD;
  tbuf x = in_alloc(n), dy = in_random(n, -2.0f, 2.0f);
  tbuf mu = in_random((size_t)c, -1.0f, 1.0f), k = in_random((size_t)c, -3.0f, 3.0f);
  tbuf sh = in_random((size_t)c, -4.0f, 4.0f), ca = in_random((size_t)c, -2.0f, 2.0f);
  tbuf cb = in_random((size_t)c, -2.0f, 2.0f), cd = in_random((size_t)c, -1.0f, 1.0f);
  for (size_t i = 0; i < n; i++) {
    int ch = (int)(i % ld);
    x.p[i] = (float)(ch % 5) * 40.0f - 60.0f + rng_uniform(-9.0f, 9.0f);
    if (special && i % 7 == 3) x.p[i] = specials[(i / 7) % COUNT(specials)];
    if (special && i % 29 == 5) dy.p[i] = specials[(i / 29) % COUNT(specials)];
  }
  tbuf out[2][6]; /* norm, y, dx (bn), act_fwd, act_bwd, act_bwd in place */
  double st[2][5][385];
  int bad = 0;
  for (int t = 0; t < 2; t++) {
    const mpnas__kernels *K = t ? b : a;
    for (int o = 0; o < 6; o++) out[t][o] = out_alloc(n);
    for (int q = 0; q < 5; q++)
      for (int ch = 0; ch < c; ch++) /* m = 0 leaves the stats alone; the sums are added to */
        st[t][q][ch] = q < 2 ? -1.5 : 0.0;
    if (m > 0) K->bn_stats(m, c, ld, x.p, st[t][0], st[t][1]);
    K->bn_bwd_reduce(m, c, ld, x.p, dy.p, mu.p, st[t][2], st[t][3], st[t][4]);
    K->bn_apply(m, c, ld, x.p, mu.p, k.p, sh.p, act, out[t][0].p, out[t][1].p);
    if (act != MPNAS__ACT_NONE) { /* no norm output: y alone, here over out[2] */
      K->bn_apply(m, c, ld, x.p, mu.p, k.p, sh.p, act, NULL, out[t][2].p);
      CHECK_MSG(floats_alike(out[t][1].p, out[t][2].p, cells),
                "%s bn_apply m=%d c=%d ld=%zu act=%s: y differs without norm", K->name, m, c,
                ld, act_name(act));
    }
    K->bn_bwd_dx(m, c, ld, x.p, dy.p, mu.p, ca.p, cb.p, cd.p, out[t][2].p);
    K->act_fwd(act, n, x.p, out[t][3].p);
    CHECK_MSG(guard_ok(&out[t][3], n), "%s act_fwd n=%zu: wrote past the end", K->name, n);
    if (t == 1) {
      static const char *what[] = {"bn_apply norm", "bn_apply y", "bn_bwd_dx", "act_fwd"};
      for (int o = 0; o < 4; o++)
        if (!floats_alike(out[0][o].p, out[1][o].p, cells)) {
          CHECK_MSG(0, "%s vs %s %s m=%d c=%d ld=%zu act=%s special=%d differs", b->name,
                    a->name, what[o], m, c, ld, act_name(act), special);
          bad++;
        }
      static const char *sums[] = {"bn_stats mean", "bn_stats m2", "bn_bwd_reduce s0",
                                   "bn_bwd_reduce s1", "bn_bwd_reduce s2"};
      for (int q = 0; q < 5; q++)
        if (!doubles_alike(st[0][q], st[1][q], (size_t)c)) {
          CHECK_MSG(0, "%s vs %s %s m=%d c=%d ld=%zu special=%d differs", b->name, a->name,
                    sums[q], m, c, ld, special);
          bad++;
        }
    }
    K->act_bwd(act, n, x.p, dy.p, out[t][4].p);
    memcpy(out[t][5].p, dy.p, sizeof(float) * n);
    K->act_bwd(act, n, x.p, out[t][5].p, out[t][5].p);
    CHECK_MSG(floats_alike(out[t][4].p, out[t][5].p, cells),
              "%s act_bwd n=%zu act=%s: in place differs", K->name, n, act_name(act));
    if (t == 1 && !floats_alike(out[0][4].p, out[1][4].p, cells)) {
      CHECK_MSG(0, "%s vs %s act_bwd n=%zu act=%s special=%d differs", b->name, a->name, n,
                act_name(act), special);
      bad++;
    }
  }
  for (int t = 0; t < 2; t++)
    for (int o = 0; o < 6; o++) tfree(&out[t][o]);
  tfree(&x), tfree(&dy), tfree(&mu), tfree(&k), tfree(&sh), tfree(&ca), tfree(&cb), tfree(&cd);
  return bad;
}

static void test_misc_avx512_vs_avx2(void) {
  const mpnas__kernels *a = mpnas__kernels_named("avx2"), *b = mpnas__kernels_named("avx512");
  if (a == NULL || b == NULL) {
    printf("# (no avx512 table here: skipped)\n");
    return;
  }
  /* the +vnni variants share their width's BN and activation kernels */
  const mpnas__kernels *av = mpnas__kernels_named("avx2+vnni"), *bv = mpnas__kernels_named("avx512+vnni");
  if (av != NULL)
    CHECK(av->bn_stats == a->bn_stats && av->bn_apply == a->bn_apply &&
          av->bn_bwd_reduce == a->bn_bwd_reduce && av->bn_bwd_dx == a->bn_bwd_dx &&
          av->act_fwd == a->act_fwd && av->act_bwd == a->act_bwd);
  if (bv != NULL)
    CHECK(bv->bn_stats == b->bn_stats && bv->bn_apply == b->bn_apply &&
          bv->bn_bwd_reduce == b->bn_bwd_reduce && bv->bn_bwd_dx == b->bn_bwd_dx &&
          bv->act_fwd == b->act_fwd && bv->act_bwd == b->act_bwd);
  /* 64, 72: two whole 32-channel groups side by side in avx512 bn_stats; 100, 385: three */
  static const int cs[] = {1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 72, 100, 385};
  static const int ms[] = {0, 1, 3, 64, 257, 1000};
  int cases = 0;
  for (int ci = 0; ci < COUNT(cs); ci++)
    for (int mi = 0; mi < COUNT(ms); mi++)
      for (int v = 0; v < 4; v++)
        for (int act = 0; act < MPNAS__ACT_COUNT; act++, cases++)
          if (misc_identical_case(a, b, ms[mi], cs[ci], (size_t)cs[ci] + (v & 1 ? 5 : 0), act,
                                  v >> 1))
            return;
  printf("    %d cases\n", cases);
}

/* ---- The table itself ------------------------------------------------------------- */

static void test_tables(void) {
  CHECK(n_tables >= 1);
  CHECK(mpnas__kernels_for(MPNAS_ISA_SCALAR) == &mpnas__kernels_scalar);
  const mpnas__kernels *best = mpnas__kernels_for(MPNAS_ISA_AUTO);
  CHECK(best != NULL);
  for (int ti = 0; ti < n_tables; ti++) {
    const mpnas__kernels *t = tables[ti];
    CHECK(t->name != NULL);
    CHECK(t->dw_fwd && t->dw_bwd_input && t->dw_bwd_weight && t->gemm_packed_floats &&
          t->gemm_pack && t->gemm && t->gemm_bwd_weight);
    CHECK(mpnas__isa_available(t->isa));
    CHECK(t->gemm_packed_floats(1, 1) >= 1);
    CHECK(t->gemm_packed_floats(67, 101) >= (size_t)67 * 101);
  }
}

int main(void) {
  find_tables();
  RUN(test_tables);
  RUN(test_dw_fwd_shapes);
  RUN(test_dw_fwd_epilogues);
  RUN(test_dw_fwd_large);
  RUN(test_dw_bwd_input);
  RUN(test_dw_bwd_weight);
  RUN(test_gemm_small);
  RUN(test_gemm_epilogues);
  RUN(test_gemm_large);
  RUN(test_gemm_bwd_weight);
  RUN(test_gemm_avx512_vs_avx2);
  RUN(test_dw_avx512_vs_avx2);
  RUN(test_misc_avx512_vs_avx2);
  return check_finish();
}
