#include "tests/integration/http_sink.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace dtmd::testing {
namespace {

constexpr int kPollMs = 50;

// Waits until fd is readable or the poll interval passes.
bool Readable(int fd) {
  pollfd p = {fd, POLLIN, 0};
  return ::poll(&p, 1, kPollMs) > 0;
}

}  // namespace

HttpSink::~HttpSink() { Stop(); }

absl::StatusOr<int> HttpSink::Start() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (listen_fd_ < 0) return absl::InternalError("socket failed");
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
          0 ||
      ::listen(listen_fd_, 16) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) !=
          0) {
    return absl::InternalError(
        absl::StrCat("cannot listen: ", std::strerror(errno)));
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Serve(); });
  return port_;
}

void HttpSink::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

std::string HttpSink::Url(const std::string& path) const {
  return absl::StrCat("http://127.0.0.1:", port_, path);
}

std::vector<HttpSink::Request> HttpSink::Requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

bool HttpSink::WaitForRequests(size_t count, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return requests_.size() >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

void HttpSink::Serve() {
  while (!stop_) {
    if (!Readable(listen_fd_)) continue;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    HandleConnection(fd);
    ::close(fd);
  }
}

void HttpSink::HandleConnection(int fd) {
  std::string buffer;
  char chunk[4096];
  while (!stop_) {
    if (!Readable(fd)) continue;
    const ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n <= 0) return;  // closed by the client.
    buffer.append(chunk, static_cast<size_t>(n));
    if (!ConsumeRequests(fd, &buffer)) return;
  }
}

bool HttpSink::ConsumeRequests(int fd, std::string* buffer) {
  for (;;) {
    const size_t head_end = buffer->find("\r\n\r\n");
    if (head_end == std::string::npos) return true;
    std::vector<absl::string_view> lines =
        absl::StrSplit(absl::string_view(*buffer).substr(0, head_end), "\r\n");
    Request request;
    std::vector<absl::string_view> first = absl::StrSplit(lines[0], ' ');
    if (first.size() < 2) return false;
    request.method = std::string(first[0]);
    request.path = std::string(first[1]);
    size_t length = 0;
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == absl::string_view::npos) continue;
      const std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
      const absl::string_view value =
          absl::StripAsciiWhitespace(lines[i].substr(colon + 1));
      if (name == "content-length" && !absl::SimpleAtoi(value, &length)) {
        return false;
      }
      if (name == "content-type") request.content_type = std::string(value);
    }
    const size_t body_start = head_end + 4;
    if (buffer->size() < body_start + length) return true;  // read more.
    request.body = buffer->substr(body_start, length);
    buffer->erase(0, body_start + length);
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(std::move(request));
    }
    if (answer_) {
      constexpr absl::string_view kOk =
          "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
      if (::write(fd, kOk.data(), kOk.size()) !=
          static_cast<ssize_t>(kOk.size())) {
        return false;
      }
    }
  }
}

}  // namespace dtmd::testing
