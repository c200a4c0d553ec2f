// Branch URLs: "host:port/package.Service/Method" (docs/protocol.md section 3).
// One parser, used when a transaction is accepted and when a branch is
// called. Pure; thread-safe.
#ifndef DTMD_SERVER_TXN_BRANCH_URL_H_
#define DTMD_SERVER_TXN_BRANCH_URL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dtmd::txn {

struct BranchTarget {
  std::string target;  // host:port, a gRPC channel target.
  std::string method;  // /package.Service/Method
};

// INVALID_ARGUMENT (the message says what is wrong, without a field name)
// when `url` is not host:port/package.Service/Method with a port 1..65535.
absl::StatusOr<BranchTarget> ParseBranchUrl(absl::string_view url);

}  // namespace dtmd::txn

#endif  // DTMD_SERVER_TXN_BRANCH_URL_H_
