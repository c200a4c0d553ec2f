// RocksDBStore: the writer thread, group commit and the key encodings
// described in rocksdb_store.h.
#include "storage/rocksdb_store.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "glog/logging.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/write_batch_with_index.h"

namespace dtmd::storage {
namespace {

constexpr char kTransFamily[] = "trans";
constexpr char kBranchesFamily[] = "branches";
constexpr char kDueFamily[] = "due";
constexpr size_t kDueTimeBytes = 8;

// RocksDB errors become UNAVAILABLE when retrying may help (I/O, busy,
// lock held) and INTERNAL otherwise; the message is kept either way.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view context) {
  if (s.ok()) return absl::OkStatus();
  std::string message = absl::StrCat(context, ": ", s.ToString());
  if (s.IsIOError() || s.IsBusy() || s.IsTryAgain() || s.IsTimedOut() ||
      s.IsIncomplete() || s.IsAborted()) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

void AppendBigEndian(uint64_t value, int bytes, std::string* out) {
  for (int i = bytes - 1; i >= 0; --i) {
    out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

std::string BranchPrefix(absl::string_view gid) {
  std::string key(gid);
  key.push_back('\0');
  return key;
}

std::string BranchKey(absl::string_view gid, int32_t position) {
  std::string key = BranchPrefix(gid);
  AppendBigEndian(static_cast<uint32_t>(position), 4, &key);
  return key;
}

// Times before the epoch sort as 0 ("due now") so that the unsigned
// big-endian encoding keeps time order.
std::string DueKey(int64_t next_cron_time_ms, absl::string_view gid) {
  std::string key;
  AppendBigEndian(
      static_cast<uint64_t>(std::max<int64_t>(next_cron_time_ms, 0)),
      kDueTimeBytes, &key);
  key.append(gid.data(), gid.size());
  return key;
}

// Gids are printable ASCII (see the header); anything else would break the
// branch key layout.
absl::Status ValidateGid(absl::string_view gid) {
  if (gid.empty()) return absl::InvalidArgumentError("empty gid");
  for (char c : gid) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat("gid contains a non-printable character: ", gid));
    }
  }
  return absl::OkStatus();
}

// Reads gid's record from the DB, seen through `overlay` (the writer's
// pending batch) when it is not null.
absl::StatusOr<TransRecord> ReadTrans(rocksdb::DB* db,
                                      rocksdb::ColumnFamilyHandle* cf,
                                      absl::string_view gid,
                                      rocksdb::WriteBatchWithIndex* overlay) {
  std::string value;
  rocksdb::Slice key(gid.data(), gid.size());
  rocksdb::Status s = overlay == nullptr
                          ? db->Get(rocksdb::ReadOptions(), cf, key, &value)
                          : overlay->GetFromBatchAndDB(
                                db, rocksdb::ReadOptions(), cf, key, &value);
  if (s.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat("transaction ", gid, " not found"));
  }
  if (!s.ok()) return FromRocks(s, "RocksDBStore: read trans");
  TransRecord record;
  if (!record.ParseFromString(value)) {
    return absl::InternalError(absl::StrCat("corrupt record for gid ", gid));
  }
  return record;
}

// gid's branches in key (= position) order, through `overlay` if not null.
absl::StatusOr<std::vector<BranchRecord>> ReadBranches(
    rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, absl::string_view gid,
    rocksdb::WriteBatchWithIndex* overlay) {
  const std::string prefix = BranchPrefix(gid);
  // gid '\1' sorts after every gid '\0' key and before any longer gid
  // (printable characters are above '\1'), so gid "a" never sees "ab".
  std::string upper = prefix;
  upper.back() = '\x01';
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(read_options, cf));
  if (overlay != nullptr) {
    it.reset(overlay->NewIteratorWithBase(cf, it.release(), &read_options));
  }
  std::vector<BranchRecord> branches;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    if (!branches.emplace_back().ParseFromArray(
            it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::InternalError(
          absl::StrCat("corrupt branch record for gid ", gid));
    }
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), "RocksDBStore: scan branches");
  }
  return branches;
}

// The record of gid if its status is `expected`; NOT_FOUND or
// FAILED_PRECONDITION (naming the stored status) otherwise.
absl::StatusOr<TransRecord> ReadIfStatus(
    rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, absl::string_view gid,
    absl::string_view expected, rocksdb::WriteBatchWithIndex* overlay) {
  absl::StatusOr<TransRecord> stored = ReadTrans(db, cf, gid, overlay);
  if (stored.ok() && stored->status() != expected) {
    return absl::FailedPreconditionError(absl::StrCat("transaction ", gid,
                                                      " is ", stored->status(),
                                                      ", expected ", expected));
  }
  return stored;
}

}  // namespace

// Owns the DB and the writer thread. The DB handles are read by the
// RocksDBStore read methods from any thread; the queue is shared with the
// writer under mu_.
class RocksDBStore::Impl {
 public:
  // One queued write; `create_done` is set for kCreate, `status_done`
  // otherwise.
  struct Op {
    enum class Kind { kCreate, kUpdate, kPutBranches, kAppend };
    Kind kind;
    TransRecord trans;            // kCreate, kUpdate.
    std::string gid;              // kPutBranches, kAppend.
    std::string expected_status;  // kUpdate, kAppend.
    std::vector<BranchRecord> branches;
    Durability durability;
    CreateCallback create_done;
    StatusCallback status_done;
  };

  Impl(RocksDBStoreOptions options, rocksdb::DB* db,
       std::vector<rocksdb::ColumnFamilyHandle*> handles)
      : options_(std::move(options)),
        db_(db),
        handles_(std::move(handles)),
        trans_cf_(handles_.at(1)),
        branches_cf_(handles_.at(2)),
        due_cf_(handles_.at(3)),
        syncer_([this] { SyncerLoop(); }),
        writer_([this] { WriterLoop(); }) {}
  ~Impl();

  void Enqueue(Op op);
  void Flush();

  const RocksDBStoreOptions options_;
  rocksdb::DB* const db_;
  const std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // default first.
  rocksdb::ColumnFamilyHandle* const trans_cf_;
  rocksdb::ColumnFamilyHandle* const branches_cf_;
  rocksdb::ColumnFamilyHandle* const due_cf_;

  std::atomic<int64_t> write_batches_{0};
  std::atomic<int64_t> synced_batches_{0};
  std::atomic<int64_t> operations_{0};

 private:
  // What one op's callback will get, if the group's write succeeds.
  struct Outcome {
    absl::Status status;
    CreateResult create;
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
  using Overlay = rocksdb::WriteBatchWithIndex;

  void WriterLoop();
  bool HasWorkOrStopping() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || stopping_;
  }
  // Evaluates `op` against the DB seen through `batch` (earlier ops of the
  // group) and adds its changes to `batch` if it succeeds. A failure of the
  // batch itself goes to *batch_error.
  Outcome Apply(Op& op, Overlay* batch, rocksdb::Status* batch_error) {
    Outcome outcome;
    Changes changes;
    switch (op.kind) {
      case Op::Kind::kCreate:
        outcome.status = StageCreate(op, batch, &outcome.create, &changes);
        break;
      case Op::Kind::kUpdate:
        outcome.status = StageUpdate(op, batch, &changes);
        break;
      case Op::Kind::kPutBranches:
        outcome.status = StagePutBranches(op, &changes);
        break;
      case Op::Kind::kAppend:
        outcome.status = StageAppend(op, batch, &changes);
        break;
    }
    if (!outcome.status.ok()) return outcome;
    for (const Change& change : changes) {
      rocksdb::Status s = change.is_delete
                              ? batch->Delete(change.cf, change.key)
                              : batch->Put(change.cf, change.key, change.value);
      // Cannot fail without a batch size limit; if it does, the batch may
      // hold part of this op, so the whole group must fail.
      if (!s.ok() && batch_error->ok()) *batch_error = s;
    }
    return outcome;
  }

  absl::Status StageCreate(Op& op, Overlay* batch, CreateResult* result,
                           Changes* changes) {
    const std::string& gid = op.trans.gid();
    if (absl::Status valid = ValidateGid(gid); !valid.ok()) return valid;
    absl::StatusOr<TransRecord> stored = ReadTrans(db_, trans_cf_, gid, batch);
    if (stored.ok()) {
      result->created = false;
      result->existing = *std::move(stored);
      return absl::OkStatus();
    }
    if (!absl::IsNotFound(stored.status())) return stored.status();

    changes->push_back({trans_cf_, gid, op.trans.SerializeAsString()});
    for (size_t i = 0; i < op.branches.size(); ++i) {
      op.branches[i].set_position(static_cast<int32_t>(i));
      StageBranch(gid, op.branches[i], changes);
    }
    if (!IsFinalStatus(op.trans.status())) {
      changes->push_back(
          {due_cf_, DueKey(op.trans.next_cron_time_ms(), gid), ""});
    }
    result->created = true;
    return absl::OkStatus();
  }

  absl::Status StageUpdate(Op& op, Overlay* batch, Changes* changes) {
    const std::string& gid = op.trans.gid();
    if (absl::Status valid = ValidateGid(gid); !valid.ok()) return valid;
    absl::StatusOr<TransRecord> stored =
        ReadIfStatus(db_, trans_cf_, gid, op.expected_status, batch);
    if (!stored.ok()) return stored.status();

    changes->push_back({trans_cf_, gid, op.trans.SerializeAsString()});
    for (BranchRecord& branch : op.branches) {
      if (branch.position() < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "negative branch position ", branch.position(), " for gid ", gid));
      }
      StageBranch(gid, branch, changes);
    }
    // Delete before put: when the time is unchanged the put must win.
    changes->push_back({due_cf_, DueKey(stored->next_cron_time_ms(), gid), "",
                        /*is_delete=*/true});
    if (!IsFinalStatus(op.trans.status())) {
      changes->push_back(
          {due_cf_, DueKey(op.trans.next_cron_time_ms(), gid), ""});
    }
    return absl::OkStatus();
  }

  absl::Status StagePutBranches(Op& op, Changes* changes) {
    if (absl::Status valid = ValidateGid(op.gid); !valid.ok()) return valid;
    for (BranchRecord& branch : op.branches) {
      if (branch.position() < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("negative branch position ", branch.position(),
                         " for gid ", op.gid));
      }
      StageBranch(op.gid, branch, changes);
    }
    return absl::OkStatus();
  }

  absl::Status StageAppend(Op& op, Overlay* batch, Changes* changes) {
    if (absl::Status valid = ValidateGid(op.gid); !valid.ok()) return valid;
    absl::StatusOr<TransRecord> stored =
        ReadIfStatus(db_, trans_cf_, op.gid, op.expected_status, batch);
    if (!stored.ok()) return stored.status();
    absl::StatusOr<std::vector<BranchRecord>> existing =
        ReadBranches(db_, branches_cf_, op.gid, batch);
    if (!existing.ok()) return existing.status();

    const int32_t first = static_cast<int32_t>(existing->size());
    for (size_t i = 0; i < op.branches.size(); ++i) {
      op.branches[i].set_position(first + static_cast<int32_t>(i));
      StageBranch(op.gid, op.branches[i], changes);
    }
    return absl::OkStatus();
  }

  void StageBranch(absl::string_view gid, BranchRecord& branch,
                   Changes* changes) {
    branch.set_gid(std::string(gid));
    changes->push_back({branches_cf_, BranchKey(gid, branch.position()),
                        branch.SerializeAsString()});
  }

  absl::Mutex mu_;
  std::deque<Op> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;     // Set by ~Impl.
  bool writer_done_ ABSL_GUARDED_BY(mu_) = false;  // Set by the writer.
  uint64_t issued_ ABSL_GUARDED_BY(mu_) = 0;       // ops ever enqueued.
  uint64_t completed_ ABSL_GUARDED_BY(mu_) = 0;    // ops whose callback ran.

  // kSync ops written but not yet synced, in issue order.
  struct Pending {
    Op op;
    Outcome outcome;
  };
  void SyncerLoop();
  bool HasSyncWorkOrStopping() const ABSL_SHARED_LOCKS_REQUIRED(sync_mu_) {
    return !sync_queue_.empty() || sync_stopping_;
  }
  void Complete(Op& op, Outcome& outcome);
  absl::Mutex sync_mu_;
  std::vector<Pending> sync_queue_ ABSL_GUARDED_BY(sync_mu_);
  bool sync_stopping_ ABSL_GUARDED_BY(sync_mu_) = false;

  // Last: they start after every other member exists.
  std::thread syncer_;
  std::thread writer_;
};

RocksDBStore::Impl::~Impl() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  writer_.join();  // The writer drains the queue before it returns.
  {
    absl::MutexLock lock(&sync_mu_);
    sync_stopping_ = true;
  }
  syncer_.join();  // And the syncer what the writer handed it.
  // Memtables to SST files, so that the next open need not replay the WAL.
  rocksdb::FlushOptions flush;
  rocksdb::Status flushed = db_->Flush(flush, handles_);
  if (!flushed.ok())
    LOG(ERROR) << "RocksDBStore: flush: " << flushed.ToString();
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    rocksdb::Status s = db_->DestroyColumnFamilyHandle(handle);
    if (!s.ok()) LOG(ERROR) << "RocksDBStore: " << s.ToString();
  }
  rocksdb::Status s = db_->Close();
  if (!s.ok()) LOG(ERROR) << "RocksDBStore: close: " << s.ToString();
  delete db_;
}

void RocksDBStore::Impl::Enqueue(Op op) {
  absl::MutexLock lock(&mu_);
  CHECK(!writer_done_) << "RocksDBStore: write issued after destruction";
  queue_.push_back(std::move(op));
  ++issued_;
}

void RocksDBStore::Impl::Flush() {
  CHECK(std::this_thread::get_id() != writer_.get_id())
      << "RocksDBStore::Flush called from a store callback";
  absl::MutexLock lock(&mu_);
  const uint64_t target = issued_;
  auto done = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return completed_ >= target;
  };
  mu_.Await(absl::Condition(&done));
}

void RocksDBStore::Impl::WriterLoop() {
  Overlay batch(rocksdb::BytewiseComparator(), 0, /*overwrite_key=*/true);
  std::vector<Op> group;
  std::vector<Outcome> outcomes;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &Impl::HasWorkOrStopping));
      if (queue_.empty()) {  // stopping_ and drained.
        writer_done_ = true;
        return;
      }
      const size_t cap = static_cast<size_t>(options_.max_writes_per_batch);
      while (!queue_.empty() && group.size() < cap) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }

    batch.Clear();
    outcomes.clear();
    rocksdb::Status s;
    for (Op& op : group) outcomes.push_back(Apply(op, &batch, &s));
    // Written without sync: the syncer thread makes kSync ops durable, so
    // that unsynced writes never wait behind an fsync.
    if (s.ok() && batch.GetWriteBatch()->Count() > 0) {
      s = db_->Write(rocksdb::WriteOptions(), batch.GetWriteBatch());
      ++write_batches_;
    }
    if (!s.ok()) {
      // Later ops were evaluated against earlier ones' changes, so no
      // outcome in the group can be trusted.
      absl::Status error = FromRocks(s, "RocksDBStore: write");
      LOG(ERROR) << error;
      for (Outcome& outcome : outcomes) outcome.status = error;
    }

    size_t done = 0;
    std::vector<Pending> to_sync;
    for (size_t i = 0; i < group.size(); ++i) {
      // A kSync op's answer waits for the sync even when it wrote nothing:
      // a repeated create answers from a record that may not be durable yet.
      if (group[i].durability == Durability::kSync && outcomes[i].status.ok()) {
        to_sync.push_back({std::move(group[i]), std::move(outcomes[i])});
      } else {
        Complete(group[i], outcomes[i]);
        ++done;
      }
    }
    group.clear();  // Release the callbacks' captures before Flush returns.
    if (!to_sync.empty()) {
      absl::MutexLock lock(&sync_mu_);
      for (Pending& p : to_sync) sync_queue_.push_back(std::move(p));
    }
    absl::MutexLock lock(&mu_);
    completed_ += done;
  }
}

void RocksDBStore::Impl::SyncerLoop() {
  std::vector<Pending> pending;
  while (true) {
    {
      absl::MutexLock lock(&sync_mu_);
      sync_mu_.Await(absl::Condition(this, &Impl::HasSyncWorkOrStopping));
      if (sync_queue_.empty()) return;  // stopping and drained.
      pending.assign(std::make_move_iterator(sync_queue_.begin()),
                     std::make_move_iterator(sync_queue_.end()));
      sync_queue_.clear();
    }
    // One fsync for every op written before it: group commit.
    rocksdb::Status s = db_->SyncWAL();
    ++synced_batches_;
    absl::Status error;
    if (!s.ok()) {
      error = FromRocks(s, "RocksDBStore: sync");
      LOG(ERROR) << error;
    }
    for (Pending& p : pending) {
      if (!error.ok()) p.outcome.status = error;
      Complete(p.op, p.outcome);
    }
    const size_t done = pending.size();
    pending.clear();
    absl::MutexLock lock(&mu_);
    completed_ += done;
  }
}

void RocksDBStore::Impl::Complete(Op& op, Outcome& outcome) {
  // Counted before the callback, so that a caller who saw its callback also
  // sees it in GetStats().
  ++operations_;
  if (op.kind != Op::Kind::kCreate) {
    op.status_done(std::move(outcome.status));
  } else if (outcome.status.ok()) {
    if (outcome.create.created) {
      outcome.create.trans = std::move(op.trans);
      outcome.create.branches = std::move(op.branches);
    }
    op.create_done(std::move(outcome.create));
  } else {
    op.create_done(std::move(outcome.status));
  }
}

absl::StatusOr<std::unique_ptr<RocksDBStore>> RocksDBStore::Open(
    const RocksDBStoreOptions& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("RocksDBStore: empty path");
  }
  if (options.max_writes_per_batch < 1) {
    return absl::InvalidArgumentError(
        "RocksDBStore: max_writes_per_batch must be at least 1");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.path, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat(
        "RocksDBStore: cannot create ", options.path, ": ", ec.message()));
  }

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 10;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(
      static_cast<size_t>(std::max<int64_t>(options.block_cache_mib, 1)) << 20);
  rocksdb::ColumnFamilyOptions cf_options;  // Level compaction by default.
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Point lookups by gid dominate on trans: a bloom filter saves block reads.
  rocksdb::BlockBasedTableOptions trans_table = table;
  trans_table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions trans_options = cf_options;
  trans_options.table_factory.reset(
      rocksdb::NewBlockBasedTableFactory(trans_table));

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, cf_options},
      {kTransFamily, trans_options},
      {kBranchesFamily, cf_options},
      {kDueFamily, cf_options},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(db_options, options.path, families, &handles, &db);
  if (!s.ok()) {
    return FromRocks(s, absl::StrCat("RocksDBStore: open ", options.path));
  }
  return std::unique_ptr<RocksDBStore>(new RocksDBStore(
      std::make_unique<Impl>(options, db, std::move(handles))));
}

RocksDBStore::RocksDBStore(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

RocksDBStore::~RocksDBStore() = default;

void RocksDBStore::CreateTransaction(TransRecord trans,
                                     std::vector<BranchRecord> branches,
                                     Durability durability,
                                     CreateCallback done) {
  impl_->Enqueue({Impl::Op::Kind::kCreate, std::move(trans), "", "",
                  std::move(branches), durability, std::move(done), nullptr});
}

void RocksDBStore::UpdateTransaction(TransRecord trans,
                                     std::string expected_status,
                                     std::vector<BranchRecord> branches,
                                     Durability durability,
                                     StatusCallback done) {
  impl_->Enqueue({Impl::Op::Kind::kUpdate, std::move(trans), "",
                  std::move(expected_status), std::move(branches), durability,
                  nullptr, std::move(done)});
}

void RocksDBStore::PutBranches(std::string gid,
                               std::vector<BranchRecord> branches,
                               Durability durability, StatusCallback done) {
  impl_->Enqueue({Impl::Op::Kind::kPutBranches, TransRecord(), std::move(gid),
                  "", std::move(branches), durability, nullptr,
                  std::move(done)});
}

void RocksDBStore::AppendBranches(std::string gid, std::string expected_status,
                                  std::vector<BranchRecord> branches,
                                  Durability durability, StatusCallback done) {
  impl_->Enqueue({Impl::Op::Kind::kAppend, TransRecord(), std::move(gid),
                  std::move(expected_status), std::move(branches), durability,
                  nullptr, std::move(done)});
}

absl::StatusOr<TransRecord> RocksDBStore::GetTransaction(
    absl::string_view gid) {
  return ReadTrans(impl_->db_, impl_->trans_cf_, gid, nullptr);
}

absl::StatusOr<std::vector<BranchRecord>> RocksDBStore::GetBranches(
    absl::string_view gid) {
  return ReadBranches(impl_->db_, impl_->branches_cf_, gid, nullptr);
}

absl::StatusOr<std::vector<std::string>> RocksDBStore::ScanDue(int64_t until_ms,
                                                               int limit) {
  std::vector<std::string> gids;
  if (limit <= 0 || until_ms < 0) return gids;
  // Exclusive bound: every key whose time is <= until_ms sorts below the
  // bare time until_ms + 1 (which cannot overflow a uint64_t).
  std::string upper;
  AppendBigEndian(static_cast<uint64_t>(until_ms) + 1, kDueTimeBytes, &upper);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db_->NewIterator(read_options, impl_->due_cf_));
  for (it->SeekToFirst(); it->Valid() && static_cast<int>(gids.size()) < limit;
       it->Next()) {
    rocksdb::Slice key = it->key();
    if (key.size() <= kDueTimeBytes) continue;  // Not a key we write.
    key.remove_prefix(kDueTimeBytes);
    gids.push_back(key.ToString());
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), "RocksDBStore: scan due");
  }
  return gids;
}

void RocksDBStore::Flush() { impl_->Flush(); }

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
          impl_->operations_.load()};
}

}  // namespace dtmd::storage
