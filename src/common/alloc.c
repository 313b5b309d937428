/* alloc.c - aligned allocation through the context's allocator hooks.
 * Each block is over-allocated by MPNAS__ALIGN bytes; the pointer the hooks returned is
 * stored just below the aligned address handed out. */
#if defined(__linux__)
#define _DEFAULT_SOURCE /* madvise */
#include <sys/mman.h>
#endif
#include <string.h>

#include "common/common.h"

/* Smaller blocks are not advised: fewer whole 2 MB pages inside, and less to gain. */
#define HUGE_ADVICE_MIN ((size_t)8 << 20)
#define HUGE_PAGE ((uintptr_t)2 << 20)

void mpnas__huge_page_advice(void *p, size_t size) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (p == NULL || size < HUGE_ADVICE_MIN) return;
  uintptr_t lo = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t hi = ((uintptr_t)p + size) & ~(HUGE_PAGE - 1);
  if (hi > lo) (void)madvise((void *)lo, (size_t)(hi - lo), MADV_HUGEPAGE);
#else
  (void)p;
  (void)size;
#endif
}

void *mpnas__malloc(const mpnas_context *ctx, size_t size) {
  if (size > SIZE_MAX - MPNAS__ALIGN - sizeof(void *)) return NULL;
  size_t total = size + MPNAS__ALIGN + sizeof(void *);
  unsigned char *raw = ctx->malloc_fn(ctx->alloc_user, total);
  if (raw == NULL) return NULL;
  uintptr_t start = (uintptr_t)(raw + sizeof(void *));
  uintptr_t aligned = (start + MPNAS__ALIGN - 1) & ~(uintptr_t)(MPNAS__ALIGN - 1);
  memcpy((void *)(aligned - sizeof(void *)), &raw, sizeof raw);
  return (void *)aligned;
}

void *mpnas__calloc(const mpnas_context *ctx, size_t count, size_t size) {
  size_t total;
  if (!mpnas__mul_size(count, size, &total)) return NULL;
  void *p = mpnas__malloc(ctx, total);
  if (p != NULL) memset(p, 0, total);
  return p;
}

void mpnas__free(const mpnas_context *ctx, void *ptr) {
  if (ptr == NULL) return;
  void *raw;
  memcpy(&raw, (unsigned char *)ptr - sizeof(void *), sizeof raw);
  ctx->free_fn(ctx->alloc_user, raw);
}
