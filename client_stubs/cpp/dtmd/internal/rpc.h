// What the client helpers share: coordinator calls, request skeletons, branch
// ids and raw branch calls. Not part of the client's public API: only the
// helpers' .cc files and their tests include this.
#ifndef DTMD_CLIENT_STUBS_CPP_DTMD_INTERNAL_RPC_H_
#define DTMD_CLIENT_STUBS_CPP_DTMD_INTERNAL_RPC_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dtmd/options.h"
#include "dtmgimp.grpc.pb.h"
#include "dtmgimp.pb.h"

namespace dtmd::client::internal {

// The branch id of msg's QueryPrepared check and its op (DTM's MsgDoBranch0
// and MsgDoOp).
inline constexpr char kQueryPreparedBranchId[] = "00";
inline constexpr char kQueryPreparedOp[] = "msg";

// gRPC and absl share the canonical codes.
absl::Status FromGrpc(const grpc::Status& status);

// One unary Dtm RPC with a deadline of `timeout` from now.
template <typename Request, typename Reply>
grpc::Status CallDtm(dtmgimp::Dtm::StubInterface* stub,
                     grpc::Status (dtmgimp::Dtm::StubInterface::*method)(
                         grpc::ClientContext*, const Request&, Reply*),
                     const Request& request, Reply* reply,
                     std::chrono::milliseconds timeout) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  return (stub->*method)(&context, request, reply);
}

// The same for the RPCs whose reply is Empty, as an absl::Status.
template <typename Request>
absl::Status CallDtm(dtmgimp::Dtm::StubInterface* stub,
                     grpc::Status (dtmgimp::Dtm::StubInterface::*method)(
                         grpc::ClientContext*, const Request&,
                         google::protobuf::Empty*),
                     const Request& request,
                     std::chrono::milliseconds timeout) {
  google::protobuf::Empty reply;
  return FromGrpc(CallDtm(stub, method, request, &reply, timeout));
}

// Copies the transaction options into `proto`.
void FillTransOptions(const TransOptions& options,
                      dtmgimp::DtmTransOptions* proto);

// A request with gid, trans type and options, and Steps "null" as DTM's Go
// client sends for the modes without steps (tcc, xa, workflow).
dtmgimp::DtmRequest StepLessRequest(const std::string& gid,
                                    const std::string& trans_type,
                                    const TransOptions& options);

// Branch ids "01", "02", ... "99" in turn, as DTM's BranchIDGen makes them.
class BranchIdGen {
 public:
  // RESOURCE_EXHAUSTED after the 99th id (DTM allows no more).
  absl::StatusOr<std::string> Next();

 private:
  int last_ = 0;
};

using Metadata = std::vector<std::pair<std::string, std::string>>;

// The metadata DTM sends with a branch call: dtm-gid, dtm-trans_type,
// dtm-branch_id, dtm-op, dtm-dtm (options.dtm_address), then every entry of
// options.branch_headers.
Metadata BranchMetadata(const std::string& gid, const std::string& trans_type,
                        const std::string& branch_id, const std::string& op,
                        const TransOptions& options);

// The deadline of a branch call the client makes: RequestTimeout when set,
// else the call timeout.
std::chrono::milliseconds BranchCallTimeout(const TransOptions& options);

// Calls branch URLs ("host:port/package.Service/Method") with raw request
// bytes, as the coordinator does: a unary call of "/package.Service/Method"
// whose body is `payload` unchanged. Keeps one channel per host:port for its
// lifetime. Not thread-safe; blocks the calling thread until the answer.
class BranchCaller {
 public:
  // The branch's status; on OK, the reply body goes to *reply when reply is
  // not null. INVALID_ARGUMENT for a URL without "/" or with nothing before
  // it.
  absl::Status Call(const std::string& url, const std::string& payload,
                    const Metadata& metadata, std::chrono::milliseconds timeout,
                    std::string* reply);

 private:
  std::map<std::string, std::unique_ptr<grpc::GenericStub>> stubs_;
};

}  // namespace dtmd::client::internal

#endif  // DTMD_CLIENT_STUBS_CPP_DTMD_INTERNAL_RPC_H_
