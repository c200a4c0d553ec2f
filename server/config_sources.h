// Where dtmd's settings come from, lowest precedence first: each flag's
// default, a YAML file (--config), environment variables, the command line.
//
// Every flag defined in server/config.cc is a setting (the testing_* ones
// only as flags). Its YAML key is DTM's where DTM has the setting
// (TransCronInterval, RetryInterval, ...), else the flag name in CamelCase
// (max_branches: MaxBranches); a key may be nested (Store.DataExpire). Its
// environment variable is the key in DTM's style: words upper-cased and
// joined by '_' (RETRY_INTERVAL, STORE_DATA_EXPIRE, MAX_BRANCHES).
#ifndef DTMD_SERVER_CONFIG_SOURCES_H_
#define DTMD_SERVER_CONFIG_SOURCES_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace dtmd {

struct Setting {
  std::string flag;               // absl flag name: "retry_interval"
  std::string key;                // YAML key path: "RetryInterval"
  std::vector<std::string> envs;  // environment variables, first wins
  std::string default_value;
  std::string help;
};

// Every setting, sorted by flag name.
std::vector<Setting> AllSettings();

// Looks an environment variable up; nullopt when unset. Tests pass their
// own.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup ProcessEnvironment();

// The --config path given in argv (--config=F, --config F, -config=F), or
// "" if none. Read before the command line is parsed, so that the file and
// the environment can be applied first and the command line still wins.
std::string ConfigPathFromArgs(int argc, char** argv);

// What ApplyFileAndEnvironment did.
struct AppliedSources {
  // DTM keys that dtmd has no use for (JsonRpcPort, MicroService, ...):
  // accepted, for the caller to warn about.
  std::vector<std::string> ignored;
  // Per flag set from the file or the environment: where from
  // ("dtmd.yaml:3", "environment RETRY_INTERVAL") and the value.
  std::map<std::string, std::string> source;
  std::map<std::string, std::string> value;
};

// Sets flags from the YAML file at `path` (if not empty), then from the
// environment. INVALID_ARGUMENT naming the key (or variable) and the file
// for an unknown key, a value of the wrong type or shape, or a file that
// is not YAML; NOT_FOUND if the file cannot be read. Call before
// absl::ParseCommandLine.
absl::Status ApplyFileAndEnvironment(const std::string& path,
                                     const EnvLookup& env,
                                     AppliedSources* applied);

// After the command line is parsed: one line per setting, "Key = value
// (source)", the source being the default, the file, the environment or
// the command line. Printed by --check_config.
std::string DescribeEffectiveSettings(const AppliedSources& applied);

// The configuration reference as a Markdown table (README "Configuration
// reference" holds a copy that a test compares with this).
std::string ConfigReferenceMarkdown();

}  // namespace dtmd

#endif  // DTMD_SERVER_CONFIG_SOURCES_H_
