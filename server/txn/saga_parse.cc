#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "server/txn/branch_url.h"
#include "server/txn/saga.h"

// ParseSaga: from a request's Steps, payloads and CustomedData to the saga's
// branch records. The planning half of the saga rules is in saga.cc.
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

// Checks a non-empty step URL. Returns an error text or "".
std::string CheckUrl(absl::string_view url, int max_url_bytes) {
  if (url.size() > static_cast<size_t>(max_url_bytes)) {
    return absl::StrFormat("URL is %d bytes, more than the limit of %d",
                           url.size(), max_url_bytes);
  }
  absl::StatusOr<BranchTarget> target = ParseBranchUrl(url);
  return target.ok() ? "" : std::string(target.status().message());
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

}  // namespace dtmd::txn
