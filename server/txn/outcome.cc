#include "server/txn/outcome.h"

namespace dtmd::txn {
namespace {
// grpc::StatusCode values, kept here so the pure core needs no gRPC headers.
constexpr int kOk = 0;
constexpr int kFailedPrecondition = 9;
constexpr int kAborted = 10;
}  // namespace

BranchOutcome ClassifyAnswer(int code, absl::string_view message,
                             bool failure_allowed) {
  if (code == kOk) return BranchOutcome::kSuccess;
  if (code == kFailedPrecondition) return BranchOutcome::kOngoing;
  if (code == kAborted) {
    if (message == "ONGOING") return BranchOutcome::kOngoing;
    return failure_allowed ? BranchOutcome::kFailure : BranchOutcome::kUnknown;
  }
  return BranchOutcome::kUnknown;
}

absl::string_view OutcomeName(BranchOutcome outcome) {
  switch (outcome) {
    case BranchOutcome::kSuccess:
      return "success";
    case BranchOutcome::kFailure:
      return "failure";
    case BranchOutcome::kOngoing:
      return "ongoing";
    case BranchOutcome::kUnknown:
      return "unknown";
  }
  return "unknown";
}

}  // namespace dtmd::txn
