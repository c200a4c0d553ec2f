package dtmclient_test

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dtmd/dtmd/client_stubs/go/dtmclient"
	"github.com/dtmd/dtmd/client_stubs/go/dtmdtest"
)

// busiCall is one call a scriptedBusi received.
type busiCall struct {
	Method  string
	Info    dtmclient.BranchInfo
	Payload string
	MD      metadata.MD
}

// scriptedBusi is a branch server "test.Busi" whose methods take a
// StringValue, record every call and answer what the test scripted (OK by
// default).
type scriptedBusi struct {
	mu      sync.Mutex
	calls   []busiCall
	answers map[string]func(call busiCall) error
}

var busiMethods = []string{
	"Action1", "Compensate1", "Action2", "Compensate2", "Action3", "Compensate3",
	"Try", "Confirm", "Cancel", "QueryPrepared", "Notify", "Other",
}

// serveBusi starts a scriptedBusi; returns it and its URL prefix
// "127.0.0.1:port/test.Busi".
func serveBusi(t *testing.T) (*scriptedBusi, string) {
	b := &scriptedBusi{answers: map[string]func(busiCall) error{}}
	desc := &grpc.ServiceDesc{ServiceName: "test.Busi", HandlerType: (*any)(nil)}
	for _, name := range busiMethods {
		name := name
		desc.Methods = append(desc.Methods, grpc.MethodDesc{
			MethodName: name,
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var in wrapperspb.StringValue
				if err := dec(&in); err != nil {
					return nil, err
				}
				info, _ := dtmclient.BranchInfoFromContext(ctx)
				md, _ := metadata.FromIncomingContext(ctx)
				call := busiCall{Method: name, Info: info, Payload: in.GetValue(), MD: md}
				b.mu.Lock()
				b.calls = append(b.calls, call)
				answer := b.answers[name]
				b.mu.Unlock()
				if answer != nil {
					if err := answer(call); err != nil {
						return nil, err
					}
				}
				return &wrapperspb.StringValue{Value: "ok " + name}, nil
			},
		})
	}
	server := grpc.NewServer()
	server.RegisterService(desc, struct{}{})
	return b, dtmdtest.Serve(t, server) + "/test.Busi"
}

func (b *scriptedBusi) answer(method string, f func(busiCall) error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.answers[method] = f
}

// methods lists the methods called so far with gid, in order.
func (b *scriptedBusi) methods(gid string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, c := range b.calls {
		if c.Info.Gid == gid {
			out = append(out, c.Method)
		}
	}
	return out
}

func (b *scriptedBusi) callsOf(gid string) []busiCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []busiCall
	for _, c := range b.calls {
		if c.Info.Gid == gid {
			out = append(out, c)
		}
	}
	return out
}

func str(s string) *wrapperspb.StringValue { return wrapperspb.String(s) }
