// The admin service's operator methods against a real dtmd: listing with
// filters and paging, RetryNow on a transaction backing off, ForceStop.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
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
  grpc::Status RetryNow(const std::string& gid) {
    grpc::ClientContext context;
    admin_v1::RetryNowRequest request;
    request.set_gid(gid);
    admin_v1::RetryNowReply reply;
    return dtmd_->admin()->RetryNow(&context, request, &reply);
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
  grpc::Status status = RetryNow(gid);
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
  status = RetryNow(gid);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("failed"));
}

TEST_F(AdminTest, UnknownGidIsNotFound) {
  EXPECT_EQ(RetryNow("no-such-gid").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ForceStop("no-such-gid", "").error_code(),
            grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace dtmd::testing
