#include "server/engine.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "server/metrics.h"
#include "server/transaction_runner.h"

namespace dtmd {
namespace {

int PoolSize(const Config& config) {
  if (config.worker_threads > 0) return config.worker_threads;
  return std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
}

absl::Status Unavailable() {
  return absl::UnavailableError("dtmd is shutting down");
}

// A create the store could not make: RESOURCE_EXHAUSTED (its queue is
// full) stays so, so that clients back off; anything else is UNAVAILABLE.
absl::Status CannotStore(const absl::Status& status) {
  std::string message =
      absl::StrCat("cannot store transaction: ", status.message());
  return absl::IsResourceExhausted(status)
             ? absl::ResourceExhaustedError(message)
             : absl::UnavailableError(message);
}

// Pause between polls that drain a due backlog as runners retire.
constexpr int64_t kBacklogPollMs = 20;

}  // namespace

bool Waiter::Finish(absl::Status status) {
  if (done_.exchange(true)) return false;
  // Frees the bound timer (and this waiter's share of it) at once.
  if (const TimerQueue::TimerId id = timer_.load(); id != 0) {
    timers_->Cancel(id);
  }
  ReplyCallback reply = std::move(reply_);
  reply(std::move(status));
  return true;
}

Engine::Engine(const Config& config, storage::Store* store,
               BranchInvoker* invoker, Clock* clock, Metrics* metrics)
    : config_(config),
      store_(store),
      invoker_(invoker),
      clock_(clock),
      metrics_(metrics),
      timers_(clock),
      pool_(PoolSize(config)) {
  if (!config_.alert_webhook.empty()) {
    AlertWebhook::Options options;
    options.url = config_.alert_webhook;
    options.timeout_ms = config_.alert_webhook_timeout_s * 1000;
    webhook_ = std::make_unique<AlertWebhook>(std::move(options));
  }
}

Engine::~Engine() { Shutdown(); }

void Engine::Start() {
  if (started_.exchange(true)) return;
  if (config_.testing_recovery_delay_ms > 0) {
    PostAt(clock_->NowMs() + config_.testing_recovery_delay_ms,
           [this] { PollDue(/*periodic=*/true); });
    return;
  }
  pool_.Post([this] { PollDue(/*periodic=*/true); });
}

void Engine::DropBusy(std::vector<storage::FinishedTrans>* finished) {
  absl::MutexLock lock(&mu_);
  finished->erase(std::remove_if(finished->begin(), finished->end(),
                                 [this](const storage::FinishedTrans& f)
                                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                                       return active_.contains(f.gid) ||
                                              creating_.contains(f.gid) ||
                                              held_.contains(f.gid) ||
                                              parked_.contains(f.gid);
                                     }),
                  finished->end());
}

void Engine::Shutdown() {
  if (stopping_.exchange(true)) return;
  std::vector<std::shared_ptr<Waiter>> waiters;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [gid, runner] : active_) {
      for (auto& waiter : runner->TakeWaiters()) waiters.push_back(waiter);
    }
    for (auto& [gid, parked] : parked_) {
      for (auto& waiter : parked) waiters.push_back(waiter);
    }
    parked_.clear();
  }
  for (const auto& waiter : waiters) waiter->Finish(Unavailable());

  // Runners end as their in-flight calls and writes return; engine writes
  // (creates) complete. Calls that outlast the wait are cancelled (their
  // transactions resume after restart). No engine lock is held meanwhile:
  // completions need it.
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(idle_mu_) {
    return live_runners_ == 0 && pending_writes_ == 0;
  };
  {
    absl::MutexLock lock(&idle_mu_);
    writes_closed_ = true;
    if (!idle_mu_.AwaitWithTimeout(
            absl::Condition(&idle),
            absl::Seconds(config_.request_timeout_s +
                          config_.wait_result_grace_s))) {
      LOG(WARNING) << live_runners_
                   << " transactions still had branch calls in flight at "
                      "shutdown; cancelling them, they resume after restart";
    }
  }
  for (;;) {
    {
      absl::MutexLock lock(&idle_mu_);
      if (idle_mu_.AwaitWithTimeout(absl::Condition(&idle),
                                    absl::Milliseconds(100))) {
        break;
      }
    }
    // A runner past its stopping check may still start a call: cancel
    // again until none is left.
    invoker_->CancelAll();
  }
  store_->Flush();
  // The pool first: its closures may set timers; timer closures only post
  // to the pool, which drops them once stopped.
  pool_.Stop();
  timers_.Stop();
  if (webhook_ != nullptr) webhook_->Stop();
}

void Engine::RaiseRetryAlert(RetryAlert alert) {
  // The one place every retry alert passes.
  retry_alerts_.fetch_add(1, std::memory_order_relaxed);
  if (metrics_ != nullptr) metrics_->RetryAlert();
  const int64_t limit = config_.alert_retry_limit;
  LOG(WARNING) << "retry alert: gid " << alert.gid << " (" << alert.trans_type
               << ", " << alert.status << ") branch " << alert.branch_id << " "
               << alert.op << " " << alert.url << ": " << alert.retry_count
               << " retries (--alert_retry_limit " << limit
               << "; next alert at " << alert.retry_count * 2
               << "), last answer " << StatusCodeName(alert.last_code) << ": "
               << alert.last_error;
  if (webhook_ != nullptr) webhook_->Post(RetryAlertJson(alert));
}

Engine::Stats Engine::GetStats() {
  Stats stats;
  {
    absl::MutexLock lock(&mu_);
    stats.active = static_cast<int64_t>(active_.size());
  }
  {
    absl::MutexLock lock(&idle_mu_);
    stats.live_runners = live_runners_;
    stats.pending_writes = pending_writes_;
  }
  stats.timers = static_cast<int64_t>(timers_.size());
  stats.retry_alerts = retry_alerts_.load(std::memory_order_relaxed);
  if (webhook_ != nullptr) {
    const AlertWebhook::Stats posts = webhook_->GetStats();
    stats.alerts_posted = posts.sent;
    stats.alert_posts_failed = posts.failed;
    stats.alert_posts_dropped = posts.dropped;
  }
  return stats;
}

bool Engine::BeginWrite() {
  absl::MutexLock lock(&idle_mu_);
  if (writes_closed_ || stopping_) return false;
  ++pending_writes_;
  return true;
}

void Engine::EndWrite() {
  absl::MutexLock lock(&idle_mu_);
  --pending_writes_;
}

void Engine::RunnerCreated() {
  absl::MutexLock lock(&idle_mu_);
  ++live_runners_;
}

void Engine::RunnerDestroyed() {
  absl::MutexLock lock(&idle_mu_);
  --live_runners_;
}

absl::Status Engine::CheckLoad() {
  if (stopping_) return Unavailable();
  const size_t queued = pool_.queue_size();
  if (queued > static_cast<size_t>(config_.max_queued_events)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("dtmd is overloaded: ", queued,
                     " events queued (--max_queued_events); retry later"));
  }
  return absl::OkStatus();
}

std::shared_ptr<Waiter> Engine::MakeWaiter(const std::string& gid,
                                           int64_t request_timeout_s,
                                           ReplyCallback done) {
  auto waiter = std::make_shared<Waiter>(std::move(done), &timers_);
  // docs/protocol.md section 5: the wait is bounded by RequestTimeout + 2 s.
  const int64_t bound_ms =
      (request_timeout_s + config_.wait_result_grace_s) * 1000;
  waiter->set_timer(timers_.RunAfter(bound_ms, [waiter, gid] {
    waiter->Finish(absl::FailedPreconditionError(absl::StrCat(
        "transaction ", gid,
        " has not finished within the wait; dtmd keeps driving it")));
  }));
  return waiter;
}

void Engine::Submit(NewTransaction txn, bool wait_result, ReplyCallback done) {
  if (absl::Status s = AdmitWrite(); !s.ok()) {
    done(s);
    return;
  }
  // What the reply needs besides the stored records, which the store hands
  // back once they are created.
  Submitted submitted{txn.trans.gid(), txn.trans.trans_type(),
                      txn.trans.options().request_timeout_s(), wait_result,
                      DecideAtCreate(&txn)};
  if (!submitted.decided) {
    absl::MutexLock lock(&mu_);
    // Not durable until the callback: the poller leaves it alone.
    ++creating_[submitted.gid];
    if (active_.size() >=
        static_cast<size_t>(config_.max_active_transactions)) {
      // Over the limit: stored due at once, driven from the due index as
      // runners retire.
      txn.trans.set_next_cron_time_ms(clock_->NowMs());
    }
  }
  store_->CreateTransaction(
      std::move(txn.trans), std::move(txn.branches), storage::Durability::kSync,
      [this, submitted = std::move(submitted), done = std::move(done)](
          absl::StatusOr<storage::CreateResult> result) mutable {
        CountCreated(result);
        if (submitted.decided && result.ok() && result->created) {
          // Stored final, never driven: only a reply, which does not block
          // (gRPC's Finish), so it is sent from the store's thread.
          done(submitted.wait_result
                   ? txn::FindMode(submitted.trans_type)
                         ->WaitOutcome(result->trans, result->branches)
                   : absl::OkStatus());
          EndWrite();
          return;
        }
        // On a store thread: the rest runs on the pool.
        pool_.Post([this, submitted = std::move(submitted),
                    done = std::move(done),
                    result = std::move(result)]() mutable {
          OnStored(submitted, std::move(done), std::move(result));
          EndWrite();
        });
      });
}

absl::Status Engine::AdmitWrite() {
  if (absl::Status s = CheckLoad(); !s.ok()) return s;
  if (!BeginWrite()) return Unavailable();
  return absl::OkStatus();
}

bool Engine::DecideAtCreate(NewTransaction* txn) {
  const txn::Mode* mode = txn::FindMode(txn->trans.trans_type());
  if (mode == nullptr) return false;
  const std::unique_ptr<txn::Plan> plan =
      mode->MakePlan(txn->trans, txn->branches);
  const std::vector<txn::CallState> idle(txn->branches.size(),
                                         txn::CallState::kIdle);
  txn::RetryPolicy policy;
  policy.max_interval_s = config_.max_retry_interval_s;
  const int64_t now = clock_->NowMs();
  txn::Decision decision = mode->Next(*plan, txn->trans, txn->branches, idle,
                                      txn::CallState::kIdle, now, policy);
  if (!decision.calls.empty() || !storage::IsFinalStatus(decision.new_status)) {
    return false;
  }
  txn::MoveTo(&txn->trans, decision.new_status, decision.rollback_reason, now);
  return true;
}

void Engine::CountCreated(const absl::StatusOr<storage::CreateResult>& result) {
  if (metrics_ == nullptr || !result.ok() || !result->created) return;
  const storage::v1::TransRecord& trans = result->trans;
  metrics_->TransactionStarted(trans.trans_type());
  if (storage::IsFinalStatus(trans.status())) {
    metrics_->TransactionFinished(
        trans.trans_type(), trans.status() == storage::kStatusSucceed,
        static_cast<double>(trans.finish_time_ms() - trans.create_time_ms()) /
            1000);
  }
}

void Engine::OnStored(const Submitted& submitted, ReplyCallback done,
                      absl::StatusOr<storage::CreateResult> result) {
  const std::string& gid = submitted.gid;
  if (!submitted.decided) {
    absl::MutexLock lock(&mu_);
    auto it = creating_.find(gid);
    if (it != creating_.end() && --it->second <= 0) creating_.erase(it);
  }
  if (!result.ok()) {
    done(CannotStore(result.status()));
    return;
  }
  DriveRequest request;
  if (result->created) {
    if (submitted.wait_result) {
      request.waiter =
          MakeWaiter(gid, submitted.request_timeout_s, std::move(done));
    } else {
      done(absl::OkStatus());
    }
    request.preloaded =
        NewTransaction{std::move(result->trans), std::move(result->branches)};
    Drive(gid, std::move(request));
    return;
  }
  if (result->existing.trans_type() != submitted.trans_type) {
    done(TransTypeMismatch(gid, result->existing.trans_type(),
                           submitted.trans_type));
    return;
  }
  // An existing transaction: the Submit is a command to its runner.
  request.command = PendingCommand{txn::Command::kSubmit, submitted.trans_type,
                                   submitted.wait_result, std::move(done),
                                   absl::OkStatus(),      {}};
  Drive(gid, std::move(request));
}

void Engine::Prepare(NewTransaction txn, ReplyCallback done) {
  if (absl::Status s = AdmitWrite(); !s.ok()) {
    done(s);
    return;
  }
  std::string gid = txn.trans.gid();
  std::string trans_type = txn.trans.trans_type();
  store_->CreateTransaction(
      std::move(txn.trans), std::move(txn.branches), storage::Durability::kSync,
      [this, gid, trans_type,
       done = std::move(done)](absl::StatusOr<storage::CreateResult> result) {
        // Only a reply (gRPC's Finish does not block): fine on a store
        // thread.
        CountCreated(result);
        if (!result.ok()) {
          done(CannotStore(result.status()));
        } else if (result->created) {
          done(absl::OkStatus());
        } else if (result->existing.trans_type() != trans_type) {
          done(TransTypeMismatch(gid, result->existing.trans_type(),
                                 trans_type));
        } else if (result->existing.status() == storage::kStatusPrepared) {
          done(absl::OkStatus());  // idempotent
        } else {
          done(absl::AbortedError(absl::StrCat(
              "transaction ", gid, " is already ", result->existing.status())));
        }
        EndWrite();
      });
}

void Engine::SendCommand(const std::string& gid, const std::string& trans_type,
                         txn::Command command, txn::CommandArgs args,
                         bool wait_result, ReplyCallback done) {
  if (absl::Status s = CheckLoad(); !s.ok()) {
    done(s);
    return;
  }
  DriveRequest request;
  request.command =
      PendingCommand{command,         trans_type,       wait_result,
                     std::move(done), absl::OkStatus(), std::move(args)};
  Drive(gid, std::move(request));
}

void Engine::RetryNow(const std::string& gid, ReplyCallback done) {
  SendCommand(gid, "", txn::Command::kRetryNow, {}, /*wait_result=*/false,
              std::move(done));
}

void Engine::ForceStop(const std::string& gid, std::string reason,
                       ReplyCallback done) {
  txn::CommandArgs args;
  args.rollback_reason = std::move(reason);
  SendCommand(gid, "", txn::Command::kForceStop, std::move(args),
              /*wait_result=*/false, std::move(done));
}

void Engine::PrepareWorkflow(NewTransaction txn, ProgressCallback done) {
  if (absl::Status s = AdmitWrite(); !s.ok()) {
    done(s);
    return;
  }
  std::string trans_type = txn.trans.trans_type();
  store_->CreateTransaction(
      std::move(txn.trans), std::move(txn.branches), storage::Durability::kSync,
      [this, trans_type = std::move(trans_type),
       done = std::move(done)](absl::StatusOr<storage::CreateResult> result) {
        CountCreated(result);
        // Reading the branches is store work: not on the store's thread.
        pool_.Post([this, trans_type, done = std::move(done),
                    result = std::move(result)]() mutable {
          if (!result.ok()) {
            done(CannotStore(result.status()));
          } else if (result->created) {
            done(Progress{std::move(result->trans), {}});
          } else if (result->existing.trans_type() != trans_type) {
            done(TransTypeMismatch(result->existing.gid(),
                                   result->existing.trans_type(), trans_type));
          } else {
            absl::StatusOr<std::vector<storage::v1::BranchRecord>> branches =
                store_->GetBranches(result->existing.gid());
            if (!branches.ok()) {
              done(CannotStore(branches.status()));
            } else {
              done(Progress{std::move(result->existing), *std::move(branches)});
            }
          }
          EndWrite();
        });
      });
}

bool Engine::Drive(const std::string& gid, DriveRequest request) {
  const bool claimed = request.claimed;
  // A claimed gid this process does not drive goes back to the others.
  // Under mu_, so that it cannot drop the lease of a runner started
  // meanwhile.
  auto not_driven = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (claimed) store_->ReleaseLease(gid);
    return false;
  };
  if (stopping_) {
    if (request.waiter) request.waiter->Finish(Unavailable());
    if (request.command) request.command->done(Unavailable());
    if (claimed) {
      absl::MutexLock lock(&mu_);
      return not_driven();
    }
    return false;
  }
  std::shared_ptr<TransactionRunner> runner;
  TransactionRunner::Start start = TransactionRunner::Start::kDrive;
  {
    absl::MutexLock lock(&mu_);
    // Past the check above, Shutdown answers what joins a runner.
    auto it = active_.find(gid);
    if (it != active_.end()) {
      // Runners leave active_ under mu_ when they retire, so these succeed;
      // were one ever to fail, a new runner takes the request rather than
      // leaving it unanswered.
      bool joined = true;
      if (request.waiter) joined = it->second->TryAttach(request.waiter);
      if (joined && request.command) {
        joined = it->second->TryDeliver(std::move(*request.command));
      }
      if (joined) return true;
      active_.erase(it);
    }
    const size_t limit = static_cast<size_t>(config_.max_active_transactions);
    if (request.scheduled_wake) {
      if (creating_.contains(gid)) return not_driven();  // not durable yet.
      auto hold = held_.find(gid);
      if (hold != held_.end() && hold->second.until_ms > clock_->NowMs()) {
        return not_driven();
      }
      if (active_.size() >= limit) {
        backlog_ = true;  // still in the due index.
        return not_driven();
      }
    } else if (!request.command && active_.size() >= limit) {
      // A new transaction over the limit: it is due now in the store and
      // waits there; a WaitResult caller waits for its bound.
      if (overflow_.size() < static_cast<size_t>(config_.max_queued_events)) {
        overflow_.push_back(gid);
      } else {
        backlog_ = true;  // the due index has it.
        // A shared store's claim finds it only with its lease free.
        store_->ReleaseLease(gid);
      }
      if (request.waiter) parked_[gid].push_back(std::move(request.waiter));
      return false;
    }
    runner = std::make_shared<TransactionRunner>(this, gid);
    if (request.scheduled_wake) {
      start = TransactionRunner::Start::kScheduledWake;
    } else if (request.command && !request.waiter && !request.preloaded &&
               !parked_.contains(gid)) {
      start = TransactionRunner::Start::kCommand;
    }
    if (request.waiter) runner->TryAttach(std::move(request.waiter));
    if (auto parked = parked_.find(gid); parked != parked_.end()) {
      for (auto& waiter : parked->second) runner->TryAttach(std::move(waiter));
      parked_.erase(parked);
    }
    if (request.command) runner->TryDeliver(std::move(*request.command));
    active_.emplace(gid, runner);
  }
  runner->Begin(std::move(request.preloaded), start);
  return true;
}

bool Engine::Retire(const std::string& gid, TransactionRunner* runner,
                    bool write_failed,
                    std::vector<std::shared_ptr<Waiter>>* waiters) {
  absl::MutexLock lock(&mu_);
  if (!runner->TryRetire(waiters)) return false;
  // Under mu_: a runner started for gid after this acquires the lease anew.
  store_->ReleaseLease(gid);
  auto it = active_.find(gid);
  if (it != active_.end() && it->second.get() == runner) active_.erase(it);
  if (write_failed) {
    Hold& hold = held_[gid];
    hold.backoff_s = hold.backoff_s == 0
                         ? std::max<int64_t>(1, config_.retry_interval_s)
                         : txn::DoubledInterval(hold.backoff_s, hold.backoff_s,
                                                config_.max_retry_interval_s);
    hold.until_ms = clock_->NowMs() + hold.backoff_s * 1000;
  } else if (!held_.empty()) {
    held_.erase(gid);
  }
  MaybePollBacklog();
  return true;
}

void Engine::MaybePollBacklog() {
  const size_t limit = static_cast<size_t>(config_.max_active_transactions);
  if (!overflow_.empty() && !drain_pending_ && !stopping_ &&
      active_.size() < limit) {
    drain_pending_ = true;
    pool_.Post([this] { DrainOverflow(); });
  }
  if (!backlog_ || extra_poll_pending_ || stopping_ ||
      active_.size() >= limit - limit / 4) {
    return;
  }
  extra_poll_pending_ = true;
  PostAt(clock_->NowMs() + kBacklogPollMs,
         [this] { PollDue(/*periodic=*/false); });
}

void Engine::DrainOverflow() {
  std::vector<std::string> gids;
  {
    absl::MutexLock lock(&mu_);
    drain_pending_ = false;
    const size_t limit = static_cast<size_t>(config_.max_active_transactions);
    while (!overflow_.empty() && active_.size() + gids.size() < limit) {
      gids.push_back(std::move(overflow_.front()));
      overflow_.pop_front();
    }
  }
  // Over the limit again (a race with new work), a gid queues up again.
  for (const std::string& gid : gids) Drive(gid, DriveRequest());
}

void Engine::PostAt(int64_t when_ms, std::function<void()> fn) {
  // Timer closures must be short: the work itself runs on the pool.
  timers_.RunAt(when_ms,
                [this, fn = std::move(fn)]() mutable { pool_.Post(fn); });
}

void Engine::ScheduleWake(const std::string& gid, int64_t when_ms) {
  if (stopping_) return;
  PostAt(when_ms, [this, gid] {
    DriveRequest request;
    request.scheduled_wake = true;
    Drive(gid, std::move(request));
  });
}

void Engine::PollDue(bool periodic) {
  if (stopping_) return;
  int64_t capacity;
  {
    absl::MutexLock lock(&mu_);
    if (!periodic) extra_poll_pending_ = false;
    capacity =
        config_.max_active_transactions - static_cast<int64_t>(active_.size());
  }
  if (absl::Status health = store_->WriteHealth(); !health.ok()) {
    // Results could not be saved: calling branches now would only repeat
    // the calls. The store recovers by itself (or dtmd restarts).
    LOG_EVERY_N(WARNING, 20) << "store cannot write, not driving due "
                                "transactions: "
                             << health;
  } else if (capacity > 0) {
    absl::StatusOr<std::vector<std::string>> due =
        store_->ScanDue(clock_->NowMs(), static_cast<int>(capacity));
    if (!due.ok()) {
      LOG(ERROR) << "cannot scan the due index: " << due.status();
    } else {
      int started = 0;
      for (const std::string& gid : *due) {
        DriveRequest request;
        request.scheduled_wake = true;
        request.claimed = true;
        if (Drive(gid, std::move(request))) ++started;
      }
      if (!recovered_.exchange(true)) {
        LOG(INFO) << "recovery: the due index is loaded, " << due->size()
                  << " transactions due now";
      }
      absl::MutexLock lock(&mu_);
      // A full page with progress: more may be due; poll again as soon as
      // runners make room. A page of gids that could not start waits for
      // the next periodic poll instead of spinning.
      backlog_ = static_cast<int64_t>(due->size()) >= capacity && started > 0;
      MaybePollBacklog();
    }
  } else {
    absl::MutexLock lock(&mu_);
    backlog_ = true;
  }
  if (periodic) {
    PostAt(clock_->NowMs() + config_.cron_interval_s * 1000,
           [this] { PollDue(/*periodic=*/true); });
  }
}

}  // namespace dtmd
