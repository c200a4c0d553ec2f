"""Starting a real dtmd for tests and examples: start_dtmd(binary) yields its address."""

from __future__ import annotations

import contextlib
import pathlib
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator


@contextlib.contextmanager
def start_dtmd(binary: str, timeout: float = 20.0) -> Iterator[str]:
    """Runs dtmd on a loopback port the OS picks, with a throwaway data dir and
    short retry intervals; yields "127.0.0.1:PORT" and stops it with SIGTERM."""
    with tempfile.TemporaryDirectory(prefix="dtmd-") as tmp:
        port_file = pathlib.Path(tmp, "port")
        with open(pathlib.Path(tmp, "dtmd.log"), "wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    "--listen_address=127.0.0.1",
                    "--grpc_port=0",
                    f"--port_file={port_file}",
                    f"--data_dir={tmp}/data",
                    "--retry_interval=1",
                    "--cron_interval=1",
                    "--max_retry_interval=2",
                    "--metrics_port=0",
                    "--http_port=0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + timeout
                while not (port_file.exists() and port_file.read_text().strip()):
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"dtmd did not start; see {tmp}/dtmd.log")
                    time.sleep(0.05)
                yield f"127.0.0.1:{port_file.read_text().strip()}"
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
