package dtmclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/dtmd/dtmd/client_stubs/go/dtmgimp"
	"github.com/dtmd/dtmd/client_stubs/go/workflow"
)

// Workflows (TransType "workflow"): a function whose steps' outcomes the
// coordinator records, so that a run interrupted anywhere resumes later
// where it stopped, replaying the recorded steps instead of running them
// again.
//
// Outcomes, as in DTM: a step or handler error with code ABORTED (Failure)
// is final: the workflow ends failed with that message as rollback reason.
// Any other error leaves it unfinished: nothing is recorded for that step,
// and the coordinator later calls the resume URL (op = the workflow's name,
// a workflow.WorkflowData payload), whose handler (WorkflowService) runs
// Execute again with the same name, gid and input. Steps must be
// deterministic in order: the n-th Do of a run is branch "0n" in every run.

// WorkflowHandler is a workflow's body: its result, or its error.
type WorkflowHandler func(ctx context.Context, wf *Workflow) ([]byte, error)

// Workflow is one run of a workflow, handed to the handler. Not safe for
// concurrent use.
type Workflow struct {
	Name  string
	Gid   string
	Input []byte

	client     *WorkflowClient
	ids        branchIDs
	progresses map[string]*dtmgimp.DtmProgress // by branch id, op "action"
}

// Do runs the next step (branch id "01", "02", ...; op "action"). If an
// earlier run recorded its outcome, returns it without calling step: the
// result for "succeed", ABORTED with the recorded message for "failed".
// Otherwise calls step and records the outcome (RegisterBranch with Data
// {"op":"action","status":"succeed"|"failed"}, BusiPayload the result or
// the error text) when step returned nil or ABORTED; another error is
// returned unrecorded. A RegisterBranch refusal (the workflow is no longer
// prepared) comes back as FAILED_PRECONDITION, so that it does not read as
// the step's failure.
func (w *Workflow) Do(ctx context.Context, step func() ([]byte, error)) ([]byte, error) {
	branchID, err := w.ids.next()
	if err != nil {
		return nil, err
	}
	if p, ok := w.progresses[branchID]; ok {
		if p.Status == "succeed" {
			return p.BinData, nil
		}
		return nil, Failure(string(p.BinData))
	}
	result, stepErr := step()
	if stepErr != nil && status.Code(stepErr) != codes.Aborted {
		return nil, stepErr // unknown: runs again on resume
	}
	branch := &dtmgimp.DtmBranchRequest{
		Gid: w.Gid, TransType: TransWorkflow, BranchID: branchID,
		Data: map[string]string{"op": OpAction, "status": "succeed"}, BusiPayload: result,
	}
	if stepErr != nil {
		branch.Data["status"] = "failed"
		branch.BusiPayload = []byte(status.Convert(stepErr).Message())
	}
	if _, err := w.client.client.Dtm.RegisterBranch(ctx, branch); err != nil {
		if IsFailure(err) {
			return nil, status.Error(codes.FailedPrecondition, status.Convert(err).Message())
		}
		return nil, err
	}
	return result, stepErr
}

// WorkflowClient starts and resumes workflows. Safe for concurrent use.
type WorkflowClient struct {
	client    *Client
	resumeURL string
	options   TransOptions
}

// NewWorkflowClient: resumeURL is "host:port/workflow.Workflow/Execute"
// where this program serves a WorkflowService, sent as QueryPrepared with
// every PrepareWorkflow. options apply to every workflow (the coordinator
// re-drives an unfinished workflow every RetryInterval).
func (c *Client) NewWorkflowClient(resumeURL string, options TransOptions) *WorkflowClient {
	return &WorkflowClient{client: c, resumeURL: resumeURL, options: options}
}

// Execute runs workflow name with gid: PrepareWorkflow (CustomedData
// {"name","data": base64(input)}) creates it or returns its recorded
// progress. Already succeeded: returns its stored result (handler not run).
// Already failed: ABORTED with its rollback reason. Otherwise runs handler
// and, when it returns nil or ABORTED, ends the workflow with Submit
// (ReqExtra {"status","rollback_reason","result": base64}); returns
// Submit's error if it fails, else the handler's outcome. Any other handler
// error is returned as it is, the workflow left unfinished.
func (wc *WorkflowClient) Execute(ctx context.Context, name, gid string, input []byte,
	handler WorkflowHandler) ([]byte, error) {
	request := stepLessRequest(gid, TransWorkflow, &wc.options)
	custom, err := json.Marshal(map[string]string{"name": name, "data": base64.StdEncoding.EncodeToString(input)})
	if err != nil {
		return nil, err
	}
	request.CustomedData = string(custom)
	request.QueryPrepared = wc.resumeURL
	reply, err := wc.client.Dtm.PrepareWorkflow(ctx, request)
	if err != nil {
		return nil, err
	}
	switch stored := reply.GetTransaction(); stored.GetStatus() {
	case "succeed":
		result, err := base64.StdEncoding.DecodeString(stored.GetResult())
		if err != nil {
			return nil, fmt.Errorf("dtmclient: workflow %s succeeded with a result that is not base64", gid)
		}
		return result, nil
	case "failed":
		return nil, Failure(stored.GetRollbackReason())
	}

	wf := &Workflow{Name: name, Gid: gid, Input: input, client: wc, progresses: map[string]*dtmgimp.DtmProgress{}}
	for _, p := range reply.GetProgresses() {
		if p.GetOp() == OpAction && (p.GetStatus() == "succeed" || p.GetStatus() == "failed") {
			wf.progresses[p.GetBranchID()] = p
		}
	}
	result, handlerErr := handler(ctx, wf)
	failed := status.Code(handlerErr) == codes.Aborted
	if handlerErr != nil && !failed {
		return nil, handlerErr // resumed later
	}
	request.ReqExtra = map[string]string{"status": "succeed", "rollback_reason": "", "result": ""}
	if failed {
		request.ReqExtra["status"] = "failed"
		request.ReqExtra["rollback_reason"] = status.Convert(handlerErr).Message()
	} else {
		request.ReqExtra["result"] = base64.StdEncoding.EncodeToString(result)
	}
	if _, err := wc.client.Dtm.Submit(ctx, request); err != nil {
		return nil, err
	}
	return result, handlerErr
}

// WorkflowService is the resume endpoint: a workflow.Workflow service whose
// Execute reads the gid (dtm-gid) and name (dtm-op) from the call's metadata
// and runs the registered handler through Execute. It answers OK when the
// workflow ended (succeeded or failed), NOT_FOUND for an unregistered name,
// else the error that left it unfinished. Register every handler before
// serving.
type WorkflowService struct {
	workflow.UnimplementedWorkflowServer
	client   *WorkflowClient
	handlers map[string]WorkflowHandler
}

// NewWorkflowService serves the workflows of client.
func NewWorkflowService(client *WorkflowClient) *WorkflowService {
	return &WorkflowService{client: client, handlers: map[string]WorkflowHandler{}}
}

// Register adds a handler. Not safe to call while serving.
func (s *WorkflowService) Register(name string, handler WorkflowHandler) {
	s.handlers[name] = handler
}

// Execute implements workflow.WorkflowServer.
func (s *WorkflowService) Execute(ctx context.Context, data *workflow.WorkflowData) (*emptypb.Empty, error) {
	info, err := BranchInfoFromContext(ctx)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	handler, ok := s.handlers[info.Op]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no workflow named %q is registered", info.Op)
	}
	_, err = s.client.Execute(ctx, info.Op, info.Gid, data.GetData(), handler)
	if err == nil || IsFailure(err) {
		return &emptypb.Empty{}, nil
	}
	return nil, err
}
