#include "server/branch_invoker.h"

#include <chrono>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/channel_arguments.h"

namespace dtmd {

absl::StatusOr<BranchTarget> ParseBranchUrl(absl::string_view url) {
  size_t slash = url.find('/');
  if (slash == absl::string_view::npos || slash == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "branch URL '", url, "' is not host:port/package.Service/Method"));
  }
  absl::string_view target = url.substr(0, slash);
  absl::string_view method = url.substr(slash);  // "/pkg.Svc/Method"
  size_t colon = target.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(target.substr(colon + 1), &port) || port <= 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("branch URL '", url, "' has no valid host:port"));
  }
  size_t second = method.find('/', 1);
  if (second == absl::string_view::npos || second == 1 ||
      second + 1 >= method.size() ||
      method.find('/', second + 1) != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "branch URL '", url, "' has no /package.Service/Method path"));
  }
  return BranchTarget{std::string(target), std::string(method)};
}

std::shared_ptr<grpc::GenericStub> GrpcBranchInvoker::StubFor(
    const std::string& target) {
  absl::MutexLock lock(&mu_);
  auto it = stubs_.find(target);
  if (it != stubs_.end()) return it->second;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  // Reconnect quickly after a branch service restarts.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  auto stub = std::make_shared<grpc::GenericStub>(grpc::CreateCustomChannel(
      target, grpc::InsecureChannelCredentials(), args));
  stubs_.emplace(target, stub);
  return stub;
}

namespace {
// Everything one in-flight call owns; deleted by its completion.
struct InFlightCall {
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  std::shared_ptr<grpc::GenericStub> stub;
  std::function<void(BranchAnswer)> done;
};
}  // namespace

void GrpcBranchInvoker::Call(BranchCall call,
                             std::function<void(BranchAnswer)> done) {
  absl::StatusOr<BranchTarget> target = ParseBranchUrl(call.url);
  if (!target.ok()) {
    // Validated at submission, so only a record written by an older version
    // could get here; it can never succeed, report it as unknown.
    done(BranchAnswer{static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT),
                      std::string(target.status().message())});
    return;
  }
  auto* in_flight = new InFlightCall;
  in_flight->stub = StubFor(target->target);
  in_flight->done = std::move(done);
  in_flight->context.set_deadline(std::chrono::system_clock::now() +
                                  std::chrono::milliseconds(call.timeout_ms));
  for (const auto& [key, value] : call.metadata) {
    in_flight->context.AddMetadata(key, value);
  }
  grpc::Slice slice(call.payload);
  in_flight->request = grpc::ByteBuffer(&slice, 1);
  in_flight->stub->UnaryCall(
      &in_flight->context, target->method, grpc::StubOptions(),
      &in_flight->request, &in_flight->response,
      [in_flight](grpc::Status status) {
        BranchAnswer answer{static_cast<int>(status.error_code()),
                            status.error_message()};
        std::function<void(BranchAnswer)> done = std::move(in_flight->done);
        delete in_flight;
        done(std::move(answer));
      });
}

}  // namespace dtmd
