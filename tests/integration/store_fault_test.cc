// A real dtmd whose store fails: a latched WAL-sync failure (injected with
// the test-only --testing_fail_wal_sync_after) makes it exit 3 and the
// restart finishes every acknowledged saga; a damaged MANIFEST stops
// start-up unless --accept_data_loss; a full disk (a small tmpfs, where the
// machine lets the test mount one) turns health NOT_SERVING and back.
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "dtmd/client.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "tests/integration/branch_server.h"
#include "tests/integration/dtmd_process.h"

namespace dtmd::testing {
namespace {

namespace fs = std::filesystem;
using ::grpc::health::v1::HealthCheckResponse;

// The overall health status; UNKNOWN if dtmd does not answer.
HealthCheckResponse::ServingStatus Health(const DtmdProcess& dtmd) {
  grpc::GenericStub stub(dtmd.channel());
  std::string bytes =
      grpc::health::v1::HealthCheckRequest().SerializeAsString();
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(2));
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response, [&](grpc::Status s) {
                   status = s;
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return HealthCheckResponse::UNKNOWN;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return HealthCheckResponse::UNKNOWN;
  std::string reply;
  for (const grpc::Slice& s : slices) {
    reply.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  HealthCheckResponse parsed;
  if (!parsed.ParseFromString(reply)) return HealthCheckResponse::UNKNOWN;
  return parsed.status();
}

// Polls until Health() is `want`; bounded, so a broken dtmd fails the test
// instead of hanging it.
bool AwaitHealth(const DtmdProcess& dtmd,
                 HealthCheckResponse::ServingStatus want) {
  for (int i = 0; i < 300; ++i) {
    if (Health(dtmd) == want) return true;
    usleep(100 * 1000);
  }
  return false;
}

class StoreFaultTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(branches_.Start().ok()); }

  grpc::Status SubmitSaga(const DtmdProcess& dtmd, const std::string& gid) {
    dtmd::client::Saga saga(dtmd.dtm(), gid);
    saga.Add(branches_.Url("/busi.Busi/Order"),
             branches_.Url("/busi.Busi/OrderUndo"), "o")
        .Add(branches_.Url("/busi.Busi/Pay"),
             branches_.Url("/busi.Busi/PayUndo"), "p")
        .SetCallTimeout(std::chrono::seconds(5));
    return saga.Submit();
  }

  ScriptedBranchServer branches_;
};

TEST_F(StoreFaultTest, FailedWalSyncExitsThreeAndRestartFinishesAcknowledged) {
  const std::string data_dir = MakeTempDir("wal_sync_fails");
  std::vector<std::string> acked;
  {
    DtmdProcess dtmd(data_dir, {"--testing_fail_wal_sync_after=20",
                                "--retry_interval=1", "--cron_interval=1"});
    ASSERT_TRUE(dtmd.Start().ok());
    grpc::Status failed;
    for (int i = 0; i < 500 && failed.ok(); ++i) {
      const std::string gid = absl::StrCat("sync-fails-", i);
      failed = SubmitSaga(dtmd, gid);
      if (failed.ok()) acked.push_back(gid);
    }
    EXPECT_FALSE(failed.ok()) << "no write failed";
    ASSERT_FALSE(acked.empty());
    // dtmd leaves by itself: nothing answers any more.
    ASSERT_TRUE(AwaitHealth(dtmd, HealthCheckResponse::UNKNOWN));
    EXPECT_EQ(dtmd.Stop(), 3);  // Reaps it; its own exit code.
  }
  DtmdProcess restarted(data_dir, {"--retry_interval=1", "--cron_interval=1"});
  ASSERT_TRUE(restarted.Start().ok());
  for (const std::string& gid : acked) {
    auto reply = restarted.WaitForStatus(gid, {"succeed"}, absl::Seconds(60));
    ASSERT_TRUE(reply.ok()) << gid << ": " << reply.status();
  }
  EXPECT_EQ(restarted.Stop(), 0);
}

TEST_F(StoreFaultTest, DamagedManifestStopsStartUpUnlessAcceptDataLoss) {
  const std::string data_dir = MakeTempDir("damaged_manifest");
  {
    DtmdProcess dtmd(data_dir, {});
    ASSERT_TRUE(dtmd.Start().ok());
    ASSERT_TRUE(SubmitSaga(dtmd, "manifest-1").ok());
    ASSERT_TRUE(
        dtmd.WaitForStatus("manifest-1", {"succeed"}, absl::Seconds(30)).ok());
    ASSERT_EQ(dtmd.Stop(), 0);
  }
  std::string manifest;
  std::ifstream(fs::path(data_dir) / "CURRENT") >> manifest;
  const fs::path path = fs::path(data_dir) / manifest;
  fs::resize_file(path, fs::file_size(path) / 2);

  DtmdProcess refused(data_dir, {});
  absl::Status start = refused.Start();
  EXPECT_FALSE(start.ok()) << "dtmd started on a damaged MANIFEST";

  DtmdProcess accepting(data_dir, {"--accept_data_loss"});
  ASSERT_TRUE(accepting.Start().ok());
  EXPECT_EQ(accepting.Stop(), 0);
}

TEST_F(StoreFaultTest, FullDiskIsNotServingUntilSpaceReturns) {
  const std::string mount_point = MakeTempDir("full_disk");
  if (geteuid() != 0 ||
      mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=16m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here";
  }
  {
    DtmdProcess dtmd(mount_point + "/data", {});
    ASSERT_TRUE(dtmd.Start().ok());
    ASSERT_EQ(Health(dtmd), HealthCheckResponse::SERVING);
    {
      FILE* filler = fopen((mount_point + "/filler").c_str(), "w");
      ASSERT_NE(filler, nullptr);
      const std::string block(4096, 'f');
      while (fwrite(block.data(), 1, block.size(), filler) == block.size() &&
             fflush(filler) == 0) {
      }
      fclose(filler);
    }
    grpc::Status failed;
    for (int i = 0; i < 2000 && failed.ok(); ++i) {
      failed = SubmitSaga(dtmd, absl::StrCat("full-", i));
    }
    EXPECT_EQ(failed.error_code(), grpc::StatusCode::UNAVAILABLE)
        << failed.error_message();
    EXPECT_TRUE(AwaitHealth(dtmd, HealthCheckResponse::NOT_SERVING));

    fs::remove(mount_point + "/filler");
    EXPECT_TRUE(AwaitHealth(dtmd, HealthCheckResponse::SERVING));
    EXPECT_TRUE(SubmitSaga(dtmd, "after-space").ok());
    EXPECT_EQ(dtmd.Stop(), 0);
  }
  umount(mount_point.c_str());
}

}  // namespace
}  // namespace dtmd::testing
