"""The gevent adapter's suite, once per mode, each in its own process.

``gevent.monkey.patch_all()`` is process-global, so ``run_gevent_suite.py`` runs the
``gevent_suite_*.py`` files in a subprocess: once plain, once monkey-patched (patched before
anything else is imported).  The subprocess talks to this session's broker (its URL passed as
``AMQP_URL``) and is bounded in time; its whole output is shown when it fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
#: Bound on one mode's whole suite, in seconds.
SUITE_TIMEOUT = 420


def run_mode(mode: str, broker_url: str, *pytest_args: str) -> subprocess.CompletedProcess[str]:
    """Run ``run_gevent_suite.py --mode MODE`` against ``broker_url``, bounded in time."""
    env = dict(os.environ, AMQP_URL=broker_url)
    return subprocess.run(
        [sys.executable, str(HERE / "run_gevent_suite.py"), "--mode", mode, "-q",
         "-p", "no:randomly", *pytest_args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUITE_TIMEOUT, check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(SUITE_TIMEOUT + 30)
@pytest.mark.parametrize("mode", ["plain", "monkey"])
def test_gevent_suite(mode: str, broker: Any) -> None:
    completed = run_mode(mode, broker.url)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"gevent suite ({mode}) failed:\n{output}"
    assert " passed" in output and " failed" not in output, output
