#include "tests/integration/branch_server.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"

namespace dtmd::testing {
namespace {

using grpc::StatusCode;
using Metadata = std::vector<std::pair<std::string, std::string>>;

struct Reply {
  grpc::Status status;
  std::string body;
};

// Calls a branch the way dtmd does: a unary call whose body is raw bytes.
class BranchClient {
 public:
  explicit BranchClient(const std::string& address)
      : stub_(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials())) {}

  Reply Call(const std::string& method, const std::string& payload,
             const Metadata& metadata = {},
             std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    for (const auto& [key, value] : metadata) context.AddMetadata(key, value);
    grpc::Slice slice(payload);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    Reply reply;
    absl::Notification done;
    stub_.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                    [&](grpc::Status status) {
                      reply.status = std::move(status);
                      done.Notify();
                    });
    done.WaitForNotification();
    std::vector<grpc::Slice> slices;
    if (reply.status.ok() && response.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        reply.body.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    return reply;
  }

  // Calls with dtm-gid = gid and returns the status code.
  StatusCode CallAs(const std::string& method, const std::string& gid) {
    return Call(method, "", {{"dtm-gid", gid}}).status.error_code();
  }

 private:
  grpc::GenericStub stub_;
};

class ScriptedBranchServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<int> port = server_.Start();
    ASSERT_TRUE(port.ok()) << port.status();
    ASSERT_GT(*port, 0);
    client_ = std::make_unique<BranchClient>(server_.Address());
  }

  ScriptedBranchServer server_;
  std::unique_ptr<BranchClient> client_;
};

TEST_F(ScriptedBranchServerTest, UrlJoinsLoopbackAddressAndMethod) {
  EXPECT_EQ(
      server_.Url("/busi.Busi/TransOut"),
      "127.0.0.1:" + std::to_string(server_.port()) + "/busi.Busi/TransOut");
}

TEST_F(ScriptedBranchServerTest, StartTwiceFails) {
  EXPECT_EQ(server_.Start().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(ScriptedBranchServerTest, RecordsMethodMetadataAndRawPayload) {
  const std::string payload("\x0a\x03o-1\x00\xff", 7);
  Reply reply = client_->Call("/busi.Busi/TransOut", payload,
                              {{"dtm-gid", "g1"},
                               {"dtm-trans_type", "saga"},
                               {"dtm-branch_id", "01"},
                               {"dtm-op", "action"},
                               {"dtm-dtm", ""},
                               {"x-tenant", "acme"}});
  ASSERT_TRUE(reply.status.ok()) << reply.status.error_message();
  EXPECT_EQ(reply.body, "");

  std::vector<RecordedCall> calls = server_.Calls();
  ASSERT_EQ(calls.size(), 1u);
  const RecordedCall& call = calls[0];
  EXPECT_EQ(call.method, "/busi.Busi/TransOut");
  EXPECT_EQ(call.payload, payload);
  EXPECT_EQ(call.gid, "g1");
  EXPECT_EQ(call.trans_type, "saga");
  EXPECT_EQ(call.branch_id, "01");
  EXPECT_EQ(call.op, "action");
  EXPECT_EQ(call.metadata.at("x-tenant"), "acme");
  EXPECT_EQ(call.metadata.at("dtm-dtm"), "");
  EXPECT_EQ(call.answer.code, StatusCode::OK);
  EXPECT_GT(call.time_ms, 0);
}

TEST_F(ScriptedBranchServerTest, EmptyPayloadIsRecordedEmpty) {
  ASSERT_TRUE(client_->Call("/busi.Busi/A", "").status.ok());
  EXPECT_EQ(server_.Calls().at(0).payload, "");
}

TEST_F(ScriptedBranchServerTest, AnswersScriptInOrderThenMethodDefault) {
  server_.SetScript("/busi.Busi/A", {{StatusCode::ABORTED, "FAILURE"},
                                     {StatusCode::UNAVAILABLE, "down"}});
  server_.SetDefault("/busi.Busi/A", {StatusCode::FAILED_PRECONDITION, ""});

  Reply first = client_->Call("/busi.Busi/A", "", {{"dtm-gid", "g1"}});
  EXPECT_EQ(first.status.error_code(), StatusCode::ABORTED);
  EXPECT_EQ(first.status.error_message(), "FAILURE");
  EXPECT_EQ(client_->CallAs("/busi.Busi/A", "g1"), StatusCode::UNAVAILABLE);
  EXPECT_EQ(client_->CallAs("/busi.Busi/A", "g1"),
            StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(client_->CallAs("/busi.Busi/A", "g1"),
            StatusCode::FAILED_PRECONDITION);
  // Other methods keep the global default.
  EXPECT_EQ(client_->CallAs("/busi.Busi/B", "g1"), StatusCode::OK);
}

TEST_F(ScriptedBranchServerTest, EveryGidSeesTheMethodScriptFromItsStart) {
  server_.SetScript("/busi.Busi/A",
                    {{StatusCode::ABORTED, ""}, {StatusCode::UNAVAILABLE, ""}});

  EXPECT_EQ(client_->CallAs("/busi.Busi/A", "g1"), StatusCode::ABORTED);
  EXPECT_EQ(client_->CallAs("/busi.Busi/A", "g2"), StatusCode::ABORTED);
  EXPECT_EQ(client_->CallAs("/busi.Busi/A", "g1"), StatusCode::UNAVAILABLE);
  EXPECT_EQ(client_->CallAs("/busi.Busi/A", "g1"), StatusCode::OK);
  EXPECT_EQ(client_->CallAs("/busi.Busi/A", "g2"), StatusCode::UNAVAILABLE);
}

TEST_F(ScriptedBranchServerTest, GidScriptReplacesMethodScriptForThatGid) {
  server_.SetScript("/busi.Busi/A", {{StatusCode::ABORTED, ""}});
  server_.SetScript("/busi.Busi/A", "g2", {{StatusCode::INTERNAL, ""}});

  EXPECT_EQ(client_->CallAs("/busi.Busi/A", "g2"), StatusCode::INTERNAL);
  EXPECT_EQ(client_->CallAs("/busi.Busi/A", "g2"), StatusCode::OK);
  EXPECT_EQ(client_->CallAs("/busi.Busi/A", "g1"), StatusCode::ABORTED);
}

TEST_F(ScriptedBranchServerTest, SetScriptAgainRestartsIt) {
  server_.SetScript("/busi.Busi/A", {{StatusCode::ABORTED, ""}});
  EXPECT_EQ(client_->CallAs("/busi.Busi/A", "g1"), StatusCode::ABORTED);
  EXPECT_EQ(client_->CallAs("/busi.Busi/A", "g1"), StatusCode::OK);
  server_.SetScript("/busi.Busi/A", {{StatusCode::ABORTED, ""}});
  EXPECT_EQ(client_->CallAs("/busi.Busi/A", "g1"), StatusCode::ABORTED);
}

TEST_F(ScriptedBranchServerTest, GlobalDefaultAppliesToUnscriptedMethods) {
  server_.SetDefault({StatusCode::UNAVAILABLE, "try later"});
  server_.SetDefault("/busi.Busi/B", {});

  Reply reply = client_->Call("/any.Service/Method", "");
  EXPECT_EQ(reply.status.error_code(), StatusCode::UNAVAILABLE);
  EXPECT_EQ(reply.status.error_message(), "try later");
  EXPECT_EQ(client_->CallAs("/busi.Busi/B", ""), StatusCode::OK);
}

TEST_F(ScriptedBranchServerTest, DelayedAnswerDoesNotHoldUpOtherCalls) {
  server_.SetScript("/busi.Busi/Slow", {{StatusCode::OK, "", 600}});

  auto start = std::chrono::steady_clock::now();
  std::future<Reply> slow = std::async(std::launch::async, [this] {
    return client_->Call("/busi.Busi/Slow", "");
  });
  ASSERT_TRUE(server_.WaitForCalls(1, absl::Seconds(5)));
  EXPECT_TRUE(client_->Call("/busi.Busi/Fast", "").status.ok());
  EXPECT_EQ(slow.wait_for(std::chrono::seconds(0)),
            std::future_status::timeout);

  EXPECT_TRUE(slow.get().status.ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(550));
}

TEST_F(ScriptedBranchServerTest, DelayPastClientDeadlineTimesOutTheClient) {
  server_.SetScript("/busi.Busi/Slow", {{StatusCode::OK, "", 5000}});

  auto start = std::chrono::steady_clock::now();
  Reply reply =
      client_->Call("/busi.Busi/Slow", "", {}, std::chrono::milliseconds(200));
  EXPECT_EQ(reply.status.error_code(), StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(ScriptedBranchServerTest, ShutdownCancelsDelayedCallsPromptly) {
  server_.SetScript("/busi.Busi/Slow", {{StatusCode::OK, "", 30000}});
  std::future<Reply> slow = std::async(std::launch::async, [this] {
    return client_->Call("/busi.Busi/Slow", "");
  });
  ASSERT_TRUE(server_.WaitForCalls(1, absl::Seconds(5)));

  auto start = std::chrono::steady_clock::now();
  server_.Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_FALSE(slow.get().status.ok());
  server_.Shutdown();  // Idempotent.
  EXPECT_EQ(server_.Calls().size(), 1u);
}

TEST_F(ScriptedBranchServerTest, CountsAndFiltersCallsByGidAndOp) {
  client_->Call("/busi.Busi/A", "", {{"dtm-gid", "g1"}, {"dtm-op", "action"}});
  client_->Call("/busi.Busi/A", "", {{"dtm-gid", "g1"}, {"dtm-op", "action"}});
  client_->Call("/busi.Busi/B", "",
                {{"dtm-gid", "g1"}, {"dtm-op", "compensate"}});
  client_->Call("/busi.Busi/A", "", {{"dtm-gid", "g2"}, {"dtm-op", "action"}});

  EXPECT_EQ(server_.CountCalls("g1", "action"), 2);
  EXPECT_EQ(server_.CountCalls("g1", "compensate"), 1);
  EXPECT_EQ(server_.CountCalls("g3", "action"), 0);
  std::vector<RecordedCall> g1 = server_.CallsFor("g1");
  ASSERT_EQ(g1.size(), 3u);
  EXPECT_EQ(g1[2].method, "/busi.Busi/B");
}

TEST_F(ScriptedBranchServerTest, WaitForCallsTimesOutWhenNothingArrives) {
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(server_.WaitForCalls(1, absl::Milliseconds(100)));
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(90));
  EXPECT_FALSE(server_.WaitForCalls(
      [](const std::vector<RecordedCall>& calls) {
        return calls.size() == 1 && calls[0].op == "compensate";
      },
      absl::Milliseconds(10)));
}

TEST_F(ScriptedBranchServerTest, WaitForCallsWakesWhenPredicateHolds) {
  std::thread caller([this] {
    client_->Call("/busi.Busi/A", "", {{"dtm-gid", "g"}, {"dtm-op", "try"}});
  });
  EXPECT_TRUE(server_.WaitForCalls(
      [](const std::vector<RecordedCall>& calls) {
        return !calls.empty() && calls.back().op == "try";
      },
      absl::Seconds(10)));
  caller.join();
}

}  // namespace
}  // namespace dtmd::testing
