#include "storage/rocksdb_support.h"

#include <cstdarg>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dtmd::storage {
namespace {

class GlogInfoLogger : public rocksdb::Logger {
 public:
  GlogInfoLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL) {}

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list args) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, args);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format,
            va_list args) override {
    const bool is_error = level >= rocksdb::InfoLogLevel::ERROR_LEVEL &&
                          level != rocksdb::InfoLogLevel::HEADER_LEVEL;
    const bool is_warning = level == rocksdb::InfoLogLevel::WARN_LEVEL;
    if (!is_error && !is_warning && !VLOG_IS_ON(2)) return;
    char buffer[1024];
    va_list copy;
    va_copy(copy, args);
    vsnprintf(buffer, sizeof(buffer), format, copy);
    va_end(copy);
    if (is_error) {
      LOG(ERROR) << "rocksdb: " << buffer;
    } else if (is_warning) {
      LOG(WARNING) << "rocksdb: " << buffer;
    } else {
      VLOG(2) << "rocksdb: " << buffer;
    }
  }
};

}  // namespace

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view context) {
  if (s.ok()) return absl::OkStatus();
  std::string message = absl::StrCat(context, ": ", s.ToString());
  if (s.IsIOError() || s.IsBusy() || s.IsTryAgain() || s.IsTimedOut() ||
      s.IsIncomplete() || s.IsAborted() || s.IsNoSpace()) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

std::shared_ptr<rocksdb::Logger> NewGlogInfoLogger() {
  return std::make_shared<GlogInfoLogger>();
}

}  // namespace dtmd::storage
