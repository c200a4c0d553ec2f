// A scripted gRPC branch server for integration tests: the "business service"
// that dtmd calls. It answers every method (a CallbackGenericService), records
// each call with its metadata and raw payload, and answers from a script, so a
// test decides which branch succeeds, fails, is ongoing or times out.
//
//   ScriptedBranchServer branches;
//   ASSERT_OK(branches.Start());
//   branches.SetScript("/busi.Busi/Charge",
//                      {{grpc::StatusCode::UNAVAILABLE}, {}});  // then OK
//   saga.Add(branches.Url("/busi.Busi/Charge"), ...);
//   ASSERT_TRUE(branches.WaitForCalls(2, absl::Seconds(10)));
//
// Choosing an answer for a call of `method` carrying metadata dtm-gid = G:
//   0. the responder set with SetResponder, if it returns an answer;
//   1. the script set with SetScript(method, G, ...) if there is one, else the
//      method-wide script SetScript(method, ...). Either is consumed in order,
//      one answer per call, with a cursor per (G, method): every gid sees the
//      method-wide script from its start;
//   2. once the script is used up (or if none applies): SetDefault(method, ..)
//      if set, else the global SetDefault(..) (initially OK).
// An OK answer sends an empty message as the reply body; any other code ends
// the call with that status and message. A delayed answer is sent later from a
// grpc::Alarm, never by blocking a gRPC thread.
//
// Thread-safe: all methods may be called from any thread, also while calls are
// in flight. Scripts may be changed at any time; they apply to later calls.
#ifndef DTMD_TESTS_INTEGRATION_BRANCH_SERVER_H_
#define DTMD_TESTS_INTEGRATION_BRANCH_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace dtmd::testing {

// One scripted reply.
struct Answer {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
  int delay_ms = 0;  // Reply this long after the request arrived.
  // If set, called once, on a gRPC thread, right before the reply (or the
  // cancellation's end) is handed to gRPC: the client cannot have seen the
  // answer before it runs.
  std::function<void()> on_reply = nullptr;
};

// One call as the server saw it, recorded when the request arrived.
struct RecordedCall {
  std::string method;  // "/package.Service/Method"
  // All client metadata, keys as received (lower case). A key sent several
  // times keeps its values joined with ",".
  std::map<std::string, std::string> metadata;
  std::string payload;  // Raw request bytes.
  // The DTM metadata, empty when absent.
  std::string gid;         // dtm-gid
  std::string trans_type;  // dtm-trans_type
  std::string branch_id;   // dtm-branch_id
  std::string op;          // dtm-op
  int64_t time_ms = 0;     // Arrival, Unix time in milliseconds.
  Answer answer;           // What the server answered (or will, if delayed).
};

class ScriptedBranchServer {
 public:
  ScriptedBranchServer();
  ~ScriptedBranchServer();  // Shutdown().

  ScriptedBranchServer(const ScriptedBranchServer&) = delete;
  ScriptedBranchServer& operator=(const ScriptedBranchServer&) = delete;

  // The credentials Start() listens with (plaintext if never set), e.g.
  // grpc::SslServerCredentials for a TLS branch server.
  void set_credentials(std::shared_ptr<grpc::ServerCredentials> credentials);

  // Listens on 127.0.0.1 on a port the OS picks and returns that port.
  // FAILED_PRECONDITION if already started, UNAVAILABLE if the server could
  // not be started.
  absl::StatusOr<int> Start();

  // Cancels calls still waiting for a delayed answer (their clients see
  // CANCELLED) and stops the server. Returns once every call has finished.
  // Idempotent; the recorded calls stay readable.
  void Shutdown();

  // The port Start() returned; 0 before Start().
  int port() const;
  // "127.0.0.1:PORT".
  std::string Address() const;
  // A branch URL for dtmd: "127.0.0.1:PORT" + method_path, where method_path
  // is like "/busi.Busi/TransOut".
  std::string Url(const std::string& method_path) const;

  // Replaces the method-wide script of `method` and restarts it for every gid.
  void SetScript(const std::string& method, std::vector<Answer> answers);
  // Replaces the script of (`method`, `gid`) and restarts it.
  void SetScript(const std::string& method, const std::string& gid,
                 std::vector<Answer> answers);
  // The answer for `method` once its script is used up.
  void SetDefault(const std::string& method, Answer answer);
  // The answer for any method without a default of its own.
  void SetDefault(Answer answer);

  // Decides answers before the scripts are consulted: the hook for servers
  // with books of their own (LedgerBranchServer). Called once per call, on a
  // gRPC thread, before the call is recorded and without the server's lock
  // held, so it may block briefly or signal other processes; concurrent calls
  // reach it concurrently. std::nullopt falls back to the scripts. An empty
  // function (the default) removes the hook.
  using Responder = std::function<std::optional<Answer>(const RecordedCall&)>;
  void SetResponder(Responder responder);

  // Copies of the recorded calls, in arrival order.
  std::vector<RecordedCall> Calls() const;
  std::vector<RecordedCall> CallsFor(const std::string& gid) const;
  // Number of calls with dtm-gid == gid and dtm-op == op.
  int CountCalls(const std::string& gid, const std::string& op) const;

  // Waits until `done(calls)` is true or `timeout` passed; returns the last
  // value of `done`. `done` runs with the server's lock held: it must not call
  // back into the server.
  bool WaitForCalls(
      const std::function<bool(const std::vector<RecordedCall>&)>& done,
      absl::Duration timeout);
  // Waits until at least `count` calls were recorded.
  bool WaitForCalls(size_t count, absl::Duration timeout);

 private:
  class Service;
  class Reactor;

  // Records the call, fills in call->answer from the scripts and returns a
  // copy of the recorded call's answer. Called by reactors.
  Answer RecordAndAnswer(RecordedCall call);
  // The scripted answer for a call of (method, gid); advances the cursor.
  Answer ScriptedAnswer(const std::string& method, const std::string& gid)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex lifecycle_mu_;          // Serializes Start and Shutdown.
  std::unique_ptr<Service> service_;  // Outlives server_.
  std::unique_ptr<grpc::Server> server_ ABSL_GUARDED_BY(lifecycle_mu_);
  std::shared_ptr<grpc::ServerCredentials> credentials_
      ABSL_GUARDED_BY(lifecycle_mu_);

  mutable absl::Mutex mu_;
  int port_ ABSL_GUARDED_BY(mu_) = 0;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<RecordedCall> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<Answer>> method_scripts_
      ABSL_GUARDED_BY(mu_);
  // Key: (method, gid).
  std::map<std::pair<std::string, std::string>, std::vector<Answer>>
      gid_scripts_ ABSL_GUARDED_BY(mu_);
  // Answers consumed per (method, gid), from the gid's script and from the
  // method-wide script.
  std::map<std::pair<std::string, std::string>, size_t> gid_cursors_
      ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, size_t> method_cursors_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, Answer> method_defaults_ ABSL_GUARDED_BY(mu_);
  Answer default_answer_ ABSL_GUARDED_BY(mu_);
  // Shared so that a call runs it without mu_ held while it may be replaced.
  std::shared_ptr<const Responder> responder_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dtmd::testing

#endif  // DTMD_TESTS_INTEGRATION_BRANCH_SERVER_H_
