#include "tests/integration/http_branch_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace dtmd::testing {
namespace {

constexpr int kPollMs = 20;

bool Readable(int fd) {
  pollfd p = {fd, POLLIN, 0};
  return ::poll(&p, 1, kPollMs) > 0;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string Decode(absl::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && HexValue(in[i + 1]) >= 0 &&
        HexValue(in[i + 2]) >= 0) {
      out.push_back(
          static_cast<char>(HexValue(in[i + 1]) * 16 + HexValue(in[i + 2])));
      i += 2;
    } else {
      out.push_back(in[i] == '+' ? ' ' : in[i]);
    }
  }
  return out;
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 409:
      return "Conflict";
    case 425:
      return "Too Early";
    default:
      return "Status";
  }
}

}  // namespace

HttpBranchServer::~HttpBranchServer() { Stop(); }

absl::StatusOr<int> HttpBranchServer::Start() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (listen_fd_ < 0) return absl::InternalError("socket failed");
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
          0 ||
      ::listen(listen_fd_, 128) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) !=
          0) {
    return absl::InternalError(
        absl::StrCat("cannot listen: ", std::strerror(errno)));
  }
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { Accept(); });
  return port_;
}

void HttpBranchServer::Stop() {
  stop_ = true;
  if (accept_thread_.joinable()) accept_thread_.join();
  std::vector<Connection> threads;
  {
    absl::MutexLock lock(&mu_);
    threads.swap(threads_);
  }
  for (Connection& c : threads) c.thread.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

void HttpBranchServer::SetHandler(Handler handler) {
  absl::MutexLock lock(&mu_);
  handler_ = std::move(handler);
}

std::string HttpBranchServer::Url(const std::string& path) const {
  return absl::StrCat("http://127.0.0.1:", port_, path);
}

std::vector<HttpBranchServer::Request> HttpBranchServer::Requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

std::vector<HttpBranchServer::Request> HttpBranchServer::RequestsFor(
    const std::string& gid) const {
  std::vector<Request> out;
  for (Request& r : Requests()) {
    auto it = r.query.find("gid");
    if (it != r.query.end() && it->second == gid) out.push_back(std::move(r));
  }
  return out;
}

bool HttpBranchServer::WaitForRequests(size_t count,
                                       absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return requests_.size() >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

void HttpBranchServer::Accept() {
  while (!stop_) {
    if (!Readable(listen_fd_)) continue;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    const int connection = ++connections_;
    auto done = std::make_shared<std::atomic<bool>>(false);
    absl::MutexLock lock(&mu_);
    for (auto it = threads_.begin(); it != threads_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
    threads_.push_back({std::thread([this, fd, connection, done] {
                          Serve(fd, connection);
                          ::close(fd);
                          *done = true;
                        }),
                        done});
  }
}

HttpBranchServer::Reply HttpBranchServer::Answer(const Request& request) {
  Handler handler;
  {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
    handler = handler_;
  }
  return handler ? handler(request) : Reply{};
}

void HttpBranchServer::Serve(int fd, int connection) {
  std::string buffer;
  char chunk[4096];
  while (!stop_) {
    const size_t head_end = buffer.find("\r\n\r\n");
    if (head_end == std::string::npos) {
      if (!Readable(fd)) continue;
      const ssize_t n = ::read(fd, chunk, sizeof(chunk));
      if (n <= 0) return;  // closed by the client.
      buffer.append(chunk, static_cast<size_t>(n));
      continue;
    }
    std::vector<absl::string_view> lines =
        absl::StrSplit(absl::string_view(buffer).substr(0, head_end), "\r\n");
    std::vector<absl::string_view> first = absl::StrSplit(lines[0], ' ');
    if (first.size() < 2) return;
    Request request;
    request.connection = connection;
    request.method = std::string(first[0]);
    const absl::string_view target = first[1];
    const size_t mark = target.find('?');
    request.path = std::string(target.substr(0, mark));
    if (mark != absl::string_view::npos) {
      for (absl::string_view pair :
           absl::StrSplit(target.substr(mark + 1), '&', absl::SkipEmpty())) {
        std::pair<absl::string_view, absl::string_view> kv =
            absl::StrSplit(pair, absl::MaxSplits('=', 1));
        request.query[Decode(kv.first)] = Decode(kv.second);
      }
    }
    size_t length = 0;
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == absl::string_view::npos) continue;
      const std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
      const std::string value(
          absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
      if (name == "content-length" && !absl::SimpleAtoi(value, &length)) {
        return;
      }
      request.headers[name] = value;
    }
    const size_t body_start = head_end + 4;
    while (buffer.size() < body_start + length && !stop_) {
      if (!Readable(fd)) continue;
      const ssize_t n = ::read(fd, chunk, sizeof(chunk));
      if (n <= 0) return;
      buffer.append(chunk, static_cast<size_t>(n));
    }
    if (stop_) return;
    request.body = buffer.substr(body_start, length);
    buffer.erase(0, body_start + length);
    const Reply reply = Answer(request);
    const absl::Time until = absl::Now() + reply.delay;
    while (absl::Now() < until) {
      if (stop_) return;
      absl::SleepFor(absl::Milliseconds(5));
    }
    const std::string out =
        absl::StrCat("HTTP/1.1 ", reply.status, " ", Reason(reply.status),
                     "\r\nContent-Type: application/json\r\nContent-Length: ",
                     reply.body.size(), "\r\n\r\n", reply.body);
    if (::write(fd, out.data(), out.size()) !=
        static_cast<ssize_t>(out.size())) {
      return;
    }
  }
}

}  // namespace dtmd::testing
