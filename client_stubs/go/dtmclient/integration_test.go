package dtmclient_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/dtmd/dtmd/client_stubs/go/dtmclient"
	"github.com/dtmd/dtmd/client_stubs/go/dtmdtest"
	"github.com/dtmd/dtmd/client_stubs/go/workflow"
)

const waitFor = 20 * time.Second

func setup(t *testing.T) (*dtmclient.Client, *scriptedBusi, string) {
	t.Helper()
	addr := dtmdtest.StartDtmd(t)
	client, err := dtmclient.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	busi, url := serveBusi(t)
	return client, busi, url
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newGid(t *testing.T, client *dtmclient.Client) string {
	gid, err := client.NewGid(ctxFor(t))
	if err != nil || gid == "" {
		t.Fatalf("NewGid: %q, %v", gid, err)
	}
	return gid
}

func TestSagaSucceedsAndBranchHeadersArrive(t *testing.T) {
	client, busi, url := setup(t)
	gid := newGid(t, client)
	saga := client.NewSaga(gid).
		Add(url+"/Action1", url+"/Compensate1", str("one")).
		Add(url+"/Action2", url+"/Compensate2", str("two"))
	saga.WaitResult = true
	saga.BranchHeaders = map[string]string{"x-tenant": "acme"}
	if err := saga.Submit(ctxFor(t)); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if got, want := busi.methods(gid), []string{"Action1", "Action2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	for _, call := range busi.callsOf(gid) {
		if got := call.MD.Get("x-tenant"); len(got) != 1 || got[0] != "acme" {
			t.Errorf("%s: x-tenant = %v, want [acme]", call.Method, got)
		}
		if call.Info.TransType != "saga" || call.Info.Op != "action" {
			t.Errorf("%s: branch info %+v", call.Method, call.Info)
		}
	}
	if calls := busi.callsOf(gid); calls[0].Payload != "one" || calls[1].Payload != "two" ||
		calls[0].Info.BranchID != "01" || calls[1].Info.BranchID != "02" {
		t.Errorf("payloads/branch ids: %+v", calls)
	}
}

func TestSagaRollsBackWhenAnActionFails(t *testing.T) {
	client, busi, url := setup(t)
	busi.answer("Action2", func(busiCall) error { return dtmclient.Failure("no money") })
	gid := newGid(t, client)
	saga := client.NewSaga(gid).
		Add(url+"/Action1", url+"/Compensate1", str("one")).
		Add(url+"/Action2", url+"/Compensate2", str("two")).
		Add(url+"/Action3", url+"/Compensate3", str("three"))
	saga.WaitResult = true
	err := saga.Submit(ctxFor(t))
	if !dtmclient.IsFailure(err) {
		t.Fatalf("Submit: %v, want a failure", err)
	}
	dtmdtest.Eventually(t, waitFor, "compensations", func() bool { return len(busi.methods(gid)) >= 4 })
	want := []string{"Action1", "Action2", "Compensate2", "Compensate1"}
	if got := busi.methods(gid); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
}

func TestConcurrentSagaFollowsBranchOrder(t *testing.T) {
	client, busi, url := setup(t)
	gid := newGid(t, client)
	saga := client.NewSaga(gid).
		Add(url+"/Action1", "", str("one")).
		Add(url+"/Action2", "", str("two")).
		EnableConcurrent().
		AddBranchOrder(0, 1)
	saga.WaitResult = true
	if err := saga.Submit(ctxFor(t)); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if got, want := busi.methods(gid), []string{"Action2", "Action1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
}

func TestTccConfirmsEveryBranchAfterSuccessfulTries(t *testing.T) {
	client, busi, url := setup(t)
	gid := newGid(t, client)
	options := &dtmclient.TransOptions{WaitResult: true, BranchHeaders: map[string]string{"x-trace": "t1"}}
	err := client.TccGlobalTransaction(ctxFor(t), gid, options, func(tcc *dtmclient.Tcc) error {
		for _, payload := range []string{"a", "b"} {
			if err := tcc.CallBranch(ctxFor(t), str(payload), url+"/Try", url+"/Confirm", url+"/Cancel", nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("TccGlobalTransaction: %v", err)
	}
	dtmdtest.Eventually(t, waitFor, "confirms", func() bool { return len(busi.methods(gid)) >= 4 })
	calls := busi.callsOf(gid)
	if got, want := busi.methods(gid), []string{"Try", "Try", "Confirm", "Confirm"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	// Confirms run in reverse registration order.
	if calls[2].Info.BranchID != "02" || calls[3].Info.BranchID != "01" || calls[2].Payload != "b" {
		t.Errorf("confirm order/payload: %+v", calls[2:])
	}
	if calls[0].Info.Op != "try" || calls[0].MD.Get("x-trace")[0] != "t1" || calls[2].MD.Get("x-trace")[0] != "t1" {
		t.Errorf("try metadata: %+v", calls[0])
	}
}

func TestTccCancelsRegisteredBranchesWhenATryFails(t *testing.T) {
	client, busi, url := setup(t)
	tries := 0
	busi.answer("Try", func(busiCall) error {
		tries++
		if tries == 2 {
			return dtmclient.Failure("out of stock")
		}
		return nil
	})
	gid := newGid(t, client)
	err := client.TccGlobalTransaction(ctxFor(t), gid, nil, func(tcc *dtmclient.Tcc) error {
		if err := tcc.CallBranch(ctxFor(t), str("a"), url+"/Try", url+"/Confirm", url+"/Cancel", nil); err != nil {
			return err
		}
		return tcc.CallBranch(ctxFor(t), str("b"), url+"/Try", url+"/Confirm", url+"/Cancel", nil)
	})
	if !dtmclient.IsFailure(err) {
		t.Fatalf("TccGlobalTransaction: %v, want the Try's failure", err)
	}
	dtmdtest.Eventually(t, waitFor, "cancels", func() bool { return len(busi.methods(gid)) >= 4 })
	if got, want := busi.methods(gid), []string{"Try", "Try", "Cancel", "Cancel"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
}

func TestMsgDoAndSubmitDeliversAfterTheLocalTransaction(t *testing.T) {
	client, busi, url := setup(t)
	gid := newGid(t, client)
	msg := client.NewMsg(gid).Add(url+"/Action1", str("one")).Add(url+"/Action2", str("two"))
	ran := false
	if err := msg.DoAndSubmit(ctxFor(t), url+"/QueryPrepared", func() error { ran = true; return nil }); err != nil {
		t.Fatalf("DoAndSubmit: %v", err)
	}
	if !ran {
		t.Fatal("the local transaction did not run")
	}
	dtmdtest.Eventually(t, waitFor, "delivery", func() bool { return len(busi.methods(gid)) >= 2 })
	if got, want := busi.methods(gid), []string{"Action1", "Action2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
}

func TestMsgDoAndSubmitAbortsWhenTheLocalTransactionRefuses(t *testing.T) {
	client, busi, url := setup(t)
	gid := newGid(t, client)
	msg := client.NewMsg(gid).Add(url+"/Action1", str("one"))
	err := msg.DoAndSubmit(ctxFor(t), url+"/QueryPrepared", func() error { return dtmclient.Failure("refused") })
	if !dtmclient.IsFailure(err) {
		t.Fatalf("DoAndSubmit: %v, want the local failure", err)
	}
	// Aborted: a Submit is refused and no action is ever called.
	if err := msg.Submit(ctxFor(t)); !dtmclient.IsFailure(err) {
		t.Fatalf("Submit after abort: %v, want ABORTED", err)
	}
	time.Sleep(1500 * time.Millisecond)
	if got := busi.methods(gid); len(got) != 0 {
		t.Fatalf("calls %v, want none", got)
	}
}

func TestMsgDoAndSubmitAsksQueryPreparedWhenTheOutcomeIsUnknown(t *testing.T) {
	client, busi, url := setup(t)
	gid := newGid(t, client)
	msg := client.NewMsg(gid).Add(url+"/Action1", str("one"))
	err := msg.DoAndSubmit(ctxFor(t), url+"/QueryPrepared", func() error {
		return status.Error(codes.Unavailable, "commit timed out")
	})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("DoAndSubmit: %v, want busi's error", err)
	}
	// QueryPrepared answered OK (committed after all): the msg was submitted.
	dtmdtest.Eventually(t, waitFor, "delivery", func() bool { return len(busi.methods(gid)) >= 2 })
	calls := busi.callsOf(gid)
	if calls[0].Method != "QueryPrepared" || calls[0].Info.Op != "msg" || calls[0].Info.BranchID != "00" ||
		calls[1].Method != "Action1" {
		t.Fatalf("calls %+v", calls)
	}
}

func TestPreparedMsgIsCheckedByTheCoordinatorWithQueryPrepared(t *testing.T) {
	client, busi, url := setup(t)
	gid := newGid(t, client)
	msg := client.NewMsg(gid).Add(url+"/Action1", str("one"))
	msg.TimeoutToFail = 1
	if err := msg.Prepare(ctxFor(t), url+"/QueryPrepared"); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	// Never submitted: the coordinator asks QueryPrepared, which says
	// committed, and then delivers.
	dtmdtest.Eventually(t, waitFor, "query and delivery", func() bool { return len(busi.methods(gid)) >= 2 })
	calls := busi.callsOf(gid)
	if calls[0].Method != "QueryPrepared" || calls[0].Info.Op != "msg" || calls[0].Info.BranchID != "00" ||
		calls[1].Method != "Action1" || calls[1].Payload != "one" {
		t.Fatalf("calls %+v", calls)
	}
}

func TestMsgTopicsReachEverySubscriber(t *testing.T) {
	client, busi, url := setup(t)
	ctx := ctxFor(t)
	for _, method := range []string{"/Notify", "/Other"} {
		if err := client.Subscribe(ctx, "orders", url+method, "test"); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
	}
	if err := client.Subscribe(ctx, "orders", url+"/Notify", "again"); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second Subscribe: %v, want ALREADY_EXISTS", err)
	}
	gid := newGid(t, client)
	if err := client.NewMsg(gid).AddTopic("orders", str("placed")).Submit(ctx); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	dtmdtest.Eventually(t, waitFor, "delivery", func() bool { return len(busi.methods(gid)) >= 2 })
	if err := client.Unsubscribe(ctx, "orders", url+"/Other"); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	if err := client.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	if err := client.NewMsg(newGid(t, client)).AddTopic("orders", str("x")).Submit(ctx); status.Code(err) != codes.NotFound {
		t.Fatalf("Submit to a deleted topic: %v, want NOT_FOUND", err)
	}
}

func TestWorkflowRecordsStepsAndResumesAfterAnUnknownError(t *testing.T) {
	addr := dtmdtest.StartDtmd(t)
	client, err := dtmclient.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	server := grpc.NewServer()
	// The resume URL needs the server's address, known once it serves: the
	// service is registered first and pointed at the client below.
	service := &resumable{}
	workflow.RegisterWorkflowServer(server, service)
	resumeURL := dtmdtest.Serve(t, server) + "/workflow.Workflow/Execute"
	workflows := client.NewWorkflowClient(resumeURL, dtmclient.TransOptions{RetryInterval: 1})
	service.inner = dtmclient.NewWorkflowService(workflows)

	var firstStepRuns, secondStepRuns int
	handler := func(ctx context.Context, wf *dtmclient.Workflow) ([]byte, error) {
		first, err := wf.Do(ctx, func() ([]byte, error) { firstStepRuns++; return []byte("reserved:" + string(wf.Input)), nil })
		if err != nil {
			return nil, err
		}
		second, err := wf.Do(ctx, func() ([]byte, error) {
			secondStepRuns++
			if secondStepRuns == 1 {
				return nil, status.Error(codes.Unavailable, "payment service down")
			}
			return []byte("charged"), nil
		})
		if err != nil {
			return nil, err
		}
		return []byte(string(first) + "+" + string(second)), nil
	}
	service.inner.Register("order", handler)

	gid := newGid(t, client)
	_, err = workflows.Execute(ctxFor(t), "order", gid, []byte("o1"), handler)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("first run: %v, want the unknown error", err)
	}
	// dtmd calls the resume URL; the second run replays step 1.
	dtmdtest.Eventually(t, waitFor, "resume", func() bool {
		result, err := workflows.Execute(ctxFor(t), "order", gid, []byte("o1"), func(context.Context, *dtmclient.Workflow) ([]byte, error) {
			return nil, status.Error(codes.Unavailable, "still running") // only reads an ended one
		})
		return err == nil && string(result) == "reserved:o1+charged"
	})
	if firstStepRuns != 1 || secondStepRuns != 2 {
		t.Fatalf("step runs %d, %d; want 1, 2", firstStepRuns, secondStepRuns)
	}

	failGid := newGid(t, client)
	_, err = workflows.Execute(ctxFor(t), "order", failGid, nil, func(ctx context.Context, wf *dtmclient.Workflow) ([]byte, error) {
		return wf.Do(ctx, func() ([]byte, error) { return nil, dtmclient.Failure("card declined") })
	})
	if !dtmclient.IsFailure(err) {
		t.Fatalf("failing workflow: %v, want a failure", err)
	}
	_, err = workflows.Execute(ctxFor(t), "order", failGid, nil, handler)
	if !dtmclient.IsFailure(err) || status.Convert(err).Message() != "card declined" {
		t.Fatalf("re-executing a failed workflow: %v, want its rollback reason", err)
	}
}

// resumable forwards to a WorkflowService made after the server started.
type resumable struct {
	workflow.UnimplementedWorkflowServer
	inner *dtmclient.WorkflowService
}

func (r *resumable) Execute(ctx context.Context, data *workflow.WorkflowData) (*emptypb.Empty, error) {
	if r.inner == nil {
		return nil, errors.New("not ready")
	}
	return r.inner.Execute(ctx, data)
}
