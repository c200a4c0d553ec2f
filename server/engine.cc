#include "server/engine.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "server/saga_runner.h"

namespace dtmd {
namespace {

int PoolSize(const Config& config) {
  if (config.worker_threads > 0) return config.worker_threads;
  return std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
}

absl::Status Unavailable() {
  return absl::UnavailableError("dtmd is shutting down");
}

}  // namespace

bool Waiter::Finish(absl::Status status) {
  if (done_.exchange(true)) return false;
  ReplyCallback reply = std::move(reply_);
  reply(std::move(status));
  return true;
}

Engine::Engine(const Config& config, storage::Store* store,
               BranchInvoker* invoker, Clock* clock)
    : config_(config),
      store_(store),
      invoker_(invoker),
      clock_(clock),
      pool_(PoolSize(config)),
      timers_(clock) {}

Engine::~Engine() { Shutdown(); }

void Engine::Start() {
  if (started_.exchange(true)) return;
  pool_.Post([this] { PollDue(); });
}

void Engine::Shutdown() {
  if (stopping_.exchange(true)) return;
  std::vector<std::shared_ptr<SagaRunner>> runners;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [gid, runner] : active_) runners.push_back(runner);
  }
  for (const auto& runner : runners) {
    for (const auto& waiter : runner->TakeWaiters())
      waiter->Finish(Unavailable());
  }
  // Runners retire as their in-flight calls return. Calls that would take
  // longer than the default request timeout are cancelled (their
  // transactions resume after restart), so that no callback outlives the
  // engine.
  const absl::Condition idle(
      +[](decltype(active_)* active) { return active->empty(); }, &active_);
  {
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(idle,
                             absl::Seconds(config_.request_timeout_s + 2))) {
      store_->Flush();
      return;
    }
    LOG(WARNING) << active_.size()
                 << " transactions still had branch calls in flight at "
                    "shutdown; cancelling them, they resume after restart";
  }
  // A runner past its stopping check may still start a call: cancel again
  // until none is left.
  for (;;) {
    invoker_->CancelAll();
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(idle, absl::Seconds(1))) break;
  }
  store_->Flush();
}

std::shared_ptr<Waiter> Engine::MakeWaiter(const std::string& gid,
                                           int64_t request_timeout_s,
                                           ReplyCallback done) {
  auto waiter = std::make_shared<Waiter>(std::move(done));
  // docs/protocol.md section 5: the wait is bounded by RequestTimeout + 2 s.
  const int64_t bound_ms =
      (request_timeout_s + config_.wait_result_grace_s) * 1000;
  timers_.RunAfter(bound_ms, [waiter, gid] {
    waiter->Finish(absl::FailedPreconditionError(absl::StrCat(
        "transaction ", gid,
        " has not finished within the wait; dtmd keeps driving it")));
  });
  return waiter;
}

void Engine::Submit(NewTransaction txn, bool wait_result, ReplyCallback done) {
  if (stopping_) {
    done(Unavailable());
    return;
  }
  // What the reply needs besides the stored records, which the store hands
  // back once they are created.
  Submitted submitted{txn.trans.gid(), txn.trans.trans_type(),
                      txn.trans.options().request_timeout_s(), wait_result};
  store_->CreateTransaction(
      std::move(txn.trans), std::move(txn.branches), storage::Durability::kSync,
      [this, submitted = std::move(submitted), done = std::move(done)](
          absl::StatusOr<storage::CreateResult> result) mutable {
        // On the store's syncer thread: OnStored only replies (gRPC's Finish
        // does not block) and hands the transaction to a strand.
        OnStored(submitted, std::move(done), std::move(result));
      });
}

void Engine::OnStored(const Submitted& submitted, ReplyCallback done,
                      absl::StatusOr<storage::CreateResult> result) {
  if (!result.ok()) {
    done(absl::UnavailableError(
        absl::StrCat("cannot store transaction: ", result.status().message())));
    return;
  }
  const std::string& gid = submitted.gid;
  auto start = [this, gid, wait_result = submitted.wait_result,
                request_timeout_s = submitted.request_timeout_s](
                   std::optional<NewTransaction> preloaded,
                   ReplyCallback done) {
    std::shared_ptr<Waiter> waiter;
    if (wait_result) {
      waiter = MakeWaiter(gid, request_timeout_s, std::move(done));
    } else {
      done(absl::OkStatus());
    }
    Drive(gid, std::move(preloaded), std::move(waiter), false);
  };
  if (result->created) {
    start(NewTransaction{std::move(result->trans), std::move(result->branches)},
          std::move(done));
    return;
  }
  const storage::v1::TransRecord& existing = result->existing;
  if (existing.trans_type() != submitted.trans_type) {
    done(absl::InvalidArgumentError(absl::StrCat(
        "TransType: gid ", gid, " exists as a ", existing.trans_type(),
        " transaction, not ", submitted.trans_type)));
    return;
  }
  if (existing.status() == storage::kStatusSubmitted) {
    // A client's safe retry: accepted, and the transaction processed again.
    start(std::nullopt, std::move(done));
    return;
  }
  if (existing.status() != storage::kStatusPrepared) {
    done(absl::AbortedError(
        absl::StrCat("transaction ", gid, " is already ", existing.status())));
    return;
  }
  storage::v1::TransRecord now_submitted = existing;
  now_submitted.set_status(storage::kStatusSubmitted);
  now_submitted.set_update_time_ms(clock_->NowMs());
  store_->UpdateTransaction(
      std::move(now_submitted), storage::kStatusPrepared, {},
      storage::Durability::kSync,
      [this, gid, start, done = std::move(done)](absl::Status s) mutable {
        pool_.Post([this, gid, start, done = std::move(done), s]() mutable {
          if (s.ok()) {
            start(std::nullopt, std::move(done));
          } else if (absl::IsFailedPrecondition(s)) {
            done(absl::AbortedError(absl::StrCat(
                "transaction ", gid, " changed status: ", s.message())));
          } else {
            done(absl::UnavailableError(
                absl::StrCat("cannot store transaction: ", s.message())));
          }
        });
      });
}

void Engine::Prepare(NewTransaction txn, ReplyCallback done) {
  if (stopping_) {
    done(Unavailable());
    return;
  }
  std::string gid = txn.trans.gid();
  std::string trans_type = txn.trans.trans_type();
  store_->CreateTransaction(
      std::move(txn.trans), std::move(txn.branches), storage::Durability::kSync,
      [gid, trans_type,
       done = std::move(done)](absl::StatusOr<storage::CreateResult> result) {
        if (!result.ok()) {
          done(absl::UnavailableError(absl::StrCat("cannot store transaction: ",
                                                   result.status().message())));
        } else if (result->created) {
          done(absl::OkStatus());
        } else if (result->existing.trans_type() != trans_type) {
          done(absl::InvalidArgumentError(
              absl::StrCat("TransType: gid ", gid, " exists as a ",
                           result->existing.trans_type(), " transaction, not ",
                           trans_type)));
        } else if (result->existing.status() == storage::kStatusPrepared) {
          done(absl::OkStatus());  // idempotent
        } else {
          done(absl::AbortedError(absl::StrCat(
              "transaction ", gid, " is already ", result->existing.status())));
        }
      });
}

void Engine::Abort(const std::string& gid, const std::string& trans_type,
                   ReplyCallback done) {
  absl::StatusOr<storage::v1::TransRecord> trans = store_->GetTransaction(gid);
  if (!trans.ok()) {
    done(absl::IsNotFound(trans.status())
             ? absl::NotFoundError(
                   absl::StrCat("transaction ", gid, " does not exist"))
             : trans.status());
    return;
  }
  done(absl::AbortedError(absl::StrCat(
      "Abort is not supported for ", trans->trans_type(),
      " transactions (a saga rolls back when an action fails); transaction ",
      gid, " is ", trans->status())));
}

void Engine::Drive(const std::string& gid,
                   std::optional<NewTransaction> preloaded,
                   std::shared_ptr<Waiter> waiter, bool scheduled_wake) {
  std::shared_ptr<SagaRunner> runner;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      if (waiter) waiter->Finish(Unavailable());
      return;
    }
    auto it = active_.find(gid);
    if (it != active_.end()) {
      // Runners leave active_ under mu_ before they retire, so this attaches;
      // were it ever to fail, a new runner takes the waiter rather than
      // leaving it unanswered.
      if (!waiter || it->second->TryAttach(waiter)) return;
      active_.erase(it);
    }
    if (scheduled_wake &&
        active_.size() >=
            static_cast<size_t>(config_.max_active_transactions)) {
      return;  // still in the due index: the poller comes back for it.
    }
    runner = std::make_shared<SagaRunner>(this, gid);
    if (waiter) runner->TryAttach(std::move(waiter));
    active_.emplace(gid, runner);
  }
  runner->Begin(std::move(preloaded), scheduled_wake);
}

std::vector<std::shared_ptr<Waiter>> Engine::Retire(const std::string& gid,
                                                    SagaRunner* runner) {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(gid);
  if (it != active_.end() && it->second.get() == runner) active_.erase(it);
  return runner->TakeWaitersAndRetire();
}

void Engine::ScheduleWake(const std::string& gid, int64_t when_ms) {
  if (stopping_) return;
  timers_.RunAt(when_ms, [this, gid] {
    pool_.Post([this, gid] { Drive(gid, std::nullopt, nullptr, true); });
  });
}

void Engine::PollDue() {
  if (stopping_) return;
  absl::StatusOr<std::vector<std::string>> due =
      store_->ScanDue(clock_->NowMs(), config_.max_active_transactions);
  if (!due.ok()) {
    LOG(ERROR) << "cannot scan the due index: " << due.status();
  } else {
    for (const std::string& gid : *due) Drive(gid, std::nullopt, nullptr, true);
  }
  timers_.RunAfter(config_.cron_interval_s * 1000,
                   [this] { pool_.Post([this] { PollDue(); }); });
}

}  // namespace dtmd
