// RocksDBStore: the embedded Store, one RocksDB per dtmd process.
//
// Column families and key layout:
//   trans     gid                                   -> TransRecord
//   branches  gid '\0' position (4 bytes, big-endian) -> BranchRecord
//   due       next_cron_time_ms (8 bytes, big-endian) gid -> ""  (unfinished
//   only)
// Gids are printable ASCII, so '\0' cannot occur inside one and a branch
// prefix scan over gid '\0' finds exactly that transaction's branches.
//
// Writes are applied by one writer thread, in issue order. The writer takes
// every write queued since its last pass, evaluates each one's condition
// against the current state, and puts the survivors into one WriteBatch,
// written without sync. Because only the writer writes, a condition checked
// by the writer cannot be raced. kNoSync callbacks run right after that write.
// kSync writes go on to a syncer thread, which makes everything written so
// far durable with one WAL fsync (group commit: one fsync for every kSync
// write that arrived while the previous fsync ran) and then runs their
// callbacks. So unsynced writes never wait behind an fsync.
#ifndef DTMD_STORAGE_ROCKSDB_STORE_H_
#define DTMD_STORAGE_ROCKSDB_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "storage/store.h"

namespace dtmd::storage {

struct RocksDBStoreOptions {
  std::string path;                 // directory; created if missing.
  int max_writes_per_batch = 4096;  // cap on one group-commit batch.
  int64_t block_cache_mib = 64;
};

class RocksDBStore : public Store {
 public:
  // Opens (creating if needed) the store at options.path. INTERNAL or
  // UNAVAILABLE (with RocksDB's message) if it cannot be opened, e.g. when
  // another process holds the lock.
  static absl::StatusOr<std::unique_ptr<RocksDBStore>> Open(
      const RocksDBStoreOptions& options);

  // Completes every queued write, then closes the database.
  ~RocksDBStore() override;

  RocksDBStore(const RocksDBStore&) = delete;
  RocksDBStore& operator=(const RocksDBStore&) = delete;

  void CreateTransaction(TransRecord trans, std::vector<BranchRecord> branches,
                         Durability durability, CreateCallback done) override;
  void UpdateTransaction(TransRecord trans, std::string expected_status,
                         std::vector<BranchRecord> branches,
                         Durability durability, StatusCallback done) override;
  void PutBranches(std::string gid, std::vector<BranchRecord> branches,
                   Durability durability, StatusCallback done) override;
  void AppendBranches(std::string gid, std::string expected_status,
                      std::vector<BranchRecord> branches, Durability durability,
                      StatusCallback done) override;
  absl::StatusOr<TransRecord> GetTransaction(absl::string_view gid) override;
  absl::StatusOr<std::vector<BranchRecord>> GetBranches(
      absl::string_view gid) override;
  absl::StatusOr<std::vector<std::string>> ScanDue(int64_t until_ms,
                                                   int limit) override;
  void Flush() override;

  // Waits for queued writes, then compacts every column family into its
  // final levels, as a store that has run for a long time would be. Blocks;
  // for tools that prepare a store (benchmarks), not for the serving path.
  absl::Status CompactAll();

  // Counters for metrics and tests.
  struct Stats {
    int64_t write_batches = 0;   // RocksDB writes made by the writer.
    int64_t synced_batches = 0;  // WAL fsyncs made by the syncer.
    int64_t operations = 0;      // store operations applied.
  };
  Stats GetStats() const;

 private:
  class Impl;
  explicit RocksDBStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtmd::storage

#endif  // DTMD_STORAGE_ROCKSDB_STORE_H_
