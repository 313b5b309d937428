/* multidomain.c - the multi-domain training skeleton (multidomain.h). */
#include "net/multidomain.h"

/* Random stream ids of a domain's data (rng.h: one stream per consumer): its
 * validation split and its batches. */
#define STREAM_SPLIT 100u
#define STREAM_DATA 1000u

/* ---- Domains ----------------------------------------------------------------------- */

mpnas_status mpnas__domains_prepare(mpnas_context *ctx, mpnas__domain *domains, int32_t D,
                                    mpnas__image_shape shape, double valid_fraction) {
  for (int32_t d = 0; d < D; d++)
    if (domains[d].data.train.count == 0)
      return mpnas__fail(ctx, MPNAS_E_STATE, "domain \"%s\" has no training data",
                         domains[d].name);
  mpnas_status st = MPNAS_OK;
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++)
    st = mpnas__domain_data_prepare(ctx, &domains[d].data, domains[d].name, shape,
                                    valid_fraction, STREAM_SPLIT + (uint64_t)d,
                                    STREAM_DATA + (uint64_t)d);
  if (st != MPNAS_OK) mpnas__domains_unprepare(ctx, domains, D);
  return st;
}

void mpnas__domains_unprepare(const mpnas_context *ctx, mpnas__domain *domains, int32_t D) {
  for (int32_t d = 0; d < D; d++) mpnas__domain_data_unprepare(ctx, &domains[d].data);
}

mpnas_status mpnas__domains_abdp(mpnas_context *ctx, const mpnas__domain *domains, int32_t D,
                                 const mpnas__abdp_config *cfg, int sizes_known,
                                 mpnas__abdp **out) {
  int32_t classes[MPNAS__MAX_DOMAINS];
  int64_t sizes[MPNAS__MAX_DOMAINS];
  if (D > MPNAS__MAX_DOMAINS)
    return mpnas__fail(ctx, MPNAS_E_INTERNAL, "%d domains (at most %d)", (int)D,
                       MPNAS__MAX_DOMAINS);
  for (int32_t d = 0; d < D; d++) {
    classes[d] = domains[d].classes;
    sizes[d] = sizes_known ? domains[d].data.ntrain : 1;
  }
  return mpnas__abdp_create(ctx, D, classes, sizes, cfg, out);
}
