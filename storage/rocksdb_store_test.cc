// Tests for RocksDBStore against a real RocksDB in a fresh directory per test.
#include "storage/rocksdb_store.h"

#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "storage/store_test_util.h"

namespace dtmd::storage {
namespace {

class RocksDBStoreTest : public StoreTestBase {
 protected:
  absl::Status Append(const std::string& gid, const std::string& expected,
                      std::vector<BranchRecord> branches) {
    StatusWaiter waiter;
    store_->AppendBranches(gid, expected, std::move(branches),
                           Durability::kSync, waiter.Callback());
    return waiter.Wait();
  }
};

TEST_F(RocksDBStoreTest, CreatedTransactionCanBeRead) {
  TransRecord trans = Trans("g1", kStatusPrepared, 1000);
  trans.set_customed_data("data");
  absl::StatusOr<CreateResult> result = Create(trans);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->created);

  absl::StatusOr<TransRecord> read = store_->GetTransaction("g1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->SerializeAsString(), trans.SerializeAsString());
}

TEST_F(RocksDBStoreTest, CreateHandsTheStoredRecordsBack) {
  CreateWaiter created;
  store_->CreateTransaction(Trans("g1", kStatusSubmitted, 1),
                            {Branch("b0", "action"), Branch("b1", "action")},
                            Durability::kSync, created.Callback());
  absl::StatusOr<CreateResult> result = created.Wait();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(result->created);
  EXPECT_EQ(result->trans.gid(), "g1");
  ASSERT_EQ(result->branches.size(), 2u);
  EXPECT_EQ(result->branches[1].position(), 1);
  EXPECT_EQ(result->branches[1].gid(), "g1");
}

TEST_F(RocksDBStoreTest, GetUnknownTransactionIsNotFound) {
  EXPECT_EQ(store_->GetTransaction("nope").status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<std::vector<BranchRecord>> branches =
      store_->GetBranches("nope");
  ASSERT_TRUE(branches.ok());
  EXPECT_TRUE(branches->empty());
}

TEST_F(RocksDBStoreTest, DuplicateCreateReturnsExistingAndWritesNothing) {
  ASSERT_TRUE(Create(Trans("g1", kStatusPrepared, 1000)).ok());
  absl::StatusOr<CreateResult> again =
      Create(Trans("g1", kStatusSubmitted, 5), {Branch("b", "action")});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->existing.status(), kStatusPrepared);
  EXPECT_EQ(store_->GetTransaction("g1")->status(), kStatusPrepared);
  EXPECT_TRUE(store_->GetBranches("g1")->empty());
  EXPECT_EQ(Due(10), std::vector<std::string>{});
}

TEST_F(RocksDBStoreTest, TwoCreatesOfOneGidInOneGroupCreateExactlyOnce) {
  std::unique_ptr<absl::Notification> release = PauseWriter();
  const int64_t batches_before = store_->GetStats().write_batches;
  CreateWaiter first, second;
  store_->CreateTransaction(Trans("g1", kStatusPrepared, 1), {},
                            Durability::kSync, first.Callback());
  store_->CreateTransaction(Trans("g1", kStatusSubmitted, 2), {},
                            Durability::kSync, second.Callback());
  release->Notify();
  absl::StatusOr<CreateResult> a = first.Wait();
  absl::StatusOr<CreateResult> b = second.Wait();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(a->created);
  EXPECT_FALSE(b->created);
  EXPECT_EQ(b->existing.status(), kStatusPrepared);
  EXPECT_EQ(store_->GetStats().write_batches, batches_before + 1);
  EXPECT_EQ(Due(100), std::vector<std::string>{"g1"});
}

TEST_F(RocksDBStoreTest, UpdateAndAppendInSameGroupSeeEarlierCreate) {
  std::unique_ptr<absl::Notification> release = PauseWriter();
  const int64_t batches_before = store_->GetStats().write_batches;
  CreateWaiter created;
  StatusWaiter updated, appended, stale;
  store_->CreateTransaction(Trans("g1", kStatusPrepared, 1),
                            {Branch("b0", "action")}, Durability::kNoSync,
                            created.Callback());
  store_->UpdateTransaction(Trans("g1", kStatusSubmitted, 2), kStatusPrepared,
                            {}, Durability::kNoSync, updated.Callback());
  store_->AppendBranches("g1", kStatusSubmitted, {Branch("b1", "action")},
                         Durability::kNoSync, appended.Callback());
  store_->UpdateTransaction(Trans("g1", kStatusAborting, 3), kStatusPrepared,
                            {}, Durability::kNoSync, stale.Callback());
  release->Notify();
  EXPECT_TRUE(created.Wait().ok());
  EXPECT_TRUE(updated.Wait().ok());
  EXPECT_TRUE(appended.Wait().ok());
  EXPECT_EQ(stale.Wait().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->GetStats().write_batches, batches_before + 1);
  EXPECT_EQ(store_->GetTransaction("g1")->status(), kStatusSubmitted);
  std::vector<BranchRecord> branches = *store_->GetBranches("g1");
  ASSERT_EQ(branches.size(), 2u);
  EXPECT_EQ(branches[1].branch_id(), "b1");
  EXPECT_EQ(branches[1].position(), 1);
  // The due entry moved from 1 to 2 within the group.
  EXPECT_EQ(Due(1), std::vector<std::string>{});
  EXPECT_EQ(Due(2), std::vector<std::string>{"g1"});
}

TEST_F(RocksDBStoreTest, UpdateAppliesOnlyWhenStatusMatches) {
  ASSERT_TRUE(Create(Trans("g1", kStatusPrepared, 1)).ok());
  EXPECT_TRUE(Update(Trans("g1", kStatusSubmitted, 2), kStatusPrepared).ok());
  EXPECT_EQ(store_->GetTransaction("g1")->status(), kStatusSubmitted);

  absl::Status stale = Update(Trans("g1", kStatusAborting, 3), kStatusPrepared);
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(stale.message().find(kStatusSubmitted), absl::string_view::npos)
      << stale;
  EXPECT_EQ(store_->GetTransaction("g1")->status(), kStatusSubmitted);
}

TEST_F(RocksDBStoreTest, UpdateOrAppendOfUnknownGidIsNotFound) {
  EXPECT_EQ(Update(Trans("nope", kStatusSubmitted, 2), kStatusPrepared).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Append("nope", kStatusPrepared, {Branch("b", "try")}).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->GetBranches("nope")->empty());
}

TEST_F(RocksDBStoreTest, BranchesWrittenWithUpdateAreReadBack) {
  ASSERT_TRUE(Create(Trans("g1", kStatusPrepared, 1),
                     {Branch("b0", "action"), Branch("b1", "action")})
                  .ok());
  BranchRecord done = Branch("b1", "action");
  done.set_position(1);
  done.set_status("succeed");
  ASSERT_TRUE(
      Update(Trans("g1", kStatusSubmitted, 2), kStatusPrepared, {done}).ok());
  std::vector<BranchRecord> branches = *store_->GetBranches("g1");
  ASSERT_EQ(branches.size(), 2u);
  EXPECT_EQ(branches[0].status(), "prepared");
  EXPECT_EQ(branches[1].status(), "succeed");
  EXPECT_EQ(branches[1].gid(), "g1");
}

TEST_F(RocksDBStoreTest, PutBranchesWritesBranchesWithoutTouchingTheRecord) {
  TransRecord trans = Trans("g1", kStatusSubmitted, 5);
  ASSERT_TRUE(
      Create(trans, {Branch("b0", "action"), Branch("b1", "action")}).ok());
  BranchRecord done = Branch("b0", "action");
  done.set_position(0);
  done.set_status("succeed");
  StatusWaiter put;
  store_->PutBranches("g1", {done}, Durability::kNoSync, put.Callback());
  ASSERT_TRUE(put.Wait().ok());
  std::vector<BranchRecord> branches = *store_->GetBranches("g1");
  ASSERT_EQ(branches.size(), 2u);
  EXPECT_EQ(branches[0].status(), "succeed");
  EXPECT_EQ(branches[0].gid(), "g1");
  EXPECT_EQ(branches[1].status(), "prepared");
  EXPECT_EQ(store_->GetTransaction("g1")->SerializeAsString(),
            trans.SerializeAsString());
  EXPECT_EQ(Due(5), std::vector<std::string>{"g1"});

  BranchRecord bad = done;
  bad.set_position(-1);
  StatusWaiter rejected;
  store_->PutBranches("g1", {bad}, Durability::kNoSync, rejected.Callback());
  EXPECT_EQ(rejected.Wait().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RocksDBStoreTest, AppendedBranchesGetNextPositions) {
  ASSERT_TRUE(Create(Trans("g1", kStatusPrepared, 1),
                     {Branch("b0", "try"), Branch("b1", "try")})
                  .ok());
  ASSERT_TRUE(
      Append("g1", kStatusPrepared, {Branch("b2", "try"), Branch("b3", "try")})
          .ok());
  EXPECT_EQ(Append("g1", kStatusSubmitted, {Branch("x", "try")}).code(),
            absl::StatusCode::kFailedPrecondition);
  std::vector<BranchRecord> branches = *store_->GetBranches("g1");
  ASSERT_EQ(branches.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(branches[i].position(), i);
    EXPECT_EQ(branches[i].branch_id(), absl::StrCat("b", i));
    EXPECT_EQ(branches[i].gid(), "g1");
  }
}

TEST_F(RocksDBStoreTest, GetBranchesDoesNotLeakAcrossGidsWithCommonPrefix) {
  ASSERT_TRUE(Create(Trans("a", kStatusPrepared, 1), {Branch("a0", "x")}).ok());
  ASSERT_TRUE(Create(Trans("ab", kStatusPrepared, 1),
                     {Branch("ab0", "x"), Branch("ab1", "x")})
                  .ok());
  ASSERT_TRUE(Append("a", kStatusPrepared, {Branch("a1", "x")}).ok());
  std::vector<BranchRecord> a = *store_->GetBranches("a");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].branch_id(), "a0");
  EXPECT_EQ(a[1].branch_id(), "a1");
  EXPECT_EQ(store_->GetBranches("ab")->size(), 2u);
}

TEST_F(RocksDBStoreTest, ScanDueReturnsGidsInTimeOrderUpToBoundAndLimit) {
  ASSERT_TRUE(Create(Trans("late", kStatusPrepared, 300)).ok());
  ASSERT_TRUE(Create(Trans("early", kStatusPrepared, 100)).ok());
  ASSERT_TRUE(Create(Trans("middle", kStatusPrepared, 200)).ok());
  ASSERT_TRUE(Create(Trans("done", kStatusSucceed, 50)).ok());
  EXPECT_EQ(Due(99), std::vector<std::string>{});
  EXPECT_EQ(Due(200), (std::vector<std::string>{"early", "middle"}));
  EXPECT_EQ(Due(1000), (std::vector<std::string>{"early", "middle", "late"}));
  EXPECT_EQ(Due(1000, 2), (std::vector<std::string>{"early", "middle"}));
  EXPECT_EQ(Due(1000, 0), std::vector<std::string>{});
}

TEST_F(RocksDBStoreTest, DueEntryMovesOnUpdateAndDisappearsWhenFinal) {
  ASSERT_TRUE(Create(Trans("g1", kStatusPrepared, 100)).ok());
  ASSERT_TRUE(Create(Trans("g2", kStatusPrepared, 200)).ok());
  ASSERT_TRUE(Update(Trans("g1", kStatusSubmitted, 300), kStatusPrepared).ok());
  EXPECT_EQ(Due(250), std::vector<std::string>{"g2"});
  EXPECT_EQ(Due(300), (std::vector<std::string>{"g2", "g1"}));

  ASSERT_TRUE(
      Update(Trans("g1", kStatusSubmitted, 300), kStatusSubmitted).ok());
  EXPECT_EQ(Due(300), (std::vector<std::string>{"g2", "g1"}));

  ASSERT_TRUE(Update(Trans("g1", kStatusSucceed, 400), kStatusSubmitted).ok());
  ASSERT_TRUE(Update(Trans("g2", kStatusFailed, 400), kStatusPrepared).ok());
  EXPECT_EQ(Due(1000), std::vector<std::string>{});
}

TEST_F(RocksDBStoreTest, ReopenKeepsTransactionsBranchesAndDueIndex) {
  ASSERT_TRUE(Create(Trans("g1", kStatusPrepared, 100),
                     {Branch("b0", "action"), Branch("b1", "compensate")})
                  .ok());
  ASSERT_TRUE(
      Create(Trans("g2", kStatusSubmitted, 50), {}, Durability::kNoSync).ok());
  ASSERT_TRUE(Update(Trans("g2", kStatusSucceed, 60), kStatusSubmitted).ok());
  Reopen();
  EXPECT_EQ(store_->GetTransaction("g1")->status(), kStatusPrepared);
  EXPECT_EQ(store_->GetTransaction("g2")->status(), kStatusSucceed);
  std::vector<BranchRecord> branches = *store_->GetBranches("g1");
  ASSERT_EQ(branches.size(), 2u);
  EXPECT_EQ(branches[1].op(), "compensate");
  EXPECT_EQ(Due(1000), std::vector<std::string>{"g1"});
}

TEST_F(RocksDBStoreTest, ConcurrentSyncWritersAllCompleteWithGroupCommit) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 50;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::StatusOr<CreateResult> result =
            Create(Trans(absl::StrCat("g", t, "_", i), kStatusPrepared, i));
        if (result.ok() && result->created) ++ok;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  RocksDBStore::Stats stats = store_->GetStats();
  EXPECT_EQ(stats.operations, kThreads * kPerThread);
  EXPECT_GE(stats.synced_batches, 1);
  EXPECT_LE(stats.synced_batches, stats.operations);
  EXPECT_EQ(Due(kPerThread, kThreads * kPerThread + 1).size(),
            static_cast<size_t>(kThreads * kPerThread));
}

TEST_F(RocksDBStoreTest, SecondOpenOfSamePathFailsCleanly) {
  RocksDBStoreOptions options;
  options.path = path_;
  absl::StatusOr<std::unique_ptr<RocksDBStore>> second =
      RocksDBStore::Open(options);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().code() == absl::StatusCode::kUnavailable ||
              second.status().code() == absl::StatusCode::kInternal)
      << second.status();
  // The first store is unaffected.
  EXPECT_TRUE(Create(Trans("g1", kStatusPrepared, 1)).ok());
}

// Run by SecondOpenFromAnotherProcessFailsCleanly in a child process; passes
// only if the path named by kChildPathEnv cannot be opened.
constexpr char kChildPathEnv[] = "DTMD_STORE_TEST_LOCKED_PATH";

TEST(RocksDBStoreChildTest, OpenOfLockedPathFails) {
  const char* path = getenv(kChildPathEnv);
  if (path == nullptr) GTEST_SKIP() << "only run as a child process";
  RocksDBStoreOptions options;
  options.path = path;
  absl::StatusOr<std::unique_ptr<RocksDBStore>> store =
      RocksDBStore::Open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable)
      << store.status();
}

TEST_F(RocksDBStoreTest, SecondOpenFromAnotherProcessFailsCleanly) {
  std::string filter = "--gtest_filter=RocksDBStoreChildTest.*";
  std::string exe = "/proc/self/exe";
  std::vector<char*> argv = {exe.data(), filter.data(), nullptr};
  std::string env_entry = absl::StrCat(kChildPathEnv, "=", path_);
  std::vector<char*> envp = {env_entry.data()};
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  envp.push_back(nullptr);
  pid_t child;
  ASSERT_EQ(posix_spawn(&child, exe.c_str(), nullptr, nullptr, argv.data(),
                        envp.data()),
            0);
  int wait_status = 0;
  ASSERT_EQ(waitpid(child, &wait_status, 0), child);
  ASSERT_TRUE(WIFEXITED(wait_status));
  EXPECT_EQ(WEXITSTATUS(wait_status), 0) << "the child could open the store";
  EXPECT_TRUE(Create(Trans("g1", kStatusPrepared, 1)).ok());
}

TEST_F(RocksDBStoreTest, FlushWaitsForQueuedWrites) {
  constexpr int kWrites = 200;
  std::atomic<int> callbacks{0};
  for (int i = 0; i < kWrites; ++i) {
    store_->CreateTransaction(
        Trans(absl::StrCat("g", i), kStatusPrepared, i), {},
        i % 2 == 0 ? Durability::kSync : Durability::kNoSync,
        [&callbacks](absl::StatusOr<CreateResult> result) {
          EXPECT_TRUE(result.ok());
          ++callbacks;
        });
  }
  store_->Flush();
  EXPECT_EQ(callbacks.load(), kWrites);
  EXPECT_TRUE(store_->GetTransaction(absl::StrCat("g", kWrites - 1)).ok());
}

TEST_F(RocksDBStoreTest, CallbacksRunInIssueOrder) {
  std::vector<int> order;  // Only the writer thread appends.
  for (int i = 0; i < 100; ++i) {
    store_->AppendBranches("missing", kStatusPrepared, {}, Durability::kNoSync,
                           [&order, i](absl::Status) { order.push_back(i); });
  }
  store_->Flush();
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST_F(RocksDBStoreTest, DestructorCompletesQueuedWrites) {
  std::atomic<int> callbacks{0};
  for (int i = 0; i < 50; ++i) {
    store_->CreateTransaction(
        Trans(absl::StrCat("g", i), kStatusPrepared, i), {},
        Durability::kNoSync,
        [&callbacks](absl::StatusOr<CreateResult>) { ++callbacks; });
  }
  store_.reset();
  EXPECT_EQ(callbacks.load(), 50);
  Reopen();
  EXPECT_TRUE(store_->GetTransaction("g49").ok());
}

// RLIMIT_FSIZE makes every write past 1 MiB in any file fail with EFBIG: a
// real disk error from the kernel, without a fault-injecting Env.
TEST_F(RocksDBStoreTest, FailedWriteFailsEveryOpInTheGroupWithoutCrashing) {
  ASSERT_TRUE(Create(Trans("before", kStatusPrepared, 1)).ok());
  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  sighandler_t saved_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit limited = saved;
  limited.rlim_cur = 1 << 20;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);

  std::unique_ptr<absl::Notification> release = PauseWriter();
  CreateWaiter small, big;
  TransRecord huge = Trans("big", kStatusPrepared, 1);
  huge.set_customed_data(std::string(2 << 20, 'x'));
  store_->CreateTransaction(Trans("small", kStatusPrepared, 1), {},
                            Durability::kSync, small.Callback());
  store_->CreateTransaction(huge, {}, Durability::kSync, big.Callback());
  release->Notify();
  absl::Status small_status = small.Wait().status();
  absl::Status big_status = big.Wait().status();
  store_->Flush();
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &saved), 0);
  signal(SIGXFSZ, saved_handler);

  EXPECT_EQ(small_status.code(), absl::StatusCode::kUnavailable)
      << small_status;
  EXPECT_EQ(big_status.code(), absl::StatusCode::kUnavailable) << big_status;
  EXPECT_EQ(store_->GetTransaction("small").status().code(),
            absl::StatusCode::kNotFound);
  Reopen();
  EXPECT_TRUE(store_->GetTransaction("before").ok());
  EXPECT_TRUE(Create(Trans("after", kStatusPrepared, 1)).ok());
}

TEST_F(RocksDBStoreTest, InvalidGidIsRejected) {
  EXPECT_EQ(Create(Trans("", kStatusPrepared, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      Create(Trans(std::string("a\0b", 3), kStatusPrepared, 1)).status().code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dtmd::storage
