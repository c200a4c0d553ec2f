// SAGA end to end: a real dtmd process drives sagas against a scripted branch
// server, and the tests check the calls it made and the replies it gave.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/generic/generic_stub.h"
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
  branches_->SetScript(Method("A"), gid, {{grpc::StatusCode::OK, "", 400}});
  branches_->SetScript(Method("B"), gid, {{grpc::StatusCode::OK, "", 400}});
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
  // Steps 0 and 1 were both called before either answered (400 ms), and
  // step 2 only after both had answered.
  EXPECT_LT(std::abs(calls[0].time_ms - calls[1].time_ms), 300);
  EXPECT_GE(calls[2].time_ms,
            std::max(calls[0].time_ms, calls[1].time_ms) + 390);
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

TEST_F(SagaTest, UnknownAnswerIsRetriedWithGrowingInterval) {
  const std::string gid = NewTestGid();
  branches_->SetScript(Method("A"), gid,
                       {{grpc::StatusCode::UNAVAILABLE, "down"},
                        {grpc::StatusCode::INTERNAL, "boom"}});
  grpc::Status status = NewSaga(gid)
                            .Add(Url("A"), Url("CA"), "")
                            .SetRetryInterval(1)
                            .SetWaitResult(true)
                            .Submit();
  // The first round ended with an unknown answer: still running, not failed.
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << status.error_message();
  auto reply = dtmd_->WaitForStatus(gid, {"succeed"}, absl::Seconds(20));
  ASSERT_TRUE(reply.ok()) << reply.status();
  std::vector<RecordedCall> calls = branches_->CallsFor(gid);
  ASSERT_EQ(calls.size(), 3u);
  // 1 s after the first unknown answer, then 2 s after the second.
  EXPECT_GE(calls[1].time_ms - calls[0].time_ms, 900);
  EXPECT_GE(calls[2].time_ms - calls[1].time_ms, 1900);
  EXPECT_EQ(reply->transaction().next_cron_interval_s(), 1)
      << "success resets the interval";
}

TEST_F(SagaTest, OngoingAnswerKeepsTheInterval) {
  const std::string gid = NewTestGid();
  branches_->SetScript(Method("A"), gid,
                       {{grpc::StatusCode::FAILED_PRECONDITION, ""},
                        {grpc::StatusCode::ABORTED, "ONGOING"},
                        {grpc::StatusCode::FAILED_PRECONDITION, ""}});
  grpc::Status status =
      NewSaga(gid).Add(Url("A"), Url("CA"), "").SetRetryInterval(1).Submit();
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto reply = dtmd_->WaitForStatus(gid, {"succeed"}, absl::Seconds(20));
  ASSERT_TRUE(reply.ok()) << reply.status();
  std::vector<RecordedCall> calls = branches_->CallsFor(gid);
  ASSERT_EQ(calls.size(), 4u);
  // Unchanged interval: three retries 1 s apart take well under the 1+2+4 s
  // that backoff would take.
  EXPECT_LT(calls[3].time_ms - calls[0].time_ms, 6000);
  EXPECT_TRUE(CallSequence(gid) == std::vector<std::string>(4, "01:action"));
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

TEST_F(SagaTest, RequestTimeoutIsTheBranchCallDeadline) {
  const std::string gid = NewTestGid();
  branches_->SetScript(Method("A"), gid, {{grpc::StatusCode::OK, "", 2500}});
  const absl::Time start = absl::Now();
  grpc::Status status = NewSaga(gid)
                            .Add(Url("A"), Url("CA"), "")
                            .SetRequestTimeout(1)
                            .SetRetryInterval(1)
                            .SetWaitResult(true)
                            .Submit();
  // The call gave up after 1 s, so the first round ended before the branch's
  // 2.5 s answer.
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(2400));
  auto reply = dtmd_->WaitForStatus(gid, {"succeed"}, absl::Seconds(20));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(branches_->CountCalls(gid, "action"), 2);
}

TEST_F(SagaTest, TimeoutToFailAbortsAndCompensates) {
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
  // Step 1 may have run (it was called), so it is compensated; step 2 never.
  EXPECT_EQ(branches_->CountCalls(gid, "compensate"), 2);
  EXPECT_GE(branches_->CountCalls(gid, "action"), 3);  // A once, B retried.
  for (const RecordedCall& c : branches_->CallsFor(gid)) {
    EXPECT_NE(c.branch_id, "03");
  }
}

TEST_F(SagaTest, RetryLimitAbortsAfterTheLimit) {
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
  EXPECT_EQ(branches_->CountCalls(gid, "action"), 3);
  EXPECT_EQ(branches_->CountCalls(gid, "compensate"), 1);
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

namespace dtmd::testing {
namespace {

TEST_F(SagaTest, ASecondDtmdOnATakenPortOrDataDirRefusesToStart) {
  DtmdProcess same_port(MakeTempDir("second"),
                        {absl::StrCat("--grpc_port=", dtmd_->port())});
  absl::Status started = same_port.Start(absl::Seconds(10));
  EXPECT_FALSE(started.ok()) << "the port is taken: it must not be shared";
  EXPECT_THAT(std::string(started.message()), HasSubstr("exited"));

  DtmdProcess same_dir(dtmd_->data_dir(), {});
  started = same_dir.Start(absl::Seconds(10));
  EXPECT_FALSE(started.ok()) << "the store is locked by the running dtmd";
  EXPECT_THAT(std::string(started.message()), HasSubstr("exited"));

  // The running one is unaffected.
  std::string gid;
  EXPECT_TRUE(dtmd::client::NewGid(dtmd_->dtm(), &gid).ok());
}

TEST_F(SagaTest, HealthServiceAnswersServing) {
  grpc::GenericStub stub(dtmd_->channel());
  grpc::health::v1::HealthCheckRequest request;
  std::string bytes = request.SerializeAsString();
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request_buffer(&slice, 1), response_buffer;
  grpc::ClientContext context;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request_buffer, &response_buffer, [&](grpc::Status s) {
                   status = s;
                   done.Notify();
                 });
  done.WaitForNotification();
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response_buffer.Dump(&slices).ok());
  std::string reply;
  for (const grpc::Slice& s : slices) {
    reply.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(response.ParseFromString(reply));
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

}  // namespace
}  // namespace dtmd::testing
