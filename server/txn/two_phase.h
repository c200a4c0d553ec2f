// TwoPhaseMode: what TCC and XA share (docs/protocol.md section 5). The
// client runs the first phase itself (TCC's Try, XA's local prepare) and
// registers each branch it did while the transaction is prepared; dtmd runs
// the second phase: after Submit the commit op of every registered branch,
// after Abort or a TimeoutToFail the rollback op. TccMode and XaMode differ
// only in their op names and in the order of the second phase, so they are
// this one state machine built with different TwoPhaseSpecs. Pure and
// stateless: thread-safe.
#ifndef DTMD_SERVER_TXN_TWO_PHASE_H_
#define DTMD_SERVER_TXN_TWO_PHASE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/txn/mode.h"
#include "server/txn/outcome.h"

namespace dtmd::txn {

// What sets one two-phase mode apart. The views must outlive the mode
// (string literals).
struct TwoPhaseSpec {
  absl::string_view trans_type;   // "tcc", "xa"
  absl::string_view commit_op;    // run once submitted: "confirm", "commit"
  absl::string_view rollback_op;  // run once aborting: "cancel", "rollback"
  // Whether the second phase runs from the last registered branch to the
  // first (TCC) instead of in registration order (XA).
  bool reverse_order = false;
};

// The shared state machine. Every registration adds one branch record per
// op (rollback op first, then commit op) with the same branch_id; the
// branches of the op that is not running are never called.
//  - RegisterBranch: only while prepared (ABORTED otherwise). A branch whose
//    branch_id and op exist already is a client's retry when its url and
//    bin_data are the same (nothing is added) and ALREADY_EXISTS otherwise
//    (nothing of the request is added).
//  - Submit: prepared -> submitted; a repeat while submitted is accepted and
//    drives it again; ABORTED once aborting or final. A prepared transaction
//    past its TimeoutToFail deadline moves to aborting instead (as Next
//    would have made it) and the Submit is refused.
//  - Abort: prepared -> aborting (with the request's reason, if any); a
//    repeat while aborting is accepted; ABORTED otherwise.
//  - Leaving prepared through a command resets the retry interval to
//    options.retry_interval_s: the second phase starts without the backoff
//    of the wait for the command.
//  - Next: prepared waits for a command until its deadline, then moves to
//    aborting with reason "Timeout after N seconds". submitted / aborting:
//    calls the next branch of the running op that has not succeeded, one
//    at a time, in the spec's order (DTM stops a round at the first branch
//    that does not succeed, so a later branch never runs before an earlier
//    one is done); while that branch is in flight or deferred nothing is
//    called. Once every branch of the op succeeded (an empty URL was
//    registered as succeed): succeed / failed.
//  - Answers: a second phase must eventually succeed, so no answer is a
//    failure (FailureAllowed is false for every op; a failure counts as
//    unknown). Success resets the interval, ongoing keeps it, unknown
//    doubles it (capped by the policy).
class TwoPhaseMode : public Mode {
 public:
  explicit TwoPhaseMode(const TwoPhaseSpec& spec) : spec_(spec) {}

  absl::string_view trans_type() const override { return spec_.trans_type; }
  // Two-phase modes need no planning data: returns an empty Plan.
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
  // Every move except to succeed and aborting -> failed: from prepared (it
  // decides which op runs, and a refused or accepted command follows) and
  // to aborting (rollbacks follow).
  bool MoveMustBeDurable(absl::string_view from,
                         absl::string_view to) const override;
  bool FailureAllowed(absl::string_view /*op*/) const override { return false; }
  bool ApplyAnswer(TransRecord* trans, BranchRecord* branch,
                   BranchOutcome outcome, absl::string_view message,
                   int64_t now_ms, const RetryPolicy& policy) const override;
  // succeed: OK; failed: ABORTED with the rollback reason; otherwise
  // FAILED_PRECONDITION (still running).
  absl::Status WaitOutcome(
      const TransRecord& trans,
      const std::vector<BranchRecord>& branches) const override;

  const TwoPhaseSpec& spec() const { return spec_; }

 private:
  CommandResult RegisterBranches(const CommandArgs& args,
                                 const std::vector<BranchRecord>& branches,
                                 const TransRecord& trans) const;
  // The next step of the running op: a call, a wait, or the final status.
  Decision RunPhase(absl::string_view op, absl::string_view final_status,
                    const std::vector<BranchRecord>& branches,
                    const std::vector<CallState>& call_state) const;

  const TwoPhaseSpec spec_;
};

}  // namespace dtmd::txn

#endif  // DTMD_SERVER_TXN_TWO_PHASE_H_
