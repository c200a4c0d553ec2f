package dtmclient

import (
	"context"
	"encoding/json"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/dtmd/dtmd/client_stubs/go/dtmgimp"
)

// Saga builds and submits one saga. Steps run in the order they were added
// (or per AddBranchOrder when EnableConcurrent is set); each step has an
// action URL and a compensation URL ("host:port/package.Service/Method"; an
// empty one means nothing to call) and a payload sent as the body of both.
// Set the embedded TransOptions fields before Submit. Not safe for
// concurrent use.
type Saga struct {
	TransOptions
	Gid string

	client     *Client
	steps      []sagaStep
	orders     map[int][]int
	concurrent bool
	err        error // the first payload that did not marshal
}

type sagaStep struct {
	Action     string `json:"action"`
	Compensate string `json:"compensate"`
	payload    []byte
}

// NewSaga starts a saga with gid.
func (c *Client) NewSaga(gid string) *Saga {
	return &Saga{Gid: gid, client: c}
}

// Add appends a step whose payload is the serialized message. Step indices
// (for AddBranchOrder) are 0-based in the order of Add calls.
func (s *Saga) Add(actionURL, compensateURL string, payload proto.Message) *Saga {
	bytes, err := proto.Marshal(payload)
	if err != nil && s.err == nil {
		s.err = err
	}
	return s.AddRaw(actionURL, compensateURL, bytes)
}

// AddRaw appends a step with payload bytes as they are.
func (s *Saga) AddRaw(actionURL, compensateURL string, payload []byte) *Saga {
	s.steps = append(s.steps, sagaStep{Action: actionURL, Compensate: compensateURL, payload: payload})
	return s
}

// AddBranchOrder makes step run only after every step in after succeeded.
// Only meaningful with EnableConcurrent. A repeated call for the same step
// replaces its predecessors; the coordinator rejects bad indices with
// INVALID_ARGUMENT.
func (s *Saga) AddBranchOrder(step int, after ...int) *Saga {
	if s.orders == nil {
		s.orders = map[int][]int{}
	}
	s.orders[step] = append([]int{}, after...)
	return s
}

// EnableConcurrent runs the steps concurrently, constrained only by
// AddBranchOrder.
func (s *Saga) EnableConcurrent() *Saga {
	s.concurrent = true
	return s
}

// BuildRequest is the request Submit and Prepare send: TransType "saga",
// Steps a JSON array of {"action","compensate"}, BinPayloads in step order,
// CustomedData {"orders":{...},"concurrent":...} when concurrency or orders
// were set.
func (s *Saga) BuildRequest() (*dtmgimp.DtmRequest, error) {
	if s.err != nil {
		return nil, s.err
	}
	steps := s.steps
	if steps == nil {
		steps = []sagaStep{}
	}
	stepsJSON, err := json.Marshal(steps)
	if err != nil {
		return nil, err
	}
	request := &dtmgimp.DtmRequest{
		Gid: s.Gid, TransType: TransSaga, TransOptions: s.TransOptions.proto(), Steps: string(stepsJSON),
	}
	for _, step := range s.steps {
		request.BinPayloads = append(request.BinPayloads, step.payload)
	}
	if s.concurrent || len(s.orders) > 0 {
		orders := map[string][]int{}
		for step, after := range s.orders {
			orders[strconv.Itoa(step)] = after
		}
		custom, err := json.Marshal(map[string]any{"orders": orders, "concurrent": s.concurrent})
		if err != nil {
			return nil, err
		}
		request.CustomedData = string(custom)
	}
	return request, nil
}

// Submit sends the saga; the coordinator runs it (see TransOptions.WaitResult).
func (s *Saga) Submit(ctx context.Context) error {
	request, err := s.BuildRequest()
	if err != nil {
		return err
	}
	_, err = s.client.Dtm.Submit(ctx, request)
	return err
}

// Prepare stores the saga as prepared without running it; a later Submit of
// the same gid runs the steps stored here.
func (s *Saga) Prepare(ctx context.Context) error {
	request, err := s.BuildRequest()
	if err != nil {
		return err
	}
	_, err = s.client.Dtm.Prepare(ctx, request)
	return err
}
