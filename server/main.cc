// dtmd: the distributed transaction coordinator. With no arguments it serves
// DTM's gRPC protocol on 36790 with an embedded store in ./data.
#include <signal.h>

#include <cstdio>
#include <fstream>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/mutex.h"
#include "glog/logging.h"
#include "server/config.h"
#include "server/server.h"

int main(int argc, char** argv) {
  // Signals are taken by sigwait below, never by a handler in another thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::SetProgramUsageMessage(
      "dtmd: distributed transaction coordinator speaking DTM's gRPC "
      "protocol.\nFlags may also come from DTM-style environment variables "
      "(GRPC_PORT, DATA_DIR, RETRY_INTERVAL, ...).");
  dtmd::ApplyEnvironmentToFlags();
  absl::ParseCommandLine(argc, argv);
  // Lock-order checking costs a graph update per mutex on every lock and
  // destruction; it is for debugging, not for serving.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);

  absl::StatusOr<dtmd::Config> config = dtmd::ConfigFromFlags();
  if (!config.ok()) {
    fprintf(stderr, "dtmd: %s\n",
            std::string(config.status().message()).c_str());
    return 2;
  }
  absl::StatusOr<std::unique_ptr<dtmd::Server>> server =
      dtmd::Server::Start(*config);
  if (!server.ok()) {
    LOG(ERROR) << "dtmd cannot start: " << server.status();
    return 1;
  }
  if (!config->port_file.empty()) {
    // Written to a temporary name and renamed, so readers never see half.
    std::string tmp = config->port_file + ".tmp";
    std::ofstream(tmp) << (*server)->port() << "\n";
    if (rename(tmp.c_str(), config->port_file.c_str()) != 0) {
      LOG(ERROR) << "cannot write --port_file " << config->port_file;
      return 1;
    }
  }
  int sig = 0;
  sigwait(&signals, &sig);
  LOG(INFO) << "signal " << sig << ": shutting down";
  (*server)->Shutdown();
  server->reset();
  return 0;
}
