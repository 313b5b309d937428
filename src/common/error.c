/* error.c - last-error recording and logging through the host's callback. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

mpnas_status mpnas__fail(mpnas_context *ctx, mpnas_status status, const char *fmt, ...) {
  if (ctx == NULL) return status;
  while (atomic_flag_test_and_set_explicit(&ctx->error_lock, memory_order_acquire)) {
  }
  va_list ap;
  va_start(ap, fmt);
  int len = snprintf(ctx->last_error, sizeof ctx->last_error, "%s: ",
                     mpnas_status_string(status));
  if (len < 0 || (size_t)len >= sizeof ctx->last_error) len = 0;
  vsnprintf(ctx->last_error + len, sizeof ctx->last_error - (size_t)len, fmt, ap);
  va_end(ap);
  ctx->last_status = status;
  atomic_fetch_add_explicit(&ctx->failures, 1, memory_order_relaxed);
  char message[MPNAS__ERROR_CAPACITY];
  memcpy(message, ctx->last_error, sizeof message);
  atomic_flag_clear_explicit(&ctx->error_lock, memory_order_release);
  if (ctx->log_fn != NULL && ctx->log_level >= MPNAS_LOG_ERROR)
    ctx->log_fn(ctx->log_user, MPNAS_LOG_ERROR, message);
  return status;
}

uint64_t mpnas__failure_mark(const mpnas_context *ctx) {
  if (ctx == NULL) return 0;
  /* The counter is the context's bookkeeping, not its settings: cast the const away. */
  return atomic_load_explicit(&((mpnas_context *)(uintptr_t)ctx)->failures,
                              memory_order_relaxed);
}

mpnas_status mpnas__explain(mpnas_context *ctx, mpnas_status st, uint64_t mark,
                            const char *what) {
  if (st == MPNAS_OK || ctx == NULL || mpnas__failure_mark(ctx) != mark) return st;
  return mpnas__fail(ctx, st, "%s failed", what);
}

void mpnas__log(const mpnas_context *ctx, int32_t level, const char *fmt, ...) {
  if (ctx == NULL || ctx->log_fn == NULL || level > ctx->log_level) return;
  char message[MPNAS__ERROR_CAPACITY];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  ctx->log_fn(ctx->log_user, level, message);
}

const char *mpnas_status_string(mpnas_status status) {
  switch (status) {
    case MPNAS_OK: return "ok";
    case MPNAS_E_INVALID_ARGUMENT: return "invalid argument";
    case MPNAS_E_UNKNOWN_PARAMETER: return "unknown parameter";
    case MPNAS_E_OUT_OF_RANGE: return "value out of range";
    case MPNAS_E_NO_MEMORY: return "out of memory";
    case MPNAS_E_UNSUPPORTED: return "not supported";
    case MPNAS_E_IO: return "input/output error";
    case MPNAS_E_CORRUPT: return "corrupt data";
    case MPNAS_E_VERSION: return "unsupported format version";
    case MPNAS_E_CANCELLED: return "cancelled";
    case MPNAS_E_STATE: return "invalid state";
    case MPNAS_E_INCOMPATIBLE: return "incompatible";
    case MPNAS_E_INTERNAL: return "internal error";
    default: return "unknown status";
  }
}

mpnas_status mpnas__refuse_while_running(mpnas_context *ctx, const char *call, const char *run) {
  return mpnas__fail(ctx, MPNAS_E_STATE,
                     "%s: called while %s runs (from its progress callback): stop the run "
                     "first (a non-zero return from the callback), then call it",
                     call, run);
}
