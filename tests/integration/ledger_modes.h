// TCC, msg and workflow transactions against a LedgerBranchServer, for the
// kill -9 loop of kill_loop_modes_test: the scripts a client follows (over
// the raw generated stubs, as DTM's SDKs send them), a load of concurrent
// clients that books what dtmd acknowledged of each transaction, and the
// audit of each one's end against its script and the ledger's books
// (PROTOCOL.md section 5, DESIGN.md rules 1, 4 and 6).
#ifndef DTMD_TESTS_INTEGRATION_LEDGER_MODES_H_
#define DTMD_TESTS_INTEGRATION_LEDGER_MODES_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tests/integration/dtmd_process.h"
#include "tests/integration/ledger_branch_server.h"
#include "tests/integration/paced_load.h"

namespace dtmd::testing {

// What a client does with one transaction.
enum class ModeScript {
  kTccConfirm,       // Prepare; per branch RegisterBranch, then Try; Submit.
  kTccAbort,         // The same, but the last Try is refused: Abort.
  kTccTimeout,       // Every Try succeeds, then nothing: TimeoutToFail cancels.
  kMsgSubmit,        // Prepare (with QueryPrepared), Submit.
  kMsgDirect,        // Submit without Prepare.
  kMsgCommitted,     // Prepare, then nothing: the check says committed.
  kMsgRolledBack,    // Prepare, then nothing: the check says rolled back.
  kWorkflowSucceed,  // PrepareWorkflow, a step, Submit "succeed".
  kWorkflowFailed,   // PrepareWorkflow, a failed step, Submit "failed".
  kWorkflowUnfinished,  // PrepareWorkflow, a step, then nothing: resumed.
};

const char* ModeScriptName(ModeScript script);
// Script number `i` of the mix the load runs: every script appears in any 12
// consecutive numbers, tcc and msg more often than workflows.
ModeScript MixedScript(int i);

// The TimeoutToFail of a tcc left prepared (kTccTimeout), and of the other
// tccs (long enough for the client to finish, short enough that one whose
// client was cut off by a kill ends soon after).
inline constexpr int kTccTimeoutS = 2;
inline constexpr int kTccGraceS = 6;
// The name of every workflow: the op of its resume calls.
inline constexpr char kLedgerWorkflowName[] = "ledger_wf";
// Unfinished workflows are resumed every this many seconds (their
// RetryInterval: they pile up across a loop's cycles).
inline constexpr int kWorkflowRetryIntervalS = 3;

// One transaction as its client saw it.
struct ModeTxn {
  ModeScript script = ModeScript::kTccConfirm;
  // tcc: branches the script registers; msg: actions.
  int branches = 0;
  // The first call (Prepare, PrepareWorkflow; kMsgDirect's Submit) answered
  // OK.
  bool begun = false;
  // Branch ids whose RegisterBranch answered OK, in order.
  std::vector<std::string> registered;
  // The closing command sent ("Submit", "Abort"; "" for none) and its answer.
  std::string closing;
  grpc::StatusCode closing_code = grpc::StatusCode::UNKNOWN;
  // Every call of the script was answered as the script expects.
  bool completed = false;
};

// Transactions run by a load, by gid; thread-safe.
class ModeBook {
 public:
  void Record(const std::string& gid, const ModeTxn& txn);
  std::map<std::string, ModeTxn> All() const;
  // Transactions whose script completed.
  int completed() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, ModeTxn> txns_ ABSL_GUARDED_BY(mu_);
  int completed_ ABSL_GUARDED_BY(mu_) = 0;
};

// Runs scripts from PacedLoad threads (MixedScript(n) for the n-th
// transaction, gid ModeGid(gid_prefix, n)); every transaction goes into
// `book`. A script stops at its first call that fails (dtmd gone), the
// transaction booked with what was acknowledged so far.
class ModeLoad {
 public:
  using Options = LoadOptions;
  ModeLoad(const DtmdProcess& dtmd, LedgerBranchServer* ledger, ModeBook* book,
           Options options);

  // As PacedLoad's.
  void Stop() { load_.Stop(); }
  // Scripts completed by this load so far.
  int completed() const { return load_.acked(); }

 private:
  // Runs the n-th script and books it; whether it completed.
  bool RunScript(int n);
  ModeTxn RunTcc(const std::string& gid, ModeScript script, int n);
  ModeTxn RunMsg(const std::string& gid, ModeScript script, int n);
  ModeTxn RunWorkflow(const std::string& gid, ModeScript script);

  const DtmdProcess& dtmd_;
  LedgerBranchServer* const ledger_;
  ModeBook* const book_;
  const Options options_;
  // Last: its threads stop before what they use goes.
  PacedLoad load_;
};

// The gid a load gives its n-th transaction: a rolled back msg's ends with
// LedgerBranchServer::kRolledBackGidSuffix.
std::string ModeGid(const std::string& prefix, int n);

// Waits (one deadline, `timeout`, for all) until every transaction of
// `txns` that must end has ended, and audits each against its script and
// the ledger; then waits for a resume call with arrival seq >=
// `resumed_since` of every workflow that stays prepared. One line per
// problem: a begun transaction dtmd lost, an acknowledged registration it
// lost, one not ended by the deadline, an end the script rules out, a
// second phase that missed a registered branch or ran the wrong op or out
// of order, a msg action not delivered (or delivered for a rolled back
// msg), an unfinished workflow not resumed. `tally`, if not null, counts
// the ends seen, by "script: status".
std::vector<std::string> FinishAndAuditModes(
    const DtmdProcess& dtmd, const LedgerBranchServer& ledger,
    const std::map<std::string, ModeTxn>& txns, int64_t resumed_since,
    absl::Duration timeout, std::map<std::string, int>* tally);

}  // namespace dtmd::testing

#endif  // DTMD_TESTS_INTEGRATION_LEDGER_MODES_H_
