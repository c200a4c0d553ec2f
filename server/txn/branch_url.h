// Branch URLs: "host:port/package.Service/Method" for gRPC branches
// (docs/protocol.md section 3), or "http://host[:port][/path][?query]" and
// "https://..." for HTTP branches. One parser, used when a transaction is
// accepted and when a branch is called. Pure; thread-safe.
#ifndef DTMD_SERVER_TXN_BRANCH_URL_H_
#define DTMD_SERVER_TXN_BRANCH_URL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dtmd::txn {

struct BranchTarget {
  // True for an http:// or https:// URL: then `target` is host[:port] as
  // written and `method` is empty; the URL is called as written.
  bool http = false;
  bool https = false;
  std::string target;  // host:port, exactly as written in the URL.
  std::string method;  // /package.Service/Method (gRPC only)

  // The gRPC channel target for `target`: always through the DNS resolver
  // ("dns:///host:port"), so that no host can select another gRPC resolver
  // (a host named "unix" or "vsock" stays a host name).
  std::string ChannelTarget() const { return "dns:///" + target; }
};

// Accepts only what dtmd can deliver over plain TCP:
//  - host: a DNS name (labels of letters, digits, '-' and '_', 1..63 bytes,
//    not starting with '-', the last one not all digits; 253 bytes at most;
//    one trailing '.' allowed), a dotted-quad IPv4 address, or an IPv6
//    address in brackets ("[::1]", no zone id);
//  - port: decimal 1..65535;
//  - package.Service and Method: letters, digits, '_', '.' and '-' only, so
//    no NUL, control, space or non-ASCII byte can reach the HTTP/2 :path.
// http:// and https:// URLs (scheme in any case) need the same host rules,
// an optional port 1..65535, and then nothing or a path starting with '/' or
// a query starting with '?'; no user info and no '#' fragment. Every byte of
// every URL must be printable ASCII.
// INVALID_ARGUMENT otherwise; the message says what is wrong without a field
// name. Other schemes (unix:, unix-abstract:, vsock:, xds:, dns:///...) are
// refused as hosts that are not plain names or addresses.
absl::StatusOr<BranchTarget> ParseBranchUrl(absl::string_view url);

// Whether `url` starts with http:// or https:// (any case): an HTTP branch.
bool IsHttpBranchUrl(absl::string_view url);

}  // namespace dtmd::txn

#endif  // DTMD_SERVER_TXN_BRANCH_URL_H_
