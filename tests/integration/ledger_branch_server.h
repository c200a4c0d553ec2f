// LedgerBranchServer: business branches that keep their books the way DTM's
// sub-transaction barrier does, for crash tests of dtmd. The books live in the
// test process, so they outlast every kill and restart of the dtmd under test.
//
// Per (gid, branch_id) the ledger remembers whether the first phase (a saga or
// msg "action", a tcc "try") took effect, whether its undo (a saga
// "compensate", a tcc "cancel") was received and whether a tcc "confirm" was,
// and answers each call as a branch protected by the barrier would:
//   - action or try, first time (no undo received yet): takes effect and
//     answers OK; or, when its payload is FailingPayload(message), refuses
//     with ABORTED `message`, whatever the attempt (a scripted business
//     failure stays a failure across re-calls);
//   - action or try again after it took effect: a duplicate, OK, no second
//     effect;
//   - action after the undo of the same branch was received: the barrier
//     turns it into a no-op that answers OK. dtmd must never do this
//     (DESIGN.md rule 4): it is recorded as a violation. A try after its
//     cancel is the client's own call (a "hanging" try): the barrier refuses
//     it with ABORTED, and it is no violation;
//   - compensate or cancel with no first phase before it: a null
//     compensation, recorded, OK (the barrier then blocks that action);
//   - compensate or cancel: OK (idempotent);
//   - confirm: OK, idempotent. A confirm after a cancel of the same branch,
//     a cancel after a confirm, or a confirm of a branch whose try never took
//     effect is a violation (the second phase changed its mind, or confirmed
//     what the client never tried);
//   - the msg QueryPrepared check (op "msg"): ABORTED "FAILURE" for a gid
//     ending in kRolledBackGidSuffix (its local transaction rolled back), OK
//     for any other. An action of such a gid is a violation: a message whose
//     check said "rolled back" must never be delivered;
//   - a workflow's resume call (dtm-trans_type "workflow", any op): OK.
// Every call is recorded, with its arrival order and the replica that sent
// it, before it is answered, and the moment its answer is handed back is
// recorded too (gRPC calls), so that a test can tell which calls were in
// flight at once; the answer may be held back by a random delay so that kills
// land at many points.
//
// The same branches answer over HTTP too (HttpUrl), as DTM's HTTP branches
// do: the op and ids from the query, the payload as the body; OK as 200,
// ABORTED as 409 with a FAILURE body, anything else as 500.
//
// Thread-safe. The arrival hook runs on gRPC (or HTTP server) threads.
#ifndef DTMD_TESTS_INTEGRATION_LEDGER_BRANCH_SERVER_H_
#define DTMD_TESTS_INTEGRATION_LEDGER_BRANCH_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/integration/branch_server.h"
#include "tests/integration/http_branch_server.h"

namespace dtmd::testing {

// What a call did to the books.
enum class LedgerEffect {
  kApplied,           // an action took effect
  kRefused,           // an action scripted to fail; no effect
  kDuplicate,         // a repeated action or compensate; no second effect
  kCompensated,       // a compensate undid an applied action
  kNullCompensation,  // a compensate that came before any action
  kActionAfterCompensation,  // the violation: a no-op under the barrier
  kBlockedTry,               // a client's try after its cancel; refused
  kConfirmed,                // a confirm of an applied try
  kConfirmWithoutTry,        // violation: nothing was tried
  kConfirmAfterCancel,       // violation
  kCancelAfterConfirm,       // violation
  kQueried,                  // a msg's QueryPrepared check
  kRolledBackMsgAction,      // violation: its check says rolled back
  kResumed,                  // a workflow's resume call
};

// Whether an entry with this effect is something dtmd must never do.
bool IsViolation(LedgerEffect effect);

const char* LedgerEffectName(LedgerEffect effect);

// One call as the ledger booked it.
struct LedgerEntry {
  // Arrival order, from 0, over the ledger's lifetime; -1 until booked.
  int64_t seq = -1;
  std::string gid;
  std::string branch_id;
  std::string op;  // The dtm-op: "action", "compensate", "try", ...
  LedgerEffect effect = LedgerEffect::kApplied;
  grpc::StatusCode code = grpc::StatusCode::OK;  // The answer's code.
  // The dtmd replica that sent the call: its "dtmd-replica" metadata (HTTP:
  // header); empty when absent (a client's own call, such as a tcc try).
  std::string replica;
  bool http = false;  // Came over HTTP.
  // When the call arrived and when its answer was handed back, as positions
  // in one sequence of the ledger's events (arrivals and replies): two calls
  // were in flight at once iff each arrived before the other's reply.
  // `replied` is -1 while no answer was handed back, and always for HTTP
  // calls (whose replies are not tracked).
  int64_t arrived = -1;
  int64_t replied = -1;
};

// The pairs of `entries` (the calls of one gid) that were in flight at the
// same time: sent by two different replicas, or with `any_replica` by any
// (a sequential saga's calls never overlap). Calls without a replica and
// HTTP calls are left out; a call not answered yet counts as in flight. One
// line per pair.
std::vector<std::string> OverlappingCalls(
    const std::vector<LedgerEntry>& entries, bool any_replica);

class LedgerBranchServer {
 public:
  // Each answer is held back for a delay drawn uniformly from
  // [min, max] of its op (milliseconds; max 0: no delay).
  struct Delays {
    int action_min_ms = 0;
    int action_max_ms = 0;
    int compensate_min_ms = 0;
    int compensate_max_ms = 0;
  };
  // `seed` makes the draws repeatable.
  struct Options {
    Delays delays;
    uint32_t seed = 1;
  };

  LedgerBranchServer();
  explicit LedgerBranchServer(Options options);

  ~LedgerBranchServer();  // Shutdown().

  LedgerBranchServer(const LedgerBranchServer&) = delete;
  LedgerBranchServer& operator=(const LedgerBranchServer&) = delete;

  // As ScriptedBranchServer::Start / Shutdown.
  absl::StatusOr<int> Start();
  void Shutdown();

  // Replaces the delays; applies to calls that arrive from now on.
  void SetDelays(Delays delays);

  // A branch URL on this server; any method path works, the op comes from
  // the dtm-op metadata.
  std::string Url(const std::string& method_path) const;
  // The same branch as an http:// URL.
  std::string HttpUrl(const std::string& method_path) const;
  // With true, StepUrl gives odd steps HTTP URLs (a saga mixing both kinds).
  void SetHttpSteps(bool http_steps);
  // Url, or HttpUrl for an odd `step` after SetHttpSteps(true).
  std::string StepUrl(const std::string& method_path, int step) const;

  // The payload that makes an action or a try answer ABORTED `message` on
  // every call.
  static std::string FailingPayload(absl::string_view message);

  // A msg whose gid ends with this rolled its local transaction back: its
  // QueryPrepared check answers ABORTED "FAILURE".
  static constexpr char kRolledBackGidSuffix[] = "-rolledback";
  static bool LocalTransactionCommitted(absl::string_view gid);

  // A tcc's first phase as its client runs it: a gRPC call of `method_path`
  // on this server with the DTM metadata of branch `branch_id` of `gid`, op
  // "try", deadline 5 s. The call's status. Call after Start().
  grpc::Status Try(const std::string& method_path, const std::string& gid,
                   const std::string& branch_id, const std::string& payload);

  // Called for every call after it is booked and before it is answered (so a
  // hook that kills dtmd does so before dtmd can see the answer). Runs on a
  // gRPC thread without the ledger's lock held. Empty removes the hook.
  // Returns once no call runs the previous hook any more, so that its
  // owner may then be destroyed.
  using ArrivalHook = std::function<void(const LedgerEntry&)>;
  void SetArrivalHook(ArrivalHook hook);

  std::vector<LedgerEntry> Entries() const;
  // The entries of `gid`, in arrival order.
  std::vector<LedgerEntry> EntriesFor(const std::string& gid) const;
  // Number of entries booked so far (the next entry's seq).
  int64_t EntryCount() const;
  // One line per entry that IsViolation, naming gid, branch, effect and seq.
  std::vector<std::string> Violations() const;

 private:
  struct Book {
    bool action_applied = false;       // action or try
    bool compensate_received = false;  // compensate or cancel
    bool confirm_received = false;
  };

  // Books the call and chooses its answer (the responder of `server_`).
  Answer Respond(const RecordedCall& call, bool http);
  // The effect of `call` on `book` (updated), and the answer's code and
  // message in `answer`.
  static LedgerEffect Apply(const RecordedCall& call, Book* book,
                            Answer* answer);

  mutable absl::Mutex mu_;
  std::mt19937 random_ ABSL_GUARDED_BY(mu_);
  Delays delays_ ABSL_GUARDED_BY(mu_);
  std::vector<LedgerEntry> entries_ ABSL_GUARDED_BY(mu_);
  // The next position in the sequence of arrivals and replies.
  int64_t events_ ABSL_GUARDED_BY(mu_) = 0;
  // Index into entries_ per gid, so that EntriesFor does not scan them all.
  std::map<std::string, std::vector<size_t>> by_gid_ ABSL_GUARDED_BY(mu_);
  // Key: (gid, branch_id).
  std::map<std::pair<std::string, std::string>, Book> books_
      ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const ArrivalHook> hook_ ABSL_GUARDED_BY(mu_);
  int hooks_running_ ABSL_GUARDED_BY(mu_) = 0;
  // For Try(); set by Start().
  std::shared_ptr<grpc::Channel> channel_ ABSL_GUARDED_BY(mu_);
  bool http_steps_ ABSL_GUARDED_BY(mu_) = false;
  HttpBranchServer http_;
  // Last: destroyed (shut down) first, while what calls use still exists.
  ScriptedBranchServer server_;
};

}  // namespace dtmd::testing

#endif  // DTMD_TESTS_INTEGRATION_LEDGER_BRANCH_SERVER_H_
