// HttpSink: a tiny HTTP/1.1 server on a loopback port for tests, run by one
// thread: it records each request (method, path, Content-Type, body) and
// answers 200 with an empty body, keeping the connection open. In silent
// mode it reads requests but never answers (a hung webhook).
#ifndef DTMD_TESTS_INTEGRATION_HTTP_SINK_H_
#define DTMD_TESTS_INTEGRATION_HTTP_SINK_H_

#include <atomic>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace dtmd::testing {

class HttpSink {
 public:
  struct Request {
    std::string method;
    std::string path;
    std::string content_type;
    std::string body;
  };

  explicit HttpSink(bool answer = true) : answer_(answer) {}
  ~HttpSink();  // Stops the thread.
  HttpSink(const HttpSink&) = delete;
  HttpSink& operator=(const HttpSink&) = delete;

  // Listens on 127.0.0.1 (a port the OS chooses); returns the port.
  absl::StatusOr<int> Start();
  void Stop();
  std::string Url(const std::string& path) const;

  std::vector<Request> Requests() const;
  // Whether `count` requests arrived within `timeout`.
  bool WaitForRequests(size_t count, absl::Duration timeout) const;

 private:
  void Serve();
  void HandleConnection(int fd);
  // Parses and answers the complete requests at the start of `buffer`,
  // removing them; false when the connection must close.
  bool ConsumeRequests(int fd, std::string* buffer);

  const bool answer_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable absl::Mutex mu_;
  std::vector<Request> requests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dtmd::testing

#endif  // DTMD_TESTS_INTEGRATION_HTTP_SINK_H_
