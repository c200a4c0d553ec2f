// Sagas against a LedgerBranchServer, for the crash and shutdown tests: the
// shapes the tests submit, a load of concurrent submitters that books every
// acknowledged gid, and the audit of what the ledger saw of each saga against
// the saga rules of PROTOCOL.md section 5.
#ifndef DTMD_TESTS_INTEGRATION_LEDGER_SAGA_H_
#define DTMD_TESTS_INTEGRATION_LEDGER_SAGA_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dtmd/client.h"
#include "tests/integration/dtmd_process.h"
#include "tests/integration/ledger_branch_server.h"
#include "tests/integration/paced_load.h"

namespace dtmd::testing {

// dtmd flags for the crash and shutdown tests: unfinished sagas are retried
// every second (backoff capped at 2 s), so restarts resume them at once.
std::vector<std::string> QuickRetryFlags();

// The message every scripted action failure answers with.
inline constexpr char kInsufficientBalance[] = "insufficient balance";

// A saga as a test scripts it.
struct SagaShape {
  int steps = 3;
  int fail_step = -1;  // Step whose action always fails; -1: none.
  bool concurrent = false;
  // Concurrent only: step -> the steps that must succeed before it.
  std::map<int, std::vector<int>> orders;

  bool ShouldFail() const { return fail_step >= 0; }
  // "succeed" or "failed".
  std::string ExpectedStatus() const;
  // Whether step's action may ever run: none of its predecessors, directly
  // or not, is the failing step (sequential: no earlier step fails).
  bool Reachable(int step) const;
};

// Shape number `i` of a mix that covers: sequential sagas that succeed or
// fail at their first, middle or last step; concurrent sagas with orders
// that succeed, fail at a step others wait for, or fail at the last step.
SagaShape MixedShape(int i);

// The saga for `shape` on the ledger's branches (payloads script the
// failure), not yet submitted.
dtmd::client::Saga BuildSaga(dtmgimp::Dtm::StubInterface* stub,
                             const std::string& gid, const SagaShape& shape,
                             const LedgerBranchServer& ledger);

// Everything wrong with what the ledger saw of `gid` (`entries`, in arrival
// order) given its shape and its final status; empty when all is well.
// Checks: the final status is the scripted one; no action arrived after any
// compensate of the saga; a succeeded saga received no compensate; a failed
// one compensated every action received (a compensate arrived after the
// action's last arrival); no call for a step that could never run; actions in
// order and compensations in reverse (sequential: by step; concurrent: per
// `orders`), by first arrival.
std::vector<std::string> AuditSaga(const std::string& gid,
                                   const SagaShape& shape,
                                   const std::string& final_status,
                                   const std::vector<LedgerEntry>& entries);

// Sagas submitted by a test, by gid; thread-safe.
class SagaBook {
 public:
  void Submitted(const std::string& gid, const SagaShape& shape, bool acked);
  int acked() const;
  // Shapes of the acknowledged gids.
  std::map<std::string, SagaShape> Acked() const;
  // Shapes of the gids whose Submit failed (dtmd may or may not have them).
  std::map<std::string, SagaShape> Unacked() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, SagaShape> acked_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, SagaShape> unacked_ ABSL_GUARDED_BY(mu_);
};

// Submits sagas from PacedLoad threads (shape MixedShape(n) for the n-th
// saga, gid "<gid_prefix>-<n>"); every result goes into `book`, a failed
// Submit (dtmd gone or shutting down) booked unacknowledged.
class SubmitLoad {
 public:
  using Options = LoadOptions;
  SubmitLoad(const DtmdProcess& dtmd, const LedgerBranchServer& ledger,
             SagaBook* book, Options options);

  // As PacedLoad's.
  void Stop() { load_.Stop(); }
  int acked() const { return load_.acked(); }
  int submitted() const { return load_.started(); }
  int in_flight() const { return load_.in_flight(); }

 private:
  bool Submit(int n);

  const DtmdProcess& dtmd_;
  const LedgerBranchServer& ledger_;
  SagaBook* const book_;
  const Options options_;
  // Last: its threads stop before what they use goes.
  PacedLoad load_;
};

// Waits until every gid of `sagas` is final in `dtmd` (one deadline for all)
// and audits each against the ledger. Returns one line per problem: a gid
// that is missing (when `must_exist`), not final by the deadline, or fails
// AuditSaga. A gid that does not exist is skipped when !must_exist (an
// unacknowledged Submit that never reached the store).
std::vector<std::string> FinishAndAudit(
    const DtmdProcess& dtmd, const LedgerBranchServer& ledger,
    const std::map<std::string, SagaShape>& sagas, bool must_exist,
    absl::Duration timeout);

// The end of a crash or shutdown test, in gtest expectations: every
// acknowledged saga of `book` exists and ends as scripted within `timeout`
// (FinishAndAudit), so does every unacknowledged one dtmd stored, and the
// ledger saw no action after its compensation.
void ExpectEverySagaEndsAsScripted(const DtmdProcess& dtmd,
                                   const LedgerBranchServer& ledger,
                                   const SagaBook& book,
                                   absl::Duration timeout);

// The first `most` problems, one per line, then how many more there were.
std::string SummarizeProblems(const std::vector<std::string>& problems,
                              size_t most = 20);

}  // namespace dtmd::testing

#endif  // DTMD_TESTS_INTEGRATION_LEDGER_SAGA_H_
