/* api_context.c - public entry points for versions, contexts and errors. Arguments are
 * checked here, once; the internals assume them valid. */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "common/settings.h"

/* MPNAS_CONTEXT_*: ranges and defaults. The setter checks with this table, then stores
 * each value itself (threads and ISA re-choose the kernels), so the rows have no field. */
static const mpnas__setting FIELDS[] = {
    MPNAS__INT(MPNAS_CONTEXT_THREADS, "threads", MPNAS__SETTING_I32, 0, 0, 1024, 1),
    MPNAS__INT(MPNAS_CONTEXT_SEED, "seed", MPNAS__SETTING_I64, 0, -0x1p63, 0x1p63, 0),
    MPNAS__ENUM(MPNAS_CONTEXT_ISA, "isa", 0, MPNAS_ISA_AUTO, MPNAS_ISA_NEON, MPNAS_ISA_AUTO,
                "MPNAS_ISA_"),
    MPNAS__READ_ONLY(MPNAS_CONTEXT_ISA_ACTIVE, "isa_active", MPNAS__SETTING_I32),
    MPNAS__ENUM(MPNAS_CONTEXT_LOG_LEVEL, "log_level", 0, MPNAS_LOG_NONE, MPNAS_LOG_DEBUG,
                MPNAS_LOG_WARNING, "MPNAS_LOG_"),
    MPNAS__READ_ONLY(MPNAS_CONTEXT_OPENMP, "openmp", MPNAS__SETTING_I32),
    MPNAS__INT(MPNAS_CONTEXT_MAX_FILE_BYTES, "max_file_bytes", MPNAS__SETTING_I64, 0, 1024, 0x1p48,
               0x1p30),
    MPNAS__INT(MPNAS_CONTEXT_SHARD_BATCH, "shard_batch", MPNAS__SETTING_I32, 0, 0, 1, 0),
};
const mpnas__settings mpnas__context_settings = {FIELDS, sizeof FIELDS / sizeof FIELDS[0],
                                                 "context"};

static double default_of(int32_t param) {
  return mpnas__settings_find(&mpnas__context_settings, param)->def;
}

uint32_t mpnas_version_number(void) { return MPNAS_VERSION_NUMBER; }
const char *mpnas_version_string(void) { return MPNAS_VERSION_STRING; }

static void *default_malloc(void *user, size_t size) {
  (void)user;
  void *p = malloc(size);
  mpnas__huge_page_advice(p, size);
  return p;
}
static void default_free(void *user, void *ptr) {
  (void)user;
  free(ptr);
}

mpnas_status mpnas_context_create_with_allocator(mpnas_context **out, mpnas_malloc_fn malloc_fn,
                                                 mpnas_free_fn free_fn, void *user) {
  if (out == NULL || malloc_fn == NULL || free_fn == NULL) return MPNAS_E_INVALID_ARGUMENT;
  *out = NULL;
  mpnas_context *ctx = malloc_fn(user, sizeof *ctx);
  if (ctx == NULL) return MPNAS_E_NO_MEMORY;
  memset(ctx, 0, sizeof *ctx);
  atomic_flag_clear(&ctx->error_lock);
  atomic_init(&ctx->failures, 0);
  ctx->malloc_fn = malloc_fn;
  ctx->free_fn = free_fn;
  ctx->alloc_user = user;
  ctx->seed = (uint64_t)default_of(MPNAS_CONTEXT_SEED);
  ctx->log_level = (int32_t)default_of(MPNAS_CONTEXT_LOG_LEVEL);
  ctx->max_file_bytes = (uint64_t)default_of(MPNAS_CONTEXT_MAX_FILE_BYTES);
  ctx->world = 1;
  ctx->workers = (mpnas__workers){mpnas__allreduce_f64, ctx};
  mpnas_status st = mpnas__context_configure(ctx, (int32_t)default_of(MPNAS_CONTEXT_ISA),
                                             (int32_t)default_of(MPNAS_CONTEXT_THREADS));
  if (st != MPNAS_OK) { /* cannot happen: the scalar kernels are always there */
    free_fn(user, ctx);
    return MPNAS_E_INTERNAL;
  }
  *out = ctx;
  return MPNAS_OK;
}

mpnas_status mpnas_context_create(mpnas_context **out) {
  return mpnas_context_create_with_allocator(out, default_malloc, default_free, NULL);
}

void mpnas_context_free(mpnas_context *ctx) {
  if (ctx == NULL) return;
  ctx->free_fn(ctx->alloc_user, ctx);
}

mpnas_status mpnas_context_set_int(mpnas_context *ctx, int32_t param, int64_t value) {
  if (ctx == NULL) return MPNAS_E_INVALID_ARGUMENT;
  mpnas_status st = mpnas__settings_check_int(ctx, &mpnas__context_settings, param, value);
  if (st != MPNAS_OK) return st;
  switch (param) {
    case MPNAS_CONTEXT_THREADS:
      return mpnas__context_configure(ctx, ctx->isa_requested, (int32_t)value);
    case MPNAS_CONTEXT_SEED: ctx->seed = (uint64_t)value; return MPNAS_OK;
    case MPNAS_CONTEXT_ISA:
      return mpnas__context_configure(ctx, (int32_t)value, ctx->threads_requested);
    case MPNAS_CONTEXT_LOG_LEVEL: ctx->log_level = (int32_t)value; return MPNAS_OK;
    case MPNAS_CONTEXT_MAX_FILE_BYTES: ctx->max_file_bytes = (uint64_t)value; return MPNAS_OK;
    case MPNAS_CONTEXT_SHARD_BATCH: ctx->shard_batch = (int32_t)value; return MPNAS_OK;
    default:
      return mpnas__fail(ctx, MPNAS_E_INTERNAL, "context parameter %d: no field", (int)param);
  }
}

mpnas_status mpnas_context_get_int(const mpnas_context *ctx, int32_t param, int64_t *value) {
  if (ctx == NULL) return MPNAS_E_INVALID_ARGUMENT;
  /* Getters record errors too: the context's error slot is not part of its settings. */
  mpnas_context *mut = (mpnas_context *)ctx;
  if (value == NULL)
    return mpnas__fail(mut, MPNAS_E_INVALID_ARGUMENT, "mpnas_context_get_int: value is NULL");
  switch (param) {
    case MPNAS_CONTEXT_THREADS: *value = ctx->threads_requested; return MPNAS_OK;
    case MPNAS_CONTEXT_SEED: *value = (int64_t)ctx->seed; return MPNAS_OK;
    case MPNAS_CONTEXT_ISA: *value = ctx->isa_requested; return MPNAS_OK;
    case MPNAS_CONTEXT_ISA_ACTIVE: *value = ctx->engine.k->isa; return MPNAS_OK;
    case MPNAS_CONTEXT_LOG_LEVEL: *value = ctx->log_level; return MPNAS_OK;
    case MPNAS_CONTEXT_MAX_FILE_BYTES: *value = (int64_t)ctx->max_file_bytes; return MPNAS_OK;
    case MPNAS_CONTEXT_SHARD_BATCH: *value = ctx->shard_batch; return MPNAS_OK;
    case MPNAS_CONTEXT_OPENMP:
#if defined(_OPENMP)
      *value = 1;
#else
      *value = 0;
#endif
      return MPNAS_OK;
    default:
      return mpnas__fail(mut, MPNAS_E_UNKNOWN_PARAMETER, "unknown context parameter %d",
                         (int)param);
  }
}

mpnas_status mpnas_context_set_log_callback(mpnas_context *ctx, mpnas_log_fn fn, void *user) {
  if (ctx == NULL) return MPNAS_E_INVALID_ARGUMENT;
  ctx->log_fn = fn;
  ctx->log_user = fn != NULL ? user : NULL;
  return MPNAS_OK;
}

mpnas_status mpnas_context_set_collective(mpnas_context *ctx, mpnas_allreduce_fn fn,
                                          void *user, int32_t rank, int32_t world_size) {
  if (ctx == NULL) return MPNAS_E_INVALID_ARGUMENT;
  if (world_size < 1 || world_size > 65536)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE,
                       "mpnas_context_set_collective: world_size %d (1..65536)", (int)world_size);
  if (rank < 0 || rank >= world_size)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE,
                       "mpnas_context_set_collective: rank %d outside [0, %d)", (int)rank,
                       (int)world_size);
  if (fn == NULL && world_size > 1)
    return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT,
                       "mpnas_context_set_collective: %d workers need an all-reduce function",
                       (int)world_size);
  ctx->allreduce_fn = fn;
  ctx->allreduce_user = fn != NULL ? user : NULL;
  ctx->rank = rank;
  ctx->world = world_size;
  return MPNAS_OK;
}

const char *mpnas_context_last_error(const mpnas_context *ctx) {
  if (ctx == NULL) return "invalid argument: mpnas_context_last_error called with NULL";
  return ctx->last_error;
}

mpnas_status mpnas_context_last_status(const mpnas_context *ctx) {
  if (ctx == NULL) return MPNAS_E_INVALID_ARGUMENT;
  return ctx->last_status;
}

void mpnas_context_clear_error(mpnas_context *ctx) {
  if (ctx == NULL) return;
  ctx->last_error[0] = '\0';
  ctx->last_status = MPNAS_OK;
}

int32_t mpnas_isa_supported(int32_t isa) {
  return isa == MPNAS_ISA_AUTO ? 1 : mpnas__isa_available(isa);
}
