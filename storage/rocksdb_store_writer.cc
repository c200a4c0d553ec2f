// RocksDBStore: the bounded queue, the writer and syncer threads (group
// commit) and what they do when the disk fails them.
#include <algorithm>
#include <chrono>
#include <iterator>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "storage/rocksdb_store_impl.h"
#include "storage/rocksdb_support.h"

namespace dtmd::storage {
namespace {

// How often the writer asks a stopped RocksDB to resume.
constexpr absl::Duration kResumeInterval = absl::Milliseconds(200);

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

RocksDBStore::Impl::Impl(RocksDBStoreOptions options, Resources resources,
                         rocksdb::DB* db,
                         std::vector<rocksdb::ColumnFamilyHandle*> handles)
    : options_(std::move(options)),
      lock_(std::move(resources.lock)),
      env_(std::move(resources.env)),
      db_(db),
      handles_(std::move(handles)),
      cfs_(FamiliesOf(handles_)),
      health_(std::move(resources.health)),
      backfilled_(resources.backfilled),
      synced_file_(std::move(resources.synced_file)),
      syncer_([this] { SyncerLoop(); }),
      writer_([this] { WriterLoop(); }) {}

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
  if (health_->Get().ok()) {
    rocksdb::Status flushed = db_->Flush(rocksdb::FlushOptions(), handles_);
    if (!flushed.ok()) {
      LOG(ERROR) << "RocksDBStore: flush: " << flushed.ToString();
    }
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    rocksdb::Status s = db_->DestroyColumnFamilyHandle(handle);
    if (!s.ok()) LOG(ERROR) << "RocksDBStore: " << s.ToString();
  }
  rocksdb::Status s = db_->Close();
  if (!s.ok()) LOG(ERROR) << "RocksDBStore: close: " << s.ToString();
  delete db_;
}

void RocksDBStore::Impl::Enqueue(Op op) {
  size_t bytes = op.trans.ByteSizeLong();
  for (const BranchRecord& branch : op.branches) bytes += branch.ByteSizeLong();
  bytes +=
      op.topic.size() + op.subscriber.url.size() + op.subscriber.remark.size();
  for (const FinishedTrans& f : op.finished) bytes += f.gid.size() + 8;
  absl::MutexLock lock(&mu_);
  CHECK(!writer_done_) << "RocksDBStore: write issued after destruction";
  if (queued_writes_ >= static_cast<size_t>(options_.max_queued_writes) ||
      queued_bytes_ + bytes > static_cast<size_t>(options_.max_queued_bytes)) {
    // Answered by the writer in issue order, without its records: a full
    // queue must not grow by the payloads it refuses.
    op.rejected = absl::ResourceExhaustedError(
        absl::StrCat("store write queue full (", queued_writes_, " writes, ",
                     queued_bytes_, " bytes queued)"));
    op.trans.Clear();
    op.branches.clear();
    op.branches.shrink_to_fit();
    op.topic.clear();
    op.subscriber = Subscriber();
    op.finished.clear();
    op.finished.shrink_to_fit();
    op.branch_counts.clear();
    op.branch_counts.shrink_to_fit();
  } else {
    op.bytes = bytes;
    ++queued_writes_;
    queued_bytes_ += bytes;
  }
  queue_.push_back(std::move(op));
  ++issued_;
}

void RocksDBStore::Impl::Flush() {
  CHECK(std::this_thread::get_id() != writer_.get_id() &&
        std::this_thread::get_id() != syncer_.get_id())
      << "RocksDBStore::Flush called from a store callback";
  absl::MutexLock lock(&mu_);
  const uint64_t target = issued_;
  auto done = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return completed_ >= target;
  };
  mu_.Await(absl::Condition(&done));
}

RocksDBStore::Impl::DueFloor RocksDBStore::Impl::GetDueFloor() {
  absl::MutexLock lock(&due_mu_);
  return {due_floor_ms_, due_generation_, due_writes_in_flight_ > 0};
}

void RocksDBStore::Impl::RaiseDueFloor(const DueFloor& floor, int64_t time_ms) {
  absl::MutexLock lock(&due_mu_);
  // A write in flight when the floor was taken may land below the new floor
  // after the scan's iterator was made; one started since bumped the
  // generation.
  if (floor.writes_in_flight || due_generation_ != floor.generation) return;
  due_floor_ms_ = std::max(due_floor_ms_, time_ms);
}

void RocksDBStore::Impl::MaybeResume() {
  const absl::Time now = absl::Now();
  if (now - last_resume_ < kResumeInterval) return;
  last_resume_ = now;
  rocksdb::Status s = db_->Resume();
  if (s.ok()) {
    if (health_->ClearUnavailable()) {
      LOG(WARNING) << "RocksDBStore: resumed, writes accepted again";
    }
  } else if (IsFatalRocksError(s)) {
    health_->SetFatal(FromRocks(s, "RocksDB cannot resume"));
  } else {
    VLOG(1) << "RocksDBStore: resume: " << s.ToString();
  }
}

void RocksDBStore::Impl::WriterLoop() {
  Overlay batch;
  std::vector<Op> group;
  std::vector<Outcome> outcomes;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      // While RocksDB refuses writes, wake up now and then to ask it to
      // resume, so that health recovers without waiting for a write.
      if (health_->unavailable()) {
        mu_.AwaitWithTimeout(absl::Condition(this, &Impl::HasWorkOrStopping),
                             kResumeInterval);
      } else {
        mu_.Await(absl::Condition(this, &Impl::HasWorkOrStopping));
      }
      if (queue_.empty() && stopping_) {  // Drained.
        writer_done_ = true;
        return;
      }
      const size_t cap = static_cast<size_t>(options_.max_writes_per_batch);
      while (!queue_.empty() && group.size() < cap) {
        Op& op = queue_.front();
        if (op.rejected.ok()) {
          --queued_writes_;
          queued_bytes_ -= op.bytes;
        }
        group.push_back(std::move(op));
        queue_.pop_front();
      }
    }
    if (health_->unavailable()) MaybeResume();
    if (group.empty()) continue;

    WriteGroup(group, &batch, outcomes);

    size_t done = 0;
    std::vector<Pending> to_sync;
    for (size_t i = 0; i < group.size(); ++i) {
      // Every kSync op is answered by the syncer, failed ones too: callbacks
      // of one durability run in issue order, so an error must not overtake
      // an earlier write still waiting for its fsync. (A repeated create,
      // which wrote nothing, answers from a record that may not be durable
      // yet, so it also needs the sync.)
      if (group[i].durability == Durability::kSync) {
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

void RocksDBStore::Impl::WriteGroup(std::vector<Op>& group, Overlay* batch,
                                    std::vector<Outcome>& outcomes) {
  outcomes.clear();
  if (absl::Status fatal = health_->FatalWriteError(); !fatal.ok()) {
    for (Op& op : group) {
      outcomes.push_back({op.rejected.ok() ? fatal : op.rejected, {}});
    }
    return;
  }
  batch->Clear();
  rocksdb::Status s;
  std::optional<int64_t> min_due_ms;
  for (Op& op : group) outcomes.push_back(Apply(op, batch, &s, &min_due_ms));
  const bool writes = batch->batch()->Count() > 0;
  if (s.ok() && writes) {
    if (min_due_ms.has_value()) {
      absl::MutexLock lock(&due_mu_);
      due_floor_ms_ = std::min(due_floor_ms_, *min_due_ms);
      ++due_generation_;
      ++due_writes_in_flight_;
    }
    // Written without sync: the syncer thread makes kSync ops durable, so
    // that unsynced writes never wait behind an fsync.
    const auto start = options_.observer != nullptr
                           ? std::chrono::steady_clock::now()
                           : std::chrono::steady_clock::time_point();
    s = db_->Write(rocksdb::WriteOptions(), batch->batch());
    ++write_batches_;
    if (options_.observer != nullptr && s.ok()) {
      options_.observer->OnBatchWritten(
          static_cast<int64_t>(group.size()),
          static_cast<int64_t>(batch->batch()->GetDataSize()),
          SecondsSince(start));
    }
    if (min_due_ms.has_value()) {
      absl::MutexLock lock(&due_mu_);
      --due_writes_in_flight_;
    }
  }
  if (s.ok()) {
    if (writes && health_->ClearUnavailable()) {
      LOG(WARNING) << "RocksDBStore: writes succeed again";
    }
    return;
  }
  // Later ops were evaluated against earlier ones' changes, so no outcome
  // in the group can be trusted.
  absl::Status error = FromRocks(s, "RocksDBStore: write");
  if (IsFatalRocksError(s)) {
    health_->SetFatal(error);
  } else {
    health_->SetUnavailable(error);
  }
  error = absl::UnavailableError(error.message());
  for (size_t i = 0; i < group.size(); ++i) {
    if (group[i].rejected.ok()) outcomes[i].status = error;
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
    const bool needs_sync =
        std::any_of(pending.begin(), pending.end(),
                    [](const Pending& p) { return p.outcome.status.ok(); });
    // A store that cannot write now is not synced either: RocksDB's WAL
    // writer must not be synced after one of its appends failed (its debug
    // checks abort the process), and what was written since is not known to
    // be on disk. The writes wait in the WAL for the next sync after the
    // store resumes; their callers hear UNAVAILABLE (stored or not unknown).
    absl::Status error = needs_sync ? health_->Get() : absl::OkStatus();
    if (!error.ok()) error = absl::UnavailableError(error.message());
    if (needs_sync && error.ok()) {
      // Everything written up to here is covered by the fsync below.
      const rocksdb::SequenceNumber covered = db_->GetLatestSequenceNumber();
      // One fsync for every op written before it: group commit.
      const auto start = options_.observer != nullptr
                             ? std::chrono::steady_clock::now()
                             : std::chrono::steady_clock::time_point();
      rocksdb::Status s = db_->SyncWAL();
      ++synced_batches_;
      if (options_.observer != nullptr && s.ok()) {
        options_.observer->OnWalSynced(SecondsSince(start));
      }
      if (s.ok()) {
        if (absl::Status recorded = synced_file_.Record(covered);
            !recorded.ok()) {
          LOG(WARNING) << "RocksDBStore: " << recorded;
        }
      } else {
        // Latched: after a failed fsync the unsynced pages may be gone, so
        // nothing written since can be promised.
        health_->SetFatal(FromRocks(s, "WAL sync failed"));
        error = health_->FatalWriteError();
      }
    }
    for (Pending& p : pending) {
      if (!error.ok() && p.outcome.status.ok()) p.outcome.status = error;
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
  if (op.kind == Op::Kind::kDeleteFinished) {
    if (outcome.status.ok()) {
      op.delete_done(outcome.deleted);
    } else {
      op.delete_done(std::move(outcome.status));
    }
  } else if (op.kind != Op::Kind::kCreate) {
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

}  // namespace dtmd::storage
