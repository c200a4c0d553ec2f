// Operating dtmd, end to end (README "Operating dtmd" and "Configuration"):
// health and reflection, the limit flags, one process per port and data
// directory, and what SIGTERM does while a branch call is in flight.
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/grpc_probes.h"
#include "tests/integration/saga_fixture.h"

namespace dtmd::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

// The limits the suite's dtmd runs with, far below the defaults.
constexpr int kMaxGidBytes = 8;
constexpr int kMaxSteps = 2;
constexpr int kMaxRequestBytes = 2048;
constexpr int kMaxBranchHeaders = 1;

class OperationsTest : public SagaFixture {
 protected:
  static void SetUpTestSuite() {
    StartSuite({absl::StrCat("--max_gid_bytes=", kMaxGidBytes),
                absl::StrCat("--max_steps=", kMaxSteps),
                absl::StrCat("--max_request_bytes=", kMaxRequestBytes),
                absl::StrCat("--max_branch_headers=", kMaxBranchHeaders)});
  }

  // A gid of exactly `bytes` bytes, unique within the run.
  static std::string GidOfSize(size_t bytes) {
    static int counter = 0;
    std::string gid = absl::StrCat("g", counter++, "-");
    gid.resize(bytes, 'x');
    return gid;
  }

  // A saga of `steps` steps with empty URLs (nothing to call) and `payload`
  // as every step's payload.
  dtmd::client::Saga EmptySaga(const std::string& gid, int steps,
                               const std::string& payload = "") {
    dtmd::client::Saga saga = NewSaga(gid);
    for (int i = 0; i < steps; ++i) saga.Add("", "", payload);
    return saga;
  }

  // Expects `saga` to be refused with INVALID_ARGUMENT naming `field`, and
  // nothing stored.
  void ExpectRefused(dtmd::client::Saga saga, const std::string& field) {
    grpc::Status status = saga.Submit();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(field));
    EXPECT_EQ(dtmd_->GetTransaction(saga.gid()).status().code(),
              absl::StatusCode::kNotFound);
  }
};

TEST_F(OperationsTest, HealthAnswersServing) {
  absl::StatusOr<ServingStatus> health = CheckHealth(dtmd_->channel());
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(OperationsTest, ReflectionListsDtmAdminAndHealth) {
  absl::StatusOr<std::vector<std::string>> services =
      ListServicesByReflection(dtmd_->channel());
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, IsSupersetOf({"dtmgimp.Dtm", "dtmd.admin.v1.Admin",
                                       "grpc.health.v1.Health"}));
}

TEST_F(OperationsTest, MaxGidBytesLimitsTheGid) {
  EXPECT_TRUE(EmptySaga(GidOfSize(kMaxGidBytes), 1).Submit().ok());
  ExpectRefused(EmptySaga(GidOfSize(kMaxGidBytes + 1), 1), "Gid");
}

TEST_F(OperationsTest, MaxStepsLimitsTheSteps) {
  EXPECT_TRUE(EmptySaga(GidOfSize(kMaxGidBytes), kMaxSteps).Submit().ok());
  ExpectRefused(EmptySaga(GidOfSize(kMaxGidBytes), kMaxSteps + 1), "Steps");
}

TEST_F(OperationsTest, MaxRequestBytesLimitsTheRequest) {
  // Well within the limit, then just over it (payloads included).
  const std::string gid = GidOfSize(kMaxGidBytes);
  dtmd::client::Saga fits = EmptySaga(gid, 1, std::string(1500, 'p'));
  ASSERT_LE(fits.BuildRequest().ByteSizeLong(), size_t{kMaxRequestBytes});
  EXPECT_TRUE(fits.Submit().ok());
  dtmd::client::Saga over =
      EmptySaga(GidOfSize(kMaxGidBytes), 1, std::string(kMaxRequestBytes, 'p'));
  ASSERT_GT(over.BuildRequest().ByteSizeLong(), size_t{kMaxRequestBytes});
  ExpectRefused(over, "request");
  // Far over it, gRPC itself refuses the message (its receive limit is set
  // from the flag); nothing is stored.
  dtmd::client::Saga far_over =
      EmptySaga(GidOfSize(kMaxGidBytes), 1, std::string(64 << 10, 'p'));
  EXPECT_EQ(far_over.Submit().error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(dtmd_->GetTransaction(far_over.gid()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(OperationsTest, MaxBranchHeadersLimitsTheHeaders) {
  dtmd::client::Saga one = EmptySaga(GidOfSize(kMaxGidBytes), 1);
  EXPECT_TRUE(one.AddBranchHeader("x-a", "1").Submit().ok());
  dtmd::client::Saga two = EmptySaga(GidOfSize(kMaxGidBytes), 1);
  two.AddBranchHeader("x-a", "1").AddBranchHeader("x-b", "2");
  ExpectRefused(two, "BranchHeaders");
}

TEST_F(OperationsTest, ASecondDtmdOnATakenPortOrDataDirExitsWithCodeOne) {
  DtmdProcess same_port(MakeTempDir("second"),
                        {absl::StrCat("--grpc_port=", dtmd_->port())});
  absl::Status started = same_port.Start(absl::Seconds(10));
  EXPECT_FALSE(started.ok()) << "the port is taken: it must not be shared";
  EXPECT_EQ(same_port.exit_code(), 1) << started;

  DtmdProcess same_dir(dtmd_->data_dir(), {});
  started = same_dir.Start(absl::Seconds(10));
  EXPECT_FALSE(started.ok()) << "the store is locked by the running dtmd";
  EXPECT_EQ(same_dir.exit_code(), 1) << started;

  // The running one is unaffected.
  std::string gid;
  EXPECT_TRUE(dtmd::client::NewGid(dtmd_->dtm(), &gid).ok());
}

TEST_F(OperationsTest, HealthSaysNotServingUntilRecoveryHasLoadedTheDueIndex) {
  DtmdProcess dtmd(MakeTempDir("recovery"),
                   {"--testing_recovery_delay_ms=1500"});
  dtmd.set_wait_for_serving(false);
  ASSERT_TRUE(dtmd.Start().ok());
  absl::StatusOr<ServingStatus> health = CheckHealth(dtmd.channel());
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  // Requests are served meanwhile; only readiness waits.
  std::string gid;
  EXPECT_TRUE(dtmd::client::NewGid(dtmd.dtm(), &gid).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (absl::Now() < deadline) {
    health = CheckHealth(dtmd.channel());
    if (health.ok() &&
        *health == grpc::health::v1::HealthCheckResponse::SERVING) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(dtmd.Stop(), 0);
}

TEST_F(OperationsTest, ConfigFileIsAppliedAndFlagsOverrideIt) {
  const std::string dir = MakeTempDir("config");
  const std::string path = dir + "/dtmd.yaml";
  std::ofstream(path) << "MaxSteps: 1\nGrpcPort: 1\nRetryInterval: 10\n";
  // DtmdProcess passes --grpc_port=0, which must win over the file's 1.
  DtmdProcess dtmd(dir + "/data", {"--config=" + path});
  ASSERT_TRUE(dtmd.Start().ok());
  EXPECT_NE(dtmd.port(), 1);
  dtmd::client::Saga saga(dtmd.dtm(), "config-steps");
  saga.Add("", "", "").Add("", "", "");
  grpc::Status status = saga.Submit();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("steps"));
  EXPECT_EQ(dtmd.Stop(), 0);
}

TEST_F(OperationsTest, UnknownConfigKeyOrBadValueStopsStartUp) {
  const std::string dir = MakeTempDir("bad-config");
  for (const char* text : {"MaxStepz: 1\n", "MaxSteps: many\n",
                           "Store:\n  Driver: mysql\n", "MaxSteps: 0\n"}) {
    const std::string path = dir + "/dtmd.yaml";
    std::ofstream(path) << text;
    DtmdProcess dtmd(dir + "/data", {"--config=" + path});
    EXPECT_FALSE(dtmd.Start(absl::Seconds(10)).ok()) << text;
    EXPECT_EQ(dtmd.exit_code(), 2) << text;
  }
}

TEST_F(OperationsTest, SigtermTurnsHealthNotServingAndWaitsForTheCallInFlight) {
  DtmdProcess dtmd(MakeTempDir("shutdown"),
                   {"--retry_interval=1", "--cron_interval=1"});
  ASSERT_TRUE(dtmd.Start().ok());
  const std::string gid = "sigterm-in-flight";
  constexpr int kDelayMs = 2000;
  branches_->SetScript(Method("Held"), gid,
                       {{grpc::StatusCode::OK, "", kDelayMs}});
  ASSERT_TRUE(dtmd::client::Saga(dtmd.dtm(), gid)
                  .Add(Url("Held"), Url("UndoHeld"), "")
                  .Add(Url("Next"), Url("UndoNext"), "")
                  .Submit()
                  .ok());
  ASSERT_TRUE(branches_->WaitForCalls(
      [&](const std::vector<RecordedCall>& calls) {
        for (const RecordedCall& c : calls) {
          if (c.gid == gid) return true;
        }
        return false;
      },
      absl::Seconds(10)));
  const RecordedCall held = branches_->CallsFor(gid).front();
  const int64_t held_answer_ms = held.time_ms + kDelayMs;

  int exit_code = 0;
  int64_t exited_ms = 0;
  std::thread stopper([&] {
    exit_code = dtmd.Stop();
    exited_ms = absl::ToUnixMillis(absl::Now());
  });
  // Poll health until it says NOT_SERVING or dtmd stops answering.
  int64_t not_serving_ms = 0;
  for (;;) {
    absl::StatusOr<ServingStatus> health = CheckHealth(dtmd.channel());
    if (!health.ok()) break;
    if (*health == grpc::health::v1::HealthCheckResponse::NOT_SERVING) {
      not_serving_ms = absl::ToUnixMillis(absl::Now());
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  stopper.join();

  EXPECT_EQ(exit_code, 0);
  ASSERT_GT(not_serving_ms, 0) << "health never said NOT_SERVING";
  // Event order: NOT_SERVING while the call was still in flight, and the
  // exit only after its answer.
  EXPECT_LT(not_serving_ms, held_answer_ms);
  EXPECT_GE(exited_ms, held_answer_ms);
  // The answer was stored before the exit: the restart goes on with step 2
  // and does not call step 1 again.
  EXPECT_THAT(CallSequence(gid), ElementsAre("01:action"));
  ASSERT_TRUE(dtmd.Start().ok());
  auto reply = dtmd.WaitForStatus(gid, {"succeed"}, absl::Seconds(30));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_THAT(CallSequence(gid), ElementsAre("01:action", "02:action"));
  EXPECT_EQ(dtmd.Stop(), 0);
}

}  // namespace
}  // namespace dtmd::testing
