#include "server/txn/workflow.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/txn/json_reader.h"
#include "storage/store.h"
#include "workflow.pb.h"

namespace dtmd::txn {
namespace {

namespace st = ::dtmd::storage;

// CustomedData holds two flat members; deeper values are other members'.
constexpr int kMaxCustomDepth = 32;

bool IsBase64Letter(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' ||
         c == '/';
}

// The shape Go's base64.StdEncoding writes: whole 4-character groups of the
// standard alphabet, with one or two '=' only at the very end. Checked first
// because absl::Base64Unescape is lax: it accepts missing padding and skips
// whitespace anywhere.
bool IsPaddedStdBase64(absl::string_view text) {
  if (text.size() % 4 != 0) return false;
  size_t letters = text.size();
  while (letters > 0 && text.size() - letters < 2 && text[letters - 1] == '=') {
    --letters;
  }
  return std::all_of(text.begin(), text.begin() + letters, IsBase64Letter);
}

bool IsPrintableAscii(absl::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return c >= 0x20 && c <= 0x7e; });
}

// Reads {"name": string, "data": base64 string|null, ...}.
class WorkflowCustomReader : public JsonReader {
 public:
  WorkflowCustomReader() : JsonReader("CustomedData", kMaxCustomDepth) {}

  bool has_name() const { return has_name_; }
  WorkflowCustom& custom() { return custom_; }

 private:
  enum class Member { kOther, kName, kData };

  // Depths: 0 the document, 1 its members.
  bool OnScalar(int depth, const JsonScalar& value) override {
    if (depth == 0) return NotAnObject();
    if (depth != 1) return true;
    switch (member_) {
      case Member::kName:
        return ReadName(value);
      case Member::kData:
        return ReadData(value);
      case Member::kOther:
        return true;
    }
    return true;
  }

  bool OnOpen(int depth, JsonKind kind) override {
    if (depth == 0) return kind == JsonKind::kObject || NotAnObject();
    if (depth != 1 || member_ == Member::kOther) return true;
    return NotAString(kind);
  }

  bool OnKey(int depth, absl::string_view key) override {
    if (depth == 1) {
      member_ = key == "name"   ? Member::kName
                : key == "data" ? Member::kData
                                : Member::kOther;
    }
    return true;
  }

  bool ReadName(const JsonScalar& value) {
    if (value.kind == JsonKind::kNull) {
      has_name_ = false;
      custom_.name.clear();
      return true;
    }
    if (value.kind != JsonKind::kString) return NotAString(value.kind);
    if (value.text.size() > kMaxWorkflowNameBytes) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("CustomedData.name: longer than ", kMaxWorkflowNameBytes,
                       " bytes (", value.text.size(), ")")));
    }
    if (!IsPrintableAscii(value.text)) {
      return Fail(absl::InvalidArgumentError(
          "CustomedData.name: not printable ASCII (it is sent as the dtm-op "
          "metadata of the resume call)"));
    }
    has_name_ = true;
    custom_.name.assign(value.text.data(), value.text.size());
    return true;
  }

  bool ReadData(const JsonScalar& value) {
    if (value.kind == JsonKind::kNull) {
      custom_.data.clear();
      return true;
    }
    if (value.kind != JsonKind::kString) return NotAString(value.kind);
    if (!IsPaddedStdBase64(value.text) ||
        !absl::Base64Unescape(value.text, &custom_.data)) {
      return Fail(absl::InvalidArgumentError(
          "CustomedData.data: not base64 (standard alphabet, padded with '=', "
          "no whitespace)"));
    }
    return true;
  }

  bool NotAnObject() {
    return Fail(absl::InvalidArgumentError("CustomedData: not a JSON object"));
  }
  bool NotAString(JsonKind kind) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "CustomedData.", member_ == Member::kName ? "name" : "data",
        ": not a string but ", JsonKindName(kind))));
  }

  Member member_ = Member::kOther;
  bool has_name_ = false;
  WorkflowCustom custom_;
};

// The interval a workflow is looked at: its RetryInterval, never backed off
// (at least 1 s, so that a corrupt record cannot spin).
int64_t ResumeIntervalS(const TransRecord& trans) {
  return std::max<int64_t>(1, trans.options().retry_interval_s());
}

CommandResult RegisterStep(const CommandArgs& args,
                           const std::vector<BranchRecord>& branches,
                           const TransRecord& trans, int64_t now_ms) {
  CommandResult result;
  if (trans.status() != st::kStatusPrepared) {
    result.reply = absl::AbortedError(absl::StrCat(
        "transaction ", trans.gid(), " is ", trans.status(),
        ", not prepared: a workflow records steps only until it ends"));
    return result;
  }
  for (const BranchRecord& step : args.branches) {
    const BranchRecord* existing = FindBranch(branches, step);
    if (existing == nullptr) existing = FindBranch(result.added, step);
    const bool conflict =
        existing != nullptr && (existing->status() != step.status() ||
                                existing->bin_data() != step.bin_data());
    if (conflict) {
      result.added.clear();
      result.reply = absl::AlreadyExistsError(absl::StrCat(
          "transaction ", trans.gid(), " already has branch ", step.branch_id(),
          " op ", step.op(), " with another status or data"));
      return result;
    }
    if (existing != nullptr) continue;  // a client's retry.
    result.added.push_back(step);
    result.added.back().set_finish_time_ms(now_ms);
  }
  return result;
}

CommandResult EndWorkflow(const CommandArgs& args, TransRecord* trans,
                          int64_t now_ms) {
  CommandResult result;
  auto field = [&args](const char* key) -> std::string {
    auto it = args.req_extra.find(key);
    return it == args.req_extra.end() ? std::string() : it->second;
  };
  const std::string status = field("status");
  if (!st::IsFinalStatus(status)) {
    result.reply = absl::InvalidArgumentError(absl::StrCat(
        "ReqExtra.status: a workflow ends \"succeed\" or \"failed\", not \"",
        absl::CHexEscape(status.substr(0, 32)), "\""));
    return result;
  }
  const std::string& gid = trans->gid();
  if (trans->status() == status) return result;  // a client's retry.
  if (trans->status() != st::kStatusPrepared) {
    result.reply = absl::AbortedError(
        absl::StrCat("transaction ", gid, " is already ", trans->status()));
    return result;
  }
  MoveTo(trans, status, field("rollback_reason"), now_ms);
  trans->set_result(field("result"));
  trans->set_update_time_ms(now_ms);
  result.changed = true;
  return result;
}

}  // namespace

absl::StatusOr<WorkflowCustom> ParseWorkflowCustom(
    absl::string_view customed_data) {
  WorkflowCustomReader reader;
  if (!customed_data.empty()) {
    absl::Status status =
        reader.Read(customed_data, "CustomedData: not a JSON object");
    if (!status.ok()) return status;
  }
  if (!reader.has_name() || reader.custom().name.empty()) {
    return absl::InvalidArgumentError(
        "CustomedData.name: missing or empty (a workflow's CustomedData is "
        "{\"name\":...,\"data\":...})");
  }
  return std::move(reader.custom());
}

std::string WorkflowResumePayload(absl::string_view data) {
  ::workflow::WorkflowData message;
  message.set_data(std::string(data));
  return message.SerializeAsString();
}

WorkflowPlan::WorkflowPlan(const TransRecord& trans) {
  absl::StatusOr<WorkflowCustom> custom =
      ParseWorkflowCustom(trans.customed_data());
  if (custom.ok()) name_ = std::move(custom->name);
  const std::string data = custom.ok() ? custom->data : "";
  // DTM wraps the data for gRPC workflows only.
  payload_ = trans.protocol().empty() || trans.protocol() == "grpc"
                 ? WorkflowResumePayload(data)
                 : data;
}

std::unique_ptr<Plan> WorkflowMode::MakePlan(
    const TransRecord& trans, const std::vector<BranchRecord>&) const {
  return std::make_unique<WorkflowPlan>(trans);
}

CommandResult WorkflowMode::ApplyCommand(
    Command command, const CommandArgs& args,
    const std::vector<BranchRecord>& branches, TransRecord* trans,
    int64_t now_ms) const {
  switch (command) {
    case Command::kRegisterBranch:
      return RegisterStep(args, branches, *trans, now_ms);
    case Command::kSubmit:
      return EndWorkflow(args, trans, now_ms);
    case Command::kAbort:
      break;
    case Command::kRetryNow:
    case Command::kForceStop: {
      CommandResult result;
      result.reply = OperatorCommandError();
      return result;
    }
  }
  CommandResult result;
  result.reply = absl::AbortedError(
      absl::StrCat("Abort is not supported for workflow transactions (workflow "
                   "transactions end by Submit); transaction ",
                   trans->gid(), " is ", trans->status()));
  return result;
}

Decision WorkflowMode::Next(const Plan& plan, const TransRecord& trans,
                            const std::vector<BranchRecord>&,
                            const std::vector<CallState>&,
                            CallState query_state, int64_t now_ms,
                            const RetryPolicy&) const {
  Decision decision;
  if (st::IsFinalStatus(trans.status())) return decision;
  if (query_state == CallState::kInFlight) return decision;
  if (query_state == CallState::kIdle && !trans.query_prepared().empty()) {
    const auto& workflow = static_cast<const WorkflowPlan&>(plan);
    decision.query = QueryCall{trans.query_prepared(), kWorkflowResumeBranchId,
                               workflow.name(), workflow.payload()};
    return decision;
  }
  // Resumed this round already (or nothing to call): the next round comes
  // after the plain interval.
  decision.next_interval_s = ResumeIntervalS(trans);
  decision.wake_at_ms = now_ms + decision.next_interval_s * 1000;
  return decision;
}

bool WorkflowMode::ApplyQueryAnswer(TransRecord* trans, BranchOutcome,
                                    absl::string_view, int64_t,
                                    const RetryPolicy&) const {
  // Whatever the client answered, it ends the workflow by Submit; until
  // then it is resumed once per round, at the same interval.
  trans->set_next_cron_interval_s(ResumeIntervalS(*trans));
  return true;
}

absl::Status WorkflowMode::WaitOutcome(const TransRecord& trans,
                                       const std::vector<BranchRecord>&) const {
  const std::string& gid = trans.gid();
  if (trans.status() == st::kStatusSucceed) return absl::OkStatus();
  if (trans.status() == st::kStatusFailed) {
    return absl::AbortedError(absl::StrCat(
        "transaction ", gid, " failed: ", trans.rollback_reason()));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("transaction ", gid, " is still ", trans.status(),
                   "; the workflow's client ends it by Submit"));
}

}  // namespace dtmd::txn
