#include "server/txn/msg.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "storage/store.h"

// MsgMode: the msg state machine. Parsing is in msg_parse.cc.
namespace dtmd::txn {
namespace {

namespace st = ::dtmd::storage;

// Whether a prepared msg is due for its QueryPrepared check: TimeoutToFail
// has passed since creation, or there is none to wait for.
bool CheckDue(const TransRecord& trans, int64_t now_ms) {
  return trans.options().timeout_to_fail_s() <= 0 || TimedOut(trans, now_ms);
}

// The record's CustomedData delay; a record whose CustomedData does not
// parse (only a corrupt one: ParseMsg checked it) has none.
int64_t DelaySeconds(const TransRecord& trans) {
  absl::StatusOr<int64_t> delay_s =
      ParseMsgDelay(trans.customed_data(), StepsLimits().max_json_depth);
  return delay_s.ok() ? *delay_s : 0;
}

Decision NextPrepared(const TransRecord& trans, CallState query_state,
                      int64_t now_ms) {
  Decision decision;
  if (!CheckDue(trans, now_ms)) {
    // Waiting for Submit (or Abort) until the deadline.
    decision.wake_at_ms = AfterSeconds(trans.create_time_ms(),
                                       trans.options().timeout_to_fail_s());
    return decision;
  }
  if (trans.query_prepared().empty()) {
    // Nothing to ask: DTM counts an empty URL as a yes.
    decision.new_status = st::kStatusSubmitted;
    return decision;
  }
  // In flight: wait for its answer; deferred: ask again next round.
  if (query_state != CallState::kIdle) return decision;
  QueryCall query;
  query.url = trans.query_prepared();
  query.branch_id = kQueryBranchId;
  query.op = kOpMsg;
  decision.query = std::move(query);
  return decision;
}

Decision NextSubmitted(const TransRecord& trans,
                       const std::vector<BranchRecord>& branches,
                       const std::vector<CallState>& call_state,
                       int64_t now_ms) {
  Decision decision;
  const int64_t delay_s = DelaySeconds(trans);
  if (delay_s > 0) {
    const int64_t start_ms = AfterSeconds(trans.create_time_ms(), delay_s);
    if (now_ms < start_ms) {
      decision.wake_at_ms = start_ms;
      return decision;
    }
  }
  // One action at a time, in position order: the first one not done.
  for (size_t position = 0; position < branches.size(); ++position) {
    if (branches[position].status() != kBranchPrepared) continue;
    const CallState state =
        position < call_state.size() ? call_state[position] : CallState::kIdle;
    if (state == CallState::kIdle) {
      decision.calls.push_back(static_cast<int>(position));
    }
    return decision;
  }
  decision.new_status = st::kStatusSucceed;
  return decision;
}

void ResetInterval(TransRecord* trans) {
  trans->set_next_cron_interval_s(trans->options().retry_interval_s());
}

void DoubleInterval(TransRecord* trans, const RetryPolicy& policy) {
  trans->set_next_cron_interval_s(DoubledInterval(
      trans->next_cron_interval_s(), trans->options().retry_interval_s(),
      policy.max_interval_s));
}

}  // namespace

std::unique_ptr<Plan> MsgMode::MakePlan(
    const TransRecord&, const std::vector<BranchRecord>&) const {
  return std::make_unique<Plan>();  // a msg needs no planning data.
}

CommandResult MsgMode::ApplyCommand(Command command, const CommandArgs& args,
                                    const std::vector<BranchRecord>&,
                                    TransRecord* trans, int64_t now_ms) const {
  CommandResult result;
  const std::string& status = trans->status();
  switch (command) {
    case Command::kRegisterBranch:
      result.reply = absl::InvalidArgumentError(
          "TransType: msg transactions take no RegisterBranch (their branches "
          "are the steps given at Prepare or Submit)");
      return result;
    case Command::kAbort:
      if (status != st::kStatusPrepared) {
        result.reply = absl::AbortedError(absl::StrCat(
            "trans type 'msg' current status '", status, "', cannot abort"));
        return result;
      }
      MoveTo(trans, st::kStatusFailed, args.rollback_reason, now_ms);
      trans->set_update_time_ms(now_ms);
      result.changed = true;
      return result;
    case Command::kSubmit:
      break;
    case Command::kRetryNow:
    case Command::kForceStop:
      result.reply = OperatorCommandError();
      return result;
  }
  if (status == st::kStatusSubmitted) {
    // A client's safe retry: accepted, and the msg processed again.
    result.drive = true;
    return result;
  }
  if (status != st::kStatusPrepared) {
    result.reply = absl::AbortedError(
        absl::StrCat("transaction ", trans->gid(), " is already ", status));
    return result;
  }
  // Accepted whatever the time: a prepared msg past its timeout has not
  // been checked yet, and the client's Submit says that it committed.
  SubmitPrepared(trans, now_ms);
  result.changed = true;
  result.drive = true;
  return result;
}

Decision MsgMode::Next(const Plan&, const TransRecord& trans,
                       const std::vector<BranchRecord>& branches,
                       const std::vector<CallState>& call_state,
                       CallState query_state, int64_t now_ms,
                       const RetryPolicy&) const {
  if (trans.status() == st::kStatusPrepared) {
    return NextPrepared(trans, query_state, now_ms);
  }
  if (trans.status() == st::kStatusSubmitted) {
    return NextSubmitted(trans, branches, call_state, now_ms);
  }
  return Decision();  // final (or a status a msg never has): nothing.
}

bool MsgMode::MoveMustBeDurable(absl::string_view from,
                                absl::string_view to) const {
  // A lost move to succeed is made again after a restart without calling
  // anything; a move out of prepared decides whether the actions run.
  return !(from == st::kStatusSubmitted && to == st::kStatusSucceed);
}

bool MsgMode::ApplyAnswer(TransRecord* trans, BranchRecord* branch,
                          BranchOutcome outcome, absl::string_view message,
                          int64_t now_ms, const RetryPolicy& policy) const {
  // A late or repeated answer for a branch that already ended changes nothing.
  if (branch->status() != kBranchPrepared) return false;
  switch (outcome) {
    case BranchOutcome::kSuccess:
      branch->set_status(kBranchSucceed);
      branch->set_finish_time_ms(now_ms);
      ResetInterval(trans);
      return false;
    case BranchOutcome::kOngoing:
      break;
    case BranchOutcome::kFailure:  // an action must succeed: unknown.
    case BranchOutcome::kUnknown:
      DoubleInterval(trans, policy);
      break;
  }
  branch->set_last_error(std::string(message));
  return true;
}

bool MsgMode::ApplyQueryAnswer(TransRecord* trans, BranchOutcome outcome,
                               absl::string_view message, int64_t now_ms,
                               const RetryPolicy& policy) const {
  // A Submit or Abort may have moved the msg while the check was in flight.
  if (trans->status() != st::kStatusPrepared) return false;
  switch (outcome) {
    case BranchOutcome::kSuccess:
      MoveTo(trans, st::kStatusSubmitted, "", now_ms);
      trans->set_update_time_ms(now_ms);
      ResetInterval(trans);
      return false;
    case BranchOutcome::kFailure:
      MoveTo(trans, st::kStatusFailed, message, now_ms);
      trans->set_update_time_ms(now_ms);
      return false;
    case BranchOutcome::kOngoing:
      ResetInterval(trans);  // DTM's cronReset: ask again at the base rate.
      return true;
    case BranchOutcome::kUnknown:
      DoubleInterval(trans, policy);
      return true;
  }
  return true;
}

absl::Status MsgMode::WaitOutcome(const TransRecord& trans,
                                  const std::vector<BranchRecord>&) const {
  return DefaultWaitOutcome(trans);
}

}  // namespace dtmd::txn
