#include "dtmd/workflow.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/escaping.h"
#include "dtmd/internal/json.h"

namespace dtmd::client {
namespace {

constexpr char kWorkflow[] = "workflow";
constexpr char kActionOp[] = "action";
constexpr char kSucceed[] = "succeed";
constexpr char kFailed[] = "failed";

// The value of metadata `key`, empty when absent.
std::string MetadataValue(const grpc::ServerContext& context,
                          const std::string& key) {
  auto it = context.client_metadata().find(key);
  if (it == context.client_metadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

Workflow::Workflow(dtmgimp::Dtm::StubInterface* dtm, std::string name,
                   std::string gid, std::string input,
                   const TransOptions* options,
                   const dtmgimp::DtmProgressesReply& reply)
    : dtm_(dtm),
      name_(std::move(name)),
      gid_(std::move(gid)),
      input_(std::move(input)),
      options_(options) {
  for (const dtmgimp::DtmProgress& progress : reply.progresses()) {
    if (progress.status() != kSucceed && progress.status() != kFailed) continue;
    progresses_[{progress.branchid(), progress.op()}] =
        Progress{progress.status(), progress.bindata()};
  }
}

absl::StatusOr<std::string> Workflow::Do(const Step& step) {
  absl::StatusOr<std::string> branch_id = branch_ids_.Next();
  if (!branch_id.ok()) return branch_id.status();

  auto recorded = progresses_.find({*branch_id, kActionOp});
  if (recorded != progresses_.end()) {
    const Progress& progress = recorded->second;
    if (progress.status == kSucceed) return progress.data;
    return absl::AbortedError(progress.data);
  }

  absl::StatusOr<std::string> outcome = step();
  if (!outcome.ok() && outcome.status().code() != absl::StatusCode::kAborted) {
    return outcome;  // Unknown: run it again on resume.
  }
  dtmgimp::DtmBranchRequest branch;
  branch.set_gid(gid_);
  branch.set_transtype(kWorkflow);
  branch.set_branchid(*branch_id);
  (*branch.mutable_data())["op"] = kActionOp;
  (*branch.mutable_data())["status"] = outcome.ok() ? kSucceed : kFailed;
  branch.set_busipayload(
      outcome.ok() ? *outcome : std::string(outcome.status().message()));
  absl::Status registered =
      internal::CallDtm(dtm_, &dtmgimp::Dtm::StubInterface::RegisterBranch,
                        branch, options_->call_timeout);
  if (registered.code() == absl::StatusCode::kAborted) {
    return absl::FailedPreconditionError(registered.message());
  }
  if (!registered.ok()) return registered;
  return outcome;
}

WorkflowClient::WorkflowClient(dtmgimp::Dtm::StubInterface* dtm,
                               std::string resume_url, TransOptions options)
    : dtm_(dtm),
      resume_url_(std::move(resume_url)),
      options_(std::move(options)) {}

absl::StatusOr<std::string> WorkflowClient::Execute(
    const std::string& name, const std::string& gid, const std::string& input,
    const Handler& handler) const {
  dtmgimp::DtmRequest request =
      internal::StepLessRequest(gid, kWorkflow, options_);
  request.set_customeddata(internal::DumpJson(
      nlohmann::json{{"name", name}, {"data", absl::Base64Escape(input)}}));
  request.set_queryprepared(resume_url_);

  dtmgimp::DtmProgressesReply progress;
  absl::Status prepared = internal::FromGrpc(
      internal::CallDtm(dtm_, &dtmgimp::Dtm::StubInterface::PrepareWorkflow,
                        request, &progress, options_.call_timeout));
  if (!prepared.ok()) return prepared;

  const dtmgimp::DtmTransaction& stored = progress.transaction();
  if (stored.status() == kSucceed) {
    std::string result;
    if (!absl::Base64Unescape(stored.result(), &result)) {
      return absl::InternalError("workflow " + gid +
                                 " succeeded with a result that is not base64");
    }
    return result;
  }
  if (stored.status() == kFailed) {
    return absl::AbortedError(stored.rollbackreason());
  }

  Workflow wf(dtm_, name, gid, input, &options_, progress);
  absl::StatusOr<std::string> outcome = handler(wf);
  const bool failed =
      !outcome.ok() && outcome.status().code() == absl::StatusCode::kAborted;
  if (!outcome.ok() && !failed) return outcome;  // Resumed later.

  auto& extra = *request.mutable_reqextra();
  extra["status"] = failed ? kFailed : kSucceed;
  extra["rollback_reason"] =
      failed ? std::string(outcome.status().message()) : "";
  extra["result"] = outcome.ok() ? absl::Base64Escape(*outcome) : "";
  absl::Status submitted =
      internal::CallDtm(dtm_, &dtmgimp::Dtm::StubInterface::Submit, request,
                        options_.call_timeout);
  if (!submitted.ok()) return submitted;
  return outcome;
}

WorkflowService::WorkflowService(const WorkflowClient* client)
    : client_(client) {}

void WorkflowService::Register(std::string name,
                               WorkflowClient::Handler handler) {
  handlers_[std::move(name)] = std::move(handler);
}

grpc::Status WorkflowService::Execute(grpc::ServerContext* context,
                                      const workflow::WorkflowData* request,
                                      google::protobuf::Empty* reply) {
  const std::string name = MetadataValue(*context, "dtm-op");
  auto handler = handlers_.find(name);
  if (handler == handlers_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "no workflow named '" + name + "' is registered");
  }
  absl::StatusOr<std::string> outcome =
      client_->Execute(name, MetadataValue(*context, "dtm-gid"),
                       request->data(), handler->second);
  if (outcome.ok() || outcome.status().code() == absl::StatusCode::kAborted) {
    return grpc::Status::OK;  // Ended: succeeded or failed.
  }
  return grpc::Status(static_cast<grpc::StatusCode>(outcome.status().code()),
                      std::string(outcome.status().message()));
}

}  // namespace dtmd::client
