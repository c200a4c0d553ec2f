// RocksDBStore: the finished index and the deletion of finished
// transactions (retention; the policy is server/retention.h).
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rocksdb/write_batch.h"
#include "storage/encoding.h"
#include "storage/rocksdb_store_impl.h"
#include "storage/rocksdb_support.h"

namespace dtmd::storage {

void RocksDBStore::Impl::StageFinishedMove(absl::string_view gid,
                                           const TransRecord* old_trans,
                                           const TransRecord& new_trans,
                                           Changes* changes) {
  // A final record is not normally written again; if it is, its entry
  // follows it. Delete before put: when the time is unchanged the put wins.
  if (old_trans != nullptr && IsFinalStatus(old_trans->status())) {
    changes->push_back({cfs_.finished, DueKey(FinishedTime(*old_trans), gid),
                        "", /*is_delete=*/true});
  }
  if (IsFinalStatus(new_trans.status())) {
    changes->push_back(
        {cfs_.finished, DueKey(FinishedTime(new_trans), gid), ""});
  }
}

absl::Status RocksDBStore::Impl::StageDeleteFinished(Op& op, Overlay* batch,
                                                     Changes* changes,
                                                     int64_t* deleted) {
  for (size_t i = 0; i < op.finished.size(); ++i) {
    const FinishedTrans& entry = op.finished[i];
    const std::string& gid = entry.gid;
    if (!ValidateGid(gid).ok()) continue;  // Not a key we write.
    const std::string key = DueKey(entry.finish_time_ms, gid);
    absl::StatusOr<TransRecord> stored = ReadTrans(db_, cfs_, gid, batch);
    if (!stored.ok() && !absl::IsNotFound(stored.status())) {
      return stored.status();
    }
    // The entry goes in any case: a record that is gone, not final or
    // final at another time (which has its own entry) is not its record.
    changes->push_back({cfs_.finished, key, "", /*is_delete=*/true});
    if (!stored.ok() || !IsFinalStatus(stored->status()) ||
        FinishedTime(*stored) != entry.finish_time_ms) {
      continue;
    }
    // Counted before queueing unless this group touched the gid's branches.
    absl::StatusOr<int32_t> count = op.branch_counts[i];
    if (batch->NewBranches(gid) > 0 || batch->BranchesCleared(gid)) {
      count = CountBranches(db_, cfs_, gid, batch);
      if (!count.ok()) return count.status();
    }
    changes->push_back({cfs_.trans, gid, "", /*is_delete=*/true});
    // Positions are dense from 0; a state key exists only beside a
    // definition (deleting one that was never written costs a tombstone).
    for (int32_t position = 0; position < *count; ++position) {
      std::string branch_key = BranchKey(gid, position);
      changes->push_back({cfs_.branch_states, branch_key, "", true});
      changes->push_back({cfs_.branch_defs, std::move(branch_key), "", true});
    }
    ++*deleted;
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> BackfillFinishedIndex(rocksdb::DB* db,
                                              const Families& cfs) {
  constexpr int kBatchKeys = 10000;
  int64_t indexed = 0;
  rocksdb::ReadOptions read_options;
  read_options.fill_cache = false;  // One pass over everything.
  std::unique_ptr<rocksdb::Iterator> it(
      db->NewIterator(read_options, cfs.trans));
  rocksdb::WriteBatch batch;
  auto write = [&]() -> absl::Status {
    if (batch.Count() == 0) return absl::OkStatus();
    // Not synced: the marker written after the backfill is, and covers it.
    rocksdb::Status s = db->Write(rocksdb::WriteOptions(), &batch);
    batch.Clear();
    return s.ok() ? absl::OkStatus()
                  : FromRocks(s, "RocksDBStore: backfill finished index");
  };
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    TransRecord record;
    if (!record.ParseFromArray(it->value().data(),
                               static_cast<int>(it->value().size())) ||
        !IsFinalStatus(record.status())) {
      continue;  // A corrupt record is reported when it is read.
    }
    const absl::string_view gid(it->key().data(), it->key().size());
    rocksdb::Status s =
        batch.Put(cfs.finished, DueKey(FinishedTime(record), gid), "");
    if (!s.ok()) return FromRocks(s, "RocksDBStore: backfill finished index");
    ++indexed;
    if (batch.Count() >= kBatchKeys) {
      if (absl::Status written = write(); !written.ok()) return written;
    }
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), "RocksDBStore: backfill scan");
  }
  if (absl::Status written = write(); !written.ok()) return written;
  return indexed;
}

absl::StatusOr<std::vector<FinishedTrans>> RocksDBStore::ScanFinished(
    int64_t before_ms, const std::optional<FinishedTrans>& after, int limit) {
  std::vector<FinishedTrans> found;
  if (limit <= 0 || before_ms <= 0) return found;
  const std::string upper = DueTimePrefix(before_ms);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db_->NewIterator(read_options, impl_->cfs_.finished));
  std::string start;
  if (after.has_value()) {
    // The first key after the cursor's: its own key with a 0 byte added.
    start = DueKey(after->finish_time_ms, after->gid);
    start.push_back('\0');
    it->Seek(start);
  } else {
    it->SeekToFirst();
  }
  for (; it->Valid() && static_cast<int>(found.size()) < limit; it->Next()) {
    const absl::string_view key(it->key().data(), it->key().size());
    const std::optional<int64_t> time = DueKeyTime(key);
    if (!time.has_value()) continue;  // Not a key we write.
    found.push_back({*time, std::string(key.substr(kDueTimeBytes))});
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), "RocksDBStore: scan finished");
  }
  return found;
}

void RocksDBStore::DeleteFinished(std::vector<FinishedTrans> finished,
                                  DeleteCallback done) {
  // Counted here, on the caller's thread: an iterator per gid would hold up
  // the writer, and with it every write queued behind this one.
  std::vector<int32_t> counts;
  counts.reserve(finished.size());
  for (const FinishedTrans& entry : finished) {
    absl::StatusOr<int32_t> count =
        ValidateGid(entry.gid).ok()
            ? CountBranches(impl_->db_, impl_->cfs_, entry.gid, nullptr)
            : 0;
    if (!count.ok()) {
      done(count.status());
      return;
    }
    counts.push_back(*count);
  }
  Impl::Op op{Impl::Op::Kind::kDeleteFinished,
              TransRecord(),
              "",
              "",
              {},
              Durability::kNoSync,
              nullptr,
              nullptr,
              absl::OkStatus(),
              0};
  op.finished = std::move(finished);
  op.branch_counts = std::move(counts);
  op.delete_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

absl::Status RocksDBStore::ReclaimSpace() {
  rocksdb::CompactRangeOptions options;
  // RocksDB's own compactions go on meanwhile: writes never stall on this.
  options.exclusive_manual_compaction = false;
  for (rocksdb::ColumnFamilyHandle* handle :
       {impl_->cfs_.trans, impl_->cfs_.branch_defs, impl_->cfs_.branch_states,
        impl_->cfs_.finished}) {
    rocksdb::Status s =
        impl_->db_->CompactRange(options, handle, nullptr, nullptr);
    if (!s.ok()) return FromRocks(s, "RocksDBStore: reclaim space");
  }
  return absl::OkStatus();
}

}  // namespace dtmd::storage
