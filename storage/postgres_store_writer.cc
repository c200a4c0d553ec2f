// PostgresStore: the writer (group commit over a libpq pipeline), its
// connection's failures and the answers of the writes.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "storage/postgres_store_impl.h"

namespace dtmd::storage {
namespace {

constexpr std::chrono::milliseconds kMinBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{1000};
// How long a reconnection attempt of the writer may take.
constexpr int kReconnectTimeoutS = 2;

absl::Status Unknown(const absl::Status& why) {
  return absl::UnavailableError(absl::StrCat(
      "PostgreSQL connection lost during the write; its outcome is unknown "
      "(the commit may or may not have been applied): ",
      why.message()));
}

}  // namespace

PostgresStore::Impl::Impl(PostgresStoreOptions options)
    : options_(std::move(options)) {}

PostgresStore::Impl::~Impl() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (writer_.joinable()) writer_.join();
  if (renewer_.joinable()) renewer_.join();
  if (options_.release_leases_on_close) ReleaseAll();
  writer_conn_.reset();
  absl::MutexLock lock(&pool_mu_);
  idle_.clear();
}

void PostgresStore::Impl::ReleaseAll() {
  std::vector<std::string> gids;
  std::vector<int64_t> epochs;
  {
    absl::MutexLock lock(&lease_mu_);
    for (const auto& [gid, lease] : leases_) {
      gids.push_back(gid);
      epochs.push_back(lease.epoch);
    }
    leases_.clear();
  }
  if (gids.empty() || !pg::CheckAlive(writer_conn_.get())) return;
  pg::Params params;
  params.Text(pg::TextArray(gids))
      .Text(pg::IntArray(epochs))
      .Text(options_.replica_id);
  absl::StatusOr<pg::Result> released = pg::Exec(
      writer_conn_.get(),
      "UPDATE dtmd_trans t SET owner = NULL, lease_until_ms = 0 "
      "FROM unnest($1::text[], $2::bigint[]) AS v(gid, epoch) "
      "WHERE t.gid = v.gid AND t.owner = $3::text AND t.epoch = v.epoch",
      params, "PostgresStore: release leases");
  if (!released.ok()) {
    LOG(WARNING) << "PostgresStore: " << released.status().message()
                 << " (the leases expire by themselves)";
  }
}

absl::Status PostgresStore::Impl::Start() {
  const absl::Time deadline = absl::Now() + options_.connect_timeout;
  absl::Status last;
  for (int attempt = 0;; ++attempt) {
    const absl::Duration left = deadline - absl::Now();
    const int timeout_s =
        static_cast<int>(std::clamp<int64_t>(absl::ToInt64Seconds(left), 1, 5));
    absl::StatusOr<pg::Conn> conn = pg::Connect(options_.dsn, timeout_s);
    if (conn.ok()) {
      writer_conn_ = *std::move(conn);
      break;
    }
    last = conn.status();
    if (absl::Now() + absl::Milliseconds(500) >= deadline) {
      return absl::UnavailableError(
          absl::StrCat("PostgresStore: gave up connecting after ",
                       absl::FormatDuration(options_.connect_timeout), ": ",
                       last.message()));
    }
    LOG(WARNING) << "PostgresStore: " << last.message() << " (retrying)";
    absl::SleepFor(absl::Milliseconds(500));
  }
  if (absl::Status s = MigrateSchema(writer_conn_.get()); !s.ok()) return s;
  if (absl::Status s = PrepareWrites(writer_conn_.get()); !s.ok()) return s;
  LOG(INFO) << "PostgresStore: connected, schema version "
            << PostgresStore::SchemaVersion() << ", replica "
            << options_.replica_id;
  writer_ = std::thread([this] { WriterLoop(); });
  renewer_ = std::thread([this] { RenewLoop(); });
  return absl::OkStatus();
}

void PostgresStore::Impl::Enqueue(Op op) {
  const int64_t bytes = op.params.bytes() + 64;
  absl::MutexLock lock(&mu_);
  if (op.rejected.ok() && (queued_writes_ >= options_.max_queued_writes ||
                           queued_bytes_ + bytes > options_.max_queued_bytes)) {
    op.rejected = absl::ResourceExhaustedError(
        absl::StrCat("store write queue full (", queued_writes_, " writes, ",
                     queued_bytes_, " bytes queued)"));
    op.params = pg::Params();
    op.trans.Clear();
    op.branches.clear();
  } else if (op.rejected.ok()) {
    op.bytes = bytes;
    ++queued_writes_;
    queued_bytes_ += bytes;
  }
  queue_.push_back(std::move(op));
  ++issued_;
}

void PostgresStore::Impl::Flush() {
  absl::MutexLock lock(&mu_);
  const int64_t target = issued_;
  auto done = [this, target]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return completed_ >= target;
  };
  mu_.Await(absl::Condition(&done));
}

absl::Status PostgresStore::Impl::WriteHealth() {
  absl::MutexLock lock(&mu_);
  return health_;
}

PostgresStore::Stats PostgresStore::Impl::GetStats() const {
  PostgresStore::Stats stats;
  {
    absl::MutexLock lock(&mu_);
    stats.write_batches = write_batches_;
    stats.operations = operations_;
  }
  absl::MutexLock lock(&lease_mu_);
  stats.leases_held = static_cast<int64_t>(leases_.size());
  return stats;
}

void PostgresStore::Impl::Disconnected(const absl::Status& why) {
  if (writer_conn_ != nullptr) {
    LOG(WARNING) << "PostgresStore: writer disconnected: " << why.message();
  }
  writer_conn_.reset();
  backoff_ = kMinBackoff;
  next_reconnect_ = std::chrono::steady_clock::now();
  absl::MutexLock lock(&mu_);
  if (health_.ok()) {
    health_ = absl::UnavailableError(
        absl::StrCat("PostgreSQL unreachable: ", why.message()));
  }
}

bool PostgresStore::Impl::TryReconnect() {
  const SteadyTime now = std::chrono::steady_clock::now();
  if (now < next_reconnect_) return false;
  absl::StatusOr<pg::Conn> conn = pg::Connect(options_.dsn, kReconnectTimeoutS);
  if (conn.ok()) {
    if (absl::Status s = PrepareWrites(conn->get()); !s.ok()) conn = s;
  }
  if (!conn.ok()) {
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
    next_reconnect_ = std::chrono::steady_clock::now() + backoff_;
    absl::MutexLock lock(&mu_);
    health_ = absl::UnavailableError(
        absl::StrCat("PostgreSQL unreachable: ", conn.status().message()));
    return false;
  }
  writer_conn_ = *std::move(conn);
  backoff_ = kMinBackoff;
  absl::MutexLock lock(&mu_);
  if (!health_.ok()) LOG(INFO) << "PostgresStore: writer reconnected";
  health_ = absl::OkStatus();
  return true;
}

void PostgresStore::Impl::WriterLoop() {
  for (;;) {
    std::vector<Op> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return !queue_.empty() || stopping_;
      };
      absl::Duration wait = absl::Seconds(1);
      if (writer_conn_ == nullptr) {
        const auto left = next_reconnect_ - std::chrono::steady_clock::now();
        wait = std::max(absl::FromChrono(left), absl::ZeroDuration());
      }
      mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
      if (queue_.empty() && stopping_) break;
      while (!queue_.empty() &&
             batch.size() <
                 static_cast<size_t>(options_.max_writes_per_batch)) {
        Op& op = queue_.front();
        if (op.rejected.ok()) {
          --queued_writes_;
          queued_bytes_ -= op.bytes;
        }
        batch.push_back(std::move(op));
        queue_.pop_front();
      }
    }
    // A connection the server closed (a restart) is replaced before it is
    // used, so that no write fails for it.
    if (writer_conn_ != nullptr && !pg::CheckAlive(writer_conn_.get())) {
      Disconnected(absl::UnavailableError("the server closed the connection"));
    }
    if (writer_conn_ == nullptr) TryReconnect();
    if (!batch.empty()) RunBatch(batch);
  }
}

absl::Status PostgresStore::Impl::RunPipeline(const std::vector<Op*>& ops,
                                              std::vector<pg::Result>* results,
                                              bool* connection_lost) {
  PGconn* conn = writer_conn_.get();
  results->clear();
  results->resize(ops.size());
  *connection_lost = false;
  const bool no_sync = std::all_of(ops.begin(), ops.end(), [](const Op* op) {
    return op->durability == Durability::kNoSync;
  });
  auto lost = [&](absl::string_view what) {
    *connection_lost = true;
    return pg::ErrorOf(conn, nullptr, what);
  };
  if (PQenterPipelineMode(conn) != 1) return lost("PostgresStore: pipeline");
  // What was sent: -1 for the transaction's own statements, else the op.
  std::vector<int> sent;
  // `sql` is the statement itself (index -1) or the name of the op's
  // prepared statement.
  auto send = [&](const char* sql, const pg::Params* params, int index) {
    const int queued =
        params == nullptr
            ? PQsendQueryParams(conn, sql, 0, nullptr, nullptr, nullptr,
                                nullptr, 0)
            : PQsendQueryPrepared(conn, sql, params->size(), params->values(),
                                  params->lengths(), params->formats(), 0);
    if (queued != 1) return false;
    sent.push_back(index);
    return true;
  };
  bool ok = send("BEGIN", nullptr, -1);
  if (ok && no_sync) {
    ok = send("SET LOCAL synchronous_commit = off", nullptr, -1);
  }
  for (size_t i = 0; ok && i < ops.size(); ++i) {
    ok = send(StatementName(ops[i]->kind).c_str(), &ops[i]->params,
              static_cast<int>(i));
  }
  if (ok) ok = send("COMMIT", nullptr, -1);
  if (!ok || PQpipelineSync(conn) != 1) {
    absl::Status s = lost("PostgresStore: send");
    writer_conn_.reset();  // In the middle of a pipeline: not reusable.
    return s;
  }
  absl::Status first_error;
  for (int index : sent) {
    pg::Result result(PQgetResult(conn));
    if (result == nullptr) return lost("PostgresStore: no result");
    const ExecStatusType status = PQresultStatus(result.get());
    if (status == PGRES_FATAL_ERROR) {
      if (!pg::Usable(conn)) {
        return lost(PQresultErrorMessage(result.get()));
      }
      if (first_error.ok()) {
        first_error = pg::ErrorOf(conn, result.get(), "PostgresStore: write");
      }
    } else if (status != PGRES_PIPELINE_ABORTED && index >= 0) {
      (*results)[index] = std::move(result);
    }
    // Each statement's results end with a null.
    while (PGresult* extra = PQgetResult(conn)) PQclear(extra);
  }
  pg::Result sync(PQgetResult(conn));
  if (sync == nullptr || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) {
    return lost("PostgresStore: pipeline sync");
  }
  if (PQexitPipelineMode(conn) != 1) return lost("PostgresStore: pipeline");
  if (!first_error.ok()) {
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
      pg::Result rollback(PQexec(conn, "ROLLBACK"));
    }
    if (!pg::Usable(conn)) *connection_lost = true;
    return first_error;
  }
  return absl::OkStatus();
}

void PostgresStore::Impl::RunBatch(std::vector<Op>& batch) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<absl::Status> statuses(batch.size());
  std::vector<pg::Result> results(batch.size());
  std::vector<Op*> live;
  std::vector<size_t> where;
  int64_t bytes = 0;
  bool any_sync = false;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].rejected.ok()) {
      statuses[i] = batch[i].rejected;
      continue;
    }
    live.push_back(&batch[i]);
    where.push_back(i);
    bytes += batch[i].params.bytes();
    any_sync = any_sync || batch[i].durability == Durability::kSync;
  }
  int64_t committed = 0;
  if (!live.empty()) {
    absl::Status unreachable;
    if (writer_conn_ == nullptr) {
      unreachable = WriteHealth();
      if (unreachable.ok()) {
        unreachable = absl::UnavailableError("PostgreSQL unreachable");
      }
    }
    bool lost = false;
    std::vector<pg::Result> out;
    absl::Status s =
        unreachable.ok() ? RunPipeline(live, &out, &lost) : unreachable;
    if (s.ok()) {
      ++committed;
      for (size_t j = 0; j < live.size(); ++j) {
        results[where[j]] = std::move(out[j]);
      }
    } else if (!unreachable.ok() || lost) {
      for (size_t j = 0; j < live.size(); ++j) {
        statuses[where[j]] = unreachable.ok() ? Unknown(s) : unreachable;
      }
      if (lost) Disconnected(s);
    } else {
      // A statement failed: each write alone, so that it fails alone.
      LOG(WARNING) << "PostgresStore: batch of " << live.size()
                   << " writes failed (" << s.message()
                   << "); retrying them one by one";
      for (size_t j = 0; j < live.size(); ++j) {
        if (writer_conn_ == nullptr) {
          statuses[where[j]] = WriteHealth();
          if (statuses[where[j]].ok()) {
            statuses[where[j]] =
                absl::UnavailableError("PostgreSQL unreachable");
          }
          continue;
        }
        s = RunPipeline({live[j]}, &out, &lost);
        if (s.ok()) {
          ++committed;
          results[where[j]] = std::move(out[0]);
        } else if (lost) {
          statuses[where[j]] = Unknown(s);
          Disconnected(s);
        } else if (absl::IsAborted(s)) {
          // A serialization failure or deadlock: transient. ABORTED means
          // a lost lease to the engine (and a failed transaction to a
          // client).
          statuses[where[j]] = absl::UnavailableError(s.message());
        } else {
          statuses[where[j]] = s;
        }
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (committed > 0 && options_.observer != nullptr) {
    options_.observer->OnBatchWritten(static_cast<int64_t>(live.size()), bytes,
                                      seconds);
    if (any_sync) options_.observer->OnWalSynced(seconds);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    Answer(batch[i], statuses[i], results[i].get());
  }
  absl::MutexLock lock(&mu_);
  write_batches_ += committed;
  operations_ += static_cast<int64_t>(live.size());
  completed_ += static_cast<int64_t>(batch.size());
}

namespace {

// Why a conditional write (update, append, put) wrote nothing, from the
// stored status, owner and epoch its statement returned.
absl::Status ConditionFailed(const PGresult* result, absl::string_view gid,
                             const std::string* expected_status,
                             absl::string_view me, int64_t epoch,
                             bool* lease_lost) {
  *lease_lost = false;
  if (pg::IsNull(result, 0, 1)) {
    if (expected_status == nullptr) {  // PutBranches: no record, no lease.
      *lease_lost = true;
      return absl::AbortedError(absl::StrCat(
          "lease of ", gid, " lost: the transaction does not exist"));
    }
    return absl::NotFoundError(absl::StrCat("transaction ", gid, " not found"));
  }
  const std::string status = pg::GetText(result, 0, 1);
  const bool owned = !pg::IsNull(result, 0, 2) &&
                     pg::GetText(result, 0, 2) == me &&
                     pg::GetInt(result, 0, 3) == epoch;
  if (!owned) {
    *lease_lost = true;
    return absl::AbortedError(
        absl::StrCat("lease of ", gid, " lost: held by ",
                     pg::IsNull(result, 0, 2) ? std::string("nobody")
                                              : pg::GetText(result, 0, 2),
                     " at epoch ", pg::GetInt(result, 0, 3),
                     ", this write had epoch ", epoch));
  }
  if (expected_status != nullptr && status != *expected_status) {
    return absl::FailedPreconditionError(absl::StrCat(
        "transaction ", gid, " is ", status, ", expected ", *expected_status));
  }
  return absl::UnavailableError(
      absl::StrCat("transaction ", gid, " changed concurrently; retry"));
}

}  // namespace

void PostgresStore::Impl::Answer(Op& op, absl::Status status,
                                 const PGresult* result) {
  if (status.ok() && result == nullptr) {
    status = absl::UnknownError("PostgresStore: no result for the write");
  }
  if (status.ok() && PQresultStatus(result) == PGRES_TUPLES_OK &&
      PQntuples(result) < 1 && op.kind != Op::Kind::kSubscribe) {
    status = absl::UnknownError("PostgresStore: empty result for the write");
  }
  switch (op.kind) {
    case Op::Kind::kCreate: {
      absl::StatusOr<CreateResult> answer;
      if (!status.ok()) {
        answer = status;
      } else if (pg::GetInt(result, 0, 0) > 0) {
        CreateResult created;
        created.created = true;
        created.trans = std::move(op.trans);
        created.branches = std::move(op.branches);
        answer = std::move(created);
      } else if (pg::IsNull(result, 0, 1)) {
        // Created by another replica after this statement's snapshot.
        answer = absl::UnavailableError(absl::StrCat(
            "transaction ", op.gid, " was created concurrently; retry"));
      } else {
        CreateResult existing;
        if (!existing.existing.ParseFromString(pg::GetBytes(result, 0, 1))) {
          answer = absl::DataLossError(
              absl::StrCat("corrupt record for transaction ", op.gid));
        } else {
          answer = std::move(existing);
        }
      }
      if (op.provisional_lease) {
        SettleCreateLease(op.gid, answer.ok() && answer->created);
      }
      if (op.create_done) op.create_done(std::move(answer));
      return;
    }
    case Op::Kind::kUpdate:
    case Op::Kind::kAppend:
    case Op::Kind::kPutBranches:
      if (status.ok() && pg::GetInt(result, 0, 0) == 0) {
        bool lease_lost = false;
        status = ConditionFailed(
            result, op.gid,
            op.kind == Op::Kind::kPutBranches ? nullptr : &op.expected_status,
            options_.replica_id, op.epoch, &lease_lost);
        if (lease_lost) {
          absl::MutexLock lock(&lease_mu_);
          auto it = leases_.find(op.gid);
          if (it != leases_.end() && it->second.epoch == op.epoch) {
            leases_.erase(it);
          }
        }
      }
      break;
    case Op::Kind::kSubscribe:
      if (status.ok() && PQntuples(result) == 0) {
        status = absl::AlreadyExistsError(
            absl::StrCat("url ", op.expected_status,
                         " is already subscribed to topic ", op.gid));
      }
      break;
    case Op::Kind::kUnsubscribe:
      if (status.ok() && pg::GetInt(result, 0, 0) == 0) {
        status = pg::GetText(result, 0, 1) == "t"
                     ? absl::NotFoundError(
                           absl::StrCat("url ", op.expected_status,
                                        " is not subscribed to topic ", op.gid))
                     : absl::NotFoundError(
                           absl::StrCat("topic ", op.gid, " not found"));
      }
      break;
    case Op::Kind::kDeleteTopic:
      if (status.ok() && pg::GetInt(result, 0, 0) == 0) {
        status =
            absl::NotFoundError(absl::StrCat("topic ", op.gid, " not found"));
      }
      break;
    case Op::Kind::kDeleteFinished:
      if (op.delete_done) {
        if (status.ok()) {
          op.delete_done(pg::GetInt(result, 0, 0));
        } else {
          op.delete_done(status);
        }
      }
      return;
    case Op::Kind::kRelease:
      if (!status.ok()) {
        LOG(WARNING) << "PostgresStore: release of the lease of " << op.gid
                     << " failed (it expires by itself): " << status;
      }
      return;
  }
  if (op.status_done) op.status_done(std::move(status));
}

}  // namespace dtmd::storage
