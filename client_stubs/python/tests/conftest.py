"""Fixtures: a real dtmd, a scripted branch server, a throwaway PostgreSQL.

dtmd is $DTMD_BIN, else build/server/dtmd of the repository.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from dtmd_client import BranchContext, BranchServer, DtmClient, Failure, Ongoing
from dtmd_client.testing import start_dtmd

REPO = pathlib.Path(__file__).resolve().parents[3]


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def dtmd_address() -> Iterator[str]:
    binary = os.environ.get("DTMD_BIN") or str(REPO / "build/server/dtmd")
    if not os.path.exists(binary):
        pytest.fail(f"dtmd not built: {binary} (run make build, or set DTMD_BIN)")
    with start_dtmd(binary) as address:
        yield address


@pytest.fixture(scope="session")
def dtm(dtmd_address: str) -> Iterator[DtmClient]:
    with DtmClient(dtmd_address) as client:
        yield client


@dataclasses.dataclass
class Call:
    method: str
    payload: bytes
    context: BranchContext


class Busi:
    """A branch service recording every call; answers are scripted per method.

    script[method] is a list of answers consumed one per call ("ok", "fail",
    "ongoing", "error"); when empty the answer is "ok".
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.script: dict[str, list[str]] = {}

    def handler(self, method: str) -> Callable[[bytes, BranchContext], bytes]:
        def handle(payload: bytes, context: BranchContext) -> bytes:
            with self.lock:
                self.calls.append(Call(method, payload, context))
                answers = self.script.get(method) or []
                answer = answers.pop(0) if answers else "ok"
            if answer == "fail":
                raise Failure(f"{method} refused")
            if answer == "ongoing":
                raise Ongoing()
            if answer == "error":
                raise RuntimeError(f"{method} broke")
            return b"reply:" + payload

        return handle

    def calls_of(self, gid: str) -> list[Call]:
        with self.lock:
            return [call for call in self.calls if call.context.gid == gid]

    def methods_of(self, gid: str) -> list[str]:
        return [call.method for call in self.calls_of(gid)]


METHODS = [
    "TransOut", "TransOutRevert", "TransIn", "TransInRevert",
    "TryPay", "ConfirmPay", "CancelPay", "Notify", "QueryPrepared",
]


@pytest.fixture(scope="session")
def busi_server() -> Iterator[tuple[BranchServer, Busi]]:
    busi = Busi()
    server = BranchServer()
    server.add_service("busi.Busi", {method: busi.handler(method) for method in METHODS})
    with server:
        yield server, busi


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="dtmd-py-pg-") as tmp:
        os.chmod(tmp, 0o755)
        script = str(REPO / "scripts/postgres.sh")
        dsn = subprocess.run(
            [script, "start", f"{tmp}/pg", str(free_port())], check=True, capture_output=True, text=True
        ).stdout.strip()
        try:
            yield dsn
        finally:
            subprocess.run([script, "stop", f"{tmp}/pg"], check=False)
