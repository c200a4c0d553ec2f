#include "server/txn/mode.h"

#include <string>

#include "absl/container/flat_hash_map.h"
#include "server/txn/saga.h"
#include "server/txn/workflow.h"
#include "storage/store.h"

namespace dtmd::txn {
namespace {

absl::flat_hash_map<std::string, const Mode*>& Registry() {
  static auto* const registry = [] {
    auto* modes = new absl::flat_hash_map<std::string, const Mode*>();
    for (const Mode* mode : {static_cast<const Mode*>(new SagaMode()),
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

void MoveTo(TransRecord* trans, absl::string_view status,
            absl::string_view reason, int64_t now_ms) {
  trans->set_status(std::string(status));
  if (!reason.empty()) trans->set_rollback_reason(std::string(reason));
  if (status == storage::kStatusSucceed || status == storage::kStatusFailed) {
    trans->set_finish_time_ms(now_ms);
  }
}

void RegisterMode(const Mode* mode) {
  Registry()[std::string(mode->trans_type())] = mode;
}

}  // namespace dtmd::txn
