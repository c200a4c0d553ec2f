// Helpers shared by the RocksDBStore tests: callback waiters, record
// builders and a fixture with a fresh store directory per test.
#ifndef DTMD_STORAGE_STORE_TEST_UTIL_H_
#define DTMD_STORAGE_STORE_TEST_UTIL_H_

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "storage/rocksdb_store.h"

namespace dtmd::storage {

// Waits for one write's callback and keeps its result.
template <typename T>
class Waiter {
 public:
  std::function<void(T)> Callback() {
    return [this](T result) {
      result_ = std::move(result);
      done_.Notify();
    };
  }
  T Wait() {
    EXPECT_TRUE(done_.WaitForNotificationWithTimeout(absl::Seconds(30)));
    return result_;
  }
  bool HasRun() const { return done_.HasBeenNotified(); }

 private:
  absl::Notification done_;
  T result_ = absl::UnknownError("callback not run");
};

using StatusWaiter = Waiter<absl::Status>;
using CreateWaiter = Waiter<absl::StatusOr<CreateResult>>;

inline TransRecord Trans(const std::string& gid, const std::string& status,
                         int64_t next_cron_time_ms) {
  TransRecord trans;
  trans.set_gid(gid);
  trans.set_trans_type("saga");
  trans.set_status(status);
  trans.set_next_cron_time_ms(next_cron_time_ms);
  return trans;
}

inline BranchRecord Branch(const std::string& branch_id,
                           const std::string& op) {
  BranchRecord branch;
  branch.set_branch_id(branch_id);
  branch.set_op(op);
  branch.set_status("prepared");
  return branch;
}

// A fresh directory per test (removed afterwards) and a store opened on it
// with `options_` (path filled in).
class StoreTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* info =
        ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = (std::filesystem::path(::testing::TempDir()) /
             absl::StrCat("rocksdb_store_test_", info->test_suite_name(), "_",
                          info->name(), "_", getpid()))
                .string();
    std::filesystem::remove_all(path_);
    options_.path = path_;
    Reopen();
  }

  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(path_);
  }

  void Reopen() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<RocksDBStore>> store =
        RocksDBStore::Open(options_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // Opens the store at path_ with `options_` and accept_data_loss (store_
  // must be closed first); on success the store becomes store_.
  absl::Status OpenStatus(bool accept_data_loss = false) {
    RocksDBStoreOptions options = options_;
    options.accept_data_loss = accept_data_loss;
    absl::StatusOr<std::unique_ptr<RocksDBStore>> store =
        RocksDBStore::Open(options);
    if (store.ok()) store_ = std::move(*store);
    return store.status();
  }

  absl::StatusOr<CreateResult> Create(TransRecord trans,
                                      std::vector<BranchRecord> branches = {},
                                      Durability d = Durability::kSync) {
    CreateWaiter waiter;
    store_->CreateTransaction(std::move(trans), std::move(branches), d,
                              waiter.Callback());
    return waiter.Wait();
  }

  absl::Status Update(TransRecord trans, const std::string& expected,
                      std::vector<BranchRecord> branches = {},
                      Durability d = Durability::kNoSync) {
    StatusWaiter waiter;
    store_->UpdateTransaction(std::move(trans), expected, std::move(branches),
                              d, waiter.Callback());
    return waiter.Wait();
  }

  // Holds the writer inside a callback until the returned notification is
  // notified, so that the writes issued meanwhile form one group.
  std::unique_ptr<absl::Notification> PauseWriter() {
    auto release = std::make_unique<absl::Notification>();
    absl::Notification paused;
    store_->AppendBranches("pause", kStatusPrepared, {}, Durability::kNoSync,
                           [&paused, gate = release.get()](absl::Status) {
                             paused.Notify();
                             gate->WaitForNotification();
                           });
    paused.WaitForNotification();
    return release;
  }

  std::vector<std::string> Due(int64_t until_ms, int limit = 100) {
    absl::StatusOr<std::vector<std::string>> gids =
        store_->ScanDue(until_ms, limit);
    EXPECT_TRUE(gids.ok()) << gids.status();
    return gids.ok() ? *gids : std::vector<std::string>{};
  }

  std::string path_;
  RocksDBStoreOptions options_;
  std::unique_ptr<RocksDBStore> store_;
};

}  // namespace dtmd::storage

#endif  // DTMD_STORAGE_STORE_TEST_UTIL_H_
