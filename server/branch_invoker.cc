#include "server/branch_invoker.h"

#include <chrono>
#include <utility>

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/channel_arguments.h"
#include "server/txn/branch_url.h"

namespace dtmd {

namespace {

std::shared_ptr<grpc::GenericStub> MakeStub(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  // Reconnect quickly after a branch service restarts.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  return std::make_shared<grpc::GenericStub>(grpc::CreateCustomChannel(
      target, grpc::InsecureChannelCredentials(), args));
}

}  // namespace

GrpcBranchInvoker::GrpcBranchInvoker(ChannelCache::Options channels,
                                     const Clock* clock)
    : channels_(channels, clock, MakeStub) {}

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
  absl::StatusOr<txn::BranchTarget> target = txn::ParseBranchUrl(call.url);
  if (!target.ok()) {
    // Validated at submission, so only a record written by an older version
    // could get here; it can never succeed, report it as unknown.
    done(BranchAnswer{static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT),
                      std::string(target.status().message())});
    return;
  }
  auto* in_flight = new InFlightCall;
  in_flight->stub = channels_.Get(target->ChannelTarget());
  in_flight->done = std::move(done);
  in_flight->context.set_deadline(std::chrono::system_clock::now() +
                                  std::chrono::milliseconds(call.timeout_ms));
  for (const auto& [key, value] : call.metadata) {
    in_flight->context.AddMetadata(key, value);
  }
  grpc::Slice slice(call.payload);
  in_flight->request = grpc::ByteBuffer(&slice, 1);
  {
    absl::MutexLock lock(&calls_mu_);
    in_flight_.insert(&in_flight->context);
  }
  in_flight->stub->UnaryCall(
      &in_flight->context, target->method, grpc::StubOptions(),
      &in_flight->request, &in_flight->response,
      [this, in_flight](grpc::Status status) {
        BranchAnswer answer{static_cast<int>(status.error_code()),
                            status.error_message()};
        std::function<void(BranchAnswer)> done = std::move(in_flight->done);
        {
          absl::MutexLock lock(&calls_mu_);
          in_flight_.erase(&in_flight->context);
        }
        delete in_flight;
        done(std::move(answer));
      });
}

void GrpcBranchInvoker::CancelAll() {
  absl::MutexLock lock(&calls_mu_);
  // TryCancel does not run the callback inline, so holding the lock is safe;
  // a context leaves the set before it is deleted.
  for (grpc::ClientContext* context : in_flight_) context->TryCancel();
}

}  // namespace dtmd
