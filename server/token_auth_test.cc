// TokenAuthenticator and the token file format, and the validation of the
// security flags.
#include <fstream>
#include <string>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config.h"
#include "server/security.h"

ABSL_DECLARE_FLAG(std::string, branch_tls);
ABSL_DECLARE_FLAG(std::string, branch_tls_ca_file);
ABSL_DECLARE_FLAG(std::string, tls_cert_file);
ABSL_DECLARE_FLAG(std::string, tls_key_file);
ABSL_DECLARE_FLAG(std::string, tls_client_ca_file);
ABSL_DECLARE_FLAG(int, health_port);

namespace dtmd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TokenFile(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::trunc) << content;
  return path;
}

absl::Status Check(const TokenAuthenticator& auth, const std::string& value) {
  const absl::string_view header = value;
  return auth.CheckHeader(&header);
}

TEST(ParseTokenFileTest, OneTokenPerLineWithCommentsAndBlanks) {
  auto tokens = ParseTokenFile("# ops\n\n  one \r\ntwo\n#three\n\t\n");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_THAT(*tokens, ElementsAre("one", "two"));
}

TEST(ParseTokenFileTest, RejectsEmptyFilesAndBadBytesWithoutShowingThem) {
  EXPECT_THAT(ParseTokenFile("# none\n\n").status().message(),
              HasSubstr("no token"));
  absl::Status space = ParseTokenFile("ok\nsecret value\n").status();
  EXPECT_THAT(space.message(), HasSubstr("line 2"));
  EXPECT_THAT(space.message(), ::testing::Not(HasSubstr("secret")));
  EXPECT_FALSE(ParseTokenFile("caf\xc3\xa9\n").ok());
}

TEST(TokenAuthenticatorTest, OpenWithoutFile) {
  TokenAuthenticator open;
  EXPECT_FALSE(open.enabled());
  EXPECT_TRUE(open.CheckHeader(nullptr).ok());
  EXPECT_TRUE(open.Reload().ok());
}

TEST(TokenAuthenticatorTest, ChecksBearerTokens) {
  auto auth = TokenAuthenticator::FromFile(TokenFile("t1", "abc\nlonger1\n"));
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_TRUE(Check(**auth, "Bearer abc").ok());
  EXPECT_TRUE(Check(**auth, "bearer longer1").ok());
  EXPECT_TRUE(Check(**auth, "Bearer  abc ").ok());
  for (const char* bad :
       {"Bearer ab", "Bearer abcd", "Bearer ", "Bearer", "abc", "Basic abc",
        "Bearer longer", "Bearer Abc", "Bearer abcabc"}) {
    EXPECT_TRUE(absl::IsUnauthenticated(Check(**auth, bad))) << bad;
  }
  EXPECT_TRUE(absl::IsUnauthenticated((*auth)->CheckHeader(nullptr)));
}

TEST(TokenAuthenticatorTest, ReloadKeepsOldTokensOnError) {
  const std::string path = TokenFile("t2", "first\n");
  auto auth = TokenAuthenticator::FromFile(path);
  ASSERT_TRUE(auth.ok()) << auth.status();
  TokenFile("t2", "second\n");
  ASSERT_TRUE((*auth)->Reload().ok());
  EXPECT_TRUE(Check(**auth, "Bearer second").ok());
  EXPECT_FALSE(Check(**auth, "Bearer first").ok());
  TokenFile("t2", "\n");
  EXPECT_FALSE((*auth)->Reload().ok());
  std::remove(path.c_str());
  EXPECT_THAT((*auth)->Reload().message(), HasSubstr("cannot read"));
  EXPECT_TRUE(Check(**auth, "Bearer second").ok());
  EXPECT_EQ((*auth)->token_count(), 1u);
}

TEST(TokenAuthenticatorTest, MissingFileAtStartIsAnError) {
  auto auth = TokenAuthenticator::FromFile(::testing::TempDir() + "/absent");
  EXPECT_THAT(auth.status().message(),
              HasSubstr("--auth_token_file: cannot read"));
}

TEST(SecurityFlagsTest, ValidatesCombinations) {
  absl::FlagSaver saver;
  absl::SetFlag(&FLAGS_tls_cert_file, "cert.pem");
  EXPECT_THAT(ConfigFromFlags().status().message(), HasSubstr("go together"));
  absl::SetFlag(&FLAGS_tls_cert_file, "");
  absl::SetFlag(&FLAGS_tls_client_ca_file, "ca.pem");
  EXPECT_THAT(ConfigFromFlags().status().message(),
              HasSubstr("--tls_client_ca_file needs"));
  absl::SetFlag(&FLAGS_tls_client_ca_file, "");
  absl::SetFlag(&FLAGS_health_port, 0);
  EXPECT_THAT(ConfigFromFlags().status().message(),
              HasSubstr("--health_port is for a TLS server"));
  absl::SetFlag(&FLAGS_health_port, -1);
  // The CA file alone is for https:// branch URLs.
  absl::SetFlag(&FLAGS_branch_tls_ca_file, "ca.pem");
  EXPECT_TRUE(ConfigFromFlags().ok());
  absl::SetFlag(&FLAGS_branch_tls, "svc.ns:443, [::1]:8080");
  auto config = ConfigFromFlags();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->branch_tls_all);
  EXPECT_THAT(config->branch_tls_targets,
              ElementsAre("svc.ns:443", "[::1]:8080"));
  absl::SetFlag(&FLAGS_branch_tls, "*");
  config = ConfigFromFlags();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->branch_tls_all);
  for (const char* bad : {"svc", "svc:0", "https://svc:443", "svc:443/x"}) {
    absl::SetFlag(&FLAGS_branch_tls, bad);
    EXPECT_THAT(ConfigFromFlags().status().message(), HasSubstr("--branch_tls"))
        << bad;
  }
}

TEST(BranchTlsTest, SelectsTargets) {
  BranchTls none;
  EXPECT_FALSE(none.UsesTls("a:1"));
  Config config;
  config.branch_tls_targets = {"a:1"};
  auto listed = BranchTls::FromConfig(config);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->UsesTls("a:1"));
  EXPECT_FALSE(listed->UsesTls("a:2"));
  config.branch_tls_all = true;
  config.branch_tls_ca_file = ::testing::TempDir() + "/no-ca.pem";
  EXPECT_THAT(BranchTls::FromConfig(config).status().message(),
              HasSubstr("--branch_tls_ca_file: cannot read"));
}

}  // namespace
}  // namespace dtmd
