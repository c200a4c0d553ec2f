// BenchBranchServer: the business service of the benchmark. It answers every
// unary method at once: OK, except methods whose name ends in "/Unavailable",
// which answer UNAVAILABLE (for transactions that must keep retrying). It
// keeps no state beyond a call counter, so its cost is the floor of a branch.
// StartHttp adds the same over HTTP (evhttp): 200 {"dtm_result":"SUCCESS"}
// to every request, 503 to paths ending in "/Unavailable".
#ifndef DTMD_TESTS_BENCH_BENCH_BRANCH_SERVER_H_
#define DTMD_TESTS_BENCH_BENCH_BRANCH_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/server.h"
#include "tests/bench/evhttp_server.h"

namespace dtmd::bench {

class BenchBranchServer {
 public:
  BenchBranchServer();
  ~BenchBranchServer();

  // Listens on `address` (host:port; port 0 lets the OS choose). Returns the
  // bound port.
  absl::StatusOr<int> Start(const std::string& address);
  // Listens for HTTP on host:port (port 0 lets the OS choose). Returns the
  // bound port.
  absl::StatusOr<int> StartHttp(const std::string& host, int port);
  void Shutdown();

  int64_t calls() const { return calls_->load(); }

 private:
  std::shared_ptr<std::atomic<int64_t>> calls_;
  std::unique_ptr<grpc::CallbackGenericService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<EvHttpServer> http_;
};

}  // namespace dtmd::bench

#endif  // DTMD_TESTS_BENCH_BENCH_BRANCH_SERVER_H_
