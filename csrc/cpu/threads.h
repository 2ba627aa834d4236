// How many OpenMP threads one kernel call uses.
//
// One thread below `grain` (a fork and join would cost more than they save), and one when the
// machine is already oversubscribed (1-minute load average >= cores + 1): a parallel region
// there waits at every barrier for a descheduled thread, milliseconds each, where one thread
// would simply take its fair share. Otherwise omp_get_max_threads() (OMP_NUM_THREADS). This is
// OpenMP's own OMP_DYNAMIC rule on a shorter average, decided per call, so no setting of the
// process is changed.
#pragma once

#include <cstdint>
#include <cstdlib>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace kfaar::cpu {

inline int threads_for(int64_t work, int64_t grain) {
#ifdef _OPENMP
  if (work < grain) return 1;
  const int max_threads = omp_get_max_threads();
  if (max_threads <= 1) return 1;
#if defined(__unix__) || defined(__APPLE__)
  double load = 0.0;
  if (getloadavg(&load, 1) == 1 && load >= omp_get_num_procs() + 1) return 1;
#endif
  return max_threads;
#else
  (void)work;
  (void)grain;
  return 1;
#endif
}

}  // namespace kfaar::cpu
