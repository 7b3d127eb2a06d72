"""Runs the reactor-driven Twisted suite (``suite/``) in a process of its own.

Twisted's reactor is process-global (installed once, never restartable), so the suite runs in
``python -m pytest tests/twisted/suite`` with ``AMQP_TWISTED_SUITE=1``, against this session's
broker (described in ``AMQP_TWISTED_BROKER``, or ``AMQP_URL`` for an external one), bounded in
time.  Its output is shown when it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
#: Bound on the whole child suite, in seconds.
SUITE_TIMEOUT = 600


@pytest.mark.timeout(SUITE_TIMEOUT + 60)
def test_twisted_suite_in_its_own_process(broker: Any) -> None:
    env = dict(os.environ)
    env["AMQP_TWISTED_SUITE"] = "1"
    if getattr(broker, "is_private", False):
        env["AMQP_TWISTED_BROKER"] = json.dumps(broker.to_state())
    else:
        env["AMQP_URL"] = broker.url
    argv = [sys.executable, "-m", "pytest", str(HERE / "suite"), "-q", "-p", "no:cacheprovider",
            "--timeout", "120", "-rfE"]
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=SUITE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"the Twisted suite did not finish within {SUITE_TIMEOUT} s:\n"
                    f"{expired.stdout!s}\n{expired.stderr!s}")
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, f"Twisted suite failed ({summary}):\n{done.stdout}\n{done.stderr}"
    assert " passed" in summary
    print(f"Twisted suite: {summary}")
