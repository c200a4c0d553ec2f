// PostgresStore: reads, on a small pool of connections.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/postgres_store_impl.h"

namespace dtmd::storage {
namespace {

// How long a read waits to connect.
constexpr int kReadConnectTimeoutS = 5;

absl::Status Corrupt(absl::string_view what, absl::string_view gid) {
  return absl::DataLossError(absl::StrCat("corrupt ", what, " for gid ", gid));
}

}  // namespace

absl::StatusOr<pg::Conn> PostgresStore::Impl::TakeReadConn(bool* fresh) {
  pg::Conn conn;
  {
    absl::MutexLock lock(&pool_mu_);
    auto available = [this]() ABSL_SHARED_LOCKS_REQUIRED(pool_mu_) {
      return !idle_.empty() || open_read_conns_ < options_.read_connections;
    };
    pool_mu_.Await(absl::Condition(&available));
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    } else {
      ++open_read_conns_;
    }
  }
  *fresh = false;
  if (conn != nullptr && pg::CheckAlive(conn.get())) return conn;
  conn.reset();
  absl::StatusOr<pg::Conn> made =
      pg::Connect(options_.dsn, kReadConnectTimeoutS);
  if (!made.ok()) {
    absl::MutexLock lock(&pool_mu_);
    --open_read_conns_;
    return made.status();
  }
  *fresh = true;
  return made;
}

void PostgresStore::Impl::GiveReadConn(pg::Conn conn) {
  const bool reusable =
      pg::Usable(conn.get()) && PQtransactionStatus(conn.get()) == PQTRANS_IDLE;
  if (!reusable) conn.reset();
  absl::MutexLock lock(&pool_mu_);
  if (reusable) {
    idle_.push_back(std::move(conn));
  } else {
    --open_read_conns_;
  }
}

absl::StatusOr<TransRecord> PostgresStore::GetTransaction(
    absl::string_view gid) {
  TransRecord record;
  absl::Status s = impl_->WithReadConn([&](PGconn* conn) -> absl::Status {
    pg::Params params;
    params.Text(std::string(gid));
    absl::StatusOr<pg::Result> result =
        pg::Exec(conn, "SELECT record FROM dtmd_trans WHERE gid = $1::text",
                 params, "PostgresStore: read transaction");
    if (!result.ok()) return result.status();
    if (PQntuples(result->get()) == 0) {
      return absl::NotFoundError(
          absl::StrCat("transaction ", gid, " not found"));
    }
    if (!record.ParseFromString(pg::GetBytes(result->get(), 0, 0))) {
      return Corrupt("record", gid);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return record;
}

absl::StatusOr<std::vector<BranchRecord>> PostgresStore::GetBranches(
    absl::string_view gid) {
  std::vector<BranchRecord> branches;
  absl::Status s = impl_->WithReadConn([&](PGconn* conn) -> absl::Status {
    pg::Params params;
    params.Text(std::string(gid));
    absl::StatusOr<pg::Result> result = pg::Exec(
        conn,
        "SELECT position, branch_id, op, url, bin_data, create_time_ms, "
        "status, finish_time_ms, last_error, last_code, call_count "
        "FROM dtmd_branch WHERE gid = $1::text ORDER BY position",
        params, "PostgresStore: read branches");
    if (!result.ok()) return result.status();
    branches.clear();
    const PGresult* r = result->get();
    for (int row = 0; row < PQntuples(r); ++row) {
      BranchRecord& b = branches.emplace_back();
      b.set_gid(std::string(gid));
      b.set_position(static_cast<int32_t>(pg::GetInt(r, row, 0)));
      b.set_branch_id(pg::GetText(r, row, 1));
      b.set_op(pg::GetText(r, row, 2));
      b.set_url(pg::GetText(r, row, 3));
      b.set_bin_data(pg::GetBytes(r, row, 4));
      b.set_create_time_ms(pg::GetInt(r, row, 5));
      b.set_status(pg::GetText(r, row, 6));
      b.set_finish_time_ms(pg::GetInt(r, row, 7));
      b.set_last_error(pg::GetText(r, row, 8));
      b.set_last_code(static_cast<int32_t>(pg::GetInt(r, row, 9)));
      b.set_call_count(pg::GetInt(r, row, 10));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return branches;
}

absl::StatusOr<TransPage> PostgresStore::ListTransactions(
    const TransFilter& filter, const std::optional<TransCursor>& after,
    int limit) {
  if (limit <= 0) {
    return absl::InvalidArgumentError("ListTransactions: limit must be > 0");
  }
  TransPage page;
  absl::Status s = impl_->WithReadConn([&](PGconn* conn) -> absl::Status {
    pg::Params params;
    params.Text(filter.status)
        .Text(filter.trans_type)
        .Text(filter.gid_prefix)
        .Int(filter.created_after_ms)
        .Int(filter.created_before_ms)
        .Int(after.has_value() ? 1 : 0)
        .Int(after.has_value() ? after->create_time_ms : 0)
        .Text(after.has_value() ? after->gid : "")
        .Int(static_cast<int64_t>(limit) + 1);
    absl::StatusOr<pg::Result> result =
        pg::Exec(conn,
                 "SELECT record FROM dtmd_trans "
                 "WHERE ($1::text = '' OR status = $1::text) "
                 "AND ($2::text = '' OR trans_type = $2::text) "
                 "AND starts_with(gid, $3::text) "
                 "AND ($4::bigint = 0 OR create_time_ms > $4::bigint) "
                 "AND ($5::bigint = 0 OR create_time_ms < $5::bigint) "
                 "AND ($6::integer = 0 OR (create_time_ms, gid) < "
                 "($7::bigint, $8::text COLLATE \"C\")) "
                 "ORDER BY create_time_ms DESC, gid DESC LIMIT $9::bigint",
                 params, "PostgresStore: list transactions");
    if (!result.ok()) return result.status();
    page.transactions.clear();
    for (int row = 0; row < PQntuples(result->get()); ++row) {
      if (!page.transactions.emplace_back().ParseFromString(
              pg::GetBytes(result->get(), row, 0))) {
        return absl::DataLossError("corrupt transaction record in listing");
      }
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (page.transactions.size() > static_cast<size_t>(limit)) {
    page.transactions.pop_back();
    const TransRecord& last = page.transactions.back();
    page.next = TransCursor{last.create_time_ms(), last.gid()};
  }
  return page;
}

absl::StatusOr<int64_t> PostgresStore::CountDue(int64_t until_ms, int limit) {
  int64_t count = 0;
  if (limit <= 0) return count;
  absl::Status s = impl_->WithReadConn([&](PGconn* conn) -> absl::Status {
    pg::Params params;
    params.Int(until_ms).Int(limit);
    // The claim's condition on status and time, whoever holds the lease: a
    // count for metrics, which must never take a lease.
    absl::StatusOr<pg::Result> result =
        pg::Exec(conn,
                 "SELECT count(*) FROM (SELECT 1 FROM dtmd_trans "
                 "WHERE status NOT IN ('succeed', 'failed') "
                 "AND next_cron_time_ms <= $1::bigint LIMIT $2::bigint) d",
                 params, "PostgresStore: count due");
    if (!result.ok()) return result.status();
    count = pg::GetInt(result->get(), 0, 0);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return count;
}

absl::StatusOr<std::vector<FinishedTrans>> PostgresStore::ScanFinished(
    int64_t before_ms, const std::optional<FinishedTrans>& after, int limit) {
  std::vector<FinishedTrans> found;
  if (limit <= 0 || before_ms <= 0) return found;
  absl::Status s = impl_->WithReadConn([&](PGconn* conn) -> absl::Status {
    pg::Params params;
    params.Int(before_ms)
        .Int(after.has_value() ? 1 : 0)
        .Int(after.has_value() ? after->finish_time_ms : 0)
        .Text(after.has_value() ? after->gid : "")
        .Int(limit);
    absl::StatusOr<pg::Result> result = pg::Exec(
        conn,
        "SELECT finish_time_ms, gid FROM dtmd_trans "
        "WHERE status IN ('succeed', 'failed') AND finish_time_ms < $1::bigint "
        "AND ($2::integer = 0 OR (finish_time_ms, gid) > "
        "($3::bigint, $4::text COLLATE \"C\")) "
        "ORDER BY finish_time_ms, gid LIMIT $5::bigint",
        params, "PostgresStore: scan finished");
    if (!result.ok()) return result.status();
    found.clear();
    for (int row = 0; row < PQntuples(result->get()); ++row) {
      found.push_back({pg::GetInt(result->get(), row, 0),
                       pg::GetText(result->get(), row, 1)});
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return found;
}

absl::StatusOr<std::vector<Subscriber>> PostgresStore::GetTopic(
    absl::string_view topic) {
  std::vector<Subscriber> subscribers;
  absl::Status s = impl_->WithReadConn([&](PGconn* conn) -> absl::Status {
    pg::Params params;
    params.Text(std::string(topic));
    absl::StatusOr<pg::Result> result =
        pg::Exec(conn,
                 "SELECT url, remark FROM dtmd_topic WHERE topic = $1::text "
                 "ORDER BY seq",
                 params, "PostgresStore: read topic");
    if (!result.ok()) return result.status();
    subscribers.clear();
    for (int row = 0; row < PQntuples(result->get()); ++row) {
      subscribers.push_back({pg::GetText(result->get(), row, 0),
                             pg::GetText(result->get(), row, 1)});
    }
    if (subscribers.empty()) {
      return absl::NotFoundError(absl::StrCat("topic ", topic, " not found"));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return subscribers;
}

absl::StatusOr<std::vector<std::string>> PostgresStore::ListTopics() {
  std::vector<std::string> names;
  absl::Status s = impl_->WithReadConn([&](PGconn* conn) -> absl::Status {
    absl::StatusOr<pg::Result> result =
        pg::Exec(conn, "SELECT DISTINCT topic FROM dtmd_topic ORDER BY topic",
                 pg::Params(), "PostgresStore: list topics");
    if (!result.ok()) return result.status();
    names.clear();
    for (int row = 0; row < PQntuples(result->get()); ++row) {
      names.push_back(pg::GetText(result->get(), row, 0));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return names;
}

}  // namespace dtmd::storage
