// The request rules of request_validation.h: timings, BranchHeaders' size as
// gRPC counts it, and the limits BuildSaga hands to ParseSaga.
#include "server/request_validation.h"

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace dtmd {
namespace {

void ExpectInvalid(const absl::Status& status, absl::string_view field) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_TRUE(absl::StartsWith(status.message(), field)) << status;
}

TEST(ValidateOptionsTest, RequestTimeoutUpToTheCapIsAccepted) {
  Config config;
  config.max_request_timeout_s = 60;
  dtmgimp::DtmTransOptions options;
  options.set_requesttimeout(60);
  EXPECT_TRUE(ValidateOptions(options, config).ok());
  options.set_requesttimeout(61);
  ExpectInvalid(ValidateOptions(options, config),
                "TransOptions.RequestTimeout: 61 seconds, more than the limit "
                "of 60");
}

TEST(ValidateOptionsTest, TimingsAboveTwoToTheThirtySecondsAreRefused) {
  const int64_t over = (int64_t{1} << 30) + 1;
  Config config;
  dtmgimp::DtmTransOptions options;
  options.set_timeouttofail(over);
  ExpectInvalid(ValidateOptions(options, config), "TransOptions.TimeoutToFail");
  options.Clear();
  options.set_retryinterval(over);
  ExpectInvalid(ValidateOptions(options, config), "TransOptions.RetryInterval");
  options.Clear();
  options.set_timeouttofail(int64_t{1} << 30);
  EXPECT_TRUE(ValidateOptions(options, config).ok());
}

TEST(ValidateOptionsTest, BranchHeadersCountNamesValuesAndThirtyTwoPerEntry) {
  Config config;
  config.max_branch_headers_bytes = 100;
  dtmgimp::DtmTransOptions options;
  // "x-a" (3) + 65 + 32 = 100: at the limit.
  (*options.mutable_branchheaders())["x-a"] = std::string(65, 'v');
  EXPECT_TRUE(ValidateOptions(options, config).ok());
  (*options.mutable_branchheaders())["x-a"] = std::string(66, 'v');
  ExpectInvalid(ValidateOptions(options, config),
                "TransOptions.BranchHeaders: 101 bytes");
  // Two small entries pay the per-entry overhead twice: 2 * (3 + 20 + 32).
  options.Clear();
  (*options.mutable_branchheaders())["x-a"] = std::string(20, 'v');
  (*options.mutable_branchheaders())["x-b"] = std::string(20, 'v');
  ExpectInvalid(ValidateOptions(options, config),
                "TransOptions.BranchHeaders: 110 bytes");
}

TEST(ValidateOptionsTest, BinaryHeaderValuesCountAsBase64) {
  Config config;
  config.max_branch_headers_bytes = 100;
  dtmgimp::DtmTransOptions options;
  // "x-bin" (5) + base64 of 45 bytes (60) + 32 = 97.
  (*options.mutable_branchheaders())["x-bin"] = std::string(45, '\0');
  EXPECT_TRUE(ValidateOptions(options, config).ok());
  // 48 raw bytes are 64 on the wire: 101.
  (*options.mutable_branchheaders())["x-bin"] = std::string(48, '\0');
  ExpectInvalid(ValidateOptions(options, config),
                "TransOptions.BranchHeaders: 101 bytes");
}

TEST(ValidateOptionsTest, DefaultHeaderLimitLeavesRoomInGrpcsEightKib) {
  Config config;
  EXPECT_LE(config.max_branch_headers_bytes, 4096);
  dtmgimp::DtmTransOptions options;
  (*options.mutable_branchheaders())["x-big"] = std::string(20000, 'v');
  ExpectInvalid(ValidateOptions(options, config), "TransOptions.BranchHeaders");
}

dtmgimp::DtmRequest SagaRequest(int steps) {
  dtmgimp::DtmRequest request;
  request.set_gid("gid-1");
  request.set_transtype("saga");
  std::string json = "[";
  for (int i = 0; i < steps; ++i) {
    absl::StrAppend(&json, i ? "," : "", R"({"action":"h:1/s.S/A"})");
    request.add_binpayloads("");
  }
  request.set_steps(json + "]");
  return request;
}

TEST(BuildSagaTest, OrdersEntriesAreCappedByTheConfiguration) {
  Config config;
  config.max_order_edges = 2;
  dtmgimp::DtmRequest request = SagaRequest(3);
  request.set_customeddata(R"({"concurrent":true,"orders":{"2":[0,1]}})");
  EXPECT_TRUE(BuildSaga(request, "submitted", 0, config).ok());
  request.set_customeddata(R"({"concurrent":true,"orders":{"2":[0,1,1]}})");
  ExpectInvalid(BuildSaga(request, "submitted", 0, config).status(),
                "CustomedData.orders: more than the limit of 2");
}

TEST(BuildSagaTest, StoresDeduplicatedOrders) {
  Config config;
  dtmgimp::DtmRequest request = SagaRequest(3);
  request.set_customeddata(R"({"concurrent":true,"orders":{"2":[1,0,1,0]}})");
  absl::StatusOr<NewTransaction> txn =
      BuildSaga(request, "submitted", 0, config);
  ASSERT_TRUE(txn.ok()) << txn.status();
  ASSERT_EQ(txn->trans.orders_size(), 3);
  ASSERT_EQ(txn->trans.orders(2).after_size(), 2);
  EXPECT_EQ(txn->trans.orders(2).after(0), 1);
  EXPECT_EQ(txn->trans.orders(2).after(1), 0);
}

TEST(BuildSagaTest, StepsAreCappedByTheConfiguration) {
  Config config;
  config.max_steps = 2;
  EXPECT_TRUE(BuildSaga(SagaRequest(2), "submitted", 0, config).ok());
  ExpectInvalid(BuildSaga(SagaRequest(3), "submitted", 0, config).status(),
                "Steps: more than the limit of 2 steps");
}

dtmgimp::DtmTopicRequest TopicRequest(const std::string& topic,
                                      const std::string& url,
                                      const std::string& remark = "") {
  dtmgimp::DtmTopicRequest request;
  request.set_topic(topic);
  request.set_url(url);
  request.set_remark(remark);
  return request;
}

TEST(ValidateTopicRequestTest, TopicIsPrintableAsciiWithoutSlashUpTo128) {
  Config config;
  const auto kind = TopicRequestKind::kDeleteTopic;
  EXPECT_TRUE(ValidateTopicRequest(TopicRequest(std::string(128, 't'), ""),
                                   kind, config)
                  .ok());
  ExpectInvalid(ValidateTopicRequest(TopicRequest(std::string(129, 't'), ""),
                                     kind, config),
                "Topic: 129 bytes, longer than the limit of 128");
  ExpectInvalid(ValidateTopicRequest(TopicRequest("", ""), kind, config),
                "Topic: must not be empty");
  for (const char* bad : {"a b", "tab\t", "caf\xc3\xa9"}) {
    ExpectInvalid(ValidateTopicRequest(TopicRequest(bad, ""), kind, config),
                  "Topic: only printable ASCII without spaces is allowed");
  }
  // As a msg step may name it (topic://NAME).
  EXPECT_TRUE(
      ValidateTopicRequest(TopicRequest("a/b:c", ""), kind, config).ok());
}

TEST(ValidateTopicRequestTest, SubscribeNeedsABranchUrlAndAShortRemark) {
  Config config;
  config.max_url_bytes = 64;
  const auto kind = TopicRequestKind::kSubscribe;
  EXPECT_TRUE(
      ValidateTopicRequest(TopicRequest("t", "localhost:8080/pkg.Svc/Method",
                                        std::string(kMaxRemarkBytes, 'r')),
                           kind, config)
          .ok());
  ExpectInvalid(ValidateTopicRequest(TopicRequest("t", ""), kind, config),
                "URL: must not be empty");
  ExpectInvalid(
      ValidateTopicRequest(TopicRequest("t", "not a url"), kind, config),
      "URL: ");
  ExpectInvalid(ValidateTopicRequest(TopicRequest("t", "unix:/tmp/s/pkg.Svc/M"),
                                     kind, config),
                "URL: ");
  ExpectInvalid(ValidateTopicRequest(
                    TopicRequest("t", "h:1/pkg.Svc/" + std::string(60, 'm')),
                    kind, config),
                "URL: 72 bytes, more than the limit of 64");
  ExpectInvalid(
      ValidateTopicRequest(TopicRequest("t", "h:1/pkg.Svc/M",
                                        std::string(kMaxRemarkBytes + 1, 'r')),
                           kind, config),
      "Remark: 1025 bytes");
}

TEST(ValidateTopicRequestTest, UnsubscribeNeedsAnyNonEmptyUrl) {
  Config config;
  const auto kind = TopicRequestKind::kUnsubscribe;
  // An URL that could never have been subscribed is simply not found later.
  EXPECT_TRUE(
      ValidateTopicRequest(TopicRequest("t", "not a url"), kind, config).ok());
  ExpectInvalid(ValidateTopicRequest(TopicRequest("t", ""), kind, config),
                "URL: must not be empty");
  ExpectInvalid(
      ValidateTopicRequest(TopicRequest("", "h:1/p.S/M"), kind, config),
      "Topic: must not be empty");
}

}  // namespace
TEST(BuildTransactionTest, MsgTopicExpansionIsCappedByMaxBranches) {
  dtmgimp::DtmRequest request;
  request.set_gid("m1");
  request.set_transtype("msg");
  request.set_steps(R"([{"action":"topic://t"}])");
  request.add_binpayloads("p");
  TopicResolver three =
      [](absl::string_view) -> absl::StatusOr<std::vector<std::string>> {
    return std::vector<std::string>{"h:1/a.B/C", "h:1/a.B/D", "h:1/a.B/E"};
  };
  Config config;
  config.max_branches = 3;
  absl::StatusOr<NewTransaction> ok =
      BuildTransaction(request, "submitted", 0, config, three);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->branches.size(), 3u);
  config.max_branches = 2;
  ExpectInvalid(
      BuildTransaction(request, "submitted", 0, config, three).status(),
      "Steps: ");
}

}  // namespace dtmd
