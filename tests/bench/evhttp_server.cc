#include "tests/bench/evhttp_server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <deque>
#include <mutex>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace dtmd::bench {

struct EvHttpServer::Loop {
  Handler handler;
  EvHttpServer* owner = nullptr;
  event_base* base = nullptr;
  evhttp* http = nullptr;
  event* wake = nullptr;
  std::thread::id thread_id;
  // Requests waiting for an answer (loop thread only): id -> request. A
  // request stays valid until answered even if its client has gone
  // (libevent then frees it at the answer instead of sending it).
  uint64_t next_id = 1;
  absl::flat_hash_map<uint64_t, evhttp_request*> pending;

  absl::Mutex mu;
  std::deque<std::function<void()>> posted ABSL_GUARDED_BY(mu);

  void Post(std::function<void()> fn) {
    absl::MutexLock lock(&mu);
    posted.push_back(std::move(fn));
    if (posted.size() == 1) event_active(wake, EV_READ, 0);
  }

  void Send(uint64_t id, int code, const std::string& body) {
    auto it = pending.find(id);
    if (it == pending.end()) return;
    evhttp_request* req = it->second;
    pending.erase(it);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evbuffer* buf = evbuffer_new();
    evbuffer_add(buf, body.data(), body.size());
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", buf);
    evbuffer_free(buf);
  }

  static void OnWake(evutil_socket_t, short, void* arg) {
    Loop* loop = static_cast<Loop*>(arg);
    std::deque<std::function<void()>> batch;
    {
      absl::MutexLock lock(&loop->mu);
      batch.swap(loop->posted);
    }
    for (std::function<void()>& fn : batch) fn();
  }

  static void OnRequest(evhttp_request* req, void* arg) {
    Loop* loop = static_cast<Loop*>(arg);
    const uint64_t id = loop->next_id++;
    loop->pending[id] = req;
    const char* method = "OTHER";
    switch (evhttp_request_get_command(req)) {
      case EVHTTP_REQ_GET:
        method = "GET";
        break;
      case EVHTTP_REQ_POST:
        method = "POST";
        break;
      default:
        break;
    }
    const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
    const char* path = uri == nullptr ? nullptr : evhttp_uri_get_path(uri);
    evbuffer* in = evhttp_request_get_input_buffer(req);
    std::string body(evbuffer_get_length(in), '\0');
    if (!body.empty()) evbuffer_copyout(in, body.data(), body.size());
    loop->handler(loop->owner, id, method, path == nullptr ? "" : path,
                  std::move(body));
  }
};

absl::StatusOr<std::unique_ptr<EvHttpServer>> EvHttpServer::Start(
    const std::string& host, int port, Handler handler) {
  static std::once_flag threads_once;
  std::call_once(threads_once, [] { evthread_use_pthreads(); });
  std::unique_ptr<EvHttpServer> server(new EvHttpServer());
  auto loop = std::make_shared<Loop>();
  server->loop_ = loop;
  loop->handler = std::move(handler);
  loop->owner = server.get();
  loop->base = event_base_new();
  if (loop->base == nullptr) return absl::InternalError("event_base_new");
  loop->wake = event_new(loop->base, -1, EV_PERSIST, &Loop::OnWake, loop.get());
  loop->http = evhttp_new(loop->base);
  if (loop->wake == nullptr || loop->http == nullptr) {
    return absl::InternalError("cannot set up the HTTP server");
  }
  evhttp_set_timeout(loop->http, 120);
  evhttp_set_gencb(loop->http, &Loop::OnRequest, loop.get());
  evhttp_bound_socket* socket = evhttp_bind_socket_with_handle(
      loop->http, host.c_str(), static_cast<uint16_t>(port));
  if (socket == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", host, ":", port));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  getsockname(evhttp_bound_socket_get_fd(socket),
              reinterpret_cast<sockaddr*>(&addr), &len);
  server->port_ = ntohs(addr.ss_family == AF_INET6
                            ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                            : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  server->thread_ = std::thread([loop] {
    loop->thread_id = std::this_thread::get_id();
    event_base_loop(loop->base, EVLOOP_NO_EXIT_ON_EMPTY);
  });
  return server;
}

void EvHttpServer::Reply(uint64_t id, int code, std::string body) {
  Loop* loop = loop_.get();
  if (std::this_thread::get_id() == loop->thread_id) {
    loop->Send(id, code, body);
    return;
  }
  loop->Post(
      [loop, id, code, body = std::move(body)] { loop->Send(id, code, body); });
}

EvHttpServer::~EvHttpServer() {
  if (loop_ == nullptr || loop_->base == nullptr) return;
  if (thread_.joinable()) {
    event_base_loopbreak(loop_->base);
    thread_.join();
  }
  if (loop_->http != nullptr) evhttp_free(loop_->http);
  if (loop_->wake != nullptr) event_free(loop_->wake);
  event_base_free(loop_->base);
  loop_->base = nullptr;
}

}  // namespace dtmd::bench
