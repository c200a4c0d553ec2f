// What a branch's answer means (docs/protocol.md section 3), independent of any
// transaction mode. Pure; thread-safe.
#ifndef DTMD_SERVER_TXN_OUTCOME_H_
#define DTMD_SERVER_TXN_OUTCOME_H_

#include "absl/strings/string_view.h"

namespace dtmd::txn {

enum class BranchOutcome {
  kSuccess,  // the branch did its work.
  kFailure,  // the branch refused: only meaningful where a failure has a
             // meaning (saga action, msg QueryPrepared check).
  kOngoing,  // not done yet: ask again at the same interval.
  kUnknown,  // no usable answer: retry with backoff.
};

// `code` is a gRPC status code number (grpc::StatusCode), `op` the branch op.
// `failure_allowed` says whether a failure has a meaning for this op; when it
// does not, an ABORTED answer counts as unknown.
BranchOutcome ClassifyAnswer(int code, absl::string_view message,
                             bool failure_allowed);

absl::string_view OutcomeName(BranchOutcome outcome);

}  // namespace dtmd::txn

#endif  // DTMD_SERVER_TXN_OUTCOME_H_
