#include "server/txn/branch_url.h"

#include <arpa/inet.h>

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace dtmd::txn {
namespace {

constexpr size_t kMaxDnsName = 253;
constexpr size_t kMaxDnsLabel = 63;
constexpr size_t kMaxShownHost = 64;

bool IsNameChar(char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '_';
}

// A DNS name as resolvers accept it (see ParseBranchUrl's contract).
bool IsDnsName(absl::string_view host) {
  if (absl::EndsWith(host, ".")) host.remove_suffix(1);
  if (host.empty() || host.size() > kMaxDnsName) return false;
  absl::string_view last_label;
  for (absl::string_view label : absl::StrSplit(host, '.')) {
    if (label.empty() || label.size() > kMaxDnsLabel || label[0] == '-') {
      return false;
    }
    for (char c : label) {
      if (!IsNameChar(c)) return false;
    }
    last_label = label;
  }
  // "10.1" or "2130706433" would be read as IPv4 by some resolvers.
  for (char c : last_label) {
    if (!absl::ascii_isdigit(c)) return true;
  }
  return false;
}

bool IsIpv4(absl::string_view host) {
  const std::string copy(host);
  in_addr addr;
  return inet_pton(AF_INET, copy.c_str(), &addr) == 1;
}

// "[v6]" with no zone id.
bool IsBracketedIpv6(absl::string_view host) {
  if (host.size() < 3 || host.front() != '[' || host.back() != ']') {
    return false;
  }
  const std::string inner(host.substr(1, host.size() - 2));
  in6_addr addr;
  return inet_pton(AF_INET6, inner.c_str(), &addr) == 1;
}

absl::Status CheckHost(absl::string_view host) {
  if (IsBracketedIpv6(host) || IsIpv4(host) || IsDnsName(host)) {
    return absl::OkStatus();
  }
  std::string hint;
  if (absl::StrContains(host, ':') && host.front() != '[') {
    hint =
        " (schemes such as unix:, vsock: or xds: are not accepted; write "
        "an IPv6 address in brackets)";
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("URL host '%s' is not a DNS name or an IP address%s",
                      host.substr(0, kMaxShownHost), hint));
}

// package.Service or Method: a proto name, give or take '-'.
bool IsMethodPart(absl::string_view part) {
  if (part.empty()) return false;
  for (char c : part) {
    if (!IsNameChar(c) && c != '.') return false;
  }
  return true;
}

// "http(s)://host[:port][/path][?query]", already checked for printable
// ASCII.
absl::StatusOr<BranchTarget> ParseHttpUrl(absl::string_view url) {
  BranchTarget result;
  result.http = true;
  result.https = absl::StartsWithIgnoreCase(url, "https://");
  url.remove_prefix(result.https ? 8 : 7);
  if (url.find('#') != absl::string_view::npos) {
    return absl::InvalidArgumentError("URL must not have a '#' fragment");
  }
  const size_t end = url.find_first_of("/?");
  const absl::string_view authority = url.substr(0, end);
  if (authority.empty()) return absl::InvalidArgumentError("URL has no host");
  if (authority.find('@') != absl::string_view::npos) {
    return absl::InvalidArgumentError("URL must not carry user info ('@')");
  }
  absl::string_view host = authority;
  // A port follows the last ':' unless that ':' is inside "[v6]".
  const size_t colon = authority.rfind(':');
  if (colon != absl::string_view::npos &&
      authority.find(']', colon) == absl::string_view::npos) {
    host = authority.substr(0, colon);
    const absl::string_view port = authority.substr(colon + 1);
    int port_value = 0;
    if (port.empty() || !absl::ascii_isdigit(port.front()) ||
        !absl::SimpleAtoi(port, &port_value) || port_value < 1 ||
        port_value > 65535) {
      return absl::InvalidArgumentError(
          "URL port must be a number in 1..65535");
    }
  }
  if (host.empty()) return absl::InvalidArgumentError("URL has no host");
  if (absl::Status s = CheckHost(host); !s.ok()) return s;
  result.target = std::string(authority);
  return result;
}

}  // namespace

bool IsHttpBranchUrl(absl::string_view url) {
  return absl::StartsWithIgnoreCase(url, "http://") ||
         absl::StartsWithIgnoreCase(url, "https://");
}

absl::StatusOr<BranchTarget> ParseBranchUrl(absl::string_view url) {
  for (size_t i = 0; i < url.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(url[i]);
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "URL has a control, space or non-ASCII byte 0x%02x at offset %d", c,
          i));
    }
  }
  if (IsHttpBranchUrl(url)) return ParseHttpUrl(url);
  const size_t scheme = url.find("://");
  if (scheme != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrFormat("URL scheme '%s://' is not accepted; a branch URL is "
                        "host:port/package.Service/Method",
                        url.substr(0, std::min(scheme, kMaxShownHost))));
  }
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
  if (port.empty() || !absl::ascii_isdigit(port.front()) ||
      !absl::SimpleAtoi(port, &port_value) || port_value < 1 ||
      port_value > 65535) {
    return absl::InvalidArgumentError("URL port must be a number in 1..65535");
  }
  if (absl::Status host = CheckHost(target.substr(0, colon)); !host.ok()) {
    return host;
  }
  const absl::string_view method = url.substr(slash);  // "/pkg.Svc/Method"
  const size_t second = method.find('/', 1);
  if (second == absl::string_view::npos || second == 1 ||
      second + 1 == method.size() ||
      method.find('/', second + 1) != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "URL method must be package.Service/Method");
  }
  if (!IsMethodPart(method.substr(1, second - 1)) ||
      !IsMethodPart(method.substr(second + 1))) {
    return absl::InvalidArgumentError(
        "URL service and method names may hold only letters, digits, '_', "
        "'.' and '-'");
  }
  BranchTarget result;
  result.target = std::string(target);
  result.method = std::string(method);
  return result;
}

}  // namespace dtmd::txn
