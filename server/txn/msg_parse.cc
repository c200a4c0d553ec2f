// ParseMsg, ParseMsgDelay and MsgBranches: from a msg request's Steps,
// payloads and CustomedData to its branch records. The state machine is in
// msg.cc.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/txn/json_reader.h"
#include "server/txn/msg.h"
#include "server/txn/steps_reader.h"

namespace dtmd::txn {
namespace {

// A step action: a topic ("topic://NAME") or a branch URL.
std::string MsgActionProblem(absl::string_view url) {
  if (!absl::StartsWith(url, kTopicPrefix)) return BranchUrlProblem(url);
  const absl::string_view name = url.substr(sizeof(kTopicPrefix) - 1);
  if (name.empty() || name.size() > kMaxTopicNameBytes) {
    return absl::StrFormat("topic name is %d bytes, not 1..%d", name.size(),
                           kMaxTopicNameBytes);
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    if (c < 0x21 || c > 0x7e) {
      return absl::StrFormat(
          "topic name has byte 0x%02x at %d (only printable ASCII 0x21..0x7e "
          "is allowed)",
          c, i);
    }
  }
  return "";
}

// CustomedData: {"delay": N|null, ...}; other members are ignored at any
// depth.
class DelayReader : public JsonReader {
 public:
  explicit DelayReader(int max_json_depth)
      : JsonReader("CustomedData", max_json_depth) {}

  int64_t delay_s() const { return delay_s_; }

 private:
  // Depths: 0 the document, 1 its members.
  bool OnScalar(int depth, const JsonScalar& value) override {
    if (depth == 0) return NotAnObject();
    if (depth != 1 || !in_delay_) return true;
    if (value.kind == JsonKind::kNull) {
      delay_s_ = 0;
      return true;
    }
    if (value.kind != JsonKind::kNumber) return NotAnInteger(value.kind);
    if (!value.is_integer) {
      return Fail(absl::InvalidArgumentError(
          "CustomedData.delay: not a whole number of seconds"));
    }
    if (value.negative) {
      return Fail(absl::InvalidArgumentError(absl::StrFormat(
          "CustomedData.delay: -%d is negative", value.magnitude)));
    }
    if (value.magnitude > static_cast<uint64_t>(kMaxMsgDelayS)) {
      return Fail(absl::InvalidArgumentError(
          absl::StrFormat("CustomedData.delay: %d seconds is more than the "
                          "limit of %d",
                          value.magnitude, kMaxMsgDelayS)));
    }
    delay_s_ = static_cast<int64_t>(value.magnitude);
    return true;
  }

  bool OnOpen(int depth, JsonKind kind) override {
    if (depth == 0) return kind == JsonKind::kObject || NotAnObject();
    if (depth == 1 && in_delay_) return NotAnInteger(kind);
    return true;
  }

  bool OnKey(int depth, absl::string_view key) override {
    if (depth == 1) in_delay_ = absl::EqualsIgnoreCase(key, "delay");
    return true;
  }

  bool NotAnObject() {
    return Fail(absl::InvalidArgumentError("CustomedData: not a JSON object"));
  }
  bool NotAnInteger(JsonKind kind) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("CustomedData.delay: not a number of seconds but ",
                     JsonKindName(kind))));
  }

  bool in_delay_ = false;
  int64_t delay_s_ = 0;
};

BranchRecord MakeBranch(absl::string_view gid, std::string branch_id,
                        std::string url, const std::string& payload,
                        int position) {
  BranchRecord branch;
  branch.set_gid(std::string(gid));
  branch.set_branch_id(std::move(branch_id));
  branch.set_op(kOpAction);
  // An empty URL has nothing to call: it is done from the start.
  branch.set_status(url.empty() ? kBranchSucceed : kBranchPrepared);
  branch.set_url(std::move(url));
  branch.set_bin_data(payload);
  branch.set_position(position);
  return branch;
}

}  // namespace

absl::StatusOr<int64_t> ParseMsgDelay(absl::string_view customed_data,
                                      int max_json_depth) {
  if (customed_data.empty()) return 0;
  DelayReader reader(max_json_depth);
  absl::Status status =
      reader.Read(customed_data, "CustomedData: not valid JSON");
  if (!status.ok()) return status;
  return reader.delay_s();
}

absl::StatusOr<MsgDefinition> ParseMsg(absl::string_view gid,
                                       absl::string_view steps_json,
                                       const std::vector<std::string>& payloads,
                                       absl::string_view customed_data,
                                       const StepsLimits& limits) {
  StepsReader steps(limits, {kOpAction}, &MsgActionProblem);
  absl::Status status = steps.ReadSteps(steps_json, payloads.size());
  if (!status.ok()) return status;
  absl::StatusOr<int64_t> delay_s =
      ParseMsgDelay(customed_data, limits.max_json_depth);
  if (!delay_s.ok()) return delay_s.status();

  MsgDefinition def;
  def.gid = std::string(gid);
  def.delay_s = *delay_s;
  def.steps.resize(steps.steps());
  for (int i = 0; i < steps.steps(); ++i) {
    MsgStep& step = def.steps[i];
    std::string& url = steps.url(i, 0);
    if (absl::StartsWith(url, kTopicPrefix)) {
      step.topic = url.substr(sizeof(kTopicPrefix) - 1);
    } else {
      step.url = std::move(url);
    }
    step.payload = payloads[i];
  }
  return def;
}

absl::StatusOr<std::vector<BranchRecord>> MsgBranches(
    const MsgDefinition& def, const TopicResolver& resolver) {
  std::vector<BranchRecord> branches;
  branches.reserve(def.steps.size());
  for (size_t i = 0; i < def.steps.size(); ++i) {
    const MsgStep& step = def.steps[i];
    const std::string step_id = absl::StrFormat("%02d", i + 1);
    if (step.topic.empty()) {
      branches.push_back(MakeBranch(def.gid, step_id, step.url, step.payload,
                                    static_cast<int>(branches.size())));
      continue;
    }
    absl::StatusOr<std::vector<std::string>> urls = resolver(step.topic);
    if (!urls.ok()) return urls.status();
    if (urls->empty()) {
      return absl::NotFoundError(
          absl::StrCat("topic ", step.topic, " has no subscribers"));
    }
    for (size_t j = 0; j < urls->size(); ++j) {
      std::string id = urls->size() == 1
                           ? step_id
                           : absl::StrFormat("%s-%02d", step_id, j + 1);
      branches.push_back(MakeBranch(def.gid, std::move(id),
                                    std::move((*urls)[j]), step.payload,
                                    static_cast<int>(branches.size())));
    }
  }
  return branches;
}

}  // namespace dtmd::txn
