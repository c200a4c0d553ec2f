#include "server/request_validation.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/txn/branch_url.h"
#include "server/txn/msg.h"
#include "server/txn/saga.h"
#include "server/txn/workflow.h"
#include "storage/store.h"

namespace dtmd {
namespace {

// Upper bound on any timing option: keeps millisecond arithmetic far from
// overflow (about 31 years).
constexpr int64_t kMaxSeconds = int64_t{1} << 30;

absl::Status CheckSeconds(const char* field, int64_t value) {
  if (value < 0 || value > kMaxSeconds) {
    return absl::InvalidArgumentError(absl::StrCat("TransOptions.", field,
                                                   ": must be 0..", kMaxSeconds,
                                                   " seconds, got ", value));
  }
  return absl::OkStatus();
}

// gRPC's (and HPACK's) per-entry overhead in the metadata size it checks.
constexpr int64_t kMetadataEntryOverhead = 32;

// A value's size on the wire: -bin values travel base64-encoded.
int64_t MetadataValueBytes(absl::string_view key, absl::string_view value) {
  if (!absl::EndsWith(key, "-bin")) return value.size();
  return (static_cast<int64_t>(value.size()) + 2) / 3 * 4;
}

bool IsHeaderKeyChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-' ||
         c == '_' || c == '.';
}

// A name (gid, topic): 1..max_bytes bytes of printable ASCII (0x21..0x7e).
absl::Status CheckName(absl::string_view field, absl::string_view name,
                       int max_bytes) {
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must not be empty"));
  }
  if (name.size() > static_cast<size_t>(max_bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", name.size(),
                     " bytes, longer than the limit of ", max_bytes));
  }
  for (char c : name) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": only printable ASCII without spaces is allowed"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateGid(absl::string_view gid, int max_bytes) {
  return CheckName("Gid", gid, max_bytes);
}

absl::Status ValidateTransType(absl::string_view trans_type) {
  for (absl::string_view known : {"saga", "tcc", "msg", "xa", "workflow"}) {
    if (trans_type == known) return absl::OkStatus();
  }
  if (trans_type.empty()) {
    return absl::InvalidArgumentError("TransType: must not be empty");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("TransType: unknown transaction type '",
                   absl::CHexEscape(trans_type.substr(0, 64)),
                   "' (want saga, tcc, msg, xa or workflow)"));
}

absl::Status TransTypeMismatch(absl::string_view gid, absl::string_view stored,
                               absl::string_view requested) {
  return absl::InvalidArgumentError(
      absl::StrCat("TransType: gid ", gid, " exists as a ", stored,
                   " transaction, not ", requested));
}

absl::Status ValidateOptions(const dtmgimp::DtmTransOptions& options,
                             const Config& config) {
  for (absl::Status s :
       {CheckSeconds("TimeoutToFail", options.timeouttofail()),
        CheckSeconds("RetryInterval", options.retryinterval()),
        CheckSeconds("RequestTimeout", options.requesttimeout())}) {
    if (!s.ok()) return s;
  }
  if (options.requesttimeout() > config.max_request_timeout_s) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TransOptions.RequestTimeout: ", options.requesttimeout(),
        " seconds, more than the limit of ", config.max_request_timeout_s));
  }
  if (options.retrylimit() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("TransOptions.RetryLimit: must not be negative, got ",
                     options.retrylimit()));
  }
  if (options.branchheaders_size() > config.max_branch_headers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TransOptions.BranchHeaders: ", options.branchheaders_size(),
        " entries, more than the limit of ", config.max_branch_headers));
  }
  int64_t metadata_bytes = 0;
  for (const auto& [key, value] : options.branchheaders()) {
    metadata_bytes +=
        key.size() + MetadataValueBytes(key, value) + kMetadataEntryOverhead;
  }
  if (metadata_bytes > config.max_branch_headers_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TransOptions.BranchHeaders: ", metadata_bytes,
        " bytes as gRPC metadata (names + values + 32 per entry), more than "
        "the limit of ",
        config.max_branch_headers_bytes));
  }
  for (const auto& [key, value] : options.branchheaders()) {
    std::string field = absl::StrCat("TransOptions.BranchHeaders['",
                                     absl::CHexEscape(key.substr(0, 64)), "']");
    if (key.empty() || !std::all_of(key.begin(), key.end(), IsHeaderKeyChar)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field,
                       ": a header name must be lower-case letters, digits, "
                       "'-', '_' or '.'"));
    }
    if (absl::StartsWith(key, "grpc-") || absl::StartsWith(key, "dtm-") ||
        key == "content-type" || key == "te" || key == "user-agent") {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": reserved header name"));
    }
    if (!absl::EndsWith(key, "-bin")) {
      for (char c : value) {
        if (c < 0x20 || c > 0x7e) {
          return absl::InvalidArgumentError(absl::StrCat(
              field, ": value must be printable ASCII (or use a -bin name)"));
        }
      }
    }
  }
  return absl::OkStatus();
}

namespace {

// Limits for parsing Steps and CustomedData, from the configuration.
txn::SagaLimits StepLimits(const Config& config) {
  txn::SagaLimits limits;
  limits.max_steps = config.max_steps;
  limits.max_url_bytes = config.max_url_bytes;
  limits.max_order_edges = config.max_order_edges;
  return limits;
}

// Steps for tcc, xa and workflow, whose branches come later: DTM's clients
// send "null" or nothing.
absl::Status CheckNoSteps(const dtmgimp::DtmRequest& request) {
  const absl::string_view steps = absl::StripAsciiWhitespace(request.steps());
  if (!steps.empty() && steps != "null" && steps != "[]") {
    return absl::InvalidArgumentError(absl::StrCat(
        "Steps: ", request.transtype(),
        " transactions take no steps (their branches are registered with "
        "RegisterBranch)"));
  }
  if (request.binpayloads_size() > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("BinPayloads: ", request.transtype(),
                     " transactions take no payloads here (each branch's "
                     "payload comes with RegisterBranch)"));
  }
  return absl::OkStatus();
}

// A URL field that may be empty (nothing to call) or a branch URL.
absl::Status CheckOptionalUrl(absl::string_view field, absl::string_view url,
                              const Config& config) {
  if (url.empty()) return absl::OkStatus();
  if (url.size() > static_cast<size_t>(config.max_url_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", url.size(), " bytes, longer than the limit of ",
        config.max_url_bytes));
  }
  absl::StatusOr<txn::BranchTarget> target = txn::ParseBranchUrl(url);
  if (!target.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", target.status().message()));
  }
  return absl::OkStatus();
}

// A whole request: at most config.max_request_bytes.
absl::Status CheckRequestSize(const google::protobuf::MessageLite& request,
                              const Config& config) {
  if (static_cast<int64_t>(request.ByteSizeLong()) > config.max_request_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request: ", request.ByteSizeLong(),
        " bytes, larger than the limit of ", config.max_request_bytes));
  }
  return absl::OkStatus();
}

constexpr int kMaxBranchIdBytes = 128;
constexpr int kMaxOpBytes = 64;

}  // namespace

absl::StatusOr<NewTransaction> BuildTransaction(
    const dtmgimp::DtmRequest& request, absl::string_view status,
    int64_t now_ms, const Config& config, const TopicResolver& topics) {
  if (absl::Status s = ValidateGid(request.gid(), config.max_gid_bytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateTransType(request.transtype()); !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateOptions(request.transoptions(), config);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckRequestSize(request, config); !s.ok()) return s;
  const std::string& type = request.transtype();
  NewTransaction out;
  storage::v1::TransRecord& t = out.trans;
  if (type == "saga") {
    std::vector<std::string> payloads(request.binpayloads().begin(),
                                      request.binpayloads().end());
    absl::StatusOr<txn::SagaDefinition> saga =
        txn::ParseSaga(request.gid(), request.steps(), payloads,
                       request.customeddata(), StepLimits(config));
    if (!saga.ok()) return saga.status();
    t.set_concurrent(saga->concurrent);
    for (const std::vector<int>& after : saga->orders) {
      storage::v1::StepOrder* order = t.add_orders();
      for (int step : after) order->add_after(step);
    }
    out.branches = std::move(saga->branches);
  } else if (type == "msg") {
    if (absl::Status s =
            CheckOptionalUrl("QueryPrepared", request.queryprepared(), config);
        !s.ok()) {
      return s;
    }
    std::vector<std::string> payloads(request.binpayloads().begin(),
                                      request.binpayloads().end());
    absl::StatusOr<txn::MsgDefinition> msg =
        txn::ParseMsg(request.gid(), request.steps(), payloads,
                      request.customeddata(), StepLimits(config));
    if (!msg.ok()) return msg.status();
    TopicResolver no_topics = [](absl::string_view topic)
        -> absl::StatusOr<std::vector<std::string>> {
      return absl::NotFoundError(
          absl::StrCat("topic ", topic, " has no subscribers"));
    };
    absl::StatusOr<std::vector<storage::v1::BranchRecord>> branches =
        txn::MsgBranches(*msg, topics ? topics : no_topics);
    if (!branches.ok()) return branches.status();
    if (branches->size() > static_cast<size_t>(config.max_branches)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Steps: the steps expand to ", branches->size(),
          " branches with their topics' subscribers, more than the limit of ",
          config.max_branches, " (--max_branches)"));
    }
    out.branches = *std::move(branches);
  } else if (type == "workflow") {
    if (absl::Status s = CheckNoSteps(request); !s.ok()) return s;
    if (absl::Status s =
            CheckOptionalUrl("QueryPrepared", request.queryprepared(), config);
        !s.ok()) {
      return s;
    }
    absl::StatusOr<txn::WorkflowCustom> custom =
        txn::ParseWorkflowCustom(request.customeddata());
    if (!custom.ok()) return custom.status();
  } else {  // tcc, xa
    if (absl::Status s = CheckNoSteps(request); !s.ok()) return s;
  }

  const dtmgimp::DtmTransOptions& o = request.transoptions();
  t.set_gid(request.gid());
  t.set_trans_type(type);
  t.set_status(std::string(status));
  t.set_customed_data(request.customeddata());
  t.set_query_prepared(request.queryprepared());
  t.set_rollback_reason(request.rollbackreason());
  t.mutable_req_extra()->insert(request.reqextra().begin(),
                                request.reqextra().end());
  storage::v1::TransOptions* opts = t.mutable_options();
  opts->set_wait_result(o.waitresult());
  // docs/protocol.md section 6: sagas have no timeout unless asked for;
  // tcc, xa and msg default to the configured one; a workflow has none.
  int64_t timeout = o.timeouttofail();
  if (timeout == 0 && (type == "tcc" || type == "xa" || type == "msg")) {
    timeout = config.timeout_to_fail_s;
  }
  if (type == "workflow") timeout = 0;
  opts->set_timeout_to_fail_s(timeout);
  // docs/protocol.md section 3: the first interval.
  int64_t interval = config.retry_interval_s;
  if (o.retryinterval() > 0) {
    interval = o.retryinterval();
  } else if (timeout > 0 && timeout < interval) {
    interval = timeout;
  }
  interval = std::max<int64_t>(1, interval);
  opts->set_retry_interval_s(interval);
  opts->set_request_timeout_s(
      o.requesttimeout() > 0 ? o.requesttimeout() : config.request_timeout_s);
  opts->set_retry_limit(o.retrylimit());
  opts->mutable_branch_headers()->insert(o.branchheaders().begin(),
                                         o.branchheaders().end());
  t.set_create_time_ms(now_ms);
  t.set_update_time_ms(now_ms);
  t.set_next_cron_interval_s(interval);
  int64_t first_look_ms = now_ms + interval * 1000;
  if (status == storage::kStatusPrepared && timeout > 0) {
    // A prepared transaction's first look is at its deadline at the latest.
    first_look_ms = std::min(first_look_ms, now_ms + timeout * 1000);
  }
  t.set_next_cron_time_ms(first_look_ms);
  for (storage::v1::BranchRecord& b : out.branches) {
    b.set_create_time_ms(now_ms);
  }
  return out;
}

absl::Status ValidateTopic(absl::string_view topic) {
  return CheckName("Topic", topic, txn::kMaxTopicNameBytes);
}

absl::Status ValidateTopicRequest(const dtmgimp::DtmTopicRequest& request,
                                  TopicRequestKind kind, const Config& config) {
  if (absl::Status s = ValidateTopic(request.topic()); !s.ok()) return s;
  if (kind == TopicRequestKind::kDeleteTopic) return absl::OkStatus();
  const std::string& url = request.url();
  if (url.empty()) return absl::InvalidArgumentError("URL: must not be empty");
  if (url.size() > static_cast<size_t>(config.max_url_bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("URL: ", url.size(), " bytes, more than the limit of ",
                     config.max_url_bytes));
  }
  if (kind == TopicRequestKind::kUnsubscribe) return absl::OkStatus();
  // A subscriber is called as a msg step is: the same rule as step URLs.
  if (absl::StatusOr<txn::BranchTarget> target = txn::ParseBranchUrl(url);
      !target.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("URL: ", target.status().message()));
  }
  // UTF-8 was checked when the request was parsed (a proto3 string).
  if (request.remark().size() > kMaxRemarkBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("Remark: ", request.remark().size(),
                     " bytes, more than the limit of ", kMaxRemarkBytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<NewTransaction> BuildSaga(const dtmgimp::DtmRequest& request,
                                         absl::string_view status,
                                         int64_t now_ms, const Config& config) {
  if (request.transtype() != "saga") {
    return absl::InvalidArgumentError("TransType: must be saga");
  }
  return BuildTransaction(request, status, now_ms, config, nullptr);
}

absl::StatusOr<std::vector<storage::v1::BranchRecord>> BuildRegistration(
    const dtmgimp::DtmBranchRequest& request, int64_t now_ms,
    const Config& config) {
  if (absl::Status s = ValidateGid(request.gid(), config.max_gid_bytes);
      !s.ok()) {
    return s;
  }
  const std::string& type = request.transtype();
  if (type != "tcc" && type != "xa" && type != "workflow") {
    if (absl::Status s = ValidateTransType(type); !s.ok()) return s;
    return absl::InvalidArgumentError(
        absl::StrCat("TransType: RegisterBranch is for tcc, xa and workflow "
                     "transactions, not ",
                     type));
  }
  if (absl::Status s =
          CheckName("BranchID", request.branchid(), kMaxBranchIdBytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckRequestSize(request, config); !s.ok()) return s;
  auto data = [&request](const char* key) -> std::string {
    auto it = request.data().find(key);
    return it == request.data().end() ? std::string() : it->second;
  };
  std::vector<storage::v1::BranchRecord> branches;
  auto add = [&](const char* op, const std::string& url,
                 const std::string& status) {
    storage::v1::BranchRecord& b = branches.emplace_back();
    b.set_gid(request.gid());
    b.set_branch_id(request.branchid());
    b.set_op(op);
    b.set_url(url);
    b.set_bin_data(request.busipayload());
    b.set_create_time_ms(now_ms);
    b.set_status(status);
    if (status != txn::kBranchPrepared) b.set_finish_time_ms(now_ms);
  };
  // An empty URL means nothing to call: the branch is done from the start.
  auto initial = [](const std::string& url) {
    return url.empty() ? txn::kBranchSucceed : txn::kBranchPrepared;
  };
  if (type == "tcc") {
    const std::string cancel = data("cancel");
    const std::string confirm = data("confirm");
    for (const auto& [field, url] :
         {std::pair<const char*, const std::string&>{"Data.cancel", cancel},
          {"Data.confirm", confirm}}) {
      if (absl::Status s = CheckOptionalUrl(field, url, config); !s.ok()) {
        return s;
      }
    }
    add("cancel", cancel, initial(cancel));
    add("confirm", confirm, initial(confirm));
  } else if (type == "xa") {
    const std::string url = data("url");
    if (absl::Status s = CheckOptionalUrl("Data.url", url, config); !s.ok()) {
      return s;
    }
    add("rollback", url, initial(url));
    add("commit", url, initial(url));
  } else {  // workflow: the outcome of a step the client ran.
    const std::string op = data("op");
    const std::string status = data("status");
    if (absl::Status s = CheckName("Data.op", op, kMaxOpBytes); !s.ok()) {
      return s;
    }
    if (status != txn::kBranchSucceed && status != txn::kBranchFailed) {
      return absl::InvalidArgumentError(
          absl::StrCat("Data.status: must be succeed or failed, got '",
                       absl::CHexEscape(status.substr(0, 64)), "'"));
    }
    add(op.c_str(), "", status);
  }
  return branches;
}

absl::Status ValidateWorkflowSubmit(const dtmgimp::DtmRequest& request,
                                    const Config& config) {
  if (absl::Status s = ValidateGid(request.gid(), config.max_gid_bytes);
      !s.ok()) {
    return s;
  }
  auto it = request.reqextra().find("status");
  const std::string status =
      it == request.reqextra().end() ? std::string() : it->second;
  if (status != txn::kBranchSucceed && status != txn::kBranchFailed) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ReqExtra.status: a workflow ends succeed or failed, got '",
        absl::CHexEscape(status.substr(0, 64)), "'"));
  }
  if (absl::Status s = CheckRequestSize(request, config); !s.ok()) return s;
  return absl::OkStatus();
}

}  // namespace dtmd
