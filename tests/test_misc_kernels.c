/* test_misc_kernels.c - the batch-norm and activation kernels of every kernel table this
 * build and CPU can run (avx2 and avx512 on x86-64, neon on aarch64, and scalar against
 * itself) against the reference kernels (src/kernels/ref/misc-ref.c), then the ops built on them
 * (src/tensor/ops_misc.c) for thread-count independence, and the convolutions that take
 * their output's batch statistics as they produce it (ops_conv.c).
 *
 * Shapes are awkward on purpose: c = 1, 3, 7, 8, 9, 17, 33, 70 (around the 4- and
 * 8-lane vectors and the 32- or 16-channel groups), m = 1, 2, 5, 257, 1000 (single rows,
 * odd counts, one row past a 256-row block), row strides ld = c and ld > c (a channel
 * slice, as the op layer passes), every activation, and data with a large mean against
 * a small spread (offsets 1e4 and -300, spread 1), where a naive one-pass variance
 * collapses. Inputs are allocated to their exact size at a misaligned address, so a
 * vector read past the end is caught by the sanitizer build; outputs carry sentinels in
 * the row gaps and after the end, which must stay untouched.
 *
 * Tolerances (relative to sums of absolute values, so they hold for any data):
 *  - statistics: mean within 1e-6 std + 1e-9 |mean|, m2 within 2e-5 m2 + 1e-12 m mean^2:
 *    float sums over blocks of at most 256 rows, merged in double (kernels.h);
 *  - backward sums within 1e-5 of the sum of |terms|;
 *  - elementwise (apply, dx): 1e-6 of the sum of |terms| (FMA or not, summation order);
 *    the activation after apply adds its slope (1.5 for hswish) and, for sigmoid, 2e-6;
 *    plus 5e-7 of the output (the activation's own rounding of a slightly different t);
 *  - activations alone: equal to the reference value for value, except the AVX2 sigmoid
 *    (vector exp): 2e-6 relative + 1e-7 absolute, and its derivative 1e-6 |dy| on top;
 *    against libm in double, sigmoid within 2e-6 relative over [-100, 100]. */
#include <stdint.h>

#include "check.h"
#include "common/common.h"
#include "kernels/kernels.h"
#include "kernels/misc/misc.h"
#include "mpnas.h"
#include "tensor/ops.h"

/* ---- Test data and buffers ---------------------------------------------------------- */

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static uint32_t rng_u32(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}
static float rng_uniform(float lo, float hi) {
  return lo + (hi - lo) * (float)((double)rng_u32() / 4294967296.0);
}

#define GUARD 19
#define SENTINEL (-12345.25f)

typedef struct {
  void *raw;
  float *p;
} tbuf;

/* Exactly n floats, one float past a 16-byte boundary. */
static tbuf in_alloc(size_t n) {
  tbuf b;
  b.raw = malloc(sizeof(float) * (n + 1));
  b.p = (float *)b.raw + 1;
  return b;
}
/* n floats of sentinels plus GUARD more, misaligned by one float. */
static tbuf out_alloc(size_t n) {
  tbuf b;
  b.raw = malloc(sizeof(float) * (n + GUARD + 16) + 64);
  uintptr_t a = ((uintptr_t)b.raw + 31) & ~(uintptr_t)31;
  b.p = (float *)a + 1;
  for (size_t i = 0; i < n + GUARD; i++) b.p[i] = SENTINEL;
  return b;
}
static void tfree(tbuf *b) {
  free(b->raw);
  b->raw = NULL;
}

/* Floats spanned by m rows of c channels at stride ld. */
static size_t span(int m, int c, size_t ld) { return m > 0 ? (size_t)(m - 1) * ld + (size_t)c : 0; }

/* Row-strided input: channel j of row i = offset[j] + spread * uniform(-1, 1); the gaps
 * hold garbage a kernel must not use. */
static tbuf rows_random(int m, int c, size_t ld, const float *offset, float spread) {
  size_t n = span(m, c, ld);
  tbuf b = in_alloc(n);
  for (size_t i = 0; i < n; i++) {
    size_t ch = i % ld;
    b.p[i] = ch < (size_t)c ? offset[ch] + spread * rng_uniform(-1.0f, 1.0f) : 1e30f;
  }
  return b;
}

/* Every element outside the m x c window of an output (gaps, guard) is a sentinel. */
static int outside_ok(const tbuf *b, int m, int c, size_t ld) {
  size_t n = span(m, c, ld);
  for (size_t i = 0; i < n + GUARD; i++) {
    int inside = i < n && i % ld < (size_t)c;
    if (!inside && b->p[i] != SENTINEL) return 0;
  }
  return 1;
}

static const char *act_name(int act) {
  static const char *names[] = {"none", "relu", "relu6", "hswish", "sigmoid", "hsigmoid"};
  return act >= 0 && act < MPNAS__ACT_COUNT ? names[act] : "?";
}
static double act_slope(int act) { return act == MPNAS__ACT_HSWISH ? 1.5 : 1.0; }

/* ---- Tables under test ----------------------------------------------------------------- */

static const mpnas__kernels *tables[4];
static int n_tables;

/* By name, so the avx2 and the avx512 kernels are both tested where the CPU runs both
 * (the +vnni / +dotprod variants share their BN and activation kernels). */
static void find_tables(void) {
  static const char *names[] = {"scalar", "avx2", "avx512", "neon"};
  printf("# tables tested against the reference:");
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const mpnas__kernels *t = mpnas__kernels_named(names[i]);
    if (t == NULL) continue;
    tables[n_tables++] = t;
    printf(" %s", t->name);
  }
  printf("\n");
  fflush(stdout);
}

static const int CS[] = {1, 3, 7, 8, 9, 17, 33, 70};
static const int MS[] = {1, 2, 5, 257, 1000};
static const int ACTS[] = {MPNAS__ACT_NONE, MPNAS__ACT_RELU, MPNAS__ACT_RELU6,
                           MPNAS__ACT_HSWISH, MPNAS__ACT_SIGMOID, MPNAS__ACT_HSIGMOID};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Data kinds: 0 = centred, 1 = large mean / small spread (1e4, -300, 0.5 by channel). */
static void offsets_for(int kind, int c, float *off) {
  for (int j = 0; j < c; j++) {
    if (kind == 0) off[j] = rng_uniform(-0.5f, 0.5f);
    else off[j] = (j % 3 == 0) ? 1e4f : (j % 3 == 1 ? -300.0f : 0.5f);
  }
}

/* ---- bn_stats ------------------------------------------------------------------------- */

static int stats_case(const mpnas__kernels *t, int m, int c, size_t ld, int kind) {
  float off[80] = {0};
  offsets_for(kind, c, off);
  tbuf x = rows_random(m, c, ld, off, 1.0f);
  double *mean = malloc(sizeof(double) * (size_t)c), *m2 = malloc(sizeof(double) * (size_t)c);
  double *rmean = malloc(sizeof(double) * (size_t)c), *rm2 = malloc(sizeof(double) * (size_t)c);
  mpnas__f32_bn_stats__ref(m, c, ld, x.p, rmean, rm2);
  t->bn_stats(m, c, ld, x.p, mean, m2);
  int bad = 0;
  for (int j = 0; j < c && bad < 3; j++) {
    double std = sqrt(rm2[j] / m), amean = fabs(rmean[j]);
    double tm = 1e-6 * std + 1e-9 * amean, t2 = 2e-5 * rm2[j] + 1e-12 * m * amean * amean;
    if (!(fabs(mean[j] - rmean[j]) <= tm) || !(fabs(m2[j] - rm2[j]) <= t2)) {
      CHECK_MSG(0,
                "%s bn_stats m=%d c=%d ld=%zu kind=%d ch %d: mean %.12g vs %.12g (tol %.2g), "
                "m2 %.12g vs %.12g (tol %.2g)",
                t->name, m, c, ld, kind, j, mean[j], rmean[j], tm, m2[j], rm2[j], t2);
      bad++;
    }
  }
  tfree(&x);
  free(mean), free(m2), free(rmean), free(rm2);
  return bad;
}

static void test_bn_stats(void) {
  int cases = 0;
  for (int ti = 0; ti < n_tables; ti++)
    for (int ci = 0; ci < COUNT(CS); ci++)
      for (int mi = 0; mi < COUNT(MS); mi++)
        for (int kind = 0; kind < 2; kind++)
          for (int pad = 0; pad <= 5; pad += 5) {
            if (stats_case(tables[ti], MS[mi], CS[ci], (size_t)CS[ci] + pad, kind)) return;
            cases++;
          }
  printf("    %d cases\n", cases);
}

/* A constant channel has m2 = 0 (a tiny negative value would make var + eps < eps) and
 * its mean exactly; 3 rows of 5.0f make 15 / 3 = 5 exactly. */
static void test_bn_stats_constant(void) {
  const int ms[] = {1, 3, 7, 300, 1000};
  const float vals[] = {5.0f, 0.1f, -3.3f, 1e4f};
  for (int ti = 0; ti < n_tables; ti++)
    for (int a = 0; a < COUNT(ms); a++)
      for (int v = 0; v < COUNT(vals); v++) {
        int m = ms[a], c = 9;
        tbuf x = in_alloc((size_t)m * c);
        for (size_t i = 0; i < (size_t)m * c; i++) x.p[i] = vals[v];
        double mean[9], m2[9];
        tables[ti]->bn_stats(m, c, (size_t)c, x.p, mean, m2);
        for (int j = 0; j < c; j++) {
          CHECK_MSG(mean[j] == (double)vals[v], "%s m=%d const %g: mean %.17g", tables[ti]->name,
                    m, (double)vals[v], mean[j]);
          CHECK_MSG(fabs(m2[j]) <= 1e-12 * m * (double)vals[v] * vals[v],
                    "%s m=%d const %g: m2 %.3g", tables[ti]->name, m, (double)vals[v], m2[j]);
        }
        tfree(&x);
      }
}

/* ---- bn_apply ------------------------------------------------------------------------- */

static int apply_case(const mpnas__kernels *t, int m, int c, size_t ld, int act, int with_norm) {
  float off[80] = {0};
  offsets_for(0, c, off);
  size_t n = span(m, c, ld);
  tbuf x = rows_random(m, c, ld, off, 3.0f);
  tbuf mu = in_alloc((size_t)c), k = in_alloc((size_t)c), b = in_alloc((size_t)c);
  for (int j = 0; j < c; j++) {
    mu.p[j] = rng_uniform(-0.5f, 0.5f);
    k.p[j] = rng_uniform(-2.0f, 2.0f);
    b.p[j] = rng_uniform(-1.0f, 1.0f);
  }
  tbuf norm = out_alloc(n), y = out_alloc(n), rnorm = out_alloc(n), ry = out_alloc(n);
  mpnas__f32_bn_apply__ref(m, c, ld, x.p, mu.p, k.p, b.p, act, rnorm.p, ry.p);
  t->bn_apply(m, c, ld, x.p, mu.p, k.p, b.p, act, with_norm ? norm.p : NULL, y.p);
  int bad = 0;
  for (size_t i = 0; i < n && bad < 3; i++) {
    size_t j = i % ld;
    if (j >= (size_t)c) continue;
    double terms = fabs(((double)x.p[i] - mu.p[j]) * k.p[j]) + fabs(b.p[j]);
    double tn = 1e-6 * terms;
    /* + the activation's own rounding, which a 1-ulp different t can flip (x + 3) */
    double ty = act_slope(act) * tn + 5e-7 * fabs(ry.p[i]);
    if (act == MPNAS__ACT_SIGMOID) ty += 2e-6;
    if ((with_norm && !(fabs(norm.p[i] - rnorm.p[i]) <= tn)) || !(fabs(y.p[i] - ry.p[i]) <= ty)) {
      CHECK_MSG(0, "%s bn_apply m=%d c=%d ld=%zu act=%s norm=%d at %zu: norm %.9g vs %.9g, "
                "y %.9g vs %.9g",
                t->name, m, c, ld, act_name(act), with_norm, i, (double)norm.p[i],
                (double)rnorm.p[i], (double)y.p[i], (double)ry.p[i]);
      bad++;
    }
  }
  if (!outside_ok(&y, m, c, ld) || (with_norm && !outside_ok(&norm, m, c, ld)) ||
      (!with_norm && norm.p[0] != SENTINEL)) {
    CHECK_MSG(0, "%s bn_apply m=%d c=%d ld=%zu act=%s: wrote outside its rows", t->name, m, c,
              ld, act_name(act));
    bad++;
  }
  /* Rows one after the other may be taken as one flat run (narrow rows): the same bits
   * as row by row. */
  if (!bad && ld == (size_t)c && m > 1) {
    tbuf rn = out_alloc(n), ryr = out_alloc(n);
    for (int i = 0; i < m; i++) {
      size_t o = (size_t)i * ld;
      t->bn_apply(1, c, ld, x.p + o, mu.p, k.p, b.p, act, with_norm ? rn.p + o : NULL,
                  ryr.p + o);
    }
    CHECK_MSG(memcmp(ryr.p, y.p, sizeof(float) * n) == 0 &&
                  (!with_norm || memcmp(rn.p, norm.p, sizeof(float) * n) == 0),
              "%s bn_apply m=%d c=%d act=%s: differs from row by row", t->name, m, c,
              act_name(act));
    tfree(&rn), tfree(&ryr);
  }
  /* In place: norm over x, then y over x, give the same values. */
  if (!bad) {
    tbuf x2 = in_alloc(n), y2 = out_alloc(n);
    memcpy(x2.p, x.p, sizeof(float) * n);
    if (with_norm) {
      t->bn_apply(m, c, ld, x2.p, mu.p, k.p, b.p, act, x2.p, y2.p);
      for (size_t i = 0; i < n; i++)
        if (i % ld < (size_t)c && (x2.p[i] != norm.p[i] || y2.p[i] != y.p[i])) bad++;
    }
    memcpy(x2.p, x.p, sizeof(float) * n);
    t->bn_apply(m, c, ld, x2.p, mu.p, k.p, b.p, act, NULL, x2.p);
    for (size_t i = 0; i < n; i++)
      if (i % ld < (size_t)c && x2.p[i] != y.p[i]) bad++;
    CHECK_MSG(bad == 0, "%s bn_apply m=%d c=%d act=%s: in place differs", t->name, m, c,
              act_name(act));
    tfree(&x2), tfree(&y2);
  }
  tfree(&x), tfree(&mu), tfree(&k), tfree(&b), tfree(&norm), tfree(&y), tfree(&rnorm), tfree(&ry);
  return bad;
}

static void test_bn_apply(void) {
  int cases = 0;
  for (int ti = 0; ti < n_tables; ti++)
    for (int ci = 0; ci < COUNT(CS); ci++)
      for (int mi = 0; mi < COUNT(MS); mi++)
        for (int ai = 0; ai < COUNT(ACTS); ai++)
          for (int wn = 0; wn < 2; wn++) {
            size_t ld = (size_t)CS[ci] + (size_t)((mi + ai) % 2) * 3;
            if (apply_case(tables[ti], MS[mi], CS[ci], ld, ACTS[ai], wn)) return;
            cases++;
          }
  printf("    %d cases\n", cases);
}

/* ---- bn_bwd_reduce and bn_bwd_dx ------------------------------------------------------- */

static int bwd_case(const mpnas__kernels *t, int m, int c, size_t ld, int kind) {
  float off[80] = {0};
  offsets_for(kind, c, off);
  float zero[80] = {0};
  size_t n = span(m, c, ld);
  tbuf x = rows_random(m, c, ld, off, 1.0f), dy = rows_random(m, c, ld, zero, 1.0f);
  tbuf mu = in_alloc((size_t)c), a = in_alloc((size_t)c), b = in_alloc((size_t)c),
       d = in_alloc((size_t)c);
  for (int j = 0; j < c; j++) {
    mu.p[j] = off[j] + rng_uniform(-0.01f, 0.01f); /* near the mean, as in training */
    a.p[j] = rng_uniform(-2.0f, 2.0f);
    b.p[j] = rng_uniform(-2.0f, 2.0f);
    d.p[j] = rng_uniform(-1.0f, 1.0f);
  }
  double *s[3], *r[3], *sa[3];
  for (int q = 0; q < 3; q++) {
    s[q] = calloc((size_t)c, sizeof(double)); /* the kernels add to their sums */
    r[q] = calloc((size_t)c, sizeof(double));
    sa[q] = calloc((size_t)c, sizeof(double));
  }
  mpnas__f32_bn_bwd_reduce__ref(m, c, ld, x.p, dy.p, mu.p, r[0], r[1], r[2]);
  t->bn_bwd_reduce(m, c, ld, x.p, dy.p, mu.p, s[0], s[1], s[2]);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < c; j++) {
      size_t q = (size_t)i * ld + (size_t)j;
      double xc = fabs((double)x.p[q] - mu.p[j]), g = fabs(dy.p[q]);
      sa[0][j] += xc;
      sa[1][j] += g;
      sa[2][j] += xc * g;
    }
  int bad = 0;
  for (int j = 0; j < c && bad < 3; j++)
    for (int q = 0; q < 3; q++)
      if (!(fabs(s[q][j] - r[q][j]) <= 1e-5 * sa[q][j])) {
        CHECK_MSG(0, "%s bn_bwd_reduce m=%d c=%d ld=%zu kind=%d ch %d: s%d %.12g vs %.12g", t->name,
                  m, c, ld, kind, j, q, s[q][j], r[q][j]);
        bad++;
      }

  tbuf dx = out_alloc(n), rdx = out_alloc(n);
  mpnas__f32_bn_bwd_dx__ref(m, c, ld, x.p, dy.p, mu.p, a.p, b.p, d.p, rdx.p);
  t->bn_bwd_dx(m, c, ld, x.p, dy.p, mu.p, a.p, b.p, d.p, dx.p);
  for (size_t i = 0; i < n && bad < 3; i++) {
    size_t j = i % ld;
    if (j >= (size_t)c) continue;
    double terms = fabs((double)a.p[j] * dy.p[i]) +
                   fabs((double)b.p[j] * ((double)x.p[i] - mu.p[j])) + fabs(d.p[j]);
    if (!(fabs(dx.p[i] - rdx.p[i]) <= 1e-6 * terms)) {
      CHECK_MSG(0, "%s bn_bwd_dx m=%d c=%d ld=%zu kind=%d at %zu: %.9g vs %.9g", t->name, m, c,
                ld, kind, i, (double)dx.p[i], (double)rdx.p[i]);
      bad++;
    }
  }
  if (!outside_ok(&dx, m, c, ld)) {
    CHECK_MSG(0, "%s bn_bwd_dx m=%d c=%d ld=%zu: wrote outside its rows", t->name, m, c, ld);
    bad++;
  }
  /* Rows one after the other may be taken as one flat run (narrow rows): the same bits
   * as row by row. */
  if (!bad && ld == (size_t)c && m > 1) {
    tbuf rows = out_alloc(n);
    for (int i = 0; i < m; i++) {
      size_t o = (size_t)i * ld;
      t->bn_bwd_dx(1, c, ld, x.p + o, dy.p + o, mu.p, a.p, b.p, d.p, rows.p + o);
    }
    CHECK_MSG(memcmp(rows.p, dx.p, sizeof(float) * n) == 0,
              "%s bn_bwd_dx m=%d c=%d: differs from row by row", t->name, m, c);
    tfree(&rows);
  }
  /* dx may be dy. */
  if (!bad) {
    tbuf g2 = in_alloc(n);
    memcpy(g2.p, dy.p, sizeof(float) * n);
    t->bn_bwd_dx(m, c, ld, x.p, g2.p, mu.p, a.p, b.p, d.p, g2.p);
    for (size_t i = 0; i < n; i++)
      if (i % ld < (size_t)c && g2.p[i] != dx.p[i]) bad++;
    CHECK_MSG(bad == 0, "%s bn_bwd_dx m=%d c=%d: dx == dy differs", t->name, m, c);
    tfree(&g2);
  }
  for (int q = 0; q < 3; q++) free(s[q]), free(r[q]), free(sa[q]);
  tfree(&x), tfree(&dy), tfree(&mu), tfree(&a), tfree(&b), tfree(&d), tfree(&dx), tfree(&rdx);
  return bad;
}

static void test_bn_bwd(void) {
  int cases = 0;
  for (int ti = 0; ti < n_tables; ti++)
    for (int ci = 0; ci < COUNT(CS); ci++)
      for (int mi = 0; mi < COUNT(MS); mi++)
        for (int kind = 0; kind < 2; kind++) {
          size_t ld = (size_t)CS[ci] + (size_t)((mi + kind) % 2) * 5;
          if (bwd_case(tables[ti], MS[mi], CS[ci], ld, kind)) return;
          cases++;
        }
  printf("    %d cases\n", cases);
}

/* bn_bwd_reduce_act against the same table's bn_apply, act_bwd (on the activation's
 * output for ReLU / ReLU6, as the training backward used to, else on t) and
 * bn_bwd_reduce in turn: the same bits in g and in the sums, g in place over dy too.
 * Some channels have b on a kink (0, 6, +-3) and rows with x == mu there, so t sits
 * exactly on it. */
static int reduce_act_case(const mpnas__kernels *t, int m, int c, size_t ld, int act) {
  static const float kinks[] = {0.0f, 6.0f, -3.0f, 3.0f};
  float off[80];
  offsets_for(0, c, off);
  size_t n = span(m, c, ld);
  tbuf x = rows_random(m, c, ld, off, 3.0f), dy = rows_random(m, c, ld, off, 1.0f);
  tbuf mu = in_alloc((size_t)c), k = in_alloc((size_t)c), b = in_alloc((size_t)c);
  for (int j = 0; j < c; j++) {
    mu.p[j] = off[j] + rng_uniform(-0.1f, 0.1f);
    k.p[j] = rng_uniform(-2.0f, 2.0f);
    b.p[j] = j % 3 == 1 ? kinks[(j / 3) % COUNT(kinks)] : rng_uniform(-3.0f, 7.0f);
  }
  for (int i = 3; i < m; i += 7)
    for (int j = 0; j < c; j++) x.p[(size_t)i * ld + (size_t)j] = mu.p[j];
  tbuf norm = out_alloc(n), y = out_alloc(n), gref = out_alloc(n), g = out_alloc(n);
  t->bn_apply(m, c, ld, x.p, mu.p, k.p, b.p, act, act == MPNAS__ACT_NONE ? NULL : norm.p, y.p);
  const float *act_in = (act == MPNAS__ACT_RELU || act == MPNAS__ACT_RELU6 ||
                         act == MPNAS__ACT_NONE) ? y.p : norm.p;
  for (int i = 0; i < m; i++) {
    size_t o = (size_t)i * ld;
    t->act_bwd(act, (size_t)c, act_in + o, dy.p + o, gref.p + o);
  }
  double r[3][80] = {{0}}, s[3][80] = {{0}}, s2[3][80] = {{0}}; /* the sums are added to */
  t->bn_bwd_reduce(m, c, ld, x.p, gref.p, mu.p, r[0], r[1], r[2]);
  t->bn_bwd_reduce_act(m, c, ld, x.p, dy.p, mu.p, k.p, b.p, act, g.p, s[0], s[1], s[2]);
  int bad = 0;
  for (size_t i = 0; i < n && bad < 3; i++)
    if (i % ld < (size_t)c && memcmp(&g.p[i], &gref.p[i], sizeof(float)) != 0) {
      CHECK_MSG(0, "%s bn_bwd_reduce_act %s m=%d c=%d ld=%zu at %zu: g %.9g vs %.9g", t->name,
                act_name(act), m, c, ld, i, (double)g.p[i], (double)gref.p[i]);
      bad++;
    }
  if (!outside_ok(&g, m, c, ld)) {
    CHECK_MSG(0, "%s bn_bwd_reduce_act m=%d c=%d ld=%zu: wrote outside its rows", t->name, m,
              c, ld);
    bad++;
  }
  for (int q = 0; q < 3 && !bad; q++)
    if (memcmp(s[q], r[q], sizeof(double) * (size_t)c) != 0) {
      CHECK_MSG(0, "%s bn_bwd_reduce_act %s m=%d c=%d ld=%zu: s%d differs", t->name,
                act_name(act), m, c, ld, q);
      bad++;
    }
  if (!bad) { /* g over dy */
    t->bn_bwd_reduce_act(m, c, ld, x.p, dy.p, mu.p, k.p, b.p, act, dy.p, s2[0], s2[1], s2[2]);
    for (size_t i = 0; i < n; i++)
      if (i % ld < (size_t)c && memcmp(&dy.p[i], &g.p[i], sizeof(float)) != 0) bad++;
    for (int q = 0; q < 3; q++) bad += memcmp(s2[q], s[q], sizeof(double) * (size_t)c) != 0;
    CHECK_MSG(bad == 0, "%s bn_bwd_reduce_act %s m=%d c=%d: in place differs", t->name,
              act_name(act), m, c);
  }
  /* Two calls, on the first whole block of rows and then on the rest, add up to one
   * call's sums (a producer reduces its rows block by block: mpnas__bn_bwd_produced). */
  if (!bad && m > MPNAS__BN_BLOCK_ROWS) {
    double s3[3][80] = {{0}}, s4[3][80] = {{0}};
    size_t cut = (size_t)MPNAS__BN_BLOCK_ROWS * ld;
    t->bn_bwd_reduce_act(MPNAS__BN_BLOCK_ROWS, c, ld, x.p, g.p, mu.p, k.p, b.p, act, dy.p,
                         s3[0], s3[1], s3[2]);
    t->bn_bwd_reduce_act(m - MPNAS__BN_BLOCK_ROWS, c, ld, x.p + cut, g.p + cut, mu.p, k.p,
                         b.p, act, dy.p + cut, s3[0], s3[1], s3[2]);
    t->bn_bwd_reduce_act(m, c, ld, x.p, g.p, mu.p, k.p, b.p, act, dy.p, s4[0], s4[1], s4[2]);
    for (int q = 0; q < 3; q++) bad += memcmp(s3[q], s4[q], sizeof(double) * (size_t)c) != 0;
    CHECK_MSG(bad == 0, "%s bn_bwd_reduce_act %s m=%d c=%d: split at a block differs",
              t->name, act_name(act), m, c);
  }
  tfree(&x), tfree(&dy), tfree(&mu), tfree(&k), tfree(&b);
  tfree(&norm), tfree(&y), tfree(&gref), tfree(&g);
  return bad;
}

static void test_bn_bwd_reduce_act(void) {
  int cases = 0;
  for (int ti = 0; ti < n_tables; ti++)
    for (int ci = 0; ci < COUNT(CS); ci++)
      for (int mi = 0; mi < COUNT(MS); mi++)
        for (int ai = 0; ai < COUNT(ACTS); ai++) {
          size_t ld = (size_t)CS[ci] + (size_t)((mi + ai) % 2) * 3;
          if (reduce_act_case(tables[ti], MS[mi], CS[ci], ld, ACTS[ai])) return;
          cases++;
        }
  printf("    %d cases\n", cases);
}

/* ---- Activations ------------------------------------------------------------------------ */

static int act_case(const mpnas__kernels *t, size_t n, int act) {
  /* Uniform over [-9, 9] with every kink (0, 6, +-3) and a few extremes sprinkled in. */
  static const float special[] = {0.0f, 6.0f, -3.0f, 3.0f, -0.0f, 100.0f, -100.0f, 1e-30f};
  tbuf x = in_alloc(n), dy = in_alloc(n);
  for (size_t i = 0; i < n; i++) {
    x.p[i] = (i % 5 == 2) ? special[(i / 5) % COUNT(special)] : rng_uniform(-9.0f, 9.0f);
    dy.p[i] = rng_uniform(-2.0f, 2.0f);
  }
  tbuf y = out_alloc(n), ry = out_alloc(n), dx = out_alloc(n), rdx = out_alloc(n);
  mpnas__f32_act_fwd__ref(act, n, x.p, ry.p);
  mpnas__f32_act_bwd__ref(act, n, x.p, dy.p, rdx.p);
  t->act_fwd(act, n, x.p, y.p);
  t->act_bwd(act, n, x.p, dy.p, dx.p);
  int approx = act == MPNAS__ACT_SIGMOID && t->isa == MPNAS_ISA_AVX2;
  int bad = 0;
  for (size_t i = 0; i < n && bad < 3; i++) {
    double ty = approx ? 2e-6 * fabs(ry.p[i]) + 1e-7 : 0.0;
    double td = approx ? 2e-6 * fabs(rdx.p[i]) + 1e-6 * fabs(dy.p[i]) : 0.0;
    if (!(fabs(y.p[i] - ry.p[i]) <= ty) || !(fabs(dx.p[i] - rdx.p[i]) <= td)) {
      CHECK_MSG(0, "%s act %s n=%zu at %zu (x=%.9g): y %.9g vs %.9g, dx %.9g vs %.9g", t->name,
                act_name(act), n, i, (double)x.p[i], (double)y.p[i], (double)ry.p[i],
                (double)dx.p[i], (double)rdx.p[i]);
      bad++;
    }
  }
  if (y.p[n] != SENTINEL || dx.p[n] != SENTINEL) {
    CHECK_MSG(0, "%s act %s n=%zu: wrote past the end", t->name, act_name(act), n);
    bad++;
  }
  /* In place: y over x, dx over dy. */
  tbuf x2 = in_alloc(n);
  memcpy(x2.p, x.p, sizeof(float) * n);
  t->act_fwd(act, n, x2.p, x2.p);
  CHECK_MSG(memcmp(x2.p, y.p, sizeof(float) * n) == 0, "%s act %s n=%zu: in place differs",
            t->name, act_name(act), n);
  memcpy(x2.p, dy.p, sizeof(float) * n);
  t->act_bwd(act, n, x.p, x2.p, x2.p);
  CHECK_MSG(memcmp(x2.p, dx.p, sizeof(float) * n) == 0, "%s act' %s n=%zu: in place differs",
            t->name, act_name(act), n);
  tfree(&x2);
  tfree(&x), tfree(&dy), tfree(&y), tfree(&ry), tfree(&dx), tfree(&rdx);
  return bad;
}

static void test_act(void) {
  static const size_t ns[] = {1, 3, 7, 8, 9, 15, 16, 17, 33, 70, 257, 1000, 1003};
  int cases = 0;
  for (int ti = 0; ti < n_tables; ti++)
    for (int ai = 0; ai < COUNT(ACTS); ai++)
      for (int ni = 0; ni < COUNT(ns); ni++) {
        if (act_case(tables[ti], ns[ni], ACTS[ai])) return;
        cases++;
      }
  printf("    %d cases\n", cases);
}

/* The AVX2 sigmoid's vector exp over the whole float range it meets: relative error of
 * sigmoid and of its derivative s(1-s) against libm. */
static void test_sigmoid_range(void) {
  enum { N = 200001 };
  for (int ti = 0; ti < n_tables; ti++) {
    const mpnas__kernels *t = tables[ti];
    tbuf x = in_alloc(N), y = out_alloc(N), one = in_alloc(N), d = out_alloc(N);
    for (int i = 0; i < N; i++) {
      x.p[i] = -100.0f + 200.0f * (float)i / (float)(N - 1);
      one.p[i] = 1.0f;
    }
    t->act_fwd(MPNAS__ACT_SIGMOID, N, x.p, y.p);
    t->act_bwd(MPNAS__ACT_SIGMOID, N, x.p, one.p, d.p);
    double worst = 0, worst_d = 0;
    for (int i = 0; i < N; i++) {
      double s = 1.0 / (1.0 + exp(-(double)x.p[i])), g = s * (1.0 - s);
      double e = fabs(y.p[i] - s) / (s + 1e-30), ed = fabs(d.p[i] - g);
      if (s > 1e-30 && e > worst) worst = e; /* below ~1e-38 float is denormal anyway */
      if (ed > worst_d) worst_d = ed;
    }
    /* s (1 - s) in float (the reference's formula) loses 1 - s to cancellation for large
     * x: its error is absolute, about 2^-24. */
    printf("    %s: sigmoid max rel. error %.2g, derivative max abs. error %.2g\n", t->name,
           worst, worst_d);
    CHECK_MSG(worst <= 2e-6, "%s sigmoid relative error %.3g", t->name, worst);
    CHECK_MSG(worst_d <= 1.5e-7, "%s sigmoid' absolute error %.3g", t->name, worst_d);
    tfree(&x), tfree(&y), tfree(&one), tfree(&d);
  }
}

/* ---- The ops: thread-count independence -------------------------------------------------
 * Statistics and parameter gradients are reduced over a fixed chunking of the rows
 * (ops_misc.c), so 1, 2 and 3 threads give the same bits; elementwise results too.
 * (Not 8: LLVM's libomp keeps allocations of a team that large past exit, which the
 * clang sanitizer build reports as a leak.) */

typedef struct {
  float *sm, *si, *norm, *y, *dx, *dg, *db, *rm, *rv, *ay, *adx;
} op_out;

static void run_ops(const mpnas__engine *eng, int m, int c, const float *x, const float *gamma,
                    const float *beta, const float *dy, int act, op_out *o) {
  size_t n = (size_t)m * c;
  for (int j = 0; j < c; j++) {
    o->rm[j] = 0.0f;
    o->rv[j] = 1.0f;
    o->dg[j] = o->db[j] = 0.0f;
  }
  mpnas__bn_act_fwd_train(eng, m, c, x,
                          &(mpnas__bn_train){gamma, beta, 1e-3f, 0.1f, o->rm, o->rv, o->sm, o->si},
                          act, o->norm, o->y);
  mpnas__bn_bwd(eng, NULL, m, c, x, gamma, o->sm, o->si, NULL, dy, o->dx, o->dg, o->db);
  mpnas__act_fwd(eng, act, n, o->norm, o->ay);
  mpnas__act_bwd(eng, act, n, o->norm, dy, o->adx);
}

static op_out op_alloc(int m, int c) {
  size_t n = (size_t)m * c;
  op_out o;
  o.sm = malloc(sizeof(float) * (size_t)c), o.si = malloc(sizeof(float) * (size_t)c);
  o.dg = malloc(sizeof(float) * (size_t)c), o.db = malloc(sizeof(float) * (size_t)c);
  o.rm = malloc(sizeof(float) * (size_t)c), o.rv = malloc(sizeof(float) * (size_t)c);
  o.norm = malloc(sizeof(float) * n), o.y = malloc(sizeof(float) * n);
  o.dx = malloc(sizeof(float) * n), o.ay = malloc(sizeof(float) * n);
  o.adx = malloc(sizeof(float) * n);
  return o;
}
static void op_free(op_out *o) {
  free(o->sm), free(o->si), free(o->dg), free(o->db), free(o->rm), free(o->rv);
  free(o->norm), free(o->y), free(o->dx), free(o->ay), free(o->adx);
}
static int op_same(const op_out *a, const op_out *b, int m, int c) {
  size_t n = (size_t)m * c, cs = sizeof(float) * (size_t)c, ns = sizeof(float) * n;
  return !memcmp(a->sm, b->sm, cs) && !memcmp(a->si, b->si, cs) && !memcmp(a->dg, b->dg, cs) &&
         !memcmp(a->db, b->db, cs) && !memcmp(a->rm, b->rm, cs) && !memcmp(a->rv, b->rv, cs) &&
         !memcmp(a->norm, b->norm, ns) && !memcmp(a->y, b->y, ns) && !memcmp(a->dx, b->dx, ns) &&
         !memcmp(a->ay, b->ay, ns) && !memcmp(a->adx, b->adx, ns);
}

static void test_ops_thread_independent(void) {
  /* Large enough for several threads and the 8 fixed row chunks, c over one 64-channel
   * slice, and small cases that stay on one thread. */
  const int shapes[][2] = {{5000, 70}, {4096, 48}, {300, 9}, {1, 3}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int s = 0; s < COUNT(shapes); s++) {
      int m = shapes[s][0], c = shapes[s][1], act = ACTS[(s + 2) % COUNT(ACTS)];
      size_t n = (size_t)m * c;
      float *x = malloc(sizeof(float) * n), *dy = malloc(sizeof(float) * n);
      float *gamma = malloc(sizeof(float) * (size_t)c), *beta = malloc(sizeof(float) * (size_t)c);
      for (size_t i = 0; i < n; i++) {
        x[i] = (i % (size_t)c == 0 ? 1e4f : 0.0f) + rng_uniform(-2.0f, 2.0f);
        dy[i] = rng_uniform(-1.0f, 1.0f);
      }
      for (int j = 0; j < c; j++) gamma[j] = rng_uniform(0.5f, 1.5f), beta[j] = rng_uniform(-1, 1);
      op_out one = op_alloc(m, c);
      mpnas__engine e1 = {.k = tables[ti], .threads = 1};
      run_ops(&e1, m, c, x, gamma, beta, dy, act, &one);
      static const int threads[] = {2, 3};
      for (int k = 0; k < COUNT(threads); k++) {
        op_out o = op_alloc(m, c);
        mpnas__engine e = {.k = tables[ti], .threads = threads[k]};
        run_ops(&e, m, c, x, gamma, beta, dy, act, &o);
        CHECK_MSG(op_same(&one, &o, m, c), "%s m=%d c=%d: %d threads differ from 1",
                  tables[ti]->name, m, c, threads[k]);
        op_free(&o);
      }
      /* The fused output equals BN then the activation. */
      int bad = 0;
      for (size_t i = 0; i < n; i++) bad += one.y[i] != one.ay[i];
      CHECK_MSG(bad == 0, "%s m=%d c=%d: fused y differs from act(norm) in %d places",
                tables[ti]->name, m, c, bad);
      op_free(&one);
      free(x), free(dy), free(gamma), free(beta);
    }
}

/* mpnas__bn_bwd with the activation folded in equals mpnas__act_bwd then mpnas__bn_bwd
 * without it, bit for bit, for 1, 2 and 3 threads, in place (dx over dy), and over
 * workers (one worker: a sum over itself). */
static int32_t sum_over_one(void *user, double *buf, int64_t n) {
  (void)user, (void)buf, (void)n;
  return MPNAS_OK;
}

/* A BN and activation as a training forward saved them, at random: pc = mu | k | b |
 * invstd | gamma, c floats each. */
static void random_bn_saved(int c, float *pc) {
  for (int j = 0; j < c; j++) {
    pc[j] = rng_uniform(-1.0f, 1.0f);
    pc[c + j] = rng_uniform(-2.0f, 2.0f);
    pc[2 * c + j] = rng_uniform(-3.0f, 7.0f);
    pc[3 * c + j] = rng_uniform(0.5f, 2.0f);
    pc[4 * c + j] = rng_uniform(0.5f, 1.5f);
  }
}

static void test_bn_bwd_with_act(void) {
  mpnas_context *ctx;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  const int shapes[][2] = {{5000, 70}, {4096, 48}, {300, 9}, {1, 3}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int sh = 0; sh < COUNT(shapes); sh++)
      for (int ai = 0; ai < COUNT(ACTS); ai++) {
        int m = shapes[sh][0], c = shapes[sh][1], act = ACTS[ai];
        size_t n = (size_t)m * c, cs = sizeof(float) * (size_t)c, ns = sizeof(float) * n;
        float *x = malloc(ns), *dy = malloc(ns), *norm = malloc(ns), *y = malloc(ns);
        float *g = malloc(ns), *rdx = malloc(ns), *dx = malloc(ns);
        float *pc = malloc(5 * cs), *rgr = calloc(2 * (size_t)c, sizeof(float)),
              *gr = malloc(2 * cs);
        float *mu = pc, *k = pc + c, *b = pc + 2 * c, *invstd = pc + 3 * c, *gamma = pc + 4 * c;
        random_bn_saved(c, pc);
        for (size_t i = 0; i < n; i++) {
          x[i] = mu[i % (size_t)c] + rng_uniform(-3.0f, 3.0f);
          dy[i] = rng_uniform(-1.0f, 1.0f);
        }
        mpnas__engine e1 = {.k = tables[ti], .threads = 1};
        mpnas__bn_act_reapply(&e1, m, c, x, mu, k, b, act, norm, y);
        int from_y = act == MPNAS__ACT_RELU || act == MPNAS__ACT_RELU6;
        mpnas__act_bwd(&e1, act, n, from_y ? y : norm, dy, g);
        mpnas__bn_bwd(&e1, NULL, m, c, x, gamma, mu, invstd, NULL, g, rdx, rgr, rgr + c);
        const mpnas__bn_act fwd = {mu, k, b, act};
        mpnas__workers one = {sum_over_one, NULL};
        for (int v = 0; v < 5; v++) { /* 1, 2, 3 threads; in place; over workers */
          mpnas__engine e = {.k = tables[ti], .threads = v < 3 ? v + 1 : 2};
          if (v == 4) e.workers = &one;
          memset(gr, 0, 2 * cs);
          const float *in = dy;
          if (v == 3) {
            memcpy(dx, dy, ns);
            in = dx;
          }
          CHECK_EQ_INT(mpnas__bn_bwd(&e, &ws, m, c, x, gamma, mu, invstd, &fwd, in, dx, gr,
                                     gr + c),
                       MPNAS_OK);
          CHECK_MSG(!memcmp(dx, rdx, ns) && !memcmp(gr, rgr, 2 * cs),
                    "%s bn_bwd with %s m=%d c=%d (case %d) differs from act_bwd then bn_bwd",
                    tables[ti]->name, act_name(act), m, c, v);
        }
        CHECK_EQ_INT(mpnas__arena_reset(&ws), MPNAS_OK);
        free(x), free(dy), free(norm), free(y), free(g), free(rdx), free(dx);
        free(pc), free(rgr), free(gr);
      }
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

/* ---- The ops: statistics taken while a conv produces its output -----------------------
 * mpnas__pw_fwd_stats / mpnas__dw_fwd_stats (ops_conv.c) and mpnas__bn_stats: the same
 * output as the plain op, statistics within the kernels' tolerance of a double
 * reference, the same bits for 1, 2 and 3 threads (including the fallback taken when
 * there are fewer row chunks than threads), and, through mpnas__bn_act_apply, the
 * output of mpnas__bn_act_fwd_train up to rounding. */

/* Mean and m2 of y [m][c] in double, two passes. */
static void stats_ref(int m, int c, const float *y, double *mean, double *m2) {
  for (int j = 0; j < c; j++) {
    double s = 0.0, q = 0.0;
    for (int i = 0; i < m; i++) s += y[(size_t)i * c + j];
    mean[j] = s / m;
    for (int i = 0; i < m; i++) {
      double d = y[(size_t)i * c + j] - mean[j];
      q += d * d;
    }
    m2[j] = q;
  }
}

/* The statistics of one output against the reference; the kernels' tolerance. */
static int stats_close(int m, int c, const float *y, const double *mean, const double *m2) {
  double *rm = malloc(sizeof(double) * (size_t)c), *rq = malloc(sizeof(double) * (size_t)c);
  stats_ref(m, c, y, rm, rq);
  int bad = 0;
  for (int j = 0; j < c; j++) {
    double sd = sqrt(rq[j] / m);
    bad += fabs(mean[j] - rm[j]) > 1e-6 * sd + 1e-9 * fabs(rm[j]) + 1e-30;
    bad += fabs(m2[j] - rq[j]) > 2e-5 * rq[j] + 1e-12 * m * rm[j] * rm[j] + 1e-30;
  }
  free(rm);
  free(rq);
  return bad;
}

/* BN + activation + residual from the statistics against mpnas__bn_act_fwd_train then
 * the residual add: largest difference relative to 1 + |y|. */
static double apply_vs_train(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                             const float *y, const double *mean, const double *m2,
                             const float *res, int act) {
  size_t n = (size_t)m * c;
  float *g = malloc(sizeof(float) * (size_t)c), *b = malloc(sizeof(float) * (size_t)c);
  float *sm = malloc(sizeof(float) * (size_t)c), *si = malloc(sizeof(float) * (size_t)c);
  float *sm2 = malloc(sizeof(float) * (size_t)c), *si2 = malloc(sizeof(float) * (size_t)c);
  float *o1 = malloc(sizeof(float) * n), *o2 = malloc(sizeof(float) * n);
  for (int j = 0; j < c; j++) g[j] = 0.5f + 0.01f * (float)j, b[j] = 0.1f * (float)(j % 5);
  CHECK_EQ_INT(mpnas__bn_act_apply(eng, ws, m, c, y, mean, m2,
                                   &(mpnas__bn_train){g, b, 1e-3f, 0.1f, NULL, NULL, sm, si}, act,
                                   res, NULL, o1),
               MPNAS_OK);
  mpnas__bn_act_fwd_train(eng, m, c, y, &(mpnas__bn_train){g, b, 1e-3f, 0.1f, NULL, NULL, sm2, si2},
                          act, NULL, o2);
  if (res != NULL) mpnas__add_fwd(n, o2, res, o2);
  double worst = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)o1[i] - o2[i]) / (1.0 + fabs(o2[i]));
    if (!(d <= worst)) worst = d;
  }
  for (int j = 0; j < c; j++) {
    double d = fabs((double)si[j] - si2[j]) / si2[j] + fabs((double)sm[j] - sm2[j]) * si2[j];
    if (!(d <= worst)) worst = d;
  }
  free(g), free(b), free(sm), free(si), free(sm2), free(si2), free(o1), free(o2);
  return worst;
}

static void test_fused_stats_ops(void) {
  mpnas_context *ctx;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  static const int threads[] = {1, 2, 3};
  /* Pointwise: m over several chunks, one row past a block, one block, fewer blocks than
   * threads, a single row; c around the vector widths and groups. */
  const int pw[][3] = {{5000, 16, 24}, {2305, 9, 70}, {257, 33, 5}, {256, 12, 17}, {1, 3, 8}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int s = 0; s < COUNT(pw); s++) {
      int m = pw[s][0], cin = pw[s][1], cout = pw[s][2];
      size_t nx = (size_t)m * cin, ny = (size_t)m * cout;
      float *x = malloc(sizeof(float) * nx), *w = malloc(sizeof(float) * (size_t)cin * cout);
      float *ref = malloc(sizeof(float) * ny), *y = malloc(sizeof(float) * ny);
      float *y1 = malloc(sizeof(float) * ny), *res = malloc(sizeof(float) * ny);
      double *mean = malloc(sizeof(double) * (size_t)cout), *m2 = malloc(sizeof(double) * (size_t)cout);
      double *mean1 = malloc(sizeof(double) * (size_t)cout), *m21 = malloc(sizeof(double) * (size_t)cout);
      for (size_t i = 0; i < nx; i++) x[i] = (i % (size_t)cin == 0 ? 300.0f : 0.0f) + rng_uniform(-1, 1);
      for (size_t i = 0; i < (size_t)cin * cout; i++) w[i] = rng_uniform(-0.5f, 0.5f);
      for (size_t i = 0; i < ny; i++) res[i] = rng_uniform(-1, 1);
      for (int k = 0; k < COUNT(threads); k++) {
        mpnas__engine e = {.k = tables[ti], .threads = threads[k]};
        CHECK_EQ_INT(mpnas__pw_fwd(&e, &ws, m, cin, cout, x, w, NULL, NULL, 0, NULL, ref), MPNAS_OK);
        CHECK_EQ_INT(mpnas__pw_fwd_stats(&e, &ws, m, cin, cout, x, w, y, mean, m2), MPNAS_OK);
        CHECK_MSG(!memcmp(y, ref, sizeof(float) * ny), "%s pw m=%d %d->%d thr %d: output differs",
                  tables[ti]->name, m, cin, cout, threads[k]);
        CHECK_MSG(stats_close(m, cout, y, mean, m2) == 0, "%s pw m=%d %d->%d thr %d: statistics",
                  tables[ti]->name, m, cin, cout, threads[k]);
        if (k == 0) {
          memcpy(y1, y, sizeof(float) * ny);
          memcpy(mean1, mean, sizeof(double) * (size_t)cout);
          memcpy(m21, m2, sizeof(double) * (size_t)cout);
          double d = apply_vs_train(&e, &ws, m, cout, y, mean, m2, res, MPNAS__ACT_HSWISH);
          CHECK_MSG(d <= 2e-6, "%s pw m=%d %d->%d: BN from the statistics vs training BN %g",
                    tables[ti]->name, m, cin, cout, d);
          /* mpnas__bn_stats over the finished output: the same blocks, the same bits. */
          CHECK_EQ_INT(mpnas__bn_stats(&e, &ws, m, cout, y, mean, m2), MPNAS_OK);
          CHECK(!memcmp(mean, mean1, sizeof(double) * (size_t)cout) &&
                !memcmp(m2, m21, sizeof(double) * (size_t)cout));
        } else {
          CHECK_MSG(!memcmp(mean, mean1, sizeof(double) * (size_t)cout) &&
                        !memcmp(m2, m21, sizeof(double) * (size_t)cout),
                    "%s pw m=%d %d->%d: %d threads' statistics differ from 1's", tables[ti]->name,
                    m, cin, cout, threads[k]);
          mpnas__engine e2 = {.k = tables[ti], .threads = threads[k]};
          CHECK_EQ_INT(mpnas__bn_stats(&e2, &ws, m, cout, y, mean, m2), MPNAS_OK);
          CHECK(!memcmp(mean, mean1, sizeof(double) * (size_t)cout));
        }
        CHECK_EQ_INT(mpnas__arena_reset(&ws), MPNAS_OK);
      }
      free(x), free(w), free(ref), free(y), free(y1), free(res);
      free(mean), free(m2), free(mean1), free(m21);
    }
  /* Depthwise: output widths dividing 256 and not (blocks of whole rows across images),
   * wider than a block, stride 2, a single image. {n, h, w, c, k, stride} */
  const int dw[][6] = {{16, 16, 16, 24, 3, 1}, {9, 12, 12, 13, 5, 1}, {4, 9, 7, 33, 3, 2},
                       {2, 3, 300, 8, 3, 1}, {1, 5, 5, 70, 7, 1}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int s = 0; s < COUNT(dw); s++) {
      int n = dw[s][0], h = dw[s][1], w = dw[s][2], c = dw[s][3], k = dw[s][4], st = dw[s][5];
      int ho = (h + st - 1) / st, wo = (w + st - 1) / st, m = n * ho * wo;
      size_t nx = (size_t)n * h * w * c, ny = (size_t)m * c;
      float *x = malloc(sizeof(float) * nx), *wt = malloc(sizeof(float) * (size_t)k * k * c);
      float *ref = malloc(sizeof(float) * ny), *y = malloc(sizeof(float) * ny);
      double *mean = malloc(sizeof(double) * (size_t)c), *m2 = malloc(sizeof(double) * (size_t)c);
      double *mean1 = malloc(sizeof(double) * (size_t)c), *m21 = malloc(sizeof(double) * (size_t)c);
      for (size_t i = 0; i < nx; i++) x[i] = (i % (size_t)c == 1 ? -50.0f : 0.0f) + rng_uniform(-1, 1);
      for (size_t i = 0; i < (size_t)k * k * c; i++) wt[i] = rng_uniform(-0.5f, 0.5f);
      for (int t = 0; t < COUNT(threads); t++) {
        mpnas__engine e = {.k = tables[ti], .threads = threads[t]};
        CHECK_EQ_INT(mpnas__dw_fwd(&e, n, h, w, c, k, st, x, wt, NULL, NULL, 0, ref), MPNAS_OK);
        CHECK_EQ_INT(mpnas__dw_fwd_stats(&e, &ws, n, h, w, c, k, st, x, wt, y, mean, m2),
                     MPNAS_OK);
        CHECK_MSG(!memcmp(y, ref, sizeof(float) * ny), "%s dw %dx%dx%dx%d k%d s%d thr %d: output",
                  tables[ti]->name, n, h, w, c, k, st, threads[t]);
        CHECK_MSG(stats_close(m, c, y, mean, m2) == 0, "%s dw %dx%dx%dx%d k%d s%d thr %d: stats",
                  tables[ti]->name, n, h, w, c, k, st, threads[t]);
        if (t == 0) {
          memcpy(mean1, mean, sizeof(double) * (size_t)c);
          memcpy(m21, m2, sizeof(double) * (size_t)c);
          double d = apply_vs_train(&e, &ws, m, c, y, mean, m2, NULL, MPNAS__ACT_RELU6);
          CHECK_MSG(d <= 2e-6, "%s dw %dx%dx%dx%d: BN from the statistics vs training BN %g",
                    tables[ti]->name, n, h, w, c, d);
        } else {
          CHECK_MSG(!memcmp(mean, mean1, sizeof(double) * (size_t)c) &&
                        !memcmp(m2, m21, sizeof(double) * (size_t)c),
                    "%s dw %dx%dx%dx%d: %d threads' statistics differ from 1's",
                    tables[ti]->name, n, h, w, c, threads[t]);
        }
        CHECK_EQ_INT(mpnas__arena_reset(&ws), MPNAS_OK);
      }
      free(x), free(wt), free(ref), free(y), free(mean), free(m2), free(mean1), free(m21);
    }
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

/* mpnas__pw_fwd_stats_bn_in: the product of BN + activation of x, each row block
 * normalised just before its product, against mpnas__bn_act_apply_keep into a tensor
 * then mpnas__pw_fwd_stats: the same output, statistics and saved coefficients bit for
 * bit, on every table, for 1, 2 and 3 threads (the fused chunks and the plain split), for
 * m around the 64-row buffer and the 256-row blocks, and channel counts around the
 * vector widths; the running statistics updated alike. */
static void test_pw_fwd_stats_bn_in(void) {
  mpnas_context *ctx;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  static const int threads[] = {1, 2, 3};
  static const int acts[] = {MPNAS__ACT_RELU6, MPNAS__ACT_HSWISH, MPNAS__ACT_NONE};
  /* {m, cin, cout} */
  const int pw[][3] = {{5000, 16, 24}, {1031, 37, 9}, {257, 96, 17}, {64, 8, 8}, {65, 5, 33},
                       {1, 3, 8}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int s = 0; s < COUNT(pw); s++) {
      int m = pw[s][0], cin = pw[s][1], cout = pw[s][2], act = acts[s % COUNT(acts)];
      size_t nx = (size_t)m * cin, ny = (size_t)m * cout;
      float *x = malloc(sizeof(float) * nx), *xn = malloc(sizeof(float) * nx);
      float *w = malloc(sizeof(float) * (size_t)cin * cout);
      float *ref = malloc(sizeof(float) * ny), *y = malloc(sizeof(float) * ny);
      float *par = malloc(sizeof(float) * 10 * (size_t)cin); /* gamma beta rm rv rm2 rv2 ... */
      double *xm = malloc(sizeof(double) * 2 * (size_t)cin);
      double *mean = malloc(sizeof(double) * 2 * (size_t)cout), *m2 = mean + cout;
      double *rmean = malloc(sizeof(double) * 2 * (size_t)cout), *rm2 = rmean + cout;
      float *coef = malloc(sizeof(float) * 3 * (size_t)cin);
      for (size_t i = 0; i < nx; i++) x[i] = (i % (size_t)cin == 0 ? 20.0f : 0.0f) + rng_uniform(-3, 3);
      for (size_t i = 0; i < (size_t)cin * cout; i++) w[i] = rng_uniform(-0.5f, 0.5f);
      float *gamma = par, *beta = par + cin, *rm = par + 2 * cin, *rv = par + 3 * cin;
      float *rm2_ = par + 4 * cin, *rv2 = par + 5 * cin, *sm = par + 6 * cin, *si = par + 7 * cin;
      for (int j = 0; j < cin; j++) {
        gamma[j] = 0.5f + 0.01f * (float)j, beta[j] = 0.1f * (float)(j % 5);
        rm[j] = rm2_[j] = 0.25f, rv[j] = rv2[j] = 2.0f;
      }
      float *sk = malloc(sizeof(float) * 4 * (size_t)cin), *sb = sk + cin, *sk2 = sb + cin,
            *sb2 = sk2 + cin;
      for (int k = 0; k < COUNT(threads); k++) {
        mpnas__engine e = {.k = tables[ti], .threads = threads[k]};
        CHECK_EQ_INT(mpnas__bn_stats(&e, &ws, m, cin, x, xm, xm + cin), MPNAS_OK);
        /* The two steps: BN + activation into a tensor, then its product. */
        mpnas__bn_train bt = {gamma, beta, 1e-3f, 0.1f, rm, rv, sm, si};
        CHECK_EQ_INT(mpnas__bn_act_apply_keep(&e, &ws, m, cin, x, xm, xm + cin, &bt, act, NULL,
                                              NULL, xn, sk, sb),
                     MPNAS_OK);
        CHECK_EQ_INT(mpnas__pw_fwd_stats(&e, &ws, m, cin, cout, xn, w, ref, rmean, rm2), MPNAS_OK);
        /* In one. */
        float *mu = coef, *kk = coef + cin, *bb = coef + 2 * cin;
        mpnas__bn_train bt2 = {gamma, beta, 1e-3f, 0.1f, rm2_, rv2, NULL, NULL};
        CHECK_EQ_INT(mpnas__bn_coeffs(&e, &ws, m, cin, xm, xm + cin, &bt2, mu, kk, bb, sk2, sb2),
                     MPNAS_OK);
        mpnas__bn_act in = {mu, kk, bb, act};
        CHECK_EQ_INT(mpnas__pw_fwd_stats_bn_in(&e, &ws, m, cin, cout, x, &in, w, y, mean, m2),
                     MPNAS_OK);
        CHECK_MSG(!memcmp(y, ref, sizeof(float) * ny) &&
                      !memcmp(mean, rmean, sizeof(double) * 2 * (size_t)cout),
                  "%s pw bn_in m=%d %d->%d thr %d: output or statistics differ", tables[ti]->name,
                  m, cin, cout, threads[k]);
        CHECK_MSG(!memcmp(mu, sm, sizeof(float) * (size_t)cin) &&
                      !memcmp(sk, sk2, sizeof(float) * 2 * (size_t)cin) &&
                      !memcmp(rm, rm2_, sizeof(float) * (size_t)cin) &&
                      !memcmp(rv, rv2, sizeof(float) * (size_t)cin),
                  "%s pw bn_in m=%d thr %d: coefficients or running statistics differ",
                  tables[ti]->name, m, threads[k]);
        CHECK_EQ_INT(mpnas__arena_reset(&ws), MPNAS_OK);
      }
      free(x), free(xn), free(w), free(ref), free(y), free(par), free(xm), free(mean);
      free(rmean), free(coef), free(sk);
    }
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

/* mpnas__conv_fwd_stats and mpnas__conv_fwd (a few im2col rows at a time in a buffer,
 * each followed by its product) against the whole im2col matrix made here and one call of
 * the table's GEMM over it, then mpnas__bn_stats: the same output and statistics bit for
 * bit, with and without an epilogue, on every table, for 1, 2 and 3 threads; strides 1
 * and 2, kernels 3 to 7, pixel counts around the 64-row buffer and the 256-row blocks,
 * blocks across images, a 1x1 image, cin 1 to 16 and cout around the vector widths. */
static void test_conv_fwd_stats(void) {
  mpnas_context *ctx;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  static const int threads[] = {1, 2, 3};
  /* {n, h, w, cin, cout, k, stride} */
  const int cv[][7] = {{3, 32, 32, 3, 16, 3, 1}, {2, 33, 31, 3, 8, 3, 2}, {1, 9, 7, 5, 33, 5, 1},
                       {4, 8, 8, 16, 24, 3, 2},  {1, 1, 1, 3, 8, 3, 1},   {5, 20, 20, 1, 17, 7, 1},
                       {7, 13, 11, 4, 40, 3, 2}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int sh = 0; sh < COUNT(cv); sh++) {
      int n = cv[sh][0], h = cv[sh][1], w = cv[sh][2], cin = cv[sh][3], cout = cv[sh][4];
      int k = cv[sh][5], st = cv[sh][6], pad = k / 2;
      int ho = (h + st - 1) / st, wo = (w + st - 1) / st, m = n * ho * wo, kkc = k * k * cin;
      size_t nx = (size_t)n * h * w * cin, ny = (size_t)m * cout;
      float *x = malloc(sizeof(float) * nx), *wt = malloc(sizeof(float) * (size_t)kkc * cout);
      float *col = malloc(sizeof(float) * (size_t)m * kkc);
      float *packed = malloc(sizeof(float) * tables[ti]->gemm_packed_floats(kkc, cout));
      float *ref = malloc(sizeof(float) * ny), *y = malloc(sizeof(float) * ny);
      float *sc = malloc(sizeof(float) * 2 * (size_t)cout), *sf = sc + cout;
      double *rmean = malloc(sizeof(double) * 4 * (size_t)cout), *mean = rmean + 2 * cout;
      for (size_t i = 0; i < nx; i++) x[i] = rng_uniform(-2, 2);
      for (size_t i = 0; i < (size_t)kkc * cout; i++) wt[i] = rng_uniform(-0.5f, 0.5f);
      for (int j = 0; j < cout; j++) sc[j] = 0.5f + 0.01f * (float)j, sf[j] = 0.1f * (float)(j % 3);
      for (int i = 0, p = 0; i < n; i++)
        for (int oy = 0; oy < ho; oy++)
          for (int ox = 0; ox < wo; ox++, p++)
            for (int ky = 0; ky < k; ky++)
              for (int kx = 0; kx < k; kx++)
                for (int c = 0; c < cin; c++) {
                  int iy = oy * st + ky - pad, ix = ox * st + kx - pad;
                  int inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
                  col[(size_t)p * kkc + (ky * k + kx) * cin + c] =
                      inside ? x[(((size_t)i * h + iy) * w + ix) * cin + c] : 0.0f;
                }
      tables[ti]->gemm_pack(kkc, cout, wt, packed);
      for (int t = 0; t < COUNT(threads); t++) {
        mpnas__engine e = {.k = tables[ti], .threads = threads[t]};
        tables[ti]->gemm(m, kkc, cout, col, packed, NULL, NULL, MPNAS__ACT_NONE, NULL, ref);
        CHECK_EQ_INT(mpnas__bn_stats(&e, &ws, m, cout, ref, rmean, rmean + cout), MPNAS_OK);
        memset(y, 0, sizeof(float) * ny);
        CHECK_EQ_INT(mpnas__conv_fwd_stats(&e, &ws, n, h, w, cin, cout, k, st, x, wt, y, mean,
                                           mean + cout),
                     MPNAS_OK);
        CHECK_MSG(!memcmp(y, ref, sizeof(float) * ny) &&
                      !memcmp(mean, rmean, sizeof(double) * 2 * (size_t)cout),
                  "%s conv %dx%dx%dx%d->%d k%d s%d thr %d: output or statistics differ",
                  tables[ti]->name, n, h, w, cin, cout, k, st, threads[t]);
        tables[ti]->gemm(m, kkc, cout, col, packed, sc, sf, MPNAS__ACT_RELU6, NULL, ref);
        CHECK_EQ_INT(mpnas__conv_fwd(&e, &ws, n, h, w, cin, cout, k, st, x, wt, sc, sf,
                                     MPNAS__ACT_RELU6, y),
                     MPNAS_OK);
        CHECK_MSG(!memcmp(y, ref, sizeof(float) * ny),
                  "%s conv %dx%dx%dx%d->%d k%d s%d thr %d: output with epilogue differs",
                  tables[ti]->name, n, h, w, cin, cout, k, st, threads[t]);
        CHECK_EQ_INT(mpnas__arena_reset(&ws), MPNAS_OK);
      }
      free(x), free(wt), free(col), free(packed), free(ref), free(y), free(sc), free(rmean);
    }
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

/* mpnas__dw_fwd_stats_bn_in against mpnas__bn_act_apply_keep into a tensor then
 * mpnas__dw_fwd_stats: the same output and statistics bit for bit, on every table, for
 * 1, 2 and 3 threads; strides 1 and 2, kernel sizes 3 to 7, output widths dividing 256
 * and not (blocks across images), a row wider than a block, a single image, an image
 * shorter than the kernel. */
static void test_dw_fwd_stats_bn_in(void) {
  mpnas_context *ctx;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  static const int threads[] = {1, 2, 3};
  static const int acts[] = {MPNAS__ACT_RELU6, MPNAS__ACT_HSWISH, MPNAS__ACT_RELU};
  /* {n, h, w, c, k, stride} */
  const int dw[][6] = {{16, 16, 16, 24, 3, 1}, {9, 12, 12, 13, 5, 1}, {4, 9, 7, 33, 3, 2},
                       {2, 3, 300, 8, 3, 1},   {1, 5, 5, 70, 7, 1},   {3, 2, 6, 17, 5, 2},
                       {5, 32, 32, 16, 3, 2}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int sh = 0; sh < COUNT(dw); sh++) {
      int n = dw[sh][0], h = dw[sh][1], w = dw[sh][2], c = dw[sh][3], k = dw[sh][4];
      int st = dw[sh][5], act = acts[sh % COUNT(acts)];
      int ho = (h + st - 1) / st, wo = (w + st - 1) / st, m = n * h * w;
      size_t nx = (size_t)m * c, ny = (size_t)n * ho * wo * c;
      float *x = malloc(sizeof(float) * nx), *xn = malloc(sizeof(float) * nx);
      float *wt = malloc(sizeof(float) * (size_t)k * k * c);
      float *ref = malloc(sizeof(float) * ny), *y = malloc(sizeof(float) * ny);
      float *par = malloc(sizeof(float) * 8 * (size_t)c);
      float *gamma = par, *beta = par + c, *sm = par + 2 * c, *si = par + 3 * c;
      float *mu = par + 4 * c, *kk = par + 5 * c, *bb = par + 6 * c;
      double *xm = malloc(sizeof(double) * 2 * (size_t)c);
      double *mean = malloc(sizeof(double) * 4 * (size_t)c), *rmean = mean + 2 * c;
      for (size_t i = 0; i < nx; i++) x[i] = (i % (size_t)c == 2 ? -9.0f : 0.0f) + rng_uniform(-3, 3);
      for (size_t i = 0; i < (size_t)k * k * c; i++) wt[i] = rng_uniform(-0.5f, 0.5f);
      for (int j = 0; j < c; j++) gamma[j] = 0.5f + 0.02f * (float)j, beta[j] = 0.2f * (float)(j % 3);
      for (int t = 0; t < COUNT(threads); t++) {
        mpnas__engine e = {.k = tables[ti], .threads = threads[t]};
        CHECK_EQ_INT(mpnas__bn_stats(&e, &ws, m, c, x, xm, xm + c), MPNAS_OK);
        mpnas__bn_train bt = {gamma, beta, 1e-3f, 0.1f, NULL, NULL, sm, si};
        CHECK_EQ_INT(mpnas__bn_act_apply_keep(&e, &ws, m, c, x, xm, xm + c, &bt, act, NULL, NULL,
                                              xn, NULL, NULL),
                     MPNAS_OK);
        CHECK_EQ_INT(mpnas__dw_fwd_stats(&e, &ws, n, h, w, c, k, st, xn, wt, ref, rmean,
                                         rmean + c),
                     MPNAS_OK);
        mpnas__bn_train bt2 = {gamma, beta, 1e-3f, 0.1f, NULL, NULL, NULL, NULL};
        CHECK_EQ_INT(mpnas__bn_coeffs(&e, &ws, m, c, xm, xm + c, &bt2, mu, kk, bb, NULL, NULL),
                     MPNAS_OK);
        mpnas__bn_act in = {mu, kk, bb, act};
        CHECK_EQ_INT(mpnas__dw_fwd_stats_bn_in(&e, &ws, n, h, w, c, k, st, x, &in, wt, y, mean,
                                               mean + c),
                     MPNAS_OK);
        CHECK_MSG(!memcmp(y, ref, sizeof(float) * ny) &&
                      !memcmp(mean, rmean, sizeof(double) * 2 * (size_t)c),
                  "%s dw bn_in %dx%dx%dx%d k%d s%d thr %d: output or statistics differ",
                  tables[ti]->name, n, h, w, c, k, st, threads[t]);
        CHECK_EQ_INT(mpnas__arena_reset(&ws), MPNAS_OK);
      }
      free(x), free(xn), free(wt), free(ref), free(y), free(par), free(xm), free(mean);
    }
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

/* mpnas__expand_dw_fwd_stats (the expand conv's output made a few rows at a time into the
 * depthwise's image buffer) against mpnas__pw_fwd into a tensor then
 * mpnas__dw_fwd_stats_bn_in: the same output and statistics bit for bit, on every table,
 * 1-3 threads; input channels not a multiple of a vector, strides 1 and 2, kernels 3-7,
 * output widths dividing 256 and not, a row wider than a block, one image. */
static void test_expand_dw_fwd_stats(void) {
  mpnas_context *ctx;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  static const int threads[] = {1, 2, 3};
  static const int acts[] = {MPNAS__ACT_RELU6, MPNAS__ACT_HSWISH, MPNAS__ACT_RELU};
  /* {n, h, w, cin, c, k, stride} */
  const int sh[][7] = {{6, 16, 16, 8, 48, 3, 1}, {3, 12, 12, 5, 30, 5, 2}, {4, 9, 7, 17, 51, 7, 1},
                       {2, 3, 300, 3, 16, 3, 1}, {1, 8, 8, 24, 144, 3, 2}, {5, 32, 32, 16, 96, 3, 2}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int q = 0; q < COUNT(sh); q++) {
      int n = sh[q][0], h = sh[q][1], w = sh[q][2], cin = sh[q][3], c = sh[q][4], k = sh[q][5];
      int st = sh[q][6], act = acts[q % COUNT(acts)];
      int ho = (h + st - 1) / st, wo = (w + st - 1) / st, m = n * h * w;
      size_t nx = (size_t)m * cin, ne = (size_t)m * c, ny = (size_t)n * ho * wo * c;
      float *x = malloc(sizeof(float) * nx), *ew = malloc(sizeof(float) * (size_t)cin * c);
      float *e_pre = malloc(sizeof(float) * ne), *wt = malloc(sizeof(float) * (size_t)k * k * c);
      float *ref = malloc(sizeof(float) * ny), *y = malloc(sizeof(float) * ny);
      float *coef = malloc(sizeof(float) * 5 * (size_t)c);
      float *gamma = coef, *beta = coef + c, *mu = coef + 2 * c, *kk = coef + 3 * c;
      float *bb = coef + 4 * c;
      double *em = malloc(sizeof(double) * 6 * (size_t)c), *mean = em + 2 * c, *rmean = em + 4 * c;
      for (size_t i = 0; i < nx; i++) x[i] = rng_uniform(-1, 3);
      for (size_t i = 0; i < (size_t)cin * c; i++) ew[i] = rng_uniform(-0.5f, 0.5f);
      for (size_t i = 0; i < (size_t)k * k * c; i++) wt[i] = rng_uniform(-0.5f, 0.5f);
      for (int j = 0; j < c; j++) gamma[j] = 0.5f + 0.02f * (float)j, beta[j] = 0.2f * (float)(j % 3);
      for (int t = 0; t < COUNT(threads); t++) {
        mpnas__engine e = {.k = tables[ti], .threads = threads[t]};
        CHECK_EQ_INT(mpnas__pw_fwd(&e, &ws, m, cin, c, x, ew, NULL, NULL, MPNAS__ACT_NONE, NULL,
                                   e_pre),
                     MPNAS_OK);
        CHECK_EQ_INT(mpnas__bn_stats(&e, &ws, m, c, e_pre, em, em + c), MPNAS_OK);
        mpnas__bn_train bt = {gamma, beta, 1e-3f, 0.1f, NULL, NULL, NULL, NULL};
        CHECK_EQ_INT(mpnas__bn_coeffs(&e, &ws, m, c, em, em + c, &bt, mu, kk, bb, NULL, NULL),
                     MPNAS_OK);
        mpnas__bn_act in = {mu, kk, bb, act};
        CHECK_EQ_INT(mpnas__dw_fwd_stats_bn_in(&e, &ws, n, h, w, c, k, st, e_pre, &in, wt, ref,
                                               rmean, rmean + c),
                     MPNAS_OK);
        memset(y, 0xff, sizeof(float) * ny);
        CHECK_EQ_INT(mpnas__expand_dw_fwd_stats(&e, &ws, n, h, w, cin, c, k, st, x, ew, &in, wt,
                                                y, mean, mean + c),
                     MPNAS_OK);
        CHECK_MSG(!memcmp(y, ref, sizeof(float) * ny) &&
                      !memcmp(mean, rmean, sizeof(double) * 2 * (size_t)c),
                  "%s expand+dw %dx%dx%dx%d->%d k%d s%d thr %d: output or statistics differ",
                  tables[ti]->name, n, h, w, cin, c, k, st, threads[t]);
        CHECK_EQ_INT(mpnas__arena_reset(&ws), MPNAS_OK);
      }
      free(x), free(ew), free(e_pre), free(wt), free(ref), free(y), free(coef), free(em);
    }
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

/* mpnas__pw_out_moments against the statistics of the product computed in double (two
 * passes): means within 1e-7 of the channel's spread and size, sums of squared deviations
 * within 1e-5 relative, on every table; bit-identical for 1-3 threads. Inputs with a
 * channel far off zero (the centring), rows short of a block, one row; a constant input
 * and a zero weight column give exactly zero spread; a NaN input gives NaN statistics. */
static void test_pw_out_moments(void) {
  mpnas_context *ctx;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  /* {m, cin, cout} */
  static const int sh[][3] = {{1, 3, 8}, {255, 16, 48}, {257, 5, 17}, {4099, 24, 144}, {20000, 8, 40}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int q = 0; q < COUNT(sh); q++)
      for (int constant = 0; constant < 2; constant++) {
        int m = sh[q][0], cin = sh[q][1], cout = sh[q][2];
        float *x = malloc(sizeof(float) * (size_t)m * cin);
        float *w = malloc(sizeof(float) * (size_t)cin * cout);
        double *y = malloc(sizeof(double) * (size_t)m);
        double *st = malloc(sizeof(double) * 6 * (size_t)cout), *ref = st + 2 * cout;
        double *first = st + 4 * cout;
        for (size_t i = 0; i < (size_t)m * cin; i++)
          x[i] = constant ? 1.5f + (float)(i % (size_t)cin)
                          : rng_uniform(-1, 2) + (i % (size_t)cin == 1 ? 100.0f : 0.0f);
        for (size_t i = 0; i < (size_t)cin * cout; i++)
          w[i] = i % (size_t)cout == 3 ? 0.0f : rng_uniform(-0.5f, 0.5f);
        for (int j = 0; j < cout; j++) {
          double sum = 0.0, dev = 0.0;
          for (int i = 0; i < m; i++) {
            double v = 0.0;
            for (int p = 0; p < cin; p++)
              v += (double)x[(size_t)i * cin + p] * w[(size_t)p * cout + j];
            y[i] = v, sum += v;
          }
          for (int i = 0; i < m; i++) dev += (y[i] - sum / m) * (y[i] - sum / m);
          ref[j] = sum / m, ref[cout + j] = dev;
        }
        for (int threads = 1; threads <= 3; threads++) {
          mpnas__engine e = {.k = tables[ti], .threads = threads};
          CHECK_EQ_INT(mpnas__pw_out_moments(&e, &ws, m, cin, cout, x, w, st, st + cout),
                       MPNAS_OK);
          CHECK_EQ_INT(ws.used, 0);
          if (threads == 1) memcpy(first, st, sizeof(double) * 2 * (size_t)cout);
          else
            CHECK_MSG(!memcmp(first, st, sizeof(double) * 2 * (size_t)cout),
                      "%s moments m=%d thr %d differ from 1 thread", tables[ti]->name, m,
                      threads);
        }
        for (int j = 0; j < cout; j++) {
          double spread = sqrt(ref[cout + j] / m);
          CHECK_MSG(fabs(st[j] - ref[j]) <= 1e-7 * (spread + fabs(ref[j]) + 1.0),
                    "%s moments m=%d %d->%d ch %d: mean %.9g vs %.9g", tables[ti]->name, m, cin,
                    cout, j, st[j], ref[j]);
          CHECK_MSG(fabs(st[cout + j] - ref[cout + j]) <= 1e-5 * ref[cout + j] + 1e-12 * m,
                    "%s moments m=%d %d->%d ch %d: m2 %.9g vs %.9g", tables[ti]->name, m, cin,
                    cout, j, st[cout + j], ref[cout + j]);
          if (constant || j == 3)
            CHECK_MSG(st[cout + j] == 0.0, "%s moments m=%d ch %d: spread %g, not 0",
                      tables[ti]->name, m, j, st[cout + j]);
        }
        /* A NaN in the input reaches the statistics (and so the output), as through y. */
        x[(size_t)(m / 2) * cin] = NAN;
        mpnas__engine e = {.k = tables[ti], .threads = 2};
        CHECK_EQ_INT(mpnas__pw_out_moments(&e, &ws, m, cin, cout, x, w, st, st + cout), MPNAS_OK);
        CHECK_MSG(isnan(st[0]) && isnan(st[cout]), "%s moments m=%d: a NaN input gave %g, %g",
                  tables[ti]->name, m, st[0], st[cout]);
        free(x), free(w), free(y), free(st);
      }
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

/* mpnas__pw_bwd_bn_in and mpnas__dw_bwd_bn_in against mpnas__bn_act_reapply into a
 * tensor then mpnas__pw_bwd / mpnas__dw_bwd: the same input and weight gradients bit for
 * bit (the weight gradients accumulate onto nonzero values; the pointwise input gradient
 * also with a residual added in the epilogue against mpnas__add_acc), on every table (the x86
 * ones normalise blocks of rows or single images into buffers, the others the whole
 * input), for 1, 2 and 3 threads; row counts around the kernels' 64-row blocks, a row
 * longer than the buffer's 64 Ki floats (one block at a time), depthwise strides 1 and 2,
 * kernel sizes 3 to 7, an image smaller than the kernel. */
/* mpnas__pw_dx_bn_bwd equals mpnas__pw_bwd's input gradient then mpnas__bn_bwd in place,
 * bit for bit, and with dwt also mpnas__pw_bwd_bn_in's weight gradient (over its prior
 * value): 1, 2 and 3 threads, over workers; rows not a whole number of blocks, chunks of
 * several producer steps (c = 16), c past one 64- and one 256-channel slice, narrow rows;
 * the weight gradient's chunks of rows equal to the BN's (one pass), several in one
 * (1031 rows), cut across two (5000 rows: a pass of its own), split by its own rows (1). */
static void test_pw_dx_bn_bwd(void) {
  mpnas_context *ctx;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  const int shapes[][3] = {{5000, 70, 24}, {4096, 300, 16}, {70000, 16, 8}, {1031, 37, 9},
                           {300, 9, 17},   {1, 3, 8},      {8192, 24, 144}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int sh = 0; sh < COUNT(shapes); sh++) {
      int m = shapes[sh][0], c = shapes[sh][1], cout = shapes[sh][2];
      int act = ACTS[(sh + ti) % COUNT(ACTS)];
      size_t n = (size_t)m * c, cs = sizeof(float) * (size_t)c, ns = sizeof(float) * n;
      float *x = malloc(ns), *dz = malloc(sizeof(float) * (size_t)m * cout);
      float *w = malloc(sizeof(float) * (size_t)c * cout), *rdx = malloc(ns), *dx = malloc(ns);
      float *pc = malloc(5 * cs), *rgr = calloc(2 * (size_t)c, sizeof(float)),
            *gr = malloc(2 * cs);
      float *mu = pc, *k = pc + c, *b = pc + 2 * c, *invstd = pc + 3 * c, *gamma = pc + 4 * c;
      random_bn_saved(c, pc);
      for (size_t i = 0; i < n; i++) x[i] = mu[i % (size_t)c] + rng_uniform(-3.0f, 3.0f);
      for (size_t i = 0; i < (size_t)m * cout; i++) dz[i] = rng_uniform(-1.0f, 1.0f);
      for (size_t i = 0; i < (size_t)c * cout; i++) w[i] = rng_uniform(-0.5f, 0.5f);
      const mpnas__bn_act fwd = {mu, k, b, act};
      mpnas__engine e1 = {.k = tables[ti], .threads = 1};
      CHECK_EQ_INT(mpnas__pw_bwd(&e1, &ws, m, c, cout, x, w, dz, rdx, NULL), MPNAS_OK);
      CHECK_EQ_INT(mpnas__bn_bwd(&e1, &ws, m, c, x, gamma, mu, invstd, &fwd, rdx, rdx, rgr,
                                 rgr + c),
                   MPNAS_OK);
      size_t nw = (size_t)c * cout, wsz = sizeof(float) * nw;
      float *rdwt = malloc(wsz), *dwt = malloc(wsz);
      for (size_t i = 0; i < nw; i++) rdwt[i] = 0.125f * (float)(i % 5);
      CHECK_EQ_INT(mpnas__pw_bwd_bn_in(&e1, &ws, m, c, cout, x, &fwd, w, dz, NULL, NULL, rdwt),
                   MPNAS_OK);
      mpnas__workers one = {sum_over_one, NULL};
      for (int v = 0; v < 8; v++) { /* 1, 2, 3 threads; over workers; x without, with dwt */
        mpnas__engine e = {.k = tables[ti], .threads = v % 4 < 3 ? v % 4 + 1 : 2};
        if (v % 4 == 3) e.workers = &one;
        memset(gr, 0, 2 * cs);
        for (size_t i = 0; i < nw; i++) dwt[i] = 0.125f * (float)(i % 5);
        CHECK_EQ_INT(mpnas__pw_dx_bn_bwd(&e, &ws, m, c, cout, w, dz, x, gamma, mu, invstd, &fwd,
                                         NULL, dx, gr, gr + c, v < 4 ? NULL : dwt),
                     MPNAS_OK);
        CHECK_MSG(!memcmp(dx, rdx, ns) && !memcmp(gr, rgr, 2 * cs),
                  "%s pw_dx_bn_bwd %s m=%d c=%d (case %d) differs from pw_bwd then bn_bwd",
                  tables[ti]->name, act_name(act), m, c, v);
        CHECK_MSG(v < 4 || !memcmp(dwt, rdwt, wsz),
                  "%s pw_dx_bn_bwd m=%d c=%d cout=%d (case %d): weight gradient differs from "
                  "pw_bwd_bn_in's", tables[ti]->name, m, c, cout, v);
      }
      free(rdwt), free(dwt);
      /* With coef: g and the coefficients, which applied give the same dx. */
      float *coef = malloc(3 * cs);
      memset(gr, 0, 2 * cs);
      CHECK_EQ_INT(mpnas__pw_dx_bn_bwd(&e1, &ws, m, c, cout, w, dz, x, gamma, mu, invstd, &fwd,
                                       coef, dx, gr, gr + c, NULL),
                   MPNAS_OK);
      mpnas__bn_bwd_apply_coef(&e1, m, c, x, dx, mu, coef, dx);
      CHECK_MSG(!memcmp(dx, rdx, ns) && !memcmp(gr, rgr, 2 * cs),
                "%s pw_dx_bn_bwd with coef m=%d c=%d differs", tables[ti]->name, m, c);
      free(coef);
      CHECK_EQ_INT(mpnas__arena_reset(&ws), MPNAS_OK);
      free(x), free(dz), free(w), free(rdx), free(dx), free(pc), free(rgr), free(gr);
    }
  /* No rows here, over workers: the sum is still taken, nothing is added, and the
   * coefficients asked for are zero, not left unset. */
  mpnas__workers one = {sum_over_one, NULL};
  mpnas__engine e = {.k = tables[0], .threads = 2, .workers = &one};
  float pc[12] = {0}, gr[8] = {0}, coef[12], w[8] = {0};
  const mpnas__bn_act fwd = {pc, pc + 4, pc + 8, MPNAS__ACT_RELU};
  memset(coef, 0xff, sizeof coef);
  float dwt[8] = {0};
  CHECK_EQ_INT(mpnas__pw_dx_bn_bwd(&e, &ws, 0, 4, 2, w, NULL, NULL, pc, pc, pc, &fwd, coef,
                                   NULL, gr, gr + 4, dwt),
               MPNAS_OK);
  CHECK_EQ_INT(mpnas__dw_dx_bn_bwd(&e, &ws, 0, 3, 3, 4, 3, 1, w, NULL, NULL, pc, pc, pc, &fwd,
                                   coef, NULL, gr, gr + 4),
               MPNAS_OK);
  int nonzero = 0;
  for (int j = 0; j < 12; j++)
    nonzero += coef[j] != 0.0f || (j < 8 && (gr[j] != 0.0f || dwt[j] != 0.0f));
  CHECK_MSG(nonzero == 0, "no rows: %d coefficients or gradients not zero", nonzero);
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

/* mpnas__dw_dx_bn_bwd equals mpnas__dw_bwd's input gradient then mpnas__bn_bwd in place,
 * bit for bit: 1, 2 and 3 threads, over workers; widths that do not divide the BN's
 * block (rows cut between producer calls), strides 1 and 2, k 3 to 7. */
static void test_dw_dx_bn_bwd(void) {
  mpnas_context *ctx;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  const int shapes[][6] = {{3, 18, 18, 40, 3, 1}, {2, 10, 10, 17, 5, 2}, {4, 12, 12, 96, 3, 2},
                           {2, 32, 32, 16, 3, 1}, {1, 5, 6, 33, 7, 1},   {64, 7, 7, 24, 3, 1},
                           {1, 1, 1, 8, 3, 1}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int sh = 0; sh < COUNT(shapes); sh++) {
      const int *d = shapes[sh];
      int n = d[0], h = d[1], w = d[2], c = d[3], k = d[4], stride = d[5];
      int ho = (h + stride - 1) / stride, wo = (w + stride - 1) / stride, m = n * h * w;
      int act = ACTS[(sh + ti) % COUNT(ACTS)];
      size_t nx = (size_t)m * c, ny = (size_t)n * ho * wo * c, nw = (size_t)k * k * c;
      size_t cs = sizeof(float) * (size_t)c, ns = sizeof(float) * nx;
      float *x = malloc(ns), *dz = malloc(sizeof(float) * ny), *w_ = malloc(sizeof(float) * nw);
      float *rdx = malloc(ns), *dx = malloc(ns);
      float *pc = malloc(5 * cs), *rgr = calloc(2 * (size_t)c, sizeof(float)),
            *gr = malloc(2 * cs);
      float *mu = pc, *kk = pc + c, *b = pc + 2 * c, *invstd = pc + 3 * c, *gamma = pc + 4 * c;
      random_bn_saved(c, pc);
      for (size_t i = 0; i < nx; i++) x[i] = mu[i % (size_t)c] + rng_uniform(-3.0f, 3.0f);
      for (size_t i = 0; i < ny; i++) dz[i] = rng_uniform(-1.0f, 1.0f);
      for (size_t i = 0; i < nw; i++) w_[i] = rng_uniform(-0.5f, 0.5f);
      const mpnas__bn_act fwd = {mu, kk, b, act};
      mpnas__engine e1 = {.k = tables[ti], .threads = 1};
      CHECK_EQ_INT(mpnas__dw_bwd(&e1, &ws, n, h, w, c, k, stride, x, w_, dz, rdx, NULL), MPNAS_OK);
      CHECK_EQ_INT(mpnas__bn_bwd(&e1, &ws, m, c, x, gamma, mu, invstd, &fwd, rdx, rdx, rgr,
                                 rgr + c),
                   MPNAS_OK);
      mpnas__workers one = {sum_over_one, NULL};
      for (int v = 0; v < 4; v++) { /* 1, 2, 3 threads; over workers */
        mpnas__engine e = {.k = tables[ti], .threads = v < 3 ? v + 1 : 2};
        if (v == 3) e.workers = &one;
        memset(gr, 0, 2 * cs);
        CHECK_EQ_INT(mpnas__dw_dx_bn_bwd(&e, &ws, n, h, w, c, k, stride, w_, dz, x, gamma, mu,
                                         invstd, &fwd, NULL, dx, gr, gr + c),
                     MPNAS_OK);
        CHECK_MSG(!memcmp(dx, rdx, ns) && !memcmp(gr, rgr, 2 * cs),
                  "%s dw_dx_bn_bwd %s %dx%dx%dx%d k%d s%d (case %d) differs from dw_bwd then "
                  "bn_bwd", tables[ti]->name, act_name(act), n, h, w, c, k, stride, v);
      }
      /* With coef: g and the coefficients, which applied give the same dx. */
      float *coef = malloc(3 * cs);
      memset(gr, 0, 2 * cs);
      CHECK_EQ_INT(mpnas__dw_dx_bn_bwd(&e1, &ws, n, h, w, c, k, stride, w_, dz, x, gamma, mu,
                                       invstd, &fwd, coef, dx, gr, gr + c),
                   MPNAS_OK);
      mpnas__bn_bwd_apply_coef(&e1, m, c, x, dx, mu, coef, dx);
      CHECK_MSG(!memcmp(dx, rdx, ns) && !memcmp(gr, rgr, 2 * cs),
                "%s dw_dx_bn_bwd with coef %dx%dx%dx%d differs", tables[ti]->name, n, h, w, c);
      free(coef);
      CHECK_EQ_INT(mpnas__arena_reset(&ws), MPNAS_OK);
      free(x), free(dz), free(w_), free(rdx), free(dx), free(pc), free(rgr), free(gr);
    }
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

/* mpnas__dw_bwd_bn_dy equals mpnas__bn_bwd_apply_coef then mpnas__dw_bwd_bn_in, bit for
 * bit, g left holding dy: 1, 2 and 3 threads; with and without a BN on the input, with
 * and without the input gradient (made with the sums, or by rows when a thread would
 * have fewer than two images), without the weight gradient (dy made whole); more images
 * than the weight gradient's chunks, one image, strides 1 and 2, k 3 to 7, odd channel
 * counts. */
static void test_dw_bwd_bn_dy(void) {
  mpnas_context *ctx;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  const int shapes[][6] = {{3, 18, 18, 40, 3, 1}, {2, 10, 10, 17, 5, 2}, {20, 12, 12, 96, 3, 2},
                           {1, 5, 6, 33, 7, 1},   {17, 7, 7, 24, 3, 1},  {1, 1, 1, 8, 3, 1}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int sh = 0; sh < COUNT(shapes); sh++) {
      const int *d = shapes[sh];
      int n = d[0], h = d[1], w = d[2], c = d[3], k = d[4], stride = d[5];
      int ho = (h + stride - 1) / stride, wo = (w + stride - 1) / stride;
      int act = ACTS[(sh + ti) % COUNT(ACTS)];
      size_t nx = (size_t)n * h * w * c, ny = (size_t)n * ho * wo * c, nw = (size_t)k * k * c;
      size_t cs = sizeof(float) * (size_t)c, ys = sizeof(float) * ny, ws_ = sizeof(float) * nw;
      size_t xs = sizeof(float) * nx;
      float *x = malloc(xs), *bx = malloc(ys), *g0 = malloc(ys), *rg = malloc(ys);
      float *g = malloc(ys), *w_ = malloc(ws_), *rdx = malloc(xs), *dx = malloc(xs);
      float *rdwt = malloc(ws_), *dwt = malloc(ws_);
      float *pc = malloc(5 * cs), *coef = malloc(3 * cs);
      random_bn_saved(c, pc);
      float *mu = pc, *kk = pc + c, *b = pc + 2 * c;
      for (size_t i = 0; i < nx; i++) x[i] = rng_uniform(-3.0f, 3.0f);
      for (size_t i = 0; i < ny; i++) bx[i] = mu[i % (size_t)c] + rng_uniform(-3.0f, 3.0f);
      for (size_t i = 0; i < ny; i++) g0[i] = rng_uniform(-1.0f, 1.0f);
      for (size_t i = 0; i < nw; i++) w_[i] = rng_uniform(-0.5f, 0.5f);
      for (int j = 0; j < c; j++) {
        coef[j] = rng_uniform(-0.5f, 0.5f);
        coef[c + j] = rng_uniform(-0.2f, 0.2f);
        coef[2 * c + j] = rng_uniform(-1.0f, 1.0f);
      }
      const mpnas__bn_act bn_in = {mu, kk, b, act};
      const mpnas__bn_dy dy_bn = {bx, mu, coef};
      mpnas__engine e1 = {.k = tables[ti], .threads = 1};
      memcpy(rg, g0, ys);
      mpnas__bn_bwd_apply_coef(&e1, n * ho * wo, c, bx, rg, mu, coef, rg);
      for (int v = 0; v < 4 * 4; v++) { /* 1, 2, 3 threads, no weight gradient; x 4 forms */
        const mpnas__bn_act *in = v / 4 % 2 ? &bn_in : NULL;
        int with_dx = v / 8, with_dwt = v % 4 < 3;
        mpnas__engine e = {.k = tables[ti], .threads = v % 4 < 3 ? v % 4 + 1 : 2};
        for (size_t i = 0; i < nw; i++) rdwt[i] = dwt[i] = 0.25f * (float)(i % 7);
        CHECK_EQ_INT(mpnas__dw_bwd_bn_in(&e1, &ws, n, h, w, c, k, stride, x, in, w_, rg,
                                         with_dx ? rdx : NULL, with_dwt ? rdwt : NULL),
                     MPNAS_OK);
        memcpy(g, g0, ys);
        CHECK_EQ_INT(mpnas__dw_bwd_bn_dy(&e, &ws, n, h, w, c, k, stride, x, in, w_, g, &dy_bn,
                                         with_dx ? dx : NULL, with_dwt ? dwt : NULL),
                     MPNAS_OK);
        CHECK_MSG(!memcmp(g, rg, ys) && !memcmp(dwt, rdwt, ws_) &&
                      (!with_dx || !memcmp(dx, rdx, xs)),
                  "%s dw_bwd_bn_dy %dx%dx%dx%d k%d s%d (case %d) differs from "
                  "bn_bwd_apply_coef then dw_bwd_bn_in", tables[ti]->name, n, h, w, c, k,
                  stride, v);
      }
      CHECK_EQ_INT(mpnas__arena_reset(&ws), MPNAS_OK);
      free(x), free(bx), free(g0), free(rg), free(g), free(w_), free(rdx), free(dx);
      free(rdwt), free(dwt), free(pc), free(coef);
    }
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

/* mpnas__dw_bwd_expand equals mpnas__dw_bwd_bn_dy (no dx) then mpnas__dw_dx_bn_bwd with
 * coef, bit for bit (dx, coef, the weight gradient over its prior value, dgamma, dbeta):
 * 1, 2 and 3 threads, over workers, with and without dy_bn. Where the images nest in the
 * BN's chunks (one pass) g is left as it is: images of whole BN blocks, of part of one
 * (several images a producer call), more images than the weight gradient's chunks, strides
 * 1 and 2, odd channel counts, k 3 to 7; where they do not (an image or a weight
 * gradient's chunk of images across two chunks of rows, more chunks of rows than images)
 * the two calls, g holding dy. */
static void test_dw_bwd_expand(void) {
  mpnas_context *ctx;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  /* n, h, w, c, k, stride, nested */
  const int shapes[][7] = {{16, 16, 16, 24, 3, 1, 1}, {20, 16, 16, 7, 3, 2, 1},
                           {12, 8, 8, 33, 5, 1, 1},   {64, 8, 8, 16, 3, 2, 1},
                           {32, 4, 4, 9, 3, 1, 1},    {5, 7, 7, 12, 7, 1, 1},
                           {40, 4, 4, 9, 3, 1, 0},    {3, 10, 10, 17, 3, 1, 0},
                           {2, 32, 32, 8, 3, 2, 0}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int sh = 0; sh < COUNT(shapes); sh++) {
      const int *d = shapes[sh];
      int n = d[0], h = d[1], w = d[2], c = d[3], k = d[4], stride = d[5], nested = d[6];
      int ho = (h + stride - 1) / stride, wo = (w + stride - 1) / stride, m = n * h * w;
      int act = ACTS[(sh + ti) % COUNT(ACTS)];
      size_t nx = (size_t)m * c, ny = (size_t)n * ho * wo * c, nw = (size_t)k * k * c;
      size_t cs = sizeof(float) * (size_t)c, ys = sizeof(float) * ny, ws_ = sizeof(float) * nw;
      size_t xs = sizeof(float) * nx;
      float *x = malloc(xs), *bx = malloc(ys), *g0 = malloc(ys), *rg = malloc(ys);
      float *g = malloc(ys), *w_ = malloc(ws_), *rdx = malloc(xs), *dx = malloc(xs);
      float *rdwt = malloc(ws_), *dwt = malloc(ws_), *pc = malloc(5 * cs);
      float *dcoef = malloc(3 * cs), *rcoef = malloc(3 * cs), *coef = malloc(3 * cs);
      float *rgr = malloc(2 * cs), *gr = malloc(2 * cs);
      random_bn_saved(c, pc);
      float *mu = pc, *kk = pc + c, *b = pc + 2 * c, *invstd = pc + 3 * c, *gamma = pc + 4 * c;
      for (size_t i = 0; i < nx; i++) x[i] = mu[i % (size_t)c] + rng_uniform(-3.0f, 3.0f);
      for (size_t i = 0; i < ny; i++) bx[i] = mu[i % (size_t)c] + rng_uniform(-3.0f, 3.0f);
      for (size_t i = 0; i < ny; i++) g0[i] = rng_uniform(-1.0f, 1.0f);
      for (size_t i = 0; i < nw; i++) w_[i] = rng_uniform(-0.5f, 0.5f);
      for (int j = 0; j < c; j++) {
        dcoef[j] = rng_uniform(-0.5f, 0.5f);
        dcoef[c + j] = rng_uniform(-0.2f, 0.2f);
        dcoef[2 * c + j] = rng_uniform(-1.0f, 1.0f);
      }
      const mpnas__bn_act in = {mu, kk, b, act};
      const mpnas__bn_dy dy_bn = {bx, mu, dcoef};
      mpnas__engine e1 = {.k = tables[ti], .threads = 1};
      mpnas__workers one = {sum_over_one, NULL};
      for (int v = 0; v < 8; v++) { /* 1, 2, 3 threads, over workers; x with, without dy_bn */
        const mpnas__bn_dy *q = v < 4 ? &dy_bn : NULL;
        mpnas__engine e = {.k = tables[ti], .threads = v % 4 < 3 ? v % 4 + 1 : 2};
        if (v % 4 == 3) e.workers = &one;
        for (size_t i = 0; i < nw; i++) rdwt[i] = dwt[i] = 0.25f * (float)(i % 7);
        for (int j = 0; j < 2 * c; j++) rgr[j] = gr[j] = 0.5f * (float)(j % 3);
        memcpy(rg, g0, ys);
        CHECK_EQ_INT(mpnas__dw_bwd_bn_dy(&e1, &ws, n, h, w, c, k, stride, x, &in, w_, rg, q,
                                         NULL, rdwt),
                     MPNAS_OK);
        CHECK_EQ_INT(mpnas__dw_dx_bn_bwd(&e1, &ws, n, h, w, c, k, stride, w_, rg, x, gamma, mu,
                                         invstd, &in, rcoef, rdx, rgr, rgr + c),
                     MPNAS_OK);
        memcpy(g, g0, ys);
        CHECK_EQ_INT(mpnas__dw_bwd_expand(&e, &ws, n, h, w, c, k, stride, x, &in, w_, g, q,
                                          gamma, invstd, coef, dx, dwt, gr, gr + c),
                     MPNAS_OK);
        CHECK_MSG(!memcmp(dx, rdx, xs) && !memcmp(coef, rcoef, 3 * cs) &&
                      !memcmp(dwt, rdwt, ws_) && !memcmp(gr, rgr, 2 * cs),
                  "%s dw_bwd_expand %dx%dx%dx%d k%d s%d (case %d) differs from dw_bwd_bn_dy "
                  "then dw_dx_bn_bwd", tables[ti]->name, n, h, w, c, k, stride, v);
        CHECK_MSG(!memcmp(g, nested ? g0 : rg, ys),
                  "%s dw_bwd_expand %dx%dx%dx%d: g %s", tables[ti]->name, n, h, w, c,
                  nested ? "written in the one-pass form" : "not holding dy");
      }
      CHECK_EQ_INT(mpnas__arena_reset(&ws), MPNAS_OK);
      free(x), free(bx), free(g0), free(rg), free(g), free(w_), free(rdx), free(dx);
      free(rdwt), free(dwt), free(pc), free(dcoef), free(rcoef), free(coef), free(rgr), free(gr);
    }
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

/* mpnas__pw_bwd_bn_dy equals mpnas__bn_bwd_apply_coef then mpnas__pw_bwd_bn_in, bit for
 * bit: 1, 2 and 3 threads; with and without a residual; dx or dw alone; several buffer
 * loads of rows (cout = 16), more input channels than threads split, odd row counts. */
static void test_pw_bwd_bn_dy(void) {
  mpnas_context *ctx;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  const int shapes[][3] = {{5000, 16, 96}, {1031, 37, 9}, {300, 24, 144}, {65, 5, 33},
                           {1, 3, 8},      {20000, 24, 16}, {700, 300, 5}, {200, 96, 320}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int sh = 0; sh < COUNT(shapes); sh++) {
      int m = shapes[sh][0], cin = shapes[sh][1], cout = shapes[sh][2];
      size_t nx = (size_t)m * cin, ny = (size_t)m * cout, nw = (size_t)cin * cout;
      float *x = malloc(sizeof(float) * nx), *res = malloc(sizeof(float) * nx);
      float *g = malloc(sizeof(float) * ny), *bx = malloc(sizeof(float) * ny);
      float *g0 = malloc(sizeof(float) * ny); /* g as given: the fallback writes over g */
      float *gref = malloc(sizeof(float) * ny), *w = malloc(sizeof(float) * nw);
      float *dx = malloc(sizeof(float) * nx), *rdx = malloc(sizeof(float) * nx);
      float *dwt = malloc(sizeof(float) * nw), *rdwt = malloc(sizeof(float) * nw);
      float *mu = malloc(sizeof(float) * (size_t)cout), *coef = malloc(sizeof(float) * 3 * cout);
      for (size_t i = 0; i < nx; i++) x[i] = rng_uniform(-2, 2), res[i] = rng_uniform(-1, 1);
      for (size_t i = 0; i < ny; i++) g0[i] = rng_uniform(-1, 1), bx[i] = rng_uniform(-3, 3);
      for (size_t i = 0; i < nw; i++) w[i] = rng_uniform(-0.5f, 0.5f);
      for (int j = 0; j < cout; j++) mu[j] = rng_uniform(-1, 1);
      for (int j = 0; j < 3 * cout; j++) coef[j] = rng_uniform(-2, 2);
      for (int v = 0; v < 5; v++) { /* 1, 2, 3 threads; 2 with dx alone; 2 with dw alone */
        mpnas__engine e = {.k = tables[ti], .threads = v < 3 ? v + 1 : 2};
        const float *r = v % 2 ? res : NULL;
        float *want_dx = v == 4 ? NULL : dx, *want_dw = v == 3 ? NULL : dwt;
        for (size_t i = 0; i < nw; i++) rdwt[i] = dwt[i] = 0.25f * (float)(i % 7);
        memset(rdx, 0, sizeof(float) * nx), memset(dx, 0, sizeof(float) * nx);
        memcpy(gref, g0, sizeof(float) * ny);
        memcpy(g, g0, sizeof(float) * ny);
        mpnas__bn_bwd_apply_coef(&e, m, cout, bx, gref, mu, coef, gref);
        CHECK_EQ_INT(mpnas__pw_bwd_bn_in(&e, &ws, m, cin, cout, x, NULL, w, gref, r,
                                         want_dx ? rdx : NULL, want_dw ? rdwt : NULL),
                     MPNAS_OK);
        CHECK_EQ_INT(mpnas__pw_bwd_bn_dy(&e, &ws, m, cin, cout, x, w, g, bx, mu, coef, r,
                                         want_dx, want_dw),
                     MPNAS_OK);
        CHECK_MSG(!memcmp(dx, rdx, sizeof(float) * nx) && !memcmp(dwt, rdwt, sizeof(float) * nw),
                  "%s pw_bwd_bn_dy m=%d cin=%d cout=%d (case %d) differs", tables[ti]->name, m,
                  cin, cout, v);
        CHECK_EQ_INT(mpnas__arena_reset(&ws), MPNAS_OK);
      }
      free(x), free(res), free(g), free(g0), free(bx), free(gref), free(w), free(dx), free(rdx);
      free(dwt), free(rdwt), free(mu), free(coef);
    }
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

static void test_bwd_bn_in(void) {
  mpnas_context *ctx;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  static const int threads[] = {1, 2, 3};
  static const int acts[] = {MPNAS__ACT_RELU6, MPNAS__ACT_HSWISH, MPNAS__ACT_NONE};
  const int pw[][3] = {{5000, 16, 24}, {1031, 37, 9}, {300, 96, 17}, {64, 8, 8},
                       {65, 5, 33},    {1, 3, 8},     {700, 1100, 5}};
  const int dw[][6] = {{3, 9, 7, 40, 3, 1}, {2, 10, 10, 17, 5, 2}, {1, 5, 6, 33, 7, 1},
                       {4, 12, 12, 96, 3, 2}, {1, 2, 3, 8, 3, 1}};
  for (int ti = 0; ti < n_tables; ti++)
    for (int s = 0; s < COUNT(pw) + COUNT(dw); s++) {
      int is_dw = s >= COUNT(pw), act = acts[s % COUNT(acts)];
      const int *d = is_dw ? dw[s - COUNT(pw)] : NULL;
      int m = is_dw ? d[0] * d[1] * d[2] : pw[s][0], c = is_dw ? d[3] : pw[s][1];
      int cout = is_dw ? c : pw[s][2];
      int ho = is_dw ? (d[1] + d[5] - 1) / d[5] : 0, wo = is_dw ? (d[2] + d[5] - 1) / d[5] : 0;
      size_t nx = (size_t)m * c, ny = is_dw ? (size_t)d[0] * ho * wo * c : (size_t)m * cout;
      size_t nw = is_dw ? (size_t)d[4] * d[4] * c : (size_t)c * cout;
      float *x = malloc(sizeof(float) * nx), *xn = malloc(sizeof(float) * nx);
      float *dy = malloc(sizeof(float) * ny), *w = malloc(sizeof(float) * nw);
      float *dx = malloc(sizeof(float) * nx), *rdx = malloc(sizeof(float) * nx);
      float *dwt = malloc(sizeof(float) * nw), *rdwt = malloc(sizeof(float) * nw);
      float *coef = malloc(sizeof(float) * 3 * (size_t)c);
      for (size_t i = 0; i < nx; i++) x[i] = rng_uniform(-3, 3);
      for (size_t i = 0; i < ny; i++) dy[i] = rng_uniform(-1, 1);
      for (size_t i = 0; i < nw; i++) w[i] = rng_uniform(-0.5f, 0.5f);
      for (int j = 0; j < c; j++) {
        coef[j] = rng_uniform(-0.5f, 0.5f);
        coef[c + j] = rng_uniform(0.5f, 2.0f);
        coef[2 * c + j] = rng_uniform(-1.0f, 4.0f);
      }
      mpnas__bn_act in = {coef, coef + c, coef + 2 * c, act};
      for (int k = 0; k < COUNT(threads); k++) {
        mpnas__engine e = {.k = tables[ti], .threads = threads[k]};
        for (size_t i = 0; i < nw; i++) rdwt[i] = dwt[i] = 0.25f * (float)(i % 7);
        mpnas__bn_act_reapply(&e, m, c, x, in.mu, in.k, in.b, act, NULL, xn);
        if (is_dw) {
          CHECK_EQ_INT(
              mpnas__dw_bwd(&e, &ws, d[0], d[1], d[2], c, d[4], d[5], xn, w, dy, rdx, rdwt),
              MPNAS_OK);
          CHECK_EQ_INT(mpnas__dw_bwd_bn_in(&e, &ws, d[0], d[1], d[2], c, d[4], d[5], x, &in, w,
                                           dy, dx, dwt),
                       MPNAS_OK);
        } else {
          CHECK_EQ_INT(mpnas__pw_bwd(&e, &ws, m, c, cout, xn, w, dy, rdx, rdwt), MPNAS_OK);
          CHECK_EQ_INT(mpnas__pw_bwd_bn_in(&e, &ws, m, c, cout, x, &in, w, dy, NULL, dx, dwt),
                       MPNAS_OK);
        }
        CHECK_MSG(!memcmp(dx, rdx, sizeof(float) * nx) && !memcmp(dwt, rdwt, sizeof(float) * nw),
                  "%s %s bwd bn_in m=%d c=%d thr %d: gradients differ", tables[ti]->name,
                  is_dw ? "dw" : "pw", m, c, threads[k]);
        if (!is_dw) { /* a residual added in the epilogue: as added afterwards */
          mpnas__add_acc(nx, xn, rdx);
          CHECK_EQ_INT(mpnas__pw_bwd_bn_in(&e, &ws, m, c, cout, x, &in, w, dy, xn, dx, NULL),
                       MPNAS_OK);
          CHECK_MSG(!memcmp(dx, rdx, sizeof(float) * nx), "%s pw bwd residual m=%d thr %d differs",
                    tables[ti]->name, m, threads[k]);
        }
        CHECK_EQ_INT(mpnas__arena_reset(&ws), MPNAS_OK);
      }
      free(x), free(xn), free(dy), free(w), free(dx), free(rdx), free(dwt), free(rdwt);
      free(coef);
    }
  mpnas__arena_destroy(&ws);
  mpnas_context_free(ctx);
}

int main(void) {
  find_tables();
  RUN(test_bn_stats);
  RUN(test_bn_stats_constant);
  RUN(test_bn_apply);
  RUN(test_bn_bwd);
  RUN(test_bn_bwd_reduce_act);
  RUN(test_act);
  RUN(test_sigmoid_range);
  RUN(test_ops_thread_independent);
  RUN(test_bn_bwd_with_act);
  RUN(test_fused_stats_ops);
  RUN(test_pw_fwd_stats_bn_in);
  RUN(test_dw_fwd_stats_bn_in);
  RUN(test_conv_fwd_stats);
  RUN(test_expand_dw_fwd_stats);
  RUN(test_pw_out_moments);
  RUN(test_bwd_bn_in);
  RUN(test_pw_dx_bn_bwd);
  RUN(test_dw_dx_bn_bwd);
  RUN(test_dw_bwd_bn_dy);
  RUN(test_dw_bwd_expand);
  RUN(test_pw_bwd_bn_dy);
  return check_finish();
}
