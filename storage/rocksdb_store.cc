// RocksDBStore: the public operations. Writes are queued for the writer
// (rocksdb_store_writer.cc); reads go to RocksDB directly.
#include "storage/rocksdb_store.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "storage/encoding.h"
#include "storage/rocksdb_store_impl.h"
#include "storage/rocksdb_support.h"

namespace dtmd::storage {

RocksDBStore::RocksDBStore(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

RocksDBStore::~RocksDBStore() = default;

void RocksDBStore::CreateTransaction(TransRecord trans,
                                     std::vector<BranchRecord> branches,
                                     Durability durability,
                                     CreateCallback done) {
  impl_->Enqueue({Impl::Op::Kind::kCreate, std::move(trans), "", "",
                  std::move(branches), durability, std::move(done), nullptr,
                  absl::OkStatus(), 0});
}

void RocksDBStore::UpdateTransaction(TransRecord trans,
                                     std::string expected_status,
                                     std::vector<BranchRecord> branches,
                                     Durability durability,
                                     StatusCallback done) {
  impl_->Enqueue({Impl::Op::Kind::kUpdate, std::move(trans), "",
                  std::move(expected_status), std::move(branches), durability,
                  nullptr, std::move(done), absl::OkStatus(), 0});
}

void RocksDBStore::PutBranches(std::string gid,
                               std::vector<BranchRecord> branches,
                               Durability durability, StatusCallback done) {
  impl_->Enqueue({Impl::Op::Kind::kPutBranches, TransRecord(), std::move(gid),
                  "", std::move(branches), durability, nullptr, std::move(done),
                  absl::OkStatus(), 0});
}

void RocksDBStore::AppendBranches(std::string gid, std::string expected_status,
                                  std::vector<BranchRecord> branches,
                                  Durability durability, StatusCallback done) {
  impl_->Enqueue({Impl::Op::Kind::kAppend, TransRecord(), std::move(gid),
                  std::move(expected_status), std::move(branches), durability,
                  nullptr, std::move(done), absl::OkStatus(), 0});
}

absl::StatusOr<TransRecord> RocksDBStore::GetTransaction(
    absl::string_view gid) {
  return ReadTrans(impl_->db_, impl_->cfs_, gid, nullptr);
}

absl::StatusOr<std::vector<BranchRecord>> RocksDBStore::GetBranches(
    absl::string_view gid) {
  return ReadBranches(impl_->db_, impl_->cfs_, gid);
}

absl::StatusOr<std::vector<std::string>> RocksDBStore::ScanDue(int64_t until_ms,
                                                               int limit) {
  std::vector<std::string> gids;
  if (limit <= 0 || until_ms < 0) return gids;
  const Impl::DueFloor floor = impl_->GetDueFloor();
  if (floor.time_ms > until_ms) return gids;
  // Keys of a time <= until_ms sort in [time floor, time until_ms + 1).
  const std::string lower = DueTimePrefix(floor.time_ms);
  const std::string upper = DueTimePrefix(until_ms + 1);
  rocksdb::Slice lower_slice(lower), upper_slice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_lower_bound = &lower_slice;
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db_->NewIterator(read_options, impl_->cfs_.due));
  std::optional<int64_t> first_time;
  for (it->Seek(lower_slice);
       it->Valid() && static_cast<int>(gids.size()) < limit; it->Next()) {
    const absl::string_view key(it->key().data(), it->key().size());
    const std::optional<int64_t> time = DueKeyTime(key);
    if (!time.has_value()) continue;  // Not a key we write.
    if (!first_time.has_value()) first_time = time;
    gids.emplace_back(key.substr(kDueTimeBytes));
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), "RocksDBStore: scan due");
  }
  // Nothing below the first live key (or below until_ms + 1 if there was
  // none): later scans start there, past the tombstones.
  impl_->RaiseDueFloor(floor, first_time.value_or(until_ms + 1));
  return gids;
}

void RocksDBStore::Flush() { impl_->Flush(); }

absl::Status RocksDBStore::WriteHealth() { return impl_->health_->Get(); }

absl::Status RocksDBStore::CompactAll() {
  impl_->Flush();
  for (rocksdb::ColumnFamilyHandle* handle : impl_->handles_) {
    rocksdb::CompactRangeOptions options;
    options.bottommost_level_compaction =
        rocksdb::BottommostLevelCompaction::kForceOptimized;
    rocksdb::Status s =
        impl_->db_->CompactRange(options, handle, nullptr, nullptr);
    if (!s.ok()) return FromRocks(s, "RocksDBStore: compact");
  }
  return absl::OkStatus();
}

RocksDBStore::Stats RocksDBStore::GetStats() const {
  return {impl_->write_batches_.load(), impl_->synced_batches_.load(),
          impl_->operations_.load(), impl_->backfilled_};
}

}  // namespace dtmd::storage
