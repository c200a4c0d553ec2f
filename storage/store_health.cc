#include "storage/store_health.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "storage/rocksdb_support.h"

namespace dtmd::storage {
namespace {

class StoreHealthListener : public rocksdb::EventListener {
 public:
  explicit StoreHealthListener(std::shared_ptr<StoreHealth> health)
      : health_(std::move(health)) {}

  const char* Name() const override { return "DtmdStoreHealthListener"; }

  // Runs on RocksDB's threads, possibly under its DB mutex: it only records.
  void OnBackgroundError(rocksdb::BackgroundErrorReason /*reason*/,
                         rocksdb::Status* bg_error) override {
    if (bg_error == nullptr || bg_error->ok()) return;
    if (IsFatalRocksError(*bg_error)) {
      health_->SetFatal(FromRocks(*bg_error, "RocksDB background error"));
    } else if (bg_error->severity() >= rocksdb::Status::Severity::kHardError) {
      health_->SetUnavailable(FromRocks(*bg_error, "RocksDB stopped writes"));
    }
  }

  // RocksDB's own recovery from a full disk waits until the free space
  // exceeds the size of all write buffers (hundreds of MiB with the default
  // options), and while it waits DB::Resume() answers Busy. The store's
  // writer calls Resume() itself instead (see MaybeResume).
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason /*reason*/,
                            rocksdb::Status /*bg_error*/,
                            bool* auto_recovery) override {
    if (auto_recovery != nullptr) *auto_recovery = false;
  }

  void OnErrorRecoveryEnd(
      const rocksdb::BackgroundErrorRecoveryInfo& info) override {
    if (!info.new_bg_error.ok()) return;
    if (health_->ClearUnavailable()) {
      LOG(WARNING) << "RocksDBStore: RocksDB recovered, writes resume";
    }
  }

 private:
  const std::shared_ptr<StoreHealth> health_;
};

}  // namespace

absl::Status StoreHealth::Get() const {
  absl::MutexLock lock(&mu_);
  if (!fatal_.ok()) return absl::InternalError(fatal_.message());
  return unavailable_;
}

absl::Status StoreHealth::FatalWriteError() const {
  absl::MutexLock lock(&mu_);
  if (fatal_.ok()) return absl::OkStatus();
  return absl::UnavailableError(fatal_.message());
}

bool StoreHealth::unavailable() const {
  absl::MutexLock lock(&mu_);
  return !unavailable_.ok();
}

void StoreHealth::SetUnavailable(const absl::Status& reason) {
  absl::MutexLock lock(&mu_);
  if (!unavailable_.ok()) return;
  unavailable_ = absl::UnavailableError(reason.message());
  LOG(ERROR) << "RocksDBStore: cannot write: " << reason.message();
}

void StoreHealth::SetFatal(const absl::Status& reason) {
  absl::MutexLock lock(&mu_);
  if (!fatal_.ok()) return;
  fatal_ = absl::InternalError(absl::StrCat(
      reason.message(), " (writes stopped; restart to recover from disk)"));
  LOG(ERROR) << "RocksDBStore: " << fatal_.message();
}

bool StoreHealth::ClearUnavailable() {
  absl::MutexLock lock(&mu_);
  const bool was = !unavailable_.ok();
  unavailable_ = absl::OkStatus();
  return was;
}

std::shared_ptr<rocksdb::EventListener> NewStoreHealthListener(
    std::shared_ptr<StoreHealth> health) {
  return std::make_shared<StoreHealthListener>(std::move(health));
}

bool IsFatalRocksError(const rocksdb::Status& s) {
  return s.IsCorruption() ||
         s.severity() >= rocksdb::Status::Severity::kFatalError;
}

}  // namespace dtmd::storage
