// Engine: accepts transactions, stores them durably, and drives each
// unfinished one to a final state through a runner, retrying on schedule and
// after restarts.
//
// Threading: public methods are thread-safe and never block on the network
// or on a synced write; replies arrive through callbacks, called exactly once
// from an engine thread. At most one runner drives a gid at a time; a runner
// lives only while it has work (a round of branch calls) and otherwise the
// transaction waits in the store's due index and the timer queue.
#ifndef DTMD_SERVER_ENGINE_H_
#define DTMD_SERVER_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/branch_invoker.h"
#include "server/config.h"
#include "server/executor.h"
#include "server/request_validation.h"
#include "server/timer_queue.h"
#include "storage/store.h"

namespace dtmd {

class SagaRunner;

using ReplyCallback = std::function<void(absl::Status)>;

// A caller waiting for a transaction's outcome (WaitResult). Answered once:
// by the runner when the transaction ends or its first round is over, or by
// the engine's timer when the wait bound passes.
class Waiter {
 public:
  explicit Waiter(ReplyCallback reply) : reply_(std::move(reply)) {}
  // Returns false if the waiter was already answered.
  bool Finish(absl::Status status);

 private:
  std::atomic<bool> done_{false};
  ReplyCallback reply_;
};

class Engine {
 public:
  // `store`, `invoker` and `clock` are not owned and must outlive the engine.
  Engine(const Config& config, storage::Store* store, BranchInvoker* invoker,
         Clock* clock);
  // Calls Shutdown().
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts the due-index poller, which also resumes every unfinished
  // transaction found in the store (recovery).
  void Start();

  // Stops starting rounds, answers waiters with UNAVAILABLE, waits (bounded
  // by the longest request timeout) for in-flight branch calls, flushes the
  // store. Idempotent.
  void Shutdown();

  // Submit: creates the transaction as submitted (or moves a prepared one),
  // durably, then drives it. `done` gets OK once stored (wait_result=false),
  // or the outcome (wait_result=true): OK succeed, ABORTED failed,
  // FAILED_PRECONDITION still running after the first round or the wait
  // bound. ABORTED if the gid already ended or is aborting; INVALID_ARGUMENT
  // if it exists with another trans type.
  void Submit(NewTransaction txn, bool wait_result, ReplyCallback done);

  // Prepare: creates the transaction as prepared, durably. OK if it is
  // already prepared; ABORTED in another status.
  void Prepare(NewTransaction txn, ReplyCallback done);

  // Abort of a saga: NOT_FOUND for an unknown gid, ABORTED otherwise (sagas
  // roll back only through a failing action).
  void Abort(const std::string& gid, const std::string& trans_type,
             ReplyCallback done);

  storage::Store* store() { return store_; }
  const Config& config() const { return config_; }
  Clock* clock() { return clock_; }
  BranchInvoker* invoker() { return invoker_; }
  ThreadPool* pool() { return &pool_; }
  bool stopping() const { return stopping_.load(); }

 private:
  friend class SagaRunner;

  // Starts a runner for gid unless one is active, in which case `waiter`
  // (if any) joins it. `preloaded` skips reading the records from the store.
  // A scheduled wake-up (timer or poller) is skipped while the engine
  // already drives max_active_transactions; the due index keeps it.
  void Drive(const std::string& gid, std::optional<NewTransaction> preloaded,
             std::shared_ptr<Waiter> waiter, bool scheduled_wake);
  // Called by a runner whose round is over; it takes no new waiters after.
  // Returns the waiters still attached to it.
  std::vector<std::shared_ptr<Waiter>> Retire(const std::string& gid,
                                              SagaRunner* runner);
  // Wakes gid at when_ms (a retry).
  void ScheduleWake(const std::string& gid, int64_t when_ms);
  void PollDue();
  // The parts of a Submit that its reply needs.
  struct Submitted {
    std::string gid;
    std::string trans_type;
    int64_t request_timeout_s;
    bool wait_result;
  };
  void OnStored(const Submitted& submitted, ReplyCallback done,
                absl::StatusOr<storage::CreateResult> result);
  std::shared_ptr<Waiter> MakeWaiter(const std::string& gid,
                                     int64_t request_timeout_s,
                                     ReplyCallback done);

  const Config config_;
  storage::Store* const store_;
  BranchInvoker* const invoker_;
  Clock* const clock_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> started_{false};

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<SagaRunner>> active_
      ABSL_GUARDED_BY(mu_);

  // Declared last: destroyed first, so no closure outlives what it uses.
  ThreadPool pool_;
  TimerQueue timers_;
};

}  // namespace dtmd

#endif  // DTMD_SERVER_ENGINE_H_
