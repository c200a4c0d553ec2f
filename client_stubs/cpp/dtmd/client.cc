#include "dtmd/client.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "dtmd/internal/json.h"
#include "dtmd/internal/rpc.h"

namespace dtmd::client {

using internal::CallDtm;
using internal::DumpJson;

grpc::Status NewGid(dtmgimp::Dtm::StubInterface* stub, std::string* gid,
                    std::chrono::milliseconds timeout) {
  dtmgimp::DtmGidReply reply;
  grpc::Status status = CallDtm(stub, &dtmgimp::Dtm::StubInterface::NewGid,
                                google::protobuf::Empty(), &reply, timeout);
  if (status.ok()) *gid = reply.gid();
  return status;
}

Saga::Saga(dtmgimp::Dtm::StubInterface* stub, std::string gid)
    : stub_(stub), gid_(std::move(gid)) {}

Saga& Saga::Add(std::string action_url, std::string compensate_url,
                std::string payload) {
  steps_.push_back(Step{std::move(action_url), std::move(compensate_url),
                        std::move(payload)});
  return *this;
}

Saga& Saga::AddBranchOrder(int step, std::vector<int> after) {
  orders_[step] = std::move(after);
  return *this;
}

Saga& Saga::EnableConcurrent() {
  concurrent_ = true;
  return *this;
}

Saga& Saga::SetWaitResult(bool wait_result) {
  options_.wait_result = wait_result;
  return *this;
}

Saga& Saga::SetTimeoutToFail(int64_t seconds) {
  options_.timeout_to_fail = seconds;
  return *this;
}

Saga& Saga::SetRetryInterval(int64_t seconds) {
  options_.retry_interval = seconds;
  return *this;
}

Saga& Saga::SetRequestTimeout(int64_t seconds) {
  options_.request_timeout = seconds;
  return *this;
}

Saga& Saga::SetRetryLimit(int64_t retry_limit) {
  options_.retry_limit = retry_limit;
  return *this;
}

Saga& Saga::AddBranchHeader(std::string key, std::string value) {
  options_.branch_headers[std::move(key)] = std::move(value);
  return *this;
}

Saga& Saga::SetCallTimeout(std::chrono::milliseconds timeout) {
  options_.call_timeout = timeout;
  return *this;
}

dtmgimp::DtmRequest Saga::BuildRequest() const {
  dtmgimp::DtmRequest request;
  request.set_gid(gid_);
  request.set_transtype("saga");
  internal::FillTransOptions(options_, request.mutable_transoptions());

  nlohmann::json steps = nlohmann::json::array();
  for (const Step& step : steps_) {
    steps.push_back({{"action", step.action}, {"compensate", step.compensate}});
    request.add_binpayloads(step.payload);
  }
  request.set_steps(DumpJson(steps));

  if (concurrent_ || !orders_.empty()) {
    // JSON object keys are strings: {"1":[0]} says step 1 runs after step 0.
    nlohmann::json orders = nlohmann::json::object();
    for (const auto& [step, after] : orders_) {
      orders[std::to_string(step)] = after;
    }
    nlohmann::json custom = {{"orders", std::move(orders)},
                             {"concurrent", concurrent_}};
    request.set_customeddata(DumpJson(custom));
  }
  return request;
}

grpc::Status Saga::Submit() {
  google::protobuf::Empty reply;
  return CallDtm(stub_, &dtmgimp::Dtm::StubInterface::Submit, BuildRequest(),
                 &reply, options_.call_timeout);
}

grpc::Status Saga::Prepare() {
  google::protobuf::Empty reply;
  return CallDtm(stub_, &dtmgimp::Dtm::StubInterface::Prepare, BuildRequest(),
                 &reply, options_.call_timeout);
}

}  // namespace dtmd::client
