// Retry alerts (DTM's AlertRetryLimit and AlertWebHook): a branch that keeps
// failing is reported when its retries reach the limit and again at each
// doubling (limit, 2*limit, 4*limit, ...): logged at WARNING, counted, and
// posted as JSON to a webhook, if one is configured, by AlertWebhook's own
// thread so that the engine never waits for it.
#ifndef DTMD_SERVER_RETRY_ALERT_H_
#define DTMD_SERVER_RETRY_ALERT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace dtmd {

// One alert: the branch, the answer it keeps giving, and its transaction.
struct RetryAlert {
  std::string gid;
  std::string trans_type;
  std::string status;  // the transaction's.
  std::string branch_id;
  std::string op;
  std::string url;
  std::string last_error;
  int last_code = 0;        // gRPC status code number.
  int64_t retry_count = 0;  // calls after the first.
};

// Whether `retries` is an alert point for `limit`: limit, 2*limit,
// 4*limit, ... Never when limit <= 0 (alerts off).
bool IsRetryAlertPoint(int64_t retries, int64_t limit);

// The gRPC status code's name ("UNAVAILABLE"), "" for 0 (no error yet),
// "CODE_<n>" for a number gRPC does not define.
std::string StatusCodeName(int code);

// The webhook's body: a JSON object with DTM's fields (gid, status,
// retry_count, branch = url, error = last_error) and dtmd's (trans_type,
// branch_id, op, url, last_error, last_code name, last_code_number).
std::string RetryAlertJson(const RetryAlert& alert);

// Whether `url` is one AlertWebhook can post to (http:// or https:// with
// a host); the reason when not.
bool IsWebhookUrl(absl::string_view url, std::string* why);

// Posts JSON bodies to one URL, in order, from its own thread. Post never
// blocks: a full queue drops the body (counted). Each POST has a timeout;
// a failure (no connection, timeout, a status outside 2xx) is logged and
// counted, never retried. Thread-safe.
class AlertWebhook {
 public:
  struct Options {
    std::string url;
    size_t max_queued = 1000;
    int64_t timeout_ms = 5000;
  };
  struct Stats {
    int64_t sent = 0;     // answered 2xx.
    int64_t failed = 0;   // posted, but not answered 2xx.
    int64_t dropped = 0;  // never posted: queue full, or stopped.
  };

  explicit AlertWebhook(Options options);
  // Calls Stop().
  ~AlertWebhook();
  AlertWebhook(const AlertWebhook&) = delete;
  AlertWebhook& operator=(const AlertWebhook&) = delete;

  // Queues `body`; false (and counted as dropped) when the queue is full or
  // the sender has stopped.
  bool Post(std::string body);
  // Aborts the POST under way (within about a second), drops the rest and
  // joins the thread. Idempotent.
  void Stop();
  Stats GetStats();

 private:
  void Run();
  // One POST; OK or the reason it failed.
  bool Send(void* curl, const std::string& body, std::string* why);

  const Options options_;
  absl::Mutex mu_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> abort_{false};  // Stop(): abort the POST under way.
  std::thread thread_;
};

}  // namespace dtmd

#endif  // DTMD_SERVER_RETRY_ALERT_H_
