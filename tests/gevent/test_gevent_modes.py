"""The gevent adapter's suite once per mode, and the conformance kit monkey-patched, each in its
own process.

``gevent.monkey.patch_all()`` is process-global, so ``run_gevent_suite.py`` runs the
``gevent_suite_*.py`` files in a subprocess: once plain, once monkey-patched (patched before
anything else is imported).  With ``--kit`` it runs the cross-adapter conformance kit
(``tests/kit``) for gevent; the plain run of the kit is ``tests/kit/test_kit_own_process.py``'s,
the monkey-patched one is here.  The subprocesses talk to this session's broker (``AMQP_URL``,
and the private node's state in ``AMQP_KIT_BROKER_STATE`` so that the kit's scenarios that need
``rabbitmqctl`` run too), are bounded in time, and their whole output is shown when they fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
#: Bound on one mode's whole suite, in seconds.
SUITE_TIMEOUT = 420


def run_mode(mode: str, broker: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``run_gevent_suite.py --mode MODE ARGS`` against ``broker``, bounded in time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["AMQP_URL"] = broker.url
    state = getattr(broker, "to_state", None)
    if callable(state):
        env["AMQP_KIT_BROKER_STATE"] = json.dumps(state())
    return subprocess.run(
        [sys.executable, str(HERE / "run_gevent_suite.py"), "--mode", mode, "-q", *args],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=SUITE_TIMEOUT, check=False,
    )


def check_summary(completed: subprocess.CompletedProcess[str], what: str, least: int) -> None:
    output = completed.stdout + completed.stderr
    last = output.strip().splitlines()[-1] if output.strip() else ""
    counts = {kind.rstrip("s"): int(n)
              for n, kind in re.findall(r"(\d+) (passed|failed|errors?)", last)}
    assert completed.returncode == 0, f"{what} failed (exit {completed.returncode}):\n{output}"
    assert counts.get("passed", 0) >= least, f"{what}: unexpected summary:\n{output}"
    assert not counts.get("failed") and not counts.get("error"), output


@pytest.mark.slow
@pytest.mark.timeout(SUITE_TIMEOUT + 30)
@pytest.mark.parametrize("mode", ["plain", "monkey"])
def test_gevent_suite(mode: str, broker: Any) -> None:
    check_summary(run_mode(mode, broker), f"the gevent suite ({mode})", 30)


@pytest.mark.slow
@pytest.mark.timeout(SUITE_TIMEOUT + 30)
def test_conformance_kit_monkey_patched(broker: Any) -> None:
    check_summary(run_mode("monkey", broker, "--kit"), "the kit for gevent (monkey-patched)", 50)
