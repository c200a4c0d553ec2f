// A fake coordinator for the client's tests: an in-process dtmgimp.Dtm service
// that records every request in arrival order and answers from a script.
#ifndef DTMD_CLIENT_STUBS_CPP_DTMD_FAKE_DTM_TEST_UTIL_H_
#define DTMD_CLIENT_STUBS_CPP_DTMD_FAKE_DTM_TEST_UTIL_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "dtmgimp.grpc.pb.h"

namespace dtmd::client::testing {

// One request as the fake received it; only the field for its method's
// request type is set.
struct DtmCall {
  std::string method;  // "Prepare", "RegisterBranch", "Subscribe", ...
  dtmgimp::DtmRequest request;
  dtmgimp::DtmBranchRequest branch;
  dtmgimp::DtmTopicRequest topic;
};

// Thread-safe.
class FakeDtm final : public dtmgimp::Dtm::Service {
 public:
  // The next call of `method` gets `status` (queued: one per call); calls
  // with nothing queued get OK.
  void FailNext(const std::string& method, grpc::Status status) {
    absl::MutexLock lock(&mu_);
    answers_[method].push_back(std::move(status));
  }
  // What PrepareWorkflow returns.
  void SetProgresses(dtmgimp::DtmProgressesReply reply) {
    absl::MutexLock lock(&mu_);
    progresses_ = std::move(reply);
  }
  std::vector<DtmCall> calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  // The methods called, in order.
  std::vector<std::string> methods() const {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> methods;
    for (const DtmCall& call : calls_) methods.push_back(call.method);
    return methods;
  }

  grpc::Status NewGid(grpc::ServerContext*, const google::protobuf::Empty*,
                      dtmgimp::DtmGidReply* reply) override {
    reply->set_gid("fresh-gid");
    return Record(DtmCall{"NewGid", {}, {}, {}});
  }
  grpc::Status Submit(grpc::ServerContext*, const dtmgimp::DtmRequest* request,
                      google::protobuf::Empty*) override {
    return Record(DtmCall{"Submit", *request, {}, {}});
  }
  grpc::Status Prepare(grpc::ServerContext*, const dtmgimp::DtmRequest* request,
                       google::protobuf::Empty*) override {
    return Record(DtmCall{"Prepare", *request, {}, {}});
  }
  grpc::Status Abort(grpc::ServerContext*, const dtmgimp::DtmRequest* request,
                     google::protobuf::Empty*) override {
    return Record(DtmCall{"Abort", *request, {}, {}});
  }
  grpc::Status RegisterBranch(grpc::ServerContext*,
                              const dtmgimp::DtmBranchRequest* request,
                              google::protobuf::Empty*) override {
    return Record(DtmCall{"RegisterBranch", {}, *request, {}});
  }
  grpc::Status PrepareWorkflow(grpc::ServerContext*,
                               const dtmgimp::DtmRequest* request,
                               dtmgimp::DtmProgressesReply* reply) override {
    {
      absl::MutexLock lock(&mu_);
      *reply = progresses_;
    }
    return Record(DtmCall{"PrepareWorkflow", *request, {}, {}});
  }
  grpc::Status Subscribe(grpc::ServerContext*,
                         const dtmgimp::DtmTopicRequest* request,
                         google::protobuf::Empty*) override {
    return Record(DtmCall{"Subscribe", {}, {}, *request});
  }
  grpc::Status Unsubscribe(grpc::ServerContext*,
                           const dtmgimp::DtmTopicRequest* request,
                           google::protobuf::Empty*) override {
    return Record(DtmCall{"Unsubscribe", {}, {}, *request});
  }
  grpc::Status DeleteTopic(grpc::ServerContext*,
                           const dtmgimp::DtmTopicRequest* request,
                           google::protobuf::Empty*) override {
    return Record(DtmCall{"DeleteTopic", {}, {}, *request});
  }

 private:
  grpc::Status Record(DtmCall call) {
    absl::MutexLock lock(&mu_);
    std::deque<grpc::Status>& queued = answers_[call.method];
    calls_.push_back(std::move(call));
    if (queued.empty()) return grpc::Status::OK;
    grpc::Status status = queued.front();
    queued.pop_front();
    return status;
  }

  mutable absl::Mutex mu_;
  std::vector<DtmCall> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::deque<grpc::Status>> answers_ ABSL_GUARDED_BY(mu_);
  dtmgimp::DtmProgressesReply progresses_ ABSL_GUARDED_BY(mu_);
};

// The fake served on 127.0.0.1 (port 0) with a stub connected to it.
class FakeDtmServer {
 public:
  FakeDtmServer() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&dtm_);
    server_ = builder.BuildAndStart();
    stub_ = dtmgimp::Dtm::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                            grpc::InsecureChannelCredentials()));
  }
  ~FakeDtmServer() {
    if (server_) server_->Shutdown();
  }

  // False if the server did not start.
  bool ok() const { return server_ != nullptr && port_ > 0; }
  FakeDtm& dtm() { return dtm_; }
  dtmgimp::Dtm::Stub* stub() { return stub_.get(); }

 private:
  FakeDtm dtm_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<dtmgimp::Dtm::Stub> stub_;
};

}  // namespace dtmd::client::testing

#endif  // DTMD_CLIENT_STUBS_CPP_DTMD_FAKE_DTM_TEST_UTIL_H_
