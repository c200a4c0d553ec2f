#include "dtmd/internal/rpc.h"

#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"

namespace dtmd::client::internal {

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

void FillTransOptions(const TransOptions& options,
                      dtmgimp::DtmTransOptions* proto) {
  proto->set_waitresult(options.wait_result);
  proto->set_timeouttofail(options.timeout_to_fail);
  proto->set_retryinterval(options.retry_interval);
  proto->set_requesttimeout(options.request_timeout);
  proto->set_retrylimit(options.retry_limit);
  proto->mutable_branchheaders()->insert(options.branch_headers.begin(),
                                         options.branch_headers.end());
}

dtmgimp::DtmRequest StepLessRequest(const std::string& gid,
                                    const std::string& trans_type,
                                    const TransOptions& options) {
  dtmgimp::DtmRequest request;
  request.set_gid(gid);
  request.set_transtype(trans_type);
  FillTransOptions(options, request.mutable_transoptions());
  request.set_steps("null");
  return request;
}

absl::StatusOr<std::string> BranchIdGen::Next() {
  if (last_ >= 99) {
    return absl::ResourceExhaustedError(
        "a transaction has at most 99 branches (ids 01 to 99)");
  }
  ++last_;
  return absl::StrFormat("%02d", last_);
}

Metadata BranchMetadata(const std::string& gid, const std::string& trans_type,
                        const std::string& branch_id, const std::string& op,
                        const TransOptions& options) {
  Metadata metadata = {{"dtm-gid", gid},
                       {"dtm-trans_type", trans_type},
                       {"dtm-branch_id", branch_id},
                       {"dtm-op", op},
                       {"dtm-dtm", options.dtm_address}};
  metadata.insert(metadata.end(), options.branch_headers.begin(),
                  options.branch_headers.end());
  return metadata;
}

std::chrono::milliseconds BranchCallTimeout(const TransOptions& options) {
  if (options.request_timeout > 0) {
    return std::chrono::seconds(options.request_timeout);
  }
  return options.call_timeout;
}

absl::Status BranchCaller::Call(const std::string& url,
                                const std::string& payload,
                                const Metadata& metadata,
                                std::chrono::milliseconds timeout,
                                std::string* reply) {
  const size_t slash = url.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == url.size()) {
    return absl::InvalidArgumentError(
        "branch URL '" + url +
        "' is not of the form host:port/package.Service/Method");
  }
  const std::string target = url.substr(0, slash);
  std::unique_ptr<grpc::GenericStub>& stub = stubs_[target];
  if (stub == nullptr) {
    stub = std::make_unique<grpc::GenericStub>(
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  }

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  for (const auto& [key, value] : metadata) context.AddMetadata(key, value);
  grpc::Slice slice(payload);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  absl::Notification done;
  stub->UnaryCall(&context, url.substr(slash), grpc::StubOptions(), &request,
                  &response, [&status, &done](grpc::Status answer) {
                    status = std::move(answer);
                    done.Notify();
                  });
  done.WaitForNotification();
  if (status.ok() && reply != nullptr) {
    reply->clear();
    std::vector<grpc::Slice> slices;
    if (response.Dump(&slices).ok()) {
      for (const grpc::Slice& part : slices) {
        reply->append(reinterpret_cast<const char*>(part.begin()), part.size());
      }
    }
  }
  return FromGrpc(status);
}

}  // namespace dtmd::client::internal
