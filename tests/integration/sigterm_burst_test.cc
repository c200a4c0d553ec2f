// SIGTERM during bursts of Submits, many times over on one data directory:
// dtmd must always exit 0 (DESIGN.md, Operations: stop accepting, finish
// in-flight replies, flush, exit 0), however the signal falls: while Submits
// wait for their fsync with no transaction being driven, while runners are
// busy, between bursts. After the last cycle dtmd starts once more and every
// acknowledged saga must end as scripted (rule 6), audited by the ledger.
//
// DTMD_SIGTERM_CYCLES (environment) overrides the number of cycles (default
// 20; 8 under the sanitizers).
#include <signal.h>

#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/dtmd_process.h"
#include "tests/integration/ledger_branch_server.h"
#include "tests/integration/ledger_saga.h"
#include "tests/integration/test_scale.h"

namespace dtmd::testing {
namespace {

// Far above what a clean shutdown needs (it waits at most RequestTimeout + 2 s
// for branch calls, and these answer at once): reaching it means a hang.
const absl::Duration kStopBound = 30 * Slowness();

TEST(SigtermBurstTest, ExitsZeroEveryTimeAndEveryAcknowledgedSagaFinishes) {
  const int cycles = EnvInt("DTMD_SIGTERM_CYCLES", kSanitizedBuild ? 8 : 20);
  std::mt19937 random(std::random_device{}());
  // Branches answer at once, so that runners retire quickly and the signal
  // often finds Submits waiting for their fsync with no runner active.
  LedgerBranchServer ledger;
  ASSERT_TRUE(ledger.Start().ok());
  SagaBook book;
  const std::string data_dir = MakeTempDir("sigterm-burst");

  for (int cycle = 0; cycle < cycles; ++cycle) {
    DtmdProcess dtmd(data_dir, QuickRetryFlags());
    absl::Status started = dtmd.Start(absl::Seconds(60));
    ASSERT_TRUE(started.ok()) << "cycle " << cycle << ": " << started;
    SubmitLoad::Options options;
    options.threads = 8;
    options.burst = std::uniform_int_distribution<int>(1, 8)(random);
    options.pause_ms = 30;
    options.gid_prefix = absl::StrCat("term", cycle);
    SubmitLoad load(dtmd, ledger, &book, options);
    const int acks = std::uniform_int_distribution<int>(1, 150)(random);
    const absl::Time deadline = absl::Now() + 10 * Slowness();
    while (load.acked() < acks && absl::Now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // Signal while Submits are on their way whenever the bursts allow.
    while (load.in_flight() == 0 && absl::Now() < deadline) {
      std::this_thread::yield();
    }
    const int in_flight = load.in_flight();
    const int acked_before = load.acked();
    const int code = dtmd.Stop(kStopBound);
    const int acked_during = load.acked() - acked_before;
    load.Stop();
    std::cout << "cycle " << cycle << ": SIGTERM after " << acked_before
              << " acks with " << in_flight << " Submits in flight (bursts of "
              << options.burst << "); " << acked_during
              << " more acked before exit; exit "
              << (code == -SIGKILL ? std::string("none: killed at the bound")
                                   : absl::StrCat(code))
              << std::endl;
    if (code != 0) {
      ADD_FAILURE() << "cycle " << cycle << ": dtmd "
                    << (code == -SIGKILL ? "did not exit after SIGTERM (hang)"
                                         : absl::StrCat("exited with ", code))
                    << "; SIGTERM came with " << in_flight
                    << " Submits in flight after " << acked_before
                    << " acks in the cycle";
      break;  // Each hang costs the whole bound: one is enough to report.
    }
  }

  DtmdProcess dtmd(data_dir, QuickRetryFlags());
  absl::Status started = dtmd.Start(absl::Seconds(60));
  ASSERT_TRUE(started.ok()) << started;
  ExpectEverySagaEndsAsScripted(dtmd, ledger, book, 60 * Slowness());
  EXPECT_EQ(dtmd.Stop(kStopBound), 0);
  ::testing::Test::RecordProperty("acknowledged", book.acked());
}

}  // namespace
}  // namespace dtmd::testing
