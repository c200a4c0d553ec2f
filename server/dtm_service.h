// DtmService: DTM's gRPC coordinator service (package dtmgimp, service Dtm)
// on the callback API. It validates and maps requests and hands them to the
// Engine; no handler blocks a gRPC thread.
#ifndef DTMD_SERVER_DTM_SERVICE_H_
#define DTMD_SERVER_DTM_SERVICE_H_

#include "dtmgimp.grpc.pb.h"
#include "server/engine.h"

namespace dtmd {

class DtmService final : public dtmgimp::Dtm::CallbackService {
 public:
  // `engine` is not owned and must outlive the service.
  explicit DtmService(Engine* engine) : engine_(engine) {}

  grpc::ServerUnaryReactor* NewGid(grpc::CallbackServerContext* context,
                                   const google::protobuf::Empty* request,
                                   dtmgimp::DtmGidReply* reply) override;
  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* context,
                                   const dtmgimp::DtmRequest* request,
                                   google::protobuf::Empty* reply) override;
  grpc::ServerUnaryReactor* Prepare(grpc::CallbackServerContext* context,
                                    const dtmgimp::DtmRequest* request,
                                    google::protobuf::Empty* reply) override;
  grpc::ServerUnaryReactor* Abort(grpc::CallbackServerContext* context,
                                  const dtmgimp::DtmRequest* request,
                                  google::protobuf::Empty* reply) override;
  grpc::ServerUnaryReactor* RegisterBranch(
      grpc::CallbackServerContext* context,
      const dtmgimp::DtmBranchRequest* request,
      google::protobuf::Empty* reply) override;
  grpc::ServerUnaryReactor* PrepareWorkflow(
      grpc::CallbackServerContext* context, const dtmgimp::DtmRequest* request,
      dtmgimp::DtmProgressesReply* reply) override;
  grpc::ServerUnaryReactor* Subscribe(grpc::CallbackServerContext* context,
                                      const dtmgimp::DtmTopicRequest* request,
                                      google::protobuf::Empty* reply) override;
  grpc::ServerUnaryReactor* Unsubscribe(
      grpc::CallbackServerContext* context,
      const dtmgimp::DtmTopicRequest* request,
      google::protobuf::Empty* reply) override;
  grpc::ServerUnaryReactor* DeleteTopic(
      grpc::CallbackServerContext* context,
      const dtmgimp::DtmTopicRequest* request,
      google::protobuf::Empty* reply) override;

 private:
  Engine* const engine_;
};

// A new gid: 22 characters of base62 from 128 random bits.
std::string NewRandomGid();

}  // namespace dtmd

#endif  // DTMD_SERVER_DTM_SERVICE_H_
