#include "server/txn/saga.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "storage/store.h"

namespace dtmd::txn {
namespace {

namespace st = ::dtmd::storage;

// ---------------------------------------------------------------------------
// Planning.

// Adjacency lists of all steps in two flat arrays: the list of step s is
// items[offsets[s] .. offsets[s + 1]).
struct StepLists {
  std::vector<int> offsets;
  std::vector<int> items;
  const int* begin(int step) const { return items.data() + offsets[step]; }
  const int* end(int step) const { return items.data() + offsets[step + 1]; }
};

// A read-only view of a saga for planning: its steps, their dependencies
// (sequential: each step after the previous one; concurrent: `orders`) and
// which steps are done. Built in O(steps + dependencies).
class SagaView {
 public:
  SagaView(const TransRecord& trans, const std::vector<BranchRecord>& branches,
           const std::vector<CallState>& call_state)
      : branches_(branches),
        call_state_(call_state),
        steps_(static_cast<int>(branches.size() / 2)) {
    BuildPredecessors(trans);
    BuildSuccessors();
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
    for (const int* it = succs_.begin(step); it != succs_.end(step); ++it) {
      f(*it);
    }
  }

  // Every predecessor of `step` is done: its action may have been called.
  bool Eligible(int step) const {
    for (const int* it = preds_.begin(step); it != preds_.end(step); ++it) {
      if (!done_[*it]) return false;
    }
    return true;
  }

  // The step's action succeeded, failed, or may have been called.
  bool NeedsCompensation(int step) const {
    return Status(Action(step)) == kBranchFailed || Eligible(step);
  }

 private:
  void BuildPredecessors(const TransRecord& trans) {
    preds_.offsets.assign(steps_ + 1, 0);
    for (int step = 0; step < steps_; ++step) {
      preds_.offsets[step] = static_cast<int>(preds_.items.size());
      if (!trans.concurrent()) {
        if (step > 0) preds_.items.push_back(step - 1);
        continue;
      }
      if (step >= trans.orders_size()) continue;
      for (int pred : trans.orders(step).after()) {
        // Skips what ParseSaga never produces (a corrupt record).
        if (pred < 0 || pred >= steps_ || pred == step) continue;
        const auto first = preds_.items.begin() + preds_.offsets[step];
        if (std::find(first, preds_.items.end(), pred) != preds_.items.end()) {
          continue;  // listed twice
        }
        preds_.items.push_back(pred);
      }
    }
    preds_.offsets[steps_] = static_cast<int>(preds_.items.size());
  }

  void BuildSuccessors() {
    succs_.offsets.assign(steps_ + 1, 0);
    for (int pred : preds_.items) ++succs_.offsets[pred + 1];
    for (int step = 0; step < steps_; ++step) {
      succs_.offsets[step + 1] += succs_.offsets[step];
    }
    succs_.items.resize(preds_.items.size());
    std::vector<int> fill(succs_.offsets.begin(), succs_.offsets.end() - 1);
    for (int step = 0; step < steps_; ++step) {
      for (const int* it = preds_.begin(step); it != preds_.end(step); ++it) {
        succs_.items[fill[*it]++] = step;
      }
    }
  }

  // done_[s]: the step's action succeeded and it was eligible. (An empty-URL
  // action is "succeed" from the start; it counts only once the steps before
  // it are done.) Visits steps in dependency order (Kahn); steps on a cycle,
  // which only a corrupt record has, are never done.
  void ComputeDone() {
    done_.assign(steps_, false);
    std::vector<int> waiting(steps_);
    std::vector<int> ready;
    for (int step = 0; step < steps_; ++step) {
      waiting[step] = preds_.offsets[step + 1] - preds_.offsets[step];
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

  const std::vector<BranchRecord>& branches_;
  const std::vector<CallState>& call_state_;
  const int steps_;
  StepLists preds_;
  StepLists succs_;
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

int64_t DoubledInterval(int64_t current, int64_t base, int64_t cap) {
  int64_t interval = current > 0 ? current : base;
  interval = interval > std::numeric_limits<int64_t>::max() / 2
                 ? std::numeric_limits<int64_t>::max()
                 : interval * 2;
  if (cap > 0) interval = std::min(interval, cap);
  return std::max<int64_t>(interval, 1);
}

}  // namespace

SagaDecision PlanSaga(const TransRecord& trans,
                      const std::vector<BranchRecord>& branches,
                      const std::vector<CallState>& call_state,
                      int64_t now_ms) {
  SagaDecision decision;
  const SagaView view(trans, branches, call_state);
  if (trans.status() == st::kStatusAborting) {
    PlanCompensations(view, &decision);
    return decision;
  }
  if (trans.status() != st::kStatusSubmitted) return decision;

  // elapsed >= timeout * 1000, without overflow for any client timeout.
  const int64_t timeout_s = trans.options().timeout_to_fail_s();
  const int64_t elapsed_ms = now_ms - trans.create_time_ms();
  if (timeout_s > 0 && elapsed_ms >= 0 && elapsed_ms / 1000 >= timeout_s) {
    decision.new_status = st::kStatusAborting;
    decision.rollback_reason =
        absl::StrFormat("Timeout after %d seconds", timeout_s);
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

bool ApplySagaResult(TransRecord* trans, BranchRecord* branch,
                     BranchOutcome outcome, absl::string_view message,
                     int64_t now_ms, const RetryPolicy& policy) {
  // A late or repeated answer for a branch that already ended changes nothing.
  if (branch->status() == kBranchSucceed || branch->status() == kBranchFailed) {
    return false;
  }
  const bool is_action = branch->op() == kOpAction;
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

}  // namespace dtmd::txn
