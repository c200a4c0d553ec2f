// A closed-loop load generator for any coordinator that speaks DTM's gRPC
// protocol: keeps `concurrency` transactions in flight, each started as soon
// as the previous one of its slot ended, and measures what completes. A
// transaction is the shape's calls one after the other (a saga: one Submit;
// a tcc: Prepare, RegisterBranch..., Submit); it ends at the first call that
// fails or at the last answer.
#ifndef DTMD_TESTS_BENCH_LOAD_DRIVER_H_
#define DTMD_TESTS_BENCH_LOAD_DRIVER_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/bench/shapes.h"

namespace dtmd::bench {

struct LoadOptions {
  // host:port of the coordinator; several (replicas of one coordinator on a
  // shared store): transaction n goes to targets[n % size], all its calls.
  std::vector<std::string> targets;
  // host:port of its HTTP API, for shapes with HTTP calls: sent through
  // libcurl's multi interface on one thread, over kept-alive connections
  // (one per transaction in flight at most). Several: as targets (the same
  // count, in the same order).
  std::vector<std::string> http_targets;
  const Shape* shape = nullptr;
  ShapeContext context;
  int concurrency = 64;
  double warmup_s = 2;
  double duration_s = 10;
  // > 0: submit exactly this many transactions (no warm-up, no time limit).
  int64_t count = 0;
  std::string gid_prefix = "bench";
  int channels = 2;                 // client connections per target.
  int64_t call_timeout_ms = 30000;  // deadline of a whole transaction.
  // Charge their CPU and memory (added up) to the run; none: unknown.
  std::vector<pid_t> target_pids;
};

struct LoadResult {
  double seconds = 0;     // the measured window.
  int64_t completed = 0;  // transactions ended in the window, any status.
  int64_t ok = 0;         // of which every call answered OK.
  double tps = 0;         // OK transactions per second.
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
  // Status code name of a transaction's failed call -> count.
  std::map<std::string, int64_t> errors;
  // The targets' figures, added up over their processes.
  double cpu_s_per_1k = -1;          // CPU seconds per 1000 OK; -1 unknown.
  double rss_mib = -1;               // peak RSS; -1 unknown.
  double cpu_seconds = -1;           // CPU seconds in the window.
  std::vector<double> latencies_ms;  // of the OK answers, sorted.
};

// Adds up runs of the same load (interleaved rounds): throughput over the
// summed windows, percentiles over all latencies, CPU per 1000 over all.
LoadResult Combine(const std::vector<LoadResult>& runs);

// Runs the load. Fails only if the target cannot be reached at all.
absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options);

}  // namespace dtmd::bench

#endif  // DTMD_TESTS_BENCH_LOAD_DRIVER_H_
