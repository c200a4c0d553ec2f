#include "tests/integration/kill_loop.h"

#include <chrono>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/integration/ledger_saga.h"
#include "tests/integration/test_scale.h"

namespace dtmd::testing {
namespace {

uint32_t ReadSeed() {
  return static_cast<uint32_t>(
      EnvInt("DTMD_KILL_SEED", static_cast<int>(std::random_device()())));
}

LedgerBranchServer::Options LedgerOptions(int max_delay_ms, uint32_t seed) {
  LedgerBranchServer::Options options;
  options.delays.action_max_ms = max_delay_ms;
  options.delays.compensate_max_ms = max_delay_ms;
  options.seed = seed;
  return options;
}

}  // namespace

KillLoop::KillLoop(const std::string& name, int default_cycles,
                   int max_delay_ms, const std::string& dir_prefix)
    : KillLoop(name, EnvInt("DTMD_KILL_CYCLES", default_cycles), ReadSeed(),
               max_delay_ms, dir_prefix) {}

KillLoop::KillLoop(const std::string& name, int cycles, uint32_t seed,
                   int max_delay_ms, const std::string& dir_prefix)
    : cycles_(cycles),
      random_(seed),
      data_dir_(MakeTempDir(dir_prefix)),
      ledger_(LedgerOptions(max_delay_ms, seed)),
      killer_(&ledger_) {
  std::cout << name << ": " << cycles_ << " cycles, DTMD_KILL_SEED=" << seed
            << std::endl;
}

absl::Status KillLoop::Start() { return ledger_.Start().status(); }

int KillLoop::Uniform(int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(random_);
}

std::unique_ptr<DtmdProcess> KillLoop::NewDtmd() const {
  return std::make_unique<DtmdProcess>(data_dir_, QuickRetryFlags());
}

KillReport KillLoop::Kill(const KillMoment& moment, absl::Duration wait,
                          const std::function<int()>& acked,
                          DtmdProcess* dtmd) {
  KillReport report;
  if (!moment.at_op.empty()) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(Uniform(0, moment.arm_within_ms)));
    killer_.Arm(dtmd->pid(), moment.at_op, moment.at_count);
    report.fired_at_arrival = killer_.WaitFired(wait);
    killer_.Disarm();
    report.entry = killer_.fired_entry();
    if (report.fired_at_arrival) {
      ++arrival_kills_;
      report.detail = absl::StrCat(
          "at ledger arrival #", report.entry.seq, ", ", report.entry.gid,
          " branch ", report.entry.branch_id, " op ", report.entry.op);
    } else {
      report.detail = absl::StrCat("no ", moment.at_op, " #", moment.at_count,
                                   " in time, killed anyway");
    }
  } else if (moment.after_acks > 0) {
    const absl::Time deadline = absl::Now() + wait;
    while (acked() < moment.after_acks && absl::Now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    report.detail = absl::StrCat("after ", acked(), " acks");
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(moment.after_ms));
    report.detail = absl::StrCat(moment.after_ms, " ms in");
  }
  dtmd->Kill();
  return report;
}

}  // namespace dtmd::testing
