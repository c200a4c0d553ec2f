// dtmd: the distributed transaction coordinator. With no arguments it serves
// DTM's gRPC protocol on 36790 with an embedded store in ./data.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "glog/logging.h"
#include "server/config.h"
#include "server/config_sources.h"
#include "server/process.h"
#include "server/server.h"

namespace {

// Exit code for a configuration dtmd cannot start with.
constexpr int kExitBadConfig = 2;

int BadConfig(const absl::Status& status) {
  fprintf(stderr, "dtmd: %s\n", std::string(status.message()).c_str());
  return kExitBadConfig;
}

void SetLogLevel(const std::string& level) {
  if (level == "debug") {
    FLAGS_v = 1;
    FLAGS_minloglevel = google::GLOG_INFO;
  } else if (level == "warn") {
    FLAGS_minloglevel = google::GLOG_WARNING;
  } else if (level == "error") {
    FLAGS_minloglevel = google::GLOG_ERROR;
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Signals are taken by sigwait below, never by a handler in another thread.
  dtmd::BlockTerminationSignals();
  absl::SetProgramUsageMessage(
      "dtmd: distributed transaction coordinator speaking DTM's gRPC "
      "protocol.\nSettings come from a YAML file (--config), then DTM-style "
      "environment variables (GRPC_PORT, RETRY_INTERVAL, ...), then flags; "
      "--print_config_reference lists them all.");
  absl::FlagsUsageConfig usage;
  usage.version_string = [] { return std::string("dtmd " DTMD_VERSION "\n"); };
  absl::SetFlagsUsageConfig(usage);

  // The file and the environment set the flags first, so that the command
  // line, parsed after them, overrides both.
  dtmd::AppliedSources applied;
  const std::string config_path = dtmd::ConfigPathFromArgs(argc, argv);
  absl::Status sources = dtmd::ApplyFileAndEnvironment(
      config_path, dtmd::ProcessEnvironment(), &applied);
  absl::ParseCommandLine(argc, argv);
  if (dtmd::PrintConfigReferenceFlag()) {
    fputs(dtmd::ConfigReferenceMarkdown().c_str(), stdout);
    return 0;
  }
  if (!sources.ok()) return BadConfig(sources);
  absl::StatusOr<dtmd::Config> config = dtmd::ConfigFromFlags();
  if (!config.ok()) return BadConfig(config.status());
  if (dtmd::CheckConfigFlag()) {
    printf("%s", dtmd::DescribeEffectiveSettings(applied).c_str());
    for (const std::string& key : applied.ignored) {
      printf("%s: a DTM setting dtmd has no use for; ignored\n", key.c_str());
    }
    printf("dtmd: configuration ok\n");
    return 0;
  }

  dtmd::InitServerProcess(argv[0]);
  SetLogLevel(config->log_level);
  for (const std::string& key : applied.ignored) {
    LOG(WARNING) << config_path << ": " << key
                 << " is a DTM setting dtmd has no use for; ignored";
  }
  absl::StatusOr<std::unique_ptr<dtmd::Server>> server =
      dtmd::Server::Start(*config);
  if (!server.ok()) {
    LOG(ERROR) << "dtmd cannot start: " << server.status();
    return 1;
  }
  if (!config->http_port_file.empty()) {
    if (absl::Status s = dtmd::WritePortFile(config->http_port_file,
                                             (*server)->http_port(), 0);
        !s.ok()) {
      LOG(ERROR) << "--http_port_file: " << s;
      return 1;
    }
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
