"""Unit tests: the requests the helpers build, URL and status mapping, branch metadata."""

from __future__ import annotations

import json

import grpc
import pytest

from dtmd_client import BranchContext, DtmClient, Failure, Ongoing, TransOptions, split_url
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
