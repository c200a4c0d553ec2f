// Server: assembles one dtmd process (store, engine, services, gRPC server)
// and takes it down in order.
#ifndef DTMD_SERVER_SERVER_H_
#define DTMD_SERVER_SERVER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "grpcpp/server.h"
#include "server/admin_service.h"
#include "server/branch_invoker.h"
#include "server/config.h"
#include "server/dtm_service.h"
#include "server/engine.h"
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

 private:
  Server() = default;

  int port_ = 0;
  bool shut_down_ = false;
  // Destroyed in reverse order: the gRPC server, then the engine, then the
  // store the engine writes to.
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<GrpcBranchInvoker> invoker_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<DtmService> dtm_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
};

}  // namespace dtmd

#endif  // DTMD_SERVER_SERVER_H_
