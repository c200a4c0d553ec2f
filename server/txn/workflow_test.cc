// ParseWorkflowCustom, WorkflowResumePayload and WorkflowMode: tables over
// every status, command, query state and answer.
#include "server/txn/workflow.h"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "workflow.pb.h"

namespace dtmd::txn {
namespace {

using Strs = std::vector<std::string>;

constexpr int64_t kStartMs = 1'000'000;
constexpr int64_t kNowMs = 2'000'000;
constexpr char kResumeUrl[] = "localhost:8081/workflow.Workflow/Execute";
const Strs kStatuses = {"prepared", "submitted", "aborting", "succeed",
                        "failed"};
const std::vector<BranchOutcome> kOutcomes = {
    BranchOutcome::kSuccess, BranchOutcome::kFailure, BranchOutcome::kOngoing,
    BranchOutcome::kUnknown};

// ----- ParseWorkflowCustom ---------------------------------------------------

struct GoodCase {
  std::string json;
  std::string name;
  std::string data;
};

TEST(ParseWorkflowCustomTest, AcceptsWhatGoClientsWrite) {
  const std::vector<GoodCase> cases = {
      {R"({"name":"wf","data":"aGVsbG8="})", "wf", "hello"},
      {R"({"name":"wf","data":"aGk="})", "wf", "hi"},
      {R"({"name":"wf","data":"aGVs"})", "wf", "hel"},
      {R"({"name":"wf","data":"AAH/"})", "wf", std::string("\0\1\xff", 3)},
      {R"({"name":"wf","data":"+/+/"})", "wf", "\xfb\xff\xbf"},
      {R"({"name":"wf"})", "wf", ""},
      {R"({"name":"wf","data":null})", "wf", ""},
      {R"({"name":"wf","data":""})", "wf", ""},
      // As Go's (non-strict) decoder: unused bits need not be zero.
      {R"({"name":"wf","data":"YR=="})", "wf", "a"},
      // Other members are ignored, at any depth and of any kind.
      {R"({"x":{"name":1,"data":[true]},"name":"wf","y":[{"data":2}],"z":null})",
       "wf", ""},
      {R"( { "data" : "eA==" , "name" : "a b-c.d_e/f:1" } )", "a b-c.d_e/f:1",
       "x"},
      // A member given twice counts as its last value (as in Go).
      {R"({"name":"first","name":"second","data":"eA==","data":null})",
       "second", ""},
      {std::string(R"({"name":")") + std::string(256, 'n') + R"("})",
       std::string(256, 'n'), ""},
      // JSON escapes are decoded before the checks.
      {R"({"name":"w\u0066","data":"eA\u003d\u003d"})", "wf", "x"},
  };
  for (const GoodCase& c : cases) {
    SCOPED_TRACE(c.json);
    absl::StatusOr<WorkflowCustom> custom = ParseWorkflowCustom(c.json);
    ASSERT_TRUE(custom.ok()) << custom.status();
    EXPECT_EQ(custom->name, c.name);
    EXPECT_EQ(custom->data, c.data);
  }
}

struct BadCase {
  std::string json;
  std::string message_prefix;
};

TEST(ParseWorkflowCustomTest, RefusesBadInputNamingTheField) {
  const std::string kName = "CustomedData.name: ";
  const std::string kData = "CustomedData.data: ";
  const std::string kDoc = "CustomedData: ";
  const std::vector<BadCase> cases = {
      // Not an object.
      {"[]", kDoc + "not a JSON object"},
      {R"("wf")", kDoc + "not a JSON object"},
      {"1", kDoc + "not a JSON object"},
      {"null", kDoc + "not a JSON object"},
      {"true", kDoc + "not a JSON object"},
      {"not json", kDoc + "not a JSON object"},
      {R"({"name":"wf")", kDoc + "not a JSON object"},
      {R"({"name":"wf"} {})", kDoc + "not a JSON object"},
      {std::string(40, '['), kDoc + "not a JSON object"},
      {R"({"x":)" + std::string(40, '[') + std::string(40, ']') +
           R"(,"name":"wf"})",
       kDoc + "nested deeper than 32 levels"},
      // Name.
      {"", kName + "missing"},
      {"{}", kName + "missing"},
      {R"({"data":"eA=="})", kName + "missing"},
      {R"({"name":null})", kName + "missing"},
      {R"({"name":"wf","name":null})", kName + "missing"},
      {R"({"name":""})", kName + "missing or empty"},
      {R"({"name":1})", kName + "not a string but number"},
      {R"({"name":true})", kName + "not a string but boolean"},
      {R"({"name":{}})", kName + "not a string but object"},
      {R"({"name":["wf"]})", kName + "not a string but array"},
      {std::string(R"({"name":")") + std::string(257, 'n') + R"("})",
       kName + "longer than 256 bytes"},
      {R"({"name":"w\nf"})", kName + "not printable ASCII"},
      {R"({"name":"w\u0000f"})", kName + "not printable ASCII"},
      {R"({"name":"w\u007ff"})", kName + "not printable ASCII"},
      {R"({"name":"caf\u00e9"})", kName + "not printable ASCII"},
      // Data: not a string.
      {R"({"name":"wf","data":1})", kData + "not a string but number"},
      {R"({"name":"wf","data":false})", kData + "not a string but boolean"},
      {R"({"name":"wf","data":{}})", kData + "not a string but object"},
      {R"({"name":"wf","data":[104,105]})", kData + "not a string but array"},
      // Data: not padded standard base64 (absl alone accepts several).
      {R"({"name":"wf","data":"aGk"})", kData + "not base64"},
      {R"({"name":"wf","data":"aGVsbG8"})", kData + "not base64"},
      {R"({"name":"wf","data":"aGk=="})", kData + "not base64"},
      {R"({"name":"wf","data":"YQ="})", kData + "not base64"},
      {R"({"name":"wf","data":"YQ==="})", kData + "not base64"},
      {R"({"name":"wf","data":"Y==="})", kData + "not base64"},
      {R"({"name":"wf","data":"===="})", kData + "not base64"},
      {R"({"name":"wf","data":"="})", kData + "not base64"},
      {R"({"name":"wf","data":"Y"})", kData + "not base64"},
      {R"({"name":"wf","data":"Y=Q="})", kData + "not base64"},
      {R"({"name":"wf","data":"YQ==YQ=="})", kData + "not base64"},
      {R"({"name":"wf","data":"-_8="})", kData + "not base64"},
      {R"({"name":"wf","data":"aGVs bG8="})", kData + "not base64"},
      {R"({"name":"wf","data":" aGk="})", kData + "not base64"},
      {R"({"name":"wf","data":"aGk=\n"})", kData + "not base64"},
      {R"({"name":"wf","data":"aG\r\nk="})", kData + "not base64"},
      {R"({"name":"wf","data":"aGk=","data":"aGk"})", kData + "not base64"},
      {R"({"name":"wf","data":"aGk*"})", kData + "not base64"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.json);
    absl::StatusOr<WorkflowCustom> custom = ParseWorkflowCustom(c.json);
    ASSERT_FALSE(custom.ok());
    EXPECT_EQ(custom.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(custom.status().message().substr(0, c.message_prefix.size()),
              c.message_prefix)
        << custom.status();
  }
}

// ----- WorkflowResumePayload -------------------------------------------------

TEST(WorkflowResumePayloadTest, ParsesBackAsWorkflowData) {
  for (const std::string& data :
       {std::string(), std::string("hello"), std::string("\0\1\xff", 3),
        std::string(300, 'x')}) {
    SCOPED_TRACE(data.size());
    const std::string payload = WorkflowResumePayload(data);
    ::workflow::WorkflowData message;
    ASSERT_TRUE(message.ParseFromString(payload));
    EXPECT_EQ(message.data(), data);
  }
}

TEST(WorkflowResumePayloadTest, IsTheSingleBytesFieldOnTheWire) {
  // Field 1, wire type 2 (length-delimited), length 5; empty data is no
  // bytes at all (proto3 omits a default value, as DTM's Go encoder does).
  EXPECT_EQ(WorkflowResumePayload("hello"), std::string("\x0a\x05hello"));
  EXPECT_EQ(WorkflowResumePayload(""), "");
}

// ----- WorkflowMode ----------------------------------------------------------

const Mode& Workflow() {
  static const WorkflowMode mode;
  return mode;
}

TransRecord MakeWorkflow(absl::string_view status = "prepared") {
  TransRecord trans;
  trans.set_gid("g");
  trans.set_trans_type("workflow");
  trans.set_status(std::string(status));
  trans.set_customed_data(R"({"name":"wf","data":"aGVsbG8="})");
  trans.set_query_prepared(kResumeUrl);
  trans.set_create_time_ms(kStartMs);
  trans.mutable_options()->set_retry_interval_s(10);
  trans.mutable_options()->set_timeout_to_fail_s(1);  // plays no part.
  trans.set_next_cron_interval_s(10);
  return trans;
}

BranchRecord Step(absl::string_view branch_id, absl::string_view op,
                  absl::string_view status, absl::string_view bin_data) {
  BranchRecord branch;
  branch.set_gid("g");
  branch.set_branch_id(std::string(branch_id));
  branch.set_op(std::string(op));
  branch.set_status(std::string(status));
  branch.set_bin_data(std::string(bin_data));
  branch.set_create_time_ms(kStartMs);
  return branch;
}

CommandResult Register(TransRecord* trans,
                       const std::vector<BranchRecord>& existing,
                       std::vector<BranchRecord> steps) {
  CommandArgs args;
  args.branches = std::move(steps);
  return Workflow().ApplyCommand(Command::kRegisterBranch, args, existing,
                                 trans, kNowMs);
}

CommandResult Submit(TransRecord* trans,
                     std::map<std::string, std::string> req_extra) {
  CommandArgs args;
  args.req_extra = std::move(req_extra);
  return Workflow().ApplyCommand(Command::kSubmit, args, {}, trans, kNowMs);
}

Decision NextOf(const TransRecord& trans, CallState query_state,
                const std::vector<BranchRecord>& branches = {}) {
  std::unique_ptr<Plan> plan = Workflow().MakePlan(trans, branches);
  return Workflow().Next(
      *plan, trans, branches,
      std::vector<CallState>(branches.size(), CallState::kIdle), query_state,
      kNowMs, RetryPolicy());
}

TEST(WorkflowModeTest, IsRegisteredAsWorkflow) {
  const Mode* mode = FindMode("workflow");
  ASSERT_NE(mode, nullptr);
  EXPECT_EQ(mode->trans_type(), "workflow");
  EXPECT_NE(dynamic_cast<const WorkflowMode*>(mode), nullptr);
}

// RegisterBranch

TEST(WorkflowModeTest, RegisterBranchAddsTheStepWhilePrepared) {
  TransRecord trans = MakeWorkflow();
  const TransRecord before = trans;
  CommandResult result =
      Register(&trans, {}, {Step("01", "action", "succeed", "result")});
  EXPECT_TRUE(result.reply.ok()) << result.reply;
  EXPECT_FALSE(result.changed);
  EXPECT_FALSE(result.drive);
  ASSERT_EQ(result.added.size(), 1u);
  EXPECT_EQ(result.added[0].branch_id(), "01");
  EXPECT_EQ(result.added[0].op(), "action");
  EXPECT_EQ(result.added[0].status(), "succeed");
  EXPECT_EQ(result.added[0].bin_data(), "result");
  EXPECT_EQ(result.added[0].url(), "");
  EXPECT_EQ(result.added[0].create_time_ms(), kStartMs);
  EXPECT_EQ(result.added[0].finish_time_ms(), kNowMs);
  EXPECT_EQ(trans.SerializeAsString(), before.SerializeAsString());
}

TEST(WorkflowModeTest, RegisterBranchIsRefusedUnlessPrepared) {
  for (const std::string& status : kStatuses) {
    if (status == "prepared") continue;
    SCOPED_TRACE(status);
    TransRecord trans = MakeWorkflow(status);
    CommandResult result =
        Register(&trans, {}, {Step("01", "action", "succeed", "r")});
    EXPECT_EQ(result.reply.code(), absl::StatusCode::kAborted);
    EXPECT_EQ(result.reply.message().substr(0, 17 + status.size()),
              "transaction g is " + status);
    EXPECT_TRUE(result.added.empty());
    EXPECT_FALSE(result.changed);
    EXPECT_EQ(trans.status(), status);
  }
}

struct RegisterCase {
  std::string label;
  BranchRecord step;
  absl::StatusCode code;
  bool added;
};

TEST(WorkflowModeTest, RegisterBranchTellsRepeatsFromConflicts) {
  const std::vector<BranchRecord> existing = {
      Step("01", "action", "succeed", "r1"),
      Step("02", "action", "failed", "boom"),
      Step("02", "rollback", "succeed", ""),
  };
  const std::vector<RegisterCase> cases = {
      {"identical repeat", Step("01", "action", "succeed", "r1"),
       absl::StatusCode::kOk, false},
      {"identical failed repeat", Step("02", "action", "failed", "boom"),
       absl::StatusCode::kOk, false},
      {"identical empty repeat", Step("02", "rollback", "succeed", ""),
       absl::StatusCode::kOk, false},
      {"other status", Step("01", "action", "failed", "r1"),
       absl::StatusCode::kAlreadyExists, false},
      {"other data", Step("01", "action", "succeed", "r2"),
       absl::StatusCode::kAlreadyExists, false},
      {"data now empty", Step("02", "action", "failed", ""),
       absl::StatusCode::kAlreadyExists, false},
      {"same id, other op", Step("01", "commit", "succeed", "r1"),
       absl::StatusCode::kOk, true},
      {"same op, other id", Step("03", "action", "succeed", "r1"),
       absl::StatusCode::kOk, true},
  };
  for (const RegisterCase& c : cases) {
    SCOPED_TRACE(c.label);
    TransRecord trans = MakeWorkflow();
    CommandResult result = Register(&trans, existing, {c.step});
    EXPECT_EQ(result.reply.code(), c.code) << result.reply;
    EXPECT_EQ(result.added.size(), c.added ? 1u : 0u);
    EXPECT_FALSE(result.changed);
    EXPECT_FALSE(result.drive);
  }
}

TEST(WorkflowModeTest, RegisterBranchChecksStepsOfOneRequestAgainstEachOther) {
  TransRecord trans = MakeWorkflow();
  CommandResult result = Register(&trans, {},
                                  {Step("01", "action", "succeed", "r"),
                                   Step("01", "action", "succeed", "r"),
                                   Step("01", "commit", "succeed", "")});
  EXPECT_TRUE(result.reply.ok());
  ASSERT_EQ(result.added.size(), 2u);
  EXPECT_EQ(result.added[1].op(), "commit");

  result = Register(&trans, {},
                    {Step("01", "action", "succeed", "r"),
                     Step("01", "action", "failed", "r")});
  EXPECT_EQ(result.reply.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(result.added.empty());  // all or nothing.
}

// Submit

struct SubmitCase {
  std::string from;
  std::string to;
  absl::StatusCode code;
  bool changed;
};

TEST(WorkflowModeTest, SubmitFromEveryStatus) {
  const std::vector<SubmitCase> cases = {
      {"prepared", "succeed", absl::StatusCode::kOk, true},
      {"prepared", "failed", absl::StatusCode::kOk, true},
      {"succeed", "succeed", absl::StatusCode::kOk, false},
      {"failed", "failed", absl::StatusCode::kOk, false},
      {"succeed", "failed", absl::StatusCode::kAborted, false},
      {"failed", "succeed", absl::StatusCode::kAborted, false},
      {"submitted", "succeed", absl::StatusCode::kAborted, false},
      {"submitted", "failed", absl::StatusCode::kAborted, false},
      {"aborting", "succeed", absl::StatusCode::kAborted, false},
      {"aborting", "failed", absl::StatusCode::kAborted, false},
  };
  for (const SubmitCase& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.from, " -> ", c.to));
    TransRecord trans = MakeWorkflow(c.from);
    const TransRecord before = trans;
    CommandResult result = Submit(
        &trans,
        {{"status", c.to}, {"rollback_reason", "r"}, {"result", "cmVz"}});
    EXPECT_EQ(result.reply.code(), c.code) << result.reply;
    EXPECT_EQ(result.changed, c.changed);
    EXPECT_FALSE(result.drive);
    EXPECT_TRUE(result.added.empty());
    if (c.code == absl::StatusCode::kAborted) {
      EXPECT_EQ(result.reply.message(),
                absl::StrCat("transaction g is already ", c.from));
    }
    if (!c.changed) {
      EXPECT_EQ(trans.SerializeAsString(), before.SerializeAsString());
    }
  }
}

TEST(WorkflowModeTest, SubmitEndsThePreparedWorkflowWithItsReasonAndResult) {
  TransRecord trans = MakeWorkflow();
  CommandResult result = Submit(&trans, {{"status", "failed"},
                                         {"rollback_reason", "step 2 failed"},
                                         {"result", ""}});
  EXPECT_TRUE(result.reply.ok());
  EXPECT_EQ(trans.status(), "failed");
  EXPECT_EQ(trans.rollback_reason(), "step 2 failed");
  EXPECT_EQ(trans.result(), "");
  EXPECT_EQ(trans.finish_time_ms(), kNowMs);
  EXPECT_EQ(trans.update_time_ms(), kNowMs);

  trans = MakeWorkflow();
  result = Submit(
      &trans,
      {{"status", "succeed"}, {"rollback_reason", ""}, {"result", "aGVsbG8="}});
  EXPECT_TRUE(result.reply.ok());
  EXPECT_EQ(trans.status(), "succeed");
  EXPECT_EQ(trans.rollback_reason(), "");
  EXPECT_EQ(trans.result(), "aGVsbG8=");
  EXPECT_EQ(trans.finish_time_ms(), kNowMs);

  // Missing reason and result count as empty.
  trans = MakeWorkflow();
  result = Submit(&trans, {{"status", "succeed"}});
  EXPECT_TRUE(result.reply.ok());
  EXPECT_EQ(trans.status(), "succeed");
  EXPECT_EQ(trans.result(), "");
}

TEST(WorkflowModeTest, SubmitRefusesAnyOtherReqExtraStatus) {
  for (const std::string& from : kStatuses) {
    for (const char* status : {"", "prepared", "submitted", "aborting",
                               "Succeed", "succeed ", "x"}) {
      SCOPED_TRACE(absl::StrCat(from, " with \"", status, "\""));
      TransRecord trans = MakeWorkflow(from);
      const TransRecord before = trans;
      CommandResult result = Submit(&trans, {{"status", status}});
      EXPECT_EQ(result.reply.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(result.reply.message().substr(0, 16), "ReqExtra.status:");
      EXPECT_FALSE(result.changed);
      EXPECT_EQ(trans.SerializeAsString(), before.SerializeAsString());
    }
    TransRecord trans = MakeWorkflow(from);
    EXPECT_EQ(Submit(&trans, {}).reply.code(),
              absl::StatusCode::kInvalidArgument);
  }
}

// Abort

TEST(WorkflowModeTest, AbortIsRefusedInEveryStatus) {
  for (const std::string& status : kStatuses) {
    SCOPED_TRACE(status);
    TransRecord trans = MakeWorkflow(status);
    const TransRecord before = trans;
    CommandArgs args;
    args.rollback_reason = "stop";
    CommandResult result =
        Workflow().ApplyCommand(Command::kAbort, args, {}, &trans, kNowMs);
    EXPECT_EQ(result.reply.code(), absl::StatusCode::kAborted);
    EXPECT_NE(result.reply.message().find("end by Submit"), std::string::npos);
    EXPECT_FALSE(result.changed);
    EXPECT_FALSE(result.drive);
    EXPECT_EQ(trans.SerializeAsString(), before.SerializeAsString());
  }
}

// Next

void ExpectNothing(const Decision& d) {
  EXPECT_TRUE(d.calls.empty());
  EXPECT_FALSE(d.query.has_value());
  EXPECT_EQ(d.new_status, "");
  EXPECT_EQ(d.wake_at_ms, 0);
  EXPECT_EQ(d.next_interval_s, 0);
}

void ExpectWakeAfterInterval(const Decision& d, int64_t interval_s) {
  EXPECT_TRUE(d.calls.empty());
  EXPECT_FALSE(d.query.has_value());
  EXPECT_EQ(d.new_status, "");
  EXPECT_EQ(d.wake_at_ms, kNowMs + interval_s * 1000);
  EXPECT_EQ(d.next_interval_s, interval_s);
}

TEST(WorkflowModeTest, NextDoesNothingOnceFinal) {
  for (const char* status : {"succeed", "failed"}) {
    for (CallState state :
         {CallState::kIdle, CallState::kInFlight, CallState::kDeferred}) {
      SCOPED_TRACE(status);
      ExpectNothing(NextOf(MakeWorkflow(status), state));
    }
  }
}

TEST(WorkflowModeTest, NextResumesTheClientWhenTheQueryIsIdle) {
  // submitted and aborting never happen to a workflow; a corrupt record
  // with them is resumed all the same.
  for (const char* status : {"prepared", "submitted", "aborting"}) {
    SCOPED_TRACE(status);
    Decision d = NextOf(MakeWorkflow(status), CallState::kIdle,
                        {Step("01", "action", "succeed", "r")});
    EXPECT_TRUE(d.calls.empty());  // recorded steps are never called.
    EXPECT_EQ(d.new_status, "");
    EXPECT_EQ(d.wake_at_ms, 0);
    ASSERT_TRUE(d.query.has_value());
    EXPECT_EQ(d.query->url, kResumeUrl);
    EXPECT_EQ(d.query->branch_id, "00");
    EXPECT_EQ(d.query->op, "wf");
    EXPECT_EQ(d.query->payload, WorkflowResumePayload("hello"));
  }
}

TEST(WorkflowModeTest, NextWaitsForAnInFlightQuery) {
  ExpectNothing(NextOf(MakeWorkflow(), CallState::kInFlight));
}

TEST(WorkflowModeTest, NextAfterADeferredQueryWakesAfterThePlainInterval) {
  TransRecord trans = MakeWorkflow();
  trans.set_next_cron_interval_s(80);  // a backed-off value is not used.
  ExpectWakeAfterInterval(NextOf(trans, CallState::kDeferred), 10);
}

TEST(WorkflowModeTest, NextWithoutQueryPreparedOnlyWakesAfterTheInterval) {
  for (CallState state : {CallState::kIdle, CallState::kDeferred}) {
    TransRecord trans = MakeWorkflow();
    trans.clear_query_prepared();
    ExpectWakeAfterInterval(NextOf(trans, state), 10);
  }
}

TEST(WorkflowModeTest, NextIgnoresTimeoutToFail) {
  TransRecord trans = MakeWorkflow();
  Decision d = NextOf(trans, CallState::kIdle);  // 1000 s after a 1 s timeout
  EXPECT_EQ(d.new_status, "");
  EXPECT_TRUE(d.query.has_value());
}

TEST(WorkflowModeTest, NextResumesACorruptRecordWithEmptyNameAndData) {
  for (const char* custom :
       {"", "not json", R"({"name":1})", R"({"name":"wf","data":"%%%"})"}) {
    SCOPED_TRACE(custom);
    TransRecord trans = MakeWorkflow();
    trans.set_customed_data(custom);
    Decision d = NextOf(trans, CallState::kIdle);
    ASSERT_TRUE(d.query.has_value());
    EXPECT_EQ(d.query->op, "");
    EXPECT_EQ(d.query->payload, "");
    EXPECT_EQ(d.query->url, kResumeUrl);
  }
}

TEST(WorkflowModeTest, NextNeverBacksOffAZeroInterval) {
  TransRecord trans = MakeWorkflow();
  trans.mutable_options()->set_retry_interval_s(0);  // only if corrupt.
  ExpectWakeAfterInterval(NextOf(trans, CallState::kDeferred), 1);
}

// Answers

TEST(WorkflowModeTest, ResumeAnswersOfEveryKindKeepStatusAndInterval) {
  for (const std::string& status : kStatuses) {
    for (BranchOutcome outcome : kOutcomes) {
      SCOPED_TRACE(absl::StrCat(status, " ", OutcomeName(outcome)));
      TransRecord trans = MakeWorkflow(status);
      trans.set_next_cron_interval_s(40);
      TransRecord expected = trans;
      expected.set_next_cron_interval_s(10);
      EXPECT_TRUE(Workflow().ApplyQueryAnswer(&trans, outcome, "said so",
                                              kNowMs, RetryPolicy()));
      EXPECT_EQ(trans.SerializeAsString(), expected.SerializeAsString());
    }
  }
}

TEST(WorkflowModeTest, NoOpHasAMeaningfulFailure) {
  for (const char* op : {"action", "commit", "rollback", "wf", "", "msg"}) {
    EXPECT_FALSE(Workflow().FailureAllowed(op)) << op;
  }
}

TEST(WorkflowModeTest, BranchAnswersChangeNothing) {
  for (BranchOutcome outcome : kOutcomes) {
    TransRecord trans = MakeWorkflow();
    BranchRecord branch = Step("01", "action", "succeed", "r");
    const TransRecord trans_before = trans;
    const BranchRecord branch_before = branch;
    EXPECT_FALSE(Workflow().ApplyAnswer(&trans, &branch, outcome, "m", kNowMs,
                                        RetryPolicy()));
    EXPECT_EQ(trans.SerializeAsString(), trans_before.SerializeAsString());
    EXPECT_EQ(branch.SerializeAsString(), branch_before.SerializeAsString());
  }
}

TEST(WorkflowModeTest, EveryMoveIsDurable) {
  for (const std::string& from : kStatuses) {
    for (const std::string& to : kStatuses) {
      EXPECT_TRUE(Workflow().MoveMustBeDurable(from, to)) << from << to;
    }
  }
}

TEST(WorkflowModeTest, WaitOutcomeOfEveryStatus) {
  for (const std::string& status : kStatuses) {
    SCOPED_TRACE(status);
    TransRecord trans = MakeWorkflow(status);
    trans.set_rollback_reason("step 2 failed");
    absl::Status outcome = Workflow().WaitOutcome(trans, {});
    if (status == "succeed") {
      EXPECT_TRUE(outcome.ok());
    } else if (status == "failed") {
      EXPECT_EQ(outcome.code(), absl::StatusCode::kAborted);
      EXPECT_NE(outcome.message().find("step 2 failed"), std::string::npos);
    } else {
      EXPECT_EQ(outcome.code(), absl::StatusCode::kFailedPrecondition);
    }
  }
}

// A whole workflow as a runner sees it: resumed once a round (no backoff)
// until the client records its steps and submits.
TEST(WorkflowModeTest, IsResumedOncePerRoundUntilTheClientSubmits) {
  TransRecord trans = MakeWorkflow();
  std::vector<BranchRecord> branches;
  int resumes = 0;
  for (int round = 0; round < 3; ++round) {
    CallState query = CallState::kIdle;
    Decision d = NextOf(trans, query, branches);
    ASSERT_TRUE(d.query.has_value());
    ++resumes;
    query = Workflow().ApplyQueryAnswer(&trans, BranchOutcome::kUnknown, "down",
                                        kNowMs, RetryPolicy())
                ? CallState::kDeferred
                : CallState::kIdle;
    ExpectWakeAfterInterval(NextOf(trans, query, branches), 10);
    EXPECT_EQ(trans.next_cron_interval_s(), 10);
  }
  EXPECT_EQ(resumes, 3);

  CommandResult result =
      Register(&trans, branches, {Step("01", "action", "succeed", "r")});
  ASSERT_TRUE(result.reply.ok());
  branches.insert(branches.end(), result.added.begin(), result.added.end());
  result = Submit(&trans, {{"status", "succeed"}, {"result", "cg=="}});
  ASSERT_TRUE(result.reply.ok());
  EXPECT_TRUE(result.changed);
  ExpectNothing(NextOf(trans, CallState::kIdle, branches));
  EXPECT_TRUE(Workflow().WaitOutcome(trans, branches).ok());
}

}  // namespace
}  // namespace dtmd::txn
