// The two-phase message (msg) mode: parsing a msg request into its branches,
// and the msg state machine as a Mode. Pure: no I/O, no clock reads.
// Thread-compatible (MsgMode itself is stateless: thread-safe).
//
// A msg is Prepared with a QueryPrepared URL and then Submitted (or
// Submitted directly). Once submitted, its actions are called one at a time
// in position order until each has succeeded: a msg never rolls back. A
// prepared msg whose TimeoutToFail has passed asks its QueryPrepared URL
// whether the local transaction committed: yes -> submitted, no -> failed.
//
// Branch layout: one "action" branch per step, branch_id "%02d" of step+1;
// a step sent to a topic gets one branch per subscriber, "%02d-%02d" (step+1,
// subscriber+1), or plain "%02d" when the topic has a single subscriber (as
// DTM does). Positions 0..n-1 in that order.
#ifndef DTMD_SERVER_TXN_MSG_H_
#define DTMD_SERVER_TXN_MSG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dtmd/storage/v1/records.pb.h"
#include "server/txn/mode.h"
#include "server/txn/outcome.h"
#include "server/txn/steps_reader.h"

namespace dtmd::txn {

// The op and branch id of the QueryPrepared check.
inline constexpr char kOpMsg[] = "msg";
inline constexpr char kQueryBranchId[] = "00";
// A step action "topic://NAME" is sent to NAME's subscribers.
inline constexpr char kTopicPrefix[] = "topic://";
inline constexpr int kMaxTopicNameBytes = 128;
// The largest CustomedData.delay accepted (about 34 years).
inline constexpr int64_t kMaxMsgDelayS = int64_t{1} << 30;

struct MsgStep {
  std::string url;    // a branch URL; "" for nothing to call or a topic.
  std::string topic;  // "topic://NAME": NAME; otherwise "".
  std::string payload;
};

// A parsed, validated msg request, before topic expansion.
struct MsgDefinition {
  std::string gid;
  std::vector<MsgStep> steps;
  int64_t delay_s = 0;  // seconds after creation before the first call.
};

// Parses Steps (a JSON array of objects whose string "action" is a branch URL
// as ParseSaga accepts it, or "topic://NAME" with NAME 1..128 printable
// ASCII bytes 0x21..0x7e; a missing, null or empty action means nothing to
// call; other keys are ignored; an empty or "null" Steps means zero steps),
// the payloads (one per step) and CustomedData (see ParseMsgDelay).
// Limits as for a saga (steps_reader.h). INVALID_ARGUMENT naming the field
// ("Steps[1].action: ...", "BinPayloads: got 2 payloads for 3 steps",
// "CustomedData.delay: ...").
absl::StatusOr<MsgDefinition> ParseMsg(absl::string_view gid,
                                       absl::string_view steps_json,
                                       const std::vector<std::string>& payloads,
                                       absl::string_view customed_data,
                                       const StepsLimits& limits);

// CustomedData's delay in seconds: 0 when `customed_data` is empty or has no
// "delay" member (matched case-insensitively, as Go's encoding/json does for
// DTM's untagged field) or it is null; other members are ignored.
// INVALID_ARGUMENT: "CustomedData: not valid JSON", "CustomedData: not a JSON
// object", "CustomedData: nested deeper than N levels", and
// "CustomedData.delay: ..." for a delay that is not an integer in
// 0..kMaxMsgDelayS.
absl::StatusOr<int64_t> ParseMsgDelay(absl::string_view customed_data,
                                      int max_json_depth);

// Maps a topic name to its subscribers' URLs, in subscription order. An
// error (such as NOT_FOUND for an unknown topic) is passed on by MsgBranches.
using TopicResolver = std::function<absl::StatusOr<std::vector<std::string>>(
    absl::string_view topic)>;

// The msg's branch records (see the layout above): op "action", bin_data the
// step's payload, status "prepared", or "succeed" for an empty URL (nothing
// to call counts as done). Topic steps are expanded through `resolver`; a
// topic that resolves to no subscribers is NOT_FOUND "topic NAME has no
// subscribers". Subscriber URLs are taken as the resolver gives them.
absl::StatusOr<std::vector<BranchRecord>> MsgBranches(
    const MsgDefinition& def, const TopicResolver& resolver);

// The msg as a Mode (see mode.h):
//  prepared: waits for Submit until TimeoutToFail has passed since creation
//    (a TimeoutToFail of 0 gives no grace: the check is due at once), waking
//    at that deadline. Then, with no QueryPrepared URL, it moves to submitted
//    (DTM counts an empty URL as success); otherwise it asks QueryPrepared
//    (branch_id "00", op "msg", empty payload) once per round.
//  ApplyQueryAnswer (only while prepared; otherwise ignored): success ->
//    submitted, interval reset; failure -> failed with the answer's message
//    as rollback reason; ongoing -> ask next round, interval reset (DTM's
//    cronReset); unknown -> ask next round, interval doubled.
//  submitted: waits until CustomedData.delay seconds after creation (a
//    record whose CustomedData does not parse has no delay), then calls the
//    first "prepared" action in position order, one at a time (none while it
//    is in flight or deferred); when no action is left: succeed.
//  ApplyAnswer: success -> branch succeed, interval reset; failure counts as
//    unknown (an action must eventually succeed); ongoing keeps the
//    interval, unknown doubles it; both defer the branch. The message of a
//    non-OK answer is the branch's last_error. An answer for a branch that
//    ended changes nothing.
//  Submit: prepared -> submitted (whatever the time: the QueryPrepared check
//    runs only when a look finds the msg prepared past its timeout); a
//    repeat while submitted is accepted; ABORTED once final. Abort: prepared
//    -> failed (reason: the request's RollbackReason); ABORTED otherwise.
//    RegisterBranch: INVALID_ARGUMENT.
//  Moves out of prepared are durable first; submitted -> succeed is not (a
//    lost one is made again after a restart without calling anything).
class MsgMode : public Mode {
 public:
  absl::string_view trans_type() const override { return "msg"; }
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
    return op == kOpMsg;
  }
  bool ApplyAnswer(TransRecord* trans, BranchRecord* branch,
                   BranchOutcome outcome, absl::string_view message,
                   int64_t now_ms, const RetryPolicy& policy) const override;
  bool ApplyQueryAnswer(TransRecord* trans, BranchOutcome outcome,
                        absl::string_view message, int64_t now_ms,
                        const RetryPolicy& policy) const override;
  absl::Status WaitOutcome(
      const TransRecord& trans,
      const std::vector<BranchRecord>& branches) const override;
};

}  // namespace dtmd::txn

#endif  // DTMD_SERVER_TXN_MSG_H_
