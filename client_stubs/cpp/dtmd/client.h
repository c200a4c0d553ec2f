// dtmd's C++ client: a Saga builder over the generated dtmgimp::Dtm stub.
// The other modes have helpers beside it: tcc.h (TccGlobalTransaction), msg.h
// (Msg and topics), workflow.h (WorkflowClient).
//
// It speaks DTM's gRPC protocol (docs/protocol.md), so it works against dtmd
// and against DTM itself. The builder only assembles a dtmgimp::DtmRequest and
// makes one unary call; it keeps no connection state of its own and never
// retries: a failed Submit may be repeated with the same gid (a Submit of a
// gid that is already submitted is accepted by the coordinator).
//
//   dtmd::client::Saga saga(stub.get(), gid);
//   saga.Add("localhost:36791/busi.Busi/TransOut",
//            "localhost:36791/busi.Busi/TransOutRevert", payload)
//       .Add(...)
//       .SetWaitResult(true);
//   grpc::Status status = saga.Submit();
//
// Errors are grpc::Status values; the coordinator answers ABORTED for a
// transaction that failed (WaitResult) or a request its status forbids,
// FAILED_PRECONDITION for a WaitResult transaction still running when the wait
// ended, INVALID_ARGUMENT for a malformed request.
#ifndef DTMD_CLIENT_STUBS_CPP_DTMD_CLIENT_H_
#define DTMD_CLIENT_STUBS_CPP_DTMD_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dtmd/options.h"
#include "dtmgimp.grpc.pb.h"
#include "dtmgimp.pb.h"

namespace dtmd::client {

// Asks the coordinator for a fresh gid. On success stores it in *gid; on
// failure returns the RPC's status and leaves *gid untouched. `stub` is not
// owned and must be non-null.
grpc::Status NewGid(dtmgimp::Dtm::StubInterface* stub, std::string* gid,
                    std::chrono::milliseconds timeout = kDefaultCallTimeout);

// Builds and submits one saga.
//
// Steps run in the order they were added (or per AddBranchOrder when
// EnableConcurrent is set); each step has an action URL, a compensation URL
// (either may be empty: "nothing to call") and the payload bytes sent as the
// body of both calls. URLs have the form "host:port/package.Service/Method".
//
// The stub is not owned and must outlive the Saga. A Saga is not thread-safe;
// use one per thread (the stub itself may be shared).
class Saga {
 public:
  Saga(dtmgimp::Dtm::StubInterface* stub, std::string gid);

  // Appends a step. Step indices (for AddBranchOrder) are 0-based in the order
  // of Add calls.
  Saga& Add(std::string action_url, std::string compensate_url,
            std::string payload);

  // Step `step` runs only after every step in `after` succeeded. Only
  // meaningful with EnableConcurrent (DTM ignores orders otherwise). A repeated
  // call for the same step replaces its predecessors. Indices are not checked
  // here; the coordinator rejects bad ones with INVALID_ARGUMENT.
  Saga& AddBranchOrder(int step, std::vector<int> after);

  // Runs the steps concurrently, constrained only by AddBranchOrder.
  Saga& EnableConcurrent();

  // With true, Submit returns when the saga ended (OK when it succeeded,
  // ABORTED with the rollback reason when it failed) or, if it has not ended
  // after the coordinator's first round of branch calls, FAILED_PRECONDITION.
  Saga& SetWaitResult(bool wait_result);

  // Transaction options, in seconds (0 = the coordinator's default).
  Saga& SetTimeoutToFail(int64_t seconds);
  Saga& SetRetryInterval(int64_t seconds);
  Saga& SetRequestTimeout(int64_t seconds);
  // Number of retried action calls after which the saga gives up and
  // compensates (0 = no limit).
  Saga& SetRetryLimit(int64_t retry_limit);

  // Metadata the coordinator adds to every branch call of this saga.
  Saga& AddBranchHeader(std::string key, std::string value);

  // Client-side deadline of the Submit and Prepare RPCs (default 30 s). With
  // WaitResult it must cover the coordinator's wait (RequestTimeout + 2 s per
  // round in DTM).
  Saga& SetCallTimeout(std::chrono::milliseconds timeout);

  // The request that Submit and Prepare send: TransType "saga", Steps as a
  // JSON array of {"action","compensate"} objects, BinPayloads in step order,
  // CustomedData {"orders":{...},"concurrent":...} when concurrency or orders
  // were set, else empty.
  dtmgimp::DtmRequest BuildRequest() const;

  // Sends the saga with the Submit RPC; the coordinator starts running it.
  grpc::Status Submit();

  // Stores the saga as prepared with the Prepare RPC, without running it; a
  // later Submit of the same gid runs the steps stored here.
  grpc::Status Prepare();

  const std::string& gid() const { return gid_; }

 private:
  struct Step {
    std::string action;
    std::string compensate;
    std::string payload;
  };

  dtmgimp::Dtm::StubInterface* stub_;  // Not owned.
  std::string gid_;
  std::vector<Step> steps_;
  std::map<int, std::vector<int>> orders_;
  bool concurrent_ = false;
  TransOptions options_;
};

}  // namespace dtmd::client

#endif  // DTMD_CLIENT_STUBS_CPP_DTMD_CLIENT_H_
