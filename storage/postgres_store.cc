// PostgresStore: Open, the schema migration and the write operations (each
// a statement queued for the writer; see postgres_store_writer.cc).
#include "storage/postgres_store.h"

#include <unistd.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "storage/encoding.h"
#include "storage/postgres_store_impl.h"
#include "storage/postgres_support.h"

namespace dtmd::storage {
namespace {

// Serializes the schema migrations of replicas that start together.
constexpr int64_t kMigrationLockKey = 0x64746d64;  // "dtmd"

constexpr char kCreateSql[] = R"sql(
WITH ins AS (
  INSERT INTO dtmd_trans (gid, status, trans_type, next_cron_time_ms,
                          create_time_ms, finish_time_ms, owner, epoch,
                          lease_until_ms, record)
  VALUES ($1::text, $2::text, $3::text, $4::bigint, $5::bigint, $6::bigint,
          $7::text, CASE WHEN $7::text IS NULL THEN 0 ELSE 1 END,
          CASE WHEN $7::text IS NULL THEN 0
               ELSE dtmd_now_ms() + $8::bigint END, $9::bytea)
  ON CONFLICT (gid) DO NOTHING
  RETURNING gid),
br AS (
  INSERT INTO dtmd_branch (gid, position, branch_id, op, url, bin_data,
                           create_time_ms, status, finish_time_ms, last_error,
                           last_code, call_count)
  SELECT ins.gid, (v.n - 1)::integer, v.branch_id, v.op, v.url,
         decode(v.bin, 'hex'), v.ct, v.st, v.ft, v.le, v.lc, v.cc
  FROM ins, unnest($10::text[], $11::text[], $12::text[], $13::text[],
                   $14::bigint[], $15::text[], $16::bigint[], $17::text[],
                   $18::integer[], $19::bigint[])
       WITH ORDINALITY AS v(branch_id, op, url, bin, ct, st, ft, le, lc, cc, n)
  RETURNING 1)
SELECT (SELECT count(*) FROM ins),
       (SELECT record FROM dtmd_trans WHERE gid = $1::text))sql";

constexpr char kUpdateSql[] = R"sql(
WITH cur AS (
  SELECT status, owner, epoch FROM dtmd_trans WHERE gid = $1::text),
up AS (
  UPDATE dtmd_trans
  SET status = $3::text, trans_type = $4::text, next_cron_time_ms = $5::bigint,
      create_time_ms = $6::bigint, finish_time_ms = $7::bigint,
      record = $8::bytea
  WHERE gid = $1::text AND status = $2::text AND owner = $9::text
    AND epoch = $10::bigint
  RETURNING 1),
br AS (
  UPDATE dtmd_branch b
  SET status = v.st, finish_time_ms = v.ft, last_error = v.le,
      last_code = v.lc, call_count = v.cc
  FROM unnest($11::integer[], $12::text[], $13::bigint[], $14::text[],
              $15::integer[], $16::bigint[]) AS v(pos, st, ft, le, lc, cc)
  WHERE b.gid = $1::text AND b.position = v.pos AND EXISTS (SELECT 1 FROM up)
  RETURNING 1)
SELECT (SELECT count(*) FROM up), cur.status, cur.owner, cur.epoch
FROM (SELECT 1) AS one LEFT JOIN cur ON true)sql";

constexpr char kPutBranchesSql[] = R"sql(
WITH cur AS (
  SELECT status, owner, epoch FROM dtmd_trans WHERE gid = $1::text
  FOR UPDATE),
ok AS (SELECT 1 FROM cur WHERE owner = $2::text AND epoch = $3::bigint),
br AS (
  UPDATE dtmd_branch b
  SET status = v.st, finish_time_ms = v.ft, last_error = v.le,
      last_code = v.lc, call_count = v.cc
  FROM unnest($4::integer[], $5::text[], $6::bigint[], $7::text[],
              $8::integer[], $9::bigint[]) AS v(pos, st, ft, le, lc, cc)
  WHERE b.gid = $1::text AND b.position = v.pos AND EXISTS (SELECT 1 FROM ok)
  RETURNING 1)
SELECT (SELECT count(*) FROM ok), cur.status, cur.owner, cur.epoch
FROM (SELECT 1) AS one LEFT JOIN cur ON true)sql";

constexpr char kAppendSql[] = R"sql(
WITH cur AS (
  SELECT status, owner, epoch FROM dtmd_trans WHERE gid = $1::text
  FOR UPDATE),
ok AS (
  SELECT 1 FROM cur
  WHERE status = $2::text AND owner = $3::text AND epoch = $4::bigint),
n AS (SELECT count(*)::integer AS c FROM dtmd_branch WHERE gid = $1::text),
ins AS (
  INSERT INTO dtmd_branch (gid, position, branch_id, op, url, bin_data,
                           create_time_ms, status, finish_time_ms, last_error,
                           last_code, call_count)
  SELECT $1::text, n.c + (v.n - 1)::integer, v.branch_id, v.op, v.url,
         decode(v.bin, 'hex'), v.ct, v.st, v.ft, v.le, v.lc, v.cc
  FROM ok, n, unnest($5::text[], $6::text[], $7::text[], $8::text[],
                     $9::bigint[], $10::text[], $11::bigint[], $12::text[],
                     $13::integer[], $14::bigint[])
       WITH ORDINALITY AS v(branch_id, op, url, bin, ct, st, ft, le, lc, cc, n)
  RETURNING 1)
SELECT (SELECT count(*) FROM ok), cur.status, cur.owner, cur.epoch
FROM (SELECT 1) AS one LEFT JOIN cur ON true)sql";

constexpr char kSubscribeSql[] = R"sql(
INSERT INTO dtmd_topic (topic, url, remark)
VALUES ($1::text, $2::text, $3::text)
ON CONFLICT (topic, url) DO NOTHING
RETURNING 1)sql";

constexpr char kUnsubscribeSql[] = R"sql(
WITH d AS (
  DELETE FROM dtmd_topic WHERE topic = $1::text AND url = $2::text
  RETURNING 1)
SELECT (SELECT count(*) FROM d),
       EXISTS (SELECT 1 FROM dtmd_topic WHERE topic = $1::text))sql";

constexpr char kDeleteTopicSql[] = R"sql(
WITH d AS (DELETE FROM dtmd_topic WHERE topic = $1::text RETURNING 1)
SELECT count(*) FROM d)sql";

constexpr char kDeleteFinishedSql[] = R"sql(
WITH v AS (
  SELECT * FROM unnest($1::text[], $2::bigint[]) AS v(gid, t)),
d AS (
  DELETE FROM dtmd_trans t USING v
  WHERE t.gid = v.gid AND t.status IN ('succeed', 'failed')
    AND t.finish_time_ms = v.t
  RETURNING t.gid),
b AS (DELETE FROM dtmd_branch b USING d WHERE b.gid = d.gid RETURNING 1)
SELECT count(*) FROM d)sql";

constexpr char kReleaseSql[] = R"sql(
UPDATE dtmd_trans SET owner = NULL, lease_until_ms = 0
WHERE gid = $1::text AND owner = $2::text AND epoch = $3::bigint)sql";

}  // namespace

const char* PostgresStore::Impl::WriteSql(Op::Kind kind) {
  switch (kind) {
    case Op::Kind::kCreate:
      return kCreateSql;
    case Op::Kind::kUpdate:
      return kUpdateSql;
    case Op::Kind::kPutBranches:
      return kPutBranchesSql;
    case Op::Kind::kAppend:
      return kAppendSql;
    case Op::Kind::kSubscribe:
      return kSubscribeSql;
    case Op::Kind::kUnsubscribe:
      return kUnsubscribeSql;
    case Op::Kind::kDeleteTopic:
      return kDeleteTopicSql;
    case Op::Kind::kDeleteFinished:
      return kDeleteFinishedSql;
    case Op::Kind::kRelease:
      return kReleaseSql;
  }
  return "";
}

std::string PostgresStore::Impl::StatementName(Op::Kind kind) {
  return absl::StrCat("dtmd_write_", static_cast<int>(kind));
}

absl::Status PostgresStore::Impl::PrepareWrites(PGconn* conn) {
  for (int kind = 0; kind <= static_cast<int>(Op::Kind::kRelease); ++kind) {
    const Op::Kind k = static_cast<Op::Kind>(kind);
    pg::Result result(
        PQprepare(conn, StatementName(k).c_str(), WriteSql(k), 0, nullptr));
    if (result == nullptr || PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
      return pg::ErrorOf(
          conn, result.get(),
          absl::StrCat("PostgresStore: prepare ", StatementName(k)));
    }
  }
  return absl::OkStatus();
}

namespace {

// The finish-time column: set for final records only.
int64_t FinishColumn(const TransRecord& trans) {
  return IsFinalStatus(trans.status()) ? FinishedTime(trans) : 0;
}

// The branch columns of a create: definition and initial state, one array
// per column.
void AddNewBranches(const std::vector<BranchRecord>& branches,
                    pg::Params* params) {
  std::vector<std::string> ids, ops, urls, bins, statuses, errors;
  std::vector<int64_t> create_times, finish_times, codes, counts;
  for (const BranchRecord& b : branches) {
    ids.push_back(b.branch_id());
    ops.push_back(b.op());
    urls.push_back(b.url());
    bins.push_back(b.bin_data());
    create_times.push_back(b.create_time_ms());
    statuses.push_back(b.status());
    finish_times.push_back(b.finish_time_ms());
    errors.push_back(b.last_error());
    codes.push_back(b.last_code());
    counts.push_back(b.call_count());
  }
  params->Text(pg::TextArray(ids))
      .Text(pg::TextArray(ops))
      .Text(pg::TextArray(urls))
      .Text(pg::HexArray(bins))
      .Text(pg::IntArray(create_times))
      .Text(pg::TextArray(statuses))
      .Text(pg::IntArray(finish_times))
      .Text(pg::TextArray(errors))
      .Text(pg::IntArray(codes))
      .Text(pg::IntArray(counts));
}

// The mutable state of `branches` (positions checked by the caller).
void AddBranchStates(const std::vector<BranchRecord>& branches,
                     pg::Params* params) {
  std::vector<std::string> statuses, errors;
  std::vector<int64_t> positions, finish_times, codes, counts;
  for (const BranchRecord& b : branches) {
    positions.push_back(b.position());
    statuses.push_back(b.status());
    finish_times.push_back(b.finish_time_ms());
    errors.push_back(b.last_error());
    codes.push_back(b.last_code());
    counts.push_back(b.call_count());
  }
  params->Text(pg::IntArray(positions))
      .Text(pg::TextArray(statuses))
      .Text(pg::IntArray(finish_times))
      .Text(pg::TextArray(errors))
      .Text(pg::IntArray(codes))
      .Text(pg::IntArray(counts));
}

absl::Status CheckPositions(absl::string_view gid,
                            const std::vector<BranchRecord>& branches) {
  for (const BranchRecord& branch : branches) {
    if (branch.position() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "negative branch position ", branch.position(), " for gid ", gid));
    }
  }
  return absl::OkStatus();
}

absl::Status LeaseNotHeld(absl::string_view gid) {
  return absl::AbortedError(
      absl::StrCat("lease of ", gid, " not held by this replica"));
}

std::string DefaultReplicaId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device random;
  return absl::StrCat(host[0] != '\0' ? host : "dtmd", "-", getpid(), "-",
                      absl::Hex(random(), absl::kZeroPad8));
}

}  // namespace

absl::Status MigrateSchema(PGconn* conn) {
  const pg::Params none;
  absl::StatusOr<pg::Result> locked = pg::Exec(
      conn,
      absl::StrCat("SELECT pg_advisory_lock(", kMigrationLockKey, ")").c_str(),
      none, "PostgresStore: lock for the schema migration");
  if (!locked.ok()) return locked.status();
  auto unlock = [conn, &none] {
    (void)pg::Exec(
        conn,
        absl::StrCat("SELECT pg_advisory_unlock(", kMigrationLockKey, ")")
            .c_str(),
        none, "PostgresStore: unlock");
  };
  absl::Status s =
      pg::ExecScript(conn,
                     "CREATE TABLE IF NOT EXISTS dtmd_schema_version ("
                     "version integer PRIMARY KEY, "
                     "applied_at timestamptz NOT NULL DEFAULT now())",
                     "PostgresStore: create dtmd_schema_version");
  if (!s.ok()) {
    unlock();
    return s;
  }
  absl::StatusOr<pg::Result> current = pg::Exec(
      conn, "SELECT coalesce(max(version), 0) FROM dtmd_schema_version", none,
      "PostgresStore: read the schema version");
  if (!current.ok()) {
    unlock();
    return current.status();
  }
  const int64_t version = pg::GetInt(current->get(), 0, 0);
  const int known = PostgresStore::SchemaVersion();
  if (version > known) {
    unlock();
    return absl::FailedPreconditionError(
        absl::StrCat("PostgresStore: the database has schema version ", version,
                     ", newer than version ", known,
                     " that this dtmd knows; run a newer dtmd"));
  }
  for (int i = 0; i < kPostgresSchemaFileCount; ++i) {
    const SchemaFile& file = kPostgresSchemaFiles[i];
    if (file.version <= version) continue;
    LOG(INFO) << "PostgresStore: applying schema " << file.name;
    const std::string script =
        absl::StrCat("BEGIN;\n", file.sql,
                     "\n;INSERT INTO dtmd_schema_version (version) VALUES (",
                     file.version, ");\nCOMMIT;");
    s = pg::ExecScript(conn, script.c_str(),
                       absl::StrCat("PostgresStore: schema ", file.name));
    if (!s.ok()) {
      (void)pg::ExecScript(conn, "ROLLBACK", "rollback");
      unlock();
      return s;
    }
  }
  unlock();
  return absl::OkStatus();
}

int PostgresStore::SchemaVersion() {
  return kPostgresSchemaFiles[kPostgresSchemaFileCount - 1].version;
}

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(
    PostgresStoreOptions options) {
  if (options.dsn.empty()) {
    return absl::InvalidArgumentError("PostgresStore: empty dsn");
  }
  if (options.replica_id.empty()) options.replica_id = DefaultReplicaId();
  if (options.lease_ms < 100) options.lease_ms = 100;
  pg::SetAnswerTimeout(options.answer_timeout);
  if (options.max_writes_per_batch < 1) options.max_writes_per_batch = 1;
  if (options.read_connections < 1) options.read_connections = 1;
  auto impl = std::make_unique<Impl>(std::move(options));
  if (absl::Status s = impl->Start(); !s.ok()) return s;
  return std::unique_ptr<PostgresStore>(new PostgresStore(std::move(impl)));
}

PostgresStore::PostgresStore(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

PostgresStore::~PostgresStore() = default;

const std::string& PostgresStore::replica_id() const {
  return impl_->options().replica_id;
}

void PostgresStore::CreateTransaction(TransRecord trans,
                                      std::vector<BranchRecord> branches,
                                      Durability durability,
                                      CreateCallback done) {
  Impl::Op op;
  op.kind = Impl::Op::Kind::kCreate;
  op.durability = durability;
  op.create_done = std::move(done);
  op.gid = trans.gid();
  op.rejected = ValidateGid(op.gid);
  if (op.rejected.ok()) {
    for (size_t i = 0; i < branches.size(); ++i) {
      branches[i].set_gid(op.gid);
      branches[i].set_position(static_cast<int32_t>(i));
    }
    // The creator drives a transaction that is neither prepared nor final.
    const bool takes_lease =
        !IsFinalStatus(trans.status()) && trans.status() != kStatusPrepared;
    std::optional<std::string> owner;
    if (takes_lease) {
      owner = impl_->options().replica_id;
      op.provisional_lease =
          impl_->AddCreateLease(op.gid, std::chrono::steady_clock::now());
    }
    op.params.Text(op.gid)
        .Text(trans.status())
        .Text(trans.trans_type())
        .Int(trans.next_cron_time_ms())
        .Int(trans.create_time_ms())
        .Int(FinishColumn(trans))
        .MaybeText(owner)
        .Int(impl_->options().lease_ms)
        .Bytes(trans.SerializeAsString());
    AddNewBranches(branches, &op.params);
    op.trans = std::move(trans);
    op.branches = std::move(branches);
  }
  impl_->Enqueue(std::move(op));
}

void PostgresStore::UpdateTransaction(TransRecord trans,
                                      std::string expected_status,
                                      std::vector<BranchRecord> branches,
                                      Durability durability,
                                      StatusCallback done) {
  Impl::Op op;
  op.kind = Impl::Op::Kind::kUpdate;
  op.durability = durability;
  op.status_done = std::move(done);
  op.gid = trans.gid();
  op.expected_status = std::move(expected_status);
  op.rejected = ValidateGid(op.gid);
  if (op.rejected.ok()) op.rejected = CheckPositions(op.gid, branches);
  std::optional<int64_t> epoch;
  if (op.rejected.ok()) {
    epoch = impl_->LeaseEpoch(op.gid);
    if (!epoch.has_value()) op.rejected = LeaseNotHeld(op.gid);
  }
  if (op.rejected.ok()) {
    op.epoch = *epoch;
    op.params.Text(op.gid)
        .Text(op.expected_status)
        .Text(trans.status())
        .Text(trans.trans_type())
        .Int(trans.next_cron_time_ms())
        .Int(trans.create_time_ms())
        .Int(FinishColumn(trans))
        .Bytes(trans.SerializeAsString())
        .Text(impl_->options().replica_id)
        .Int(op.epoch);
    AddBranchStates(branches, &op.params);
  }
  impl_->Enqueue(std::move(op));
}

void PostgresStore::PutBranches(std::string gid,
                                std::vector<BranchRecord> branches,
                                Durability durability, StatusCallback done) {
  Impl::Op op;
  op.kind = Impl::Op::Kind::kPutBranches;
  op.durability = durability;
  op.status_done = std::move(done);
  op.gid = std::move(gid);
  op.rejected = ValidateGid(op.gid);
  if (op.rejected.ok()) op.rejected = CheckPositions(op.gid, branches);
  std::optional<int64_t> epoch;
  if (op.rejected.ok()) {
    epoch = impl_->LeaseEpoch(op.gid);
    if (!epoch.has_value()) op.rejected = LeaseNotHeld(op.gid);
  }
  if (op.rejected.ok()) {
    op.epoch = *epoch;
    op.params.Text(op.gid).Text(impl_->options().replica_id).Int(op.epoch);
    AddBranchStates(branches, &op.params);
  }
  impl_->Enqueue(std::move(op));
}

void PostgresStore::AppendBranches(std::string gid, std::string expected_status,
                                   std::vector<BranchRecord> branches,
                                   Durability durability, StatusCallback done) {
  Impl::Op op;
  op.kind = Impl::Op::Kind::kAppend;
  op.durability = durability;
  op.status_done = std::move(done);
  op.gid = std::move(gid);
  op.expected_status = std::move(expected_status);
  op.rejected = ValidateGid(op.gid);
  std::optional<int64_t> epoch;
  if (op.rejected.ok()) {
    epoch = impl_->LeaseEpoch(op.gid);
    if (!epoch.has_value()) op.rejected = LeaseNotHeld(op.gid);
  }
  if (op.rejected.ok()) {
    op.epoch = *epoch;
    op.params.Text(op.gid)
        .Text(op.expected_status)
        .Text(impl_->options().replica_id)
        .Int(op.epoch);
    AddNewBranches(branches, &op.params);
  }
  impl_->Enqueue(std::move(op));
}

void PostgresStore::Subscribe(std::string topic, std::string url,
                              std::string remark, StatusCallback done) {
  Impl::Op op;
  op.kind = Impl::Op::Kind::kSubscribe;
  op.durability = Durability::kSync;
  op.status_done = std::move(done);
  if (topic.empty()) {
    op.rejected = absl::InvalidArgumentError("topic: must not be empty");
  } else if (url.empty()) {
    op.rejected = absl::InvalidArgumentError("url: must not be empty");
  } else {
    op.params.Text(topic).Text(url).Text(std::move(remark));
    op.gid = std::move(topic);  // for the answer's message
    op.expected_status = std::move(url);
  }
  impl_->Enqueue(std::move(op));
}

void PostgresStore::Unsubscribe(std::string topic, std::string url,
                                StatusCallback done) {
  Impl::Op op;
  op.kind = Impl::Op::Kind::kUnsubscribe;
  op.durability = Durability::kSync;
  op.status_done = std::move(done);
  if (topic.empty()) {
    op.rejected = absl::InvalidArgumentError("topic: must not be empty");
  } else if (url.empty()) {
    op.rejected = absl::InvalidArgumentError("url: must not be empty");
  } else {
    op.params.Text(topic).Text(url);
    op.gid = std::move(topic);
    op.expected_status = std::move(url);
  }
  impl_->Enqueue(std::move(op));
}

void PostgresStore::DeleteTopic(std::string topic, StatusCallback done) {
  Impl::Op op;
  op.kind = Impl::Op::Kind::kDeleteTopic;
  op.durability = Durability::kSync;
  op.status_done = std::move(done);
  if (topic.empty()) {
    op.rejected = absl::InvalidArgumentError("topic: must not be empty");
  } else {
    op.params.Text(topic);
    op.gid = std::move(topic);
  }
  impl_->Enqueue(std::move(op));
}

void PostgresStore::DeleteFinished(std::vector<FinishedTrans> finished,
                                   DeleteCallback done) {
  Impl::Op op;
  op.kind = Impl::Op::Kind::kDeleteFinished;
  op.durability = Durability::kNoSync;
  op.delete_done = std::move(done);
  std::vector<std::string> gids;
  std::vector<int64_t> times;
  for (FinishedTrans& entry : finished) {
    if (!ValidateGid(entry.gid).ok()) continue;  // Not a gid we store.
    gids.push_back(std::move(entry.gid));
    times.push_back(entry.finish_time_ms);
  }
  op.params.Text(pg::TextArray(gids)).Text(pg::IntArray(times));
  impl_->Enqueue(std::move(op));
}

absl::Status PostgresStore::ReclaimSpace() { return absl::OkStatus(); }

void PostgresStore::ReleaseLease(absl::string_view gid) {
  impl_->ReleaseLease(gid);
}

void PostgresStore::Impl::ReleaseLease(absl::string_view gid) {
  int64_t epoch = 0;
  {
    absl::MutexLock lock(&lease_mu_);
    auto it = leases_.find(gid);
    if (it == leases_.end()) return;
    epoch = it->second.epoch;
    leases_.erase(it);
  }
  Op op;
  op.kind = Op::Kind::kRelease;
  op.durability = Durability::kNoSync;
  op.gid = std::string(gid);
  op.epoch = epoch;
  op.params.Text(op.gid).Text(options_.replica_id).Int(epoch);
  Enqueue(std::move(op));
}

absl::Status PostgresStore::AcquireLease(absl::string_view gid) {
  return impl_->AcquireLease(gid);
}

absl::Status PostgresStore::CheckLease(absl::string_view gid) {
  return impl_->CheckLease(gid);
}

std::optional<int64_t> PostgresStore::LeaseLeftMs(absl::string_view gid) {
  return impl_->LeaseLeftMs(gid);
}

absl::StatusOr<std::vector<std::string>> PostgresStore::ScanDue(
    int64_t until_ms, int limit) {
  return impl_->ClaimDue(until_ms, limit);
}

void PostgresStore::Flush() { impl_->Flush(); }

absl::Status PostgresStore::WriteHealth() { return impl_->WriteHealth(); }

PostgresStore::Stats PostgresStore::GetStats() const {
  return impl_->GetStats();
}

}  // namespace dtmd::storage
