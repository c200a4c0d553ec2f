// DTM's HTTP API (server/http_api.h) against a real dtmd on loopback: every
// route under /api/dtmsvr/ with its success answer and each error code, bad
// input (bad JSON, members of the wrong type, an over-size body), one
// transaction seen through both APIs (an HTTP saga queried over gRPC and a
// gRPC saga queried and resubmitted over HTTP), and bearer tokens. Branches
// are gRPC branch servers: the HTTP API and the branch protocol are
// independent.
#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/empty.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/branch_server.h"
#include "tests/integration/dtmd_process.h"

namespace dtmd::testing {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

struct HttpReply {
  long code = 0;  // 0: no answer.
  std::string body;
  Json json;  // null unless the body is JSON.
};

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

HttpReply Http(const std::string& method, const std::string& url,
               const std::string& body = "",
               const std::vector<std::string>& headers = {},
               long timeout_ms = 30000) {
  HttpReply reply;
  CURL* curl = curl_easy_init();
  curl_slist* list = nullptr;
  for (const std::string& h : headers)
    list = curl_slist_append(list, h.c_str());
  list = curl_slist_append(list, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.code);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  reply.json = Json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  if (reply.json.is_discarded()) reply.json = nullptr;
  return reply;
}

std::string Message(const HttpReply& r) {
  return r.json.is_object() && r.json.contains("message")
             ? r.json["message"].get<std::string>()
             : r.body;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.flush()) << "cannot write " << path;
}

class HttpApiTest : public ::testing::Test {
 protected:
  void SetUp() override { StartDtmd({}); }

  void StartDtmd(std::vector<std::string> flags) {
    flags.push_back("--http_port=-1");
    dtmd_ = std::make_unique<DtmdProcess>(MakeTempDir("http_api"), flags);
    ASSERT_TRUE(dtmd_->Start().ok());
    ASSERT_GT(dtmd_->http_port(), 0);
    base_ =
        absl::StrCat("http://127.0.0.1:", dtmd_->http_port(), "/api/dtmsvr/");
    ASSERT_TRUE(branches_.Start().ok());
  }

  HttpReply Get(const std::string& route,
                const std::vector<std::string>& headers = {}) {
    return Http("GET", base_ + route, "", headers);
  }
  HttpReply Post(const std::string& route, const Json& body,
                 const std::vector<std::string>& headers = {}) {
    return Http("POST", base_ + route, body.dump(), headers);
  }
  HttpReply PostRaw(const std::string& route, const std::string& body) {
    return Http("POST", base_ + route, body);
  }

  // A two-step saga with gRPC branches of branches_.
  Json Saga(const std::string& gid, bool wait_result = true) {
    return {
        {"gid", gid},
        {"trans_type", "saga"},
        {"steps",
         Json::array(
             {{{"action", branches_.Url("/busi.Busi/TransOut")},
               {"compensate", branches_.Url("/busi.Busi/TransOutRevert")}},
              {{"action", branches_.Url("/busi.Busi/TransIn")},
               {"compensate", branches_.Url("/busi.Busi/TransInRevert")}}})},
        {"payloads", Json::array({"{\"amount\":30}", "{\"amount\":31}"})},
        {"wait_result", wait_result},
        {"custom_data", "{\"concurrent\":false}"}};
  }

  std::string Status(const std::string& gid) {
    absl::StatusOr<admin::v1::GetTransactionReply> t =
        dtmd_->GetTransaction(gid);
    return t.ok() ? t->transaction().status() : t.status().ToString();
  }

  std::unique_ptr<DtmdProcess> dtmd_;
  ScriptedBranchServer branches_;
  std::string base_;
};

TEST_F(HttpApiTest, VersionAndNewGid) {
  HttpReply v = Get("version");
  EXPECT_EQ(v.code, 200);
  EXPECT_FALSE(v.json["version"].get<std::string>().empty()) << v.body;
  HttpReply g = Get("newGid");
  ASSERT_EQ(g.code, 200) << g.body;
  EXPECT_EQ(g.json["dtm_result"], "SUCCESS");
  EXPECT_EQ(g.json["gid"].get<std::string>().size(), 22u);
  EXPECT_NE(Get("newGid").json["gid"], g.json["gid"]);
}

TEST_F(HttpApiTest, HttpSagaIsSeenOverGrpc) {
  HttpReply r = Post("submit", Saga("http-saga-1"));
  ASSERT_EQ(r.code, 200) << r.body;
  EXPECT_EQ(r.json, Json({{"dtm_result", "SUCCESS"}}));
  // The payload strings are the branch calls' bodies.
  std::vector<RecordedCall> calls = branches_.CallsFor("http-saga-1");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].payload, "{\"amount\":30}");
  EXPECT_EQ(calls[1].payload, "{\"amount\":31}");
  EXPECT_EQ(calls[0].op, "action");
  absl::StatusOr<admin::v1::GetTransactionReply> t =
      dtmd_->GetTransaction("http-saga-1");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->transaction().status(), "succeed");
  EXPECT_EQ(t->transaction().trans_type(), "saga");
  EXPECT_EQ(t->branches_size(), 4);

  // And the same over HTTP's query.
  HttpReply q = Get("query?gid=http-saga-1");
  ASSERT_EQ(q.code, 200) << q.body;
  EXPECT_EQ(q.json["transaction"]["gid"], "http-saga-1");
  EXPECT_EQ(q.json["transaction"]["status"], "succeed");
  EXPECT_EQ(q.json["transaction"]["trans_type"], "saga");
  ASSERT_EQ(q.json["branches"].size(), 4u);
  EXPECT_EQ(q.json["branches"][0]["op"], "compensate");
  EXPECT_EQ(q.json["branches"][0]["status"], "prepared");
  const Json& action = q.json["branches"][1];
  EXPECT_EQ(action["op"], "action");
  EXPECT_EQ(action["branch_id"], "01");
  EXPECT_EQ(action["status"], "succeed");
  EXPECT_EQ(action["bin_data"], absl::Base64Escape("{\"amount\":30}"));

  // A gRPC Submit of the same gid is the same transaction: already ended.
  dtmgimp::DtmRequest again;
  again.set_gid("http-saga-1");
  again.set_transtype("saga");
  again.set_steps("[]");
  grpc::ClientContext context;
  google::protobuf::Empty empty;
  grpc::Status s = dtmd_->dtm()->Submit(&context, again, &empty);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
}

TEST_F(HttpApiTest, GrpcSagaIsSeenOverHttp) {
  dtmgimp::DtmRequest request;
  request.set_gid("grpc-saga-1");
  request.set_transtype("saga");
  request.set_steps(
      Json::array({{{"action", branches_.Url("/busi.Busi/TransIn")},
                    {"compensate", branches_.Url("/busi.Busi/TransInRevert")}}})
          .dump());
  request.add_binpayloads("p");
  request.mutable_transoptions()->set_waitresult(true);
  grpc::ClientContext context;
  google::protobuf::Empty empty;
  ASSERT_TRUE(dtmd_->dtm()->Submit(&context, request, &empty).ok());
  HttpReply q = Get("query?gid=grpc-saga-1");
  ASSERT_EQ(q.code, 200) << q.body;
  EXPECT_EQ(q.json["transaction"]["status"], "succeed");
  EXPECT_EQ(q.json["branches"].size(), 2u);
  // An HTTP Submit of it: the transaction already ended, a FAILURE (409).
  HttpReply r = Post("submit", Saga("grpc-saga-1"));
  EXPECT_EQ(r.code, 409) << r.body;
  EXPECT_EQ(r.json["dtm_result"], "FAILURE");
  EXPECT_FALSE(Message(r).empty());
}

TEST_F(HttpApiTest, FailedSagaIs409AndOngoingIs425) {
  branches_.SetDefault("/busi.Busi/TransIn",
                       Answer{grpc::StatusCode::ABORTED, "no money"});
  HttpReply failed = Post("submit", Saga("http-saga-fail"));
  EXPECT_EQ(failed.code, 409) << failed.body;
  EXPECT_EQ(failed.json["dtm_result"], "FAILURE");
  EXPECT_EQ(Status("http-saga-fail"), "failed");
  HttpReply q = Get("query?gid=http-saga-fail");
  EXPECT_EQ(q.json["transaction"]["status"], "failed");
  EXPECT_TRUE(q.json["transaction"].contains("rollback_time")) << q.body;

  branches_.SetDefault("/busi.Busi/TransIn",
                       Answer{grpc::StatusCode::UNAVAILABLE, "down"});
  Json saga = Saga("http-saga-ongoing");
  saga["retry_interval"] = 3600;
  HttpReply ongoing = Post("submit", saga);
  EXPECT_EQ(ongoing.code, 425) << ongoing.body;
  EXPECT_EQ(ongoing.json["dtm_result"], "ONGOING");
  EXPECT_EQ(Status("http-saga-ongoing"), "submitted");

  // resetCronTime: its next try is an hour away; now it is retried.
  HttpReply reset = Get("resetCronTime?timeout=60&limit=10");
  ASSERT_EQ(reset.code, 200) << reset.body;
  EXPECT_EQ(reset.json["succeed_count"], 1);
  EXPECT_EQ(reset.json["has_remaining"], false);
  EXPECT_EQ(Get("resetCronTime?limit=x").code, 400);

  // resetNextCronTime: one transaction; 404 unknown; 409 a final one.
  branches_.SetDefault("/busi.Busi/TransIn", Answer{});
  HttpReply next = Post("resetNextCronTime", {{"gid", "http-saga-ongoing"}});
  EXPECT_EQ(next.code, 200) << next.body;
  absl::StatusOr<admin::v1::GetTransactionReply> done =
      dtmd_->WaitForFinal("http-saga-ongoing", absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->transaction().status(), "succeed");
  EXPECT_EQ(Post("resetNextCronTime", {{"gid", "nope"}}).code, 404);
  EXPECT_EQ(Post("resetNextCronTime", {{"gid", "http-saga-ongoing"}}).code,
            409);
}

TEST_F(HttpApiTest, ForceStop) {
  branches_.SetDefault("/busi.Busi/TransIn",
                       Answer{grpc::StatusCode::UNAVAILABLE, "down"});
  Json saga = Saga("http-stop", /*wait_result=*/false);
  saga["retry_interval"] = 3600;
  ASSERT_EQ(Post("submit", saga).code, 200);
  ASSERT_TRUE(branches_.WaitForCalls(2, absl::Seconds(10)));
  HttpReply stop = Post("forceStop", {{"gid", "http-stop"}});
  EXPECT_EQ(stop.code, 200) << stop.body;
  EXPECT_EQ(Status("http-stop"), "failed");
  HttpReply again = Post("forceStop", {{"gid", "http-stop"}});
  EXPECT_EQ(again.code, 409) << again.body;
  EXPECT_EQ(again.json["dtm_result"], "FAILURE");
  EXPECT_EQ(Post("forceStop", {{"gid", "nope"}}).code, 404);
  EXPECT_EQ(Post("forceStop", {{"gid", ""}}).code, 400);
}

TEST_F(HttpApiTest, TccOverHttpWithRegisterBranchAndAliases) {
  const Json head = {{"gid", "http-tcc-1"}, {"trans_type", "tcc"}};
  HttpReply prepared = Post("prepare", head);
  ASSERT_EQ(prepared.code, 200) << prepared.body;
  EXPECT_EQ(Status("http-tcc-1"), "prepared");
  Json branch = {{"gid", "http-tcc-1"},
                 {"trans_type", "tcc"},
                 {"branch_id", "01"},
                 {"confirm", branches_.Url("/busi.Busi/Confirm")},
                 {"cancel", branches_.Url("/busi.Busi/Cancel")},
                 {"data", "{\"amount\":5}"}};
  EXPECT_EQ(Post("registerBranch", branch).code, 200);
  branch["branch_id"] = "02";
  EXPECT_EQ(Post("registerTccBranch", branch).code, 200);
  HttpReply submitted = Post("submit", head);
  ASSERT_EQ(submitted.code, 200) << submitted.body;
  absl::StatusOr<admin::v1::GetTransactionReply> done =
      dtmd_->WaitForFinal("http-tcc-1", absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->transaction().status(), "succeed");
  EXPECT_EQ(branches_.CountCalls("http-tcc-1", "confirm"), 2);
  std::vector<RecordedCall> calls = branches_.CallsFor("http-tcc-1");
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls[0].payload, "{\"amount\":5}");

  // Registering on an ended (or unknown) gid: DTM's FAILURE.
  HttpReply late = Post("registerBranch", branch);
  EXPECT_EQ(late.code, 409) << late.body;
  branch["gid"] = "nope";
  EXPECT_EQ(Post("registerBranch", branch).code, 409);
  // Prepare of a gid that is not prepared any more.
  EXPECT_EQ(Post("prepare", head).code, 409);
  // Bad branch requests.
  HttpReply typed = Post("registerBranch", {{"gid", "x"}, {"branch_id", 1}});
  EXPECT_EQ(typed.code, 400);
  EXPECT_THAT(Message(typed), HasSubstr("branch_id"));
  EXPECT_EQ(Post("registerBranch", {{"gid", "x"}, {"trans_type", "saga"}}).code,
            400);

  // Abort of a prepared tcc calls its cancels.
  const Json head2 = {{"gid", "http-tcc-2"}, {"trans_type", "tcc"}};
  ASSERT_EQ(Post("prepare", head2).code, 200);
  branch["gid"] = "http-tcc-2";
  ASSERT_EQ(Post("registerBranch", branch).code, 200);
  HttpReply aborted = Post("abort", head2);
  EXPECT_EQ(aborted.code, 200) << aborted.body;
  done = dtmd_->WaitForFinal("http-tcc-2", absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->transaction().status(), "failed");
  EXPECT_EQ(branches_.CountCalls("http-tcc-2", "cancel"), 1);
  // Abort naming another trans type than the stored one.
  EXPECT_EQ(Post("abort", {{"gid", "http-tcc-1"}, {"trans_type", "saga"}}).code,
            400);
}

TEST_F(HttpApiTest, XaRegistersThroughItsOldAlias) {
  const Json head = {{"gid", "http-xa-1"}, {"trans_type", "xa"}};
  ASSERT_EQ(Post("prepare", head).code, 200);
  HttpReply r =
      Post("registerXaBranch", {{"gid", "http-xa-1"},
                                {"trans_type", "xa"},
                                {"branch_id", "01"},
                                {"url", branches_.Url("/busi.Busi/Xa")}});
  EXPECT_EQ(r.code, 200) << r.body;
  ASSERT_EQ(Post("submit", head).code, 200);
  absl::StatusOr<admin::v1::GetTransactionReply> done =
      dtmd_->WaitForFinal("http-xa-1", absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->transaction().status(), "succeed");
  EXPECT_EQ(branches_.CountCalls("http-xa-1", "commit"), 1);
}

TEST_F(HttpApiTest, MsgPreparedThenSubmitted) {
  Json msg = {
      {"gid", "http-msg-1"},
      {"trans_type", "msg"},
      {"steps",
       Json::array({{{"action", branches_.Url("/busi.Busi/TransIn")}}})},
      {"payloads", Json::array({"m"})},
      {"query_prepared", branches_.Url("/busi.Busi/Query")}};
  ASSERT_EQ(Post("prepare", msg).code, 200);
  EXPECT_EQ(Status("http-msg-1"), "prepared");
  ASSERT_EQ(Post("submit", msg).code, 200);
  absl::StatusOr<admin::v1::GetTransactionReply> done =
      dtmd_->WaitForFinal("http-msg-1", absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->transaction().status(), "succeed");
  HttpReply q = Get("query?gid=http-msg-1");
  EXPECT_EQ(q.json["transaction"]["query_prepared"],
            branches_.Url("/busi.Busi/Query"));
}

TEST_F(HttpApiTest, Workflow) {
  const Json head = {{"gid", "http-wf-1"},
                     {"trans_type", "workflow"},
                     {"custom_data", R"({"name":"wf","data":""})"}};
  HttpReply p = Post("prepareWorkflow", head);
  ASSERT_EQ(p.code, 200) << p.body;
  EXPECT_EQ(p.json["transaction"]["gid"], "http-wf-1");
  EXPECT_EQ(p.json["transaction"]["status"], "prepared");
  EXPECT_EQ(p.json["progresses"], Json::array());
  HttpReply reg = Post("registerBranch", {{"gid", "http-wf-1"},
                                          {"trans_type", "workflow"},
                                          {"branch_id", "01"},
                                          {"op", "action"},
                                          {"status", "succeed"},
                                          {"data", "result-1"}});
  ASSERT_EQ(reg.code, 200) << reg.body;
  p = Post("prepareWorkflow", head);
  ASSERT_EQ(p.code, 200) << p.body;
  ASSERT_EQ(p.json["progresses"].size(), 1u) << p.body;
  EXPECT_EQ(p.json["progresses"][0]["branch_id"], "01");
  EXPECT_EQ(p.json["progresses"][0]["op"], "action");
  EXPECT_EQ(p.json["progresses"][0]["bin_data"],
            absl::Base64Escape("result-1"));
  Json submit = head;
  submit["req_extra"] = {{"status", "succeed"}};
  HttpReply s = Post("submit", submit);
  EXPECT_EQ(s.code, 200) << s.body;
  absl::StatusOr<admin::v1::GetTransactionReply> done =
      dtmd_->WaitForFinal("http-wf-1", absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->transaction().status(), "succeed");
  EXPECT_EQ(
      Post("prepareWorkflow", {{"gid", "x"}, {"trans_type", "saga"}}).code,
      400);
}

TEST_F(HttpApiTest, QueryAndAll) {
  EXPECT_EQ(Get("query").code, 400);
  HttpReply unknown = Get("query?gid=nope");
  EXPECT_EQ(unknown.code, 200);
  EXPECT_TRUE(unknown.json["transaction"].is_null()) << unknown.body;
  EXPECT_EQ(unknown.json["branches"], Json::array());
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Post("submit", Saga(absl::StrCat("all-", i))).code, 200);
  }
  std::vector<std::string> seen;
  std::string position;
  for (int page = 0; page < 5; ++page) {
    HttpReply r = Get("all?limit=2&position=" + position);
    ASSERT_EQ(r.code, 200) << r.body;
    for (const Json& t : r.json["transactions"]) {
      seen.push_back(t["gid"].get<std::string>());
    }
    position = r.json["next_position"].get<std::string>();
    if (position.empty()) break;
  }
  EXPECT_THAT(seen, ::testing::UnorderedElementsAre("all-0", "all-1", "all-2"));
  HttpReply one = Get("all?gid=all-1");
  ASSERT_EQ(one.json["transactions"].size(), 1u) << one.body;
  EXPECT_TRUE(Get("all?gid=nope").json["transactions"].is_null());
  EXPECT_EQ(
      Get("all?status=succeed&transType=saga").json["transactions"].size(), 3u);
  EXPECT_EQ(Get("all?status=failed").json["transactions"].size(), 0u);
  EXPECT_EQ(Get("all?limit=0").code, 400);
  EXPECT_EQ(Get("all?limit=abc").code, 400);
  EXPECT_EQ(Get("all?position=garbage").code, 400);
}

TEST_F(HttpApiTest, Topics) {
  const std::string url = branches_.Url("/busi.Busi/TransIn");
  HttpReply sub = Get("subscribe?topic=orders&url=" + url + "&remark=r");
  ASSERT_EQ(sub.code, 200) << sub.body;
  EXPECT_EQ(sub.json, Json({{"dtm_result", "SUCCESS"}}));
  // A msg step naming the topic reaches the subscriber.
  Json msg = {{"gid", "http-topic-msg"},
              {"trans_type", "msg"},
              {"steps", Json::array({{{"action", "topic://orders"}}})},
              {"payloads", Json::array({"t"})},
              {"wait_result", true}};
  EXPECT_EQ(Post("submit", msg).code, 200);
  EXPECT_EQ(branches_.CountCalls("http-topic-msg", "action"), 1);
  EXPECT_EQ(Get("subscribe?topic=orders&url=not%20a%20url").code, 400);
  EXPECT_EQ(Get("subscribe?url=" + url).code, 400);
  EXPECT_EQ(Get("unsubscribe?topic=orders&url=" + url).code, 200);
  EXPECT_EQ(Get("unsubscribe?topic=orders&url=" + url).code, 404);
  ASSERT_EQ(Get("subscribe?topic=a%2Fb&url=" + url).code, 200);
  EXPECT_EQ(Http("DELETE", base_ + "topic/a%2Fb").code, 200);
  EXPECT_EQ(Http("DELETE", base_ + "topic/a%2Fb").code, 404);
  EXPECT_EQ(Http("DELETE", base_ + "topic/").code, 400);
}

TEST_F(HttpApiTest, BadInputIsA4xxNamingTheMember) {
  struct Case {
    std::string body;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"{\"gid\":", "not valid JSON"},
      {"", "not valid JSON"},
      {"[1]", "not a JSON object but array"},
      {"{\"gid\":5,\"trans_type\":\"saga\"}", "gid: not a string but number"},
      {"{\"gid\":\"g\",\"trans_type\":\"saga\",\"wait_result\":\"yes\"}",
       "wait_result: not a boolean"},
      {"{\"gid\":\"g\",\"trans_type\":\"saga\",\"timeout_to_fail\":1.5}",
       "timeout_to_fail: not an integer"},
      {"{\"gid\":\"g\",\"trans_type\":\"saga\",\"payloads\":[1]}",
       "payloads[0]: not a string"},
      {"{\"gid\":\"g\",\"trans_type\":\"saga\",\"payloads\":\"p\"}",
       "payloads: not an array"},
      {"{\"gid\":\"g\",\"trans_type\":\"saga\",\"steps\":[{\"action\":1}]}",
       "steps[0].action: not a string"},
      {"{\"gid\":\"g\",\"trans_type\":\"saga\",\"branch_headers\":{\"a\":1}}",
       "branch_headers.a: not a string"},
      {"{\"gid\":\"g\",\"trans_type\":\"saga\",\"steps\":[[[[[[1]]]]]]}",
       "nested deeper"},
      {"{\"gid\":\"\",\"trans_type\":\"saga\"}", "Gid"},
      {"{\"gid\":\"\xff\",\"trans_type\":\"saga\"}", "not valid JSON"},
      {"{\"gid\":\"g\",\"trans_type\":\"nope\"}", "TransType"},
      {"{\"gid\":\"g\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"x\"}],"
       "\"payloads\":[\"a\",\"b\"]}",
       ""},
  };
  for (const Case& c : cases) {
    HttpReply r = PostRaw("submit", c.body);
    EXPECT_EQ(r.code, 400) << c.body << " -> " << r.body;
    EXPECT_THAT(Message(r), HasSubstr(c.says)) << c.body;
    EXPECT_FALSE(r.json.contains("dtm_result")) << r.body;
  }
  // Larger than --max_request_bytes (16 MiB): refused before it is parsed.
  std::string big = "{\"gid\":\"big\",\"custom_data\":\"" +
                    std::string(17 << 20, 'x') + "\"}";
  EXPECT_EQ(PostRaw("submit", big).code, 413);
  // Unknown routes and methods.
  EXPECT_EQ(Get("nothing").code, 404);
  EXPECT_EQ(Get("submit").code, 404);
  EXPECT_EQ(Post("version", Json::object()).code, 404);
  EXPECT_EQ(Http("GET", absl::StrCat("http://127.0.0.1:", dtmd_->http_port(),
                                     "/metrics"))
                .code,
            404);
  // dtmd still serves.
  EXPECT_EQ(Get("version").code, 200);
}

TEST_F(HttpApiTest, ConcurrentClients) {
  constexpr int kThreads = 8;
  constexpr int kEach = 15;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (Post("submit", Saga(absl::StrCat("many-", t, "-", i))).code ==
            200) {
          ok.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
  HttpReply all = Get("all?limit=1000&status=succeed");
  EXPECT_EQ(all.json["transactions"].size(),
            static_cast<size_t>(kThreads * kEach));
}

TEST_F(HttpApiTest, ClientGoneBeforeTheAnswer) {
  branches_.SetDefault("/busi.Busi/TransIn", Answer{grpc::StatusCode::OK, "",
                                                    /*delay_ms=*/1500});
  // The client gives up while dtmd still waits for the branch.
  HttpReply gone = Http("POST", base_ + "submit", Saga("gone-1").dump(), {},
                        /*timeout_ms=*/300);
  EXPECT_EQ(gone.code, 0);
  absl::StatusOr<admin::v1::GetTransactionReply> done =
      dtmd_->WaitForFinal("gone-1", absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->transaction().status(), "succeed");
  EXPECT_EQ(Get("version").code, 200);
}

TEST_F(HttpApiTest, SigtermAnswersWaitingRequests) {
  branches_.SetDefault("/busi.Busi/TransIn", Answer{grpc::StatusCode::OK, "",
                                                    /*delay_ms=*/2000});
  HttpReply reply;
  std::thread waiting([&] { reply = Post("submit", Saga("sigterm-1")); });
  ASSERT_TRUE(branches_.WaitForCalls(2, absl::Seconds(10)));
  EXPECT_EQ(dtmd_->Stop(), 0);
  waiting.join();
  // UNAVAILABLE while stopping, or the result if the branch came first.
  EXPECT_TRUE(reply.code == 503 || reply.code == 200)
      << reply.code << " " << reply.body;
}

TEST_F(HttpApiTest, OffByDefaultInTests) {
  DtmdProcess off(MakeTempDir("http_off"), {});
  ASSERT_TRUE(off.Start().ok());
  EXPECT_EQ(off.http_port(), 0);
}

TEST_F(HttpApiTest, PortInUseStopsStartUp) {
  DtmdProcess second(MakeTempDir("http_taken"),
                     {absl::StrCat("--http_port=", dtmd_->http_port())});
  second.set_stderr_file(MakeTempDir("http_taken_log") + "/dtmd.log");
  EXPECT_FALSE(second.Start().ok());
  EXPECT_EQ(second.exit_code(), 1);
  // The first one still serves.
  EXPECT_EQ(Get("version").code, 200);
}

class HttpApiMetricsTest : public HttpApiTest {
 protected:
  void SetUp() override {
    metrics_port_ = FreePort();
    ASSERT_GT(metrics_port_, 0);
    StartDtmd({absl::StrCat("--metrics_port=", metrics_port_)});
  }
  int metrics_port_ = 0;
};

TEST_F(HttpApiMetricsTest, RequestsAreCountedWithTypeHttp) {
  ASSERT_EQ(Get("newGid").code, 200);
  ASSERT_EQ(Get("newGid").code, 200);
  ASSERT_EQ(PostRaw("submit", "{").code, 400);
  ASSERT_EQ(Get("nothing").code, 404);
  const std::string scrape =
      Http("GET", absl::StrCat("http://127.0.0.1:", metrics_port_, "/metrics"))
          .body;
  EXPECT_THAT(scrape, HasSubstr("dtm_server_process_total{api=\"newgid\","
                                "code=\"200\",status=\"ok\",type=\"http\"} 2"));
  EXPECT_THAT(scrape, HasSubstr("dtm_server_process_total{api=\"submit\","
                                "code=\"400\",status=\"fail\","
                                "type=\"http\"} 1"));
  EXPECT_THAT(scrape, HasSubstr("dtm_server_process_total{api=\"other\","
                                "code=\"404\",status=\"fail\","
                                "type=\"http\"} 1"));
  EXPECT_THAT(scrape,
              HasSubstr("dtm_server_response_duration_count{api=\"newgid\","
                        "type=\"http\"} 2"));
}

class HttpApiTokenTest : public HttpApiTest {
 protected:
  void SetUp() override {
    const std::string dir = MakeTempDir("http_tokens");
    WriteFile(dir + "/tokens", "alpha-token-1\n");
    StartDtmd({"--auth_token_file=" + dir + "/tokens"});
  }
};

TEST_F(HttpApiTokenTest, BearerTokens) {
  HttpReply none = Get("newGid");
  EXPECT_EQ(none.code, 401) << none.body;
  EXPECT_THAT(Message(none), HasSubstr("Authorization"));
  EXPECT_EQ(Get("newGid", {"Authorization: Bearer wrong"}).code, 401);
  EXPECT_EQ(Get("newGid", {"Authorization: alpha-token-1"}).code, 401);
  EXPECT_EQ(Get("newGid", {"Authorization: Bearer alpha-token-1"}).code, 200);
  EXPECT_EQ(Post("submit", Saga("tok-1"), {"Authorization: Bearer nope"}).code,
            401);
  EXPECT_EQ(
      Post("submit", Saga("tok-1"), {"authorization: bearer alpha-token-1"})
          .code,
      200);
}

}  // namespace
}  // namespace dtmd::testing
