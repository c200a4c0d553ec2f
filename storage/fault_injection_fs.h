// FaultInjectionFileSystem: a rocksdb::FileSystem that forwards to another
// one and, on command, fails writes, fails WAL syncs or holds WAL syncs back.
//
// It is how the store's fault handling is tested through the interface
// RocksDB itself uses (as leveldb's fault-injecting Env), and what dtmd's
// test-only flag --testing_fail_wal_sync_after arms in the real binary. With
// no fault armed it only forwards, at the cost of one virtual call per file
// operation.
//
// Thread-safe: commands may be given from any thread while RocksDB uses the
// file system.
#ifndef DTMD_STORAGE_FAULT_INJECTION_FS_H_
#define DTMD_STORAGE_FAULT_INJECTION_FS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rocksdb/file_system.h"

namespace dtmd::storage {

class FaultInjectionFileSystem : public rocksdb::FileSystemWrapper {
 public:
  // What Append does to every writable file while armed.
  enum class WriteFault {
    kNone,
    kNoSpace,  // ENOSPC, as on a full disk (RocksDB treats it as retryable).
    kIOError,  // A plain I/O error (e.g. EIO, EMFILE).
  };

  explicit FaultInjectionFileSystem(std::shared_ptr<rocksdb::FileSystem> base =
                                        rocksdb::FileSystem::Default());

  static const char* kClassName() { return "DtmdFaultInjectionFileSystem"; }
  const char* Name() const override { return kClassName(); }

  // WAL syncs after the first `n` successful ones fail with an I/O error, for
  // ever; n < 0 disarms.
  void FailWalSyncAfter(int64_t n);
  void SetWriteFault(WriteFault fault);

  // While held, every WAL sync blocks (before reaching the disk) until
  // ReleaseWalSyncs. Lets a test see what happens while an fsync is slow.
  void HoldWalSyncs();
  void ReleaseWalSyncs();
  // Waits until at least `count` WAL syncs are blocked by HoldWalSyncs; false
  // on timeout.
  bool AwaitHeldWalSyncs(int count, absl::Duration timeout);

  // WAL syncs that reached the underlying file system and succeeded.
  int64_t wal_syncs() const;

  rocksdb::IOStatus NewWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(
      const std::string& name, const std::string& old_name,
      const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;

 private:
  class File;

  // Wraps a file just opened by the base file system.
  rocksdb::IOStatus Wrap(const std::string& name, rocksdb::IOStatus opened,
                         std::unique_ptr<rocksdb::FSWritableFile>* result);
  // Called by File before each Append / WAL sync: the error to return, or OK
  // to go on. BeforeWalSync blocks while syncs are held.
  rocksdb::IOStatus BeforeAppend();
  rocksdb::IOStatus BeforeWalSync();
  void AfterWalSync(const rocksdb::IOStatus& status);

  mutable absl::Mutex mu_;
  WriteFault write_fault_ ABSL_GUARDED_BY(mu_) = WriteFault::kNone;
  int64_t fail_wal_sync_after_ ABSL_GUARDED_BY(mu_) = -1;
  bool hold_wal_syncs_ ABSL_GUARDED_BY(mu_) = false;
  int held_wal_syncs_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t wal_syncs_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dtmd::storage

#endif  // DTMD_STORAGE_FAULT_INJECTION_FS_H_
