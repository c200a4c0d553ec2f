// PostgresStore: leases (see postgres_store.h) and the due claim.
#include <algorithm>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "storage/postgres_store_impl.h"

namespace dtmd::storage {
namespace {

constexpr char kAcquireSql[] = R"sql(
UPDATE dtmd_trans
SET owner = $2::text, epoch = epoch + 1,
    lease_until_ms = dtmd_now_ms() + $3::bigint
WHERE gid = $1::text
  AND (owner IS NULL OR owner = $2::text OR lease_until_ms < dtmd_now_ms())
RETURNING epoch)sql";

constexpr char kLeaseHolderSql[] = R"sql(
SELECT owner, lease_until_ms - dtmd_now_ms() FROM dtmd_trans
WHERE gid = $1::text)sql";

constexpr char kClaimSql[] = R"sql(
UPDATE dtmd_trans t
SET owner = $3::text, epoch = t.epoch + 1,
    lease_until_ms = dtmd_now_ms() + $4::bigint
FROM (SELECT gid FROM dtmd_trans
      WHERE status NOT IN ('succeed', 'failed')
        AND next_cron_time_ms <= $1::bigint
        AND (owner IS NULL OR lease_until_ms < dtmd_now_ms())
      ORDER BY next_cron_time_ms, gid
      LIMIT $2::bigint
      FOR UPDATE SKIP LOCKED) d
WHERE t.gid = d.gid
RETURNING t.gid, t.epoch, t.next_cron_time_ms)sql";

// Renews the leases this replica holds without waiting for a row lock: a
// row a write batch holds locked is skipped (SKIP LOCKED) and reported as
// still held (a plain read does not wait), to be renewed a moment later.
// Waiting instead could deadlock with the batch, which locks its rows in
// the order of its writes.
constexpr char kRenewSql[] = R"sql(
WITH v AS (
  SELECT * FROM unnest($1::text[], $2::bigint[]) AS v(gid, epoch)),
locked AS (
  SELECT t.gid FROM dtmd_trans t JOIN v ON t.gid = v.gid AND t.epoch = v.epoch
  WHERE t.owner = $3::text
  FOR UPDATE OF t SKIP LOCKED),
renewed AS (
  UPDATE dtmd_trans t SET lease_until_ms = dtmd_now_ms() + $4::bigint
  FROM locked l WHERE t.gid = l.gid
  RETURNING t.gid)
SELECT v.gid, r.gid IS NOT NULL,
       EXISTS (SELECT 1 FROM dtmd_trans t
               WHERE t.gid = v.gid AND t.owner = $3::text
                 AND t.epoch = v.epoch)
FROM v LEFT JOIN renewed r ON r.gid = v.gid)sql";

}  // namespace

SteadyTime PostgresStore::Impl::LocalExpiry(SteadyTime sent) const {
  const int64_t ms = options_.lease_ms - options_.lease_ms / 5;
  return sent + std::chrono::milliseconds(ms);
}

absl::Status PostgresStore::Impl::AcquireLease(absl::string_view gid) {
  const SteadyTime sent = std::chrono::steady_clock::now();
  {
    absl::MutexLock lock(&lease_mu_);
    auto it = leases_.find(gid);
    if (it != leases_.end() && sent < it->second.valid_until) {
      return absl::OkStatus();
    }
  }
  int64_t epoch = 0;
  absl::Status s = WithReadConn([&](PGconn* conn) -> absl::Status {
    pg::Params params;
    params.Text(std::string(gid))
        .Text(options_.replica_id)
        .Int(options_.lease_ms);
    absl::StatusOr<pg::Result> taken =
        pg::Exec(conn, kAcquireSql, params, "PostgresStore: acquire lease");
    if (!taken.ok()) return taken.status();
    if (PQntuples(taken->get()) > 0) {
      epoch = pg::GetInt(taken->get(), 0, 0);
      return absl::OkStatus();
    }
    pg::Params which;
    which.Text(std::string(gid));
    absl::StatusOr<pg::Result> holder =
        pg::Exec(conn, kLeaseHolderSql, which, "PostgresStore: lease holder");
    if (!holder.ok()) return holder.status();
    if (PQntuples(holder->get()) == 0) {
      return absl::NotFoundError(
          absl::StrCat("transaction ", gid, " not found"));
    }
    return absl::AbortedError(absl::StrCat(
        "transaction ", gid, " is driven by replica ",
        pg::GetText(holder->get(), 0, 0), " (lease ends in ",
        std::max<int64_t>(0, pg::GetInt(holder->get(), 0, 1)), " ms)"));
  });
  if (!s.ok()) return s;
  absl::MutexLock lock(&lease_mu_);
  leases_[gid] = Lease{epoch, LocalExpiry(sent), false};
  return absl::OkStatus();
}

absl::Status PostgresStore::Impl::CheckLease(absl::string_view gid) {
  const SteadyTime now = std::chrono::steady_clock::now();
  absl::MutexLock lock(&lease_mu_);
  auto it = leases_.find(gid);
  if (it == leases_.end()) {
    return absl::AbortedError(
        absl::StrCat("lease of ", gid, " not held by this replica"));
  }
  if (now >= it->second.valid_until) {
    return absl::AbortedError(absl::StrCat(
        "lease of ", gid, " may have expired (not renewed in time)"));
  }
  return absl::OkStatus();
}

int64_t PostgresStore::Impl::LeaseLeftMs(absl::string_view gid) {
  const SteadyTime now = std::chrono::steady_clock::now();
  absl::MutexLock lock(&lease_mu_);
  auto it = leases_.find(gid);
  if (it == leases_.end()) return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             it->second.valid_until - now)
      .count();
}

std::optional<int64_t> PostgresStore::Impl::LeaseEpoch(absl::string_view gid) {
  absl::MutexLock lock(&lease_mu_);
  auto it = leases_.find(gid);
  if (it == leases_.end()) return std::nullopt;
  return it->second.epoch;
}

bool PostgresStore::Impl::AddCreateLease(const std::string& gid,
                                         SteadyTime sent) {
  absl::MutexLock lock(&lease_mu_);
  if (leases_.contains(gid)) return false;
  leases_[gid] = Lease{1, LocalExpiry(sent), true};
  return true;
}

void PostgresStore::Impl::SettleCreateLease(const std::string& gid,
                                            bool created) {
  absl::MutexLock lock(&lease_mu_);
  auto it = leases_.find(gid);
  if (it == leases_.end() || !it->second.pending) return;
  if (created) {
    it->second.pending = false;
  } else {
    leases_.erase(it);
  }
}

absl::StatusOr<std::vector<std::string>> PostgresStore::Impl::ClaimDue(
    int64_t until_ms, int limit) {
  std::vector<std::string> gids;
  if (limit <= 0) return gids;
  const SteadyTime sent = std::chrono::steady_clock::now();
  std::vector<std::tuple<int64_t, std::string, int64_t>> claimed;
  absl::Status s = WithReadConn([&](PGconn* conn) -> absl::Status {
    pg::Params params;
    params.Int(until_ms)
        .Int(limit)
        .Text(options_.replica_id)
        .Int(options_.lease_ms);
    absl::StatusOr<pg::Result> result =
        pg::Exec(conn, kClaimSql, params, "PostgresStore: claim due");
    if (!result.ok()) return result.status();
    claimed.clear();
    for (int row = 0; row < PQntuples(result->get()); ++row) {
      claimed.emplace_back(pg::GetInt(result->get(), row, 2),
                           pg::GetText(result->get(), row, 0),
                           pg::GetInt(result->get(), row, 1));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::sort(claimed.begin(), claimed.end());
  absl::MutexLock lock(&lease_mu_);
  for (auto& [time, gid, epoch] : claimed) {
    leases_[gid] = Lease{epoch, LocalExpiry(sent), false};
    gids.push_back(std::move(gid));
  }
  return gids;
}

void PostgresStore::Impl::RenewLoop() {
  const absl::Duration period =
      absl::Milliseconds(std::max<int64_t>(options_.lease_ms / 4, 10));
  absl::Duration wait = period;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto stop = [this]()
                      ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stop), wait)) break;
    }
    absl::Status s = RenewOnce();
    wait = absl::IsAborted(s) ? absl::Milliseconds(20) : period;
    if (!s.ok() && !absl::IsAborted(s)) {
      LOG_EVERY_N(WARNING, 20)
          << "PostgresStore: lease renewal failed: " << s.message();
    }
  }
  renew_conn_.reset();
}

absl::Status PostgresStore::Impl::RenewOnce() {
  std::vector<std::string> gids;
  std::vector<int64_t> epochs;
  {
    absl::MutexLock lock(&lease_mu_);
    for (const auto& [gid, lease] : leases_) {
      if (lease.pending) continue;
      gids.push_back(gid);
      epochs.push_back(lease.epoch);
    }
  }
  if (gids.empty()) return absl::OkStatus();
  if (renew_conn_ == nullptr || !pg::CheckAlive(renew_conn_.get())) {
    renew_conn_.reset();
    absl::StatusOr<pg::Conn> conn = pg::Connect(options_.dsn, 5);
    if (!conn.ok()) return conn.status();
    if (absl::Status s =
            pg::ExecScript(conn->get(), "SET lock_timeout = '200ms'",
                           "PostgresStore: lock_timeout");
        !s.ok()) {
      return s;
    }
    renew_conn_ = *std::move(conn);
  }
  const SteadyTime sent = std::chrono::steady_clock::now();
  pg::Params params;
  params.Text(pg::TextArray(gids))
      .Text(pg::IntArray(epochs))
      .Text(options_.replica_id)
      .Int(options_.lease_ms);
  absl::StatusOr<pg::Result> result = pg::Exec(
      renew_conn_.get(), kRenewSql, params, "PostgresStore: renew leases");
  if (!result.ok()) {
    if (!pg::Usable(renew_conn_.get())) renew_conn_.reset();
    return result.status();
  }
  absl::flat_hash_set<std::string> renewed;
  absl::flat_hash_set<std::string> busy;  // locked by a write: held still.
  for (int row = 0; row < PQntuples(result->get()); ++row) {
    const std::string gid = pg::GetText(result->get(), row, 0);
    if (pg::GetText(result->get(), row, 1) == "t") {
      renewed.insert(gid);
    } else if (pg::GetText(result->get(), row, 2) == "t") {
      busy.insert(gid);
    }
  }
  absl::MutexLock lock(&lease_mu_);
  for (size_t i = 0; i < gids.size(); ++i) {
    auto it = leases_.find(gids[i]);
    if (it == leases_.end() || it->second.epoch != epochs[i] ||
        it->second.pending) {
      continue;  // Changed meanwhile.
    }
    if (renewed.contains(gids[i])) {
      it->second.valid_until = LocalExpiry(sent);
    } else if (!busy.contains(gids[i])) {
      LOG(WARNING) << "PostgresStore: lease of " << gids[i] << " lost";
      leases_.erase(it);
    }
  }
  if (!busy.empty()) {
    // Renewed a moment later, once the write is over.
    return absl::AbortedError(absl::StrCat(
        busy.size(), " leases were locked by a write; renewing them again"));
  }
  return absl::OkStatus();
}

}  // namespace dtmd::storage
