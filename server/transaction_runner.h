// TransactionRunner drives one transaction of any mode: it asks the mode
// (server/txn/mode.h) what to do, calls branches, records their answers,
// applies client commands, and, when nothing more can happen now, schedules
// the next look and retires. The mode decides; the runner owns every effect
// and these invariants:
//  - one runner per gid (the engine's map), one event at a time (a strand);
//  - write-ahead: a status move the mode marks as durable is synced before
//    any branch call or reply that follows it;
//  - a command that changes the record is synced before its reply;
//  - waiters are answered exactly once (outcome, or UNAVAILABLE when the
//    runner cannot go on);
//  - a failed write halts the runner: the stored record is the truth, and
//    the engine holds the gid back before driving it again;
//  - no runner code runs on a store thread (write callbacks hop to the
//    pool).
//
// Created and owned by the Engine (shared_ptr, also held by in-flight
// callbacks).
#ifndef DTMD_SERVER_TRANSACTION_RUNNER_H_
#define DTMD_SERVER_TRANSACTION_RUNNER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/engine.h"
#include "server/executor.h"
#include "server/txn/mode.h"

namespace dtmd {

class TransactionRunner
    : public std::enable_shared_from_this<TransactionRunner> {
 public:
  // Branch results kept unwritten within a round before they are written.
  static constexpr int kMaxDeferredResults = 32;

  TransactionRunner(Engine* engine, std::string gid);
  ~TransactionRunner();

  // Why a runner starts, which decides whether it starts a round.
  enum class Start {
    kDrive,          // a new transaction, or one to drive now.
    kScheduledWake,  // a timer or poll: only if it is still due.
    kCommand,        // a client command: only if the command asks for it.
  };
  // Starts the runner (reads the records unless preloaded).
  void Begin(std::optional<NewTransaction> preloaded, Start start);

  // Called with the engine's lock held; false if the runner has retired
  // (the caller then starts a new one).
  bool TryAttach(std::shared_ptr<Waiter> waiter);
  bool TryDeliver(PendingCommand command);

  // Removes and returns the waiters (shutdown answers them).
  std::vector<std::shared_ptr<Waiter>> TakeWaiters();

  // Called by the engine with its lock held: retires the runner unless a
  // command is pending, returning the waiters still attached.
  bool TryRetire(std::vector<std::shared_ptr<Waiter>>* waiters);

 private:
  // Polls for a lease held by another replica this often.
  static constexpr int64_t kLeaseRetryMs = 50;

  void Load(std::optional<NewTransaction> preloaded, Start start);
  // Takes the gid's lease (storage/store.h, "Leases"). False when
  // Load must stop here: the runner retires (another replica drives the
  // transaction), halts, or tries again later for a client's command.
  bool TakeLease(Start start, int64_t now);
  bool HasClientWork();
  // How long a client's command waits for another replica's lease at most,
  // beyond the lease itself: a round of that replica's branch calls.
  int64_t trans_wait_bound_s() const {
    return engine_->config().request_timeout_s;
  }
  void ProcessCommands();
  // Applies an operator's command (RetryNow, ForceStop), the same for every
  // mode: FAILED_PRECONDITION for a final transaction.
  txn::CommandResult ApplyOperatorCommand(txn::Command command,
                                          const txn::CommandArgs& args,
                                          int64_t now_ms);
  // Answers a command that was accepted (and, if it changed the record,
  // whose write is durable).
  void AcceptCommand(PendingCommand& command);
  void Step();
  void CallBranch(int position);
  void CallQuery(const txn::QueryCall& query);
  // Calls url with the dtm-* metadata; `on_answer` runs on the strand, with
  // the call's latency in seconds (0 without metrics).
  void Invoke(const std::string& url, std::string payload,
              const std::string& branch_id, const std::string& op,
              std::function<void(BranchAnswer, double)> on_answer);
  void OnAnswer(int position, BranchAnswer answer, double seconds);
  void OnQueryAnswer(const std::string& op, BranchAnswer answer,
                     double seconds);
  // Classifies an answer to a call of `op` and counts it in the metrics.
  txn::BranchOutcome Classify(const std::string& op, const BranchAnswer& answer,
                              double seconds);
  // After a branch's answer that makes it be retried with backoff: raises
  // the retry alert when its retries reach an alert point.
  void MaybeAlert(const storage::v1::BranchRecord& branch);
  // Adds branches a command registered (written with the next synced
  // write).
  void AddBranches(std::vector<storage::v1::BranchRecord> added);
  // Writes what changed since the last write: the transaction record (with
  // a status condition) and the branches answered since. `synced`: the
  // write is a decision or acknowledges a command; the runner makes no call
  // until it completes.
  void Persist(bool synced);
  void OnWritten(bool report, bool synced, absl::Status status);
  void Halt(const absl::Status& status);
  void MaybeRetire();
  // The reply for waiters given the current records.
  absl::Status Outcome() const;

  Engine* const engine_;
  const std::string gid_;
  std::shared_ptr<Strand> strand_;

  // Strand-confined state.
  const txn::Mode* mode_ = nullptr;
  std::unique_ptr<txn::Plan> plan_;
  storage::v1::TransRecord trans_;
  std::vector<storage::v1::BranchRecord> branches_;
  std::vector<txn::CallState> call_state_;
  txn::CallState query_state_ = txn::CallState::kIdle;
  // Branches added by commands, not written yet.
  std::vector<storage::v1::BranchRecord> appended_;
  std::string stored_status_;  // the status of the last write issued.
  bool loaded_ = false;
  bool missing_ = false;  // the gid does not exist.
  int in_flight_ = 0;
  int pending_writes_ = 0;           // writes the runner waits for.
  bool sync_pending_ = false;        // a synced write is in flight: no calls.
  std::vector<int> dirty_branches_;  // answered since the last write.
  bool trans_dirty_ = false;         // the record changed since then.
  bool round_over_ = false;
  bool reschedule_ = false;     // whether retiring must set a wake-up timer.
  bool halted_ = false;         // a write failed: stop, recovery will resume.
  bool force_stopped_ = false;  // an operator's ForceStop: answers ignored.
  bool conflict_ = false;       // ...because the status moved: resume at once.
  bool elsewhere_ = false;  // another replica holds the lease: retire quietly.
  int64_t lease_deadline_ms_ = 0;  // a command waits for the lease until then.
  // Why a runner that could not take the lease halted (OK otherwise).
  absl::Status halt_reason_;
  // Commands whose reply waits for a synced write: not issued yet, and in
  // the write in flight.
  std::vector<PendingCommand> awaiting_sync_;
  std::vector<PendingCommand> syncing_;

  absl::Mutex mu_;
  std::vector<std::shared_ptr<Waiter>> waiters_ ABSL_GUARDED_BY(mu_);
  std::vector<PendingCommand> commands_ ABSL_GUARDED_BY(mu_);
  bool retired_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dtmd

#endif  // DTMD_SERVER_TRANSACTION_RUNNER_H_
