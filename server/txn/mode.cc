#include "server/txn/mode.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/txn/msg.h"
#include "server/txn/saga.h"
#include "server/txn/tcc.h"
#include "server/txn/workflow.h"
#include "server/txn/xa.h"
#include "storage/store.h"

namespace dtmd::txn {
namespace {

absl::flat_hash_map<std::string, const Mode*>& Registry() {
  static auto* const registry = [] {
    auto* modes = new absl::flat_hash_map<std::string, const Mode*>();
    for (const Mode* mode : {static_cast<const Mode*>(new SagaMode()),
                             static_cast<const Mode*>(new MsgMode()),
                             static_cast<const Mode*>(new TccMode()),
                             static_cast<const Mode*>(new XaMode()),
                             static_cast<const Mode*>(new WorkflowMode())}) {
      modes->emplace(std::string(mode->trans_type()), mode);
    }
    return modes;
  }();
  return *registry;
}

}  // namespace

const Mode* FindMode(absl::string_view trans_type) {
  const auto& registry = Registry();
  auto it = registry.find(trans_type);
  return it == registry.end() ? nullptr : it->second;
}

absl::Status OperatorCommandError() {
  return absl::InternalError(
      "an operator's command is applied by the runner, not by the mode");
}

void MoveTo(TransRecord* trans, absl::string_view status,
            absl::string_view reason, int64_t now_ms) {
  trans->set_status(std::string(status));
  if (!reason.empty()) trans->set_rollback_reason(std::string(reason));
  if (status == storage::kStatusSucceed || status == storage::kStatusFailed) {
    trans->set_finish_time_ms(now_ms);
  }
}

void LeavePrepared(TransRecord* trans, absl::string_view status,
                   absl::string_view reason, int64_t now_ms) {
  MoveTo(trans, status, reason, now_ms);
  trans->set_update_time_ms(now_ms);
  const int64_t interval_s = trans->options().retry_interval_s();
  trans->set_next_cron_interval_s(interval_s);
  trans->set_next_cron_time_ms(
      AfterSeconds(now_ms, std::max<int64_t>(1, interval_s)));
}

void SubmitPrepared(TransRecord* trans, int64_t now_ms) {
  LeavePrepared(trans, storage::kStatusSubmitted, "", now_ms);
}

bool TimedOut(const TransRecord& trans, int64_t now_ms) {
  const int64_t timeout_s = trans.options().timeout_to_fail_s();
  const int64_t elapsed_ms = now_ms - trans.create_time_ms();
  return timeout_s > 0 && elapsed_ms >= 0 && elapsed_ms / 1000 >= timeout_s;
}

int64_t AfterSeconds(int64_t at_ms, int64_t seconds) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (seconds <= 0) return at_ms;
  if (seconds > (kMax - std::max<int64_t>(at_ms, 0)) / 1000) {
    return kMax;
  }
  return at_ms + seconds * 1000;
}

void RegisterMode(const Mode* mode) {
  Registry()[std::string(mode->trans_type())] = mode;
}

const BranchRecord* FindBranch(const std::vector<BranchRecord>& branches,
                               const BranchRecord& wanted) {
  for (const BranchRecord& b : branches) {
    if (b.branch_id() == wanted.branch_id() && b.op() == wanted.op()) {
      return &b;
    }
  }
  return nullptr;
}

absl::Status DefaultWaitOutcome(const TransRecord& trans) {
  const std::string& gid = trans.gid();
  if (trans.status() == storage::kStatusSucceed) return absl::OkStatus();
  if (trans.status() == storage::kStatusFailed) {
    if (trans.rollback_reason().empty()) {
      return absl::AbortedError(absl::StrCat("transaction ", gid, " failed"));
    }
    return absl::AbortedError(absl::StrCat(
        "transaction ", gid, " failed: ", trans.rollback_reason()));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "transaction ", gid, " is still ", trans.status(),
      " after its first round; dtmd keeps retrying in the background"));
}

bool DefaultMoveMustBeDurable(absl::string_view from, absl::string_view to) {
  if (to == storage::kStatusSucceed) return false;
  if (from == storage::kStatusAborting && to == storage::kStatusFailed) {
    return false;
  }
  return true;
}

int64_t DoubledInterval(int64_t current, int64_t base, int64_t cap) {
  int64_t interval = current > 0 ? current : base;
  interval = interval > std::numeric_limits<int64_t>::max() / 2
                 ? std::numeric_limits<int64_t>::max()
                 : interval * 2;
  if (cap > 0) interval = std::min(interval, cap);
  return std::max<int64_t>(interval, 1);
}

Decision BackOff(const TransRecord& trans, int64_t now_ms,
                 const RetryPolicy& policy) {
  Decision decision;
  decision.next_interval_s = DoubledInterval(trans.next_cron_interval_s(),
                                             trans.options().retry_interval_s(),
                                             policy.max_interval_s);
  decision.wake_at_ms = AfterSeconds(now_ms, decision.next_interval_s);
  return decision;
}

std::string TimeoutReason(const TransRecord& trans) {
  return absl::StrFormat("Timeout after %d seconds",
                         trans.options().timeout_to_fail_s());
}

}  // namespace dtmd::txn
