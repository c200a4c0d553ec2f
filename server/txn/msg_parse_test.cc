// ParseMsg, ParseMsgDelay and MsgBranches: the validation of a msg request
// and the branch records it makes, topics expanded.
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/txn/msg.h"

namespace dtmd::txn {
namespace {

using Strs = std::vector<std::string>;

constexpr char kUrl0[] = "svc-a:8080/shop.Orders/Create";
constexpr char kUrl1[] = "10.0.0.2:9000/pay.v1.Wallet/Debit";

std::vector<std::string> Payloads(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(absl::StrCat("payload-", i));
  return out;
}

// Steps with one action per entry.
std::string Steps(const std::vector<std::string>& actions) {
  std::string out = "[";
  for (size_t i = 0; i < actions.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", R"({"action":")", actions[i], R"("})");
  }
  return out + "]";
}

absl::StatusOr<MsgDefinition> Parse(absl::string_view steps,
                                    const std::vector<std::string>& payloads,
                                    absl::string_view custom = "",
                                    StepsLimits limits = StepsLimits()) {
  return ParseMsg("gid-1", steps, payloads, custom, limits);
}

// Expects INVALID_ARGUMENT whose message starts with `field`.
template <typename T>
void ExpectInvalid(const absl::StatusOr<T>& result, absl::string_view field) {
  ASSERT_FALSE(result.ok()) << "expected an error naming " << field;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(result.status().message(), field))
      << result.status().message();
}

// A resolver over a fixed table; unknown topics are NOT_FOUND.
TopicResolver Topics(std::map<std::string, Strs> table) {
  return [table](absl::string_view topic) -> absl::StatusOr<Strs> {
    auto it = table.find(std::string(topic));
    if (it == table.end()) {
      return absl::NotFoundError(absl::StrCat("no topic ", topic));
    }
    return it->second;
  };
}

std::vector<BranchRecord> Branches(absl::string_view steps, int n,
                                   const TopicResolver& resolver) {
  auto def = Parse(steps, Payloads(n));
  EXPECT_TRUE(def.ok()) << def.status();
  if (!def.ok()) return {};
  auto branches = MsgBranches(*def, resolver);
  EXPECT_TRUE(branches.ok()) << branches.status();
  return branches.ok() ? *branches : std::vector<BranchRecord>();
}

Strs Ids(const std::vector<BranchRecord>& branches) {
  Strs out;
  for (const BranchRecord& b : branches) out.push_back(b.branch_id());
  return out;
}

// ----- Steps ----------------------------------------------------------------

TEST(MsgParseTest, MakesOneActionBranchPerStepInOrder) {
  auto def = Parse(Steps({kUrl0, kUrl1}), {"p0", "p1"});
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ(def->gid, "gid-1");
  ASSERT_EQ(def->steps.size(), 2u);
  EXPECT_EQ(def->steps[0].url, kUrl0);
  EXPECT_EQ(def->steps[0].topic, "");
  EXPECT_EQ(def->steps[1].payload, "p1");
  EXPECT_EQ(def->delay_s, 0);

  auto branches = MsgBranches(*def, Topics({}));
  ASSERT_TRUE(branches.ok()) << branches.status();
  ASSERT_EQ(branches->size(), 2u);
  const Strs urls = {kUrl0, kUrl1};
  for (int i = 0; i < 2; ++i) {
    const BranchRecord& b = (*branches)[i];
    EXPECT_EQ(b.gid(), "gid-1");
    EXPECT_EQ(b.position(), i);
    EXPECT_EQ(b.op(), "action");
    EXPECT_EQ(b.url(), urls[i]);
    EXPECT_EQ(b.bin_data(), absl::StrCat("p", i));
    EXPECT_EQ(b.status(), "prepared");
    EXPECT_EQ(b.finish_time_ms(), 0);
  }
  EXPECT_EQ(Ids(*branches), Strs({"01", "02"}));
}

TEST(MsgParseTest, BranchIdsArePaddedToTwoDigitsThenPrintedAsIs) {
  auto branches = Branches(Steps(Strs(120, kUrl0)), 120, Topics({}));
  ASSERT_EQ(branches.size(), 120u);
  EXPECT_EQ(branches[0].branch_id(), "01");
  EXPECT_EQ(branches[8].branch_id(), "09");
  EXPECT_EQ(branches[98].branch_id(), "99");
  EXPECT_EQ(branches[99].branch_id(), "100");
  EXPECT_EQ(branches[119].position(), 119);
}

TEST(MsgParseTest, EmptyNullOrMissingActionMakesAnAlreadySucceededBranch) {
  auto branches =
      Branches(absl::StrCat(R"([{"action":""},{"action":null},{},{"action":")",
                            kUrl0, R"("}])"),
               4, Topics({}));
  Strs statuses;
  for (const BranchRecord& b : branches) statuses.push_back(b.status());
  EXPECT_EQ(statuses, Strs({"succeed", "succeed", "succeed", "prepared"}));
  EXPECT_EQ(Ids(branches), Strs({"01", "02", "03", "04"}));
  EXPECT_EQ(branches[2].bin_data(), "payload-2");
}

TEST(MsgParseTest, IgnoresOtherKeysIncludingCompensate) {
  auto def =
      Parse(absl::StrCat(R"([{"compensate":5,"note":{"a":[1]},"action":")",
                         kUrl0, R"("}])"),
            Payloads(1));
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ(def->steps[0].url, kUrl0);
}

TEST(MsgParseTest, EmptyNullOrEmptyArrayStepsMeanZeroSteps) {
  for (absl::string_view steps : {"", "null", " null ", "[]"}) {
    auto def = Parse(steps, {});
    ASSERT_TRUE(def.ok()) << "Steps=" << steps << ": " << def.status();
    EXPECT_TRUE(def->steps.empty());
    auto branches = MsgBranches(*def, Topics({}));
    ASSERT_TRUE(branches.ok());
    EXPECT_TRUE(branches->empty());
  }
}

TEST(MsgParseTest, RejectsMalformedStepsNamingTheField) {
  struct Case {
    std::string steps;
    int payloads;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"[{", 1, "Steps: not valid JSON"},
      {"action", 1, "Steps: not valid JSON"},
      {R"({"action":"h:1/S/M"})", 1, "Steps: not a JSON array but object"},
      {"3", 1, "Steps: not a JSON array but number"},
      {R"([{},"h:1/S/M"])", 2, "Steps[1]: not a JSON object but string"},
      {"[null]", 1, "Steps[0]: not a JSON object but null"},
      {R"([{"action":5}])", 1, "Steps[0].action: not a string but number"},
      {R"([{},{"action":["h:1/S/M"]}])", 2,
       "Steps[1].action: not a string but array"},
      {R"([{"action":"localhost/pkg.Svc/M"}])", 1, "Steps[0].action: "},
      {R"([{"action":"localhost:0/pkg.Svc/M"}])", 1, "Steps[0].action: "},
      {R"([{"action":"localhost:8080"}])", 1, "Steps[0].action: "},
      {R"([{"action":"discovery:///svc/pkg.Svc/M"}])", 1, "Steps[0].action: "},
      {R"([{"action":"http://h:0/S/M"}])", 1, "Steps[0].action: "},
      {R"([{"action":"h:1/S/M x"}])", 1, "Steps[0].action: "},
      {R"([{"action":"topic:/t"}])", 1, "Steps[0].action: "},
      {R"([{"action":"h:1/S/M"}])", 0, "BinPayloads: got 0 payloads for 1"},
      {R"([{"action":"h:1/S/M"}])", 2, "BinPayloads: got 2 payloads for 1"},
      {"null", 1, "BinPayloads: got 1 payloads for 0"},
      {R"([{"action":1}])", 0, "Steps[0].action"},  // before the count
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.steps);
    ExpectInvalid(Parse(c.steps, Payloads(c.payloads)), c.field);
  }
}

TEST(MsgParseTest, AcceptsWellFormedUrls) {
  for (const std::string url :
       {"localhost:1/S/M", "svc.ns.svc.cluster.local:65535/a.b.c.Svc/Do",
        "[::1]:8080/pkg.Svc/Method", "127.0.0.1:08080/pkg.Svc/M"}) {
    auto def = Parse(Steps({url}), Payloads(1));
    ASSERT_TRUE(def.ok()) << url << ": " << def.status();
    EXPECT_EQ(def->steps[0].url, url);
  }
}

TEST(MsgParseTest, LimitsOnStepsUrlsAndDepthApply) {
  StepsLimits limits;
  limits.max_steps = 3;
  EXPECT_TRUE(Parse(Steps(Strs(3, kUrl0)), Payloads(3), "", limits).ok());
  ExpectInvalid(Parse(Steps(Strs(4, kUrl0)), Payloads(4), "", limits),
                "Steps: more than the limit of 3 steps");
  // What follows the fourth step is never read.
  ExpectInvalid(Parse("[{},{},{},{} not JSON", {}, "", limits),
                "Steps: more than the limit of 3 steps");

  limits = StepsLimits();
  limits.max_url_bytes = 40;
  const std::string prefix = "h:1/S/";
  const std::string at_limit = prefix + std::string(40 - prefix.size(), 'm');
  EXPECT_TRUE(Parse(Steps({at_limit}), Payloads(1), "", limits).ok());
  ExpectInvalid(Parse(Steps({at_limit + "x"}), Payloads(1), "", limits),
                "Steps[0].action: URL is 41 bytes, more than the limit of 40");
  const std::string topic_at_limit = "topic://" + std::string(32, 't');
  EXPECT_TRUE(Parse(Steps({topic_at_limit}), Payloads(1), "", limits).ok());
  ExpectInvalid(Parse(Steps({topic_at_limit + "t"}), Payloads(1), "", limits),
                "Steps[0].action: URL is 41 bytes");

  limits = StepsLimits();
  limits.max_json_depth = 8;
  auto arrays = [](int n) { return std::string(n, '[') + std::string(n, ']'); };
  EXPECT_TRUE(
      Parse(absl::StrCat(R"([{"x":)", arrays(6), "}]"), Payloads(1), "", limits)
          .ok());
  ExpectInvalid(Parse(absl::StrCat(R"([{"x":)", arrays(7), "}]"), Payloads(1),
                      "", limits),
                "Steps: nested deeper than 8 levels");
  EXPECT_TRUE(
      Parse("[]", {}, absl::StrCat(R"({"x":)", arrays(7), "}"), limits).ok());
  ExpectInvalid(
      Parse("[]", {}, absl::StrCat(R"({"x":)", arrays(8), "}"), limits),
      "CustomedData: nested deeper than 8 levels");
}

// ----- Topics ---------------------------------------------------------------

TEST(MsgParseTest, TopicNamesArePrintableAsciiOfOneTo128Bytes) {
  struct Case {
    std::string name;
    bool ok;
  };
  const std::vector<Case> cases = {
      {"t", true},
      {"orders.created", true},
      {"!~#$%&'()*+,-./:;<=>?@[]^_`{|}", true},
      {std::string(128, 'x'), true},
      {"", false},
      {std::string(129, 'x'), false},
      {"a b", false},
      {"a\\tb", false},  // a tab, escaped in the JSON text
      {"caf\xc3\xa9", false},
      {"a\\u007fb", false},  // DEL
      {"a\\u0000b", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto def = Parse(Steps({"topic://" + c.name}), Payloads(1));
    if (c.ok) {
      ASSERT_TRUE(def.ok()) << def.status();
      EXPECT_EQ(def->steps[0].topic, c.name);
      EXPECT_EQ(def->steps[0].url, "");
    } else {
      ExpectInvalid(def, "Steps[0].action: topic name ");
    }
  }
}

TEST(MsgParseTest, TopicWithOneSubscriberKeepsThePlainStepId) {
  auto branches = Branches(Steps({kUrl0, "topic://solo", kUrl1}), 3,
                           Topics({{"solo", {"s:1/S/One"}}}));
  EXPECT_EQ(Ids(branches), Strs({"01", "02", "03"}));
  EXPECT_EQ(branches[1].url(), "s:1/S/One");
  EXPECT_EQ(branches[1].bin_data(), "payload-1");
  EXPECT_EQ(branches[1].status(), "prepared");
}

TEST(MsgParseTest, TopicWithSeveralSubscribersGetsOneBranchEachInOrder) {
  auto branches = Branches(Steps({kUrl0, "topic://many", "topic://two"}), 3,
                           Topics({{"many", {"m:1/S/A", "m:2/S/B", "m:3/S/C"}},
                                   {"two", {"t:1/S/A", "t:2/S/B"}}}));
  EXPECT_EQ(Ids(branches),
            Strs({"01", "02-01", "02-02", "02-03", "03-01", "03-02"}));
  Strs urls;
  for (const BranchRecord& b : branches) urls.push_back(b.url());
  EXPECT_EQ(urls, Strs({kUrl0, "m:1/S/A", "m:2/S/B", "m:3/S/C", "t:1/S/A",
                        "t:2/S/B"}));
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(branches[i].position(), i);
    EXPECT_EQ(branches[i].op(), "action");
  }
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(branches[i].bin_data(), "payload-1");
  for (int i = 4; i <= 5; ++i) EXPECT_EQ(branches[i].bin_data(), "payload-2");
}

TEST(MsgParseTest, SameTopicInTwoStepsExpandsTwice) {
  auto branches = Branches(Steps({"topic://t", "topic://t"}), 2,
                           Topics({{"t", {"a:1/S/M", "b:1/S/M"}}}));
  EXPECT_EQ(Ids(branches), Strs({"01-01", "01-02", "02-01", "02-02"}));
}

TEST(MsgParseTest, ResolverErrorsArePassedOnAndNoSubscribersIsNotFound) {
  auto def = Parse(Steps({kUrl0, "topic://gone"}), Payloads(2));
  ASSERT_TRUE(def.ok()) << def.status();
  auto unknown = MsgBranches(*def, Topics({}));
  EXPECT_EQ(unknown.status(), absl::NotFoundError("no topic gone"));
  auto empty = MsgBranches(*def, Topics({{"gone", {}}}));
  EXPECT_EQ(empty.status(),
            absl::NotFoundError("topic gone has no subscribers"));
  auto broken =
      MsgBranches(*def, [](absl::string_view) -> absl::StatusOr<Strs> {
        return absl::UnavailableError("store down");
      });
  EXPECT_EQ(broken.status(), absl::UnavailableError("store down"));
}

TEST(MsgParseTest, ResolverIsAskedOnlyForTopicSteps) {
  Strs asked;
  auto def = Parse(Steps({kUrl0, "topic://a", "", "topic://b"}), Payloads(4));
  ASSERT_TRUE(def.ok()) << def.status();
  auto branches =
      MsgBranches(*def, [&asked](absl::string_view t) -> absl::StatusOr<Strs> {
        asked.push_back(std::string(t));
        return Strs({"x:1/S/M"});
      });
  ASSERT_TRUE(branches.ok()) << branches.status();
  EXPECT_EQ(asked, Strs({"a", "b"}));
  EXPECT_EQ(Ids(*branches), Strs({"01", "02", "03", "04"}));
}

// ----- CustomedData.delay ---------------------------------------------------

TEST(MsgParseTest, DelayFormsThatAreAccepted) {
  struct Case {
    std::string custom;
    int64_t delay_s;
  };
  const std::vector<Case> cases = {
      {"", 0},
      {"{}", 0},
      {R"({"delay":0})", 0},
      {R"({"delay":null})", 0},
      {R"({"delay":7})", 7},
      {R"({"Delay":7})", 7},  // Go matches untagged fields ignoring case
      {R"({"DELAY":7})", 7},
      {R"({"delay":3,"delay":5})", 5},  // the last one, as in Go
      {R"({"other":{"delay":-1},"delay":9,"x":[1.5]})", 9},
      {R"({"delay":1073741824})", int64_t{1} << 30},
      {R"( { "delay" : 12 } )", 12},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.custom);
    auto def = Parse("[]", {}, c.custom);
    ASSERT_TRUE(def.ok()) << def.status();
    EXPECT_EQ(def->delay_s, c.delay_s);
    auto delay = ParseMsgDelay(c.custom, 32);
    ASSERT_TRUE(delay.ok()) << delay.status();
    EXPECT_EQ(*delay, c.delay_s);
  }
}

TEST(MsgParseTest, DelayFormsThatAreRejected) {
  struct Case {
    std::string custom;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"x", "CustomedData: not valid JSON"},
      {"{", "CustomedData: not valid JSON"},
      {R"({"delay":1} x)", "CustomedData: not valid JSON"},
      {"[1]", "CustomedData: not a JSON object"},
      {"null", "CustomedData: not a JSON object"},
      {"7", "CustomedData: not a JSON object"},
      {R"("{\"delay\":1}")", "CustomedData: not a JSON object"},
      {R"({"delay":-1})", "CustomedData.delay: -1 is negative"},
      {R"({"delay":-9223372036854775808})", "CustomedData.delay: -"},
      {R"({"delay":1.5})", "CustomedData.delay: not a whole number"},
      {R"({"delay":5.0})", "CustomedData.delay: not a whole number"},
      {R"({"delay":1e3})", "CustomedData.delay: not a whole number"},
      {R"({"delay":"5"})",
       "CustomedData.delay: not a number of seconds but "
       "string"},
      {R"({"delay":true})", "CustomedData.delay: not a number"},
      {R"({"delay":[5]})", "CustomedData.delay: not a number"},
      {R"({"delay":{"s":5}})", "CustomedData.delay: not a number"},
      {R"({"delay":1073741825})",
       "CustomedData.delay: 1073741825 seconds is more than the limit"},
      {R"({"delay":18446744073709551615})", "CustomedData.delay: "},
      {R"({"delay":99999999999999999999999})", "CustomedData.delay: "},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.custom);
    ExpectInvalid(Parse("[]", {}, c.custom), c.field);
    ExpectInvalid(ParseMsgDelay(c.custom, 32), c.field);
  }
}

}  // namespace
}  // namespace dtmd::txn
