#include "server/branch_invoker.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/strip.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/channel_arguments.h"
#include "server/txn/branch_url.h"

namespace dtmd {

namespace {

bool IsContinuation(unsigned char c) { return (c & 0xc0) == 0x80; }

// The length of the valid UTF-8 sequence at the start of `text` (the rules
// protobuf checks: no overlong forms, no surrogates, at most U+10FFFF), or 0.
size_t Utf8SequenceLength(absl::string_view text) {
  const unsigned char c = text[0];
  if (c < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80;  // bounds of the second byte.
  unsigned char high = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    length = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    length = 3;
    if (c == 0xe0) low = 0xa0;
    if (c == 0xed) high = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    length = 4;
    if (c == 0xf0) low = 0x90;
    if (c == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  const unsigned char second = text[1];
  if (second < low || second > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (!IsContinuation(text[i])) return 0;
  }
  return length;
}

// The channel factory: `channel_target` is BranchTarget::ChannelTarget(),
// "dns:///host:port"; `tls` decides by the host:port.
ChannelCache::Factory MakeStubFactory(BranchTls tls) {
  return [tls = std::move(tls)](const std::string& channel_target) {
    absl::string_view target = channel_target;
    absl::ConsumePrefix(&target, "dns:///");
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    // Reconnect quickly after a branch service restarts.
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
    return std::make_shared<grpc::GenericStub>(grpc::CreateCustomChannel(
        channel_target,
        tls.UsesTls(std::string(target)) ? tls.credentials
                                         : grpc::InsecureChannelCredentials(),
        args));
  };
}

}  // namespace

std::string BranchAnswerMessage(absl::string_view message) {
  std::string out;
  out.reserve(std::min(message.size(), kMaxBranchAnswerMessageBytes));
  while (!message.empty()) {
    size_t length = Utf8SequenceLength(message);
    const bool valid = length > 0;
    if (!valid) length = 1;  // one '?' for the byte.
    if (out.size() + length > kMaxBranchAnswerMessageBytes) break;
    if (valid) {
      out.append(message.data(), length);
    } else {
      out.push_back('?');
    }
    message.remove_prefix(length);
  }
  return out;
}

GrpcBranchInvoker::GrpcBranchInvoker(ChannelCache::Options channels,
                                     const Clock* clock, BranchTls tls)
    : channels_(channels, clock, MakeStubFactory(std::move(tls))) {}

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
  if (target.ok() && target->http) {
    target = absl::InvalidArgumentError(
        "an http:// or https:// URL reached the gRPC branch invoker");
  }
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
                            BranchAnswerMessage(status.error_message())};
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
