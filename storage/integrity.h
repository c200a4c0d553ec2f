// What lets RocksDBStore notice, at open, that data it acknowledged is gone,
// instead of starting from what RocksDB happens to recover (RocksDB's own
// recovery accepts a WAL or MANIFEST cut short as a torn tail, and a
// MANIFEST that lost its edits even starts an empty database and deletes
// the files it no longer knows).
//
// Three witnesses, kept beside the RocksDB files in the data dir:
//   DTMD_STORE   written once when the store is created: a dir that has it
//                held a store and must never be reopened empty.
//   DTMD_SYNCED  the highest sequence number a WAL sync has made durable,
//                rewritten in place after every sync (without a sync of its
//                own, so after a power loss it can only be behind, never
//                ahead of, what the WAL holds).
//   the MANIFEST RocksDB's own, checked to end on a whole record.
#ifndef DTMD_STORAGE_INTEGRITY_H_
#define DTMD_STORAGE_INTEGRITY_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dtmd::storage {

inline constexpr char kMarkerFile[] = "DTMD_STORE";
inline constexpr char kSyncedFile[] = "DTMD_SYNCED";
inline constexpr char kLockFile[] = "DTMD_LOCK";

// An exclusive lock on dir/DTMD_LOCK (flock), held until destroyed: taken
// before anything reads the RocksDB files, so that the checks at open never
// look at a store another process (or another store object) is writing.
class DirLock {
 public:
  // UNAVAILABLE if another holder has it.
  static absl::StatusOr<DirLock> Acquire(const std::string& dir);
  DirLock(DirLock&& other) noexcept;
  DirLock& operator=(DirLock&&) = delete;
  ~DirLock();

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

// Whether dir/name exists (errors other than "missing" count as existing,
// so that an unreadable dir is never taken for an empty one).
bool FileExists(const std::string& dir, const std::string& name);

// Writes dir/DTMD_STORE and syncs it and the dir.
absl::Status WriteMarker(const std::string& dir);

// DATA_LOSS naming the file if the MANIFEST that dir/CURRENT names ends
// inside a record (cut short), or if CURRENT names no readable MANIFEST.
absl::Status CheckManifestComplete(const std::string& dir);

// The sequence number recorded in dir/DTMD_SYNCED; 0 if there is none.
absl::StatusOr<uint64_t> ReadSyncedSequence(const std::string& dir);

// dir/DTMD_SYNCED, open for in-place updates. Not thread-safe: one writer.
class SyncedSequenceFile {
 public:
  static absl::StatusOr<SyncedSequenceFile> Open(const std::string& dir);
  SyncedSequenceFile(SyncedSequenceFile&& other) noexcept;
  SyncedSequenceFile& operator=(SyncedSequenceFile&&) = delete;
  ~SyncedSequenceFile();

  // Overwrites the recorded number (one 16-byte pwrite, no fsync).
  absl::Status Record(uint64_t sequence);

 private:
  explicit SyncedSequenceFile(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace dtmd::storage

#endif  // DTMD_STORAGE_INTEGRITY_H_
