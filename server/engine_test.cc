// Engine with a real store and a scripted branch invoker, in process: the
// paths that are hard to reach through a real process, driven by faults
// injected through the Store interface.
#include "server/engine.h"

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/request_validation.h"
#include "server/retention.h"
#include "server/test_store.h"
#include "storage/rocksdb_store.h"

namespace dtmd {
namespace {

using storage::v1::BranchRecord;
using storage::v1::TransRecord;

// Answers every branch call OK at once and counts the calls.
class CountingInvoker : public BranchInvoker {
 public:
  void Call(BranchCall call, std::function<void(BranchAnswer)> done) override {
    calls_++;
    last_timeout_ms_ = call.timeout_ms;
    done(BranchAnswer{0, ""});
  }
  int calls() const { return calls_.load(); }
  int64_t last_timeout_ms() const { return last_timeout_ms_.load(); }

 private:
  std::atomic<int> calls_{0};
  std::atomic<int64_t> last_timeout_ms_{0};
};

// Keeps every branch call until Release(); then answers OK.
class HoldingInvoker : public BranchInvoker {
 public:
  void Call(BranchCall call, std::function<void(BranchAnswer)> done) override {
    absl::MutexLock lock(&mu_);
    held_.push_back(std::move(done));
  }
  int held() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(held_.size());
  }
  void Release() {
    std::vector<std::function<void(BranchAnswer)>> held;
    {
      absl::MutexLock lock(&mu_);
      held.swap(held_);
    }
    for (auto& done : held) done(BranchAnswer{0, ""});
  }

 private:
  absl::Mutex mu_;
  std::vector<std::function<void(BranchAnswer)>> held_ ABSL_GUARDED_BY(mu_);
};

using testing::HookedStore;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = testing::OpenEmptyStore("engine_test_");
    ASSERT_NE(store_, nullptr);
    hooked_ = std::make_unique<HookedStore>(store_.get());
    config_.retry_interval_s = 1;
    config_.cron_interval_s = 1;
    engine_ = std::make_unique<Engine>(config_, hooked_.get(), &invoker_,
                                       SystemClock::Get());
  }
  void TearDown() override {
    engine_.reset();
    hooked_.reset();
    store_.reset();
  }

  NewTransaction Saga(const std::string& gid, absl::string_view status) {
    dtmgimp::DtmRequest request;
    request.set_gid(gid);
    request.set_transtype("saga");
    request.set_steps(
        R"([{"action":"127.0.0.1:1/b.B/A","compensate":"127.0.0.1:1/b.B/C"}])");
    request.add_binpayloads("p");
    auto txn = BuildSaga(request, status, SystemClock::Get()->NowMs(), config_);
    EXPECT_TRUE(txn.ok()) << txn.status();
    return *std::move(txn);
  }

  absl::Status Call(const std::function<void(ReplyCallback)>& method) {
    absl::Notification done;
    absl::Status result;
    method([&](absl::Status s) {
      result = s;
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    return result;
  }

  std::string WaitForStatus(const std::string& gid, const std::string& want) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    std::string status;
    while (absl::Now() < deadline) {
      auto trans = store_->GetTransaction(gid);
      status = trans.ok() ? trans->status() : "";
      if (status == want) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return status;
  }

  Config config_;
  CountingInvoker invoker_;
  std::unique_ptr<storage::RocksDBStore> store_;
  std::unique_ptr<HookedStore> hooked_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, SubmitRacingAPreparedSagasCheckStillRunsTheSaga) {
  // Only the first poll at Start() runs in this test's time: the saga must
  // go on because the runner starts over, not because a later poll finds it.
  config_.cron_interval_s = 3600;
  engine_ = std::make_unique<Engine>(config_, hooked_.get(), &invoker_,
                                     SystemClock::Get());
  NewTransaction prepared = Saga("g1", storage::kStatusPrepared);
  prepared.trans.set_next_cron_time_ms(SystemClock::Get()->NowMs() - 1);
  ASSERT_TRUE(Call([&](ReplyCallback done) {
                engine_->Prepare(std::move(prepared), std::move(done));
              }).ok());
  // When the scheduler's look at the prepared saga writes, a Submit has just
  // moved it to submitted: the runner's conditional write fails.
  std::atomic<bool> raced{false};
  hooked_->before_update = [&](const TransRecord& trans,
                               const std::string& expected) {
    if (expected != storage::kStatusPrepared ||
        trans.status() != storage::kStatusPrepared || raced.exchange(true)) {
      return;
    }
    TransRecord submitted = *store_->GetTransaction(trans.gid());
    submitted.set_status(storage::kStatusSubmitted);
    absl::Notification written;
    store_->UpdateTransaction(submitted, storage::kStatusPrepared, {},
                              storage::Durability::kSync, [&](absl::Status s) {
                                EXPECT_TRUE(s.ok()) << s;
                                written.Notify();
                              });
    written.WaitForNotification();
  };
  engine_->Start();  // the first poll finds the prepared saga due.
  EXPECT_EQ(WaitForStatus("g1", storage::kStatusSucceed),
            storage::kStatusSucceed);
  EXPECT_TRUE(raced);
  EXPECT_EQ(invoker_.calls(), 1);
}

TEST_F(EngineTest, FailedStoreWriteAnswersUnavailableAndTheSagaResumes) {
  hooked_->fail_updates = true;
  absl::Status reply = Call([&](ReplyCallback done) {
    engine_->Submit(Saga("g2", storage::kStatusSubmitted),
                    /*wait_result=*/true, std::move(done));
  });
  EXPECT_EQ(reply.code(), absl::StatusCode::kUnavailable) << reply;
  EXPECT_EQ(store_->GetTransaction("g2")->status(), storage::kStatusSubmitted);
  // The disk recovers: the scheduler resumes the saga from its record.
  hooked_->fail_updates = false;
  engine_->Start();
  EXPECT_EQ(WaitForStatus("g2", storage::kStatusSucceed),
            storage::kStatusSucceed);
}

TEST_F(EngineTest, ShutdownAnswersWaitersAndRefusesNewWork) {
  engine_->Shutdown();
  absl::Status reply = Call([&](ReplyCallback done) {
    engine_->Submit(Saga("g3", storage::kStatusSubmitted), true,
                    std::move(done));
  });
  EXPECT_EQ(reply.code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(store_->GetTransaction("g3").ok()) << "nothing was stored";
}

// Retention leaves a finished transaction alone while a runner still has
// it (here: force stopped with its call in flight), deletes it once the
// runner is gone, and a Submit of the deleted gid starts a new saga.
TEST_F(EngineTest, RetentionSkipsAFinishedGidTheEngineStillHolds) {
  HoldingInvoker holding;
  engine_ = std::make_unique<Engine>(config_, hooked_.get(), &holding,
                                     SystemClock::Get());
  engine_->Start();
  ASSERT_TRUE(Call([&](ReplyCallback done) {
                engine_->Submit(Saga("kept", storage::kStatusSubmitted),
                                /*wait_result=*/false, std::move(done));
              }).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (holding.held() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(holding.held(), 1);
  ASSERT_TRUE(Call([&](ReplyCallback done) {
                engine_->ForceStop("kept", "test", std::move(done));
              }).ok());
  ASSERT_EQ(store_->GetTransaction("kept")->status(), storage::kStatusFailed);

  RetentionOptions options;
  options.retention_ms = 1;
  options.batch_pause_ms = 0;
  Retention retention(options, hooked_.get(), SystemClock::Get(),
                      [this](std::vector<storage::FinishedTrans>* finished) {
                        engine_->DropBusy(finished);
                      });
  absl::SleepFor(absl::Milliseconds(5));  // Older than the retention.
  absl::StatusOr<Retention::PassResult> pass = retention.RunPass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->deleted, 0);
  EXPECT_EQ(pass->skipped, 1);
  EXPECT_TRUE(store_->GetTransaction("kept").ok());

  holding.Release();  // The runner retires with its last answer.
  while (engine_->GetStats().live_runners > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  pass = retention.RunPass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->deleted, 1);
  EXPECT_TRUE(absl::IsNotFound(store_->GetTransaction("kept").status()));

  ASSERT_TRUE(Call([&](ReplyCallback done) {
                engine_->Submit(Saga("kept", storage::kStatusSubmitted),
                                /*wait_result=*/false, std::move(done));
              }).ok());
  while (holding.held() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  holding.Release();
  EXPECT_EQ(WaitForStatus("kept", storage::kStatusSucceed),
            storage::kStatusSucceed);
  engine_.reset();  // Before `holding` goes.
}

// Leases (a store shared by replicas): a due transaction another replica
// holds is left to it; once the lease is free this process drives it, and
// retiring gives the lease back.
TEST_F(EngineTest, ADueTransactionHeldElsewhereIsLeftToItsHolder) {
  hooked_->HoldElsewhere("held", true);
  NewTransaction due = Saga("held", storage::kStatusSubmitted);
  due.trans.set_next_cron_time_ms(SystemClock::Get()->NowMs() - 1);
  absl::Notification created;
  store_->CreateTransaction(due.trans, due.branches, storage::Durability::kSync,
                            [&](absl::StatusOr<storage::CreateResult> r) {
                              EXPECT_TRUE(r.ok()) << r.status();
                              created.Notify();
                            });
  created.WaitForNotification();
  engine_->Start();
  // Polls every second: two of them find it due and leave it.
  absl::SleepFor(absl::Milliseconds(2500));
  EXPECT_EQ(invoker_.calls(), 0);
  EXPECT_GE(hooked_->acquires(), 2);
  EXPECT_GE(hooked_->releases("held"), 2) << "claims given back";
  EXPECT_EQ(store_->GetTransaction("held")->status(),
            storage::kStatusSubmitted);
  hooked_->HoldElsewhere("held", false);
  EXPECT_EQ(WaitForStatus("held", storage::kStatusSucceed),
            storage::kStatusSucceed);
  EXPECT_EQ(invoker_.calls(), 1);
}

// A client's command on a transaction another replica drives waits for the
// lease, then applies.
TEST_F(EngineTest, ACommandWaitsForTheLeaseOfAnotherReplica) {
  engine_->Start();
  ASSERT_TRUE(Call([&](ReplyCallback done) {
                engine_->Prepare(Saga("cmd", storage::kStatusPrepared),
                                 std::move(done));
              }).ok());
  hooked_->HoldElsewhere("cmd", true);
  absl::Notification replied;
  absl::Status reply;
  engine_->Submit(Saga("cmd", storage::kStatusSubmitted),
                  /*wait_result=*/true, [&](absl::Status s) {
                    reply = s;
                    replied.Notify();
                  });
  EXPECT_FALSE(replied.WaitForNotificationWithTimeout(absl::Milliseconds(400)))
      << reply;
  EXPECT_EQ(invoker_.calls(), 0);
  hooked_->HoldElsewhere("cmd", false);
  ASSERT_TRUE(replied.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(reply.ok()) << reply;
  EXPECT_EQ(store_->GetTransaction("cmd")->status(), storage::kStatusSucceed);
  EXPECT_GE(hooked_->releases("cmd"), 1);
}

// ...and gives up with UNAVAILABLE when the lease does not come free.
TEST_F(EngineTest, ACommandGivesUpOnALeaseThatStaysTaken) {
  config_.lease_timeout_s = 1;
  config_.request_timeout_s = 1;
  engine_ = std::make_unique<Engine>(config_, hooked_.get(), &invoker_,
                                     SystemClock::Get());
  engine_->Start();
  ASSERT_TRUE(Call([&](ReplyCallback done) {
                engine_->Prepare(Saga("stuck", storage::kStatusPrepared),
                                 std::move(done));
              }).ok());
  hooked_->HoldElsewhere("stuck", true);
  absl::Status reply = Call([&](ReplyCallback done) {
    engine_->Submit(Saga("stuck", storage::kStatusSubmitted),
                    /*wait_result=*/false, std::move(done));
  });
  EXPECT_EQ(reply.code(), absl::StatusCode::kUnavailable) << reply;
  EXPECT_NE(reply.message().find("elsewhere"), absl::string_view::npos)
      << reply;
  EXPECT_EQ(store_->GetTransaction("stuck")->status(),
            storage::kStatusPrepared);
  EXPECT_EQ(invoker_.calls(), 0);
}

// A replica whose lease is lost calls no branch.
TEST_F(EngineTest, ALostLeaseStopsBranchCalls) {
  engine_->Start();
  hooked_->LoseLeaseAfterAcquire("lost");
  ASSERT_TRUE(Call([&](ReplyCallback done) {
                engine_->Submit(Saga("lost", storage::kStatusSubmitted),
                                /*wait_result=*/false, std::move(done));
              }).ok());
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(invoker_.calls(), 0);
  EXPECT_EQ(store_->GetTransaction("lost")->status(),
            storage::kStatusSubmitted);
}

// A new transaction whose create's lease ran out before its runner started
// (the process was paused between the commit and the first round) may have
// been driven by another replica meanwhile: the runner reads the stored
// record instead of trusting its own copy.
TEST_F(EngineTest, ARunnerThatLostItsCreatesLeaseReadsTheStore) {
  engine_->Start();
  hooked_->HoldSyncs(true);
  absl::Notification replied;
  engine_->Submit(Saga("paused", storage::kStatusSubmitted),
                  /*wait_result=*/false, [&](absl::Status s) {
                    EXPECT_TRUE(s.ok()) << s;
                    replied.Notify();
                  });
  while (hooked_->held() == 0) absl::SleepFor(absl::Milliseconds(5));
  // Meanwhile another replica drove it to its end.
  TransRecord done = *store_->GetTransaction("paused");
  done.set_status(storage::kStatusFailed);
  absl::Notification written;
  store_->UpdateTransaction(done, storage::kStatusSubmitted, {},
                            storage::Durability::kSync, [&](absl::Status s) {
                              EXPECT_TRUE(s.ok()) << s;
                              written.Notify();
                            });
  written.WaitForNotification();
  hooked_->LoseLease("paused");
  hooked_->HoldSyncs(false);
  hooked_->Release();
  ASSERT_TRUE(replied.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(invoker_.calls(), 0) << "no action after the other's end";
  EXPECT_EQ(store_->GetTransaction("paused")->status(), storage::kStatusFailed);
}

// A branch call's deadline ends with the lease, so that a call a paused
// process had not yet sent is dropped, not sent after the lease ran out.
TEST_F(EngineTest, ABranchCallsDeadlineEndsWithTheLease) {
  engine_->Start();
  ASSERT_TRUE(Call([&](ReplyCallback done) {
                engine_->Submit(Saga("long", storage::kStatusSubmitted),
                                /*wait_result=*/true, std::move(done));
              }).ok());
  EXPECT_EQ(invoker_.last_timeout_ms(), config_.request_timeout_s * 1000);
  hooked_->lease_left_ms = 700;
  ASSERT_TRUE(Call([&](ReplyCallback done) {
                engine_->Submit(Saga("short", storage::kStatusSubmitted),
                                /*wait_result=*/true, std::move(done));
              }).ok());
  EXPECT_EQ(invoker_.last_timeout_ms(), 700);
}

}  // namespace
}  // namespace dtmd
