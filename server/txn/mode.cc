#include "server/txn/mode.h"

#include <string>

#include "absl/container/flat_hash_map.h"
#include "server/txn/saga.h"

namespace dtmd::txn {
namespace {

absl::flat_hash_map<std::string, const Mode*>& Registry() {
  static auto* const registry = [] {
    auto* modes = new absl::flat_hash_map<std::string, const Mode*>();
    for (const Mode* mode : {static_cast<const Mode*>(new SagaMode())}) {
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

void RegisterMode(const Mode* mode) {
  Registry()[std::string(mode->trans_type())] = mode;
}

}  // namespace dtmd::txn
