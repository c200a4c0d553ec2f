// EvHttpServer: a minimal HTTP/1.1 server on libevent's evhttp, one event
// loop thread, for the bench's HTTP branch server and dtmd-relay's HTTP
// submit route. Connections are kept alive; a handler answers at once or
// later, from any thread, with Reply.
#ifndef DTMD_TESTS_BENCH_EVHTTP_SERVER_H_
#define DTMD_TESTS_BENCH_EVHTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace dtmd::bench {

class EvHttpServer {
 public:
  // A request: its method ("GET", "POST", ...), path (no query) and body.
  // Runs on the loop thread; must not block. `id` names the request for
  // Reply on `server`.
  using Handler = std::function<void(
      EvHttpServer* server, uint64_t id, const std::string& method,
      const std::string& path, std::string body)>;

  // Listens on host:port (0: the OS chooses).
  static absl::StatusOr<std::unique_ptr<EvHttpServer>> Start(
      const std::string& host, int port, Handler handler);
  ~EvHttpServer();
  EvHttpServer(const EvHttpServer&) = delete;
  EvHttpServer& operator=(const EvHttpServer&) = delete;

  int port() const { return port_; }

  // Answers request `id` once, with `code` and a JSON `body`, from any
  // thread. libevent drops the answer if its client has gone.
  void Reply(uint64_t id, int code, std::string body);

  struct Loop;  // internal.

 private:
  EvHttpServer() = default;

  std::shared_ptr<Loop> loop_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace dtmd::bench

#endif  // DTMD_TESTS_BENCH_EVHTTP_SERVER_H_
