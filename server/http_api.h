// HttpApi: DTM's HTTP API (dtmsvr/api_http.go), JSON under /api/dtmsvr/,
// served by libevent's evhttp on one event-loop thread.
//
// Every route decodes its JSON into the request the gRPC service decodes
// from protobuf (dtmgimp::DtmRequest, DtmBranchRequest, DtmTopicRequest) and
// runs the same operation (server/dtm_service.h), so validation, limits and
// the engine are shared: an HTTP and a gRPC request for one gid are one
// transaction. No handler blocks the loop: the engine answers on its own
// threads and the answer is handed back to the loop; store scans (query,
// all, resetCronTime) run on the engine's thread pool.
#ifndef DTMD_SERVER_HTTP_API_H_
#define DTMD_SERVER_HTTP_API_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dtmgimp.pb.h"
#include "server/config.h"
#include "server/engine.h"
#include "server/metrics.h"
#include "server/security.h"

namespace dtmd {

// DTM's HTTP answer for a status: 200 OK; 409 ABORTED (dtm_result FAILURE);
// 425 FAILED_PRECONDITION (dtm_result ONGOING); 400 INVALID_ARGUMENT (DTM:
// 500); 401 UNAUTHENTICATED; 404 NOT_FOUND; 429 RESOURCE_EXHAUSTED; 503
// UNAVAILABLE; 500 otherwise.
int HttpStatusFor(const absl::Status& status);

// The body of a non-OK answer: {"message": ...} plus "dtm_result" for 409
// and 425, as DTM's dtmutil.WrapHandler2 writes it.
std::string HttpErrorBody(const absl::Status& status);

// A transaction as DTM's JSON (prepare, submit, abort, forceStop,
// prepareWorkflow, resetNextCronTime) decoded into the gRPC request:
// gid, trans_type, custom_data, steps (array of string maps, kept as its
// JSON text), payloads (strings, then each step's "data" as DTM appends
// them), query_prepared, rollback_reason, req_extra, wait_result,
// timeout_to_fail, request_timeout, retry_interval, retry_limit,
// branch_headers. Other members are ignored, as Go's decoder does; null is
// an absent member. INVALID_ARGUMENT naming the member for bad JSON or a
// member of the wrong type.
absl::StatusOr<dtmgimp::DtmRequest> DtmRequestFromJson(absl::string_view body,
                                                       const Config& config);

// registerBranch's body, a JSON object of strings (DTM: map[string]string):
// gid, trans_type, branch_id, op, data (the payload); every member also
// goes into Data (confirm, cancel, url, status, ...).
absl::StatusOr<dtmgimp::DtmBranchRequest> BranchRequestFromJson(
    absl::string_view body);

class HttpApi {
 public:
  // Serves on host:port (port -1: the OS chooses). `engine` and `auth`
  // (null: open) must outlive the HttpApi. UNAVAILABLE if it cannot listen.
  static absl::StatusOr<std::unique_ptr<HttpApi>> Start(
      Engine* engine, const TokenAuthenticator* auth, const std::string& host,
      int port);
  // The same, counting requests in `metrics` (null: not counted), which
  // must outlive the HttpApi.
  static absl::StatusOr<std::unique_ptr<HttpApi>> Start(
      Engine* engine, const TokenAuthenticator* auth, Metrics* metrics,
      const std::string& host, int port);
  ~HttpApi();

  int port() const { return port_; }

  // Closes the listening socket; requests in flight still get answers.
  void StopAccepting();
  // Stops the loop after a short flush of answers already handed to it,
  // and closes every connection. Answers arriving later are dropped.
  // Idempotent; also done by the destructor.
  void Stop();

  struct Loop;  // the event loop and what handlers share; internal.

 private:
  HttpApi() = default;

  std::shared_ptr<Loop> loop_;
  std::thread thread_;
  int port_ = 0;
  bool stopped_ = false;
};

}  // namespace dtmd

#endif  // DTMD_SERVER_HTTP_API_H_
