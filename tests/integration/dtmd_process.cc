#include "tests/integration/dtmd_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/client_interceptor.h"
#include "gtest/gtest.h"
#include "tests/integration/grpc_probes.h"

#ifndef DTMD_BINARY
#error "DTMD_BINARY must name the dtmd executable"
#endif

namespace dtmd::testing {

// A port nothing listens on right now (the OS's pick, released).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string MakeTempDir(const std::string& prefix) {
  static std::atomic<int> counter{0};
  std::string dir = absl::StrCat(::testing::TempDir(), "/", prefix, "-",
                                 getpid(), "-", counter++);
  std::string cmd = absl::StrCat("rm -rf '", dir, "' && mkdir -p '", dir, "'");
  if (system(cmd.c_str()) != 0) ADD_FAILURE() << "cannot create " << dir;
  return dir;
}

namespace {

// Adds the bearer token to every call's initial metadata.
class BearerTokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(const std::string& token)
      : value_("Bearer " + token) {}
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::
                PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", value_});
    }
    methods->Proceed();
  }

 private:
  const std::string value_;
};

class BearerTokenInterceptorFactory
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenInterceptorFactory(std::string token)
      : token_(std::move(token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new BearerTokenInterceptor(token_);
  }

 private:
  const std::string token_;
};

}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const ClientOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      options.credentials != nullptr ? options.credentials
                                     : grpc::InsecureChannelCredentials();
  if (options.token.empty()) return grpc::CreateChannel(address, credentials);
  std::vector<
      std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(
      std::make_unique<BearerTokenInterceptorFactory>(options.token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, credentials, grpc::ChannelArguments(), std::move(interceptors));
}

DtmdProcess::DtmdProcess(std::string data_dir, std::vector<std::string> flags)
    : data_dir_(std::move(data_dir)), flags_(std::move(flags)) {}

DtmdProcess::~DtmdProcess() { Kill(); }

std::string DtmdProcess::Address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

absl::Status DtmdProcess::Start(absl::Duration timeout) {
  if (pid_ > 0) return absl::FailedPreconditionError("already running");
  exit_code_ = -1;
  const std::string port_file = data_dir_ + ".port";
  unlink(port_file.c_str());
  const std::string http_port_file = data_dir_ + ".httpport";
  std::vector<std::string> args = {
      DTMD_BINARY, "--listen_address=127.0.0.1", "--grpc_port=0",
      "--port_file=" + port_file, "--data_dir=" + data_dir_,
      // Off unless a test's flags enable it:
      // tests run side by side.
      "--metrics_port=0",
      // The HTTP API too (--http_port=-1 in
      // `flags` turns it on, on a free port).
      "--http_port=0", "--http_port_file=" + http_port_file};
  args.insert(args.end(), flags_.begin(), flags_.end());
  // Everything the child needs is made before fork: the test process has
  // many threads, and a child that allocates before exec can hang on a lock
  // another thread held at the fork (seen as a start that never came, under
  // ASan). The child only makes async-signal-safe calls.
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const char* stderr_path =
      stderr_file_.empty() ? nullptr : stderr_file_.c_str();
  pid_ = fork();
  if (pid_ < 0) return absl::InternalError("fork failed");
  if (pid_ == 0) {
    if (stderr_path != nullptr) {
      const int fd = open(stderr_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) _exit(126);
      close(fd);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      exit_code_ = ExitCode(status);
      return absl::InternalError(absl::StrCat(
          "dtmd exited during start-up with exit code ", exit_code_));
    }
    std::ifstream in(port_file);
    if (in >> port_ && port_ > 0) {
      if (!(in >> health_port_)) health_port_ = 0;
      // Written before --port_file.
      std::ifstream http_in(http_port_file);
      if (!(http_in >> http_port_)) http_port_ = 0;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (port_ <= 0) return absl::DeadlineExceededError("dtmd did not start");
  channel_ = MakeChannel(Address(), client_options_);
  if (!channel_->WaitForConnected(std::chrono::system_clock::now() +
                                  std::chrono::seconds(10))) {
    return absl::UnavailableError("cannot connect to dtmd");
  }
  dtm_ = dtmgimp::Dtm::NewStub(channel_);
  admin_ = dtmd::admin::v1::Admin::NewStub(channel_);
  while (wait_for_serving_) {
    absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus>
        health = CheckHealth(channel_);
    if (health.ok() &&
        *health == grpc::health::v1::HealthCheckResponse::SERVING) {
      break;
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError("dtmd never said SERVING");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::OkStatus();
}

void DtmdProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int DtmdProcess::Stop(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + timeout;
  int status = 0;
  while (absl::Now() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      exit_code_ = ExitCode(status);
      return exit_code_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill();
  exit_code_ = -SIGKILL;
  return exit_code_;
}

bool DtmdProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) != pid_) return true;
  pid_ = -1;
  exit_code_ = ExitCode(status);
  return false;
}

int DtmdProcess::ExitCode(int wait_status) {
  return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status)
                                : -WTERMSIG(wait_status);
}

absl::StatusOr<dtmd::admin::v1::GetTransactionReply>
DtmdProcess::GetTransaction(const std::string& gid) const {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  dtmd::admin::v1::GetTransactionRequest request;
  request.set_gid(gid);
  dtmd::admin::v1::GetTransactionReply reply;
  grpc::Status status = admin_->GetTransaction(&context, request, &reply);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        status.error_message());
  }
  return reply;
}

grpc::Status DtmdProcess::RetryNow(const std::string& gid) const {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  dtmd::admin::v1::RetryNowRequest request;
  request.set_gid(gid);
  dtmd::admin::v1::RetryNowReply reply;
  return admin_->RetryNow(&context, request, &reply);
}

absl::StatusOr<dtmd::admin::v1::GetTransactionReply> DtmdProcess::WaitForStatus(
    const std::string& gid, const std::vector<std::string>& statuses,
    absl::Duration timeout) const {
  return WaitFor(
      gid,
      [&](const dtmd::admin::v1::GetTransactionReply& reply) {
        return std::find(statuses.begin(), statuses.end(),
                         reply.transaction().status()) != statuses.end();
      },
      "the expected status", timeout);
}

absl::StatusOr<dtmd::admin::v1::GetTransactionReply> DtmdProcess::WaitFor(
    const std::string& gid,
    const std::function<bool(const dtmd::admin::v1::GetTransactionReply&)>&
        done,
    const std::string& what, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<dtmd::admin::v1::GetTransactionReply> last;
  do {
    last = GetTransaction(gid);
    if (last.ok() && done(*last)) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (absl::Now() < deadline);
  return absl::DeadlineExceededError(
      absl::StrCat("gid ", gid, " did not reach ", what, "; last status: ",
                   last.ok() ? last->transaction().status()
                             : std::string(last.status().message())));
}

absl::StatusOr<dtmd::admin::v1::GetTransactionReply> DtmdProcess::WaitForFinal(
    const std::string& gid, absl::Time deadline) const {
  std::string last = "no answer";
  do {
    absl::StatusOr<dtmd::admin::v1::GetTransactionReply> reply =
        GetTransaction(gid);
    if (reply.ok()) {
      last = reply->transaction().status();
      if (last == "succeed" || last == "failed") return reply;
    } else if (absl::IsNotFound(reply.status())) {
      return reply.status();
    } else {
      last = reply.status().ToString();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (absl::Now() < deadline);
  return absl::DeadlineExceededError(
      absl::StrCat("gid ", gid, " not final, last seen ", last));
}

}  // namespace dtmd::testing
