// What /proc says about another process: CPU time and resident memory. Used
// to charge the coordinator's costs to the transactions it ran.
#ifndef DTMD_TESTS_BENCH_PROC_STATS_H_
#define DTMD_TESTS_BENCH_PROC_STATS_H_

#include <sys/types.h>

#include "absl/status/statusor.h"

namespace dtmd::bench {

struct ProcSample {
  double cpu_seconds = 0;   // user + system, all threads.
  double rss_mib = 0;       // VmRSS now.
  double peak_rss_mib = 0;  // VmHWM: the peak since the process started.
};

// NOT_FOUND if the process does not exist.
absl::StatusOr<ProcSample> SampleProcess(pid_t pid);

}  // namespace dtmd::bench

#endif  // DTMD_TESTS_BENCH_PROC_STATS_H_
