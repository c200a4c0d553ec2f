#include "dtmd/client.h"

#include <nlohmann/json.hpp>
#include <utility>

namespace dtmd::client {
namespace {

// dump() that never throws: invalid UTF-8 (a URL is caller input) is replaced
// rather than raised as an exception.
std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void SetDeadline(grpc::ClientContext* context,
                 std::chrono::milliseconds timeout) {
  context->set_deadline(std::chrono::system_clock::now() + timeout);
}

}  // namespace

grpc::Status NewGid(dtmgimp::Dtm::StubInterface* stub, std::string* gid,
                    std::chrono::milliseconds timeout) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout);
  google::protobuf::Empty request;
  dtmgimp::DtmGidReply reply;
  grpc::Status status = stub->NewGid(&context, request, &reply);
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
  wait_result_ = wait_result;
  return *this;
}

Saga& Saga::SetTimeoutToFail(int64_t seconds) {
  timeout_to_fail_ = seconds;
  return *this;
}

Saga& Saga::SetRetryInterval(int64_t seconds) {
  retry_interval_ = seconds;
  return *this;
}

Saga& Saga::SetRequestTimeout(int64_t seconds) {
  request_timeout_ = seconds;
  return *this;
}

Saga& Saga::SetRetryLimit(int64_t retry_limit) {
  retry_limit_ = retry_limit;
  return *this;
}

Saga& Saga::AddBranchHeader(std::string key, std::string value) {
  branch_headers_[std::move(key)] = std::move(value);
  return *this;
}

Saga& Saga::SetCallTimeout(std::chrono::milliseconds timeout) {
  call_timeout_ = timeout;
  return *this;
}

dtmgimp::DtmRequest Saga::BuildRequest() const {
  dtmgimp::DtmRequest request;
  request.set_gid(gid_);
  request.set_transtype("saga");

  dtmgimp::DtmTransOptions* options = request.mutable_transoptions();
  options->set_waitresult(wait_result_);
  options->set_timeouttofail(timeout_to_fail_);
  options->set_retryinterval(retry_interval_);
  options->set_requesttimeout(request_timeout_);
  options->set_retrylimit(retry_limit_);
  options->mutable_branchheaders()->insert(branch_headers_.begin(),
                                           branch_headers_.end());

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
  return Call(&dtmgimp::Dtm::StubInterface::Submit);
}

grpc::Status Saga::Prepare() {
  return Call(&dtmgimp::Dtm::StubInterface::Prepare);
}

grpc::Status Saga::Call(Method method) {
  grpc::ClientContext context;
  SetDeadline(&context, call_timeout_);
  google::protobuf::Empty reply;
  return (stub_->*method)(&context, BuildRequest(), &reply);
}

}  // namespace dtmd::client
