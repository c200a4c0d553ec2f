#include "tests/integration/ledger_branch_server.h"

#include <chrono>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/generic/generic_stub.h"

namespace dtmd::testing {
namespace {

constexpr absl::string_view kFailPrefix = "fail:";
constexpr char kOpAction[] = "action";
constexpr char kOpCompensate[] = "compensate";
constexpr char kOpTry[] = "try";
constexpr char kOpConfirm[] = "confirm";
constexpr char kOpCancel[] = "cancel";
constexpr char kOpMsgQuery[] = "msg";
constexpr char kTransTypeWorkflow[] = "workflow";
// DTM's failure message (dtmcli.ResultFailure).
constexpr char kFailure[] = "FAILURE";
// The metadata (HTTP: header) naming the dtmd replica that sent a call.
constexpr char kReplicaKey[] = "dtmd-replica";

}  // namespace

const char* LedgerEffectName(LedgerEffect effect) {
  switch (effect) {
    case LedgerEffect::kApplied:
      return "applied";
    case LedgerEffect::kRefused:
      return "refused";
    case LedgerEffect::kDuplicate:
      return "duplicate";
    case LedgerEffect::kCompensated:
      return "compensated";
    case LedgerEffect::kNullCompensation:
      return "null compensation";
    case LedgerEffect::kActionAfterCompensation:
      return "action after compensation";
    case LedgerEffect::kBlockedTry:
      return "try after its cancel (blocked)";
    case LedgerEffect::kConfirmed:
      return "confirmed";
    case LedgerEffect::kConfirmWithoutTry:
      return "confirm without a try";
    case LedgerEffect::kConfirmAfterCancel:
      return "confirm after cancel";
    case LedgerEffect::kCancelAfterConfirm:
      return "cancel after confirm";
    case LedgerEffect::kQueried:
      return "queried";
    case LedgerEffect::kRolledBackMsgAction:
      return "action of a rolled back msg";
    case LedgerEffect::kResumed:
      return "resumed";
  }
  return "?";
}

bool IsViolation(LedgerEffect effect) {
  switch (effect) {
    case LedgerEffect::kActionAfterCompensation:
    case LedgerEffect::kConfirmWithoutTry:
    case LedgerEffect::kConfirmAfterCancel:
    case LedgerEffect::kCancelAfterConfirm:
    case LedgerEffect::kRolledBackMsgAction:
      return true;
    default:
      return false;
  }
}

LedgerBranchServer::LedgerBranchServer() : LedgerBranchServer(Options()) {}

LedgerBranchServer::LedgerBranchServer(Options options)
    : random_(options.seed), delays_(options.delays) {
  server_.SetResponder(
      [this](const RecordedCall& call) { return Respond(call, false); });
  http_.SetHandler([this](const HttpBranchServer::Request& request) {
    RecordedCall call;
    call.method = request.path;
    call.payload = request.body;
    auto query = [&request](const char* name) {
      auto it = request.query.find(name);
      return it == request.query.end() ? std::string() : it->second;
    };
    call.gid = query("gid");
    call.trans_type = query("trans_type");
    call.branch_id = query("branch_id");
    call.op = query("op");
    if (auto replica = request.headers.find(kReplicaKey);
        replica != request.headers.end()) {
      call.metadata[kReplicaKey] = replica->second;
    }
    const Answer answer = Respond(call, /*http=*/true);
    HttpBranchServer::Reply reply;
    reply.delay = absl::Milliseconds(answer.delay_ms);
    if (answer.code == grpc::StatusCode::ABORTED) {
      reply.status = 409;
      reply.body = absl::StrCat(R"({"dtm_result":"FAILURE","message":")",
                                answer.message, R"("})");
    } else if (answer.code != grpc::StatusCode::OK) {
      reply.status = 500;
      reply.body = answer.message;
    }
    return reply;
  });
}

LedgerBranchServer::~LedgerBranchServer() { Shutdown(); }

absl::StatusOr<int> LedgerBranchServer::Start() {
  absl::StatusOr<int> port = server_.Start();
  if (port.ok()) {
    if (absl::StatusOr<int> http = http_.Start(); !http.ok()) {
      return http.status();
    }
    absl::MutexLock lock(&mu_);
    channel_ = grpc::CreateChannel(server_.Address(),
                                   grpc::InsecureChannelCredentials());
  }
  return port;
}

void LedgerBranchServer::Shutdown() {
  server_.Shutdown();
  http_.Stop();
}

std::string LedgerBranchServer::Url(const std::string& method_path) const {
  return server_.Url(method_path);
}

std::string LedgerBranchServer::HttpUrl(const std::string& method_path) const {
  return http_.Url(method_path);
}

void LedgerBranchServer::SetHttpSteps(bool http_steps) {
  absl::MutexLock lock(&mu_);
  http_steps_ = http_steps;
}

std::string LedgerBranchServer::StepUrl(const std::string& method_path,
                                        int step) const {
  bool http = false;
  {
    absl::MutexLock lock(&mu_);
    http = http_steps_ && step % 2 == 1;
  }
  return http ? HttpUrl(method_path) : Url(method_path);
}

std::string LedgerBranchServer::FailingPayload(absl::string_view message) {
  return absl::StrCat(kFailPrefix, message);
}

bool LedgerBranchServer::LocalTransactionCommitted(absl::string_view gid) {
  return !absl::EndsWith(gid, kRolledBackGidSuffix);
}

grpc::Status LedgerBranchServer::Try(const std::string& method_path,
                                     const std::string& gid,
                                     const std::string& branch_id,
                                     const std::string& payload) {
  std::shared_ptr<grpc::Channel> channel;
  {
    absl::MutexLock lock(&mu_);
    channel = channel_;
  }
  if (channel == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "not started");
  }
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  context.AddMetadata("dtm-gid", gid);
  context.AddMetadata("dtm-trans_type", "tcc");
  context.AddMetadata("dtm-branch_id", branch_id);
  context.AddMetadata("dtm-op", kOpTry);
  grpc::Slice slice(payload);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, method_path, grpc::StubOptions(), &request,
                 &response, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  return status;
}

void LedgerBranchServer::SetDelays(Delays delays) {
  absl::MutexLock lock(&mu_);
  delays_ = delays;
}

void LedgerBranchServer::SetArrivalHook(ArrivalHook hook) {
  absl::MutexLock lock(&mu_);
  hook_ = hook ? std::make_shared<const ArrivalHook>(std::move(hook)) : nullptr;
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return hooks_running_ == 0;
  };
  mu_.Await(absl::Condition(&idle));
}

LedgerEffect LedgerBranchServer::Apply(const RecordedCall& call, Book* book,
                                       Answer* answer) {
  const auto refuse = [answer](absl::string_view message) {
    answer->code = grpc::StatusCode::ABORTED;
    answer->message = std::string(message);
  };
  if (call.trans_type == kTransTypeWorkflow) return LedgerEffect::kResumed;
  if (call.op == kOpMsgQuery) {
    if (!LocalTransactionCommitted(call.gid)) refuse(kFailure);
    return LedgerEffect::kQueried;
  }
  if (call.op == kOpAction || call.op == kOpTry) {
    if (book->compensate_received) {
      if (call.op == kOpAction) return LedgerEffect::kActionAfterCompensation;
      refuse(kFailure);
      return LedgerEffect::kBlockedTry;
    }
    if (call.op == kOpAction && !LocalTransactionCommitted(call.gid)) {
      return LedgerEffect::kRolledBackMsgAction;
    }
    if (book->action_applied) return LedgerEffect::kDuplicate;
    if (absl::StartsWith(call.payload, kFailPrefix)) {
      refuse(absl::string_view(call.payload).substr(kFailPrefix.size()));
      return LedgerEffect::kRefused;
    }
    book->action_applied = true;
    return LedgerEffect::kApplied;
  }
  if (call.op == kOpConfirm) {
    const bool first = !book->confirm_received;
    book->confirm_received = true;
    if (book->compensate_received) return LedgerEffect::kConfirmAfterCancel;
    if (!book->action_applied) return LedgerEffect::kConfirmWithoutTry;
    return first ? LedgerEffect::kConfirmed : LedgerEffect::kDuplicate;
  }
  if (call.op == kOpCompensate || call.op == kOpCancel) {
    if (book->confirm_received) {
      book->compensate_received = true;
      return LedgerEffect::kCancelAfterConfirm;
    }
    if (book->compensate_received) return LedgerEffect::kDuplicate;
    book->compensate_received = true;
    return book->action_applied ? LedgerEffect::kCompensated
                                : LedgerEffect::kNullCompensation;
  }
  answer->code = grpc::StatusCode::INVALID_ARGUMENT;
  answer->message = absl::StrCat("unknown dtm-op '", call.op, "'");
  return LedgerEffect::kRefused;
}

Answer LedgerBranchServer::Respond(const RecordedCall& call, bool http) {
  Answer answer;
  LedgerEntry entry;
  std::shared_ptr<const ArrivalHook> hook;
  {
    absl::MutexLock lock(&mu_);
    entry.effect = Apply(call, &books_[{call.gid, call.branch_id}], &answer);
    // Undoing is timed as compensations are, everything else as actions.
    const bool undo = call.op == kOpCompensate || call.op == kOpCancel;
    const int min_ms = undo ? delays_.compensate_min_ms : delays_.action_min_ms;
    const int max_ms = undo ? delays_.compensate_max_ms : delays_.action_max_ms;
    if (max_ms > 0) {
      answer.delay_ms =
          std::uniform_int_distribution<int>(min_ms, max_ms)(random_);
    }
    entry.seq = static_cast<int64_t>(entries_.size());
    entry.gid = call.gid;
    entry.branch_id = call.branch_id;
    entry.op = call.op;
    entry.code = answer.code;
    if (auto replica = call.metadata.find(kReplicaKey);
        replica != call.metadata.end()) {
      entry.replica = replica->second;
    }
    entry.http = http;
    entry.arrived = events_++;
    if (!http) {
      const size_t index = entries_.size();
      answer.on_reply = [this, index] {
        absl::MutexLock lock(&mu_);
        entries_[index].replied = events_++;
      };
    }
    by_gid_[entry.gid].push_back(entries_.size());
    entries_.push_back(entry);
    hook = hook_;
    if (hook != nullptr) ++hooks_running_;
  }
  if (hook != nullptr) {
    (*hook)(entry);
    absl::MutexLock lock(&mu_);
    --hooks_running_;
  }
  return answer;
}

std::vector<LedgerEntry> LedgerBranchServer::Entries() const {
  absl::MutexLock lock(&mu_);
  return entries_;
}

std::vector<LedgerEntry> LedgerBranchServer::EntriesFor(
    const std::string& gid) const {
  absl::MutexLock lock(&mu_);
  std::vector<LedgerEntry> out;
  auto it = by_gid_.find(gid);
  if (it == by_gid_.end()) return out;
  for (size_t index : it->second) out.push_back(entries_[index]);
  return out;
}

int64_t LedgerBranchServer::EntryCount() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(entries_.size());
}

std::vector<std::string> LedgerBranchServer::Violations() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const LedgerEntry& e : entries_) {
    if (!IsViolation(e.effect)) continue;
    out.push_back(absl::StrCat("gid ", e.gid, " branch ", e.branch_id, ": ",
                               LedgerEffectName(e.effect), " (arrival #", e.seq,
                               ")"));
  }
  return out;
}

std::vector<std::string> OverlappingCalls(
    const std::vector<LedgerEntry>& entries, bool any_replica) {
  std::vector<std::string> out;
  // Replied -1: still in flight.
  const auto end = [](const LedgerEntry& e) {
    return e.replied < 0 ? INT64_MAX : e.replied;
  };
  for (size_t i = 0; i < entries.size(); ++i) {
    const LedgerEntry& a = entries[i];
    if (a.replica.empty() || a.http) continue;
    for (size_t j = i + 1; j < entries.size(); ++j) {
      const LedgerEntry& b = entries[j];
      if (b.replica.empty() || b.http) continue;
      if (!any_replica && a.replica == b.replica) continue;
      if (a.arrived < end(b) && b.arrived < end(a)) {
        out.push_back(absl::StrCat(
            a.gid, ": ", a.op, " of branch ", a.branch_id, " from ", a.replica,
            " (#", a.seq, ") and ", b.op, " of branch ", b.branch_id, " from ",
            b.replica, " (#", b.seq, ") were in flight at once"));
      }
    }
  }
  return out;
}

}  // namespace dtmd::testing
