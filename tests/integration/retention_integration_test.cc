// Retention against a real dtmd with a retention of seconds: finished
// transactions disappear (admin GetTransaction NOT_FOUND), unfinished ones
// stay, a deleted gid is new again, and the store's files shrink.
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/saga_fixture.h"

namespace dtmd::testing {
namespace {

namespace admin_v1 = ::dtmd::admin::v1;

// Polls until the admin service answers NOT_FOUND for gid; returns the last
// status code seen.
grpc::StatusCode WaitUntilGone(const DtmdProcess& dtmd, const std::string& gid,
                               absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<admin_v1::GetTransactionReply> reply;
  while (true) {
    reply = dtmd.GetTransaction(gid);
    if (absl::IsNotFound(reply.status())) return grpc::StatusCode::NOT_FOUND;
    if (absl::Now() > deadline) {
      return reply.ok() ? grpc::StatusCode::OK
                        : static_cast<grpc::StatusCode>(reply.status().code());
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

// Bytes of the RocksDB table files in dir.
uint64_t TableBytes(const std::string& dir) {
  uint64_t bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".sst") bytes += entry.file_size();
  }
  return bytes;
}

class RetentionIntegrationTest : public SagaFixture {
 protected:
  static void SetUpTestSuite() {
    StartSuite({"--retention=2", "--retention_compact_interval=0"});
  }
};

TEST_F(RetentionIntegrationTest, FinishedSagaIsDeletedRetryingOneStays) {
  const std::string done = NewTestGid();
  const std::string stuck = NewTestGid();
  branches_->SetDefault(Method("Down"),
                        {grpc::StatusCode::UNAVAILABLE, "down", 0});
  ASSERT_TRUE(
      NewSaga(done).Add(Url("Ok"), Url("UndoOk"), "payload").Submit().ok());
  ASSERT_TRUE(
      NewSaga(stuck).Add(Url("Down"), Url("UndoDown"), "").Submit().ok());
  ASSERT_TRUE(dtmd_->WaitForStatus(done, {"succeed"}, absl::Seconds(10)).ok());

  EXPECT_EQ(WaitUntilGone(*dtmd_, done, absl::Seconds(20)),
            grpc::StatusCode::NOT_FOUND);
  // The retrying saga is older than the retention by now and still there,
  // still retried.
  absl::StatusOr<admin_v1::GetTransactionReply> retrying =
      dtmd_->GetTransaction(stuck);
  ASSERT_TRUE(retrying.ok()) << retrying.status();
  EXPECT_EQ(retrying->transaction().status(), "submitted");
  const int64_t calls = FindBranch(*retrying, "01", "action")->call_count();
  EXPECT_GE(calls, 1);
  auto retried = dtmd_->WaitFor(
      stuck,
      [calls](const admin_v1::GetTransactionReply& reply) {
        const admin_v1::Branch* b = FindBranch(reply, "01", "action");
        return b != nullptr && b->call_count() > calls;
      },
      "another retry", absl::Seconds(15));
  EXPECT_TRUE(retried.ok()) << retried.status();

  // A deleted gid is new again: a Submit with it runs a new saga.
  const size_t ok_calls = branches_->CallsFor(done).size();
  ASSERT_TRUE(
      NewSaga(done).Add(Url("Ok"), Url("UndoOk"), "again").Submit().ok());
  EXPECT_TRUE(dtmd_->WaitForStatus(done, {"succeed"}, absl::Seconds(10)).ok());
  EXPECT_EQ(branches_->CallsFor(done).size(), ok_calls + 1);

  // Stopping the stuck saga finishes it: then it goes too.
  grpc::ClientContext context;
  admin_v1::ForceStopRequest stop;
  stop.set_gid(stuck);
  admin_v1::ForceStopReply stopped;
  ASSERT_TRUE(dtmd_->admin()->ForceStop(&context, stop, &stopped).ok());
  EXPECT_EQ(WaitUntilGone(*dtmd_, stuck, absl::Seconds(20)),
            grpc::StatusCode::NOT_FOUND);
}

// Sagas finished under --retention=0 (kept), then a restart with a
// retention of a second: they are deleted and the table files shrink.
TEST_F(RetentionIntegrationTest, FilesShrinkAfterDeletion) {
  const std::string dir = MakeTempDir("retention_shrink");
  constexpr int kSagas = 1000;
  std::mt19937 random(11);
  {
    DtmdProcess keep(dir, {"--retention=0"});
    ASSERT_TRUE(keep.Start().ok());
    for (int i = 0; i < kSagas; ++i) {
      std::string payload(4000, '\0');
      for (char& c : payload) c = static_cast<char>('a' + random() % 26);
      // Steps without URLs: nothing to call, the payload is stored.
      ASSERT_TRUE(dtmd::client::Saga(keep.dtm(), absl::StrCat("shrink-", i))
                      .Add("", "", payload)
                      .Submit()
                      .ok());
    }
    ASSERT_TRUE(keep.WaitForStatus(absl::StrCat("shrink-", kSagas - 1),
                                   {"succeed"}, absl::Seconds(20))
                    .ok());
    ASSERT_EQ(keep.Stop(), 0);  // Flushes the memtables to table files.
  }
  const uint64_t before = TableBytes(dir);
  EXPECT_GT(before, uint64_t{kSagas} * 4000 / 2);

  DtmdProcess expire(
      dir, {"--retention=1", "--retention_compact_interval=0",
            "--retention_batch_size=300", "--retention_batch_pause_ms=10"});
  ASSERT_TRUE(expire.Start().ok());
  EXPECT_EQ(WaitUntilGone(expire, "shrink-0", absl::Seconds(30)),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(WaitUntilGone(expire, absl::StrCat("shrink-", kSagas - 1),
                          absl::Seconds(30)),
            grpc::StatusCode::NOT_FOUND);
  // The compaction follows the pass that deleted the last batch.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (TableBytes(dir) > before / 4 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  const uint64_t after = TableBytes(dir);
  ASSERT_EQ(expire.Stop(), 0);
  std::cout << "table files: " << before << " bytes with " << kSagas
            << " finished sagas, " << after << " bytes after retention ("
            << TableBytes(dir) << " after stop)" << std::endl;
  EXPECT_LE(after, before / 4);
}

}  // namespace
}  // namespace dtmd::testing
