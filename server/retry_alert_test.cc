#include "server/retry_alert.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace dtmd {
namespace {

TEST(RetryAlertTest, AlertPointsAreTheLimitAndItsDoublings) {
  std::vector<int64_t> points;
  for (int64_t retries = 0; retries <= 50; ++retries) {
    if (IsRetryAlertPoint(retries, 3)) points.push_back(retries);
  }
  EXPECT_EQ(points, (std::vector<int64_t>{3, 6, 12, 24, 48}));
  points.clear();
  for (int64_t retries = 0; retries <= 20; ++retries) {
    if (IsRetryAlertPoint(retries, 1)) points.push_back(retries);
  }
  EXPECT_EQ(points, (std::vector<int64_t>{1, 2, 4, 8, 16}));
}

TEST(RetryAlertTest, NoAlertsWithoutALimit) {
  for (int64_t retries = 0; retries <= 20; ++retries) {
    EXPECT_FALSE(IsRetryAlertPoint(retries, 0));
    EXPECT_FALSE(IsRetryAlertPoint(retries, -1));
  }
}

TEST(RetryAlertTest, HugeCountsDoNotOverflow) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_FALSE(IsRetryAlertPoint(kMax, 3));
  EXPECT_TRUE(IsRetryAlertPoint(int64_t{3} << 60, 3));
  EXPECT_TRUE(IsRetryAlertPoint(kMax, kMax));
}

TEST(RetryAlertTest, CodeNames) {
  EXPECT_EQ(StatusCodeName(0), "");
  EXPECT_EQ(StatusCodeName(13), "INTERNAL");
  EXPECT_EQ(StatusCodeName(14), "UNAVAILABLE");
  EXPECT_EQ(StatusCodeName(4), "DEADLINE_EXCEEDED");
  EXPECT_EQ(StatusCodeName(99), "CODE_99");
  EXPECT_EQ(StatusCodeName(-2), "CODE_-2");
}

TEST(RetryAlertTest, JsonHasDtmsFieldsAndDtmds) {
  RetryAlert alert;
  alert.gid = "g1";
  alert.trans_type = "saga";
  alert.status = "submitted";
  alert.branch_id = "01";
  alert.op = "action";
  alert.url = "localhost:1/a.A/B";
  alert.last_error = "down \"quoted\"";
  alert.last_code = 14;
  alert.retry_count = 6;
  const nlohmann::json body = nlohmann::json::parse(RetryAlertJson(alert));
  EXPECT_EQ(body["gid"], "g1");
  EXPECT_EQ(body["status"], "submitted");
  EXPECT_EQ(body["retry_count"], 6);
  EXPECT_EQ(body["branch"], "localhost:1/a.A/B");
  EXPECT_EQ(body["error"], "down \"quoted\"");
  EXPECT_EQ(body["trans_type"], "saga");
  EXPECT_EQ(body["branch_id"], "01");
  EXPECT_EQ(body["op"], "action");
  EXPECT_EQ(body["url"], "localhost:1/a.A/B");
  EXPECT_EQ(body["last_error"], "down \"quoted\"");
  EXPECT_EQ(body["last_code"], "UNAVAILABLE");
  EXPECT_EQ(body["last_code_number"], 14);
}

TEST(RetryAlertTest, JsonOfInvalidUtf8IsStillJson) {
  RetryAlert alert;
  alert.last_error = "bad \xff byte";
  EXPECT_FALSE(nlohmann::json::parse(RetryAlertJson(alert), nullptr, false)
                   .is_discarded());
}

TEST(RetryAlertTest, WebhookUrls) {
  std::string why;
  EXPECT_TRUE(IsWebhookUrl("http://localhost:8080/dtm-hook", &why));
  EXPECT_TRUE(IsWebhookUrl("https://alerts.example.com/x", &why));
  EXPECT_TRUE(IsWebhookUrl("HTTP://host", &why));
  EXPECT_FALSE(IsWebhookUrl("ftp://host/x", &why));
  EXPECT_EQ(why, "must start with http:// or https://");
  EXPECT_FALSE(IsWebhookUrl("localhost:8080/hook", &why));
  EXPECT_FALSE(IsWebhookUrl("http://", &why));
  EXPECT_EQ(why, "has no host");
  EXPECT_FALSE(IsWebhookUrl("http:///path", &why));
}

// A loopback socket that listens but never accepts: connections complete
// (the kernel's backlog) and requests are never answered.
class HungServer {
 public:
  HungServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~HungServer() { ::close(fd_); }
  // Whether a connection is waiting in the backlog within `timeout`.
  bool WaitForConnection(absl::Duration timeout) const {
    pollfd p = {fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) >
           0;
  }
  std::string Url() const { return absl::StrCat("http://127.0.0.1:", port_); }

 private:
  int fd_;
  int port_;
};

TEST(AlertWebhookTest, PostNeverBlocksAndAFullQueueDrops) {
  HungServer server;
  AlertWebhook::Options options;
  options.url = server.Url();
  options.max_queued = 2;
  options.timeout_ms = 60'000;
  AlertWebhook webhook(options);
  // The first is taken by the sender, which then hangs; two wait; the rest
  // are dropped at once.
  const absl::Time start = absl::Now();
  int accepted = webhook.Post("{}") ? 1 : 0;
  ASSERT_TRUE(server.WaitForConnection(absl::Seconds(10)));
  for (int i = 1; i < 20; ++i) accepted += webhook.Post("{}") ? 1 : 0;
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(accepted, 3);
  EXPECT_EQ(webhook.GetStats().dropped, 17);
  // Stop aborts the hanging post instead of waiting out its timeout.
  webhook.Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  const AlertWebhook::Stats stats = webhook.GetStats();
  EXPECT_EQ(stats.sent, 0);
  EXPECT_EQ(stats.failed, 1);
  EXPECT_EQ(stats.dropped, 19);  // and the two still queued.
  EXPECT_FALSE(webhook.Post("{}"));
}

TEST(AlertWebhookTest, ADeadPortFailsEachPost) {
  int port;
  {
    HungServer closed;  // bound, then closed: nothing listens there.
    port = std::stoi(closed.Url().substr(closed.Url().rfind(':') + 1));
  }
  AlertWebhook::Options options;
  options.url = absl::StrCat("http://127.0.0.1:", port, "/hook");
  AlertWebhook webhook(options);
  EXPECT_TRUE(webhook.Post("{}"));
  EXPECT_TRUE(webhook.Post("{}"));
  for (int i = 0; i < 200 && webhook.GetStats().failed < 2; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(webhook.GetStats().failed, 2);
  EXPECT_EQ(webhook.GetStats().sent, 0);
}

}  // namespace
}  // namespace dtmd
