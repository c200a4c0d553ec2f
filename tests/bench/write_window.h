// WriteWindow: keeps at most `limit` asynchronous store writes in flight for
// the bench tools that fill a store as fast as it takes writes. The issuer
// calls Acquire before each write and the write's callback calls Release.
// Keeps the first error; once there is one, Acquire no longer blocks so the
// issuer can notice and stop. Thread-safe.
#ifndef DTMD_TESTS_BENCH_WRITE_WINDOW_H_
#define DTMD_TESTS_BENCH_WRITE_WINDOW_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace dtmd::bench {

class WriteWindow {
 public:
  explicit WriteWindow(int limit) : limit_(limit) {}

  void Acquire() {
    absl::MutexLock lock(&mu_, absl::Condition(this, &WriteWindow::HasRoom));
    ++in_flight_;
  }

  // `existed`: a create found the gid stored already (counted, not an error).
  void Release(const absl::Status& status, bool existed = false) {
    absl::MutexLock lock(&mu_);
    --in_flight_;
    if (!status.ok() && error_.ok()) error_ = status;
    if (existed) ++existing_;
  }

  absl::Status error() {
    absl::MutexLock lock(&mu_);
    return error_;
  }
  int64_t existing() {
    absl::MutexLock lock(&mu_);
    return existing_;
  }

 private:
  bool HasRoom() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return in_flight_ < limit_ || !error_.ok();
  }

  const int limit_;
  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t existing_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dtmd::bench

#endif  // DTMD_TESTS_BENCH_WRITE_WINDOW_H_
