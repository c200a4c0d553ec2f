#include "server/saga_runner.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dtmd {

using storage::v1::BranchRecord;

SagaRunner::SagaRunner(Engine* engine, std::string gid)
    : engine_(engine),
      gid_(std::move(gid)),
      strand_(std::make_shared<Strand>(engine->pool())) {}

void SagaRunner::Begin(std::optional<NewTransaction> preloaded,
                       bool scheduled_wake) {
  strand_->Post(
      [self = shared_from_this(), p = std::move(preloaded),
       scheduled_wake]() mutable { self->Load(std::move(p), scheduled_wake); });
}

bool SagaRunner::TryAttach(std::shared_ptr<Waiter> waiter) {
  absl::MutexLock lock(&mu_);
  if (retired_) return false;
  waiters_.push_back(std::move(waiter));
  return true;
}

std::vector<std::shared_ptr<Waiter>> SagaRunner::TakeWaiters() {
  absl::MutexLock lock(&mu_);
  return std::exchange(waiters_, {});
}

std::vector<std::shared_ptr<Waiter>> SagaRunner::TakeWaitersAndRetire() {
  absl::MutexLock lock(&mu_);
  retired_ = true;
  return std::exchange(waiters_, {});
}

void SagaRunner::Load(std::optional<NewTransaction> preloaded,
                      bool scheduled_wake) {
  const int64_t now = engine_->clock()->NowMs();
  if (preloaded.has_value()) {
    trans_ = std::move(preloaded->trans);
    branches_ = std::move(preloaded->branches);
  } else {
    absl::StatusOr<storage::v1::TransRecord> trans =
        engine_->store()->GetTransaction(gid_);
    absl::StatusOr<std::vector<BranchRecord>> branches =
        trans.ok() ? engine_->store()->GetBranches(gid_)
                   : absl::StatusOr<std::vector<BranchRecord>>(trans.status());
    if (!branches.ok()) {
      LOG(ERROR) << "gid " << gid_
                 << ": cannot read records: " << branches.status();
      halted_ = true;
      round_over_ = true;
      MaybeRetire();
      return;
    }
    trans_ = *std::move(trans);
    branches_ = *std::move(branches);
  }
  stored_status_ = trans_.status();
  call_state_.assign(branches_.size(), txn::CallState::kIdle);

  if (storage::IsFinalStatus(trans_.status())) {
    round_over_ = true;
    MaybeRetire();
    return;
  }
  // A wake-up that another round has already superseded.
  if (scheduled_wake && trans_.next_cron_time_ms() > now) {
    round_over_ = true;
    MaybeRetire();
    return;
  }
  if (trans_.status() == storage::kStatusPrepared) {
    const int64_t timeout_s = trans_.options().timeout_to_fail_s();
    if (timeout_s > 0 && now >= trans_.create_time_ms() + timeout_s * 1000) {
      // Nothing ran yet, so nothing needs compensating.
      trans_.set_status(storage::kStatusFailed);
      trans_.set_rollback_reason(
          absl::StrCat("Timeout after ", timeout_s, " seconds"));
      trans_.set_finish_time_ms(now);
      trans_dirty_ = true;
      round_over_ = true;
      Persist();
      MaybeRetire();
      return;
    }
    // Waits for Submit; looks again after the interval.
    trans_.set_next_cron_time_ms(
        now + std::max<int64_t>(1, trans_.next_cron_interval_s()) * 1000);
    trans_dirty_ = true;
    round_over_ = true;
    reschedule_ = true;
    Persist();
    MaybeRetire();
    return;
  }
  Step();
}

void SagaRunner::Step() {
  if (round_over_) return;
  if (engine_->stopping()) {
    if (in_flight_ == 0) {
      round_over_ = true;  // the stored next_cron_time resumes it later.
      Persist();
      MaybeRetire();
    }
    return;
  }
  for (;;) {
    const int64_t now = engine_->clock()->NowMs();
    txn::SagaDecision decision =
        txn::PlanSaga(trans_, branches_, call_state_, now);
    if (!decision.new_status.empty()) {
      VLOG(1) << "gid " << gid_ << ": " << trans_.status() << " -> "
              << decision.new_status;
      trans_.set_status(decision.new_status);
      if (!decision.rollback_reason.empty()) {
        trans_.set_rollback_reason(decision.rollback_reason);
      }
      trans_dirty_ = true;
      if (storage::IsFinalStatus(trans_.status())) {
        trans_.set_finish_time_ms(now);
        round_over_ = true;
        break;
      }
      continue;  // plan again under the new status.
    }
    for (int position : decision.calls) CallBranch(position);
    if (decision.calls.empty() && in_flight_ == 0) {
      // Nothing more can happen now: sleep until the next retry.
      const int64_t interval_s =
          std::max<int64_t>(1, trans_.next_cron_interval_s());
      trans_.set_next_cron_time_ms(now + interval_s * 1000);
      trans_dirty_ = true;
      round_over_ = true;
      reschedule_ = true;
    }
    break;
  }
  Persist();
  MaybeRetire();
}

void SagaRunner::CallBranch(int position) {
  BranchRecord& branch = branches_[position];
  call_state_[position] = txn::CallState::kInFlight;
  ++in_flight_;
  branch.set_call_count(branch.call_count() + 1);

  BranchCall call;
  call.url = branch.url();
  call.payload = branch.bin_data();
  call.timeout_ms = trans_.options().request_timeout_s() * 1000;
  call.metadata.reserve(5 + trans_.options().branch_headers_size());
  call.metadata.emplace_back("dtm-gid", gid_);
  call.metadata.emplace_back("dtm-trans_type", trans_.trans_type());
  call.metadata.emplace_back("dtm-branch_id", branch.branch_id());
  call.metadata.emplace_back("dtm-op", branch.op());
  call.metadata.emplace_back("dtm-dtm", engine_->config().advertise_address);
  for (const auto& [key, value] : trans_.options().branch_headers()) {
    call.metadata.emplace_back(key, value);
  }
  engine_->invoker()->Call(
      std::move(call), [self = shared_from_this(), position](BranchAnswer a) {
        // On a gRPC callback thread, which may run the event itself.
        self->strand_->Dispatch([self, position, a = std::move(a)]() mutable {
          self->OnAnswer(position, std::move(a));
        });
      });
}

void SagaRunner::OnAnswer(int position, BranchAnswer answer) {
  --in_flight_;
  if (halted_) {
    MaybeRetire();
    return;
  }
  BranchRecord& branch = branches_[position];
  txn::BranchOutcome outcome = txn::ClassifyAnswer(
      answer.code, answer.message, txn::SagaFailureAllowed(branch.op()));
  VLOG(1) << "gid " << gid_ << " branch " << branch.branch_id() << " "
          << branch.op() << ": " << txn::OutcomeName(outcome) << " (code "
          << answer.code << " " << answer.message << ")";
  txn::RetryPolicy policy;
  policy.max_interval_s = engine_->config().max_retry_interval_s;
  const std::string status_before = trans_.status();
  bool deferred =
      txn::ApplySagaResult(&trans_, &branch, outcome, answer.message,
                           engine_->clock()->NowMs(), policy);
  call_state_[position] =
      deferred ? txn::CallState::kDeferred : txn::CallState::kIdle;
  dirty_branches_.push_back(position);
  if (trans_.status() != status_before) trans_dirty_ = true;
  Step();
}

void SagaRunner::Persist() {
  if (!trans_dirty_ && dirty_branches_.empty()) return;
  std::vector<BranchRecord> branches;
  branches.reserve(dirty_branches_.size());
  for (int position : dirty_branches_) branches.push_back(branches_[position]);
  dirty_branches_.clear();
  // Writes complete in issue order, so the runner waits only for the write
  // that ends its round; earlier writes report back only when they fail.
  const bool last = round_over_;
  if (last) ++pending_writes_;
  auto done = [self = shared_from_this(), last](absl::Status status) {
    if (!last && status.ok()) return;
    // The round's last write: the runner is idle, so retiring (a map erase
    // and the waiters' replies, which do not block) runs right here.
    self->strand_->Dispatch([self, last, status = std::move(status)]() {
      self->OnWritten(last, status);
    });
  };
  if (!trans_dirty_) {
    // A branch result that changed nothing else: no condition to check.
    engine_->store()->PutBranches(gid_, std::move(branches),
                                  storage::Durability::kNoSync,
                                  std::move(done));
    return;
  }
  trans_dirty_ = false;
  trans_.set_update_time_ms(engine_->clock()->NowMs());
  std::string expected = std::exchange(stored_status_, trans_.status());
  engine_->store()->UpdateTransaction(
      trans_, std::move(expected), std::move(branches),
      storage::Durability::kNoSync, std::move(done));
}

void SagaRunner::OnWritten(bool last, absl::Status status) {
  if (last) --pending_writes_;
  if (!status.ok() && !halted_) {
    // The stored record is the truth; stop and resume from it.
    if (absl::IsFailedPrecondition(status)) {
      // Another writer moved the status first (a Submit of a prepared saga
      // while this runner looked at it): not an error, start over.
      VLOG(1) << "gid " << gid_ << ": status changed meanwhile: " << status;
      conflict_ = true;
    } else {
      LOG(ERROR) << "gid " << gid_ << ": write failed, halting: " << status;
    }
    halted_ = true;
    round_over_ = true;
    reschedule_ = false;
  }
  MaybeRetire();
}

void SagaRunner::MaybeRetire() {
  if (!round_over_ || in_flight_ > 0 || pending_writes_ > 0) return;
  std::vector<std::shared_ptr<Waiter>> waiters = engine_->Retire(gid_, this);
  if (conflict_) {
    // A fresh runner reads the new state; the waiters wait for it.
    engine_->Drive(gid_, std::nullopt, nullptr, false);
    for (auto& waiter : waiters) {
      engine_->Drive(gid_, std::nullopt, std::move(waiter), false);
    }
    return;
  }
  if (reschedule_ && !halted_) {
    engine_->ScheduleWake(gid_, trans_.next_cron_time_ms());
  }
  if (waiters.empty()) return;
  absl::Status outcome = Outcome();
  for (const std::shared_ptr<Waiter>& waiter : waiters) waiter->Finish(outcome);
}

absl::Status SagaRunner::Outcome() const {
  if (halted_) {
    return absl::UnavailableError(
        absl::StrCat("transaction ", gid_,
                     " is stored but could not be driven now; it "
                     "will be resumed"));
  }
  if (trans_.status() == storage::kStatusSucceed) return absl::OkStatus();
  if (trans_.status() == storage::kStatusFailed) {
    std::string message = absl::StrCat("transaction ", gid_,
                                       " failed: ", trans_.rollback_reason());
    for (const BranchRecord& b : branches_) {
      if (b.op() == txn::kOpAction && b.status() == txn::kBranchFailed) {
        absl::StrAppend(&message, " (branch ", b.branch_id(),
                        " action answered: ", b.last_error(), ")");
        break;
      }
    }
    return absl::AbortedError(message);
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "transaction ", gid_, " is still ", trans_.status(),
      " after its first round; dtmd keeps retrying in the background"));
}

}  // namespace dtmd
