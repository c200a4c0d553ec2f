#include "storage/fault_injection_fs.h"

#include <utility>

#include "absl/strings/match.h"

namespace dtmd::storage {

// A writable file whose Append and (for WAL files) Sync/Fsync consult the
// file system's armed faults first.
class FaultInjectionFileSystem::File
    : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  File(FaultInjectionFileSystem* fs, bool is_wal,
       std::unique_ptr<rocksdb::FSWritableFile> base)
      : FSWritableFileOwnerWrapper(std::move(base)), fs_(fs), is_wal_(is_wal) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = fs_->BeforeAppend();
    return s.ok() ? target()->Append(data, options, dbg) : s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = fs_->BeforeAppend();
    return s.ok() ? target()->Append(data, options, info, dbg) : s;
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                         rocksdb::IODebugContext* dbg) override {
    return SyncWith([&] { return target()->Sync(options, dbg); });
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    return SyncWith([&] { return target()->Fsync(options, dbg); });
  }

 private:
  template <typename SyncFn>
  rocksdb::IOStatus SyncWith(SyncFn sync) {
    if (!is_wal_) return sync();
    rocksdb::IOStatus s = fs_->BeforeWalSync();
    if (s.ok()) s = sync();
    fs_->AfterWalSync(s);
    return s;
  }

  FaultInjectionFileSystem* const fs_;
  const bool is_wal_;
};

FaultInjectionFileSystem::FaultInjectionFileSystem(
    std::shared_ptr<rocksdb::FileSystem> base)
    : FileSystemWrapper(std::move(base)) {}

void FaultInjectionFileSystem::FailWalSyncAfter(int64_t n) {
  absl::MutexLock lock(&mu_);
  fail_wal_sync_after_ = n;
}

void FaultInjectionFileSystem::SetWriteFault(WriteFault fault) {
  absl::MutexLock lock(&mu_);
  write_fault_ = fault;
}

void FaultInjectionFileSystem::HoldWalSyncs() {
  absl::MutexLock lock(&mu_);
  hold_wal_syncs_ = true;
}

void FaultInjectionFileSystem::ReleaseWalSyncs() {
  absl::MutexLock lock(&mu_);
  hold_wal_syncs_ = false;
}

bool FaultInjectionFileSystem::AwaitHeldWalSyncs(int count,
                                                 absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto held = [this, count]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return held_wal_syncs_ >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&held), timeout);
}

int64_t FaultInjectionFileSystem::wal_syncs() const {
  absl::MutexLock lock(&mu_);
  return wal_syncs_;
}

rocksdb::IOStatus FaultInjectionFileSystem::BeforeAppend() {
  absl::MutexLock lock(&mu_);
  switch (write_fault_) {
    case WriteFault::kNone:
      return rocksdb::IOStatus::OK();
    case WriteFault::kNoSpace: {
      rocksdb::IOStatus s =
          rocksdb::IOStatus::NoSpace("injected: No space left on device");
      s.SetRetryable(true);
      return s;
    }
    case WriteFault::kIOError:
      return rocksdb::IOStatus::IOError("injected: write failed");
  }
  return rocksdb::IOStatus::OK();
}

rocksdb::IOStatus FaultInjectionFileSystem::BeforeWalSync() {
  absl::MutexLock lock(&mu_);
  if (hold_wal_syncs_) {
    ++held_wal_syncs_;
    auto released = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return !hold_wal_syncs_;
    };
    mu_.Await(absl::Condition(&released));
    --held_wal_syncs_;
  }
  if (fail_wal_sync_after_ >= 0 && wal_syncs_ >= fail_wal_sync_after_) {
    return rocksdb::IOStatus::IOError("injected: WAL fsync failed");
  }
  return rocksdb::IOStatus::OK();
}

void FaultInjectionFileSystem::AfterWalSync(const rocksdb::IOStatus& status) {
  if (!status.ok()) return;
  absl::MutexLock lock(&mu_);
  ++wal_syncs_;
}

rocksdb::IOStatus FaultInjectionFileSystem::Wrap(
    const std::string& name, rocksdb::IOStatus opened,
    std::unique_ptr<rocksdb::FSWritableFile>* result) {
  if (!opened.ok()) return opened;
  // RocksDB names its write-ahead logs NNNNNN.log.
  const bool is_wal = absl::EndsWith(name, ".log");
  *result = std::make_unique<File>(this, is_wal, std::move(*result));
  return opened;
}

rocksdb::IOStatus FaultInjectionFileSystem::NewWritableFile(
    const std::string& name, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result,
    rocksdb::IODebugContext* dbg) {
  return Wrap(name, target()->NewWritableFile(name, options, result, dbg),
              result);
}

rocksdb::IOStatus FaultInjectionFileSystem::ReopenWritableFile(
    const std::string& name, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result,
    rocksdb::IODebugContext* dbg) {
  return Wrap(name, target()->ReopenWritableFile(name, options, result, dbg),
              result);
}

rocksdb::IOStatus FaultInjectionFileSystem::ReuseWritableFile(
    const std::string& name, const std::string& old_name,
    const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result,
    rocksdb::IODebugContext* dbg) {
  return Wrap(name,
              target()->ReuseWritableFile(name, old_name, options, result, dbg),
              result);
}

}  // namespace dtmd::storage
