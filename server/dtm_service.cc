#include "server/dtm_service.h"

#include <string>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
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
      return absl::InvalidArgumentError(absl::StrCat(
          "TransType: gid ", request.gid(), " exists as a ",
          existing->trans_type(), " transaction, not ", request.transtype()));
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
    grpc::CallbackServerContext* context, const google::protobuf::Empty*,
    dtmgimp::DtmGidReply* reply) {
  reply->set_gid(NewRandomGid());
  return FinishNow(context, absl::OkStatus());
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
    grpc::CallbackServerContext* context, const dtmgimp::DtmRequest* request,
    google::protobuf::Empty*) {
  const bool wait_result = request->transoptions().waitresult();
  return AcceptSaga(
      engine_, context, *request, storage::kStatusSubmitted,
      [this, wait_result](NewTransaction txn, ReplyCallback done) {
        engine_->Submit(std::move(txn), wait_result, std::move(done));
      });
}

grpc::ServerUnaryReactor* DtmService::Prepare(
    grpc::CallbackServerContext* context, const dtmgimp::DtmRequest* request,
    google::protobuf::Empty*) {
  return AcceptSaga(engine_, context, *request, storage::kStatusPrepared,
                    [this](NewTransaction txn, ReplyCallback done) {
                      engine_->Prepare(std::move(txn), std::move(done));
                    });
}

grpc::ServerUnaryReactor* DtmService::Abort(
    grpc::CallbackServerContext* context, const dtmgimp::DtmRequest* request,
    google::protobuf::Empty*) {
  if (absl::Status s = CheckRequestHead(*request, engine_); !s.ok()) {
    return FinishNow(context, s);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  engine_->Abort(request->gid(), request->transtype(), FinishLater(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* DtmService::RegisterBranch(
    grpc::CallbackServerContext* context,
    const dtmgimp::DtmBranchRequest* request, google::protobuf::Empty*) {
  if (absl::Status s =
          ValidateGid(request->gid(), engine_->config().max_gid_bytes);
      !s.ok()) {
    return FinishNow(context, s);
  }
  return FinishNow(context, NotYetSupported(request->transtype()));
}

grpc::ServerUnaryReactor* DtmService::PrepareWorkflow(
    grpc::CallbackServerContext* context, const dtmgimp::DtmRequest* request,
    dtmgimp::DtmProgressesReply*) {
  return FinishNow(context, NotYetSupported("workflow"));
}

grpc::ServerUnaryReactor* DtmService::Subscribe(
    grpc::CallbackServerContext* context,
    const dtmgimp::DtmTopicRequest* request, google::protobuf::Empty*) {
  return FinishNow(context,
                   absl::UnimplementedError("topics are not supported yet"));
}

grpc::ServerUnaryReactor* DtmService::Unsubscribe(
    grpc::CallbackServerContext* context,
    const dtmgimp::DtmTopicRequest* request, google::protobuf::Empty*) {
  return FinishNow(context,
                   absl::UnimplementedError("topics are not supported yet"));
}

grpc::ServerUnaryReactor* DtmService::DeleteTopic(
    grpc::CallbackServerContext* context,
    const dtmgimp::DtmTopicRequest* request, google::protobuf::Empty*) {
  return FinishNow(context,
                   absl::UnimplementedError("topics are not supported yet"));
}

}  // namespace dtmd
