// RocksDBStore::Open refuses damaged or foreign data instead of starting
// from what RocksDB happens to recover; and survives a disk that is really
// full (a small tmpfs, where the machine lets the test mount one).
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "rocksdb/db.h"
#include "storage/integrity.h"
#include "storage/store_test_util.h"

namespace dtmd::storage {
namespace {

namespace fs = std::filesystem;

class OpenTest : public StoreTestBase {
 protected:
  // Writes `count` synced transactions with a payload each.
  void Fill(int count) {
    for (int i = 0; i < count; ++i) {
      BranchRecord branch = Branch("01", "action");
      branch.set_bin_data(std::string(1000, 'p'));
      ASSERT_TRUE(
          Create(Trans(absl::StrCat("g", i), kStatusSubmitted, 1), {branch})
              .ok());
    }
  }

  // The data dir as a crash would leave it: a copy taken while the store is
  // open (every synced write is in the WAL), put back after the store is
  // gone.
  void CrashImage() {
    store_->Flush();
    const std::string copy = path_ + ".crash";
    fs::remove_all(copy);
    fs::copy(path_, copy, fs::copy_options::recursive);
    fs::remove(fs::path(copy) / kLockFile);
    store_.reset();
    fs::remove_all(path_);
    fs::rename(copy, path_);
  }

  std::vector<fs::path> FilesEndingWith(const std::string& suffix) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(path_)) {
      const std::string name = entry.path().filename().string();
      if (name.size() >= suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) ==
              0) {
        files.push_back(entry.path());
      }
    }
    return files;
  }

  fs::path Manifest() {
    std::ifstream in(fs::path(path_) / "CURRENT");
    std::string name;
    std::getline(in, name);
    return fs::path(path_) / name;
  }
};

TEST_F(OpenTest, CrashImageReopensWithEverything) {
  Fill(50);
  CrashImage();
  ASSERT_TRUE(OpenStatus().ok()) << OpenStatus();
  EXPECT_TRUE(store_->GetTransaction("g49").ok());
}

TEST_F(OpenTest, WalCutInHalfStopsStartUp) {
  Fill(50);
  CrashImage();
  std::vector<fs::path> wals = FilesEndingWith(".log");
  ASSERT_FALSE(wals.empty());
  fs::path wal = wals.back();
  fs::resize_file(wal, fs::file_size(wal) / 2);

  absl::Status refused = OpenStatus();
  EXPECT_EQ(refused.code(), absl::StatusCode::kDataLoss) << refused;
  EXPECT_NE(refused.message().find("WAL"), absl::string_view::npos) << refused;
  EXPECT_NE(refused.message().find("--accept_data_loss"),
            absl::string_view::npos);
  // Refused again: nothing was changed by the first attempt.
  EXPECT_EQ(OpenStatus().code(), absl::StatusCode::kDataLoss);

  ASSERT_TRUE(OpenStatus(/*accept_data_loss=*/true).ok());
  EXPECT_TRUE(store_->GetTransaction("g0").ok());
  EXPECT_FALSE(store_->GetTransaction("g49").ok());
  // Accepted once: later opens are clean.
  store_.reset();
  EXPECT_TRUE(OpenStatus().ok());
}

TEST_F(OpenTest, TruncatedManifestStopsStartUpAndKeepsTheFiles) {
  Fill(50);
  store_.reset();  // Clean close: the data is in SST files now.
  const size_t ssts = FilesEndingWith(".sst").size();
  ASSERT_GT(ssts, 0u);
  fs::path manifest = Manifest();
  fs::resize_file(manifest, fs::file_size(manifest) / 2);

  absl::Status refused = OpenStatus();
  EXPECT_EQ(refused.code(), absl::StatusCode::kDataLoss) << refused;
  EXPECT_NE(refused.message().find("MANIFEST"), absl::string_view::npos)
      << refused;
  EXPECT_EQ(FilesEndingWith(".sst").size(), ssts) << "files were deleted";
}

TEST_F(OpenTest, DirThatHeldAStoreNeverReopensEmpty) {
  Fill(3);
  store_.reset();
  // Everything of RocksDB's gone, our marker left.
  for (const auto& entry : fs::directory_iterator(path_)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("DTMD_", 0) != 0) fs::remove_all(entry.path());
  }
  absl::Status refused = OpenStatus();
  EXPECT_EQ(refused.code(), absl::StatusCode::kDataLoss) << refused;
  EXPECT_NE(refused.message().find("refusing to start empty"),
            absl::string_view::npos)
      << refused;
  ASSERT_TRUE(OpenStatus(/*accept_data_loss=*/true).ok());
  EXPECT_FALSE(store_->GetTransaction("g0").ok());
}

TEST_F(OpenTest, StoreOfTheOldLayoutIsRefused) {
  store_.reset();
  fs::remove_all(path_);
  {
    // Layout 1: trans, branches, due; no format key.
    rocksdb::Options options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, {}},
        {"trans", {}},
        {"branches", {}},
        {"due", {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(
        rocksdb::DB::Open(options, path_, families, &handles, &db).ok());
    ASSERT_TRUE(db->Put({}, handles[1], "g1", "x").ok());
    for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
    delete db;
  }
  absl::Status refused = OpenStatus(/*accept_data_loss=*/true);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_NE(refused.message().find("older dtmd"), absl::string_view::npos)
      << refused;
}

// A really full disk: a tmpfs of a few MiB, filled by another file. Needs
// root (mount); skipped elsewhere, where the injected NoSpace tests cover
// the same paths.
class DiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mount_ = (fs::path(::testing::TempDir()) /
              absl::StrCat("dtmd_full_disk_", getpid()))
                 .string();
    fs::create_directories(mount_);
    if (geteuid() != 0 ||
        mount("tmpfs", mount_.c_str(), "tmpfs", 0, "size=8m") != 0) {
      fs::remove(mount_);
      GTEST_SKIP() << "cannot mount a tmpfs here";
    }
    mounted_ = true;
    options_.path = mount_ + "/data";
  }
  void TearDown() override {
    store_.reset();
    if (mounted_) umount(mount_.c_str());
    fs::remove_all(mount_);
  }

  // Fills the file system with a filler file until it refuses more.
  void FillDisk() {
    FILE* f = fopen((mount_ + "/filler").c_str(), "w");
    ASSERT_NE(f, nullptr);
    const std::string block(4096, 'f');
    while (fwrite(block.data(), 1, block.size(), f) == block.size() &&
           fflush(f) == 0) {
    }
    fclose(f);
  }

  // Creates transactions until one fails; returns that failure.
  absl::Status FillStore() {
    absl::Status failed;
    for (int i = 0; i < 1000 && failed.ok(); ++i) {
      failed = TryCreate(absl::StrCat("fill", i));
    }
    return failed;
  }

  absl::Status TryCreate(const std::string& gid) {
    CreateWaiter waiter;
    BranchRecord branch = Branch("01", "action");
    branch.set_bin_data(std::string(16 << 10, 'p'));
    store_->CreateTransaction(Trans(gid, kStatusSubmitted, 1), {branch},
                              Durability::kSync, waiter.Callback());
    return waiter.Wait().status();
  }

  std::string mount_;
  bool mounted_ = false;
  // Opens the store, creates "before", then fills the disk until a write
  // fails.
  void OpenStoreAndFillTheDisk() {
    absl::StatusOr<std::unique_ptr<RocksDBStore>> opened =
        RocksDBStore::Open(options_);
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(*opened);
    ASSERT_TRUE(TryCreate("before").ok());
    FillDisk();
    EXPECT_EQ(FillStore().code(), absl::StatusCode::kUnavailable);
  }

  RocksDBStoreOptions options_;
  std::unique_ptr<RocksDBStore> store_;
};

TEST_F(DiskFullTest, FullDiskIsUnavailableNotACrashAndResumesWithSpace) {
  ASSERT_NO_FATAL_FAILURE(OpenStoreAndFillTheDisk());
  EXPECT_EQ(store_->WriteHealth().code(), absl::StatusCode::kUnavailable)
      << store_->WriteHealth();
  EXPECT_TRUE(store_->GetTransaction("before").ok()) << "reads go on";

  // Resumes by itself once there is space, without a restart.
  std::filesystem::remove(mount_ + "/filler");
  for (int i = 0; i < 3000 && !store_->WriteHealth().ok(); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(store_->WriteHealth().ok()) << store_->WriteHealth();
  EXPECT_TRUE(TryCreate("after").ok());
}

TEST_F(DiskFullTest, RestartOnAFullDiskFailsCleanlyAndKeepsTheData) {
  ASSERT_NO_FATAL_FAILURE(OpenStoreAndFillTheDisk());
  store_.reset();
  // An error or a store, never an abort.
  absl::StatusOr<std::unique_ptr<RocksDBStore>> opened =
      RocksDBStore::Open(options_);
  if (opened.ok()) {
    EXPECT_TRUE((*opened)->GetTransaction("before").ok());
    opened->reset();
  }
  std::filesystem::remove(mount_ + "/filler");
  opened = RocksDBStore::Open(options_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_TRUE((*opened)->GetTransaction("before").ok());
}

}  // namespace
}  // namespace dtmd::storage
