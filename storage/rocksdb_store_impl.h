// RocksDBStore::Impl: the DB handles, the bounded write queue, the writer and
// syncer threads and the write-health state. Private to storage/; the
// methods are defined in rocksdb_store_writer.cc (threads, group commit,
// faults) and rocksdb_store_stage.cc (what each operation writes).
#ifndef DTMD_STORAGE_ROCKSDB_STORE_IMPL_H_
#define DTMD_STORAGE_ROCKSDB_STORE_IMPL_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "storage/integrity.h"
#include "storage/rocksdb_store.h"
#include "storage/store_health.h"

namespace dtmd::storage {

// The column families, in the order they are opened.
struct Families {
  rocksdb::ColumnFamilyHandle* meta;           // default: format version.
  rocksdb::ColumnFamilyHandle* trans;          // gid -> TransRecord.
  rocksdb::ColumnFamilyHandle* branch_defs;    // branch key -> definition.
  rocksdb::ColumnFamilyHandle* branch_states;  // branch key -> state.
  rocksdb::ColumnFamilyHandle* due;            // due key -> "".
  rocksdb::ColumnFamilyHandle* topics;         // topic -> TopicRecord.
  rocksdb::ColumnFamilyHandle* finished;       // finished key -> "".
};

// The families of `handles`, in the order they are opened.
inline Families FamiliesOf(
    const std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
  return {handles.at(0), handles.at(1), handles.at(2), handles.at(3),
          handles.at(4), handles.at(5), handles.at(6)};
}

// Indexes every final record of the trans family in the finished family
// (rocksdb_store_retention.cc): once, for a store written before that
// family existed. Returns how many records it indexed.
absl::StatusOr<int64_t> BackfillFinishedIndex(rocksdb::DB* db,
                                              const Families& cfs);

// The writes of one group, staged in a plain WriteBatch, and what later ops
// of the same group must see of them: the transaction records written (by
// gid; deleted ones as deleted), how many branches each gid gained, and the
// topic records written or deleted. (An indexed batch would serve too, but
// sorting every key of every group into an index cost about 8% of dtmd's CPU in
// the saga benchmarks.) Writer-thread confined.
class GroupOverlay {
 public:
  rocksdb::WriteBatch* batch() { return &batch_; }
  void Clear() {
    batch_.Clear();
    trans_.clear();
    deleted_trans_.clear();
    cleared_branches_.clear();
    new_branches_.clear();
    topics_.clear();
  }
  // The serialized record staged for gid in this group, or nullptr.
  const std::string* Trans(absl::string_view gid) const {
    auto it = trans_.find(gid);
    return it == trans_.end() ? nullptr : &it->second;
  }
  void PutTrans(absl::string_view gid, std::string value) {
    deleted_trans_.erase(gid);
    trans_[gid] = std::move(value);
  }
  // Whether this group deleted gid's record (and wrote none since).
  bool TransDeleted(absl::string_view gid) const {
    return deleted_trans_.contains(gid);
  }
  // Also deletes the stored branches: branches of gid created later in the
  // group count from position 0.
  void DeleteTrans(absl::string_view gid) {
    trans_.erase(gid);
    new_branches_.erase(gid);
    deleted_trans_.insert(std::string(gid));
    cleared_branches_.insert(std::string(gid));
  }
  bool BranchesCleared(absl::string_view gid) const {
    return cleared_branches_.contains(gid);
  }
  // Branches created for gid in this group.
  int32_t NewBranches(absl::string_view gid) const {
    auto it = new_branches_.find(gid);
    return it == new_branches_.end() ? 0 : it->second;
  }
  void AddNewBranch(absl::string_view gid) { ++new_branches_[gid]; }
  // The topic as staged in this group: nullptr if the group did not touch
  // it; a null optional if the group deleted it.
  const std::optional<std::string>* Topic(absl::string_view topic) const {
    auto it = topics_.find(topic);
    return it == topics_.end() ? nullptr : &it->second;
  }
  void PutTopic(absl::string_view topic, std::optional<std::string> value) {
    topics_[topic] = std::move(value);
  }

 private:
  rocksdb::WriteBatch batch_;
  absl::flat_hash_map<std::string, std::string> trans_;
  absl::flat_hash_set<std::string> deleted_trans_;
  absl::flat_hash_set<std::string> cleared_branches_;
  absl::flat_hash_map<std::string, int32_t> new_branches_;
  absl::flat_hash_map<std::string, std::optional<std::string>> topics_;
};

// Reads gid's record, seeing `overlay` (the group's pending writes) when not
// null.
absl::StatusOr<TransRecord> ReadTrans(rocksdb::DB* db, const Families& cfs,
                                      absl::string_view gid,
                                      const GroupOverlay* overlay);
// gid's branches in position order.
absl::StatusOr<std::vector<BranchRecord>> ReadBranches(rocksdb::DB* db,
                                                       const Families& cfs,
                                                       absl::string_view gid);
// Number of gid's branches (definitions only, payloads not parsed), seeing
// `overlay` when not null.
absl::StatusOr<int32_t> CountBranches(rocksdb::DB* db, const Families& cfs,
                                      absl::string_view gid,
                                      const GroupOverlay* overlay);

// The topic's record (NOT_FOUND if it does not exist), seeing `overlay`
// when not null.
absl::StatusOr<v1::TopicRecord> ReadTopic(rocksdb::DB* db, const Families& cfs,
                                          absl::string_view topic,
                                          const GroupOverlay* overlay);

class RocksDBStore::Impl {
 public:
  // One queued write; `create_done` is set for kCreate, `status_done`
  // otherwise. `rejected` ops carry no records: they only await their turn
  // to report RESOURCE_EXHAUSTED in order.
  struct Op {
    enum class Kind {
      kCreate,
      kUpdate,
      kPutBranches,
      kAppend,
      kSubscribe,
      kUnsubscribe,
      kDeleteTopic,
      kDeleteFinished
    };
    Kind kind;
    TransRecord trans;            // kCreate, kUpdate.
    std::string gid;              // kPutBranches, kAppend.
    std::string expected_status;  // kUpdate, kAppend.
    std::vector<BranchRecord> branches;
    Durability durability;
    CreateCallback create_done;
    StatusCallback status_done;
    absl::Status rejected = absl::OkStatus();
    size_t bytes = 0;            // Counted against options.max_queued_bytes.
    std::string topic = {};      // kSubscribe, kUnsubscribe, kDeleteTopic.
    Subscriber subscriber = {};  // kSubscribe; kUnsubscribe (url only).
    std::vector<FinishedTrans> finished = {};  // kDeleteFinished.
    // kDeleteFinished: the branch count of each, counted before the op is
    // queued (a final transaction gains no branches), so that the writer
    // does not walk branch keys.
    std::vector<int32_t> branch_counts = {};
    DeleteCallback delete_done = nullptr;  // kDeleteFinished.
  };

  // What the DB needs kept alive beside it, released after it closes.
  struct Resources {
    DirLock lock;
    std::unique_ptr<rocksdb::Env> env;  // null: RocksDB's default.
    std::shared_ptr<StoreHealth> health;
    SyncedSequenceFile synced_file;
    int64_t backfilled = 0;  // Records the open indexed (Stats::backfilled).
  };

  Impl(RocksDBStoreOptions options, Resources resources, rocksdb::DB* db,
       std::vector<rocksdb::ColumnFamilyHandle*> handles);
  ~Impl();

  // A synced topic write (rocksdb_store_topics.cc).
  static Op TopicOp(Op::Kind kind, std::string topic, Subscriber subscriber,
                    StatusCallback done);

  void Enqueue(Op op);
  void Flush();

  // The earliest time a due key may have: ScanDue starts there instead of
  // at the first key, so that it does not walk the tombstones every update
  // leaves below the earliest live entry. Returns the bound and a token for
  // RaiseDueFloor.
  struct DueFloor {
    int64_t time_ms;
    uint64_t generation;
    bool writes_in_flight;
  };
  DueFloor GetDueFloor();
  // Raises the floor to `time_ms` (no live key is below it, as seen by an
  // iterator created after `floor` was taken) unless a write that may have
  // added a due key started since.
  void RaiseDueFloor(const DueFloor& floor, int64_t time_ms);

  const RocksDBStoreOptions options_;
  const DirLock lock_;
  const std::unique_ptr<rocksdb::Env> env_;
  rocksdb::DB* const db_;
  const std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // default first.
  const Families cfs_;
  const std::shared_ptr<StoreHealth> health_;

  std::atomic<int64_t> write_batches_{0};
  std::atomic<int64_t> synced_batches_{0};
  std::atomic<int64_t> operations_{0};
  const int64_t backfilled_;

 private:
  // What one op's callback will get, if the group's write succeeds.
  struct Outcome {
    absl::Status status;
    CreateResult create;
    int64_t deleted = 0;  // kDeleteFinished.
  };
  // One key change, prepared before anything reaches the group's batch so
  // that an op adds all of its changes or none.
  struct Change {
    rocksdb::ColumnFamilyHandle* cf;
    std::string key;
    std::string value;
    bool is_delete = false;
  };
  using Changes = std::vector<Change>;
  using Overlay = GroupOverlay;
  // A kSync op written (or failed) but not yet answered, in issue order.
  struct Pending {
    Op op;
    Outcome outcome;
  };

  // rocksdb_store_stage.cc: evaluates `op` against the DB seen through
  // `batch` (earlier ops of the group) and adds its changes to `batch` if it
  // succeeds. A failure of the batch itself goes to *batch_error; the
  // earliest due time the op inserts lowers *min_due_ms.
  Outcome Apply(Op& op, Overlay* batch, rocksdb::Status* batch_error,
                std::optional<int64_t>* min_due_ms);
  absl::Status StageCreate(Op& op, Overlay* batch, CreateResult* result,
                           Changes* changes);
  absl::Status StageUpdate(Op& op, Overlay* batch, Changes* changes);
  absl::Status StagePutBranches(Op& op, Changes* changes);
  absl::Status StageAppend(Op& op, Overlay* batch, Changes* changes);
  // rocksdb_store_topics.cc.
  absl::Status StageSubscribe(Op& op, Overlay* batch, Changes* changes);
  absl::Status StageUnsubscribe(Op& op, Overlay* batch, Changes* changes);
  absl::Status StageDeleteTopic(Op& op, Overlay* batch, Changes* changes);
  // rocksdb_store_retention.cc.
  absl::Status StageDeleteFinished(Op& op, Overlay* batch, Changes* changes,
                                   int64_t* deleted);
  // Definitions (payloads shared, see SharePayloads) and states of branches
  // being created.
  void StageNewBranches(absl::string_view gid,
                        std::vector<BranchRecord>& branches, Changes* changes);
  absl::Status StageBranchStates(absl::string_view gid,
                                 std::vector<BranchRecord>& branches,
                                 Changes* changes);
  void StageDueMove(absl::string_view gid, const TransRecord* old_trans,
                    const TransRecord& new_trans, Changes* changes);
  // Keeps the finished index in step (rocksdb_store_retention.cc).
  void StageFinishedMove(absl::string_view gid, const TransRecord* old_trans,
                         const TransRecord& new_trans, Changes* changes);

  // rocksdb_store_writer.cc.
  void WriterLoop();
  void SyncerLoop();
  // Writes one group through `batch` (cleared first); fills `outcomes`.
  void WriteGroup(std::vector<Op>& group, Overlay* batch,
                  std::vector<Outcome>& outcomes);
  // Asks RocksDB to resume after an error that stopped writes, at most
  // every kResumeInterval.
  void MaybeResume();
  void Complete(Op& op, Outcome& outcome);
  bool HasWorkOrStopping() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || stopping_;
  }
  bool HasSyncWorkOrStopping() const ABSL_SHARED_LOCKS_REQUIRED(sync_mu_) {
    return !sync_queue_.empty() || sync_stopping_;
  }

  absl::Mutex mu_;
  std::deque<Op> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_writes_ ABSL_GUARDED_BY(mu_) = 0;  // Not rejected.
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;     // Set by ~Impl.
  bool writer_done_ ABSL_GUARDED_BY(mu_) = false;  // Set by the writer.
  uint64_t issued_ ABSL_GUARDED_BY(mu_) = 0;       // ops ever enqueued.
  uint64_t completed_ ABSL_GUARDED_BY(mu_) = 0;    // ops whose callback ran.

  absl::Time last_resume_ = absl::InfinitePast();  // Writer thread only.

  absl::Mutex due_mu_;
  int64_t due_floor_ms_ ABSL_GUARDED_BY(due_mu_) = 0;
  uint64_t due_generation_ ABSL_GUARDED_BY(due_mu_) = 0;
  int due_writes_in_flight_ ABSL_GUARDED_BY(due_mu_) = 0;

  absl::Mutex sync_mu_;
  std::vector<Pending> sync_queue_ ABSL_GUARDED_BY(sync_mu_);
  bool sync_stopping_ ABSL_GUARDED_BY(sync_mu_) = false;
  SyncedSequenceFile synced_file_;  // Syncer thread only.

  // Last: they start after every other member exists.
  std::thread syncer_;
  std::thread writer_;
};

}  // namespace dtmd::storage

#endif  // DTMD_STORAGE_ROCKSDB_STORE_IMPL_H_
