#include "tests/integration/ledger_saga.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"

namespace dtmd::testing {
namespace {

constexpr char kActionMethod[] = "/ledger.Ledger/Debit";
constexpr char kCompensateMethod[] = "/ledger.Ledger/Refund";

std::string BranchId(int step) { return absl::StrFormat("%02d", step + 1); }

// First and last arrival of each op per step, -1 when none.
struct StepArrivals {
  int64_t first_action = -1;
  int64_t last_action = -1;
  int64_t first_compensate = -1;
  int64_t last_compensate = -1;
  bool refused = false;  // The action answered its scripted failure.
};

std::vector<StepArrivals> ArrivalsByStep(
    const std::string& gid, int steps, const std::vector<LedgerEntry>& entries,
    std::vector<std::string>* problems) {
  std::vector<StepArrivals> out(steps);
  for (const LedgerEntry& e : entries) {
    const int step = std::atoi(e.branch_id.c_str()) - 1;
    if (step < 0 || step >= steps || BranchId(step) != e.branch_id) {
      problems->push_back(absl::StrCat(gid, ": call for unknown branch '",
                                       e.branch_id, "' (#", e.seq, ")"));
      continue;
    }
    StepArrivals& a = out[step];
    const bool action = e.op == "action";
    int64_t& first = action ? a.first_action : a.first_compensate;
    int64_t& last = action ? a.last_action : a.last_compensate;
    if (first < 0) first = e.seq;
    last = e.seq;
    if (e.effect == LedgerEffect::kRefused) a.refused = true;
  }
  return out;
}

// Pairs (before, after): step `after` depends on step `before`.
std::vector<std::pair<int, int>> Edges(const SagaShape& shape) {
  std::vector<std::pair<int, int>> edges;
  if (!shape.concurrent) {
    for (int i = 1; i < shape.steps; ++i) edges.push_back({i - 1, i});
    return edges;
  }
  for (const auto& [step, predecessors] : shape.orders) {
    for (int p : predecessors) edges.push_back({p, step});
  }
  return edges;
}

}  // namespace

std::vector<std::string> QuickRetryFlags() {
  return {"--retry_interval=1", "--cron_interval=1", "--max_retry_interval=2"};
}

std::string SagaShape::ExpectedStatus() const {
  return ShouldFail() ? "failed" : "succeed";
}

bool SagaShape::Reachable(int step) const {
  if (step == fail_step) return true;
  if (!concurrent) return fail_step < 0 || step < fail_step;
  auto it = orders.find(step);
  if (it == orders.end()) return true;
  for (int p : it->second) {
    if (p == fail_step || !Reachable(p)) return false;
  }
  return true;
}

SagaShape MixedShape(int i) {
  SagaShape s;
  switch (i % 8) {
    case 0:  // Sequential, succeeds.
      break;
    case 1:  // Sequential, the middle step fails.
      s.fail_step = 1;
      break;
    case 2:  // Sequential, the last step fails.
      s.fail_step = 2;
      break;
    case 3:  // Concurrent, succeeds.
      s.concurrent = true;
      s.orders = {{2, {0, 1}}};
      break;
    case 4:  // Sequential, the first step fails: nothing to undo but itself.
      s.steps = 2;
      s.fail_step = 0;
      break;
    case 5:  // Concurrent, the step that waits for the others fails.
      s.concurrent = true;
      s.orders = {{2, {0, 1}}};
      s.fail_step = 2;
      break;
    case 6:  // Concurrent diamond, one arm fails: the join never runs.
      s.steps = 4;
      s.concurrent = true;
      s.orders = {{1, {0}}, {2, {0}}, {3, {1, 2}}};
      s.fail_step = 1;
      break;
    default:  // Sequential, four steps, the last fails.
      s.steps = 4;
      s.fail_step = 3;
      break;
  }
  return s;
}

dtmd::client::Saga BuildSaga(dtmgimp::Dtm::StubInterface* stub,
                             const std::string& gid, const SagaShape& shape,
                             const LedgerBranchServer& ledger) {
  dtmd::client::Saga saga(stub, gid);
  for (int step = 0; step < shape.steps; ++step) {
    saga.Add(ledger.StepUrl(kActionMethod, step),
             ledger.StepUrl(kCompensateMethod, step),
             step == shape.fail_step
                 ? LedgerBranchServer::FailingPayload(kInsufficientBalance)
                 : absl::StrCat("step-", step));
  }
  if (shape.concurrent) {
    saga.EnableConcurrent();
    for (const auto& [step, predecessors] : shape.orders) {
      saga.AddBranchOrder(step, predecessors);
    }
  }
  return saga;
}

std::vector<std::string> AuditSaga(const std::string& gid,
                                   const SagaShape& shape,
                                   const std::string& final_status,
                                   const std::vector<LedgerEntry>& entries) {
  std::vector<std::string> problems;
  if (final_status != shape.ExpectedStatus()) {
    problems.push_back(absl::StrCat(gid, ": ended ", final_status,
                                    ", scripted to end ",
                                    shape.ExpectedStatus()));
  }
  int64_t compensating_since = -1;
  for (const LedgerEntry& e : entries) {
    if (e.op == "compensate") {
      if (compensating_since < 0) compensating_since = e.seq;
    } else if (compensating_since >= 0) {
      problems.push_back(absl::StrCat(
          gid, ": action of branch ", e.branch_id, " arrived (#", e.seq,
          ") after compensating began (#", compensating_since, ")",
          e.effect == LedgerEffect::kActionAfterCompensation
              ? "; its own compensation came first, so the barrier made it "
                "a no-op"
              : ""));
    }
  }
  if (final_status == "succeed" && compensating_since >= 0) {
    problems.push_back(absl::StrCat(gid,
                                    ": succeed, yet a compensate arrived (#",
                                    compensating_since, ")"));
  }
  const std::vector<StepArrivals> steps =
      ArrivalsByStep(gid, shape.steps, entries, &problems);
  for (int i = 0; i < shape.steps; ++i) {
    const StepArrivals& a = steps[i];
    if (!shape.Reachable(i) &&
        (a.first_action >= 0 || a.first_compensate >= 0)) {
      problems.push_back(absl::StrCat(gid, ": branch ", BranchId(i),
                                      " could never run, yet it was called"));
    }
    if (final_status == "failed" && a.last_action >= 0 &&
        a.last_compensate < a.last_action) {
      problems.push_back(absl::StrCat(
          gid, ": failed, but the action of branch ", BranchId(i), " (last #",
          a.last_action, ") has no compensate after it"));
    }
  }
  if (final_status == "failed" && shape.ShouldFail() &&
      !steps[shape.fail_step].refused) {
    problems.push_back(absl::StrCat(gid, ": failed, but branch ",
                                    BranchId(shape.fail_step),
                                    " never answered its scripted failure"));
  }
  for (const auto& [before, after] : Edges(shape)) {
    const StepArrivals& b = steps[before];
    const StepArrivals& a = steps[after];
    if (a.first_action >= 0 &&
        !(b.first_action >= 0 && b.first_action < a.first_action)) {
      problems.push_back(absl::StrCat(gid, ": action of branch ",
                                      BranchId(after), " ran before that of ",
                                      BranchId(before)));
    }
    if (a.first_compensate >= 0 && b.first_compensate >= 0 &&
        b.first_compensate < a.first_compensate) {
      problems.push_back(absl::StrCat(
          gid, ": compensation of branch ", BranchId(before),
          " came before that of ", BranchId(after), " (not in reverse order)"));
    }
  }
  return problems;
}

void SagaBook::Submitted(const std::string& gid, const SagaShape& shape,
                         bool acked) {
  absl::MutexLock lock(&mu_);
  (acked ? acked_ : unacked_).emplace(gid, shape);
}

int SagaBook::acked() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(acked_.size());
}

std::map<std::string, SagaShape> SagaBook::Acked() const {
  absl::MutexLock lock(&mu_);
  return acked_;
}

std::map<std::string, SagaShape> SagaBook::Unacked() const {
  absl::MutexLock lock(&mu_);
  return unacked_;
}

SubmitLoad::SubmitLoad(const DtmdProcess& dtmd,
                       const LedgerBranchServer& ledger, SagaBook* book,
                       Options options)
    : dtmd_(dtmd),
      ledger_(ledger),
      book_(book),
      options_(std::move(options)),
      load_(options_, [this](int n) { return Submit(n); }) {}

bool SubmitLoad::Submit(int n) {
  const std::string gid = absl::StrCat(options_.gid_prefix, "-", n);
  const SagaShape shape = MixedShape(n);
  dtmd::client::Saga saga = BuildSaga(dtmd_.dtm(), gid, shape, ledger_);
  saga.SetCallTimeout(std::chrono::milliseconds(
      absl::ToInt64Milliseconds(options_.call_timeout)));
  const bool ok = saga.Submit().ok();
  book_->Submitted(gid, shape, ok);
  return ok;
}

std::vector<std::string> FinishAndAudit(
    const DtmdProcess& dtmd, const LedgerBranchServer& ledger,
    const std::map<std::string, SagaShape>& sagas, bool must_exist,
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<std::string> problems;
  for (const auto& [gid, shape] : sagas) {
    absl::StatusOr<dtmd::admin::v1::GetTransactionReply> final_reply =
        dtmd.WaitForFinal(gid, deadline);
    if (absl::IsNotFound(final_reply.status())) {
      // Acknowledged records are on disk.
      if (must_exist) problems.push_back(absl::StrCat(gid, ": lost"));
      continue;
    }
    if (!final_reply.ok()) {
      problems.push_back(std::string(final_reply.status().message()));
      continue;
    }
    const std::string& status = final_reply->transaction().status();
    std::vector<std::string> found =
        AuditSaga(gid, shape, status, ledger.EntriesFor(gid));
    // A gRPC branch's message as it is; an HTTP branch's body after its
    // status.
    const std::string& reason = final_reply->transaction().rollback_reason();
    const bool expected_reason =
        reason == kInsufficientBalance ||
        (absl::StartsWith(reason, "HTTP 409: ") &&
         absl::StrContains(reason, kInsufficientBalance));
    if (status == "failed" && !expected_reason) {
      found.push_back(absl::StrCat(gid, ": rollback reason '",
                                   final_reply->transaction().rollback_reason(),
                                   "', want '", kInsufficientBalance, "'"));
    }
    problems.insert(problems.end(), found.begin(), found.end());
  }
  return problems;
}

void ExpectEverySagaEndsAsScripted(const DtmdProcess& dtmd,
                                   const LedgerBranchServer& ledger,
                                   const SagaBook& book,
                                   absl::Duration timeout) {
  const std::vector<std::string> acked =
      FinishAndAudit(dtmd, ledger, book.Acked(), /*must_exist=*/true, timeout);
  EXPECT_TRUE(acked.empty())
      << acked.size() << " problems with acknowledged sagas:\n"
      << SummarizeProblems(acked);
  const std::vector<std::string> unacked = FinishAndAudit(
      dtmd, ledger, book.Unacked(), /*must_exist=*/false, timeout / 2);
  EXPECT_TRUE(unacked.empty())
      << unacked.size() << " problems with unacknowledged sagas:\n"
      << SummarizeProblems(unacked);
  const std::vector<std::string> violations = ledger.Violations();
  EXPECT_TRUE(violations.empty())
      << violations.size() << " actions after their compensation:\n"
      << SummarizeProblems(violations);
}

std::string SummarizeProblems(const std::vector<std::string>& problems,
                              size_t most) {
  const size_t shown = std::min(most, problems.size());
  std::string out =
      absl::StrJoin(problems.begin(), problems.begin() + shown, "\n");
  if (problems.size() > shown) {
    absl::StrAppend(&out, "\n... and ", problems.size() - shown, " more");
  }
  return out;
}

}  // namespace dtmd::testing
