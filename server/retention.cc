#include "server/retention.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/synchronization/notification.h"
#include "glog/logging.h"

namespace dtmd {
namespace {

int64_t PassInterval(const RetentionOptions& options) {
  if (options.pass_interval_ms > 0) return options.pass_interval_ms;
  return std::clamp<int64_t>(options.retention_ms / 2, 100, 60 * 1000);
}

}  // namespace

Retention::Retention(RetentionOptions options, storage::Store* store,
                     Clock* clock, Filter busy)
    : options_(options), store_(store), clock_(clock), busy_(std::move(busy)) {}

Retention::~Retention() { Stop(); }

void Retention::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void Retention::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool Retention::Sleep(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
  return !stopping_;
}

void Retention::Loop() {
  const absl::Duration interval = absl::Milliseconds(PassInterval(options_));
  do {
    absl::StatusOr<PassResult> pass = RunPass();
    if (!pass.ok()) {
      LOG(WARNING) << "retention: pass ended early: " << pass.status();
    } else if (pass->deleted > 0) {
      LOG(INFO) << "retention: deleted " << pass->deleted
                << " finished transactions in " << pass->batches << " batches"
                << (pass->reclaimed ? ", space reclaimed" : "");
    }
  } while (Sleep(interval));
}

absl::StatusOr<Retention::PassResult> Retention::RunPass() {
  PassResult result;
  ++passes_;
  const int64_t cutoff = clock_->NowMs() - options_.retention_ms;
  std::optional<storage::FinishedTrans> after;
  absl::Status status;
  while (cutoff > 0) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
    }
    // A store that cannot write now would only refuse the deletions.
    if (status = store_->WriteHealth(); !status.ok()) break;
    absl::StatusOr<std::vector<storage::FinishedTrans>> batch =
        store_->ScanFinished(cutoff, after, options_.batch_size);
    if (!batch.ok()) {
      status = batch.status();
      break;
    }
    if (batch->empty()) break;
    const bool last = static_cast<int>(batch->size()) < options_.batch_size;
    after = batch->back();
    const size_t found = batch->size();
    if (busy_) busy_(&*batch);
    result.skipped += static_cast<int64_t>(found - batch->size());
    if (!batch->empty()) {
      absl::Notification done;
      absl::StatusOr<int64_t> deleted;
      store_->DeleteFinished(*std::move(batch), [&](absl::StatusOr<int64_t> n) {
        deleted = std::move(n);
        done.Notify();
      });
      done.WaitForNotification();
      ++result.batches;
      if (!deleted.ok()) {
        status = deleted.status();
        break;
      }
      result.deleted += *deleted;
      deleted_total_ += *deleted;
      deleted_since_compact_ += *deleted;
    }
    if (last || !Sleep(absl::Milliseconds(options_.batch_pause_ms))) break;
  }
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
  }
  if (!stopping && deleted_since_compact_ > 0 &&
      absl::Now() - last_compact_ >=
          absl::Milliseconds(options_.compact_interval_ms)) {
    last_compact_ = absl::Now();
    if (absl::Status reclaimed = store_->ReclaimSpace(); !reclaimed.ok()) {
      LOG(WARNING) << "retention: " << reclaimed;
    } else {
      deleted_since_compact_ = 0;
      result.reclaimed = true;
    }
  }
  if (!status.ok()) return status;
  return result;
}

}  // namespace dtmd
