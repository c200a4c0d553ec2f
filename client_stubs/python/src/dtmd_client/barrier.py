"""The sub-transaction barrier: exactly-once branch effects on SQLite and PostgreSQL.

A branch handler runs its local work inside BranchBarrier.call, in one local
transaction with an insert into the barrier table, keyed by (gid, branch_id,
op, barrier_id). The rules, as DTM's barrier:

  * idempotency: a repeated call of the same op finds its row and does nothing;
  * null compensation: a compensate/cancel/rollback whose action never ran
    inserts the action's row first (so a late action is skipped) and does
    nothing itself;
  * hanging prevention: an action arriving after its compensation finds its
    row already inserted by the compensation and does nothing.

Table layout: DTM's dtm_barrier.barrier (sqls/dtmcli.barrier.*.sql in DTM),
so a service moving from DTM keeps its table and both can share a database.
On PostgreSQL the table is dtm_barrier.barrier (schema dtm_barrier). SQLite
has no schemas; the default table there is dtm_barrier_barrier in the main
database, which keeps the local work and the barrier row in one database file
and so in one atomic transaction. A database attached as dtm_barrier
(ATTACH 'barrier.db' AS dtm_barrier) also works with table="dtm_barrier.barrier",
but SQLite commits across attached files atomically only in rollback-journal
mode, not in WAL mode.

Connections are DB-API ones: sqlite3.Connection, or psycopg (v3) / psycopg2
with autocommit off. The barrier commits on success and rolls back when the
business function raises.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from dtmd_client.branch import BranchContext
from dtmd_client.errors import Duplicated, Failure

T = TypeVar("T")

SQLITE = "sqlite"
POSTGRES = "postgres"
DEFAULT_TABLES = {SQLITE: "dtm_barrier_barrier", POSTGRES: "dtm_barrier.barrier"}

# The op whose row a compensation inserts first (null compensation, hanging prevention).
_ORIGIN_OP = {"cancel": "try", "compensate": "action", "rollback": "action"}
_MSG_OP = "msg"
_MSG_BRANCH = "00"
_MSG_BARRIER = "01"
_ROLLBACK_REASON = "rollback"


def db_type_of(conn: Any) -> str:
    """SQLITE or POSTGRES, from the connection's driver module."""
    module = type(conn).__module__
    if module.startswith("sqlite3"):
        return SQLITE
    if module.startswith(("psycopg", "psycopg2")):
        return POSTGRES
    raise ValueError(f"unsupported connection type {type(conn)!r}: pass db_type")


def barrier_table_ddl(db_type: str, table: str | None = None) -> list[str]:
    """The statements creating the barrier table (DTM's layout) if it does not exist."""
    table = table or DEFAULT_TABLES[db_type]
    columns = """
      trans_type varchar(45) default '',
      gid varchar(128) default '',
      branch_id varchar(128) default '',
      op varchar(45) default '',
      barrier_id varchar(45) default '',
      reason varchar(45) default '',"""
    if db_type == SQLITE:
        return [
            f"""create table if not exists {table}(
      id integer primary key autoincrement,{columns}
      create_time datetime default null,
      update_time datetime default null,
      constraint uniq_barrier unique(gid, branch_id, op, barrier_id))"""
        ]
    if db_type == POSTGRES:
        schema = table.split(".")[0] if "." in table else None
        statements = [f"create schema if not exists {schema}"] if schema else []
        return statements + [
            f"create sequence if not exists {table}_seq",
            f"""create table if not exists {table}(
      id bigint not null default nextval('{table}_seq'),{columns}
      create_time timestamp(0) with time zone default null,
      update_time timestamp(0) with time zone default null,
      primary key(id),
      constraint uniq_barrier unique(gid, branch_id, op, barrier_id))""",
        ]
    raise ValueError(f"unknown db_type {db_type!r}")


def create_barrier_table(conn: Any, db_type: str | None = None, table: str | None = None) -> None:
    """Creates the barrier table if missing, and commits."""
    kind = db_type or db_type_of(conn)
    cursor = conn.cursor()
    for statement in barrier_table_ddl(kind, table):
        cursor.execute(statement)
    conn.commit()


class BranchBarrier:
    """The barrier of one branch call (trans_type, gid, branch_id, op); not thread-safe.

    Each call() in one handler invocation takes the next barrier id ("01",
    "02", ...), so a handler may guard several local transactions.
    """

    def __init__(
        self,
        trans_type: str,
        gid: str,
        branch_id: str,
        op: str,
        db_type: str | None = None,
        table: str | None = None,
    ) -> None:
        if not (trans_type and gid and branch_id and op):
            raise ValueError(f"invalid branch: {trans_type!r} {gid!r} {branch_id!r} {op!r}")
        self.trans_type = trans_type
        self.gid = gid
        self.branch_id = branch_id
        self.op = op
        self.db_type = db_type
        self.table = table
        self._barrier_id = 0

    @classmethod
    def from_context(cls, context: BranchContext, db_type: str | None = None, table: str | None = None) -> BranchBarrier:
        """The barrier of the branch call that context describes (its dtm-* metadata)."""
        return cls(context.trans_type, context.gid, context.branch_id, context.op, db_type, table)

    def call(self, conn: Any, busi: Callable[[Any], T]) -> T | None:
        """Runs busi(conn) at most once for this branch, in one local transaction with the barrier.

        Returns busi's result, or None when busi was skipped (a repeat, a null
        compensation, or an action after its compensation). Commits on
        success; rolls back and re-raises when busi raises. For op "msg" (a
        msg's local transaction, see query_prepared) a repeat raises
        Duplicated.
        """
        kind, table = self._kind_and_table(conn)
        self._barrier_id += 1
        barrier_id = f"{self._barrier_id:02d}"
        try:
            if kind == SQLITE and not conn.in_transaction:
                conn.execute("begin immediate")
            origin_op = _ORIGIN_OP.get(self.op, "")
            origin_inserted = origin_op != "" and self._insert(conn, kind, table, origin_op, barrier_id, self.op)
            current_inserted = self._insert(conn, kind, table, self.op, barrier_id, self.op)
            if self.op == _MSG_OP and not current_inserted:
                raise Duplicated()
            if (origin_op and origin_inserted) or not current_inserted:
                conn.commit()
                return None
            result = busi(conn)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return result

    def query_prepared(self, conn: Any) -> None:
        """The QueryPrepared answer of a msg whose local transaction ran through call() with op "msg".

        Returns when the local transaction committed; raises Failure when it
        did not (and makes sure it never will: a late one raises Duplicated).
        """
        kind, table = self._kind_and_table(conn)
        try:
            self._insert(conn, kind, table, _MSG_OP, _MSG_BARRIER, _ROLLBACK_REASON, branch_id=_MSG_BRANCH)
            cursor = conn.cursor()
            mark = "?" if kind == SQLITE else "%s"
            cursor.execute(
                f"select reason from {table} where gid={mark} and branch_id={mark} and op={mark} and barrier_id={mark}",
                (self.gid, _MSG_BRANCH, _MSG_OP, _MSG_BARRIER),
            )
            row = cursor.fetchone()
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        if row is not None and row[0] == _ROLLBACK_REASON:
            raise Failure("the local transaction did not commit")

    def _kind_and_table(self, conn: Any) -> tuple[str, str]:
        kind = self.db_type or db_type_of(conn)
        if kind == POSTGRES and getattr(conn, "autocommit", False):
            raise ValueError("the barrier needs a connection with autocommit off")
        return kind, self.table or DEFAULT_TABLES[kind]

    def _insert(
        self, conn: Any, kind: str, table: str, op: str, barrier_id: str, reason: str, branch_id: str | None = None
    ) -> bool:
        values = (self.trans_type, self.gid, branch_id or self.branch_id, op, barrier_id, reason)
        columns = "(trans_type, gid, branch_id, op, barrier_id, reason)"
        if kind == SQLITE:
            sql = f"insert or ignore into {table}{columns} values(?,?,?,?,?,?)"
        else:
            sql = f"insert into {table}{columns} values(%s,%s,%s,%s,%s,%s) on conflict on constraint uniq_barrier do nothing"
        cursor = conn.cursor()
        cursor.execute(sql, values)
        return bool(cursor.rowcount and cursor.rowcount > 0)
