// Mode: what one transaction type (saga, tcc, msg, xa, workflow) decides,
// as pure functions of its records and the time. The generic
// TransactionRunner (server/transaction_runner.h) owns every effect: store
// writes, branch calls, timers, waiters. A mode never does I/O, never reads
// a clock and keeps no state between calls except what it builds in its
// Plan for one runner.
//
// Modes are found by TransType in a registry (FindMode). Implementations are
// stateless singletons: thread-safe.
#ifndef DTMD_SERVER_TXN_MODE_H_
#define DTMD_SERVER_TXN_MODE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dtmd/storage/v1/records.pb.h"
#include "server/txn/outcome.h"

namespace dtmd::txn {

using ::dtmd::storage::v1::BranchRecord;
using ::dtmd::storage::v1::TransRecord;

// Branch statuses (docs/protocol.md section 2).
inline constexpr char kBranchPrepared[] = "prepared";
inline constexpr char kBranchSucceed[] = "succeed";
inline constexpr char kBranchFailed[] = "failed";
// The op of a step's forward branch in saga, msg, xa and workflow.
inline constexpr char kOpAction[] = "action";

// The call state of one branch within a runner's round (not stored): a
// branch that answered ongoing/unknown is not called again until the next
// round.
enum class CallState { kIdle, kInFlight, kDeferred };

// A command on an existing transaction, delivered to its runner: a
// client's (kSubmit, kAbort, kRegisterBranch), applied by the mode, or an
// operator's (kRetryNow, kForceStop), applied by the runner alike for every
// mode and never passed to Mode::ApplyCommand.
enum class Command { kSubmit, kAbort, kRegisterBranch, kRetryNow, kForceStop };

// Whether the runner applies `command` itself, whatever the mode.
inline bool IsOperatorCommand(Command command) {
  return command == Command::kRetryNow || command == Command::kForceStop;
}

// What a command carries besides its kind.
struct CommandArgs {
  // kRegisterBranch: the branches the request defines, in the order they
  // are added (branch_id, op, url, bin_data, status and create_time_ms set;
  // positions are assigned when they are added).
  std::vector<BranchRecord> branches;
  // kSubmit: the request's ReqExtra (a workflow ends with status,
  // rollback_reason and result).
  std::map<std::string, std::string> req_extra;
  // kAbort: the request's RollbackReason; kForceStop: the operator's reason.
  std::string rollback_reason;
};

// A call the mode wants made that is not one of the transaction's branches:
// a msg's QueryPrepared check, a workflow's resume callback. Its answer goes
// to Mode::ApplyQueryAnswer.
struct QueryCall {
  std::string url;  // never empty (an empty URL is answered by the mode).
  std::string branch_id;
  std::string op;
  std::string payload;
};

// What the mode wants done next.
struct Decision {
  // Positions of branches to call now (each in state kIdle).
  std::vector<int> calls;
  // A query to make now (only while the query's state is kIdle).
  std::optional<QueryCall> query;
  // Non-empty: move the global status here before the calls, setting
  // rollback_reason when that is non-empty.
  std::string new_status;
  std::string rollback_reason;
  // Non-zero, with no calls and nothing in flight: look again at this time
  // and keep this interval (e.g. a prepared transaction backing off); zero
  // means "after the transaction's current interval".
  int64_t wake_at_ms = 0;
  int64_t next_interval_s = 0;
};

// What a command did to the transaction.
struct CommandResult {
  absl::Status reply;    // what the client is told (before WaitResult); an
                         // error with `changed` is told after the write.
  bool changed = false;  // the record changed and must be written synced
                         // before the reply.
  bool drive = false;    // the transaction should be driven now.
  // kRegisterBranch: the branches to add after the existing ones (written
  // synced before the reply). Empty for a repeat of a registration.
  std::vector<BranchRecord> added;
};

// Per-runner planning data a mode builds once from the records (e.g. the
// saga's dependency graph), so that each decision does not rebuild it.
class Plan {
 public:
  virtual ~Plan() = default;
};

struct RetryPolicy {
  int64_t max_interval_s = 3600;  // cap on the doubled interval; <= 0: none.
};

class Mode {
 public:
  virtual ~Mode() = default;

  virtual absl::string_view trans_type() const = 0;

  // Builds the planning data for a runner that holds these records. Called
  // again whenever the branch list changes. Never null.
  virtual std::unique_ptr<Plan> MakePlan(
      const TransRecord& trans,
      const std::vector<BranchRecord>& branches) const = 0;

  // Applies a client command to an existing transaction's record (in
  // memory; status moves through MoveTo below). `branches` are the
  // transaction's branches as they are now. The runner writes a changed
  // record and any added branches synced before it replies.
  virtual CommandResult ApplyCommand(Command command, const CommandArgs& args,
                                     const std::vector<BranchRecord>& branches,
                                     TransRecord* trans,
                                     int64_t now_ms) const = 0;

  // The next step for the records as they are now. `call_state` has one
  // entry per branch; `query_state` is that of the mode's query call in this
  // round. A decision changes the status at most once; the runner applies
  // it and asks again.
  virtual Decision Next(const Plan& plan, const TransRecord& trans,
                        const std::vector<BranchRecord>& branches,
                        const std::vector<CallState>& call_state,
                        CallState query_state, int64_t now_ms,
                        const RetryPolicy& policy) const = 0;

  // Whether a move of the global status from `from` to `to` must be durable
  // (synced) before any branch call or reply that follows it: true for every
  // move that changes which branches will be called, so that a crash can
  // never run an action again after its compensation was sent.
  virtual bool MoveMustBeDurable(absl::string_view from,
                                 absl::string_view to) const = 0;

  // Whether an ABORTED answer is a failure (not unknown) for this op.
  virtual bool FailureAllowed(absl::string_view op) const = 0;

  // Applies a branch's classified answer to the records. Returns whether
  // the branch is deferred to the next round (ongoing/unknown). An answer
  // for a branch that already ended changes nothing.
  virtual bool ApplyAnswer(TransRecord* trans, BranchRecord* branch,
                           BranchOutcome outcome, absl::string_view message,
                           int64_t now_ms, const RetryPolicy& policy) const = 0;

  // Applies the classified answer to a QueryCall (status moves through
  // MoveTo; interval changes). Returns whether the query is deferred to the
  // next round (ongoing/unknown). Modes that make no queries keep the
  // default, which changes nothing.
  virtual bool ApplyQueryAnswer(TransRecord* /*trans*/,
                                BranchOutcome /*outcome*/,
                                absl::string_view /*message*/,
                                int64_t /*now_ms*/,
                                const RetryPolicy& /*policy*/) const {
    return false;
  }

  // What a WaitResult caller is told about a transaction in this state once
  // its first round is over: OK, ABORTED (failed, with the reason) or
  // FAILED_PRECONDITION (still running).
  virtual absl::Status WaitOutcome(
      const TransRecord& trans,
      const std::vector<BranchRecord>& branches) const = 0;
};

// The mode for a TransType, or nullptr if none is implemented.
const Mode* FindMode(absl::string_view trans_type);

// Adds a mode to the registry (tests register fakes). `mode` must outlive
// every FindMode caller; a mode of the same TransType is replaced. Not
// thread-safe against concurrent FindMode: call before use.
void RegisterMode(const Mode* mode);

// Moves `trans` to `status`: sets rollback_reason when `reason` is not
// empty, and finish_time_ms when the status is final.
void MoveTo(TransRecord* trans, absl::string_view status,
            absl::string_view reason, int64_t now_ms);

// What a mode's ApplyCommand answers to an operator's command, which the
// runner applies itself (a programming error if it ever gets there).
absl::Status OperatorCommandError();

// The record in `branches` with the branch_id and op of `wanted` (a
// registration's repeat), or nullptr. Linear.
const BranchRecord* FindBranch(const std::vector<BranchRecord>& branches,
                               const BranchRecord& wanted);

// Moves a prepared `trans` into `status` (submitted, or aborting for a
// mode that rolls back on Abort) for a client's command: MoveTo with
// `reason`, update time, the interval back to options.retry_interval_s and
// the next look one interval (at least 1 s) from now, so that the record
// written before the reply resumes the transaction after a restart.
void LeavePrepared(TransRecord* trans, absl::string_view status,
                   absl::string_view reason, int64_t now_ms);

// LeavePrepared to submitted, for a client's Submit.
void SubmitPrepared(TransRecord* trans, int64_t now_ms);

// Whether the transaction's TimeoutToFail (when > 0) has passed since its
// creation: now >= create + timeout, without overflow for any timeout.
bool TimedOut(const TransRecord& trans, int64_t now_ms);

// The rollback reason of a timed-out transaction, as DTM words it:
// "Timeout after N seconds".
std::string TimeoutReason(const TransRecord& trans);

// at_ms + `seconds` s (at_ms itself when seconds <= 0), saturating instead
// of overflowing: for deadlines built from client-chosen durations.
int64_t AfterSeconds(int64_t at_ms, int64_t seconds);

// The usual Mode::WaitOutcome: succeed: OK; failed: ABORTED "transaction G
// failed: <rollback reason>" (no colon without a reason); otherwise
// FAILED_PRECONDITION "transaction G is still <status> after its first
// round; ...".
absl::Status DefaultWaitOutcome(const TransRecord& trans);

// The usual Mode::MoveMustBeDurable: every move except to succeed and from
// aborting to failed. Those two only follow from branch results; lost in a
// crash, they are made again by the same (idempotent) calls after a restart.
// Every other move decides what is called next (to aborting: the rollback
// side) or what a client is told.
bool DefaultMoveMustBeDurable(absl::string_view from, absl::string_view to);

// The retry interval doubled after an unknown answer: from `current` (or
// `base` when current is 0), at least 1 s, capped at `cap` (when > 0), never
// overflowing.
int64_t DoubledInterval(int64_t current, int64_t base, int64_t cap);

// A decision to do nothing now and look again later, less often each time
// (e.g. a prepared transaction waiting for its client): after the
// transaction's interval doubled as by DoubledInterval with the policy's cap.
Decision BackOff(const TransRecord& trans, int64_t now_ms,
                 const RetryPolicy& policy);

}  // namespace dtmd::txn

#endif  // DTMD_SERVER_TXN_MODE_H_
