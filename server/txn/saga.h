// The SAGA state machine: pure functions of (transaction record, branch
// records, per-branch call state, now) -> what to do next. No I/O, no
// threads, no clock reads. Thread-compatible.
//
// Branch layout: a saga with N steps has 2N branches; position 2i is step i's
// compensate (branch_id = "%02d" of i+1, op "compensate"), position 2i+1 its
// action (same branch_id, op "action"). This matches DTM.
#ifndef DTMD_SERVER_TXN_SAGA_H_
#define DTMD_SERVER_TXN_SAGA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dtmd/storage/v1/records.pb.h"
#include "server/txn/mode.h"
#include "server/txn/outcome.h"
#include "server/txn/steps_reader.h"

namespace dtmd::txn {

using ::dtmd::storage::v1::BranchRecord;
using ::dtmd::storage::v1::TransRecord;

inline constexpr char kOpCompensate[] = "compensate";

// Limits applied while parsing a saga request. Steps and CustomedData are
// read as event streams (json_reader.h) that stop at the first limit crossed,
// so a request over a limit costs no more memory than one at it.
struct SagaLimits : StepsLimits {
  // Entries in all of CustomedData.orders' lists together, duplicates
  // included (each costs work whether or not it is a duplicate).
  int max_order_edges = 10000;
};

// A parsed, validated saga definition.
struct SagaDefinition {
  std::vector<BranchRecord> branches;  // 2 per step, positions set.
  bool concurrent = false;
  // orders[i]: steps that must succeed before step i starts, each listed
  // once, in order of first mention; never i itself; acyclic. Empty when
  // sequential; otherwise size == number of steps.
  std::vector<std::vector<int>> orders;
};

// Parses Steps (a JSON array of objects with string "action" and
// "compensate"; a missing, null or empty URL means nothing to call; other keys
// are ignored; an empty or "null" Steps means zero steps), the payloads
// (payloads[i] is the bin_data of both of step i's branches; their count must
// equal the step count) and CustomedData ({"orders":{"1":[0]},"concurrent":
// true}; empty means none; null values mean absent).
// A non-empty URL must pass ParseBranchUrl (branch_url.h): host:port/
// package.Service/Method with a DNS name or IP address as host and no
// control, space or non-ASCII byte.
// `orders` is checked once, here, so that planners can trust it: keys and
// entries are step indices in range; an entry listed twice for one step
// (also through two keys naming the same step, such as "2" and "02") is kept
// once; a step that depends on itself or any cycle is refused; more than
// limits.max_order_edges entries in total is refused. As in DTM, `orders` is
// used only when concurrent: a sequential saga ignores it (after checking it)
// and its SagaDefinition has empty `orders`.
// Limits: more than limits.max_steps steps, a URL longer than
// limits.max_url_bytes, or JSON nested deeper than limits.max_json_depth is
// refused, as soon as the parse reaches it.
// Branches come out "prepared", except those with an empty URL, which are
// created "succeed": there is nothing to call, so PlanSaga never calls them
// and they count as done (see PlanSaga).
// INVALID_ARGUMENT naming the field (e.g. "Steps[2].action: ...",
// "BinPayloads: got 2 payloads for 3 steps", "CustomedData.orders: cycle ...").
absl::StatusOr<SagaDefinition> ParseSaga(
    absl::string_view gid, absl::string_view steps_json,
    const std::vector<std::string>& payloads, absl::string_view customed_data,
    const SagaLimits& limits);

// The saga's step dependencies, built once per runner: sequential: each
// step after the previous one; concurrent: `orders` (duplicates and
// out-of-range entries, which only a corrupt record has, are skipped).
// Built in O(steps + edges). Immutable; thread-compatible.
class SagaGraph : public Plan {
 public:
  SagaGraph(const TransRecord& trans, int steps);

  int steps() const { return steps_; }
  const int* preds_begin(int step) const {
    return preds_.data() + pred_at_[step];
  }
  const int* preds_end(int step) const {
    return preds_.data() + pred_at_[step + 1];
  }
  const int* succs_begin(int step) const {
    return succs_.data() + succ_at_[step];
  }
  const int* succs_end(int step) const {
    return succs_.data() + succ_at_[step + 1];
  }

 private:
  int steps_;
  // The list of step s is items[at[s] .. at[s + 1]).
  std::vector<int> pred_at_;
  std::vector<int> preds_;
  std::vector<int> succ_at_;
  std::vector<int> succs_;
};

// What to do next.
struct SagaDecision {
  // Positions of branches to call now.
  std::vector<int> calls;
  // Non-empty: move the global status here (aborting, succeed or failed),
  // setting rollback_reason when non-empty. Applied before `calls`.
  std::string new_status;
  std::string rollback_reason;
};

// Decides the next step. `calls` lists only branches whose state is kIdle.
//  submitted: if TimeoutToFail > 0 and now >= create + TimeoutToFail:
//    aborting, reason "Timeout after N seconds". If any action failed:
//    aborting (the reason was set when the failure was applied). If every
//    action succeeded (empty URLs count): succeed. Otherwise call every action
//    that may run now: sequential: the first unsucceeded action, once the
//    previous ones succeeded; concurrent: every prepared action whose
//    predecessors (orders) all succeeded. (An empty-URL action is "succeed"
//    from ParseSaga on, but counts as succeeded for its successors only once
//    its own predecessors have: it "runs" in its turn.)
//  aborting: wait while any action is in flight. A step needs compensation
//    when its action failed or was eligible to run (all its predecessors
//    succeeded; this includes every action that succeeded in its turn). An
//    action that answered ongoing/unknown is eligible, so it is compensated.
//    Compensations run in reverse: sequential one at a time from the highest
//    step down; concurrent: step i's compensation may start once every step
//    that has i as predecessor and needs compensation has been compensated.
//    When every needed compensation succeeded: failed.
//  prepared / final / anything else: nothing (SagaMode handles prepared).
// A decision changes the status at most once: moving to aborting it carries
// the compensations that may start at once (none while an action is in
// flight), never "failed" directly. The caller applies the status change and
// plans again even when `calls` is empty; an empty decision (no calls, no
// status) means "wait for an in-flight call or the next round".
SagaDecision PlanSaga(const SagaGraph& graph, const TransRecord& trans,
                      const std::vector<BranchRecord>& branches,
                      const std::vector<CallState>& call_state, int64_t now_ms);
// The same with a graph built for this one call.
SagaDecision PlanSaga(const TransRecord& trans,
                      const std::vector<BranchRecord>& branches,
                      const std::vector<CallState>& call_state, int64_t now_ms);

// Applies a branch's answer to the records (pure). Sets branch status,
// finish time and last_error (the message of every non-OK answer); then on
// the transaction:
//  - success: resets next_cron_interval_s to options.retry_interval_s.
//  - failure of an action: branch failed; if the saga is submitted it moves
//    to aborting with rollback_reason = `message` (an aborting saga keeps its
//    reason). The interval is unchanged.
//  - ongoing: interval unchanged. unknown: interval doubled (from
//    options.retry_interval_s when it is 0), at least 1, capped at
//    policy.max_interval_s (no cap when that is <= 0).
//  - ongoing/unknown of an action of a submitted saga with
//    options.retry_limit > 0: if retry_count >= retry_limit the saga moves to
//    aborting with reason "RetryCount is greater than RetryLimit, RetryLimit:
//    N"; otherwise retry_count is incremented.
// `outcome` must already be classified for the branch's op (a compensate
// never gets kFailure; if it does, it counts as kUnknown). An answer for a
// branch that is already succeed/failed (a late duplicate) changes nothing
// and returns false. call_count is not touched (the caller counts calls).
// Returns whether the branch should be deferred to the next round
// (ongoing/unknown).
bool ApplySagaResult(TransRecord* trans, BranchRecord* branch,
                     BranchOutcome outcome, absl::string_view message,
                     int64_t now_ms, const RetryPolicy& policy);

// Whether a failure answer has a meaning for this saga op (action: yes).
bool SagaFailureAllowed(absl::string_view op);

// The saga as a Mode (see mode.h). Beyond PlanSaga:
//  - prepared: waits for Submit, looking again after a doubling interval
//    (capped by the policy and by the TimeoutToFail deadline); once
//    TimeoutToFail (if any) has passed since creation it fails with reason
//    "Timeout after N seconds" (nothing ran, so nothing is compensated).
//  - Submit moves prepared to submitted, accepts a repeat while submitted,
//    and is refused (ABORTED) once aborting or final; Abort is always
//    refused (a saga rolls back only through a failing action).
//  - Every move except to succeed and aborting -> failed must be durable
//    first: to aborting (compensations follow), from prepared (a refused or
//    accepted Submit follows).
class SagaMode : public Mode {
 public:
  absl::string_view trans_type() const override { return "saga"; }
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
  bool MoveMustBeDurable(absl::string_view from,
                         absl::string_view to) const override;
  bool FailureAllowed(absl::string_view op) const override {
    return SagaFailureAllowed(op);
  }
  bool ApplyAnswer(TransRecord* trans, BranchRecord* branch,
                   BranchOutcome outcome, absl::string_view message,
                   int64_t now_ms, const RetryPolicy& policy) const override {
    return ApplySagaResult(trans, branch, outcome, message, now_ms, policy);
  }
  absl::Status WaitOutcome(
      const TransRecord& trans,
      const std::vector<BranchRecord>& branches) const override;
};

}  // namespace dtmd::txn

#endif  // DTMD_SERVER_TXN_SAGA_H_
