// The admin service's operator methods against a real dtmd: a stuck
// transaction's branches (last error, code, attempts, next retry), listing
// with filters and paging, RetryNow on a transaction backing off, ForceStop,
// ListTopics, Version.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/empty.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/saga_fixture.h"

namespace dtmd::testing {
namespace {

namespace admin_v1 = ::dtmd::admin::v1;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

class AdminTest : public SagaFixture {
 protected:
  // Retries far apart: a second call within seconds comes from RetryNow.
  static void SetUpTestSuite() {
    StartSuite({"--retry_interval=60", "--max_retry_interval=3600"});
  }

  grpc::Status List(const admin_v1::ListTransactionsRequest& request,
                    admin_v1::ListTransactionsReply* reply) {
    grpc::ClientContext context;
    return dtmd_->admin()->ListTransactions(&context, request, reply);
  }
  grpc::Status ForceStop(const std::string& gid, const std::string& reason) {
    grpc::ClientContext context;
    admin_v1::ForceStopRequest request;
    request.set_gid(gid);
    request.set_reason(reason);
    admin_v1::ForceStopReply reply;
    return dtmd_->admin()->ForceStop(&context, request, &reply);
  }
  // Submits a saga whose only action answers UNAVAILABLE (retried, never
  // done) and waits for its first call.
  void SubmitStuck(const std::string& gid) {
    branches_->SetScript(Method("Stuck"), gid, {});
    branches_->SetDefault(Method("Stuck"),
                          {grpc::StatusCode::UNAVAILABLE, "down", 0});
    ASSERT_TRUE(dtmd::client::Saga(dtmd_->dtm(), gid)
                    .Add(Url("Stuck"), Url("UndoStuck"), "")
                    .Submit()
                    .ok());
    // Stored once the answer is written: the runner has retired by then.
    auto answered = dtmd_->WaitFor(
        gid,
        [](const admin_v1::GetTransactionReply& reply) {
          const admin_v1::Branch* action = FindBranch(reply, "01", "action");
          return action != nullptr && !action->last_error().empty();
        },
        "the action's first answer stored", absl::Seconds(10));
    ASSERT_TRUE(answered.ok()) << answered.status();
  }
};

TEST_F(AdminTest, ListTransactionsPagesNewestFirstWithFilters) {
  // Seven empty sagas (they succeed at once) and one stuck one, all under
  // one prefix; and one outside it.
  const std::string prefix = "list-";
  std::vector<std::string> succeeded;
  for (int i = 0; i < 7; ++i) {
    const std::string gid = absl::StrCat(prefix, i);
    ASSERT_TRUE(
        dtmd::client::Saga(dtmd_->dtm(), gid).Add("", "", "").Submit().ok());
    ASSERT_TRUE(dtmd_->WaitForStatus(gid, {"succeed"}, absl::Seconds(10)).ok());
    succeeded.insert(succeeded.begin(), gid);  // newest first.
    absl::SleepFor(absl::Milliseconds(2));     // distinct create times.
  }
  SubmitStuck(prefix + "stuck");
  ASSERT_TRUE(dtmd::client::Saga(dtmd_->dtm(), "other-1")
                  .Add("", "", "")
                  .Submit()
                  .ok());

  admin_v1::ListTransactionsRequest request;
  request.set_gid_prefix(prefix);
  request.set_status("succeed");
  request.set_trans_type("saga");
  request.set_page_size(3);
  std::vector<std::string> listed;
  int pages = 0;
  for (;;) {
    admin_v1::ListTransactionsReply reply;
    grpc::Status status = List(request, &reply);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_LE(reply.transactions_size(), 3);
    for (const admin_v1::Transaction& t : reply.transactions()) {
      EXPECT_EQ(t.status(), "succeed");
      listed.push_back(t.gid());
    }
    ++pages;
    if (reply.next_page_token().empty()) break;
    ASSERT_LT(pages, 10);
    request.set_page_token(reply.next_page_token());
  }
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(listed, ElementsAreArray(succeeded));

  // The time range: strictly between the first and the last.
  admin_v1::ListTransactionsRequest first_only;
  first_only.set_gid_prefix(prefix);
  first_only.set_status("succeed");
  admin_v1::ListTransactionsReply all;
  ASSERT_TRUE(List(first_only, &all).ok());
  ASSERT_EQ(all.transactions_size(), 7);
  admin_v1::ListTransactionsRequest range = first_only;
  range.set_created_after_ms(all.transactions(6).create_time_ms());
  range.set_created_before_ms(all.transactions(0).create_time_ms());
  admin_v1::ListTransactionsReply inner;
  ASSERT_TRUE(List(range, &inner).ok());
  EXPECT_EQ(inner.transactions_size(), 5);

  admin_v1::ListTransactionsRequest submitted;
  submitted.set_gid_prefix(prefix);
  submitted.set_status("submitted");
  admin_v1::ListTransactionsReply stuck;
  ASSERT_TRUE(List(submitted, &stuck).ok());
  ASSERT_EQ(stuck.transactions_size(), 1);
  EXPECT_EQ(stuck.transactions(0).gid(), prefix + "stuck");
  EXPECT_TRUE(ForceStop(prefix + "stuck", "test over").ok());
}

TEST_F(AdminTest, ListTransactionsRefusesABadTokenOrPageSize) {
  admin_v1::ListTransactionsRequest request;
  admin_v1::ListTransactionsReply reply;
  request.set_page_token("not a token");
  EXPECT_EQ(List(request, &reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  request.clear_page_token();
  request.set_page_size(1001);
  EXPECT_EQ(List(request, &reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AdminTest, RetryNowCallsABackingOffBranchAtOnce) {
  const std::string gid = "retry-now";
  SubmitStuck(gid);
  const size_t calls = branches_->CallsFor(gid).size();
  ASSERT_EQ(calls, 1u);
  const absl::Time asked = absl::Now();
  grpc::Status status = dtmd_->RetryNow(gid);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // The next retry was a minute away.
  EXPECT_TRUE(branches_->WaitForCalls(
      [&](const std::vector<RecordedCall>& all) {
        size_t mine = 0;
        for (const RecordedCall& c : all) mine += c.gid == gid ? 1 : 0;
        return mine > calls;
      },
      absl::Seconds(10)));
  EXPECT_LT(absl::Now() - asked, absl::Seconds(10));
  EXPECT_TRUE(ForceStop(gid, "test over").ok());
}

TEST_F(AdminTest, ForceStopFailsTheTransactionAndLeavesItsBranches) {
  const std::string gid = "force-stop";
  SubmitStuck(gid);
  grpc::Status status = ForceStop(gid, "operator gave up");
  ASSERT_TRUE(status.ok()) << status.error_message();
  // Durable before the reply: the record says so at once.
  absl::StatusOr<admin_v1::GetTransactionReply> reply =
      dtmd_->GetTransaction(gid);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->transaction().status(), "failed");
  EXPECT_EQ(reply->transaction().rollback_reason(),
            "force stopped: operator gave up");
  EXPECT_GT(reply->transaction().finish_time_ms(), 0);
  ASSERT_EQ(reply->branches_size(), 2);
  for (const admin_v1::Branch& b : reply->branches()) {
    EXPECT_EQ(b.status(), "prepared") << b.op();
  }
  // Nothing compensated, and a second stop or a retry is refused.
  EXPECT_THAT(CallSequence(gid), ElementsAreArray({"01:action"}));
  EXPECT_EQ(ForceStop(gid, "again").error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  status = dtmd_->RetryNow(gid);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("failed"));
}

TEST_F(AdminTest, GetTransactionShowsEachBranchsLastCodeMessageAndAttempts) {
  const std::string gid = "why-stuck";
  branches_->SetScript(
      Method("Flaky"), gid,
      {{grpc::StatusCode::INTERNAL, "db exploded", 0},
       {grpc::StatusCode::UNAVAILABLE, "down for upgrade", 0}});
  ASSERT_TRUE(dtmd::client::Saga(dtmd_->dtm(), gid)
                  .Add(Url("Flaky"), Url("UndoFlaky"), "")
                  .Submit()
                  .ok());
  auto first = WaitForLastError(gid, "01", "action", "db exploded");
  ASSERT_TRUE(first.ok()) << first.status();
  const admin_v1::Branch* action = FindBranch(*first, "01", "action");
  EXPECT_EQ(action->last_code(), "INTERNAL");
  EXPECT_EQ(action->last_code_number(), 13);
  EXPECT_EQ(action->call_count(), 1);
  EXPECT_EQ(action->status(), "prepared");
  const admin_v1::Branch* undo = FindBranch(*first, "01", "compensate");
  ASSERT_NE(undo, nullptr);
  EXPECT_EQ(undo->call_count(), 0);
  EXPECT_EQ(undo->last_code(), "");
  EXPECT_EQ(undo->last_code_number(), 0);
  // The next retry, one (doubled) interval after that answer.
  const admin_v1::Transaction& t = first->transaction();
  EXPECT_EQ(t.status(), "submitted");
  EXPECT_EQ(t.next_cron_interval_s(), 120);
  EXPECT_GE(t.next_cron_time_ms(), t.update_time_ms() + 119 * 1000);

  ASSERT_TRUE(dtmd_->RetryNow(gid).ok());
  auto second = WaitForLastError(gid, "01", "action", "down for upgrade");
  ASSERT_TRUE(second.ok()) << second.status();
  action = FindBranch(*second, "01", "action");
  EXPECT_EQ(action->last_code(), "UNAVAILABLE");
  EXPECT_EQ(action->last_code_number(), 14);
  EXPECT_EQ(action->call_count(), 2);

  // Once it succeeds, the last error stays for the record.
  ASSERT_TRUE(dtmd_->RetryNow(gid).ok());
  auto done = dtmd_->WaitForStatus(gid, {"succeed"}, absl::Seconds(10));
  ASSERT_TRUE(done.ok()) << done.status();
  action = FindBranch(*done, "01", "action");
  EXPECT_EQ(action->status(), "succeed");
  EXPECT_EQ(action->call_count(), 3);
  EXPECT_EQ(action->last_error(), "down for upgrade");
  EXPECT_EQ(action->last_code(), "UNAVAILABLE");
}

TEST_F(AdminTest, GetTransactionShowsTheLastQueryPreparedError) {
  const std::string gid = "why-prepared";
  branches_->SetDefault(Method("Check"),
                        {grpc::StatusCode::UNAVAILABLE, "checker down", 0});
  dtmgimp::DtmRequest prepare;
  prepare.set_gid(gid);
  prepare.set_transtype("msg");
  prepare.set_steps("[{\"action\":\"" + Url("Deliver") + "\"}]");
  prepare.add_binpayloads("p");
  prepare.set_queryprepared(Url("Check"));
  prepare.mutable_transoptions()->set_timeouttofail(1);
  grpc::ClientContext context;
  google::protobuf::Empty empty;
  ASSERT_TRUE(dtmd_->dtm()->Prepare(&context, prepare, &empty).ok());
  auto reply = dtmd_->WaitFor(
      gid,
      [](const admin_v1::GetTransactionReply& r) {
        return !r.transaction().last_query_error().empty();
      },
      "the QueryPrepared answer stored", absl::Seconds(20));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->transaction().status(), "prepared");
  EXPECT_EQ(reply->transaction().last_query_error(), "checker down");
  EXPECT_EQ(reply->transaction().last_query_code(), "UNAVAILABLE");
  EXPECT_EQ(reply->transaction().last_query_code_number(), 14);
  EXPECT_TRUE(ForceStop(gid, "test over").ok());
}

TEST_F(AdminTest, ListTopicsPagesTopicsWithTheirSubscribers) {
  auto subscribe = [this](const std::string& topic, const std::string& url,
                          const std::string& remark) {
    dtmgimp::DtmTopicRequest request;
    request.set_topic(topic);
    request.set_url(url);
    request.set_remark(remark);
    grpc::ClientContext context;
    google::protobuf::Empty empty;
    return dtmd_->dtm()->Subscribe(&context, request, &empty);
  };
  ASSERT_TRUE(subscribe("t-orders", "host:1/a.A/In", "inventory").ok());
  ASSERT_TRUE(subscribe("t-orders", "host:2/b.B/In", "").ok());
  ASSERT_TRUE(subscribe("t-audit", "host:3/c.C/In", "audit").ok());
  ASSERT_TRUE(subscribe("t-payments", "host:1/a.A/In", "").ok());

  admin_v1::ListTopicsRequest request;
  request.set_page_size(2);
  std::vector<admin_v1::Topic> topics;
  for (int pages = 0;; ++pages) {
    ASSERT_LT(pages, 10);
    grpc::ClientContext context;
    admin_v1::ListTopicsReply reply;
    grpc::Status status = dtmd_->admin()->ListTopics(&context, request, &reply);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_LE(reply.topics_size(), 2);
    topics.insert(topics.end(), reply.topics().begin(), reply.topics().end());
    if (reply.next_page_token().empty()) break;
    request.set_page_token(reply.next_page_token());
  }
  std::vector<std::string> names;
  for (const admin_v1::Topic& t : topics) names.push_back(t.name());
  EXPECT_THAT(names, ElementsAreArray({"t-audit", "t-orders", "t-payments"}));
  ASSERT_EQ(topics[1].subscribers_size(), 2);
  EXPECT_EQ(topics[1].subscribers(0).url(), "host:1/a.A/In");
  EXPECT_EQ(topics[1].subscribers(0).remark(), "inventory");
  EXPECT_EQ(topics[1].subscribers(1).url(), "host:2/b.B/In");
  EXPECT_EQ(topics[0].subscribers(0).remark(), "audit");

  admin_v1::ListTopicsRequest bad;
  bad.set_page_size(-1);
  grpc::ClientContext context;
  admin_v1::ListTopicsReply reply;
  EXPECT_EQ(dtmd_->admin()->ListTopics(&context, bad, &reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AdminTest, VersionIsTheBuildsVersion) {
  grpc::ClientContext context;
  admin_v1::VersionReply reply;
  ASSERT_TRUE(dtmd_->admin()
                  ->Version(&context, admin_v1::VersionRequest(), &reply)
                  .ok());
  EXPECT_EQ(reply.version(), DTMD_VERSION);
}

TEST_F(AdminTest, UnknownGidIsNotFound) {
  EXPECT_EQ(dtmd_->RetryNow("no-such-gid").error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ForceStop("no-such-gid", "").error_code(),
            grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace dtmd::testing
