"""HTTP branch services for the dtmcli suite, the way DTM's Python samples
write them: plain HTTP handlers that answer {"dtm_result": "SUCCESS"} (200),
{"dtm_result": "FAILURE"} (409) or anything else (retried), several of them
guarded by the SDK's BranchBarrier against MariaDB."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymysql
from dtmcli import barrier, utils

SUCCESS = (200, {"dtm_result": "SUCCESS"})
FAILURE = (409, {"dtm_result": "FAILURE"})
ONGOING = (425, {"dtm_result": "ONGOING"})


class BranchServer:
    """Records every call (path, query, body); answers from per-(gid, path)
    scripts, else SUCCESS. Barrier routes move money in busi.user_account."""

    def __init__(self, db_params: dict):
        self.db_params = db_params
        self.lock = threading.Lock()
        self.calls: list[dict] = []
        self.scripts: dict[tuple[str, str], list] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/busi"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, gid: str, route: str, answers: list) -> None:
        """Answers for the next calls of `route` for `gid`, in order: each
        is (status, body) or a callable returning one, or "commit-then-500"
        for a barrier route (the work is committed, the answer is lost)."""
        with self.lock:
            self.scripts[(gid, route)] = list(answers)

    def calls_of(self, gid: str, route: str | None = None) -> list[dict]:
        with self.lock:
            return [c for c in self.calls
                    if c["query"].get("gid") == gid and (route is None or c["route"] == route)]

    def connect(self):
        return pymysql.connect(**self.db_params)

    def _next_answer(self, gid: str, route: str):
        with self.lock:
            queue = self.scripts.get((gid, route))
            return queue.pop(0) if queue else None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._serve()

            def do_POST(self):
                self._serve()

            def _serve(self):
                parsed = urllib.parse.urlparse(self.path)
                route = parsed.path.rsplit("/", 1)[-1]
                query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with server.lock:
                    server.calls.append({"route": route, "query": query, "body": body,
                                         "method": self.command})
                status, answer = server._answer(route, query, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _answer(self, route: str, query: dict, body):
        gid = query.get("gid", "")
        scripted = self._next_answer(gid, route)
        if route.startswith("Barrier"):
            return self._barrier(route, query, body, scripted)
        if route == "QueryPrepared":
            return self._query_prepared(query)
        if scripted is None:
            return SUCCESS
        return scripted() if callable(scripted) else scripted

    def _barrier(self, route: str, query: dict, body, scripted):
        """BarrierTransIn / BarrierTransInCompensate: the SDK's barrier
        around a balance change of busi.user_account."""
        bb = barrier.BranchBarrier(query["trans_type"], query["gid"],
                                   query["branch_id"], query["op"])
        amount = body["amount"] if route == "BarrierTransIn" else -body["amount"]
        user = body["user_id"]

        def busi_call(cursor):
            if route == "BarrierTransIn" and body.get("fail"):
                raise utils.DTMFailureError("FAILURE")
            cursor.execute(
                "update busi.user_account set balance = balance + %s where user_id = %s",
                (amount, user))

        conn = self.connect()
        try:
            bb.call(conn.cursor(), busi_call)
        except utils.DTMFailureError:
            return FAILURE
        finally:
            conn.close()
        if scripted == "commit-then-500":
            return 500, {"error": "answer lost after the commit"}
        return SUCCESS

    def _query_prepared(self, query: dict):
        bb = barrier.BranchBarrier(query["trans_type"], query["gid"],
                                   query["branch_id"], query["op"])
        conn = self.connect()
        try:
            bb.query_prepared(conn.cursor())
        except utils.DTMFailureError:
            return FAILURE
        finally:
            conn.close()
        return SUCCESS
