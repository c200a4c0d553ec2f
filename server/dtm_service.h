// DtmService: DTM's gRPC coordinator service (package dtmgimp, service Dtm)
// on the callback API. It validates and maps requests and hands them to the
// Engine; no handler blocks a gRPC thread.
#ifndef DTMD_SERVER_DTM_SERVICE_H_
#define DTMD_SERVER_DTM_SERVICE_H_

#include "dtmgimp.grpc.pb.h"
#include "grpcpp/support/byte_buffer.h"
#include "server/engine.h"
#include "server/request_validation.h"
#include "server/security.h"

namespace dtmd {

// Every method is raw (ByteBuffer in and out): the typed handlers answer a
// body that is not a valid message with UNIMPLEMENTED and no message, while
// docs/protocol.md section 4 wants INVALID_ARGUMENT saying what is wrong. Each
// method parses its request message itself and serializes its reply.
// Reflection still describes the service: it reads the descriptors, which do
// not depend on how the handlers are registered.
using DtmRawService = dtmgimp::Dtm::WithRawCallbackMethod_NewGid<
    dtmgimp::Dtm::WithRawCallbackMethod_Submit<
        dtmgimp::Dtm::WithRawCallbackMethod_Prepare<
            dtmgimp::Dtm::WithRawCallbackMethod_Abort<
                dtmgimp::Dtm::WithRawCallbackMethod_RegisterBranch<
                    dtmgimp::Dtm::WithRawCallbackMethod_PrepareWorkflow<
                        dtmgimp::Dtm::WithRawCallbackMethod_Subscribe<
                            dtmgimp::Dtm::WithRawCallbackMethod_Unsubscribe<
                                dtmgimp::Dtm::WithRawCallbackMethod_DeleteTopic<
                                    dtmgimp::Dtm::Service>>>>>>>>>;

class DtmService final : public DtmRawService {
 public:
  // `engine` and `auth` are not owned and must outlive the service; a null
  // `auth` accepts every caller.
  explicit DtmService(Engine* engine, const TokenAuthenticator* auth = nullptr)
      : engine_(engine), auth_(auth) {}

  grpc::ServerUnaryReactor* NewGid(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* reply) override;
  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* reply) override;
  grpc::ServerUnaryReactor* Prepare(grpc::CallbackServerContext* context,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* reply) override;
  grpc::ServerUnaryReactor* Abort(grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* reply) override;
  grpc::ServerUnaryReactor* RegisterBranch(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* reply) override;
  grpc::ServerUnaryReactor* PrepareWorkflow(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* reply) override;
  grpc::ServerUnaryReactor* Subscribe(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* reply) override;
  grpc::ServerUnaryReactor* Unsubscribe(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* reply) override;
  grpc::ServerUnaryReactor* DeleteTopic(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* reply) override;

 private:
  Engine* const engine_;
  const TokenAuthenticator* const auth_;
};

// The Dtm operations on decoded requests, shared by DtmService and the HTTP
// API (server/http_api.h), so that both validate and limit alike. `done`
// runs exactly once: before the call returns for a refused request, later
// (on an engine or store thread) otherwise.
void SubmitRequest(Engine* engine, const dtmgimp::DtmRequest& request,
                   ReplyCallback done);
void PrepareRequest(Engine* engine, const dtmgimp::DtmRequest& request,
                    ReplyCallback done);
void AbortRequest(Engine* engine, const dtmgimp::DtmRequest& request,
                  ReplyCallback done);
void RegisterBranchRequest(Engine* engine,
                           const dtmgimp::DtmBranchRequest& request,
                           ReplyCallback done);
// `protocol`: "grpc" for the gRPC service; for the HTTP API the request's
// `protocol` member, "http" when it has none (TransRecord.protocol).
void PrepareWorkflowRequest(Engine* engine, const dtmgimp::DtmRequest& request,
                            Engine::ProgressCallback done,
                            absl::string_view protocol = "grpc");
void TopicRequest(Engine* engine, const dtmgimp::DtmTopicRequest& request,
                  TopicRequestKind kind, ReplyCallback done);

// A new gid: 22 characters of base62 from 128 random bits.
std::string NewRandomGid();

}  // namespace dtmd

#endif  // DTMD_SERVER_DTM_SERVICE_H_
