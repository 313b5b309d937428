/* rng.c - PCG32, see rng.h. */
#include "common/rng.h"

#include <math.h>

#define PCG_MULT 6364136223846793005ULL

void mpnas__rng_seed(mpnas__rng *rng, uint64_t seed, uint64_t stream) {
  rng->state = 0;
  rng->inc = (stream << 1) | 1u;
  (void)mpnas__rng_u32(rng);
  rng->state += seed;
  (void)mpnas__rng_u32(rng);
}

uint32_t mpnas__rng_u32(mpnas__rng *rng) {
  uint64_t old = rng->state;
  rng->state = old * PCG_MULT + rng->inc;
  uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
  uint32_t rot = (uint32_t)(old >> 59);
  return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

uint32_t mpnas__rng_below(mpnas__rng *rng, uint32_t n) {
  if (n <= 1) return 0; /* [0, 1) and the invalid n = 0 alike: never divide by zero */
  /* Reject the low values that would make the modulo uneven. */
  uint32_t threshold = (uint32_t)(-n) % n;
  for (;;) {
    uint32_t r = mpnas__rng_u32(rng);
    if (r >= threshold) return r % n;
  }
}

float mpnas__rng_uniform(mpnas__rng *rng) {
  return (float)(mpnas__rng_u32(rng) >> 8) * (1.0f / 16777216.0f);
}

float mpnas__rng_normal(mpnas__rng *rng) {
  /* u1 in (0, 1] so log is finite. */
  double u1 = ((double)(mpnas__rng_u32(rng) >> 8) + 1.0) / 16777216.0;
  double u2 = (double)(mpnas__rng_u32(rng) >> 8) / 16777216.0;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
