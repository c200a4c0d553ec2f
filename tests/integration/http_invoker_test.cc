// HttpBranchInvoker against a loopback HTTP branch server: what is sent
// (method, query parameters, headers, body) and how each answer is
// classified, as the modes see it (txn::ClassifyAnswer).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "grpcpp/support/status.h"
#include "gtest/gtest.h"
#include "server/http_branch_invoker.h"
#include "server/txn/outcome.h"
#include "tests/integration/http_branch_server.h"

namespace dtmd {
namespace {

using ::dtmd::testing::HttpBranchServer;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using txn::BranchOutcome;

// One call's answer, waited for.
class Waiter {
 public:
  std::function<void(BranchAnswer)> Callback() {
    return [this](BranchAnswer a) {
      answer_ = std::move(a);
      done_.Notify();
    };
  }
  BranchAnswer Get() {
    EXPECT_TRUE(done_.WaitForNotificationWithTimeout(absl::Seconds(20)));
    return answer_;
  }

 private:
  absl::Notification done_;
  BranchAnswer answer_;
};

BranchCall MakeCall(const std::string& url, std::string payload,
                    const std::string& trans_type = "saga") {
  BranchCall call;
  call.url = url;
  call.payload = std::move(payload);
  call.timeout_ms = 2000;
  call.metadata = {{"dtm-gid", "g 1&x"},
                   {"dtm-trans_type", trans_type},
                   {"dtm-branch_id", "01"},
                   {"dtm-op", "action"},
                   {"dtm-dtm", "dtmd.test:36790"},
                   {"x-tenant", "t-7"},
                   {"trace-bin", std::string("\x01\x02", 2)}};
  return call;
}

class HttpInvokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start().ok());
    auto invoker = HttpBranchInvoker::Create();
    ASSERT_TRUE(invoker.ok()) << invoker.status();
    invoker_ = *std::move(invoker);
  }

  BranchAnswer CallWith(HttpBranchServer::Reply reply,
                        const std::string& payload = "{}") {
    server_.SetHandler(
        [reply](const HttpBranchServer::Request&) { return reply; });
    Waiter waiter;
    invoker_->Call(MakeCall(server_.Url("/api/busi"), payload),
                   waiter.Callback());
    return waiter.Get();
  }
  static BranchOutcome Outcome(const BranchAnswer& answer) {
    return txn::ClassifyAnswer(answer.code, answer.message,
                               /*failure_allowed=*/true);
  }

  HttpBranchServer server_;
  std::unique_ptr<HttpBranchInvoker> invoker_;
};

TEST_F(HttpInvokerTest, PostsThePayloadWithDtmQueryParamsAndHeaders) {
  BranchAnswer answer = CallWith({}, R"({"amount":30})");
  EXPECT_EQ(answer.code, 0) << answer.message;
  EXPECT_EQ(Outcome(answer), BranchOutcome::kSuccess);
  std::vector<HttpBranchServer::Request> requests = server_.Requests();
  ASSERT_EQ(requests.size(), 1u);
  const HttpBranchServer::Request& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/api/busi");
  EXPECT_EQ(r.body, R"({"amount":30})");
  EXPECT_EQ(r.query.at("gid"), "g 1&x") << "escaped and decoded back";
  EXPECT_EQ(r.query.at("trans_type"), "saga");
  EXPECT_EQ(r.query.at("branch_id"), "01");
  EXPECT_EQ(r.query.at("op"), "action");
  EXPECT_EQ(r.query.size(), 4u) << "no dtm parameter, as DTM";
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
  EXPECT_EQ(r.headers.at("x-tenant"), "t-7");
  EXPECT_EQ(r.headers.at("trace-bin"), "AQI=") << "-bin values as base64";
  EXPECT_EQ(r.headers.count("dtm-gid"), 0u);
  EXPECT_EQ(r.headers.count("dtm-dtm"), 0u);
}

TEST_F(HttpInvokerTest, EmptyPayloadIsAGetExceptForXa) {
  EXPECT_EQ(CallWith({}, "").code, 0);
  Waiter xa;
  invoker_->Call(MakeCall(server_.Url("/xa?mode=1"), "", "xa"), xa.Callback());
  EXPECT_EQ(xa.Get().code, 0);
  std::vector<HttpBranchServer::Request> requests = server_.Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].body, "");
  EXPECT_EQ(requests[1].method, "POST") << "XA is always POSTed";
  EXPECT_EQ(requests[1].query.at("mode"), "1") << "the URL's own query stays";
  EXPECT_EQ(requests[1].query.at("trans_type"), "xa");
}

TEST_F(HttpInvokerTest, ClassifiesAnswersAsDtm) {
  struct Case {
    int status;
    std::string body;
    BranchOutcome outcome;
  };
  const std::vector<Case> cases = {
      {200, R"({"dtm_result":"SUCCESS"})", BranchOutcome::kSuccess},
      {200, "", BranchOutcome::kSuccess},
      {409, R"({"error":"insufficient"})", BranchOutcome::kFailure},
      {425, "", BranchOutcome::kOngoing},
      {200, R"({"dtm_result":"FAILURE"})", BranchOutcome::kFailure},
      {200, R"({"dtm_result":"ONGOING"})", BranchOutcome::kOngoing},
      {500, R"({"error":"FAILURE"})", BranchOutcome::kFailure},
      {409, "ONGOING", BranchOutcome::kOngoing},  // ONGOING is checked first.
      {500, "boom", BranchOutcome::kUnknown},
      {404, "not found", BranchOutcome::kUnknown},
      {201, "", BranchOutcome::kUnknown},
  };
  for (const Case& c : cases) {
    BranchAnswer answer = CallWith({c.status, c.body});
    EXPECT_EQ(Outcome(answer), c.outcome)
        << c.status << " " << c.body << " -> " << answer.code << " "
        << answer.message;
    if (c.outcome != BranchOutcome::kSuccess) {
      EXPECT_THAT(answer.message,
                  StartsWith(absl::StrCat("HTTP ", c.status, ": ", c.body)));
    }
  }
  // A failure counts only where the mode gives it a meaning.
  BranchAnswer conflict = CallWith({409, "no"});
  EXPECT_EQ(txn::ClassifyAnswer(conflict.code, conflict.message, false),
            BranchOutcome::kUnknown);
}

TEST_F(HttpInvokerTest, FindsTheWordsAnywhereInALongBodyAndKeepsItsStart) {
  const std::string filler(100000, 'x');
  BranchAnswer answer = CallWith({500, filler + "FAILURE" + filler});
  EXPECT_EQ(Outcome(answer), BranchOutcome::kFailure);
  EXPECT_LT(answer.message.size(), 400u);
  EXPECT_THAT(answer.message, StartsWith("HTTP 500: xxxx"));
}

TEST_F(HttpInvokerTest, TimeoutIsUnknownWithDeadlineExceeded) {
  HttpBranchServer::Reply slow;
  slow.delay = absl::Seconds(5);
  server_.SetHandler([slow](const HttpBranchServer::Request&) { return slow; });
  BranchCall call = MakeCall(server_.Url("/slow"), "{}");
  call.timeout_ms = 300;
  Waiter waiter;
  const absl::Time start = absl::Now();
  invoker_->Call(std::move(call), waiter.Callback());
  BranchAnswer answer = waiter.Get();
  EXPECT_EQ(answer.code, static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED))
      << answer.message;
  EXPECT_THAT(answer.message, HasSubstr("timed out"));
  EXPECT_EQ(Outcome(answer), BranchOutcome::kUnknown);
  EXPECT_LT(absl::Now() - start, absl::Seconds(4)) << "the deadline applies";
}

TEST_F(HttpInvokerTest, ConnectionRefusedIsUnknownWithUnavailable) {
  // A port that was just free: bound, then closed without listening.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  Waiter waiter;
  invoker_->Call(
      MakeCall(absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port), "/x"),
               "{}"),
      waiter.Callback());
  BranchAnswer answer = waiter.Get();
  EXPECT_EQ(answer.code, static_cast<int>(grpc::StatusCode::UNAVAILABLE))
      << answer.message;
  EXPECT_THAT(answer.message, HasSubstr("HTTP call failed"));
  EXPECT_EQ(Outcome(answer), BranchOutcome::kUnknown);
}

TEST_F(HttpInvokerTest, ConnectionsAreKeptAliveAndBoundedPerHost) {
  for (int i = 0; i < 5; ++i) EXPECT_EQ(CallWith({}).code, 0);
  EXPECT_EQ(server_.connections(), 1) << "one kept-alive connection reused";

  // At most 2 connections to the host however many calls are in flight.
  HttpInvokerOptions options;
  options.max_host_connections = 2;
  auto bounded = HttpBranchInvoker::Create(options);
  ASSERT_TRUE(bounded.ok());
  HttpBranchServer::Reply slow;
  slow.delay = absl::Milliseconds(100);
  server_.SetHandler([slow](const HttpBranchServer::Request&) { return slow; });
  const int before = server_.connections();
  constexpr int kCalls = 10;
  std::atomic<int> ok{0};
  absl::Notification all_done;
  std::atomic<int> left{kCalls};
  for (int i = 0; i < kCalls; ++i) {
    (*bounded)->Call(MakeCall(server_.Url("/p"), "{}"), [&](BranchAnswer a) {
      if (a.code == 0) ++ok;
      if (--left == 0) all_done.Notify();
    });
  }
  ASSERT_TRUE(all_done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_EQ(ok.load(), kCalls);
  EXPECT_LE(server_.connections() - before, 2);
}

TEST_F(HttpInvokerTest, CancelAllAnswersCallsInFlight) {
  HttpBranchServer::Reply slow;
  slow.delay = absl::Seconds(10);
  server_.SetHandler([slow](const HttpBranchServer::Request&) { return slow; });
  BranchCall call = MakeCall(server_.Url("/hang"), "{}");
  call.timeout_ms = 30000;
  Waiter waiter;
  invoker_->Call(std::move(call), waiter.Callback());
  ASSERT_TRUE(server_.WaitForRequests(1, absl::Seconds(10)));
  invoker_->CancelAll();
  EXPECT_EQ(waiter.Get().code, static_cast<int>(grpc::StatusCode::CANCELLED));
  // The invoker still works afterwards.
  EXPECT_EQ(CallWith({}).code, 0);
}

TEST_F(HttpInvokerTest, DestructionAnswersCallsInFlight) {
  HttpBranchServer::Reply slow;
  slow.delay = absl::Seconds(10);
  server_.SetHandler([slow](const HttpBranchServer::Request&) { return slow; });
  BranchCall call = MakeCall(server_.Url("/hang"), "{}");
  call.timeout_ms = 30000;
  Waiter waiter;
  invoker_->Call(std::move(call), waiter.Callback());
  ASSERT_TRUE(server_.WaitForRequests(1, absl::Seconds(10)));
  invoker_.reset();
  EXPECT_EQ(waiter.Get().code, static_cast<int>(grpc::StatusCode::CANCELLED));
}

TEST_F(HttpInvokerTest, RoutingSendsHttpUrlsToHttpAndTheRestToGrpc) {
  struct Recorder : BranchInvoker {
    void Call(BranchCall call,
              std::function<void(BranchAnswer)> done) override {
      urls.push_back(call.url);
      done({});
    }
    void CancelAll() override { ++cancels; }
    std::vector<std::string> urls;
    int cancels = 0;
  };
  Recorder grpc;
  Recorder http;
  RoutingBranchInvoker routing(&grpc, &http);
  for (const char* url : {"h:1/a.B/C", "http://h/x", "HTTPS://h:8443/y"}) {
    routing.Call(MakeCall(url, ""), [](BranchAnswer) {});
  }
  EXPECT_EQ(grpc.urls, std::vector<std::string>{"h:1/a.B/C"});
  EXPECT_EQ(http.urls,
            (std::vector<std::string>{"http://h/x", "HTTPS://h:8443/y"}));
  routing.CancelAll();
  EXPECT_EQ(grpc.cancels + http.cancels, 2);
}

TEST(HttpAnswerTest, MessageNamesTheStatusAndIsValidUtf8) {
  BranchAnswer a = HttpAnswer(503, "down \xff", false, false);
  EXPECT_EQ(a.code, static_cast<int>(grpc::StatusCode::UNKNOWN));
  EXPECT_EQ(a.message, "HTTP 503: down ?");
  EXPECT_EQ(HttpAnswer(200, "anything", false, false).code, 0);
}

}  // namespace
}  // namespace dtmd
