// HookedStore: a Store for engine and runner tests that forwards to a real
// store and lets a test act on the way: fail updates, run a hook before an
// update is forwarded, or hold back the completion of synced writes (the
// write is applied, so reads and ScanDue see it, but its callback waits as
// if the fsync were slow) until the test releases them.
#ifndef DTMD_SERVER_TEST_STORE_H_
#define DTMD_SERVER_TEST_STORE_H_

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "storage/rocksdb_store.h"
#include "storage/store.h"

namespace dtmd::testing {

// A RocksDBStore in a fresh directory named for the running test (`prefix`
// + test name under the test's temp dir); null (with a test failure) if it
// cannot be opened.
inline std::unique_ptr<storage::RocksDBStore> OpenEmptyStore(
    const std::string& prefix) {
  const std::string path =
      ::testing::TempDir() + "/" + prefix +
      ::testing::UnitTest::GetInstance()->current_test_info()->name();
  EXPECT_EQ(system(("rm -rf '" + path + "'").c_str()), 0);
  storage::RocksDBStoreOptions options;
  options.path = path;
  auto store = storage::RocksDBStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

class HookedStore : public storage::Store {
 public:
  using BranchRecord = storage::v1::BranchRecord;
  using TransRecord = storage::v1::TransRecord;

  explicit HookedStore(storage::Store* inner) : inner_(inner) {}

  std::function<void(const TransRecord&, const std::string&)> before_update;
  std::atomic<bool> fail_updates{false};
  std::atomic<bool> fail_puts{false};

  // While set, the callbacks of kSync writes (only updates, with
  // `updates_only`) are kept until Release().
  void HoldSyncs(bool hold, bool updates_only = false) {
    absl::MutexLock lock(&mu_);
    hold_ = hold;
    hold_updates_only_ = updates_only;
  }
  // Runs the held callbacks (in issue order); returns how many.
  int Release() {
    std::vector<std::function<void()>> held;
    {
      absl::MutexLock lock(&mu_);
      held.swap(held_);
    }
    for (auto& fn : held) fn();
    return static_cast<int>(held.size());
  }
  int held() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(held_.size());
  }
  int synced_updates() const { return synced_updates_.load(); }
  // Creates whose completion has been delivered or held.
  int creates() const { return creates_.load(); }

  void CreateTransaction(TransRecord trans, std::vector<BranchRecord> branches,
                         storage::Durability d,
                         storage::CreateCallback done) override {
    inner_->CreateTransaction(
        std::move(trans), std::move(branches), d,
        [this, d, done = std::move(done)](
            absl::StatusOr<storage::CreateResult> result) mutable {
          ++creates_;
          MaybeHold(
              d, /*update=*/false,
              [done = std::move(done), result = std::move(result)]() mutable {
                done(std::move(result));
              });
        });
  }
  void UpdateTransaction(TransRecord trans, std::string expected,
                         std::vector<BranchRecord> branches,
                         storage::Durability d,
                         storage::StatusCallback done) override {
    if (fail_updates) {
      done(absl::UnavailableError("injected write failure"));
      return;
    }
    if (before_update) before_update(trans, expected);
    if (d == storage::Durability::kSync) ++synced_updates_;
    inner_->UpdateTransaction(
        std::move(trans), std::move(expected), std::move(branches), d,
        [this, d, done = std::move(done)](absl::Status s) mutable {
          MaybeHold(d, /*update=*/true,
                    [done = std::move(done), s]() { done(s); });
        });
  }
  void PutBranches(std::string gid, std::vector<BranchRecord> branches,
                   storage::Durability d,
                   storage::StatusCallback done) override {
    if (fail_puts) {
      done(absl::UnavailableError("injected write failure"));
      return;
    }
    inner_->PutBranches(std::move(gid), std::move(branches), d,
                        std::move(done));
  }
  void AppendBranches(std::string gid, std::string expected,
                      std::vector<BranchRecord> branches, storage::Durability d,
                      storage::StatusCallback done) override {
    inner_->AppendBranches(std::move(gid), std::move(expected),
                           std::move(branches), d, std::move(done));
  }
  absl::StatusOr<TransRecord> GetTransaction(absl::string_view gid) override {
    return inner_->GetTransaction(gid);
  }
  absl::StatusOr<std::vector<BranchRecord>> GetBranches(
      absl::string_view gid) override {
    return inner_->GetBranches(gid);
  }
  absl::StatusOr<storage::TransPage> ListTransactions(
      const storage::TransFilter& filter,
      const std::optional<storage::TransCursor>& after, int limit) override {
    return inner_->ListTransactions(filter, after, limit);
  }
  absl::StatusOr<std::vector<std::string>> ScanDue(int64_t until_ms,
                                                   int limit) override {
    return inner_->ScanDue(until_ms, limit);
  }
  absl::StatusOr<std::vector<storage::FinishedTrans>> ScanFinished(
      int64_t before_ms, const std::optional<storage::FinishedTrans>& after,
      int limit) override {
    return inner_->ScanFinished(before_ms, after, limit);
  }
  void DeleteFinished(std::vector<storage::FinishedTrans> finished,
                      storage::DeleteCallback done) override {
    inner_->DeleteFinished(std::move(finished), std::move(done));
  }
  absl::Status ReclaimSpace() override { return inner_->ReclaimSpace(); }
  void Subscribe(std::string topic, std::string url, std::string remark,
                 storage::StatusCallback done) override {
    inner_->Subscribe(std::move(topic), std::move(url), std::move(remark),
                      std::move(done));
  }
  void Unsubscribe(std::string topic, std::string url,
                   storage::StatusCallback done) override {
    inner_->Unsubscribe(std::move(topic), std::move(url), std::move(done));
  }
  void DeleteTopic(std::string topic, storage::StatusCallback done) override {
    inner_->DeleteTopic(std::move(topic), std::move(done));
  }
  absl::StatusOr<std::vector<storage::Subscriber>> GetTopic(
      absl::string_view topic) override {
    return inner_->GetTopic(topic);
  }
  absl::StatusOr<std::vector<std::string>> ListTopics() override {
    return inner_->ListTopics();
  }
  // Leases: every lease is this process's unless a test says a gid is held
  // by another replica (AcquireLease: ABORTED) or lost (CheckLease:
  // ABORTED). Releases are counted.
  void HoldElsewhere(const std::string& gid, bool held) {
    absl::MutexLock lock(&mu_);
    if (held) {
      elsewhere_.push_back(gid);
    } else {
      elsewhere_.erase(std::remove(elsewhere_.begin(), elsewhere_.end(), gid),
                       elsewhere_.end());
    }
  }
  // The lease of gid runs out now: CheckLease answers ABORTED until an
  // AcquireLease takes it again.
  void LoseLease(const std::string& gid) {
    absl::MutexLock lock(&mu_);
    lost_[gid] = Loss::kLost;
  }
  // The next AcquireLease of gid succeeds, and the lease is lost right
  // after it: CheckLease answers ABORTED from then on.
  void LoseLeaseAfterAcquire(const std::string& gid) {
    absl::MutexLock lock(&mu_);
    lost_[gid] = Loss::kAfterAcquire;
  }
  int releases(const std::string& gid) {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(
        std::count(released_.begin(), released_.end(), gid));
  }
  int acquires() const { return acquires_.load(); }
  absl::Status AcquireLease(absl::string_view gid) override {
    ++acquires_;
    absl::MutexLock lock(&mu_);
    if (std::find(elsewhere_.begin(), elsewhere_.end(), gid) !=
        elsewhere_.end()) {
      return absl::AbortedError("held by replica other");
    }
    if (auto it = lost_.find(std::string(gid)); it != lost_.end()) {
      if (it->second == Loss::kAfterAcquire) {
        it->second = Loss::kLost;
      } else {
        lost_.erase(it);
      }
    }
    return absl::OkStatus();
  }
  absl::Status CheckLease(absl::string_view gid) override {
    absl::MutexLock lock(&mu_);
    auto it = lost_.find(std::string(gid));
    if (it != lost_.end() && it->second == Loss::kLost) {
      return absl::AbortedError("lease lost");
    }
    return absl::OkStatus();
  }
  // LeaseLeftMs answers this when >= 0 (nullopt otherwise).
  std::atomic<int64_t> lease_left_ms{-1};
  std::optional<int64_t> LeaseLeftMs(absl::string_view) override {
    const int64_t left = lease_left_ms.load();
    if (left < 0) return std::nullopt;
    return left;
  }
  void ReleaseLease(absl::string_view gid) override {
    absl::MutexLock lock(&mu_);
    released_.emplace_back(gid);
  }

  void Flush() override { inner_->Flush(); }
  absl::Status WriteHealth() override { return inner_->WriteHealth(); }

 private:
  void MaybeHold(storage::Durability d, bool update, std::function<void()> fn) {
    if (d == storage::Durability::kSync) {
      absl::MutexLock lock(&mu_);
      if (hold_ && (update || !hold_updates_only_)) {
        held_.push_back(std::move(fn));
        return;
      }
    }
    fn();
  }

  storage::Store* const inner_;
  std::atomic<int> synced_updates_{0};
  std::atomic<int> creates_{0};
  absl::Mutex mu_;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_updates_only_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::function<void()>> held_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> acquires_{0};
  std::vector<std::string> elsewhere_ ABSL_GUARDED_BY(mu_);
  enum class Loss { kLost, kAfterAcquire };
  std::map<std::string, Loss> lost_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> released_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dtmd::testing

#endif  // DTMD_SERVER_TEST_STORE_H_
