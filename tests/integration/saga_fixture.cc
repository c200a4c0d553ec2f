#include "tests/integration/saga_fixture.h"

#include <atomic>

#include "absl/strings/str_cat.h"

namespace dtmd::testing {

ScriptedBranchServer* SagaFixture::branches_ = nullptr;
DtmdProcess* SagaFixture::dtmd_ = nullptr;

void SagaFixture::SetUpTestSuite() { StartSuite({}); }

void SagaFixture::StartSuite(const std::vector<std::string>& extra_flags) {
  branches_ = new ScriptedBranchServer();
  ASSERT_TRUE(branches_->Start().ok());
  std::vector<std::string> flags = {"--retry_interval=1", "--cron_interval=1",
                                    "--max_retry_interval=4",
                                    "--advertise_address=dtmd.test:36790"};
  flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
  dtmd_ = new DtmdProcess(MakeTempDir("saga"), std::move(flags));
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

const dtmd::admin::v1::Branch* SagaFixture::FindBranch(
    const dtmd::admin::v1::GetTransactionReply& reply,
    const std::string& branch_id, const std::string& op) {
  for (const dtmd::admin::v1::Branch& b : reply.branches()) {
    if (b.branch_id() == branch_id && b.op() == op) return &b;
  }
  return nullptr;
}

absl::StatusOr<dtmd::admin::v1::GetTransactionReply>
SagaFixture::WaitForLastError(const std::string& gid,
                              const std::string& branch_id,
                              const std::string& op,
                              const std::string& last_error) {
  return dtmd_->WaitFor(
      gid,
      [&](const dtmd::admin::v1::GetTransactionReply& reply) {
        const dtmd::admin::v1::Branch* b = FindBranch(reply, branch_id, op);
        return b != nullptr && b->last_error() == last_error;
      },
      absl::StrCat("last error '", last_error, "' on ", branch_id, ":", op),
      absl::Seconds(20));
}

}  // namespace dtmd::testing
