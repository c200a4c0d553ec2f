#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/txn/json_reader.h"
#include "server/txn/saga.h"
#include "server/txn/steps_reader.h"

// ParseSaga: from a request's Steps, payloads and CustomedData to the saga's
// branch records. The planning half of the saga rules is in saga.cc.
namespace dtmd::txn {
namespace {

// An orders key (decimal digits) as a step index; -1 when it is not one in
// [0, steps).
int64_t IndexFromKey(absl::string_view key, int steps) {
  if (key.empty() || key.size() > 9) return -1;
  int64_t v = 0;
  for (char c : key) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v < steps ? v : -1;
}

// CustomedData: {"concurrent": bool|null, "orders": {"i": [j, ...]}|null,
// ...}. Other members are ignored at any depth. See ParseSaga for the rules
// on orders.
class CustomedDataReader : public JsonReader {
 public:
  CustomedDataReader(int steps, const SagaLimits& limits)
      : JsonReader("CustomedData", limits.max_json_depth),
        steps_(steps),
        max_edges_(limits.max_order_edges),
        orders_(steps),
        stamp_(steps, 0) {}

  bool concurrent() const { return concurrent_; }
  std::vector<std::vector<int>>& orders() { return orders_; }

 private:
  enum class Member { kOther, kConcurrent, kOrders };

  // Depths: 0 the document, 1 its members, 2 orders' lists, 3 their entries.
  bool OnScalar(int depth, const JsonScalar& value) override {
    if (depth == 0) return NotAnObject();
    if (depth == 1 && member_ == Member::kConcurrent) {
      if (value.kind == JsonKind::kNull) {
        concurrent_ = false;
        return true;
      }
      if (value.kind != JsonKind::kBoolean) return NotABoolean(value.kind);
      concurrent_ = value.boolean;
      return true;
    }
    if (depth == 1 && member_ == Member::kOrders) {
      return value.kind == JsonKind::kNull || NotAnOrdersObject(value.kind);
    }
    if (depth == 2 && member_ == Member::kOrders) return NotAList("");
    if (depth == 3 && member_ == Member::kOrders) return AddEdge(value);
    return true;
  }

  bool OnOpen(int depth, JsonKind kind) override {
    if (depth == 0) return kind == JsonKind::kObject || NotAnObject();
    if (member_ == Member::kOther) return true;
    if (depth == 1 && member_ == Member::kConcurrent) return NotABoolean(kind);
    if (depth == 1) {
      return kind == JsonKind::kObject || NotAnOrdersObject(kind);
    }
    if (depth == 2) return kind == JsonKind::kArray || NotAList("");
    if (depth == 3) {
      return NotAList(absl::StrCat(" (has ", JsonKindName(kind), ")"));
    }
    return true;
  }

  bool OnKey(int depth, absl::string_view key) override {
    if (depth == 1) {
      member_ = key == "concurrent" ? Member::kConcurrent
                : key == "orders"   ? Member::kOrders
                                    : Member::kOther;
      return true;
    }
    if (depth != 2 || member_ != Member::kOrders) return true;
    key_.assign(key.data(), key.size());
    const int64_t step = IndexFromKey(key, steps_);
    if (step < 0) {
      return Fail(absl::InvalidArgumentError(absl::StrFormat(
          "CustomedData.orders: key \"%s\" is not a step index in 0..%d",
          key.substr(0, 32), steps_ - 1)));
    }
    step_ = static_cast<int>(step);
    // Stamps mark the entries step_ lists already; a step named again (a
    // repeated key, or "2" then "02") keeps what it listed before.
    ++generation_;
    for (int pred : orders_[step_]) stamp_[pred] = generation_;
    return true;
  }

  bool AddEdge(const JsonScalar& value) {
    if (!value.is_integer) {
      return NotAList(absl::StrCat(" (has ", JsonKindName(value.kind), ")"));
    }
    if (value.negative || value.magnitude >= static_cast<uint64_t>(steps_)) {
      return Fail(absl::InvalidArgumentError(absl::StrFormat(
          "%s: step %s%d out of range 0..%d", ListField(),
          value.negative ? "-" : "", value.magnitude, steps_ - 1)));
    }
    if (++edges_ > max_edges_) {
      return Fail(absl::InvalidArgumentError(absl::StrFormat(
          "CustomedData.orders: more than the limit of %d entries in all "
          "lists together",
          max_edges_)));
    }
    const int pred = static_cast<int>(value.magnitude);
    if (stamp_[pred] == generation_) return true;  // listed already.
    stamp_[pred] = generation_;
    orders_[step_].push_back(pred);
    return true;
  }

  std::string ListField() const {
    return absl::StrFormat("CustomedData.orders[\"%s\"]", key_.substr(0, 32));
  }
  bool NotAnObject() {
    return Fail(absl::InvalidArgumentError("CustomedData: not a JSON object"));
  }
  bool NotABoolean(JsonKind kind) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "CustomedData.concurrent: not a boolean but ", JsonKindName(kind))));
  }
  bool NotAnOrdersObject(JsonKind kind) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "CustomedData.orders: not a JSON object but ", JsonKindName(kind))));
  }
  bool NotAList(absl::string_view detail) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat(ListField(), ": not an array of step indices", detail)));
  }

  const int steps_;
  const int max_edges_;
  bool concurrent_ = false;
  Member member_ = Member::kOther;
  std::string key_;  // the current orders key, for messages.
  int step_ = 0;     // the step the current orders list belongs to.
  int edges_ = 0;
  std::vector<std::vector<int>> orders_;
  std::vector<uint32_t> stamp_;  // stamp_[j] == generation_: step_ lists j.
  uint32_t generation_ = 0;
};

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

absl::Status ParseCustomedData(absl::string_view text, int steps,
                               const SagaLimits& limits, SagaDefinition* def) {
  if (text.empty()) return absl::OkStatus();
  CustomedDataReader reader(steps, limits);
  absl::Status status = reader.Read(text, "CustomedData: not a JSON object");
  if (!status.ok()) return status;
  std::vector<int> cycle = FindCycle(reader.orders());
  if (!cycle.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CustomedData.orders: cycle ", absl::StrJoin(cycle, " -> "),
        " (a -> b: step a runs after step b)"));
  }
  def->concurrent = reader.concurrent();
  if (def->concurrent) def->orders = std::move(reader.orders());
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

}  // namespace

absl::StatusOr<SagaDefinition> ParseSaga(
    absl::string_view gid, absl::string_view steps_json,
    const std::vector<std::string>& payloads, absl::string_view customed_data,
    const SagaLimits& limits) {
  StepsReader steps(limits, {kOpCompensate, kOpAction});
  absl::Status status = steps.ReadSteps(steps_json, payloads.size());
  if (!status.ok()) return status;
  const int count = steps.steps();
  SagaDefinition def;
  def.branches.reserve(2 * count);
  for (int step = 0; step < count; ++step) {
    def.branches.push_back(MakeBranch(gid, step, /*is_action=*/false,
                                      std::move(steps.url(step, 0)),
                                      payloads[step]));
    def.branches.push_back(MakeBranch(gid, step, /*is_action=*/true,
                                      std::move(steps.url(step, 1)),
                                      payloads[step]));
  }
  status = ParseCustomedData(customed_data, count, limits, &def);
  if (!status.ok()) return status;
  return def;
}

}  // namespace dtmd::txn
