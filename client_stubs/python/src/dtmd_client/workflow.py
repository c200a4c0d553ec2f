"""Workflows (TransType "workflow"): a function whose steps' outcomes the
coordinator records, so that a run interrupted anywhere (crash, timeout,
unknown answer) resumes later where it stopped, replaying the recorded steps
instead of running them again.

    server = BranchServer()
    workflows = WorkflowClient(dtm, server.url("workflow.Workflow/Execute"))

    def order(wf: Workflow, data: bytes) -> bytes:
        reserved = wf.do(lambda: reserve(data))
        return wf.do(lambda: charge(reserved))

    server.add_handler(workflow_service(workflows, {"order": order})).start()
    result = workflows.execute("order", gid, b"o1", order)

Outcomes, as in DTM: Failure (ABORTED) raised by a step or the handler is
final: the workflow ends failed with that message as the rollback reason. Any
other exception leaves it unfinished: nothing is recorded for that step, the
exception reaches the caller of execute, and the coordinator later calls the
resume URL (op = the workflow's name, a workflow.WorkflowData payload), whose
service (workflow_service) runs execute again with the same name, gid and
input. Steps must be deterministic in order: the n-th do() of a run is branch
"0n" in every run.

Minimal, like the C++ and Go helpers: no phase-2 callbacks (DTM's
OnCommit/OnRollback) and no recorded gRPC/HTTP interceptors; a step is a
function returning bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from typing import Any, Callable, Union

import grpc
from google.protobuf import empty_pb2

from dtmd_client._proto import dtmgimp_pb2, dtmgimp_pb2_grpc, workflow_pb2, workflow_pb2_grpc
from dtmd_client.client import DtmClient, _call
from dtmd_client.errors import DtmError, Failure, Ongoing
from dtmd_client.options import TransOptions

Result = Union[bytes, str, None]
Step = Callable[[], Result]
WorkflowHandler = Callable[["Workflow", bytes], Result]

_WORKFLOW = "workflow"
_ACTION = "action"
_SUCCEED = "succeed"
_FAILED = "failed"
_MAX_BRANCHES = 99

_log = logging.getLogger("dtmd_client.workflow")


def _bytes(result: Result) -> bytes:
    if result is None:
        return b""
    return result.encode() if isinstance(result, str) else bytes(result)


class Workflow:
    """One run of a workflow, handed to the handler; not thread-safe (call do from the handler's thread)."""

    def __init__(
        self,
        client: WorkflowClient,
        name: str,
        gid: str,
        data: bytes,
        progresses: Mapping[str, dtmgimp_pb2.DtmProgress],
    ) -> None:
        self.name = name
        self.gid = gid
        # The bytes the workflow was started with.
        self.input = data
        self._client = client
        self._progresses = dict(progresses)
        self._last_branch = 0

    def do(self, step: Step) -> bytes:
        """Runs the next step (branch "01", "02", ... in the order of do calls; op "action").

        If an earlier run recorded its outcome, returns it without calling
        `step`: the result bytes for "succeed", Failure with the recorded
        message for "failed". Otherwise calls `step` and, when it returns or
        raises Failure, records the outcome with RegisterBranch (Data {"op":
        "action", "status": "succeed" | "failed"}, BusiPayload the result or
        the error message) before returning or re-raising it. Any other
        exception from `step` is re-raised unrecorded (the step runs again on
        resume). A RegisterBranch refusal (the workflow is no longer prepared)
        raises Ongoing (FAILED_PRECONDITION), so that it does not read as the
        step's failure; other RegisterBranch errors raise DtmError.
        """
        if self._last_branch >= _MAX_BRANCHES:
            raise DtmError(grpc.StatusCode.OUT_OF_RANGE, f"more than {_MAX_BRANCHES} steps in workflow {self.gid}")
        self._last_branch += 1
        branch_id = f"{self._last_branch:02d}"

        recorded = self._progresses.get(branch_id)
        if recorded is not None:
            if recorded.Status == _SUCCEED:
                return bytes(recorded.BinData)
            raise Failure(bytes(recorded.BinData).decode("utf-8", "replace"))

        failure: Failure | None = None
        try:
            result = _bytes(step())
        except Failure as error:
            failure = error
            result = b""
        branch = dtmgimp_pb2.DtmBranchRequest(
            Gid=self.gid,
            TransType=_WORKFLOW,
            BranchID=branch_id,
            Data={"op": _ACTION, "status": _FAILED if failure else _SUCCEED},
            BusiPayload=failure.message.encode() if failure else result,
        )
        try:
            self._client._dtm("RegisterBranch", branch)
        except Failure as refused:
            raise Ongoing(refused.message) from None
        if failure is not None:
            raise failure
        return result


class WorkflowClient:
    """Starts and resumes workflows; thread-safe (it holds no mutable state).

    `dtm` is a DtmClient, a grpc.Channel to the coordinator or a Dtm stub.
    `resume_url` is "host:port/workflow.Workflow/Execute" where this program
    serves workflow_service, sent as QueryPrepared with every PrepareWorkflow
    (dtmd checks it each time, also when resuming). `options` apply to every
    workflow (TimeoutToFail plays no part: the coordinator re-drives an
    unfinished workflow every RetryInterval).
    """

    def __init__(
        self,
        dtm: DtmClient | grpc.Channel | dtmgimp_pb2_grpc.DtmStub,
        resume_url: str,
        options: TransOptions | None = None,
    ) -> None:
        if isinstance(dtm, DtmClient):
            self._stub: Any = dtm.stub
        elif isinstance(dtm, grpc.Channel):
            self._stub = dtmgimp_pb2_grpc.DtmStub(dtm)
        else:
            self._stub = dtm
        self.resume_url = resume_url
        self.options = options or TransOptions()

    def _dtm(self, method: str, request: Any) -> Any:
        timeout = self.options.call_timeout
        return _call(lambda: getattr(self._stub, method)(request, timeout=timeout))

    def execute(self, name: str, gid: str, data: bytes, handler: WorkflowHandler) -> bytes:
        """Runs workflow `name` with `gid` and input `data`; returns its result.

        PrepareWorkflow (TransType "workflow", Steps "null", CustomedData
        {"name": name, "data": base64(data)}, QueryPrepared the resume URL)
        creates it or returns its recorded progress. Already succeeded:
        returns its stored result (handler not run). Already failed: raises
        Failure with its rollback reason. Otherwise runs handler(wf, data)
        and, when it returns or raises Failure, ends the workflow with Submit
        (ReqExtra {"status": "succeed" | "failed", "rollback_reason":
        message, "result": base64(result)}), then returns the result or
        re-raises the Failure; Submit's own error is raised instead if it
        fails. Any other exception from the handler is re-raised with the
        workflow left unfinished (the coordinator resumes it).
        """
        custom = json.dumps({"name": name, "data": base64.b64encode(data).decode()}, separators=(",", ":"))
        request = dtmgimp_pb2.DtmRequest(
            Gid=gid,
            TransType=_WORKFLOW,
            TransOptions=self.options.to_proto(),
            Steps="null",
            CustomedData=custom,
            QueryPrepared=self.resume_url,
        )
        reply: dtmgimp_pb2.DtmProgressesReply = self._dtm("PrepareWorkflow", request)

        stored = reply.Transaction
        if stored.Status == _SUCCEED:
            try:
                return base64.b64decode(stored.Result, validate=True)
            except binascii.Error:
                raise DtmError(
                    grpc.StatusCode.INTERNAL, f"workflow {gid} succeeded with a result that is not base64"
                ) from None
        if stored.Status == _FAILED:
            raise Failure(stored.RollbackReason)

        progresses = {
            progress.BranchID: progress
            for progress in reply.Progresses
            if progress.Op == _ACTION and progress.Status in (_SUCCEED, _FAILED)
        }
        wf = Workflow(self, name, gid, data, progresses)
        failure: Failure | None = None
        try:
            result = _bytes(handler(wf, data))
        except Failure as error:
            failure = error
            result = b""
        request.ReqExtra["status"] = _FAILED if failure else _SUCCEED
        request.ReqExtra["rollback_reason"] = failure.message if failure else ""
        request.ReqExtra["result"] = "" if failure else base64.b64encode(result).decode()
        self._dtm("Submit", request)
        if failure is not None:
            raise failure
        return result


class WorkflowServicer(workflow_pb2_grpc.WorkflowServicer):
    """The resume endpoint: workflow.Workflow/Execute re-runs a registered workflow.

    Reads the gid (dtm-gid) and name (dtm-op) from the call's metadata and
    runs client.execute(name, gid, WorkflowData.Data, the handler registered
    for name). Answers OK when the workflow ended (succeeded or failed:
    nothing more to do), NOT_FOUND for an unregistered name, else the error
    that left it unfinished (a DtmError's code, INTERNAL for any other
    exception). Register every handler before serving. Execute blocks a
    server thread for the whole run.
    """

    def __init__(self, client: WorkflowClient, handlers: Mapping[str, WorkflowHandler] | None = None) -> None:
        self.client = client
        self.handlers: dict[str, WorkflowHandler] = dict(handlers or {})

    def register(self, name: str, handler: WorkflowHandler) -> WorkflowServicer:
        """Not thread-safe: call before serving."""
        self.handlers[name] = handler
        return self

    def Execute(  # noqa: N802 - the generated servicer's method name
        self, request: workflow_pb2.WorkflowData, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        metadata = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
        name = metadata.get("dtm-op", "")
        handler = self.handlers.get(name)
        if handler is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no workflow named {name!r} is registered")
        assert handler is not None  # context.abort raises
        try:
            self.client.execute(name, metadata.get("dtm-gid", ""), bytes(request.Data), handler)
        except Failure:
            pass  # Ended failed: nothing more to do.
        except DtmError as error:
            context.abort(error.code, error.message)
        except Exception as error:  # noqa: BLE001 - every error becomes a status
            _log.exception("workflow %s left unfinished", name)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
        return empty_pb2.Empty()

    def as_handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        """This servicer as a generic handler (grpc.Server.add_generic_rpc_handlers, BranchServer.add_handler)."""
        method = grpc.unary_unary_rpc_method_handler(
            self.Execute,
            request_deserializer=workflow_pb2.WorkflowData.FromString,
            response_serializer=empty_pb2.Empty.SerializeToString,
        )
        return grpc.method_handlers_generic_handler("workflow.Workflow", {"Execute": method})


def workflow_service(
    client: WorkflowClient, handlers: Mapping[str, WorkflowHandler]
) -> grpc.GenericRpcHandler[Any, Any]:
    """A generic handler serving workflow.Workflow/Execute for `handlers` (by workflow name).

        server.add_generic_rpc_handlers([workflow_service(workflows, {"order": order})])
    """
    return WorkflowServicer(client, handlers).as_handler()


__all__ = ["Workflow", "WorkflowClient", "WorkflowHandler", "WorkflowServicer", "workflow_service"]
