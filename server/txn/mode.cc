#include "server/txn/mode.h"

#include "server/txn/saga.h"

namespace dtmd::txn {

const Mode* FindMode(absl::string_view trans_type) {
  static const SagaMode* const kSaga = new SagaMode();
  if (trans_type == kSaga->trans_type()) return kSaga;
  return nullptr;
}

}  // namespace dtmd::txn
