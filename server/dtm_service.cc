#include "server/dtm_service.h"

#include <string>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/empty.pb.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/slice.h"
#include "server/grpc_status.h"
#include "server/request_validation.h"
#include "storage/store.h"

namespace dtmd {
namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

ReplyCallback FinishLater(grpc::ServerUnaryReactor* reactor) {
  return
      [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); };
}

// A request body as `message`; INVALID_ARGUMENT when the bytes are not a
// valid encoding of it (proto3 strings must also be valid UTF-8).
absl::Status ParseBody(const grpc::ByteBuffer& body,
                       google::protobuf::MessageLite* message) {
  grpc::ByteBuffer shared(body);  // the reader consumes its buffer.
  grpc::ProtoBufferReader reader(&shared);
  if (!reader.status().ok() || !message->ParseFromZeroCopyStream(&reader)) {
    return absl::InvalidArgumentError(
        absl::StrCat("request: not a valid ", message->GetTypeName(),
                     " message (protobuf wire format, UTF-8 strings)"));
  }
  return absl::OkStatus();
}

void SetBody(const google::protobuf::MessageLite& message,
             grpc::ByteBuffer* body) {
  grpc::Slice slice(message.SerializeAsString());
  *body = grpc::ByteBuffer(&slice, 1);
}

// Parses the body as a Request, sets the reply to an Empty message (what most
// methods answer; `handler` may set another), and returns handler(request).
template <typename Request, typename Handler>
grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* context,
                                const grpc::ByteBuffer* body,
                                grpc::ByteBuffer* reply, Handler handler) {
  Request request;
  if (absl::Status s = ParseBody(*body, &request); !s.ok()) {
    return FinishNow(context, s);
  }
  SetBody(google::protobuf::Empty(), reply);
  return handler(request);
}

// The modes still to come: the request is well-formed but not served yet.
absl::Status NotYetSupported(absl::string_view trans_type) {
  return absl::UnimplementedError(absl::StrCat(
      "TransType: ", trans_type, " transactions are not supported yet"));
}

// Validation common to Submit, Prepare and Abort.
absl::Status CheckRequestHead(const dtmgimp::DtmRequest& request,
                              Engine* engine) {
  if (absl::Status s =
          ValidateGid(request.gid(), engine->config().max_gid_bytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateTransType(request.transtype()); !s.ok()) {
    return s;
  }
  if (request.transtype() != "saga") {
    // A gid re-used with another type is a client error whatever the type.
    absl::StatusOr<storage::v1::TransRecord> existing =
        engine->store()->GetTransaction(request.gid());
    if (existing.ok() && existing->trans_type() != request.transtype()) {
      return TransTypeMismatch(request.gid(), existing->trans_type(),
                               request.transtype());
    }
    return NotYetSupported(request.transtype());
  }
  return absl::OkStatus();
}

}  // namespace

std::string NewRandomGid() {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  thread_local absl::BitGen gen;
  std::string gid(22, '0');
  for (char& c : gid) c = kAlphabet[absl::Uniform(gen, 0, 62)];
  return gid;
}

grpc::ServerUnaryReactor* DtmService::NewGid(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return Serve<google::protobuf::Empty>(
      context, body, reply, [&](const google::protobuf::Empty&) {
        dtmgimp::DtmGidReply gid;
        gid.set_gid(NewRandomGid());
        SetBody(gid, reply);
        return FinishNow(context, absl::OkStatus());
      });
}

namespace {

// Submit and Prepare: validate, build the records in `status`, hand them to
// `accept` (which finishes the reactor later).
template <typename Accept>
grpc::ServerUnaryReactor* AcceptSaga(Engine* engine,
                                     grpc::CallbackServerContext* context,
                                     const dtmgimp::DtmRequest& request,
                                     absl::string_view status, Accept accept) {
  if (absl::Status s = CheckRequestHead(request, engine); !s.ok()) {
    return FinishNow(context, s);
  }
  absl::StatusOr<NewTransaction> txn =
      BuildSaga(request, status, engine->clock()->NowMs(), engine->config());
  if (!txn.ok()) return FinishNow(context, txn.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  accept(*std::move(txn), FinishLater(reactor));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* DtmService::Submit(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return Serve<dtmgimp::DtmRequest>(
      context, body, reply, [&](const dtmgimp::DtmRequest& request) {
        const bool wait_result = request.transoptions().waitresult();
        return AcceptSaga(
            engine_, context, request, storage::kStatusSubmitted,
            [this, wait_result](NewTransaction txn, ReplyCallback done) {
              engine_->Submit(std::move(txn), wait_result, std::move(done));
            });
      });
}

grpc::ServerUnaryReactor* DtmService::Prepare(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return Serve<dtmgimp::DtmRequest>(
      context, body, reply, [&](const dtmgimp::DtmRequest& request) {
        return AcceptSaga(engine_, context, request, storage::kStatusPrepared,
                          [this](NewTransaction txn, ReplyCallback done) {
                            engine_->Prepare(std::move(txn), std::move(done));
                          });
      });
}

grpc::ServerUnaryReactor* DtmService::Abort(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return Serve<dtmgimp::DtmRequest>(
      context, body, reply, [&](const dtmgimp::DtmRequest& request) {
        if (absl::Status s = CheckRequestHead(request, engine_); !s.ok()) {
          return FinishNow(context, s);
        }
        grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
        txn::CommandArgs args;
        args.rollback_reason = request.rollbackreason();
        engine_->SendCommand(request.gid(), request.transtype(),
                             txn::Command::kAbort, std::move(args),
                             /*wait_result=*/false, FinishLater(reactor));
        return reactor;
      });
}

grpc::ServerUnaryReactor* DtmService::RegisterBranch(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return Serve<dtmgimp::DtmBranchRequest>(
      context, body, reply, [&](const dtmgimp::DtmBranchRequest& request) {
        if (absl::Status s =
                ValidateGid(request.gid(), engine_->config().max_gid_bytes);
            !s.ok()) {
          return FinishNow(context, s);
        }
        return FinishNow(context, NotYetSupported(request.transtype()));
      });
}

grpc::ServerUnaryReactor* DtmService::PrepareWorkflow(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return Serve<dtmgimp::DtmRequest>(
      context, body, reply, [&](const dtmgimp::DtmRequest&) {
        return FinishNow(context, NotYetSupported("workflow"));
      });
}

namespace {

// Validates a topic request of `kind`, then hands it to `write` (a store
// topic write taking the completion callback), which finishes the reactor
// once the change is synced.
template <typename Write>
grpc::ServerUnaryReactor* ServeTopic(Engine* engine,
                                     grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* body,
                                     grpc::ByteBuffer* reply,
                                     TopicRequestKind kind, Write write) {
  return Serve<dtmgimp::DtmTopicRequest>(
      context, body, reply, [&](const dtmgimp::DtmTopicRequest& request) {
        if (absl::Status s =
                ValidateTopicRequest(request, kind, engine->config());
            !s.ok()) {
          return FinishNow(context, s);
        }
        grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
        write(engine->store(), request, FinishLater(reactor));
        return reactor;
      });
}

}  // namespace

grpc::ServerUnaryReactor* DtmService::Subscribe(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return ServeTopic(
      engine_, context, body, reply, TopicRequestKind::kSubscribe,
      [](storage::Store* store, const dtmgimp::DtmTopicRequest& request,
         ReplyCallback done) {
        store->Subscribe(request.topic(), request.url(), request.remark(),
                         std::move(done));
      });
}

grpc::ServerUnaryReactor* DtmService::Unsubscribe(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return ServeTopic(
      engine_, context, body, reply, TopicRequestKind::kUnsubscribe,
      [](storage::Store* store, const dtmgimp::DtmTopicRequest& request,
         ReplyCallback done) {
        store->Unsubscribe(request.topic(), request.url(), std::move(done));
      });
}

grpc::ServerUnaryReactor* DtmService::DeleteTopic(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return ServeTopic(
      engine_, context, body, reply, TopicRequestKind::kDeleteTopic,
      [](storage::Store* store, const dtmgimp::DtmTopicRequest& request,
         ReplyCallback done) {
        store->DeleteTopic(request.topic(), std::move(done));
      });
}

}  // namespace dtmd
