// KillAtArrival: kill -9 of dtmd from a LedgerBranchServer's arrival hook, at
// the n-th arrival of a chosen op, so that the kill lands at a precise point
// of dtmd's work (e.g. just after it sent its first compensation, before it
// can see the answer).
//
//   KillAtArrival killer(&ledger);
//   killer.Arm(dtmd->pid(), "compensate", 1);
//   bool fired = killer.WaitFired(absl::Seconds(10));
//   dtmd->Kill();  // reaps it (kills it first if the hook did not fire)
//
// Thread-safe. Installs itself as the ledger's arrival hook for its lifetime.
#ifndef DTMD_TESTS_INTEGRATION_KILL_AT_ARRIVAL_H_
#define DTMD_TESTS_INTEGRATION_KILL_AT_ARRIVAL_H_

#include <sys/types.h>

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/integration/ledger_branch_server.h"

namespace dtmd::testing {

class KillAtArrival {
 public:
  explicit KillAtArrival(LedgerBranchServer* ledger);
  ~KillAtArrival();  // Removes the hook.

  KillAtArrival(const KillAtArrival&) = delete;
  KillAtArrival& operator=(const KillAtArrival&) = delete;

  // From now on, the `count`-th arrival (count >= 1) of `op` sends SIGKILL
  // to `pid`, once. Replaces an earlier arming.
  void Arm(pid_t pid, std::string op, int count);
  // No kill from now on.
  void Disarm();
  // Waits until the armed kill was sent; false after `timeout`.
  bool WaitFired(absl::Duration timeout);
  // The entry whose arrival fired the kill (seq -1 if none did).
  LedgerEntry fired_entry() const;

 private:
  void OnArrival(const LedgerEntry& entry);

  LedgerBranchServer* const ledger_;
  mutable absl::Mutex mu_;
  pid_t pid_ ABSL_GUARDED_BY(mu_) = -1;
  std::string op_ ABSL_GUARDED_BY(mu_);
  int remaining_ ABSL_GUARDED_BY(mu_) = 0;
  bool fired_ ABSL_GUARDED_BY(mu_) = false;
  LedgerEntry fired_entry_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dtmd::testing

#endif  // DTMD_TESTS_INTEGRATION_KILL_AT_ARRIVAL_H_
