// The kill -9 loop for the other modes: dtmd is killed again and again on
// one data directory while client threads run TCC transactions (Prepare,
// RegisterBranch and a Try per branch, then Submit, Abort after a refused
// Try, or nothing so that TimeoutToFail cancels them), two-phase messages
// (Submit after Prepare, Submit alone, or left prepared for the
// QueryPrepared check, which answers "committed" or "rolled back" by gid)
// and workflows (PrepareWorkflow, a recorded step, Submit, or left
// unfinished so that dtmd keeps resuming them), all against a ledger that
// keeps DTM's barrier books. Each cycle kills at another kind of moment:
// after some completed scripts, at the first cancel dtmd sends, in the
// middle of confirms, cancels or msg actions, at a QueryPrepared check or a
// workflow resume (before dtmd can see the answer), or at a random time.
// After the last cycle dtmd starts once more and every transaction must end
// as its client's acknowledgements allow (ledger_modes.h), with no confirm
// after a cancel (or cancel after a confirm) and no action of a rolled back
// msg (DESIGN.md rules 1, 4 and 6).
//
// DTMD_KILL_CYCLES and DTMD_KILL_SEED as for kill_loop_test (default 24
// cycles; 8 under the sanitizers).
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/dtmd_process.h"
#include "tests/integration/kill_loop.h"
#include "tests/integration/ledger_branch_server.h"
#include "tests/integration/ledger_modes.h"
#include "tests/integration/ledger_saga.h"
#include "tests/integration/test_scale.h"

namespace dtmd::testing {
namespace {

constexpr int kDefaultCycles = kSanitizedBuild ? 8 : 24;
constexpr int kTxnsPerCycle = kSanitizedBuild ? 50 : 120;

enum class KillPoint {
  kFirstCancel,    // at the first cancel dtmd sends
  kAfterAcks,      // once the n-th script of the cycle completed
  kMidConfirms,    // at the n-th confirm
  kAtQuery,        // at the n-th QueryPrepared check of a msg
  kMidMsgActions,  // at the n-th msg action
  kMidCancels,     // at the n-th cancel
  kAtResume,       // at the n-th resume of a workflow
  kRandomMoment,   // after a random sleep
};

const char* Name(KillPoint point) {
  switch (point) {
    case KillPoint::kFirstCancel:
      return "first cancel";
    case KillPoint::kAfterAcks:
      return "after acks";
    case KillPoint::kMidConfirms:
      return "mid-confirms";
    case KillPoint::kAtQuery:
      return "at a msg check";
    case KillPoint::kMidMsgActions:
      return "mid-msg actions";
    case KillPoint::kMidCancels:
      return "mid-cancels";
    case KillPoint::kAtResume:
      return "at a workflow resume";
    case KillPoint::kRandomMoment:
      return "random moment";
  }
  return "?";
}

constexpr KillPoint kRotation[] = {
    KillPoint::kFirstCancel, KillPoint::kAfterAcks,     KillPoint::kMidConfirms,
    KillPoint::kAtQuery,     KillPoint::kMidMsgActions, KillPoint::kMidCancels,
    KillPoint::kAtResume,    KillPoint::kRandomMoment};

TEST(KillLoopModesTest,
     TccMsgAndWorkflowsEndAsAcknowledgedAndNoSecondPhaseChangesItsMind) {
  KillLoop loop("kill loop (tcc, msg, workflow)", kDefaultCycles,
                /*max_delay_ms=*/20, "kill-loop-modes");
  ASSERT_TRUE(loop.Start().ok());
  LedgerBranchServer& ledger = loop.ledger();
  ModeBook book;
  int kills_at_cancel = 0;
  for (int cycle = 0; cycle < loop.cycles(); ++cycle) {
    std::unique_ptr<DtmdProcess> dtmd = loop.NewDtmd();
    absl::Status started = dtmd->Start(absl::Seconds(60));
    ASSERT_TRUE(started.ok()) << "cycle " << cycle << ": " << started;
    const KillPoint point = kRotation[cycle % std::size(kRotation)];
    ModeLoad::Options load_options;
    load_options.threads = 4;
    load_options.max_jobs = kTxnsPerCycle;
    load_options.burst = 4;
    load_options.pause_ms = 60;
    load_options.gid_prefix = absl::StrCat("modes", cycle);
    ModeLoad load(*dtmd, &ledger, &book, load_options);
    KillMoment moment;
    switch (point) {
      case KillPoint::kFirstCancel:
        moment.at_op = "cancel";
        break;
      case KillPoint::kAfterAcks:
        moment.after_acks = loop.Uniform(1, kTxnsPerCycle / 2);
        break;
      case KillPoint::kMidConfirms:
        moment.at_op = "confirm";
        moment.at_count = loop.Uniform(1, 25);
        break;
      case KillPoint::kAtQuery:
        moment.at_op = "msg";
        moment.at_count = loop.Uniform(1, 4);
        break;
      case KillPoint::kMidMsgActions:
        moment.at_op = "action";
        moment.at_count = loop.Uniform(1, 30);
        break;
      case KillPoint::kMidCancels:
        moment.at_op = "cancel";
        moment.at_count = loop.Uniform(2, 15);
        break;
      case KillPoint::kAtResume:
        moment.at_op = kLedgerWorkflowName;
        moment.at_count = loop.Uniform(1, 5);
        break;
      case KillPoint::kRandomMoment:
        moment.after_ms = loop.Uniform(0, 1000);
        break;
    }
    const KillReport report = loop.Kill(
        moment, 5 * Slowness(), [&load] { return load.completed(); },
        dtmd.get());
    load.Stop();
    if (report.fired_at_arrival && moment.at_op == "cancel") ++kills_at_cancel;
    std::cout << "cycle " << cycle << ": kill " << Name(point) << " ("
              << report.detail << "); transactions in all " << book.All().size()
              << ", completed " << book.completed() << ", ledger calls "
              << ledger.EntryCount() << ", violations so far "
              << ledger.Violations().size() << std::endl;
  }
  EXPECT_GT(loop.arrival_kills(), 0)
      << "no kill landed at a chosen ledger arrival";

  std::unique_ptr<DtmdProcess> dtmd = loop.NewDtmd();
  const int64_t resumed_since = ledger.EntryCount();
  absl::Status started = dtmd->Start(absl::Seconds(60));
  ASSERT_TRUE(started.ok()) << started;
  std::map<std::string, int> tally;
  const std::vector<std::string> problems = FinishAndAuditModes(
      *dtmd, ledger, book.All(), resumed_since, 60 * Slowness(), &tally);
  EXPECT_TRUE(problems.empty()) << problems.size() << " problems:\n"
                                << SummarizeProblems(problems);
  const std::vector<std::string> violations = ledger.Violations();
  EXPECT_TRUE(violations.empty())
      << violations.size() << " violations in the ledger's books:\n"
      << SummarizeProblems(violations);
  for (const auto& [end, count] : tally) {
    std::cout << "  " << end << ": " << count << std::endl;
  }
  std::cout << "kills at a cancel: " << kills_at_cancel << std::endl;
  EXPECT_EQ(dtmd->Stop(), 0);
  ::testing::Test::RecordProperty("cycles", loop.cycles());
  ::testing::Test::RecordProperty("transactions",
                                  static_cast<int>(book.All().size()));
  ::testing::Test::RecordProperty("ledger_calls",
                                  static_cast<int>(ledger.EntryCount()));
}

}  // namespace
}  // namespace dtmd::testing
