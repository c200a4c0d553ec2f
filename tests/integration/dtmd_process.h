// DtmdProcess: a real dtmd process for integration tests, on a loopback port
// chosen by the OS (--grpc_port=0, read back through --port_file), with its
// own data directory, with metrics off (--metrics_port=0) unless `flags`
// say otherwise. Kill() is kill -9; Stop() is SIGTERM and a wait.
#ifndef DTMD_TESTS_INTEGRATION_DTMD_PROCESS_H_
#define DTMD_TESTS_INTEGRATION_DTMD_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dtmd/admin/v1/admin.grpc.pb.h"
#include "dtmgimp.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace dtmd::testing {

// A fresh, empty directory under the test's temporary directory.
std::string MakeTempDir(const std::string& prefix);

// A port nothing listens on right now (the OS's pick, released).
int FreePort();

// How a test client reaches dtmd: channel credentials (null: plaintext) and
// a bearer token sent as "authorization: Bearer <token>" on every call
// (empty: none).
struct ClientOptions {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::string token;
};

// A channel to `address` with `options`.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const ClientOptions& options);

class DtmdProcess {
 public:
  // `data_dir` is kept across restarts; `flags` are extra command-line flags.
  DtmdProcess(std::string data_dir, std::vector<std::string> flags);
  ~DtmdProcess();  // Kill() if still running.

  // Starts dtmd and waits until it serves (health check SERVING, which dtmd
  // says once recovery is done). Errors if it exits (exit_code() then tells
  // how) or does not come up within `timeout`.
  absl::Status Start(absl::Duration timeout = absl::Seconds(20));
  // When set before Start(), dtmd's stderr (its log) is appended to this
  // file instead of the test's.
  void set_stderr_file(std::string path) { stderr_file_ = std::move(path); }
  // When set to false before Start(), Start() returns once dtmd accepts
  // connections, without waiting for health to say SERVING.
  void set_wait_for_serving(bool wait) { wait_for_serving_ = wait; }
  // When set before Start(), channel(), dtm() and admin() (and the waits
  // below) use these credentials and token; plaintext without a token if
  // never set.
  void set_client_options(ClientOptions options) {
    client_options_ = std::move(options);
  }

  // SIGKILL and reap.
  void Kill();
  // SIGTERM and wait; returns the exit code (or -signal).
  int Stop(absl::Duration timeout = absl::Seconds(20));

  // Whether dtmd still runs: false (and exit_code() tells how it ended)
  // once it exited on its own, or was never started or was stopped.
  bool Running();

  // How the last run ended, by Stop(), Running() or during Start(): the exit
  // code, or -signal; -1 while running or before any run ended.
  int exit_code() const { return exit_code_; }

  int port() const { return port_; }
  // The second line of --port_file: dtmd's --health_port, 0 without one.
  int health_port() const { return health_port_; }
  // The HTTP API's port (--http_port_file), 0 when it is off.
  int http_port() const { return http_port_; }
  pid_t pid() const { return pid_; }  // -1 when not running.
  const std::string& data_dir() const { return data_dir_; }
  std::string Address() const;
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  dtmgimp::Dtm::Stub* dtm() const { return dtm_.get(); }
  dtmd::admin::v1::Admin::Stub* admin() const { return admin_.get(); }

  // Polls the admin service until the transaction's status is one of
  // `statuses`; returns the last reply (or a failed status on timeout).
  absl::StatusOr<dtmd::admin::v1::GetTransactionReply> WaitForStatus(
      const std::string& gid, const std::vector<std::string>& statuses,
      absl::Duration timeout) const;
  // Polls the admin service until `done` holds for the transaction; returns
  // that reply, or DEADLINE_EXCEEDED naming `what` on timeout.
  absl::StatusOr<dtmd::admin::v1::GetTransactionReply> WaitFor(
      const std::string& gid,
      const std::function<bool(const dtmd::admin::v1::GetTransactionReply&)>&
          done,
      const std::string& what, absl::Duration timeout) const;
  absl::StatusOr<dtmd::admin::v1::GetTransactionReply> GetTransaction(
      const std::string& gid) const;
  // Admin RetryNow: drives the transaction now.
  grpc::Status RetryNow(const std::string& gid) const;
  // Polls the admin service until the transaction is final (succeed or
  // failed) or `deadline` passed. NOT_FOUND at once when dtmd does not have
  // the gid (it answers from its store: no use waiting); DEADLINE_EXCEEDED
  // naming the last status seen (or the last error).
  absl::StatusOr<dtmd::admin::v1::GetTransactionReply> WaitForFinal(
      const std::string& gid, absl::Time deadline) const;

 private:
  const std::string data_dir_;
  const std::vector<std::string> flags_;
  // The exit code of a reaped child: its exit status, or -signal.
  static int ExitCode(int wait_status);

  std::string stderr_file_;
  bool wait_for_serving_ = true;
  ClientOptions client_options_;
  pid_t pid_ = -1;
  int port_ = 0;
  int health_port_ = 0;
  int http_port_ = 0;
  int exit_code_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<dtmgimp::Dtm::Stub> dtm_;
  std::unique_ptr<dtmd::admin::v1::Admin::Stub> admin_;
};

}  // namespace dtmd::testing

#endif  // DTMD_TESTS_INTEGRATION_DTMD_PROCESS_H_
