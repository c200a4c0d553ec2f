// TccMode: TCC transactions (docs/protocol.md section 5). The client calls
// its Try branches itself and registers each one (RegisterBranch with
// Data {"confirm": url, "cancel": url}) while the transaction is prepared;
// each registration adds two branch records with its branch_id: op "cancel",
// then op "confirm". Submit runs the confirms, Abort or a prepared
// transaction's TimeoutToFail the cancels, one at a time from the last
// registered branch to the first, each until it succeeds (see
// TwoPhaseMode). Stateless: thread-safe.
#ifndef DTMD_SERVER_TXN_TCC_H_
#define DTMD_SERVER_TXN_TCC_H_

#include "server/txn/two_phase.h"

namespace dtmd::txn {

class TccMode : public TwoPhaseMode {
 public:
  TccMode();
};

}  // namespace dtmd::txn

#endif  // DTMD_SERVER_TXN_TCC_H_
