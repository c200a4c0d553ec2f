// FinishAndAuditModes (ledger_modes.h): what each transaction may end as,
// given its script and what dtmd acknowledged, and what the ledger must have
// seen of it.
#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tests/integration/ledger_modes.h"
#include "tests/integration/test_scale.h"

namespace dtmd::testing {
namespace {

using ::dtmd::admin::v1::GetTransactionReply;

bool IsTcc(ModeScript s) {
  return s == ModeScript::kTccConfirm || s == ModeScript::kTccAbort ||
         s == ModeScript::kTccTimeout;
}
bool IsWorkflow(ModeScript s) {
  return s == ModeScript::kWorkflowSucceed ||
         s == ModeScript::kWorkflowFailed ||
         s == ModeScript::kWorkflowUnfinished;
}
bool IsFinal(const std::string& status) {
  return status == "succeed" || status == "failed";
}

// The statuses the transaction may end in.
std::vector<std::string> AllowedEnds(const std::string& gid,
                                     const ModeTxn& txn) {
  const bool answered = txn.closing_code == grpc::StatusCode::OK ||
                        txn.closing_code == grpc::StatusCode::ABORTED;
  if (IsTcc(txn.script)) {
    // Only a Submit confirms; an acknowledged one must, a refused one
    // (past the timeout) must not. Everything else is cancelled: by Abort
    // or by TimeoutToFail.
    if (txn.closing != "Submit") return {"failed"};
    if (txn.closing_code == grpc::StatusCode::OK) return {"succeed"};
    if (answered) return {"failed"};
    return {"succeed", "failed"};
  }
  if (IsWorkflow(txn.script)) {
    // Workflows end only by the client's Submit.
    const std::string scripted =
        txn.script == ModeScript::kWorkflowFailed ? "failed" : "succeed";
    if (txn.closing.empty()) return {"prepared"};
    if (txn.closing_code == grpc::StatusCode::OK) return {scripted};
    return {"prepared", scripted};
  }
  // A msg ends as its local transaction did, submitted or not: the check
  // decides one left prepared.
  return {LedgerBranchServer::LocalTransactionCommitted(gid) ? "succeed"
                                                             : "failed"};
}

// The gid with what its client did, for a problem's line.
std::string Describe(const std::string& gid, const ModeTxn& txn) {
  std::string closing = "no closing command";
  if (!txn.closing.empty()) {
    closing = txn.closing_code == grpc::StatusCode::OK
                  ? absl::StrCat(txn.closing, " acknowledged")
                  : absl::StrCat(txn.closing, " answered code ",
                                 static_cast<int>(txn.closing_code));
  }
  return absl::StrCat(gid, " (", ModeScriptName(txn.script),
                      txn.begun ? "" : ", not begun", ", ",
                      txn.registered.size(), " registered, ", closing, ")");
}

// The first arrival of `op` for `branch_id` in `entries`; -1 if none.
int64_t FirstArrival(const std::vector<LedgerEntry>& entries,
                     const std::string& branch_id, const std::string& op) {
  for (const LedgerEntry& e : entries) {
    if (e.branch_id == branch_id && e.op == op) return e.seq;
  }
  return -1;
}

// Second-phase branch ids of a tcc as dtmd recorded them, in registration
// order.
std::vector<std::string> TccBranchIds(const GetTransactionReply& reply) {
  std::vector<std::string> ids;
  for (const auto& b : reply.branches()) {
    if (b.op() == "confirm") ids.push_back(b.branch_id());
  }
  return ids;
}

void AuditTcc(const std::string& gid, const std::string& status,
              const GetTransactionReply& reply,
              const std::vector<LedgerEntry>& entries,
              std::vector<std::string>* problems) {
  const std::vector<std::string> ids = TccBranchIds(reply);
  const bool confirmed = status == "succeed";
  const std::string want = confirmed ? "confirm" : "cancel";
  const std::string other = confirmed ? "cancel" : "confirm";
  for (const std::string& id : ids) {
    if (FirstArrival(entries, id, want) < 0) {
      problems->push_back(absl::StrCat(gid, ": ", status, ", but branch ", id,
                                       " never got its ", want));
    }
  }
  for (const LedgerEntry& e : entries) {
    if (e.op == other) {
      problems->push_back(absl::StrCat(
          gid, ": ", status, ", yet branch ", e.branch_id, " got a ", other,
          " (#", e.seq, ", ", LedgerEffectName(e.effect), ")"));
    }
    if (e.op == "try" && e.effect == LedgerEffect::kApplied &&
        std::find(ids.begin(), ids.end(), e.branch_id) == ids.end()) {
      problems->push_back(absl::StrCat(gid, ": branch ", e.branch_id,
                                       " was tried but dtmd has no record"));
    }
  }
  // One at a time from the last registered to the first, by first arrival.
  for (size_t k = 0; k + 1 < ids.size(); ++k) {
    const int64_t earlier = FirstArrival(entries, ids[k], want);
    const int64_t later = FirstArrival(entries, ids[k + 1], want);
    if (earlier >= 0 && later >= 0 && earlier < later) {
      problems->push_back(absl::StrCat(gid, ": ", want, " of branch ", ids[k],
                                       " came before that of ", ids[k + 1]));
    }
  }
}

void AuditMsg(const std::string& gid, const ModeTxn& txn,
              const std::string& status, const GetTransactionReply& reply,
              const std::vector<LedgerEntry>& entries,
              std::vector<std::string>* problems) {
  if (status == "failed") {
    // The rolled back msgs: only the check's "FAILURE" ends them.
    if (reply.transaction().rollback_reason() != "FAILURE") {
      problems->push_back(absl::StrCat(gid, ": failed with reason '",
                                       reply.transaction().rollback_reason(),
                                       "', want the check's 'FAILURE'"));
    }
    for (const LedgerEntry& e : entries) {
      if (e.op == "action") {
        problems->push_back(absl::StrCat(gid, ": rolled back, yet action ",
                                         e.branch_id, " delivered (#", e.seq,
                                         ")"));
      }
    }
    return;
  }
  int64_t previous = -1;
  for (int i = 0; i < txn.branches; ++i) {
    const std::string id = absl::StrFormat("%02d", i + 1);
    bool delivered = false;
    for (const LedgerEntry& e : entries) {
      delivered |= e.op == "action" && e.branch_id == id &&
                   e.code == grpc::StatusCode::OK;
    }
    if (!delivered) {
      problems->push_back(absl::StrCat(gid, ": succeed, but action ", id,
                                       " was never delivered"));
    }
    const int64_t first = FirstArrival(entries, id, "action");
    if (first >= 0 && first < previous) {
      problems->push_back(
          absl::StrCat(gid, ": action ", id, " came before the one before it"));
    }
    previous = std::max(previous, first);
  }
}

void AuditWorkflow(const std::string& gid, const ModeTxn& txn,
                   const std::string& status, const GetTransactionReply& reply,
                   const std::vector<LedgerEntry>& entries,
                   std::vector<std::string>* problems) {
  const std::string step_status =
      txn.script == ModeScript::kWorkflowFailed ? "failed" : "succeed";
  for (const std::string& id : txn.registered) {
    bool found = false;
    for (const auto& b : reply.branches()) {
      found |= b.branch_id() == id && b.op() == "action" &&
               b.status() == step_status;
    }
    if (!found) {
      problems->push_back(
          absl::StrCat(gid, ": step ", id, " (", step_status,
                       ") was acknowledged but dtmd has no such progress"));
    }
  }
  if (status == "failed" && txn.closing_code == grpc::StatusCode::OK &&
      reply.transaction().rollback_reason() != "boom") {
    problems->push_back(absl::StrCat(gid, ": failed with reason '",
                                     reply.transaction().rollback_reason(),
                                     "', want 'boom'"));
  }
  for (const LedgerEntry& e : entries) {
    if (e.effect != LedgerEffect::kResumed || e.branch_id != "00" ||
        e.op != kLedgerWorkflowName) {
      problems->push_back(absl::StrCat(gid, ": unexpected call of branch ",
                                       e.branch_id, " op ", e.op, " (#", e.seq,
                                       ")"));
    }
  }
}

// Waits until every gid of `gids` had a resume call with seq >= `since`.
void AwaitResumes(const LedgerBranchServer& ledger,
                  const std::vector<std::string>& gids, int64_t since,
                  absl::Time deadline, std::vector<std::string>* problems) {
  for (const std::string& gid : gids) {
    bool resumed = false;
    do {
      for (const LedgerEntry& e : ledger.EntriesFor(gid)) {
        resumed |= e.seq >= since && e.effect == LedgerEffect::kResumed;
      }
      if (resumed) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (absl::Now() < deadline);
    if (!resumed) {
      problems->push_back(absl::StrCat(
          gid, ": unfinished workflow not resumed since the last start"));
    }
  }
}

}  // namespace

std::vector<std::string> FinishAndAuditModes(
    const DtmdProcess& dtmd, const LedgerBranchServer& ledger,
    const std::map<std::string, ModeTxn>& txns, int64_t resumed_since,
    absl::Duration timeout, std::map<std::string, int>* tally) {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<std::string> problems;
  std::vector<std::string> unfinished_workflows;
  for (const auto& [gid, txn] : txns) {
    const std::vector<std::string> allowed = AllowedEnds(gid, txn);
    const bool must_end = std::all_of(allowed.begin(), allowed.end(), IsFinal);
    absl::StatusOr<GetTransactionReply> reply =
        must_end ? dtmd.WaitForFinal(gid, deadline) : dtmd.GetTransaction(gid);
    const std::string what = Describe(gid, txn);
    if (absl::IsNotFound(reply.status())) {
      // Records are answered from the store: no use waiting.
      if (txn.begun) problems.push_back(absl::StrCat(what, ": lost"));
      continue;
    }
    if (!reply.ok()) {
      problems.push_back(absl::StrCat(what, ": ", reply.status().message()));
      continue;
    }
    const std::string& status = reply->transaction().status();
    if (tally != nullptr) {
      ++(*tally)[absl::StrCat(ModeScriptName(txn.script), ": ", status)];
    }
    if (std::find(allowed.begin(), allowed.end(), status) == allowed.end()) {
      problems.push_back(absl::StrCat(what, ": ", status, ", want ",
                                      absl::StrJoin(allowed, " or ")));
    }
    std::set<std::string> ids;
    for (const auto& b : reply->branches()) ids.insert(b.branch_id());
    for (const std::string& id : txn.registered) {
      if (ids.count(id) == 0) {
        problems.push_back(absl::StrCat(what, ": RegisterBranch ", id,
                                        " was acknowledged, but lost"));
      }
    }
    const std::vector<LedgerEntry> entries = ledger.EntriesFor(gid);
    if (IsWorkflow(txn.script)) {
      AuditWorkflow(gid, txn, status, *reply, entries, &problems);
      if (status == "prepared") unfinished_workflows.push_back(gid);
    } else if (!IsFinal(status)) {
      continue;  // Reported above.
    } else if (IsTcc(txn.script)) {
      AuditTcc(gid, status, *reply, entries, &problems);
    } else {
      AuditMsg(gid, txn, status, *reply, entries, &problems);
    }
  }
  // Every unfinished workflow comes due within its retry interval of the
  // start.
  AwaitResumes(ledger, unfinished_workflows, resumed_since,
               std::max(deadline, absl::Now() + (kWorkflowRetryIntervalS + 5) *
                                                    Slowness()),
               &problems);
  return problems;
}

}  // namespace dtmd::testing
