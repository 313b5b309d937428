/* alloc_counting.h - a test allocator for mpnas_context_create_with_allocator that
 * counts what the library asks for and can refuse on demand:
 *
 *   alloc_counting c;
 *   mpnas_context *ctx = alloc_counting_context(&c, limit); // c zeroed, c.limit = limit
 *   ...
 *   CHECK_EQ_INT(c.live, 0);        // after freeing every handle: nothing leaked
 *   CHECK(c.largest <= limit);      // no single request above the limit
 *
 * Fields (all plain, set or reset them between calls as a test needs):
 *   total    requests so far, refused ones included
 *   live     blocks handed out and not yet freed
 *   largest  largest size requested, refused ones included
 *   limit    > 0: refuse (return NULL) any request above it; 0: no limit
 *   fail_at  > 0: refuse the request that makes total == fail_at (so
 *            `c.fail_at = c.total + k` fails the k-th request from now); 0: never
 *
 * The counters are C11 atomics: the library calls the allocator from several threads at
 * once (predictors running in parallel, its OpenMP workers), and ThreadSanitizer
 * (make test-tsan) caught plain counters racing. Read them in single-threaded phases to
 * get meaningful numbers. The struct must outlive the context. */
#ifndef MPNAS_TEST_ALLOC_COUNTING_H
#define MPNAS_TEST_ALLOC_COUNTING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include "mpnas.h"

typedef struct alloc_counting {
  _Atomic long live, total, fail_at;
  _Atomic size_t limit, largest;
} alloc_counting;

static inline void *alloc_counting_malloc(void *user, size_t size) {
  alloc_counting *c = user;
  long n = ++c->total;
  size_t seen = c->largest;
  while (size > seen && !atomic_compare_exchange_weak(&c->largest, &seen, size)) {
  }
  if (c->fail_at > 0 && n == c->fail_at) return NULL;
  if (c->limit > 0 && size > c->limit) return NULL;
  void *p = malloc(size);
  if (p) c->live++;
  return p;
}

static inline void alloc_counting_free(void *user, void *ptr) {
  alloc_counting *c = user;
  if (ptr) c->live--;
  free(ptr);
}

/* Zero *c, set its limit (0: none) and create a context allocating through it; NULL if
 * the context cannot be created. */
static inline mpnas_context *alloc_counting_context(alloc_counting *c, size_t limit) {
  mpnas_context *ctx = NULL;
  c->live = c->total = c->fail_at = 0;
  c->largest = 0;
  c->limit = limit;
  if (mpnas_context_create_with_allocator(&ctx, alloc_counting_malloc, alloc_counting_free,
                                          c) != MPNAS_OK)
    return NULL;
  return ctx;
}

#endif
