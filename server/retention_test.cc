// Retention against a real store, with the time injected.
#include "server/retention.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/test_store.h"
#include "storage/rocksdb_store.h"

namespace dtmd {
namespace {

using storage::v1::BranchRecord;
using storage::v1::TransRecord;

class ManualClock : public Clock {
 public:
  int64_t NowMs() const override { return now_ms.load(); }
  std::atomic<int64_t> now_ms{0};
};

constexpr int64_t kDayMs = 24 * 3600 * 1000;

class RetentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = testing::OpenEmptyStore("retention_test_");
    ASSERT_NE(store_, nullptr);
    hooked_ = std::make_unique<testing::HookedStore>(store_.get());
    options_.retention_ms = 7 * kDayMs;
    options_.batch_pause_ms = 0;
    clock_.now_ms = 100 * kDayMs;
  }

  void Create(const std::string& gid, const std::string& status,
              int64_t finish_ms) {
    TransRecord trans;
    trans.set_gid(gid);
    trans.set_trans_type("saga");
    trans.set_status(status);
    trans.set_finish_time_ms(finish_ms);
    trans.set_next_cron_time_ms(clock_.now_ms + 1000);
    BranchRecord branch;
    branch.set_branch_id("01");
    branch.set_op("action");
    branch.set_status("succeed");
    absl::Notification done;
    hooked_->CreateTransaction(
        trans, {branch, branch}, storage::Durability::kNoSync,
        [&](absl::StatusOr<storage::CreateResult> result) {
          EXPECT_TRUE(result.ok() && result->created) << result.status();
          done.Notify();
        });
    done.WaitForNotification();
  }

  bool Exists(const std::string& gid) {
    return hooked_->GetTransaction(gid).ok();
  }

  std::unique_ptr<Retention> Make(Retention::Filter busy = nullptr) {
    return std::make_unique<Retention>(options_, hooked_.get(), &clock_,
                                       std::move(busy));
  }

  std::unique_ptr<storage::RocksDBStore> store_;
  std::unique_ptr<testing::HookedStore> hooked_;
  ManualClock clock_;
  RetentionOptions options_;
};

TEST_F(RetentionTest, DeletesFinishedOlderThanTheRetentionOnly) {
  const int64_t now = clock_.now_ms;
  Create("succeed-old", "succeed", now - 8 * kDayMs);
  Create("failed-old", "failed", now - 7 * kDayMs - 1);
  Create("succeed-young", "succeed", now - 6 * kDayMs);
  Create("failed-exactly", "failed", now - 7 * kDayMs);  // not older.
  Create("running", "submitted", 0);
  Create("prepared", "prepared", 0);
  std::unique_ptr<Retention> retention = Make();
  absl::StatusOr<Retention::PassResult> pass = retention->RunPass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->deleted, 2);
  EXPECT_FALSE(Exists("succeed-old"));
  EXPECT_FALSE(Exists("failed-old"));
  for (const char* gid :
       {"succeed-young", "failed-exactly", "running", "prepared"}) {
    EXPECT_TRUE(Exists(gid)) << gid;
  }
  // A day later the young ones are due; the unfinished never are.
  clock_.now_ms += kDayMs + 1;
  pass = retention->RunPass();
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->deleted, 2);
  EXPECT_TRUE(Exists("running"));
  EXPECT_TRUE(Exists("prepared"));
  EXPECT_EQ(retention->deleted_total(), 4);
  clock_.now_ms += 365 * kDayMs;
  pass = retention->RunPass();
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->deleted, 0);
  EXPECT_TRUE(Exists("running"));
}

TEST_F(RetentionTest, DeletesInBatches) {
  for (int i = 0; i < 10; ++i) {
    Create(absl::StrCat("g", i), "succeed", clock_.now_ms - 30 * kDayMs + i);
  }
  options_.batch_size = 3;
  std::unique_ptr<Retention> retention = Make();
  absl::StatusOr<Retention::PassResult> pass = retention->RunPass();
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->deleted, 10);
  EXPECT_EQ(pass->batches, 4);
  EXPECT_TRUE(pass->reclaimed);  // compact_interval 0: after every pass.
}

TEST_F(RetentionTest, SkipsBusyGidsUntilALaterPass) {
  Create("busy", "succeed", clock_.now_ms - 30 * kDayMs);
  Create("idle", "succeed", clock_.now_ms - 30 * kDayMs);
  std::atomic<bool> busy{true};
  std::unique_ptr<Retention> retention =
      Make([&busy](std::vector<storage::FinishedTrans>* finished) {
        if (!busy) return;
        finished->erase(std::remove_if(finished->begin(), finished->end(),
                                       [](const storage::FinishedTrans& f) {
                                         return f.gid == "busy";
                                       }),
                        finished->end());
      });
  absl::StatusOr<Retention::PassResult> pass = retention->RunPass();
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->deleted, 1);
  EXPECT_EQ(pass->skipped, 1);
  EXPECT_TRUE(Exists("busy"));
  busy = false;
  pass = retention->RunPass();
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->deleted, 1);
  EXPECT_FALSE(Exists("busy"));
}

TEST_F(RetentionTest, CompactsAtMostEveryInterval) {
  options_.compact_interval_ms = 3600 * 1000;
  std::unique_ptr<Retention> retention = Make();
  Create("a", "succeed", clock_.now_ms - 30 * kDayMs);
  absl::StatusOr<Retention::PassResult> pass = retention->RunPass();
  ASSERT_TRUE(pass.ok());
  EXPECT_TRUE(pass->reclaimed);
  Create("b", "succeed", clock_.now_ms - 30 * kDayMs);
  pass = retention->RunPass();
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->deleted, 1);
  EXPECT_FALSE(pass->reclaimed);
}

TEST_F(RetentionTest, BackgroundThreadDeletesAndStops) {
  options_.pass_interval_ms = 20;
  std::unique_ptr<Retention> retention = Make();
  retention->Start();
  Create("late", "succeed", clock_.now_ms - 30 * kDayMs);
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (Exists("late") && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_FALSE(Exists("late"));
  retention->Stop();
  const int64_t passes = retention->passes();
  EXPECT_GE(passes, 1);
  Create("after-stop", "succeed", clock_.now_ms - 30 * kDayMs);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(retention->passes(), passes);
  EXPECT_TRUE(Exists("after-stop"));
}

}  // namespace
}  // namespace dtmd
