// RocksDBStore's layout: a branch answer rewrites the branch's state, not its
// payload; a saga step's shared payload is stored once; the due-index scan
// does not walk the tombstones earlier updates left.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "rocksdb/perf_context.h"
#include "rocksdb/perf_level.h"
#include "storage/store_test_util.h"

namespace dtmd::storage {
namespace {

class LayoutTest : public StoreTestBase {
 protected:
  // Bytes in the write-ahead logs: what the writes so far cost.
  int64_t WalBytes() {
    store_->Flush();
    int64_t bytes = 0;
    for (const auto& entry : std::filesystem::directory_iterator(path_)) {
      if (entry.path().extension() == ".log") {
        bytes += static_cast<int64_t>(entry.file_size());
      }
    }
    return bytes;
  }

  static BranchRecord WithPayload(BranchRecord branch, int64_t bytes) {
    branch.set_bin_data(std::string(bytes, 'p'));
    return branch;
  }
};

constexpr int64_t kMiB = 1 << 20;

TEST_F(LayoutTest, BranchAnswerRewritesItsStateNotItsPayload) {
  ASSERT_TRUE(Create(Trans("g1", kStatusSubmitted, 1),
                     {WithPayload(Branch("01", "action"), kMiB)})
                  .ok());
  std::vector<BranchRecord> branches = *store_->GetBranches("g1");
  ASSERT_EQ(branches.size(), 1u);
  BranchRecord answered = branches[0];
  answered.set_status("failed");
  answered.set_last_error("boom");
  answered.set_call_count(7);
  answered.set_last_code(14);
  const int64_t before = WalBytes();
  StatusWaiter put;
  store_->PutBranches("g1", {answered}, Durability::kNoSync, put.Callback());
  ASSERT_TRUE(put.Wait().ok());
  EXPECT_LT(WalBytes() - before, 1024);

  branches = *store_->GetBranches("g1");
  ASSERT_EQ(branches.size(), 1u);
  EXPECT_EQ(branches[0].status(), "failed");
  EXPECT_EQ(branches[0].last_error(), "boom");
  EXPECT_EQ(branches[0].call_count(), 7);
  EXPECT_EQ(branches[0].last_code(), 14);
  EXPECT_EQ(branches[0].bin_data().size(), static_cast<size_t>(kMiB));
}

TEST_F(LayoutTest, UpdateWritesBranchStateOnly) {
  ASSERT_TRUE(Create(Trans("g1", kStatusSubmitted, 1),
                     {WithPayload(Branch("01", "action"), kMiB)})
                  .ok());
  BranchRecord answered = store_->GetBranches("g1")->at(0);
  answered.set_status("succeed");
  answered.set_url("ignored: definitions never change");
  const int64_t before = WalBytes();
  ASSERT_TRUE(
      Update(Trans("g1", kStatusSucceed, 2), kStatusSubmitted, {answered})
          .ok());
  EXPECT_LT(WalBytes() - before, 1024);
  BranchRecord stored = store_->GetBranches("g1")->at(0);
  EXPECT_EQ(stored.status(), "succeed");
  EXPECT_EQ(stored.url(), "");
}

TEST_F(LayoutTest, SagaStepPayloadIsStoredOnce) {
  const int64_t before = WalBytes();
  ASSERT_TRUE(Create(Trans("g1", kStatusSubmitted, 1),
                     {WithPayload(Branch("01", "compensate"), kMiB),
                      WithPayload(Branch("01", "action"), kMiB),
                      WithPayload(Branch("02", "compensate"), 100),
                      WithPayload(Branch("02", "action"), 200)})
                  .ok());
  const int64_t written = WalBytes() - before;
  EXPECT_GT(written, kMiB);
  EXPECT_LT(written, kMiB + kMiB / 2);
  std::vector<BranchRecord> branches = *store_->GetBranches("g1");
  ASSERT_EQ(branches.size(), 4u);
  EXPECT_EQ(branches[0].bin_data().size(), static_cast<size_t>(kMiB));
  EXPECT_EQ(branches[1].bin_data(), branches[0].bin_data());
  // Different payloads under one branch id are kept apart.
  EXPECT_EQ(branches[2].bin_data().size(), 100u);
  EXPECT_EQ(branches[3].bin_data().size(), 200u);
  Reopen();
  EXPECT_EQ(store_->GetBranches("g1")->at(1).bin_data().size(),
            static_cast<size_t>(kMiB));
}

TEST_F(LayoutTest, NewBranchIsOneKeyAndKeepsItsStateUntilItChanges) {
  BranchRecord done = Branch("01", "action");
  done.set_status("succeed");
  ASSERT_TRUE(Create(Trans("g1", kStatusSubmitted, 1),
                     {Branch("01", "compensate"), done,
                      Branch("02", "compensate"), Branch("02", "action")})
                  .ok());
  // The states at creation ride in the definitions.
  std::vector<BranchRecord> branches = *store_->GetBranches("g1");
  ASSERT_EQ(branches.size(), 4u);
  EXPECT_EQ(branches[0].status(), "prepared");
  EXPECT_EQ(branches[1].status(), "succeed");
  // One branch changes: it reads back changed, the others as created, also
  // after a reopen.
  BranchRecord answered;
  answered.set_position(3);
  answered.set_status("failed");
  answered.set_last_error("no");
  StatusWaiter put;
  store_->PutBranches("g1", {answered}, Durability::kNoSync, put.Callback());
  ASSERT_TRUE(put.Wait().ok());
  Reopen();
  branches = *store_->GetBranches("g1");
  ASSERT_EQ(branches.size(), 4u);
  EXPECT_EQ(branches[1].status(), "succeed");
  EXPECT_EQ(branches[2].status(), "prepared");
  EXPECT_EQ(branches[3].status(), "failed");
  EXPECT_EQ(branches[3].last_error(), "no");
  EXPECT_EQ(branches[3].branch_id(), "02");
}

// Moves one transaction's due entry forward `updates` times, leaving a
// tombstone below the live entry each time.
void MoveDueEntry(StoreTestBase* test, RocksDBStore* store, int updates) {
  for (int i = 1; i <= updates; ++i) {
    store->UpdateTransaction(Trans("moving", kStatusSubmitted, 1000 + i),
                             kStatusSubmitted, {}, Durability::kNoSync,
                             [](absl::Status s) { EXPECT_TRUE(s.ok()) << s; });
    if (i % 10000 == 0) store->Flush();  // Stay within the queue's bound.
  }
  store->Flush();
}

uint64_t TombstonesSkippedBy(RocksDBStore* store, int64_t until_ms,
                             std::vector<std::string>* gids) {
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  rocksdb::get_perf_context()->Reset();
  *gids = *store->ScanDue(until_ms, 100);
  const uint64_t skipped =
      rocksdb::get_perf_context()->internal_delete_skipped_count;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  return skipped;
}

TEST_F(LayoutTest, ScanDueDoesNotWalkTombstonesOfEarlierUpdates) {
  constexpr int kUpdates = 20000;
  ASSERT_TRUE(Create(Trans("moving", kStatusSubmitted, 1000)).ok());
  std::vector<std::string> gids;
  TombstonesSkippedBy(store_.get(), 0, &gids);  // Raises the floor past 0.
  MoveDueEntry(this, store_.get(), kUpdates);
  // The first scan walks what was deleted since the previous one...
  TombstonesSkippedBy(store_.get(), 1000 + kUpdates, &gids);
  EXPECT_EQ(gids, std::vector<std::string>{"moving"});
  // ...and later ones start at the live entry.
  EXPECT_LT(TombstonesSkippedBy(store_.get(), 1000 + kUpdates, &gids), 10u);
  EXPECT_EQ(gids, std::vector<std::string>{"moving"});
  // An entry inserted below the floor is still found.
  ASSERT_TRUE(Create(Trans("early", kStatusSubmitted, 5)).ok());
  EXPECT_EQ(Due(1000 + kUpdates),
            (std::vector<std::string>{"early", "moving"}));
}

// A measurement, not a test: run with --gtest_also_run_disabled_tests.
// After a reopen the floor starts at 0, so the first scan is what every
// scan cost before the floor existed.
TEST_F(LayoutTest, DISABLED_MeasureScanDueAfterOneMillionUpdates) {
  constexpr int kUpdates = 1000000;
  ASSERT_TRUE(Create(Trans("moving", kStatusSubmitted, 1000)).ok());
  MoveDueEntry(this, store_.get(), kUpdates);
  Reopen();
  std::vector<std::string> gids;
  for (const char* label :
       {"from the first key (no floor)", "from the floor"}) {
    const auto start = std::chrono::steady_clock::now();
    const uint64_t skipped =
        TombstonesSkippedBy(store_.get(), 1000 + kUpdates, &gids);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    std::cout << "ScanDue " << label << ": " << us << " us, " << skipped
              << " tombstones skipped\n";
  }
}

}  // namespace
}  // namespace dtmd::storage
