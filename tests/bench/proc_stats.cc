#include "tests/bench/proc_stats.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace dtmd::bench {

absl::StatusOr<ProcSample> SampleProcess(pid_t pid) {
  ProcSample sample;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) {
    return absl::NotFoundError(absl::StrCat("no process ", pid));
  }
  // Fields after the command name, which is in parentheses and may hold
  // spaces: state is field 3, utime 14, stime 15.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return absl::InternalError("bad stat line");
  std::vector<std::string> fields = absl::StrSplit(line.substr(close + 2), ' ');
  double utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtod(fields[11], &utime) ||
      !absl::SimpleAtod(fields[12], &stime)) {
    return absl::InternalError("bad stat fields");
  }
  sample.cpu_seconds = (utime + stime) / sysconf(_SC_CLK_TCK);

  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  while (std::getline(status, line)) {
    auto kib = [&line](absl::string_view key, double* mib) {
      if (!absl::StartsWith(line, key)) return;
      std::istringstream in(line.substr(key.size()));
      double value = 0;
      if (in >> value) *mib = value / 1024.0;
    };
    kib("VmRSS:", &sample.rss_mib);
    kib("VmHWM:", &sample.peak_rss_mib);
  }
  return sample;
}

}  // namespace dtmd::bench
