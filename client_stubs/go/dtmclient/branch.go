package dtmclient

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Trans types and ops, as the coordinator sends them in dtm-trans_type and
// dtm-op.
const (
	TransSaga     = "saga"
	TransTcc      = "tcc"
	TransMsg      = "msg"
	TransXa       = "xa"
	TransWorkflow = "workflow"

	OpAction     = "action"
	OpCompensate = "compensate"
	OpTry        = "try"
	OpConfirm    = "confirm"
	OpCancel     = "cancel"
	OpCommit     = "commit"
	OpRollback   = "rollback"
	// OpMsg with branch id QueryPreparedBranchID is msg's QueryPrepared check.
	OpMsg                 = "msg"
	QueryPreparedBranchID = "00"
)

// BranchInfo is what the coordinator tells a branch about the call: the
// dtm-* metadata.
type BranchInfo struct {
	Gid       string
	TransType string
	BranchID  string
	Op        string
	// The coordinator's address as it announces itself (may be empty).
	Dtm string
}

// BranchInfoFromContext reads the dtm-* metadata of a branch call inside a
// gRPC handler. It fails when gid, trans type, branch id or op is missing
// (the call did not come from a coordinator).
func BranchInfoFromContext(ctx context.Context) (BranchInfo, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(key string) string {
		if values := md.Get(key); len(values) > 0 {
			return values[0]
		}
		return ""
	}
	info := BranchInfo{
		Gid:       get("dtm-gid"),
		TransType: get("dtm-trans_type"),
		BranchID:  get("dtm-branch_id"),
		Op:        get("dtm-op"),
		Dtm:       get("dtm-dtm"),
	}
	if info.Gid == "" || info.TransType == "" || info.BranchID == "" || info.Op == "" {
		return info, errors.New("dtmclient: the call carries no dtm-gid, dtm-trans_type, dtm-branch_id and dtm-op metadata")
	}
	return info, nil
}

// Failure is the answer a branch gives to refuse (ABORTED): a saga action's
// failure starts compensation, a QueryPrepared failure fails the msg.
func Failure(message string) error { return status.Error(codes.Aborted, message) }

// Ongoing is the answer of a branch that is not done yet: the coordinator
// asks again at the same interval.
func Ongoing() error { return status.Error(codes.FailedPrecondition, "ONGOING") }

// IsFailure tells whether err is a failure (ABORTED): from a branch, the
// business refused; from the coordinator, the transaction failed or the
// request is not allowed in its status.
func IsFailure(err error) bool { return status.Code(err) == codes.Aborted }

// IsOngoing tells whether err says "not ended yet" (FAILED_PRECONDITION).
func IsOngoing(err error) bool { return status.Code(err) == codes.FailedPrecondition }

func seconds(n int64) time.Duration { return time.Duration(n) * time.Second }
