// TCC, XA, two-phase messages, topics and workflows against a real dtmd and
// a scripted branch server, through DTM's gRPC protocol (the generated
// stubs, as DTM's SDKs send it).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "dtmgimp.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/saga_fixture.h"
#include "workflow.pb.h"

namespace dtmd::testing {
namespace {

using ::dtmgimp::DtmBranchRequest;
using ::dtmgimp::DtmRequest;

constexpr absl::Duration kWait = absl::Seconds(20);

class ModesTest : public SagaFixture {
 protected:
  static grpc::Status Call(grpc::Status (dtmgimp::Dtm::Stub::*method)(
                               grpc::ClientContext*, const DtmRequest&,
                               google::protobuf::Empty*),
                           const DtmRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    google::protobuf::Empty reply;
    return (dtmd_->dtm()->*method)(&context, request, &reply);
  }
  static grpc::Status Prepare(const DtmRequest& r) {
    return Call(&dtmgimp::Dtm::Stub::Prepare, r);
  }
  static grpc::Status Submit(const DtmRequest& r) {
    return Call(&dtmgimp::Dtm::Stub::Submit, r);
  }
  static grpc::Status Abort(const DtmRequest& r) {
    return Call(&dtmgimp::Dtm::Stub::Abort, r);
  }
  static grpc::Status Register(const DtmBranchRequest& r) {
    grpc::ClientContext context;
    google::protobuf::Empty reply;
    return dtmd_->dtm()->RegisterBranch(&context, r, &reply);
  }
  static grpc::Status Topic(grpc::Status (dtmgimp::Dtm::Stub::*method)(
                                grpc::ClientContext*,
                                const dtmgimp::DtmTopicRequest&,
                                google::protobuf::Empty*),
                            const std::string& topic, const std::string& url) {
    grpc::ClientContext context;
    dtmgimp::DtmTopicRequest request;
    request.set_topic(topic);
    request.set_url(url);
    google::protobuf::Empty reply;
    return (dtmd_->dtm()->*method)(&context, request, &reply);
  }
  static grpc::Status PrepareWorkflow(const DtmRequest& r,
                                      dtmgimp::DtmProgressesReply* reply) {
    grpc::ClientContext context;
    return dtmd_->dtm()->PrepareWorkflow(&context, r, reply);
  }

  static DtmRequest Request(const std::string& gid, const std::string& type) {
    DtmRequest r;
    r.set_gid(gid);
    r.set_transtype(type);
    r.set_steps("null");  // what DTM's Go client sends for tcc/xa/workflow.
    return r;
  }
  static DtmBranchRequest TccBranch(const std::string& gid,
                                    const std::string& id,
                                    const std::string& payload = "p") {
    DtmBranchRequest r;
    r.set_gid(gid);
    r.set_transtype("tcc");
    r.set_branchid(id);
    r.set_busipayload(payload);
    (*r.mutable_data())["confirm"] = Url("Confirm");
    (*r.mutable_data())["cancel"] = Url("Cancel");
    return r;
  }
  static DtmBranchRequest XaBranch(const std::string& gid,
                                   const std::string& id) {
    DtmBranchRequest r;
    r.set_gid(gid);
    r.set_transtype("xa");
    r.set_branchid(id);
    r.set_busipayload("x");
    (*r.mutable_data())["url"] = Url("Xa");
    return r;
  }
  static DtmRequest Msg(const std::string& gid,
                        const std::vector<std::string>& actions) {
    DtmRequest r;
    r.set_gid(gid);
    r.set_transtype("msg");
    std::string steps = "[";
    for (size_t i = 0; i < actions.size(); ++i) {
      absl::StrAppend(&steps, i == 0 ? "" : ",", "{\"action\":\"", actions[i],
                      "\"}");
      r.add_binpayloads(absl::StrCat("payload-", i));
    }
    r.set_steps(steps + "]");
    return r;
  }
  static std::string Status(const std::string& gid) {
    auto reply = dtmd_->GetTransaction(gid);
    return reply.ok() ? reply->transaction().status() : "";
  }
  static absl::StatusOr<dtmd::admin::v1::GetTransactionReply> WaitStatus(
      const std::string& gid, const std::string& status) {
    return dtmd_->WaitForStatus(gid, {status}, kWait);
  }
};

// --- TCC -------------------------------------------------------------------

TEST_F(ModesTest, TccSubmitConfirmsInReverseRegistrationOrder) {
  const std::string gid = NewTestGid();
  ASSERT_TRUE(Prepare(Request(gid, "tcc")).ok());
  for (const char* id : {"01", "02", "03"}) {
    grpc::Status s = Register(TccBranch(gid, id, absl::StrCat("busi-", id)));
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  DtmRequest submit = Request(gid, "tcc");
  submit.mutable_transoptions()->set_waitresult(true);
  grpc::Status s = Submit(submit);
  EXPECT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(WaitStatus(gid, "succeed").ok());
  EXPECT_EQ(CallSequence(gid), (std::vector<std::string>{
                                   "03:confirm", "02:confirm", "01:confirm"}));
  std::vector<RecordedCall> calls = branches_->CallsFor(gid);
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].payload, "busi-03") << "the BusiPayload is the body";
  EXPECT_EQ(calls[0].trans_type, "tcc");
}

TEST_F(ModesTest, TccAbortCancelsInReverseOrderAndNeverConfirms) {
  const std::string gid = NewTestGid();
  ASSERT_TRUE(Prepare(Request(gid, "tcc")).ok());
  ASSERT_TRUE(Register(TccBranch(gid, "01")).ok());
  ASSERT_TRUE(Register(TccBranch(gid, "02")).ok());
  DtmRequest abort = Request(gid, "tcc");
  abort.set_rollbackreason("try failed");
  grpc::Status s = Abort(abort);
  EXPECT_TRUE(s.ok()) << s.error_message();
  auto done = WaitStatus(gid, "failed");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->transaction().rollback_reason(), "try failed");
  EXPECT_EQ(CallSequence(gid),
            (std::vector<std::string>{"02:cancel", "01:cancel"}));
  // Once aborting or ended, Submit is refused.
  EXPECT_EQ(Submit(Request(gid, "tcc")).error_code(),
            grpc::StatusCode::ABORTED);
}

TEST_F(ModesTest, TccPreparedPastItsTimeoutIsCancelledByTheScheduler) {
  const std::string gid = NewTestGid();
  DtmRequest prepare = Request(gid, "tcc");
  prepare.mutable_transoptions()->set_timeouttofail(2);
  ASSERT_TRUE(Prepare(prepare).ok());
  ASSERT_TRUE(Register(TccBranch(gid, "01")).ok());
  auto done = WaitStatus(gid, "failed");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->transaction().rollback_reason(), "Timeout after 2 seconds");
  EXPECT_EQ(CallSequence(gid), (std::vector<std::string>{"01:cancel"}));
  EXPECT_GE(branches_->CallsFor(gid)[0].time_ms,
            done->transaction().create_time_ms() + 2000);
}

TEST_F(ModesTest, TccConfirmIsRetriedUntilItSucceeds) {
  const std::string gid = NewTestGid();
  branches_->SetScript(Method("Confirm"), gid,
                       {{grpc::StatusCode::ABORTED, "no"},
                        {grpc::StatusCode::UNAVAILABLE, "down"}});
  ASSERT_TRUE(Prepare(Request(gid, "tcc")).ok());
  ASSERT_TRUE(Register(TccBranch(gid, "01")).ok());
  ASSERT_TRUE(Submit(Request(gid, "tcc")).ok());
  ASSERT_TRUE(WaitStatus(gid, "succeed").ok());
  EXPECT_EQ(branches_->CountCalls(gid, "confirm"), 3);
  EXPECT_EQ(branches_->CountCalls(gid, "cancel"), 0)
      << "a second phase never turns into the other one";
}

TEST_F(ModesTest, RegisterBranchErrors) {
  const std::string gid = NewTestGid();
  EXPECT_EQ(Register(TccBranch(gid, "01")).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Prepare(Request(gid, "tcc")).ok());
  ASSERT_TRUE(Register(TccBranch(gid, "01")).ok());
  EXPECT_TRUE(Register(TccBranch(gid, "01")).ok()) << "a client's retry";
  EXPECT_EQ(Register(TccBranch(gid, "01", "other payload")).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  DtmBranchRequest bad = TccBranch(gid, "02");
  (*bad.mutable_data())["confirm"] = "not a url";
  grpc::Status s = Register(bad);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("Data.confirm"), std::string::npos)
      << s.error_message();
  bad = TccBranch(gid, "");
  s = Register(bad);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("BranchID"), std::string::npos);
  bad = TccBranch(gid, "03");
  bad.set_transtype("saga");
  EXPECT_EQ(Register(bad).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  bad = TccBranch(gid, "03");
  bad.set_transtype("xa");
  EXPECT_EQ(Register(bad).error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << "the gid is a tcc";

  ASSERT_TRUE(Submit(Request(gid, "tcc")).ok());
  ASSERT_TRUE(WaitStatus(gid, "succeed").ok());
  EXPECT_EQ(Register(TccBranch(gid, "04")).error_code(),
            grpc::StatusCode::ABORTED);
  EXPECT_EQ(Abort(Request(gid, "tcc")).error_code(), grpc::StatusCode::ABORTED);
}

TEST_F(ModesTest, TccTakesNoSteps) {
  DtmRequest r = Request(NewTestGid(), "tcc");
  r.set_steps("[{\"action\":\"x\"}]");
  grpc::Status s = Prepare(r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("Steps"), std::string::npos);
}

TEST_F(ModesTest, BranchHeadersReachTheSecondPhase) {
  const std::string gid = NewTestGid();
  DtmRequest prepare = Request(gid, "tcc");
  (*prepare.mutable_transoptions()->mutable_branchheaders())["x-tenant"] = "t1";
  ASSERT_TRUE(Prepare(prepare).ok());
  ASSERT_TRUE(Register(TccBranch(gid, "01")).ok());
  ASSERT_TRUE(Submit(Request(gid, "tcc")).ok());
  ASSERT_TRUE(WaitStatus(gid, "succeed").ok());
  std::vector<RecordedCall> calls = branches_->CallsFor(gid);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].metadata["x-tenant"], "t1");
}

// --- XA --------------------------------------------------------------------

TEST_F(ModesTest, XaCommitsAndRollsBackInRegistrationOrder) {
  const std::string committed = NewTestGid();
  ASSERT_TRUE(Prepare(Request(committed, "xa")).ok());
  ASSERT_TRUE(Register(XaBranch(committed, "01")).ok());
  ASSERT_TRUE(Register(XaBranch(committed, "02")).ok());
  ASSERT_TRUE(Submit(Request(committed, "xa")).ok());
  ASSERT_TRUE(WaitStatus(committed, "succeed").ok());
  EXPECT_EQ(CallSequence(committed),
            (std::vector<std::string>{"01:commit", "02:commit"}));

  const std::string rolled_back = NewTestGid();
  ASSERT_TRUE(Prepare(Request(rolled_back, "xa")).ok());
  ASSERT_TRUE(Register(XaBranch(rolled_back, "01")).ok());
  ASSERT_TRUE(Register(XaBranch(rolled_back, "02")).ok());
  ASSERT_TRUE(Abort(Request(rolled_back, "xa")).ok());
  ASSERT_TRUE(WaitStatus(rolled_back, "failed").ok());
  EXPECT_EQ(CallSequence(rolled_back),
            (std::vector<std::string>{"01:rollback", "02:rollback"}));
}

// --- Two-phase messages ----------------------------------------------------

TEST_F(ModesTest, MsgSubmitDeliversActionsInOrder) {
  const std::string gid = NewTestGid();
  DtmRequest msg = Msg(gid, {Url("A1"), Url("A2")});
  msg.mutable_transoptions()->set_waitresult(true);
  grpc::Status s = Submit(msg);
  EXPECT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(WaitStatus(gid, "succeed").ok());
  EXPECT_EQ(CallSequence(gid),
            (std::vector<std::string>{"01:action", "02:action"}));
  EXPECT_EQ(branches_->CallsFor(gid)[1].payload, "payload-1");
}

TEST_F(ModesTest, MsgActionsAreRetriedAndNeverRolledBack) {
  const std::string gid = NewTestGid();
  branches_->SetScript(Method("A1"), gid,
                       {{grpc::StatusCode::ABORTED, "FAILURE"},
                        {grpc::StatusCode::UNAVAILABLE, "down"}});
  ASSERT_TRUE(Submit(Msg(gid, {Url("A1"), Url("A2")})).ok());
  ASSERT_TRUE(WaitStatus(gid, "succeed").ok());
  EXPECT_EQ(CallSequence(gid),
            (std::vector<std::string>{"01:action", "01:action", "01:action",
                                      "02:action"}));
}

TEST_F(ModesTest, MsgPreparedThenSubmittedUsesThePreparedSteps) {
  const std::string gid = NewTestGid();
  DtmRequest prepare = Msg(gid, {Url("A1")});
  prepare.set_queryprepared(Url("Query"));
  ASSERT_TRUE(Prepare(prepare).ok());
  EXPECT_TRUE(Prepare(prepare).ok()) << "idempotent while prepared";
  // The Submit's own steps are ignored: the prepared ones run.
  ASSERT_TRUE(Submit(Msg(gid, {Url("Other")})).ok());
  ASSERT_TRUE(WaitStatus(gid, "succeed").ok());
  EXPECT_EQ(CallSequence(gid), (std::vector<std::string>{"01:action"}));
  EXPECT_EQ(branches_->CallsFor(gid)[0].method, Method("A1"));
  EXPECT_EQ(Prepare(prepare).error_code(), grpc::StatusCode::ABORTED);
}

TEST_F(ModesTest, MsgPastItsTimeoutAsksQueryPrepared) {
  const std::string yes = NewTestGid();
  const std::string no = NewTestGid();
  const std::string later = NewTestGid();
  branches_->SetScript(Method("Query"), no,
                       {{grpc::StatusCode::ABORTED, "FAILURE: rolled back"}});
  branches_->SetScript(Method("Query"), later,
                       {{grpc::StatusCode::FAILED_PRECONDITION, "not yet"},
                        {grpc::StatusCode::ABORTED, "ONGOING"}});
  for (const std::string& gid : {yes, no, later}) {
    DtmRequest prepare = Msg(gid, {Url("A1")});
    prepare.set_queryprepared(Url("Query"));
    prepare.mutable_transoptions()->set_timeouttofail(1);
    ASSERT_TRUE(Prepare(prepare).ok());
  }
  ASSERT_TRUE(WaitStatus(yes, "succeed").ok());
  EXPECT_EQ(CallSequence(yes),
            (std::vector<std::string>{"00:msg", "01:action"}));
  auto failed = WaitStatus(no, "failed");
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(CallSequence(no), (std::vector<std::string>{"00:msg"}))
      << "no action for a message whose QueryPrepared said ABORTED";
  EXPECT_NE(failed->transaction().rollback_reason().find("rolled back"),
            std::string::npos);
  ASSERT_TRUE(WaitStatus(later, "succeed").ok());
  EXPECT_EQ(
      CallSequence(later),
      (std::vector<std::string>{"00:msg", "00:msg", "00:msg", "01:action"}));
}

TEST_F(ModesTest, MsgDelayPostponesTheFirstDelivery) {
  const std::string gid = NewTestGid();
  DtmRequest msg = Msg(gid, {Url("A1")});
  msg.set_customeddata("{\"delay\":2}");
  ASSERT_TRUE(Submit(msg).ok());
  auto done = WaitStatus(gid, "succeed");
  ASSERT_TRUE(done.ok()) << done.status();
  std::vector<RecordedCall> calls = branches_->CallsFor(gid);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_GE(calls[0].time_ms, done->transaction().create_time_ms() + 2000);
}

TEST_F(ModesTest, MsgAbortFailsAPreparedMessageOnly) {
  const std::string gid = NewTestGid();
  DtmRequest prepare = Msg(gid, {Url("A1")});
  prepare.set_queryprepared(Url("Query"));
  ASSERT_TRUE(Prepare(prepare).ok());
  ASSERT_TRUE(Abort(Request(gid, "msg")).ok());
  EXPECT_EQ(Status(gid), "failed");
  EXPECT_EQ(Submit(Msg(gid, {Url("A1")})).error_code(),
            grpc::StatusCode::ABORTED);
  const std::string sent = NewTestGid();
  ASSERT_TRUE(Submit(Msg(sent, {Url("A1")})).ok());
  EXPECT_EQ(Abort(Request(sent, "msg")).error_code(),
            grpc::StatusCode::ABORTED);
  EXPECT_TRUE(branches_->CallsFor(gid).empty());
}

TEST_F(ModesTest, MsgBadInputNamesTheField) {
  DtmRequest msg = Msg(NewTestGid(), {Url("A1")});
  msg.set_customeddata("{\"delay\":-1}");
  grpc::Status s = Submit(msg);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("CustomedData.delay"), std::string::npos);
  msg = Msg(NewTestGid(), {Url("A1")});
  msg.clear_binpayloads();
  s = Submit(msg);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("BinPayloads"), std::string::npos);
  msg = Msg(NewTestGid(), {Url("A1")});
  msg.set_queryprepared("nowhere");
  s = Prepare(msg);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("QueryPrepared"), std::string::npos);
}

// --- Topics ----------------------------------------------------------------

TEST_F(ModesTest, MsgTopicStepFansOutToEverySubscriber) {
  const std::string topic = absl::StrCat("orders-", NewTestGid());
  ASSERT_TRUE(Topic(&dtmgimp::Dtm::Stub::Subscribe, topic, Url("S1")).ok());
  ASSERT_TRUE(Topic(&dtmgimp::Dtm::Stub::Subscribe, topic, Url("S2")).ok());
  EXPECT_EQ(
      Topic(&dtmgimp::Dtm::Stub::Subscribe, topic, Url("S2")).error_code(),
      grpc::StatusCode::ALREADY_EXISTS);
  const std::string gid = NewTestGid();
  ASSERT_TRUE(
      Submit(Msg(gid, {absl::StrCat("topic://", topic), Url("A2")})).ok());
  ASSERT_TRUE(WaitStatus(gid, "succeed").ok());
  EXPECT_EQ(
      CallSequence(gid),
      (std::vector<std::string>{"01-01:action", "01-02:action", "02:action"}));
  EXPECT_EQ(branches_->CallsFor(gid)[1].method, Method("S2"));

  EXPECT_EQ(Submit(Msg(NewTestGid(), {"topic://no-such-topic"})).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Topic(&dtmgimp::Dtm::Stub::Unsubscribe, topic, Url("S1")).ok());
  const std::string one = NewTestGid();
  ASSERT_TRUE(Submit(Msg(one, {absl::StrCat("topic://", topic)})).ok());
  ASSERT_TRUE(WaitStatus(one, "succeed").ok());
  EXPECT_EQ(CallSequence(one), (std::vector<std::string>{"01:action"}));
  ASSERT_TRUE(Topic(&dtmgimp::Dtm::Stub::DeleteTopic, topic, "").ok());
  EXPECT_EQ(
      Submit(Msg(NewTestGid(), {absl::StrCat("topic://", topic)})).error_code(),
      grpc::StatusCode::NOT_FOUND);
}

// --- Workflow --------------------------------------------------------------

DtmRequest Workflow(const std::string& gid, const std::string& resume_url) {
  DtmRequest r;
  r.set_gid(gid);
  r.set_transtype("workflow");
  r.set_steps("null");
  r.set_queryprepared(resume_url);
  // {"name":"wf_saga","data":base64("input")}
  r.set_customeddata("{\"name\":\"wf_saga\",\"data\":\"aW5wdXQ=\"}");
  return r;
}

DtmBranchRequest Step(const std::string& gid, const std::string& id,
                      const std::string& op, const std::string& status,
                      const std::string& result) {
  DtmBranchRequest r;
  r.set_gid(gid);
  r.set_transtype("workflow");
  r.set_branchid(id);
  r.set_busipayload(result);
  (*r.mutable_data())["op"] = op;
  (*r.mutable_data())["status"] = status;
  return r;
}

TEST_F(ModesTest, WorkflowRecordsProgressAndEndsBySubmit) {
  const std::string gid = NewTestGid();
  dtmgimp::DtmProgressesReply reply;
  ASSERT_TRUE(PrepareWorkflow(Workflow(gid, Url("Resume")), &reply).ok());
  EXPECT_EQ(reply.transaction().status(), "prepared");
  EXPECT_EQ(reply.progresses_size(), 0);
  ASSERT_TRUE(Register(Step(gid, "01", "action", "succeed", "r1")).ok());
  ASSERT_TRUE(Register(Step(gid, "02", "action", "failed", "boom")).ok());
  EXPECT_EQ(Register(Step(gid, "02", "action", "succeed", "x")).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  // A second run (another process, after a crash) sees the progress.
  reply.Clear();
  ASSERT_TRUE(PrepareWorkflow(Workflow(gid, Url("Resume")), &reply).ok());
  ASSERT_EQ(reply.progresses_size(), 2);
  EXPECT_EQ(reply.progresses(0).branchid(), "01");
  EXPECT_EQ(reply.progresses(0).op(), "action");
  EXPECT_EQ(reply.progresses(0).status(), "succeed");
  EXPECT_EQ(reply.progresses(0).bindata(), "r1");
  EXPECT_EQ(reply.progresses(1).bindata(), "boom");

  DtmRequest submit = Request(gid, "workflow");
  (*submit.mutable_reqextra())["status"] = "succeed";
  (*submit.mutable_reqextra())["result"] = "b2s=";
  grpc::Status s = Submit(submit);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Status(gid), "succeed");
  EXPECT_TRUE(Submit(submit).ok()) << "a client's retry";
  reply.Clear();
  ASSERT_TRUE(PrepareWorkflow(Workflow(gid, Url("Resume")), &reply).ok());
  EXPECT_EQ(reply.transaction().status(), "succeed");
  EXPECT_EQ(reply.transaction().result(), "b2s=");
  EXPECT_EQ(Register(Step(gid, "03", "action", "succeed", "")).error_code(),
            grpc::StatusCode::ABORTED);
  EXPECT_TRUE(branches_->CallsFor(gid).empty())
      << "recorded steps are never called";
}

TEST_F(ModesTest, UnfinishedWorkflowIsResumedEveryInterval) {
  const std::string gid = NewTestGid();
  dtmgimp::DtmProgressesReply reply;
  ASSERT_TRUE(PrepareWorkflow(Workflow(gid, Url("Resume")), &reply).ok());
  branches_->SetScript(Method("Resume"), gid,
                       {{grpc::StatusCode::UNAVAILABLE, "client gone"}});
  ASSERT_TRUE(branches_->WaitForCalls(
      [&](const std::vector<RecordedCall>& calls) {
        int n = 0;
        for (const RecordedCall& c : calls) n += c.gid == gid;
        return n >= 3;
      },
      kWait));
  std::vector<RecordedCall> calls = branches_->CallsFor(gid);
  EXPECT_EQ(calls[0].branch_id, "00");
  EXPECT_EQ(calls[0].op, "wf_saga");
  workflow::WorkflowData data;
  ASSERT_TRUE(data.ParseFromString(calls[0].payload));
  EXPECT_EQ(data.data(), "input");
  // No backoff: the interval stays the retry interval (1 s here).
  EXPECT_LT(calls[2].time_ms - calls[1].time_ms, 2500);

  DtmRequest submit = Request(gid, "workflow");
  (*submit.mutable_reqextra())["status"] = "failed";
  (*submit.mutable_reqextra())["rollback_reason"] = "gave up";
  ASSERT_TRUE(Submit(submit).ok());
  auto done = dtmd_->GetTransaction(gid);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->transaction().status(), "failed");
  EXPECT_EQ(done->transaction().rollback_reason(), "gave up");
}

TEST_F(ModesTest, WorkflowBadInputNamesTheField) {
  dtmgimp::DtmProgressesReply reply;
  DtmRequest r = Workflow(NewTestGid(), Url("Resume"));
  r.set_customeddata("{\"data\":\"aW5wdXQ=\"}");
  grpc::Status s = PrepareWorkflow(r, &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("CustomedData.name"), std::string::npos);
  const std::string gid = NewTestGid();
  ASSERT_TRUE(PrepareWorkflow(Workflow(gid, Url("Resume")), &reply).ok());
  DtmRequest submit = Request(gid, "workflow");
  (*submit.mutable_reqextra())["status"] = "done";
  s = Submit(submit);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("ReqExtra.status"), std::string::npos);
  s = Register(Step(gid, "01", "action", "maybe", ""));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("Data.status"), std::string::npos);
  DtmRequest unknown = Request(NewTestGid(), "workflow");
  (*unknown.mutable_reqextra())["status"] = "succeed";
  EXPECT_EQ(Submit(unknown).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace dtmd::testing
