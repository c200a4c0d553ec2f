// PacedLoad: the client threads of the crash and shutdown tests (SubmitLoad,
// ModeLoad). Each thread takes the next job number and runs the job, back to
// back, until Stop() or until `max_jobs` numbers were taken in all. A job that
// was not acknowledged (dtmd gone or shutting down) is followed by a 20 ms
// pause; with `burst` > 1 a thread runs that many jobs in a row and then pauses
// up to `pause_ms`, so that moments with nothing active alternate with bursts.
//
// Thread-safe. The job runs on the load's threads, concurrently with itself.
#ifndef DTMD_TESTS_INTEGRATION_PACED_LOAD_H_
#define DTMD_TESTS_INTEGRATION_PACED_LOAD_H_

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"

namespace dtmd::testing {

// The options of a PacedLoad and of the loads built on it.
struct LoadOptions {
  int threads = 4;
  int max_jobs = 1 << 30;
  int burst = 1;
  int pause_ms = 0;
  // For the jobs: the gid of job n is "<gid_prefix>-<n>" (a load may add a
  // suffix), and each call to dtmd has this deadline.
  std::string gid_prefix = "load";
  absl::Duration call_timeout = absl::Seconds(10);
};

class PacedLoad {
 public:
  // Runs job(n) for n = 0, 1, ...; it returns whether dtmd acknowledged the
  // job. Starts the threads at once.
  using Job = std::function<bool(int n)>;
  PacedLoad(LoadOptions options, Job job);
  ~PacedLoad();  // Stop().

  PacedLoad(const PacedLoad&) = delete;
  PacedLoad& operator=(const PacedLoad&) = delete;

  // Asks the threads to end and joins them (each ends after its current
  // job). Idempotent.
  void Stop();
  // Jobs started, acknowledged, and started but not finished so far.
  int started() const { return started_; }
  int acked() const { return acked_; }
  int in_flight() const { return started_ - finished_; }

 private:
  void Run(int thread);

  const LoadOptions options_;
  const Job job_;
  std::atomic<bool> stop_{false};
  std::atomic<int> next_{0};
  std::atomic<int> started_{0};
  std::atomic<int> finished_{0};
  std::atomic<int> acked_{0};
  std::vector<std::thread> threads_;
};

}  // namespace dtmd::testing

#endif  // DTMD_TESTS_INTEGRATION_PACED_LOAD_H_
