// HttpBranchServer: a small HTTP/1.1 branch service for tests, on a loopback
// port. It records every request (method, path, decoded query parameters,
// headers, body, which connection it came on) and answers from a handler, so
// a test decides the status, body and delay of each answer. Connections are
// kept alive; each is served by its own thread (test code: simplicity over
// scale).
//
//   HttpBranchServer http;
//   ASSERT_TRUE(http.Start().ok());
//   http.SetHandler([](const HttpBranchServer::Request& r) {
//     return HttpBranchServer::Reply{r.path == "/fail" ? 409 : 200, ""};
//   });
//   saga.Add(http.Url("/charge"), http.Url("/refund"), "{}");
#ifndef DTMD_TESTS_INTEGRATION_HTTP_BRANCH_SERVER_H_
#define DTMD_TESTS_INTEGRATION_HTTP_BRANCH_SERVER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace dtmd::testing {

class HttpBranchServer {
 public:
  struct Request {
    std::string method;                          // GET, POST, ...
    std::string path;                            // without the query.
    std::map<std::string, std::string> query;    // decoded.
    std::map<std::string, std::string> headers;  // names in lower case.
    std::string body;
    int connection = 0;  // 1 for the first connection accepted, ...
  };
  struct Reply {
    int status = 200;
    std::string body = R"({"dtm_result":"SUCCESS"})";
    absl::Duration delay = absl::ZeroDuration();
  };
  using Handler = std::function<Reply(const Request&)>;

  HttpBranchServer() = default;
  ~HttpBranchServer();  // Stop().
  HttpBranchServer(const HttpBranchServer&) = delete;
  HttpBranchServer& operator=(const HttpBranchServer&) = delete;

  // Listens on 127.0.0.1 (a port the OS chooses); returns the port.
  absl::StatusOr<int> Start();
  // Closes every connection and joins the threads.
  void Stop();
  // Replaces the handler (default: 200 with DTM's SUCCESS body).
  void SetHandler(Handler handler);

  std::string Url(const std::string& path) const;
  std::vector<Request> Requests() const;
  // The requests whose query has gid=`gid`, in arrival order.
  std::vector<Request> RequestsFor(const std::string& gid) const;
  bool WaitForRequests(size_t count, absl::Duration timeout) const;
  int connections() const { return connections_.load(); }

 private:
  void Accept();
  void Serve(int fd, int connection);
  Reply Answer(const Request& request);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread accept_thread_;
  mutable absl::Mutex mu_;
  Handler handler_ ABSL_GUARDED_BY(mu_);
  std::vector<Request> requests_ ABSL_GUARDED_BY(mu_);
  // One per connection; joined once done (a long test makes many).
  struct Connection {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Connection> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dtmd::testing

#endif  // DTMD_TESTS_INTEGRATION_HTTP_BRANCH_SERVER_H_
