// SAGA timing end to end: retry intervals, deadlines, timeouts, the
// WaitResult bound and extreme timing options, against a real dtmd (fixture
// flags: --retry_interval=1, --cron_interval=1, --max_retry_interval=4).
//
// Intervals are read exactly from what dtmd stores (admin's
// next_cron_interval_s); wall-clock gaps between calls are only checked from
// below (a timer never fires early), and "not later than" is checked as the
// order of events, so a loaded machine cannot make the tests flaky.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/saga_fixture.h"

namespace dtmd::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

// The largest timing option dtmd accepts, in seconds (README: "huge timings"
// are refused above it).
constexpr int64_t kMaxTimingSeconds = int64_t{1} << 30;
// RequestTimeout has its own, lower cap (--max_request_timeout, default).
constexpr int64_t kMaxRequestTimeoutSeconds = 300;
// The fixture's --max_retry_interval.
constexpr int64_t kCapSeconds = 4;
// A timer may fire this much before the millisecond a call records (clock
// rounding), never more.
constexpr int64_t kClockSlackMs = 20;

class SagaTimingTest : public SagaFixture {
 protected:
  // Scripts action 01 of `gid` to give `answers` in turn (then OK; each with
  // its own message), submits a one-step saga with RetryInterval 1 and
  // returns the retry interval dtmd stored after each of those answers.
  std::vector<int64_t> IntervalsAfterAnswers(
      const std::string& gid, const std::vector<Answer>& answers) {
    branches_->SetScript(Method("A"), gid, answers);
    grpc::Status status =
        NewSaga(gid).Add(Url("A"), Url("CA"), "").SetRetryInterval(1).Submit();
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<int64_t> intervals;
    for (size_t i = 0; i < answers.size(); ++i) {
      auto reply = WaitForLastError(gid, "01", "action", answers[i].message);
      if (!reply.ok()) {
        ADD_FAILURE() << reply.status();
        break;
      }
      intervals.push_back(reply->transaction().next_cron_interval_s());
      ExpectNextCallOneIntervalAfter(branches_->CallsFor(gid).at(i), *reply);
    }
    return intervals;
  }

  // Checks that the next call of the transaction in `reply` is planned one
  // stored interval after a moment between the arrival of `call` (whose
  // answer it handled) and the write that stored the plan.
  static void ExpectNextCallOneIntervalAfter(
      const RecordedCall& call,
      const dtmd::admin::v1::GetTransactionReply& reply) {
    const auto& t = reply.transaction();
    const int64_t planned_ms =
        t.next_cron_time_ms() - t.next_cron_interval_s() * 1000;
    EXPECT_GE(planned_ms, call.time_ms - kClockSlackMs);
    EXPECT_LE(planned_ms, t.update_time_ms());
  }

  // Checks that call i+1 of `gid` came no earlier than intervals[i] seconds
  // after call i.
  void ExpectGapsAtLeast(const std::string& gid,
                         const std::vector<int64_t>& intervals) {
    std::vector<RecordedCall> calls = branches_->CallsFor(gid);
    ASSERT_EQ(calls.size(), intervals.size() + 1);
    for (size_t i = 0; i < intervals.size(); ++i) {
      EXPECT_GE(calls[i + 1].time_ms - calls[i].time_ms,
                intervals[i] * 1000 - kClockSlackMs)
          << "gap before call " << i + 2;
    }
  }
};

TEST_F(SagaTimingTest, UnknownAnswerDoublesTheIntervalUpToTheCap) {
  const std::string gid = NewTestGid();
  // Unknown answers of several kinds; the interval starts at RetryInterval 1.
  std::vector<int64_t> intervals =
      IntervalsAfterAnswers(gid, {{grpc::StatusCode::UNAVAILABLE, "down 1"},
                                  {grpc::StatusCode::INTERNAL, "down 2"},
                                  {grpc::StatusCode::UNKNOWN, "down 3"}});
  EXPECT_THAT(intervals, ElementsAre(2, 4, kCapSeconds));
  auto reply = dtmd_->WaitForStatus(gid, {"succeed"}, absl::Seconds(30));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->transaction().next_cron_interval_s(), 1)
      << "success resets the interval";
  ExpectGapsAtLeast(gid, intervals);
  std::vector<RecordedCall> calls = branches_->CallsFor(gid);
  // Doubling, seen in the calls: the second wait was longer than the first.
  EXPECT_GT(calls[2].time_ms - calls[1].time_ms,
            calls[1].time_ms - calls[0].time_ms);
}

TEST_F(SagaTimingTest, OngoingAnswerKeepsTheInterval) {
  const std::string gid = NewTestGid();
  std::vector<int64_t> intervals = IntervalsAfterAnswers(
      gid, {{grpc::StatusCode::FAILED_PRECONDITION, "not yet"},
            {grpc::StatusCode::ABORTED, "ONGOING"},
            {grpc::StatusCode::FAILED_PRECONDITION, "still not"}});
  EXPECT_THAT(intervals, ElementsAre(1, 1, 1));
  auto reply = dtmd_->WaitForStatus(gid, {"succeed"}, absl::Seconds(20));
  ASSERT_TRUE(reply.ok()) << reply.status();
  ExpectGapsAtLeast(gid, intervals);
  EXPECT_EQ(CallSequence(gid), std::vector<std::string>(4, "01:action"));
}

TEST_F(SagaTimingTest, RequestTimeoutIsTheBranchCallDeadline) {
  const std::string gid = NewTestGid();
  // The first call would answer after 10 s; RequestTimeout is 1 s.
  branches_->SetScript(Method("A"), gid, {{grpc::StatusCode::OK, "", 10000}});
  grpc::Status status = NewSaga(gid)
                            .Add(Url("A"), Url("CA"), "")
                            .SetRequestTimeout(1)
                            .SetRetryInterval(1)
                            .SetWaitResult(true)
                            .Submit();
  const int64_t replied_ms = absl::ToUnixMillis(absl::Now());
  // dtmd gave up on the call, so its first round ended before the branch
  // answered: an unknown result, retried with the interval doubled.
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << status.error_message();
  std::vector<RecordedCall> calls = branches_->CallsFor(gid);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_LT(replied_ms, calls[0].time_ms + calls[0].answer.delay_ms);
  auto reply = dtmd_->GetTransaction(gid);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->transaction().next_cron_interval_s(), 2);
  reply = dtmd_->WaitForStatus(gid, {"succeed"}, absl::Seconds(20));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(branches_->CountCalls(gid, "action"), 2);
}

TEST_F(SagaTimingTest, WaitResultAnswersOngoingAfterRequestTimeoutPlusTwo) {
  const std::string gid = NewTestGid();
  // Ten steps of 600 ms each: the first round (6 s) outlasts the wait,
  // RequestTimeout 1 s + 2 s.
  constexpr int kSteps = 10;
  auto saga = NewSaga(gid);
  for (int i = 0; i < kSteps; ++i) {
    const std::string name = absl::StrCat("Slow", i);
    branches_->SetScript(Method(name), gid, {{grpc::StatusCode::OK, "", 600}});
    saga.Add(Url(name), Url("Undo" + name), "");
  }
  const absl::Time start = absl::Now();
  grpc::Status status = saga.SetRequestTimeout(1).SetWaitResult(true).Submit();
  const absl::Duration waited = absl::Now() - start;
  const int64_t replied_ms = absl::ToUnixMillis(absl::Now());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(gid));
  // Not before the bound ...
  EXPECT_GE(waited, absl::Seconds(3) - absl::Milliseconds(kClockSlackMs));
  // ... and not much after it: the reply came while the round was still
  // going, before the last step was called. The saga goes on.
  auto reply = dtmd_->WaitForStatus(gid, {"succeed"}, absl::Seconds(30));
  ASSERT_TRUE(reply.ok()) << reply.status();
  std::vector<RecordedCall> calls = branches_->CallsFor(gid);
  ASSERT_EQ(calls.size(), static_cast<size_t>(kSteps));
  EXPECT_LT(replied_ms, calls.back().time_ms);
}

TEST_F(SagaTimingTest, TimeoutToFailAbortsAndCompensates) {
  const std::string gid = NewTestGid();
  branches_->SetScript(
      Method("B"), gid,
      std::vector<Answer>(20, {grpc::StatusCode::FAILED_PRECONDITION, ""}));
  grpc::Status status = NewSaga(gid)
                            .Add(Url("A"), Url("CA"), "")
                            .Add(Url("B"), Url("CB"), "")
                            .Add(Url("C"), Url("CC"), "")
                            .SetTimeoutToFail(2)
                            .SetRetryInterval(1)
                            .Submit();
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto reply = dtmd_->WaitForStatus(gid, {"failed"}, absl::Seconds(20));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->transaction().rollback_reason(), "Timeout after 2 seconds");
  EXPECT_GE(reply->transaction().finish_time_ms() -
                reply->transaction().create_time_ms(),
            2000);
  // Step 1 (ongoing, retried) may have run, so it is compensated, then step
  // 0; step 2 was never eligible: neither called nor compensated.
  std::vector<std::string> calls = CallSequence(gid);
  ASSERT_GE(calls.size(), 4u);
  std::vector<std::string> expected = {"01:action"};
  expected.insert(expected.end(), calls.size() - 3, "02:action");
  expected.push_back("02:compensate");
  expected.push_back("01:compensate");
  EXPECT_THAT(calls, ElementsAreArray(expected));
}

TEST_F(SagaTimingTest, PreparedSagaFailsAfterTimeoutToFailWithoutCalls) {
  const std::string gid = NewTestGid();
  ASSERT_TRUE(NewSaga(gid)
                  .Add(Url("A"), Url("CA"), "")
                  .Add(Url("B"), Url("CB"), "")
                  .SetTimeoutToFail(1)
                  .Prepare()
                  .ok());
  auto reply = dtmd_->WaitForStatus(gid, {"failed"}, absl::Seconds(30));
  ASSERT_TRUE(reply.ok()) << reply.status();
  const auto& t = reply->transaction();
  EXPECT_EQ(t.rollback_reason(), "Timeout after 1 seconds");
  EXPECT_GE(t.finish_time_ms() - t.create_time_ms(), 1000);
  EXPECT_TRUE(CallSequence(gid).empty()) << "nothing ran, nothing to undo";
  for (const auto& b : reply->branches()) {
    EXPECT_EQ(b.status(), "prepared") << b.branch_id() << ":" << b.op();
    EXPECT_EQ(b.call_count(), 0) << b.branch_id() << ":" << b.op();
  }
  grpc::Status late = NewSaga(gid).Add(Url("A"), Url("CA"), "").Submit();
  EXPECT_EQ(late.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(late.error_message(), HasSubstr("failed"));
}

TEST_F(SagaTimingTest, RetryLimitAbortsAfterTheLimit) {
  const std::string gid = NewTestGid();
  branches_->SetScript(
      Method("A"), gid,
      std::vector<Answer>(10, {grpc::StatusCode::UNAVAILABLE, "down"}));
  grpc::Status status = NewSaga(gid)
                            .Add(Url("A"), Url("CA"), "")
                            .SetRetryLimit(2)
                            .SetRetryInterval(1)
                            .Submit();
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto reply = dtmd_->WaitForStatus(gid, {"failed"}, absl::Seconds(30));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->transaction().rollback_reason(),
            "RetryCount is greater than RetryLimit, RetryLimit: 2");
  EXPECT_THAT(CallSequence(gid), ElementsAre("01:action", "01:action",
                                             "01:action", "01:compensate"));
}

TEST_F(SagaTimingTest, HugeTimingsAreStoredExactlyAndTheBackoffIsCapped) {
  const std::string gid = NewTestGid();
  branches_->SetScript(Method("A"), gid,
                       {{grpc::StatusCode::UNAVAILABLE, "huge down"}});
  auto saga = NewSaga(gid);
  saga.Add(Url("A"), Url("CA"), "")
      .SetRetryInterval(kMaxTimingSeconds)
      .SetTimeoutToFail(kMaxTimingSeconds)
      .SetRequestTimeout(kMaxRequestTimeoutSeconds);
  // Prepared: stored, not driven; the first look is 2^30 s away.
  ASSERT_TRUE(saga.Prepare().ok());
  auto reply = dtmd_->GetTransaction(gid);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->transaction().next_cron_interval_s(), kMaxTimingSeconds);
  EXPECT_EQ(reply->transaction().next_cron_time_ms(),
            reply->transaction().create_time_ms() + kMaxTimingSeconds * 1000);
  // Submitted: the branch is called at once (no overflowing deadline), and
  // its unknown answer doubles 2^30 s into the cap, not past it.
  ASSERT_TRUE(saga.Submit().ok());
  reply = WaitForLastError(gid, "01", "action", "huge down");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->transaction().status(), "submitted");
  EXPECT_EQ(reply->transaction().next_cron_interval_s(), kCapSeconds);
  ExpectNextCallOneIntervalAfter(branches_->CallsFor(gid).at(0), *reply);
}

TEST_F(SagaTimingTest, TimingsBeyondTheLimitAreInvalid) {
  for (const char* field :
       {"RetryInterval", "TimeoutToFail", "RequestTimeout"}) {
    const std::string gid = NewTestGid();
    auto saga = NewSaga(gid);
    saga.Add(Url("A"), Url("CA"), "");
    const std::string name = field;
    if (name == "RetryInterval") saga.SetRetryInterval(kMaxTimingSeconds + 1);
    if (name == "TimeoutToFail") saga.SetTimeoutToFail(kMaxTimingSeconds + 1);
    if (name == "RequestTimeout") saga.SetRequestTimeout(kMaxTimingSeconds + 1);
    grpc::Status status = saga.Submit();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_THAT(status.error_message(), HasSubstr(field));
    EXPECT_EQ(dtmd_->GetTransaction(gid).status().code(),
              absl::StatusCode::kNotFound)
        << "a refused request stores nothing";
  }
}

}  // namespace
}  // namespace dtmd::testing
