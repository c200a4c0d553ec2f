#include "server/txn/branch_url.h"

#include "absl/strings/numbers.h"

namespace dtmd::txn {

absl::StatusOr<BranchTarget> ParseBranchUrl(absl::string_view url) {
  const size_t slash = url.find('/');
  if (slash == absl::string_view::npos || slash == 0) {
    return absl::InvalidArgumentError(
        "URL must be host:port/package.Service/Method");
  }
  const absl::string_view target = url.substr(0, slash);
  const size_t colon = target.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError("URL target must be host:port");
  }
  const absl::string_view port = target.substr(colon + 1);
  int port_value = 0;
  if (port.empty() || port.front() == '+' || port.front() == '-' ||
      !absl::SimpleAtoi(port, &port_value) || port_value < 1 ||
      port_value > 65535) {
    return absl::InvalidArgumentError("URL port must be a number in 1..65535");
  }
  const absl::string_view method = url.substr(slash);  // "/pkg.Svc/Method"
  const size_t second = method.find('/', 1);
  if (second == absl::string_view::npos || second == 1 ||
      second + 1 == method.size() ||
      method.find('/', second + 1) != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "URL method must be package.Service/Method");
  }
  return BranchTarget{std::string(target), std::string(method)};
}

}  // namespace dtmd::txn
