// Package dtmclient is dtmd's Go client: thin helpers over the generated
// dtmgimp.Dtm stub for every mode (Saga, TCC, Msg, Workflow), branch-side
// helpers (BranchInfoFromContext, Failure, Ongoing), and topics.
//
// It speaks DTM's gRPC protocol, so it works against dtmd and against DTM
// itself. The helpers only assemble a dtmgimp.DtmRequest and make one unary
// call each; they never retry: a failed Submit may be repeated with the same
// gid (a Submit of a gid that is already submitted is accepted).
//
//	client, err := dtmclient.Dial("localhost:36790")
//	gid, err := client.NewGid(ctx)
//	saga := client.NewSaga(gid).
//		Add(busi+"/shop.Stock/Reserve", busi+"/shop.Stock/Release", order).
//		Add(busi+"/shop.Payment/Charge", busi+"/shop.Payment/Refund", order)
//	saga.WaitResult = true
//	err = saga.Submit(ctx)
//
// Errors are gRPC status errors (google.golang.org/grpc/status). The
// coordinator answers ABORTED for a transaction that failed (WaitResult) or a
// request its status forbids (IsFailure), FAILED_PRECONDITION for a
// WaitResult transaction still running when the wait ended (IsOngoing),
// INVALID_ARGUMENT for a malformed request.
package dtmclient

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/dtmd/dtmd/client_stubs/go/dtmgimp"
)

// Client talks to one coordinator and calls the branches the client itself
// must call (TCC Try, msg QueryPrepared). It is safe for concurrent use; the
// builders it makes (Saga, Msg) are not.
type Client struct {
	// Dtm is the generated stub, for what the helpers do not cover.
	Dtm dtmgimp.DtmClient
	// DtmAddress is sent as metadata dtm-dtm on the branch calls the client
	// makes itself. May be empty.
	DtmAddress string

	conn     *grpc.ClientConn // owned when made by Dial; nil otherwise
	branches branchConns
}

// Dial connects to the coordinator at target ("host:port") over plaintext
// unless opts say otherwise. The connection is lazy: Dial does not wait for
// the coordinator. Close releases it.
func Dial(target string, opts ...grpc.DialOption) (*Client, error) {
	all := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(target, all...)
	if err != nil {
		return nil, err
	}
	return &Client{Dtm: dtmgimp.NewDtmClient(conn), DtmAddress: target, conn: conn}, nil
}

// New wraps a connection the caller owns.
func New(conn grpc.ClientConnInterface) *Client {
	return &Client{Dtm: dtmgimp.NewDtmClient(conn)}
}

// Close closes the coordinator connection made by Dial and every branch
// connection.
func (c *Client) Close() error {
	c.branches.closeAll()
	if c.conn != nil {
		return c.conn.Close()
	}
	return nil
}

// NewGid asks the coordinator for a fresh gid.
func (c *Client) NewGid(ctx context.Context) (string, error) {
	reply, err := c.Dtm.NewGid(ctx, &emptypb.Empty{})
	if err != nil {
		return "", err
	}
	return reply.GetGid(), nil
}

// TransOptions are a transaction's options; all but the last are sent as
// DtmTransOptions. Durations are in seconds; 0 means the coordinator's
// default.
type TransOptions struct {
	// With true, Submit returns when the transaction ended (nil when it
	// succeeded, ABORTED with the rollback reason when it failed) or, if it
	// has not ended after the coordinator's first round of branch calls,
	// FAILED_PRECONDITION. The ctx given to Submit must allow for the wait
	// (RequestTimeout + 2 s per round in DTM).
	WaitResult     bool
	TimeoutToFail  int64
	RetryInterval  int64
	RequestTimeout int64
	// Saga only: retried action calls after which the saga compensates
	// (0: no limit).
	RetryLimit int64
	// Metadata the coordinator adds to every branch call of the transaction;
	// the client adds it to the branch calls it makes itself. Keys must be
	// valid gRPC metadata keys (lower case).
	BranchHeaders map[string]string
}

func (o *TransOptions) proto() *dtmgimp.DtmTransOptions {
	return &dtmgimp.DtmTransOptions{
		WaitResult:     o.WaitResult,
		TimeoutToFail:  o.TimeoutToFail,
		RetryInterval:  o.RetryInterval,
		RequestTimeout: o.RequestTimeout,
		RetryLimit:     o.RetryLimit,
		BranchHeaders:  o.BranchHeaders,
	}
}

// stepLessRequest is the request of the modes without steps (tcc, xa,
// workflow): DTM's Go client sends Steps "null" there.
func stepLessRequest(gid, transType string, options *TransOptions) *dtmgimp.DtmRequest {
	return &dtmgimp.DtmRequest{Gid: gid, TransType: transType, TransOptions: options.proto(), Steps: "null"}
}

// branchIDs hands out "01", "02", ... "99", as DTM's BranchIDGen.
type branchIDs struct{ last int }

func (g *branchIDs) next() (string, error) {
	if g.last >= 99 {
		return "", fmt.Errorf("dtmclient: more than 99 branches in one transaction")
	}
	g.last++
	return fmt.Sprintf("%02d", g.last), nil
}

// branchConns keeps one connection per branch host:port.
type branchConns struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (b *branchConns) get(host string) (*grpc.ClientConn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if conn, ok := b.conns[host]; ok {
		return conn, nil
	}
	conn, err := grpc.NewClient(host, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	if b.conns == nil {
		b.conns = map[string]*grpc.ClientConn{}
	}
	b.conns[host] = conn
	return conn, nil
}

func (b *branchConns) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, conn := range b.conns {
		conn.Close()
	}
	b.conns = nil
}

// SplitBranchURL splits "host:port/package.Service/Method" into the host and
// the gRPC method "/package.Service/Method".
func SplitBranchURL(url string) (host, method string, err error) {
	slash := strings.IndexByte(url, '/')
	if slash <= 0 || slash == len(url)-1 {
		return "", "", fmt.Errorf("dtmclient: branch URL %q is not host:port/package.Service/Method", url)
	}
	return url[:slash], url[slash:], nil
}

// callBranch calls a branch as the coordinator would: request as the body,
// the dtm-* metadata and the branch headers, RequestTimeout as deadline when
// set. reply may be nil.
func (c *Client) callBranch(ctx context.Context, url string, request, reply proto.Message,
	info BranchInfo, options *TransOptions) error {
	host, method, err := SplitBranchURL(url)
	if err != nil {
		return err
	}
	conn, err := c.branches.get(host)
	if err != nil {
		return err
	}
	pairs := []string{
		"dtm-gid", info.Gid, "dtm-trans_type", info.TransType,
		"dtm-branch_id", info.BranchID, "dtm-op", info.Op, "dtm-dtm", c.DtmAddress,
	}
	for k, v := range options.BranchHeaders {
		pairs = append(pairs, k, v)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, pairs...)
	if options.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, seconds(options.RequestTimeout))
		defer cancel()
	}
	if reply == nil {
		reply = &emptypb.Empty{}
	}
	return conn.Invoke(ctx, method, request, reply)
}
