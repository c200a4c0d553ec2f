#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/txn/branch_url.h"
#include "server/txn/json_reader.h"
#include "server/txn/saga.h"

// ParseSaga: from a request's Steps, payloads and CustomedData to the saga's
// branch records. The planning half of the saga rules is in saga.cc.
namespace dtmd::txn {
namespace {

// Checks a non-empty step URL. Returns an error text or "".
std::string CheckUrl(absl::string_view url, int max_url_bytes) {
  if (url.size() > static_cast<size_t>(max_url_bytes)) {
    return absl::StrFormat("URL is %d bytes, more than the limit of %d",
                           url.size(), max_url_bytes);
  }
  absl::StatusOr<BranchTarget> target = ParseBranchUrl(url);
  return target.ok() ? "" : std::string(target.status().message());
}

// Steps: [{"action": url, "compensate": url, ...}, ...] or null. Keeps the
// URLs of at most max_steps steps; ignores other members at any depth.
class StepsReader : public JsonReader {
 public:
  explicit StepsReader(const SagaLimits& limits)
      : JsonReader("Steps", limits.max_json_depth), limits_(limits) {}

  // urls()[2i] is step i's compensate, urls()[2i+1] its action.
  std::vector<std::string>& urls() { return urls_; }
  int steps() const { return static_cast<int>(urls_.size() / 2); }

 private:
  // Depths: 0 the document, 1 a step, 2 a step's member.
  bool OnScalar(int depth, const JsonScalar& value) override {
    if (depth == 0) {
      if (value.kind == JsonKind::kNull) return true;  // no steps.
      return NotAn("Steps: not a JSON array but ", value.kind);
    }
    if (depth == 1) return NotAnObject(value.kind);
    if (depth == 2 && url_ != nullptr) {
      if (value.kind == JsonKind::kString) return ReadUrl(value.text);
      if (value.kind == JsonKind::kNull) {
        url_->clear();
        return true;
      }
      return NotAString(value.kind);
    }
    return true;
  }

  bool OnOpen(int depth, JsonKind kind) override {
    if (depth == 0) {
      return kind == JsonKind::kArray ||
             NotAn("Steps: not a JSON array but ", kind);
    }
    if (depth == 1) {
      if (kind != JsonKind::kObject) return NotAnObject(kind);
      if (steps() >= limits_.max_steps) {
        return Fail(absl::InvalidArgumentError(absl::StrFormat(
            "Steps: more than the limit of %d steps", limits_.max_steps)));
      }
      urls_.resize(urls_.size() + 2);
      url_ = nullptr;  // the resize may have moved the strings.
      return true;
    }
    if (depth == 2 && url_ != nullptr) return NotAString(kind);
    return true;
  }

  bool OnKey(int depth, absl::string_view key) override {
    if (depth != 2) return true;
    url_ = nullptr;
    std::string* step = &urls_[urls_.size() - 2];
    if (key == kOpAction) {
      url_ = step + 1;
      op_ = kOpAction;
    } else if (key == kOpCompensate) {
      url_ = step;
      op_ = kOpCompensate;
    }
    return true;
  }

  bool ReadUrl(absl::string_view url) {
    url_->clear();
    if (url.empty()) return true;
    std::string problem = CheckUrl(url, limits_.max_url_bytes);
    if (!problem.empty()) {
      return Fail(
          absl::InvalidArgumentError(absl::StrCat(Field(), ": ", problem)));
    }
    url_->assign(url.data(), url.size());
    return true;
  }

  std::string Field() const {
    return absl::StrFormat("Steps[%d].%s", steps() - 1, op_);
  }
  bool NotAn(absl::string_view what, JsonKind kind) {
    return Fail(
        absl::InvalidArgumentError(absl::StrCat(what, JsonKindName(kind))));
  }
  bool NotAnObject(JsonKind kind) {
    return NotAn(absl::StrFormat("Steps[%d]: not a JSON object but ", steps()),
                 kind);
  }
  bool NotAString(JsonKind kind) {
    return NotAn(absl::StrCat(Field(), ": not a string but "), kind);
  }

  const SagaLimits& limits_;
  std::vector<std::string> urls_;
  std::string* url_ = nullptr;  // the URL the current member sets, if any.
  const char* op_ = "";
};

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
  StepsReader steps(limits);
  if (!steps_json.empty()) {
    absl::Status status = steps.Read(steps_json, "Steps: not valid JSON");
    if (!status.ok()) return status;
  }
  const int count = steps.steps();
  if (payloads.size() != static_cast<size_t>(count)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "BinPayloads: got %d payloads for %d steps", payloads.size(), count));
  }
  SagaDefinition def;
  std::vector<std::string>& urls = steps.urls();
  def.branches.reserve(urls.size());
  for (int step = 0; step < count; ++step) {
    def.branches.push_back(MakeBranch(gid, step, /*is_action=*/false,
                                      std::move(urls[2 * step]),
                                      payloads[step]));
    def.branches.push_back(MakeBranch(gid, step, /*is_action=*/true,
                                      std::move(urls[2 * step + 1]),
                                      payloads[step]));
  }
  absl::Status status = ParseCustomedData(customed_data, count, limits, &def);
  if (!status.ok()) return status;
  return def;
}

}  // namespace dtmd::txn
