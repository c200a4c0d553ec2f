// KillLoop: what the kill -9 loops (kill_loop_test, kill_loop_modes_test)
// share: their knobs, a ledger branch server with a KillAtArrival hook, the
// one data directory every cycle's dtmd runs on, and each cycle's kill,
// which lands after a number of acknowledgements, at the n-th arrival of an
// op at the ledger (so that dtmd dies before it can see that call's answer),
// or after a sleep.
//
//   KillLoop loop("kill loop", 30, /*max_delay_ms=*/30, "kill-loop");
//   ASSERT_TRUE(loop.Start().ok());
//   for (int cycle = 0; cycle < loop.cycles(); ++cycle) {
//     std::unique_ptr<DtmdProcess> dtmd = loop.NewDtmd();
//     ... start dtmd and a load ...
//     KillReport report = loop.Kill(moment, wait, acked, dtmd.get());
//   }
//
// Not thread-safe: one test thread drives it (the ledger is thread-safe).
#ifndef DTMD_TESTS_INTEGRATION_KILL_LOOP_H_
#define DTMD_TESTS_INTEGRATION_KILL_LOOP_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tests/integration/dtmd_process.h"
#include "tests/integration/kill_at_arrival.h"
#include "tests/integration/ledger_branch_server.h"

namespace dtmd::testing {

// When a cycle's kill lands. `at_op` non-empty: at the `at_count`-th arrival
// of that op; else `after_acks` > 0: once the load has that many
// acknowledgements; else after sleeping `after_ms`.
struct KillMoment {
  std::string at_op;
  int at_count = 1;
  // at_op: the hook is armed after a random pause of up to this long, so
  // that kills land at different stages of the load.
  int arm_within_ms = 1500;
  int after_acks = 0;
  int after_ms = 0;
};

// What a kill hit.
struct KillReport {
  bool fired_at_arrival = false;  // The arrival hook sent the kill.
  LedgerEntry entry;              // The arrival that did (seq -1 if none).
  std::string detail;             // For the cycle's log line.
};

class KillLoop {
 public:
  // Reads DTMD_KILL_CYCLES (default `default_cycles`) and DTMD_KILL_SEED
  // (default random) and prints them under `name`, so that a failing run can
  // be repeated. The ledger holds each answer back up to `max_delay_ms`
  // (draws seeded by the seed); the data directory is named after
  // `dir_prefix`.
  KillLoop(const std::string& name, int default_cycles, int max_delay_ms,
           const std::string& dir_prefix);

  // Starts the ledger; its error if it cannot.
  absl::Status Start();

  int cycles() const { return cycles_; }
  // A number drawn uniformly from [lo, hi] (seeded).
  int Uniform(int lo, int hi);
  LedgerBranchServer& ledger() { return ledger_; }
  // A dtmd on the loop's data directory with QuickRetryFlags, not started.
  std::unique_ptr<DtmdProcess> NewDtmd() const;

  // Waits for `moment` (at most `wait` for the acknowledgements, read with
  // `acked`, or for the arrival) and then kills dtmd with SIGKILL and reaps
  // it, whether or not the moment came. A moment at an arrival is armed
  // after a random delay of up to 1.5 s, so that some kills land on
  // transactions restarted from the due index.
  KillReport Kill(const KillMoment& moment, absl::Duration wait,
                  const std::function<int()>& acked, DtmdProcess* dtmd);
  // Kills that landed at their chosen arrival so far.
  int arrival_kills() const { return arrival_kills_; }

 private:
  KillLoop(const std::string& name, int cycles, uint32_t seed, int max_delay_ms,
           const std::string& dir_prefix);

  int cycles_;
  std::mt19937 random_;
  std::string data_dir_;
  LedgerBranchServer ledger_;
  KillAtArrival killer_;  // After ledger_: removes its hook first.
  int arrival_kills_ = 0;
};

}  // namespace dtmd::testing

#endif  // DTMD_TESTS_INTEGRATION_KILL_LOOP_H_
