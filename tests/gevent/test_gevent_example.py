"""``examples/gevent_publishers.py`` run as a program, plain and monkey-patched, each in its own
process, against the test broker (its URL on the command line); bounded in time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gevent_publishers.py"


@pytest.mark.parametrize("mode", ["plain", "monkey"])
def test_many_greenlets_publish_one_consumes(mode: str, broker: Any) -> None:
    argv = [sys.executable, str(EXAMPLE), broker.url, "--publishers", "60", "--messages", "50",
            "--timeout", "60"]
    if mode == "monkey":
        argv.append("--monkey")
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert ("60 publishers published 3000 messages, all confirmed; consumed and acked 3000"
            in completed.stdout), output


def test_example_reports_a_refused_connection(broker: Any) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE), f"amqp://guest:guest@127.0.0.1:{port}/%2F",
         "--timeout", "20"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 1
    assert "failed: AMQPConnectionError" in completed.stdout, completed.stdout + completed.stderr
