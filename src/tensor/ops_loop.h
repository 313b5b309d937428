/* ops_loop.h - loop helpers that ops_misc.c and ops_se.c share (private to src/tensor/):
 * an OpenMP loop split that compiles away without OpenMP, and channel blocks for
 * per-channel reductions kept on the stack. */
#ifndef MPNAS_OPS_LOOP_H
#define MPNAS_OPS_LOOP_H

#if defined(_OPENMP)
#define MPNAS__OPS_PRAGMA(x) _Pragma(#x)
/* Split a loop across `threads` threads when cond holds (static schedule). */
#define MPNAS__OPS_OMP_FOR(threads, cond) \
  MPNAS__OPS_PRAGMA(omp parallel for num_threads(threads) schedule(static) if (cond))
#else
#define MPNAS__OPS_OMP_FOR(threads, cond)
#endif

#define MPNAS__OPS_BLOCK 64 /* channels a block */

/* Channels in the block starting at c0 of c. */
static inline int mpnas__ops_block_len(int c, int c0) {
  return c - c0 < MPNAS__OPS_BLOCK ? c - c0 : MPNAS__OPS_BLOCK;
}

#endif
