// SagaRunner drives one saga through one round: it asks the saga state
// machine what to do, calls branches, records their answers, and, when
// nothing more can happen now, schedules the next round and retires.
//
// Every event of one runner (start, branch answer, write completion) runs on
// its own strand, so the records it holds are never touched by two threads.
// Created and owned by the Engine (shared_ptr, also held by in-flight
// callbacks).
#ifndef DTMD_SERVER_SAGA_RUNNER_H_
#define DTMD_SERVER_SAGA_RUNNER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/engine.h"
#include "server/executor.h"
#include "server/txn/saga.h"

namespace dtmd {

class SagaRunner : public std::enable_shared_from_this<SagaRunner> {
 public:
  SagaRunner(Engine* engine, std::string gid);

  // Starts the round (reads the records unless preloaded). A scheduled
  // wake-up whose transaction is no longer due does nothing.
  void Begin(std::optional<NewTransaction> preloaded, bool scheduled_wake);

  // Adds a waiter; false if the runner has already retired (the caller
  // then starts a new one).
  bool TryAttach(std::shared_ptr<Waiter> waiter);

  // Removes and returns the waiters (shutdown answers them).
  std::vector<std::shared_ptr<Waiter>> TakeWaiters();

  // Marks the runner retired and returns the waiters it still had. Called by
  // the engine with its lock held.
  std::vector<std::shared_ptr<Waiter>> TakeWaitersAndRetire();

 private:
  void Load(std::optional<NewTransaction> preloaded, bool scheduled_wake);
  void Step();
  void CallBranch(int position);
  void OnAnswer(int position, BranchAnswer answer);
  // Writes what changed since the last write: the transaction record (with
  // a status condition) and the branches answered since.
  void Persist();
  // `last`: the write that ends the round (else only failures report).
  void OnWritten(bool last, absl::Status status);
  void MaybeRetire();
  // The reply for waiters given the current records.
  absl::Status Outcome() const;

  Engine* const engine_;
  const std::string gid_;
  std::shared_ptr<Strand> strand_;

  // Strand-confined state.
  storage::v1::TransRecord trans_;
  std::vector<storage::v1::BranchRecord> branches_;
  std::vector<txn::CallState> call_state_;
  std::string stored_status_;  // the status of the last write issued.
  int in_flight_ = 0;
  int pending_writes_ = 0;           // round-ending writes not yet completed.
  std::vector<int> dirty_branches_;  // answered since the last write.
  bool trans_dirty_ = false;         // the record changed since then.
  bool round_over_ = false;
  bool reschedule_ = false;  // whether retiring must set a wake-up timer.
  bool halted_ = false;      // a write failed: stop, recovery will resume.
  bool conflict_ = false;    // ...because the status moved: resume at once.

  absl::Mutex mu_;
  std::vector<std::shared_ptr<Waiter>> waiters_ ABSL_GUARDED_BY(mu_);
  bool retired_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dtmd

#endif  // DTMD_SERVER_SAGA_RUNNER_H_
