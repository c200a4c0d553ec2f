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
// `accept`.
template <typename Accept>
void AcceptNew(Engine* engine, const dtmgimp::DtmRequest& request,
               absl::string_view status, ReplyCallback done, Accept accept) {
  if (absl::Status s = CheckRequestHead(request, engine); !s.ok()) {
    return done(s);
  }
  absl::StatusOr<NewTransaction> txn =
      BuildTransaction(request, status, engine->clock()->NowMs(),
                       engine->config(), StoreTopics(engine->store()));
  if (!txn.ok()) return done(txn.status());
  accept(*std::move(txn), std::move(done));
}

}  // namespace

void SubmitRequest(Engine* engine, const dtmgimp::DtmRequest& request,
                   ReplyCallback done) {
  const bool wait_result = request.transoptions().waitresult();
  if (request.transtype() == "workflow") {
    // A workflow's Submit ends it with the client's verdict.
    if (absl::Status s = ValidateWorkflowSubmit(request, engine->config());
        !s.ok()) {
      return done(s);
    }
    txn::CommandArgs args;
    args.req_extra.insert(request.reqextra().begin(), request.reqextra().end());
    engine->SendCommand(request.gid(), request.transtype(),
                        txn::Command::kSubmit, std::move(args),
                        /*wait_result=*/false, std::move(done));
    return;
  }
  if (request.transtype() != "saga" && CheckRequestHead(request, engine).ok() &&
      engine->store()->GetTransaction(request.gid()).ok()) {
    // The second phase of a prepared tcc, xa or msg: a command to its
    // runner straight away (the create would only find the record, after
    // waiting for an fsync). Its Steps and payloads are ignored, as they
    // would be there (docs/protocol.md section 5.1).
    engine->SendCommand(request.gid(), request.transtype(),
                        txn::Command::kSubmit, {}, wait_result,
                        std::move(done));
    return;
  }
  AcceptNew(engine, request, storage::kStatusSubmitted, std::move(done),
            [engine, wait_result](NewTransaction txn, ReplyCallback done) {
              engine->Submit(std::move(txn), wait_result, std::move(done));
            });
}

void PrepareRequest(Engine* engine, const dtmgimp::DtmRequest& request,
                    ReplyCallback done) {
  AcceptNew(engine, request, storage::kStatusPrepared, std::move(done),
            [engine](NewTransaction txn, ReplyCallback done) {
              engine->Prepare(std::move(txn), std::move(done));
            });
}

void AbortRequest(Engine* engine, const dtmgimp::DtmRequest& request,
                  ReplyCallback done) {
  if (absl::Status s = CheckRequestHead(request, engine); !s.ok()) {
    return done(s);
  }
  txn::CommandArgs args;
  args.rollback_reason = request.rollbackreason();
  engine->SendCommand(request.gid(), request.transtype(), txn::Command::kAbort,
                      std::move(args), /*wait_result=*/false, std::move(done));
}

void RegisterBranchRequest(Engine* engine,
                           const dtmgimp::DtmBranchRequest& request,
                           ReplyCallback done) {
  absl::StatusOr<std::vector<storage::v1::BranchRecord>> branches =
      BuildRegistration(request, engine->clock()->NowMs(), engine->config());
  if (!branches.ok()) return done(branches.status());
  txn::CommandArgs args;
  args.branches = *std::move(branches);
  engine->SendCommand(request.gid(), request.transtype(),
                      txn::Command::kRegisterBranch, std::move(args),
                      /*wait_result=*/false, std::move(done));
}

void PrepareWorkflowRequest(Engine* engine, const dtmgimp::DtmRequest& request,
                            Engine::ProgressCallback done,
                            absl::string_view protocol) {
  if (absl::Status s = CheckRequestHead(request, engine); !s.ok()) {
    return done(s);
  }
  if (request.transtype() != "workflow") {
    return done(absl::InvalidArgumentError(absl::StrCat(
        "TransType: PrepareWorkflow is for workflow transactions, not ",
        request.transtype())));
  }
  absl::StatusOr<NewTransaction> txn =
      BuildTransaction(request, storage::kStatusPrepared,
                       engine->clock()->NowMs(), engine->config(), nullptr);
  if (!txn.ok()) return done(txn.status());
  if (protocol != "grpc") txn->trans.set_protocol(std::string(protocol));
  engine->PrepareWorkflow(*std::move(txn), std::move(done));
}

void TopicRequest(Engine* engine, const dtmgimp::DtmTopicRequest& request,
                  TopicRequestKind kind, ReplyCallback done) {
  if (absl::Status s = ValidateTopicRequest(request, kind, engine->config());
      !s.ok()) {
    return done(s);
  }
  storage::Store* store = engine->store();
  switch (kind) {
    case TopicRequestKind::kSubscribe:
      return store->Subscribe(request.topic(), request.url(), request.remark(),
                              std::move(done));
    case TopicRequestKind::kUnsubscribe:
      return store->Unsubscribe(request.topic(), request.url(),
                                std::move(done));
    case TopicRequestKind::kDeleteTopic:
      return store->DeleteTopic(request.topic(), std::move(done));
  }
}

namespace {

// Serve() for a method answering Empty through `op`, which finishes the
// reactor (now or later).
template <typename Request, typename Op>
grpc::ServerUnaryReactor* ServeOp(const TokenAuthenticator* auth,
                                  grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* body,
                                  grpc::ByteBuffer* reply, Op op) {
  return Serve<Request>(
      auth, context, body, reply, [&](const Request& request) {
        grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
        op(request, FinishLater(reactor));
        return reactor;
      });
}

}  // namespace

grpc::ServerUnaryReactor* DtmService::Submit(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return ServeOp<dtmgimp::DtmRequest>(
      auth_, context, body, reply,
      [this](const dtmgimp::DtmRequest& request, ReplyCallback done) {
        SubmitRequest(engine_, request, std::move(done));
      });
}

grpc::ServerUnaryReactor* DtmService::Prepare(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return ServeOp<dtmgimp::DtmRequest>(
      auth_, context, body, reply,
      [this](const dtmgimp::DtmRequest& request, ReplyCallback done) {
        PrepareRequest(engine_, request, std::move(done));
      });
}

grpc::ServerUnaryReactor* DtmService::Abort(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return ServeOp<dtmgimp::DtmRequest>(
      auth_, context, body, reply,
      [this](const dtmgimp::DtmRequest& request, ReplyCallback done) {
        AbortRequest(engine_, request, std::move(done));
      });
}

grpc::ServerUnaryReactor* DtmService::RegisterBranch(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return ServeOp<dtmgimp::DtmBranchRequest>(
      auth_, context, body, reply,
      [this](const dtmgimp::DtmBranchRequest& request, ReplyCallback done) {
        RegisterBranchRequest(engine_, request, std::move(done));
      });
}

grpc::ServerUnaryReactor* DtmService::PrepareWorkflow(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return Serve<dtmgimp::DtmRequest>(
      auth_, context, body, reply, [&](const dtmgimp::DtmRequest& request) {
        grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
        PrepareWorkflowRequest(
            engine_, request,
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

grpc::ServerUnaryReactor* ServeTopic(Engine* engine,
                                     const TokenAuthenticator* auth,
                                     grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* body,
                                     grpc::ByteBuffer* reply,
                                     TopicRequestKind kind) {
  return ServeOp<dtmgimp::DtmTopicRequest>(
      auth, context, body, reply,
      [engine, kind](const dtmgimp::DtmTopicRequest& request,
                     ReplyCallback done) {
        TopicRequest(engine, request, kind, std::move(done));
      });
}

}  // namespace

grpc::ServerUnaryReactor* DtmService::Subscribe(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return ServeTopic(engine_, auth_, context, body, reply,
                    TopicRequestKind::kSubscribe);
}

grpc::ServerUnaryReactor* DtmService::Unsubscribe(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return ServeTopic(engine_, auth_, context, body, reply,
                    TopicRequestKind::kUnsubscribe);
}

grpc::ServerUnaryReactor* DtmService::DeleteTopic(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* body,
    grpc::ByteBuffer* reply) {
  return ServeTopic(engine_, auth_, context, body, reply,
                    TopicRequestKind::kDeleteTopic);
}

}  // namespace dtmd
