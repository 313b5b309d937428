/* arena.c - see arena.h. */
#include "tensor/arena.h"

#include "common/common.h"

static size_t round_up(size_t bytes) {
  return (bytes + MPNAS__ALIGN - 1) & ~(size_t)(MPNAS__ALIGN - 1);
}

static size_t bytes_in_use(const mpnas__arena *a) {
  size_t total = a->used;
  for (int i = 0; i < a->cur; i++) total += a->cap[i];
  return total;
}

void mpnas__arena_init(mpnas__arena *a, const mpnas_context *ctx) {
  *a = (mpnas__arena){0};
  a->ctx = ctx;
}

static int add_chunk(mpnas__arena *a, size_t bytes) {
  if (a->nchunks == MPNAS__ARENA_MAX_CHUNKS) return 0;
  unsigned char *p = mpnas__malloc(a->ctx, bytes);
  if (p == NULL) return 0;
  a->chunk[a->nchunks] = p;
  a->cap[a->nchunks] = bytes;
  a->nchunks++;
  a->allocations++;
  return 1;
}

mpnas_status mpnas__arena_reserve(mpnas__arena *a, size_t bytes) {
  bytes = round_up(bytes);
  if (a->nchunks == 1 && a->cap[0] >= bytes) return MPNAS_OK;
  if (a->used != 0 || a->cur != 0) return MPNAS_E_STATE;
  for (int i = 0; i < a->nchunks; i++) mpnas__free(a->ctx, a->chunk[i]);
  a->nchunks = 0;
  if (!add_chunk(a, bytes)) return MPNAS_E_NO_MEMORY;
  if (bytes > a->high_water) a->high_water = bytes;
  return MPNAS_OK;
}

void *mpnas__arena_alloc(mpnas__arena *a, size_t bytes) {
  if (bytes > SIZE_MAX / 4) return NULL;
  bytes = round_up(bytes == 0 ? 1 : bytes);
  for (;;) {
    if (a->cur < a->nchunks && a->cap[a->cur] - a->used >= bytes) {
      void *p = a->chunk[a->cur] + a->used;
      a->used += bytes;
      size_t in_use = bytes_in_use(a);
      if (in_use > a->high_water) a->high_water = in_use;
      return p;
    }
    if (a->cur + 1 < a->nchunks) { /* the rest of this chunk stays unused until release */
      a->cur++;
      a->used = 0;
      continue;
    }
    /* A new chunk, at least double the last one so growth settles in a few steps. */
    size_t want = bytes;
    if (a->nchunks > 0 && a->cap[a->nchunks - 1] * 2 > want) want = a->cap[a->nchunks - 1] * 2;
    if (!add_chunk(a, want)) return NULL;
    a->cur = a->nchunks - 1;
    a->used = 0;
  }
}

float *mpnas__arena_floats(mpnas__arena *a, size_t count) {
  size_t bytes;
  if (!mpnas__mul_size(count, sizeof(float), &bytes)) return NULL;
  return mpnas__arena_alloc(a, bytes);
}

mpnas__arena_mark mpnas__arena_get_mark(const mpnas__arena *a) {
  mpnas__arena_mark m = {a->cur, a->used};
  return m;
}

void mpnas__arena_release(mpnas__arena *a, mpnas__arena_mark mark) {
  a->cur = mark.cur;
  a->used = mark.used;
}

mpnas__arena *mpnas__arena_kids(mpnas__arena *a, int n) {
  if (n <= a->nkids) return a->kids;
  mpnas__arena *k = mpnas__malloc(a->ctx, sizeof *k * (size_t)n);
  if (k == NULL) return NULL;
  for (int i = 0; i < n; i++) {
    if (i < a->nkids) k[i] = a->kids[i];
    else mpnas__arena_init(&k[i], a->ctx);
  }
  mpnas__free(a->ctx, a->kids);
  a->kids = k;
  a->nkids = n;
  return k;
}

mpnas_status mpnas__arena_reset(mpnas__arena *a) {
  mpnas_status st = MPNAS_OK;
  for (int i = 0; i < a->nkids; i++)
    if (mpnas__arena_reset(&a->kids[i]) != MPNAS_OK) st = MPNAS_E_NO_MEMORY;
  a->cur = 0;
  a->used = 0;
  if (a->nchunks <= 1) return st;
  /* Merge: one chunk for the high-water mark (plus alignment slack per chunk). */
  size_t want = round_up(a->high_water + (size_t)a->nchunks * MPNAS__ALIGN);
  for (int i = 0; i < a->nchunks; i++) mpnas__free(a->ctx, a->chunk[i]);
  a->nchunks = 0;
  if (!add_chunk(a, want)) return MPNAS_E_NO_MEMORY;
  return st;
}

void mpnas__arena_destroy(mpnas__arena *a) {
  for (int i = 0; i < a->nkids; i++) mpnas__arena_destroy(&a->kids[i]);
  mpnas__free(a->ctx, a->kids);
  for (int i = 0; i < a->nchunks; i++) mpnas__free(a->ctx, a->chunk[i]);
  *a = (mpnas__arena){0};
}
