#include "tests/bench/shapes.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace dtmd::bench {
namespace {

// A branch payload of about 64 bytes, JSON as an HTTP branch gets it.
const std::string& JsonPayload() {
  static const std::string* payload = new std::string(
      absl::StrCat(R"({"amount":30,"pad":")", std::string(38, 'p'), "\"}"));
  return *payload;
}

// A saga request; steps[i] = {action, compensate} URLs.
dtmgimp::DtmRequest Saga(
    const std::string& gid,
    const std::vector<std::pair<std::string, std::string>>& steps,
    bool wait_result, const std::string& payload = std::string(64, 'p')) {
  dtmgimp::DtmRequest request;
  request.set_gid(gid);
  request.set_transtype("saga");
  nlohmann::json json = nlohmann::json::array();
  for (const auto& [action, compensate] : steps) {
    json.push_back({{"action", action}, {"compensate", compensate}});
    request.add_binpayloads(payload);
  }
  request.set_steps(json.dump());
  request.mutable_transoptions()->set_waitresult(wait_result);
  return request;
}

std::string Url(const ShapeContext& context, absl::string_view method) {
  return absl::StrCat(context.branch_address, "/bench.Bench/", method);
}

std::string HttpUrl(const ShapeContext& context, absl::string_view method) {
  return absl::StrCat(context.http_branch_base, "/api/busi/", method);
}

// The two-step saga of the HTTP shapes: actions and compensations are HTTP
// endpoints of the bench's branch server.
std::vector<std::pair<std::string, std::string>> HttpSteps(
    const ShapeContext& c) {
  return {{HttpUrl(c, "TransOut"), HttpUrl(c, "TransOutRevert")},
          {HttpUrl(c, "TransIn"), HttpUrl(c, "TransInRevert")}};
}

// A saga Submit as DTM's HTTP client posts it (dtmcli: payloads are the
// steps' JSON bodies), with wait_result.
ShapeCall HttpSaga(const std::string& gid, const ShapeContext& c) {
  nlohmann::json steps = nlohmann::json::array();
  nlohmann::json payloads = nlohmann::json::array();
  for (const auto& [action, compensate] : HttpSteps(c)) {
    steps.push_back({{"action", action}, {"compensate", compensate}});
    payloads.push_back(JsonPayload());
  }
  ShapeCall call;
  call.method = ShapeCall::kHttpSubmit;
  call.http_body = nlohmann::json{
      {"gid", gid},
      {"trans_type", "saga"},
      {"steps", steps},
      {"payloads", payloads},
      {"wait_result",
       true}}.dump();
  return call;
}

ShapeCall Call(ShapeCall::Method method, dtmgimp::DtmRequest request) {
  ShapeCall call;
  call.method = method;
  call.request = std::move(request);
  return call;
}

// A tcc as DTM's client drives it: Prepare, the Try of each branch (done
// by the client itself, so not here) followed by its RegisterBranch, then
// Submit. WaitResult (set on the transaction, so on every request as DTM's
// client sends it) keeps the confirms inside the Submit's answer.
std::vector<ShapeCall> Tcc(const std::string& gid, const ShapeContext& c,
                           int branches) {
  dtmgimp::DtmRequest request;
  request.set_gid(gid);
  request.set_transtype("tcc");
  request.set_steps("null");  // what DTM's Go client sends for tcc.
  request.mutable_transoptions()->set_waitresult(true);
  std::vector<ShapeCall> calls;
  calls.push_back(Call(ShapeCall::kPrepare, request));
  for (int i = 1; i <= branches; ++i) {
    ShapeCall& call = calls.emplace_back();
    call.method = ShapeCall::kRegisterBranch;
    dtmgimp::DtmBranchRequest& branch = call.branch;
    branch.set_gid(gid);
    branch.set_transtype("tcc");
    branch.set_branchid(absl::StrFormat("%02d", i));
    branch.set_busipayload(std::string(64, 'p'));
    (*branch.mutable_data())["confirm"] = Url(c, absl::StrCat("Confirm", i));
    (*branch.mutable_data())["cancel"] = Url(c, absl::StrCat("Cancel", i));
  }
  calls.push_back(Call(ShapeCall::kSubmit, std::move(request)));
  return calls;
}

// A two-phase message: Prepare with a QueryPrepared URL (never asked while
// the message is submitted in time), then Submit of the same request, as
// DTM's client sends it, with WaitResult so the actions are inside the
// answer.
std::vector<ShapeCall> Msg(const std::string& gid, const ShapeContext& c) {
  dtmgimp::DtmRequest request;
  request.set_gid(gid);
  request.set_transtype("msg");
  nlohmann::json json = nlohmann::json::array();
  for (const char* action : {"Action1", "Action2"}) {
    json.push_back({{"action", Url(c, action)}});
    request.add_binpayloads(std::string(64, 'p'));
  }
  request.set_steps(json.dump());
  request.set_queryprepared(Url(c, "QueryPrepared"));
  request.mutable_transoptions()->set_waitresult(true);
  std::vector<ShapeCall> calls;
  calls.push_back(Call(ShapeCall::kPrepare, request));
  calls.push_back(Call(ShapeCall::kSubmit, std::move(request)));
  return calls;
}

std::vector<ShapeCall> SubmitOnly(dtmgimp::DtmRequest request) {
  std::vector<ShapeCall> calls;
  calls.push_back(Call(ShapeCall::kSubmit, std::move(request)));
  return calls;
}

}  // namespace

const std::vector<Shape>& Shapes() {
  static const std::vector<Shape>* shapes = new std::vector<Shape>{
      {"saga-empty",
       "2 steps with empty URLs, WaitResult (DTM's published benchmark shape)",
       [](const std::string& gid, const ShapeContext&) {
         return SubmitOnly(Saga(gid, {{"", ""}, {"", ""}}, true));
       }},
      {"saga", "2 steps calling the bench's branch server, WaitResult",
       [](const std::string& gid, const ShapeContext& c) {
         return SubmitOnly(Saga(gid,
                                {{Url(c, "Action1"), Url(c, "Compensate1")},
                                 {Url(c, "Action2"), Url(c, "Compensate2")}},
                                true));
       }},
      {"http-saga",
       "saga Submit over DTM's HTTP API, 2 HTTP steps, wait_result",
       [](const std::string& gid, const ShapeContext& c) {
         return std::vector<ShapeCall>{HttpSaga(gid, c)};
       }},
      {"grpc-saga-http-branches",
       "saga Submit over gRPC, 2 steps calling HTTP branches, WaitResult",
       [](const std::string& gid, const ShapeContext& c) {
         return SubmitOnly(Saga(gid, HttpSteps(c), true, JsonPayload()));
       }},
      {"saga-retrying",
       "1 step whose action answers UNAVAILABLE: stays unfinished, retrying",
       [](const std::string& gid, const ShapeContext& c) {
         dtmgimp::DtmRequest request =
             Saga(gid, {{Url(c, "Unavailable"), Url(c, "Compensate")}}, false);
         request.mutable_transoptions()->set_retryinterval(c.retry_interval_s);
         return SubmitOnly(std::move(request));
       }},
      {"tcc", "Prepare, 2 RegisterBranch, Submit with WaitResult (2 confirms)",
       [](const std::string& gid, const ShapeContext& c) {
         return Tcc(gid, c, 2);
       }},
      {"msg", "Prepare with QueryPrepared, Submit with WaitResult (2 actions)",
       [](const std::string& gid, const ShapeContext& c) {
         return Msg(gid, c);
       }},
  };
  return *shapes;
}

const char* HttpPath(ShapeCall::Method method) {
  switch (method) {
    case ShapeCall::kHttpSubmit:
      return "/api/dtmsvr/submit";
    default:
      return "";
  }
}

const Shape* FindShape(const std::string& name) {
  for (const Shape& shape : Shapes()) {
    if (shape.name == name) return &shape;
  }
  return nullptr;
}

}  // namespace dtmd::bench
