// SAGA end to end: a real dtmd process drives sagas against a scripted branch
// server, and the tests check the calls it made and the replies it gave.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/saga_fixture.h"

namespace dtmd::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class SagaTest : public SagaFixture {};

TEST_F(SagaTest, SucceedsAndRunsActionsInOrder) {
  const std::string gid = NewTestGid();
  grpc::Status status = NewSaga(gid)
                            .Add(Url("A"), Url("CA"), "p0")
                            .Add(Url("B"), Url("CB"), "p1")
                            .Add(Url("C"), Url("CC"), "p2")
                            .SetWaitResult(true)
                            .Submit();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(CallSequence(gid),
              ElementsAre("01:action", "02:action", "03:action"));
  auto reply = dtmd_->GetTransaction(gid);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->transaction().status(), "succeed");
  ASSERT_EQ(reply->branches_size(), 6);
  for (const auto& b : reply->branches()) {
    EXPECT_EQ(b.status(), b.op() == "action" ? "succeed" : "prepared");
  }
}

class SagaFailureTest : public SagaFixture,
                        public ::testing::WithParamInterface<int> {};

TEST_P(SagaFailureTest, CompensatesInReverseOrderIncludingTheFailedAction) {
  const int failing = GetParam();
  const std::string gid = NewTestGid();
  const char* names[] = {"A", "B", "C"};
  branches_->SetScript(Method(names[failing]), gid,
                       {{grpc::StatusCode::ABORTED, "out of stock"}});
  grpc::Status status = NewSaga(gid)
                            .Add(Url("A"), Url("CA"), "")
                            .Add(Url("B"), Url("CB"), "")
                            .Add(Url("C"), Url("CC"), "")
                            .SetWaitResult(true)
                            .Submit();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(status.error_message(), HasSubstr("out of stock"));
  EXPECT_THAT(status.error_message(),
              HasSubstr(absl::StrCat("branch 0", failing + 1)));
  std::vector<std::string> expected;
  for (int i = 0; i <= failing; ++i) {
    expected.push_back(absl::StrCat("0", i + 1, ":action"));
  }
  for (int i = failing; i >= 0; --i) {
    expected.push_back(absl::StrCat("0", i + 1, ":compensate"));
  }
  EXPECT_EQ(CallSequence(gid), expected);
  auto reply = dtmd_->GetTransaction(gid);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->transaction().status(), "failed");
  EXPECT_EQ(reply->transaction().rollback_reason(), "out of stock");
}

INSTANTIATE_TEST_SUITE_P(EachPosition, SagaFailureTest,
                         ::testing::Values(0, 1, 2));

TEST_F(SagaTest, ConcurrentStepsStartTogetherAndRespectOrders) {
  const std::string gid = NewTestGid();
  constexpr int kDelayMs = 1000;
  branches_->SetScript(Method("A"), gid,
                       {{grpc::StatusCode::OK, "", kDelayMs}});
  branches_->SetScript(Method("B"), gid,
                       {{grpc::StatusCode::OK, "", kDelayMs}});
  grpc::Status status = NewSaga(gid)
                            .Add(Url("A"), Url("CA"), "")
                            .Add(Url("B"), Url("CB"), "")
                            .Add(Url("C"), Url("CC"), "")
                            .EnableConcurrent()
                            .AddBranchOrder(2, {0, 1})
                            .SetWaitResult(true)
                            .Submit();
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<RecordedCall> calls = branches_->CallsFor(gid);
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[2].branch_id, "03");
  // Steps 0 and 1 were both called before either answered, and step 2 only
  // after both had answered (an answer leaves kDelayMs after its call came).
  EXPECT_LT(calls[1].time_ms, calls[0].time_ms + kDelayMs);
  EXPECT_GE(calls[2].time_ms,
            std::max(calls[0].time_ms, calls[1].time_ms) + kDelayMs);
}

TEST_F(SagaTest, ConcurrentFailureCompensatesInReverseOfOrders) {
  const std::string gid = NewTestGid();
  branches_->SetScript(Method("C"), gid,
                       {{grpc::StatusCode::ABORTED, "card declined"}});
  grpc::Status status = NewSaga(gid)
                            .Add(Url("A"), Url("CA"), "")
                            .Add(Url("B"), Url("CB"), "")
                            .Add(Url("C"), Url("CC"), "")
                            .EnableConcurrent()
                            .AddBranchOrder(1, {0})
                            .AddBranchOrder(2, {1})
                            .SetWaitResult(true)
                            .Submit();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(CallSequence(gid),
              ElementsAre("01:action", "02:action", "03:action",
                          "03:compensate", "02:compensate", "01:compensate"));
}

TEST_F(SagaTest, EmptyUrlsCountAsSuccess) {
  const std::string gid = NewTestGid();
  branches_->SetScript(Method("C"), gid, {{grpc::StatusCode::ABORTED, "no"}});
  grpc::Status status = NewSaga(gid)
                            .Add(Url("A"), "", "")
                            .Add("", Url("CB"), "")
                            .Add(Url("C"), Url("CC"), "")
                            .SetWaitResult(true)
                            .Submit();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(CallSequence(gid), ElementsAre("01:action", "03:action",
                                             "03:compensate", "02:compensate"));

  const std::string ok_gid = NewTestGid();
  status = NewSaga(ok_gid).Add("", "", "").SetWaitResult(true).Submit();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(CallSequence(ok_gid).empty());
}

TEST_F(SagaTest, AbortedCompensationIsRetriedUntilItSucceeds) {
  const std::string gid = NewTestGid();
  branches_->SetScript(Method("B"), gid, {{grpc::StatusCode::ABORTED, "no"}});
  branches_->SetScript(Method("CA"), gid,
                       {{grpc::StatusCode::ABORTED, "busy"}});
  grpc::Status status = NewSaga(gid)
                            .Add(Url("A"), Url("CA"), "")
                            .Add(Url("B"), Url("CB"), "")
                            .SetRetryInterval(1)
                            .Submit();
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto reply = dtmd_->WaitForStatus(gid, {"failed"}, absl::Seconds(20));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(branches_->CountCalls(gid, "compensate"), 3);  // CB, CA twice.
  EXPECT_THAT(CallSequence(gid),
              ElementsAre("01:action", "02:action", "02:compensate",
                          "01:compensate", "01:compensate"));
}

TEST_F(SagaTest, SubmitOfAnAbortingGidIsAborted) {
  const std::string gid = NewTestGid();
  branches_->SetScript(Method("A"), gid, {{grpc::StatusCode::ABORTED, "no"}});
  // The compensation's unknown answer keeps the saga aborting for a while.
  branches_->SetScript(Method("CA"), gid,
                       {{grpc::StatusCode::UNAVAILABLE, "undo later"}});
  auto saga = NewSaga(gid);
  saga.Add(Url("A"), Url("CA"), "").SetRetryInterval(1);
  ASSERT_TRUE(saga.Submit().ok());
  auto reply = WaitForLastError(gid, "01", "compensate", "undo later");
  ASSERT_TRUE(reply.ok()) << reply.status();
  ASSERT_EQ(reply->transaction().status(), "aborting");
  grpc::Status again = saga.Submit();
  EXPECT_EQ(again.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(again.error_message(), HasSubstr("aborting"));
  ASSERT_TRUE(dtmd_->WaitForStatus(gid, {"failed"}, absl::Seconds(20)).ok());
  EXPECT_THAT(CallSequence(gid),
              ElementsAre("01:action", "01:compensate", "01:compensate"))
      << "the refused Submit ran nothing";
}

TEST_F(SagaTest, AdminShowsEachBranchsCallCountAndLastError) {
  const std::string gid = NewTestGid();
  branches_->SetScript(Method("A"), gid,
                       {{grpc::StatusCode::UNAVAILABLE, "stock service down"}});
  branches_->SetScript(Method("B"), gid,
                       {{grpc::StatusCode::ABORTED, "card declined"}});
  ASSERT_TRUE(NewSaga(gid)
                  .Add(Url("A"), Url("CA"), "")
                  .Add(Url("B"), Url("CB"), "")
                  .SetRetryInterval(1)
                  .Submit()
                  .ok());
  auto reply = dtmd_->WaitForStatus(gid, {"failed"}, absl::Seconds(20));
  ASSERT_TRUE(reply.ok()) << reply.status();
  std::vector<std::string> rows;
  for (const auto& b : reply->branches()) {
    rows.push_back(absl::StrCat(b.branch_id(), ":", b.op(), " ", b.status(),
                                " calls=", b.call_count(), " last_error='",
                                b.last_error(), "'"));
  }
  // The last error stays after a later success: it is the last one seen.
  EXPECT_THAT(rows, ::testing::UnorderedElementsAre(
                        "01:action succeed calls=2 last_error='stock service "
                        "down'",
                        "01:compensate succeed calls=1 last_error=''",
                        "02:action failed calls=1 last_error='card declined'",
                        "02:compensate succeed calls=1 last_error=''"));
  EXPECT_EQ(reply->transaction().rollback_reason(), "card declined");
}

TEST_F(SagaTest, BranchGetsDtmMetadataHeadersAndUntouchedPayload) {
  const std::string gid = NewTestGid();
  const std::string payload("\x00\x01\xff binary \x7f", 12);
  grpc::Status status = NewSaga(gid)
                            .Add(Url("A"), Url("CA"), payload)
                            .AddBranchHeader("x-tenant", "acme")
                            .AddBranchHeader("authorization", "Bearer t0k")
                            .SetWaitResult(true)
                            .Submit();
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<RecordedCall> calls = branches_->CallsFor(gid);
  ASSERT_EQ(calls.size(), 1u);
  const RecordedCall& call = calls[0];
  EXPECT_EQ(call.method, "/busi.Busi/A");
  EXPECT_EQ(call.payload, payload);
  EXPECT_EQ(call.metadata.at("dtm-gid"), gid);
  EXPECT_EQ(call.metadata.at("dtm-trans_type"), "saga");
  EXPECT_EQ(call.metadata.at("dtm-branch_id"), "01");
  EXPECT_EQ(call.metadata.at("dtm-op"), "action");
  EXPECT_EQ(call.metadata.at("dtm-dtm"), "dtmd.test:36790");
  EXPECT_EQ(call.metadata.at("x-tenant"), "acme");
  EXPECT_EQ(call.metadata.at("authorization"), "Bearer t0k");
}

TEST_F(SagaTest, RepeatedSubmitIsAcceptedWhileRunningAndAbortedAfterEnd) {
  const std::string gid = NewTestGid();
  branches_->SetScript(Method("A"), gid, {{grpc::StatusCode::OK, "", 800}});
  auto saga = NewSaga(gid);
  saga.Add(Url("A"), Url("CA"), "");
  ASSERT_TRUE(saga.Submit().ok());
  grpc::Status again = saga.Submit();
  EXPECT_TRUE(again.ok()) << again.error_message();
  ASSERT_TRUE(dtmd_->WaitForStatus(gid, {"succeed"}, absl::Seconds(20)).ok());
  grpc::Status after_end = saga.Submit();
  EXPECT_EQ(after_end.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(after_end.error_message(), HasSubstr("succeed"));
}

TEST_F(SagaTest, PrepareThenSubmitRunsThePreparedSteps) {
  const std::string gid = NewTestGid();
  auto prepared = NewSaga(gid);
  prepared.Add(Url("A"), Url("CA"), "prepared-payload");
  ASSERT_TRUE(prepared.Prepare().ok());
  EXPECT_TRUE(prepared.Prepare().ok()) << "Prepare is idempotent";
  auto submit = NewSaga(gid);
  submit.Add(Url("B"), Url("CB"), "ignored").SetWaitResult(true);
  grpc::Status status = submit.Submit();
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<RecordedCall> calls = branches_->CallsFor(gid);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].method, "/busi.Busi/A");
  EXPECT_EQ(calls[0].payload, "prepared-payload");
  EXPECT_EQ(prepared.Prepare().error_code(), grpc::StatusCode::ABORTED);
}

TEST_F(SagaTest, AbortIsRefusedForSagasAndUnknownGids) {
  const std::string gid = NewTestGid();
  ASSERT_TRUE(NewSaga(gid).Add("", "", "").SetWaitResult(true).Submit().ok());
  dtmgimp::DtmRequest request;
  request.set_gid(gid);
  request.set_transtype("saga");
  google::protobuf::Empty empty;
  {
    grpc::ClientContext context;
    EXPECT_EQ(dtmd_->dtm()->Abort(&context, request, &empty).error_code(),
              grpc::StatusCode::ABORTED);
  }
  request.set_gid(NewTestGid());
  {
    grpc::ClientContext context;
    EXPECT_EQ(dtmd_->dtm()->Abort(&context, request, &empty).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
}

TEST_F(SagaTest, NewGidHandsOutDistinctIds) {
  std::string a, b;
  ASSERT_TRUE(dtmd::client::NewGid(dtmd_->dtm(), &a).ok());
  ASSERT_TRUE(dtmd::client::NewGid(dtmd_->dtm(), &b).ok());
  EXPECT_EQ(a.size(), 22u);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace dtmd::testing
