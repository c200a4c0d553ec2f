// dtmd: the distributed transaction coordinator. With no arguments it serves
// DTM's gRPC protocol on 36790 with an embedded store in ./data.
#include <cstdio>
#include <string>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "glog/logging.h"
#include "server/config.h"
#include "server/process.h"
#include "server/server.h"

int main(int argc, char** argv) {
  // Signals are taken by sigwait below, never by a handler in another thread.
  dtmd::BlockTerminationSignals();
  absl::SetProgramUsageMessage(
      "dtmd: distributed transaction coordinator speaking DTM's gRPC "
      "protocol.\nFlags may also come from DTM-style environment variables "
      "(GRPC_PORT, DATA_DIR, RETRY_INTERVAL, ...).");
  dtmd::ApplyEnvironmentToFlags();
  absl::ParseCommandLine(argc, argv);
  dtmd::InitServerProcess(argv[0]);

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
    if (absl::Status s = dtmd::WritePortFile(
            config->port_file, (*server)->port(), (*server)->health_port());
        !s.ok()) {
      LOG(ERROR) << "--port_file: " << s;
      return 1;
    }
  }
  int sig =
      dtmd::WaitForTerminationSignal([&server] { (*server)->ReloadTokens(); });
  LOG(INFO) << "signal " << sig << ": shutting down";
  (*server)->Shutdown();
  server->reset();
  return 0;
}
