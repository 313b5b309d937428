/* arena.h - the workspace: a stack of scratch memory for activations and temporaries.
 *
 * Hot loops never call malloc. An arena hands out MPNAS__ALIGN-aligned blocks by bumping
 * an offset; mark/release pop back to an earlier point. If a request does not fit, the
 * arena allocates one more chunk (this happens only while a network meets a new
 * high-water mark, i.e. on its first step); mpnas__arena_reset then merges all chunks
 * into one of the high-water size, so every later step runs without allocating. */
#ifndef MPNAS_ARENA_H
#define MPNAS_ARENA_H

#include <stddef.h>

#include "mpnas.h"

#define MPNAS__ARENA_MAX_CHUNKS 32

typedef struct mpnas__arena {
  const mpnas_context *ctx;
  unsigned char *chunk[MPNAS__ARENA_MAX_CHUNKS];
  size_t cap[MPNAS__ARENA_MAX_CHUNKS];
  int nchunks;
  int cur;          /* chunk being filled */
  size_t used;      /* bytes used in chunk[cur] */
  size_t high_water; /* most bytes ever in use at once, summed over chunks */
  size_t allocations; /* chunk allocations made so far (tests check it stops growing) */
  struct mpnas__arena *kids; /* [nkids] per-worker workspaces (mpnas__arena_kids) */
  int nkids;
} mpnas__arena;

/* An arena's position, for mpnas__arena_release. */
typedef struct mpnas__arena_mark {
  int cur;
  size_t used;
} mpnas__arena_mark;

void mpnas__arena_init(mpnas__arena *a, const mpnas_context *ctx);
/* Reserve at least `bytes` in one chunk up front (optional planning step). Returns
 * MPNAS_E_NO_MEMORY on failure. Only valid when nothing is allocated. */
mpnas_status mpnas__arena_reserve(mpnas__arena *a, size_t bytes);
/* A block of `bytes` (64-byte aligned), or NULL if memory ran out. */
void *mpnas__arena_alloc(mpnas__arena *a, size_t bytes);
/* Convenience: `count` floats. */
float *mpnas__arena_floats(mpnas__arena *a, size_t count);
mpnas__arena_mark mpnas__arena_get_mark(const mpnas__arena *a);
void mpnas__arena_release(mpnas__arena *a, mpnas__arena_mark mark);
/* n child arenas for n workers running at once (one each), so concurrent work has its
 * own scratch: created on first use, then kept with the parent so that later steps
 * allocate nothing; each grows and settles like an arena; reset and destroyed with the
 * parent. NULL if memory ran out. The parent's own functions must not be called while
 * the children are in use on other threads. */
mpnas__arena *mpnas__arena_kids(mpnas__arena *a, int n);
/* Release everything; merge chunks into one sized for the high-water mark (children
 * too). */
mpnas_status mpnas__arena_reset(mpnas__arena *a);
void mpnas__arena_destroy(mpnas__arena *a);

#endif
