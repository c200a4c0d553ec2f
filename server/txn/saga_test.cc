// PlanSaga and ApplySagaResult, driven through whole sagas by a small
// in-test runner that answers each call from a script.
#include "server/txn/saga.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace dtmd::txn {
namespace {

using Strs = std::vector<std::string>;
using Ints = std::vector<int64_t>;

constexpr int64_t kStartMs = 1'000'000;
constexpr BranchOutcome kOk = BranchOutcome::kSuccess;
constexpr BranchOutcome kFail = BranchOutcome::kFailure;
constexpr BranchOutcome kOngoing = BranchOutcome::kOngoing;
constexpr BranchOutcome kUnknown = BranchOutcome::kUnknown;

int A(int step) { return 2 * step + 1; }  // action position
int C(int step) { return 2 * step; }      // compensate position

std::string Name(int position) {
  return absl::StrCat(position % 2 ? "a" : "c", position / 2);
}

struct Saga {
  TransRecord trans;
  std::vector<BranchRecord> branches;
};

// A submitted saga of `n` steps with real URLs except the actions listed in
// `no_action` and compensations in `no_compensate`.
Saga MakeSaga(int n, absl::string_view custom = "",
              std::vector<int> no_action = {},
              std::vector<int> no_compensate = {}) {
  auto has = [](const std::vector<int>& v, int i) {
    return std::find(v.begin(), v.end(), i) != v.end();
  };
  std::string steps = "[";
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&steps, i ? "," : "", "{");
    if (!has(no_action, i)) absl::StrAppend(&steps, "\"action\":\"h:1/S/A\"");
    if (!has(no_action, i) && !has(no_compensate, i)) steps += ",";
    if (!has(no_compensate, i)) {
      absl::StrAppend(&steps, "\"compensate\":\"h:1/S/C\"");
    }
    steps += "}";
  }
  steps += "]";
  auto def =
      ParseSaga("g", steps, std::vector<std::string>(n), custom, SagaLimits());
  EXPECT_TRUE(def.ok()) << def.status();
  Saga saga;
  saga.branches = def->branches;
  saga.trans.set_gid("g");
  saga.trans.set_trans_type("saga");
  saga.trans.set_status("submitted");
  saga.trans.set_create_time_ms(kStartMs);
  saga.trans.mutable_options()->set_retry_interval_s(10);
  saga.trans.set_next_cron_interval_s(10);
  saga.trans.set_concurrent(def->concurrent);
  for (const auto& order : def->orders) {
    saga.trans.add_orders()->mutable_after()->Add(order.begin(), order.end());
  }
  return saga;
}

std::vector<std::string> Names(const std::vector<int>& positions) {
  std::vector<std::string> out;
  for (int p : positions) out.push_back(Name(p));
  return out;
}

// Runs a saga the way the engine does: plan, apply a status change, start the
// calls, deliver answers one at a time in call order (each from the script;
// success when the script is empty), plan again. A round ends when nothing is
// in flight and the plan is empty; the next round starts with every branch
// idle again.
class Runner {
 public:
  explicit Runner(Saga* saga) : saga_(saga) {}

  void Script(int position, std::vector<BranchOutcome> outcomes) {
    script_[position].insert(script_[position].end(), outcomes.begin(),
                             outcomes.end());
  }

  void RunRound(int64_t now_ms) {
    std::vector<CallState> state(saga_->branches.size(), CallState::kIdle);
    std::deque<int> in_flight;
    for (int guard = 0; guard < 10000; ++guard) {
      SagaDecision d = PlanSaga(saga_->trans, saga_->branches, state, now_ms);
      if (!d.new_status.empty()) {
        saga_->trans.set_status(d.new_status);
        if (!d.rollback_reason.empty()) {
          saga_->trans.set_rollback_reason(d.rollback_reason);
        }
        statuses.push_back(d.new_status);
      }
      for (int position : d.calls) {
        EXPECT_EQ(state[position], CallState::kIdle) << Name(position);
        log.push_back(Name(position));
        state[position] = CallState::kInFlight;
        in_flight.push_back(position);
      }
      if (in_flight.empty()) {
        if (d.new_status.empty()) return;
        continue;
      }
      const int position = in_flight.front();
      in_flight.pop_front();
      BranchOutcome outcome = kOk;
      auto& queue = script_[position];
      if (!queue.empty()) {
        outcome = queue.front();
        queue.pop_front();
      }
      const bool deferred = ApplySagaResult(
          &saga_->trans, &saga_->branches[position], outcome,
          absl::StrCat(Name(position), " said no"), now_ms, RetryPolicy());
      state[position] = deferred ? CallState::kDeferred : CallState::kIdle;
    }
    ADD_FAILURE() << "round did not settle";
  }

  // Runs rounds (one second apart) until the saga is final.
  void RunToEnd(int max_rounds = 20) {
    for (int round = 0; round < max_rounds; ++round) {
      RunRound(kStartMs + round * 1000);
      const std::string& status = saga_->trans.status();
      if (status == "succeed" || status == "failed") return;
    }
    ADD_FAILURE() << "saga not final after " << max_rounds << " rounds";
  }

  std::vector<std::string> log;       // calls, in the order they started.
  std::vector<std::string> statuses;  // status changes made by plans.

 private:
  Saga* saga_;
  std::map<int, std::deque<BranchOutcome>> script_;
};

std::vector<CallState> Idle(const Saga& saga) {
  return std::vector<CallState>(saga.branches.size(), CallState::kIdle);
}

SagaDecision Plan(const Saga& saga, int64_t now_ms = kStartMs) {
  return PlanSaga(saga.trans, saga.branches, Idle(saga), now_ms);
}

void SetStatus(Saga* saga, int position, const char* status) {
  saga->branches[position].set_status(status);
}

// ----- Sequential sagas -----------------------------------------------------

TEST(SagaRunTest, SequentialStepsRunInOrderAndSucceed) {
  Saga saga = MakeSaga(4);
  Runner runner(&saga);
  runner.RunToEnd();
  EXPECT_EQ(runner.log, Strs({"a0", "a1", "a2", "a3"}));
  EXPECT_EQ(runner.statuses, Strs({"succeed"}));
  for (int step = 0; step < 4; ++step) {
    EXPECT_EQ(saga.branches[A(step)].status(), "succeed");
    EXPECT_EQ(saga.branches[A(step)].finish_time_ms(), kStartMs);
    EXPECT_EQ(saga.branches[C(step)].status(), "prepared");
  }
}

TEST(SagaRunTest, FailureAtEachPositionCompensatesItAndEarlierStepsInReverse) {
  constexpr int kSteps = 5;
  for (int failing = 0; failing < kSteps; ++failing) {
    SCOPED_TRACE(absl::StrCat("failing step ", failing));
    Saga saga = MakeSaga(kSteps);
    Runner runner(&saga);
    runner.Script(A(failing), {kFail});
    runner.RunToEnd();
    std::vector<std::string> expected;
    for (int s = 0; s <= failing; ++s) expected.push_back(Name(A(s)));
    for (int s = failing; s >= 0; --s) expected.push_back(Name(C(s)));
    EXPECT_EQ(runner.log, expected);
    // Aborting came from applying the failure; the plans only end it.
    EXPECT_EQ(runner.statuses, Strs({"failed"}));
    EXPECT_EQ(saga.trans.status(), "failed");
    EXPECT_EQ(saga.trans.rollback_reason(), Name(A(failing)) + " said no");
    for (int s = failing + 1; s < kSteps; ++s) {
      EXPECT_EQ(saga.branches[A(s)].status(), "prepared");
      EXPECT_EQ(saga.branches[C(s)].status(), "prepared");
    }
  }
}

TEST(SagaPlanTest, CompensatesInReverseOrderWhenThirdActionFails) {
  Saga saga = MakeSaga(4);
  for (int s : {0, 1}) SetStatus(&saga, A(s), "succeed");
  SetStatus(&saga, A(2), "failed");
  SagaDecision d = Plan(saga);
  EXPECT_EQ(d.new_status, "aborting");
  EXPECT_EQ(d.rollback_reason, "");  // set when the failure was applied
  EXPECT_EQ(Names(d.calls), Strs({"c2"}));
  saga.trans.set_status("aborting");
  SetStatus(&saga, C(2), "succeed");
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"c1"}));
  SetStatus(&saga, C(1), "succeed");
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"c0"}));
  SetStatus(&saga, C(0), "succeed");
  d = Plan(saga);
  EXPECT_TRUE(d.calls.empty());
  EXPECT_EQ(d.new_status, "failed");
}

TEST(SagaPlanTest, SequentialCallsOnlyTheFirstUnsucceededAction) {
  Saga saga = MakeSaga(3);
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"a0"}));
  SetStatus(&saga, A(0), "succeed");
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"a1"}));
}

TEST(SagaPlanTest, InFlightOrDeferredActionsAreNotCalledAndBlockLaterOnes) {
  Saga saga = MakeSaga(2);
  for (CallState state : {CallState::kInFlight, CallState::kDeferred}) {
    std::vector<CallState> states = Idle(saga);
    states[A(0)] = state;
    SagaDecision d = PlanSaga(saga.trans, saga.branches, states, kStartMs);
    EXPECT_TRUE(d.calls.empty());
    EXPECT_EQ(d.new_status, "");
  }
}

TEST(SagaRunTest, DeferredBranchIsCalledAgainOnlyInTheNextRound) {
  Saga saga = MakeSaga(2);
  Runner runner(&saga);
  runner.Script(A(0), {kOngoing, kUnknown});
  runner.RunRound(kStartMs);
  EXPECT_EQ(runner.log, Strs({"a0"}));
  runner.RunRound(kStartMs + 1000);
  EXPECT_EQ(runner.log, Strs({"a0", "a0"}));
  runner.RunRound(kStartMs + 2000);
  EXPECT_EQ(runner.log, Strs({"a0", "a0", "a0", "a1"}));
  EXPECT_EQ(saga.trans.status(), "succeed");
}

TEST(SagaRunTest, EmptyUrlStepsCountAsSucceeded) {
  Saga saga = MakeSaga(4, "", /*no_action=*/{0, 2}, /*no_compensate=*/{2});
  Runner runner(&saga);
  runner.RunToEnd();
  EXPECT_EQ(runner.log, Strs({"a1", "a3"}));
  EXPECT_EQ(saga.trans.status(), "succeed");
}

TEST(SagaPlanTest, AllEmptyOrNoStepsSucceedAtOnce) {
  Saga all_empty = MakeSaga(2, "", {0, 1}, {0, 1});
  EXPECT_EQ(Plan(all_empty).new_status, "succeed");
  Saga none = MakeSaga(0);
  SagaDecision d = Plan(none);
  EXPECT_EQ(d.new_status, "succeed");
  EXPECT_TRUE(d.calls.empty());
}

TEST(SagaRunTest, EmptyUrlCompensationsAreSkipped) {
  Saga saga = MakeSaga(3, "", {}, /*no_compensate=*/{0, 2});
  Runner runner(&saga);
  runner.Script(A(2), {kFail});
  runner.RunToEnd();
  EXPECT_EQ(runner.log, Strs({"a0", "a1", "a2", "c1"}));
  EXPECT_EQ(saga.trans.status(), "failed");
}

TEST(SagaRunTest, LaterStepWithEmptyActionIsNotCompensated) {
  Saga saga = MakeSaga(3, "", /*no_action=*/{2});
  Runner runner(&saga);
  runner.Script(A(1), {kFail});
  runner.RunToEnd();
  EXPECT_EQ(runner.log, Strs({"a0", "a1", "c1", "c0"}));
  EXPECT_EQ(saga.branches[C(2)].status(), "prepared");
}

TEST(SagaPlanTest, PreparedAndFinalStatusesPlanNothing) {
  for (const char* status : {"prepared", "succeed", "failed", "", "bogus"}) {
    Saga saga = MakeSaga(2);
    saga.trans.set_status(status);
    saga.trans.mutable_options()->set_timeout_to_fail_s(1);
    SagaDecision d = Plan(saga, kStartMs + 1'000'000);
    EXPECT_TRUE(d.calls.empty()) << status;
    EXPECT_EQ(d.new_status, "") << status;
  }
}

TEST(SagaRunTest, CompensationAnsweredUnknownIsRetriedUntilItSucceeds) {
  Saga saga = MakeSaga(2);
  Runner runner(&saga);
  runner.Script(A(1), {kFail});
  runner.Script(C(1), {kUnknown, kFail, kOngoing});  // a failure is unknown
  runner.RunRound(kStartMs);
  EXPECT_EQ(runner.log, Strs({"a0", "a1", "c1"}));
  EXPECT_EQ(saga.trans.status(), "aborting");
  EXPECT_EQ(saga.branches[C(1)].status(), "prepared");
  runner.RunToEnd();
  EXPECT_EQ(runner.log, Strs({"a0", "a1", "c1", "c1", "c1", "c1", "c0"}));
  EXPECT_EQ(saga.trans.status(), "failed");
}

// ----- Timeout and RetryLimit ----------------------------------------------

TEST(SagaPlanTest, TimeoutAbortsWithReasonAndCompensatesEligibleSteps) {
  Saga saga = MakeSaga(3);
  saga.trans.mutable_options()->set_timeout_to_fail_s(5);
  SetStatus(&saga, A(0), "succeed");
  SagaDecision before = Plan(saga, kStartMs + 4999);
  EXPECT_EQ(before.new_status, "");
  EXPECT_EQ(Names(before.calls), Strs({"a1"}));
  SagaDecision d = Plan(saga, kStartMs + 5000);
  EXPECT_EQ(d.new_status, "aborting");
  EXPECT_EQ(d.rollback_reason, "Timeout after 5 seconds");
  // Step 1 was eligible (it may have been called): compensate it first.
  EXPECT_EQ(Names(d.calls), Strs({"c1"}));
}

TEST(SagaPlanTest, TimeoutWaitsForAnInFlightActionBeforeCompensating) {
  Saga saga = MakeSaga(2);
  saga.trans.mutable_options()->set_timeout_to_fail_s(5);
  std::vector<CallState> states = Idle(saga);
  states[A(0)] = CallState::kInFlight;
  SagaDecision d = PlanSaga(saga.trans, saga.branches, states, kStartMs + 6000);
  EXPECT_EQ(d.new_status, "aborting");
  EXPECT_TRUE(d.calls.empty());
}

TEST(SagaPlanTest, NoTimeoutWhenTimeoutToFailIsZero) {
  Saga saga = MakeSaga(1);
  SagaDecision d = Plan(saga, kStartMs + 100'000'000);
  EXPECT_EQ(d.new_status, "");
  EXPECT_EQ(Names(d.calls), Strs({"a0"}));
}

TEST(SagaRunTest, RetryLimitReachedAbortsWithExactReason) {
  Saga saga = MakeSaga(2);
  saga.trans.mutable_options()->set_retry_limit(2);
  Runner runner(&saga);
  runner.Script(A(0), {kOk});
  runner.Script(A(1), {kUnknown, kOngoing, kUnknown});
  runner.RunToEnd();
  EXPECT_EQ(runner.log, Strs({"a0", "a1", "a1", "a1", "c1", "c0"}));
  EXPECT_EQ(saga.trans.retry_count(), 2);
  EXPECT_EQ(saga.trans.status(), "failed");
  EXPECT_EQ(saga.trans.rollback_reason(),
            "RetryCount is greater than RetryLimit, RetryLimit: 2");
}

TEST(SagaApplyTest, RetryLimitCountsAllActionsTogether) {
  Saga saga = MakeSaga(2);
  saga.trans.mutable_options()->set_retry_limit(2);
  const RetryPolicy policy;
  ApplySagaResult(&saga.trans, &saga.branches[A(0)], kOngoing, "", 0, policy);
  ApplySagaResult(&saga.trans, &saga.branches[A(1)], kUnknown, "", 0, policy);
  EXPECT_EQ(saga.trans.retry_count(), 2);
  EXPECT_EQ(saga.trans.status(), "submitted");
  ApplySagaResult(&saga.trans, &saga.branches[A(1)], kOngoing, "", 0, policy);
  EXPECT_EQ(saga.trans.status(), "aborting");
}

TEST(SagaApplyTest, RetryLimitIgnoresCompensationsAndUnlimitedWhenZero) {
  Saga saga = MakeSaga(1);
  const RetryPolicy policy;
  for (int i = 0; i < 50; ++i) {
    ApplySagaResult(&saga.trans, &saga.branches[A(0)], kOngoing, "", 0, policy);
  }
  EXPECT_EQ(saga.trans.status(), "submitted");
  EXPECT_EQ(saga.trans.retry_count(), 0);
  saga.trans.mutable_options()->set_retry_limit(1);
  saga.trans.set_status("aborting");
  for (int i = 0; i < 3; ++i) {
    ApplySagaResult(&saga.trans, &saga.branches[C(0)], kUnknown, "", 0, policy);
    ApplySagaResult(&saga.trans, &saga.branches[A(0)], kUnknown, "", 0, policy);
  }
  EXPECT_EQ(saga.trans.retry_count(), 0);
  EXPECT_EQ(saga.trans.rollback_reason(), "");
}

TEST(SagaPlanTest, HugeTimeoutNeverOverflows) {
  Saga saga = MakeSaga(1);
  saga.trans.mutable_options()->set_timeout_to_fail_s(
      std::numeric_limits<int64_t>::max());
  EXPECT_EQ(Plan(saga, std::numeric_limits<int64_t>::max()).new_status, "");
}

// ----- ApplySagaResult
// --------------------------------------------------------

TEST(SagaApplyTest, SuccessMarksBranchAndResetsInterval) {
  Saga saga = MakeSaga(1);
  saga.trans.set_next_cron_interval_s(80);
  BranchRecord& action = saga.branches[A(0)];
  EXPECT_FALSE(ApplySagaResult(&saga.trans, &action, kOk, "", 1234, {}));
  EXPECT_EQ(action.status(), "succeed");
  EXPECT_EQ(action.finish_time_ms(), 1234);
  EXPECT_EQ(saga.trans.next_cron_interval_s(), 10);
}

TEST(SagaApplyTest, ActionFailureAbortsWithTheBranchMessage) {
  Saga saga = MakeSaga(1);
  BranchRecord& action = saga.branches[A(0)];
  EXPECT_FALSE(
      ApplySagaResult(&saga.trans, &action, kFail, "no stock", 77, {}));
  EXPECT_EQ(action.status(), "failed");
  EXPECT_EQ(action.finish_time_ms(), 77);
  EXPECT_EQ(action.last_error(), "no stock");
  EXPECT_EQ(saga.trans.status(), "aborting");
  EXPECT_EQ(saga.trans.rollback_reason(), "no stock");
  EXPECT_EQ(saga.trans.next_cron_interval_s(), 10);
}

TEST(SagaApplyTest, ActionFailureWhileAbortingKeepsTheFirstReason) {
  Saga saga = MakeSaga(2);
  saga.trans.set_status("aborting");
  saga.trans.set_rollback_reason("first");
  ApplySagaResult(&saga.trans, &saga.branches[A(1)], kFail, "second", 5, {});
  EXPECT_EQ(saga.branches[A(1)].status(), "failed");
  EXPECT_EQ(saga.trans.rollback_reason(), "first");
  EXPECT_EQ(saga.trans.status(), "aborting");
}

TEST(SagaApplyTest, ActionSuccessWhileAbortingIsRecordedAndCompensated) {
  Saga saga = MakeSaga(2, R"({"concurrent":true})");
  saga.trans.set_status("aborting");
  SetStatus(&saga, A(0), "failed");
  ApplySagaResult(&saga.trans, &saga.branches[A(1)], kOk, "", 5, {});
  EXPECT_EQ(saga.branches[A(1)].status(), "succeed");
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"c1", "c0"}));
}

TEST(SagaApplyTest, CompensationFailureCountsAsUnknown) {
  Saga saga = MakeSaga(1);
  saga.trans.set_status("aborting");
  BranchRecord& compensate = saga.branches[C(0)];
  EXPECT_TRUE(ApplySagaResult(&saga.trans, &compensate, kFail, "x", 5, {}));
  EXPECT_EQ(compensate.status(), "prepared");
  EXPECT_EQ(compensate.last_error(), "x");
  EXPECT_EQ(saga.trans.next_cron_interval_s(), 20);
}

TEST(SagaApplyTest, OngoingKeepsIntervalAndDefers) {
  Saga saga = MakeSaga(1);
  saga.trans.set_next_cron_interval_s(40);
  BranchRecord& action = saga.branches[A(0)];
  EXPECT_TRUE(ApplySagaResult(&saga.trans, &action, kOngoing, "ONGOING", 5,
                              RetryPolicy()));
  EXPECT_EQ(saga.trans.next_cron_interval_s(), 40);
  EXPECT_EQ(action.status(), "prepared");
  EXPECT_EQ(action.finish_time_ms(), 0);
  EXPECT_EQ(action.last_error(), "ONGOING");
}

TEST(SagaApplyTest, UnknownDoublesIntervalUpToTheCap) {
  Saga saga = MakeSaga(1);
  RetryPolicy policy;
  policy.max_interval_s = 100;
  std::vector<int64_t> intervals;
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(ApplySagaResult(&saga.trans, &saga.branches[A(0)], kUnknown,
                                "unavailable", 5, policy));
    intervals.push_back(saga.trans.next_cron_interval_s());
  }
  EXPECT_EQ(intervals, Ints({20, 40, 80, 100, 100}));
  ApplySagaResult(&saga.trans, &saga.branches[A(0)], kOk, "", 5, policy);
  EXPECT_EQ(saga.trans.next_cron_interval_s(), 10);
}

TEST(SagaApplyTest, UnknownStartsFromRetryIntervalAndIsAtLeastOneSecond) {
  Saga saga = MakeSaga(1);
  saga.trans.set_next_cron_interval_s(0);
  ApplySagaResult(&saga.trans, &saga.branches[A(0)], kUnknown, "", 5, {});
  EXPECT_EQ(saga.trans.next_cron_interval_s(), 20);
  saga.trans.set_next_cron_interval_s(0);
  saga.trans.mutable_options()->set_retry_interval_s(0);
  ApplySagaResult(&saga.trans, &saga.branches[A(0)], kUnknown, "", 5, {});
  EXPECT_EQ(saga.trans.next_cron_interval_s(), 1);
}

TEST(SagaApplyTest, UnknownNeverOverflowsTheInterval) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  Saga saga = MakeSaga(1);
  saga.trans.set_next_cron_interval_s(kMax / 2 + 1);
  RetryPolicy no_cap;
  no_cap.max_interval_s = 0;
  ApplySagaResult(&saga.trans, &saga.branches[A(0)], kUnknown, "", 5, no_cap);
  EXPECT_EQ(saga.trans.next_cron_interval_s(), kMax);
  ApplySagaResult(&saga.trans, &saga.branches[A(0)], kUnknown, "", 5, {});
  EXPECT_EQ(saga.trans.next_cron_interval_s(), 3600);  // the default cap
}

TEST(SagaApplyTest, LateAnswerForAFinishedBranchChangesNothing) {
  Saga saga = MakeSaga(1);
  BranchRecord& action = saga.branches[A(0)];
  ApplySagaResult(&saga.trans, &action, kOk, "", 5, {});
  saga.trans.set_next_cron_interval_s(40);
  EXPECT_FALSE(ApplySagaResult(&saga.trans, &action, kFail, "late", 9, {}));
  EXPECT_EQ(action.status(), "succeed");
  EXPECT_EQ(action.finish_time_ms(), 5);
  EXPECT_EQ(saga.trans.status(), "submitted");
  EXPECT_EQ(saga.trans.next_cron_interval_s(), 40);
}

TEST(SagaApplyTest, CompensationStoredFailedStillTakesItsAnswer) {
  // A compensation never fails; one stored "failed" (a damaged record) is
  // planned again, so its answer must count, or a round would call it
  // forever.
  Saga saga = MakeSaga(1);
  saga.trans.set_status("aborting");
  saga.branches[A(0)].set_status("failed");
  BranchRecord& compensate = saga.branches[C(0)];
  compensate.set_status("failed");
  SagaDecision d = PlanSaga(saga.trans, saga.branches, Idle(saga), 5);
  ASSERT_EQ(d.calls, std::vector<int>({C(0)}));
  EXPECT_FALSE(ApplySagaResult(&saga.trans, &compensate, kOk, "", 9, {}));
  EXPECT_EQ(compensate.status(), "succeed");
  EXPECT_EQ(PlanSaga(saga.trans, saga.branches, Idle(saga), 9).new_status,
            "failed");
}

TEST(SagaApplyTest, FailureHasAMeaningOnlyForActions) {
  EXPECT_TRUE(SagaFailureAllowed("action"));
  EXPECT_FALSE(SagaFailureAllowed("compensate"));
  EXPECT_FALSE(SagaFailureAllowed(""));
}

// ----- Concurrent sagas -----------------------------------------------------

TEST(SagaPlanTest, ConcurrentIndependentStepsStartTogether) {
  Saga saga = MakeSaga(3, R"({"concurrent":true})");
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"a0", "a1", "a2"}));
}

TEST(SagaPlanTest, ConcurrentDependentStepWaitsForAllPredecessors) {
  Saga saga = MakeSaga(3, R"({"concurrent":true,"orders":{"2":[0,1]}})");
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"a0", "a1"}));
  SetStatus(&saga, A(0), "succeed");
  std::vector<CallState> states = Idle(saga);
  states[A(1)] = CallState::kInFlight;
  EXPECT_TRUE(
      PlanSaga(saga.trans, saga.branches, states, kStartMs).calls.empty());
  SetStatus(&saga, A(1), "succeed");
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"a2"}));
}

TEST(SagaRunTest, ConcurrentDiamondRunsLevelByLevel) {
  Saga saga = MakeSaga(
      4, R"({"concurrent":true,"orders":{"1":[0],"2":[0],"3":[1,2]}})");
  Runner runner(&saga);
  runner.RunToEnd();
  EXPECT_EQ(runner.log, Strs({"a0", "a1", "a2", "a3"}));
  EXPECT_EQ(saga.trans.status(), "succeed");
}

TEST(SagaRunTest, ConcurrentCompensationsRunInReverseOfOrders) {
  Saga saga = MakeSaga(
      4, R"({"concurrent":true,"orders":{"1":[0],"2":[0],"3":[1,2]}})");
  Runner runner(&saga);
  runner.Script(A(3), {kFail});
  runner.RunToEnd();
  EXPECT_EQ(runner.log, Strs({"a0", "a1", "a2", "a3", "c3", "c2", "c1", "c0"}));
  // c1 and c2 start together once c3 is done; c0 only after both.
  Saga manual = saga;
  manual.trans.set_status("aborting");
  for (int s = 0; s < 4; ++s) SetStatus(&manual, C(s), "prepared");
  EXPECT_EQ(Names(Plan(manual).calls), Strs({"c3"}));
  SetStatus(&manual, C(3), "succeed");
  EXPECT_EQ(Names(Plan(manual).calls), Strs({"c2", "c1"}));
  SetStatus(&manual, C(2), "succeed");
  std::vector<CallState> states = Idle(manual);
  states[C(1)] = CallState::kInFlight;
  EXPECT_TRUE(
      PlanSaga(manual.trans, manual.branches, states, kStartMs).calls.empty());
  SetStatus(&manual, C(1), "succeed");
  EXPECT_EQ(Names(Plan(manual).calls), Strs({"c0"}));
}

TEST(SagaPlanTest, ConcurrentFailureWaitsForInFlightSiblingBeforeCompensating) {
  Saga saga = MakeSaga(2, R"({"concurrent":true})");
  SetStatus(&saga, A(0), "failed");
  saga.trans.set_status("aborting");
  std::vector<CallState> states = Idle(saga);
  states[A(1)] = CallState::kInFlight;
  SagaDecision d = PlanSaga(saga.trans, saga.branches, states, kStartMs);
  EXPECT_TRUE(d.calls.empty());
  EXPECT_EQ(d.new_status, "");
  // The sibling answers (here: ongoing, so it is deferred): compensate both.
  states[A(1)] = CallState::kDeferred;
  d = PlanSaga(saga.trans, saga.branches, states, kStartMs);
  EXPECT_EQ(Names(d.calls), Strs({"c1", "c0"}));
}

TEST(SagaRunTest, ConcurrentFailureWithSiblingInFlightCompensatesBoth) {
  Saga saga = MakeSaga(3, R"({"concurrent":true,"orders":{"2":[1]}})");
  Runner runner(&saga);
  runner.Script(A(0), {kFail});
  runner.RunToEnd();
  // a1 was in flight when a0 failed; its success is recorded, a2 (which
  // became eligible) never starts and is compensated with the others.
  EXPECT_EQ(runner.log, Strs({"a0", "a1", "c2", "c0", "c1"}));
  EXPECT_EQ(saga.branches[A(1)].status(), "succeed");
  EXPECT_EQ(saga.branches[A(2)].status(), "prepared");
  EXPECT_EQ(saga.trans.status(), "failed");
  EXPECT_EQ(saga.trans.rollback_reason(), "a0 said no");
}

TEST(SagaPlanTest, ConcurrentEligibleButUncalledStepIsCompensated) {
  Saga saga = MakeSaga(4, R"({"concurrent":true,"orders":{"2":[0],"3":[2]}})");
  saga.trans.set_status("aborting");
  SetStatus(&saga, A(0), "succeed");
  SetStatus(&saga, A(1), "failed");
  // Step 2 was eligible (step 0 succeeded) though never called; step 3 was
  // not (step 2 never succeeded), so it is never compensated.
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"c2", "c1"}));
  SetStatus(&saga, C(2), "succeed");
  SetStatus(&saga, C(1), "succeed");
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"c0"}));
  SetStatus(&saga, C(0), "succeed");
  EXPECT_EQ(Plan(saga).new_status, "failed");
}

TEST(SagaPlanTest, ConcurrentEmptyActionCountsOnlyAfterItsPredecessors) {
  Saga saga =
      MakeSaga(3, R"({"concurrent":true,"orders":{"1":[0],"2":[1]}})", {1});
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"a0"}));
  SetStatus(&saga, A(0), "succeed");
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"a2"}));
}

TEST(SagaRunTest, ThousandStepSagasRunToTheEnd) {
  for (absl::string_view custom : {"", R"({"concurrent":true})"}) {
    Saga saga = MakeSaga(1000, custom);
    Runner runner(&saga);
    runner.Script(A(999), {kFail});
    runner.RunToEnd();
    EXPECT_EQ(runner.log.size(), 2000u) << custom;
    EXPECT_EQ(saga.trans.status(), "failed");
  }
}

TEST(SagaPlanTest, CorruptOrdersInTheRecordAreSkippedNotFatal) {
  Saga saga = MakeSaga(3, R"({"concurrent":true})");
  saga.trans.mutable_orders(0)->add_after(7);   // out of range
  saga.trans.mutable_orders(1)->add_after(1);   // itself
  saga.trans.mutable_orders(2)->add_after(-1);  // negative
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"a0", "a1", "a2"}));
  saga.trans.clear_orders();  // fewer entries than steps: no predecessors
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"a0", "a1", "a2"}));
}

TEST(SagaPlanTest, CycleInACorruptRecordStallsOnlyTheStepsOnIt) {
  Saga saga = MakeSaga(3, R"({"concurrent":true})");
  saga.trans.mutable_orders(1)->add_after(2);
  saga.trans.mutable_orders(2)->add_after(1);
  EXPECT_EQ(Names(Plan(saga).calls), Strs({"a0"}));
}

// ----- SagaMode
// ---------------------------------------------------------------

TEST(SagaModeTest, IsRegisteredForSaga) {
  ASSERT_NE(FindMode("saga"), nullptr);
  EXPECT_EQ(FindMode("saga")->trans_type(), "saga");
  EXPECT_EQ(FindMode("nope"), nullptr);
}

TEST(SagaModeTest, PreparedSagaBacksOffUntilItsTimeout) {
  const SagaMode mode;
  Saga saga = MakeSaga(1);
  saga.trans.set_status("prepared");
  saga.trans.mutable_options()->set_retry_interval_s(10);
  saga.trans.set_next_cron_interval_s(10);
  auto plan = mode.MakePlan(saga.trans, saga.branches);
  RetryPolicy policy;
  policy.max_interval_s = 60;
  Ints intervals;
  int64_t now = kStartMs;
  for (int i = 0; i < 5; ++i) {
    Decision d = mode.Next(*plan, saga.trans, saga.branches, Idle(saga),
                           CallState::kIdle, now, policy);
    EXPECT_TRUE(d.calls.empty());
    EXPECT_TRUE(d.new_status.empty());
    EXPECT_EQ(d.wake_at_ms, now + d.next_interval_s * 1000);
    intervals.push_back(d.next_interval_s);
    saga.trans.set_next_cron_interval_s(d.next_interval_s);
    now = d.wake_at_ms;
  }
  EXPECT_EQ(intervals, Ints({20, 40, 60, 60, 60}));

  // With a TimeoutToFail, the last look is at the deadline, which fails it.
  saga.trans.mutable_options()->set_timeout_to_fail_s(50);
  saga.trans.set_next_cron_interval_s(40);
  Decision d = mode.Next(*plan, saga.trans, saga.branches, Idle(saga),
                         CallState::kIdle, kStartMs + 30'000, policy);
  EXPECT_EQ(d.wake_at_ms, kStartMs + 50'000);
  d = mode.Next(*plan, saga.trans, saga.branches, Idle(saga), CallState::kIdle,
                kStartMs + 50'000, policy);
  EXPECT_EQ(d.new_status, "failed");
  EXPECT_EQ(d.rollback_reason, "Timeout after 50 seconds");
  EXPECT_TRUE(d.calls.empty());
}

TEST(SagaModeTest, SubmitMovesPreparedAndAcceptsARepeat) {
  const SagaMode mode;
  Saga saga = MakeSaga(1);
  saga.trans.set_status("prepared");
  saga.trans.set_next_cron_interval_s(80);
  CommandResult r = mode.ApplyCommand(Command::kSubmit, {}, saga.branches,
                                      &saga.trans, kStartMs);
  EXPECT_TRUE(r.reply.ok());
  EXPECT_TRUE(r.changed);
  EXPECT_TRUE(r.drive);
  EXPECT_EQ(saga.trans.status(), "submitted");
  EXPECT_EQ(saga.trans.next_cron_interval_s(), 10) << "backoff reset";
  EXPECT_EQ(saga.trans.next_cron_time_ms(), kStartMs + 10'000);

  r = mode.ApplyCommand(Command::kSubmit, {}, saga.branches, &saga.trans,
                        kStartMs);
  EXPECT_TRUE(r.reply.ok());
  EXPECT_FALSE(r.changed);
  EXPECT_TRUE(r.drive);

  for (const char* status : {"aborting", "succeed", "failed"}) {
    saga.trans.set_status(status);
    r = mode.ApplyCommand(Command::kSubmit, {}, saga.branches, &saga.trans,
                          kStartMs);
    EXPECT_EQ(r.reply.code(), absl::StatusCode::kAborted) << status;
    EXPECT_FALSE(r.changed);
    EXPECT_FALSE(r.drive);
  }
}

TEST(SagaModeTest, SubmitAfterThePreparedTimeoutFailsItWithoutRunning) {
  const SagaMode mode;
  Saga saga = MakeSaga(1);
  saga.trans.set_status("prepared");
  saga.trans.mutable_options()->set_timeout_to_fail_s(5);
  CommandResult r = mode.ApplyCommand(Command::kSubmit, {}, saga.branches,
                                      &saga.trans, kStartMs + 5000);
  EXPECT_EQ(r.reply.code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(r.changed) << "the failure is written before the reply";
  EXPECT_FALSE(r.drive);
  EXPECT_EQ(saga.trans.status(), "failed");
  EXPECT_EQ(saga.trans.rollback_reason(), "Timeout after 5 seconds");
}

TEST(SagaModeTest, AbortIsAlwaysRefused) {
  const SagaMode mode;
  Saga saga = MakeSaga(1);
  for (const char* status : {"prepared", "submitted", "aborting", "failed"}) {
    saga.trans.set_status(status);
    CommandResult r = mode.ApplyCommand(Command::kAbort, {}, saga.branches,
                                        &saga.trans, kStartMs);
    EXPECT_EQ(r.reply.code(), absl::StatusCode::kAborted) << status;
    EXPECT_FALSE(r.changed);
    EXPECT_EQ(saga.trans.status(), status);
  }
}

TEST(SagaModeTest, EveryDecisionThatChangesTheCallsIsDurableFirst) {
  const SagaMode mode;
  EXPECT_TRUE(mode.MoveMustBeDurable("submitted", "aborting"));
  EXPECT_TRUE(mode.MoveMustBeDurable("prepared", "failed"));
  EXPECT_TRUE(mode.MoveMustBeDurable("prepared", "submitted"));
  // Lost, these are made again by the same calls after a restart.
  EXPECT_FALSE(mode.MoveMustBeDurable("submitted", "succeed"));
  EXPECT_FALSE(mode.MoveMustBeDurable("aborting", "failed"));
}

TEST(SagaModeTest, WaitOutcomeNamesTheFailingBranch) {
  const SagaMode mode;
  Saga saga = MakeSaga(2);
  saga.trans.set_status("succeed");
  EXPECT_TRUE(mode.WaitOutcome(saga.trans, saga.branches).ok());
  saga.trans.set_status("failed");
  saga.trans.set_rollback_reason("no money");
  saga.branches[A(1)].set_status("failed");
  saga.branches[A(1)].set_last_error("no money");
  absl::Status s = mode.WaitOutcome(saga.trans, saga.branches);
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(s.message(),
            "transaction g failed: no money (branch 02 action answered: no "
            "money)");
  saga.trans.set_status("aborting");
  EXPECT_EQ(mode.WaitOutcome(saga.trans, saga.branches).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(SagaGraphTest, DuplicateAndSelfEdgesOfACorruptRecordAreSkipped) {
  Saga saga = MakeSaga(3, R"({"concurrent":true})");
  saga.trans.clear_orders();
  for (int i = 0; i < 3; ++i) saga.trans.add_orders();
  for (int pred : {0, 0, 1, 7, -1})
    saga.trans.mutable_orders(1)->add_after(pred);
  for (int pred : {1, 0, 1}) saga.trans.mutable_orders(2)->add_after(pred);
  const SagaGraph graph(saga.trans, 3);
  EXPECT_EQ(std::vector<int>(graph.preds_begin(1), graph.preds_end(1)),
            std::vector<int>({0}));
  EXPECT_EQ(std::vector<int>(graph.preds_begin(2), graph.preds_end(2)),
            std::vector<int>({1, 0}));
  EXPECT_EQ(std::vector<int>(graph.succs_begin(0), graph.succs_end(0)),
            std::vector<int>({1, 2}));
}

}  // namespace
}  // namespace dtmd::txn
