// PostgresStore: the Store on a PostgreSQL database that several dtmd
// processes (replicas) share; leases decide which one drives a transaction.
//
// Schema (storage/postgres_schema/NNNN_*.sql, compiled into the binary):
//   dtmd_trans   gid -> TransRecord protobuf (`record`) plus the columns the
//                queries select on (status, trans_type, next_cron_time_ms,
//                create_time_ms, finish_time_ms of final records) and the
//                lease (owner, epoch, lease_until_ms); partial indexes for
//                the due claim and retention, one for the listing.
//   dtmd_branch  (gid, position) -> the branch's columns: immutable ones
//                (branch_id, op, url, bin_data, create_time_ms) and its
//                mutable state (status, finish_time_ms, last_error,
//                last_code, call_count), which is all that later writes set.
//   dtmd_topic   (topic, url) -> remark, seq (subscription order).
//   dtmd_schema_version  the versions applied.
// Open takes an advisory lock, applies each schema file above the recorded
// version in its own transaction and records it, so replicas starting
// together do not race; a database of a newer version than this binary
// knows is refused (FAILED_PRECONDITION).
//
// Writes: one writer thread with its own connection takes every queued
// write (up to max_writes_per_batch) and runs them, in issue order, in one
// PostgreSQL transaction sent as a libpq pipeline (one round trip), then
// runs their callbacks in issue order (group commit). A batch of kNoSync
// writes only commits with synchronous_commit off. Each write is one
// statement whose condition is in its SQL (a failed condition writes
// nothing and tells why), so conditions never abort the batch; a statement
// that fails anyway makes the writer redo the batch one write per
// transaction. The queue is bounded (RESOURCE_EXHAUSTED beyond).
//
// Leases (store.h): dtmd_trans.owner/epoch/lease_until_ms, on the database's
// clock. This process keeps the leases it holds in memory with a local
// expiry (the time the acquisition or renewal was sent + lease_ms - a fifth
// of lease_ms, on the monotonic clock) for CheckLease, and renews all of
// them every lease_ms/4 in one statement; a lease the renewal does not find
// any more is dropped. Fenced writes carry the epoch held when issued and
// are applied only if the row still has this owner and epoch. ScanDue
// returns only gids it claimed: not those whose lease this process holds
// (and has not let expire) already.
//
// Failures: a broken connection is answered UNAVAILABLE (never INTERNAL);
// writes issued while the writer is disconnected fail at once, WriteHealth
// says UNAVAILABLE, and the writer reconnects in the background.
#ifndef DTMD_STORAGE_POSTGRES_STORE_H_
#define DTMD_STORAGE_POSTGRES_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/rocksdb_store.h"  // WriteObserver
#include "storage/store.h"

namespace dtmd::storage {

struct PostgresStoreOptions {
  std::string dsn;         // libpq conninfo string or URI.
  std::string replica_id;  // unique among live processes; empty: generated.
  int64_t lease_ms = 10000;
  int64_t max_queued_writes = 100000;
  int64_t max_queued_bytes = int64_t{256} << 20;
  int max_writes_per_batch = 1024;
  WriteObserver* observer = nullptr;  // Not owned; null: nobody is told.
  // How long Open keeps trying to connect.
  absl::Duration connect_timeout = absl::Seconds(30);
  int read_connections = 4;
  // At close, give every lease still held up, so that other replicas take
  // those transactions over at once rather than when the leases end. Tests
  // turn it off to behave as a process that died.
  bool release_leases_on_close = true;
  // How long a statement's answer may take before its connection is
  // dropped and the operation answered UNAVAILABLE (a server that is up but
  // does not answer). Process-wide (pg::SetAnswerTimeout).
  absl::Duration answer_timeout = absl::Seconds(10);
};

class PostgresStore : public Store {
 public:
  // Connects (retrying until options.connect_timeout), migrates the schema
  // and starts the writer. UNAVAILABLE if the database cannot be reached;
  // FAILED_PRECONDITION for a schema newer than this binary knows.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(
      PostgresStoreOptions options);

  // Completes the queued writes, gives the leases up (see
  // release_leases_on_close), then closes the connections.
  ~PostgresStore() override;

  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;

  void CreateTransaction(TransRecord trans, std::vector<BranchRecord> branches,
                         Durability durability, CreateCallback done) override;
  void UpdateTransaction(TransRecord trans, std::string expected_status,
                         std::vector<BranchRecord> branches,
                         Durability durability, StatusCallback done) override;
  void PutBranches(std::string gid, std::vector<BranchRecord> branches,
                   Durability durability, StatusCallback done) override;
  void AppendBranches(std::string gid, std::string expected_status,
                      std::vector<BranchRecord> branches, Durability durability,
                      StatusCallback done) override;
  absl::StatusOr<TransRecord> GetTransaction(absl::string_view gid) override;
  absl::StatusOr<std::vector<BranchRecord>> GetBranches(
      absl::string_view gid) override;
  absl::StatusOr<TransPage> ListTransactions(
      const TransFilter& filter, const std::optional<TransCursor>& after,
      int limit) override;
  // A claim: see the comment at the top.
  absl::StatusOr<std::vector<std::string>> ScanDue(int64_t until_ms,
                                                   int limit) override;
  // Counts without claiming (for metrics).
  absl::StatusOr<int64_t> CountDue(int64_t until_ms, int limit) override;
  absl::StatusOr<std::vector<FinishedTrans>> ScanFinished(
      int64_t before_ms, const std::optional<FinishedTrans>& after,
      int limit) override;
  void DeleteFinished(std::vector<FinishedTrans> finished,
                      DeleteCallback done) override;
  // OK: autovacuum gives the space back.
  absl::Status ReclaimSpace() override;
  void Subscribe(std::string topic, std::string url, std::string remark,
                 StatusCallback done) override;
  void Unsubscribe(std::string topic, std::string url,
                   StatusCallback done) override;
  void DeleteTopic(std::string topic, StatusCallback done) override;
  absl::StatusOr<std::vector<Subscriber>> GetTopic(
      absl::string_view topic) override;
  absl::StatusOr<std::vector<std::string>> ListTopics() override;
  absl::Status AcquireLease(absl::string_view gid) override;
  absl::Status CheckLease(absl::string_view gid) override;
  std::optional<int64_t> LeaseLeftMs(absl::string_view gid) override;
  void ReleaseLease(absl::string_view gid) override;
  void Flush() override;
  absl::Status WriteHealth() override;

  const std::string& replica_id() const;

  // The schema version this binary knows (the number of its last file).
  static int SchemaVersion();

  // Counters for metrics and tests.
  struct Stats {
    int64_t write_batches = 0;  // transactions committed by the writer.
    int64_t operations = 0;     // store writes applied.
    int64_t leases_held = 0;    // leases in the map now.
  };
  Stats GetStats() const;

 private:
  class Impl;
  explicit PostgresStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtmd::storage

#endif  // DTMD_STORAGE_POSTGRES_STORE_H_
