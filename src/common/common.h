/* common.h - what every internal module needs: the context's internals, errors,
 * allocation through the context's hooks, logging. Internal names are mpnas__*. */
#ifndef MPNAS_COMMON_H
#define MPNAS_COMMON_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "mpnas.h"
#include "kernels/kernels.h"

#define MPNAS__ERROR_CAPACITY 512
#define MPNAS__ALIGN 64 /* bytes: a cache line, and enough for any vector load */

struct mpnas_context {
  mpnas_malloc_fn malloc_fn;
  mpnas_free_fn free_fn;
  void *alloc_user;
  mpnas_log_fn log_fn;
  void *log_user;
  int32_t log_level;
  int32_t threads_requested; /* 0 = one per processor */
  uint64_t seed;
  int32_t isa_requested;
  uint64_t max_file_bytes; /* MPNAS_CONTEXT_MAX_FILE_BYTES: the loaders' read bound */
  int32_t shard_batch;     /* MPNAS_CONTEXT_SHARD_BATCH (net/multidomain.c) */
  mpnas__engine engine; /* kernels chosen for the active ISA + thread count */
  /* Data-parallel runs (mpnas_context_set_collective): world 1 = none. */
  mpnas_allreduce_fn allreduce_fn;
  void *allreduce_user;
  int32_t rank, world;
  mpnas__workers workers; /* the hook as the ops see it: {mpnas__allreduce_f64, this} */
  /* Guards last_status/last_error: predictors on one model may fail from several
   * threads at once (a spin lock: C11 atomics need no thread library). */
  atomic_flag error_lock;
  mpnas_status last_status;
  char last_error[MPNAS__ERROR_CAPACITY];
  /* mpnas__fail calls so far: an entry point compares it before and after its work to
   * see whether a failure below it left a message (mpnas__explain). */
  atomic_uint_fast64_t failures;
};

/* The MPNAS_CONTEXT_* parameters (api/api_context.c; common/settings.h). */
struct mpnas__settings;
extern const struct mpnas__settings mpnas__context_settings;

/* Record a failure on ctx (may be NULL) and return `status`, so call sites read
 * `return mpnas__fail(ctx, MPNAS_E_..., "what %d", x);`. Also logs it at ERROR level. */
mpnas_status mpnas__fail(mpnas_context *ctx, mpnas_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The refusal of a call that would change a handle while its run is in progress (made
 * from the run's progress callback): MPNAS_E_STATE with a message. */
mpnas_status mpnas__refuse_while_running(mpnas_context *ctx, const char *call, const char *run);

/* Every failing public call leaves a message (docs/API-STABILITY.md). An entry point that
 * calls into code which may fail without recording one takes a mark first and ends with
 *   return mpnas__explain(ctx, st, mark, "mpnas_xxx");
 * which records "<status>: mpnas_xxx failed" when st is a failure and nothing was
 * recorded since the mark (a more precise message, if any, is kept). */
uint64_t mpnas__failure_mark(const mpnas_context *ctx);
mpnas_status mpnas__explain(mpnas_context *ctx, mpnas_status st, uint64_t mark,
                            const char *what);

/* Send a message to the host's log callback if its level is enabled. */
void mpnas__log(const mpnas_context *ctx, int32_t level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Allocation through the context's hooks. Memory is MPNAS__ALIGN-aligned; size 0
 * returns a valid unique pointer. mpnas__calloc zero-fills. Free with mpnas__free. */
void *mpnas__malloc(const mpnas_context *ctx, size_t size);
void *mpnas__calloc(const mpnas_context *ctx, size_t count, size_t size);
void mpnas__free(const mpnas_context *ctx, void *ptr);
/* Advice that a block of `size` bytes at p (from malloc) be backed by transparent huge
 * pages, where it is large enough to matter (tapes, workspaces, parameter stores, which
 * ops stream through: 4 KB pages cost a TLB miss every 4 KB there). Linux only; advice,
 * so nothing changes where it is refused. The default allocator gives it; a caller's own
 * allocator does not (its memory is its own). */
void mpnas__huge_page_advice(void *p, size_t size);

/* Re-select the kernel table and thread count from the context's settings. Returns
 * MPNAS_E_UNSUPPORTED if the requested ISA cannot run here. */
mpnas_status mpnas__context_configure(mpnas_context *ctx, int32_t isa, int32_t threads);

/* Sum buf over the workers through the host's hook (nothing with world 1); a failing
 * hook is MPNAS_E_IO with a message naming `what`. */
mpnas_status mpnas__allreduce(mpnas_context *ctx, void *buf, int64_t count, int32_t dtype,
                              const char *what);
/* mpnas__allreduce of doubles for the ops (mpnas__workers; user is the context). */
int32_t mpnas__allreduce_f64(void *ctx, double *buf, int64_t count);
/* The engine of a pass every worker runs on its share of the same n images: with several
 * workers and an image for each, the ops work over all of them (training-mode BN takes
 * the whole batch's statistics); with fewer images than workers, some have none and
 * skip the pass, so each worker's BN stands alone (docs/SCALING.md). */
static inline mpnas__engine mpnas__engine_shared(mpnas__engine eng, mpnas_context *ctx,
                                                 int32_t n) {
  eng.workers = ctx->world > 1 && n >= ctx->world ? &ctx->workers : NULL;
  return eng;
}
/* This worker's share [*lo, *hi) of n images (all of them with world 1). */
static inline void mpnas__share(const mpnas_context *ctx, int32_t n, int32_t *lo, int32_t *hi) {
  *lo = (int32_t)((int64_t)n * ctx->rank / ctx->world);
  *hi = (int32_t)((int64_t)n * (ctx->rank + 1) / ctx->world);
}

/* Checked size arithmetic: returns 0 on overflow. */
static inline int mpnas__mul_size(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a) return 0;
  *out = a * b;
  return 1;
}

/* SAME-padded output size: ceil(in / stride). */
static inline int32_t mpnas__out_size_i(int32_t in, int32_t stride) {
  return (in + stride - 1) / stride;
}

#endif
