// The workflow mode: pure rules for a DTM workflow, which runs in the client.
// The client records each step's outcome with RegisterBranch and ends the
// workflow with Submit; the coordinator only re-drives a workflow that has
// not ended by calling the client's resume URL (QueryPrepared) with branch_id
// "00", op = the workflow's name and a workflow.WorkflowData payload, once
// each time it comes due (every RetryInterval, no backoff; TimeoutToFail
// plays no part). No I/O, no clock reads. Thread-compatible (WorkflowMode is
// stateless: thread-safe).
//
// Branches: one record per RegisterBranch, in registration order, holding
// what the client did (op "action"/"commit"/"rollback", status "succeed"/
// "failed", bin_data = the step's result or error text). The coordinator
// never calls them.
#ifndef DTMD_SERVER_TXN_WORKFLOW_H_
#define DTMD_SERVER_TXN_WORKFLOW_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dtmd/storage/v1/records.pb.h"
#include "server/txn/mode.h"
#include "server/txn/outcome.h"

namespace dtmd::txn {

inline constexpr char kTransTypeWorkflow[] = "workflow";
// The branch_id of the resume call (as in DTM).
inline constexpr char kWorkflowResumeBranchId[] = "00";
inline constexpr int kMaxWorkflowNameBytes = 256;

// A workflow's CustomedData, parsed.
struct WorkflowCustom {
  std::string name;  // non-empty, printable ASCII, at most 256 bytes.
  std::string data;  // the input bytes (decoded).
};

// Parses CustomedData `{"name":"...","data":"<base64>"}`: a JSON object with
// a non-empty string "name" of at most kMaxWorkflowNameBytes printable ASCII
// bytes (0x20..0x7e: it travels as the dtm-op metadata value) and an optional
// "data", the input bytes as Go's encoding/json writes a []byte: standard
// base64 alphabet with padding, no whitespace (null or missing: empty).
// Other members are ignored at any depth; a member given twice counts as
// its last value (as Go's decoder does). Empty CustomedData counts as `{}`.
// INVALID_ARGUMENT naming the field ("CustomedData.name: ...",
// "CustomedData.data: ...", "CustomedData: not a JSON object").
absl::StatusOr<WorkflowCustom> ParseWorkflowCustom(
    absl::string_view customed_data);

// The resume call's payload: a serialized workflow.WorkflowData (proto/
// workflow.proto) whose Data is `data`.
std::string WorkflowResumePayload(absl::string_view data);

// The workflow's resume call, built once per runner from CustomedData (a
// record whose CustomedData does not parse, which only a corrupt record has,
// gets an empty name and empty data: the client is still called).
class WorkflowPlan : public Plan {
 public:
  explicit WorkflowPlan(const TransRecord& trans);

  const std::string& name() const { return name_; }
  const std::string& payload() const { return payload_; }

 private:
  std::string name_;
  std::string payload_;
};

// The workflow as a Mode (see mode.h):
//  - RegisterBranch (only while prepared, else ABORTED): adds each record of
//    args.branches unless one with the same branch_id and op exists: the
//    same status and bin_data is a client's retry (nothing added, OK);
//    anything else is ALREADY_EXISTS and nothing is added.
//  - Submit: ReqExtra.status must be "succeed" or "failed" (else
//    INVALID_ARGUMENT). From prepared it moves there with ReqExtra's
//    rollback_reason and result (durable before the reply, no driving).
//    Final with the same status: a retry, accepted unchanged; any other
//    status: ABORTED.
//  - Abort: always ABORTED (workflows end by Submit).
//  - Next: final: nothing. Otherwise (prepared; a workflow is never
//    submitted or aborting, and a corrupt record that is gets the same):
//    call QueryPrepared when the query is idle; wait while it is in flight;
//    once it was deferred, or when there is no QueryPrepared, look again
//    after options.retry_interval_s (at least 1 s, no backoff).
//  - A resume answer of any kind changes no status (the client ends the
//    workflow by Submit), keeps the interval at options.retry_interval_s and
//    defers the query to the next round. No op's failure has a meaning.
//  - Every move is durable first: the reply to Submit acknowledges it.
class WorkflowMode : public Mode {
 public:
  absl::string_view trans_type() const override { return kTransTypeWorkflow; }
  std::unique_ptr<Plan> MakePlan(
      const TransRecord& trans,
      const std::vector<BranchRecord>& branches) const override;
  CommandResult ApplyCommand(Command command, const CommandArgs& args,
                             const std::vector<BranchRecord>& branches,
                             TransRecord* trans, int64_t now_ms) const override;
  Decision Next(const Plan& plan, const TransRecord& trans,
                const std::vector<BranchRecord>& branches,
                const std::vector<CallState>& call_state, CallState query_state,
                int64_t now_ms, const RetryPolicy& policy) const override;
  bool MoveMustBeDurable(absl::string_view /*from*/,
                         absl::string_view /*to*/) const override {
    return true;
  }
  bool FailureAllowed(absl::string_view /*op*/) const override { return false; }
  // Workflow branches are never called: an answer changes nothing.
  bool ApplyAnswer(TransRecord* /*trans*/, BranchRecord* /*branch*/,
                   BranchOutcome /*outcome*/, absl::string_view /*message*/,
                   int64_t /*now_ms*/,
                   const RetryPolicy& /*policy*/) const override {
    return false;
  }
  bool ApplyQueryAnswer(TransRecord* trans, BranchOutcome outcome,
                        absl::string_view message, int64_t now_ms,
                        const RetryPolicy& policy) const override;
  absl::Status WaitOutcome(
      const TransRecord& trans,
      const std::vector<BranchRecord>& branches) const override;
};

}  // namespace dtmd::txn

#endif  // DTMD_SERVER_TXN_WORKFLOW_H_
