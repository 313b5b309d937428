/* threads.c - whether the engine's worker threads are running right now (ops.h). */
#include "tensor/ops.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

/* A thread that starts a probe region this much later than the first one was not on a
 * processor: another process had it. Waking a sleeping OpenMP worker takes tens of
 * microseconds, a descheduled one waits for the scheduler's next slice (milliseconds). */
#define MPNAS__PROBE_LATE 1e-3
#define MPNAS__PROBE_MAX 64

mpnas__engine mpnas__engine_ready(const mpnas__engine *eng) {
  mpnas__engine ready = *eng;
#if defined(_OPENMP)
  int nt = eng->threads < MPNAS__PROBE_MAX ? eng->threads : MPNAS__PROBE_MAX;
  if (nt <= 1) return ready;
  double start[MPNAS__PROBE_MAX];
  int team = 1;
#pragma omp parallel num_threads(nt)
  {
    int id = omp_get_thread_num();
    start[id] = omp_get_wtime();
    if (id == 0) team = omp_get_num_threads();
  }
  double first = start[0];
  for (int i = 1; i < team; i++)
    if (start[i] < first) first = start[i];
  int prompt = 0;
  for (int i = 0; i < team; i++) prompt += start[i] - first <= MPNAS__PROBE_LATE;
  ready.threads = prompt < 1 ? 1 : prompt;
#endif
  return ready;
}
