#include "server/security.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/security/credentials.h"

namespace dtmd {
namespace {

// Token files and PEM files are small; this bounds what a wrong path (a
// device, a huge log) can make dtmd read.
constexpr std::streamsize kMaxFileBytes = 1 << 20;

constexpr absl::string_view kBearer = "Bearer ";

// Equal, in a time that does not depend on where `given` and `token`
// differ; only a token's length shows (as with CRYPTO_memcmp).
bool ConstantTimeEquals(absl::string_view given, absl::string_view token) {
  if (given.size() != token.size() || token.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < token.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i]) ^
            static_cast<unsigned char>(token[i]);
  }
  return diff == 0;
}

}  // namespace

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": cannot read ", path));
  }
  std::string content(static_cast<size_t>(kMaxFileBytes) + 1, '\0');
  in.read(content.data(), kMaxFileBytes + 1);
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": cannot read ", path));
  }
  content.resize(static_cast<size_t>(in.gcount()));
  if (content.size() > static_cast<size_t>(kMaxFileBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": ", path, " is larger than 1 MiB"));
  }
  return content;
}

namespace {

// A PEM file named by a flag, and where its contents go.
struct PemFile {
  const std::string& path;
  absl::string_view flag;
  std::string* contents;
};

// Reads every file that has a path; the first error, naming its flag.
absl::Status ReadPemFiles(const std::vector<PemFile>& files) {
  for (const PemFile& file : files) {
    if (file.path.empty()) continue;
    absl::StatusOr<std::string> contents = ReadSmallFile(file.path, file.flag);
    if (!contents.ok()) return contents.status();
    *file.contents = *std::move(contents);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>>
ServerCredentialsFromConfig(const Config& config) {
  if (config.tls_cert_file.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      config.tls_client_ca_file.empty()
          ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
          : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  if (absl::Status s = ReadPemFiles(
          {{config.tls_cert_file, "tls_cert_file", &pair.cert_chain},
           {config.tls_key_file, "tls_key_file", &pair.private_key},
           {config.tls_client_ca_file, "tls_client_ca_file",
            &options.pem_root_certs}});
      !s.ok()) {
    return s;
  }
  options.pem_key_cert_pairs.push_back(std::move(pair));
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<BranchTls> BranchTls::FromConfig(const Config& config) {
  BranchTls tls;
  tls.all = config.branch_tls_all;
  tls.targets.insert(config.branch_tls_targets.begin(),
                     config.branch_tls_targets.end());
  if (!tls.all && tls.targets.empty()) return tls;
  grpc::SslCredentialsOptions options;
  if (absl::Status s =
          ReadPemFiles({{config.branch_tls_ca_file, "branch_tls_ca_file",
                         &options.pem_root_certs},
                        {config.branch_tls_cert_file, "branch_tls_cert_file",
                         &options.pem_cert_chain},
                        {config.branch_tls_key_file, "branch_tls_key_file",
                         &options.pem_private_key}});
      !s.ok()) {
    return s;
  }
  tls.credentials = grpc::SslCredentials(options);
  return tls;
}

absl::StatusOr<std::vector<std::string>> ParseTokenFile(
    absl::string_view content) {
  std::vector<std::string> tokens;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    for (char c : line) {
      const unsigned char u = static_cast<unsigned char>(c);
      if (u < 0x21 || u > 0x7e) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line_number,
                         ": a token may hold only printable ASCII without "
                         "spaces"));
      }
    }
    tokens.emplace_back(line);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError("no token in the file");
  }
  return tokens;
}

absl::StatusOr<std::unique_ptr<TokenAuthenticator>>
TokenAuthenticator::FromFile(std::string path) {
  auto auth = std::make_unique<TokenAuthenticator>();
  auth->path_ = std::move(path);
  if (absl::Status s = auth->Reload(); !s.ok()) return s;
  return auth;
}

absl::Status TokenAuthenticator::Reload() {
  if (!enabled()) return absl::OkStatus();
  absl::StatusOr<std::string> content = ReadSmallFile(path_, "auth_token_file");
  if (!content.ok()) return content.status();
  absl::StatusOr<std::vector<std::string>> tokens = ParseTokenFile(*content);
  if (!tokens.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--auth_token_file: ", path_, ": ", tokens.status().message()));
  }
  absl::MutexLock lock(&mu_);
  tokens_.swap(*tokens);
  return absl::OkStatus();
}

size_t TokenAuthenticator::token_count() const {
  absl::ReaderMutexLock lock(&mu_);
  return tokens_.size();
}

absl::Status TokenAuthenticator::Check(
    const grpc::ServerContextBase& context) const {
  if (require_tls_) {
    std::vector<grpc::string_ref> type =
        context.auth_context()->FindPropertyValues(
            GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
    if (type.empty() || type[0] != GRPC_SSL_TRANSPORT_SECURITY_TYPE) {
      return absl::UnauthenticatedError(
          "this port serves health checks only; use the TLS port");
    }
  }
  if (!enabled()) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return CheckHeader(nullptr);
  const absl::string_view value(it->second.data(), it->second.size());
  return CheckHeader(&value);
}

absl::Status TokenAuthenticator::CheckHeader(
    const absl::string_view* authorization) const {
  if (!enabled()) return absl::OkStatus();
  if (authorization == nullptr) {
    return absl::UnauthenticatedError(
        "missing metadata 'authorization: Bearer <token>'");
  }
  absl::string_view value = *authorization;
  if (value.size() < kBearer.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kBearer.size()), kBearer)) {
    return absl::UnauthenticatedError(
        "metadata 'authorization' must be 'Bearer <token>'");
  }
  value = absl::StripAsciiWhitespace(value.substr(kBearer.size()));
  bool match = false;
  {
    absl::ReaderMutexLock lock(&mu_);
    // Every token is compared, so the time does not tell which one matched.
    for (const std::string& token : tokens_) {
      match |= ConstantTimeEquals(value, token);
    }
  }
  if (!match) return absl::UnauthenticatedError("invalid bearer token");
  return absl::OkStatus();
}

}  // namespace dtmd
