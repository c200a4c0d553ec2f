#include "tests/integration/ledger_branch_server.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dtmd::testing {
namespace {

constexpr absl::string_view kFailPrefix = "fail:";
constexpr char kOpAction[] = "action";
constexpr char kOpCompensate[] = "compensate";

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
  }
  return "?";
}

LedgerBranchServer::LedgerBranchServer() : LedgerBranchServer(Options()) {}

LedgerBranchServer::LedgerBranchServer(Options options)
    : random_(options.seed), delays_(options.delays) {
  server_.SetResponder(
      [this](const RecordedCall& call) { return Respond(call); });
}

LedgerBranchServer::~LedgerBranchServer() { Shutdown(); }

absl::StatusOr<int> LedgerBranchServer::Start() { return server_.Start(); }

void LedgerBranchServer::Shutdown() { server_.Shutdown(); }

std::string LedgerBranchServer::Url(const std::string& method_path) const {
  return server_.Url(method_path);
}

std::string LedgerBranchServer::FailingPayload(absl::string_view message) {
  return absl::StrCat(kFailPrefix, message);
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

Answer LedgerBranchServer::Respond(const RecordedCall& call) {
  Answer answer;
  LedgerEntry entry;
  std::shared_ptr<const ArrivalHook> hook;
  {
    absl::MutexLock lock(&mu_);
    Book& book = books_[{call.gid, call.branch_id}];
    const bool is_action = call.op == kOpAction;
    if (is_action) {
      if (book.compensate_received) {
        entry.effect = LedgerEffect::kActionAfterCompensation;
      } else if (book.action_applied) {
        entry.effect = LedgerEffect::kDuplicate;
      } else if (absl::StartsWith(call.payload, kFailPrefix)) {
        entry.effect = LedgerEffect::kRefused;
        answer.code = grpc::StatusCode::ABORTED;
        answer.message = call.payload.substr(kFailPrefix.size());
      } else {
        entry.effect = LedgerEffect::kApplied;
        book.action_applied = true;
      }
    } else if (call.op == kOpCompensate) {
      if (book.compensate_received) {
        entry.effect = LedgerEffect::kDuplicate;
      } else {
        entry.effect = book.action_applied ? LedgerEffect::kCompensated
                                           : LedgerEffect::kNullCompensation;
        book.compensate_received = true;
      }
    } else {
      answer.code = grpc::StatusCode::INVALID_ARGUMENT;
      answer.message = absl::StrCat("unknown dtm-op '", call.op, "'");
    }
    const int min_ms =
        is_action ? delays_.action_min_ms : delays_.compensate_min_ms;
    const int max_ms =
        is_action ? delays_.action_max_ms : delays_.compensate_max_ms;
    if (max_ms > 0) {
      answer.delay_ms =
          std::uniform_int_distribution<int>(min_ms, max_ms)(random_);
    }
    entry.seq = static_cast<int64_t>(entries_.size());
    entry.gid = call.gid;
    entry.branch_id = call.branch_id;
    entry.op = call.op;
    entry.code = answer.code;
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
    if (e.effect != LedgerEffect::kActionAfterCompensation) continue;
    out.push_back(absl::StrCat("gid ", e.gid, " branch ", e.branch_id,
                               ": action after compensation (arrival #", e.seq,
                               ")"));
  }
  return out;
}

}  // namespace dtmd::testing
