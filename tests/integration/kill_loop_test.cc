// The kill -9 loop: dtmd is killed again and again on one data directory
// while several threads submit sagas (sequential and concurrent, some scripted
// to fail so that they compensate) against a ledger that keeps its books like
// DTM's sub-transaction barrier. Each cycle kills at another kind of moment:
// after some acknowledgements, in the middle of the actions, at the very first
// compensation dtmd sends (before it can see the answer), in the middle of
// compensations, or at a random time. After the last cycle dtmd starts once
// more and every acknowledged saga must end as scripted, with a ledger that
// never saw an action after its compensation (DESIGN.md rules 4 and 6).
//
// A second run of the loop mixes HTTP branches into every saga.
//
// DTMD_KILL_CYCLES and DTMD_KILL_SEED (environment) override the number of
// cycles (default 30; 10 under the sanitizers, which slow dtmd several times
// over) and the seed of the kill moments (default: random, printed).
#include "tests/integration/kill_loop.h"

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/dtmd_process.h"
#include "tests/integration/ledger_branch_server.h"
#include "tests/integration/ledger_saga.h"
#include "tests/integration/test_scale.h"

namespace dtmd::testing {
namespace {

constexpr int kDefaultCycles = kSanitizedBuild ? 10 : 30;
constexpr int kSagasPerCycle = kSanitizedBuild ? 150 : 400;

enum class KillPoint {
  kAfterAcks,         // right after the n-th acknowledgement of the cycle
  kMidActions,        // at the n-th action dtmd sends
  kFirstCompensate,   // at the first compensate dtmd sends
  kMidCompensations,  // at the n-th compensate dtmd sends
  kRandomMoment,      // after a random sleep
};

const char* Name(KillPoint point) {
  switch (point) {
    case KillPoint::kAfterAcks:
      return "after acks";
    case KillPoint::kMidActions:
      return "mid-actions";
    case KillPoint::kFirstCompensate:
      return "first compensate";
    case KillPoint::kMidCompensations:
      return "mid-compensations";
    case KillPoint::kRandomMoment:
      return "random moment";
  }
  return "?";
}

// The first compensation is where the write-ahead rule is at stake, so it
// gets two slots of six.
constexpr KillPoint kRotation[] = {
    KillPoint::kFirstCompensate,  KillPoint::kAfterAcks,
    KillPoint::kMidActions,       KillPoint::kFirstCompensate,
    KillPoint::kMidCompensations, KillPoint::kRandomMoment};

// The loop; with `http_steps` every odd step of every saga is an HTTP
// branch (the same ledger behind an http:// URL).
void RunKillLoop(const std::string& name, int default_cycles, bool http_steps) {
  KillLoop loop(name, default_cycles, /*max_delay_ms=*/30,
                http_steps ? "kill-loop-http" : "kill-loop");
  ASSERT_TRUE(loop.Start().ok());
  LedgerBranchServer& ledger = loop.ledger();
  ledger.SetHttpSteps(http_steps);
  SagaBook book;
  // Gids whose compensate arrival fired a kill.
  std::vector<std::string> killed_at_compensate;
  for (int cycle = 0; cycle < loop.cycles(); ++cycle) {
    std::unique_ptr<DtmdProcess> dtmd = loop.NewDtmd();
    absl::Status started = dtmd->Start(absl::Seconds(60));
    ASSERT_TRUE(started.ok()) << "cycle " << cycle << ": " << started;
    const KillPoint point = kRotation[cycle % std::size(kRotation)];
    SubmitLoad::Options load_options;
    load_options.threads = 4;
    load_options.max_jobs = kSagasPerCycle;
    // Paced, so that the load lasts through the cycle's first seconds.
    load_options.burst = 4;
    load_options.pause_ms = 60;
    load_options.gid_prefix = absl::StrCat("kill", cycle);
    SubmitLoad load(*dtmd, ledger, &book, load_options);
    KillMoment moment;
    switch (point) {
      case KillPoint::kAfterAcks:
        moment.after_acks = loop.Uniform(1, kSagasPerCycle / 2);
        break;
      case KillPoint::kMidActions:
        moment.at_op = "action";
        // The HTTP loop runs a third of the cycles: an early action makes
        // sure at least one kill lands at an arrival, even when a slow
        // (sanitized) build reaches no compensation in time.
        moment.at_count = loop.Uniform(1, http_steps ? 20 : 200);
        // ...armed while the cycle's load still sends (its 150 sagas take
        // well under a second): later, no action may come at all.
        if (http_steps) moment.arm_within_ms = 100;
        break;
      case KillPoint::kFirstCompensate:
        moment.at_op = "compensate";
        break;
      case KillPoint::kMidCompensations:
        moment.at_op = "compensate";
        moment.at_count = loop.Uniform(2, 40);
        break;
      case KillPoint::kRandomMoment:
        moment.after_ms = loop.Uniform(0, 1000);
        break;
    }
    const KillReport report = loop.Kill(
        moment, 5 * Slowness(), [&load] { return load.acked(); }, dtmd.get());
    load.Stop();
    if (report.fired_at_arrival && moment.at_op == "compensate") {
      killed_at_compensate.push_back(report.entry.gid);
    }
    std::cout << "cycle " << cycle << ": kill " << Name(point) << " ("
              << report.detail << "); acked in all " << book.acked()
              << ", ledger calls " << ledger.EntryCount()
              << ", actions after compensation so far "
              << ledger.Violations().size() << std::endl;
  }
  EXPECT_GT(loop.arrival_kills(), 0)
      << "no kill landed at a chosen ledger arrival";

  std::unique_ptr<DtmdProcess> dtmd = loop.NewDtmd();
  absl::Status started = dtmd->Start(absl::Seconds(60));
  ASSERT_TRUE(started.ok()) << started;
  ExpectEverySagaEndsAsScripted(*dtmd, ledger, book, 60 * Slowness());
  int reversed = 0;
  for (const std::string& gid : killed_at_compensate) {
    for (const LedgerEntry& e : ledger.EntriesFor(gid)) {
      if (e.effect == LedgerEffect::kActionAfterCompensation) {
        ++reversed;
        break;
      }
    }
  }
  std::cout << "kills at a compensate: " << killed_at_compensate.size()
            << "; sagas among them that later ran an action after its "
               "compensation: "
            << reversed << std::endl;
  EXPECT_EQ(dtmd->Stop(), 0);
  ::testing::Test::RecordProperty("cycles", loop.cycles());
  ::testing::Test::RecordProperty("acknowledged", book.acked());
  ::testing::Test::RecordProperty("ledger_calls",
                                  static_cast<int>(ledger.EntryCount()));
}

TEST(KillLoopTest,
     AcknowledgedSagasEndAsScriptedAndNoActionFollowsItsCompensation) {
  RunKillLoop("kill loop", kDefaultCycles, /*http_steps=*/false);
}

// The same with sagas mixing gRPC and HTTP branches: the write-ahead rules
// hold whatever the branch's protocol (fewer cycles: the rules are shared).
TEST(KillLoopTest, HttpBranchesEndAsScriptedAcrossKills) {
  RunKillLoop("kill loop, HTTP branches", kDefaultCycles / 3,
              /*http_steps=*/true);
}

}  // namespace
}  // namespace dtmd::testing
