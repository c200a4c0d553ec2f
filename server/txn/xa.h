// XaMode: XA transactions (docs/protocol.md section 5). The client prepares
// each branch's local XA transaction itself and registers it (RegisterBranch
// with Data {"url": url}) while the global transaction is prepared; each
// registration adds two branch records with its branch_id and that url: op
// "rollback", then op "commit". Submit runs the commits, Abort or a prepared
// transaction's TimeoutToFail the rollbacks, one at a time in registration
// order, each until it succeeds (see TwoPhaseMode). Stateless: thread-safe.
#ifndef DTMD_SERVER_TXN_XA_H_
#define DTMD_SERVER_TXN_XA_H_

#include "server/txn/two_phase.h"

namespace dtmd::txn {

class XaMode : public TwoPhaseMode {
 public:
  XaMode();
};

}  // namespace dtmd::txn

#endif  // DTMD_SERVER_TXN_XA_H_
