package dtmclient

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/dtmd/dtmd/client_stubs/go/dtmgimp"
)

// Tcc is the transaction handed to TccGlobalTransaction's body. Not safe
// for concurrent use: call CallBranch from the body's goroutine.
type Tcc struct {
	Gid string

	client  *Client
	options *TransOptions
	ids     branchIDs
}

// TccGlobalTransaction runs one TCC transaction with gid: Prepare
// (TransType "tcc", Steps "null", options; nil means defaults), then body.
// When body returns nil, Submit (the coordinator confirms every registered
// branch, in reverse order) and return Submit's error (with WaitResult: the
// outcome). Otherwise Abort with body's error text as rollback reason (the
// coordinator cancels every registered branch) and return body's error;
// Abort's own error is not reported, since the coordinator aborts a
// prepared TCC at TimeoutToFail anyway. When Prepare fails, body does not
// run.
func (c *Client) TccGlobalTransaction(ctx context.Context, gid string, options *TransOptions,
	body func(tcc *Tcc) error) error {
	if options == nil {
		options = &TransOptions{}
	}
	request := stepLessRequest(gid, TransTcc, options)
	if _, err := c.Dtm.Prepare(ctx, request); err != nil {
		return err
	}
	tcc := &Tcc{Gid: gid, client: c, options: options}
	if err := body(tcc); err != nil {
		request.RollbackReason = err.Error()
		c.Dtm.Abort(ctx, request) //nolint:errcheck // body's error is the answer
		return err
	}
	_, err := c.Dtm.Submit(ctx, request)
	return err
}

// CallBranch adds a branch: takes the next branch id ("01", "02", ...),
// registers it (Data {"confirm","cancel"}, BusiPayload the serialized
// request), then calls tryURL with request and the metadata dtm-gid,
// dtm-trans_type "tcc", dtm-branch_id, dtm-op "try", dtm-dtm and the branch
// headers; its deadline is RequestTimeout when set, else ctx's. Confirm and
// Cancel receive the same payload. Registering before Try means a Try whose
// answer is lost is still cancelled. Returns RegisterBranch's error (Try is
// then not called), else Try's; reply (may be nil) receives Try's answer.
func (t *Tcc) CallBranch(ctx context.Context, request proto.Message, tryURL, confirmURL, cancelURL string,
	reply proto.Message) error {
	branchID, err := t.ids.next()
	if err != nil {
		return err
	}
	payload, err := proto.Marshal(request)
	if err != nil {
		return err
	}
	_, err = t.client.Dtm.RegisterBranch(ctx, &dtmgimp.DtmBranchRequest{
		Gid: t.Gid, TransType: TransTcc, BranchID: branchID,
		Data:        map[string]string{"confirm": confirmURL, "cancel": cancelURL},
		BusiPayload: payload,
	})
	if err != nil {
		return err
	}
	info := BranchInfo{Gid: t.Gid, TransType: TransTcc, BranchID: branchID, Op: OpTry}
	return t.client.callBranch(ctx, tryURL, request, reply, info, t.options)
}
