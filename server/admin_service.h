// AdminService: dtmd's operations API (dtmd.admin.v1.Admin): read a
// transaction and its branches, list transactions, drive one now or stop
// it, list topics, report the version. Reads go to the store; RetryNow and
// ForceStop are commands to the gid's runner (Engine), so they never race
// it.
#ifndef DTMD_SERVER_ADMIN_SERVICE_H_
#define DTMD_SERVER_ADMIN_SERVICE_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "dtmd/admin/v1/admin.grpc.pb.h"
#include "server/engine.h"
#include "server/security.h"
#include "storage/store.h"

namespace dtmd {

class AdminService final : public dtmd::admin::v1::Admin::CallbackService {
 public:
  static constexpr int kDefaultPageSize = 100;
  static constexpr int kMaxPageSize = 1000;
  static constexpr size_t kMaxReasonBytes = 1024;  // ForceStop's reason.

  // `engine` and `auth` are not owned and must outlive the service; a null
  // `auth` accepts every caller.
  explicit AdminService(Engine* engine,
                        const TokenAuthenticator* auth = nullptr)
      : engine_(engine), store_(engine->store()), auth_(auth) {}

  grpc::ServerUnaryReactor* GetTransaction(
      grpc::CallbackServerContext* context,
      const dtmd::admin::v1::GetTransactionRequest* request,
      dtmd::admin::v1::GetTransactionReply* reply) override;
  // Scans the store on the engine's pool, not on a gRPC thread.
  grpc::ServerUnaryReactor* ListTransactions(
      grpc::CallbackServerContext* context,
      const dtmd::admin::v1::ListTransactionsRequest* request,
      dtmd::admin::v1::ListTransactionsReply* reply) override;
  grpc::ServerUnaryReactor* RetryNow(
      grpc::CallbackServerContext* context,
      const dtmd::admin::v1::RetryNowRequest* request,
      dtmd::admin::v1::RetryNowReply* reply) override;
  grpc::ServerUnaryReactor* ForceStop(
      grpc::CallbackServerContext* context,
      const dtmd::admin::v1::ForceStopRequest* request,
      dtmd::admin::v1::ForceStopReply* reply) override;
  // Reads the store on the engine's pool, like ListTransactions.
  grpc::ServerUnaryReactor* ListTopics(
      grpc::CallbackServerContext* context,
      const dtmd::admin::v1::ListTopicsRequest* request,
      dtmd::admin::v1::ListTopicsReply* reply) override;
  grpc::ServerUnaryReactor* Version(
      grpc::CallbackServerContext* context,
      const dtmd::admin::v1::VersionRequest* request,
      dtmd::admin::v1::VersionReply* reply) override;

  // The page token that resumes after `cursor`, and back (INVALID_ARGUMENT
  // for a token this service did not make). Opaque to clients.
  static std::string EncodePageToken(const storage::TransCursor& cursor);
  static absl::StatusOr<storage::TransCursor> DecodePageToken(
      const std::string& token);

 private:
  Engine* const engine_;
  storage::Store* const store_;
  const TokenAuthenticator* const auth_;
};

}  // namespace dtmd

#endif  // DTMD_SERVER_ADMIN_SERVICE_H_
