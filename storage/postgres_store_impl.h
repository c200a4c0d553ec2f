// PostgresStore's internals, shared by its source files (not for other
// users).
#ifndef DTMD_STORAGE_POSTGRES_STORE_IMPL_H_
#define DTMD_STORAGE_POSTGRES_STORE_IMPL_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "storage/postgres_store.h"
#include "storage/postgres_support.h"

namespace dtmd::storage {

// The schema files, in version order (generated from postgres_schema/).
struct SchemaFile {
  int version;
  const char* name;
  const char* sql;
};
extern const SchemaFile kPostgresSchemaFiles[];
extern const int kPostgresSchemaFileCount;

// Applies the schema files above the database's recorded version.
absl::Status MigrateSchema(PGconn* conn);

using SteadyTime = std::chrono::steady_clock::time_point;

class PostgresStore::Impl {
 public:
  explicit Impl(PostgresStoreOptions options);
  ~Impl();

  // One queued write: its statement (parameters encoded at issue time) and
  // what its answer needs.
  struct Op {
    enum class Kind {
      kCreate,
      kUpdate,
      kPutBranches,
      kAppend,
      kSubscribe,
      kUnsubscribe,
      kDeleteTopic,
      kDeleteFinished,
      kRelease,
    };
    Kind kind = Kind::kCreate;
    Durability durability = Durability::kNoSync;
    // Answered so, in order, without running (queue full, lease not held,
    // bad argument).
    absl::Status rejected;
    pg::Params params;
    std::string gid;
    std::string expected_status;
    int64_t epoch = 0;               // the lease epoch a fenced write carries.
    bool provisional_lease = false;  // a create that added a lease entry.
    TransRecord trans;               // create: handed back.
    std::vector<BranchRecord> branches;
    int64_t bytes = 0;
    CreateCallback create_done;
    StatusCallback status_done;
    DeleteCallback delete_done;
  };

  // Each kind's statement, prepared on the writer's connection under
  // StatementName(kind).
  static const char* WriteSql(Op::Kind kind);
  static std::string StatementName(Op::Kind kind);
  static absl::Status PrepareWrites(PGconn* conn);

  // Start-up: connects the writer, migrates, starts the threads.
  absl::Status Start();

  void Enqueue(Op op);
  void Flush();
  absl::Status WriteHealth();

  // Reads, on a pooled connection. `fn` gets the connection and returns a
  // status; a failure of a connection that had been idle is retried once
  // on a fresh one.
  template <typename Fn>
  absl::Status WithReadConn(Fn&& fn);

  // Leases.
  absl::Status AcquireLease(absl::string_view gid);
  absl::Status CheckLease(absl::string_view gid);
  int64_t LeaseLeftMs(absl::string_view gid);
  void ReleaseLease(absl::string_view gid);
  // The epoch of a held lease, for a fenced write; nullopt when not held.
  std::optional<int64_t> LeaseEpoch(absl::string_view gid);
  // Adds a lease taken by CreateTransaction (epoch 1) unless one is held;
  // returns whether it added one.
  bool AddCreateLease(const std::string& gid, SteadyTime sent);
  // The create's outcome: keeps (confirmed) or drops the entry it added.
  void SettleCreateLease(const std::string& gid, bool created);
  absl::StatusOr<std::vector<std::string>> ClaimDue(int64_t until_ms,
                                                    int limit);

  const PostgresStoreOptions& options() const { return options_; }
  PostgresStore::Stats GetStats() const;

 private:
  struct Lease {
    int64_t epoch = 0;
    SteadyTime valid_until;
    bool pending = false;  // taken by a create not yet committed.
  };

  // Writer.
  void WriterLoop();
  void RunBatch(std::vector<Op>& batch);
  // Runs `ops` in one transaction; results[i] is ops[i]'s result. OK, or
  // the first statement error (the transaction rolled back), or
  // UNAVAILABLE when the connection broke (then *connection_lost).
  absl::Status RunPipeline(const std::vector<Op*>& ops,
                           std::vector<pg::Result>* results,
                           bool* connection_lost);
  void Answer(Op& op, absl::Status status, const PGresult* result);
  void Disconnected(const absl::Status& why);
  // At close: gives every held lease up (one statement).
  void ReleaseAll();
  bool TryReconnect();

  // Renewal.
  void RenewLoop();
  // OK, or why the renewal failed (ABORTED: it gave up waiting for a row
  // lock, and is retried soon; nothing is dropped then).
  absl::Status RenewOnce();

  // Read pool.
  absl::StatusOr<pg::Conn> TakeReadConn(bool* fresh);
  void GiveReadConn(pg::Conn conn);

  SteadyTime LocalExpiry(SteadyTime sent) const;

  const PostgresStoreOptions options_;

  mutable absl::Mutex mu_;
  std::deque<Op> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_writes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t issued_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t completed_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status health_ ABSL_GUARDED_BY(mu_);
  int64_t write_batches_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t operations_ ABSL_GUARDED_BY(mu_) = 0;

  // Writer-thread state.
  pg::Conn writer_conn_;
  std::chrono::milliseconds backoff_{100};
  SteadyTime next_reconnect_;

  mutable absl::Mutex lease_mu_;
  absl::flat_hash_map<std::string, Lease> leases_ ABSL_GUARDED_BY(lease_mu_);

  absl::Mutex pool_mu_;
  std::vector<pg::Conn> idle_ ABSL_GUARDED_BY(pool_mu_);
  int open_read_conns_ ABSL_GUARDED_BY(pool_mu_) = 0;

  std::thread writer_;
  std::thread renewer_;
  // The renewal thread's own connection, with a short lock_timeout: it gives
  // way to a write batch that holds a row it renews (instead of both
  // waiting for the deadlock detector).
  pg::Conn renew_conn_;
};

template <typename Fn>
absl::Status PostgresStore::Impl::WithReadConn(Fn&& fn) {
  for (int attempt = 0;; ++attempt) {
    bool fresh = false;
    absl::StatusOr<pg::Conn> conn = TakeReadConn(&fresh);
    if (!conn.ok()) return conn.status();
    absl::Status s = fn(conn->get());
    const bool broken = !pg::Usable(conn->get());
    GiveReadConn(*std::move(conn));
    if (s.ok() || !broken || fresh || attempt > 0) return s;
  }
}

}  // namespace dtmd::storage

#endif  // DTMD_STORAGE_POSTGRES_STORE_IMPL_H_
