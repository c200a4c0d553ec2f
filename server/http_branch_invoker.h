// HttpBranchInvoker: calls HTTP branches (http:// and https:// URLs) as DTM
// does, and RoutingBranchInvoker, which sends each call to the HTTP or the
// gRPC invoker by its URL.
//
// A call is a POST of the stored payload as a JSON body, or a GET when the
// payload is empty (an XA branch is always POSTed), to the URL with the
// query parameters gid, trans_type, branch_id and op added; the transaction's
// BranchHeaders go as HTTP headers and RequestTimeout is the deadline. The
// answer is classified as DTM does (HttpAnswer below) and handed on as the
// gRPC status code that means the same to the modes (txn/outcome.h).
//
// All calls run on one event thread through libcurl's multi interface: no
// thread per call. Connections are kept alive and reused, at most
// max_host_connections to one host:port and max_connections in all; calls
// over the bound wait inside libcurl for a free connection (their deadline
// runs meanwhile).
#ifndef DTMD_SERVER_HTTP_BRANCH_INVOKER_H_
#define DTMD_SERVER_HTTP_BRANCH_INVOKER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/branch_invoker.h"

namespace dtmd {

// What an HTTP status and body mean, as DTM's HTTPResp2DtmError reads them,
// in that order: 425 or a body containing "ONGOING": ongoing
// (FAILED_PRECONDITION); 409 or a body containing "FAILURE": failure
// (ABORTED); 200: success (OK); anything else: UNKNOWN, retried. The
// message names the status and holds the start of the body. Pure.
BranchAnswer HttpAnswer(long status, absl::string_view body_start,
                        bool has_ongoing, bool has_failure);

struct HttpInvokerOptions {
  int max_host_connections = 16;
  int max_connections = 256;
  // https: PEM roots the server certificate is verified against (the
  // system's roots when empty), and an optional client certificate + key.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

class HttpBranchInvoker : public BranchInvoker {
 public:
  // Starts the event thread; errors if libcurl cannot start.
  static absl::StatusOr<std::unique_ptr<HttpBranchInvoker>> Create(
      HttpInvokerOptions options = {});
  // Answers every call still in flight with CANCELLED, then stops.
  ~HttpBranchInvoker() override;
  HttpBranchInvoker(const HttpBranchInvoker&) = delete;
  HttpBranchInvoker& operator=(const HttpBranchInvoker&) = delete;

  // `done` runs on the event thread and must not block.
  void Call(BranchCall call, std::function<void(BranchAnswer)> done) override;
  void CancelAll() override;

  struct Transfer;  // one call under way (http_branch_invoker.cc).

 private:
  explicit HttpBranchInvoker(HttpInvokerOptions options);
  void Run();

  const HttpInvokerOptions options_;
  void* multi_ = nullptr;  // CURLM*, used by the event thread only.

  absl::Mutex mu_;
  std::vector<std::unique_ptr<Transfer>> queued_ ABSL_GUARDED_BY(mu_);
  int cancel_requests_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Sends http:// and https:// URLs to `http`, every other URL to `grpc`.
// Neither is owned; both must outlive this.
class RoutingBranchInvoker : public BranchInvoker {
 public:
  RoutingBranchInvoker(BranchInvoker* grpc, BranchInvoker* http)
      : grpc_(grpc), http_(http) {}
  void Call(BranchCall call, std::function<void(BranchAnswer)> done) override;
  void CancelAll() override;

 private:
  BranchInvoker* grpc_;
  BranchInvoker* http_;
};

}  // namespace dtmd

#endif  // DTMD_SERVER_HTTP_BRANCH_INVOKER_H_
