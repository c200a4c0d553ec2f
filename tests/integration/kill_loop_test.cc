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
// DTMD_KILL_CYCLES and DTMD_KILL_SEED (environment) override the number of
// cycles (default 30; 10 under the sanitizers, which slow dtmd several times
// over) and the seed of the kill moments (default: random, printed).
#include <signal.h>

#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/dtmd_process.h"
#include "tests/integration/kill_at_arrival.h"
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

TEST(KillLoopTest,
     AcknowledgedSagasEndAsScriptedAndNoActionFollowsItsCompensation) {
  const int cycles = EnvInt("DTMD_KILL_CYCLES", kDefaultCycles);
  const uint32_t seed =
      static_cast<uint32_t>(EnvInt("DTMD_KILL_SEED", std::random_device()()));
  std::cout << "kill loop: " << cycles << " cycles, DTMD_KILL_SEED=" << seed
            << std::endl;
  std::mt19937 random(seed);
  auto uniform = [&random](int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(random);
  };

  LedgerBranchServer::Options ledger_options;
  ledger_options.delays.action_max_ms = 30;
  ledger_options.delays.compensate_max_ms = 30;
  ledger_options.seed = seed;
  LedgerBranchServer ledger(ledger_options);
  ASSERT_TRUE(ledger.Start().ok());
  KillAtArrival killer(&ledger);
  SagaBook book;
  const std::string data_dir = MakeTempDir("kill-loop");

  int hook_kills = 0;
  // Gids whose compensate arrival fired a kill.
  std::vector<std::string> killed_at_compensate;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    DtmdProcess dtmd(data_dir, QuickRetryFlags());
    absl::Status started = dtmd.Start(absl::Seconds(60));
    ASSERT_TRUE(started.ok()) << "cycle " << cycle << ": " << started;
    const KillPoint point = kRotation[cycle % std::size(kRotation)];
    SubmitLoad::Options load_options;
    load_options.threads = 4;
    load_options.max_sagas = kSagasPerCycle;
    // Paced, so that the load lasts through the cycle's first seconds.
    load_options.burst = 4;
    load_options.pause_ms = 60;
    load_options.gid_prefix = absl::StrCat("kill", cycle);
    SubmitLoad load(dtmd, ledger, &book, load_options);
    const absl::Duration wait = 5 * Slowness();
    std::string detail;
    switch (point) {
      case KillPoint::kAfterAcks: {
        const int acks = uniform(1, kSagasPerCycle / 2);
        const absl::Time deadline = absl::Now() + wait;
        while (load.acked() < acks && absl::Now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        detail = absl::StrCat("after ", load.acked(), " acks");
        break;
      }
      case KillPoint::kMidActions:
      case KillPoint::kFirstCompensate:
      case KillPoint::kMidCompensations: {
        const bool action = point == KillPoint::kMidActions;
        const int count = point == KillPoint::kFirstCompensate ? 1
                          : action                             ? uniform(1, 200)
                                                               : uniform(2, 40);
        // Sagas restarted from the due index come back after about a
        // second: a delay before arming lets some kills land on them.
        std::this_thread::sleep_for(
            std::chrono::milliseconds(uniform(0, 1500)));
        killer.Arm(dtmd.pid(), action ? "action" : "compensate", count);
        const bool fired = killer.WaitFired(wait);
        killer.Disarm();
        const LedgerEntry entry = killer.fired_entry();
        if (fired) {
          ++hook_kills;
          if (!action) killed_at_compensate.push_back(entry.gid);
          detail = absl::StrCat("at ledger arrival #", entry.seq, ", ",
                                entry.gid, " branch ", entry.branch_id);
        } else {
          detail = "hook did not fire in time, killed anyway";
        }
        break;
      }
      case KillPoint::kRandomMoment: {
        const int ms = uniform(0, 1000);
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        detail = absl::StrCat(ms, " ms in");
        break;
      }
    }
    dtmd.Kill();
    load.Stop();
    std::cout << "cycle " << cycle << ": kill " << Name(point) << " (" << detail
              << "); acked in all " << book.acked() << ", ledger calls "
              << ledger.EntryCount() << ", actions after compensation so far "
              << ledger.Violations().size() << std::endl;
  }
  EXPECT_GT(hook_kills, 0) << "no kill landed at a chosen ledger arrival";

  DtmdProcess dtmd(data_dir, QuickRetryFlags());
  absl::Status started = dtmd.Start(absl::Seconds(60));
  ASSERT_TRUE(started.ok()) << started;
  ExpectEverySagaEndsAsScripted(dtmd, ledger, book, 60 * Slowness());
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
  EXPECT_EQ(dtmd.Stop(), 0);
  ::testing::Test::RecordProperty("cycles", cycles);
  ::testing::Test::RecordProperty("acknowledged", book.acked());
  ::testing::Test::RecordProperty("ledger_calls",
                                  static_cast<int>(ledger.EntryCount()));
}

}  // namespace
}  // namespace dtmd::testing
