// RocksDBStore's finished index and DeleteFinished (retention).
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "storage/store_test_util.h"

namespace dtmd::storage {
namespace {

// Makes the closed store at `path` look as if written before the finished
// family existed: no family, no marker (unless `keep_marker`: a family lost
// to damage).
void DropFinishedIndex(const std::string& path, bool keep_marker = false) {
  std::vector<std::string> names;
  ASSERT_TRUE(
      rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const std::string& name : names) families.push_back({name, {}});
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(
      rocksdb::DB::Open(rocksdb::DBOptions(), path, families, &handles, &db)
          .ok());
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == "finished") {
      ASSERT_TRUE(db->DropColumnFamily(handles[i]).ok());
    }
  }
  if (!keep_marker) {
    ASSERT_TRUE(
        db->Delete(rocksdb::WriteOptions(), handles[0], "dtmd.finished_index")
            .ok());
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
  }
  ASSERT_TRUE(db->Close().ok());
  delete db;
  ASSERT_TRUE(
      rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  EXPECT_EQ(std::count(names.begin(), names.end(), "finished"), 0);
}

class RetentionStoreTest : public StoreTestBase {
 protected:
  // A final record with `branches` branches, finished at finish_ms.
  void CreateFinished(const std::string& gid, int64_t finish_ms,
                      int branches = 2, const std::string& payload = "",
                      Durability durability = Durability::kSync) {
    TransRecord trans = Trans(gid, kStatusSucceed, 0);
    trans.set_finish_time_ms(finish_ms);
    std::vector<BranchRecord> records;
    for (int i = 0; i < branches; ++i) {
      BranchRecord branch = Branch(absl::StrCat(i / 2), i % 2 ? "action" : "x");
      branch.set_bin_data(payload + std::to_string(i));
      records.push_back(branch);
    }
    absl::StatusOr<CreateResult> created = Create(trans, records, durability);
    ASSERT_TRUE(created.ok() && created->created) << created.status();
  }

  std::vector<FinishedTrans> Scan(
      int64_t before_ms, int limit = 100,
      const std::optional<FinishedTrans>& after = std::nullopt) {
    absl::StatusOr<std::vector<FinishedTrans>> found =
        store_->ScanFinished(before_ms, after, limit);
    EXPECT_TRUE(found.ok()) << found.status();
    return found.ok() ? *found : std::vector<FinishedTrans>{};
  }

  static std::vector<std::string> Gids(const std::vector<FinishedTrans>& v) {
    std::vector<std::string> gids;
    for (const FinishedTrans& f : v) gids.push_back(f.gid);
    return gids;
  }

  absl::StatusOr<int64_t> Delete(std::vector<FinishedTrans> finished) {
    Waiter<absl::StatusOr<int64_t>> waiter;
    store_->DeleteFinished(std::move(finished), waiter.Callback());
    return waiter.Wait();
  }

  bool Exists(const std::string& gid) {
    return store_->GetTransaction(gid).ok();
  }

  size_t BranchCount(const std::string& gid) {
    absl::StatusOr<std::vector<BranchRecord>> branches =
        store_->GetBranches(gid);
    EXPECT_TRUE(branches.ok()) << branches.status();
    return branches.ok() ? branches->size() : 0;
  }

  // Bytes of the store's table files.
  uint64_t TableBytes() {
    uint64_t bytes = 0;
    for (const auto& entry : std::filesystem::directory_iterator(path_)) {
      if (entry.path().extension() == ".sst") bytes += entry.file_size();
    }
    return bytes;
  }
};

TEST_F(RetentionStoreTest, IndexesFinalRecordsWhenTheyBecomeFinal) {
  CreateFinished("created-final", 1000);
  ASSERT_TRUE(
      Create(Trans("updated", kStatusSubmitted, 50), {Branch("1", "a")}).ok());
  ASSERT_TRUE(Create(Trans("running", kStatusSubmitted, 50)).ok());
  CreateFinished("young", 9000);
  EXPECT_TRUE(Gids(Scan(5000)) == std::vector<std::string>{"created-final"});

  TransRecord failed = Trans("updated", kStatusFailed, 0);
  failed.set_finish_time_ms(2000);
  ASSERT_TRUE(Update(failed, kStatusSubmitted).ok());
  std::vector<FinishedTrans> due = Scan(5000);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].gid, "created-final");
  EXPECT_EQ(due[0].finish_time_ms, 1000);
  EXPECT_EQ(due[1].gid, "updated");
  EXPECT_EQ(due[1].finish_time_ms, 2000);
  // The bound is exclusive; every final record is indexed.
  EXPECT_EQ(Scan(1000).size(), 0u);
  EXPECT_EQ(Gids(Scan(INT64_MAX)),
            (std::vector<std::string>{"created-final", "updated", "young"}));
  // A final record without a finish time is indexed at its update time.
  TransRecord no_finish = Trans("no-finish", kStatusFailed, 0);
  no_finish.set_update_time_ms(3000);
  ASSERT_TRUE(Create(no_finish).ok());
  EXPECT_EQ(Gids(Scan(3001)), (std::vector<std::string>{
                                  "created-final", "updated", "no-finish"}));
}

TEST_F(RetentionStoreTest, DeletesOnlyFinishedBeforeTheCutoff) {
  CreateFinished("old-1", 1000, 3);
  CreateFinished("old-2", 2000, 2);
  CreateFinished("young", 9000, 2);
  ASSERT_TRUE(
      Create(Trans("running", kStatusSubmitted, 50), {Branch("1", "a")}).ok());

  absl::StatusOr<int64_t> deleted = Delete(Scan(5000));
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 2);
  for (const char* gid : {"old-1", "old-2"}) {
    EXPECT_TRUE(absl::IsNotFound(store_->GetTransaction(gid).status()));
    EXPECT_EQ(BranchCount(gid), 0u);
  }
  EXPECT_TRUE(Exists("young"));
  EXPECT_EQ(BranchCount("young"), 2u);
  EXPECT_TRUE(Exists("running"));
  EXPECT_EQ(BranchCount("running"), 1u);
  EXPECT_EQ(Due(100), std::vector<std::string>{"running"});
  EXPECT_EQ(Scan(5000).size(), 0u);
  EXPECT_EQ(Gids(Scan(INT64_MAX)), std::vector<std::string>{"young"});
}

TEST_F(RetentionStoreTest, ScansInBatchesWithACursor) {
  for (int i = 0; i < 25; ++i) {
    // Pairs share a finish time: the cursor orders by (time, gid).
    CreateFinished(absl::StrCat("g", 100 + i), 1000 + i / 2, 1);
  }
  std::optional<FinishedTrans> after;
  std::vector<std::string> seen;
  int batches = 0;
  while (true) {
    std::vector<FinishedTrans> batch = Scan(5000, 10, after);
    if (batch.empty()) break;
    ++batches;
    after = batch.back();
    for (const FinishedTrans& f : batch) seen.push_back(f.gid);
    absl::StatusOr<int64_t> deleted = Delete(batch);
    ASSERT_TRUE(deleted.ok());
    EXPECT_EQ(*deleted, static_cast<int64_t>(batch.size()));
  }
  EXPECT_EQ(batches, 3);
  ASSERT_EQ(seen.size(), 25u);
  for (int i = 0; i < 25; ++i) EXPECT_EQ(seen[i], absl::StrCat("g", 100 + i));
  EXPECT_EQ(Scan(INT64_MAX).size(), 0u);
}

TEST_F(RetentionStoreTest, StaleEntriesAreDroppedWithoutDeleting) {
  CreateFinished("final", 1000);
  ASSERT_TRUE(Create(Trans("running", kStatusSubmitted, 50)).ok());
  // Another finish time, an unfinished record, an unknown gid.
  absl::StatusOr<int64_t> deleted =
      Delete({{999, "final"}, {1000, "running"}, {1000, "unknown"}});
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 0);
  EXPECT_TRUE(Exists("final"));
  EXPECT_EQ(BranchCount("final"), 2u);
  EXPECT_TRUE(Exists("running"));
  EXPECT_EQ(Gids(Scan(INT64_MAX)), std::vector<std::string>{"final"});
}

TEST_F(RetentionStoreTest, AGidDeletedIsNewAgain) {
  CreateFinished("again", 1000, 4);
  ASSERT_EQ(*Delete(Scan(5000)), 1);
  absl::StatusOr<CreateResult> created =
      Create(Trans("again", kStatusSubmitted, 50), {Branch("1", "a")});
  ASSERT_TRUE(created.ok());
  EXPECT_TRUE(created->created);
  EXPECT_EQ(BranchCount("again"), 1u);
}

TEST_F(RetentionStoreTest, WritesLaterInTheSameGroupSeeTheDeletion) {
  CreateFinished("same-group", 1000, 4);
  std::unique_ptr<absl::Notification> release = PauseWriter();
  Waiter<absl::StatusOr<int64_t>> deleted;
  store_->DeleteFinished({{1000, "same-group"}}, deleted.Callback());
  CreateWaiter created;
  store_->CreateTransaction(Trans("same-group", kStatusPrepared, 50),
                            {Branch("1", "a")}, Durability::kNoSync,
                            created.Callback());
  StatusWaiter appended;
  store_->AppendBranches("same-group", kStatusPrepared, {Branch("2", "a")},
                         Durability::kNoSync, appended.Callback());
  release->Notify();
  ASSERT_TRUE(deleted.Wait().ok());
  absl::StatusOr<CreateResult> create = created.Wait();
  ASSERT_TRUE(create.ok());
  EXPECT_TRUE(create->created);
  ASSERT_TRUE(appended.Wait().ok());
  absl::StatusOr<std::vector<BranchRecord>> branches =
      store_->GetBranches("same-group");
  ASSERT_TRUE(branches.ok()) << branches.status();
  ASSERT_EQ(branches->size(), 2u);
  EXPECT_EQ((*branches)[0].branch_id(), "1");
  EXPECT_EQ((*branches)[1].branch_id(), "2");
  EXPECT_EQ((*branches)[1].position(), 1);
}

TEST_F(RetentionStoreTest, IndexSurvivesReopen) {
  CreateFinished("a", 1000);
  CreateFinished("b", 2000);
  Reopen();
  EXPECT_EQ(store_->GetStats().backfilled, 0);
  EXPECT_EQ(Gids(Scan(5000)), (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(*Delete(Scan(1500)), 1);
  Reopen();
  EXPECT_EQ(Gids(Scan(5000)), std::vector<std::string>{"b"});
  EXPECT_FALSE(Exists("a"));
}

// A store written before the finished family existed: no family, no
// marker. The open indexes its final records once.
TEST_F(RetentionStoreTest, BackfillsAStoreWrittenWithoutTheIndex) {
  for (int i = 0; i < 30; ++i) CreateFinished(absl::StrCat("old", i), 100 + i);
  ASSERT_TRUE(Create(Trans("running", kStatusSubmitted, 50)).ok());
  store_.reset();
  DropFinishedIndex(path_);
  Reopen();
  EXPECT_EQ(store_->GetStats().backfilled, 30);
  std::vector<FinishedTrans> found = Scan(INT64_MAX);
  ASSERT_EQ(found.size(), 30u);
  EXPECT_EQ(found[0].gid, "old0");
  EXPECT_EQ(found[0].finish_time_ms, 100);
  EXPECT_EQ(found[29].gid, "old29");
  // Once: the next open finds the marker.
  Reopen();
  EXPECT_EQ(store_->GetStats().backfilled, 0);
  EXPECT_EQ(*Delete(Scan(115)), 15);
  EXPECT_EQ(Scan(INT64_MAX).size(), 15u);
  EXPECT_TRUE(Exists("running"));
}

// A store whose finished family is gone but whose marker says it was
// indexed (damage accepted at open) is indexed again.
TEST_F(RetentionStoreTest, IndexesAgainWhenTheFamilyIsLost) {
  CreateFinished("x", 100);
  CreateFinished("y", 200);
  store_.reset();
  DropFinishedIndex(path_, /*keep_marker=*/true);
  Reopen();
  EXPECT_EQ(store_->GetStats().backfilled, 2);
  EXPECT_EQ(Gids(Scan(INT64_MAX)), (std::vector<std::string>{"x", "y"}));
}

// The files shrink: the deletions and the records they delete are dropped
// by the compaction ReclaimSpace asks for.
TEST_F(RetentionStoreTest, ReclaimSpaceShrinksTheFiles) {
  // Payloads that do not compress away.
  std::mt19937 random(7);
  auto payload = [&random] {
    std::string bytes(2000, '\0');
    for (char& c : bytes) c = static_cast<char>('a' + random() % 26);
    return bytes;
  };
  constexpr int kOld = 2000;
  constexpr int kYoung = 200;
  constexpr int kBatch = 500;  // dtmd's default --retention_batch_size.
  for (int i = 0; i < kOld; ++i) {
    CreateFinished(absl::StrCat("old-", i), 1000 + i, 2, payload(),
                   Durability::kNoSync);
  }
  for (int i = 0; i < kYoung; ++i) {
    CreateFinished(absl::StrCat("young-", i), 100000 + i, 2, payload(),
                   Durability::kNoSync);
  }
  ASSERT_TRUE(store_->CompactAll().ok());
  const uint64_t before = TableBytes();

  std::optional<FinishedTrans> after;
  int64_t deleted = 0;
  absl::Duration longest;
  while (true) {
    std::vector<FinishedTrans> batch = Scan(50000, kBatch, after);
    if (batch.empty()) break;
    after = batch.back();
    // What a write queued right behind the deletion waits (not asserted).
    Waiter<absl::StatusOr<int64_t>> deletion;
    store_->DeleteFinished(batch, deletion.Callback());
    const absl::Time start = absl::Now();
    StatusWaiter behind;
    store_->PutBranches("young-0", {}, Durability::kNoSync, behind.Callback());
    ASSERT_TRUE(behind.Wait().ok());
    longest = std::max(longest, absl::Now() - start);
    absl::StatusOr<int64_t> n = deletion.Wait();
    ASSERT_TRUE(n.ok()) << n.status();
    deleted += *n;
  }
  EXPECT_EQ(deleted, kOld);
  store_->Flush();
  ASSERT_TRUE(store_->ReclaimSpace().ok());
  const uint64_t reclaimed = TableBytes();
  std::cout << "table files: " << before << " bytes with " << kOld + kYoung
            << " transactions, " << reclaimed << " bytes after deleting "
            << kOld << "; a write behind a deletion of " << kBatch
            << " waited at most " << longest << std::endl;
  // What is left is about the young tenth.
  EXPECT_LT(reclaimed, before / 4);
  EXPECT_EQ(Scan(INT64_MAX, kOld).size(), static_cast<size_t>(kYoung));
  EXPECT_EQ(BranchCount("young-7"), 2u);
}

// A measurement, not a test: run with --gtest_also_run_disabled_tests.
// How long the one-time backfill makes the first open of an older store.
TEST_F(RetentionStoreTest, DISABLED_MeasureBackfillOfTwoHundredThousand) {
  constexpr int kRecords = 200000;
  for (int i = 0; i < kRecords; ++i) {
    TransRecord trans = Trans(absl::StrCat("gid-", i), kStatusSucceed, 0);
    trans.set_finish_time_ms(1000 + i);
    store_->CreateTransaction(trans, {Branch("1", "action")},
                              Durability::kNoSync,
                              [](absl::StatusOr<CreateResult>) {});
    if (i % 10000 == 9999) store_->Flush();
  }
  store_.reset();
  DropFinishedIndex(path_);
  const absl::Time start = absl::Now();
  Reopen();
  std::cout << "backfill: " << store_->GetStats().backfilled
            << " records indexed, open took " << absl::Now() - start
            << std::endl;
}

}  // namespace
}  // namespace dtmd::storage
