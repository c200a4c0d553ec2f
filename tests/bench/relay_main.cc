// dtmd-relay: the practical limit of dtmd's RPC pattern on this machine. It
// answers the client's RPCs by making the same branch calls dtmd would make,
// with the same validation, the same modes' rules on answers and the same
// branch invoker, but with no store and no scheduler: nothing is durable and
// nothing is retried. A benchmark baseline, not a coordinator.
//  - saga Submit: actions in order; on a failure, compensations in reverse.
//  - tcc / xa: Prepare and RegisterBranch keep the gid's branches in memory;
//    Submit calls the commit op of each (confirm in reverse registration
//    order for tcc, commit in order for xa) and forgets the gid.
//  - msg: Prepare keeps the message in memory; Submit calls its actions in
//    order (a Submit without Prepare calls the request's own).
// Branch URLs are gRPC or http(s):// (dtmd's HttpBranchInvoker), and a saga
// Submit comes over gRPC or, with --http_port, as POST /api/dtmsvr/submit of
// DTM's HTTP API (decoded as dtmd decodes it; the only HTTP route served).
// With WaitResult the answer waits for the calls, as dtmd's does for the
// first round; a second phase that does not succeed answers what dtmd does
// for a transaction still running (FAILED_PRECONDITION). Prepared gids that
// are never submitted stay in memory: the bench always submits.

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "dtmgimp.grpc.pb.h"
#include "glog/logging.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/branch_invoker.h"
#include "server/config.h"
#include "server/dtm_service.h"
#include "server/grpc_status.h"
#include "server/http_api.h"
#include "server/http_branch_invoker.h"
#include "server/process.h"
#include "server/request_validation.h"
#include "server/timer_queue.h"
#include "server/txn/mode.h"
#include "server/txn/outcome.h"
#include "server/txn/two_phase.h"
#include "storage/store.h"
#include "tests/bench/evhttp_server.h"

// dtmd's own flags (server/config.cc): --grpc_port, --listen_address,
// --port_file, --request_timeout, ... with the relay's own default port.
ABSL_DECLARE_FLAG(int, grpc_port);
ABSL_DECLARE_FLAG(std::string, listen_address);
ABSL_DECLARE_FLAG(int, http_port);
constexpr int kDefaultRelayPort = 36795;

namespace {

using dtmd::storage::v1::BranchRecord;

// One Submit: calls the branches, then `done` (if waiting for them).
class RelayedTransaction {
 public:
  using DoneFn = std::function<void(grpc::Status)>;
  RelayedTransaction(dtmd::BranchInvoker* invoker, dtmd::NewTransaction txn,
                     DoneFn done)
      : invoker_(invoker),
        mode_(dtmd::txn::FindMode(txn.trans.trans_type())),
        txn_(std::move(txn)),
        done_(std::move(done)) {}
  RelayedTransaction(dtmd::BranchInvoker* invoker, dtmd::NewTransaction txn,
                     grpc::ServerUnaryReactor* reactor)
      : RelayedTransaction(
            invoker, std::move(txn),
            reactor == nullptr ? DoneFn() : [reactor](grpc::Status s) {
              reactor->Finish(s);
            }) {}

  // A saga: actions in order; on a failure, compensations in reverse.
  void RunSaga() { NextAction(0); }

  // The branches at `positions`, one at a time, each until the first that
  // does not succeed (a second phase or a msg never rolls back).
  void RunSequence(std::vector<int> positions) {
    sequence_ = std::move(positions);
    NextInSequence(0);
  }

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

  void NextInSequence(size_t i) {
    if (i == sequence_.size()) {
      Done(grpc::Status::OK);
      return;
    }
    Call(txn_.branches[sequence_[i]], [this, i](bool ok) {
      if (ok) {
        NextInSequence(i + 1);
      } else {
        Done(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "still submitted; the relay retries nothing"));
      }
    });
  }

  // Calls `branch` as dtmd's runner does; next(true) once it succeeded.
  void Call(const BranchRecord& branch, std::function<void(bool)> next) {
    const dtmd::storage::v1::TransRecord& t = txn_.trans;
    dtmd::BranchCall call;
    call.url = branch.url();
    call.payload = branch.bin_data();
    call.timeout_ms = t.options().request_timeout_s() * 1000;
    call.metadata.reserve(5 + t.options().branch_headers_size());
    call.metadata.emplace_back("dtm-gid", t.gid());
    call.metadata.emplace_back("dtm-trans_type", t.trans_type());
    call.metadata.emplace_back("dtm-branch_id", branch.branch_id());
    call.metadata.emplace_back("dtm-op", branch.op());
    call.metadata.emplace_back("dtm-dtm", "");
    for (const auto& [key, value] : t.options().branch_headers()) {
      call.metadata.emplace_back(key, value);
    }
    const bool failure_allowed = mode_->FailureAllowed(branch.op());
    invoker_->Call(std::move(call), [next = std::move(next), failure_allowed](
                                        dtmd::BranchAnswer answer) {
      next(dtmd::txn::ClassifyAnswer(answer.code, answer.message,
                                     failure_allowed) ==
           dtmd::txn::BranchOutcome::kSuccess);
    });
  }

  void Done(grpc::Status status) {
    if (done_) done_(status);
    delete this;
  }

  dtmd::BranchInvoker* const invoker_;
  const dtmd::txn::Mode* const mode_;  // of the TransType: never null.
  dtmd::NewTransaction txn_;
  const DoneFn done_;          // empty: already answered.
  std::vector<int> sequence_;  // RunSequence's positions.
};

// The positions a submitted tcc, xa or msg calls, in order: the prepared
// branches of the commit op (two-phase modes, in their spec's order) or the
// prepared actions (msg). UNIMPLEMENTED for other modes.
absl::StatusOr<std::vector<int>> SecondPhase(const dtmd::NewTransaction& txn) {
  const dtmd::txn::Mode* mode = dtmd::txn::FindMode(txn.trans.trans_type());
  std::string op;
  bool reverse = false;
  if (const auto* two_phase =
          dynamic_cast<const dtmd::txn::TwoPhaseMode*>(mode)) {
    op = std::string(two_phase->spec().commit_op);
    reverse = two_phase->spec().reverse_order;
  } else if (txn.trans.trans_type() == "msg") {
    op = dtmd::txn::kOpAction;
  } else {
    return absl::UnimplementedError(absl::StrCat(
        "dtmd-relay does not serve ", txn.trans.trans_type(), " transactions"));
  }
  std::vector<int> positions;
  for (int i = 0; i < static_cast<int>(txn.branches.size()); ++i) {
    const BranchRecord& b = txn.branches[i];
    if (b.op() == op && b.status() == dtmd::txn::kBranchPrepared) {
      positions.push_back(i);
    }
  }
  if (reverse) std::reverse(positions.begin(), positions.end());
  return positions;
}

class RelayService final : public dtmgimp::Dtm::CallbackService {
 public:
  RelayService(dtmd::BranchInvoker* invoker, dtmd::Config config)
      : invoker_(invoker), config_(std::move(config)) {}

  // POST /api/dtmsvr/submit of a saga, as dtmd's HTTP API answers it: 200
  // {"dtm_result":"SUCCESS"}, else DTM's status and error body.
  void HttpRequest(dtmd::bench::EvHttpServer* server, uint64_t id,
                   const std::string& method, const std::string& path,
                   const std::string& body) {
    auto reply = [server, id](const absl::Status& status) {
      if (status.ok()) {
        server->Reply(id, 200, R"({"dtm_result":"SUCCESS"})");
      } else {
        server->Reply(id, dtmd::HttpStatusFor(status),
                      dtmd::HttpErrorBody(status));
      }
    };
    if (method != "POST" || path != "/api/dtmsvr/submit") {
      return reply(absl::NotFoundError(
          absl::StrCat("dtmd-relay serves only POST /api/dtmsvr/submit, not ",
                       method, " ", path)));
    }
    absl::StatusOr<dtmgimp::DtmRequest> request =
        dtmd::DtmRequestFromJson(body, config_);
    if (!request.ok()) return reply(request.status());
    if (request->transtype() != "saga") {
      return reply(absl::UnimplementedError(
          "dtmd-relay serves only saga transactions over HTTP"));
    }
    absl::StatusOr<dtmd::NewTransaction> txn =
        dtmd::BuildTransaction(*request, dtmd::storage::kStatusSubmitted,
                               clock_->NowMs(), config_, nullptr);
    if (!txn.ok()) return reply(txn.status());
    const bool wait = request->transoptions().waitresult();
    if (!wait) reply(absl::OkStatus());
    (new RelayedTransaction(
         invoker_, *std::move(txn),
         wait ? RelayedTransaction::DoneFn([reply](grpc::Status s) {
           reply(s.ok() ? absl::OkStatus()
                        : absl::Status(
                              static_cast<absl::StatusCode>(s.error_code()),
                              s.error_message()));
         })
              : RelayedTransaction::DoneFn()))
        ->RunSaga();
  }

  grpc::ServerUnaryReactor* NewGid(grpc::CallbackServerContext* context,
                                   const google::protobuf::Empty*,
                                   dtmgimp::DtmGidReply* reply) override {
    reply->set_gid(dtmd::NewRandomGid());
    return FinishNow(context, absl::OkStatus());
  }

  grpc::ServerUnaryReactor* Prepare(grpc::CallbackServerContext* context,
                                    const dtmgimp::DtmRequest* request,
                                    google::protobuf::Empty*) override {
    absl::StatusOr<dtmd::NewTransaction> txn =
        dtmd::BuildTransaction(*request, dtmd::storage::kStatusPrepared,
                               clock_->NowMs(), config_, nullptr);
    if (!txn.ok()) return FinishNow(context, txn.status());
    if (absl::StatusOr<std::vector<int>> phase = SecondPhase(*txn);
        !phase.ok()) {
      return FinishNow(context, phase.status());
    }
    absl::MutexLock lock(&mu_);
    auto [it, added] = prepared_.try_emplace(request->gid(), *std::move(txn));
    // A repeat is a client's retry: the first one stands.
    return FinishNow(context,
                     added ? absl::OkStatus() : SameType(it->second, *request));
  }

  grpc::ServerUnaryReactor* RegisterBranch(
      grpc::CallbackServerContext* context,
      const dtmgimp::DtmBranchRequest* request,
      google::protobuf::Empty*) override {
    absl::StatusOr<std::vector<BranchRecord>> branches =
        dtmd::BuildRegistration(*request, clock_->NowMs(), config_);
    if (!branches.ok()) return FinishNow(context, branches.status());
    absl::MutexLock lock(&mu_);
    auto it = prepared_.find(request->gid());
    if (it == prepared_.end()) {
      return FinishNow(context,
                       absl::NotFoundError(absl::StrCat(
                           "transaction ", request->gid(), " does not exist")));
    }
    if (absl::Status s = SameType(it->second, *request); !s.ok()) {
      return FinishNow(context, s);
    }
    std::vector<BranchRecord>& stored = it->second.branches;
    stored.insert(stored.end(), std::make_move_iterator(branches->begin()),
                  std::make_move_iterator(branches->end()));
    return FinishNow(context, absl::OkStatus());
  }

  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* context,
                                   const dtmgimp::DtmRequest* request,
                                   google::protobuf::Empty*) override {
    absl::StatusOr<dtmd::NewTransaction> txn =
        dtmd::BuildTransaction(*request, dtmd::storage::kStatusSubmitted,
                               clock_->NowMs(), config_, nullptr);
    if (!txn.ok()) return FinishNow(context, txn.status());
    const bool wait = request->transoptions().waitresult();
    auto* reactor = context->DefaultReactor();
    if (request->transtype() == "saga") {
      if (!wait) reactor->Finish(grpc::Status::OK);
      (new RelayedTransaction(invoker_, *std::move(txn),
                              wait ? reactor : nullptr))
          ->RunSaga();
      return reactor;
    }
    {
      absl::MutexLock lock(&mu_);
      auto it = prepared_.find(request->gid());
      if (it != prepared_.end()) {
        if (absl::Status s = SameType(it->second, *request); !s.ok()) {
          reactor->Finish(dtmd::ToGrpcStatus(s));
          return reactor;
        }
        // Submitted: what was prepared (and registered) is what runs.
        *txn = std::move(it->second);
        prepared_.erase(it);
      }
    }
    absl::StatusOr<std::vector<int>> phase = SecondPhase(*txn);
    if (!phase.ok()) {
      reactor->Finish(dtmd::ToGrpcStatus(phase.status()));
      return reactor;
    }
    if (!wait) reactor->Finish(grpc::Status::OK);
    (new RelayedTransaction(invoker_, *std::move(txn),
                            wait ? reactor : nullptr))
        ->RunSequence(*std::move(phase));
    return reactor;
  }

 private:
  // INVALID_ARGUMENT when `request` names another TransType than `stored`.
  template <typename Request>
  static absl::Status SameType(const dtmd::NewTransaction& stored,
                               const Request& request) {
    if (stored.trans.trans_type() == request.transtype()) {
      return absl::OkStatus();
    }
    return dtmd::TransTypeMismatch(request.gid(), stored.trans.trans_type(),
                                   request.transtype());
  }

  static grpc::ServerUnaryReactor* FinishNow(
      grpc::CallbackServerContext* context, const absl::Status& status) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(dtmd::ToGrpcStatus(status));
    return reactor;
  }

  dtmd::BranchInvoker* const invoker_;
  const dtmd::Config config_;
  dtmd::Clock* const clock_ = dtmd::SystemClock::Get();
  absl::Mutex mu_;
  // Prepared tcc, xa and msg transactions by gid, until their Submit.
  absl::flat_hash_map<std::string, dtmd::NewTransaction> prepared_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace

int main(int argc, char** argv) {
  dtmd::BlockTerminationSignals();
  absl::SetFlag(&FLAGS_grpc_port, kDefaultRelayPort);
  absl::SetFlag(&FLAGS_listen_address, "127.0.0.1");
  absl::SetFlag(&FLAGS_http_port, 0);  // off unless asked for.
  absl::ParseCommandLine(argc, argv);
  dtmd::InitServerProcess(argv[0]);

  absl::StatusOr<dtmd::Config> config = dtmd::ConfigFromFlags();
  if (!config.ok()) {
    LOG(ERROR) << config.status();
    return 2;
  }
  dtmd::GrpcBranchInvoker grpc_invoker;
  absl::StatusOr<std::unique_ptr<dtmd::HttpBranchInvoker>> http_invoker =
      dtmd::HttpBranchInvoker::Create();
  if (!http_invoker.ok()) {
    LOG(ERROR) << http_invoker.status();
    return 1;
  }
  dtmd::RoutingBranchInvoker invoker(&grpc_invoker, http_invoker->get());
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
  std::unique_ptr<dtmd::bench::EvHttpServer> http;
  if (config->http_port != 0) {
    absl::StatusOr<std::unique_ptr<dtmd::bench::EvHttpServer>> started =
        dtmd::bench::EvHttpServer::Start(
            config->listen_address,
            config->http_port < 0 ? 0 : config->http_port,
            [&service](dtmd::bench::EvHttpServer* server, uint64_t id,
                       const std::string& method, const std::string& path,
                       std::string body) {
              service.HttpRequest(server, id, method, path, body);
            });
    if (!started.ok()) {
      LOG(ERROR) << "--http_port: " << started.status();
      return 1;
    }
    http = *std::move(started);
    LOG(INFO) << "dtmd-relay serving HTTP on port " << http->port();
    if (!config->http_port_file.empty()) {
      if (absl::Status s =
              dtmd::WritePortFile(config->http_port_file, http->port(), 0);
          !s.ok()) {
        LOG(ERROR) << "--http_port_file: " << s;
        return 1;
      }
    }
  }
  dtmd::WaitForTerminationSignal();
  http.reset();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
