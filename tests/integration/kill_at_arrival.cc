#include "tests/integration/kill_at_arrival.h"

#include <signal.h>

#include <utility>

namespace dtmd::testing {

KillAtArrival::KillAtArrival(LedgerBranchServer* ledger) : ledger_(ledger) {
  ledger_->SetArrivalHook(
      [this](const LedgerEntry& entry) { OnArrival(entry); });
}

KillAtArrival::~KillAtArrival() { ledger_->SetArrivalHook(nullptr); }

void KillAtArrival::Arm(pid_t pid, std::string op, int count) {
  absl::MutexLock lock(&mu_);
  pid_ = pid;
  op_ = std::move(op);
  remaining_ = count;
  fired_ = false;
  fired_entry_ = LedgerEntry();
}

void KillAtArrival::Disarm() {
  absl::MutexLock lock(&mu_);
  pid_ = -1;
  remaining_ = 0;
}

bool KillAtArrival::WaitFired(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&fired_), timeout);
}

LedgerEntry KillAtArrival::fired_entry() const {
  absl::MutexLock lock(&mu_);
  return fired_entry_;
}

void KillAtArrival::OnArrival(const LedgerEntry& entry) {
  // The lock is held across kill(2) so that Disarm() returning means no kill
  // is on its way: the caller may then reap and reuse the pid safely.
  absl::MutexLock lock(&mu_);
  if (pid_ <= 0 || entry.op != op_ || --remaining_ > 0) return;
  kill(pid_, SIGKILL);
  pid_ = -1;
  fired_ = true;
  fired_entry_ = entry;
}

}  // namespace dtmd::testing
