#include "dtmd/client.h"

#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dtmd/fake_dtm_test_util.h"

namespace dtmd::client {
namespace {

using nlohmann::json;
using testing::FakeDtm;

TEST(SagaTest, BuildRequestListsStepsAndPayloadsInOrder) {
  Saga saga(nullptr, "gid-1");
  saga.Add("h:1/busi.Busi/A", "h:1/busi.Busi/ARevert", "pa")
      .Add("h:1/busi.Busi/B", "", std::string("p\0b", 3));

  dtmgimp::DtmRequest request = saga.BuildRequest();
  EXPECT_EQ(request.gid(), "gid-1");
  EXPECT_EQ(request.transtype(), "saga");
  EXPECT_EQ(json::parse(request.steps()),
            json::parse(R"([{"action":"h:1/busi.Busi/A",
                             "compensate":"h:1/busi.Busi/ARevert"},
                            {"action":"h:1/busi.Busi/B","compensate":""}])"));
  ASSERT_EQ(request.binpayloads_size(), 2);
  EXPECT_EQ(request.binpayloads(0), "pa");
  EXPECT_EQ(request.binpayloads(1), std::string("p\0b", 3));
  EXPECT_EQ(request.customeddata(), "");
  EXPECT_FALSE(request.transoptions().waitresult());
}

TEST(SagaTest, BuildRequestWithoutStepsSendsEmptyArray) {
  Saga saga(nullptr, "g");
  EXPECT_EQ(saga.BuildRequest().steps(), "[]");
}

TEST(SagaTest, BuildRequestCarriesOptionsAndBranchHeaders) {
  Saga saga(nullptr, "g");
  saga.SetWaitResult(true)
      .SetTimeoutToFail(60)
      .SetRetryInterval(5)
      .SetRequestTimeout(2)
      .SetRetryLimit(3)
      .AddBranchHeader("x-tenant", "acme");

  dtmgimp::DtmRequest request = saga.BuildRequest();
  const dtmgimp::DtmTransOptions& options = request.transoptions();
  EXPECT_TRUE(options.waitresult());
  EXPECT_EQ(options.timeouttofail(), 60);
  EXPECT_EQ(options.retryinterval(), 5);
  EXPECT_EQ(options.requesttimeout(), 2);
  EXPECT_EQ(options.retrylimit(), 3);
  ASSERT_EQ(options.branchheaders().size(), 1u);
  EXPECT_EQ(options.branchheaders().at("x-tenant"), "acme");
}

TEST(SagaTest, ConcurrentSagaSendsOrdersInCustomedData) {
  Saga saga(nullptr, "g");
  saga.Add("a0", "c0", "").Add("a1", "c1", "").Add("a2", "c2", "");
  saga.EnableConcurrent().AddBranchOrder(2, {0, 1}).AddBranchOrder(1, {0});

  EXPECT_EQ(json::parse(saga.BuildRequest().customeddata()),
            json::parse(R"({"orders":{"1":[0],"2":[0,1]},"concurrent":true})"));
}

TEST(SagaTest, ConcurrentWithoutOrdersSendsEmptyOrders) {
  Saga saga(nullptr, "g");
  saga.EnableConcurrent();
  EXPECT_EQ(json::parse(saga.BuildRequest().customeddata()),
            json::parse(R"({"orders":{},"concurrent":true})"));
}

TEST(SagaTest, InvalidUtf8InUrlDoesNotThrow) {
  Saga saga(nullptr, "g");
  saga.Add("h:1/\xff", "", "");
  EXPECT_FALSE(saga.BuildRequest().steps().empty());
}

class SagaRpcTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.ok()); }

  testing::FakeDtmServer server_;
  FakeDtm& dtm_ = server_.dtm();
  dtmgimp::Dtm::Stub* stub_ = server_.stub();
};

TEST_F(SagaRpcTest, NewGidReturnsTheCoordinatorsGid) {
  std::string gid;
  ASSERT_TRUE(NewGid(stub_, &gid).ok());
  EXPECT_EQ(gid, "fresh-gid");
}

TEST_F(SagaRpcTest, SubmitAndPrepareSendTheBuiltRequest) {
  Saga saga(stub_, "g-1");
  saga.Add("h:1/busi.Busi/A", "h:1/busi.Busi/ARevert", "payload");

  ASSERT_TRUE(saga.Prepare().ok());
  ASSERT_TRUE(saga.Submit().ok());

  std::vector<testing::DtmCall> calls = dtm_.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].method, "Prepare");
  EXPECT_EQ(calls[1].method, "Submit");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      calls[1].request, saga.BuildRequest()));
}

TEST_F(SagaRpcTest, SubmitReturnsTheCoordinatorsError) {
  dtm_.FailNext("Submit", grpc::Status(grpc::StatusCode::ABORTED,
                                       "insufficient balance"));
  Saga saga(stub_, "failing");
  grpc::Status status = saga.Submit();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(status.error_message(), "insufficient balance");
}

TEST(SagaRpcDeadlineTest, SubmitToAnUnreachableCoordinatorFailsUnavailable) {
  // Port 1 on localhost: nothing listens; wait_for_ready is off, so the call
  // fails at once instead of waiting for a server.
  auto stub = dtmgimp::Dtm::NewStub(
      grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()));
  Saga saga(stub.get(), "g");
  saga.SetCallTimeout(std::chrono::seconds(30));
  EXPECT_EQ(saga.Submit().error_code(), grpc::StatusCode::UNAVAILABLE);
}

// A coordinator that holds every Submit until Release() (or a minute).
class HangingDtm final : public dtmgimp::Dtm::Service {
 public:
  grpc::Status Submit(grpc::ServerContext*, const dtmgimp::DtmRequest*,
                      google::protobuf::Empty*) override {
    std::unique_lock<std::mutex> lock(mu_);
    released_cv_.wait_for(lock, std::chrono::minutes(1),
                          [this] { return released_; });
    return grpc::Status::OK;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    released_cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable released_cv_;
  bool released_ = false;  // Guarded by mu_.
};

TEST(SagaRpcDeadlineTest, SubmitGivesUpAtTheCallTimeoutWhileTheServerHolds) {
  HangingDtm dtm;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&dtm);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = dtmgimp::Dtm::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  Saga saga(stub.get(), "g");
  saga.SetCallTimeout(std::chrono::milliseconds(300));
  // The server still holds the call when the client's deadline ends it.
  EXPECT_EQ(saga.Submit().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  dtm.Release();
  server->Shutdown();
}

}  // namespace
}  // namespace dtmd::client
