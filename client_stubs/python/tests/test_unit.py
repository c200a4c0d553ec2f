"""Unit tests: the requests the helpers build (a fake Dtm stub for workflows), URL and status mapping, branch metadata."""

from __future__ import annotations

import base64
import json
from typing import Any, Callable

import grpc
import pytest

from dtmd_client import BranchContext, DtmClient, Failure, Ongoing, TransOptions, Workflow, WorkflowClient, split_url
from dtmd_client._proto import dtmgimp_pb2
from dtmd_client.client import branch_metadata
from dtmd_client.errors import DtmError, from_rpc_error


@pytest.fixture
def offline() -> DtmClient:
    return DtmClient("127.0.0.1:1")


def test_saga_request_lists_steps_and_payloads_in_order(offline: DtmClient) -> None:
    saga = offline.saga("g1").add("h:1/a.B/Do", "h:1/a.B/Undo", b"p1").add("h:1/a.B/Do2", "", "p2")
    request = saga.build_request()
    assert request.Gid == "g1" and request.TransType == "saga"
    assert json.loads(request.Steps) == [
        {"action": "h:1/a.B/Do", "compensate": "h:1/a.B/Undo"},
        {"action": "h:1/a.B/Do2", "compensate": ""},
    ]
    assert list(request.BinPayloads) == [b"p1", b"p2"]
    assert request.CustomedData == ""


def test_saga_concurrent_orders_go_to_customed_data(offline: DtmClient) -> None:
    saga = offline.saga("g2").add("a", "b").add("c", "d").enable_concurrent().add_branch_order(1, [0])
    assert json.loads(saga.build_request().CustomedData) == {"orders": {"1": [0]}, "concurrent": True}


def test_saga_options_become_trans_options(offline: DtmClient) -> None:
    saga = offline.saga("g3").set_wait_result(True).set_timeout_to_fail(9).set_retry_interval(2)
    saga.set_request_timeout(4).set_retry_limit(3).add_branch_header("x-trace", "t1")
    options = saga.build_request().TransOptions
    assert (options.WaitResult, options.TimeoutToFail, options.RetryInterval) == (True, 9, 2)
    assert (options.RequestTimeout, options.RetryLimit) == (4, 3)
    assert dict(options.BranchHeaders) == {"x-trace": "t1"}


def test_options_are_copied_per_transaction(offline: DtmClient) -> None:
    shared = TransOptions(branch_headers={"k": "v"})
    offline.saga("g4", shared).add_branch_header("k2", "v2")
    assert shared.branch_headers == {"k": "v"}


def test_msg_request_has_query_prepared_and_delay(offline: DtmClient) -> None:
    msg = offline.msg("m1").add("h:1/a.B/Do", b"x").add_topic("paid", b"y").set_delay(5)
    request = msg.build_request()
    assert request.TransType == "msg"
    assert json.loads(request.Steps) == [{"action": "h:1/a.B/Do"}, {"action": "topic://paid"}]
    assert json.loads(request.CustomedData) == {"delay": 5}


def test_split_url() -> None:
    assert split_url("127.0.0.1:5/pkg.Svc/Method") == ("127.0.0.1:5", "/pkg.Svc/Method")
    with pytest.raises(ValueError):
        split_url("127.0.0.1:5")


class FakeCall(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    # grpc.Call's other abstract methods, unused here.
    def initial_metadata(self) -> None: ...
    def trailing_metadata(self) -> None: ...
    def is_active(self) -> bool: return False
    def time_remaining(self) -> None: ...
    def cancel(self) -> bool: return False
    def add_callback(self, callback: object) -> bool: return False


def test_status_codes_map_to_failure_and_ongoing() -> None:
    assert isinstance(from_rpc_error(FakeCall(grpc.StatusCode.ABORTED, "no")), Failure)
    assert isinstance(from_rpc_error(FakeCall(grpc.StatusCode.FAILED_PRECONDITION, "")), Ongoing)
    other = from_rpc_error(FakeCall(grpc.StatusCode.NOT_FOUND, "gid"))
    assert type(other) is DtmError and other.code == grpc.StatusCode.NOT_FOUND


def test_branch_metadata_round_trips_through_context() -> None:
    options = TransOptions(branch_headers={"x-user": "u1"}, dtm_address="d:1")
    context = BranchContext.from_metadata(branch_metadata("g", "tcc", "01", "try", options), "/a.B/C")
    assert (context.gid, context.trans_type, context.branch_id, context.op, context.dtm) == (
        "g", "tcc", "01", "try", "d:1")
    assert context.headers["x-user"] == "u1"


class FakeDtm:
    """A Dtm stub answering PrepareWorkflow with `prepared` and recording every request."""

    def __init__(self, prepared: dtmgimp_pb2.DtmProgressesReply, refuse_register: bool = False) -> None:
        self.prepared = prepared
        self.refuse_register = refuse_register
        self.requests: list[tuple[str, Any]] = []

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(request: Any, timeout: float) -> Any:
            self.requests.append((method, request))
            if method == "PrepareWorkflow":
                return self.prepared
            if method == "RegisterBranch" and self.refuse_register:
                raise Failure("the workflow is not prepared")
            return None

        return call


def test_workflow_requests_and_replayed_progress() -> None:
    prepared = dtmgimp_pb2.DtmProgressesReply(
        Transaction=dtmgimp_pb2.DtmTransaction(Gid="w1", Status="prepared"),
        Progresses=[dtmgimp_pb2.DtmProgress(Status="succeed", BinData=b"recorded", BranchID="01", Op="action")],
    )
    fake = FakeDtm(prepared)
    client = WorkflowClient(fake, "h:1/workflow.Workflow/Execute", TransOptions(retry_interval=3))

    def declined() -> bytes:
        raise Failure("declined")

    def handler(wf: Workflow, data: bytes) -> bytes:
        assert wf.do(lambda: pytest.fail("a recorded step ran")) == b"recorded"
        with pytest.raises(Failure, match="declined"):
            wf.do(declined)
        return wf.do(lambda: data + b"!")

    assert client.execute("order", "w1", b"\x01in", handler) == b"\x01in!"
    methods = [method for method, _ in fake.requests]
    assert methods == ["PrepareWorkflow", "RegisterBranch", "RegisterBranch", "Submit"]
    prepare = fake.requests[0][1]
    assert (prepare.Gid, prepare.TransType, prepare.Steps) == ("w1", "workflow", "null")
    assert prepare.QueryPrepared == "h:1/workflow.Workflow/Execute"
    assert prepare.TransOptions.RetryInterval == 3
    assert json.loads(prepare.CustomedData) == {"name": "order", "data": base64.b64encode(b"\x01in").decode()}
    failed, succeeded = fake.requests[1][1], fake.requests[2][1]
    assert (failed.BranchID, dict(failed.Data), failed.BusiPayload) == (
        "02", {"op": "action", "status": "failed"}, b"declined")
    assert (succeeded.BranchID, dict(succeeded.Data), succeeded.BusiPayload) == (
        "03", {"op": "action", "status": "succeed"}, b"\x01in!")
    assert dict(fake.requests[3][1].ReqExtra) == {
        "status": "succeed", "rollback_reason": "", "result": base64.b64encode(b"\x01in!").decode()}


def test_workflow_register_refusal_is_not_the_steps_failure() -> None:
    prepared = dtmgimp_pb2.DtmProgressesReply(Transaction=dtmgimp_pb2.DtmTransaction(Gid="w2", Status="prepared"))
    client = WorkflowClient(FakeDtm(prepared, refuse_register=True), "h:1/workflow.Workflow/Execute")
    with pytest.raises(Ongoing, match="not prepared"):
        client.execute("order", "w2", b"", lambda wf, data: wf.do(lambda: b"x"))
