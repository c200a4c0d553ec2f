#include "server/config_sources.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config.h"

namespace dtmd {
namespace {

using ::testing::HasSubstr;

class ConfigSourcesTest : public ::testing::Test {
 protected:
  std::string WriteFile(const std::string& text) {
    std::string path = ::testing::TempDir() + "/dtmd-config-" +
                       std::to_string(++files_) + ".yaml";
    std::ofstream(path) << text;
    return path;
  }

  absl::Status Apply(const std::string& path,
                     std::map<std::string, std::string> env = {}) {
    applied_ = AppliedSources();
    return ApplyFileAndEnvironment(
        path,
        [env](const std::string& name) -> std::optional<std::string> {
          auto it = env.find(name);
          if (it == env.end()) return std::nullopt;
          return it->second;
        },
        &applied_);
  }

  Config Current() {
    absl::StatusOr<Config> c = ConfigFromFlags();
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : Config{};
  }

  absl::FlagSaver saver_;  // every test starts from the defaults
  AppliedSources applied_;
  int files_ = 0;
};

TEST_F(ConfigSourcesTest, FileSetsDtmKeysAndDtmdKeys) {
  std::string path = WriteFile(
      "# dtmd.yaml\n"
      "GrpcPort: 4001\n"
      "TransCronInterval: 7\n"
      "RetryInterval: 12\n"
      "TimeoutToFail: 40\n"
      "MaxBranches: 77\n"
      "AcceptDataLoss: true\n"
      "Store:\n"
      "  Driver: boltdb\n"
      "  MaxOpenConns: 10\n"
      "JsonRpcPort: 36791\n"
      "LogLevel: warn\n");
  ASSERT_TRUE(Apply(path).ok()) << Apply(path);
  Config c = Current();
  EXPECT_EQ(c.grpc_port, 4001);
  EXPECT_EQ(c.cron_interval_s, 7);
  EXPECT_EQ(c.retry_interval_s, 12);
  EXPECT_EQ(c.timeout_to_fail_s, 40);
  EXPECT_EQ(c.max_branches, 77);
  EXPECT_TRUE(c.accept_data_loss);
  EXPECT_EQ(c.log_level, "warn");
  EXPECT_THAT(applied_.ignored, ::testing::UnorderedElementsAre(
                                    "Store.MaxOpenConns", "JsonRpcPort"));
}

TEST_F(ConfigSourcesTest, EnvironmentOverridesFile) {
  std::string path = WriteFile("RetryInterval: 12\nMaxSteps: 5\n");
  ASSERT_TRUE(Apply(path, {{"RETRY_INTERVAL", "20"},
                           {"TRANS_CRON_INTERVAL", "9"},
                           {"MAX_BRANCH_CHANNELS", "8"}})
                  .ok());
  Config c = Current();
  EXPECT_EQ(c.retry_interval_s, 20);
  EXPECT_EQ(c.max_steps, 5);
  EXPECT_EQ(c.cron_interval_s, 9);
  EXPECT_EQ(c.max_branch_channels, 8);
}

TEST_F(ConfigSourcesTest, CommandLineOverridesBothAndSourcesAreReported) {
  std::string path =
      WriteFile("RetryInterval: 12\nMaxSteps: 5\nMaxBranches: 6\n");
  ASSERT_TRUE(Apply(path, {{"MAX_STEPS", "7"}}).ok());
  // What absl::ParseCommandLine does for --max_branches=8 --grpc_port=9.
  std::string error;
  ASSERT_TRUE(
      absl::FindCommandLineFlag("max_branches")->ParseFrom("8", &error));
  ASSERT_TRUE(absl::FindCommandLineFlag("grpc_port")->ParseFrom("9", &error));
  Config c = Current();
  EXPECT_EQ(c.retry_interval_s, 12);
  EXPECT_EQ(c.max_steps, 7);
  EXPECT_EQ(c.max_branches, 8);
  EXPECT_EQ(c.grpc_port, 9);
  std::string report = DescribeEffectiveSettings(applied_);
  EXPECT_THAT(report, HasSubstr("RetryInterval = 12  (" + path + ":1)"));
  EXPECT_THAT(report, HasSubstr("MaxSteps = 7  (environment MAX_STEPS)"));
  EXPECT_THAT(report, HasSubstr("MaxBranches = 8  (command line)"));
  EXPECT_THAT(report, HasSubstr("GrpcPort = 9  (command line)"));
  EXPECT_THAT(report, HasSubstr("TimeoutToFail = 35  (default)"));
}

TEST_F(ConfigSourcesTest, LegacyEnvironmentNameStillRead) {
  ASSERT_TRUE(Apply("", {{"CRON_JOB_INTERVAL", "4"}}).ok());
  EXPECT_EQ(Current().cron_interval_s, 4);
  // DTM's name wins when both are set.
  ASSERT_TRUE(
      Apply("", {{"CRON_JOB_INTERVAL", "4"}, {"TRANS_CRON_INTERVAL", "6"}})
          .ok());
  EXPECT_EQ(Current().cron_interval_s, 6);
}

TEST_F(ConfigSourcesTest, UnknownKeyIsNamedWithItsLine) {
  std::string path = WriteFile("RetryInterval: 12\nRetryIntervall: 3\n");
  absl::Status s = Apply(path);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(path + ":2"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("RetryIntervall"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown key"));
}

TEST_F(ConfigSourcesTest, UnknownNestedKeyIsNamedInFull) {
  absl::Status s = Apply(WriteFile("Store:\n  Drivr: boltdb\n"));
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("Store.Drivr"));
}

TEST_F(ConfigSourcesTest, BadValueIsNamed) {
  absl::Status s = Apply(WriteFile("GrpcPort: lots\n"));
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("GrpcPort"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("lots"));

  s = Apply(WriteFile("RetryInterval:\n  - 1\n  - 2\n"));
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("RetryInterval"));
}

TEST_F(ConfigSourcesTest, BadEnvironmentValueIsNamed) {
  absl::Status s = Apply("", {{"RETRY_INTERVAL", "soon"}});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("RETRY_INTERVAL"));
}

TEST_F(ConfigSourcesTest, OtherStoreDriversAreRefused) {
  absl::Status s = Apply(WriteFile("Store:\n  Driver: mysql\n"));
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("Store.Driver"));
}

TEST_F(ConfigSourcesTest, PostgresStoreFromFileAndEnvironment) {
  ASSERT_TRUE(Apply(WriteFile("Store:\n  Driver: postgres\n"
                              "LeaseTimeout: 20\n"),
                    {{"POSTGRES_DSN", "postgresql://dtmd@db/dtmd"},
                     {"REPLICA_ID", "dtmd-0"}})
                  .ok());
  Config c = Current();
  EXPECT_EQ(c.store_driver, "postgres");
  EXPECT_EQ(c.postgres_dsn, "postgresql://dtmd@db/dtmd");
  EXPECT_EQ(c.replica_id, "dtmd-0");
  EXPECT_EQ(c.lease_timeout_s, 20);
}

// A DTM configuration for PostgreSQL works as it is.
TEST_F(ConfigSourcesTest, PostgresDsnFromDtmStoreSettings) {
  ASSERT_TRUE(Apply(WriteFile("Store:\n"
                              "  Driver: postgres\n"
                              "  Host: db.example\n"
                              "  Port: 5433\n"
                              "  User: dtm\n"
                              "  Db: dtm\n"
                              "  Schema: dtm\n"),
                    {{"STORE_PASSWORD", "it's"}})
                  .ok());
  EXPECT_EQ(Current().postgres_dsn,
            "host='db.example' port=5433 user='dtm' password='it\\'s' "
            "dbname='dtm' options='-c search_path=\"dtm\"'");
}

TEST_F(ConfigSourcesTest, PostgresStoreNeedsADsnAndNamesItsReplica) {
  ASSERT_TRUE(Apply(WriteFile("Store:\n  Driver: postgres\n")).ok());
  absl::StatusOr<Config> c = ConfigFromFlags();
  EXPECT_TRUE(absl::IsInvalidArgument(c.status())) << c.status();
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("--postgres_dsn"));
  ASSERT_TRUE(Apply("", {{"POSTGRES_DSN", "host=db"}}).ok());
  c = ConfigFromFlags();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->replica_id.empty()) << "a generated replica id";
}

TEST_F(ConfigSourcesTest, NotYamlOrMissingFile) {
  absl::Status s = Apply(WriteFile("RetryInterval: [1, 2\n"));
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("not valid YAML"));
  s = Apply(WriteFile("- just\n- a list\n"));
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  s = Apply(::testing::TempDir() + "/no-such-config.yaml");
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  // An empty file is an empty configuration.
  EXPECT_TRUE(Apply(WriteFile("")).ok());
}

TEST_F(ConfigSourcesTest, TestingFlagsAreNotSettings) {
  for (const Setting& s : AllSettings()) {
    EXPECT_FALSE(absl::StartsWith(s.flag, "testing_")) << s.flag;
    EXPECT_NE(s.flag, "config");
  }
  EXPECT_FALSE(Apply(WriteFile("TestingFailWalSyncAfter: 1\n")).ok());
}

TEST_F(ConfigSourcesTest, EveryConfigFlagIsASettingWithUniqueNames) {
  std::map<std::string, std::string> keys, envs;
  std::vector<Setting> settings = AllSettings();
  EXPECT_GT(settings.size(), 20u);
  for (const Setting& s : settings) {
    EXPECT_TRUE(keys.emplace(s.key, s.flag).second) << s.key;
    for (const std::string& e : s.envs) {
      EXPECT_TRUE(envs.emplace(e, s.flag).second) << e;
    }
    EXPECT_FALSE(s.help.empty()) << s.flag;
  }
  EXPECT_EQ(keys["GrpcPort"], "grpc_port");
  EXPECT_EQ(envs["GRPC_PORT"], "grpc_port");
  EXPECT_EQ(envs["DATA_DIR"], "data_dir");
  EXPECT_EQ(envs["MAX_RETRY_INTERVAL"], "max_retry_interval");
}

TEST(ConfigPathFromArgsTest, Forms) {
  auto path = [](std::vector<std::string> args) {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    return ConfigPathFromArgs(static_cast<int>(argv.size()), argv.data());
  };
  EXPECT_EQ(path({"dtmd"}), "");
  EXPECT_EQ(path({"dtmd", "--config=a.yaml"}), "a.yaml");
  EXPECT_EQ(path({"dtmd", "--config", "b.yaml", "--grpc_port=1"}), "b.yaml");
  EXPECT_EQ(path({"dtmd", "-config=c.yaml"}), "c.yaml");
  EXPECT_EQ(path({"dtmd", "--config_x=d"}), "");
  EXPECT_EQ(path({"dtmd", "--", "--config=e"}), "");
}

TEST(ConfigReferenceTest, ListsEveryKeyOnce) {
  std::string table = ConfigReferenceMarkdown();
  for (const Setting& s : AllSettings()) {
    EXPECT_THAT(table, HasSubstr("`--" + s.flag + "`"));
  }
  EXPECT_THAT(table, HasSubstr("| `TransCronInterval` | `TRANS_CRON_INTERVAL`, "
                               "`CRON_JOB_INTERVAL` | `--cron_interval` |"));
}

}  // namespace
}  // namespace dtmd
