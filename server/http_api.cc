#include "server/http_api.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "nlohmann/json.hpp"
#include "server/dtm_service.h"
#include "server/metrics.h"
#include "storage/store.h"

namespace dtmd {

using Json = nlohmann::json;

namespace {

constexpr char kPrefix[] = "/api/dtmsvr/";
// Containers nested deeper than this in a request body are refused (the
// deepest DTM body: {"steps": [{"action": "..."}]}).
constexpr int kMaxJsonDepth = 4;

const char* ReasonPhrase(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict";
    case 425:
      return "Too Early";
    case 429:
      return "Too Many Requests";
    case 503:
      return "Service Unavailable";
    default:
      return "Internal Server Error";
  }
}

// Parses `body` as a JSON object, refusing deep nesting and more values
// than `max_values` as they arrive (before a DOM grows with them).
absl::StatusOr<Json> ParseObject(absl::string_view body, int64_t max_values) {
  int64_t values = 0;
  bool too_deep = false;
  bool too_many = false;
  Json::parser_callback_t limit = [&](int depth, Json::parse_event_t event,
                                      Json&) {
    if (depth > kMaxJsonDepth) too_deep = true;
    if (event == Json::parse_event_t::value ||
        event == Json::parse_event_t::object_start ||
        event == Json::parse_event_t::array_start) {
      if (++values > max_values) too_many = true;
    }
    if (too_deep || too_many) throw std::length_error("limit");
    return true;
  };
  Json doc;
  try {
    doc = Json::parse(body.begin(), body.end(), limit);
  } catch (const std::length_error&) {
    if (too_deep) {
      return absl::InvalidArgumentError(absl::StrCat(
          "request body: nested deeper than ", kMaxJsonDepth, " levels"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("request body: more than ", max_values, " JSON values"));
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("request body: not valid JSON: ", e.what()));
  }
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request body: not a JSON object but ", doc.type_name()));
  }
  return doc;
}

absl::Status WrongType(absl::string_view member, absl::string_view want,
                       const Json& value) {
  return absl::InvalidArgumentError(
      absl::StrCat(member, ": not ", want, " but ", value.type_name()));
}

// The member `name` of `doc` as a string into *out ("" when absent or
// null).
absl::Status GetString(const Json& doc, const char* name, std::string* out) {
  auto it = doc.find(name);
  if (it == doc.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return WrongType(name, "a string", *it);
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status GetBool(const Json& doc, const char* name, bool* out) {
  auto it = doc.find(name);
  if (it == doc.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return WrongType(name, "a boolean", *it);
  *out = it->get<bool>();
  return absl::OkStatus();
}

absl::Status GetInt(const Json& doc, const char* name, int64_t* out) {
  auto it = doc.find(name);
  if (it == doc.end() || it->is_null()) return absl::OkStatus();
  if (it->is_number_integer()) {
    if (it->is_number_unsigned() &&
        it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": larger than a 64-bit integer"));
    }
    *out = it->get<int64_t>();
    return absl::OkStatus();
  }
  return WrongType(name, "an integer", *it);
}

// An object of strings (branch_headers, req_extra) into `out`.
template <typename Map>
absl::Status GetStringMap(const Json& doc, const char* name, Map* out) {
  auto it = doc.find(name);
  if (it == doc.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return WrongType(name, "an object", *it);
  for (auto& [key, value] : it->items()) {
    if (!value.is_string()) {
      return WrongType(absl::StrCat(name, ".", key), "a string", value);
    }
    (*out)[key] = value.template get<std::string>();
  }
  return absl::OkStatus();
}

std::string FormatTime(int64_t ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(ms),
                          absl::UTCTimeZone());
}

// A transaction as DTM's TransGlobalStore JSON.
Json TransactionJson(const storage::v1::TransRecord& t) {
  Json j = Json::object();
  j["gid"] = t.gid();
  j["trans_type"] = t.trans_type();
  j["status"] = t.status();
  if (t.create_time_ms() > 0) j["create_time"] = FormatTime(t.create_time_ms());
  if (t.update_time_ms() > 0) j["update_time"] = FormatTime(t.update_time_ms());
  if (t.finish_time_ms() > 0) {
    j[t.status() == storage::kStatusFailed ? "rollback_time" : "finish_time"] =
        FormatTime(t.finish_time_ms());
  }
  if (!t.query_prepared().empty()) j["query_prepared"] = t.query_prepared();
  if (!t.result().empty()) j["result"] = t.result();
  if (!t.rollback_reason().empty()) j["rollback_reason"] = t.rollback_reason();
  if (!t.customed_data().empty()) j["custom_data"] = t.customed_data();
  if (t.next_cron_interval_s() > 0) {
    j["next_cron_interval"] = t.next_cron_interval_s();
  }
  if (t.next_cron_time_ms() > 0 && !storage::IsFinalStatus(t.status())) {
    j["next_cron_time"] = FormatTime(t.next_cron_time_ms());
  }
  const storage::v1::TransOptions& o = t.options();
  if (o.wait_result()) j["wait_result"] = true;
  if (o.timeout_to_fail_s() > 0) j["timeout_to_fail"] = o.timeout_to_fail_s();
  if (o.request_timeout_s() > 0) j["request_timeout"] = o.request_timeout_s();
  if (o.retry_interval_s() > 0) j["retry_interval"] = o.retry_interval_s();
  if (!o.branch_headers().empty()) {
    j["branch_headers"] = Json(std::map<std::string, std::string>(
        o.branch_headers().begin(), o.branch_headers().end()));
  }
  j["concurrent"] = t.concurrent();
  if (o.retry_limit() > 0) j["retry_limit"] = o.retry_limit();
  if (t.retry_count() > 0) j["retry_count"] = t.retry_count();
  if (!t.req_extra().empty()) {
    j["req_extra"] = Json(std::map<std::string, std::string>(
        t.req_extra().begin(), t.req_extra().end()));
  }
  return j;
}

// A branch as DTM's TransBranchStore JSON (bin_data in base64, as Go
// encodes []byte).
Json BranchJson(const storage::v1::BranchRecord& b) {
  Json j = Json::object();
  j["gid"] = b.gid();
  if (!b.url().empty()) j["url"] = b.url();
  if (!b.bin_data().empty()) j["bin_data"] = absl::Base64Escape(b.bin_data());
  j["branch_id"] = b.branch_id();
  j["op"] = b.op();
  j["status"] = b.status();
  if (b.create_time_ms() > 0) j["create_time"] = FormatTime(b.create_time_ms());
  if (b.finish_time_ms() > 0) {
    j[b.status() == storage::kStatusFailed ? "rollback_time" : "finish_time"] =
        FormatTime(b.finish_time_ms());
  }
  return j;
}

}  // namespace

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kFailedPrecondition:
      return 425;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return 401;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

std::string HttpErrorBody(const absl::Status& status) {
  Json j = Json::object();
  const int code = HttpStatusFor(status);
  if (code == 409) j["dtm_result"] = "FAILURE";
  if (code == 425) j["dtm_result"] = "ONGOING";
  j["message"] = std::string(status.message());
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

absl::StatusOr<dtmgimp::DtmRequest> DtmRequestFromJson(absl::string_view body,
                                                       const Config& config) {
  absl::StatusOr<Json> doc =
      ParseObject(body, int64_t{8} * config.max_steps +
                            2 * config.max_branch_headers + 1024);
  if (!doc.ok()) return doc.status();
  dtmgimp::DtmRequest r;
  std::string s;
  int64_t n = 0;
  bool b = false;
  absl::Status st;
#define DTMD_STRING(name, setter)                          \
  s.clear();                                               \
  if (st = GetString(*doc, name, &s); !st.ok()) return st; \
  r.setter(s);
  DTMD_STRING("gid", set_gid);
  DTMD_STRING("trans_type", set_transtype);
  DTMD_STRING("custom_data", set_customeddata);
  DTMD_STRING("query_prepared", set_queryprepared);
  DTMD_STRING("rollback_reason", set_rollbackreason);
#undef DTMD_STRING
  dtmgimp::DtmTransOptions* o = r.mutable_transoptions();
  if (st = GetBool(*doc, "wait_result", &b); !st.ok()) return st;
  o->set_waitresult(b);
#define DTMD_INT(name, setter)                          \
  n = 0;                                                \
  if (st = GetInt(*doc, name, &n); !st.ok()) return st; \
  o->setter(n);
  DTMD_INT("timeout_to_fail", set_timeouttofail);
  DTMD_INT("request_timeout", set_requesttimeout);
  DTMD_INT("retry_interval", set_retryinterval);
  DTMD_INT("retry_limit", set_retrylimit);
#undef DTMD_INT
  if (st = GetStringMap(*doc, "branch_headers", o->mutable_branchheaders());
      !st.ok()) {
    return st;
  }
  if (st = GetStringMap(*doc, "req_extra", r.mutable_reqextra()); !st.ok()) {
    return st;
  }
  auto payloads = doc->find("payloads");
  if (payloads != doc->end() && !payloads->is_null()) {
    if (!payloads->is_array()) {
      return WrongType("payloads", "an array", *payloads);
    }
    for (size_t i = 0; i < payloads->size(); ++i) {
      const Json& p = (*payloads)[i];
      if (!p.is_string()) {
        return WrongType(absl::StrCat("payloads[", i, "]"), "a string", p);
      }
      r.add_binpayloads(p.get<std::string>());
    }
  }
  auto steps = doc->find("steps");
  if (steps != doc->end() && !steps->is_null()) {
    if (!steps->is_array()) return WrongType("steps", "an array", *steps);
    for (size_t i = 0; i < steps->size(); ++i) {
      const Json& step = (*steps)[i];
      if (!step.is_object()) {
        return WrongType(absl::StrCat("steps[", i, "]"), "an object", step);
      }
      for (auto& [key, value] : step.items()) {
        if (!value.is_string()) {
          return WrongType(absl::StrCat("steps[", i, "].", key), "a string",
                           value);
        }
      }
    }
    // DTM appends each step's "data" after the payloads (setupPayloads).
    for (const Json& step : *steps) {
      auto data = step.find("data");
      if (data != step.end() && !data->get_ref<const std::string&>().empty()) {
        r.add_binpayloads(data->get<std::string>());
      }
    }
    r.set_steps(steps->dump());
  }
  return r;
}

absl::StatusOr<dtmgimp::DtmBranchRequest> BranchRequestFromJson(
    absl::string_view body) {
  absl::StatusOr<Json> doc = ParseObject(body, 4096);
  if (!doc.ok()) return doc.status();
  dtmgimp::DtmBranchRequest r;
  for (auto& [key, value] : doc->items()) {
    if (value.is_null()) continue;
    if (!value.is_string()) return WrongType(key, "a string", value);
    const std::string& v = value.get_ref<const std::string&>();
    if (key == "gid") r.set_gid(v);
    if (key == "trans_type") r.set_transtype(v);
    if (key == "branch_id") r.set_branchid(v);
    if (key == "op") r.set_op(v);
    if (key == "data") r.set_busipayload(v);
    (*r.mutable_data())[key] = v;
  }
  return r;
}

// ---------------------------------------------------------------------------
// The server.

struct HttpApi::Loop {
  Engine* engine = nullptr;
  const TokenAuthenticator* auth = nullptr;
  event_base* base = nullptr;
  evhttp* http = nullptr;
  evhttp_bound_socket* socket = nullptr;
  event* wake = nullptr;
  Metrics* metrics = nullptr;  // null: not counted.
  // Requests being served (loop thread only, with metrics): the route
  // ("other" for none) and the arrival.
  struct Started {
    std::string api;
    absl::Time time;
  };
  absl::flat_hash_map<evhttp_request*, Started> started;

  absl::Mutex mu;
  bool closed ABSL_GUARDED_BY(mu) = false;
  std::deque<std::function<void()>> posted ABSL_GUARDED_BY(mu);

  // Runs `fn` on the loop thread (dropped once the loop is closed).
  void Post(std::function<void()> fn) {
    absl::MutexLock lock(&mu);
    if (closed) return;
    posted.push_back(std::move(fn));
    if (posted.size() == 1) event_active(wake, EV_READ, 0);
  }

  static void OnWake(evutil_socket_t, short, void* arg) {
    Loop* loop = static_cast<Loop*>(arg);
    std::deque<std::function<void()>> batch;
    {
      absl::MutexLock lock(&loop->mu);
      batch.swap(loop->posted);
    }
    for (std::function<void()>& fn : batch) fn();
  }
};

namespace {

using LoopPtr = std::shared_ptr<HttpApi::Loop>;

// Sends `code` with `body` (JSON) on the loop thread.
void SendNow(HttpApi::Loop* loop, evhttp_request* req, int code,
             const std::string& body) {
  if (loop->metrics != nullptr) {
    // Counted here rather than only when evhttp completes the request: a
    // request whose client has gone is freed without completing.
    auto it = loop->started.find(req);
    if (it != loop->started.end()) {
      loop->metrics->HttpRequestDone(
          it->second.api, code,
          absl::ToDoubleSeconds(absl::Now() - it->second.time));
      loop->started.erase(it);
    }
  }
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(headers, "Content-Type", "application/json; charset=utf-8");
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, body.data(), body.size());
  evhttp_send_reply(req, code, ReasonPhrase(code), buf);
  evbuffer_free(buf);
}

void SendStatus(HttpApi::Loop* loop, evhttp_request* req,
                const absl::Status& status) {
  if (status.ok()) {
    SendNow(loop, req, 200, R"({"dtm_result":"SUCCESS"})");
  } else {
    SendNow(loop, req, HttpStatusFor(status), HttpErrorBody(status));
  }
}

// A reply from any thread: handed to the loop.
void Reply(const LoopPtr& loop, evhttp_request* req, int code,
           std::string body) {
  loop->Post([l = loop.get(), req, code, body = std::move(body)] {
    SendNow(l, req, code, body);
  });
}

ReplyCallback ReplyLater(
    const LoopPtr& loop, evhttp_request* req,
    std::function<absl::Status(absl::Status)> map = nullptr) {
  return [loop, req, map = std::move(map)](absl::Status status) {
    if (map) status = map(status);
    loop->Post([l = loop.get(), req, status] { SendStatus(l, req, status); });
  };
}

std::string QueryParam(evkeyvalq* params, const char* name) {
  const char* v = evhttp_find_header(params, name);
  return v == nullptr ? std::string() : std::string(v);
}

absl::StatusOr<int64_t> IntParam(evkeyvalq* params, const char* name,
                                 int64_t default_value) {
  std::string v = QueryParam(params, name);
  if (v.empty()) return default_value;
  int64_t n = 0;
  if (!absl::SimpleAtoi(v, &n)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": not an integer: ", v));
  }
  return n;
}

// FAILED_PRECONDITION (a final transaction) as DTM's ErrFailure.
absl::Status FinalIsFailure(absl::Status s) {
  if (absl::IsFailedPrecondition(s)) {
    return absl::AbortedError(s.message());
  }
  return s;
}

// next_position of `all`: "<create_time_ms>:<gid>".
std::string EncodeCursor(const storage::TransCursor& c) {
  return absl::StrCat(c.create_time_ms, ":", c.gid);
}

absl::StatusOr<std::optional<storage::TransCursor>> DecodeCursor(
    const std::string& position) {
  if (position.empty()) return std::optional<storage::TransCursor>();
  std::pair<std::string, std::string> parts =
      absl::StrSplit(position, absl::MaxSplits(':', 1));
  storage::TransCursor c;
  if (!absl::SimpleAtoi(parts.first, &c.create_time_ms) ||
      parts.second.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "position: not a next_position of this server: ", position));
  }
  c.gid = parts.second;
  return std::optional<storage::TransCursor>(c);
}

class Handlers {
 public:
  Handlers(LoopPtr loop, evhttp_request* req, evkeyvalq* params,
           std::string body)
      : loop_(std::move(loop)),
        engine_(loop_->engine),
        req_(req),
        params_(params),
        body_(std::move(body)) {}

  void Dispatch(evhttp_cmd_type method, absl::string_view route) {
    const bool get = method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD;
    const bool post = method == EVHTTP_REQ_POST;
    if (get && route == "version") {
      return SendNow(loop_.get(), req_, 200,
                     Json({{"version", DTMD_VERSION}}).dump());
    }
    if (get && route == "newGid") {
      return SendNow(
          loop_.get(), req_, 200,
          Json({{"gid", NewRandomGid()}, {"dtm_result", "SUCCESS"}}).dump());
    }
    if (post && route == "prepare") {
      return WithRequest([this](const dtmgimp::DtmRequest& r) {
        PrepareRequest(engine_, r, ReplyLater(loop_, req_));
      });
    }
    if (post && route == "submit") {
      return WithRequest([this](const dtmgimp::DtmRequest& r) {
        SubmitRequest(engine_, r, ReplyLater(loop_, req_));
      });
    }
    if (post && route == "abort") {
      return WithRequest([this](const dtmgimp::DtmRequest& r) {
        AbortRequest(engine_, r, ReplyLater(loop_, req_));
      });
    }
    if (post && route == "forceStop") {
      return WithRequest([this](const dtmgimp::DtmRequest& r) {
        if (absl::Status s =
                ValidateGid(r.gid(), engine_->config().max_gid_bytes);
            !s.ok()) {
          return SendStatus(loop_.get(), req_, s);
        }
        engine_->ForceStop(r.gid(),
                           r.rollbackreason().empty() ? "forceStop over HTTP"
                                                      : r.rollbackreason(),
                           ReplyLater(loop_, req_, FinalIsFailure));
      });
    }
    if (post && route == "resetNextCronTime") {
      return WithRequest([this](const dtmgimp::DtmRequest& r) {
        if (absl::Status s =
                ValidateGid(r.gid(), engine_->config().max_gid_bytes);
            !s.ok()) {
          return SendStatus(loop_.get(), req_, s);
        }
        engine_->RetryNow(r.gid(), ReplyLater(loop_, req_, FinalIsFailure));
      });
    }
    if (post && (route == "registerBranch" || route == "registerXaBranch" ||
                 route == "registerTccBranch")) {
      absl::StatusOr<dtmgimp::DtmBranchRequest> r =
          BranchRequestFromJson(body_);
      if (!r.ok()) return SendStatus(loop_.get(), req_, r.status());
      // DTM: a gid without a prepared transaction is a failure (409).
      return RegisterBranchRequest(
          engine_, *r, ReplyLater(loop_, req_, [](absl::Status s) {
            return absl::IsNotFound(s) ? absl::AbortedError(s.message()) : s;
          }));
    }
    if (post && route == "prepareWorkflow") {
      // DTM keeps the request's protocol (its HTTP client sends "http" or
      // nothing): the resume call's body depends on it.
      std::string protocol = "http";
      Json doc = Json::parse(body_, nullptr, /*allow_exceptions=*/false);
      if (doc.is_object()) {
        auto it = doc.find("protocol");
        if (it != doc.end() && it->is_string() &&
            !it->get<std::string>().empty()) {
          protocol = it->get<std::string>();
        }
      }
      return WithRequest([this, protocol](const dtmgimp::DtmRequest& r) {
        PrepareWorkflowRequest(
            engine_, r,
            [loop = loop_, req = req_](absl::StatusOr<Engine::Progress> p) {
              if (!p.ok()) {
                return loop->Post([l = loop.get(), req, s = p.status()] {
                  SendStatus(l, req, s);
                });
              }
              Json progresses = Json::array();
              for (const storage::v1::BranchRecord& b : p->branches) {
                progresses.push_back(BranchJson(b));
              }
              Json out = {{"transaction", TransactionJson(p->trans)},
                          {"progresses", std::move(progresses)}};
              Reply(loop, req, 200,
                    out.dump(-1, ' ', false, Json::error_handler_t::replace));
            },
            protocol);
      });
    }
    if (get && route == "query") return Query();
    if (get && route == "all") return All();
    if (get && route == "resetCronTime") return ResetCronTime();
    if (get && (route == "subscribe" || route == "unsubscribe")) {
      dtmgimp::DtmTopicRequest r;
      r.set_topic(QueryParam(params_, "topic"));
      r.set_url(QueryParam(params_, "url"));
      r.set_remark(QueryParam(params_, "remark"));
      return TopicRequest(engine_, r,
                          route == "subscribe" ? TopicRequestKind::kSubscribe
                                               : TopicRequestKind::kUnsubscribe,
                          ReplyLater(loop_, req_));
    }
    if (method == EVHTTP_REQ_DELETE && absl::StartsWith(route, "topic/")) {
      dtmgimp::DtmTopicRequest r;
      char* decoded = evhttp_uridecode(std::string(route.substr(6)).c_str(),
                                       /*decode_plus=*/0, nullptr);
      r.set_topic(decoded == nullptr ? "" : decoded);
      free(decoded);
      return TopicRequest(engine_, r, TopicRequestKind::kDeleteTopic,
                          ReplyLater(loop_, req_));
    }
    SendStatus(loop_.get(), req_,
               absl::NotFoundError(absl::StrCat("no route ",
                                                route.empty() ? "" : kPrefix,
                                                route, " for this method")));
  }

 private:
  template <typename Fn>
  void WithRequest(Fn fn) {
    absl::StatusOr<dtmgimp::DtmRequest> r =
        DtmRequestFromJson(body_, engine_->config());
    if (!r.ok()) return SendStatus(loop_.get(), req_, r.status());
    fn(*r);
  }

  // Runs `fn` on the engine's pool; its answer goes back to the loop.
  void OffLoop(std::function<absl::StatusOr<Json>()> fn) {
    engine_->pool()->Post([loop = loop_, req = req_, fn = std::move(fn)] {
      absl::StatusOr<Json> out = fn();
      if (!out.ok()) {
        return loop->Post(
            [l = loop.get(), req, s = out.status()] { SendStatus(l, req, s); });
      }
      Reply(loop, req, 200,
            out->dump(-1, ' ', false, Json::error_handler_t::replace));
    });
  }

  void Query() {
    std::string gid = QueryParam(params_, "gid");
    if (gid.empty()) {
      return SendStatus(loop_.get(), req_,
                        absl::InvalidArgumentError("gid: no gid specified"));
    }
    storage::Store* store = engine_->store();
    OffLoop([store, gid]() -> absl::StatusOr<Json> {
      Json out = {{"transaction", nullptr}, {"branches", Json::array()}};
      absl::StatusOr<storage::v1::TransRecord> t = store->GetTransaction(gid);
      if (absl::IsNotFound(t.status())) return out;
      if (!t.ok()) return t.status();
      out["transaction"] = TransactionJson(*t);
      absl::StatusOr<std::vector<storage::v1::BranchRecord>> branches =
          store->GetBranches(gid);
      if (!branches.ok()) return branches.status();
      for (const storage::v1::BranchRecord& b : *branches) {
        out["branches"].push_back(BranchJson(b));
      }
      return out;
    });
  }

  void All() {
    absl::StatusOr<int64_t> limit = IntParam(params_, "limit", 100);
    if (!limit.ok()) return SendStatus(loop_.get(), req_, limit.status());
    if (*limit < 1 || *limit > 1000) {
      return SendStatus(loop_.get(), req_,
                        absl::InvalidArgumentError(absl::StrCat(
                            "limit: must be 1..1000, got ", *limit)));
    }
    absl::StatusOr<int64_t> start = IntParam(params_, "createTimeStart", 0);
    if (!start.ok()) return SendStatus(loop_.get(), req_, start.status());
    absl::StatusOr<int64_t> end = IntParam(params_, "createTimeEnd", 0);
    if (!end.ok()) return SendStatus(loop_.get(), req_, end.status());
    absl::StatusOr<std::optional<storage::TransCursor>> after =
        DecodeCursor(QueryParam(params_, "position"));
    if (!after.ok()) return SendStatus(loop_.get(), req_, after.status());
    std::string gid = QueryParam(params_, "gid");
    storage::TransFilter filter;
    filter.status = QueryParam(params_, "status");
    filter.trans_type = QueryParam(params_, "transType");
    // DTM's bounds are inclusive.
    if (*start > 0) filter.created_after_ms = *start - 1;
    if (*end > 0) filter.created_before_ms = *end + 1;
    storage::Store* store = engine_->store();
    OffLoop([store, gid, filter, after = *after,
             limit = static_cast<int>(*limit)]() -> absl::StatusOr<Json> {
      Json out = {{"transactions", nullptr}, {"next_position", ""}};
      if (!gid.empty()) {
        absl::StatusOr<storage::v1::TransRecord> t = store->GetTransaction(gid);
        if (t.ok()) out["transactions"] = Json::array({TransactionJson(*t)});
        if (!t.ok() && !absl::IsNotFound(t.status())) return t.status();
        return out;
      }
      absl::StatusOr<storage::TransPage> page =
          store->ListTransactions(filter, after, limit);
      if (!page.ok()) return page.status();
      out["transactions"] = Json::array();
      for (const storage::v1::TransRecord& t : page->transactions) {
        out["transactions"].push_back(TransactionJson(t));
      }
      if (page->next) out["next_position"] = EncodeCursor(*page->next);
      return out;
    });
  }

  // DTM's resetCronTime: unfinished transactions whose next_cron_time is
  // more than `timeout` seconds away are retried now, at most `limit`.
  void ResetCronTime() {
    absl::StatusOr<int64_t> timeout =
        IntParam(params_, "timeout", 3 * engine_->config().timeout_to_fail_s);
    if (!timeout.ok()) return SendStatus(loop_.get(), req_, timeout.status());
    absl::StatusOr<int64_t> limit = IntParam(params_, "limit", 100);
    if (!limit.ok()) return SendStatus(loop_.get(), req_, limit.status());
    if (*limit < 1 || *limit > 10000 || *timeout < 0) {
      return SendStatus(loop_.get(), req_,
                        absl::InvalidArgumentError(
                            "limit: must be 1..10000 and timeout >= 0"));
    }
    engine_->pool()->Post([loop = loop_, req = req_, engine = engine_,
                           timeout = *timeout, limit = *limit] {
      const int64_t until = engine->clock()->NowMs() + timeout * 1000;
      std::vector<std::string> gids;
      bool remaining = false;
      for (const char* status :
           {storage::kStatusPrepared, storage::kStatusSubmitted,
            storage::kStatusAborting}) {
        storage::TransFilter filter;
        filter.status = status;
        std::optional<storage::TransCursor> after;
        while (!remaining) {
          absl::StatusOr<storage::TransPage> page =
              engine->store()->ListTransactions(filter, after, 500);
          if (!page.ok()) {
            return loop->Post([l = loop.get(), req, s = page.status()] {
              SendStatus(l, req, s);
            });
          }
          for (const storage::v1::TransRecord& t : page->transactions) {
            if (t.next_cron_time_ms() <= until) continue;
            if (static_cast<int64_t>(gids.size()) == limit) {
              remaining = true;
              break;
            }
            gids.push_back(t.gid());
          }
          if (!page->next) break;
          after = page->next;
        }
      }
      struct Count {
        std::atomic<int> left;
        std::atomic<int64_t> ok{0};
      };
      auto count = std::make_shared<Count>();
      count->left = static_cast<int>(gids.size()) + 1;
      auto finish = [loop, req, count, remaining] {
        if (count->left.fetch_sub(1) != 1) return;
        Reply(loop, req, 200,
              Json({{"has_remaining", remaining},
                    {"succeed_count", count->ok.load()}})
                  .dump());
      };
      for (const std::string& gid : gids) {
        engine->RetryNow(gid, [count, finish](absl::Status s) {
          if (s.ok()) count->ok.fetch_add(1);
          finish();
        });
      }
      finish();
    });
  }

  LoopPtr loop_;
  Engine* engine_;
  evhttp_request* req_;
  evkeyvalq* params_;
  std::string body_;
};

// The metrics label of a route: its name for the known ones, else "other".
std::string ApiLabel(absl::string_view route) {
  static const auto* known =
      new absl::flat_hash_set<std::string>{"version",
                                           "newGid",
                                           "prepare",
                                           "submit",
                                           "abort",
                                           "forceStop",
                                           "registerBranch",
                                           "registerXaBranch",
                                           "registerTccBranch",
                                           "prepareWorkflow",
                                           "query",
                                           "all",
                                           "resetCronTime",
                                           "resetNextCronTime",
                                           "subscribe",
                                           "unsubscribe"};
  if (known->contains(route)) return std::string(route);
  if (absl::StartsWith(route, "topic/")) return "deleteTopic";
  return "other";
}

void OnRequest(evhttp_request* req, void* arg) {
  LoopPtr loop = *static_cast<LoopPtr*>(arg);
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* raw_path = uri == nullptr ? nullptr : evhttp_uri_get_path(uri);
  absl::string_view path = raw_path == nullptr ? "" : raw_path;
  if (loop->metrics != nullptr) {
    loop->started[req] = {ApiLabel(absl::StartsWith(path, kPrefix)
                                       ? path.substr(sizeof(kPrefix) - 1)
                                       : ""),
                          absl::Now()};
  }
  if (!absl::StartsWith(path, kPrefix)) {
    return SendStatus(loop.get(), req,
                      absl::NotFoundError(absl::StrCat("no route ", path,
                                                       " (the HTTP "
                                                       "API is under ",
                                                       kPrefix, ")")));
  }
  if (loop->auth != nullptr) {
    const char* authorization = evhttp_find_header(
        evhttp_request_get_input_headers(req), "Authorization");
    absl::string_view value = authorization == nullptr ? "" : authorization;
    absl::Status s =
        loop->auth->CheckHeader(authorization == nullptr ? nullptr : &value);
    if (!s.ok()) {
      return SendStatus(
          loop.get(), req,
          absl::UnauthenticatedError(absl::StrCat(
              "header 'Authorization: Bearer <token>': ", s.message())));
    }
  }
  evkeyvalq params;
  TAILQ_INIT(&params);
  const char* query = evhttp_uri_get_query(uri);
  if (query != nullptr && evhttp_parse_query_str(query, &params) != 0) {
    evhttp_clear_headers(&params);
    return SendStatus(
        loop.get(), req,
        absl::InvalidArgumentError("query string: not valid URL encoding"));
  }
  evbuffer* in = evhttp_request_get_input_buffer(req);
  std::string body(evbuffer_get_length(in), '\0');
  if (!body.empty()) evbuffer_copyout(in, body.data(), body.size());
  Handlers handlers(loop, req, &params, std::move(body));
  handlers.Dispatch(evhttp_request_get_command(req),
                    path.substr(sizeof(kPrefix) - 1));
  evhttp_clear_headers(&params);
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(
    Engine* engine, const TokenAuthenticator* auth, const std::string& host,
    int port) {
  return Start(engine, auth, nullptr, host, port);
}

absl::StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(
    Engine* engine, const TokenAuthenticator* auth, Metrics* metrics,
    const std::string& host, int port) {
  static std::once_flag threads_once;
  std::call_once(threads_once, [] { evthread_use_pthreads(); });
  std::unique_ptr<HttpApi> api(new HttpApi());
  auto loop = std::make_shared<Loop>();
  api->loop_ = loop;
  loop->engine = engine;
  loop->metrics = metrics;
  loop->auth = (auth != nullptr && auth->enabled()) ? auth : nullptr;
  loop->base = event_base_new();
  if (loop->base == nullptr) return absl::InternalError("event_base_new");
  loop->wake = event_new(loop->base, -1, EV_PERSIST, &Loop::OnWake, loop.get());
  loop->http = evhttp_new(loop->base);
  if (loop->wake == nullptr || loop->http == nullptr) {
    return absl::InternalError("cannot set up the HTTP server");
  }
  const Config& config = engine->config();
  evhttp_set_max_body_size(loop->http, config.max_request_bytes);
  evhttp_set_max_headers_size(loop->http, 64 << 10);
  evhttp_set_timeout(loop->http, 120);
  evhttp_set_allowed_methods(loop->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                             EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_HEAD);
  // The callback's argument lives as long as the evhttp (freed in Stop).
  auto* arg = new LoopPtr(loop);
  evhttp_set_gencb(loop->http, &OnRequest, arg);
  std::string bind_host = host;
  if (bind_host == "::") bind_host = "0.0.0.0";  // as the metrics endpoint.
  loop->socket = evhttp_bind_socket_with_handle(
      loop->http, bind_host.c_str(),
      static_cast<uint16_t>(port < 0 ? 0 : port));
  if (loop->socket == nullptr) {
    evhttp_free(loop->http);
    loop->http = nullptr;
    delete arg;
    event_free(loop->wake);
    event_base_free(loop->base);
    loop->base = nullptr;
    return absl::UnavailableError(absl::StrCat(
        "--http_port: cannot listen on ", host, ":", port, " (port in use?)"));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  getsockname(evhttp_bound_socket_get_fd(loop->socket),
              reinterpret_cast<sockaddr*>(&addr), &len);
  api->port_ = ntohs(addr.ss_family == AF_INET6
                         ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                         : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  api->thread_ = std::thread([loop, arg] {
    event_base_loop(loop->base, EVLOOP_NO_EXIT_ON_EMPTY);
    {
      absl::MutexLock lock(&loop->mu);
      loop->closed = true;
      loop->posted.clear();
    }
    evhttp_free(loop->http);
    delete arg;
    event_free(loop->wake);
  });
  return api;
}

void HttpApi::StopAccepting() {
  if (stopped_ || loop_ == nullptr) return;
  loop_->Post([loop = loop_.get()] {
    if (loop->socket != nullptr) {
      evhttp_del_accept_socket(loop->http, loop->socket);
      loop->socket = nullptr;
    }
  });
}

void HttpApi::Stop() {
  if (stopped_ || loop_ == nullptr) return;
  stopped_ = true;
  if (!thread_.joinable()) return;  // Start failed: nothing runs.
  // Answers already posted are written during the grace period.
  const timeval grace{0, 200 * 1000};
  event_base_loopexit(loop_->base, &grace);
  if (thread_.joinable()) thread_.join();
  event_base_free(loop_->base);
  loop_->base = nullptr;
}

HttpApi::~HttpApi() { Stop(); }

}  // namespace dtmd
