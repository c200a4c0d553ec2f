// Transaction options shared by dtmd's C++ client helpers (Saga, Tcc, Msg,
// WorkflowClient). They become the request's DtmTransOptions, except the two
// client-side fields at the end.
#ifndef DTMD_CLIENT_STUBS_CPP_DTMD_OPTIONS_H_
#define DTMD_CLIENT_STUBS_CPP_DTMD_OPTIONS_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace dtmd::client {

// The client-side deadline used when none is given.
inline constexpr std::chrono::milliseconds kDefaultCallTimeout{30000};

struct TransOptions {
  // With true, Submit returns when the transaction ended (OK when it
  // succeeded, ABORTED with the rollback reason when it failed) or, if it has
  // not ended after the coordinator's first round of branch calls,
  // FAILED_PRECONDITION.
  bool wait_result = false;
  // In seconds; 0 = the coordinator's default.
  int64_t timeout_to_fail = 0;
  int64_t retry_interval = 0;
  int64_t request_timeout = 0;
  // Saga only: retried action calls after which the saga gives up and
  // compensates (0 = no limit).
  int64_t retry_limit = 0;
  // Metadata the coordinator adds to every branch call of the transaction;
  // the client adds it to the branch calls it makes itself (TCC Try). Keys
  // must be valid gRPC metadata keys (lower case).
  std::map<std::string, std::string> branch_headers;

  // Client side: the deadline of each RPC to the coordinator. With
  // wait_result it must cover the coordinator's wait (RequestTimeout + 2 s
  // per round in DTM).
  std::chrono::milliseconds call_timeout = kDefaultCallTimeout;
  // Client side: the coordinator's address as the branches should see it,
  // sent as metadata dtm-dtm on the branch calls the client makes itself
  // (TCC Try, msg QueryPrepared). May be empty.
  std::string dtm_address;
};

}  // namespace dtmd::client

#endif  // DTMD_CLIENT_STUBS_CPP_DTMD_OPTIONS_H_
