/* rng.h - PCG32 (O'Neill's permuted congruential generator, XSH-RR output): small
 * state, fast, and reproducible across platforms, so a seed gives the same run on x86
 * and Arm. Each consumer owns its own mpnas__rng, derived from the context seed and a
 * stream id, so adding a consumer never shifts another's numbers. */
#ifndef MPNAS_RNG_H
#define MPNAS_RNG_H

#include <stdint.h>

typedef struct mpnas__rng {
  uint64_t state;
  uint64_t inc; /* odd: selects the stream */
} mpnas__rng;

void mpnas__rng_seed(mpnas__rng *rng, uint64_t seed, uint64_t stream);
uint32_t mpnas__rng_u32(mpnas__rng *rng);
/* Uniform integer in [0, n), n >= 1, without modulo bias. */
uint32_t mpnas__rng_below(mpnas__rng *rng, uint32_t n);
/* Uniform float in [0, 1) with 24 random bits. */
float mpnas__rng_uniform(mpnas__rng *rng);
/* Standard normal (Box-Muller; one value per call, the pair's second is discarded so
 * the state stays a plain 128-bit value that is trivial to save). */
float mpnas__rng_normal(mpnas__rng *rng);
/* A state some stream can be in (inc odd): what a loader checks of a saved stream. */
static inline int mpnas__rng_valid(const mpnas__rng *rng) { return (rng->inc & 1u) == 1u; }

#endif
