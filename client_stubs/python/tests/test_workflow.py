"""Workflows against a real dtmd: success, failure, a finished workflow's stored
outcome, and a run left unfinished by an unknown error that dtmd resumes through
the workflow service without running the recorded step again."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
from conftest import wait_until

from dtmd_client import (
    BranchServer,
    DtmClient,
    DtmError,
    Failure,
    TransOptions,
    Workflow,
    WorkflowClient,
    WorkflowServicer,
)
from dtmd_client._proto import workflow_pb2, workflow_pb2_grpc
from dtmd_client._proto.dtmd.admin.v1 import admin_pb2, admin_pb2_grpc


class Resumable:
    """A server with a WorkflowServicer whose handlers each test registers."""

    def __init__(self, dtm: DtmClient) -> None:
        self.server = BranchServer()
        self.client = WorkflowClient(
            dtm, self.server.url("workflow.Workflow/Execute"), TransOptions(retry_interval=1)
        )
        self.servicer = WorkflowServicer(self.client)
        self.server.add_handler(self.servicer.as_handler())


@pytest.fixture(scope="module")
def resumable(dtm: DtmClient) -> Iterator[Resumable]:
    resumable = Resumable(dtm)
    with resumable.server:
        yield resumable


@pytest.fixture(scope="module")
def admin(dtmd_address: str) -> Iterator[admin_pb2_grpc.AdminStub]:
    with grpc.insecure_channel(dtmd_address) as channel:
        yield admin_pb2_grpc.AdminStub(channel)


def stored(admin: admin_pb2_grpc.AdminStub, gid: str) -> admin_pb2.GetTransactionReply:
    reply: admin_pb2.GetTransactionReply = admin.GetTransaction(admin_pb2.GetTransactionRequest(gid=gid), timeout=10)
    return reply


def must_not_run(wf: Workflow, data: bytes) -> bytes:
    raise AssertionError(f"workflow {wf.gid} ran again")


def test_workflow_succeeds_and_records_its_steps(
    dtm: DtmClient, resumable: Resumable, admin: admin_pb2_grpc.AdminStub
) -> None:
    gid = dtm.new_gid()

    def order(wf: Workflow, data: bytes) -> bytes:
        reserved = wf.do(lambda: b"reserved:" + data)
        return wf.do(lambda: reserved + b"|charged")

    assert resumable.client.execute("order", gid, b"o1", order) == b"reserved:o1|charged"
    reply = stored(admin, gid)
    assert (reply.transaction.trans_type, reply.transaction.status) == ("workflow", "succeed")
    assert [(branch.branch_id, branch.op, branch.status) for branch in reply.branches] == [
        ("01", "action", "succeed"), ("02", "action", "succeed")]


def test_finished_workflow_returns_its_stored_outcome(dtm: DtmClient, resumable: Resumable) -> None:
    done, refused = dtm.new_gid(), dtm.new_gid()
    assert resumable.client.execute("order", done, b"in", lambda wf, data: wf.do(lambda: b"\x00result")) == b"\x00result"
    assert resumable.client.execute("order", done, b"in", must_not_run) == b"\x00result"

    def refuse(wf: Workflow, data: bytes) -> bytes:
        raise Failure("out of stock")

    with pytest.raises(Failure, match="out of stock"):
        resumable.client.execute("order", refused, b"in", refuse)
    with pytest.raises(Failure, match="out of stock"):
        resumable.client.execute("order", refused, b"in", must_not_run)


def test_step_failure_fails_the_workflow(
    dtm: DtmClient, resumable: Resumable, admin: admin_pb2_grpc.AdminStub
) -> None:
    gid = dtm.new_gid()
    seen: list[str] = []

    def decline() -> bytes:
        raise Failure("card declined")

    def order(wf: Workflow, data: bytes) -> bytes:
        wf.do(lambda: b"reserved")
        try:
            wf.do(decline)
        except Failure as error:
            seen.append(error.message)
            raise
        raise AssertionError("the step's Failure was not raised")

    with pytest.raises(Failure, match="card declined"):
        resumable.client.execute("order", gid, b"o2", order)
    assert seen == ["card declined"]
    reply = stored(admin, gid)
    assert (reply.transaction.status, reply.transaction.rollback_reason) == ("failed", "card declined")
    assert [(branch.branch_id, branch.status) for branch in reply.branches] == [("01", "succeed"), ("02", "failed")]


def test_unknown_error_leaves_it_unfinished_and_dtmd_resumes_it(
    dtm: DtmClient, resumable: Resumable, admin: admin_pb2_grpc.AdminStub
) -> None:
    gid = dtm.new_gid()
    lock = threading.Lock()
    calls: dict[str, int] = {"reserve": 0, "charge": 0}
    inputs: list[bytes] = []

    def count(step: str) -> int:
        with lock:
            calls[step] += 1
            return calls[step]

    def charge(reserved: bytes) -> bytes:
        if count("charge") == 1:
            raise ConnectionError("payment service unreachable")
        return reserved + b"|charged"

    def order(wf: Workflow, data: bytes) -> bytes:
        inputs.append(data)
        reserved = wf.do(lambda: (count("reserve"), b"reserved:" + data)[1])
        return wf.do(lambda: charge(reserved))

    resumable.servicer.register("resumed-order", order)
    with pytest.raises(ConnectionError):
        resumable.client.execute("resumed-order", gid, b"o3", order)
    assert stored(admin, gid).transaction.status == "prepared"

    assert wait_until(lambda: stored(admin, gid).transaction.status == "succeed")
    assert calls == {"reserve": 1, "charge": 2}
    assert inputs == [b"o3", b"o3"]  # the resumed run got the input back from dtmd
    assert resumable.client.execute("resumed-order", gid, b"o3", must_not_run) == b"reserved:o3|charged"


def test_service_answers_not_found_for_an_unregistered_workflow(resumable: Resumable) -> None:
    with grpc.insecure_channel(resumable.server.address) as channel:
        stub = workflow_pb2_grpc.WorkflowStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Execute(workflow_pb2.WorkflowData(Data=b""), metadata=[("dtm-op", "nope"), ("dtm-gid", "g")], timeout=10)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_do_refuses_a_hundredth_step(dtm: DtmClient, resumable: Resumable) -> None:
    refusals: list[str] = []

    def too_long(wf: Workflow, data: bytes) -> bytes:
        try:
            for _ in range(100):
                wf.do(lambda: b"")
        except DtmError as error:
            refusals.append(error.message)
            raise Failure("too long") from error  # ends it, so dtmd does not resume it
        return b""

    with pytest.raises(Failure, match="too long"):
        resumable.client.execute("long", dtm.new_gid(), b"", too_long)
    assert len(refusals) == 1 and "more than 99 steps" in refusals[0]
