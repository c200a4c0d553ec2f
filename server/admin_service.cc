#include "server/admin_service.h"

#include "absl/strings/str_cat.h"
#include "server/grpc_status.h"
#include "server/request_validation.h"

namespace dtmd {

namespace admin_v1 = ::dtmd::admin::v1;

grpc::ServerUnaryReactor* AdminService::GetTransaction(
    grpc::CallbackServerContext* context,
    const admin_v1::GetTransactionRequest* request,
    admin_v1::GetTransactionReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = ValidateGid(request->gid(), 1 << 20);
  absl::StatusOr<storage::v1::TransRecord> trans =
      status.ok() ? store_->GetTransaction(request->gid())
                  : absl::StatusOr<storage::v1::TransRecord>(status);
  absl::StatusOr<std::vector<storage::v1::BranchRecord>> branches =
      trans.ok() ? store_->GetBranches(request->gid())
                 : absl::StatusOr<std::vector<storage::v1::BranchRecord>>(
                       trans.status());
  if (!branches.ok()) {
    reactor->Finish(ToGrpcStatus(branches.status()));
    return reactor;
  }
  admin_v1::Transaction* t = reply->mutable_transaction();
  t->set_gid(trans->gid());
  t->set_trans_type(trans->trans_type());
  t->set_status(trans->status());
  t->set_rollback_reason(trans->rollback_reason());
  t->set_create_time_ms(trans->create_time_ms());
  t->set_update_time_ms(trans->update_time_ms());
  t->set_finish_time_ms(trans->finish_time_ms());
  t->set_next_cron_time_ms(trans->next_cron_time_ms());
  t->set_next_cron_interval_s(trans->next_cron_interval_s());
  t->set_retry_count(trans->retry_count());
  t->set_customed_data(trans->customed_data());
  for (const storage::v1::BranchRecord& b : *branches) {
    admin_v1::Branch* out = reply->add_branches();
    out->set_branch_id(b.branch_id());
    out->set_op(b.op());
    out->set_url(b.url());
    out->set_status(b.status());
    out->set_last_error(b.last_error());
    out->set_call_count(b.call_count());
    out->set_finish_time_ms(b.finish_time_ms());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::Version(
    grpc::CallbackServerContext* context, const admin_v1::VersionRequest*,
    admin_v1::VersionReply* reply) {
  reply->set_version(DTMD_VERSION);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace dtmd
