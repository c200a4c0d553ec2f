#include "server/process.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "glog/logging.h"
#include "google/protobuf/stubs/logging.h"

namespace dtmd {
namespace {

sigset_t TerminationSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  return signals;
}

// Protobuf logs an ERROR for every message it cannot parse (a string that is
// not UTF-8, for one), which a client can cause at will: such lines go to
// glog at most once a second, with the count of those left out.
void RateLimitedProtobufLog(google::protobuf::LogLevel level,
                            const char* filename, int line,
                            const std::string& message) {
  static std::atomic<int64_t> last_second{0};
  static std::atomic<int64_t> suppressed{0};
  if (level >= google::protobuf::LOGLEVEL_FATAL) {
    LOG(ERROR) << "protobuf: " << filename << ":" << line << ": " << message;
    return;
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  int64_t last = last_second.load();
  if (now == last || !last_second.compare_exchange_strong(last, now)) {
    ++suppressed;
    return;
  }
  LOG(WARNING) << "protobuf: " << message << " (" << suppressed.exchange(0)
               << " similar lines left out in the last second)";
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t signals = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int WaitForTerminationSignal(const std::function<void()>& on_hangup) {
  sigset_t signals = TerminationSignals();
  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig != SIGHUP) return sig;
    if (on_hangup) {
      on_hangup();
    } else {
      LOG(INFO) << "SIGHUP ignored";
    }
  }
}

void InitServerProcess(const char* argv0) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv0);
  google::protobuf::SetLogHandler(&RateLimitedProtobufLog);
}

absl::Status WritePortFile(const std::string& path, int port, int second_port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << port << "\n";
    if (second_port > 0) out << second_port << "\n";
    if (!out.flush()) {
      return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

}  // namespace dtmd
