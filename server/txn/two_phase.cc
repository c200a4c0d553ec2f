#include "server/txn/two_phase.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "storage/store.h"

namespace dtmd::txn {
namespace {

namespace st = ::dtmd::storage;

CallState StateAt(const std::vector<CallState>& call_state, int position) {
  return position < static_cast<int>(call_state.size()) ? call_state[position]
                                                        : CallState::kIdle;
}

}  // namespace

std::unique_ptr<Plan> TwoPhaseMode::MakePlan(
    const TransRecord& /*trans*/,
    const std::vector<BranchRecord>& /*branches*/) const {
  return std::make_unique<Plan>();
}

CommandResult TwoPhaseMode::RegisterBranches(
    const CommandArgs& args, const std::vector<BranchRecord>& branches,
    const TransRecord& trans) const {
  CommandResult result;
  if (trans.status() != st::kStatusPrepared) {
    result.reply = absl::AbortedError(
        absl::StrCat("transaction ", trans.gid(), " is ", trans.status(),
                     ", branches can be registered only while it is prepared"));
    return result;
  }
  for (const BranchRecord& branch : args.branches) {
    const BranchRecord* existing = FindBranch(branches, branch);
    if (existing == nullptr) existing = FindBranch(result.added, branch);
    if (existing == nullptr) {
      result.added.push_back(branch);
      continue;
    }
    if (existing->url() == branch.url() &&
        existing->bin_data() == branch.bin_data()) {
      continue;  // a client's retry of this registration.
    }
    result.added.clear();
    result.reply = absl::AlreadyExistsError(absl::StrCat(
        "branch ", branch.branch_id(), " op ", branch.op(), " of transaction ",
        trans.gid(), " is already registered with a different url or payload"));
    return result;
  }
  return result;
}

CommandResult TwoPhaseMode::ApplyCommand(
    Command command, const CommandArgs& args,
    const std::vector<BranchRecord>& branches, TransRecord* trans,
    int64_t now_ms) const {
  if (command == Command::kRegisterBranch) {
    return RegisterBranches(args, branches, *trans);
  }
  CommandResult result;
  const std::string& status = trans->status();
  if (command == Command::kAbort) {
    if (status == st::kStatusPrepared) {
      LeavePrepared(trans, st::kStatusAborting, args.rollback_reason, now_ms);
      result.changed = true;
      result.drive = true;
    } else if (status == st::kStatusAborting) {
      result.drive = true;  // a client's retry: roll back again now.
    } else {
      result.reply = absl::AbortedError(
          absl::StrCat("trans type '", spec_.trans_type, "' current status '",
                       status, "', cannot abort"));
    }
    return result;
  }
  // kSubmit.
  if (status == st::kStatusSubmitted) {
    result.drive = true;  // a client's retry: processed again.
    return result;
  }
  if (status != st::kStatusPrepared) {
    result.reply = absl::AbortedError(
        absl::StrCat("transaction ", trans->gid(), " is already ", status));
    return result;
  }
  result.changed = true;
  result.drive = true;
  if (TimedOut(*trans, now_ms)) {
    // Too late to commit: it rolls back as its own look would have made it.
    LeavePrepared(trans, st::kStatusAborting, TimeoutReason(*trans), now_ms);
    result.reply = absl::AbortedError(absl::StrCat(
        "transaction ", trans->gid(), " is aborting: ", TimeoutReason(*trans)));
    return result;
  }
  SubmitPrepared(trans, now_ms);
  return result;
}

Decision TwoPhaseMode::Next(const Plan& /*plan*/, const TransRecord& trans,
                            const std::vector<BranchRecord>& branches,
                            const std::vector<CallState>& call_state,
                            CallState /*query_state*/, int64_t now_ms,
                            const RetryPolicy& policy) const {
  const std::string& status = trans.status();
  if (status == st::kStatusSubmitted) {
    return RunPhase(spec_.commit_op, st::kStatusSucceed, branches, call_state);
  }
  if (status == st::kStatusAborting) {
    return RunPhase(spec_.rollback_op, st::kStatusFailed, branches, call_state);
  }
  if (status != st::kStatusPrepared) return Decision();
  const int64_t timeout_s = trans.options().timeout_to_fail_s();
  // Without a deadline only a command moves it: look again now and then.
  if (timeout_s <= 0) return BackOff(trans, now_ms, policy);
  Decision decision;
  if (!TimedOut(trans, now_ms)) {
    // Nothing but a command happens before the deadline (which saturates:
    // a TimeoutToFail beyond int64 milliseconds never comes).
    decision.wake_at_ms = AfterSeconds(trans.create_time_ms(), timeout_s);
    return decision;
  }
  decision.new_status = st::kStatusAborting;
  decision.rollback_reason = TimeoutReason(trans);
  return decision;
}

Decision TwoPhaseMode::RunPhase(
    absl::string_view op, absl::string_view final_status,
    const std::vector<BranchRecord>& branches,
    const std::vector<CallState>& call_state) const {
  Decision decision;
  const int count = static_cast<int>(branches.size());
  for (int i = 0; i < count; ++i) {
    const int position = spec_.reverse_order ? count - 1 - i : i;
    const BranchRecord& branch = branches[position];
    // Any status but succeed is still to do: a "failed" second-phase branch,
    // which only a corrupt record has, is retried as well.
    if (branch.op() != op || branch.status() == kBranchSucceed) continue;
    if (StateAt(call_state, position) == CallState::kIdle) {
      decision.calls.push_back(position);
    }
    return decision;  // one at a time: later ones wait for this one.
  }
  decision.new_status = std::string(final_status);
  return decision;
}

bool TwoPhaseMode::MoveMustBeDurable(absl::string_view from,
                                     absl::string_view to) const {
  return DefaultMoveMustBeDurable(from, to);
}

bool TwoPhaseMode::ApplyAnswer(TransRecord* trans, BranchRecord* branch,
                               BranchOutcome outcome, absl::string_view message,
                               int64_t now_ms,
                               const RetryPolicy& policy) const {
  // A late or repeated answer for a branch that already succeeded changes
  // nothing. (A second phase never fails: a "failed" one, which only a
  // damaged record has, is called again like any unfinished one, and its
  // answer counts.)
  if (branch->status() == kBranchSucceed) return false;
  if (outcome == BranchOutcome::kSuccess) {
    branch->set_status(kBranchSucceed);
    branch->set_finish_time_ms(now_ms);
    trans->set_next_cron_interval_s(trans->options().retry_interval_s());
    return false;
  }
  // A second phase must eventually succeed: a failure counts as unknown.
  branch->set_last_error(std::string(message));
  if (outcome != BranchOutcome::kOngoing) {
    trans->set_next_cron_interval_s(DoubledInterval(
        trans->next_cron_interval_s(), trans->options().retry_interval_s(),
        policy.max_interval_s));
  }
  return true;
}

absl::Status TwoPhaseMode::WaitOutcome(const TransRecord& trans,
                                       const std::vector<BranchRecord>&) const {
  return DefaultWaitOutcome(trans);
}

}  // namespace dtmd::txn
