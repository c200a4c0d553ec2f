#include "dtmd/tcc.h"

#include <utility>

namespace dtmd::client {

namespace {
constexpr char kTcc[] = "tcc";
}  // namespace

using internal::CallDtm;

absl::Status TccGlobalTransaction(dtmgimp::Dtm::StubInterface* dtm,
                                  const std::string& gid,
                                  const std::function<absl::Status(Tcc&)>& body,
                                  const TransOptions& options) {
  dtmgimp::DtmRequest request = internal::StepLessRequest(gid, kTcc, options);
  absl::Status prepared = CallDtm(dtm, &dtmgimp::Dtm::StubInterface::Prepare,
                                  request, options.call_timeout);
  if (!prepared.ok()) return prepared;

  Tcc tcc(dtm, gid, options);
  absl::Status result = body(tcc);
  if (result.ok()) {
    return CallDtm(dtm, &dtmgimp::Dtm::StubInterface::Submit, request,
                   options.call_timeout);
  }
  request.set_rollbackreason(std::string(result.message()));
  CallDtm(dtm, &dtmgimp::Dtm::StubInterface::Abort, request,
          options.call_timeout)
      .IgnoreError();
  return result;
}

Tcc::Tcc(dtmgimp::Dtm::StubInterface* dtm, std::string gid,
         TransOptions options)
    : dtm_(dtm), gid_(std::move(gid)), options_(std::move(options)) {}

absl::Status Tcc::CallBranch(const std::string& payload,
                             const std::string& try_url,
                             const std::string& confirm_url,
                             const std::string& cancel_url,
                             std::string* reply) {
  absl::StatusOr<std::string> branch_id = branch_ids_.Next();
  if (!branch_id.ok()) return branch_id.status();

  dtmgimp::DtmBranchRequest branch;
  branch.set_gid(gid_);
  branch.set_transtype(kTcc);
  branch.set_branchid(*branch_id);
  (*branch.mutable_data())["confirm"] = confirm_url;
  (*branch.mutable_data())["cancel"] = cancel_url;
  branch.set_busipayload(payload);
  absl::Status registered =
      CallDtm(dtm_, &dtmgimp::Dtm::StubInterface::RegisterBranch, branch,
              options_.call_timeout);
  if (!registered.ok()) return registered;

  return branches_.Call(
      try_url, payload,
      internal::BranchMetadata(gid_, kTcc, *branch_id, "try", options_),
      internal::BranchCallTimeout(options_), reply);
}

absl::Status Tcc::CallBranch(const google::protobuf::MessageLite& request,
                             const std::string& try_url,
                             const std::string& confirm_url,
                             const std::string& cancel_url,
                             google::protobuf::MessageLite* reply) {
  std::string reply_bytes;
  absl::Status status = CallBranch(request.SerializeAsString(), try_url,
                                   confirm_url, cancel_url, &reply_bytes);
  if (status.ok() && reply != nullptr && !reply->ParseFromString(reply_bytes)) {
    return absl::InternalError("the reply of " + try_url + " does not parse");
  }
  return status;
}

}  // namespace dtmd::client
