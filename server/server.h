// Server: assembles one dtmd process (store, engine, services, gRPC server)
// and takes it down in order.
#ifndef DTMD_SERVER_SERVER_H_
#define DTMD_SERVER_SERVER_H_

#include <atomic>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/server.h"
#include "server/admin_service.h"
#include "server/branch_invoker.h"
#include "server/config.h"
#include "server/dtm_service.h"
#include "server/engine.h"
#include "server/http_api.h"
#include "server/http_branch_invoker.h"
#include "server/metrics.h"
#include "server/retention.h"
#include "server/security.h"
#include "storage/store.h"

namespace dtmd {

class Server {
 public:
  // Opens the store, resumes unfinished transactions, starts serving.
  // Errors (store locked or unreadable, port taken) come back as a status.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const Config& config);

  // Stops accepting, answers waiting callers, finishes in-flight replies,
  // flushes the store. Idempotent; also done by the destructor.
  void Shutdown();
  ~Server();

  int port() const { return port_; }
  // The plaintext health port (--health_port), 0 if there is none.
  int health_port() const { return health_port_; }

  // Re-reads --auth_token_file (on SIGHUP): the new tokens apply to calls
  // from now on; when the file cannot be read or holds no token, the old
  // tokens stay and an error is logged. Nothing without a token file.
  void ReloadTokens();
  // The HTTP API's port (0 when it is off).
  int http_port() const { return http_api_ ? http_api_->port() : 0; }

  // The metrics port (0 when metrics are off).
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }

 private:
  Server() = default;
  // Runs on store_watch_: mirrors the store's write health into gRPC health
  // (NOT_SERVING while it cannot write) and exits the process with
  // kExitStoreFailed when the store has stopped writing for good.
  void WatchStore();
  void StopWatchingStore();
  // Sets the metrics' sampled gauges (runs at each scrape).
  void SampleMetrics();

  int port_ = 0;
  int health_port_ = 0;
  bool shut_down_ = false;
  // Destroyed in reverse order: the gRPC server, then the engine, then the
  // store the engine writes to, then the metrics all of them record into.
  std::unique_ptr<Metrics> metrics_;  // null when metrics are off.
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<GrpcBranchInvoker> grpc_invoker_;
  std::unique_ptr<HttpBranchInvoker> http_invoker_;
  std::unique_ptr<RoutingBranchInvoker> invoker_;  // routes to the two.
  std::unique_ptr<TokenAuthenticator> auth_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Retention> retention_;  // null: --retention=0.
  std::unique_ptr<DtmService> dtm_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<HttpApi> http_api_;  // null: --http_port=0 or TLS.
  absl::Mutex watch_mu_;
  bool watch_stop_ ABSL_GUARDED_BY(watch_mu_) = false;
  std::thread store_watch_;
  // Retention's deleted count at the last scrape.
  std::atomic<int64_t> retention_deleted_sampled_{0};
};

// dtmd's exit code when its store stopped writing for good (a failed WAL
// sync): the restart recovers from what is on disk.
inline constexpr int kExitStoreFailed = 3;

}  // namespace dtmd

#endif  // DTMD_SERVER_SERVER_H_
