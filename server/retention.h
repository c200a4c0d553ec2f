// Retention: deletes finished transactions (succeed or failed) some time
// after they finished, with their branches, so that the store does not grow
// without bound.
//
// A background thread runs a pass now and then: it reads the store's
// finished index (Store::ScanFinished: only what is due, never every record)
// up to now - retention, in batches of batch_size, and hands each batch to
// Store::DeleteFinished, which deletes through the store's writer like any
// other write (no lock the engine needs is held, and the writer re-checks
// each record, so a deletion cannot race a write). Batches are paused
// between, so that a large backlog is deleted at a bounded rate. Gids the
// engine still holds (a runner, a pending create, a held or parked gid) are
// skipped until a later pass. After a pass that deleted something, and at
// most every compact_interval, Store::ReclaimSpace compacts, which is what
// makes the files shrink.
//
// A deleted gid is unknown again: a Submit with it creates a new
// transaction, as DTM does once its store has expired the old one.
#ifndef DTMD_SERVER_RETENTION_H_
#define DTMD_SERVER_RETENTION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/timer_queue.h"
#include "storage/store.h"

namespace dtmd {

struct RetentionOptions {
  int64_t retention_ms = 0;  // > 0.
  int batch_size = 500;
  int64_t batch_pause_ms = 50;
  // Between two ReclaimSpace calls at least; 0: after every pass that
  // deleted something.
  int64_t compact_interval_ms = 0;
  // Between the starts of two passes. 0: retention_ms / 2, at least 100 ms
  // and at most a minute.
  int64_t pass_interval_ms = 0;
};

class Retention {
 public:
  // Removes from the list the transactions that must not be deleted now.
  using Filter = std::function<void(std::vector<storage::FinishedTrans>*)>;

  // `store` and `clock` (which says what "now" is) are not owned and must
  // outlive this object.
  Retention(RetentionOptions options, storage::Store* store, Clock* clock,
            Filter busy);
  // Calls Stop().
  ~Retention();
  Retention(const Retention&) = delete;
  Retention& operator=(const Retention&) = delete;

  // Starts the thread; the first pass runs at once.
  void Start();
  // Ends the pass under way after its current batch and joins the thread.
  // Idempotent.
  void Stop();

  struct PassResult {
    int64_t deleted = 0;     // transactions deleted.
    int64_t skipped = 0;     // left for a later pass (busy).
    int64_t batches = 0;     // DeleteFinished calls.
    bool reclaimed = false;  // ReclaimSpace ran after it.
  };
  // One pass, on the calling thread (the background thread's work; tests
  // call it directly). An error ends the pass; the next one resumes.
  absl::StatusOr<PassResult> RunPass();

  // Totals since construction, for tests and metrics.
  int64_t deleted_total() const { return deleted_total_.load(); }
  int64_t passes() const { return passes_.load(); }

 private:
  void Loop();
  // Waits `d` or until Stop(); false when stopping.
  bool Sleep(absl::Duration d);

  const RetentionOptions options_;
  storage::Store* const store_;
  Clock* const clock_;
  const Filter busy_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;

  int64_t deleted_since_compact_ = 0;               // Pass thread only.
  absl::Time last_compact_ = absl::InfinitePast();  // Pass thread only.
  std::atomic<int64_t> deleted_total_{0};
  std::atomic<int64_t> passes_{0};
};

}  // namespace dtmd

#endif  // DTMD_SERVER_RETENTION_H_
