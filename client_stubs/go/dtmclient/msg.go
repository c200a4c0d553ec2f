package dtmclient

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/dtmd/dtmd/client_stubs/go/dtmgimp"
)

// Msg is a reliable message (TransType "msg"): actions that the coordinator
// calls in order once the msg is submitted, retrying each until it
// succeeds; a msg never rolls back. The usual use ties it to a local
// transaction with DoAndSubmit. Set the embedded TransOptions before
// Prepare. Not safe for concurrent use.
type Msg struct {
	TransOptions
	Gid string

	client        *Client
	steps         []msgStep
	delaySeconds  int64
	queryPrepared string
	err           error
}

type msgStep struct {
	Action  string `json:"action"`
	payload []byte
}

// NewMsg starts a msg with gid.
func (c *Client) NewMsg(gid string) *Msg {
	return &Msg{Gid: gid, client: c}
}

// Add appends an action called with the serialized payload. Branch ids are
// "01", "02", ... in the order of Add calls.
func (m *Msg) Add(actionURL string, payload proto.Message) *Msg {
	bytes, err := proto.Marshal(payload)
	if err != nil && m.err == nil {
		m.err = err
	}
	return m.AddRaw(actionURL, bytes)
}

// AddRaw appends an action with payload bytes as they are.
func (m *Msg) AddRaw(actionURL string, payload []byte) *Msg {
	m.steps = append(m.steps, msgStep{Action: actionURL, payload: payload})
	return m
}

// AddTopic appends an action "topic://topic": at Submit the coordinator
// makes it one action per subscriber of topic (NOT_FOUND when it has none).
func (m *Msg) AddTopic(topic string, payload proto.Message) *Msg {
	return m.Add("topic://"+topic, payload)
}

// SetDelay makes the coordinator wait this many seconds after Submit before
// its first action call.
func (m *Msg) SetDelay(seconds int64) *Msg {
	m.delaySeconds = seconds
	return m
}

// BuildRequest is the request Prepare, Submit and Abort send: TransType
// "msg", Steps a JSON array of {"action"}, BinPayloads in step order,
// QueryPrepared as given to Prepare, CustomedData {"delay":N} when set.
func (m *Msg) BuildRequest() (*dtmgimp.DtmRequest, error) {
	if m.err != nil {
		return nil, m.err
	}
	steps := m.steps
	if steps == nil {
		steps = []msgStep{}
	}
	stepsJSON, err := json.Marshal(steps)
	if err != nil {
		return nil, err
	}
	request := &dtmgimp.DtmRequest{
		Gid: m.Gid, TransType: TransMsg, TransOptions: m.TransOptions.proto(),
		Steps: string(stepsJSON), QueryPrepared: m.queryPrepared,
	}
	for _, step := range m.steps {
		request.BinPayloads = append(request.BinPayloads, step.payload)
	}
	if m.delaySeconds > 0 {
		delay, _ := json.Marshal(map[string]int64{"delay": m.delaySeconds})
		request.CustomedData = string(delay)
	}
	return request, nil
}

// Prepare stores the msg as prepared. queryPreparedURL is what the
// coordinator asks (op "msg", branch id "00", empty body) when the msg stays
// unsubmitted past TimeoutToFail: OK submits it, ABORTED fails it,
// FAILED_PRECONDITION asks again later. An empty URL keeps the one given
// before.
func (m *Msg) Prepare(ctx context.Context, queryPreparedURL string) error {
	if queryPreparedURL != "" {
		m.queryPrepared = queryPreparedURL
	}
	return m.send(ctx, m.client.Dtm.Prepare, "")
}

// Submit submits the msg (prepared or not): the coordinator calls the
// actions.
func (m *Msg) Submit(ctx context.Context) error {
	return m.send(ctx, m.client.Dtm.Submit, "")
}

// Abort aborts a prepared msg: it ends failed and no action is called.
func (m *Msg) Abort(ctx context.Context) error {
	return m.send(ctx, m.client.Dtm.Abort, "")
}

// DoAndSubmit runs Prepare, then busi (the local transaction), then:
//   - busi nil: Submit, and return Submit's error;
//   - busi ABORTED (the business refused): Abort, and return busi's error;
//   - any other error (busi's outcome unknown): ask queryPreparedURL at
//     once, as the coordinator would later: OK -> Submit, ABORTED -> Abort,
//     anything else -> leave the msg prepared for the coordinator's own
//     check. Returns busi's error.
//
// When Prepare fails, busi does not run. The QueryPrepared handler must tell
// from its own records whether busi committed (barrier.QueryPrepared does).
func (m *Msg) DoAndSubmit(ctx context.Context, queryPreparedURL string, busi func() error) error {
	if err := m.Prepare(ctx, queryPreparedURL); err != nil {
		return err
	}
	busiErr := busi()
	if busiErr == nil {
		return m.Submit(ctx)
	}
	verdict := busiErr
	if status.Code(busiErr) != codes.Aborted {
		info := BranchInfo{Gid: m.Gid, TransType: TransMsg, BranchID: QueryPreparedBranchID, Op: OpMsg}
		verdict = m.client.callBranch(ctx, m.queryPrepared, &emptypb.Empty{}, nil, info, &m.TransOptions)
	}
	switch {
	case verdict == nil:
		m.Submit(ctx) //nolint:errcheck // busi's error is what the caller must see
	case status.Code(verdict) == codes.Aborted:
		m.send(ctx, m.client.Dtm.Abort, status.Convert(verdict).Message()) //nolint:errcheck
	}
	return busiErr
}

type dtmCall func(context.Context, *dtmgimp.DtmRequest, ...grpc.CallOption) (*emptypb.Empty, error)

func (m *Msg) send(ctx context.Context, call dtmCall, rollbackReason string) error {
	request, err := m.BuildRequest()
	if err != nil {
		return err
	}
	request.RollbackReason = rollbackReason
	_, err = call(ctx, request)
	return err
}

// Subscribe adds url as a subscriber of topic (ALREADY_EXISTS if it is one);
// remark is free text kept with it.
func (c *Client) Subscribe(ctx context.Context, topic, url, remark string) error {
	_, err := c.Dtm.Subscribe(ctx, &dtmgimp.DtmTopicRequest{Topic: topic, URL: url, Remark: remark})
	return err
}

// Unsubscribe removes a subscriber (NOT_FOUND for an unknown one).
func (c *Client) Unsubscribe(ctx context.Context, topic, url string) error {
	_, err := c.Dtm.Unsubscribe(ctx, &dtmgimp.DtmTopicRequest{Topic: topic, URL: url})
	return err
}

// DeleteTopic drops a topic and its subscribers (NOT_FOUND for an unknown
// topic).
func (c *Client) DeleteTopic(ctx context.Context, topic string) error {
	_, err := c.Dtm.DeleteTopic(ctx, &dtmgimp.DtmTopicRequest{Topic: topic})
	return err
}
