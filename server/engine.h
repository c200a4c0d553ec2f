// Engine: accepts transactions, stores them durably, and drives each
// unfinished one to a final state through a TransactionRunner, retrying on
// schedule and after restarts. The engine never names a transaction mode:
// runners find theirs in the registry (server/txn/mode.h).
//
// Threading: public methods are thread-safe and never block on the network
// or on a synced write; replies arrive through callbacks, called exactly once
// from an engine thread. At most one runner drives a gid at a time; client
// commands on an existing gid (Submit of a prepared one, Abort) are events
// delivered to that gid's runner. A runner lives only while it has work
// (a round of branch calls, a command) and otherwise the transaction waits in
// the store's due index and the timer queue.
//
// Load is bounded: at most max_active_transactions runners exist; above it
// a new transaction is stored (due at once) and driven from the due index as
// runners retire. Client requests are refused with RESOURCE_EXHAUSTED while
// the engine's event queue is over its bound.
#ifndef DTMD_SERVER_ENGINE_H_
#define DTMD_SERVER_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <deque>
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
#include "server/retry_alert.h"
#include "server/timer_queue.h"
#include "server/txn/mode.h"
#include "storage/store.h"

namespace dtmd {

class Metrics;
class TransactionRunner;

using ReplyCallback = std::function<void(absl::Status)>;

// A caller waiting for a transaction's outcome (WaitResult). Answered once:
// by the runner when the transaction ends or its first round is over, or by
// the engine's timer when the wait bound passes; answering cancels the timer.
class Waiter {
 public:
  Waiter(ReplyCallback reply, TimerQueue* timers)
      : reply_(std::move(reply)), timers_(timers) {}
  // Returns false if the waiter was already answered.
  bool Finish(absl::Status status);
  void set_timer(TimerQueue::TimerId id) { timer_.store(id); }

 private:
  std::atomic<bool> done_{false};
  ReplyCallback reply_;
  TimerQueue* const timers_;
  std::atomic<TimerQueue::TimerId> timer_{0};
};

// A client command for an existing transaction, on its way to the runner.
struct PendingCommand {
  txn::Command command;
  std::string trans_type;  // as the client sent it.
  bool wait_result = false;
  ReplyCallback done;
  // Set by the runner: a refusal that must wait for a synced write (the
  // command changed the record and refused, e.g. a Submit after the
  // prepared transaction's timeout failed it).
  absl::Status refusal;
  txn::CommandArgs args;
};

class Engine {
 public:
  // `store`, `invoker`, `clock` and `metrics` are not owned and must outlive
  // the engine. `metrics` may be null (nothing is recorded).
  Engine(const Config& config, storage::Store* store, BranchInvoker* invoker,
         Clock* clock, Metrics* metrics = nullptr);
  // Calls Shutdown().
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts the due-index poller, which also resumes every unfinished
  // transaction found in the store (recovery).
  void Start();
  // True once the first due-index scan after Start() is done: every
  // transaction due at start-up has been handed to a runner (or waits for
  // room under --max_active_transactions).
  bool Recovered() const { return recovered_; }

  // Stops starting rounds, answers waiters with UNAVAILABLE, waits (bounded
  // by the longest request timeout, then cancelling branch calls) until no
  // runner is alive and no engine write is pending, flushes the store and
  // stops the engine's threads. Always returns. Idempotent.
  void Shutdown();

  // A branch's retries reached an alert point (server/retry_alert.h): logs
  // it at WARNING, counts it and queues it for the webhook, if any. Never
  // blocks.
  void RaiseRetryAlert(RetryAlert alert);

  // Submit: creates the transaction as submitted, durably, then drives it;
  // for an existing gid the Submit is a command to its runner (a prepared
  // transaction moves to submitted, durably). `done` gets OK once stored
  // (wait_result=false), or the outcome (wait_result=true): OK succeed,
  // ABORTED failed, FAILED_PRECONDITION still running after the first round
  // or the wait bound. ABORTED if the gid already ended or is aborting;
  // INVALID_ARGUMENT if it exists with another trans type; UNAVAILABLE if
  // it cannot be stored; RESOURCE_EXHAUSTED when overloaded.
  void Submit(NewTransaction txn, bool wait_result, ReplyCallback done);

  // Prepare: creates the transaction as prepared, durably. OK if it is
  // already prepared; ABORTED in another status.
  void Prepare(NewTransaction txn, ReplyCallback done);

  // A command on an existing transaction (Abort, RegisterBranch, a
  // workflow's Submit), delivered to the gid's runner; the mode decides.
  // NOT_FOUND for an unknown gid; INVALID_ARGUMENT if it exists with
  // another trans type. `wait_result`: an accepted command that drives the
  // transaction answers with its outcome after the first round.
  void SendCommand(const std::string& gid, const std::string& trans_type,
                   txn::Command command, txn::CommandArgs args,
                   bool wait_result, ReplyCallback done);

  // Operators' commands (the admin service), delivered to the gid's runner
  // like a client's, whatever the trans type, so that they never race the
  // runner. NOT_FOUND for an unknown gid; FAILED_PRECONDITION for a final
  // transaction; UNAVAILABLE/RESOURCE_EXHAUSTED as SendCommand.
  //
  // RetryNow: drives the transaction now (a new round), whatever its stored
  // next_cron_time; OK once the runner has it.
  void RetryNow(const std::string& gid, ReplyCallback done);
  // ForceStop: moves the transaction to failed with rollback_reason
  // "force stopped: <reason>" and leaves its branches as they are (answers
  // still in flight are ignored); OK once that is durable.
  void ForceStop(const std::string& gid, std::string reason,
                 ReplyCallback done);

  // A workflow as PrepareWorkflow answers it.
  struct Progress {
    storage::v1::TransRecord trans;
    std::vector<storage::v1::BranchRecord> branches;
  };
  using ProgressCallback = std::function<void(absl::StatusOr<Progress>)>;
  // PrepareWorkflow: creates the transaction as prepared, durably, or
  // returns the existing one with its branches (INVALID_ARGUMENT if it has
  // another trans type).
  void PrepareWorkflow(NewTransaction txn, ProgressCallback done);

  // Removes from `finished` the gids the engine still holds (a runner, a
  // create not yet durable, a held or parked gid): retention leaves them
  // for a later pass.
  void DropBusy(std::vector<storage::FinishedTrans>* finished);

  storage::Store* store() { return store_; }
  const Config& config() const { return config_; }
  Clock* clock() { return clock_; }
  BranchInvoker* invoker() { return invoker_; }
  Metrics* metrics() { return metrics_; }  // may be null.
  ThreadPool* pool() { return &pool_; }
  bool stopping() const { return stopping_.load(); }

  // For tests and metrics.
  struct Stats {
    int64_t active = 0;          // runners registered for a gid.
    int64_t live_runners = 0;    // runner objects alive (incl. retiring).
    int64_t pending_writes = 0;  // engine-issued creates not completed.
    int64_t timers = 0;          // timers pending in the timer queue.
    // Retry alerts raised (RaiseRetryAlert), and what became of their
    // webhook posts (those stay 0 without --alert_webhook).
    int64_t retry_alerts = 0;
    int64_t alerts_posted = 0;
    int64_t alert_posts_failed = 0;
    int64_t alert_posts_dropped = 0;
  };
  Stats GetStats();

 private:
  friend class TransactionRunner;

  // How a runner should start.
  struct DriveRequest {
    std::optional<NewTransaction> preloaded;  // skips reading the store.
    std::shared_ptr<Waiter> waiter;
    std::optional<PendingCommand> command;
    // A timer or poller wake-up: skipped for a gid whose create is not yet
    // durable, held back after failed writes, or over the active limit.
    bool scheduled_wake = false;
    // Found by ScanDue, which took its lease (storage/store.h, "Leases"):
    // released unless a runner drives it.
    bool claimed = false;
  };
  // Starts a runner for gid unless one is active, in which case the waiter
  // and command join it.
  // Returns whether a runner now has the request.
  bool Drive(const std::string& gid, DriveRequest request);
  // Called by a runner with nothing left to do. Returns false (and the
  // runner stays) if a command was delivered meanwhile; otherwise the
  // runner is retired and `waiters` gets the waiters still attached.
  // `write_failed`: the runner halted on a failed write (the gid is held
  // back); otherwise any hold on the gid ends.
  bool Retire(const std::string& gid, TransactionRunner* runner,
              bool write_failed, std::vector<std::shared_ptr<Waiter>>* waiters);
  // Runs `fn` on the pool at when_ms.
  void PostAt(int64_t when_ms, std::function<void()> fn);
  // Wakes gid at when_ms (a retry).
  void ScheduleWake(const std::string& gid, int64_t when_ms);
  // `periodic`: the cron poll (reschedules itself); otherwise an extra poll
  // that drains a backlog as runners retire.
  void PollDue(bool periodic);
  // As runners retire: drives overflowed transactions, and polls again
  // when the last poll left due work behind.
  void MaybePollBacklog() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DrainOverflow();

  // The parts of a Submit that its reply needs.
  struct Submitted {
    std::string gid;
    std::string trans_type;
    int64_t request_timeout_s;
    bool wait_result;
    // Stored in its final state (DecideAtCreate): never driven, so not
    // counted in creating_.
    bool decided;
  };
  // Asks the mode what a new transaction does first; when that is a final
  // status with nothing to call, sets it on the record (stored as is, never
  // driven) and returns true.
  bool DecideAtCreate(NewTransaction* txn);
  void OnStored(const Submitted& submitted, ReplyCallback done,
                absl::StatusOr<storage::CreateResult> result);
  // Counts a transaction the store created (and, stored final, finished).
  void CountCreated(const absl::StatusOr<storage::CreateResult>& result);
  std::shared_ptr<Waiter> MakeWaiter(const std::string& gid,
                                     int64_t request_timeout_s,
                                     ReplyCallback done);
  // Counts an engine-issued write unless stopping; false when stopping.
  bool BeginWrite();
  void EndWrite();
  void RunnerCreated();
  void RunnerDestroyed();
  // Refuses new client work when the event queue is over its bound.
  absl::Status CheckLoad();
  // CheckLoad, then BeginWrite: OK when a client's create may be issued
  // (and must end with EndWrite), else the refusal to answer.
  absl::Status AdmitWrite();

  const Config config_;
  storage::Store* const store_;
  BranchInvoker* const invoker_;
  Clock* const clock_;
  Metrics* const metrics_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> started_{false};
  std::atomic<bool> recovered_{false};  // the first due-index scan is done

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<TransactionRunner>> active_
      ABSL_GUARDED_BY(mu_);
  // Gids whose creating write has not completed (not durable yet): the
  // poller and timers leave them alone.
  absl::flat_hash_map<std::string, int> creating_ ABSL_GUARDED_BY(mu_);
  // Gids whose runner could not write: not driven again before the backoff
  // (doubling, capped) has passed, so that branches are not called every
  // cron interval while their results cannot be saved.
  struct Hold {
    int64_t until_ms;
    int64_t backoff_s;
  };
  absl::flat_hash_map<std::string, Hold> held_ ABSL_GUARDED_BY(mu_);
  // Waiters of transactions stored over the active limit, not yet driven.
  absl::flat_hash_map<std::string, std::vector<std::shared_ptr<Waiter>>> parked_
      ABSL_GUARDED_BY(mu_);
  // New transactions stored over the active limit, in arrival order (at
  // most max_queued_events; beyond that the due index alone finds them).
  std::deque<std::string> overflow_ ABSL_GUARDED_BY(mu_);
  bool drain_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool backlog_ ABSL_GUARDED_BY(mu_) = false;  // due work left unscanned.
  bool extra_poll_pending_ ABSL_GUARDED_BY(mu_) = false;

  // Shutdown waits on these (own mutex: runners die on any thread).
  absl::Mutex idle_mu_;
  int64_t live_runners_ ABSL_GUARDED_BY(idle_mu_) = 0;
  int64_t pending_writes_ ABSL_GUARDED_BY(idle_mu_) = 0;
  bool writes_closed_ ABSL_GUARDED_BY(idle_mu_) = false;

  // The pool is stopped (and destroyed) before the timer queue, whose
  // closures post to the pool: declared after it.
  TimerQueue timers_;
  ThreadPool pool_;

  std::atomic<int64_t> retry_alerts_{0};
  std::unique_ptr<AlertWebhook> webhook_;  // null without --alert_webhook.
};

}  // namespace dtmd

#endif  // DTMD_SERVER_ENGINE_H_
