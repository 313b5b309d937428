/* threads.c - whether the engine's worker threads can run, and are running right now
 * (ops.h). getpid() is POSIX: this file asks for it, like file.c. */
#define _POSIX_C_SOURCE 200809L

#include "tensor/ops.h"

#if defined(_OPENMP)
#include <omp.h>
#include <stdatomic.h>
#include <unistd.h>

/* The pid of the process that started the library's OpenMP threads, 0 before. A forked
 * child inherits it and sees another pid: its copy of libgomp's thread pool names
 * threads that exist only in the parent, so it must not start a team. The one
 * process-wide value the library writes (docs/THREADING.md, "fork"). */
static _Atomic long team_pid;

/* 1 in a process forked after this library started threads in its parent. */
static int forked_child(void) {
  long me = (long)getpid(), first = 0;
  if (atomic_compare_exchange_strong(&team_pid, &first, me)) return 0; /* the first team */
  return first != me;
}
#endif

mpnas__engine mpnas__engine_usable(const mpnas__engine *eng) {
  mpnas__engine usable = *eng;
#if defined(_OPENMP)
  if (usable.threads > 1 && forked_child()) usable.threads = 1;
#endif
  return usable;
}

/* A thread that starts a probe region this much later than the first one was not on a
 * processor: another process had it. Waking a sleeping OpenMP worker takes tens of
 * microseconds, a descheduled one waits for the scheduler's next slice (milliseconds). */
#define MPNAS__PROBE_LATE 1e-3
#define MPNAS__PROBE_MAX 64

mpnas__engine mpnas__engine_ready(const mpnas__engine *eng) {
  mpnas__engine ready = mpnas__engine_usable(eng);
#if defined(_OPENMP)
  int nt = ready.threads < MPNAS__PROBE_MAX ? ready.threads : MPNAS__PROBE_MAX;
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
