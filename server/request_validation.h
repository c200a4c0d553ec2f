// Turns client requests into store records, refusing bad input with
// INVALID_ARGUMENT naming the field. Pure; thread-safe.
#ifndef DTMD_SERVER_REQUEST_VALIDATION_H_
#define DTMD_SERVER_REQUEST_VALIDATION_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dtmd/storage/v1/records.pb.h"
#include "dtmgimp.pb.h"
#include "server/config.h"
#include "server/txn/msg.h"

namespace dtmd {

// Gid: 1..max_bytes bytes of printable ASCII (0x21..0x7e).
absl::Status ValidateGid(absl::string_view gid, int max_bytes);

// TransType: one of saga, tcc, msg, xa, workflow.
absl::Status ValidateTransType(absl::string_view trans_type);

// INVALID_ARGUMENT for a request naming `requested` for a gid stored as a
// `stored` transaction.
absl::Status TransTypeMismatch(absl::string_view gid, absl::string_view stored,
                               absl::string_view requested);

// Timings 0..2^30 s, RequestTimeout at most config.max_request_timeout_s,
// RetryLimit >= 0; BranchHeaders that gRPC accepts as metadata (at most
// config.max_branch_headers entries and config.max_branch_headers_bytes as
// gRPC counts them, valid names and values) and that do not shadow the dtm-*
// headers. INVALID_ARGUMENT naming the field otherwise.
absl::Status ValidateOptions(const dtmgimp::DtmTransOptions& options,
                             const Config& config);

struct NewTransaction {
  storage::v1::TransRecord trans;
  std::vector<storage::v1::BranchRecord> branches;
};

// The subscriber URLs of a topic (a msg step "topic://NAME"); NOT_FOUND
// when it has none.
using TopicResolver = txn::TopicResolver;

// Builds a new transaction of any TransType in `status` (prepared or
// submitted) from a Prepare, Submit or PrepareWorkflow request: validates
// everything (Steps and payloads for saga and msg, none for tcc, xa and
// workflow; a workflow's CustomedData; QueryPrepared URLs), creates the
// branches the request defines (msg topics expanded through `topics`),
// resolves the options against the configured defaults (TimeoutToFail: the
// configured one for tcc, xa and msg; none for saga unless set; never for
// workflow), sets create time and the first next_cron_time (for a prepared
// transaction with a timeout, no later than its deadline).
absl::StatusOr<NewTransaction> BuildTransaction(
    const dtmgimp::DtmRequest& request, absl::string_view status,
    int64_t now_ms, const Config& config, const TopicResolver& topics);

// BuildTransaction for a saga request.
absl::StatusOr<NewTransaction> BuildSaga(const dtmgimp::DtmRequest& request,
                                         absl::string_view status,
                                         int64_t now_ms, const Config& config);

// Topic: what a msg step may name as `topic://NAME` (txn/msg.h): 1..128
// bytes of printable ASCII (0x21..0x7e).
absl::Status ValidateTopic(absl::string_view topic);

// Remark: free text kept with a subscription, up to this many bytes.
inline constexpr size_t kMaxRemarkBytes = 1024;

enum class TopicRequestKind { kSubscribe, kUnsubscribe, kDeleteTopic };

// A topic request of `kind`: Topic always (ValidateTopic); URL non-empty and
// at most config.max_url_bytes for Subscribe and Unsubscribe, and for
// Subscribe a branch URL as saga steps have (txn::ParseBranchUrl), Remark at
// most kMaxRemarkBytes. INVALID_ARGUMENT naming the field otherwise.
absl::Status ValidateTopicRequest(const dtmgimp::DtmTopicRequest& request,
                                  TopicRequestKind kind, const Config& config);

// The branch records a RegisterBranch request defines: tcc: "cancel" then
// "confirm" (Data.cancel, Data.confirm); xa: "rollback" then "commit", both
// Data.url; each with BusiPayload, "prepared" (or "succeed" when its URL is
// empty: nothing to call). workflow: one record of a step's outcome (op
// Data.op, status Data.status: succeed or failed, BusiPayload), never
// called. INVALID_ARGUMENT naming the field otherwise, and for other trans
// types.
absl::StatusOr<std::vector<storage::v1::BranchRecord>> BuildRegistration(
    const dtmgimp::DtmBranchRequest& request, int64_t now_ms,
    const Config& config);

// A workflow's Submit: ReqExtra.status succeed or failed.
absl::Status ValidateWorkflowSubmit(const dtmgimp::DtmRequest& request,
                                    const Config& config);

}  // namespace dtmd

#endif  // DTMD_SERVER_REQUEST_VALIDATION_H_
