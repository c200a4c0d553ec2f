#include "dtmd/msg.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "dtmd/internal/json.h"
#include "dtmd/internal/rpc.h"

namespace dtmd::client {
namespace {

constexpr char kMsg[] = "msg";

absl::Status CallTopic(dtmgimp::Dtm::StubInterface* dtm,
                       grpc::Status (dtmgimp::Dtm::StubInterface::*method)(
                           grpc::ClientContext*,
                           const dtmgimp::DtmTopicRequest&,
                           google::protobuf::Empty*),
                       const std::string& topic, const std::string& url,
                       const std::string& remark,
                       std::chrono::milliseconds timeout) {
  dtmgimp::DtmTopicRequest request;
  request.set_topic(topic);
  request.set_url(url);
  request.set_remark(remark);
  return internal::CallDtm(dtm, method, request, timeout);
}

}  // namespace

Msg::Msg(dtmgimp::Dtm::StubInterface* dtm, std::string gid,
         TransOptions options)
    : stub_(dtm), gid_(std::move(gid)), options_(std::move(options)) {}

Msg& Msg::Add(std::string action_url, std::string payload) {
  steps_.push_back(Step{std::move(action_url), std::move(payload)});
  return *this;
}

Msg& Msg::SetDelay(int64_t seconds) {
  delay_seconds_ = seconds;
  return *this;
}

dtmgimp::DtmRequest Msg::BuildRequest() const {
  dtmgimp::DtmRequest request;
  request.set_gid(gid_);
  request.set_transtype(kMsg);
  internal::FillTransOptions(options_, request.mutable_transoptions());
  nlohmann::json steps = nlohmann::json::array();
  for (const Step& step : steps_) {
    steps.push_back({{"action", step.action}});
    request.add_binpayloads(step.payload);
  }
  request.set_steps(internal::DumpJson(steps));
  request.set_queryprepared(query_prepared_);
  if (delay_seconds_ > 0) {
    request.set_customeddata(
        internal::DumpJson(nlohmann::json{{"delay", delay_seconds_}}));
  }
  return request;
}

absl::Status Msg::Prepare(std::string query_prepared_url) {
  if (!query_prepared_url.empty()) {
    query_prepared_ = std::move(query_prepared_url);
  }
  return CallWithRequest(&dtmgimp::Dtm::StubInterface::Prepare);
}

absl::Status Msg::Submit() {
  return CallWithRequest(&dtmgimp::Dtm::StubInterface::Submit);
}

absl::Status Msg::Abort() {
  return CallWithRequest(&dtmgimp::Dtm::StubInterface::Abort);
}

absl::Status Msg::DoAndSubmit(std::string query_prepared_url,
                              const std::function<absl::Status()>& busi) {
  absl::Status prepared = Prepare(std::move(query_prepared_url));
  if (!prepared.ok()) return prepared;

  const absl::Status busi_status = busi();
  if (busi_status.ok()) return Submit();

  absl::Status verdict = busi_status;
  if (busi_status.code() != absl::StatusCode::kAborted) {
    internal::BranchCaller caller;
    verdict = caller.Call(
        query_prepared_, "",
        internal::BranchMetadata(gid_, kMsg, internal::kQueryPreparedBranchId,
                                 internal::kQueryPreparedOp, options_),
        internal::BranchCallTimeout(options_), nullptr);
  }
  if (verdict.ok()) {
    Submit().IgnoreError();  // busi's error is what the caller must see.
  } else if (verdict.code() == absl::StatusCode::kAborted) {
    CallWithRequest(&dtmgimp::Dtm::StubInterface::Abort,
                    std::string(verdict.message()))
        .IgnoreError();
  }
  return busi_status;
}

absl::Status Msg::CallWithRequest(
    grpc::Status (dtmgimp::Dtm::StubInterface::*method)(
        grpc::ClientContext*, const dtmgimp::DtmRequest&,
        google::protobuf::Empty*),
    const std::string& rollback_reason) {
  dtmgimp::DtmRequest request = BuildRequest();
  request.set_rollbackreason(rollback_reason);
  return internal::CallDtm(stub_, method, request, options_.call_timeout);
}

absl::Status Subscribe(dtmgimp::Dtm::StubInterface* dtm,
                       const std::string& topic, const std::string& url,
                       const std::string& remark,
                       std::chrono::milliseconds timeout) {
  return CallTopic(dtm, &dtmgimp::Dtm::StubInterface::Subscribe, topic, url,
                   remark, timeout);
}

absl::Status Unsubscribe(dtmgimp::Dtm::StubInterface* dtm,
                         const std::string& topic, const std::string& url,
                         std::chrono::milliseconds timeout) {
  return CallTopic(dtm, &dtmgimp::Dtm::StubInterface::Unsubscribe, topic, url,
                   "", timeout);
}

absl::Status DeleteTopic(dtmgimp::Dtm::StubInterface* dtm,
                         const std::string& topic,
                         std::chrono::milliseconds timeout) {
  return CallTopic(dtm, &dtmgimp::Dtm::StubInterface::DeleteTopic, topic, "",
                   "", timeout);
}

}  // namespace dtmd::client
