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

#include "absl/strings/str_cat.h"
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

// A port that was just free: bound, then closed without listening.
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

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
  const int port = FreePort();
  ASSERT_NE(port, 0);
  Waiter waiter;
  invoker_->Call(MakeCall(absl::StrCat("http://127.0.0.1:", port, "/x"), "{}"),
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

// https against `openssl s_server -www` (which answers 200 with a status
// page) with a self-signed certificate for 127.0.0.1: verified with the CA
// file, refused with the system's roots.
TEST(HttpsInvokerTest, VerifiesTheServerWithTheCaFile) {
  const std::string dir = ::testing::TempDir() + "/https-branch";
  const std::string cert = dir + "/cert.pem";
  const std::string key = dir + "/key.pem";
  ASSERT_EQ(
      std::system(
          absl::StrCat(
              "mkdir -p '", dir,
              "' && openssl req -x509 -newkey ec -pkeyopt "
              "ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "
              "/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout '",
              key, "' -out '", cert, "' 2>/dev/null")
              .c_str()),
      0)
      << "the openssl command is needed (scripts/deps.sh installs it)";
  const int port = FreePort();
  ASSERT_NE(port, 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string accept = absl::StrCat("127.0.0.1:", port);
    execlp("openssl", "openssl", "s_server", "-quiet", "-www", "-accept",
           accept.c_str(), "-cert", cert.c_str(), "-key", key.c_str(),
           static_cast<char*>(nullptr));
    _exit(127);
  }
  HttpInvokerOptions trusting;
  trusting.ca_file = cert;
  auto verified = HttpBranchInvoker::Create(trusting);
  auto system_roots = HttpBranchInvoker::Create();
  ASSERT_TRUE(verified.ok() && system_roots.ok());
  const std::string url = absl::StrCat("https://127.0.0.1:", port, "/");
  BranchAnswer answer;
  // s_server needs a moment to listen.
  for (int attempt = 0; attempt < 100; ++attempt) {
    Waiter waiter;
    (*verified)->Call(MakeCall(url, ""), waiter.Callback());
    answer = waiter.Get();
    if (answer.code == 0) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(answer.code, 0) << answer.message;
  Waiter refused;
  (*system_roots)->Call(MakeCall(url, ""), refused.Callback());
  BranchAnswer unverified = refused.Get();
  EXPECT_EQ(unverified.code, static_cast<int>(grpc::StatusCode::UNAVAILABLE))
      << unverified.message;
  EXPECT_THAT(unverified.message, HasSubstr("certificate"));
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
}

TEST(HttpAnswerTest, MessageNamesTheStatusAndIsValidUtf8) {
  BranchAnswer a = HttpAnswer(503, "down \xff", false, false);
  EXPECT_EQ(a.code, static_cast<int>(grpc::StatusCode::UNKNOWN));
  EXPECT_EQ(a.message, "HTTP 503: down ?");
  EXPECT_EQ(HttpAnswer(200, "anything", false, false).code, 0);
}

}  // namespace
}  // namespace dtmd
