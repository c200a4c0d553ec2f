// dtmd-relay: the practical limit of dtmd's RPC pattern on this machine. It
// answers Submit by making the same branch calls dtmd would make (actions in
// order; on a failure, compensations in reverse), with the same validation
// and the same branch invoker, but with no store and no scheduler: nothing is
// durable and nothing is retried. A benchmark baseline, not a coordinator.

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "dtmgimp.grpc.pb.h"
#include "glog/logging.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/branch_invoker.h"
#include "server/config.h"
#include "server/dtm_service.h"
#include "server/grpc_status.h"
#include "server/process.h"
#include "server/request_validation.h"
#include "server/timer_queue.h"
#include "server/txn/outcome.h"
#include "server/txn/saga.h"

// dtmd's own flags (server/config.cc): --grpc_port, --listen_address,
// --port_file, --request_timeout, ... with the relay's own default port.
ABSL_DECLARE_FLAG(int, grpc_port);
ABSL_DECLARE_FLAG(std::string, listen_address);
constexpr int kDefaultRelayPort = 36795;

namespace {

using dtmd::storage::v1::BranchRecord;

// One Submit: walks the branches and finishes the reactor (if waiting).
class RelayedSaga {
 public:
  RelayedSaga(dtmd::BranchInvoker* invoker, dtmd::NewTransaction txn,
              grpc::ServerUnaryReactor* reactor)
      : invoker_(invoker), txn_(std::move(txn)), reactor_(reactor) {}

  void Start() { NextAction(0); }

 private:
  void NextAction(int step) {
    const int steps = static_cast<int>(txn_.branches.size() / 2);
    for (; step < steps; ++step) {
      const BranchRecord& action = txn_.branches[2 * step + 1];
      if (action.url().empty()) continue;
      Call(action, [this, step](bool ok) {
        if (ok) {
          NextAction(step + 1);
        } else {
          NextCompensation(step);
        }
      });
      return;
    }
    Done(grpc::Status::OK);
  }

  void NextCompensation(int step) {
    for (; step >= 0; --step) {
      const BranchRecord& compensate = txn_.branches[2 * step];
      if (compensate.url().empty()) continue;
      Call(compensate, [this, step](bool) { NextCompensation(step - 1); });
      return;
    }
    Done(grpc::Status(grpc::StatusCode::ABORTED, "failed"));
  }

  void Call(const BranchRecord& branch, std::function<void(bool)> next) {
    const dtmd::storage::v1::TransRecord& t = txn_.trans;
    dtmd::BranchCall call;
    call.url = branch.url();
    call.payload = branch.bin_data();
    call.timeout_ms = t.options().request_timeout_s() * 1000;
    call.metadata = {{"dtm-gid", t.gid()},
                     {"dtm-trans_type", t.trans_type()},
                     {"dtm-branch_id", branch.branch_id()},
                     {"dtm-op", branch.op()},
                     {"dtm-dtm", ""}};
    const bool failure_allowed = dtmd::txn::SagaFailureAllowed(branch.op());
    invoker_->Call(std::move(call), [next = std::move(next), failure_allowed](
                                        dtmd::BranchAnswer answer) {
      next(dtmd::txn::ClassifyAnswer(answer.code, answer.message,
                                     failure_allowed) ==
           dtmd::txn::BranchOutcome::kSuccess);
    });
  }

  void Done(grpc::Status status) {
    if (reactor_ != nullptr) reactor_->Finish(status);
    delete this;
  }

  dtmd::BranchInvoker* const invoker_;
  dtmd::NewTransaction txn_;
  grpc::ServerUnaryReactor* const reactor_;  // null: already answered.
};

class RelayService final : public dtmgimp::Dtm::CallbackService {
 public:
  RelayService(dtmd::BranchInvoker* invoker, dtmd::Config config)
      : invoker_(invoker), config_(std::move(config)) {}

  grpc::ServerUnaryReactor* NewGid(grpc::CallbackServerContext* context,
                                   const google::protobuf::Empty*,
                                   dtmgimp::DtmGidReply* reply) override {
    reply->set_gid(dtmd::NewRandomGid());
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* context,
                                   const dtmgimp::DtmRequest* request,
                                   google::protobuf::Empty*) override {
    auto* reactor = context->DefaultReactor();
    absl::StatusOr<dtmd::NewTransaction> txn =
        dtmd::BuildSaga(*request, "submitted", clock_->NowMs(), config_);
    if (!txn.ok()) {
      reactor->Finish(dtmd::ToGrpcStatus(txn.status()));
      return reactor;
    }
    const bool wait = request->transoptions().waitresult();
    if (!wait) reactor->Finish(grpc::Status::OK);
    (new RelayedSaga(invoker_, *std::move(txn), wait ? reactor : nullptr))
        ->Start();
    return reactor;
  }

 private:
  dtmd::BranchInvoker* const invoker_;
  const dtmd::Config config_;
  dtmd::Clock* const clock_ = dtmd::SystemClock::Get();
};

}  // namespace

int main(int argc, char** argv) {
  dtmd::BlockTerminationSignals();
  absl::SetFlag(&FLAGS_grpc_port, kDefaultRelayPort);
  absl::SetFlag(&FLAGS_listen_address, "127.0.0.1");
  absl::ParseCommandLine(argc, argv);
  dtmd::InitServerProcess(argv[0]);

  absl::StatusOr<dtmd::Config> config = dtmd::ConfigFromFlags();
  if (!config.ok()) {
    LOG(ERROR) << config.status();
    return 2;
  }
  dtmd::GrpcBranchInvoker invoker;
  RelayService service(&invoker, *config);
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  builder.AddListeningPort(
      absl::StrCat(config->listen_address, ":", config->grpc_port),
      grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    LOG(ERROR) << "dtmd-relay cannot listen";
    return 1;
  }
  LOG(INFO) << "dtmd-relay serving on port " << port;
  if (!config->port_file.empty()) {
    if (absl::Status s = dtmd::WritePortFile(config->port_file, port);
        !s.ok()) {
      LOG(ERROR) << "--port_file: " << s;
      return 1;
    }
  }
  dtmd::WaitForTerminationSignal();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
