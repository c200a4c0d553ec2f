#include "tests/bench/shapes.h"

#include "nlohmann/json.hpp"

namespace dtmd::bench {
namespace {

// A saga request; steps[i] = {action, compensate} URLs.
dtmgimp::DtmRequest Saga(
    const std::string& gid,
    const std::vector<std::pair<std::string, std::string>>& steps,
    bool wait_result) {
  dtmgimp::DtmRequest request;
  request.set_gid(gid);
  request.set_transtype("saga");
  nlohmann::json json = nlohmann::json::array();
  for (const auto& [action, compensate] : steps) {
    json.push_back({{"action", action}, {"compensate", compensate}});
    request.add_binpayloads(std::string(64, 'p'));
  }
  request.set_steps(json.dump());
  request.mutable_transoptions()->set_waitresult(wait_result);
  return request;
}

std::string Url(const ShapeContext& context, const char* method) {
  return context.branch_address + "/bench.Bench/" + method;
}

}  // namespace

const std::vector<Shape>& Shapes() {
  static const std::vector<Shape>* shapes = new std::vector<Shape>{
      {"saga-empty",
       "2 steps with empty URLs, WaitResult (DTM's published benchmark shape)",
       [](const std::string& gid, const ShapeContext&) {
         return Saga(gid, {{"", ""}, {"", ""}}, true);
       }},
      {"saga", "2 steps calling the bench's branch server, WaitResult",
       [](const std::string& gid, const ShapeContext& c) {
         return Saga(gid,
                     {{Url(c, "Action1"), Url(c, "Compensate1")},
                      {Url(c, "Action2"), Url(c, "Compensate2")}},
                     true);
       }},
      {"saga-retrying",
       "1 step whose action answers UNAVAILABLE: stays unfinished, retrying",
       [](const std::string& gid, const ShapeContext& c) {
         dtmgimp::DtmRequest request =
             Saga(gid, {{Url(c, "Unavailable"), Url(c, "Compensate")}}, false);
         request.mutable_transoptions()->set_retryinterval(c.retry_interval_s);
         return request;
       }},
  };
  return *shapes;
}

const Shape* FindShape(const std::string& name) {
  for (const Shape& shape : Shapes()) {
    if (shape.name == name) return &shape;
  }
  return nullptr;
}

}  // namespace dtmd::bench
