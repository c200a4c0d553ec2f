"""Saga, TCC and msg against a real dtmd, with real branch servers."""

from __future__ import annotations

import asyncio
import threading

import grpc
import grpc.aio
import pytest
from conftest import Busi, wait_until

from dtmd_client import (
    BranchContext,
    BranchServer,
    DtmClient,
    DtmError,
    Failure,
    TransOptions,
    aio_branch_service,
    delete_topic,
    subscribe,
    tcc_global_transaction,
    unsubscribe,
)

Server = tuple[BranchServer, Busi]


def test_new_gid_is_unique(dtm: DtmClient) -> None:
    assert dtm.new_gid() != dtm.new_gid()


def test_saga_success_runs_actions_in_order(dtm: DtmClient, busi_server: Server) -> None:
    server, busi = busi_server
    gid = dtm.new_gid()
    saga = dtm.saga(gid).set_wait_result(True)
    saga.add(server.url("busi.Busi/TransOut"), server.url("busi.Busi/TransOutRevert"), b"out")
    saga.add(server.url("busi.Busi/TransIn"), server.url("busi.Busi/TransInRevert"), b"in")
    saga.submit()
    assert busi.methods_of(gid) == ["TransOut", "TransIn"]
    first, second = busi.calls_of(gid)
    assert (first.payload, first.context.op, first.context.branch_id, first.context.trans_type) == (
        b"out", "action", "01", "saga")
    assert (second.payload, second.context.branch_id) == (b"in", "02")


def test_saga_failure_compensates_in_reverse_order(dtm: DtmClient, busi_server: Server) -> None:
    server, busi = busi_server
    gid = dtm.new_gid()
    busi.script["TransIn"] = ["fail"]
    saga = dtm.saga(gid).set_wait_result(True)
    saga.add(server.url("busi.Busi/TransOut"), server.url("busi.Busi/TransOutRevert"), b"out")
    saga.add(server.url("busi.Busi/TransIn"), server.url("busi.Busi/TransInRevert"), b"in")
    with pytest.raises(Failure, match="TransIn refused"):
        saga.submit()
    assert wait_until(lambda: len(busi.methods_of(gid)) >= 4)
    assert busi.methods_of(gid) == ["TransOut", "TransIn", "TransInRevert", "TransOutRevert"]
    assert all(call.context.op == "compensate" for call in busi.calls_of(gid)[2:])


def test_saga_unknown_result_is_retried(dtm: DtmClient, busi_server: Server) -> None:
    server, busi = busi_server
    gid = dtm.new_gid()
    busi.script["TransOut"] = ["error"]
    saga = dtm.saga(gid).add(server.url("busi.Busi/TransOut"), server.url("busi.Busi/TransOutRevert"), b"x")
    saga.submit()
    assert wait_until(lambda: busi.methods_of(gid) == ["TransOut", "TransOut"])


def test_branch_headers_arrive_at_the_branch(dtm: DtmClient, busi_server: Server) -> None:
    server, busi = busi_server
    gid = dtm.new_gid()
    saga = dtm.saga(gid, TransOptions(wait_result=True, branch_headers={"x-request-id": "r-42"}))
    saga.add(server.url("busi.Busi/TransOut"), "", b"x").submit()
    (call,) = busi.calls_of(gid)
    assert call.context.headers["x-request-id"] == "r-42"
    assert "dtm-dtm" in call.context.headers  # dtmd's address; may be empty


def test_tcc_success_confirms_every_branch(dtm: DtmClient, busi_server: Server) -> None:
    server, busi = busi_server
    gid = dtm.new_gid()
    url = server.url

    def body(tcc):  # type: ignore[no-untyped-def]
        first = tcc.call_branch(b"a", url("busi.Busi/TryPay"), url("busi.Busi/ConfirmPay"), url("busi.Busi/CancelPay"))
        tcc.call_branch(b"b", url("busi.Busi/TryPay"), url("busi.Busi/ConfirmPay"), url("busi.Busi/CancelPay"))
        return first

    options = TransOptions(wait_result=True, branch_headers={"x-tenant": "t1"})
    assert tcc_global_transaction(dtm, gid, body, options) == b"reply:a"
    assert wait_until(lambda: len(busi.methods_of(gid)) >= 4)
    calls = busi.calls_of(gid)
    assert [(c.method, c.context.branch_id) for c in calls] == [
        ("TryPay", "01"), ("TryPay", "02"), ("ConfirmPay", "02"), ("ConfirmPay", "01")]
    assert all(c.context.headers.get("x-tenant") == "t1" for c in calls)
    assert calls[0].context.op == "try" and calls[2].context.op == "confirm"


def test_tcc_try_failure_cancels_registered_branches(dtm: DtmClient, busi_server: Server) -> None:
    server, busi = busi_server
    gid = dtm.new_gid()
    busi.script["TryPay"] = ["ok", "fail"]
    url = server.url

    def body(tcc):  # type: ignore[no-untyped-def]
        for payload in (b"a", b"b"):
            tcc.call_branch(payload, url("busi.Busi/TryPay"), url("busi.Busi/ConfirmPay"), url("busi.Busi/CancelPay"))

    with pytest.raises(Failure, match="TryPay refused"):
        tcc_global_transaction(dtm, gid, body)
    # Both were registered (before their Try), so both are cancelled, in reverse.
    assert wait_until(lambda: len(busi.methods_of(gid)) >= 4)
    assert [(c.method, c.context.branch_id) for c in busi.calls_of(gid)] == [
        ("TryPay", "01"), ("TryPay", "02"), ("CancelPay", "02"), ("CancelPay", "01")]


def test_msg_delivers_actions_and_topics(dtm: DtmClient, busi_server: Server) -> None:
    server, busi = busi_server
    topic = "paid-" + dtm.new_gid()
    subscribe(dtm, topic, server.url("busi.Busi/Notify"), "notify")
    with pytest.raises(DtmError) as exists:
        subscribe(dtm, topic, server.url("busi.Busi/Notify"), "again")
    assert exists.value.code == grpc.StatusCode.ALREADY_EXISTS
    gid = dtm.new_gid()
    committed: list[str] = []
    msg = dtm.msg(gid).add(server.url("busi.Busi/TransIn"), b"points").add_topic(topic, b"event")
    msg.do_and_submit(server.url("busi.Busi/QueryPrepared"), lambda: committed.append(gid))
    assert committed == [gid]
    assert wait_until(lambda: len(busi.methods_of(gid)) >= 2)
    calls = busi.calls_of(gid)
    assert [(c.method, c.payload, c.context.op) for c in calls] == [
        ("TransIn", b"points", "action"), ("Notify", b"event", "action")]
    unsubscribe(dtm, topic, server.url("busi.Busi/Notify"))
    with pytest.raises(DtmError) as missing:
        delete_topic(dtm, "no-such-topic-" + gid)
    assert missing.value.code == grpc.StatusCode.NOT_FOUND


def test_msg_refused_local_transaction_aborts(dtm: DtmClient, busi_server: Server) -> None:
    server, busi = busi_server
    gid = dtm.new_gid()

    def refuse() -> None:
        raise Failure("out of stock")

    msg = dtm.msg(gid).add(server.url("busi.Busi/TransIn"), b"x")
    with pytest.raises(Failure, match="out of stock"):
        msg.do_and_submit(server.url("busi.Busi/QueryPrepared"), refuse)
    with pytest.raises(Failure):  # aborted: it can no longer be submitted
        msg.submit()
    assert busi.methods_of(gid) == []


def test_msg_unknown_local_outcome_asks_query_prepared(dtm: DtmClient, busi_server: Server) -> None:
    server, busi = busi_server
    gid = dtm.new_gid()

    def commit_then_lose_answer() -> None:
        raise TimeoutError("commit answer lost")

    msg = dtm.msg(gid).add(server.url("busi.Busi/TransIn"), b"x")
    with pytest.raises(TimeoutError):
        msg.do_and_submit(server.url("busi.Busi/QueryPrepared"), commit_then_lose_answer)
    # QueryPrepared answered OK, so the msg was submitted and its action runs.
    assert wait_until(lambda: "TransIn" in busi.methods_of(gid))
    assert busi.calls_of(gid)[0].context.op == "msg"


def test_aio_branch_service_serves_a_saga(dtm: DtmClient) -> None:
    seen: list[tuple[str, bytes, str]] = []
    ready = threading.Event()
    state: dict[str, object] = {}

    async def action(payload: bytes, context: BranchContext) -> bytes:
        seen.append((context.op, payload, context.headers.get("x-k", "")))
        return b""

    async def refuse(payload: bytes, context: BranchContext) -> bytes:
        raise Failure("no")

    async def serve() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            [aio_branch_service("aio.Busi", {"Do": action, "Undo": action, "Refuse": refuse})])
        state["port"] = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        stop = asyncio.Event()
        state["stop"] = (asyncio.get_running_loop(), stop)
        ready.set()
        await stop.wait()
        await server.stop(None)

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    try:
        assert ready.wait(10)
        base = f"127.0.0.1:{state['port']}/aio.Busi"
        saga = dtm.saga(dtm.new_gid(), TransOptions(wait_result=True, branch_headers={"x-k": "v"}))
        saga.add(f"{base}/Do", f"{base}/Undo", b"p").add(f"{base}/Refuse", "", b"q")
        with pytest.raises(Failure):
            saga.submit()
        assert wait_until(lambda: len(seen) >= 2)
        assert seen == [("action", b"p", "v"), ("compensate", b"p", "v")]
    finally:
        loop, stop = state["stop"]  # type: ignore[misc]
        loop.call_soon_threadsafe(stop.set)
        thread.join()
