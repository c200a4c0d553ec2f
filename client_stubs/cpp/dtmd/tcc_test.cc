#include "dtmd/tcc.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dtmd/fake_dtm_test_util.h"
#include "tests/integration/branch_server.h"

namespace dtmd::client {
namespace {

using dtmd::testing::Answer;
using dtmd::testing::RecordedCall;
using dtmd::testing::ScriptedBranchServer;
using testing::DtmCall;

class TccTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dtm_server_.ok());
    ASSERT_TRUE(busi_.Start().ok());
  }

  std::string Url(const std::string& method) {
    return busi_.Url("/busi.Busi/" + method);
  }

  // A body with two branches: Try answers as scripted on busi_.
  std::function<absl::Status(Tcc&)> TwoBranches() {
    return [this](Tcc& tcc) {
      absl::Status status =
          tcc.CallBranch("p1", Url("TryA"), Url("ConfirmA"), Url("CancelA"));
      if (!status.ok()) return status;
      return tcc.CallBranch(std::string("p\0"
                                        "2",
                                        3),
                            Url("TryB"), Url("ConfirmB"), Url("CancelB"));
    };
  }

  testing::FakeDtmServer dtm_server_;
  testing::FakeDtm& dtm_ = dtm_server_.dtm();
  ScriptedBranchServer busi_;
};

TEST_F(TccTest, PreparesRegistersEachBranchBeforeItsTryThenSubmits) {
  // When a Try arrives, the coordinator must already know its branch.
  std::map<std::string, size_t> registered_at_try;
  busi_.SetResponder([&](const RecordedCall& call) -> std::optional<Answer> {
    size_t registered = 0;
    for (const DtmCall& dtm_call : dtm_.calls()) {
      if (dtm_call.method == "RegisterBranch") ++registered;
    }
    registered_at_try[call.branch_id] = registered;
    return std::nullopt;
  });
  TransOptions options;
  options.wait_result = true;
  options.timeout_to_fail = 60;
  options.retry_interval = 7;
  options.request_timeout = 4;
  options.branch_headers = {{"x-tenant", "acme"}};
  options.dtm_address = "dtm.example:36790";

  ASSERT_TRUE(
      TccGlobalTransaction(dtm_server_.stub(), "tcc-1", TwoBranches(), options)
          .ok());

  std::vector<DtmCall> calls = dtm_.calls();
  ASSERT_EQ(dtm_.methods(),
            (std::vector<std::string>{"Prepare", "RegisterBranch",
                                      "RegisterBranch", "Submit"}));
  for (const DtmCall* call : {&calls[0], &calls[3]}) {
    EXPECT_EQ(call->request.gid(), "tcc-1");
    EXPECT_EQ(call->request.transtype(), "tcc");
    EXPECT_EQ(call->request.steps(), "null");
    EXPECT_EQ(call->request.binpayloads_size(), 0);
    const dtmgimp::DtmTransOptions& sent = call->request.transoptions();
    EXPECT_TRUE(sent.waitresult());
    EXPECT_EQ(sent.timeouttofail(), 60);
    EXPECT_EQ(sent.retryinterval(), 7);
    EXPECT_EQ(sent.requesttimeout(), 4);
    EXPECT_EQ(sent.branchheaders().at("x-tenant"), "acme");
  }
  const dtmgimp::DtmBranchRequest& first = calls[1].branch;
  EXPECT_EQ(first.gid(), "tcc-1");
  EXPECT_EQ(first.transtype(), "tcc");
  EXPECT_EQ(first.branchid(), "01");
  EXPECT_EQ(first.op(), "");
  EXPECT_EQ(first.busipayload(), "p1");
  EXPECT_EQ((std::map<std::string, std::string>(first.data().begin(),
                                                first.data().end())),
            (std::map<std::string, std::string>{{"confirm", Url("ConfirmA")},
                                                {"cancel", Url("CancelA")}}));
  const dtmgimp::DtmBranchRequest& second = calls[2].branch;
  EXPECT_EQ(second.branchid(), "02");
  EXPECT_EQ(second.busipayload(), std::string("p\0"
                                              "2",
                                              3));
  EXPECT_EQ(second.data().at("confirm"), Url("ConfirmB"));
  EXPECT_EQ(second.data().at("cancel"), Url("CancelB"));

  std::vector<RecordedCall> tries = busi_.Calls();
  ASSERT_EQ(tries.size(), 2u);
  EXPECT_EQ(tries[0].method, "/busi.Busi/TryA");
  EXPECT_EQ(tries[0].payload, "p1");
  EXPECT_EQ(tries[1].method, "/busi.Busi/TryB");
  EXPECT_EQ(tries[1].payload, std::string("p\0"
                                          "2",
                                          3));
  for (size_t i = 0; i < tries.size(); ++i) {
    const RecordedCall& call = tries[i];
    EXPECT_EQ(call.gid, "tcc-1");
    EXPECT_EQ(call.trans_type, "tcc");
    EXPECT_EQ(call.branch_id, i == 0 ? "01" : "02");
    EXPECT_EQ(call.op, "try");
    EXPECT_EQ(call.metadata.at("dtm-dtm"), "dtm.example:36790");
    EXPECT_EQ(call.metadata.at("x-tenant"), "acme");
  }
  EXPECT_EQ(registered_at_try["01"], 1u);
  EXPECT_EQ(registered_at_try["02"], 2u);
}

TEST_F(TccTest, FailedTryAbortsWithItsMessageAndReturnsIt) {
  busi_.SetDefault("/busi.Busi/TryB",
                   Answer{grpc::StatusCode::ABORTED, "no stock", 0});

  absl::Status status =
      TccGlobalTransaction(dtm_server_.stub(), "tcc-2", TwoBranches());

  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(status.message(), "no stock");
  ASSERT_EQ(dtm_.methods(),
            (std::vector<std::string>{"Prepare", "RegisterBranch",
                                      "RegisterBranch", "Abort"}));
  const dtmgimp::DtmRequest abort = dtm_.calls()[3].request;
  EXPECT_EQ(abort.gid(), "tcc-2");
  EXPECT_EQ(abort.transtype(), "tcc");
  EXPECT_EQ(abort.steps(), "null");
  EXPECT_EQ(abort.rollbackreason(), "no stock");
}

TEST_F(TccTest, BodyErrorOfItsOwnAbortsToo) {
  absl::Status status = TccGlobalTransaction(
      dtm_server_.stub(), "tcc-3",
      [](Tcc&) { return absl::InternalError("local commit failed"); });
  EXPECT_EQ(status, absl::InternalError("local commit failed"));
  EXPECT_EQ(dtm_.methods(), (std::vector<std::string>{"Prepare", "Abort"}));
}

TEST_F(TccTest, FailedPrepareSkipsTheBody) {
  dtm_.FailNext("Prepare",
                grpc::Status(grpc::StatusCode::ABORTED, "gid exists as saga"));
  bool ran = false;
  absl::Status status =
      TccGlobalTransaction(dtm_server_.stub(), "tcc-4", [&](Tcc&) {
        ran = true;
        return absl::OkStatus();
      });
  EXPECT_EQ(status, absl::AbortedError("gid exists as saga"));
  EXPECT_FALSE(ran);
  EXPECT_EQ(dtm_.methods(), (std::vector<std::string>{"Prepare"}));
}

TEST_F(TccTest, FailedRegisterBranchSkipsTheTry) {
  dtm_.FailNext("RegisterBranch",
                grpc::Status(grpc::StatusCode::UNAVAILABLE, "store down"));
  absl::Status status =
      TccGlobalTransaction(dtm_server_.stub(), "tcc-5", TwoBranches());
  EXPECT_EQ(status, absl::UnavailableError("store down"));
  EXPECT_TRUE(busi_.Calls().empty());
  EXPECT_EQ(dtm_.methods(),
            (std::vector<std::string>{"Prepare", "RegisterBranch", "Abort"}));
}

TEST_F(TccTest, SubmitsErrorIsTheResult) {
  dtm_.FailNext("Submit", grpc::Status(grpc::StatusCode::ABORTED,
                                       "transaction tcc-6 failed"));
  absl::Status status =
      TccGlobalTransaction(dtm_server_.stub(), "tcc-6", TwoBranches());
  EXPECT_EQ(status, absl::AbortedError("transaction tcc-6 failed"));
}

TEST_F(TccTest, MessageOverloadSerializesThePayload) {
  dtmgimp::DtmTopicRequest payload;  // Any message will do.
  payload.set_topic("t");
  google::protobuf::Empty reply;
  ASSERT_TRUE(TccGlobalTransaction(dtm_server_.stub(), "tcc-7", [&](Tcc& tcc) {
                return tcc.CallBranch(payload, Url("TryA"), Url("ConfirmA"),
                                      Url("CancelA"), &reply);
              }).ok());
  ASSERT_EQ(busi_.Calls().size(), 1u);
  EXPECT_EQ(busi_.Calls()[0].payload, payload.SerializeAsString());
  EXPECT_EQ(dtm_.calls()[1].branch.busipayload(), payload.SerializeAsString());
}

TEST_F(TccTest, BadTryUrlIsInvalidArgument) {
  absl::Status status =
      TccGlobalTransaction(dtm_server_.stub(), "tcc-8", [&](Tcc& tcc) {
        return tcc.CallBranch("p", "no-slash", Url("ConfirmA"), Url("CancelA"));
      });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(BranchIdGenTest, CountsFrom01To99) {
  internal::BranchIdGen ids;
  EXPECT_EQ(*ids.Next(), "01");
  EXPECT_EQ(*ids.Next(), "02");
  for (int i = 3; i < 99; ++i) ASSERT_TRUE(ids.Next().ok());
  EXPECT_EQ(*ids.Next(), "99");
  EXPECT_EQ(ids.Next().status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace dtmd::client
