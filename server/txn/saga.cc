#include "server/txn/saga.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "storage/store.h"

namespace dtmd::txn {
namespace {

namespace st = ::dtmd::storage;

// A read-only view of a saga for one decision: its graph, the branches and
// which steps are done.
class SagaView {
 public:
  SagaView(const SagaGraph& graph, const std::vector<BranchRecord>& branches,
           const std::vector<CallState>& call_state)
      : graph_(graph),
        branches_(branches),
        call_state_(call_state),
        steps_(std::min(graph.steps(), static_cast<int>(branches.size() / 2))) {
    ComputeDone();
  }

  int steps() const { return steps_; }
  static int Compensate(int step) { return 2 * step; }
  static int Action(int step) { return 2 * step + 1; }

  const std::string& Status(int position) const {
    return branches_[position].status();
  }
  CallState State(int position) const {
    return position < static_cast<int>(call_state_.size())
               ? call_state_[position]
               : CallState::kIdle;
  }

  // Calls f(succ) for every step that lists `step` as a predecessor.
  template <typename F>
  void ForEachSuccessor(int step, F f) const {
    for (const int* it = graph_.succs_begin(step); it != graph_.succs_end(step);
         ++it) {
      if (*it < steps_) f(*it);
    }
  }

  // Every predecessor of `step` is done: its action may have been called.
  bool Eligible(int step) const {
    for (const int* it = graph_.preds_begin(step); it != graph_.preds_end(step);
         ++it) {
      if (*it >= steps_ || !done_[*it]) return false;
    }
    return true;
  }

  // The step's action succeeded, failed, or may have been called.
  bool NeedsCompensation(int step) const {
    return Status(Action(step)) == kBranchFailed || Eligible(step);
  }

 private:
  // done_[s]: the step's action succeeded and it was eligible. (An empty-URL
  // action is "succeed" from the start; it counts only once the steps before
  // it are done.) Visits steps in dependency order (Kahn); steps on a cycle,
  // which only a corrupt record has, are never done.
  void ComputeDone() {
    done_.assign(steps_, false);
    std::vector<int> waiting(steps_);
    std::vector<int> ready;
    for (int step = 0; step < steps_; ++step) {
      waiting[step] =
          static_cast<int>(graph_.preds_end(step) - graph_.preds_begin(step));
      if (waiting[step] == 0) ready.push_back(step);
    }
    while (!ready.empty()) {
      const int step = ready.back();
      ready.pop_back();
      done_[step] = Status(Action(step)) == kBranchSucceed && Eligible(step);
      ForEachSuccessor(step, [&](int succ) {
        if (--waiting[succ] == 0) ready.push_back(succ);
      });
    }
  }

  const SagaGraph& graph_;
  const std::vector<BranchRecord>& branches_;
  const std::vector<CallState>& call_state_;
  const int steps_;
  std::vector<bool> done_;
};

void PlanActions(const SagaView& view, SagaDecision* decision) {
  for (int step = 0; step < view.steps(); ++step) {
    const int action = SagaView::Action(step);
    if (view.Status(action) == kBranchPrepared &&
        view.State(action) == CallState::kIdle && view.Eligible(step)) {
      decision->calls.push_back(action);
    }
  }
}

// Plans an aborting saga: compensations, or "failed" when all are done.
void PlanCompensations(const SagaView& view, SagaDecision* decision) {
  for (int step = 0; step < view.steps(); ++step) {
    if (view.State(SagaView::Action(step)) == CallState::kInFlight) return;
  }
  std::vector<bool> needs(view.steps());
  for (int step = 0; step < view.steps(); ++step) {
    needs[step] = view.NeedsCompensation(step);
  }
  auto compensated = [&view](int step) {
    return view.Status(SagaView::Compensate(step)) == kBranchSucceed;
  };
  bool all_compensated = true;
  for (int step = view.steps() - 1; step >= 0; --step) {
    if (!needs[step] || compensated(step)) continue;
    all_compensated = false;
    const int compensate = SagaView::Compensate(step);
    if (view.State(compensate) != CallState::kIdle) continue;
    bool ready = true;
    view.ForEachSuccessor(step, [&](int succ) {
      if (needs[succ] && !compensated(succ)) ready = false;
    });
    if (ready) decision->calls.push_back(compensate);
  }
  if (all_compensated && decision->new_status.empty()) {
    decision->new_status = st::kStatusFailed;
  }
}

}  // namespace

SagaGraph::SagaGraph(const TransRecord& trans, int steps)
    : steps_(std::max(steps, 0)) {
  pred_at_.assign(steps_ + 1, 0);
  // seen[p] == s + 1: p is already a predecessor of s (skips duplicates in
  // O(1) each; ParseSaga never produces them, a corrupt record might).
  std::vector<int> seen(steps_, 0);
  for (int step = 0; step < steps_; ++step) {
    pred_at_[step] = static_cast<int>(preds_.size());
    if (!trans.concurrent()) {
      if (step > 0) preds_.push_back(step - 1);
      continue;
    }
    if (step >= trans.orders_size()) continue;
    for (int pred : trans.orders(step).after()) {
      if (pred < 0 || pred >= steps_ || pred == step) continue;
      if (seen[pred] == step + 1) continue;
      seen[pred] = step + 1;
      preds_.push_back(pred);
    }
  }
  pred_at_[steps_] = static_cast<int>(preds_.size());

  succ_at_.assign(steps_ + 1, 0);
  for (int pred : preds_) ++succ_at_[pred + 1];
  for (int step = 0; step < steps_; ++step) {
    succ_at_[step + 1] += succ_at_[step];
  }
  succs_.resize(preds_.size());
  std::vector<int> fill(succ_at_.begin(), succ_at_.end() - 1);
  for (int step = 0; step < steps_; ++step) {
    for (int i = pred_at_[step]; i < pred_at_[step + 1]; ++i) {
      succs_[fill[preds_[i]]++] = step;
    }
  }
}

SagaDecision PlanSaga(const SagaGraph& graph, const TransRecord& trans,
                      const std::vector<BranchRecord>& branches,
                      const std::vector<CallState>& call_state,
                      int64_t now_ms) {
  SagaDecision decision;
  const SagaView view(graph, branches, call_state);
  if (trans.status() == st::kStatusAborting) {
    PlanCompensations(view, &decision);
    return decision;
  }
  if (trans.status() != st::kStatusSubmitted) return decision;

  if (TimedOut(trans, now_ms)) {
    decision.new_status = st::kStatusAborting;
    decision.rollback_reason = TimeoutReason(trans);
    PlanCompensations(view, &decision);
    return decision;
  }
  bool all_succeeded = true;
  for (int step = 0; step < view.steps(); ++step) {
    const std::string& status = view.Status(SagaView::Action(step));
    if (status == kBranchFailed) {
      decision.new_status = st::kStatusAborting;
      PlanCompensations(view, &decision);
      return decision;
    }
    if (status != kBranchSucceed) all_succeeded = false;
  }
  if (all_succeeded) {
    decision.new_status = st::kStatusSucceed;
    return decision;
  }
  PlanActions(view, &decision);
  return decision;
}

SagaDecision PlanSaga(const TransRecord& trans,
                      const std::vector<BranchRecord>& branches,
                      const std::vector<CallState>& call_state,
                      int64_t now_ms) {
  const SagaGraph graph(trans, static_cast<int>(branches.size() / 2));
  return PlanSaga(graph, trans, branches, call_state, now_ms);
}

bool ApplySagaResult(TransRecord* trans, BranchRecord* branch,
                     BranchOutcome outcome, absl::string_view message,
                     int64_t now_ms, const RetryPolicy& policy) {
  const bool is_action = branch->op() == kOpAction;
  // A late or repeated answer for a branch that already ended changes
  // nothing. A compensation never fails: one stored "failed" (only a damaged
  // record has it) is planned again, and its answer counts.
  if (branch->status() == kBranchSucceed ||
      (branch->status() == kBranchFailed && is_action)) {
    return false;
  }
  if (outcome == BranchOutcome::kFailure && !is_action) {
    outcome = BranchOutcome::kUnknown;  // a compensation must succeed.
  }
  switch (outcome) {
    case BranchOutcome::kSuccess:
      branch->set_status(kBranchSucceed);
      branch->set_finish_time_ms(now_ms);
      trans->set_next_cron_interval_s(trans->options().retry_interval_s());
      return false;
    case BranchOutcome::kFailure:
      branch->set_status(kBranchFailed);
      branch->set_finish_time_ms(now_ms);
      branch->set_last_error(std::string(message));
      if (trans->status() == st::kStatusSubmitted) {
        trans->set_status(st::kStatusAborting);
        trans->set_rollback_reason(std::string(message));
      }
      return false;
    case BranchOutcome::kOngoing:
    case BranchOutcome::kUnknown:
      break;
  }
  branch->set_last_error(std::string(message));
  if (outcome == BranchOutcome::kUnknown) {
    trans->set_next_cron_interval_s(DoubledInterval(
        trans->next_cron_interval_s(), trans->options().retry_interval_s(),
        policy.max_interval_s));
  }
  const int64_t limit = trans->options().retry_limit();
  if (is_action && limit > 0 && trans->status() == st::kStatusSubmitted) {
    if (trans->retry_count() >= limit) {
      trans->set_status(st::kStatusAborting);
      trans->set_rollback_reason(absl::StrCat(
          "RetryCount is greater than RetryLimit, RetryLimit: ", limit));
    } else {
      trans->set_retry_count(trans->retry_count() + 1);
    }
  }
  return true;
}

bool SagaFailureAllowed(absl::string_view op) { return op == kOpAction; }

std::unique_ptr<Plan> SagaMode::MakePlan(
    const TransRecord& trans, const std::vector<BranchRecord>& branches) const {
  return std::make_unique<SagaGraph>(trans,
                                     static_cast<int>(branches.size() / 2));
}

CommandResult SagaMode::ApplyCommand(Command command, const CommandArgs&,
                                     const std::vector<BranchRecord>&,
                                     TransRecord* trans, int64_t now_ms) const {
  CommandResult result;
  const std::string& gid = trans->gid();
  if (command == Command::kRegisterBranch) {
    result.reply = absl::InvalidArgumentError(
        "TransType: saga transactions take no RegisterBranch (their branches "
        "are the steps given at Prepare or Submit)");
    return result;
  }
  if (command == Command::kAbort) {
    result.reply = absl::AbortedError(absl::StrCat(
        "Abort is not supported for saga transactions (a saga rolls back "
        "when an action fails); transaction ",
        gid, " is ", trans->status()));
    return result;
  }
  if (trans->status() == st::kStatusSubmitted) {
    // A client's safe retry: accepted, and the transaction processed again.
    result.drive = true;
    return result;
  }
  if (trans->status() != st::kStatusPrepared) {
    result.reply = absl::AbortedError(
        absl::StrCat("transaction ", gid, " is already ", trans->status()));
    return result;
  }
  if (TimedOut(*trans, now_ms)) {
    // Too late: the prepared saga fails as its own look would have made
    // it, and nothing runs (no action ran, so nothing is compensated).
    MoveTo(trans, st::kStatusFailed, TimeoutReason(*trans), now_ms);
    result.reply = absl::AbortedError(absl::StrCat(
        "transaction ", gid, " is already failed: ", trans->rollback_reason()));
    result.changed = true;
    return result;
  }
  SubmitPrepared(trans, now_ms);
  result.changed = true;
  result.drive = true;
  return result;
}

Decision SagaMode::Next(const Plan& plan, const TransRecord& trans,
                        const std::vector<BranchRecord>& branches,
                        const std::vector<CallState>& call_state,
                        CallState /*query_state*/, int64_t now_ms,
                        const RetryPolicy& policy) const {
  Decision decision;
  if (trans.status() == st::kStatusPrepared) {
    if (TimedOut(trans, now_ms)) {
      decision.new_status = st::kStatusFailed;
      decision.rollback_reason = TimeoutReason(trans);
      return decision;
    }
    // Waiting for Submit.
    decision = BackOff(trans, now_ms, policy);
    const int64_t timeout_s = trans.options().timeout_to_fail_s();
    if (timeout_s > 0) {
      decision.wake_at_ms = std::min(
          decision.wake_at_ms, AfterSeconds(trans.create_time_ms(), timeout_s));
    }
    return decision;
  }
  SagaDecision saga = PlanSaga(static_cast<const SagaGraph&>(plan), trans,
                               branches, call_state, now_ms);
  decision.calls = std::move(saga.calls);
  decision.new_status = std::move(saga.new_status);
  decision.rollback_reason = std::move(saga.rollback_reason);
  return decision;
}

bool SagaMode::MoveMustBeDurable(absl::string_view from,
                                 absl::string_view to) const {
  return DefaultMoveMustBeDurable(from, to);
}

absl::Status SagaMode::WaitOutcome(
    const TransRecord& trans, const std::vector<BranchRecord>& branches) const {
  const std::string& gid = trans.gid();
  if (trans.status() == st::kStatusSucceed) return absl::OkStatus();
  if (trans.status() == st::kStatusFailed) {
    std::string message =
        absl::StrCat("transaction ", gid, " failed: ", trans.rollback_reason());
    for (const BranchRecord& b : branches) {
      if (b.op() == kOpAction && b.status() == kBranchFailed) {
        absl::StrAppend(&message, " (branch ", b.branch_id(),
                        " action answered: ", b.last_error(), ")");
        break;
      }
    }
    return absl::AbortedError(message);
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "transaction ", gid, " is still ", trans.status(),
      " after its first round; dtmd keeps retrying in the background"));
}

}  // namespace dtmd::txn
