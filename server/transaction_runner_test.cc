// The generic runner and the engine around it, on a fake mode: the
// invariants every mode relies on (write-ahead decisions, commands as
// events, waiters answered once, nothing driven before it is durable,
// bounded admission, holds after failed writes, shutdown that ends), with a
// real store behind a HookedStore and a scripted invoker.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/engine.h"
#include "server/test_store.h"
#include "server/txn/mode.h"
#include "storage/rocksdb_store.h"

namespace dtmd {
namespace {

using storage::v1::BranchRecord;
using storage::v1::TransRecord;
using testing::HookedStore;

constexpr char kFake[] = "fake";

// A minimal mode: "submitted" calls every "do" branch at once; all
// succeeded: succeed; one failed: aborting (durable), which calls every
// "undo" branch; all undone: failed. "prepared" waits (Submit moves it);
// Abort of a prepared one moves it to failed (durable).
class FakeMode : public txn::Mode {
 public:
  absl::string_view trans_type() const override { return kFake; }
  std::unique_ptr<txn::Plan> MakePlan(
      const TransRecord&, const std::vector<BranchRecord>&) const override {
    return std::make_unique<txn::Plan>();
  }
  txn::CommandResult ApplyCommand(txn::Command command,
                                  const txn::CommandArgs& args,
                                  const std::vector<BranchRecord>& branches,
                                  TransRecord* trans, int64_t) const override {
    txn::CommandResult result;
    if (command == txn::Command::kRegisterBranch) {
      if (trans->status() != storage::kStatusPrepared) {
        result.reply = absl::AbortedError("not prepared");
        return result;
      }
      for (const BranchRecord& add : args.branches) {
        bool known = false;
        for (const BranchRecord& b : branches) {
          known |= b.branch_id() == add.branch_id() && b.op() == add.op();
        }
        if (!known) result.added.push_back(add);
      }
      return result;
    }
    if (trans->status() == storage::kStatusPrepared) {
      trans->set_status(command == txn::Command::kSubmit
                            ? storage::kStatusSubmitted
                            : storage::kStatusFailed);
      result.changed = true;
      result.drive = command == txn::Command::kSubmit;
    } else if (trans->status() == storage::kStatusSubmitted &&
               command == txn::Command::kSubmit) {
      result.drive = true;
    } else {
      result.reply = absl::AbortedError("refused");
    }
    return result;
  }
  txn::Decision Next(const txn::Plan&, const TransRecord& trans,
                     const std::vector<BranchRecord>& branches,
                     const std::vector<txn::CallState>& state,
                     txn::CallState query_state, int64_t,
                     const txn::RetryPolicy&) const override {
    txn::Decision d;
    if (trans.status() == storage::kStatusPrepared &&
        !trans.query_prepared().empty() &&
        query_state == txn::CallState::kIdle) {
      // Asks whether to go on: OK submits it, a failure fails it.
      d.query = txn::QueryCall{trans.query_prepared(), "00", "ask", ""};
      return d;
    }
    const bool aborting = trans.status() == storage::kStatusAborting;
    if (!aborting && trans.status() != storage::kStatusSubmitted) return d;
    const std::string op = aborting ? "undo" : "do";
    bool all_done = true;
    for (size_t i = 0; i < branches.size(); ++i) {
      if (branches[i].op() != "do") continue;
      if (!aborting && branches[i].status() == "failed") {
        d.new_status = storage::kStatusAborting;
        return d;
      }
    }
    for (size_t i = 0; i < branches.size(); ++i) {
      if (branches[i].op() != op) continue;
      if (branches[i].status() == "succeed") continue;
      all_done = false;
      if (state[i] == txn::CallState::kIdle) d.calls.push_back(i);
    }
    if (all_done) {
      d.new_status =
          aborting ? storage::kStatusFailed : storage::kStatusSucceed;
    }
    return d;
  }
  bool MoveMustBeDurable(absl::string_view from,
                         absl::string_view to) const override {
    return to != storage::kStatusSucceed &&
           !(from == storage::kStatusAborting && to == storage::kStatusFailed);
  }
  bool FailureAllowed(absl::string_view op) const override {
    return op == "do" || op == "ask";
  }
  bool ApplyQueryAnswer(TransRecord* trans, txn::BranchOutcome outcome,
                        absl::string_view message, int64_t now_ms,
                        const txn::RetryPolicy&) const override {
    if (outcome == txn::BranchOutcome::kSuccess) {
      txn::MoveTo(trans, storage::kStatusSubmitted, "", now_ms);
      return false;
    }
    if (outcome == txn::BranchOutcome::kFailure) {
      txn::MoveTo(trans, storage::kStatusFailed, message, now_ms);
      return false;
    }
    return true;
  }
  bool ApplyAnswer(TransRecord*, BranchRecord* branch,
                   txn::BranchOutcome outcome, absl::string_view message,
                   int64_t, const txn::RetryPolicy&) const override {
    if (outcome == txn::BranchOutcome::kSuccess) {
      branch->set_status("succeed");
      return false;
    }
    branch->set_last_error(std::string(message));
    if (outcome == txn::BranchOutcome::kFailure) {
      branch->set_status("failed");
      return false;
    }
    return true;
  }
  absl::Status WaitOutcome(const TransRecord& trans,
                           const std::vector<BranchRecord>&) const override {
    if (trans.status() == storage::kStatusSucceed) return absl::OkStatus();
    if (trans.status() == storage::kStatusFailed) {
      return absl::AbortedError("failed");
    }
    return absl::FailedPreconditionError("running");
  }
};

// Records calls; answers from a per-branch script (default OK), or holds
// the answer until the test releases it.
class ScriptedInvoker : public BranchInvoker {
 public:
  struct Seen {
    std::string gid;
    std::string url;
    std::string status_at_call;  // the stored status when it was called.
  };
  explicit ScriptedInvoker(storage::Store* store) : store_(store) {}

  void Call(BranchCall call, std::function<void(BranchAnswer)> done) override {
    std::string gid;
    for (const auto& [key, value] : call.metadata) {
      if (key == "dtm-gid") gid = value;
    }
    auto stored = store_->GetTransaction(gid);
    absl::MutexLock lock(&mu_);
    calls_.push_back(
        {gid, call.url, stored.ok() ? stored->status() : "(not stored)"});
    if (hold_) {
      held_.push_back(std::move(done));
      return;
    }
    int code = 0;
    if (auto it = codes_.find(call.url); it != codes_.end()) code = it->second;
    mu_.Unlock();
    done(BranchAnswer{code, code == 0 ? "" : "scripted"});
    mu_.Lock();
  }
  void SetCode(const std::string& url, int code) {
    absl::MutexLock lock(&mu_);
    codes_[url] = code;
  }
  void Hold(bool hold) {
    absl::MutexLock lock(&mu_);
    hold_ = hold;
  }
  void ReleaseAll(int code = 0) {
    std::vector<std::function<void(BranchAnswer)>> held;
    {
      absl::MutexLock lock(&mu_);
      held.swap(held_);
    }
    for (auto& done : held) done(BranchAnswer{code, "released"});
  }
  void CancelAll() override {
    std::vector<std::function<void(BranchAnswer)>> held;
    {
      absl::MutexLock lock(&mu_);
      held.swap(held_);
    }
    for (auto& done : held) done(BranchAnswer{1, "cancelled"});
  }
  std::vector<Seen> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  int held() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(held_.size());
  }

 private:
  storage::Store* const store_;
  absl::Mutex mu_;
  std::vector<Seen> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> codes_ ABSL_GUARDED_BY(mu_);
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::function<void(BranchAnswer)>> held_ ABSL_GUARDED_BY(mu_);
};

class RunnerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { txn::RegisterMode(new FakeMode()); }

  void SetUp() override {
    store_ = testing::OpenEmptyStore("runner_test_");
    ASSERT_NE(store_, nullptr);
    hooked_ = std::make_unique<HookedStore>(store_.get());
    invoker_ = std::make_unique<ScriptedInvoker>(store_.get());
    config_.retry_interval_s = 1;
    config_.cron_interval_s = 1;
  }
  void TearDown() override {
    hooked_->HoldSyncs(false);
    hooked_->Release();
    invoker_->Hold(false);
    invoker_->ReleaseAll();
    engine_.reset();
    hooked_.reset();
    store_.reset();
  }
  void StartEngine() {
    engine_ = std::make_unique<Engine>(config_, hooked_.get(), invoker_.get(),
                                       SystemClock::Get());
  }

  // A fake transaction with `n` branches, each a "do" and an "undo".
  NewTransaction Fake(const std::string& gid, absl::string_view status,
                      int n = 1) {
    NewTransaction txn;
    const int64_t now = SystemClock::Get()->NowMs();
    txn.trans.set_gid(gid);
    txn.trans.set_trans_type(kFake);
    txn.trans.set_status(std::string(status));
    txn.trans.mutable_options()->set_retry_interval_s(1);
    txn.trans.mutable_options()->set_request_timeout_s(3);
    txn.trans.set_create_time_ms(now);
    txn.trans.set_next_cron_interval_s(1);
    txn.trans.set_next_cron_time_ms(now + 1000);
    for (int i = 0; i < n; ++i) {
      for (const char* op : {"undo", "do"}) {
        BranchRecord& b = txn.branches.emplace_back();
        b.set_branch_id(absl::StrCat(i));
        b.set_op(op);
        b.set_url(absl::StrCat(op, i));
        b.set_status("prepared");
      }
    }
    return txn;
  }

  // Starts `method` and returns a notification and the reply it fills.
  struct Reply {
    absl::Notification done;
    absl::Status status;
  };
  std::shared_ptr<Reply> Start(
      const std::function<void(ReplyCallback)>& method) {
    auto reply = std::make_shared<Reply>();
    method([reply](absl::Status s) {
      reply->status = s;
      reply->done.Notify();
    });
    return reply;
  }
  absl::Status Wait(const std::shared_ptr<Reply>& reply) {
    EXPECT_TRUE(reply->done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    return reply->status;
  }

  std::string Status(const std::string& gid) {
    auto trans = store_->GetTransaction(gid);
    return trans.ok() ? trans->status() : "";
  }
  std::string WaitForStatus(const std::string& gid, const std::string& want) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline && Status(gid) != want) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    return Status(gid);
  }
  bool WaitUntil(const std::function<bool()>& cond) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      if (cond()) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return cond();
  }

  Config config_;
  std::unique_ptr<storage::RocksDBStore> store_;
  std::unique_ptr<HookedStore> hooked_;
  std::unique_ptr<ScriptedInvoker> invoker_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(RunnerTest, NoCallAndNoReplyBeforeTheCreateIsDurable) {
  StartEngine();
  hooked_->HoldSyncs(true);
  auto reply = Start([&](ReplyCallback done) {
    engine_->Submit(Fake("c1", storage::kStatusSubmitted), false,
                    std::move(done));
  });
  ASSERT_TRUE(WaitUntil([&] { return hooked_->held() == 1; }));
  // Applied (readable) but not durable: nothing may follow from it.
  EXPECT_EQ(Status("c1"), storage::kStatusSubmitted);
  EXPECT_FALSE(reply->done.HasBeenNotified());
  EXPECT_TRUE(invoker_->calls().empty());
  hooked_->HoldSyncs(false);
  EXPECT_EQ(hooked_->Release(), 1);
  EXPECT_TRUE(Wait(reply).ok());
  EXPECT_EQ(WaitForStatus("c1", storage::kStatusSucceed),
            storage::kStatusSucceed);
}

TEST_F(RunnerTest, PollerNeverDrivesACreateWhoseSyncHasNotCompleted) {
  StartEngine();
  engine_->Start();
  hooked_->HoldSyncs(true);
  NewTransaction txn = Fake("c2", storage::kStatusSubmitted);
  // Due at once: the poller sees it in the due index right away.
  txn.trans.set_next_cron_time_ms(SystemClock::Get()->NowMs() - 1000);
  auto reply = Start([&](ReplyCallback done) {
    engine_->Submit(std::move(txn), false, std::move(done));
  });
  ASSERT_TRUE(WaitUntil([&] { return hooked_->held() == 1; }));
  // Two cron intervals pass while the create's fsync is "slow".
  absl::SleepFor(absl::Milliseconds(2500));
  EXPECT_TRUE(invoker_->calls().empty());
  hooked_->HoldSyncs(false);
  hooked_->Release();
  EXPECT_TRUE(Wait(reply).ok());
  EXPECT_EQ(WaitForStatus("c2", storage::kStatusSucceed),
            storage::kStatusSucceed);
}

TEST_F(RunnerTest, MoveToAbortingIsDurableBeforeAnyCompensation) {
  StartEngine();
  invoker_->SetCode("do0", 10);  // ABORTED: the action fails.
  auto reply = Start([&](ReplyCallback done) {
    engine_->Submit(Fake("w1", storage::kStatusSubmitted), true,
                    std::move(done));
  });
  EXPECT_EQ(Wait(reply).code(), absl::StatusCode::kAborted);
  // Every undo was called with "aborting" already stored, and the move
  // was a synced write.
  std::vector<ScriptedInvoker::Seen> calls = invoker_->calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].url, "do0");
  EXPECT_EQ(calls[1].url, "undo0");
  EXPECT_EQ(calls[1].status_at_call, storage::kStatusAborting);
  EXPECT_EQ(hooked_->synced_updates(), 1);
  EXPECT_EQ(Status("w1"), storage::kStatusFailed);
}

TEST_F(RunnerTest, CompensationWaitsWhileTheDecisionSyncIsHeld) {
  StartEngine();
  invoker_->Hold(true);
  auto reply = Start([&](ReplyCallback done) {
    engine_->Submit(Fake("w2", storage::kStatusSubmitted), true,
                    std::move(done));
  });
  // The create completes and the action is called; its failure arrives
  // while synced writes are held (a slow fsync of the decision).
  ASSERT_TRUE(WaitUntil([&] { return invoker_->held() == 1; }));
  hooked_->HoldSyncs(true);
  invoker_->Hold(false);
  invoker_->ReleaseAll(10);
  ASSERT_TRUE(WaitUntil([&] { return hooked_->held() == 1; }));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(invoker_->calls().size(), 1u) << "no undo before the sync";
  hooked_->HoldSyncs(false);
  hooked_->Release();
  EXPECT_EQ(Wait(reply).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(invoker_->calls().size(), 2u);
}

TEST_F(RunnerTest, SubmitOfAPreparedOneIsACommandToItsRunner) {
  StartEngine();
  auto prepared = Start([&](ReplyCallback done) {
    engine_->Prepare(Fake("p1", storage::kStatusPrepared), std::move(done));
  });
  ASSERT_TRUE(Wait(prepared).ok());
  // Two Submits at once while the branch holds its answer (so the runner
  // is still there for both): one move to submitted (synced), both
  // accepted, the branch called once.
  invoker_->Hold(true);
  std::vector<std::shared_ptr<Reply>> replies;
  for (int i = 0; i < 2; ++i) {
    replies.push_back(Start([&](ReplyCallback done) {
      engine_->Submit(Fake("p1", storage::kStatusSubmitted), false,
                      std::move(done));
    }));
  }
  for (auto& reply : replies) EXPECT_TRUE(Wait(reply).ok()) << reply->status;
  invoker_->Hold(false);
  invoker_->ReleaseAll();
  EXPECT_EQ(WaitForStatus("p1", storage::kStatusSucceed),
            storage::kStatusSucceed);
  EXPECT_EQ(hooked_->synced_updates(), 1);
  EXPECT_EQ(invoker_->calls().size(), 1u);
}

TEST_F(RunnerTest, CommandReplyWaitsForItsSyncedWrite) {
  StartEngine();
  ASSERT_TRUE(Wait(Start([&](ReplyCallback done) {
                engine_->Prepare(Fake("p2", storage::kStatusPrepared),
                                 std::move(done));
              })).ok());
  hooked_->HoldSyncs(true);
  auto abort = Start([&](ReplyCallback done) {
    engine_->SendCommand("p2", kFake, txn::Command::kAbort, {}, false,
                         std::move(done));
  });
  ASSERT_TRUE(WaitUntil([&] { return hooked_->held() == 1; }));
  EXPECT_FALSE(abort->done.HasBeenNotified());
  hooked_->HoldSyncs(false);
  hooked_->Release();
  EXPECT_TRUE(Wait(abort).ok());
  EXPECT_EQ(Status("p2"), storage::kStatusFailed);
}

TEST_F(RunnerTest, AnswerBasedOnAStateNotYetDurableWaitsForItsSync) {
  StartEngine();
  ASSERT_TRUE(Wait(Start([&](ReplyCallback done) {
                engine_->Prepare(Fake("p3", storage::kStatusPrepared),
                                 std::move(done));
              })).ok());
  invoker_->Hold(true);
  hooked_->HoldSyncs(true, /*updates_only=*/true);
  auto first = Start([&](ReplyCallback done) {
    engine_->Submit(Fake("p3", storage::kStatusSubmitted), false,
                    std::move(done));
  });
  ASSERT_TRUE(WaitUntil([&] { return hooked_->held() >= 1; }));
  // The second Submit sees "submitted" in memory; it may not hear OK while
  // that move can still be lost.
  const int creates = hooked_->creates();
  auto second = Start([&](ReplyCallback done) {
    engine_->Submit(Fake("p3", storage::kStatusSubmitted), false,
                    std::move(done));
  });
  ASSERT_TRUE(WaitUntil([&] { return hooked_->creates() == creates + 1; }));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_FALSE(first->done.HasBeenNotified());
  EXPECT_FALSE(second->done.HasBeenNotified());
  hooked_->HoldSyncs(false);
  hooked_->Release();
  EXPECT_TRUE(Wait(first).ok());
  EXPECT_TRUE(Wait(second).ok());
}

TEST_F(RunnerTest, CommandsAreAnsweredByTheMode) {
  StartEngine();
  auto missing = Start([&](ReplyCallback done) {
    engine_->SendCommand("nope", kFake, txn::Command::kAbort, {}, false,
                         std::move(done));
  });
  EXPECT_EQ(Wait(missing).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(Wait(Start([&](ReplyCallback done) {
                engine_->Submit(Fake("e1", storage::kStatusSubmitted), true,
                                std::move(done));
              })).ok());
  auto again = Start([&](ReplyCallback done) {
    engine_->Submit(Fake("e1", storage::kStatusSubmitted), false,
                    std::move(done));
  });
  EXPECT_EQ(Wait(again).code(), absl::StatusCode::kAborted);
  NewTransaction other = Fake("e1", storage::kStatusSubmitted);
  other.trans.set_trans_type("saga");
  auto wrong = Start([&](ReplyCallback done) {
    engine_->Submit(std::move(other), false, std::move(done));
  });
  EXPECT_EQ(Wait(wrong).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RunnerTest, ActiveRunnersNeverExceedTheLimitAndTheBacklogDrains) {
  config_.max_active_transactions = 3;
  config_.cron_interval_s = 3600;  // only the backlog polls may drain it.
  StartEngine();
  engine_->Start();
  invoker_->Hold(true);
  constexpr int kCount = 12;
  std::vector<std::shared_ptr<Reply>> replies;
  for (int i = 0; i < kCount; ++i) {
    replies.push_back(Start([&](ReplyCallback done) {
      engine_->Submit(Fake(absl::StrCat("a", i), storage::kStatusSubmitted),
                      false, std::move(done));
    }));
  }
  for (auto& reply : replies) EXPECT_TRUE(Wait(reply).ok());
  // Everything is stored and acknowledged; at most 3 are driven.
  ASSERT_TRUE(WaitUntil([&] { return invoker_->held() == 3; }));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(invoker_->held(), 3);
  EXPECT_LE(engine_->GetStats().active, 3);
  // Releasing the calls lets the rest through, at most 3 at a time.
  int64_t max_active = 0;
  int finished = 0;
  while (finished < kCount) {
    max_active = std::max(max_active, engine_->GetStats().active);
    invoker_->ReleaseAll();
    finished = 0;
    for (int i = 0; i < kCount; ++i) {
      finished += Status(absl::StrCat("a", i)) == storage::kStatusSucceed;
    }
    absl::SleepFor(absl::Milliseconds(5));
    ASSERT_LT(invoker_->calls().size(), 100u);
  }
  EXPECT_LE(max_active, 3);
  EXPECT_EQ(invoker_->calls().size(), static_cast<size_t>(kCount));
}

TEST_F(RunnerTest, RequestsAreRefusedWhileTheEventQueueIsFull) {
  config_.worker_threads = 1;
  config_.max_queued_events = 3;
  StartEngine();
  // The only engine thread is busy; events pile up behind it.
  absl::Notification release;
  engine_->pool()->Post([&] { release.WaitForNotification(); });
  for (int i = 0; i < 4; ++i) engine_->pool()->Post([] {});
  auto abort = Start([&](ReplyCallback done) {
    engine_->SendCommand("q1", kFake, txn::Command::kAbort, {}, false,
                         std::move(done));
  });
  EXPECT_EQ(Wait(abort).code(), absl::StatusCode::kResourceExhausted);
  auto submit = Start([&](ReplyCallback done) {
    engine_->Submit(Fake("q1", storage::kStatusSubmitted), false,
                    std::move(done));
  });
  EXPECT_EQ(Wait(submit).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Status("q1"), "") << "nothing stored";
  release.Notify();
  // Once the queue drains, requests are taken again.
  ASSERT_TRUE(WaitUntil([&] { return engine_->pool()->queue_size() == 0; }));
  EXPECT_TRUE(Wait(Start([&](ReplyCallback done) {
                engine_->Submit(Fake("q1", storage::kStatusSubmitted), true,
                                std::move(done));
              })).ok());
}

TEST_F(RunnerTest, WaiterOverTheLimitIsToldItIsStillRunning) {
  config_.max_active_transactions = 1;
  config_.wait_result_grace_s = 0;
  StartEngine();
  invoker_->Hold(true);
  NewTransaction first = Fake("l1", storage::kStatusSubmitted);
  first.trans.mutable_options()->set_request_timeout_s(1);
  auto busy = Start([&](ReplyCallback done) {
    engine_->Submit(std::move(first), false, std::move(done));
  });
  ASSERT_TRUE(Wait(busy).ok());
  ASSERT_TRUE(WaitUntil([&] { return invoker_->held() == 1; }));
  NewTransaction second = Fake("l2", storage::kStatusSubmitted);
  second.trans.mutable_options()->set_request_timeout_s(1);
  auto parked = Start([&](ReplyCallback done) {
    engine_->Submit(std::move(second), true, std::move(done));
  });
  EXPECT_EQ(Wait(parked).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Status("l2"), storage::kStatusSubmitted);
  EXPECT_EQ(invoker_->held(), 1) << "l2 was not driven over the limit";
}

TEST_F(RunnerTest, AnsweredWaitersCancelTheirTimers) {
  StartEngine();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(Wait(Start([&](ReplyCallback done) {
                  engine_->Submit(
                      Fake(absl::StrCat("t", i), storage::kStatusSubmitted),
                      true, std::move(done));
                })).ok());
  }
  // No 5-second wait timer is left behind by the 20 answered waiters (the
  // only timers are the finished transactions' nothing: they are final).
  EXPECT_TRUE(WaitUntil([&] { return engine_->GetStats().timers == 0; }));
}

TEST_F(RunnerTest, FailedResultWriteHoldsTheGidBack) {
  config_.retry_interval_s = 2;
  StartEngine();
  engine_->Start();
  hooked_->fail_updates = true;  // no round-ending write can be saved.
  NewTransaction txn = Fake("h1", storage::kStatusSubmitted);
  txn.trans.set_next_cron_time_ms(SystemClock::Get()->NowMs() - 1000);
  auto reply = Start([&](ReplyCallback done) {
    engine_->Submit(std::move(txn), true, std::move(done));
  });
  EXPECT_EQ(Wait(reply).code(), absl::StatusCode::kUnavailable);
  // The record stays due; cron polls every second, but the hold (2 s, then
  // 4 s) keeps the branch from being called each time.
  absl::SleepFor(absl::Milliseconds(3500));
  EXPECT_LE(invoker_->calls().size(), 2u);
  hooked_->fail_updates = false;
  EXPECT_EQ(WaitForStatus("h1", storage::kStatusSucceed),
            storage::kStatusSucceed);
}

TEST_F(RunnerTest, ShutdownEndsWhileACreateSyncIsPending) {
  StartEngine();
  hooked_->HoldSyncs(true);
  auto reply = Start([&](ReplyCallback done) {
    engine_->Submit(Fake("s1", storage::kStatusSubmitted), false,
                    std::move(done));
  });
  ASSERT_TRUE(WaitUntil([&] { return hooked_->held() == 1; }));
  std::thread shutdown([&] { engine_->Shutdown(); });
  absl::SleepFor(absl::Milliseconds(100));
  hooked_->HoldSyncs(false);
  hooked_->Release();
  shutdown.join();
  // The create completed (it is durable, so the client hears OK) and no
  // branch was called for it: it resumes after the restart.
  EXPECT_TRUE(Wait(reply).ok());
  EXPECT_EQ(Status("s1"), storage::kStatusSubmitted);
  EXPECT_EQ(engine_->GetStats().live_runners, 0);
}

TEST_F(RunnerTest, ShutdownCancelsCallsThatOutlastIt) {
  config_.request_timeout_s = 1;
  config_.wait_result_grace_s = 0;
  StartEngine();
  invoker_->Hold(true);
  auto reply = Start([&](ReplyCallback done) {
    engine_->Submit(Fake("s2", storage::kStatusSubmitted), true,
                    std::move(done));
  });
  ASSERT_TRUE(WaitUntil([&] { return invoker_->held() == 1; }));
  engine_->Shutdown();  // the held call is cancelled: Shutdown returns.
  EXPECT_EQ(Wait(reply).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(engine_->GetStats().live_runners, 0);
  EXPECT_EQ(Status("s2"), storage::kStatusSubmitted);
}

TEST_F(RunnerTest, RecordsTheLastCodeAndRaisesRetryAlertsAtDoublings) {
  config_.alert_retry_limit = 2;
  invoker_->SetCode("do0", 14);  // UNAVAILABLE: retried with backoff.
  StartEngine();
  NewTransaction txn = Fake("alerts", storage::kStatusSubmitted);
  // No retry of its own within the test: each one is a RetryNow.
  txn.trans.mutable_options()->set_retry_interval_s(3600);
  txn.trans.set_next_cron_interval_s(3600);
  ASSERT_TRUE(Wait(Start([&](ReplyCallback done) {
                engine_->Submit(std::move(txn), false, std::move(done));
              })).ok());
  auto do_branch = [&]() {
    BranchRecord found;
    auto branches = store_->GetBranches("alerts");
    if (!branches.ok()) return found;
    for (const BranchRecord& b : *branches) {
      if (b.op() == "do") found = b;
    }
    return found;
  };
  // Alert points for limit 2: retries 2, 4, 8.
  const std::vector<int64_t> alerts_after_call = {0, 0, 1, 1, 2, 2, 2, 2, 3};
  for (int64_t n = 1; n <= 9; ++n) {
    ASSERT_TRUE(WaitUntil([&] { return do_branch().call_count() == n; }))
        << "call " << n;
    EXPECT_EQ(engine_->GetStats().retry_alerts, alerts_after_call[n - 1])
        << "after call " << n;
    if (n < 9) {
      ASSERT_TRUE(Wait(Start([&](ReplyCallback done) {
                    engine_->RetryNow("alerts", std::move(done));
                  })).ok());
    }
  }
  const BranchRecord b = do_branch();
  EXPECT_EQ(b.last_code(), 14);
  EXPECT_EQ(b.last_error(), "scripted");
  // No webhook configured: nothing posted, nothing dropped.
  EXPECT_EQ(engine_->GetStats().alerts_posted, 0);
  EXPECT_EQ(engine_->GetStats().alert_posts_dropped, 0);
}

}  // namespace

TEST_F(RunnerTest, RegisteredBranchesAreDurableBeforeTheReplyAndThenCalled) {
  StartEngine();
  ASSERT_TRUE(Wait(Start([&](ReplyCallback done) {
                engine_->Prepare(Fake("r1", storage::kStatusPrepared, 0),
                                 std::move(done));
              })).ok());
  txn::CommandArgs args;
  for (const char* op : {"undo", "do"}) {
    BranchRecord& b = args.branches.emplace_back();
    b.set_branch_id("01");
    b.set_op(op);
    b.set_url(absl::StrCat("reg-", op));
    b.set_status("prepared");
  }
  hooked_->HoldSyncs(true);
  auto registered = Start([&](ReplyCallback done) {
    engine_->SendCommand("r1", kFake, txn::Command::kRegisterBranch, args,
                         false, std::move(done));
  });
  ASSERT_TRUE(WaitUntil([&] { return hooked_->held() >= 1; }));
  EXPECT_FALSE(registered->done.HasBeenNotified());
  hooked_->HoldSyncs(false);
  hooked_->Release();
  ASSERT_TRUE(Wait(registered).ok()) << registered->status;
  auto stored = store_->GetBranches("r1");
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 2u);
  EXPECT_EQ((*stored)[1].url(), "reg-do");
  EXPECT_EQ((*stored)[1].position(), 1);

  // A repeat adds nothing.
  ASSERT_TRUE(Wait(Start([&](ReplyCallback done) {
                engine_->SendCommand("r1", kFake, txn::Command::kRegisterBranch,
                                     args, false, std::move(done));
              })).ok());
  EXPECT_EQ(store_->GetBranches("r1")->size(), 2u);

  // Submit calls the registered branch.
  ASSERT_TRUE(Wait(Start([&](ReplyCallback done) {
                engine_->Submit(Fake("r1", storage::kStatusSubmitted, 0), false,
                                std::move(done));
              })).ok());
  EXPECT_EQ(WaitForStatus("r1", storage::kStatusSucceed),
            storage::kStatusSucceed);
  std::vector<ScriptedInvoker::Seen> calls = invoker_->calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].url, "reg-do");

  // Once it has ended, the mode refuses registrations.
  EXPECT_EQ(Wait(Start([&](ReplyCallback done) {
              engine_->SendCommand("r1", kFake, txn::Command::kRegisterBranch,
                                   args, false, std::move(done));
            })).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(Wait(Start([&](ReplyCallback done) {
              engine_->SendCommand("nope", kFake, txn::Command::kRegisterBranch,
                                   args, false, std::move(done));
            })).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RunnerTest, RegistrationsStopAtTheBranchLimit) {
  config_.max_branches = 3;
  StartEngine();
  ASSERT_TRUE(Wait(Start([&](ReplyCallback done) {
                engine_->Prepare(Fake("r2", storage::kStatusPrepared, 0),
                                 std::move(done));
              })).ok());
  auto registration = [](const std::string& id) {
    txn::CommandArgs args;
    for (const char* op : {"undo", "do"}) {
      BranchRecord& b = args.branches.emplace_back();
      b.set_branch_id(id);
      b.set_op(op);
      b.set_status("prepared");
    }
    return args;
  };
  ASSERT_TRUE(Wait(Start([&](ReplyCallback done) {
                engine_->SendCommand("r2", kFake, txn::Command::kRegisterBranch,
                                     registration("01"), false,
                                     std::move(done));
              })).ok());
  absl::Status over = Wait(Start([&](ReplyCallback done) {
    engine_->SendCommand("r2", kFake, txn::Command::kRegisterBranch,
                         registration("02"), false, std::move(done));
  }));
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted) << over;
  EXPECT_NE(over.message().find("--max_branches"), std::string::npos);
  EXPECT_EQ(store_->GetBranches("r2")->size(), 2u);
}

TEST_F(RunnerTest, QueryVerdictIsDurableBeforeTheCallsItAllows) {
  StartEngine();
  NewTransaction txn = Fake("q2", storage::kStatusPrepared);
  txn.trans.set_query_prepared("ask-url");
  txn.trans.set_next_cron_time_ms(SystemClock::Get()->NowMs());
  ASSERT_TRUE(Wait(Start([&](ReplyCallback done) {
                engine_->Prepare(std::move(txn), std::move(done));
              })).ok());
  engine_->Start();  // the poller finds it due and asks.
  EXPECT_EQ(WaitForStatus("q2", storage::kStatusSucceed),
            storage::kStatusSucceed);
  std::vector<ScriptedInvoker::Seen> calls = invoker_->calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].url, "ask-url");
  EXPECT_EQ(calls[0].status_at_call, storage::kStatusPrepared);
  EXPECT_EQ(calls[1].url, "do0");
  EXPECT_EQ(calls[1].status_at_call, storage::kStatusSubmitted)
      << "the verdict was not durable before the call it allowed";
}

TEST_F(RunnerTest, QueryFailureEndsItAndOngoingAsksAgainNextRound) {
  invoker_->SetCode("ask-no", 10);    // ABORTED: failure.
  invoker_->SetCode("ask-later", 9);  // FAILED_PRECONDITION: ongoing.
  StartEngine();
  for (const char* url : {"ask-no", "ask-later"}) {
    NewTransaction txn = Fake(url, storage::kStatusPrepared);
    txn.trans.set_query_prepared(url);
    txn.trans.set_next_cron_time_ms(SystemClock::Get()->NowMs());
    ASSERT_TRUE(Wait(Start([&](ReplyCallback done) {
                  engine_->Prepare(std::move(txn), std::move(done));
                })).ok());
  }
  engine_->Start();
  EXPECT_EQ(WaitForStatus("ask-no", storage::kStatusFailed),
            storage::kStatusFailed);
  // Asked once per round (interval 1 s), never twice in one round.
  ASSERT_TRUE(WaitUntil([&] {
    int asked = 0;
    for (const auto& call : invoker_->calls()) asked += call.url == "ask-later";
    return asked >= 2;
  }));
  EXPECT_EQ(Status("ask-later"), storage::kStatusPrepared);
  for (const auto& call : invoker_->calls()) {
    EXPECT_NE(call.url, "do0") << "a branch of an unconfirmed message ran";
  }
}

}  // namespace dtmd
