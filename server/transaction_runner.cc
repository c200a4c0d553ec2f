#include "server/transaction_runner.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "server/metrics.h"
#include "server/request_validation.h"
#include "server/retry_alert.h"
#include "server/txn/outcome.h"

namespace dtmd {

using storage::v1::BranchRecord;

namespace {

absl::Status CannotDrive(const std::string& gid) {
  return absl::UnavailableError(absl::StrCat(
      "transaction ", gid,
      " is stored but could not be driven now; it will be resumed"));
}

}  // namespace

TransactionRunner::TransactionRunner(Engine* engine, std::string gid)
    : engine_(engine),
      gid_(std::move(gid)),
      strand_(std::make_shared<Strand>(engine->pool())) {
  engine_->RunnerCreated();
}

TransactionRunner::~TransactionRunner() { engine_->RunnerDestroyed(); }

void TransactionRunner::Begin(std::optional<NewTransaction> preloaded,
                              Start start) {
  if (preloaded.has_value()) {
    // A new transaction, started from its create's completion on a pool
    // thread: run the first step right here.
    strand_->Dispatch([self = shared_from_this(), p = std::move(preloaded),
                       start]() mutable { self->Load(std::move(p), start); });
    return;
  }
  strand_->Post([self = shared_from_this(), p = std::move(preloaded),
                 start]() mutable { self->Load(std::move(p), start); });
}

bool TransactionRunner::TryAttach(std::shared_ptr<Waiter> waiter) {
  absl::MutexLock lock(&mu_);
  if (retired_) return false;
  waiters_.push_back(std::move(waiter));
  return true;
}

bool TransactionRunner::TryDeliver(PendingCommand command) {
  {
    absl::MutexLock lock(&mu_);
    if (retired_) return false;
    commands_.push_back(std::move(command));
  }
  strand_->Post([self = shared_from_this()] { self->ProcessCommands(); });
  return true;
}

std::vector<std::shared_ptr<Waiter>> TransactionRunner::TakeWaiters() {
  absl::MutexLock lock(&mu_);
  return std::exchange(waiters_, {});
}

bool TransactionRunner::TryRetire(
    std::vector<std::shared_ptr<Waiter>>* waiters) {
  absl::MutexLock lock(&mu_);
  if (retired_ || !commands_.empty()) return false;
  retired_ = true;
  *waiters = std::exchange(waiters_, {});
  return true;
}

bool TransactionRunner::HasClientWork() {
  absl::MutexLock lock(&mu_);
  return !waiters_.empty() || !commands_.empty();
}

bool TransactionRunner::TakeLease(Start start, int64_t now) {
  const absl::Status lease = engine_->store()->AcquireLease(gid_);
  if (lease.ok() || absl::IsNotFound(lease)) {
    lease_deadline_ms_ = 0;
    return true;  // NOT_FOUND: reading finds the gid missing.
  }
  if (absl::IsAborted(lease) && start == Start::kScheduledWake &&
      !HasClientWork()) {
    // Another replica drives the transaction: nothing to do here.
    VLOG(1) << "gid " << gid_ << ": " << lease.message();
    loaded_ = true;
    round_over_ = true;
    elsewhere_ = true;
    ProcessCommands();  // retires, or waits for the lease for a command.
    return false;
  }
  if (absl::IsAborted(lease) && !engine_->stopping()) {
    // A client's command or waiter: the replica driving the transaction
    // gives the lease up when its round ends (or loses it when it dies).
    if (lease_deadline_ms_ == 0) {
      lease_deadline_ms_ = now + (std::max(engine_->config().lease_timeout_s,
                                           trans_wait_bound_s()) +
                                  2) *
                                     1000;
    }
    if (now < lease_deadline_ms_) {
      engine_->PostAt(now + kLeaseRetryMs, [self = shared_from_this(), start] {
        self->strand_->Post([self, start] { self->Load(std::nullopt, start); });
      });
      return false;
    }
  }
  // Nothing is loaded or written: the runner only answers and retires.
  loaded_ = true;
  halted_ = true;
  round_over_ = true;
  halt_reason_ =
      absl::IsAborted(lease)
          ? absl::UnavailableError(absl::StrCat(
                "transaction ", gid_, " is being driven elsewhere (",
                lease.message(), "); retry later"))
          : absl::UnavailableError(absl::StrCat("cannot take transaction ",
                                                gid_, ": ", lease.message()));
  VLOG(1) << "gid " << gid_ << ": " << halt_reason_;
  ProcessCommands();
  return false;
}

void TransactionRunner::Load(std::optional<NewTransaction> preloaded,
                             Start start) {
  const int64_t now = engine_->clock()->NowMs();
  if (preloaded.has_value() && !engine_->store()->CheckLease(gid_).ok()) {
    // The lease its create took ran out before this runner started (the
    // process was paused, say): another replica may have driven the
    // transaction meanwhile. The stored record is the truth.
    LOG(WARNING) << "gid " << gid_
                 << ": lease lost before its first round, reading it anew";
    preloaded.reset();
  }
  if (!TakeLease(start, now)) return;
  if (preloaded.has_value()) {
    trans_ = std::move(preloaded->trans);
    branches_ = std::move(preloaded->branches);
  } else {
    absl::StatusOr<storage::v1::TransRecord> trans =
        engine_->store()->GetTransaction(gid_);
    if (absl::IsNotFound(trans.status())) {
      missing_ = true;
    } else {
      absl::StatusOr<std::vector<BranchRecord>> branches =
          trans.ok()
              ? engine_->store()->GetBranches(gid_)
              : absl::StatusOr<std::vector<BranchRecord>>(trans.status());
      if (!branches.ok()) {
        LOG(ERROR) << "gid " << gid_
                   << ": cannot read records: " << branches.status();
        loaded_ = true;
        Halt(branches.status());
        ProcessCommands();
        return;
      }
      trans_ = *std::move(trans);
      branches_ = *std::move(branches);
    }
  }
  loaded_ = true;
  round_over_ = true;
  if (!missing_) {
    mode_ = txn::FindMode(trans_.trans_type());
    if (mode_ == nullptr) {
      LOG(ERROR) << "gid " << gid_ << ": no mode for trans type '"
                 << trans_.trans_type() << "'";
      Halt(absl::InternalError("unknown trans type in the store"));
      ProcessCommands();
      return;
    }
    plan_ = mode_->MakePlan(trans_, branches_);
    stored_status_ = trans_.status();
    call_state_.assign(branches_.size(), txn::CallState::kIdle);
    // A scheduled wake-up that another round has already superseded does
    // nothing; so does any look at a final transaction. A runner started
    // for a command (a registration, say) runs a round only if the command
    // asks for one.
    bool due = true;
    if (start == Start::kScheduledWake) {
      due = trans_.next_cron_time_ms() <= now;
    } else if (start == Start::kCommand) {
      due = false;
    }
    round_over_ = storage::IsFinalStatus(trans_.status()) || !due;
  }
  ProcessCommands();  // Steps or retires.
}

void TransactionRunner::ProcessCommands() {
  if (!loaded_) return;  // Load processes them.
  if (elsewhere_) {
    if (!HasClientWork()) {
      MaybeRetire();
      return;
    }
    // A command came while retiring: it needs the lease.
    elsewhere_ = false;
    loaded_ = false;
    round_over_ = false;
    Load(std::nullopt, Start::kCommand);
    return;
  }
  std::vector<PendingCommand> commands;
  {
    absl::MutexLock lock(&mu_);
    commands.swap(commands_);
  }
  const int64_t now = engine_->clock()->NowMs();
  for (PendingCommand& command : commands) {
    if (missing_) {
      command.done(absl::NotFoundError(
          absl::StrCat("transaction ", gid_, " does not exist")));
      continue;
    }
    if (halted_ || engine_->stopping()) {
      command.done(halt_reason_.ok() ? CannotDrive(gid_) : halt_reason_);
      continue;
    }
    if (!txn::IsOperatorCommand(command.command) &&
        command.trans_type != trans_.trans_type()) {
      command.done(
          TransTypeMismatch(gid_, trans_.trans_type(), command.trans_type));
      continue;
    }
    txn::CommandResult result =
        txn::IsOperatorCommand(command.command)
            ? ApplyOperatorCommand(command.command, command.args, now)
            : mode_->ApplyCommand(command.command, command.args, branches_,
                                  &trans_, now);
    const size_t max_branches =
        static_cast<size_t>(engine_->config().max_branches);
    if (branches_.size() + result.added.size() > max_branches) {
      command.done(absl::ResourceExhaustedError(
          absl::StrCat("transaction ", gid_, " has ", branches_.size(),
                       " branch records; registering ", result.added.size(),
                       " more would pass the limit of ", max_branches,
                       " (--max_branches)")));
      continue;
    }
    command.refusal = result.reply;
    const bool added = !result.added.empty();
    if (added) AddBranches(std::move(result.added));
    if (result.drive) {
      round_over_ = false;
      reschedule_ = false;
    }
    if (result.changed || added) {
      if (storage::IsFinalStatus(trans_.status())) round_over_ = true;
      VLOG(1) << "gid " << gid_ << ": command moved it to " << trans_.status();
      if (result.changed) trans_dirty_ = true;
      awaiting_sync_.push_back(std::move(command));
    } else if (!awaiting_sync_.empty()) {
      // The state this answer is based on is not durable yet: it waits for
      // the synced write still to be issued...
      awaiting_sync_.push_back(std::move(command));
    } else if (sync_pending_) {
      // ...or for the one in flight.
      syncing_.push_back(std::move(command));
    } else {
      AcceptCommand(command);
    }
  }
  if (!awaiting_sync_.empty() && !sync_pending_) Persist(/*synced=*/true);
  Step();
}

txn::CommandResult TransactionRunner::ApplyOperatorCommand(
    txn::Command command, const txn::CommandArgs& args, int64_t now_ms) {
  txn::CommandResult result;
  if (storage::IsFinalStatus(trans_.status())) {
    result.reply = absl::FailedPreconditionError(
        absl::StrCat("transaction ", gid_, " is already ", trans_.status()));
    return result;
  }
  if (command == txn::Command::kRetryNow) {
    // A new round: what answered ongoing or unknown is called again.
    std::replace(call_state_.begin(), call_state_.end(),
                 txn::CallState::kDeferred, txn::CallState::kIdle);
    if (query_state_ == txn::CallState::kDeferred) {
      query_state_ = txn::CallState::kIdle;
    }
    result.drive = true;
    return result;
  }
  txn::MoveTo(&trans_, storage::kStatusFailed,
              args.rollback_reason.empty()
                  ? "force stopped"
                  : absl::StrCat("force stopped: ", args.rollback_reason),
              now_ms);
  trans_.set_update_time_ms(now_ms);
  force_stopped_ = true;
  reschedule_ = false;
  result.changed = true;
  return result;
}

void TransactionRunner::AddBranches(std::vector<BranchRecord> added) {
  for (BranchRecord& branch : added) {
    branch.set_gid(gid_);
    branch.set_position(static_cast<int32_t>(branches_.size()));
    appended_.push_back(branch);
    branches_.push_back(std::move(branch));
    call_state_.push_back(txn::CallState::kIdle);
  }
  plan_ = mode_->MakePlan(trans_, branches_);
}

void TransactionRunner::AcceptCommand(PendingCommand& command) {
  if (!command.refusal.ok()) {
    command.done(command.refusal);
    return;
  }
  if (!command.wait_result) {
    command.done(absl::OkStatus());
    return;
  }
  std::shared_ptr<Waiter> waiter = engine_->MakeWaiter(
      gid_, trans_.options().request_timeout_s(), std::move(command.done));
  absl::MutexLock lock(&mu_);
  waiters_.push_back(std::move(waiter));
}

void TransactionRunner::Step() {
  if (round_over_ || halted_ || sync_pending_ || !loaded_) {
    MaybeRetire();
    return;
  }
  if (engine_->stopping()) {
    if (in_flight_ == 0) {
      round_over_ = true;  // the stored next_cron_time resumes it later.
      Persist(/*synced=*/false);
    }
    MaybeRetire();
    return;
  }
  txn::RetryPolicy policy;
  policy.max_interval_s = engine_->config().max_retry_interval_s;
  for (;;) {
    const int64_t now = engine_->clock()->NowMs();
    txn::Decision decision = mode_->Next(*plan_, trans_, branches_, call_state_,
                                         query_state_, now, policy);
    if (!decision.new_status.empty()) {
      VLOG(1) << "gid " << gid_ << ": " << trans_.status() << " -> "
              << decision.new_status;
      txn::MoveTo(&trans_, decision.new_status, decision.rollback_reason, now);
      trans_dirty_ = true;
    }
    const bool final = storage::IsFinalStatus(trans_.status());
    // Write-ahead: a decision (made here or by a branch answer) is durable
    // before anything that follows from it.
    if (trans_.status() != stored_status_ &&
        mode_->MoveMustBeDurable(stored_status_, trans_.status())) {
      if (final) round_over_ = true;
      Persist(/*synced=*/true);
      MaybeRetire();
      return;
    }
    if (final) {
      round_over_ = true;
      break;
    }
    if (!decision.new_status.empty()) continue;  // plan under the new status.
    if (!decision.calls.empty() || decision.query.has_value()) {
      // A replica that lost its lease (paused, cut off) calls nothing: the
      // replica that took the transaction over may be calling it.
      if (absl::Status lease = engine_->store()->CheckLease(gid_);
          !lease.ok()) {
        Halt(lease);
        MaybeRetire();
        return;
      }
    }
    for (int position : decision.calls) CallBranch(position);
    if (decision.query.has_value()) CallQuery(*decision.query);
    if (decision.calls.empty() && !decision.query.has_value() &&
        in_flight_ == 0) {
      // Nothing more can happen now: sleep until the next look.
      if (decision.next_interval_s > 0) {
        trans_.set_next_cron_interval_s(decision.next_interval_s);
      }
      int64_t wake_ms = decision.wake_at_ms;
      if (wake_ms == 0) {
        wake_ms =
            now + std::max<int64_t>(1, trans_.next_cron_interval_s()) * 1000;
      }
      trans_.set_next_cron_time_ms(wake_ms);
      trans_dirty_ = true;
      round_over_ = true;
      reschedule_ = true;
    }
    break;
  }
  // Branch results wait for the round's end (or a batch of them): lost in a
  // crash, they only make the branches be called again, which branches
  // allow; a decision carries them in its synced write anyway.
  if (round_over_ ||
      dirty_branches_.size() >= static_cast<size_t>(kMaxDeferredResults)) {
    Persist(/*synced=*/false);
  }
  MaybeRetire();
}

void TransactionRunner::CallBranch(int position) {
  BranchRecord& branch = branches_[position];
  call_state_[position] = txn::CallState::kInFlight;
  branch.set_call_count(branch.call_count() + 1);
  Invoke(branch.url(), branch.bin_data(), branch.branch_id(), branch.op(),
         [this, position](BranchAnswer answer, double seconds) {
           OnAnswer(position, std::move(answer), seconds);
         });
}

void TransactionRunner::CallQuery(const txn::QueryCall& query) {
  query_state_ = txn::CallState::kInFlight;
  Invoke(query.url, query.payload, query.branch_id, query.op,
         [this, op = query.op](BranchAnswer answer, double seconds) {
           OnQueryAnswer(op, std::move(answer), seconds);
         });
}

void TransactionRunner::Invoke(
    const std::string& url, std::string payload, const std::string& branch_id,
    const std::string& op,
    std::function<void(BranchAnswer, double)> on_answer) {
  ++in_flight_;
  BranchCall call;
  call.url = url;
  call.payload = std::move(payload);
  call.timeout_ms = trans_.options().request_timeout_s() * 1000;
  if (std::optional<int64_t> left = engine_->store()->LeaseLeftMs(gid_)) {
    // Not sent at all after the lease runs out (a process paused between
    // its lease check and the send): the deadline has passed by then.
    call.timeout_ms = std::min(call.timeout_ms, std::max<int64_t>(*left, 1));
  }
  call.metadata.reserve(6 + trans_.options().branch_headers_size());
  call.metadata.emplace_back("dtm-gid", gid_);
  call.metadata.emplace_back("dtm-trans_type", trans_.trans_type());
  call.metadata.emplace_back("dtm-branch_id", branch_id);
  call.metadata.emplace_back("dtm-op", op);
  call.metadata.emplace_back("dtm-dtm", engine_->config().advertise_address);
  if (!engine_->config().replica_id.empty()) {
    call.metadata.emplace_back("dtmd-replica", engine_->config().replica_id);
  }
  for (const auto& [key, value] : trans_.options().branch_headers()) {
    call.metadata.emplace_back(key, value);
  }
  // The clock is read only for metrics.
  const bool timed = engine_->metrics() != nullptr;
  const auto start = timed ? std::chrono::steady_clock::now()
                           : std::chrono::steady_clock::time_point();
  // `this` stays alive through the shared_ptr the closure holds.
  engine_->invoker()->Call(std::move(call), [self = shared_from_this(),
                                             on_answer = std::move(on_answer),
                                             timed, start](BranchAnswer a) {
    const double seconds = timed ? std::chrono::duration<double>(
                                       std::chrono::steady_clock::now() - start)
                                       .count()
                                 : 0;
    // On a gRPC callback thread, which may run the event itself.
    self->strand_->Dispatch(
        [self, on_answer, a = std::move(a), seconds]() mutable {
          on_answer(std::move(a), seconds);
        });
  });
}

txn::BranchOutcome TransactionRunner::Classify(const std::string& op,
                                               const BranchAnswer& answer,
                                               double seconds) {
  const txn::BranchOutcome outcome = txn::ClassifyAnswer(
      answer.code, answer.message, mode_->FailureAllowed(op));
  if (Metrics* metrics = engine_->metrics(); metrics != nullptr) {
    metrics->BranchCalled(trans_.trans_type(), op, outcome, seconds);
  }
  return outcome;
}

void TransactionRunner::OnAnswer(int position, BranchAnswer answer,
                                 double seconds) {
  --in_flight_;
  BranchRecord& branch = branches_[position];
  const txn::BranchOutcome outcome = Classify(branch.op(), answer, seconds);
  // After a ForceStop the branches stay as they were: a late answer must
  // not move the stopped transaction again.
  if (halted_ || force_stopped_) {
    call_state_[position] = txn::CallState::kIdle;
    MaybeRetire();
    return;
  }
  // Any invoker's message is stored as the branch's last error: at most
  // 1 KiB of valid UTF-8 (a stored text field must be UTF-8).
  if (!answer.message.empty()) {
    answer.message = BranchAnswerMessage(answer.message);
  }
  VLOG(1) << "gid " << gid_ << " branch " << branch.branch_id() << " "
          << branch.op() << ": " << txn::OutcomeName(outcome) << " (code "
          << answer.code << " " << answer.message << ")";
  txn::RetryPolicy policy;
  policy.max_interval_s = engine_->config().max_retry_interval_s;
  const std::string status_before = branch.status();
  const bool deferred =
      mode_->ApplyAnswer(&trans_, &branch, outcome, answer.message,
                         engine_->clock()->NowMs(), policy);
  // A mode records a non-OK answer's message as last_error exactly when the
  // answer counts: the branch is retried (deferred) or has ended on it. Its
  // code goes with it.
  if (answer.code != 0 && (deferred || branch.status() != status_before)) {
    branch.set_last_code(answer.code);
  }
  if (deferred && outcome != txn::BranchOutcome::kOngoing) {
    MaybeAlert(branch);
  }
  call_state_[position] =
      deferred ? txn::CallState::kDeferred : txn::CallState::kIdle;
  dirty_branches_.push_back(position);
  if (trans_.status() != stored_status_) trans_dirty_ = true;
  Step();
}

void TransactionRunner::MaybeAlert(const BranchRecord& branch) {
  // call_count counts the first call too: the rest are retries.
  const int64_t retries = branch.call_count() - 1;
  if (!IsRetryAlertPoint(retries, engine_->config().alert_retry_limit)) {
    return;
  }
  RetryAlert alert;
  alert.gid = gid_;
  alert.trans_type = trans_.trans_type();
  alert.status = trans_.status();
  alert.branch_id = branch.branch_id();
  alert.op = branch.op();
  alert.url = branch.url();
  alert.last_error = branch.last_error();
  alert.last_code = branch.last_code();
  alert.retry_count = retries;
  engine_->RaiseRetryAlert(std::move(alert));
}

void TransactionRunner::OnQueryAnswer(const std::string& op,
                                      BranchAnswer answer, double seconds) {
  --in_flight_;
  const txn::BranchOutcome outcome = Classify(op, answer, seconds);
  if (halted_ || force_stopped_) {
    query_state_ = txn::CallState::kIdle;
    MaybeRetire();
    return;
  }
  if (!answer.message.empty()) {
    answer.message = BranchAnswerMessage(answer.message);
  }
  VLOG(1) << "gid " << gid_ << " query " << op << ": "
          << txn::OutcomeName(outcome) << " (code " << answer.code << " "
          << answer.message << ")";
  txn::RetryPolicy policy;
  policy.max_interval_s = engine_->config().max_retry_interval_s;
  const bool deferred = mode_->ApplyQueryAnswer(
      &trans_, outcome, answer.message, engine_->clock()->NowMs(), policy);
  if (answer.code != 0) {
    // Not a branch record: the check-back's last error is the
    // transaction's, so that a msg stuck prepared says why.
    trans_.set_last_query_error(answer.message);
    trans_.set_last_query_code(answer.code);
  }
  query_state_ = deferred ? txn::CallState::kDeferred : txn::CallState::kIdle;
  trans_dirty_ = true;
  Step();
}

void TransactionRunner::Persist(bool synced) {
  if (!synced && !trans_dirty_ && dirty_branches_.empty()) return;
  std::vector<BranchRecord> branches;
  branches.reserve(dirty_branches_.size());
  for (int position : dirty_branches_) {
    // The store writes a branch's state only: no payload is copied.
    const BranchRecord& branch = branches_[position];
    BranchRecord& state = branches.emplace_back();
    state.set_position(position);
    state.set_status(branch.status());
    state.set_finish_time_ms(branch.finish_time_ms());
    state.set_last_error(branch.last_error());
    state.set_call_count(branch.call_count());
    state.set_last_code(branch.last_code());
  }
  dirty_branches_.clear();
  // Writes complete in issue order, so the runner waits only for the writes
  // it must: a synced one (nothing follows until it is durable) and the one
  // that ends its round. Others report back only when they fail.
  const bool report = synced || round_over_;
  if (report) ++pending_writes_;
  if (synced) {
    sync_pending_ = true;
    for (PendingCommand& command : awaiting_sync_) {
      syncing_.push_back(std::move(command));
    }
    awaiting_sync_.clear();
  }
  // A move to a final status is counted once its write succeeds (a record
  // changes status through this runner's writes only).
  Metrics* const metrics = trans_dirty_ &&
                                   !storage::IsFinalStatus(stored_status_) &&
                                   storage::IsFinalStatus(trans_.status())
                               ? engine_->metrics()
                               : nullptr;
  const absl::string_view trans_type =
      metrics != nullptr ? mode_->trans_type() : absl::string_view();
  const bool succeeded = trans_.status() == storage::kStatusSucceed;
  const double seconds =
      static_cast<double>(trans_.finish_time_ms() - trans_.create_time_ms()) /
      1000;
  auto done = [self = shared_from_this(), report, synced, metrics, trans_type,
               succeeded, seconds](absl::Status status) {
    if (metrics != nullptr && status.ok()) {
      metrics->TransactionFinished(trans_type, succeeded, seconds);
    }
    if (!report && status.ok()) return;
    // On a store thread: the runner's work goes to the pool.
    self->strand_->Post([self, report, synced, status = std::move(status)]() {
      self->OnWritten(report, synced, status);
    });
  };
  const storage::Durability durability =
      synced ? storage::Durability::kSync : storage::Durability::kNoSync;
  if (!trans_dirty_ && !synced) {
    // A branch result that changed nothing else: no condition to check.
    engine_->store()->PutBranches(gid_, std::move(branches), durability,
                                  std::move(done));
    return;
  }
  trans_dirty_ = false;
  trans_.set_update_time_ms(engine_->clock()->NowMs());
  if (!appended_.empty()) {
    // Registered branches, in the same order of writes as the record: the
    // synced write below covers them. Only a failure reports back (before
    // that write's callback: kSync callbacks run in issue order).
    ++pending_writes_;
    engine_->store()->AppendBranches(
        gid_, stored_status_, std::exchange(appended_, {}),
        storage::Durability::kSync,
        [self = shared_from_this()](absl::Status status) {
          self->strand_->Post([self, status = std::move(status)] {
            --self->pending_writes_;
            if (!status.ok()) self->Halt(status);
          });
        });
  }
  std::string expected = std::exchange(stored_status_, trans_.status());
  engine_->store()->UpdateTransaction(trans_, std::move(expected),
                                      std::move(branches), durability,
                                      std::move(done));
}

void TransactionRunner::OnWritten(bool report, bool synced,
                                  absl::Status status) {
  if (report) --pending_writes_;
  if (synced) sync_pending_ = false;
  if (!status.ok()) {
    Halt(status);
  } else if (synced) {
    std::vector<PendingCommand> accepted = std::exchange(syncing_, {});
    for (PendingCommand& command : accepted) AcceptCommand(command);
  }
  if (!halted_ && !awaiting_sync_.empty()) Persist(/*synced=*/true);
  Step();
}

void TransactionRunner::Halt(const absl::Status& status) {
  if (!halted_) {
    // The stored record is the truth; stop and resume from it.
    if (absl::IsFailedPrecondition(status)) {
      // Another writer moved the status first: not an error, start over.
      VLOG(1) << "gid " << gid_ << ": status changed meanwhile: " << status;
      conflict_ = true;
    } else if (absl::IsAborted(status)) {
      // The lease is lost (the shared store's fencing): another replica
      // drives the transaction now.
      LOG(WARNING) << "gid " << gid_ << ": stopping: " << status;
    } else {
      LOG(ERROR) << "gid " << gid_ << ": write failed, halting: " << status;
    }
  }
  halted_ = true;
  round_over_ = true;
  reschedule_ = false;
  for (std::vector<PendingCommand>* list : {&syncing_, &awaiting_sync_}) {
    for (PendingCommand& command : *list) {
      command.done(absl::UnavailableError(absl::StrCat(
          "cannot store transaction ", gid_, ": ", status.message())));
    }
    list->clear();
  }
}

void TransactionRunner::MaybeRetire() {
  if (!round_over_ || in_flight_ > 0 || pending_writes_ > 0 || sync_pending_ ||
      !awaiting_sync_.empty()) {
    return;
  }
  std::vector<std::shared_ptr<Waiter>> waiters;
  // False: already retired, or a command arrived (its event follows).
  if (!engine_->Retire(gid_, this, halted_ && !conflict_, &waiters)) return;
  if (conflict_) {
    // A fresh runner reads the new state; the waiters wait for it.
    Engine::DriveRequest again;
    engine_->Drive(gid_, std::move(again));
    for (auto& waiter : waiters) {
      Engine::DriveRequest request;
      request.waiter = std::move(waiter);
      engine_->Drive(gid_, std::move(request));
    }
    return;
  }
  if (elsewhere_) return;
  if (reschedule_ && !halted_) {
    engine_->ScheduleWake(gid_, trans_.next_cron_time_ms());
  }
  if (waiters.empty()) return;
  const absl::Status outcome = Outcome();
  for (const std::shared_ptr<Waiter>& waiter : waiters) waiter->Finish(outcome);
}

absl::Status TransactionRunner::Outcome() const {
  if (halted_) return halt_reason_.ok() ? CannotDrive(gid_) : halt_reason_;
  if (missing_) {
    return absl::NotFoundError(
        absl::StrCat("transaction ", gid_, " does not exist"));
  }
  return mode_->WaitOutcome(trans_, branches_);
}

}  // namespace dtmd
