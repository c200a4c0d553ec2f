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
  static void SetUpTestSuite();
  static void TearDownTestSuite();

  // A gid unique within the run.
  static std::string NewTestGid();
  // Branch URL for method "/busi.Busi/<name>".
  static std::string Url(const std::string& name);
  static std::string Method(const std::string& name);
  dtmd::client::Saga NewSaga(const std::string& gid);

  // The (branch_id, op) of every call made for gid, in arrival order.
  static std::vector<std::string> CallSequence(const std::string& gid);

  static ScriptedBranchServer* branches_;
  static DtmdProcess* dtmd_;
};

}  // namespace dtmd::testing

#endif  // DTMD_TESTS_INTEGRATION_SAGA_FIXTURE_H_
