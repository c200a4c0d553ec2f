#include "tests/integration/saga_fixture.h"

#include <atomic>

#include "absl/strings/str_cat.h"

namespace dtmd::testing {

ScriptedBranchServer* SagaFixture::branches_ = nullptr;
DtmdProcess* SagaFixture::dtmd_ = nullptr;

void SagaFixture::SetUpTestSuite() {
  branches_ = new ScriptedBranchServer();
  ASSERT_TRUE(branches_->Start().ok());
  dtmd_ = new DtmdProcess(
      MakeTempDir("saga"),
      {"--retry_interval=1", "--cron_interval=1", "--max_retry_interval=4",
       "--advertise_address=dtmd.test:36790"});
  absl::Status started = dtmd_->Start();
  ASSERT_TRUE(started.ok()) << started;
}

void SagaFixture::TearDownTestSuite() {
  if (dtmd_ != nullptr) {
    EXPECT_EQ(dtmd_->Stop(), 0) << "dtmd must exit 0 on SIGTERM";
  }
  delete dtmd_;
  dtmd_ = nullptr;
  delete branches_;
  branches_ = nullptr;
}

std::string SagaFixture::NewTestGid() {
  static std::atomic<int> counter{0};
  const ::testing::TestInfo* info =
      ::testing::UnitTest::GetInstance()->current_test_info();
  return absl::StrCat(info != nullptr ? info->name() : "gid", "-", counter++);
}

std::string SagaFixture::Method(const std::string& name) {
  return "/busi.Busi/" + name;
}

std::string SagaFixture::Url(const std::string& name) {
  return branches_->Url(Method(name));
}

dtmd::client::Saga SagaFixture::NewSaga(const std::string& gid) {
  return dtmd::client::Saga(dtmd_->dtm(), gid);
}

std::vector<std::string> SagaFixture::CallSequence(const std::string& gid) {
  std::vector<std::string> out;
  for (const RecordedCall& call : branches_->CallsFor(gid)) {
    out.push_back(absl::StrCat(call.branch_id, ":", call.op));
  }
  return out;
}

}  // namespace dtmd::testing
