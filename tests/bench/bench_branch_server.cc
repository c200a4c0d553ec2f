#include "tests/bench/bench_branch_server.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/byte_buffer.h"

namespace dtmd::bench {
namespace {

// Reads the request, answers at once, deletes itself when done.
class Reactor : public grpc::ServerGenericBidiReactor {
 public:
  Reactor(grpc::GenericCallbackServerContext* context,
          std::atomic<int64_t>* calls)
      : unavailable_(absl::EndsWith(context->method(), "/Unavailable")),
        calls_(calls) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request"));
      return;
    }
    calls_->fetch_add(1, std::memory_order_relaxed);
    if (unavailable_) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "bench: unavailable"));
      return;
    }
    // An empty message: a ByteBuffer holding one empty slice.
    grpc::Slice empty;
    response_ = grpc::ByteBuffer(&empty, 1);
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
  }

  void OnDone() override { delete this; }

 private:
  const bool unavailable_;
  std::atomic<int64_t>* const calls_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
};

class Service : public grpc::CallbackGenericService {
 public:
  explicit Service(std::shared_ptr<std::atomic<int64_t>> calls)
      : calls_(std::move(calls)) {}
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    return new Reactor(context, calls_.get());
  }

 private:
  std::shared_ptr<std::atomic<int64_t>> calls_;
};

}  // namespace

BenchBranchServer::BenchBranchServer()
    : calls_(std::make_shared<std::atomic<int64_t>>(0)),
      service_(std::make_unique<Service>(calls_)) {}

BenchBranchServer::~BenchBranchServer() { Shutdown(); }

absl::StatusOr<int> BenchBranchServer::Start(const std::string& address) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  return port;
}

absl::StatusOr<int> BenchBranchServer::StartHttp(const std::string& host,
                                                 int port) {
  absl::StatusOr<std::unique_ptr<EvHttpServer>> started = EvHttpServer::Start(
      host, port,
      [calls = calls_](EvHttpServer* server, uint64_t id, const std::string&,
                       const std::string& path, std::string) {
        calls->fetch_add(1, std::memory_order_relaxed);
        if (absl::EndsWith(path, "/Unavailable")) {
          server->Reply(id, 503, R"({"message":"bench: unavailable"})");
        } else {
          server->Reply(id, 200, R"({"dtm_result":"SUCCESS"})");
        }
      });
  if (!started.ok()) return started.status();
  http_ = *std::move(started);
  return http_->port();
}

void BenchBranchServer::Shutdown() {
  http_.reset();
  if (server_ == nullptr) return;
  server_->Shutdown();
  server_.reset();
}

}  // namespace dtmd::bench
