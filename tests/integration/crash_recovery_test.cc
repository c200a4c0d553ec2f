// Crash recovery: sagas acknowledged by dtmd end as scripted after dtmd is
// killed with SIGKILL at a chosen point (before any branch answered, after
// some answers, in the middle of compensations) and restarted on the same data
// directory; the calls the branches received obey the saga rules (a ledger
// with DTM's barrier books them). And graceful shutdown: SIGTERM in the middle
// of a saga answers the waiting caller, exits 0 and the saga resumes.
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dtmd/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/branch_server.h"
#include "tests/integration/dtmd_process.h"
#include "tests/integration/kill_at_arrival.h"
#include "tests/integration/ledger_branch_server.h"
#include "tests/integration/ledger_saga.h"
#include "tests/integration/test_scale.h"

namespace dtmd::testing {
namespace {

using ::testing::ElementsAre;

constexpr int kSagas = kSanitizedBuild ? 120 : 300;

// Where the kill lands.
enum class KillPoint {
  // At the 40th action sent, every action held unanswered until the kill.
  kBeforeAnyAnswer,
  // At the 150th action sent; actions answer within 20 ms, so many sagas
  // have some steps done and some not.
  kAfterSomeAnswers,
  // At the 30th compensate sent; compensates answer after 20-80 ms, so many
  // sagas are part way through their rollback.
  kDuringCompensations,
};

std::string KillPointName(const ::testing::TestParamInfo<KillPoint>& info) {
  switch (info.param) {
    case KillPoint::kBeforeAnyAnswer:
      return "BeforeAnyAnswer";
    case KillPoint::kAfterSomeAnswers:
      return "AfterSomeAnswers";
    case KillPoint::kDuringCompensations:
      return "DuringCompensations";
  }
  return "Unknown";
}

class CrashRecoveryTest : public ::testing::TestWithParam<KillPoint> {};

TEST_P(CrashRecoveryTest,
       AcknowledgedSagasEndAsScriptedAndBranchCallsObeyTheRules) {
  LedgerBranchServer ledger;
  ASSERT_TRUE(ledger.Start().ok());
  KillAtArrival killer(&ledger);
  std::string op = "action";
  int count = 0;
  LedgerBranchServer::Delays delays;
  switch (GetParam()) {
    case KillPoint::kBeforeAnyAnswer:
      delays.action_min_ms = delays.action_max_ms = 60000;
      count = 40;
      break;
    case KillPoint::kAfterSomeAnswers:
      delays.action_max_ms = 20;
      count = 150;
      break;
    case KillPoint::kDuringCompensations:
      delays.compensate_min_ms = 20;
      delays.compensate_max_ms = 80;
      op = "compensate";
      count = 30;
      break;
  }
  ledger.SetDelays(delays);
  const std::string data_dir = MakeTempDir("crash");
  auto dtmd = std::make_unique<DtmdProcess>(data_dir, QuickRetryFlags());
  ASSERT_TRUE(dtmd->Start().ok());

  SagaBook book;
  SubmitLoad::Options options;
  options.threads = 8;
  options.max_jobs = kSagas;
  options.gid_prefix = "crash";
  SubmitLoad load(*dtmd, ledger, &book, options);
  killer.Arm(dtmd->pid(), op, count);
  ASSERT_TRUE(killer.WaitFired(30 * Slowness()))
      << "the kill point was never reached";
  dtmd->Kill();
  load.Stop();
  const int64_t calls_at_kill = ledger.EntryCount();
  if (GetParam() == KillPoint::kBeforeAnyAnswer) {
    // Every call was an action still held: nothing had answered, so nothing
    // had failed and nothing was compensated.
    for (const LedgerEntry& e : ledger.Entries()) {
      ASSERT_EQ(e.op, "action") << "#" << e.seq << " " << e.gid;
    }
  }
  ASSERT_GT(book.acked(), 0);

  ledger.SetDelays({});
  dtmd = std::make_unique<DtmdProcess>(data_dir, QuickRetryFlags());
  ASSERT_TRUE(dtmd->Start().ok());
  ExpectEverySagaEndsAsScripted(*dtmd, ledger, book, 60 * Slowness());
  // The kill caught sagas part way: some had `op` calls both before the kill
  // and after the restart.
  const std::vector<LedgerEntry> entries = ledger.Entries();
  std::set<std::string> before_kill;
  std::set<std::string> resumed;
  for (const LedgerEntry& e : entries) {
    if (e.op != op) continue;
    if (e.seq < calls_at_kill) {
      before_kill.insert(e.gid);
    } else if (before_kill.count(e.gid) > 0) {
      resumed.insert(e.gid);
    }
  }
  EXPECT_GT(resumed.size(), 0u);
  EXPECT_EQ(dtmd->Stop(), 0);
  RecordProperty("acknowledged", book.acked());
  RecordProperty("calls_at_kill", static_cast<int>(calls_at_kill));
  RecordProperty("resumed", static_cast<int>(resumed.size()));
}

INSTANTIATE_TEST_SUITE_P(KillPoints, CrashRecoveryTest,
                         ::testing::Values(KillPoint::kBeforeAnyAnswer,
                                           KillPoint::kAfterSomeAnswers,
                                           KillPoint::kDuringCompensations),
                         KillPointName);

// A dtmd with its own scripted branch server and data directory; StartDtmd()
// starts it, again after a stop, on the same directory.
class GracefulShutdownTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(branches_.Start().ok());
    data_dir_ = MakeTempDir("restart");
    StartDtmd();
  }

  void StartDtmd() {
    dtmd_ = std::make_unique<DtmdProcess>(data_dir_, QuickRetryFlags());
    ASSERT_TRUE(dtmd_->Start().ok());
  }

  // "branch_id:op" of every call for gid, in arrival order.
  std::vector<std::string> CallSequence(const std::string& gid) const {
    std::vector<std::string> out;
    for (const RecordedCall& call : branches_.CallsFor(gid)) {
      out.push_back(absl::StrCat(call.branch_id, ":", call.op));
    }
    return out;
  }

  ScriptedBranchServer branches_;
  std::string data_dir_;
  std::unique_ptr<DtmdProcess> dtmd_;
};

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
  // The action in flight at SIGTERM was waited for and its answer stored
  // before the exit: after the restart only the next step is called.
  EXPECT_THAT(CallSequence(gid), ElementsAre("01:action", "02:action"));
  for (const auto& branch : reply->branches()) {
    if (branch.op() != "action") continue;
    EXPECT_EQ(branch.status(), "succeed") << branch.branch_id();
    EXPECT_EQ(branch.call_count(), 1) << branch.branch_id();
  }
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
  // The cancelled call, then exactly one call after the restart.
  EXPECT_THAT(CallSequence(gid), ElementsAre("01:action", "01:action"));
  EXPECT_EQ(dtmd_->Stop(), 0);
}

}  // namespace
}  // namespace dtmd::testing
