"""Runs the order flow example, as its README says, against a real dtmd."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from dtmd_client.testing import start_dtmd

HERE = pathlib.Path(__file__).resolve().parent


def test_order_flow_pays_one_order_and_rolls_back_the_refused_one() -> None:
    binary = os.environ.get("DTMD_BIN") or str(HERE.parents[2] / "build/server/dtmd")
    with start_dtmd(binary) as address:
        result = subprocess.run([sys.executable, str(HERE / "main.py"), "--dtm", address],
                                capture_output=True, text=True, timeout=120)
    print(result.stdout, result.stderr)
    assert result.returncode == 0
    assert "rolled back:" in result.stdout and "payment refused" in result.stdout
    assert "[stock] released 3 x widget" in result.stdout
    assert "bob's order: cancelled" in result.stdout
