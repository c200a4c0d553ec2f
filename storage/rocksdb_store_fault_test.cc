// RocksDBStore under faults injected through FaultInjectionFileSystem (the
// file system RocksDB itself writes through): held, failed and latched WAL
// syncs, full disks, a full write queue.
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "storage/fault_injection_fs.h"
#include "storage/store_test_util.h"

namespace dtmd::storage {
namespace {

class FaultTest : public StoreTestBase {
 protected:
  void SetUp() override {
    fs_ = std::make_shared<FaultInjectionFileSystem>();
    options_.file_system = fs_;
    StoreTestBase::SetUp();
  }

  // Returns once every write issued before has been taken by the writer and
  // handed on (a kNoSync write's callback runs after the previous pass of
  // the writer is over).
  void WriterBarrier() {
    for (int i = 0; i < 2; ++i) {
      StatusWaiter waiter;
      store_->PutBranches("barrier", {}, Durability::kNoSync,
                          waiter.Callback());
      ASSERT_TRUE(waiter.Wait().ok());
    }
  }

  // Waits (bounded) until WriteHealth() has `code`; event order, not time.
  bool AwaitHealth(absl::StatusCode code) {
    for (int i = 0; i < 3000; ++i) {
      if (store_->WriteHealth().code() == code) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }

  std::shared_ptr<FaultInjectionFileSystem> fs_;
};

TEST_F(FaultTest, SyncCallbackWaitsForItsFsync) {
  fs_->HoldWalSyncs();
  CreateWaiter created;
  store_->CreateTransaction(Trans("g1", kStatusSubmitted, 1), {},
                            Durability::kSync, created.Callback());
  ASSERT_TRUE(fs_->AwaitHeldWalSyncs(1, absl::Seconds(30)));
  WriterBarrier();
  EXPECT_FALSE(created.HasRun()) << "acknowledged before the fsync completed";
  fs_->ReleaseWalSyncs();
  absl::StatusOr<CreateResult> result = created.Wait();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->created);
}

TEST_F(FaultTest, ConcurrentSyncCreatesShareOneFsync) {
  constexpr int kCreates = 50;
  fs_->HoldWalSyncs();
  CreateWaiter first;
  store_->CreateTransaction(Trans("first", kStatusSubmitted, 1), {},
                            Durability::kSync, first.Callback());
  ASSERT_TRUE(fs_->AwaitHeldWalSyncs(1, absl::Seconds(30)));
  const int64_t syncs_before = fs_->wal_syncs();
  std::atomic<int> ok{0};
  for (int i = 0; i < kCreates; ++i) {
    store_->CreateTransaction(Trans(absl::StrCat("g", i), kStatusSubmitted, 1),
                              {}, Durability::kSync,
                              [&ok](absl::StatusOr<CreateResult> result) {
                                if (result.ok() && result->created) ++ok;
                              });
  }
  WriterBarrier();  // All of them wait behind the held sync now.
  EXPECT_EQ(ok.load(), 0);
  fs_->ReleaseWalSyncs();
  ASSERT_TRUE(first.Wait().ok());
  store_->Flush();
  EXPECT_EQ(ok.load(), kCreates);
  // The held sync, then one for all fifty.
  EXPECT_EQ(fs_->wal_syncs() - syncs_before, 2);
}

TEST_F(FaultTest, FailedSyncWriteAnswersAfterEarlierSyncWrites) {
  ASSERT_TRUE(Create(Trans("g0", kStatusSubmitted, 1)).ok());
  fs_->HoldWalSyncs();
  absl::Mutex mu;
  std::vector<std::string> order;
  auto record = [&mu, &order](std::string name) {
    absl::MutexLock lock(&mu);
    order.push_back(std::move(name));
  };
  store_->CreateTransaction(
      Trans("g1", kStatusSubmitted, 1), {}, Durability::kSync,
      [&record](absl::StatusOr<CreateResult>) { record("create"); });
  ASSERT_TRUE(fs_->AwaitHeldWalSyncs(1, absl::Seconds(30)));
  StatusWaiter stale, missing;
  store_->UpdateTransaction(Trans("g0", kStatusAborting, 2), kStatusPrepared,
                            {}, Durability::kSync,
                            [&record, cb = stale.Callback()](absl::Status s) {
                              record("stale");
                              cb(s);
                            });
  store_->AppendBranches("nope", kStatusPrepared, {Branch("b", "try")},
                         Durability::kSync,
                         [&record, cb = missing.Callback()](absl::Status s) {
                           record("missing");
                           cb(s);
                         });
  WriterBarrier();
  EXPECT_FALSE(stale.HasRun()) << "an error overtook an earlier kSync write";
  fs_->ReleaseWalSyncs();
  EXPECT_EQ(stale.Wait().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(missing.Wait().code(), absl::StatusCode::kNotFound);
  absl::MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<std::string>{"create", "stale", "missing"}));
}

TEST_F(FaultTest, FailedWalSyncIsLatched) {
  ASSERT_TRUE(Create(Trans("before", kStatusSubmitted, 1)).ok());
  fs_->FailWalSyncAfter(fs_->wal_syncs());
  absl::StatusOr<CreateResult> failed =
      Create(Trans("g1", kStatusSubmitted, 1));
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable)
      << failed.status();
  EXPECT_EQ(store_->WriteHealth().code(), absl::StatusCode::kInternal)
      << store_->WriteHealth();
  // Latched: writes that need no sync fail too, and keep failing.
  fs_->FailWalSyncAfter(-1);
  EXPECT_EQ(Create(Trans("g2", kStatusSubmitted, 1), {}, Durability::kNoSync)
                .status()
                .code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(Create(Trans("g3", kStatusSubmitted, 1)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_->WriteHealth().code(), absl::StatusCode::kInternal);
  // A restart recovers from disk.
  Reopen();
  EXPECT_TRUE(store_->WriteHealth().ok());
  EXPECT_TRUE(store_->GetTransaction("before").ok());
  EXPECT_FALSE(store_->GetTransaction("g2").ok());
  EXPECT_TRUE(Create(Trans("after", kStatusSubmitted, 1)).ok());
}

TEST_F(FaultTest, NoSpaceMakesWritesUnavailableUntilSpaceReturns) {
  ASSERT_TRUE(Create(Trans("before", kStatusSubmitted, 1)).ok());
  fs_->SetWriteFault(FaultInjectionFileSystem::WriteFault::kNoSpace);
  EXPECT_EQ(Create(Trans("g1", kStatusSubmitted, 1), {}, Durability::kNoSync)
                .status()
                .code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_->WriteHealth().code(), absl::StatusCode::kUnavailable)
      << store_->WriteHealth();
  EXPECT_EQ(Create(Trans("g2", kStatusSubmitted, 1)).status().code(),
            absl::StatusCode::kUnavailable);
  fs_->SetWriteFault(FaultInjectionFileSystem::WriteFault::kNone);
  // Recovers by itself, without a write to prompt it.
  ASSERT_TRUE(AwaitHealth(absl::StatusCode::kOk)) << store_->WriteHealth();
  ASSERT_TRUE(Create(Trans("after", kStatusSubmitted, 1)).ok());
  Reopen();
  EXPECT_TRUE(store_->GetTransaction("before").ok());
  EXPECT_TRUE(store_->GetTransaction("after").ok());
}

TEST_F(FaultTest, FullQueueAnswersResourceExhaustedInIssueOrder) {
  options_.max_queued_writes = 3;
  Reopen();
  std::unique_ptr<absl::Notification> release = PauseWriter();
  std::vector<int> order;  // Appended by the writer thread only.
  std::vector<absl::StatusCode> codes(5);
  for (int i = 0; i < 5; ++i) {
    store_->CreateTransaction(Trans(absl::StrCat("g", i), kStatusSubmitted, 1),
                              {}, Durability::kNoSync,
                              [&order, &codes, i](auto result) {
                                order.push_back(i);
                                codes[i] = result.status().code();
                              });
  }
  release->Notify();
  store_->Flush();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(codes,
            (std::vector<absl::StatusCode>{
                absl::StatusCode::kOk, absl::StatusCode::kOk,
                absl::StatusCode::kOk, absl::StatusCode::kResourceExhausted,
                absl::StatusCode::kResourceExhausted}));
  EXPECT_FALSE(store_->GetTransaction("g3").ok());
  // Room again once the writer has drained the queue.
  EXPECT_TRUE(Create(Trans("g3", kStatusSubmitted, 1)).ok());
}

TEST_F(FaultTest, WriteLargerThanTheQueueByteBoundIsRefused) {
  options_.max_queued_bytes = 4096;
  Reopen();
  TransRecord big = Trans("big", kStatusSubmitted, 1);
  big.set_customed_data(std::string(8192, 'x'));
  EXPECT_EQ(Create(big).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(Create(Trans("small", kStatusSubmitted, 1)).ok());
}

}  // namespace
}  // namespace dtmd::storage
