"""The barrier keeps a saga exactly-once under repeated and reordered branch calls,
on SQLite and on PostgreSQL, with dtmd calling real branch handlers."""

from __future__ import annotations

import pathlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import wait_until

from dtmd_client import (
    BranchBarrier,
    BranchContext,
    BranchServer,
    DtmClient,
    Duplicated,
    Failure,
    TransOptions,
    create_barrier_table,
)
from dtmd_client.client import branch_metadata

Connect = Callable[[], Any]


@pytest.fixture(params=["sqlite", "postgres"])
def connect(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Connect]:
    if request.param == "sqlite":
        path = tmp_path / "busi.db"

        def connect_sqlite() -> Any:
            return sqlite3.connect(path, timeout=10)

        factory: Connect = connect_sqlite
        mark = "?"
    else:
        import psycopg

        dsn = request.getfixturevalue("postgres_dsn")

        def connect_postgres() -> Any:
            return psycopg.connect(dsn)

        factory = connect_postgres
        mark = "%s"
    conn = factory()
    create_barrier_table(conn)
    cursor = conn.cursor()
    cursor.execute("drop table if exists account")
    cursor.execute("create table account(id varchar(16) primary key, balance integer not null)")
    cursor.execute(f"insert into account values({mark}, 100), ({mark}, 0)", ("alice", "bob"))
    conn.commit()
    conn.close()
    factory.mark = mark  # type: ignore[attr-defined]
    yield factory


def balances(connect: Connect) -> dict[str, int]:
    conn = connect()
    try:
        cursor = conn.cursor()
        cursor.execute("select id, balance from account order by id")
        return {str(name): int(balance) for name, balance in cursor.fetchall()}
    finally:
        conn.close()


class Bank:
    """TransOut/TransIn with their compensations, each guarded by the barrier.

    lose_reply[method] > 0: the next such calls commit, then answer an
    unknown error (a lost reply), so dtmd calls them again. refuse_in: TransIn
    refuses (inside the barrier, so nothing commits) and the saga compensates.
    """

    def __init__(self, connect: Connect) -> None:
        self.connect = connect
        self.lock = threading.Lock()
        self.lose_reply: dict[str, int] = {}
        self.refuse_in = False
        self.calls: list[tuple[str, str]] = []

    def move(self, method: str, account: str, delta: int) -> Callable[[bytes, BranchContext], bytes]:
        def handle(payload: bytes, context: BranchContext) -> bytes:
            with self.lock:
                self.calls.append((method, context.gid))
                lose = self.lose_reply.get(method, 0)
                if lose:
                    self.lose_reply[method] = lose - 1
            amount = int(payload)
            mark = self.connect.mark  # type: ignore[attr-defined]

            def busi(conn: Any) -> None:
                if method == "TransIn" and self.refuse_in:
                    raise Failure("bob's account is frozen")
                conn.cursor().execute(
                    f"update account set balance = balance + {mark} where id = {mark}", (delta * amount, account))

            conn = self.connect()
            try:
                BranchBarrier.from_context(context).call(conn, busi)
            finally:
                conn.close()
            if lose:
                raise RuntimeError("reply lost")
            return b""

        return handle


@pytest.fixture
def bank(connect: Connect) -> Iterator[tuple[Bank, BranchServer]]:
    bank = Bank(connect)
    server = BranchServer()
    server.add_service("bank.Bank", {
        "TransOut": bank.move("TransOut", "alice", -1),
        "TransOutRevert": bank.move("TransOutRevert", "alice", +1),
        "TransIn": bank.move("TransIn", "bob", +1),
        "TransInRevert": bank.move("TransInRevert", "bob", -1),
    })
    with server:
        yield bank, server


def transfer(dtm: DtmClient, server: BranchServer, amount: int) -> Any:
    saga = dtm.saga(dtm.new_gid(), TransOptions(wait_result=True, request_timeout=5))
    saga.add(server.url("bank.Bank/TransOut"), server.url("bank.Bank/TransOutRevert"), str(amount))
    saga.add(server.url("bank.Bank/TransIn"), server.url("bank.Bank/TransInRevert"), str(amount))
    return saga


def replay(dtm: DtmClient, server: BranchServer, gid: str, method: str, branch_id: str, op: str) -> None:
    """Calls a branch again as dtmd would (a duplicate or late delivery)."""
    metadata = branch_metadata(gid, "saga", branch_id, op, TransOptions())
    dtm.branches.call(server.url(f"bank.Bank/{method}"), b"30", metadata, 5.0)


def test_repeated_calls_apply_once(dtm: DtmClient, bank: tuple[Bank, BranchServer], connect: Connect) -> None:
    busi, server = bank
    busi.lose_reply = {"TransOut": 1, "TransIn": 2}
    saga = transfer(dtm, server, 30)
    saga.options.wait_result = False
    saga.submit()
    # dtmd retries the calls whose reply was lost; the barrier skips the repeats.
    assert wait_until(lambda: [m for m, g in busi.calls if g == saga.gid].count("TransIn") >= 3, 30)
    replay(dtm, server, saga.gid, "TransOut", "01", "action")
    replay(dtm, server, saga.gid, "TransIn", "02", "action")
    assert balances(connect) == {"alice": 70, "bob": 30}


def test_null_compensation_and_hanging_prevention(
    dtm: DtmClient, bank: tuple[Bank, BranchServer], connect: Connect
) -> None:
    busi, server = bank
    busi.refuse_in = True
    saga = transfer(dtm, server, 30)
    with pytest.raises(Failure, match="frozen"):
        saga.submit()
    gid = saga.gid
    assert wait_until(lambda: [m for m, g in busi.calls if g == gid][-1:] == ["TransOutRevert"])
    # TransIn never committed, so its compensation was a null one: bob unchanged.
    assert balances(connect) == {"alice": 100, "bob": 0}
    # A late TransIn (after its compensation) and repeated compensations do nothing.
    busi.refuse_in = False
    replay(dtm, server, gid, "TransIn", "02", "action")
    replay(dtm, server, gid, "TransInRevert", "02", "compensate")
    replay(dtm, server, gid, "TransOutRevert", "01", "compensate")
    replay(dtm, server, gid, "TransOut", "01", "action")
    assert balances(connect) == {"alice": 100, "bob": 0}


def test_compensation_before_action_blocks_the_action(connect: Connect) -> None:
    applied: list[str] = []
    conn = connect()
    try:
        BranchBarrier("saga", "g-reorder", "01", "compensate").call(conn, lambda c: applied.append("compensate"))
        BranchBarrier("saga", "g-reorder", "01", "action").call(conn, lambda c: applied.append("action"))
        BranchBarrier("saga", "g-reorder", "01", "compensate").call(conn, lambda c: applied.append("compensate"))
    finally:
        conn.close()
    assert applied == []


def test_failed_business_rolls_back_and_may_run_again(connect: Connect) -> None:
    conn = connect()
    try:
        def refuse(c: Any) -> None:
            raise Failure("not yet")

        with pytest.raises(Failure):
            BranchBarrier("saga", "g-retry", "01", "action").call(conn, refuse)
        assert BranchBarrier("saga", "g-retry", "01", "action").call(conn, lambda c: "ran") == "ran"
    finally:
        conn.close()


def test_msg_query_prepared(connect: Connect) -> None:
    conn = connect()
    try:
        committed = BranchBarrier("msg", "g-msg-1", "00", "msg")
        assert committed.call(conn, lambda c: "local work") == "local work"
        committed.query_prepared(conn)  # committed: no error
        with pytest.raises(Duplicated):
            BranchBarrier("msg", "g-msg-1", "00", "msg").call(conn, lambda c: None)
        # Never committed: QueryPrepared says failed and blocks a late local transaction.
        with pytest.raises(Failure):
            BranchBarrier("msg", "g-msg-2", "00", "msg").query_prepared(conn)
        with pytest.raises(Duplicated):
            BranchBarrier("msg", "g-msg-2", "00", "msg").call(conn, lambda c: None)
    finally:
        conn.close()
