/* alloc.c - aligned allocation through the context's allocator hooks.
 * Each block is over-allocated by MPNAS__ALIGN bytes; the pointer the hooks returned is
 * stored just below the aligned address handed out. */
#include <string.h>

#include "common/common.h"

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
