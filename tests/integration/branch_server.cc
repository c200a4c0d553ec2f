#include "tests/integration/branch_server.h"

#include <grpcpp/alarm.h>
#include <grpcpp/generic/async_generic_service.h>

#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dtmd::testing {
namespace {

std::string ToString(grpc::string_ref ref) {
  return std::string(ref.data(), ref.size());
}

std::string Lookup(const std::map<std::string, std::string>& map,
                   const std::string& key) {
  auto it = map.find(key);
  return it == map.end() ? std::string() : it->second;
}

}  // namespace

// One reactor per call: reads the single request message, asks the owner for
// the answer and replies, at once or from an alarm. Deletes itself in OnDone.
class ScriptedBranchServer::Reactor final
    : public grpc::ServerGenericBidiReactor {
 public:
  Reactor(ScriptedBranchServer* owner, grpc::GenericCallbackServerContext* ctx)
      : owner_(owner), ctx_(ctx) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client closed or was cancelled before sending a message.
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "no request message"));
      return;
    }
    answer_ = owner_->RecordAndAnswer(ReadCall());
    if (answer_.delay_ms <= 0) {
      Reply();
      return;
    }
    bool cancelled;
    {
      absl::MutexLock lock(&mu_);
      cancelled = cancelled_;
      if (!cancelled) {
        alarm_set_ = true;
        // The callback runs exactly once: when the alarm fires or when
        // OnCancel cancels it. OnDone cannot run before this reaction returns,
        // so holding mu_ here is safe even if the callback runs at once.
        alarm_.Set(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(answer_.delay_ms),
                   [this](bool /*fired*/) { Reply(); });
      }
    }
    // The client is gone: waiting would only delay a shutdown.
    if (cancelled) Reply();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    if (alarm_set_) alarm_.Cancel();
  }

  void OnDone() override { delete this; }

 private:
  RecordedCall ReadCall() {
    RecordedCall call;
    call.method = ctx_->method();
    for (const auto& [key, value] : ctx_->client_metadata()) {
      auto [it, inserted] =
          call.metadata.emplace(ToString(key), ToString(value));
      if (!inserted) absl::StrAppend(&it->second, ",", ToString(value));
    }
    std::vector<grpc::Slice> slices;
    if (request_.Dump(&slices).ok()) {
      for (const grpc::Slice& slice : slices) {
        call.payload.append(reinterpret_cast<const char*>(slice.begin()),
                            slice.size());
      }
    }
    call.gid = Lookup(call.metadata, "dtm-gid");
    call.trans_type = Lookup(call.metadata, "dtm-trans_type");
    call.branch_id = Lookup(call.metadata, "dtm-branch_id");
    call.op = Lookup(call.metadata, "dtm-op");
    call.time_ms = absl::ToUnixMillis(absl::Now());
    return call;
  }

  void Reply() {
    if (answer_.on_reply) answer_.on_reply();
    if (answer_.code == grpc::StatusCode::OK) {
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      Finish(grpc::Status(answer_.code, answer_.message));
    }
  }

  ScriptedBranchServer* const owner_;
  grpc::GenericCallbackServerContext* const ctx_;
  grpc::ByteBuffer request_;
  // An empty message: the reply body of every OK answer.
  grpc::ByteBuffer response_{nullptr, 0};
  Answer answer_;  // Written before the reply is scheduled, read by Reply.
  grpc::Alarm alarm_;

  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool alarm_set_ ABSL_GUARDED_BY(mu_) = false;
};

class ScriptedBranchServer::Service final
    : public grpc::CallbackGenericService {
 public:
  explicit Service(ScriptedBranchServer* owner) : owner_(owner) {}

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* ctx) override {
    return new Reactor(owner_, ctx);
  }

 private:
  ScriptedBranchServer* const owner_;
};

ScriptedBranchServer::ScriptedBranchServer()
    : service_(std::make_unique<Service>(this)) {}

ScriptedBranchServer::~ScriptedBranchServer() { Shutdown(); }

void ScriptedBranchServer::set_credentials(
    std::shared_ptr<grpc::ServerCredentials> credentials) {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  credentials_ = std::move(credentials);
}

absl::StatusOr<int> ScriptedBranchServer::Start() {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (started_) {
      return absl::FailedPreconditionError("branch server already started");
    }
    started_ = true;
  }
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0",
                           credentials_ != nullptr
                               ? credentials_
                               : grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterCallbackGenericService(service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    server_.reset();
    return absl::UnavailableError("branch server failed to start");
  }
  absl::MutexLock lock(&mu_);
  port_ = port;
  return port;
}

void ScriptedBranchServer::Shutdown() {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  if (server_ == nullptr) return;
  // A deadline of now cancels the calls in flight; their reactors finish and
  // Shutdown returns once every reactor is done.
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
}

int ScriptedBranchServer::port() const {
  absl::MutexLock lock(&mu_);
  return port_;
}

std::string ScriptedBranchServer::Address() const {
  return absl::StrCat("127.0.0.1:", port());
}

std::string ScriptedBranchServer::Url(const std::string& method_path) const {
  return absl::StrCat(Address(), method_path);
}

void ScriptedBranchServer::SetScript(const std::string& method,
                                     std::vector<Answer> answers) {
  absl::MutexLock lock(&mu_);
  method_scripts_[method] = std::move(answers);
  for (auto it = method_cursors_.begin(); it != method_cursors_.end();) {
    it = it->first.first == method ? method_cursors_.erase(it) : std::next(it);
  }
}

void ScriptedBranchServer::SetScript(const std::string& method,
                                     const std::string& gid,
                                     std::vector<Answer> answers) {
  absl::MutexLock lock(&mu_);
  gid_scripts_[{method, gid}] = std::move(answers);
  gid_cursors_.erase({method, gid});
}

void ScriptedBranchServer::SetDefault(const std::string& method,
                                      Answer answer) {
  absl::MutexLock lock(&mu_);
  method_defaults_[method] = std::move(answer);
}

void ScriptedBranchServer::SetDefault(Answer answer) {
  absl::MutexLock lock(&mu_);
  default_answer_ = std::move(answer);
}

void ScriptedBranchServer::SetResponder(Responder responder) {
  absl::MutexLock lock(&mu_);
  responder_ = responder
                   ? std::make_shared<const Responder>(std::move(responder))
                   : nullptr;
}

std::vector<RecordedCall> ScriptedBranchServer::Calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

std::vector<RecordedCall> ScriptedBranchServer::CallsFor(
    const std::string& gid) const {
  absl::MutexLock lock(&mu_);
  std::vector<RecordedCall> calls;
  for (const RecordedCall& call : calls_) {
    if (call.gid == gid) calls.push_back(call);
  }
  return calls;
}

int ScriptedBranchServer::CountCalls(const std::string& gid,
                                     const std::string& op) const {
  absl::MutexLock lock(&mu_);
  int count = 0;
  for (const RecordedCall& call : calls_) {
    if (call.gid == gid && call.op == op) ++count;
  }
  return count;
}

bool ScriptedBranchServer::WaitForCalls(
    const std::function<bool(const std::vector<RecordedCall>&)>& done,
    absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this, &done]()
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done(calls_); };
  return mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
}

bool ScriptedBranchServer::WaitForCalls(size_t count, absl::Duration timeout) {
  return WaitForCalls(
      [count](const std::vector<RecordedCall>& calls) {
        return calls.size() >= count;
      },
      timeout);
}

Answer ScriptedBranchServer::RecordAndAnswer(RecordedCall call) {
  std::shared_ptr<const Responder> responder;
  {
    absl::MutexLock lock(&mu_);
    responder = responder_;
  }
  std::optional<Answer> responded;
  if (responder != nullptr) responded = (*responder)(call);
  absl::MutexLock lock(&mu_);
  call.answer = responded.has_value() ? *std::move(responded)
                                      : ScriptedAnswer(call.method, call.gid);
  calls_.push_back(std::move(call));
  return calls_.back().answer;
}

Answer ScriptedBranchServer::ScriptedAnswer(const std::string& method,
                                            const std::string& gid) {
  const std::pair<std::string, std::string> key{method, gid};
  if (auto script = gid_scripts_.find(key); script != gid_scripts_.end()) {
    size_t& cursor = gid_cursors_[key];
    if (cursor < script->second.size()) return script->second[cursor++];
  } else if (auto method_script = method_scripts_.find(method);
             method_script != method_scripts_.end()) {
    size_t& cursor = method_cursors_[key];
    if (cursor < method_script->second.size()) {
      return method_script->second[cursor++];
    }
  }
  auto method_default = method_defaults_.find(method);
  return method_default != method_defaults_.end() ? method_default->second
                                                  : default_answer_;
}

}  // namespace dtmd::testing
