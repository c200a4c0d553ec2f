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
// Callers without a valid token (when `auth` requires one) get
// UNAUTHENTICATED before their request is even parsed.
template <typename Request, typename Handler>
grpc::ServerUnaryReactor* Serve(const TokenAuthenticator* auth,
                                grpc::CallbackServerContext* context,
                                const grpc::ByteBuffer* body,
                                grpc::ByteBuffer* reply, Handler handler) {
  if (absl::Status s = CheckCaller(auth, *context); !s.ok()) {
    return FinishNow(context, s);
  }
  Request request;
  if (absl::Status s = ParseBody(*body, &request); !s.ok()) {
    return FinishNow(context, s);
  }
  SetBody(google::protobuf::Empty(), reply);
  return handler(request);
}

// Validation common to Submit, Prepare and Abort.
absl::Status CheckRequestHead(const dtmgimp::DtmRequest& request,
                              Engine* engine) {
  if (absl::Status s =
          ValidateGid(request.gid(), engine->config().max_gid_bytes);
      !s.ok()) {
    return s;
  }
  return ValidateTransType(request.transtype());
}

// Subscribers of a msg step's topic, read from the store.
TopicResolver StoreTopics(storage::Store* store) {
  return [store](absl::string_view topic)
             -> absl::StatusOr<std::vector<std::string>> {
    absl::StatusOr<std::vector<storage::Subscriber>> subscribers =
        store->GetTopic(topic);
    if (absl::IsNotFound(subscribers.status()) ||
        (subscribers.ok() && subscribers->empty())) {
      return absl::NotFoundError(
          absl::StrCat("Steps: topic ", topic, " has no subscribers"));
    }
    if (!subscribers.ok()) {
      return absl::UnavailableError(absl::StrCat(
          "cannot read topic ", topic, ": ", subscribers.status().message()));
    }
    std::vector<std::string> urls;
    urls.reserve(subscribers->size());
    for (storage::Subscriber& s : *subscribers)
      urls.push_back(std::move(s.url));
    return urls;
  };
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
      auth_, context, body, reply, [&](const google::protobuf::Empty&) {
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
grpc::ServerUnaryReactor* AcceptNew(Engine* engine,
                                    grpc::CallbackServerContext* context,
                                    const dtmgimp::DtmRequest& request,
                                    absl::string_view status, Accept accept) {
  if (absl::Status s = CheckRequestHead(request, engine); !s.ok()) {
    return FinishNow(context, s);
  }
  absl::StatusOr<NewTransaction> txn =
      BuildTransaction(request, status, engine->clock()->NowMs(),
                       engine->config(), StoreTopics(engine->store()));
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
      auth_, context, body, reply, [&](const dtmgimp::DtmRequest& request) {
        const bool wait_result = request.transoptions().waitresult();
        if (request.transtype() == "workflow") {
          // A workflow's Submit ends it with the client's verdict.
          if (absl::Status s =
                  ValidateWorkflowSubmit(request, engine_->config());
              !s.ok()) {
            return FinishNow(context, s);
          }
          txn::CommandArgs args;
          args.req_extra.insert(request.reqextra().begin(),
                                request.reqextra().end());
          grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
          engine_->SendCommand(request.gid(), request.transtype(),
                               txn::Command::kSubmit, std::move(args),
                               /*wait_result=*/false, FinishLater(reactor));
          return reactor;
        }
        if (request.transtype() != "saga" &&
            CheckRequestHead(request, engine_).ok() &&
            engine_->store()->GetTransaction(request.gid()).ok()) {
          // The second phase of a prepared tcc, xa or msg: a command to its
          // runner straight away (the create would only find the record,
          // after waiting for an fsync). Its Steps and payloads are ignored,
          // as they would be there (docs/protocol.md section 5.1).
          grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
          engine_->SendCommand(request.gid(), request.transtype(),
                               txn::Command::kSubmit, {}, wait_result,
                               FinishLater(reactor));
          return reactor;
        }
        return AcceptNew(
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
      auth_, context, body, reply, [&](const dtmgimp::DtmRequest& request) {
        return AcceptNew(engine_, context, request, storage::kStatusPrepared,
                         [this](NewTransaction txn, ReplyCallback done) {
                           engine_->Prepare(std::move(txn), std::move(done));
                         });
      });
}

grpc::ServerUnaryReactor* DtmService::Abort(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return Serve<dtmgimp::DtmRequest>(
      auth_, context, body, reply, [&](const dtmgimp::DtmRequest& request) {
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
      auth_, context, body, reply,
      [&](const dtmgimp::DtmBranchRequest& request) {
        absl::StatusOr<std::vector<storage::v1::BranchRecord>> branches =
            BuildRegistration(request, engine_->clock()->NowMs(),
                              engine_->config());
        if (!branches.ok()) return FinishNow(context, branches.status());
        txn::CommandArgs args;
        args.branches = *std::move(branches);
        grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
        engine_->SendCommand(request.gid(), request.transtype(),
                             txn::Command::kRegisterBranch, std::move(args),
                             /*wait_result=*/false, FinishLater(reactor));
        return reactor;
      });
}

grpc::ServerUnaryReactor* DtmService::PrepareWorkflow(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return Serve<dtmgimp::DtmRequest>(
      auth_, context, body, reply, [&](const dtmgimp::DtmRequest& request) {
        if (absl::Status s = CheckRequestHead(request, engine_); !s.ok()) {
          return FinishNow(context, s);
        }
        if (request.transtype() != "workflow") {
          return FinishNow(
              context,
              absl::InvalidArgumentError(absl::StrCat(
                  "TransType: PrepareWorkflow is for workflow transactions, "
                  "not ",
                  request.transtype())));
        }
        absl::StatusOr<NewTransaction> txn = BuildTransaction(
            request, storage::kStatusPrepared, engine_->clock()->NowMs(),
            engine_->config(), nullptr);
        if (!txn.ok()) return FinishNow(context, txn.status());
        grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
        engine_->PrepareWorkflow(
            *std::move(txn),
            [reactor, reply](absl::StatusOr<Engine::Progress> progress) {
              if (!progress.ok()) {
                reactor->Finish(ToGrpcStatus(progress.status()));
                return;
              }
              dtmgimp::DtmProgressesReply out;
              dtmgimp::DtmTransaction* t = out.mutable_transaction();
              t->set_gid(progress->trans.gid());
              t->set_status(progress->trans.status());
              t->set_rollbackreason(progress->trans.rollback_reason());
              // What the client returns for a workflow that already
              // succeeded (DTM leaves it empty over gRPC).
              t->set_result(progress->trans.result());
              for (const storage::v1::BranchRecord& b : progress->branches) {
                dtmgimp::DtmProgress* p = out.add_progresses();
                p->set_status(b.status());
                p->set_bindata(b.bin_data());
                p->set_branchid(b.branch_id());
                p->set_op(b.op());
              }
              SetBody(out, reply);
              reactor->Finish(grpc::Status::OK);
            });
        return reactor;
      });
}

namespace {

// Validates a topic request of `kind`, then hands it to `write` (a store
// topic write taking the completion callback), which finishes the reactor
// once the change is synced.
template <typename Write>
grpc::ServerUnaryReactor* ServeTopic(Engine* engine,
                                     const TokenAuthenticator* auth,
                                     grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* body,
                                     grpc::ByteBuffer* reply,
                                     TopicRequestKind kind, Write write) {
  return Serve<dtmgimp::DtmTopicRequest>(
      auth, context, body, reply, [&](const dtmgimp::DtmTopicRequest& request) {
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
      engine_, auth_, context, body, reply, TopicRequestKind::kSubscribe,
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
      engine_, auth_, context, body, reply, TopicRequestKind::kUnsubscribe,
      [](storage::Store* store, const dtmgimp::DtmTopicRequest& request,
         ReplyCallback done) {
        store->Unsubscribe(request.topic(), request.url(), std::move(done));
      });
}

grpc::ServerUnaryReactor* DtmService::DeleteTopic(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return ServeTopic(
      engine_, auth_, context, body, reply, TopicRequestKind::kDeleteTopic,
      [](storage::Store* store, const dtmgimp::DtmTopicRequest& request,
         ReplyCallback done) {
        store->DeleteTopic(request.topic(), std::move(done));
      });
}

}  // namespace dtmd
