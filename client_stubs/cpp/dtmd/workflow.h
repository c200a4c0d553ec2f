// Workflows (TransType "workflow") over DTM's gRPC protocol: a function whose
// steps' outcomes the coordinator records, so that a run interrupted anywhere
// (crash, timeout, unknown answer) resumes later where it stopped, replaying
// the recorded steps instead of running them again.
//
//   dtmd::client::WorkflowClient workflows(
//       stub.get(), "localhost:36792/workflow.Workflow/Execute");
//   auto handler = [&](dtmd::client::Workflow& wf)
//       -> absl::StatusOr<std::string> {
//     absl::StatusOr<std::string> order =
//         wf.Do([&] { return Reserve(wf.input()); });
//     if (!order.ok()) return order.status();
//     return wf.Do([&] { return Charge(*order); });
//   };
//   absl::StatusOr<std::string> result =
//       workflows.Execute("order", gid, input, handler);
//
// Outcomes, as in DTM: a step or handler error with code ABORTED is a
// failure: it is final and the workflow ends failed with that message as the
// rollback reason. Any other error leaves the workflow unfinished: nothing is
// recorded for that step, and the coordinator later calls the resume URL
// (op = the workflow's name, a workflow.WorkflowData payload), whose handler
// must call Execute again with the same name, gid and input (WorkflowService
// below does exactly that). Steps must be deterministic in order: the n-th Do
// of a run is branch "0n" in every run.
//
// Minimal: no phase-2 callbacks (DTM's OnCommit/OnRollback) and no recorded
// gRPC/HTTP interceptors; a step is a function returning bytes.
//
// Errors are absl::Status values with the canonical gRPC codes.
#ifndef DTMD_CLIENT_STUBS_CPP_DTMD_WORKFLOW_H_
#define DTMD_CLIENT_STUBS_CPP_DTMD_WORKFLOW_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dtmd/internal/rpc.h"
#include "dtmd/options.h"
#include "dtmgimp.grpc.pb.h"
#include "workflow.grpc.pb.h"

namespace dtmd::client {

// One run of a workflow, handed to the handler. Not thread-safe: call Do from
// the handler's thread only.
class Workflow {
 public:
  using Step = std::function<absl::StatusOr<std::string>()>;

  Workflow(const Workflow&) = delete;
  Workflow& operator=(const Workflow&) = delete;

  // Runs the next step (branch id "01", "02", ... in the order of Do calls),
  // op "action". If an earlier run recorded its outcome, returns that
  // outcome without calling `step`: the result bytes for "succeed", ABORTED
  // with the recorded message for "failed". Otherwise calls `step` and
  // records the outcome with RegisterBranch (Data {"op": "action", "status":
  // "succeed" | "failed"}, BusiPayload the result or the error message):
  // on OK and on ABORTED. Another error from `step` is returned unrecorded.
  // A RegisterBranch failure is returned (ABORTED from the coordinator, a
  // workflow that is no longer prepared, becomes FAILED_PRECONDITION so that
  // it does not read as the step's failure).
  absl::StatusOr<std::string> Do(const Step& step);

  const std::string& name() const { return name_; }
  const std::string& gid() const { return gid_; }
  // The bytes the workflow was started with.
  const std::string& input() const { return input_; }

 private:
  friend class WorkflowClient;

  struct Progress {
    std::string status;  // "succeed" or "failed"
    std::string data;    // the result, or the error message
  };

  Workflow(dtmgimp::Dtm::StubInterface* dtm, std::string name, std::string gid,
           std::string input, const TransOptions* options,
           const dtmgimp::DtmProgressesReply& reply);

  dtmgimp::Dtm::StubInterface* const dtm_;  // Not owned.
  const std::string name_;
  const std::string gid_;
  const std::string input_;
  const TransOptions* const options_;  // Not owned.
  internal::BranchIdGen branch_ids_;
  // Recorded outcomes by (branch id, op).
  std::map<std::pair<std::string, std::string>, Progress> progresses_;
};

// Starts and resumes workflows. Thread-safe (it holds no mutable state); the
// stub is not owned and must outlive it.
class WorkflowClient {
 public:
  // The workflow's result, or its error (see the file comment).
  using Handler = std::function<absl::StatusOr<std::string>(Workflow&)>;

  // `resume_url`: "host:port/workflow.Workflow/Execute" where this program
  // serves WorkflowService (or its own workflow.Workflow service), sent as
  // QueryPrepared with every PrepareWorkflow (dtmd checks it each time, also
  // when resuming, so the client a WorkflowService uses needs it too).
  // `options` apply to every workflow (TimeoutToFail plays no part: the
  // coordinator re-drives an unfinished workflow every RetryInterval).
  WorkflowClient(dtmgimp::Dtm::StubInterface* dtm, std::string resume_url,
                 TransOptions options = {});

  // Runs workflow `name` with `gid`: PrepareWorkflow (TransType "workflow",
  // Steps "null", CustomedData {"name": name, "data": base64(input)},
  // QueryPrepared the resume URL) creates it or returns its recorded
  // progress. Already succeeded: returns its stored result (handler not run).
  // Already failed: ABORTED with its rollback reason. Otherwise runs
  // `handler` and, when it returns OK or ABORTED, ends the workflow with
  // Submit (ReqExtra {"status": "succeed" | "failed", "rollback_reason":
  // message, "result": base64(result)}); returns Submit's error if it fails,
  // else the handler's outcome. Any other handler error is returned as it is,
  // with the workflow left unfinished.
  absl::StatusOr<std::string> Execute(const std::string& name,
                                      const std::string& gid,
                                      const std::string& input,
                                      const Handler& handler) const;

 private:
  dtmgimp::Dtm::StubInterface* const dtm_;  // Not owned.
  const std::string resume_url_;
  const TransOptions options_;
};

// The resume endpoint: a workflow.Workflow service whose Execute reads the
// gid (dtm-gid) and name (dtm-op) from the call's metadata and runs
// client->Execute(name, gid, WorkflowData.Data, the handler registered for
// name). Answers OK when the workflow ended (succeeded or failed: nothing more
// to do), NOT_FOUND for an unregistered name, else the error that left it
// unfinished. Register every handler before the server starts; `client` is
// not owned and must outlive the service. Execute blocks a gRPC thread for
// the whole run.
class WorkflowService final : public workflow::Workflow::Service {
 public:
  explicit WorkflowService(const WorkflowClient* client);

  // Not thread-safe: call before serving.
  void Register(std::string name, WorkflowClient::Handler handler);

  grpc::Status Execute(grpc::ServerContext* context,
                       const workflow::WorkflowData* request,
                       google::protobuf::Empty* reply) override;

 private:
  const WorkflowClient* const client_;
  std::map<std::string, WorkflowClient::Handler> handlers_;
};

}  // namespace dtmd::client

#endif  // DTMD_CLIENT_STUBS_CPP_DTMD_WORKFLOW_H_
