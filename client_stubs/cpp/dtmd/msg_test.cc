#include "dtmd/msg.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dtmd/fake_dtm_test_util.h"
#include "tests/integration/branch_server.h"

namespace dtmd::client {
namespace {

using dtmd::testing::Answer;
using dtmd::testing::RecordedCall;
using dtmd::testing::ScriptedBranchServer;
using nlohmann::json;
using testing::DtmCall;

TEST(MsgTest, BuildRequestListsActionsPayloadsAndDelay) {
  TransOptions options;
  options.retry_interval = 5;
  Msg msg(nullptr, "msg-1", options);
  msg.Add("h:1/busi.Busi/A", "pa")
      .Add("topic://order-paid", std::string("p\0b", 3))
      .SetDelay(30);

  dtmgimp::DtmRequest request = msg.BuildRequest();
  EXPECT_EQ(request.gid(), "msg-1");
  EXPECT_EQ(request.transtype(), "msg");
  EXPECT_EQ(json::parse(request.steps()),
            json::parse(R"([{"action":"h:1/busi.Busi/A"},
                            {"action":"topic://order-paid"}])"));
  ASSERT_EQ(request.binpayloads_size(), 2);
  EXPECT_EQ(request.binpayloads(0), "pa");
  EXPECT_EQ(request.binpayloads(1), std::string("p\0b", 3));
  EXPECT_EQ(json::parse(request.customeddata()),
            json::parse(R"({"delay":30})"));
  EXPECT_EQ(request.transoptions().retryinterval(), 5);
  EXPECT_EQ(request.queryprepared(), "");
}

TEST(MsgTest, NoDelayMeansNoCustomedData) {
  Msg msg(nullptr, "g");
  EXPECT_EQ(msg.BuildRequest().customeddata(), "");
  EXPECT_EQ(msg.BuildRequest().steps(), "[]");
}

class MsgRpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dtm_server_.ok());
    ASSERT_TRUE(busi_.Start().ok());
  }

  // A msg with one action and its QueryPrepared URL on busi_.
  Msg OneActionMsg(const std::string& gid) {
    TransOptions options;
    options.dtm_address = "dtm.example:36790";
    Msg msg(dtm_server_.stub(), gid, options);
    msg.Add(busi_.Url("/busi.Busi/AddPoints"), "points");
    return msg;
  }
  std::string QueryUrl() { return busi_.Url("/busi.Busi/QueryPrepared"); }

  testing::FakeDtmServer dtm_server_;
  testing::FakeDtm& dtm_ = dtm_server_.dtm();
  ScriptedBranchServer busi_;
};

TEST_F(MsgRpcTest, PrepareThenSubmitSendTheQueryPreparedUrl) {
  Msg msg = OneActionMsg("msg-2");
  ASSERT_TRUE(msg.Prepare(QueryUrl()).ok());
  ASSERT_TRUE(msg.Submit().ok());

  std::vector<DtmCall> calls = dtm_.calls();
  ASSERT_EQ(dtm_.methods(), (std::vector<std::string>{"Prepare", "Submit"}));
  for (const DtmCall& call : calls) {
    EXPECT_EQ(call.request.gid(), "msg-2");
    EXPECT_EQ(call.request.transtype(), "msg");
    EXPECT_EQ(call.request.queryprepared(), QueryUrl());
    EXPECT_EQ(call.request.binpayloads_size(), 1);
  }
  EXPECT_TRUE(busi_.Calls().empty());  // The coordinator calls the actions.
}

TEST_F(MsgRpcTest, DoAndSubmitSubmitsWhenTheLocalTransactionCommits) {
  Msg msg = OneActionMsg("msg-3");
  bool ran = false;
  absl::Status status = msg.DoAndSubmit(QueryUrl(), [&] {
    // Prepared before the local transaction runs.
    EXPECT_EQ(dtm_.methods(), (std::vector<std::string>{"Prepare"}));
    ran = true;
    return absl::OkStatus();
  });
  EXPECT_TRUE(status.ok());
  EXPECT_TRUE(ran);
  EXPECT_EQ(dtm_.methods(), (std::vector<std::string>{"Prepare", "Submit"}));
  EXPECT_TRUE(busi_.Calls().empty());
}

TEST_F(MsgRpcTest, DoAndSubmitAbortsWhenTheBusinessRefuses) {
  Msg msg = OneActionMsg("msg-4");
  absl::Status status = msg.DoAndSubmit(
      QueryUrl(), [] { return absl::AbortedError("insufficient balance"); });
  EXPECT_EQ(status, absl::AbortedError("insufficient balance"));
  EXPECT_EQ(dtm_.methods(), (std::vector<std::string>{"Prepare", "Abort"}));
  EXPECT_EQ(dtm_.calls()[1].request.rollbackreason(), "insufficient balance");
  EXPECT_TRUE(busi_.Calls().empty());  // No need to ask.
}

TEST_F(MsgRpcTest, DoAndSubmitAsksQueryPreparedOnAnUnknownOutcome) {
  Msg msg = OneActionMsg("msg-5");
  absl::Status status = msg.DoAndSubmit(QueryUrl(), [] {
    return absl::DeadlineExceededError("commit timed out");
  });
  EXPECT_EQ(status, absl::DeadlineExceededError("commit timed out"));

  std::vector<RecordedCall> queries = busi_.Calls();
  ASSERT_EQ(queries.size(), 1u);
  EXPECT_EQ(queries[0].method, "/busi.Busi/QueryPrepared");
  EXPECT_EQ(queries[0].payload, "");
  EXPECT_EQ(queries[0].gid, "msg-5");
  EXPECT_EQ(queries[0].trans_type, "msg");
  EXPECT_EQ(queries[0].branch_id, "00");
  EXPECT_EQ(queries[0].op, "msg");
  EXPECT_EQ(queries[0].metadata.at("dtm-dtm"), "dtm.example:36790");
  // It committed after all (QueryPrepared answered OK).
  EXPECT_EQ(dtm_.methods(), (std::vector<std::string>{"Prepare", "Submit"}));
}

TEST_F(MsgRpcTest, DoAndSubmitAbortsWhenQueryPreparedSaysItRolledBack) {
  busi_.SetDefault("/busi.Busi/QueryPrepared",
                   Answer{grpc::StatusCode::ABORTED, "rolled back", 0});
  Msg msg = OneActionMsg("msg-6");
  absl::Status status = msg.DoAndSubmit(
      QueryUrl(), [] { return absl::UnavailableError("db connection lost"); });
  EXPECT_EQ(status, absl::UnavailableError("db connection lost"));
  EXPECT_EQ(dtm_.methods(), (std::vector<std::string>{"Prepare", "Abort"}));
}

TEST_F(MsgRpcTest, DoAndSubmitLeavesTheMsgPreparedWhenQueryPreparedCannotTell) {
  busi_.SetDefault("/busi.Busi/QueryPrepared",
                   Answer{grpc::StatusCode::FAILED_PRECONDITION, "", 0});
  Msg msg = OneActionMsg("msg-7");
  absl::Status status = msg.DoAndSubmit(
      QueryUrl(), [] { return absl::UnavailableError("db connection lost"); });
  EXPECT_EQ(status, absl::UnavailableError("db connection lost"));
  EXPECT_EQ(busi_.Calls().size(), 1u);
  EXPECT_EQ(dtm_.methods(), (std::vector<std::string>{"Prepare"}));
}

TEST_F(MsgRpcTest, DoAndSubmitDoesNotRunTheBusinessWhenPrepareFails) {
  dtm_.FailNext("Prepare",
                grpc::Status(grpc::StatusCode::UNAVAILABLE, "dtm down"));
  Msg msg = OneActionMsg("msg-8");
  bool ran = false;
  absl::Status status = msg.DoAndSubmit(QueryUrl(), [&] {
    ran = true;
    return absl::OkStatus();
  });
  EXPECT_EQ(status, absl::UnavailableError("dtm down"));
  EXPECT_FALSE(ran);
}

TEST_F(MsgRpcTest, TopicCallsSendTopicUrlAndRemark) {
  dtmgimp::Dtm::Stub* stub = dtm_server_.stub();
  ASSERT_TRUE(Subscribe(stub, "order-paid", "h:1/busi.Busi/A", "points").ok());
  ASSERT_TRUE(Unsubscribe(stub, "order-paid", "h:1/busi.Busi/A").ok());
  dtm_.FailNext("DeleteTopic",
                grpc::Status(grpc::StatusCode::NOT_FOUND, "no such topic"));
  EXPECT_EQ(DeleteTopic(stub, "order-paid"),
            absl::NotFoundError("no such topic"));

  std::vector<DtmCall> calls = dtm_.calls();
  ASSERT_EQ(dtm_.methods(), (std::vector<std::string>{
                                "Subscribe", "Unsubscribe", "DeleteTopic"}));
  EXPECT_EQ(calls[0].topic.topic(), "order-paid");
  EXPECT_EQ(calls[0].topic.url(), "h:1/busi.Busi/A");
  EXPECT_EQ(calls[0].topic.remark(), "points");
  EXPECT_EQ(calls[1].topic.topic(), "order-paid");
  EXPECT_EQ(calls[1].topic.url(), "h:1/busi.Busi/A");
  EXPECT_EQ(calls[2].topic.topic(), "order-paid");
  EXPECT_EQ(calls[2].topic.url(), "");
}

}  // namespace
}  // namespace dtmd::client
