// ParseSaga: the validation of a saga request's Steps, BinPayloads and
// CustomedData, and the branch records it produces.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "server/txn/branch_url.h"
#include "server/txn/saga.h"

namespace dtmd::txn {
namespace {

using Strs = std::vector<std::string>;
using Ints = std::vector<int>;

constexpr char kAction0[] = "svc-a:8080/shop.Orders/Create";
constexpr char kCompensate0[] = "svc-a:8080/shop.Orders/Cancel";
constexpr char kAction1[] = "10.0.0.2:9000/pay.v1.Wallet/Debit";
constexpr char kCompensate1[] = "10.0.0.2:9000/pay.v1.Wallet/Refund";

std::string Step(absl::string_view action, absl::string_view compensate) {
  return absl::StrFormat(R"({"action":"%s","compensate":"%s"})", action,
                         compensate);
}

std::string Steps(int n) {
  std::string out = "[";
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&out, i ? "," : "", Step(kAction0, kCompensate0));
  }
  return out + "]";
}

std::vector<std::string> Payloads(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(absl::StrCat("payload-", i));
  return out;
}

absl::StatusOr<SagaDefinition> Parse(absl::string_view steps,
                                     const std::vector<std::string>& payloads,
                                     absl::string_view custom = "",
                                     SagaLimits limits = SagaLimits()) {
  return ParseSaga("gid-1", steps, payloads, custom, limits);
}

// Expects INVALID_ARGUMENT whose message starts with `field`.
void ExpectInvalid(const absl::StatusOr<SagaDefinition>& result,
                   absl::string_view field) {
  ASSERT_FALSE(result.ok()) << "expected an error naming " << field;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(result.status().message(), field))
      << result.status().message();
}

TEST(SagaParseTest, MakesCompensateThenActionBranchPerStep) {
  auto def = Parse(absl::StrCat("[", Step(kAction0, kCompensate0), ",",
                                Step(kAction1, kCompensate1), "]"),
                   {"p0", "p1"});
  ASSERT_TRUE(def.ok()) << def.status();
  ASSERT_EQ(def->branches.size(), 4u);
  const std::vector<std::string> ops = {"compensate", "action", "compensate",
                                        "action"};
  const std::vector<std::string> urls = {kCompensate0, kAction0, kCompensate1,
                                         kAction1};
  const std::vector<std::string> ids = {"01", "01", "02", "02"};
  const std::vector<std::string> data = {"p0", "p0", "p1", "p1"};
  for (int i = 0; i < 4; ++i) {
    const BranchRecord& b = def->branches[i];
    EXPECT_EQ(b.position(), i);
    EXPECT_EQ(b.op(), ops[i]);
    EXPECT_EQ(b.url(), urls[i]);
    EXPECT_EQ(b.branch_id(), ids[i]);
    EXPECT_EQ(b.bin_data(), data[i]);
    EXPECT_EQ(b.gid(), "gid-1");
    EXPECT_EQ(b.status(), kBranchPrepared);
    EXPECT_EQ(b.finish_time_ms(), 0);
  }
  EXPECT_FALSE(def->concurrent);
  EXPECT_TRUE(def->orders.empty());
}

TEST(SagaParseTest, BranchIdsArePaddedToTwoDigitsThenPrintedAsIs) {
  auto def = Parse(Steps(120), Payloads(120));
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ(def->branches[2 * 0].branch_id(), "01");
  EXPECT_EQ(def->branches[2 * 8 + 1].branch_id(), "09");
  EXPECT_EQ(def->branches[2 * 9].branch_id(), "10");
  EXPECT_EQ(def->branches[2 * 98 + 1].branch_id(), "99");
  EXPECT_EQ(def->branches[2 * 99].branch_id(), "100");
  EXPECT_EQ(def->branches[2 * 119 + 1].branch_id(), "120");
  EXPECT_EQ(def->branches[2 * 119 + 1].position(), 239);
}

TEST(SagaParseTest, EmptyOrMissingUrlMakesAnAlreadySucceededBranch) {
  auto def = Parse(absl::StrFormat(R"([{"action":"%s"},{"compensate":"%s",)"
                                   R"("action":""},{"action":null}])",
                                   kAction0, kCompensate1),
                   Payloads(3));
  ASSERT_TRUE(def.ok()) << def.status();
  std::vector<std::string> statuses;
  for (const BranchRecord& b : def->branches) statuses.push_back(b.status());
  EXPECT_EQ(statuses, Strs({"succeed", "prepared", "prepared", "succeed",
                            "succeed", "succeed"}));
  EXPECT_EQ(def->branches[0].url(), "");
  EXPECT_EQ(def->branches[5].bin_data(), "payload-2");
}

TEST(SagaParseTest, IgnoresUnknownKeysInSteps) {
  auto def = Parse(R"([{"action":"h:1/S/M","note":5,"compensate":"h:1/S/C"}])",
                   Payloads(1));
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ(def->branches[1].url(), "h:1/S/M");
}

TEST(SagaParseTest, EmptyNullOrEmptyArrayStepsMeanZeroSteps) {
  for (absl::string_view steps : {"", "null", " null ", "[]"}) {
    auto def = Parse(steps, {});
    ASSERT_TRUE(def.ok()) << "Steps=" << steps << ": " << def.status();
    EXPECT_TRUE(def->branches.empty());
  }
}

TEST(SagaParseTest, NullStepsWithPayloadsIsAPayloadCountError) {
  ExpectInvalid(Parse("null", {"x"}), "BinPayloads: got 1 payloads for 0");
}

TEST(SagaParseTest, RejectsStepsThatAreNotJson) {
  ExpectInvalid(Parse("[{", Payloads(1)), "Steps: not valid JSON");
  ExpectInvalid(Parse("action", Payloads(1)), "Steps: not valid JSON");
}

TEST(SagaParseTest, RejectsStepsThatAreNotAnArray) {
  for (absl::string_view steps :
       {R"({"action":"h:1/S/M"})", R"("h:1/S/M")", "3", "true"}) {
    ExpectInvalid(Parse(steps, Payloads(1)), "Steps: not a JSON array");
  }
}

TEST(SagaParseTest, RejectsArrayElementsThatAreNotObjects) {
  ExpectInvalid(Parse(R"([{"action":"h:1/S/M"},"h:1/S/M"])", Payloads(2)),
                "Steps[1]: not a JSON object");
  ExpectInvalid(Parse("[[]]", Payloads(1)), "Steps[0]: not a JSON object");
  ExpectInvalid(Parse("[null]", Payloads(1)), "Steps[0]: not a JSON object");
}

TEST(SagaParseTest, RejectsUrlsThatAreNotStrings) {
  ExpectInvalid(Parse(R"([{"action":5}])", Payloads(1)),
                "Steps[0].action: not a string");
  ExpectInvalid(Parse(R"([{},{},{"action":["h:1/S/M"]}])", Payloads(3)),
                "Steps[2].action: not a string");
  ExpectInvalid(
      Parse(R"([{"action":"h:1/S/M","compensate":true}])", Payloads(1)),
      "Steps[0].compensate: not a string");
  ExpectInvalid(Parse(R"([{"compensate":{"u":"h:1/S/M"}}])", Payloads(1)),
                "Steps[0].compensate: not a string");
}

TEST(SagaParseTest, RejectsMalformedUrls) {
  const std::vector<std::string> bad = {
      "localhost/pkg.Svc/M",                          // no port
      "localhost:/pkg.Svc/M",                         // empty port
      "localhost:http/pkg.Svc/M",                     // port not numeric
      "localhost:-1/pkg.Svc/M",                       // signed port
      "localhost:0/pkg.Svc/M",                        // port 0
      "localhost:65536/pkg.Svc/M",                    // port too large
      "localhost:99999999999999999999999/pkg.Svc/M",  // overflowing port
      ":8080/pkg.Svc/M",                              // no host
      "/pkg.Svc/M",                                   // no target
      "localhost:8080",                               // no method
      "localhost:8080/",                              // empty method path
      "localhost:8080/pkg.Svc",                       // no method name
      "localhost:8080/pkg.Svc/",                      // empty method name
      "localhost:8080//Method",                       // empty service
      "localhost:8080/a/b/c",                         // too many parts
      "ftp://localhost:8080/pkg.Svc/M",               // a scheme
      "http://",                                      // HTTP, no host
      "http://:80/x",                                 // HTTP, no host
      "http://h:0/x",                                 // HTTP, port 0
      "http://h:x/x",                                 // HTTP, bad port
      "http://user@h/x",                              // HTTP, user info
      "http://h/x#frag",                              // HTTP, fragment
      "http://unix:/x",                               // HTTP, bad host
      "https://h x/",                                 // HTTP, a space
      "discovery:///svc/pkg.Svc/M",                   // a resolver scheme
  };
  for (const std::string& url : bad) {
    SCOPED_TRACE(url);
    ExpectInvalid(
        Parse(absl::StrCat(R"([{},{"action":")", url, R"("}])"), Payloads(2)),
        "Steps[1].action: ");
    ExpectInvalid(
        Parse(absl::StrCat(R"([{"compensate":")", url, R"("}])"), Payloads(1)),
        "Steps[0].compensate: ");
  }
}

TEST(SagaParseTest, AcceptsWellFormedUrls) {
  for (const std::string url :
       {"localhost:1/S/M", "svc.ns.svc.cluster.local:65535/a.b.c.Svc/Do",
        "[::1]:8080/pkg.Svc/Method", "127.0.0.1:08080/pkg.Svc/M"}) {
    auto def =
        Parse(absl::StrCat(R"([{"action":")", url, R"("}])"), Payloads(1));
    EXPECT_TRUE(def.ok()) << url << ": " << def.status();
  }
}

// A URL that names what the action key holds, as Steps JSON.
std::string ActionSteps(absl::string_view json_url) {
  return absl::StrCat(R"([{"action":")", json_url, R"("}])");
}

TEST(SagaParseTest, RejectsUrlsWithControlNulSpaceOrNonAsciiBytes) {
  // JSON escapes, so the bytes reach the URL check and not the JSON lexer.
  for (absl::string_view url :
       {R"(h:1/pkg.Svc/M\u0000x)", R"(h:1/pkg.Svc/\u0000)", R"(h\u0001:1/S/M)",
        R"(h:1/pkg.Svc/M\tx)", R"(h:1/pkg Svc/M)", R"(h:1/pkg.Svc/M\u007f)",
        R"(h:1/pkg.Sv\u00e9/M)", R"(h\u00e9:1/S/M)"}) {
    SCOPED_TRACE(url);
    ExpectInvalid(Parse(ActionSteps(url), Payloads(1)),
                  "Steps[0].action: URL has a control, space or non-ASCII");
  }
}

TEST(SagaParseTest, RejectsServiceAndMethodNamesWithOtherPunctuation) {
  for (absl::string_view url : {"h:1/pkg.Svc/M?x=1", "h:1/pkg.Svc/M#f",
                                "h:1/pkg%00.Svc/M", "h:1/pkg.Svc/M;x"}) {
    SCOPED_TRACE(url);
    ExpectInvalid(Parse(ActionSteps(url), Payloads(1)),
                  "Steps[0].action: URL service and method names");
  }
}

TEST(SagaParseTest, RejectsHostsThatAreNotDnsNamesOrIpAddresses) {
  const std::vector<std::string> bad = {
      "unix-abstract:name:1/S/M",       // abstract unix socket
      "unix:sock:1/S/M",                // unix socket
      "unix:///tmp/s:1/S/M",            // unix socket, URI form
      "vsock:3:1/S/M",                  // vsock
      "xds:svc:1/S/M",                  // xDS resolver
      "dns:///h:1/S/M",                 // explicit DNS resolver
      "ipv4:127.0.0.1:1/S/M",           // gRPC's address list resolver
      "::1:8080/S/M",                   // IPv6 without brackets
      "[::1%25eth0]:1/S/M",             // IPv6 zone id
      "[fe80::1%eth0]:1/S/M",           // IPv6 zone id
      "[nothex]:1/S/M",                 // brackets around a name
      "[127.0.0.1]:1/S/M",              // brackets around IPv4
      "10.1:1/S/M",                     // numeric last label: a short IPv4
      "2130706433:1/S/M",               // a decimal IPv4
      "300.1.1.1:1/S/M",                // not an IPv4 address
      "-h:1/S/M",                       // label starting with '-'
      "a..b:1/S/M",                     // empty label
      std::string(64, 'a') + ":1/S/M",  // label over 63 bytes
      "h@x:1/S/M",                      // user info
      "h%2e:1/S/M",                     // escapes
  };
  for (const std::string& url : bad) {
    SCOPED_TRACE(url);
    ExpectInvalid(Parse(ActionSteps(url), Payloads(1)), "Steps[0].action: ");
  }
  auto unix_socket = Parse(ActionSteps("unix-abstract:x:1/S/M"), Payloads(1));
  EXPECT_TRUE(absl::StrContains(unix_socket.status().message(),
                                "not a DNS name or an IP address"))
      << unix_socket.status();
  auto scheme = Parse(ActionSteps("dns:///h:1/S/M"), Payloads(1));
  EXPECT_TRUE(absl::StrContains(scheme.status().message(), "scheme 'dns://'"))
      << scheme.status();
}

TEST(SagaParseTest, AcceptsHttpUrls) {
  for (absl::string_view url :
       {"http://localhost:8080/api/busi/TransOut", "HTTPS://h/x",
        "http://10.0.0.1", "https://[::1]:8443/a?b=c&d=%20",
        "http://svc.ns.svc.cluster.local.:80?x=1"}) {
    auto def = Parse(ActionSteps(url), Payloads(1));
    EXPECT_TRUE(def.ok()) << url << ": " << def.status();
  }
  absl::StatusOr<BranchTarget> target =
      ParseBranchUrl("https://[::1]:8443/a?b=c");
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_TRUE(target->http);
  EXPECT_TRUE(target->https);
  EXPECT_EQ(target->target, "[::1]:8443");
  EXPECT_TRUE(IsHttpBranchUrl("Http://h/"));
  EXPECT_FALSE(IsHttpBranchUrl("h:1/S/M"));
}

TEST(SagaParseTest, AcceptsDnsNamesAndIpAddressesAsHosts) {
  for (const std::string& url : std::vector<std::string>{
           "my_svc-1.ns.svc.cluster.local.:1/S/M", "[2001:db8::1]:443/a.B/C",
           "192.168.0.1:80/a.b.v1.Svc/Do_It", "x1:1/S/M", "a.b-c:1/S/M-1",
           std::string(63, 'a') + ":1/S/M"}) {
    auto def = Parse(ActionSteps(url), Payloads(1));
    EXPECT_TRUE(def.ok()) << url << ": " << def.status();
  }
}

TEST(SagaParseTest, BranchTargetsAlwaysUseTheDnsResolver) {
  // A host that happens to be named like a gRPC resolver stays a host.
  absl::StatusOr<BranchTarget> target = ParseBranchUrl("unix:80/pkg.Svc/M");
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ(target->target, "unix:80");
  EXPECT_EQ(target->ChannelTarget(), "dns:///unix:80");
  EXPECT_EQ(target->method, "/pkg.Svc/M");
}

TEST(SagaParseTest, RejectsUrlsLongerThanTheLimit) {
  SagaLimits limits;
  limits.max_url_bytes = 40;
  const std::string prefix = "h:1/S/";
  const std::string at_limit = prefix + std::string(40 - prefix.size(), 'm');
  auto ok = Parse(absl::StrCat(R"([{"action":")", at_limit, R"("}])"),
                  Payloads(1), "", limits);
  EXPECT_TRUE(ok.ok()) << ok.status();
  auto too_long =
      Parse(absl::StrCat(R"([{"compensate":")", at_limit, R"(x"}])"),
            Payloads(1), "", limits);
  ExpectInvalid(too_long, "Steps[0].compensate: URL is 41 bytes");
}

TEST(SagaParseTest, RejectsMoreStepsThanTheLimit) {
  SagaLimits limits;
  limits.max_steps = 3;
  EXPECT_TRUE(Parse(Steps(3), Payloads(3), "", limits).ok());
  ExpectInvalid(Parse(Steps(4), Payloads(4), "", limits),
                "Steps: more than the limit of 3 steps");
}

TEST(SagaParseTest, StopsReadingStepsAtTheLimit) {
  SagaLimits limits;
  limits.max_steps = 3;
  // What follows the fourth step is never read: not even its syntax.
  ExpectInvalid(Parse("[{},{},{},{} this is not JSON", {}, "", limits),
                "Steps: more than the limit of 3 steps");
}

TEST(SagaParseTest, RefusesSixteenMebibytesOfEmptySteps) {
  std::string steps = "[";
  steps.reserve(16 << 20);
  while (steps.size() < (16 << 20) - 3) steps += "{},";
  steps += "{}]";
  ExpectInvalid(Parse(steps, {}), "Steps: more than the limit of 1000 steps");
}

TEST(SagaParseTest, RejectsJsonNestedDeeperThanTheLimit) {
  SagaLimits limits;
  limits.max_json_depth = 8;
  auto arrays = [](int n) { return std::string(n, '[') + std::string(n, ']'); };
  // Steps' array and the step's object are 2 of the 8 levels.
  EXPECT_TRUE(
      Parse(absl::StrCat(R"([{"x":)", arrays(6), "}]"), Payloads(1), "", limits)
          .ok());
  ExpectInvalid(Parse(absl::StrCat(R"([{"x":)", arrays(7), "}]"), Payloads(1),
                      "", limits),
                "Steps: nested deeper than 8 levels");
  EXPECT_TRUE(Parse(Steps(1), Payloads(1),
                    absl::StrCat(R"({"x":)", arrays(7), "}"), limits)
                  .ok());
  ExpectInvalid(Parse(Steps(1), Payloads(1),
                      absl::StrCat(R"({"x":)", arrays(8), "}"), limits),
                "CustomedData: nested deeper than 8 levels");
}

TEST(SagaParseTest, RejectsPayloadCountDifferentFromStepCount) {
  ExpectInvalid(Parse(Steps(3), Payloads(2)),
                "BinPayloads: got 2 payloads for 3 steps");
  ExpectInvalid(Parse(Steps(1), Payloads(2)),
                "BinPayloads: got 2 payloads for 1 steps");
}

TEST(SagaParseTest, ReportsStepErrorsBeforePayloadCount) {
  ExpectInvalid(Parse(R"([{"action":1}])", {}), "Steps[0].action");
}

TEST(SagaParseTest, EmptyOrEmptyObjectCustomedDataMeansSequential) {
  // The last two are what DTM's Go client sends for a plain saga.
  for (absl::string_view custom : {"", "{}", R"({"concurrent":null})",
                                   R"({"concurrent":false,"orders":null})",
                                   R"({"orders":{},"concurrent":false})"}) {
    auto def = Parse(Steps(2), Payloads(2), custom);
    ASSERT_TRUE(def.ok()) << custom << ": " << def.status();
    EXPECT_FALSE(def->concurrent);
    EXPECT_TRUE(def->orders.empty());
  }
}

TEST(SagaParseTest, RejectsCustomedDataThatIsNotAJsonObject) {
  for (absl::string_view custom : {"x", "{", "[1]", "\"s\"", "null", "7"}) {
    ExpectInvalid(Parse(Steps(2), Payloads(2), custom),
                  "CustomedData: not a JSON object");
  }
}

TEST(SagaParseTest, RejectsConcurrentThatIsNotABoolean) {
  ExpectInvalid(Parse(Steps(2), Payloads(2), R"({"concurrent":"true"})"),
                "CustomedData.concurrent: not a boolean");
  ExpectInvalid(Parse(Steps(2), Payloads(2), R"({"concurrent":1})"),
                "CustomedData.concurrent: not a boolean");
}

TEST(SagaParseTest, ConcurrentWithoutOrdersHasOneEmptyOrderPerStep) {
  auto def = Parse(Steps(3), Payloads(3), R"({"concurrent":true})");
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_TRUE(def->concurrent);
  ASSERT_EQ(def->orders.size(), 3u);
  for (const auto& order : def->orders) EXPECT_TRUE(order.empty());
}

TEST(SagaParseTest, ConcurrentOrdersListPredecessorsPerStep) {
  auto def = Parse(Steps(4), Payloads(4),
                   R"({"orders":{"1":[0],"3":[1,2,1],"02":[0]},)"
                   R"("concurrent":true,"other":1})");
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_TRUE(def->concurrent);
  ASSERT_EQ(def->orders.size(), 4u);
  EXPECT_TRUE(def->orders[0].empty());
  EXPECT_EQ(def->orders[1], Ints({0}));
  EXPECT_EQ(def->orders[2], Ints({0}));
  EXPECT_EQ(def->orders[3], Ints({1, 2}));  // duplicates dropped
}

TEST(SagaParseTest, SequentialSagaAcceptsAndIgnoresOrders) {
  auto def = Parse(Steps(2), Payloads(2),
                   R"({"orders":{"0":[1]},"concurrent":false})");
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_FALSE(def->concurrent);
  EXPECT_TRUE(def->orders.empty());
}

TEST(SagaParseTest, SequentialSagaStillRejectsInvalidOrders) {
  ExpectInvalid(Parse(Steps(2), Payloads(2), R"({"orders":{"0":[5]}})"),
                "CustomedData.orders[\"0\"]: step 5 out of range 0..1");
}

TEST(SagaParseTest, RejectsOrdersThatAreNotAnObject) {
  ExpectInvalid(
      Parse(Steps(2), Payloads(2), R"({"orders":[[0]],"concurrent":true})"),
      "CustomedData.orders: not a JSON object");
}

TEST(SagaParseTest, RejectsOrdersKeysThatAreNotStepIndices) {
  for (absl::string_view key : {"a", "-1", "2", "1.0", "", "9999999999"}) {
    SCOPED_TRACE(key);
    ExpectInvalid(Parse(Steps(2), Payloads(2),
                        absl::StrCat(R"({"concurrent":true,"orders":{")", key,
                                     R"(":[0]}})")),
                  "CustomedData.orders: key");
  }
}

TEST(SagaParseTest, RejectsOrdersValuesThatAreNotArraysOfIndices) {
  const std::string prefix = R"({"concurrent":true,"orders":{"1":)";
  for (absl::string_view value :
       {"0", R"("0")", R"(["0"])", "[0.5]", "[null]", "{}"}) {
    SCOPED_TRACE(value);
    ExpectInvalid(
        Parse(Steps(2), Payloads(2), absl::StrCat(prefix, value, "}}")),
        "CustomedData.orders[\"1\"]: not an array of step indices");
  }
}

TEST(SagaParseTest, RejectsOrdersIndicesOutOfRangeNamingThem) {
  const std::string prefix = R"({"concurrent":true,"orders":{"1":)";
  ExpectInvalid(Parse(Steps(2), Payloads(2), prefix + "[0,2]}}"),
                "CustomedData.orders[\"1\"]: step 2 out of range 0..1");
  ExpectInvalid(Parse(Steps(2), Payloads(2), prefix + "[-1]}}"),
                "CustomedData.orders[\"1\"]: step -1 out of range 0..1");
  ExpectInvalid(
      Parse(Steps(2), Payloads(2), prefix + "[18446744073709551615]}}"),
      "CustomedData.orders[\"1\"]: step 18446744073709551615 out of range");
}

TEST(SagaParseTest, OrdersAreDeduplicatedAcrossKeysNamingOneStep) {
  auto def = Parse(Steps(4), Payloads(4),
                   R"({"concurrent":true,"orders":{"3":[0,0,1],"03":[1,2,0],)"
                   R"("3":[2]}})");
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ(def->orders[3], Ints({0, 1, 2}));
}

TEST(SagaParseTest, RejectsMoreOrderEntriesThanTheLimitCountingDuplicates) {
  SagaLimits limits;
  limits.max_order_edges = 4;
  const std::string prefix = R"({"concurrent":true,"orders":)";
  EXPECT_TRUE(
      Parse(Steps(3), Payloads(3), prefix + R"({"1":[0,0],"2":[0,1]}})", limits)
          .ok());
  ExpectInvalid(Parse(Steps(3), Payloads(3),
                      prefix + R"({"1":[0,0,0],"2":[0,1]}})", limits),
                "CustomedData.orders: more than the limit of 4 entries");
  // Sequential sagas ignore orders, but still within the limit.
  ExpectInvalid(Parse(Steps(3), Payloads(3),
                      R"({"orders":{"1":[0,0,0],"2":[0,1]}})", limits),
                "CustomedData.orders: more than the limit of 4 entries");
}

TEST(SagaParseTest, AllToAllOrdersOfAThousandStepsAreOverTheDefaultLimit) {
  // Step i after every step before it: 499500 entries.
  std::string orders = R"({"concurrent":true,"orders":{)";
  for (int i = 1; i < 1000; ++i) {
    absl::StrAppend(&orders, i > 1 ? "," : "", "\"", i, "\":[");
    for (int j = 0; j < i; ++j) absl::StrAppend(&orders, j ? "," : "", j);
    orders += "]";
  }
  orders += "}}";
  ExpectInvalid(Parse(Steps(1000), Payloads(1000), orders),
                "CustomedData.orders: more than the limit of 10000 entries");
  SagaLimits limits;
  limits.max_order_edges = 500000;
  auto def = Parse(Steps(1000), Payloads(1000), orders, limits);
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ(def->orders[999].size(), 999u);
}

TEST(SagaParseTest, RejectsAStepThatDependsOnItself) {
  auto def = Parse(Steps(3), Payloads(3),
                   R"({"concurrent":true,"orders":{"1":[0,1]}})");
  ExpectInvalid(def, "CustomedData.orders: cycle 1 -> 1");
}

TEST(SagaParseTest, RejectsATwoStepCycle) {
  ExpectInvalid(Parse(Steps(2), Payloads(2),
                      R"({"concurrent":true,"orders":{"0":[1],"1":[0]}})"),
                "CustomedData.orders: cycle 0 -> 1 -> 0");
}

TEST(SagaParseTest, RejectsAThreeStepCycleNamingItsSteps) {
  auto def = Parse(
      Steps(5), Payloads(5),
      R"({"concurrent":true,"orders":{"4":[0],"1":[3],"3":[2],"2":[1]}})");
  ExpectInvalid(def, "CustomedData.orders: cycle ");
  EXPECT_TRUE(absl::StrContains(def.status().message(), "1 -> 3 -> 2 -> 1"))
      << def.status().message();
}

TEST(SagaParseTest, AcceptsADiamondWhichIsNotACycle) {
  auto def = Parse(Steps(4), Payloads(4),
                   R"({"concurrent":true,"orders":{"1":[0],"2":[0],)"
                   R"("3":[1,2]}})");
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ(def->orders[3], Ints({1, 2}));
}

TEST(SagaParseTest, DeeplyNestedJsonIsRejectedWithoutCrashing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  ExpectInvalid(Parse(deep, Payloads(1)), "Steps[0]: not a JSON object");
  const std::string deep_object = R"({"orders":)" + std::string(100000, '[') +
                                  std::string(100000, ']') + "}";
  ExpectInvalid(Parse(Steps(1), Payloads(1), deep_object),
                "CustomedData.orders: not a JSON object");
}

TEST(SagaParseTest, RejectsInvalidUtf8AsInvalidJson) {
  ExpectInvalid(Parse("[{\"action\":\"\xff\"}]", Payloads(1)),
                "Steps: not valid JSON");
}

}  // namespace
}  // namespace dtmd::txn
