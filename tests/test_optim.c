/* test_optim.c - optimisers, the cosine schedule, He initialisation (src/train/optim.c)
 * and the PCG32 generator they rely on (src/common/rng.c). Expected values are worked
 * out by hand in the comments. */
#include <stdint.h>

#include "check.h"
#include "common/rng.h"
#include "train/optim.h"

/* ---- SGD ----------------------------------------------------------------------------- */

static void test_sgd_momentum(void) {
  /* w 1, g 0.5 twice, lr 0.1, mu 0.9, no decay.
   * step 1: v = 0.5,               w = 1 - 0.1*0.5 = 0.95
   * step 2: v = 0.9*0.5 + 0.5 = 0.95, w = 0.95 - 0.095 = 0.855 */
  float w = 1.0f, v = 0.0f, g = 0.5f;
  mpnas__sgd_step(1, &w, &g, &v, 0.1f, 0.9f, 0, 0.0f);
  CHECK_NEAR(v, 0.5, 1e-7);
  CHECK_NEAR(w, 0.95, 1e-7);
  mpnas__sgd_step(1, &w, &g, &v, 0.1f, 0.9f, 0, 0.0f);
  CHECK_NEAR(v, 0.95, 1e-7);
  CHECK_NEAR(w, 0.855, 1e-7);
}

static void test_sgd_nesterov(void) {
  /* Same data, Nesterov: w -= lr * (g + mu*v).
   * step 1: v = 0.5,  w = 1 - 0.1*(0.5 + 0.45) = 0.905
   * step 2: v = 0.95, w = 0.905 - 0.1*(0.5 + 0.855) = 0.7695 */
  float w = 1.0f, v = 0.0f, g = 0.5f;
  mpnas__sgd_step(1, &w, &g, &v, 0.1f, 0.9f, 1, 0.0f);
  CHECK_NEAR(w, 0.905, 1e-7);
  mpnas__sgd_step(1, &w, &g, &v, 0.1f, 0.9f, 1, 0.0f);
  CHECK_NEAR(v, 0.95, 1e-7);
  CHECK_NEAR(w, 0.7695, 1e-7);
}

static void test_sgd_weight_decay(void) {
  /* wd 0.01 adds 0.01*w to the gradient.
   * Plain, one step: g' = 0.5 + 0.01 = 0.51, w = 1 - 0.051 = 0.949.
   * Nesterov: step 1: g' = 0.51, v = 0.51, w = 1 - 0.1*(0.51 + 0.459) = 0.9031
   *           step 2: g' = 0.5 + 0.009031 = 0.509031, v = 0.459 + 0.509031 = 0.968031,
   *                   w = 0.9031 - 0.1*(0.509031 + 0.8712279) = 0.76507411 */
  float w = 1.0f, v = 0.0f, g = 0.5f;
  mpnas__sgd_step(1, &w, &g, &v, 0.1f, 0.9f, 0, 0.01f);
  CHECK_NEAR(w, 0.949, 1e-7);
  w = 1.0f, v = 0.0f;
  mpnas__sgd_step(1, &w, &g, &v, 0.1f, 0.9f, 1, 0.01f);
  CHECK_NEAR(w, 0.9031, 1e-7);
  mpnas__sgd_step(1, &w, &g, &v, 0.1f, 0.9f, 1, 0.01f);
  CHECK_NEAR(v, 0.968031, 1e-6);
  CHECK_NEAR(w, 0.76507411, 1e-6);
  /* Many entries at once behave like one entry each (the loop has no cross-talk). */
  enum { N = 37 };
  float ws[N], gs[N], vs[N];
  for (int i = 0; i < N; i++) ws[i] = 1.0f, gs[i] = 0.5f, vs[i] = 0.0f;
  mpnas__sgd_step(N, ws, gs, vs, 0.1f, 0.9f, 1, 0.01f);
  mpnas__sgd_step(N, ws, gs, vs, 0.1f, 0.9f, 1, 0.01f);
  for (int i = 0; i < N; i++) CHECK_NEAR(ws[i], w, 0.0);
}

/* ---- RMSProp --------------------------------------------------------------------------- */

static void test_rmsprop(void) {
  /* TF form, ms starts at 1, rho 0.9, mu 0.9, eps 1, lr 0.1, g 0.5 twice:
   * step 1: ms = 0.9 + 0.1*0.25 = 0.925; mom = 0.1*0.5/sqrt(1.925) = 0.0360374985;
   *         w = 0.9639625015
   * step 2: ms = 0.8325 + 0.025 = 0.8575;
   *         mom = 0.9*0.0360374985 + 0.05/sqrt(1.8575) = 0.0691201906; w = 0.8948423109 */
  float w = 1.0f, g = 0.5f, ms = 1.0f, mom = 0.0f;
  mpnas__rmsprop_step(1, &w, &g, &ms, &mom, 0.1f, 0.9f, 0.9f, 1.0f, 0.0f);
  CHECK_NEAR(ms, 0.925, 1e-7);
  CHECK_NEAR(mom, 0.0360374985, 1e-7);
  CHECK_NEAR(w, 0.9639625015, 1e-7);
  mpnas__rmsprop_step(1, &w, &g, &ms, &mom, 0.1f, 0.9f, 0.9f, 1.0f, 0.0f);
  CHECK_NEAR(ms, 0.8575, 1e-7);
  CHECK_NEAR(mom, 0.0691201906, 1e-7);
  CHECK_NEAR(w, 0.8948423109, 1e-7);
  /* Weight decay 0.1: g' = 0.5 + 0.1*1 = 0.6; ms = 0.9 + 0.1*0.36 = 0.936;
   * mom = 0.1*0.6/sqrt(1.936) = 0.0431219585; w = 0.9568780415. */
  w = 1.0f, ms = 1.0f, mom = 0.0f;
  mpnas__rmsprop_step(1, &w, &g, &ms, &mom, 0.1f, 0.9f, 0.9f, 1.0f, 0.1f);
  CHECK_NEAR(ms, 0.936, 1e-7);
  CHECK_NEAR(w, 1.0 - 0.06 / sqrt(1.936), 1e-7);
}

/* ---- Adam ------------------------------------------------------------------------------- */

static void test_adam(void) {
  /* t = 1: m = 0.1 g, v = 0.001 g^2; the bias correction gives mhat = g, vhat = g^2, so
   * the step is lr * g / (|g| + eps) = lr * sign(g) whatever |g| is. */
  const float gs[4] = {0.5f, -2.0f, 1e-3f, 300.0f};
  for (int i = 0; i < 4; i++) {
    float w = 1.0f, m = 0.0f, v = 0.0f;
    mpnas__adam_step(1, &w, &gs[i], &m, &v, 1, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f);
    CHECK_NEAR(m, 0.1 * gs[i], 1e-7 * fabs(gs[i]));
    CHECK_NEAR(v, 0.001 * gs[i] * gs[i], 1e-6 * gs[i] * gs[i]);
    CHECK_NEAR(w, gs[i] > 0 ? 0.99 : 1.01, 1e-6);
  }
  /* Step 2 with g = 0.25 after g = 0.5:
   * m = 0.9*0.05 + 0.1*0.25 = 0.07; v = 0.999*0.00025 + 0.001*0.0625 = 0.00031225;
   * mhat = 0.07/0.19 = 0.3684210526; vhat = 0.00031225/0.001999 = 0.1562031016;
   * w = 0.99 - 0.01*0.3684210526/(0.3952253811 + 1e-8) = 0.9806782040 */
  float w = 1.0f, m = 0.0f, v = 0.0f, g1 = 0.5f, g2 = 0.25f;
  mpnas__adam_step(1, &w, &g1, &m, &v, 1, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f);
  mpnas__adam_step(1, &w, &g2, &m, &v, 2, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f);
  CHECK_NEAR(m, 0.07, 1e-7);
  CHECK_NEAR(v, 0.00031225, 2e-8); /* 1 - 0.999f is 0.00100005 in float */
  CHECK_NEAR(w, 0.9806782040, 2e-7);
  /* Weight decay 0.1 (L2 into the gradient): step 1 g' = 0.6 -> w = 0.99 (sign step);
   * step 2 g' = 0.25 + 0.099 = 0.349: m = 0.06*0.9 + 0.0349 = 0.0889,
   * v = 0.999*0.00036 + 0.001*0.121801 = 0.000481441, w = 0.9804658275. */
  w = 1.0f, m = 0.0f, v = 0.0f;
  mpnas__adam_step(1, &w, &g1, &m, &v, 1, 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f);
  CHECK_NEAR(w, 0.99, 1e-6);
  mpnas__adam_step(1, &w, &g2, &m, &v, 2, 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f);
  CHECK_NEAR(m, 0.0889, 1e-7);
  CHECK_NEAR(w, 0.9804658275, 2e-7);
}

/* ---- Schedule ---------------------------------------------------------------------------- */

static void test_lr_cosine(void) {
  /* base 0.1, total 100, warmup 10. */
  CHECK_NEAR(mpnas__lr_cosine(0.1f, 0, 100, 10), 0.01, 1e-8);  /* warmup start: base/10 */
  CHECK_NEAR(mpnas__lr_cosine(0.1f, 4, 100, 10), 0.05, 1e-8);  /* 5/10 of the way */
  CHECK_NEAR(mpnas__lr_cosine(0.1f, 9, 100, 10), 0.1, 1e-8);   /* end of warmup */
  CHECK_NEAR(mpnas__lr_cosine(0.1f, 10, 100, 10), 0.1, 1e-8);  /* cosine at 0 */
  CHECK_NEAR(mpnas__lr_cosine(0.1f, 55, 100, 10), 0.05, 1e-8); /* halfway: cos(pi/2) = 0 */
  /* step 99: 0.05 * (1 + cos(pi*89/90)) = 3.0458649e-5 */
  CHECK_NEAR(mpnas__lr_cosine(0.1f, 99, 100, 10), 3.0458649e-5, 1e-10);
  CHECK_NEAR(mpnas__lr_cosine(0.1f, 100, 100, 10), 0.0, 0.0); /* end */
  CHECK_NEAR(mpnas__lr_cosine(0.1f, 250, 100, 10), 0.0, 0.0); /* past the end */
  /* A quarter into the cosine (total 90, warmup 10: step 30 is 20 of 80 steps):
   * 0.05 * (1 + cos(pi/4)) = 0.0853553391. */
  CHECK_NEAR(mpnas__lr_cosine(0.1f, 30, 90, 10), 0.0853553391, 1e-8);
  /* No warmup: starts at base. */
  CHECK_NEAR(mpnas__lr_cosine(0.1f, 0, 100, 0), 0.1, 1e-8);
  CHECK_NEAR(mpnas__lr_cosine(0.1f, 50, 100, 0), 0.05, 1e-8);
  /* Monotone: up through warmup, down after. */
  float prev = 0.0f;
  int rising_ok = 1, falling_ok = 1;
  for (int s = 0; s < 10; s++) {
    float lr = mpnas__lr_cosine(0.1f, s, 100, 10);
    rising_ok &= lr > prev;
    prev = lr;
  }
  for (int s = 10; s <= 100; s++) {
    float lr = mpnas__lr_cosine(0.1f, s, 100, 10);
    falling_ok &= lr <= prev;
    prev = lr;
  }
  CHECK(rising_ok);
  CHECK(falling_ok);
}

/* ---- He initialisation --------------------------------------------------------------------- */

static void test_init_he(void) {
  /* N = 100000 draws of N(0, s2), s2 = 2/fan_in. Standard errors: mean s/sqrt(N), sample
   * variance s2*sqrt(2/N) (normal fourth moment 3 s^4), fraction within one s
   * sqrt(p(1-p)/N) with p = 0.6827. Tolerances are 5 standard errors: a correct
   * generator fails with probability < 1e-6, while a wrong scale (e.g. 1/fan_in, half
   * the variance) or a uniform law (fraction within 1 s = 0.577) miss by far more. */
  enum { N = 100000 };
  const int fans[3] = {9, 50, 1152};
  static float w[N];
  for (int f = 0; f < 3; f++) {
    mpnas__rng rng;
    mpnas__rng_seed(&rng, 1234, 7 + (uint64_t)f);
    mpnas__init_he(&rng, N, fans[f], w);
    double s2 = 2.0 / fans[f], sd = sqrt(s2);
    double sum = 0, ss = 0;
    int within = 0;
    for (int i = 0; i < N; i++) sum += w[i];
    double mean = sum / N;
    for (int i = 0; i < N; i++) {
      ss += (w[i] - mean) * (w[i] - mean);
      within += fabs(w[i]) < sd;
    }
    double var = ss / (N - 1);
    CHECK_NEAR(mean, 0.0, 5 * sd / sqrt(N));
    CHECK_NEAR(var, s2, 5 * s2 * sqrt(2.0 / N));
    CHECK_NEAR((double)within / N, 0.682689492, 5 * sqrt(0.6827 * 0.3173 / N));
  }
}

/* ---- RNG ----------------------------------------------------------------------------------- */

static void test_rng_reference(void) {
  /* O'Neill's pcg32-demo, pcg32_srandom_r(&rng, 42, 54): the published first outputs. */
  const uint32_t want[6] = {0xa15c02b7u, 0x7b47f409u, 0xba1d3330u,
                            0x83d2f293u, 0xbfa4784bu, 0xcbed606eu};
  mpnas__rng rng;
  mpnas__rng_seed(&rng, 42, 54);
  for (int i = 0; i < 6; i++) CHECK_EQ_INT(mpnas__rng_u32(&rng), want[i]);
}

static void test_rng_streams(void) {
  mpnas__rng a, b, c, d;
  mpnas__rng_seed(&a, 99, 3);
  mpnas__rng_seed(&b, 99, 3);
  mpnas__rng_seed(&c, 99, 4);
  mpnas__rng_seed(&d, 100, 3);
  int same_ab = 0, same_ac = 0, same_ad = 0;
  for (int i = 0; i < 1000; i++) {
    uint32_t x = mpnas__rng_u32(&a), y = mpnas__rng_u32(&b);
    uint32_t z = mpnas__rng_u32(&c), u = mpnas__rng_u32(&d);
    same_ab += x == y;
    same_ac += x == z;
    same_ad += x == u;
  }
  CHECK_EQ_INT(same_ab, 1000); /* same seed and stream: same sequence */
  CHECK(same_ac <= 1);         /* another stream: unrelated (chance 1000/2^32) */
  CHECK(same_ad <= 1);         /* another seed: unrelated */
  /* The state is plain data: a copy continues identically. */
  mpnas__rng e = a;
  for (int i = 0; i < 10; i++) CHECK(mpnas__rng_u32(&e) == mpnas__rng_u32(&a));
}

/* Chi-square of `bins` equal-probability buckets filled by draws in [0, n). */
static double chi_square_below(uint32_t n, int bins, int draws, uint64_t seed, int *out_of_range) {
  static long counts[64];
  mpnas__rng rng;
  mpnas__rng_seed(&rng, seed, 1);
  memset(counts, 0, sizeof counts);
  *out_of_range = 0;
  for (int i = 0; i < draws; i++) {
    uint32_t r = mpnas__rng_below(&rng, n);
    if (r >= n) {
      (*out_of_range)++;
      continue;
    }
    counts[(uint64_t)r * (uint64_t)bins / n]++;
  }
  double expect = (double)draws / bins, chi = 0;
  for (int b = 0; b < bins; b++) chi += (counts[b] - expect) * (counts[b] - expect) / expect;
  return chi;
}

static void test_rng_below(void) {
  mpnas__rng rng;
  mpnas__rng_seed(&rng, 5, 5);
  for (int i = 0; i < 1000; i++) CHECK_EQ_INT(mpnas__rng_below(&rng, 1), 0);
  int seen[7] = {0};
  for (int i = 0; i < 7000; i++) {
    uint32_t r = mpnas__rng_below(&rng, 7);
    CHECK(r < 7);
    if (r < 7) seen[r]++;
  }
  for (int i = 0; i < 7; i++) CHECK(seen[i] > 0);
  /* Chi-square with 9 degrees of freedom; the 0.1% critical value is 27.88. n = 10 is
   * the common case; n = 3e9 makes plain r % n visibly biased (values below
   * 2^32 - 3e9 would come twice as often), so it checks the rejection step. */
  int bad;
  double chi = chi_square_below(10, 10, 100000, 77, &bad);
  CHECK_EQ_INT(bad, 0);
  CHECK_MSG(chi < 27.88, "chi-square n=10: %g", chi);
  chi = chi_square_below(3000000000u, 10, 100000, 78, &bad);
  CHECK_EQ_INT(bad, 0);
  CHECK_MSG(chi < 27.88, "chi-square n=3e9: %g", chi);
  /* 31 buckets for n = 31 (30 dof, 0.1% critical value 59.70). */
  chi = chi_square_below(31, 31, 100000, 79, &bad);
  CHECK_EQ_INT(bad, 0);
  CHECK_MSG(chi < 59.70, "chi-square n=31: %g", chi);
}

static void test_rng_uniform_normal(void) {
  /* 1e6 draws; tolerances are 5 standard errors: uniform mean sqrt(1/12/N), variance
   * sqrt((1/80 - 1/144)/N); normal mean 1/sqrt(N), variance sqrt(2/N). */
  enum { N = 1000000 };
  mpnas__rng rng;
  mpnas__rng_seed(&rng, 2024, 11);
  double s = 0, ss = 0, lo = 1, hi = 0;
  for (int i = 0; i < N; i++) {
    double u = mpnas__rng_uniform(&rng);
    s += u;
    ss += u * u;
    if (u < lo) lo = u;
    if (u > hi) hi = u;
  }
  double mean = s / N, var = ss / N - mean * mean;
  CHECK(lo >= 0.0);
  CHECK(hi < 1.0);
  CHECK(lo < 1e-4 && hi > 1 - 1e-4);
  CHECK_NEAR(mean, 0.5, 5 * sqrt(1.0 / 12 / N));
  CHECK_NEAR(var, 1.0 / 12, 5 * sqrt((1.0 / 80 - 1.0 / 144) / N));

  s = ss = 0;
  double s4 = 0;
  int finite = 1;
  for (int i = 0; i < N; i++) {
    double z = mpnas__rng_normal(&rng);
    finite &= isfinite(z);
    s += z;
    ss += z * z;
    s4 += z * z * z * z;
  }
  mean = s / N;
  var = ss / N - mean * mean;
  CHECK(finite);
  CHECK_NEAR(mean, 0.0, 5 / sqrt(N));
  CHECK_NEAR(var, 1.0, 5 * sqrt(2.0 / N));
  /* Fourth moment 3 (sd of the estimate sqrt(96/N)): a normal, not just unit variance. */
  CHECK_NEAR(s4 / N, 3.0, 5 * sqrt(96.0 / N));
}

int main(void) {
  RUN(test_sgd_momentum);
  RUN(test_sgd_nesterov);
  RUN(test_sgd_weight_decay);
  RUN(test_rmsprop);
  RUN(test_adam);
  RUN(test_lr_cosine);
  RUN(test_init_he);
  RUN(test_rng_reference);
  RUN(test_rng_streams);
  RUN(test_rng_below);
  RUN(test_rng_uniform_normal);
  return check_finish();
}
