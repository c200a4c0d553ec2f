// TccMode and XaMode (TwoPhaseMode), found through the mode registry: every
// command in every status, registration repeats, the order and one-at-a-time
// running of the second phase, timeouts, intervals, WaitOutcome and
// durability. Most tests run for both modes; they differ only in op names
// and order.
#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/txn/mode.h"
#include "server/txn/tcc.h"
#include "server/txn/xa.h"

namespace dtmd::txn {
namespace {

using Strs = std::vector<std::string>;
using Ints = std::vector<int64_t>;

constexpr int64_t kStartMs = 1'000'000;
constexpr BranchOutcome kOk = BranchOutcome::kSuccess;
constexpr BranchOutcome kFail = BranchOutcome::kFailure;
constexpr BranchOutcome kOngoing = BranchOutcome::kOngoing;
constexpr BranchOutcome kUnknown = BranchOutcome::kUnknown;
constexpr absl::StatusCode kOkCode = absl::StatusCode::kOk;
constexpr absl::StatusCode kAborted = absl::StatusCode::kAborted;

struct Txn {
  TransRecord trans;
  std::vector<BranchRecord> branches;
};

struct Kind {
  const char* type;
  const char* commit;
  const char* rollback;
  bool reverse;
};

class TwoPhaseTest : public ::testing::TestWithParam<Kind> {
 public:  // the Runner below uses these too.
  const Mode& mode() const { return *FindMode(GetParam().type); }
  const char* commit() const { return GetParam().commit; }
  const char* rollback() const { return GetParam().rollback; }

  Txn MakeTxn(const char* status = "prepared") const {
    Txn txn;
    txn.trans.set_gid("g");
    txn.trans.set_trans_type(GetParam().type);
    txn.trans.set_status(status);
    txn.trans.set_create_time_ms(kStartMs);
    txn.trans.mutable_options()->set_retry_interval_s(10);
    txn.trans.set_next_cron_interval_s(10);
    return txn;
  }

  // One registration as the request builder makes it: rollback op, then
  // commit op; an empty URL is "succeed" at once.
  std::vector<BranchRecord> Registration(const std::string& id,
                                         const std::string& commit_url,
                                         const std::string& rollback_url,
                                         const std::string& payload = "p") {
    std::vector<BranchRecord> out;
    for (const auto& [op, url] : {std::pair(rollback(), rollback_url),
                                  std::pair(commit(), commit_url)}) {
      BranchRecord b;
      b.set_gid("g");
      b.set_branch_id(id);
      b.set_op(op);
      b.set_url(url);
      b.set_bin_data(payload);
      b.set_status(url.empty() ? "succeed" : "prepared");
      b.set_create_time_ms(kStartMs);
      out.push_back(b);
    }
    return out;
  }
  std::vector<BranchRecord> Registration(const std::string& id) {
    return Registration(id, "h:1/S/" + id, "h:1/S/" + id);
  }

  CommandResult Apply(Txn* txn, Command command, CommandArgs args = {},
                      int64_t now_ms = kStartMs) const {
    return mode().ApplyCommand(command, args, txn->branches, &txn->trans,
                               now_ms);
  }

  // Registers through the mode and adds what it added, as the runner does.
  CommandResult Register(Txn* txn, std::vector<BranchRecord> branches) const {
    CommandArgs args;
    args.branches = std::move(branches);
    CommandResult r = Apply(txn, Command::kRegisterBranch, args);
    for (BranchRecord b : r.added) {
      b.set_position(static_cast<int>(txn->branches.size()));
      txn->branches.push_back(b);
    }
    return r;
  }

  // A prepared transaction with registrations "01".."0n".
  Txn Registered(int n) {
    Txn txn = MakeTxn();
    for (int i = 1; i <= n; ++i) {
      EXPECT_TRUE(
          Register(&txn, Registration(absl::StrCat("0", i))).reply.ok());
    }
    return txn;
  }

  Decision Next(const Txn& txn, int64_t now_ms = kStartMs,
                std::vector<CallState> states = {},
                RetryPolicy policy = {}) const {
    if (states.empty()) states.assign(txn.branches.size(), CallState::kIdle);
    auto plan = mode().MakePlan(txn.trans, txn.branches);
    return mode().Next(*plan, txn.trans, txn.branches, states, CallState::kIdle,
                       now_ms, policy);
  }

  // "confirm02" for the branch at `position`.
  std::string Name(const Txn& txn, int position) const {
    return txn.branches[position].op() + txn.branches[position].branch_id();
  }
  Strs Names(const Txn& txn, const std::vector<int>& positions) const {
    Strs out;
    for (int p : positions) out.push_back(Name(txn, p));
    return out;
  }

  // `op` + each id, in the mode's order.
  Strs InModeOrder(const char* op, Strs ids) const {
    if (GetParam().reverse) std::reverse(ids.begin(), ids.end());
    for (std::string& id : ids) id = op + id;
    return ids;
  }

  int PositionOf(const Txn& txn, const std::string& name) const {
    for (size_t i = 0; i < txn.branches.size(); ++i) {
      if (Name(txn, static_cast<int>(i)) == name) return static_cast<int>(i);
    }
    ADD_FAILURE() << "no branch " << name;
    return 0;
  }
};

// Drives a transaction as TransactionRunner does: decide, apply a status
// change and decide again, start calls, answer them one at a time (from the
// script; success when it is empty). A round ends when nothing is in flight
// and the decision is empty; each round starts with every branch idle.
class Runner {
 public:
  Runner(const TwoPhaseTest* test, Txn* txn) : test_(test), txn_(txn) {}

  void Script(const std::string& name, std::vector<BranchOutcome> outcomes) {
    script_[name].insert(script_[name].end(), outcomes.begin(), outcomes.end());
  }

  void RunRound(int64_t now_ms) {
    const Mode& mode = test_->mode();
    std::vector<CallState> state(txn_->branches.size(), CallState::kIdle);
    std::deque<int> in_flight;
    auto plan = mode.MakePlan(txn_->trans, txn_->branches);
    for (int guard = 0; guard < 1000; ++guard) {
      Decision d = mode.Next(*plan, txn_->trans, txn_->branches, state,
                             CallState::kIdle, now_ms, RetryPolicy());
      if (!d.new_status.empty()) {
        MoveTo(&txn_->trans, d.new_status, d.rollback_reason, now_ms);
        statuses.push_back(d.new_status);
        continue;
      }
      EXPECT_LE(d.calls.size() + in_flight.size(), 1u) << "one at a time";
      for (int position : d.calls) {
        EXPECT_EQ(state[position], CallState::kIdle);
        log.push_back(test_->Name(*txn_, position));
        state[position] = CallState::kInFlight;
        in_flight.push_back(position);
      }
      if (in_flight.empty()) return;
      const int position = in_flight.front();
      in_flight.pop_front();
      const std::string name = test_->Name(*txn_, position);
      BranchOutcome outcome = kOk;
      if (!script_[name].empty()) {
        outcome = script_[name].front();
        script_[name].pop_front();
      }
      const bool deferred =
          mode.ApplyAnswer(&txn_->trans, &txn_->branches[position], outcome,
                           name + " said no", now_ms, RetryPolicy());
      state[position] = deferred ? CallState::kDeferred : CallState::kIdle;
    }
    ADD_FAILURE() << "round did not settle";
  }

  Strs log;       // calls, in the order they started.
  Strs statuses;  // status changes made by decisions.

 private:
  const TwoPhaseTest* test_;
  Txn* txn_;
  std::map<std::string, std::deque<BranchOutcome>> script_;
};

// ----- Registry ------------------------------------------------------------

TEST_P(TwoPhaseTest, IsRegisteredAndNoAnswerIsAFailure) {
  ASSERT_NE(FindMode(GetParam().type), nullptr);
  EXPECT_EQ(mode().trans_type(), GetParam().type);
  for (const char* op : {commit(), rollback(), "try", "action", ""}) {
    EXPECT_FALSE(mode().FailureAllowed(op)) << op;
  }
}

// ----- RegisterBranch -------------------------------------------------------

TEST_P(TwoPhaseTest, RegisterAddsTheRecordsInOrderOnlyWhilePrepared) {
  for (const char* status :
       {"prepared", "submitted", "aborting", "succeed", "failed"}) {
    SCOPED_TRACE(status);
    Txn txn = MakeTxn(status);
    const TransRecord before = txn.trans;
    CommandResult r = Register(&txn, Registration("01"));
    EXPECT_FALSE(r.changed);
    EXPECT_FALSE(r.drive);
    EXPECT_EQ(txn.trans.SerializeAsString(), before.SerializeAsString());
    if (std::string(status) == "prepared") {
      EXPECT_TRUE(r.reply.ok()) << r.reply;
      EXPECT_EQ(Names(txn, {0, 1}), Strs({rollback() + std::string("01"),
                                          commit() + std::string("01")}));
      continue;
    }
    EXPECT_EQ(r.reply.code(), kAborted);
    EXPECT_EQ(r.reply.message(),
              absl::StrCat("transaction g is ", status,
                           ", branches can be registered only while it is "
                           "prepared"));
    EXPECT_TRUE(r.added.empty());
  }
}

TEST_P(TwoPhaseTest, IdenticalRegistrationIsAcceptedAndAddsNothing) {
  Txn txn = Registered(2);
  CommandResult r = Register(&txn, Registration("01"));
  EXPECT_TRUE(r.reply.ok()) << r.reply;
  EXPECT_TRUE(r.added.empty());
  EXPECT_EQ(txn.branches.size(), 4u);
}

TEST_P(TwoPhaseTest, RegistrationWithOtherDataIsAlreadyExistsAndAddsNothing) {
  struct Row {
    const char* what;
    std::vector<BranchRecord> branches;
    std::string op;  // the op the error names
  };
  const std::vector<Row> rows = {
      {"commit url", Registration("01", "h:1/S/x", "h:1/S/01"), commit()},
      {"rollback url", Registration("01", "h:1/S/01", "h:1/S/x"), rollback()},
      {"payload", Registration("01", "h:1/S/01", "h:1/S/01", "q"), rollback()},
      {"empty url", Registration("01", "", "h:1/S/01"), commit()},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.what);
    Txn txn = Registered(1);
    CommandResult r = Register(&txn, row.branches);
    EXPECT_EQ(r.reply.code(), absl::StatusCode::kAlreadyExists);
    EXPECT_EQ(r.reply.message(),
              absl::StrCat("branch 01 op ", row.op,
                           " of transaction g is already registered with a "
                           "different url or payload"));
    EXPECT_TRUE(r.added.empty());
    EXPECT_FALSE(r.changed);
  }
}

TEST_P(TwoPhaseTest, RegistrationAddsOnlyTheRecordsThatAreMissing) {
  Txn txn = MakeTxn();
  std::vector<BranchRecord> both = Registration("01");
  ASSERT_TRUE(Register(&txn, {both[0]}).reply.ok());
  CommandResult r = Register(&txn, both);
  EXPECT_TRUE(r.reply.ok());
  EXPECT_EQ(Names(txn, {0, 1}), Strs({rollback() + std::string("01"),
                                      commit() + std::string("01")}));
  // A record listed twice in one request is added once.
  Txn twice = MakeTxn();
  r = Register(&twice, {both[1], both[1]});
  EXPECT_TRUE(r.reply.ok());
  EXPECT_EQ(twice.branches.size(), 1u);
}

// ----- Submit and Abort in every status ------------------------------------

TEST_P(TwoPhaseTest, SubmitAndAbortInEveryStatus) {
  struct Row {
    const char* status;
    Command command;
    absl::StatusCode code;
    bool changed;
    bool drive;
    const char* status_after;
    std::string message;
  };
  const std::string cannot_abort =
      absl::StrCat("trans type '", GetParam().type, "' current status '");
  const std::vector<Row> rows = {
      {"prepared", Command::kSubmit, kOkCode, true, true, "submitted", ""},
      {"submitted", Command::kSubmit, kOkCode, false, true, "submitted", ""},
      {"aborting", Command::kSubmit, kAborted, false, false, "aborting",
       "transaction g is already aborting"},
      {"succeed", Command::kSubmit, kAborted, false, false, "succeed",
       "transaction g is already succeed"},
      {"failed", Command::kSubmit, kAborted, false, false, "failed",
       "transaction g is already failed"},
      {"prepared", Command::kAbort, kOkCode, true, true, "aborting", ""},
      {"aborting", Command::kAbort, kOkCode, false, true, "aborting", ""},
      {"submitted", Command::kAbort, kAborted, false, false, "submitted",
       cannot_abort + "submitted', cannot abort"},
      {"succeed", Command::kAbort, kAborted, false, false, "succeed",
       cannot_abort + "succeed', cannot abort"},
      {"failed", Command::kAbort, kAborted, false, false, "failed",
       cannot_abort + "failed', cannot abort"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(absl::StrCat(
        row.status, " ", row.command == Command::kSubmit ? "Submit" : "Abort"));
    Txn txn = Registered(1);
    txn.trans.set_status(row.status);
    const TransRecord before = txn.trans;
    CommandResult r = Apply(&txn, row.command);
    EXPECT_EQ(r.reply.code(), row.code) << r.reply;
    EXPECT_EQ(r.reply.message(), row.message);
    EXPECT_EQ(r.changed, row.changed);
    EXPECT_EQ(r.drive, row.drive);
    EXPECT_TRUE(r.added.empty());
    EXPECT_EQ(txn.trans.status(), row.status_after);
    if (!row.changed) {
      EXPECT_EQ(txn.trans.SerializeAsString(), before.SerializeAsString());
    }
  }
}

TEST_P(TwoPhaseTest, LeavingPreparedResetsTheIntervalAndTheDueTime) {
  for (Command command : {Command::kSubmit, Command::kAbort}) {
    Txn txn = Registered(1);
    txn.trans.set_next_cron_interval_s(80);
    CommandResult r = Apply(&txn, command, {}, kStartMs + 500);
    EXPECT_TRUE(r.reply.ok());
    EXPECT_EQ(txn.trans.next_cron_interval_s(), 10);
    EXPECT_EQ(txn.trans.next_cron_time_ms(), kStartMs + 10'500);
    EXPECT_EQ(txn.trans.update_time_ms(), kStartMs + 500);
    EXPECT_EQ(txn.trans.finish_time_ms(), 0);
  }
}

TEST_P(TwoPhaseTest, AbortKeepsTheClientsReason) {
  Txn txn = Registered(1);
  CommandArgs args;
  args.rollback_reason = "user gave up";
  Apply(&txn, Command::kAbort, args);
  EXPECT_EQ(txn.trans.rollback_reason(), "user gave up");
  Txn no_reason = Registered(1);
  Apply(&no_reason, Command::kAbort);
  EXPECT_EQ(no_reason.trans.rollback_reason(), "");
}

TEST_P(TwoPhaseTest, SubmitAtTheDeadlineAbortsAndIsRefused) {
  Txn before = Registered(1);
  before.trans.mutable_options()->set_timeout_to_fail_s(5);
  Txn txn = before;
  CommandResult r = Apply(&txn, Command::kSubmit, {}, kStartMs + 4999);
  EXPECT_TRUE(r.reply.ok());
  EXPECT_EQ(txn.trans.status(), "submitted");

  txn = before;
  r = Apply(&txn, Command::kSubmit, {}, kStartMs + 5000);
  EXPECT_EQ(r.reply.code(), kAborted);
  EXPECT_EQ(r.reply.message(),
            "transaction g is aborting: Timeout after 5 seconds");
  EXPECT_TRUE(r.changed) << "the move is written before the reply";
  EXPECT_TRUE(r.drive) << "the rollbacks start at once";
  EXPECT_EQ(txn.trans.status(), "aborting");
  EXPECT_EQ(txn.trans.rollback_reason(), "Timeout after 5 seconds");
  EXPECT_EQ(txn.trans.next_cron_time_ms(), kStartMs + 15'000);
}

// ----- Next while prepared -------------------------------------------------

TEST_P(TwoPhaseTest, PreparedSleepsUntilTheDeadlineThenAborts) {
  Txn txn = Registered(2);
  txn.trans.mutable_options()->set_timeout_to_fail_s(35);
  for (int64_t now : {kStartMs, kStartMs + 34'999}) {
    Decision d = Next(txn, now);
    EXPECT_TRUE(d.calls.empty());
    EXPECT_EQ(d.new_status, "");
    EXPECT_EQ(d.wake_at_ms, kStartMs + 35'000);
    EXPECT_EQ(d.next_interval_s, 0) << "the interval is kept";
  }
  Decision d = Next(txn, kStartMs + 35'000);
  EXPECT_EQ(d.new_status, "aborting");
  EXPECT_EQ(d.rollback_reason, "Timeout after 35 seconds");
  EXPECT_TRUE(d.calls.empty());
}

TEST_P(TwoPhaseTest, PreparedWithoutTimeoutBacksOffUpToTheCap) {
  Txn txn = Registered(1);
  RetryPolicy policy;
  policy.max_interval_s = 60;
  Ints intervals;
  int64_t now = kStartMs;
  for (int i = 0; i < 5; ++i) {
    Decision d = Next(txn, now, {}, policy);
    EXPECT_TRUE(d.calls.empty());
    EXPECT_EQ(d.new_status, "");
    EXPECT_EQ(d.wake_at_ms, now + d.next_interval_s * 1000);
    intervals.push_back(d.next_interval_s);
    txn.trans.set_next_cron_interval_s(d.next_interval_s);
    now = d.wake_at_ms;
  }
  EXPECT_EQ(intervals, Ints({20, 40, 60, 60, 60}));
}

TEST_P(TwoPhaseTest, HugeTimeoutNeverOverflowsAndNeverComes) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  Txn txn = Registered(1);
  txn.trans.mutable_options()->set_timeout_to_fail_s(kMax / 1000);
  Decision d = Next(txn, kMax);
  EXPECT_EQ(d.new_status, "");
  EXPECT_EQ(d.wake_at_ms, kMax);
  EXPECT_EQ(Apply(&txn, Command::kSubmit, {}, kMax - 20'000).reply.code(),
            kOkCode);
}

// ----- Running the second phase --------------------------------------------

TEST_P(TwoPhaseTest, SubmitRunsTheCommitsOneAtATimeInTheModesOrder) {
  Txn txn = Registered(3);
  Apply(&txn, Command::kSubmit);
  Runner runner(this, &txn);
  runner.RunRound(kStartMs);
  EXPECT_EQ(runner.log, InModeOrder(commit(), {"01", "02", "03"}));
  EXPECT_EQ(runner.statuses, Strs({"succeed"}));
  EXPECT_EQ(txn.trans.finish_time_ms(), kStartMs);
  for (const BranchRecord& b : txn.branches) {
    EXPECT_EQ(b.status(), b.op() == commit() ? "succeed" : "prepared");
  }
}

TEST_P(TwoPhaseTest, AbortRunsTheRollbacksOneAtATimeInTheModesOrder) {
  Txn txn = Registered(3);
  Apply(&txn, Command::kAbort);
  Runner runner(this, &txn);
  runner.RunRound(kStartMs);
  EXPECT_EQ(runner.log, InModeOrder(rollback(), {"01", "02", "03"}));
  EXPECT_EQ(runner.statuses, Strs({"failed"}));
  for (const BranchRecord& b : txn.branches) {
    EXPECT_EQ(b.status(), b.op() == rollback() ? "succeed" : "prepared");
  }
}

TEST_P(TwoPhaseTest, TimeoutOfAPreparedTransactionRunsTheRollbacks) {
  Txn txn = Registered(2);
  txn.trans.mutable_options()->set_timeout_to_fail_s(5);
  Runner runner(this, &txn);
  runner.RunRound(kStartMs + 4999);
  EXPECT_TRUE(runner.log.empty());
  runner.RunRound(kStartMs + 5000);
  EXPECT_EQ(runner.statuses, Strs({"aborting", "failed"}));
  EXPECT_EQ(runner.log, InModeOrder(rollback(), {"01", "02"}));
  EXPECT_EQ(txn.trans.rollback_reason(), "Timeout after 5 seconds");
}

TEST_P(TwoPhaseTest, OnlyTheNextBranchIsCalledAndABusyOneBlocksTheRest) {
  Txn txn = Registered(3);
  for (const char* status : {"submitted", "aborting"}) {
    SCOPED_TRACE(status);
    const char* op = std::string(status) == "submitted" ? commit() : rollback();
    txn.trans.set_status(status);
    const Strs order = InModeOrder(op, {"01", "02", "03"});
    const int first = PositionOf(txn, order[0]);
    Decision d = Next(txn);
    EXPECT_EQ(Names(txn, d.calls), Strs({order[0]}));
    for (CallState busy : {CallState::kInFlight, CallState::kDeferred}) {
      std::vector<CallState> states(txn.branches.size(), CallState::kIdle);
      states[first] = busy;
      d = Next(txn, kStartMs, states);
      EXPECT_TRUE(d.calls.empty());
      EXPECT_EQ(d.new_status, "");
      EXPECT_EQ(d.wake_at_ms, 0) << "after the current interval";
    }
    txn.branches[first].set_status("succeed");
    EXPECT_EQ(Names(txn, Next(txn).calls), Strs({order[1]}));
  }
}

TEST_P(TwoPhaseTest, DeferredBranchIsRetriedInTheNextRoundBeforeTheRest) {
  Txn txn = Registered(3);
  Apply(&txn, Command::kSubmit);
  const Strs order = InModeOrder(commit(), {"01", "02", "03"});
  Runner runner(this, &txn);
  runner.Script(order[1], {kOngoing, kUnknown});
  runner.RunRound(kStartMs);
  EXPECT_EQ(runner.log, Strs({order[0], order[1]}));
  runner.RunRound(kStartMs + 1000);
  EXPECT_EQ(runner.log, Strs({order[0], order[1], order[1]}));
  runner.RunRound(kStartMs + 2000);
  EXPECT_EQ(runner.log,
            Strs({order[0], order[1], order[1], order[1], order[2]}));
  EXPECT_EQ(txn.trans.status(), "succeed");
}

TEST_P(TwoPhaseTest, FailedAnswerIsRetriedUntilTheBranchSucceeds) {
  Txn txn = Registered(1);
  Apply(&txn, Command::kAbort);
  Runner runner(this, &txn);
  const std::string name = rollback() + std::string("01");
  runner.Script(name, {kFail, kFail});
  for (int round = 0; round < 3; ++round) {
    runner.RunRound(kStartMs + round * 1000);
  }
  EXPECT_EQ(runner.log, Strs({name, name, name}));
  EXPECT_EQ(txn.trans.status(), "failed");
}

TEST_P(TwoPhaseTest, SecondPhaseBranchStoredFailedIsCalledUntilItSucceeds) {
  // Only a damaged record has a failed confirm/cancel: it is retried like
  // any unfinished one, and its answer counts (no call loop in a round).
  Txn txn = Registered(1);
  Apply(&txn, Command::kAbort);
  const int position = txn.branches[0].op() == rollback() ? 0 : 1;
  txn.branches[position].set_status("failed");
  Runner runner(this, &txn);
  runner.RunRound(kStartMs);
  EXPECT_EQ(runner.log, Strs({rollback() + std::string("01")}));
  EXPECT_EQ(txn.branches[position].status(), "succeed");
  EXPECT_EQ(txn.trans.status(), "failed");
}

TEST_P(TwoPhaseTest, EmptyUrlBranchesAreDoneWithoutACall) {
  Txn txn = MakeTxn();
  Register(&txn, Registration("01", "", ""));
  Register(&txn, Registration("02"));
  Register(&txn, Registration("03", "", "h:1/S/03"));
  Apply(&txn, Command::kSubmit);
  Runner runner(this, &txn);
  runner.RunRound(kStartMs);
  EXPECT_EQ(runner.log, Strs({commit() + std::string("02")}));
  EXPECT_EQ(txn.trans.status(), "succeed");
}

TEST_P(TwoPhaseTest, NothingToRunEndsAtOnce) {
  for (const char* status : {"submitted", "aborting"}) {
    Txn none = MakeTxn(status);
    Decision d = Next(none);
    EXPECT_TRUE(d.calls.empty());
    EXPECT_EQ(d.new_status,
              std::string(status) == "submitted" ? "succeed" : "failed");
  }
}

TEST_P(TwoPhaseTest, BranchesOfOtherOpsAreNeverCalled) {
  Txn txn = Registered(1);
  BranchRecord other = txn.branches[1];
  other.set_op("try");
  other.set_position(2);
  txn.branches.push_back(other);
  txn.trans.set_status("submitted");
  EXPECT_EQ(Names(txn, Next(txn).calls), Strs({commit() + std::string("01")}));
  txn.branches[1].set_status("succeed");
  EXPECT_EQ(Next(txn).new_status, "succeed");
}

TEST_P(TwoPhaseTest, FinalAndUnknownStatusesDecideNothing) {
  for (const char* status : {"succeed", "failed", "", "bogus"}) {
    Txn txn = Registered(2);
    txn.trans.set_status(status);
    txn.trans.mutable_options()->set_timeout_to_fail_s(1);
    Decision d = Next(txn, kStartMs + 1'000'000);
    EXPECT_TRUE(d.calls.empty()) << status;
    EXPECT_EQ(d.new_status, "") << status;
    EXPECT_EQ(d.wake_at_ms, 0) << status;
  }
}

// ----- ApplyAnswer ---------------------------------------------------------

TEST_P(TwoPhaseTest, AnswersTable) {
  struct Row {
    BranchOutcome outcome;
    bool deferred;
    const char* branch_status;
    int64_t finish_time_ms;
    int64_t interval_after;  // from 40
    const char* last_error;
  };
  const std::vector<Row> rows = {
      {kOk, false, "succeed", 77, 10, ""},
      {kOngoing, true, "prepared", 0, 40, "no"},
      {kUnknown, true, "prepared", 0, 80, "no"},
      {kFail, true, "prepared", 0, 80, "no"},  // a failure is unknown
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(OutcomeName(row.outcome));
    Txn txn = Registered(1);
    txn.trans.set_status("submitted");
    txn.trans.set_next_cron_interval_s(40);
    BranchRecord& branch = txn.branches[1];
    EXPECT_EQ(mode().ApplyAnswer(&txn.trans, &branch, row.outcome,
                                 row.outcome == kOk ? "" : "no", 77, {}),
              row.deferred);
    EXPECT_EQ(branch.status(), row.branch_status);
    EXPECT_EQ(branch.finish_time_ms(), row.finish_time_ms);
    EXPECT_EQ(branch.last_error(), row.last_error);
    EXPECT_EQ(txn.trans.next_cron_interval_s(), row.interval_after);
    EXPECT_EQ(txn.trans.status(), "submitted");
  }
}

TEST_P(TwoPhaseTest, UnknownDoublesTheIntervalUpToTheCap) {
  Txn txn = Registered(1);
  txn.trans.set_status("aborting");
  RetryPolicy policy;
  policy.max_interval_s = 100;
  Ints intervals;
  for (int i = 0; i < 5; ++i) {
    mode().ApplyAnswer(&txn.trans, &txn.branches[0], kUnknown, "", 5, policy);
    intervals.push_back(txn.trans.next_cron_interval_s());
  }
  EXPECT_EQ(intervals, Ints({20, 40, 80, 100, 100}));
  txn.trans.set_next_cron_interval_s(0);
  mode().ApplyAnswer(&txn.trans, &txn.branches[0], kUnknown, "", 5, policy);
  EXPECT_EQ(txn.trans.next_cron_interval_s(), 20) << "from retry_interval_s";
}

TEST_P(TwoPhaseTest, LateAnswerForAnEndedBranchChangesNothing) {
  for (const char* ended : {"succeed"}) {
    Txn txn = Registered(1);
    txn.branches[1].set_status(ended);
    txn.branches[1].set_finish_time_ms(5);
    const Txn before = txn;
    for (BranchOutcome outcome : {kOk, kFail, kOngoing, kUnknown}) {
      EXPECT_FALSE(mode().ApplyAnswer(&txn.trans, &txn.branches[1], outcome,
                                      "late", 9, {}));
    }
    EXPECT_EQ(txn.branches[1].SerializeAsString(),
              before.branches[1].SerializeAsString());
    EXPECT_EQ(txn.trans.SerializeAsString(), before.trans.SerializeAsString());
  }
}

// ----- Durability and WaitOutcome ------------------------------------------

TEST_P(TwoPhaseTest, EveryMoveButTheLastOfAPhaseIsDurableFirst) {
  struct Row {
    const char* from;
    const char* to;
    bool durable;
  };
  for (const Row& row : std::vector<Row>{{"prepared", "submitted", true},
                                         {"prepared", "aborting", true},
                                         {"submitted", "succeed", false},
                                         {"aborting", "failed", false},
                                         {"prepared", "failed", true},
                                         {"prepared", "succeed", false}}) {
    EXPECT_EQ(mode().MoveMustBeDurable(row.from, row.to), row.durable)
        << row.from << " -> " << row.to;
  }
}

TEST_P(TwoPhaseTest, WaitOutcomeTable) {
  struct Row {
    const char* status;
    const char* reason;
    absl::StatusCode code;
    const char* message;
  };
  const std::vector<Row> rows = {
      {"succeed", "", kOkCode, ""},
      {"failed", "Timeout after 5 seconds", kAborted,
       "transaction g failed: Timeout after 5 seconds"},
      {"failed", "", kAborted, "transaction g failed"},
      {"prepared", "", absl::StatusCode::kFailedPrecondition,
       "transaction g is still prepared after its first round; dtmd keeps "
       "retrying in the background"},
      {"submitted", "", absl::StatusCode::kFailedPrecondition,
       "transaction g is still submitted after its first round; dtmd keeps "
       "retrying in the background"},
      {"aborting", "x", absl::StatusCode::kFailedPrecondition,
       "transaction g is still aborting after its first round; dtmd keeps "
       "retrying in the background"},
  };
  for (const Row& row : rows) {
    Txn txn = Registered(1);
    txn.trans.set_status(row.status);
    txn.trans.set_rollback_reason(row.reason);
    absl::Status s = mode().WaitOutcome(txn.trans, txn.branches);
    EXPECT_EQ(s.code(), row.code) << row.status;
    EXPECT_EQ(s.message(), row.message) << row.status;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Modes, TwoPhaseTest,
    ::testing::Values(Kind{"tcc", "confirm", "cancel", /*reverse=*/true},
                      Kind{"xa", "commit", "rollback", /*reverse=*/false}),
    [](const ::testing::TestParamInfo<Kind>& info) {
      return std::string(info.param.type);
    });

// ----- What sets the two apart ---------------------------------------------

TEST(TwoPhaseModesTest, TccConfirmsInReverseAndXaCommitsInOrder) {
  const TccMode tcc;
  const XaMode xa;
  EXPECT_EQ(tcc.trans_type(), "tcc");
  EXPECT_EQ(tcc.spec().commit_op, "confirm");
  EXPECT_EQ(tcc.spec().rollback_op, "cancel");
  EXPECT_TRUE(tcc.spec().reverse_order);
  EXPECT_EQ(xa.trans_type(), "xa");
  EXPECT_EQ(xa.spec().commit_op, "commit");
  EXPECT_EQ(xa.spec().rollback_op, "rollback");
  EXPECT_FALSE(xa.spec().reverse_order);
  EXPECT_NE(dynamic_cast<const TccMode*>(FindMode("tcc")), nullptr);
  EXPECT_NE(dynamic_cast<const XaMode*>(FindMode("xa")), nullptr);
}

}  // namespace
}  // namespace dtmd::txn
