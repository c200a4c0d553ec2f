// Retry alerts against a real dtmd: a branch that keeps failing is posted
// to the --alert_webhook (a tiny HTTP server in the test) when its retries
// reach --alert_retry_limit and at each doubling only, with DTM's fields and
// dtmd's; a webhook that is down or hangs never holds transactions up.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "dtmd/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/branch_server.h"
#include "tests/integration/dtmd_process.h"
#include "tests/integration/http_sink.h"

namespace dtmd::testing {
namespace {

namespace admin_v1 = ::dtmd::admin::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(30);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Lines of `text` that contain every one of `parts` (and, when `severity`
// is set, that glog wrote at that severity: they start with its letter).
int CountLines(const std::string& text, const std::vector<std::string>& parts,
               char severity = 0) {
  int count = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    bool all = severity == 0 || (!line.empty() && line[0] == severity);
    for (const std::string& part : parts) {
      all = all && absl::StrContains(line, part);
    }
    count += all ? 1 : 0;
  }
  return count;
}

// A loopback port nothing listens on (bound, then closed).
int DeadPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class AlertTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(branches_.Start().ok()); }
  void TearDown() override {
    if (dtmd_ != nullptr && dtmd_->pid() > 0) {
      EXPECT_EQ(dtmd_->Stop(), 0) << "dtmd must exit 0 on SIGTERM";
    }
    branches_.Shutdown();
  }

  void StartDtmd(const std::vector<std::string>& flags) {
    const std::string dir = MakeTempDir("alert");
    log_file_ = dir + "/dtmd.log";
    dtmd_ = std::make_unique<DtmdProcess>(dir + "/data", flags);
    dtmd_->set_stderr_file(log_file_);
    absl::Status started = dtmd_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  std::string Url(const std::string& name) {
    return branches_.Url("/busi.Busi/" + name);
  }

  // Submits a one-step saga whose action always answers `answer` and
  // makes dtmd call it `calls` times (the first, then RetryNow each time
  // the previous answer is stored).
  void CallFailingBranch(const std::string& gid, const Answer& answer,
                         int calls) {
    branches_.SetDefault("/busi.Busi/Down", answer);
    ASSERT_TRUE(dtmd::client::Saga(dtmd_->dtm(), gid)
                    .Add(Url("Down"), Url("UndoDown"), "p")
                    .Submit()
                    .ok());
    for (int n = 1; n <= calls; ++n) {
      auto stored = dtmd_->WaitFor(
          gid,
          [n](const admin_v1::GetTransactionReply& reply) {
            for (const admin_v1::Branch& b : reply.branches()) {
              if (b.op() == "action") return b.call_count() >= n;
            }
            return false;
          },
          absl::StrCat("call ", n, " stored"), kWait);
      ASSERT_TRUE(stored.ok()) << stored.status();
      if (n < calls) {
        ASSERT_TRUE(dtmd_->RetryNow(gid).ok());
      }
    }
  }

  ScriptedBranchServer branches_;
  std::unique_ptr<DtmdProcess> dtmd_;
  std::string log_file_;
};

TEST_F(AlertTest, PostsAtTheLimitAndAtEachDoublingOnly) {
  HttpSink sink;
  ASSERT_TRUE(sink.Start().ok());
  // Retries a minute apart: each one here is a RetryNow.
  StartDtmd({"--retry_interval=60", "--cron_interval=1",
             "--alert_retry_limit=2",
             "--alert_webhook=" + sink.Url("/dtm-hook")});
  const std::string gid = "alert-doubling";
  // Nine calls: the first and eight retries; alerts at 2, 4 and 8.
  CallFailingBranch(gid, {grpc::StatusCode::UNAVAILABLE, "backend down", 0}, 9);
  // Posted in the order raised, each raised before the next call: all
  // three are there, and nothing else came before the last.
  ASSERT_TRUE(sink.WaitForRequests(3, kWait));
  std::vector<HttpSink::Request> posts = sink.Requests();
  ASSERT_EQ(posts.size(), 3u);
  std::vector<int64_t> retry_counts;
  for (const HttpSink::Request& post : posts) {
    EXPECT_EQ(post.method, "POST");
    EXPECT_EQ(post.path, "/dtm-hook");
    EXPECT_EQ(post.content_type, "application/json");
    nlohmann::json body = nlohmann::json::parse(post.body, nullptr, false);
    ASSERT_FALSE(body.is_discarded()) << post.body;
    retry_counts.push_back(body.value("retry_count", int64_t{-1}));
    EXPECT_EQ(body.value("gid", ""), gid);
    EXPECT_EQ(body.value("status", ""), "submitted");
    EXPECT_EQ(body.value("trans_type", ""), "saga");
    EXPECT_EQ(body.value("branch_id", ""), "01");
    EXPECT_EQ(body.value("op", ""), "action");
    EXPECT_EQ(body.value("url", ""), Url("Down"));
    EXPECT_EQ(body.value("last_error", ""), "backend down");
    EXPECT_EQ(body.value("last_code", ""), "UNAVAILABLE");
    EXPECT_EQ(body.value("last_code_number", 0), 14);
    // DTM's names for the branch and its error.
    EXPECT_EQ(body.value("branch", ""), Url("Down"));
    EXPECT_EQ(body.value("error", ""), "backend down");
  }
  EXPECT_THAT(retry_counts, ElementsAre(2, 4, 8));

  ASSERT_EQ(dtmd_->Stop(), 0);
  // Logged at WARNING once per alert.
  const std::string log = ReadFile(log_file_);
  EXPECT_EQ(CountLines(log, {"retry alert: gid " + gid}, 'W'), 3) << log;
  EXPECT_EQ(CountLines(log, {gid, ": 8 retries"}), 1) << log;
}

TEST_F(AlertTest, NoAlertsWhenTurnedOff) {
  HttpSink sink;
  ASSERT_TRUE(sink.Start().ok());
  StartDtmd({"--retry_interval=60", "--cron_interval=1",
             "--alert_retry_limit=0",
             "--alert_webhook=" + sink.Url("/dtm-hook")});
  const std::string gid = "alert-off";
  CallFailingBranch(gid, {grpc::StatusCode::INTERNAL, "bug", 0}, 4);
  ASSERT_EQ(dtmd_->Stop(), 0);
  // An alert's WARNING line is written as it is raised, before its post.
  EXPECT_EQ(CountLines(ReadFile(log_file_), {"retry alert"}), 0);
  EXPECT_TRUE(sink.Requests().empty());
}

// Sagas whose action fails three times, retried every second, with an
// alert at every retry: all must end while the webhook is useless.
void RunSagasPastABrokenWebhook(DtmdProcess* dtmd,
                                ScriptedBranchServer* branches,
                                const std::string& prefix) {
  constexpr int kSagas = 10;
  std::vector<std::string> gids;
  for (int i = 0; i < kSagas; ++i) {
    const std::string gid = absl::StrCat(prefix, i);
    branches->SetScript("/busi.Busi/Flaky", gid,
                        {{grpc::StatusCode::UNAVAILABLE, "down", 0},
                         {grpc::StatusCode::UNAVAILABLE, "down", 0},
                         {grpc::StatusCode::UNAVAILABLE, "down", 0}});
    ASSERT_TRUE(dtmd::client::Saga(dtmd->dtm(), gid)
                    .Add(branches->Url("/busi.Busi/Flaky"),
                         branches->Url("/busi.Busi/UndoFlaky"), "p")
                    .Submit()
                    .ok());
    gids.push_back(gid);
  }
  for (const std::string& gid : gids) {
    auto done = dtmd->WaitForStatus(gid, {"succeed"}, kWait);
    ASSERT_TRUE(done.ok()) << gid << ": " << done.status();
  }
}

TEST_F(AlertTest, AWebhookOnADeadPortHoldsNothingUp) {
  const std::string hook = absl::StrCat("http://127.0.0.1:", DeadPort(), "/x");
  StartDtmd({"--retry_interval=1", "--max_retry_interval=1",
             "--cron_interval=1", "--alert_retry_limit=1",
             "--alert_webhook=" + hook});
  RunSagasPastABrokenWebhook(dtmd_.get(), &branches_, "dead-port-");
  ASSERT_EQ(dtmd_->Stop(), 0);
  // The failed posts are logged.
  EXPECT_GE(CountLines(ReadFile(log_file_), {"alert webhook", hook}), 1);
}

TEST_F(AlertTest, AWebhookThatNeverAnswersHoldsNothingUp) {
  HttpSink hung(/*answer=*/false);
  ASSERT_TRUE(hung.Start().ok());
  // Each post waits a minute for its answer, far longer than the sagas take.
  StartDtmd({"--retry_interval=1", "--max_retry_interval=1",
             "--cron_interval=1", "--alert_retry_limit=1",
             "--alert_webhook_timeout=60",
             "--alert_webhook=" + hung.Url("/hook")});
  RunSagasPastABrokenWebhook(dtmd_.get(), &branches_, "hung-");
  EXPECT_TRUE(hung.WaitForRequests(1, kWait));  // it was called, and hangs.
  // Shutdown aborts the hanging post instead of waiting for its timeout.
  const absl::Time stopping = absl::Now();
  EXPECT_EQ(dtmd_->Stop(), 0);
  EXPECT_LT(absl::Now() - stopping, absl::Seconds(30));
}

TEST_F(AlertTest, DtmsEnvironmentNamesSetTheLimitAndTheWebhook) {
  HttpSink sink;
  ASSERT_TRUE(sink.Start().ok());
  // dtmd inherits the test's environment; set only while it starts.
  ::setenv("ALERT_RETRY_LIMIT", "1", 1);
  ::setenv("ALERT_WEB_HOOK", sink.Url("/env-hook").c_str(), 1);
  StartDtmd({"--retry_interval=60", "--cron_interval=1"});
  ::unsetenv("ALERT_RETRY_LIMIT");
  ::unsetenv("ALERT_WEB_HOOK");
  CallFailingBranch("alert-env", {grpc::StatusCode::UNAVAILABLE, "x", 0}, 2);
  ASSERT_TRUE(sink.WaitForRequests(1, kWait));
  const HttpSink::Request post = sink.Requests()[0];
  EXPECT_EQ(post.path, "/env-hook");
  EXPECT_EQ(nlohmann::json::parse(post.body).value("retry_count", 0), 1);
}

TEST_F(AlertTest, ABadWebhookUrlOrLimitStopsStartUp) {
  for (const std::vector<std::string>& flags :
       std::vector<std::vector<std::string>>{
           {"--alert_webhook=ftp://example.com/hook"},
           {"--alert_webhook=http://"},
           {"--alert_retry_limit=-1"},
           {"--alert_webhook_timeout=0"},
           {"--alert_webhook_timeout=3601"}}) {
    DtmdProcess dtmd(MakeTempDir("alert-bad"), flags);
    EXPECT_FALSE(dtmd.Start().ok()) << flags[0];
    EXPECT_NE(dtmd.exit_code(), 0) << flags[0];
  }
}

}  // namespace
}  // namespace dtmd::testing
