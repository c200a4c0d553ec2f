// Overload: a Submit flood while the branch hangs for its full
// RequestTimeout. dtmd keeps a bounded number of transactions in memory
// (--max_active_transactions), stores the rest, refuses what it cannot
// queue with RESOURCE_EXHAUSTED, keeps its RSS under the README's bound,
// and, once the branch answers again, finishes every saga it acknowledged.
#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "dtmd/client.h"
#include "gtest/gtest.h"
#include "tests/integration/branch_server.h"
#include "tests/integration/dtmd_process.h"

namespace dtmd::testing {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

// README "Bounds": peak RSS of dtmd under this flood.
constexpr int64_t kRssBoundKib = 256 * 1024;

// VmHWM (peak resident set) of a process, KiB; -1 if unreadable.
int64_t PeakRssKib(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    if (absl::ConsumePrefix(&rest, "VmHWM:")) {
      rest = absl::StripAsciiWhitespace(rest);
      absl::ConsumeSuffix(&rest, " kB");
      int64_t kib = -1;
      if (absl::SimpleAtoi(rest, &kib)) return kib;
    }
  }
  return -1;
}

TEST(OverloadTest, HangingBranchUnderASubmitFloodStaysBoundedAndFinishes) {
  ScriptedBranchServer branches;
  ASSERT_TRUE(branches.Start().ok());
  // Every call hangs past dtmd's deadline (RequestTimeout 1 s).
  branches.SetDefault(Answer{grpc::StatusCode::OK, "", 1500});
  DtmdProcess dtmd(
      MakeTempDir("overload"),
      {"--retry_interval=1", "--cron_interval=1", "--max_retry_interval=2",
       "--request_timeout=1", "--max_active_transactions=100"});
  ASSERT_TRUE(dtmd.Start().ok());

  const absl::Duration flood = absl::Seconds(kSanitized ? 3 : 8);
  constexpr int kClients = 4;
  absl::Mutex mu;
  std::vector<std::string> acknowledged;
  std::atomic<int> refused{0};
  std::atomic<int> other_errors{0};
  std::vector<std::thread> clients;
  const absl::Time end = absl::Now() + flood;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; absl::Now() < end; ++i) {
        const std::string gid = absl::StrCat("flood-", c, "-", i);
        dtmd::client::Saga saga(dtmd.dtm(), gid);
        saga.Add(branches.Url("/busi.Busi/Hang"),
                 branches.Url("/busi.Busi/Undo"), "payload");
        saga.Add(branches.Url("/busi.Busi/Hang2"),
                 branches.Url("/busi.Busi/Undo2"), "payload");
        grpc::Status s = saga.Submit();
        if (s.ok()) {
          absl::MutexLock lock(&mu);
          acknowledged.push_back(gid);
        } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
          ++refused;
        } else {
          ++other_errors;
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  const int64_t flood_rss = PeakRssKib(dtmd.pid());
  ASSERT_GT(acknowledged.size(), 100u);
  EXPECT_EQ(other_errors.load(), 0);
  // While the branch hangs, at most --max_active_transactions sagas are
  // driven: each call lasts dtmd's 1 s deadline, so no more than 100 calls
  // overlap at any moment as dtmd sees them. The branch sees arrival times,
  // which a loaded machine delays and bunches, so it may count up to twice
  // that; without the limit it would count thousands.
  {
    const int64_t now_ms = absl::ToUnixMillis(absl::Now());
    std::vector<std::pair<int64_t, int>> events;
    for (const RecordedCall& call : branches.Calls()) {
      if (call.time_ms >= now_ms) continue;  // only calls that hung.
      events.emplace_back(call.time_ms, 1);
      events.emplace_back(call.time_ms + 1000, -1);
    }
    std::sort(events.begin(), events.end());
    int open = 0;
    int most = 0;
    for (const auto& [time, delta] : events) {
      open += delta;
      most = std::max(most, open);
    }
    EXPECT_LE(most, 200);
    EXPECT_GE(most, 50) << "the limit was reached";
  }

  // The branch recovers: every acknowledged saga finishes.
  branches.SetDefault(Answer{grpc::StatusCode::OK, "", 0});
  const absl::Time deadline =
      absl::Now() + absl::Seconds(kSanitized ? 600 : 240);
  size_t next = 0;
  while (next < acknowledged.size() && absl::Now() < deadline) {
    auto reply = dtmd.GetTransaction(acknowledged[next]);
    ASSERT_TRUE(reply.ok()) << acknowledged[next] << ": " << reply.status();
    if (reply->transaction().status() == "succeed") {
      ++next;
    } else {
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  EXPECT_EQ(next, acknowledged.size())
      << "sagas not finished: " << acknowledged.size() - next;
  const int64_t peak_rss = PeakRssKib(dtmd.pid());
  std::cout << "acknowledged " << acknowledged.size() << ", refused "
            << refused.load() << ", peak RSS " << flood_rss / 1024
            << " MiB during the flood, " << peak_rss / 1024 << " MiB in all\n";
  if (!kSanitized) {
    EXPECT_GT(peak_rss, 0);
    EXPECT_LT(peak_rss, kRssBoundKib);
  }
  EXPECT_EQ(dtmd.Stop(), 0);
}

}  // namespace
}  // namespace dtmd::testing
