#include "server/txn/steps_reader.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/txn/branch_url.h"

namespace dtmd::txn {

std::string BranchUrlProblem(absl::string_view url) {
  absl::StatusOr<BranchTarget> target = ParseBranchUrl(url);
  return target.ok() ? "" : std::string(target.status().message());
}

StepsReader::StepsReader(const StepsLimits& limits,
                         std::vector<std::string> ops, UrlCheck check)
    : JsonReader("Steps", limits.max_json_depth),
      limits_(limits),
      ops_(std::move(ops)),
      check_(check) {}

absl::Status StepsReader::ReadSteps(absl::string_view steps_json,
                                    size_t payload_count) {
  if (!steps_json.empty()) {
    absl::Status status = Read(steps_json, "Steps: not valid JSON");
    if (!status.ok()) return status;
  }
  if (payload_count != static_cast<size_t>(steps())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "BinPayloads: got %d payloads for %d steps", payload_count, steps()));
  }
  return absl::OkStatus();
}

bool StepsReader::OnScalar(int depth, const JsonScalar& value) {
  if (depth == 0) {
    if (value.kind == JsonKind::kNull) return true;  // no steps.
    return NotAn("Steps: not a JSON array but ", value.kind);
  }
  if (depth == 1) return NotAnObject(value.kind);
  if (depth == 2 && member_op_ >= 0) {
    if (value.kind == JsonKind::kString) return ReadUrl(value.text);
    if (value.kind == JsonKind::kNull) {
      url(steps() - 1, member_op_).clear();
      return true;
    }
    return NotAString(value.kind);
  }
  return true;
}

bool StepsReader::OnOpen(int depth, JsonKind kind) {
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
    urls_.resize(urls_.size() + ops_.size());
    member_op_ = -1;
    return true;
  }
  if (depth == 2 && member_op_ >= 0) return NotAString(kind);
  return true;
}

bool StepsReader::OnKey(int depth, absl::string_view key) {
  if (depth != 2) return true;
  member_op_ = -1;
  for (size_t op = 0; op < ops_.size(); ++op) {
    if (key == ops_[op]) member_op_ = static_cast<int>(op);
  }
  return true;
}

bool StepsReader::ReadUrl(absl::string_view text) {
  std::string& target = url(steps() - 1, member_op_);
  target.clear();
  if (text.empty()) return true;
  std::string problem;
  if (text.size() > static_cast<size_t>(limits_.max_url_bytes)) {
    problem = absl::StrFormat("URL is %d bytes, more than the limit of %d",
                              text.size(), limits_.max_url_bytes);
  } else {
    problem = check_(text);
  }
  if (!problem.empty()) {
    return Fail(
        absl::InvalidArgumentError(absl::StrCat(Field(), ": ", problem)));
  }
  target.assign(text.data(), text.size());
  return true;
}

std::string StepsReader::Field() const {
  return absl::StrFormat("Steps[%d].%s", steps() - 1, ops_[member_op_]);
}

bool StepsReader::NotAn(absl::string_view what, JsonKind kind) {
  return Fail(
      absl::InvalidArgumentError(absl::StrCat(what, JsonKindName(kind))));
}

bool StepsReader::NotAnObject(JsonKind kind) {
  return NotAn(absl::StrFormat("Steps[%d]: not a JSON object but ", steps()),
               kind);
}

bool StepsReader::NotAString(JsonKind kind) {
  return NotAn(absl::StrCat(Field(), ": not a string but "), kind);
}

}  // namespace dtmd::txn
