#include "server/retry_alert.h"

#include <curl/curl.h>

#include <atomic>
#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "nlohmann/json.hpp"

namespace dtmd {
namespace {

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Discards the webhook's answer body.
size_t DiscardBody(char*, size_t size, size_t count, void*) {
  return size * count;
}

// Aborts a POST under way once the sender stops (libcurl calls it about
// once a second at least).
int AbortWhenStopping(void* stopping, curl_off_t, curl_off_t, curl_off_t,
                      curl_off_t) {
  return static_cast<std::atomic<bool>*>(stopping)->load() ? 1 : 0;
}

}  // namespace

bool IsRetryAlertPoint(int64_t retries, int64_t limit) {
  if (limit <= 0 || retries < limit || retries % limit != 0) return false;
  const int64_t ratio = retries / limit;
  return (ratio & (ratio - 1)) == 0;  // a power of two.
}

std::string StatusCodeName(int code) {
  if (code == 0) return "";
  if (code < 0 || code > 16) return absl::StrCat("CODE_", code);
  // absl and gRPC share the canonical code numbers and names.
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

std::string RetryAlertJson(const RetryAlert& alert) {
  nlohmann::json body = {
      {"gid", alert.gid},
      {"status", alert.status},
      {"retry_count", alert.retry_count},
      {"branch", alert.url},
      {"error", alert.last_error},
      {"trans_type", alert.trans_type},
      {"branch_id", alert.branch_id},
      {"op", alert.op},
      {"url", alert.url},
      {"last_error", alert.last_error},
      {"last_code", StatusCodeName(alert.last_code)},
      {"last_code_number", alert.last_code},
  };
  // Stored texts are valid UTF-8; replace rather than throw if not.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool IsWebhookUrl(absl::string_view url, std::string* why) {
  for (absl::string_view scheme : {"http://", "https://"}) {
    if (!absl::StartsWithIgnoreCase(url, scheme)) continue;
    const absl::string_view rest = url.substr(scheme.size());
    if (rest.empty() || rest[0] == '/' || rest[0] == ':') {
      *why = "has no host";
      return false;
    }
    return true;
  }
  *why = "must start with http:// or https://";
  return false;
}

AlertWebhook::AlertWebhook(Options options) : options_(std::move(options)) {
  InitCurlOnce();
  thread_ = std::thread([this] { Run(); });
}

AlertWebhook::~AlertWebhook() { Stop(); }

bool AlertWebhook::Post(std::string body) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || queue_.size() >= options_.max_queued) {
    ++stats_.dropped;
    LOG_EVERY_N(WARNING, 100)
        << "alert webhook: queue full or stopped, alert dropped ("
        << google::COUNTER << " so far)";
    return false;
  }
  queue_.push_back(std::move(body));
  return true;
}

void AlertWebhook::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  abort_ = true;
  if (thread_.joinable()) thread_.join();
}

AlertWebhook::Stats AlertWebhook::GetStats() {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void AlertWebhook::Run() {
  CURL* curl = curl_easy_init();  // one handle: its connection is reused.
  for (;;) {
    std::string body;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](AlertWebhook* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->queue_.empty();
          },
          this));
      if (stopping_) {
        if (!queue_.empty()) {
          LOG(WARNING) << "alert webhook: stopping, " << queue_.size()
                       << " alert(s) not posted";
          stats_.dropped += static_cast<int64_t>(queue_.size());
          queue_.clear();
        }
        break;
      }
      body = std::move(queue_.front());
      queue_.pop_front();
    }
    std::string why;
    const bool ok = curl != nullptr && Send(curl, body, &why);
    if (curl == nullptr) why = "libcurl could not start";
    absl::MutexLock lock(&mu_);
    if (ok) {
      ++stats_.sent;
    } else {
      ++stats_.failed;
      LOG(ERROR) << "alert webhook " << options_.url << ": " << why;
    }
  }
  if (curl != nullptr) curl_easy_cleanup(curl);
}

bool AlertWebhook::Send(void* handle, const std::string& body,
                        std::string* why) {
  CURL* curl = static_cast<CURL*>(handle);
  curl_slist* headers =
      curl_slist_append(nullptr, "Content-Type: application/json");
  // No "Expect: 100-continue" round trip for a larger body.
  headers = curl_slist_append(headers, "Expect:");
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, options_.url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM.
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(options_.timeout_ms));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, DiscardBody);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, AbortWhenStopping);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &abort_);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  const CURLcode result = curl_easy_perform(curl);
  long http_status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http_status);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, static_cast<char*>(nullptr));
  curl_slist_free_all(headers);
  if (result != CURLE_OK) {
    *why = error[0] != '\0' ? std::string(error) : curl_easy_strerror(result);
    return false;
  }
  if (http_status < 200 || http_status >= 300) {
    *why = absl::StrCat("answered HTTP ", http_status);
    return false;
  }
  return true;
}

}  // namespace dtmd
