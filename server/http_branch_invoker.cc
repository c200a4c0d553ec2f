#include "server/http_branch_invoker.h"

#include <curl/curl.h>

#include <algorithm>
#include <mutex>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpcpp/support/status.h"
#include "server/txn/branch_url.h"

namespace dtmd {
namespace {

// Body bytes kept for the answer's message; the rest is only scanned.
constexpr size_t kKeptBodyBytes = 256;
// Longest word scanned for, less one: the bytes kept between chunks.
constexpr size_t kScanCarry = 6;
// Longest wait in curl_multi_poll; calls and cancels wake it sooner.
constexpr int kPollMs = 1000;

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

BranchAnswer Answer(grpc::StatusCode code, std::string message) {
  return BranchAnswer{static_cast<int>(code),
                      BranchAnswerMessage(std::move(message))};
}

// The DTM query parameters and where dtmd's metadata holds them.
struct QueryParam {
  const char* metadata;
  const char* name;
};
constexpr QueryParam kQueryParams[] = {{"dtm-gid", "gid"},
                                       {"dtm-trans_type", "trans_type"},
                                       {"dtm-branch_id", "branch_id"},
                                       {"dtm-op", "op"}};

bool Printable(absl::string_view value) {
  return std::all_of(value.begin(), value.end(),
                     [](char c) { return c >= 0x20 && c <= 0x7e; });
}

}  // namespace

BranchAnswer HttpAnswer(long status, absl::string_view body_start,
                        bool has_ongoing, bool has_failure) {
  const std::string message = absl::StrCat("HTTP ", status, ": ", body_start);
  if (status == 425 || has_ongoing) {
    return Answer(grpc::StatusCode::FAILED_PRECONDITION, message);
  }
  if (status == 409 || has_failure) {
    return Answer(grpc::StatusCode::ABORTED, message);
  }
  if (status == 200) return BranchAnswer{};
  return Answer(grpc::StatusCode::UNKNOWN, message);
}

struct HttpBranchInvoker::Transfer {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string url;
  std::string body;
  int64_t timeout_ms = 0;
  std::function<void(BranchAnswer)> done;
  // The answer as it arrives.
  std::string body_start;
  std::string carry;  // the last kScanCarry bytes seen.
  bool has_ongoing = false;
  bool has_failure = false;
  char error[CURL_ERROR_SIZE] = {0};

  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
  }

  // libcurl's write callback: keeps the start, scans the whole body.
  static size_t OnBody(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t length = size * count;
    const absl::string_view chunk(data, length);
    if (t->body_start.size() < kKeptBodyBytes) {
      const absl::string_view kept =
          chunk.substr(0, kKeptBodyBytes - t->body_start.size());
      t->body_start.append(kept.data(), kept.size());
    }
    if (!t->has_ongoing || !t->has_failure) {
      std::string window = absl::StrCat(t->carry, chunk);
      t->has_ongoing = t->has_ongoing || absl::StrContains(window, "ONGOING");
      t->has_failure = t->has_failure || absl::StrContains(window, "FAILURE");
      t->carry =
          window.substr(window.size() - std::min(window.size(), kScanCarry));
    }
    return length;
  }

  BranchAnswer Result(CURLcode result) const {
    if (result == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      return HttpAnswer(status, body_start, has_ongoing, has_failure);
    }
    const std::string detail =
        error[0] != '\0' ? std::string(error) : curl_easy_strerror(result);
    if (result == CURLE_OPERATION_TIMEDOUT) {
      return Answer(grpc::StatusCode::DEADLINE_EXCEEDED,
                    absl::StrFormat("HTTP call timed out after %d ms: %s",
                                    timeout_ms, detail));
    }
    return Answer(grpc::StatusCode::UNAVAILABLE,
                  absl::StrCat("HTTP call failed: ", detail));
  }
};

absl::StatusOr<std::unique_ptr<HttpBranchInvoker>> HttpBranchInvoker::Create(
    HttpInvokerOptions options) {
  InitCurlOnce();
  std::unique_ptr<HttpBranchInvoker> invoker(
      new HttpBranchInvoker(std::move(options)));
  if (invoker->multi_ == nullptr) {
    return absl::InternalError("libcurl: cannot create a multi handle");
  }
  invoker->thread_ = std::thread([p = invoker.get()] { p->Run(); });
  return invoker;
}

HttpBranchInvoker::HttpBranchInvoker(HttpInvokerOptions options)
    : options_(std::move(options)) {
  CURLM* multi = curl_multi_init();
  if (multi == nullptr) return;
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                    static_cast<long>(options_.max_host_connections));
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                    static_cast<long>(options_.max_connections));
  // The cache of kept-alive connections holds as many as may be open.
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS,
                    static_cast<long>(options_.max_connections));
  multi_ = multi;
}

HttpBranchInvoker::~HttpBranchInvoker() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (multi_ != nullptr) curl_multi_wakeup(static_cast<CURLM*>(multi_));
  if (thread_.joinable()) thread_.join();
  if (multi_ != nullptr) curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

void HttpBranchInvoker::Call(BranchCall call,
                             std::function<void(BranchAnswer)> done) {
  absl::StatusOr<txn::BranchTarget> target = txn::ParseBranchUrl(call.url);
  if (!target.ok() || !target->http) {
    // Validated at submission: only a record from an older version (or a
    // routing mistake) gets here. It can never succeed: unknown, retried.
    done(Answer(grpc::StatusCode::INVALID_ARGUMENT,
                target.ok() ? "not an http:// or https:// URL"
                            : std::string(target.status().message())));
    return;
  }
  auto t = std::make_unique<Transfer>();
  t->easy = curl_easy_init();
  if (t->easy == nullptr) {
    done(Answer(grpc::StatusCode::RESOURCE_EXHAUSTED,
                "libcurl: cannot create a handle"));
    return;
  }
  CURL* easy = t->easy;
  // The query parameters DTM adds; the rest of the metadata (BranchHeaders)
  // goes as headers. dtm-dtm is gRPC only: DTM sends no such parameter.
  std::string query;
  std::string trans_type;
  for (const auto& [key, value] : call.metadata) {
    if (key == "dtm-trans_type") trans_type = value;
  }
  for (const QueryParam& param : kQueryParams) {
    for (const auto& [key, value] : call.metadata) {
      if (key != param.metadata) continue;
      char* escaped =
          curl_easy_escape(easy, value.data(), static_cast<int>(value.size()));
      absl::StrAppend(&query, query.empty() ? "" : "&", param.name, "=",
                      escaped != nullptr ? escaped : "");
      curl_free(escaped);
    }
  }
  t->url = std::move(call.url);
  if (!query.empty()) {
    const size_t mark = t->url.find('?');
    const char* separator =
        mark == std::string::npos                                    ? "?"
        : absl::EndsWith(t->url, "?") || absl::EndsWith(t->url, "&") ? ""
                                                                     : "&";
    absl::StrAppend(&t->url, separator, query);
  }
  t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
  t->headers = curl_slist_append(t->headers, "Expect:");  // no 100-continue.
  for (const auto& [key, value] : call.metadata) {
    if (absl::StartsWith(key, "dtm-")) continue;
    // Only -bin names may carry other bytes: base64, as gRPC sends them.
    const std::string line = absl::StrCat(
        key, ": ", Printable(value) ? value : absl::Base64Escape(value));
    t->headers = curl_slist_append(t->headers, line.c_str());
  }
  t->body = std::move(call.payload);
  t->timeout_ms = call.timeout_ms;
  t->done = std::move(done);

  curl_easy_setopt(easy, CURLOPT_URL, t->url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  if (call.timeout_ms > 0) {
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(call.timeout_ms));
  }
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "dtmd/" DTMD_VERSION);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
  if (!t->body.empty() || trans_type == "xa") {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(t->body.size()));
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, t->body.data());
  } else {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Transfer::OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(easy, CURLOPT_PRIVATE, t.get());
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->error);
  if (!options_.ca_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_CAINFO, options_.ca_file.c_str());
  }
  if (!options_.cert_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_SSLCERT, options_.cert_file.c_str());
    curl_easy_setopt(easy, CURLOPT_SSLKEY, options_.key_file.c_str());
  }
  {
    absl::MutexLock lock(&mu_);
    if (!stop_) {
      queued_.push_back(std::move(t));
    }
  }
  if (t != nullptr) {  // stopped: never queued.
    std::function<void(BranchAnswer)> stopped = std::move(t->done);
    t.reset();
    stopped(Answer(grpc::StatusCode::CANCELLED, "dtmd is stopping"));
    return;
  }
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

void HttpBranchInvoker::CancelAll() {
  {
    absl::MutexLock lock(&mu_);
    ++cancel_requests_;
  }
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

void HttpBranchInvoker::Run() {
  CURLM* multi = static_cast<CURLM*>(multi_);
  absl::flat_hash_map<Transfer*, std::unique_ptr<Transfer>> active;
  // Takes `t` out of the multi handle and answers its caller.
  auto finish = [&](Transfer* t, BranchAnswer answer) {
    curl_multi_remove_handle(multi, t->easy);
    auto node = active.extract(t);
    std::function<void(BranchAnswer)> done = std::move(t->done);
    node.mapped().reset();
    done(std::move(answer));
  };
  for (;;) {
    std::vector<std::unique_ptr<Transfer>> fresh;
    bool cancel = false;
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      fresh.swap(queued_);
      cancel = cancel_requests_ > 0;
      cancel_requests_ = 0;
      stop = stop_;
    }
    for (std::unique_ptr<Transfer>& t : fresh) {
      Transfer* raw = t.get();
      if (curl_multi_add_handle(multi, raw->easy) != CURLM_OK) {
        std::function<void(BranchAnswer)> done = std::move(raw->done);
        t.reset();
        done(Answer(grpc::StatusCode::RESOURCE_EXHAUSTED,
                    "libcurl: cannot start the call"));
        continue;
      }
      active.emplace(raw, std::move(t));
    }
    if (cancel || stop) {
      std::vector<Transfer*> all;
      all.reserve(active.size());
      for (const auto& entry : active) all.push_back(entry.first);
      for (Transfer* t : all) {
        finish(t, Answer(grpc::StatusCode::CANCELLED, "HTTP call cancelled"));
      }
    }
    if (stop) break;
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi, &left)) {
      if (message->msg != CURLMSG_DONE) continue;
      const CURLcode result = message->data.result;
      char* user = nullptr;
      curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &user);
      Transfer* t = reinterpret_cast<Transfer*>(user);
      finish(t, t->Result(result));
    }
    curl_multi_poll(multi, nullptr, 0, kPollMs, nullptr);
  }
}

void RoutingBranchInvoker::Call(BranchCall call,
                                std::function<void(BranchAnswer)> done) {
  BranchInvoker* to = txn::IsHttpBranchUrl(call.url) ? http_ : grpc_;
  to->Call(std::move(call), std::move(done));
}

void RoutingBranchInvoker::CancelAll() {
  grpc_->CancelAll();
  http_->CancelAll();
}

}  // namespace dtmd
