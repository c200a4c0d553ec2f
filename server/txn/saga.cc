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

using ::nlohmann::json;
namespace st = ::dtmd::storage;

// ---------------------------------------------------------------------------
// Parsing.

// Parses JSON without exceptions; false means "not valid JSON".
bool ParseJson(absl::string_view text, json* out) {
  *out = json::parse(text.begin(), text.end(), nullptr,
                     /*allow_exceptions=*/false);
  return !out->is_discarded();
}

// Checks host:port/package.Service/Method. Returns an error text or "".
std::string CheckUrl(absl::string_view url, int max_url_bytes) {
  if (url.size() > static_cast<size_t>(max_url_bytes)) {
    return absl::StrFormat("URL is %d bytes, more than the limit of %d",
                           url.size(), max_url_bytes);
  }
  const size_t slash = url.find('/');
  if (slash == absl::string_view::npos || slash == 0) {
    return "URL must be host:port/package.Service/Method";
  }
  const absl::string_view target = url.substr(0, slash);
  const size_t colon = target.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return "URL target must be host:port";
  }
  const absl::string_view port = target.substr(colon + 1);
  int64_t port_value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') {
      port_value = -1;
      break;
    }
    port_value = port_value * 10 + (c - '0');
    if (port_value > 65535) break;
  }
  if (port.empty() || port_value < 1 || port_value > 65535) {
    return "URL port must be a number in 1..65535";
  }
  const absl::string_view method_path = url.substr(slash + 1);
  const size_t second = method_path.find('/');
  if (second == absl::string_view::npos || second == 0 ||
      second + 1 == method_path.size() ||
      method_path.find('/', second + 1) != absl::string_view::npos) {
    return "URL method must be package.Service/Method";
  }
  return "";
}

// Reads step i's `key` URL into *url. Missing or null means no URL.
absl::Status ReadStepUrl(const json& step, int index, const char* key,
                         const SagaLimits& limits, std::string* url) {
  url->clear();
  auto it = step.find(key);
  if (it == step.end() || it->is_null()) return absl::OkStatus();
  const std::string field = absl::StrFormat("Steps[%d].%s", index, key);
  if (!it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": not a string but ", it->type_name()));
  }
  const std::string& value = it->get_ref<const std::string&>();
  if (value.empty()) return absl::OkStatus();
  std::string problem = CheckUrl(value, limits.max_url_bytes);
  if (!problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
  }
  *url = value;
  return absl::OkStatus();
}

BranchRecord MakeBranch(absl::string_view gid, int step, bool is_action,
                        std::string url, const std::string& payload) {
  BranchRecord branch;
  branch.set_gid(std::string(gid));
  branch.set_branch_id(absl::StrFormat("%02d", step + 1));
  branch.set_op(is_action ? kOpAction : kOpCompensate);
  // An empty URL has nothing to call: it is done from the start.
  branch.set_status(url.empty() ? kBranchSucceed : kBranchPrepared);
  branch.set_url(std::move(url));
  branch.set_bin_data(payload);
  branch.set_position(2 * step + (is_action ? 1 : 0));
  return branch;
}

// Reads a step index from JSON (an integer) or from an orders key (decimal
// digits). Returns -1 when it is not an index in [0, steps).
int64_t IndexFromJson(const json& value, int steps) {
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    return v < static_cast<uint64_t>(steps) ? static_cast<int64_t>(v) : -1;
  }
  if (value.is_number_integer()) {
    const int64_t v = value.get<int64_t>();
    return v >= 0 && v < steps ? v : -1;
  }
  return -1;
}

int64_t IndexFromKey(const std::string& key, int steps) {
  if (key.empty() || key.size() > 9) return -1;
  int64_t v = 0;
  for (char c : key) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v < steps ? v : -1;
}

// Finds a cycle in `orders` (step -> predecessors). Returns the steps of one
// cycle in dependency order (first repeated at the end), or empty.
std::vector<int> FindCycle(const std::vector<std::vector<int>>& orders) {
  const int n = static_cast<int>(orders.size());
  enum Mark { kNew, kOnPath, kDone };
  std::vector<Mark> mark(n, kNew);
  std::vector<int> path;
  // Iterative DFS: stack of (step, next predecessor to visit).
  std::vector<std::pair<int, size_t>> stack;
  for (int root = 0; root < n; ++root) {
    if (mark[root] != kNew) continue;
    stack.push_back({root, 0});
    mark[root] = kOnPath;
    path.push_back(root);
    while (!stack.empty()) {
      auto& [step, next] = stack.back();
      if (next == orders[step].size()) {
        mark[step] = kDone;
        path.pop_back();
        stack.pop_back();
        continue;
      }
      const int pred = orders[step][next++];
      if (mark[pred] == kOnPath) {
        std::vector<int> cycle(std::find(path.begin(), path.end(), pred),
                               path.end());
        cycle.push_back(pred);
        return cycle;
      }
      if (mark[pred] == kNew) {
        mark[pred] = kOnPath;
        path.push_back(pred);
        stack.push_back({pred, 0});
      }
    }
  }
  return {};
}

absl::Status ParseOrders(const json& orders_json, int steps,
                         std::vector<std::vector<int>>* orders) {
  if (!orders_json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("CustomedData.orders: not a JSON object but ",
                     orders_json.type_name()));
  }
  orders->assign(steps, {});
  for (const auto& item : orders_json.items()) {
    const std::string& key = item.key();
    const int64_t step = IndexFromKey(key, steps);
    if (step < 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "CustomedData.orders: key \"%s\" is not a step index in 0..%d",
          key.substr(0, 32), steps - 1));
    }
    const std::string field =
        absl::StrFormat("CustomedData.orders[\"%s\"]", key);
    const json& preds = item.value();
    if (!preds.is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": not an array of step indices"));
    }
    std::vector<int>& out = (*orders)[step];
    for (const json& pred : preds) {
      if (!pred.is_number_integer()) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": not an array of step indices (has ",
                         pred.type_name(), ")"));
      }
      const int64_t index = IndexFromJson(pred, steps);
      if (index < 0) {
        const std::string shown = pred.is_number_unsigned()
                                      ? absl::StrCat(pred.get<uint64_t>())
                                      : absl::StrCat(pred.get<int64_t>());
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: step %s out of range 0..%d", field, shown, steps - 1));
      }
      if (std::find(out.begin(), out.end(), index) == out.end()) {
        out.push_back(static_cast<int>(index));
      }
    }
  }
  std::vector<int> cycle = FindCycle(*orders);
  if (!cycle.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CustomedData.orders: cycle ", absl::StrJoin(cycle, " -> "),
        " (a -> b: step a runs after step b)"));
  }
  return absl::OkStatus();
}

absl::Status ParseCustomedData(absl::string_view text, int steps,
                               SagaDefinition* def) {
  if (text.empty()) return absl::OkStatus();
  json custom;
  if (!ParseJson(text, &custom) || !custom.is_object()) {
    return absl::InvalidArgumentError("CustomedData: not a JSON object");
  }
  auto concurrent = custom.find("concurrent");
  if (concurrent != custom.end() && !concurrent->is_null()) {
    if (!concurrent->is_boolean()) {
      return absl::InvalidArgumentError(
          absl::StrCat("CustomedData.concurrent: not a boolean but ",
                       concurrent->type_name()));
    }
    def->concurrent = concurrent->get<bool>();
  }
  std::vector<std::vector<int>> orders;
  auto orders_it = custom.find("orders");
  if (orders_it != custom.end() && !orders_it->is_null()) {
    absl::Status status = ParseOrders(*orders_it, steps, &orders);
    if (!status.ok()) return status;
  }
  if (def->concurrent) {
    orders.resize(steps);
    def->orders = std::move(orders);
  }
  return absl::OkStatus();
}

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

absl::StatusOr<SagaDefinition> ParseSaga(
    absl::string_view gid, absl::string_view steps_json,
    const std::vector<std::string>& payloads, absl::string_view customed_data,
    const SagaLimits& limits) {
  json steps = json::array();
  if (!steps_json.empty() && !ParseJson(steps_json, &steps)) {
    return absl::InvalidArgumentError("Steps: not valid JSON");
  }
  if (steps.is_null()) steps = json::array();
  if (!steps.is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Steps: not a JSON array but ", steps.type_name()));
  }
  if (steps.size() > static_cast<size_t>(std::max(limits.max_steps, 0))) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Steps: %d steps, more than the limit of %d",
                        steps.size(), limits.max_steps));
  }
  const int count = static_cast<int>(steps.size());
  // urls[2i] is step i's compensate, urls[2i+1] its action.
  std::vector<std::string> urls(2 * steps.size());
  int i = 0;
  for (const json& step : steps) {
    if (!step.is_object()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "Steps[%d]: not a JSON object but %s", i, step.type_name()));
    }
    absl::Status status =
        ReadStepUrl(step, i, kOpAction, limits, &urls[2 * i + 1]);
    if (status.ok()) {
      status = ReadStepUrl(step, i, kOpCompensate, limits, &urls[2 * i]);
    }
    if (!status.ok()) return status;
    ++i;
  }
  if (payloads.size() != steps.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "BinPayloads: got %d payloads for %d steps", payloads.size(), count));
  }
  SagaDefinition def;
  def.branches.reserve(urls.size());
  for (int step = 0; step < count; ++step) {
    def.branches.push_back(MakeBranch(gid, step, /*is_action=*/false,
                                      std::move(urls[2 * step]),
                                      payloads[step]));
    def.branches.push_back(MakeBranch(gid, step, /*is_action=*/true,
                                      std::move(urls[2 * step + 1]),
                                      payloads[step]));
  }
  absl::Status status = ParseCustomedData(customed_data, count, &def);
  if (!status.ok()) return status;
  return def;
}

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
