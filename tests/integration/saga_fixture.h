// The fixture shared by the saga integration tests: one real dtmd process and
// one scripted branch server per test suite, on loopback.
#ifndef DTMD_TESTS_INTEGRATION_SAGA_FIXTURE_H_
#define DTMD_TESTS_INTEGRATION_SAGA_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "dtmd/client.h"
#include "gtest/gtest.h"
#include "tests/integration/branch_server.h"
#include "tests/integration/dtmd_process.h"

namespace dtmd::testing {

class SagaFixture : public ::testing::Test {
 protected:
  // Starts the branch server and dtmd with the saga flags (fast retries).
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  // What SetUpTestSuite does, with `extra_flags` after the saga flags; a
  // derived fixture that needs other flags calls it from its own
  // SetUpTestSuite.
  static void StartSuite(const std::vector<std::string>& extra_flags);

  // A gid unique within the run.
  static std::string NewTestGid();
  // Branch URL for method "/busi.Busi/<name>".
  static std::string Url(const std::string& name);
  static std::string Method(const std::string& name);
  dtmd::client::Saga NewSaga(const std::string& gid);

  // The (branch_id, op) of every call made for gid, in arrival order.
  static std::vector<std::string> CallSequence(const std::string& gid);

  // The branch (branch_id, op) in an admin reply; nullptr if it has none.
  static const dtmd::admin::v1::Branch* FindBranch(
      const dtmd::admin::v1::GetTransactionReply& reply,
      const std::string& branch_id, const std::string& op);
  // The transaction once dtmd has stored `last_error` as the last error of
  // branch (branch_id, op): the state right after that answer.
  static absl::StatusOr<dtmd::admin::v1::GetTransactionReply> WaitForLastError(
      const std::string& gid, const std::string& branch_id,
      const std::string& op, const std::string& last_error);

  static ScriptedBranchServer* branches_;
  static DtmdProcess* dtmd_;
};

}  // namespace dtmd::testing

#endif  // DTMD_TESTS_INTEGRATION_SAGA_FIXTURE_H_
