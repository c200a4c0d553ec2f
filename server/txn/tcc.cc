#include "server/txn/tcc.h"

namespace dtmd::txn {

TccMode::TccMode()
    : TwoPhaseMode(TwoPhaseSpec{/*trans_type=*/"tcc", /*commit_op=*/"confirm",
                                /*rollback_op=*/"cancel",
                                /*reverse_order=*/true}) {}

}  // namespace dtmd::txn
