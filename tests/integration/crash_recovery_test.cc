// Crash recovery: sagas acknowledged by dtmd finish after dtmd is killed with
// SIGKILL mid-flight and restarted on the same data directory.
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dtmd/client.h"
#include "gtest/gtest.h"
#include "tests/integration/branch_server.h"
#include "tests/integration/dtmd_process.h"

namespace dtmd::testing {
namespace {

constexpr int kSagas = 300;
constexpr int kKillAfterAcks = 200;
constexpr int kSubmitters = 8;

bool ShouldFail(int i) { return i % 3 == 0; }

// A dtmd with its own branch server and data directory; StartDtmd() starts
// it, again after a kill or a stop, on the same directory.
class RestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(branches_.Start().ok());
    data_dir_ = MakeTempDir("restart");
    StartDtmd();
  }

  void StartDtmd() {
    dtmd_ = std::make_unique<DtmdProcess>(
        data_dir_,
        std::vector<std::string>{"--retry_interval=1", "--cron_interval=1"});
    ASSERT_TRUE(dtmd_->Start().ok());
  }

  ScriptedBranchServer branches_;
  std::string data_dir_;
  std::unique_ptr<DtmdProcess> dtmd_;
};

class CrashRecoveryTest : public RestartTest {};
class GracefulShutdownTest : public RestartTest {};

TEST_F(CrashRecoveryTest, EveryAcknowledgedSagaFinishesAfterKillNine) {
  // Slow branches keep many sagas in flight when the kill lands.
  branches_.SetDefault(Answer{grpc::StatusCode::OK, "", 150});

  std::mutex mu;
  std::map<std::string, bool> acked;  // gid -> expected to fail
  std::atomic<int> next{0};
  std::atomic<int> ack_count{0};
  std::vector<std::thread> submitters;
  for (int t = 0; t < kSubmitters; ++t) {
    submitters.emplace_back([&] {
      for (int i = next++; i < kSagas; i = next++) {
        std::string gid = absl::StrCat("crash-", i);
        if (ShouldFail(i)) {
          branches_.SetScript("/busi.Busi/Pay", gid,
                              {{grpc::StatusCode::ABORTED, "no money", 100}});
        }
        dtmd::client::Saga saga(dtmd_->dtm(), gid);
        saga.Add(branches_.Url("/busi.Busi/Order"),
                 branches_.Url("/busi.Busi/OrderUndo"), "o")
            .Add(branches_.Url("/busi.Busi/Stock"),
                 branches_.Url("/busi.Busi/StockUndo"), "s")
            .Add(branches_.Url("/busi.Busi/Pay"),
                 branches_.Url("/busi.Busi/PayUndo"), "p")
            .SetCallTimeout(std::chrono::seconds(5));
        grpc::Status status = saga.Submit();
        if (!status.ok()) return;  // dtmd is gone: unacknowledged.
        std::lock_guard<std::mutex> lock(mu);
        acked[gid] = ShouldFail(i);
        ++ack_count;
      }
    });
  }
  while (ack_count < kKillAfterAcks && next < kSagas) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  dtmd_->Kill();
  for (std::thread& t : submitters) t.join();
  const std::vector<RecordedCall> calls_at_kill = branches_.Calls();
  const int calls_before_restart = static_cast<int>(calls_at_kill.size());
  ASSERT_GE(static_cast<int>(acked.size()), kKillAfterAcks);

  StartDtmd();
  int in_flight_at_kill = 0;
  for (const auto& [gid, should_fail] : acked) {
    auto reply =
        dtmd_->WaitForStatus(gid, {"succeed", "failed"}, absl::Seconds(60));
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->transaction().status(), should_fail ? "failed" : "succeed")
        << gid;
    for (const auto& b : reply->branches()) {
      if (should_fail) {
        // Every step was reachable (steps 1 and 2 succeed), so every
        // compensation ran; the failing action stays failed.
        if (b.op() == "compensate") {
          EXPECT_EQ(b.status(), "succeed") << gid;
        }
      } else if (b.op() == "action") {
        EXPECT_EQ(b.status(), "succeed") << gid;
      }
    }
    int actions_before = 0;
    for (const RecordedCall& c : calls_at_kill) {
      if (c.gid == gid && c.op == "action") ++actions_before;
    }
    if (actions_before < 3) ++in_flight_at_kill;
  }
  // The test only means something if the kill caught sagas mid-flight.
  EXPECT_GT(in_flight_at_kill, 0);
  EXPECT_GT(static_cast<int>(branches_.Calls().size()), calls_before_restart);
  RecordProperty("acknowledged", static_cast<int>(acked.size()));
  RecordProperty("calls_before_restart", calls_before_restart);
  RecordProperty("unfinished_at_kill", in_flight_at_kill);
  EXPECT_EQ(dtmd_->Stop(), 0);
}

TEST_F(GracefulShutdownTest, SigtermAnswersWaitersExitsZeroAndWorkResumes) {
  const std::string gid = "sigterm-1";
  branches_.SetScript("/busi.Busi/Slow", gid,
                      {{grpc::StatusCode::OK, "", 1500}});

  grpc::Status submitted;
  std::thread client([&] {
    dtmd::client::Saga saga(dtmd_->dtm(), gid);
    submitted = saga.Add(branches_.Url("/busi.Busi/Slow"),
                         branches_.Url("/busi.Busi/SlowUndo"), "")
                    .Add(branches_.Url("/busi.Busi/Next"),
                         branches_.Url("/busi.Busi/NextUndo"), "")
                    .SetRequestTimeout(5)
                    .SetWaitResult(true)
                    .Submit();
  });
  ASSERT_TRUE(branches_.WaitForCalls(1, absl::Seconds(10)));
  EXPECT_EQ(dtmd_->Stop(), 0) << "SIGTERM must end dtmd with exit code 0";
  client.join();
  // The waiting caller was answered, not left hanging: the saga had not
  // ended, so the answer says so.
  EXPECT_EQ(submitted.error_code(), grpc::StatusCode::UNAVAILABLE)
      << submitted.error_message();

  StartDtmd();
  auto reply = dtmd_->WaitForStatus(gid, {"succeed"}, absl::Seconds(30));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_GE(branches_.CountCalls(gid, "action"), 2);
  EXPECT_EQ(dtmd_->Stop(), 0);
}

TEST_F(GracefulShutdownTest, SigtermDoesNotWaitForABranchCallThatOutlastsIt) {
  const std::string gid = "sigterm-long-1";
  // The first call would answer after 60 s, far past the shutdown's wait.
  branches_.SetScript("/busi.Busi/VerySlow", gid,
                      {{grpc::StatusCode::OK, "", 60000}});
  dtmd::client::Saga saga(dtmd_->dtm(), gid);
  ASSERT_TRUE(saga.Add(branches_.Url("/busi.Busi/VerySlow"),
                       branches_.Url("/busi.Busi/VerySlowUndo"), "")
                  .SetRequestTimeout(120)
                  .Submit()
                  .ok());
  ASSERT_TRUE(branches_.WaitForCalls(1, absl::Seconds(10)));
  // Stop() gives dtmd 20 s before it kills it: dtmd must not wait the 60 s
  // (it cancels the call), and must exit cleanly.
  EXPECT_EQ(dtmd_->Stop(), 0);

  StartDtmd();
  auto reply = dtmd_->WaitForStatus(gid, {"succeed"}, absl::Seconds(30));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(dtmd_->Stop(), 0);
}

}  // namespace
}  // namespace dtmd::testing
