#include "server/txn/xa.h"

namespace dtmd::txn {

XaMode::XaMode()
    : TwoPhaseMode(TwoPhaseSpec{/*trans_type=*/"xa", /*commit_op=*/"commit",
                                /*rollback_op=*/"rollback",
                                /*reverse_order=*/false}) {}

}  // namespace dtmd::txn
