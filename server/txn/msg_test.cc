// MsgMode: every status and command, the QueryPrepared check, the delay and
// the one-at-a-time delivery of actions, partly through whole runs of a
// small in-test runner that answers each call from a script.
#include "server/txn/msg.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace dtmd::txn {
namespace {

using Strs = std::vector<std::string>;
using Ints = std::vector<int>;

constexpr int64_t kStartMs = 1'000'000;
constexpr BranchOutcome kOk = BranchOutcome::kSuccess;
constexpr BranchOutcome kFail = BranchOutcome::kFailure;
constexpr BranchOutcome kOngoing = BranchOutcome::kOngoing;
constexpr BranchOutcome kUnknown = BranchOutcome::kUnknown;
constexpr char kQueryUrl[] = "app:1/shop.Orders/QueryPrepared";

const MsgMode& TheMode() {
  static const MsgMode mode;
  return mode;
}

struct Msg {
  TransRecord trans;
  std::vector<BranchRecord> branches;
};

// A msg in `status` whose steps have these actions ("" = nothing to call),
// created at kStartMs with TimeoutToFail 35 s and RetryInterval 10 s.
Msg MakeMsg(const Strs& actions, absl::string_view status = "submitted",
            absl::string_view custom = "") {
  std::string steps = "[";
  for (size_t i = 0; i < actions.size(); ++i) {
    absl::StrAppend(&steps, i ? "," : "", R"({"action":")", actions[i],
                    R"("})");
  }
  steps += "]";
  auto def = ParseMsg("g", steps, Strs(actions.size()), custom, StepsLimits());
  EXPECT_TRUE(def.ok()) << def.status();
  auto branches = MsgBranches(*def, [](absl::string_view) {
    return absl::StatusOr<Strs>(Strs({"sub:1/S/A", "sub:2/S/B"}));
  });
  EXPECT_TRUE(branches.ok()) << branches.status();
  Msg msg;
  msg.branches = *branches;
  msg.trans.set_gid("g");
  msg.trans.set_trans_type("msg");
  msg.trans.set_status(std::string(status));
  msg.trans.set_customed_data(std::string(custom));
  msg.trans.set_query_prepared(kQueryUrl);
  msg.trans.set_create_time_ms(kStartMs);
  msg.trans.mutable_options()->set_timeout_to_fail_s(35);
  msg.trans.mutable_options()->set_retry_interval_s(10);
  msg.trans.set_next_cron_interval_s(10);
  return msg;
}

Msg MakeMsg(int n, absl::string_view status = "submitted",
            absl::string_view custom = "") {
  Strs actions;
  for (int i = 0; i < n; ++i) actions.push_back(absl::StrCat("h:1/S/A", i));
  return MakeMsg(actions, status, custom);
}

std::vector<CallState> Idle(const Msg& msg) {
  return std::vector<CallState>(msg.branches.size(), CallState::kIdle);
}

Decision Next(const Msg& msg, int64_t now_ms,
              CallState query_state = CallState::kIdle,
              std::optional<std::vector<CallState>> call_state = {},
              RetryPolicy policy = RetryPolicy()) {
  auto plan = TheMode().MakePlan(msg.trans, msg.branches);
  return TheMode().Next(*plan, msg.trans, msg.branches,
                        call_state ? *call_state : Idle(msg), query_state,
                        now_ms, policy);
}

bool Empty(const Decision& d) {
  return d.calls.empty() && !d.query && d.new_status.empty() &&
         d.wake_at_ms == 0 && d.next_interval_s == 0;
}

// Runs rounds the way TransactionRunner does: decide, apply a status change,
// start the calls and the query, deliver answers one at a time in call
// order (each from its script; success when the script is empty), decide
// again. A round ends when nothing is in flight and the decision is empty
// of calls; the next round starts with everything idle.
class Runner {
 public:
  explicit Runner(Msg* msg) : msg_(msg) {}

  void Script(int position, std::vector<BranchOutcome> outcomes) {
    script_[position].insert(script_[position].end(), outcomes.begin(),
                             outcomes.end());
  }
  void ScriptQuery(std::vector<BranchOutcome> outcomes) {
    Script(kQuery, std::move(outcomes));
  }

  // Returns the round's last decision (its wake time tells when to look
  // again).
  Decision RunRound(int64_t now_ms) {
    std::vector<CallState> state(msg_->branches.size(), CallState::kIdle);
    CallState query_state = CallState::kIdle;
    std::deque<int> in_flight;
    auto plan = TheMode().MakePlan(msg_->trans, msg_->branches);
    for (int guard = 0; guard < 10000; ++guard) {
      Decision d = TheMode().Next(*plan, msg_->trans, msg_->branches, state,
                                  query_state, now_ms, RetryPolicy());
      if (!d.new_status.empty()) {
        MoveTo(&msg_->trans, d.new_status, d.rollback_reason, now_ms);
        statuses.push_back(d.new_status);
        continue;
      }
      for (int position : d.calls) {
        EXPECT_EQ(state[position], CallState::kIdle) << position;
        log.push_back(absl::StrCat("a", position));
        state[position] = CallState::kInFlight;
        in_flight.push_back(position);
      }
      if (d.query) {
        EXPECT_EQ(query_state, CallState::kIdle);
        EXPECT_EQ(d.query->url, kQueryUrl);
        log.push_back("query");
        query_state = CallState::kInFlight;
        in_flight.push_back(kQuery);
      }
      max_in_flight = std::max(max_in_flight, in_flight.size());
      if (in_flight.empty()) return d;
      const int who = in_flight.front();
      in_flight.pop_front();
      BranchOutcome outcome = kOk;
      auto& queue = script_[who];
      if (!queue.empty()) {
        outcome = queue.front();
        queue.pop_front();
      }
      const std::string message = absl::StrCat(who, " said no");
      if (who == kQuery) {
        const bool deferred = TheMode().ApplyQueryAnswer(
            &msg_->trans, outcome, message, now_ms, RetryPolicy());
        query_state = deferred ? CallState::kDeferred : CallState::kIdle;
      } else {
        const bool deferred =
            TheMode().ApplyAnswer(&msg_->trans, &msg_->branches[who], outcome,
                                  message, now_ms, RetryPolicy());
        state[who] = deferred ? CallState::kDeferred : CallState::kIdle;
      }
    }
    ADD_FAILURE() << "round did not settle";
    return Decision();
  }

  // Runs rounds (one second apart from `start_ms`) until the msg is final.
  void RunToEnd(int64_t start_ms = kStartMs, int max_rounds = 20) {
    for (int round = 0; round < max_rounds; ++round) {
      RunRound(start_ms + round * 1000);
      const std::string& status = msg_->trans.status();
      if (status == "succeed" || status == "failed") return;
    }
    ADD_FAILURE() << "msg not final after " << max_rounds << " rounds";
  }

  Strs log;       // calls and queries, in the order they started.
  Strs statuses;  // status changes made by decisions.
  size_t max_in_flight = 0;

 private:
  static constexpr int kQuery = -1;
  Msg* msg_;
  std::map<int, std::deque<BranchOutcome>> script_;
};

// ----- Registry, ops --------------------------------------------------------

TEST(MsgModeTest, IsRegisteredForMsg) {
  const Mode* mode = FindMode("msg");
  ASSERT_NE(mode, nullptr);
  EXPECT_EQ(mode->trans_type(), "msg");
  EXPECT_NE(FindMode("saga"), nullptr) << "saga stays registered";
}

TEST(MsgModeTest, OnlyTheQueryPreparedCheckCanFail) {
  EXPECT_TRUE(TheMode().FailureAllowed("msg"));
  EXPECT_FALSE(TheMode().FailureAllowed("action"));
  EXPECT_FALSE(TheMode().FailureAllowed("compensate"));
}

// ----- Prepared: waiting, timeout, QueryPrepared ----------------------------

TEST(MsgModeTest, PreparedWaitsUntilTheTimeoutThenAsksQueryPrepared) {
  Msg msg = MakeMsg(2, "prepared");
  const int64_t deadline = kStartMs + 35'000;
  for (int64_t now : {kStartMs - 5000, kStartMs, deadline - 1}) {
    SCOPED_TRACE(now);
    Decision d = Next(msg, now);
    EXPECT_TRUE(d.calls.empty());
    EXPECT_FALSE(d.query);
    EXPECT_TRUE(d.new_status.empty());
    EXPECT_EQ(d.wake_at_ms, deadline);
  }
  for (int64_t now : {deadline, deadline + 1, deadline + 3'600'000}) {
    SCOPED_TRACE(now);
    Decision d = Next(msg, now);
    EXPECT_TRUE(d.calls.empty()) << "no action runs while prepared";
    EXPECT_TRUE(d.new_status.empty());
    EXPECT_EQ(d.wake_at_ms, 0);
    ASSERT_TRUE(d.query);
    EXPECT_EQ(d.query->url, kQueryUrl);
    EXPECT_EQ(d.query->branch_id, "00");
    EXPECT_EQ(d.query->op, "msg");
    EXPECT_EQ(d.query->payload, "");
  }
}

TEST(MsgModeTest, PreparedWithoutTimeoutIsCheckedAtOnce) {
  Msg msg = MakeMsg(1, "prepared");
  msg.trans.mutable_options()->set_timeout_to_fail_s(0);
  EXPECT_TRUE(Next(msg, kStartMs).query);
}

TEST(MsgModeTest, HugeTimeoutWakesAtTheLatestTimeWithoutOverflow) {
  Msg msg = MakeMsg(1, "prepared");
  msg.trans.mutable_options()->set_timeout_to_fail_s(
      std::numeric_limits<int64_t>::max());
  Decision d = Next(msg, kStartMs + 1'000'000'000);
  EXPECT_FALSE(d.query);
  EXPECT_EQ(d.wake_at_ms, std::numeric_limits<int64_t>::max());
}

TEST(MsgModeTest, PreparedPastTimeoutWithoutQueryUrlIsSubmitted) {
  Msg msg = MakeMsg(1, "prepared");
  msg.trans.clear_query_prepared();
  EXPECT_EQ(Next(msg, kStartMs + 34'999).wake_at_ms, kStartMs + 35'000);
  Decision d = Next(msg, kStartMs + 35'000);
  EXPECT_EQ(d.new_status, "submitted");
  EXPECT_FALSE(d.query);
  EXPECT_TRUE(d.calls.empty()) << "calls follow once the move is made";
  EXPECT_TRUE(TheMode().MoveMustBeDurable("prepared", "submitted"));
}

TEST(MsgModeTest, QueryInFlightOrDeferredIsNotAskedAgain) {
  Msg msg = MakeMsg(1, "prepared");
  const int64_t late = kStartMs + 40'000;
  EXPECT_TRUE(Empty(Next(msg, late, CallState::kInFlight)));
  // Deferred: nothing now, look again after the current interval.
  EXPECT_TRUE(Empty(Next(msg, late, CallState::kDeferred)));
  EXPECT_TRUE(Next(msg, late, CallState::kIdle).query);
}

TEST(MsgModeTest, QueryAnswersOfEachKind) {
  struct Case {
    BranchOutcome outcome;
    bool deferred;
    std::string status;
    std::string reason;
    int64_t interval_s;  // from 40 s, with a base of 10 s.
  };
  const std::vector<Case> cases = {
      {kOk, false, "submitted", "", 10},
      {kFail, false, "failed", "not committed", 40},
      {kOngoing, true, "prepared", "", 10},  // DTM's cronReset
      {kUnknown, true, "prepared", "", 80},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(OutcomeName(c.outcome));
    Msg msg = MakeMsg(1, "prepared");
    msg.trans.set_next_cron_interval_s(40);
    const int64_t now = kStartMs + 40'000;
    EXPECT_EQ(TheMode().ApplyQueryAnswer(&msg.trans, c.outcome, "not committed",
                                         now, RetryPolicy()),
              c.deferred);
    EXPECT_EQ(msg.trans.status(), c.status);
    EXPECT_EQ(msg.trans.rollback_reason(), c.reason);
    EXPECT_EQ(msg.trans.next_cron_interval_s(), c.interval_s);
    EXPECT_EQ(msg.trans.finish_time_ms(), c.status == "failed" ? now : 0);
    EXPECT_EQ(msg.branches[0].status(), "prepared") << "no branch is touched";
  }
}

TEST(MsgModeTest, UnknownQueryAnswerBacksOffUpToTheCap) {
  Msg msg = MakeMsg(1, "prepared");
  RetryPolicy policy;
  policy.max_interval_s = 60;
  std::vector<int64_t> intervals;
  for (int i = 0; i < 4; ++i) {
    TheMode().ApplyQueryAnswer(&msg.trans, kUnknown, "", kStartMs, policy);
    intervals.push_back(msg.trans.next_cron_interval_s());
  }
  EXPECT_EQ(intervals, std::vector<int64_t>({20, 40, 60, 60}));
}

TEST(MsgModeTest, LateQueryAnswerAfterSubmitOrAbortIsIgnored) {
  for (const char* status : {"submitted", "failed", "succeed"}) {
    for (BranchOutcome outcome : {kOk, kFail, kOngoing, kUnknown}) {
      SCOPED_TRACE(absl::StrCat(status, " ", OutcomeName(outcome)));
      Msg msg = MakeMsg(1, status);
      msg.trans.set_next_cron_interval_s(40);
      EXPECT_FALSE(TheMode().ApplyQueryAnswer(&msg.trans, outcome, "late",
                                              kStartMs, RetryPolicy()));
      EXPECT_EQ(msg.trans.status(), status);
      EXPECT_EQ(msg.trans.rollback_reason(), "");
      EXPECT_EQ(msg.trans.next_cron_interval_s(), 40);
    }
  }
}

TEST(MsgRunTest, TimedOutPreparedMsgIsCheckedThenDelivered) {
  Msg msg = MakeMsg(2, "prepared");
  Runner runner(&msg);
  runner.ScriptQuery({kOngoing, kUnknown});
  Decision d = runner.RunRound(kStartMs + 1000);
  EXPECT_EQ(d.wake_at_ms, kStartMs + 35'000);
  EXPECT_TRUE(runner.log.empty());
  runner.RunToEnd(kStartMs + 35'000);
  EXPECT_EQ(runner.log, Strs({"query", "query", "query", "a0", "a1"}));
  EXPECT_EQ(runner.statuses, Strs({"succeed"}))
      << "submitted came from the query's answer";
  EXPECT_EQ(msg.trans.status(), "succeed");
}

TEST(MsgRunTest, TimedOutPreparedMsgThatDidNotCommitFailsWithoutCalls) {
  Msg msg = MakeMsg(2, "prepared");
  Runner runner(&msg);
  runner.ScriptQuery({kFail});
  runner.RunToEnd(kStartMs + 35'000);
  EXPECT_EQ(runner.log, Strs({"query"}));
  EXPECT_EQ(msg.trans.status(), "failed");
  EXPECT_EQ(msg.trans.rollback_reason(), "-1 said no");
  for (const BranchRecord& b : msg.branches) EXPECT_EQ(b.status(), "prepared");
}

// ----- Submitted: delay, order, one at a time -------------------------------

TEST(MsgModeTest, DelayHoldsTheFirstCallUntilCreationPlusDelay) {
  Msg msg = MakeMsg(2, "submitted", R"({"delay":30})");
  const int64_t start = kStartMs + 30'000;
  for (int64_t now : {kStartMs, start - 1}) {
    Decision d = Next(msg, now);
    EXPECT_TRUE(d.calls.empty()) << now;
    EXPECT_EQ(d.wake_at_ms, start) << now;
  }
  EXPECT_EQ(Next(msg, start).calls, Ints({0}));
  EXPECT_EQ(Next(msg, start + 1).calls, Ints({0}));
}

TEST(MsgModeTest, NoDelayZeroDelayOrCorruptCustomedDataCallsAtOnce) {
  for (const char* custom : {"", "{}", R"({"delay":0})", R"({"delay":null})"}) {
    Msg msg = MakeMsg(1, "submitted", custom);
    EXPECT_EQ(Next(msg, kStartMs).calls, Ints({0})) << custom;
  }
  Msg msg = MakeMsg(1);
  for (const char* corrupt : {"{", R"({"delay":-5})", R"({"delay":"30"})"}) {
    msg.trans.set_customed_data(corrupt);
    EXPECT_EQ(Next(msg, kStartMs).calls, Ints({0})) << corrupt;
  }
}

TEST(MsgModeTest, CallsOnlyTheFirstPreparedActionInPositionOrder) {
  Msg msg = MakeMsg(4);
  EXPECT_EQ(Next(msg, kStartMs).calls, Ints({0}));
  msg.branches[0].set_status("succeed");
  EXPECT_EQ(Next(msg, kStartMs).calls, Ints({1}));
  msg.branches[2].set_status("succeed");  // out of order: still 1 first
  EXPECT_EQ(Next(msg, kStartMs).calls, Ints({1}));
  msg.branches[1].set_status("succeed");
  EXPECT_EQ(Next(msg, kStartMs).calls, Ints({3}));
}

TEST(MsgModeTest, InFlightOrDeferredActionBlocksTheOnesAfterIt) {
  Msg msg = MakeMsg(3);
  msg.branches[0].set_status("succeed");
  for (CallState state : {CallState::kInFlight, CallState::kDeferred}) {
    std::vector<CallState> call_state = Idle(msg);
    call_state[1] = state;
    Decision d = Next(msg, kStartMs, CallState::kIdle, call_state);
    EXPECT_TRUE(Empty(d));
  }
}

TEST(MsgModeTest, AllActionsDoneOrNoneAtAllSucceeds) {
  Msg msg = MakeMsg(2);
  for (BranchRecord& b : msg.branches) b.set_status("succeed");
  Decision d = Next(msg, kStartMs);
  EXPECT_EQ(d.new_status, "succeed");
  EXPECT_TRUE(d.calls.empty());
  EXPECT_EQ(Next(MakeMsg(0), kStartMs).new_status, "succeed");
  EXPECT_EQ(Next(MakeMsg(Strs({"", ""})), kStartMs).new_status, "succeed");
  EXPECT_FALSE(TheMode().MoveMustBeDurable("submitted", "succeed"));
}

TEST(MsgModeTest, SubmittedIgnoresTheQueryAndTheTimeout) {
  Msg msg = MakeMsg(1);
  Decision d = Next(msg, kStartMs + 3'600'000, CallState::kDeferred);
  EXPECT_EQ(d.calls, Ints({0}));
  EXPECT_FALSE(d.query);
  EXPECT_TRUE(d.new_status.empty());
}

TEST(MsgModeTest, FinalStatusesDecideNothing) {
  for (const char* status : {"succeed", "failed", "aborting"}) {
    Msg msg = MakeMsg(2, status);
    EXPECT_TRUE(Empty(Next(msg, kStartMs + 3'600'000))) << status;
  }
}

TEST(MsgRunTest, ActionsRunOneAtATimeInOrderSkippingEmptyUrls) {
  Msg msg = MakeMsg(Strs({"h:1/S/A", "", "topic://t", "h:1/S/D"}));
  ASSERT_EQ(msg.branches.size(), 5u);  // the topic has two subscribers
  Runner runner(&msg);
  runner.RunToEnd();
  EXPECT_EQ(runner.log, Strs({"a0", "a2", "a3", "a4"}));
  EXPECT_EQ(runner.max_in_flight, 1u);
  EXPECT_EQ(runner.statuses, Strs({"succeed"}));
  for (const BranchRecord& b : msg.branches) EXPECT_EQ(b.status(), "succeed");
}

TEST(MsgRunTest, DeferredActionWaitsForTheNextRoundAndNeverFailsTheMsg) {
  Msg msg = MakeMsg(3);
  Runner runner(&msg);
  runner.Script(1, {kOngoing, kFail, kUnknown});
  runner.RunRound(kStartMs);
  EXPECT_EQ(runner.log, Strs({"a0", "a1"})) << "a2 waits for a1";
  runner.RunRound(kStartMs + 1000);
  runner.RunRound(kStartMs + 2000);
  EXPECT_EQ(runner.log, Strs({"a0", "a1", "a1", "a1"}));
  EXPECT_EQ(msg.trans.status(), "submitted");
  runner.RunToEnd(kStartMs + 3000);
  EXPECT_EQ(runner.log, Strs({"a0", "a1", "a1", "a1", "a1", "a2"}));
  EXPECT_EQ(msg.trans.status(), "succeed");
  EXPECT_EQ(msg.branches[1].last_error(), "1 said no");
}

TEST(MsgRunTest, ThousandStepsRunToTheEnd) {
  Msg msg = MakeMsg(1000);
  Runner runner(&msg);
  runner.RunToEnd();
  EXPECT_EQ(runner.log.size(), 1000u);
  EXPECT_EQ(msg.trans.status(), "succeed");
}

// ----- ApplyAnswer ----------------------------------------------------------

TEST(MsgModeTest, ActionAnswersOfEachKind) {
  struct Case {
    BranchOutcome outcome;
    bool deferred;
    std::string branch_status;
    std::string last_error;
    int64_t interval_s;  // from 40 s, with a base of 10 s.
  };
  const std::vector<Case> cases = {
      {kOk, false, "succeed", "", 10},
      {kOngoing, true, "prepared", "busy", 40},
      {kUnknown, true, "prepared", "busy", 80},
      {kFail, true, "prepared", "busy", 80},  // counts as unknown
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(OutcomeName(c.outcome));
    Msg msg = MakeMsg(2);
    msg.trans.set_next_cron_interval_s(40);
    BranchRecord& b = msg.branches[0];
    EXPECT_EQ(TheMode().ApplyAnswer(&msg.trans, &b, c.outcome, "busy",
                                    kStartMs + 7, RetryPolicy()),
              c.deferred);
    EXPECT_EQ(b.status(), c.branch_status);
    EXPECT_EQ(b.last_error(), c.last_error);
    EXPECT_EQ(b.finish_time_ms(), c.outcome == kOk ? kStartMs + 7 : 0);
    EXPECT_EQ(msg.trans.next_cron_interval_s(), c.interval_s);
    EXPECT_EQ(msg.trans.status(), "submitted");
    EXPECT_EQ(msg.trans.rollback_reason(), "");
  }
}

TEST(MsgModeTest, UnknownActionAnswerBacksOffFromTheBaseUpToTheCap) {
  Msg msg = MakeMsg(1);
  msg.trans.set_next_cron_interval_s(0);
  RetryPolicy policy;
  policy.max_interval_s = 50;
  std::vector<int64_t> intervals;
  for (int i = 0; i < 4; ++i) {
    TheMode().ApplyAnswer(&msg.trans, &msg.branches[0], kUnknown, "", kStartMs,
                          policy);
    intervals.push_back(msg.trans.next_cron_interval_s());
  }
  EXPECT_EQ(intervals, std::vector<int64_t>({20, 40, 50, 50}));
}

TEST(MsgModeTest, LateAnswerForAFinishedBranchChangesNothing) {
  Msg msg = MakeMsg(1);
  msg.branches[0].set_status("succeed");
  msg.branches[0].set_finish_time_ms(5);
  msg.trans.set_next_cron_interval_s(40);
  for (BranchOutcome outcome : {kOk, kFail, kOngoing, kUnknown}) {
    EXPECT_FALSE(TheMode().ApplyAnswer(&msg.trans, &msg.branches[0], outcome,
                                       "late", kStartMs, RetryPolicy()));
    EXPECT_EQ(msg.branches[0].status(), "succeed");
    EXPECT_EQ(msg.branches[0].finish_time_ms(), 5);
    EXPECT_EQ(msg.branches[0].last_error(), "");
    EXPECT_EQ(msg.trans.next_cron_interval_s(), 40);
  }
}

// ----- Commands -------------------------------------------------------------

TEST(MsgModeTest, EveryStatusAndCommand) {
  struct Case {
    std::string status;
    Command command;
    absl::StatusCode code;
    bool changed;
    bool drive;
    std::string new_status;
    std::string message;  // the reply's, when not OK
  };
  const auto kOkCode = absl::StatusCode::kOk;
  const auto kAborted = absl::StatusCode::kAborted;
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  const std::string kNoRegister =
      "TransType: msg transactions take no RegisterBranch (their branches are "
      "the steps given at Prepare or Submit)";
  const std::vector<Case> cases = {
      {"prepared", Command::kSubmit, kOkCode, true, true, "submitted", ""},
      {"submitted", Command::kSubmit, kOkCode, false, true, "submitted", ""},
      {"succeed", Command::kSubmit, kAborted, false, false, "succeed",
       "transaction g is already succeed"},
      {"failed", Command::kSubmit, kAborted, false, false, "failed",
       "transaction g is already failed"},
      {"aborting", Command::kSubmit, kAborted, false, false, "aborting",
       "transaction g is already aborting"},
      {"prepared", Command::kAbort, kOkCode, true, false, "failed", ""},
      {"submitted", Command::kAbort, kAborted, false, false, "submitted",
       "trans type 'msg' current status 'submitted', cannot abort"},
      {"succeed", Command::kAbort, kAborted, false, false, "succeed",
       "trans type 'msg' current status 'succeed', cannot abort"},
      {"failed", Command::kAbort, kAborted, false, false, "failed",
       "trans type 'msg' current status 'failed', cannot abort"},
      {"aborting", Command::kAbort, kAborted, false, false, "aborting",
       "trans type 'msg' current status 'aborting', cannot abort"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(
        absl::StrCat(c.status, " command ", static_cast<int>(c.command)));
    Msg msg = MakeMsg(1, c.status);
    CommandResult r = TheMode().ApplyCommand(c.command, {}, msg.branches,
                                             &msg.trans, kStartMs + 1000);
    EXPECT_EQ(r.reply.code(), c.code) << r.reply;
    EXPECT_EQ(r.reply.message(), c.message);
    EXPECT_EQ(r.changed, c.changed);
    EXPECT_EQ(r.drive, c.drive);
    EXPECT_TRUE(r.added.empty());
    EXPECT_EQ(msg.trans.status(), c.new_status);
  }
  for (const char* status :
       {"prepared", "submitted", "aborting", "succeed", "failed"}) {
    SCOPED_TRACE(status);
    Msg msg = MakeMsg(1, status);
    CommandArgs args;
    args.branches.push_back(msg.branches[0]);
    CommandResult r = TheMode().ApplyCommand(
        Command::kRegisterBranch, args, msg.branches, &msg.trans, kStartMs);
    EXPECT_EQ(r.reply, absl::Status(kInvalid, kNoRegister));
    EXPECT_FALSE(r.changed);
    EXPECT_FALSE(r.drive);
    EXPECT_TRUE(r.added.empty());
    EXPECT_EQ(msg.trans.status(), status);
  }
}

TEST(MsgModeTest, SubmitResetsTheIntervalAndSchedulesTheNextLook) {
  Msg msg = MakeMsg(1, "prepared");
  msg.trans.set_next_cron_interval_s(160);
  CommandResult r = TheMode().ApplyCommand(Command::kSubmit, {}, msg.branches,
                                           &msg.trans, kStartMs + 2000);
  ASSERT_TRUE(r.reply.ok());
  EXPECT_EQ(msg.trans.next_cron_interval_s(), 10);
  EXPECT_EQ(msg.trans.next_cron_time_ms(), kStartMs + 12'000);
  EXPECT_EQ(msg.trans.update_time_ms(), kStartMs + 2000);
  EXPECT_EQ(msg.trans.finish_time_ms(), 0);
}

TEST(MsgModeTest, SubmitOfAPreparedMsgPastItsTimeoutIsAccepted) {
  for (int64_t late : {int64_t{35'000}, int64_t{3'600'000}}) {
    Msg msg = MakeMsg(1, "prepared");
    CommandResult r = TheMode().ApplyCommand(Command::kSubmit, {}, msg.branches,
                                             &msg.trans, kStartMs + late);
    EXPECT_TRUE(r.reply.ok()) << r.reply;
    EXPECT_TRUE(r.changed);
    EXPECT_TRUE(r.drive);
    EXPECT_EQ(msg.trans.status(), "submitted");
    EXPECT_EQ(Next(msg, kStartMs + late).calls, Ints({0}));
  }
}

TEST(MsgModeTest, AbortFailsAPreparedMsgWithTheGivenReason) {
  Msg msg = MakeMsg(1, "prepared");
  CommandArgs args;
  args.rollback_reason = "user cancelled";
  CommandResult r = TheMode().ApplyCommand(Command::kAbort, args, msg.branches,
                                           &msg.trans, kStartMs + 3000);
  EXPECT_TRUE(r.reply.ok());
  EXPECT_EQ(msg.trans.status(), "failed");
  EXPECT_EQ(msg.trans.rollback_reason(), "user cancelled");
  EXPECT_EQ(msg.trans.finish_time_ms(), kStartMs + 3000);
  EXPECT_TRUE(TheMode().MoveMustBeDurable("prepared", "failed"));
  EXPECT_TRUE(Empty(Next(msg, kStartMs + 3000)));
}

// ----- WaitOutcome ----------------------------------------------------------

TEST(MsgModeTest, WaitOutcomeOfEachStatus) {
  Msg msg = MakeMsg(1, "succeed");
  EXPECT_TRUE(TheMode().WaitOutcome(msg.trans, msg.branches).ok());
  msg.trans.set_status("failed");
  msg.trans.set_rollback_reason("not committed");
  EXPECT_EQ(TheMode().WaitOutcome(msg.trans, msg.branches),
            absl::AbortedError("transaction g failed: not committed"));
  for (const char* status : {"prepared", "submitted"}) {
    msg.trans.set_status(status);
    EXPECT_EQ(TheMode().WaitOutcome(msg.trans, msg.branches).code(),
              absl::StatusCode::kFailedPrecondition)
        << status;
  }
}

}  // namespace
}  // namespace dtmd::txn
