// Transport security and caller authentication for dtmd:
//  - ServerCredentialsFromConfig: TLS for the gRPC server from PEM files,
//    optionally requiring client certificates signed by a given CA;
//  - BranchTls: which branch targets dtmd calls over TLS, and with what;
//  - TokenAuthenticator: bearer tokens from a file, checked on the
//    coordinator (dtmgimp.Dtm) and admin (dtmd.admin.v1.Admin) services,
//    reloadable while serving (SIGHUP).
#ifndef DTMD_SERVER_SECURITY_H_
#define DTMD_SERVER_SECURITY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_context.h"
#include "server/config.h"

namespace dtmd {

// The whole of a (small) file; INVALID_ARGUMENT naming `flag` and the path
// when it cannot be read.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          absl::string_view flag);

// Insecure credentials without --tls_cert_file; otherwise TLS with that
// certificate chain and --tls_key_file, and with --tls_client_ca_file also
// requiring every client to present a certificate signed by that CA. Errors
// name the flag whose file cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>>
ServerCredentialsFromConfig(const Config& config);

// Which branch targets (host:port, as written in branch URLs) dtmd calls over
// TLS, and the channel credentials for them. Default: none (plaintext).
struct BranchTls {
  bool all = false;                                       // every target.
  absl::flat_hash_set<std::string> targets;               // or just these.
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // TLS ones.

  bool UsesTls(const std::string& target) const {
    return credentials != nullptr && (all || targets.contains(target));
  }
  // From --branch_tls, --branch_tls_ca_file (the trusted roots; gRPC's
  // default roots without it) and the optional --branch_tls_cert_file /
  // --branch_tls_key_file client certificate.
  static absl::StatusOr<BranchTls> FromConfig(const Config& config);
};

// The tokens in a token file: one per line; '#' starts a comment line; blank
// lines and surrounding whitespace are ignored. INVALID_ARGUMENT (naming the
// line, never the token) for a token with a space, control or non-ASCII
// byte, or when the file holds no token at all.
absl::StatusOr<std::vector<std::string>> ParseTokenFile(
    absl::string_view content);

// Thread-safe. Without a token file every call is accepted; with one, a
// call must carry the metadata "authorization: Bearer <token>" with one of
// the file's tokens, compared in constant time.
//
// The services call Check first thing in each handler (CheckCaller), before
// the request is parsed or anything is changed. Why not in gRPC's layers: an
// AuthMetadataProcessor needs TLS credentials (gRPC 1.51 aborts when one is
// set on insecure credentials), and a server interceptor cannot end a call
// with a status of its choosing. Health and reflection are gRPC's own
// services and never call it, so they stay open.
class TokenAuthenticator {
 public:
  // Open (accepts every call).
  TokenAuthenticator() = default;
  // Reads `path` now: an unreadable file or one without tokens is an error.
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> FromFile(
      std::string path);

  bool enabled() const { return !path_.empty(); }

  // From now on (call before serving), calls that did not come over TLS
  // are refused: for a server whose TLS port has a plaintext health port
  // beside it, where the other services must not be reachable.
  void RequireTls() { require_tls_ = true; }
  const std::string& path() const { return path_; }

  // Reads the file again. On success the new tokens replace the old ones
  // (calls already checked are not affected); on error the old tokens stay
  // and the error comes back. OK and nothing done when not enabled.
  absl::Status Reload();

  // OK, or UNAUTHENTICATED saying what is missing or wrong.
  absl::Status Check(const grpc::ServerContextBase& context) const;
  // The same for an authorization metadata value (nullptr: absent).
  absl::Status CheckHeader(const absl::string_view* authorization) const;

  size_t token_count() const;

 private:
  std::string path_;
  bool require_tls_ = false;
  mutable absl::Mutex mu_;
  std::vector<std::string> tokens_ ABSL_GUARDED_BY(mu_);
};

// A caller check for services: OK when `auth` is null.
inline absl::Status CheckCaller(const TokenAuthenticator* auth,
                                const grpc::ServerContextBase& context) {
  return auth == nullptr ? absl::OkStatus() : auth->Check(context);
}

}  // namespace dtmd

#endif  // DTMD_SERVER_SECURITY_H_
