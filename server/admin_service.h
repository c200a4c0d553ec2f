// AdminService: dtmd's operations API (dtmd.admin.v1.Admin): read a
// transaction and its branches, report the version. Read-only for now.
#ifndef DTMD_SERVER_ADMIN_SERVICE_H_
#define DTMD_SERVER_ADMIN_SERVICE_H_

#include "dtmd/admin/v1/admin.grpc.pb.h"
#include "storage/store.h"

namespace dtmd {

class AdminService final : public dtmd::admin::v1::Admin::CallbackService {
 public:
  // `store` is not owned and must outlive the service.
  explicit AdminService(storage::Store* store) : store_(store) {}

  grpc::ServerUnaryReactor* GetTransaction(
      grpc::CallbackServerContext* context,
      const dtmd::admin::v1::GetTransactionRequest* request,
      dtmd::admin::v1::GetTransactionReply* reply) override;
  grpc::ServerUnaryReactor* Version(
      grpc::CallbackServerContext* context,
      const dtmd::admin::v1::VersionRequest* request,
      dtmd::admin::v1::VersionReply* reply) override;

 private:
  storage::Store* const store_;
};

}  // namespace dtmd

#endif  // DTMD_SERVER_ADMIN_SERVICE_H_
