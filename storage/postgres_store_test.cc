// PostgresStore against a throwaway PostgreSQL (scripts/postgres.sh): the
// store.h contract, group commit, leases between two stores (replicas) on
// one database, the schema migration and an outage of the server.
#include "storage/postgres_store.h"

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/pg_test_server.h"
#include "storage/store_test_util.h"

namespace dtmd::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// One server for the whole binary; each test gets its own database.
PgTestServer* server = nullptr;

class PgEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<PgTestServer>> started =
        PgTestServer::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = *std::move(started);
    server = server_.get();
  }
  void TearDown() override {
    server = nullptr;
    server_.reset();
  }

 private:
  std::unique_ptr<PgTestServer> server_;
};

const ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new PgEnvironment);

class CountingObserver : public WriteObserver {
 public:
  void OnBatchWritten(int64_t ops, int64_t, double) override {
    batches += 1;
    writes += ops;
  }
  void OnWalSynced(double) override {}
  std::atomic<int64_t> batches{0};
  std::atomic<int64_t> writes{0};
};

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(server, nullptr);
    absl::StatusOr<std::string> dsn = server->CreateDatabase();
    ASSERT_TRUE(dsn.ok()) << dsn.status();
    dsn_ = *dsn;
    store_ = OpenStore("r1");
    ASSERT_NE(store_, nullptr);
  }

  std::unique_ptr<PostgresStore> OpenStore(const std::string& replica,
                                           int64_t lease_ms = 10000,
                                           WriteObserver* observer = nullptr,
                                           bool release_on_close = true) {
    PostgresStoreOptions options;
    options.release_leases_on_close = release_on_close;
    options.dsn = dsn_;
    options.replica_id = replica;
    options.lease_ms = lease_ms;
    options.observer = observer;
    options.connect_timeout = absl::Seconds(10);
    absl::StatusOr<std::unique_ptr<PostgresStore>> store =
        PostgresStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  static absl::StatusOr<CreateResult> Create(
      Store* store, TransRecord trans, std::vector<BranchRecord> branches = {},
      Durability d = Durability::kSync) {
    CreateWaiter waiter;
    store->CreateTransaction(std::move(trans), std::move(branches), d,
                             waiter.Callback());
    return waiter.Wait();
  }
  absl::StatusOr<CreateResult> Create(TransRecord trans,
                                      std::vector<BranchRecord> branches = {},
                                      Durability d = Durability::kSync) {
    return Create(store_.get(), std::move(trans), std::move(branches), d);
  }

  static absl::Status Update(Store* store, TransRecord trans,
                             const std::string& expected,
                             std::vector<BranchRecord> branches = {}) {
    StatusWaiter waiter;
    store->UpdateTransaction(std::move(trans), expected, std::move(branches),
                             Durability::kNoSync, waiter.Callback());
    return waiter.Wait();
  }
  absl::Status Update(TransRecord trans, const std::string& expected,
                      std::vector<BranchRecord> branches = {}) {
    return Update(store_.get(), std::move(trans), expected,
                  std::move(branches));
  }

  static absl::Status Put(Store* store, const std::string& gid,
                          std::vector<BranchRecord> branches) {
    StatusWaiter waiter;
    store->PutBranches(gid, std::move(branches), Durability::kNoSync,
                       waiter.Callback());
    return waiter.Wait();
  }

  static absl::Status Append(Store* store, const std::string& gid,
                             const std::string& expected,
                             std::vector<BranchRecord> branches) {
    StatusWaiter waiter;
    store->AppendBranches(gid, expected, std::move(branches), Durability::kSync,
                          waiter.Callback());
    return waiter.Wait();
  }

  absl::Status Subscribe(const std::string& topic, const std::string& url,
                         const std::string& remark = "") {
    StatusWaiter waiter;
    store_->Subscribe(topic, url, remark, waiter.Callback());
    return waiter.Wait();
  }
  absl::Status Unsubscribe(const std::string& topic, const std::string& url) {
    StatusWaiter waiter;
    store_->Unsubscribe(topic, url, waiter.Callback());
    return waiter.Wait();
  }
  absl::Status DeleteTopic(const std::string& topic) {
    StatusWaiter waiter;
    store_->DeleteTopic(topic, waiter.Callback());
    return waiter.Wait();
  }

  std::string dsn_;
  std::unique_ptr<PostgresStore> store_;
};

TransRecord Submitted(const std::string& gid, int64_t next_cron = 1000) {
  TransRecord trans = Trans(gid, kStatusSubmitted, next_cron);
  trans.set_create_time_ms(100);
  return trans;
}

BranchRecord WithPayload(BranchRecord branch, const std::string& url,
                         const std::string& payload) {
  branch.set_url(url);
  branch.set_bin_data(payload);
  branch.set_create_time_ms(7);
  return branch;
}

TEST_F(PostgresStoreTest, CreateGetAndExisting) {
  std::string payload("a\0b\xff\"{},\\", 10);
  absl::StatusOr<CreateResult> created =
      Create(Submitted("g1"),
             {WithPayload(Branch("01", "action"), "http://a/\"x\"", payload),
              WithPayload(Branch("01", "compensate"), "http://a/c", payload)});
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(created->created);
  EXPECT_EQ(created->trans.gid(), "g1");
  ASSERT_EQ(created->branches.size(), 2u);
  EXPECT_EQ(created->branches[1].position(), 1);

  absl::StatusOr<TransRecord> got = store_->GetTransaction("g1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status(), kStatusSubmitted);
  EXPECT_EQ(got->create_time_ms(), 100);
  absl::StatusOr<std::vector<BranchRecord>> branches =
      store_->GetBranches("g1");
  ASSERT_TRUE(branches.ok()) << branches.status();
  ASSERT_EQ(branches->size(), 2u);
  EXPECT_EQ((*branches)[0].gid(), "g1");
  EXPECT_EQ((*branches)[0].url(), "http://a/\"x\"");
  EXPECT_EQ((*branches)[0].bin_data(), payload);
  EXPECT_EQ((*branches)[0].create_time_ms(), 7);
  EXPECT_EQ((*branches)[1].op(), "compensate");
  EXPECT_EQ((*branches)[1].position(), 1);
  EXPECT_EQ((*branches)[1].status(), "prepared");

  TransRecord again = Submitted("g1");
  again.set_status(kStatusAborting);
  absl::StatusOr<CreateResult> existing = Create(again, {Branch("x", "y")});
  ASSERT_TRUE(existing.ok()) << existing.status();
  EXPECT_FALSE(existing->created);
  EXPECT_EQ(existing->existing.status(), kStatusSubmitted);
  EXPECT_EQ(store_->GetBranches("g1")->size(), 2u);

  EXPECT_TRUE(absl::IsNotFound(store_->GetTransaction("nope").status()));
  EXPECT_THAT(*store_->GetBranches("nope"), IsEmpty());
  EXPECT_TRUE(absl::IsInvalidArgument(Create(Submitted("")).status()));
}

TEST_F(PostgresStoreTest, UpdateIsConditionalAndWritesBranchState) {
  ASSERT_TRUE(
      Create(Submitted("g"), {Branch("01", "action"), Branch("02", "action")})
          .ok());
  TransRecord next = Submitted("g", 5000);
  next.set_status(kStatusSucceed);
  next.set_finish_time_ms(900);
  BranchRecord done;
  done.set_position(1);
  done.set_status("succeed");
  done.set_last_error("boom");
  done.set_last_code(14);
  done.set_call_count(3);
  done.set_finish_time_ms(800);
  absl::Status wrong = Update(next, kStatusAborting, {done});
  EXPECT_TRUE(absl::IsFailedPrecondition(wrong)) << wrong;
  EXPECT_THAT(wrong.message(), HasSubstr("submitted"));
  // Fenced: no lease is held for an unknown gid.
  EXPECT_TRUE(absl::IsAborted(Update(Submitted("other"), kStatusSubmitted)));
  ASSERT_TRUE(Update(next, kStatusSubmitted, {done}).ok());
  EXPECT_EQ(store_->GetTransaction("g")->status(), kStatusSucceed);
  std::vector<BranchRecord> branches = *store_->GetBranches("g");
  ASSERT_EQ(branches.size(), 2u);
  EXPECT_EQ(branches[0].status(), "prepared");
  EXPECT_EQ(branches[1].status(), "succeed");
  EXPECT_EQ(branches[1].last_error(), "boom");
  EXPECT_EQ(branches[1].last_code(), 14);
  EXPECT_EQ(branches[1].call_count(), 3);
  EXPECT_EQ(branches[1].finish_time_ms(), 800);
  EXPECT_EQ(branches[1].branch_id(), "02") << "definition kept";
  // Final: no longer due.
  EXPECT_THAT(*store_->ScanDue(1 << 30, 10), IsEmpty());
}

TEST_F(PostgresStoreTest, PutAndAppendBranches) {
  ASSERT_TRUE(Create(Submitted("g"), {Branch("01", "action")}).ok());
  BranchRecord state;
  state.set_position(0);
  state.set_status("failed");
  ASSERT_TRUE(Put(store_.get(), "g", {state}).ok());
  ASSERT_TRUE(Append(store_.get(), "g", kStatusSubmitted,
                     {Branch("02", "action"), Branch("03", "action")})
                  .ok());
  absl::Status wrong =
      Append(store_.get(), "g", kStatusAborting, {Branch("04", "action")});
  EXPECT_TRUE(absl::IsFailedPrecondition(wrong)) << wrong;
  std::vector<BranchRecord> branches = *store_->GetBranches("g");
  ASSERT_EQ(branches.size(), 3u);
  EXPECT_EQ(branches[0].status(), "failed");
  EXPECT_EQ(branches[1].branch_id(), "02");
  EXPECT_EQ(branches[1].position(), 1);
  EXPECT_EQ(branches[2].branch_id(), "03");
  EXPECT_EQ(branches[2].position(), 2);
  BranchRecord negative;
  negative.set_position(-1);
  EXPECT_TRUE(absl::IsInvalidArgument(Put(store_.get(), "g", {negative})));
}

TEST_F(PostgresStoreTest, WritesOfOneGroupSeeEachOther) {
  // Issued back to back, so that the writer takes them as one batch.
  CreateWaiter created;
  StatusWaiter appended, updated, bad, after;
  store_->CreateTransaction(Submitted("g"), {Branch("01", "action")},
                            Durability::kNoSync, created.Callback());
  store_->AppendBranches("g", kStatusSubmitted, {Branch("02", "action")},
                         Durability::kNoSync, appended.Callback());
  TransRecord aborting = Submitted("g");
  aborting.set_status(kStatusAborting);
  store_->UpdateTransaction(aborting, kStatusSubmitted, {}, Durability::kNoSync,
                            updated.Callback());
  store_->UpdateTransaction(aborting, kStatusSubmitted, {}, Durability::kNoSync,
                            bad.Callback());
  store_->AppendBranches("g", kStatusAborting, {Branch("03", "action")},
                         Durability::kNoSync, after.Callback());
  ASSERT_TRUE(created.Wait().ok());
  EXPECT_TRUE(appended.Wait().ok());
  EXPECT_TRUE(updated.Wait().ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(bad.Wait()));
  EXPECT_TRUE(after.Wait().ok());
  std::vector<BranchRecord> branches = *store_->GetBranches("g");
  ASSERT_EQ(branches.size(), 3u);
  EXPECT_EQ(branches[2].branch_id(), "03");
}

TEST_F(PostgresStoreTest, ListFiltersAndPages) {
  for (int i = 0; i < 7; ++i) {
    TransRecord t = Submitted(absl::StrCat(i % 2 ? "odd-" : "even-", i));
    t.set_create_time_ms(1000 + i / 2);  // pairs share a time
    if (i == 3) t.set_trans_type("tcc");
    if (i == 4) t.set_status(kStatusPrepared);
    ASSERT_TRUE(Create(t).ok());
  }
  std::vector<std::string> all;
  std::optional<TransCursor> cursor;
  do {
    absl::StatusOr<TransPage> page =
        store_->ListTransactions(TransFilter(), cursor, 3);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const TransRecord& t : page->transactions) all.push_back(t.gid());
    cursor = page->next;
  } while (cursor.has_value());
  EXPECT_THAT(all, ElementsAre("even-6", "odd-5", "even-4", "odd-3", "even-2",
                               "odd-1", "even-0"));
  TransFilter filter;
  filter.gid_prefix = "odd-";
  filter.created_after_ms = 1000;
  auto gids = [this](const TransFilter& f) {
    std::vector<std::string> out;
    absl::StatusOr<TransPage> page =
        store_->ListTransactions(f, std::nullopt, 10);
    EXPECT_TRUE(page.ok()) << page.status();
    if (page.ok()) {
      for (const TransRecord& t : page->transactions) out.push_back(t.gid());
    }
    return out;
  };
  EXPECT_THAT(gids(filter), ElementsAre("odd-5", "odd-3"));
  TransFilter tcc;
  tcc.trans_type = "tcc";
  EXPECT_THAT(gids(tcc), ElementsAre("odd-3"));
  TransFilter prepared;
  prepared.status = kStatusPrepared;
  prepared.created_before_ms = 1003;
  EXPECT_THAT(gids(prepared), ElementsAre("even-4"));
  prepared.created_before_ms = 1002;
  EXPECT_THAT(gids(prepared), IsEmpty());
  EXPECT_TRUE(absl::IsInvalidArgument(
      store_->ListTransactions(TransFilter(), std::nullopt, 0).status()));
}

TEST_F(PostgresStoreTest, ScanDueClaimsInNextCronOrder) {
  TransRecord prepared = Trans("p", kStatusPrepared, 300);
  ASSERT_TRUE(Create(prepared).ok());
  ASSERT_TRUE(Create(Trans("late", kStatusSubmitted, 5000)).ok());
  ASSERT_TRUE(Create(Trans("done", kStatusSucceed, 10)).ok());
  // Created by r1 (it holds their leases): another replica claims them
  // once free.
  store_->ReleaseLease("late");
  std::unique_ptr<PostgresStore> other = OpenStore("r2");
  ASSERT_TRUE(Create(other.get(), Trans("a", kStatusAborting, 200)).ok());
  other->ReleaseLease("a");
  other->Flush();
  store_->Flush();
  // Metrics count what is due without claiming it.
  EXPECT_EQ(*store_->CountDue(1000, 10), 2);
  EXPECT_EQ(*store_->CountDue(1000, 1), 1);
  EXPECT_EQ(*other->CountDue(10000, 10), 3);
  EXPECT_THAT(*store_->ScanDue(1000, 10), ElementsAre("a", "p"));
  EXPECT_THAT(*store_->ScanDue(1000, 10), IsEmpty()) << "held by r1 now";
  EXPECT_THAT(*other->ScanDue(10000, 10), ElementsAre("late"));
  EXPECT_TRUE(store_->CheckLease("a").ok());
  EXPECT_TRUE(absl::IsAborted(other->CheckLease("a")));
}

TEST_F(PostgresStoreTest, Topics) {
  EXPECT_TRUE(absl::IsNotFound(store_->GetTopic("t").status()));
  ASSERT_TRUE(Subscribe("t", "http://b", "second?").ok());
  ASSERT_TRUE(Subscribe("t", "http://a", "r").ok());
  ASSERT_TRUE(Subscribe("s", "http://a").ok());
  EXPECT_TRUE(absl::IsAlreadyExists(Subscribe("t", "http://a")));
  EXPECT_TRUE(absl::IsInvalidArgument(Subscribe("", "http://a")));
  EXPECT_TRUE(absl::IsInvalidArgument(Subscribe("t", "")));
  std::vector<Subscriber> subs = *store_->GetTopic("t");
  ASSERT_EQ(subs.size(), 2u);
  EXPECT_EQ(subs[0].url, "http://b");
  EXPECT_EQ(subs[0].remark, "second?");
  EXPECT_EQ(subs[1].url, "http://a");
  EXPECT_THAT(*store_->ListTopics(), ElementsAre("s", "t"));
  absl::Status missing = Unsubscribe("t", "http://c");
  EXPECT_TRUE(absl::IsNotFound(missing));
  EXPECT_THAT(missing.message(), HasSubstr("not subscribed"));
  EXPECT_THAT(Unsubscribe("x", "http://c").message(), HasSubstr("topic x"));
  ASSERT_TRUE(Unsubscribe("s", "http://a").ok());
  EXPECT_TRUE(absl::IsNotFound(store_->GetTopic("s").status()));
  ASSERT_TRUE(DeleteTopic("t").ok());
  EXPECT_TRUE(absl::IsNotFound(DeleteTopic("t")));
  EXPECT_THAT(*store_->ListTopics(), IsEmpty());
}

TEST_F(PostgresStoreTest, RetentionScanAndDelete) {
  for (int i = 0; i < 5; ++i) {
    TransRecord t = Trans(absl::StrCat("f", i), kStatusSucceed, 0);
    t.set_finish_time_ms(100 + i);
    ASSERT_TRUE(Create(t, {Branch("01", "action")}).ok());
  }
  TransRecord by_update = Trans("u", kStatusFailed, 0);
  by_update.set_update_time_ms(50);
  ASSERT_TRUE(Create(by_update).ok());
  ASSERT_TRUE(Create(Submitted("live")).ok());
  absl::StatusOr<std::vector<FinishedTrans>> first =
      store_->ScanFinished(104, std::nullopt, 3);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ((*first)[0].gid, "u");
  EXPECT_EQ((*first)[0].finish_time_ms, 50);
  EXPECT_EQ((*first)[2].gid, "f1");
  std::vector<FinishedTrans> rest =
      *store_->ScanFinished(104, first->back(), 10);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[1].gid, "f3");

  Waiter<absl::StatusOr<int64_t>> deleted;
  std::vector<FinishedTrans> doomed = *first;
  doomed.push_back({999, "f4"});  // wrong time: kept
  doomed.push_back({1, "live"});  // not final: kept
  store_->DeleteFinished(doomed, deleted.Callback());
  absl::StatusOr<int64_t> count = deleted.Wait();
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 3);
  EXPECT_TRUE(absl::IsNotFound(store_->GetTransaction("f0").status()));
  EXPECT_THAT(*store_->GetBranches("f0"), IsEmpty());
  EXPECT_TRUE(store_->GetTransaction("f4").ok());
  EXPECT_TRUE(store_->GetTransaction("live").ok());
  EXPECT_TRUE(store_->ReclaimSpace().ok());
}

TEST_F(PostgresStoreTest, GroupCommitFromManyThreads) {
  CountingObserver observer;
  store_.reset();
  store_ = OpenStore("r1", 10000, &observer);
  constexpr int kThreads = 4, kPerThread = 500;
  std::atomic<int> failed{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        store_->CreateTransaction(
            Submitted(absl::StrCat("t", t, "-", i)), {Branch("01", "action")},
            i % 2 ? Durability::kSync : Durability::kNoSync,
            [&](absl::StatusOr<CreateResult> r) {
              if (!r.ok() || !r->created) ++failed;
              ++done;
            });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  store_->Flush();
  EXPECT_EQ(done.load(), kThreads * kPerThread);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(observer.writes.load(), kThreads * kPerThread);
  EXPECT_LT(observer.batches.load(), kThreads * kPerThread);
  EXPECT_EQ(store_->GetStats().leases_held, kThreads * kPerThread);
}

TEST_F(PostgresStoreTest, CallbacksRunInIssueOrder) {
  std::vector<int> order;
  absl::Mutex mu;
  for (int i = 0; i < 50; ++i) {
    store_->CreateTransaction(Submitted(absl::StrCat("g", i % 10)), {},
                              Durability::kSync,
                              [&, i](absl::StatusOr<CreateResult>) {
                                absl::MutexLock lock(&mu);
                                order.push_back(i);
                              });
  }
  store_->Flush();
  absl::MutexLock lock(&mu);
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[i], i);
}

TEST_F(PostgresStoreTest, FullQueueAnswersResourceExhaustedInOrder) {
  store_.reset();
  PostgresStoreOptions options;
  options.dsn = dsn_;
  options.replica_id = "r1";
  options.max_queued_writes = 2;
  absl::StatusOr<std::unique_ptr<PostgresStore>> opened =
      PostgresStore::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  store_ = *std::move(opened);
  // A write refused at once (no lease) whose callback holds the writer.
  absl::Notification paused, release;
  store_->AppendBranches("pause", kStatusPrepared, {}, Durability::kNoSync,
                         [&](absl::Status) {
                           paused.Notify();
                           release.WaitForNotification();
                         });
  paused.WaitForNotification();
  std::vector<absl::Status> results(3);
  std::vector<int> order;
  absl::Mutex mu;
  for (int i = 0; i < 3; ++i) {
    store_->CreateTransaction(Submitted(absl::StrCat("q", i)), {},
                              Durability::kNoSync,
                              [&, i](absl::StatusOr<CreateResult> r) {
                                absl::MutexLock lock(&mu);
                                results[i] = r.status();
                                order.push_back(i);
                              });
  }
  release.Notify();
  store_->Flush();
  EXPECT_TRUE(results[0].ok()) << results[0];
  EXPECT_TRUE(results[1].ok()) << results[1];
  EXPECT_TRUE(absl::IsResourceExhausted(results[2])) << results[2];
  EXPECT_THAT(order, ElementsAre(0, 1, 2));
  EXPECT_TRUE(absl::IsNotFound(store_->GetTransaction("q2").status()));
}

TEST_F(PostgresStoreTest, AFailingStatementFailsAloneInItsBatch) {
  // Invalid UTF-8 makes PostgreSQL refuse the statement; the batch it was
  // in is redone one write at a time.
  absl::Notification paused, release;
  store_->AppendBranches("pause", kStatusPrepared, {}, Durability::kNoSync,
                         [&](absl::Status) {
                           paused.Notify();
                           release.WaitForNotification();
                         });
  paused.WaitForNotification();
  CreateWaiter good1, bad, good2;
  TransRecord invalid = Submitted("bad");
  invalid.set_trans_type("\xff\xfe");
  store_->CreateTransaction(Submitted("good1"), {}, Durability::kNoSync,
                            good1.Callback());
  store_->CreateTransaction(invalid, {}, Durability::kNoSync, bad.Callback());
  store_->CreateTransaction(Submitted("good2"), {}, Durability::kNoSync,
                            good2.Callback());
  release.Notify();
  EXPECT_TRUE(good1.Wait().ok());
  absl::StatusOr<CreateResult> refused = bad.Wait();
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  EXPECT_TRUE(good2.Wait().ok());
  EXPECT_TRUE(store_->GetTransaction("good2").ok());
  EXPECT_TRUE(absl::IsNotFound(store_->GetTransaction("bad").status()));
  EXPECT_TRUE(absl::IsAborted(store_->CheckLease("bad")))
      << "the failed create's lease is dropped";
  EXPECT_TRUE(store_->WriteHealth().ok());
}

// Leases between two replicas.

TEST_F(PostgresStoreTest, AcquireConflictAndFencing) {
  std::unique_ptr<PostgresStore> other = OpenStore("r2");
  ASSERT_TRUE(Create(Submitted("g"), {Branch("01", "action")}).ok());
  EXPECT_TRUE(store_->CheckLease("g").ok());
  EXPECT_TRUE(store_->AcquireLease("g").ok());
  absl::Status taken = other->AcquireLease("g");
  EXPECT_TRUE(absl::IsAborted(taken)) << taken;
  EXPECT_THAT(taken.message(), HasSubstr("driven by replica r1"));
  EXPECT_TRUE(absl::IsNotFound(other->AcquireLease("unknown")));
  // r2 holds no lease: its writes are refused without I/O.
  TransRecord aborting = Submitted("g");
  aborting.set_status(kStatusAborting);
  absl::Status fenced = Update(other.get(), aborting, kStatusSubmitted);
  EXPECT_TRUE(absl::IsAborted(fenced)) << fenced;
  EXPECT_THAT(fenced.message(), HasSubstr("not held"));
  EXPECT_EQ(store_->GetTransaction("g")->status(), kStatusSubmitted);
  // Released: r2 takes it, and r1's writes fail.
  store_->ReleaseLease("g");
  store_->Flush();
  EXPECT_TRUE(absl::IsAborted(store_->CheckLease("g")));
  ASSERT_TRUE(other->AcquireLease("g").ok());
  EXPECT_TRUE(other->CheckLease("g").ok());
  ASSERT_TRUE(Update(other.get(), aborting, kStatusSubmitted).ok());
  EXPECT_TRUE(absl::IsAborted(store_->AcquireLease("g")));
}

TEST_F(PostgresStoreTest, ExpiredLeaseIsTakenOverAndTheLoserIsFenced) {
  // As if r1 had stalled past its lease: the lease ends in the database
  // while r1 still holds it in memory, and r2 takes it over.
  ASSERT_TRUE(Create(Submitted("g"), {Branch("01", "action")}).ok());
  std::unique_ptr<PostgresStore> other = OpenStore("r2");
  ASSERT_TRUE(PgTestServer::Exec(dsn_,
                                 "UPDATE dtmd_trans SET lease_until_ms = 0 "
                                 "WHERE gid = 'g'")
                  .ok());
  ASSERT_TRUE(other->AcquireLease("g").ok());
  // r1 still believes it holds the lease; its writes are fenced.
  TransRecord aborting = Submitted("g");
  aborting.set_status(kStatusAborting);
  absl::Status fenced = Update(store_.get(), aborting, kStatusSubmitted);
  EXPECT_TRUE(absl::IsAborted(fenced)) << fenced;
  EXPECT_THAT(fenced.message(), HasSubstr("held by r2"));
  BranchRecord state;
  state.set_position(0);
  state.set_status("succeed");
  EXPECT_TRUE(absl::IsAborted(Put(store_.get(), "g", {state})))
      << "dropped from the map after the first fenced write";
  EXPECT_EQ(store_->GetTransaction("g")->status(), kStatusSubmitted);
  EXPECT_EQ((*store_->GetBranches("g"))[0].status(), "prepared");
  EXPECT_TRUE(absl::IsAborted(store_->CheckLease("g")));
  ASSERT_TRUE(Put(other.get(), "g", {state}).ok());
  EXPECT_EQ((*store_->GetBranches("g"))[0].status(), "succeed");
}

TEST_F(PostgresStoreTest, LeaseExpiresWithoutRenewalAndIsRenewedWhileHeld) {
  // a closes as if it died: its leases stay until they end.
  std::unique_ptr<PostgresStore> a = OpenStore("ra", 600, nullptr, false);
  std::unique_ptr<PostgresStore> b = OpenStore("rb", 600);
  ASSERT_TRUE(Create(a.get(), Submitted("g")).ok());
  // Renewed: still held well past lease_ms.
  absl::SleepFor(absl::Milliseconds(1500));
  EXPECT_TRUE(a->CheckLease("g").ok());
  EXPECT_TRUE(absl::IsAborted(b->AcquireLease("g")));
  a.reset();
  EXPECT_TRUE(absl::IsAborted(b->AcquireLease("g"))) << "not ended yet";
  bool taken = false;
  for (int i = 0; i < 40 && !taken; ++i) {
    taken = b->AcquireLease("g").ok();
    if (!taken) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(taken);
}

TEST_F(PostgresStoreTest, GidsWithArraySyntaxAreRenewedAndDeleted) {
  const std::string odd = "a\"b\\c,{d} e";
  std::unique_ptr<PostgresStore> a = OpenStore("ra", 400);
  ASSERT_TRUE(Create(a.get(), Submitted(odd)).ok());
  absl::SleepFor(absl::Milliseconds(1000));
  EXPECT_TRUE(a->CheckLease(odd).ok()) << "renewed";
  TransRecord done = Submitted(odd);
  done.set_status(kStatusSucceed);
  done.set_finish_time_ms(77);
  ASSERT_TRUE(Update(a.get(), done, kStatusSubmitted).ok());
  std::vector<FinishedTrans> finished = *a->ScanFinished(100, std::nullopt, 10);
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0].gid, odd);
  Waiter<absl::StatusOr<int64_t>> deleted;
  a->DeleteFinished(finished, deleted.Callback());
  absl::StatusOr<int64_t> count = deleted.Wait();
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 1);
}

TEST_F(PostgresStoreTest, ACleanCloseGivesTheLeasesUp) {
  std::unique_ptr<PostgresStore> b = OpenStore("rb");
  ASSERT_TRUE(Create(Submitted("g1")).ok());
  ASSERT_TRUE(Create(Submitted("g2")).ok());
  EXPECT_TRUE(absl::IsAborted(b->AcquireLease("g1")));
  store_.reset();
  EXPECT_TRUE(b->AcquireLease("g1").ok());
  EXPECT_TRUE(b->AcquireLease("g2").ok());
}

TEST_F(PostgresStoreTest, ConcurrentClaimsAreDisjoint) {
  std::unique_ptr<PostgresStore> other = OpenStore("r2");
  for (int i = 0; i < 200; ++i) {
    store_->CreateTransaction(Trans(absl::StrCat("p", i), kStatusPrepared, i),
                              {}, Durability::kNoSync,
                              [](absl::StatusOr<CreateResult>) {});
  }
  store_->Flush();
  std::vector<std::string> mine, theirs;
  auto claim = [](PostgresStore* store, std::vector<std::string>* out) {
    for (int i = 0; i < 20; ++i) {
      absl::StatusOr<std::vector<std::string>> got = store->ScanDue(1000, 15);
      ASSERT_TRUE(got.ok()) << got.status();
      out->insert(out->end(), got->begin(), got->end());
    }
  };
  std::thread t1(claim, store_.get(), &mine);
  std::thread t2(claim, other.get(), &theirs);
  t1.join();
  t2.join();
  std::set<std::string> all(mine.begin(), mine.end());
  for (const std::string& gid : theirs) {
    EXPECT_TRUE(all.insert(gid).second) << gid << " claimed twice";
  }
  EXPECT_EQ(all.size(), 200u);
  for (const std::string& gid : mine) EXPECT_TRUE(store_->CheckLease(gid).ok());
}

// Schema.

TEST_F(PostgresStoreTest, SchemaMigrationIsIdempotentAndRefusesNewer) {
  store_->Flush();
  ASSERT_TRUE(Create(Submitted("kept")).ok());
  store_.reset();
  store_ = OpenStore("r1");
  ASSERT_NE(store_, nullptr);
  EXPECT_TRUE(store_->GetTransaction("kept").ok());
  store_.reset();
  const int newer = PostgresStore::SchemaVersion() + 1;
  ASSERT_TRUE(
      PgTestServer::Exec(dsn_, absl::StrCat("INSERT INTO dtmd_schema_version "
                                            "(version) VALUES (",
                                            newer, ")"))
          .ok());
  PostgresStoreOptions options;
  options.dsn = dsn_;
  options.replica_id = "r1";
  absl::StatusOr<std::unique_ptr<PostgresStore>> refused =
      PostgresStore::Open(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status()));
  EXPECT_THAT(refused.status().message(), HasSubstr(absl::StrCat(newer)));
  EXPECT_THAT(refused.status().message(),
              HasSubstr(absl::StrCat(PostgresStore::SchemaVersion())));
}

TEST_F(PostgresStoreTest, ReplicasStartingTogetherMigrateOnce) {
  absl::StatusOr<std::string> fresh = server->CreateDatabase();
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  std::vector<absl::Status> opened(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      PostgresStoreOptions options;
      options.dsn = *fresh;
      options.replica_id = absl::StrCat("r", i);
      opened[i] = PostgresStore::Open(options).status();
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : opened) EXPECT_TRUE(s.ok()) << s;
}

TEST_F(PostgresStoreTest, OpensWithAKeywordValueDsn) {
  ASSERT_TRUE(Create(Submitted("g")).ok());
  // postgresql://postgres@127.0.0.1:PORT/t_N as keyword=value pairs.
  const std::string rest = dsn_.substr(dsn_.find('@') + 1);
  const std::string host_port = rest.substr(0, rest.find('/'));
  PostgresStoreOptions options;
  options.dsn =
      absl::StrCat("host=", host_port.substr(0, host_port.find(':')),
                   " port=", host_port.substr(host_port.find(':') + 1),
                   " user=postgres dbname=", rest.substr(rest.find('/') + 1),
                   " connect_timeout=3");
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->GetTransaction("g").ok());
  EXPECT_FALSE((*store)->replica_id().empty()) << "generated";
}

TEST_F(PostgresStoreTest, UnreachableDatabaseFailsOpen) {
  PostgresStoreOptions options;
  options.dsn = "postgresql://postgres@127.0.0.1:1/none";
  options.connect_timeout = absl::Seconds(1);
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open(options);
  EXPECT_TRUE(absl::IsUnavailable(store.status())) << store.status();
}

// Outage: last, since it stops the shared server (and starts it again).
TEST_F(PostgresStoreTest, ZZOutageFailsWritesAndRecovers) {
  ASSERT_TRUE(Create(Submitted("before")).ok());
  // Writes keep coming while the server stops: each is answered (OK or
  // UNAVAILABLE, never another code), none hangs.
  std::atomic<bool> stop{false};
  std::atomic<int> issued{0}, answered{0}, other_codes{0};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      ++issued;
      store_->CreateTransaction(
          Submitted(absl::StrCat("w", i)), {Branch("01", "action")},
          Durability::kSync, [&](absl::StatusOr<CreateResult> r) {
            if (!r.ok() && !absl::IsUnavailable(r.status())) ++other_codes;
            ++answered;
          });
      absl::SleepFor(absl::Milliseconds(1));
    }
  });
  absl::SleepFor(absl::Milliseconds(100));
  ASSERT_TRUE(server->Stop().ok());
  absl::SleepFor(absl::Milliseconds(100));
  stop = true;
  writer.join();
  store_->Flush();
  EXPECT_EQ(answered.load(), issued.load());
  EXPECT_EQ(other_codes.load(), 0);

  absl::StatusOr<CreateResult> during = Create(Submitted("during"));
  EXPECT_TRUE(absl::IsUnavailable(during.status())) << during.status();
  EXPECT_TRUE(absl::IsUnavailable(store_->WriteHealth()));
  EXPECT_TRUE(absl::IsUnavailable(store_->GetTransaction("before").status()));
  EXPECT_TRUE(absl::IsUnavailable(store_->ScanDue(1 << 30, 10).status()));
  EXPECT_TRUE(absl::IsUnavailable(store_->AcquireLease("unheld")));
  EXPECT_TRUE(store_->AcquireLease("before").ok()) << "held: no I/O";
  EXPECT_TRUE(store_->CheckLease("before").ok());
  EXPECT_TRUE(absl::IsUnavailable(Create(Submitted("again")).status()));
  ASSERT_TRUE(server->Restart().ok());
  bool healthy = false;
  for (int i = 0; i < 100 && !healthy; ++i) {
    healthy = store_->WriteHealth().ok();
    if (!healthy) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(healthy) << store_->WriteHealth();
  absl::StatusOr<CreateResult> after = Create(Submitted("after"));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(after->created);
  EXPECT_TRUE(store_->GetTransaction("before").ok());
  EXPECT_TRUE(store_->GetTransaction("after").ok());

  // Open waits for a server that is not up yet.
  store_.reset();
  ASSERT_TRUE(server->Stop().ok());
  std::thread restart([] {
    absl::SleepFor(absl::Milliseconds(1500));
    ASSERT_TRUE(server->Restart().ok());
  });
  store_ = OpenStore("r1");
  restart.join();
  ASSERT_NE(store_, nullptr);
  EXPECT_TRUE(store_->GetTransaction("after").ok());
}

}  // namespace
}  // namespace dtmd::storage
