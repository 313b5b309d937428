/* gradcheck.h - finite-difference gradient checking for the tests.
 *
 * A test wraps its op in a scalar loss L = sum(y * probe) with a fixed random probe, so
 * dL/dy = probe; backward gives analytic gradients, and central differences in double
 * the numeric ones. The op is computed in float, so differences use a step that keeps
 * float rounding small against the curvature; the tolerance combines an absolute and a
 * relative part. */
#ifndef MPNAS_GRADCHECK_H
#define MPNAS_GRADCHECK_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Deterministic test data: uniform in [lo, hi). */
static inline uint64_t gc__next(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return *s >> 33;
}
static inline void gc_fill(float *x, size_t n, uint64_t seed, float lo, float hi) {
  uint64_t s = seed * 2654435761ULL + 1;
  for (size_t i = 0; i < n; i++)
    x[i] = lo + (hi - lo) * (float)((double)gc__next(&s) / 2147483648.0);
}

/* The scalar loss: sum y*probe, accumulated in double. */
static inline double gc_dot(const float *y, const float *probe, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)y[i] * probe[i];
  return s;
}

/* Compare an analytic gradient with central differences of loss_fn over every entry of
 * `param` (or a strided sample of at most max_checks entries). loss_fn recomputes the
 * forward pass and returns the scalar loss. Returns the number of mismatches, printing
 * the first few. */
typedef double (*gc_loss_fn)(void *user);
static inline int gc_check(const char *what, float *param, size_t n, const float *analytic,
                           gc_loss_fn loss_fn, void *user, double h, double atol, double rtol,
                           size_t max_checks) {
  size_t stride = (max_checks && n > max_checks) ? (n + max_checks - 1) / max_checks : 1;
  int bad = 0;
  for (size_t i = 0; i < n; i += stride) {
    float saved = param[i];
    param[i] = (float)(saved + h);
    double lp = loss_fn(user);
    param[i] = (float)(saved - h);
    double lm = loss_fn(user);
    param[i] = saved;
    /* Use the step actually taken after float rounding. */
    double step = (double)(float)(saved + h) - (double)(float)(saved - h);
    double numeric = (lp - lm) / step;
    double diff = fabs(numeric - analytic[i]);
    if (!(diff <= atol + rtol * fabs(numeric))) {
      if (bad < 5)
        printf("    gradcheck %s[%zu]: analytic %.7g numeric %.7g\n", what, i,
               (double)analytic[i], numeric);
      bad++;
    }
  }
  return bad;
}

#endif
