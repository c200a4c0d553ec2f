// RocksDBStore: the embedded Store, one RocksDB per dtmd process.
//
// Column families and key layout (format version 2):
//   default        "dtmd.format" -> "2"  (refuses other layouts at open)
//   trans          gid -> TransRecord
//   branch_defs    gid '\0' position (4 bytes, big-endian) -> BranchDefinition
//                  (with the branch's state at creation)
//   branch_states  same key -> BranchState (once the branch has changed)
//   due            next_cron_time_ms (8 bytes, big-endian) gid -> ""
//                  (unfinished transactions only)
//   topics         topic name -> TopicRecord (its subscribers, in order;
//                  added to format 2 later: created at open when missing)
//   finished       finish time (8 bytes, big-endian, as due) gid -> ""
//                  (final transactions only, written in the batch that
//                  makes the record final; added to format 2 later: a
//                  store without it is indexed once at open, see
//                  "dtmd.finished_index" in default)
// A branch is split in two records so that an answer rewrites its small
// state, never its payload (a new branch is one key: its definition carries
// its initial state); a saga step's action and compensation share one
// payload (stored in the first, referenced by the second). Gids are
// printable ASCII, so '\0' cannot occur inside one and a branch prefix scan
// over gid '\0' finds exactly that transaction's branches.
//
// Writes are applied by one writer thread, in issue order, from a bounded
// queue (a write that does not fit is answered RESOURCE_EXHAUSTED, in
// order, without being queued). The writer takes every write queued since
// its last pass, evaluates each one's condition against the current state,
// and puts the survivors into one WriteBatch, written without sync. Because
// only the writer writes, a condition checked by the writer cannot be
// raced (later writes of a group see the records and branch counts staged
// by earlier ones through a small overlay, not an indexed batch). kNoSync
// callbacks run right after that write. kSync writes (failed ones too, to keep
// the callback order) go on to a syncer thread, which makes everything written
// so far durable with one WAL fsync (group commit) and then runs their
// callbacks. So unsynced writes never wait behind an fsync.
//
// Faults (see store_health.h): a write that fails for a reason that may
// pass (disk full) is answered UNAVAILABLE, WriteHealth() says so, and the
// store asks RocksDB to resume until it does. A failed WAL sync, or an error
// RocksDB cannot resume from, is latched: every later write fails and
// WriteHealth() returns INTERNAL, for the process to exit and recover from
// disk. RocksDB's info log goes to glog, not into the data dir.
//
// Open refuses data it would misread or silently lose (see integrity.h): a
// damaged MANIFEST or WAL, a dir that held a store whose RocksDB files are
// gone, a store of another layout. `accept_data_loss` opens the first two
// anyway with what RocksDB can recover.
#ifndef DTMD_STORAGE_ROCKSDB_STORE_H_
#define DTMD_STORAGE_ROCKSDB_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "storage/store.h"

namespace rocksdb {
class FileSystem;
}

namespace dtmd::storage {

// Told about the writer's work, for metrics. Called on the writer and syncer
// threads, so an implementation must be cheap and must not block or call
// back into the store.
class WriteObserver {
 public:
  virtual ~WriteObserver() = default;
  // One group-commit batch written (without sync): `ops` store writes,
  // `bytes` of RocksDB batch data, in `seconds`.
  virtual void OnBatchWritten(int64_t ops, int64_t bytes, double seconds) = 0;
  // One WAL fsync, covering every batch written before it.
  virtual void OnWalSynced(double seconds) = 0;
};

struct RocksDBStoreOptions {
  std::string path;                 // directory; created if missing.
  int max_writes_per_batch = 4096;  // cap on one group-commit batch.
  int64_t block_cache_mib = 64;
  // Bounds of the write queue (writes issued, not yet taken by the writer).
  int64_t max_queued_writes = 100000;
  int64_t max_queued_bytes = int64_t{256} << 20;
  // Open a store whose WAL or MANIFEST is damaged, or whose files are gone,
  // with whatever RocksDB recovers (possibly nothing), instead of refusing.
  bool accept_data_loss = false;
  // The file system RocksDB uses; null for the default one. Tests pass a
  // FaultInjectionFileSystem.
  std::shared_ptr<rocksdb::FileSystem> file_system;
  // Not owned; must outlive the store. Null: nobody is told.
  WriteObserver* observer = nullptr;
};

class RocksDBStore : public Store {
 public:
  // Opens (creating if needed) the store at options.path. UNAVAILABLE (with
  // RocksDB's message) if it cannot be opened now, e.g. when another process
  // holds the lock or the disk is full; DATA_LOSS naming the damage if data
  // it acknowledged is gone (unless options.accept_data_loss);
  // FAILED_PRECONDITION for a store of another layout; INTERNAL otherwise.
  static absl::StatusOr<std::unique_ptr<RocksDBStore>> Open(
      const RocksDBStoreOptions& options);

  // Completes every queued write, then closes the database.
  ~RocksDBStore() override;

  RocksDBStore(const RocksDBStore&) = delete;
  RocksDBStore& operator=(const RocksDBStore&) = delete;

  void CreateTransaction(TransRecord trans, std::vector<BranchRecord> branches,
                         Durability durability, CreateCallback done) override;
  // Of `branches` only the state (status, finish time, last error, call
  // count) is written: definitions never change after creation.
  void UpdateTransaction(TransRecord trans, std::string expected_status,
                         std::vector<BranchRecord> branches,
                         Durability durability, StatusCallback done) override;
  // As UpdateTransaction: only the branches' state is written.
  void PutBranches(std::string gid, std::vector<BranchRecord> branches,
                   Durability durability, StatusCallback done) override;
  void AppendBranches(std::string gid, std::string expected_status,
                      std::vector<BranchRecord> branches, Durability durability,
                      StatusCallback done) override;
  absl::StatusOr<TransRecord> GetTransaction(absl::string_view gid) override;
  absl::StatusOr<std::vector<BranchRecord>> GetBranches(
      absl::string_view gid) override;
  // Reads the trans family in gid order (from gid_prefix on, when set) and
  // keeps the `limit` + 1 newest matches in a heap: O(records read) time,
  // O(limit) memory. There is no index by creation time.
  absl::StatusOr<TransPage> ListTransactions(
      const TransFilter& filter, const std::optional<TransCursor>& after,
      int limit) override;
  absl::StatusOr<std::vector<std::string>> ScanDue(int64_t until_ms,
                                                   int limit) override;
  // Reads the finished family only, from `after` (or its start) up to
  // before_ms.
  absl::StatusOr<std::vector<FinishedTrans>> ScanFinished(
      int64_t before_ms, const std::optional<FinishedTrans>& after,
      int limit) override;
  // One write of the writer (kNoSync): per transaction a point read of its
  // record and of its last branch key, then point deletes.
  void DeleteFinished(std::vector<FinishedTrans> finished,
                      DeleteCallback done) override;
  // Compacts the trans, branch and finished families (not exclusively:
  // RocksDB's own compactions go on), so that the deletions' tombstones
  // meet the records they delete and both are dropped.
  absl::Status ReclaimSpace() override;
  void Subscribe(std::string topic, std::string url, std::string remark,
                 StatusCallback done) override;
  void Unsubscribe(std::string topic, std::string url,
                   StatusCallback done) override;
  void DeleteTopic(std::string topic, StatusCallback done) override;
  absl::StatusOr<std::vector<Subscriber>> GetTopic(
      absl::string_view topic) override;
  absl::StatusOr<std::vector<std::string>> ListTopics() override;
  void Flush() override;
  absl::Status WriteHealth() override;

  // Waits for queued writes, then compacts every column family into its
  // final levels, as a store that has run for a long time would be. Blocks;
  // for tools that prepare a store (benchmarks), not for the serving path.
  absl::Status CompactAll();

  // Counters for metrics and tests.
  struct Stats {
    int64_t write_batches = 0;   // RocksDB writes made by the writer.
    int64_t synced_batches = 0;  // WAL fsyncs made by the syncer.
    int64_t operations = 0;      // store operations applied.
    // Final records indexed by the one-time backfill at this open (a store
    // written before the finished family existed); 0 otherwise.
    int64_t backfilled = 0;
  };
  Stats GetStats() const;

 private:
  class Impl;
  explicit RocksDBStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtmd::storage

#endif  // DTMD_STORAGE_ROCKSDB_STORE_H_
