/* context.c - applying a context's settings to its engine (kernel table + threads). */
#include "common/common.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

mpnas_status mpnas__context_configure(mpnas_context *ctx, int32_t isa, int32_t threads) {
  const mpnas__kernels *k = mpnas__kernels_for(isa);
  if (k == NULL)
    return mpnas__fail(ctx, MPNAS_E_UNSUPPORTED,
                       "instruction set %d is not available on this CPU or in this build",
                       (int)isa);
  int active_threads = 1;
#if defined(_OPENMP)
  active_threads = threads == 0 ? omp_get_num_procs() : threads;
  if (active_threads < 1) active_threads = 1;
#endif
  ctx->isa_requested = isa;
  ctx->threads_requested = threads;
  ctx->engine.k = k;
  ctx->engine.threads = active_threads;
  return MPNAS_OK;
}

mpnas_status mpnas__allreduce(mpnas_context *ctx, void *buf, int64_t count, int32_t dtype,
                              const char *what) {
  if (ctx->world <= 1 || count == 0) return MPNAS_OK;
  int32_t rc = ctx->allreduce_fn(ctx->allreduce_user, buf, count, dtype);
  if (rc != 0)
    return mpnas__fail(ctx, MPNAS_E_IO,
                       "the collective hook returned %d summing %s (%lld values) on worker "
                       "%d of %d; the workers are out of step: reload the last checkpoint",
                       (int)rc, what, (long long)count, (int)ctx->rank, (int)ctx->world);
  return MPNAS_OK;
}

int32_t mpnas__allreduce_f64(void *ctx, double *buf, int64_t count) {
  return mpnas__allreduce(ctx, buf, count, MPNAS_COLLECTIVE_F64,
                          "batch-normalisation sums");
}
