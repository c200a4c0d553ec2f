// HTTP branches (http:// URLs) in transactions submitted over gRPC, against a
// real dtmd, a scripted gRPC branch server and a loopback HTTP branch
// server: sagas mixing the two, TCC confirm/cancel, msg QueryPrepared and a
// workflow's resume call over HTTP.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dtmgimp.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/http_branch_server.h"
#include "tests/integration/saga_fixture.h"
#include "workflow.pb.h"

namespace dtmd::testing {
namespace {

using ::dtmgimp::DtmBranchRequest;
using ::dtmgimp::DtmRequest;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(20);

// The reply for each path, by the gid in the query: `failing` gids get
// `status` on `path`, everything else 200 SUCCESS.
class HttpBranchesTest : public SagaFixture {
 protected:
  static void SetUpTestSuite() {
    http_ = new HttpBranchServer();
    ASSERT_TRUE(http_->Start().ok());
    StartSuite({});
  }
  static void TearDownTestSuite() {
    SagaFixture::TearDownTestSuite();
    delete http_;
    http_ = nullptr;
  }
  void SetUp() override { http_->SetHandler(nullptr); }

  // Answers `path` for `gid` with the replies in order, then the last one
  // again; other requests get 200 SUCCESS.
  static void Script(const std::string& gid, const std::string& path,
                     std::vector<HttpBranchServer::Reply> replies) {
    auto count = std::make_shared<std::atomic<size_t>>(0);
    http_->SetHandler([=](const HttpBranchServer::Request& r) {
      auto it = r.query.find("gid");
      if (r.path != path || it == r.query.end() || it->second != gid) {
        return HttpBranchServer::Reply{};
      }
      const size_t i = std::min(count->fetch_add(1), replies.size() - 1);
      return replies[i];
    });
  }
  // "path branch_id:op" of each HTTP request for gid, in arrival order.
  static std::vector<std::string> HttpSequence(const std::string& gid) {
    std::vector<std::string> out;
    for (const HttpBranchServer::Request& r : http_->RequestsFor(gid)) {
      out.push_back(absl::StrCat(r.method, " ", r.path, " ",
                                 r.query.at("branch_id"), ":",
                                 r.query.at("op")));
    }
    return out;
  }
  static grpc::Status Rpc(grpc::Status (dtmgimp::Dtm::Stub::*method)(
                              grpc::ClientContext*, const DtmRequest&,
                              google::protobuf::Empty*),
                          const DtmRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    google::protobuf::Empty reply;
    return (dtmd_->dtm()->*method)(&context, request, &reply);
  }
  static DtmRequest Request(const std::string& gid, const std::string& type) {
    DtmRequest r;
    r.set_gid(gid);
    r.set_transtype(type);
    r.set_steps("null");
    return r;
  }
  static std::string Status(const std::string& gid) {
    auto reply = dtmd_->GetTransaction(gid);
    return reply.ok() ? reply->transaction().status() : "";
  }

  static HttpBranchServer* http_;
};

HttpBranchServer* HttpBranchesTest::http_ = nullptr;

TEST_F(HttpBranchesTest, SagaWithAGrpcAndAnHttpBranchSucceeds) {
  const std::string gid = NewTestGid();
  grpc::Status s =
      NewSaga(gid)
          .Add(Url("TransOut"), Url("TransOutRevert"), "grpc-in")
          .Add(http_->Url("/api/TransIn"), http_->Url("/api/TransInRevert"),
               R"({"amount":30})")
          .AddBranchHeader("x-tenant", "t-1")
          .SetWaitResult(true)
          .Submit();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Status(gid), "succeed");
  EXPECT_EQ(CallSequence(gid), std::vector<std::string>{"01:action"});
  std::vector<HttpBranchServer::Request> requests = http_->RequestsFor(gid);
  ASSERT_EQ(requests.size(), 1u);
  const HttpBranchServer::Request& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/api/TransIn");
  EXPECT_EQ(r.body, R"({"amount":30})");
  EXPECT_EQ(r.query.at("trans_type"), "saga");
  EXPECT_EQ(r.query.at("branch_id"), "02");
  EXPECT_EQ(r.query.at("op"), "action");
  EXPECT_EQ(r.headers.at("x-tenant"), "t-1") << "BranchHeaders as headers";
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
}

TEST_F(HttpBranchesTest, HttpFailureRollsBackBothKinds) {
  const std::string gid = NewTestGid();
  Script(gid, "/api/TransIn",
         {{409, R"({"dtm_result":"FAILURE","message":"no funds"})"}});
  grpc::Status s =
      NewSaga(gid)
          .Add(Url("TransOut"), Url("TransOutRevert"), "grpc-in")
          .Add(http_->Url("/api/TransIn"), http_->Url("/api/TransInRevert"), "")
          .SetWaitResult(true)
          .Submit();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
  auto failed = dtmd_->WaitForStatus(gid, {"failed"}, kWait);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_THAT(failed->transaction().rollback_reason(),
              HasSubstr("HTTP 409: {\"dtm_result\":\"FAILURE\""));
  EXPECT_EQ(CallSequence(gid),
            (std::vector<std::string>{"01:action", "01:compensate"}));
  EXPECT_EQ(HttpSequence(gid),
            (std::vector<std::string>{"GET /api/TransIn 02:action",
                                      "GET /api/TransInRevert 02:compensate"}))
      << "an empty payload is a GET";
}

TEST_F(HttpBranchesTest, UnknownAnswersAreRetriedAndOngoingWaits) {
  const std::string gid = NewTestGid();
  Script(gid, "/api/TransIn",
         {{500, "internal"},
          {425, ""},
          {200, R"({"dtm_result":"ONGOING"})"},
          {200, R"({"dtm_result":"SUCCESS"})"}});
  grpc::Status s =
      NewSaga(gid).Add(http_->Url("/api/TransIn"), "", "{}").Submit();
  ASSERT_TRUE(s.ok()) << s.error_message();
  auto done = dtmd_->WaitForStatus(gid, {"succeed"}, kWait);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(http_->RequestsFor(gid).size(), 4u);
  const dtmd::admin::v1::Branch* b = FindBranch(*done, "01", "action");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->call_count(), 4);
}

TEST_F(HttpBranchesTest, TccConfirmsAndCancelsOverHttp) {
  for (const bool commit : {true, false}) {
    const std::string gid = NewTestGid();
    ASSERT_TRUE(Rpc(&dtmgimp::Dtm::Stub::Prepare, Request(gid, "tcc")).ok());
    for (const char* id : {"01", "02"}) {
      DtmBranchRequest r;
      r.set_gid(gid);
      r.set_transtype("tcc");
      r.set_branchid(id);
      r.set_busipayload(absl::StrCat("{\"id\":\"", id, "\"}"));
      (*r.mutable_data())["confirm"] = http_->Url("/tcc/confirm");
      (*r.mutable_data())["cancel"] = http_->Url("/tcc/cancel");
      grpc::ClientContext context;
      google::protobuf::Empty empty;
      ASSERT_TRUE(dtmd_->dtm()->RegisterBranch(&context, r, &empty).ok());
    }
    DtmRequest end = Request(gid, "tcc");
    end.mutable_transoptions()->set_waitresult(true);
    grpc::Status s = Rpc(
        commit ? &dtmgimp::Dtm::Stub::Submit : &dtmgimp::Dtm::Stub::Abort, end);
    EXPECT_TRUE(s.ok()) << s.error_message();
    ASSERT_TRUE(
        dtmd_->WaitForStatus(gid, {commit ? "succeed" : "failed"}, kWait).ok());
    const std::string op = commit ? "confirm" : "cancel";
    EXPECT_EQ(
        HttpSequence(gid),
        (std::vector<std::string>{absl::StrCat("POST /tcc/", op, " 02:", op),
                                  absl::StrCat("POST /tcc/", op, " 01:", op)}));
    EXPECT_EQ(http_->RequestsFor(gid)[0].body, R"({"id":"02"})");
  }
}

TEST_F(HttpBranchesTest, MsgAsksQueryPreparedOverHttp) {
  struct Case {
    int status;
    std::string body;
    std::string final_status;
  };
  for (const Case& c : std::vector<Case>{
           {200, R"({"dtm_result":"SUCCESS"})", "succeed"},
           {409, R"({"dtm_result":"FAILURE"})", "failed"},
       }) {
    const std::string gid = NewTestGid();
    Script(gid, "/query", {{425, ""}, {c.status, c.body}});
    DtmRequest prepare = Request(gid, "msg");
    prepare.set_steps(
        absl::StrCat(R"([{"action":")", http_->Url("/deliver"), R"("}])"));
    prepare.add_binpayloads(R"({"n":1})");
    prepare.set_queryprepared(http_->Url("/query"));
    prepare.mutable_transoptions()->set_timeouttofail(1);
    ASSERT_TRUE(Rpc(&dtmgimp::Dtm::Stub::Prepare, prepare).ok());
    auto done = dtmd_->WaitForStatus(gid, {c.final_status}, kWait);
    ASSERT_TRUE(done.ok()) << done.status();
    std::vector<std::string> expected = {"GET /query 00:msg",
                                         "GET /query 00:msg"};
    if (c.final_status == "succeed") {
      expected.push_back("POST /deliver 01:action");
    }
    EXPECT_EQ(HttpSequence(gid), expected) << "425 means ask again";
  }
}

TEST_F(HttpBranchesTest, WorkflowIsResumedOverHttp) {
  const std::string gid = NewTestGid();
  Script(gid, "/resume", {{503, "busy"}});
  DtmRequest r = Request(gid, "workflow");
  r.set_queryprepared(http_->Url("/resume"));
  r.set_customeddata(R"({"name":"wf_http","data":"aW5wdXQ="})");
  grpc::ClientContext context;
  dtmgimp::DtmProgressesReply reply;
  ASSERT_TRUE(dtmd_->dtm()->PrepareWorkflow(&context, r, &reply).ok());
  auto called = dtmd_->WaitFor(
      gid,
      [&](const dtmd::admin::v1::GetTransactionReply&) {
        return http_->RequestsFor(gid).size() >= 2;
      },
      "two resume calls", kWait);
  ASSERT_TRUE(called.ok()) << called.status();
  std::vector<HttpBranchServer::Request> requests = http_->RequestsFor(gid);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].query.at("branch_id"), "00");
  EXPECT_EQ(requests[0].query.at("op"), "wf_http");
  // Submitted over gRPC: the body is the WorkflowData message, as DTM sends.
  workflow::WorkflowData data;
  ASSERT_TRUE(data.ParseFromString(requests[0].body));
  EXPECT_EQ(data.data(), "input");
  DtmRequest submit = Request(gid, "workflow");
  (*submit.mutable_reqextra())["status"] = "succeed";
  ASSERT_TRUE(Rpc(&dtmgimp::Dtm::Stub::Submit, submit).ok());
}

// Not a benchmark (no assertion on time): prints the median and p99 latency
// of a WaitResult saga with two gRPC branches and with two HTTP branches on
// loopback, sequentially, so that a reader sees what HTTP costs here.
TEST_F(HttpBranchesTest, PrintsSagaLatencyOverGrpcAndHttp) {
  constexpr int kSagas = 200;
  for (const bool http : {false, true}) {
    std::vector<double> ms;
    for (int i = 0; i < kSagas; ++i) {
      const std::string gid = NewTestGid();
      auto url = [&](const std::string& name) {
        return http ? http_->Url("/" + name) : Url(name);
      };
      const absl::Time start = absl::Now();
      grpc::Status s = NewSaga(gid)
                           .Add(url("A"), url("ARevert"), R"({"a":1})")
                           .Add(url("B"), url("BRevert"), R"({"b":2})")
                           .SetWaitResult(true)
                           .Submit();
      ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
    std::sort(ms.begin(), ms.end());
    std::cout << (http ? "HTTP" : "gRPC") << " branches: " << kSagas
              << " sequential sagas (2 branches, WaitResult), median "
              << ms[kSagas / 2] << " ms, p99 " << ms[kSagas * 99 / 100] << " ms"
              << std::endl;
  }
}

}  // namespace
}  // namespace dtmd::testing
