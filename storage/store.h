// Store: the only way dtmd reads or writes transaction state.
//
// Operations are transaction-shaped (create a transaction with its branches,
// move its status if it is X, ...), not table-shaped, so that a second
// implementation on a shared SQL engine can be written without touching the
// engine.
//
// Writes are asynchronous: each takes a completion callback that is invoked
// exactly once, on a store-owned thread, after the change is applied (and,
// for Durability::kSync, after it is on disk). Callbacks must not block; they
// hand work to another executor. Writes are applied in the order they are
// issued, and callbacks of writes of one durability run in that order, failed
// writes included (a kNoSync callback may run before the callback of an
// earlier kSync write). A kSync callback never runs before the WAL sync that
// covers the write (or its failure). A write that does not fit the store's
// bounded queue gets RESOURCE_EXHAUSTED; a store that cannot write now
// answers UNAVAILABLE (see StoreHealth).
// Reads are synchronous and see every write whose callback has run (and may
// see a kSync write before its callback).
//
// All methods are thread-safe.
#ifndef DTMD_STORAGE_STORE_H_
#define DTMD_STORAGE_STORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dtmd/storage/v1/records.pb.h"

namespace dtmd::storage {

using ::dtmd::storage::v1::BranchRecord;
using ::dtmd::storage::v1::TransRecord;

enum class Durability {
  kSync,    // WAL synced before the callback: a reply may acknowledge it.
  kNoSync,  // In the WAL (page cache): survives a process crash.
};

// Result of CreateTransaction.
struct CreateResult {
  bool created = false;  // false: the gid existed; `existing` holds it.
  TransRecord existing;
  // created: the records as stored (handed back, so that the caller need not
  // keep a copy of what it passed in).
  TransRecord trans;
  std::vector<BranchRecord> branches;
};

// One subscriber of a topic (a msg step `topic://NAME` expands to one branch
// per subscriber URL).
struct Subscriber {
  std::string url;
  std::string remark;
};

// Which transactions ListTransactions returns. An empty string or a zero
// time matches every transaction.
struct TransFilter {
  std::string status;
  std::string trans_type;
  std::string gid_prefix;
  int64_t created_after_ms = 0;   // create_time_ms > this.
  int64_t created_before_ms = 0;  // create_time_ms < this.
};

// A place in ListTransactions' order (newest first: create_time_ms
// descending, then gid descending): the last transaction of a page. The
// next page starts strictly after it, so pages neither repeat nor skip a
// transaction that existed throughout, whatever is added meanwhile.
struct TransCursor {
  int64_t create_time_ms = 0;
  std::string gid;
};

struct TransPage {
  std::vector<TransRecord> transactions;
  // Set when more transactions match after the last one returned.
  std::optional<TransCursor> next;
};

// A finished transaction as the finish-time index lists it: its gid and
// the time it became final (finish_time_ms, or update_time_ms for a record
// that has none). Also the cursor of ScanFinished.
struct FinishedTrans {
  int64_t finish_time_ms = 0;
  std::string gid;
};

using StatusCallback = std::function<void(absl::Status)>;
using CreateCallback = std::function<void(absl::StatusOr<CreateResult>)>;
// The number of transactions deleted.
using DeleteCallback = std::function<void(absl::StatusOr<int64_t>)>;

class Store {
 public:
  virtual ~Store() = default;

  // Stores `trans` and `branches` (branch i at position i) and the due-index
  // entry for trans.next_cron_time_ms() unless trans is final. If the gid
  // already exists nothing is written and the callback gets
  // {created=false, existing=<stored record>}.
  virtual void CreateTransaction(TransRecord trans,
                                 std::vector<BranchRecord> branches,
                                 Durability durability,
                                 CreateCallback done) = 0;

  // Replaces the transaction record with `trans` if the stored status equals
  // `expected_status`, and writes every record in `branches` (each at its
  // position()) in the same atomic batch. Keeps the due index in step: the
  // old next_cron_time entry is removed, and a new one is added unless the
  // new status is final. NOT_FOUND for an unknown gid; FAILED_PRECONDITION
  // (naming the stored status) when the status differs.
  virtual void UpdateTransaction(TransRecord trans, std::string expected_status,
                                 std::vector<BranchRecord> branches,
                                 Durability durability,
                                 StatusCallback done) = 0;

  // UpdateTransaction and PutBranches write a branch's mutable state only
  // (status, finish_time_ms, last_error, last_code, call_count); what was
  // set at its creation (branch_id, op, url, bin_data, create_time_ms) is
  // ignored and may be left empty, so that an answer never copies or
  // rewrites a payload.
  //
  // Writes `branches` (each at its position()) of gid unconditionally: for
  // the owner of a transaction recording branch results that change nothing
  // else. No read happens, so nothing is checked about the transaction.
  virtual void PutBranches(std::string gid, std::vector<BranchRecord> branches,
                           Durability durability, StatusCallback done) = 0;

  // Adds `branches` after the existing ones (positions are assigned here:
  // existing count + i) if the stored status equals `expected_status`.
  // Errors as UpdateTransaction.
  virtual void AppendBranches(std::string gid, std::string expected_status,
                              std::vector<BranchRecord> branches,
                              Durability durability, StatusCallback done) = 0;

  // NOT_FOUND for an unknown gid.
  virtual absl::StatusOr<TransRecord> GetTransaction(absl::string_view gid) = 0;

  // The branches of gid in position order (empty for an unknown gid).
  virtual absl::StatusOr<std::vector<BranchRecord>> GetBranches(
      absl::string_view gid) = 0;

  // At most `limit` (> 0) transactions matching `filter`, newest first,
  // starting after `after` (from the start when not set). For operators, not
  // for the serving path: an implementation may read every stored record.
  virtual absl::StatusOr<TransPage> ListTransactions(
      const TransFilter& filter, const std::optional<TransCursor>& after,
      int limit) = 0;

  // Gids of unfinished transactions with next_cron_time_ms <= until_ms, in
  // next_cron_time order, at most `limit`.
  virtual absl::StatusOr<std::vector<std::string>> ScanDue(int64_t until_ms,
                                                           int limit) = 0;

  // How many transactions ScanDue would return (at most `limit`), without
  // claiming them: for metrics.
  virtual absl::StatusOr<int64_t> CountDue(int64_t until_ms, int limit) {
    absl::StatusOr<std::vector<std::string>> due = ScanDue(until_ms, limit);
    if (!due.ok()) return due.status();
    return static_cast<int64_t>(due->size());
  }

  // Retention (server/retention.h). A store without it keeps everything:
  // ScanFinished finds nothing.
  //
  // Finished transactions with finish time < before_ms, in (finish time,
  // gid) order, strictly after `after` when set, at most `limit`. Reads an
  // index, not every record.
  virtual absl::StatusOr<std::vector<FinishedTrans>> ScanFinished(
      int64_t before_ms, const std::optional<FinishedTrans>& after, int limit) {
    (void)before_ms, (void)after, (void)limit;
    return std::vector<FinishedTrans>();
  }
  // Deletes each listed transaction that is still final with that finish
  // time: its record, its branches and its index entries, applied in issue
  // order with the other writes (a create of the same gid issued later
  // creates a new transaction). Entries that no longer match are dropped
  // from the index only. Not synced: a deletion lost in a crash is redone by
  // the next pass. `done` gets the number of transactions deleted.
  virtual void DeleteFinished(std::vector<FinishedTrans> finished,
                              DeleteCallback done) {
    (void)finished;
    done(absl::UnimplementedError("this store does not delete transactions"));
  }
  // Gives the space of deleted transactions back to the file system
  // (compaction). Blocks, doing I/O; never on the serving path.
  virtual absl::Status ReclaimSpace() { return absl::OkStatus(); }

  // Topics. Writes are always synced (an OK may be acknowledged), applied
  // in issue order with the other writes, and checked against the state the
  // earlier writes left. INVALID_ARGUMENT for an empty topic or url; url
  // and remark must be valid UTF-8 (the caller checks: they are stored as
  // protobuf strings).
  //
  // Adds url (with remark) as the topic's last subscriber, creating the
  // topic if needed. ALREADY_EXISTS if url is subscribed to it already.
  virtual void Subscribe(std::string topic, std::string url, std::string remark,
                         StatusCallback done) = 0;
  // Removes url from the topic; the topic goes with its last subscriber.
  // NOT_FOUND if the topic is unknown or url is not subscribed to it.
  virtual void Unsubscribe(std::string topic, std::string url,
                           StatusCallback done) = 0;
  // Removes the topic with all its subscribers. NOT_FOUND if unknown.
  virtual void DeleteTopic(std::string topic, StatusCallback done) = 0;
  // The topic's subscribers in subscription order; NOT_FOUND if the topic
  // does not exist.
  virtual absl::StatusOr<std::vector<Subscriber>> GetTopic(
      absl::string_view topic) = 0;
  // The names of all topics, sorted (bytewise).
  virtual absl::StatusOr<std::vector<std::string>> ListTopics() = 0;

  // Leases: which process drives a transaction. A store shared by several
  // dtmd processes (replicas) lets only the holder of a gid's lease call its
  // branches and write its progress; a store owned by one process grants
  // every lease (these defaults). A lease has an owner (this process), a
  // fencing epoch that grows with each new holder, and an expiry on the
  // store's clock that the store renews in the background while it is held.
  //
  // Every UpdateTransaction, PutBranches and AppendBranches of a gid is
  // fenced: applied only if this process still holds the gid's lease with
  // the epoch it had when the write was issued; otherwise nothing is written
  // and the callback gets ABORTED ("lease lost"). CreateTransaction of a
  // record that is neither final nor prepared takes the lease for this
  // process (the creator drives it at once); ScanDue takes the lease of
  // every gid it returns (a claim: SELECT ... FOR UPDATE SKIP LOCKED of due
  // transactions whose lease is free or expired).
  //
  // Takes the lease of gid, or keeps it if this process holds it already
  // (then no I/O). Blocks for one round trip. OK: held; ABORTED: another
  // process holds it (the message names it and when the lease ends);
  // NOT_FOUND: unknown gid; UNAVAILABLE: the store cannot be reached.
  virtual absl::Status AcquireLease(absl::string_view gid) {
    (void)gid;
    return absl::OkStatus();
  }
  // Whether this process may still call gid's branches: OK while the lease
  // is held and its expiry, by the local monotonic clock with a safety
  // margin, has not passed; ABORTED otherwise. No I/O.
  virtual absl::Status CheckLease(absl::string_view gid) {
    (void)gid;
    return absl::OkStatus();
  }
  // How long, by the local monotonic clock, this process may still call
  // gid's branches (CheckLease's expiry; <= 0: lost). A branch call's
  // deadline is capped by it, so that a call a paused process had not yet
  // put on the wire is dropped rather than sent after the lease ran out.
  // nullopt: no limit (the default, a store owned by one process).
  virtual std::optional<int64_t> LeaseLeftMs(absl::string_view gid) {
    (void)gid;
    return std::nullopt;
  }
  // Gives the lease of gid up (asynchronously, in order with the writes
  // issued before). No-op when not held.
  virtual void ReleaseLease(absl::string_view gid) { (void)gid; }

  // Blocks until every write issued before the call has completed.
  virtual void Flush() = 0;

  // Whether writes can succeed now: OK; UNAVAILABLE with the reason when
  // they cannot for now and the store is trying to recover by itself (e.g.
  // disk full); any other code (INTERNAL) when the store has stopped writing
  // for good (e.g. after a failed WAL sync), and the process must restart
  // and recover from disk. Cheap; safe to poll. The default, for stores that
  // cannot fail (test fakes), is OK.
  virtual absl::Status WriteHealth() { return absl::OkStatus(); }
};

// Global statuses (docs/protocol.md section 2).
inline constexpr char kStatusPrepared[] = "prepared";
inline constexpr char kStatusSubmitted[] = "submitted";
inline constexpr char kStatusAborting[] = "aborting";
inline constexpr char kStatusSucceed[] = "succeed";
inline constexpr char kStatusFailed[] = "failed";

inline bool IsFinalStatus(absl::string_view status) {
  return status == kStatusSucceed || status == kStatusFailed;
}

}  // namespace dtmd::storage

#endif  // DTMD_STORAGE_STORE_H_
