// StoreHealth: whether RocksDBStore can write, as seen by its writer, its
// syncer and RocksDB's background error handler.
//
// Three states:
//   healthy      writes are attempted.
//   unavailable  the last attempt failed with an error that may pass (disk
//                full, a background flush that failed): writes are still
//                attempted, RocksDB is asked to resume, and the first write
//                or recovery that succeeds makes the store healthy again.
//   fatal        latched for the life of the process: a WAL sync failed
//                (after a failed fsync the kernel may have dropped the
//                unsynced pages, so nothing written since can be trusted), or
//                RocksDB reports an error it cannot resume from. Every later
//                write fails; the process must restart and recover from disk.
//
// Thread-safe.
#ifndef DTMD_STORAGE_STORE_HEALTH_H_
#define DTMD_STORAGE_STORE_HEALTH_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/listener.h"

namespace dtmd::storage {

class StoreHealth {
 public:
  // OK; UNAVAILABLE with the reason; or INTERNAL with the reason when fatal.
  absl::Status Get() const;
  // What a write that cannot be attempted gets: OK unless fatal, then
  // UNAVAILABLE with the reason (the caller may retry after the restart).
  absl::Status FatalWriteError() const;
  bool unavailable() const;

  // Keeps the first reason: later errors are usually consequences of it.
  void SetUnavailable(const absl::Status& reason);
  void SetFatal(const absl::Status& reason);
  // Back to healthy unless fatal. Returns true if it was unavailable.
  bool ClearUnavailable();

 private:
  mutable absl::Mutex mu_;
  absl::Status unavailable_ ABSL_GUARDED_BY(mu_);
  absl::Status fatal_ ABSL_GUARDED_BY(mu_);
};

// Feeds RocksDB's background errors and recoveries into a StoreHealth.
// Errors that stop writes (hard and worse) count; soft ones (a compaction
// that failed while writes go on) do not.
std::shared_ptr<rocksdb::EventListener> NewStoreHealthListener(
    std::shared_ptr<StoreHealth> health);

// Whether a RocksDB error means the DB will not take writes again in this
// process (RocksDB's fatal and unrecoverable severities, corruption).
bool IsFatalRocksError(const rocksdb::Status& s);

}  // namespace dtmd::storage

#endif  // DTMD_STORAGE_STORE_HEALTH_H_
