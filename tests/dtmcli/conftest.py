"""DTM's own Python SDK (dtmcli, from PyPI, unmodified) against a real dtmd.

Fixtures: a dtmd serving DTM's HTTP API, a throwaway MariaDB (the SDK's
barrier SQL is MySQL's) with DTM's barrier table, and the Python HTTP branch
services of branches.py. Set by mk/dtmcli.mk: DTMD_BIN, and MARIADB
(host:port of the server scripts/mariadb.sh started).
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import tempfile
import time

import pymysql
import pytest

import branches


@pytest.fixture(scope="session")
def dtm() -> str:
    """dtmd with its HTTP API on a port the OS picks; yields DTM's base URL
    as the SDK takes it (http://host:port/api/dtmsvr)."""
    binary = os.environ["DTMD_BIN"]
    with tempfile.TemporaryDirectory(prefix="dtmd-dtmcli-") as tmp:
        grpc_port_file = pathlib.Path(tmp, "grpc.port")
        http_port_file = pathlib.Path(tmp, "http.port")
        log_path = pathlib.Path(tmp, "dtmd.log")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    "--listen_address=127.0.0.1",
                    "--grpc_port=0",
                    f"--port_file={grpc_port_file}",
                    "--http_port=-1",
                    f"--http_port_file={http_port_file}",
                    f"--data_dir={tmp}/data",
                    "--retry_interval=1",
                    "--cron_interval=1",
                    "--max_retry_interval=2",
                    "--metrics_port=0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 20
                while not (grpc_port_file.exists() and grpc_port_file.read_text().strip()):
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("dtmd did not start:\n" + log_path.read_text())
                    time.sleep(0.05)
                port = http_port_file.read_text().strip()
                yield f"http://127.0.0.1:{port}/api/dtmsvr"
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    assert process.wait(timeout=15) == 0, log_path.read_text()
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    raise


@pytest.fixture(scope="session")
def db_params() -> dict:
    host, port = os.environ["MARIADB"].rsplit(":", 1)
    params = dict(host=host, port=int(port), user="root", password="",
                  autocommit=False)
    conn = pymysql.connect(**params)
    with conn.cursor() as cursor:
        cursor.execute("create database if not exists busi")
        cursor.execute(
            "create table if not exists busi.user_account("
            " user_id int primary key, balance decimal(10,2) not null)")
        cursor.execute(
            "create table if not exists busi.msg_outbox("
            " gid varchar(128) primary key)")
    conn.commit()
    conn.close()
    return params


@pytest.fixture(scope="session")
def busi(db_params) -> branches.BranchServer:
    server = branches.BranchServer(db_params)
    server.start()
    yield server
    server.stop()
