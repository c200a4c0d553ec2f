#include "server/config_sources.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <set>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "yaml-cpp/yaml.h"

namespace dtmd {
namespace {

// Flags about where the configuration comes from, not settings themselves.
const std::set<std::string>& MetaFlags() {
  static const auto* flags = new std::set<std::string>{
      "config", "check_config", "print_config_reference"};
  return *flags;
}

// Settings DTM has under another name than the CamelCase of dtmd's flag.
struct DtmName {
  const char* flag;
  const char* key;
  const char* legacy_env;  // an extra variable older dtmd versions read
};
constexpr DtmName kDtmNames[] = {
    {"cron_interval", "TransCronInterval", "CRON_JOB_INTERVAL"},
    {"alert_webhook", "AlertWebHook", nullptr},
    {"alert_webhook_timeout", "AlertWebHookTimeout", nullptr},
    {"retention", "Store.DataExpire", nullptr},
    {"store", "Store.Driver", nullptr},
    {"store_host", "Store.Host", nullptr},
    {"store_port", "Store.Port", nullptr},
    {"store_user", "Store.User", nullptr},
    {"store_password", "Store.Password", nullptr},
    {"store_db", "Store.Db", nullptr},
    {"store_schema", "Store.Schema", nullptr},
};

// DTM keys dtmd accepts and has no use for (DTM features of other stores,
// service registries, its own logger). A map listed here is ignored whole.
const std::set<std::string>& IgnoredDtmKeys() {
  static const auto* keys = new std::set<std::string>{
      "JsonRpcPort",
      "UpdateBranchSync",
      "UpdateBranchAsyncGoroutineNum",
      "TimeZoneOffset",
      "ConfigUpdateInterval",
      "AdminBasePath",
      "GrpcServiceConfig",
      "GrpcBalancer",
      "Log",
      "MicroService",
      "HttpMicroService",
      "Store.MaxOpenConns",
      "Store.MaxIdleConns",
      "Store.ConnMaxLifeTime",
      "Store.FinishedDataExpire",
      "Store.RedisPrefix",
  };
  return *keys;
}

std::string CamelCase(const std::string& flag) {
  std::string out;
  bool upper = true;
  for (char c : flag) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper
               ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
               : c;
    upper = false;
  }
  return out;
}

bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }

// DTM's rule (dtmsvr/config toUnderscoreUpper): "Store.DataExpire" becomes
// STORE_DATA_EXPIRE, "GrpcPort" GRPC_PORT.
std::string EnvName(const std::string& key) {
  std::string out;
  for (size_t i = 0; i < key.size(); ++i) {
    char c = key[i];
    if (c == '.') {
      out += '_';
      continue;
    }
    if (i > 0 && IsUpper(c) && key[i - 1] != '.') {
      const char prev = key[i - 1];
      const bool next_lower = i + 1 < key.size() && IsLower(key[i + 1]);
      if (IsLower(prev) || (IsUpper(prev) && next_lower)) out += '_';
    }
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

bool IsSettingFlag(const absl::CommandLineFlag& flag) {
  const std::string name(flag.Name());
  return absl::EndsWith(flag.Filename(), "server/config.cc") &&
         !MetaFlags().count(name) && !absl::StartsWith(name, "testing_");
}

std::string Where(const std::string& path, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return path;
  return absl::StrCat(path, ":", mark.line + 1);
}

absl::Status SetFlag(const std::string& flag_name, const std::string& value,
                     const std::string& source) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(flag_name);
  if (flag == nullptr) {
    return absl::InternalError(absl::StrCat("no flag --", flag_name));
  }
  std::string error;
  if (!flag->ParseFrom(value, &error)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": bad value '", value, "': ", error));
  }
  return absl::OkStatus();
}

class FileApplier {
 public:
  FileApplier(const std::string& path, AppliedSources* applied)
      : path_(path), applied_(applied) {
    for (const Setting& s : AllSettings()) by_key_[s.key] = s.flag;
  }

  absl::Status Apply(const YAML::Node& root) {
    if (root.IsNull()) return absl::OkStatus();  // an empty file
    if (!root.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat(
          Where(path_, root), ": expected a map of settings at the top"));
    }
    return Walk(root, "");
  }

 private:
  absl::Status Walk(const YAML::Node& map, const std::string& prefix) {
    for (const auto& entry : map) {
      const YAML::Node& key_node = entry.first;
      const YAML::Node& value = entry.second;
      if (!key_node.IsScalar()) {
        return absl::InvalidArgumentError(
            absl::StrCat(Where(path_, key_node), ": keys must be names"));
      }
      const std::string key = prefix + key_node.Scalar();
      const std::string where = absl::StrCat(Where(path_, key_node), ": ", key);
      if (key == "Store.Driver" && value.IsScalar() &&
          value.Scalar() != "rocksdb" && value.Scalar() != "boltdb" &&
          value.Scalar() != "postgres") {
        return absl::InvalidArgumentError(absl::StrCat(
            where,
            ": dtmd keeps transactions in its embedded store ('rocksdb', or "
            "DTM's 'boltdb') or in a shared PostgreSQL ('postgres'), got '",
            value.Scalar(), "'"));
      }
      if (auto it = by_key_.find(key); it != by_key_.end()) {
        if (!value.IsScalar()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": expected a single value"));
        }
        if (absl::Status s = SetFlag(it->second, value.Scalar(), where);
            !s.ok()) {
          return s;
        }
        applied_->source[it->second] = Where(path_, key_node);
        applied_->value[it->second] = value.Scalar();
        continue;
      }
      if (IgnoredDtmKeys().count(key)) {
        applied_->ignored.push_back(key);
        continue;
      }
      if (value.IsMap() && IsKnownPrefix(key + ".")) {
        if (absl::Status s = Walk(value, key + "."); !s.ok()) return s;
        continue;
      }
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       ": unknown key (README, \"Configuration "
                       "reference\", lists every key)"));
    }
    return absl::OkStatus();
  }

  bool IsKnownPrefix(const std::string& prefix) const {
    auto it = by_key_.lower_bound(prefix);
    if (it != by_key_.end() && absl::StartsWith(it->first, prefix)) {
      return true;
    }
    for (const std::string& k : IgnoredDtmKeys()) {
      if (absl::StartsWith(k, prefix)) return true;
    }
    return prefix == "Store.";
  }

  const std::string& path_;
  AppliedSources* applied_;
  std::map<std::string, std::string> by_key_;
};

std::string MarkdownCell(std::string text) {
  absl::StrReplaceAll({{"|", "\\|"}, {"\n", " "}}, &text);
  return text;
}

}  // namespace

std::vector<Setting> AllSettings() {
  std::map<std::string, const DtmName*> dtm_names;
  for (const DtmName& d : kDtmNames) dtm_names[d.flag] = &d;
  std::vector<Setting> settings;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!IsSettingFlag(*flag)) continue;
    Setting s;
    s.flag = std::string(name);
    auto it = dtm_names.find(s.flag);
    s.key = it != dtm_names.end() ? it->second->key : CamelCase(s.flag);
    s.envs.push_back(EnvName(s.key));
    if (it != dtm_names.end() && it->second->legacy_env != nullptr) {
      s.envs.push_back(it->second->legacy_env);
    }
    s.default_value = flag->DefaultValue();
    s.help = flag->Help();
    settings.push_back(std::move(s));
  }
  std::sort(settings.begin(), settings.end(),
            [](const Setting& a, const Setting& b) { return a.flag < b.flag; });
  return settings;
}

EnvLookup ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

std::string ConfigPathFromArgs(int argc, char** argv) {
  std::string path;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    for (absl::string_view prefix : {"--config", "-config"}) {
      if (!absl::StartsWith(arg, prefix)) continue;
      absl::string_view rest = arg.substr(prefix.size());
      if (absl::StartsWith(rest, "=")) {
        path = std::string(rest.substr(1));
      } else if (rest.empty() && i + 1 < argc) {
        path = argv[i + 1];
      }
    }
  }
  return path;
}

absl::Status ApplyFileAndEnvironment(const std::string& path,
                                     const EnvLookup& env,
                                     AppliedSources* applied) {
  if (!path.empty()) {
    YAML::Node root;
    try {
      root = YAML::LoadFile(path);
    } catch (const YAML::BadFile&) {
      return absl::NotFoundError(absl::StrCat("cannot read ", path));
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
    }
    try {
      if (absl::Status s = FileApplier(path, applied).Apply(root); !s.ok()) {
        return s;
      }
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", e.mark.line + 1, ": ", e.msg));
    }
  }
  for (const Setting& s : AllSettings()) {
    for (const std::string& name : s.envs) {
      std::optional<std::string> value = env(name);
      if (!value.has_value() || value->empty()) continue;
      if (absl::Status st =
              SetFlag(s.flag, *value, absl::StrCat("environment ", name));
          !st.ok()) {
        return st;
      }
      applied->source[s.flag] = absl::StrCat("environment ", name);
      applied->value[s.flag] = *value;
      break;
    }
  }
  return absl::OkStatus();
}

std::string DescribeEffectiveSettings(const AppliedSources& applied) {
  std::string out;
  for (const Setting& s : AllSettings()) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(s.flag);
    const std::string current = flag->CurrentValue();
    std::string source = "default";
    auto it = applied.source.find(s.flag);
    if (it != applied.source.end() && applied.value.at(s.flag) == current) {
      source = it->second;
    } else if (it != applied.source.end() || current != s.default_value) {
      source = "command line";
    }
    absl::StrAppend(&out, s.key, " = ", current.empty() ? "\"\"" : current,
                    "  (", source, ")\n");
  }
  return out;
}

std::string ConfigReferenceMarkdown() {
  std::string out =
      "| YAML key | Environment | Flag | Default | Meaning |\n"
      "|---|---|---|---|---|\n";
  for (const Setting& s : AllSettings()) {
    std::vector<std::string> envs;
    for (const std::string& e : s.envs)
      envs.push_back(absl::StrCat("`", e, "`"));
    absl::StrAppend(&out, "| `", s.key, "` | ", absl::StrJoin(envs, ", "),
                    " | `--", s.flag, "` | `",
                    s.default_value.empty() ? "\"\"" : s.default_value, "` | ",
                    MarkdownCell(s.help), " |\n");
  }
  return out;
}

}  // namespace dtmd
