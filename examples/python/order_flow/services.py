"""The order flow's three services: order, stock and payment.

Each is a gRPC service served with dtmd_client's BranchServer, keeps its data
in its own SQLite database, and runs every branch inside the sub-transaction
barrier, so a repeated or late call from dtmd changes nothing twice. Payloads
are JSON: {"order_id", "user", "item", "quantity", "amount"}.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
from typing import Any, Callable

from dtmd_client import BranchBarrier, BranchContext, BranchServer, Failure, create_barrier_table

Handler = Callable[[bytes, BranchContext], bytes]


class Service:
    """A branch service with a SQLite database and a barrier around each handler."""

    name = ""

    def __init__(self, db_path: pathlib.Path, schema: list[str]) -> None:
        self.db_path = db_path
        conn = self.connect()
        create_barrier_table(conn)
        for statement in schema:
            conn.execute(statement)
        conn.commit()
        conn.close()
        self.server = BranchServer()

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_path, timeout=10)

    def guarded(self, work: Callable[[sqlite3.Connection, dict[str, Any]], None]) -> Handler:
        """A handler running work(conn, order) once per branch call, inside the barrier."""

        def handle(payload: bytes, context: BranchContext) -> bytes:
            order = json.loads(payload)
            conn = self.connect()
            try:
                BranchBarrier.from_context(context).call(conn, lambda c: work(c, order))
            finally:
                conn.close()
            return b""

        return handle

    def say(self, text: str) -> None:
        print(f"  [{self.name}] {text}", flush=True)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            return list(conn.execute(sql).fetchall())
        finally:
            conn.close()


class OrderService(Service):
    name = "order"

    def __init__(self, data_dir: pathlib.Path) -> None:
        super().__init__(data_dir / "order.db", [
            "create table if not exists orders(id text primary key, user text, item text,"
            " quantity integer, amount integer, status text)"])
        self.server.add_service("order.Order", {
            "Create": self.guarded(self.create),
            "Cancel": self.guarded(self.cancel),
        })

    def create(self, conn: sqlite3.Connection, order: dict[str, Any]) -> None:
        conn.execute("insert into orders values(?, ?, ?, ?, ?, 'created')",
                     (order["order_id"], order["user"], order["item"], order["quantity"], order["amount"]))
        self.say(f"order {order['order_id']} created for {order['user']}")

    def cancel(self, conn: sqlite3.Connection, order: dict[str, Any]) -> None:
        conn.execute("update orders set status = 'cancelled' where id = ?", (order["order_id"],))
        self.say(f"order {order['order_id']} cancelled")

    def status(self, order_id: str) -> str:
        rows = self.query(f"select status from orders where id = '{order_id}'")
        return str(rows[0][0]) if rows else "absent"


class StockService(Service):
    name = "stock"

    def __init__(self, data_dir: pathlib.Path, stock: dict[str, int]) -> None:
        super().__init__(data_dir / "stock.db", [
            "create table if not exists stock(item text primary key, available integer not null)"])
        conn = self.connect()
        conn.executemany("insert or replace into stock values(?, ?)", stock.items())
        conn.commit()
        conn.close()
        self.server.add_service("stock.Stock", {
            "Reserve": self.guarded(self.reserve),
            "Release": self.guarded(self.release),
        })

    def reserve(self, conn: sqlite3.Connection, order: dict[str, Any]) -> None:
        updated = conn.execute("update stock set available = available - ? where item = ? and available >= ?",
                               (order["quantity"], order["item"], order["quantity"])).rowcount
        if not updated:
            self.say(f"not enough {order['item']} for order {order['order_id']}")
            raise Failure(f"out of stock: {order['item']}")
        self.say(f"reserved {order['quantity']} x {order['item']} for order {order['order_id']}")

    def release(self, conn: sqlite3.Connection, order: dict[str, Any]) -> None:
        conn.execute("update stock set available = available + ? where item = ?", (order["quantity"], order["item"]))
        self.say(f"released {order['quantity']} x {order['item']} of order {order['order_id']}")

    def available(self, item: str) -> int:
        return int(self.query(f"select available from stock where item = '{item}'")[0][0])


class PaymentService(Service):
    name = "payment"

    def __init__(self, data_dir: pathlib.Path, wallets: dict[str, int]) -> None:
        super().__init__(data_dir / "payment.db", [
            "create table if not exists wallet(user text primary key, balance integer not null)"])
        conn = self.connect()
        conn.executemany("insert or replace into wallet values(?, ?)", wallets.items())
        conn.commit()
        conn.close()
        self.server.add_service("payment.Payment", {
            "Charge": self.guarded(self.charge),
            "Refund": self.guarded(self.refund),
        })

    def charge(self, conn: sqlite3.Connection, order: dict[str, Any]) -> None:
        updated = conn.execute("update wallet set balance = balance - ? where user = ? and balance >= ?",
                               (order["amount"], order["user"], order["amount"])).rowcount
        if not updated:
            self.say(f"refused to charge {order['amount']} to {order['user']}: insufficient funds")
            raise Failure(f"payment refused: {order['user']} cannot pay {order['amount']}")
        self.say(f"charged {order['amount']} to {order['user']}")

    def refund(self, conn: sqlite3.Connection, order: dict[str, Any]) -> None:
        conn.execute("update wallet set balance = balance + ? where user = ?", (order["amount"], order["user"]))
        self.say(f"refunded {order['amount']} to {order['user']}")

    def balance(self, user: str) -> int:
        return int(self.query(f"select balance from wallet where user = '{user}'")[0][0])
