"""The kit for adapters that need a process of their own (Twisted's reactor, gevent's hub).

Theory of operation: ``conftest.py`` deselects those adapters from the main run; here each
one runs ``test_kit_suite.py`` in a child pytest (``AMQP_KIT_ADAPTERS=<name>``), sharing this
session's broker (the private node's state in ``AMQP_KIT_BROKER_STATE``, or ``AMQP_URL``).
The children of the selected tests are started together, on first use, so they overlap; each
test then waits (bounded) for its own child and requires a clean summary.  The list comes from
the installed adapters: an adapter that is not installed is simply not a parameter.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amqp_core.plugins import installed_adapters
from amqp_core.testing.plugin import own_process_adapters

KIT_DIR = Path(__file__).resolve().parent
ROOT = KIT_DIR.parents[1]
#: Bound on one child run, in seconds.
CHILD_TIMEOUT = 240.0

OWN_PROCESS = own_process_adapters([info.name for info in installed_adapters()])


class Child:
    """One child pytest running the kit for one adapter."""

    def __init__(self, adapter: str, env: dict[str, str], log: Path) -> None:
        self.adapter = adapter
        self.log = log
        self._out = log.open("w")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pytest", str(KIT_DIR / "test_kit_suite.py"), "-q",
             "-p", "no:cacheprovider"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def wait(self) -> tuple[int, str]:
        """Wait for the child (killing it after :data:`CHILD_TIMEOUT`); return (code, output)."""
        remaining = max(1.0, CHILD_TIMEOUT - (time.monotonic() - self.started))
        try:
            code = self.process.wait(remaining)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(10)
        self._out.close()
        return code, self.log.read_text()

    def stop(self) -> None:
        """Kill the child if it still runs."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._out.close()


@pytest.fixture(scope="module")
def children(
    request: pytest.FixtureRequest, broker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Child]]:
    """The children of the adapters whose tests were selected, all started at once."""
    wanted = sorted({
        item.callspec.params["adapter"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    })
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    state = getattr(broker, "to_state", None)
    if callable(state):
        env["AMQP_KIT_BROKER_STATE"] = json.dumps(state())
    else:
        env["AMQP_URL"] = broker.url
    logs = tmp_path_factory.mktemp("kit-own-process")
    started: dict[str, Child] = {}
    try:
        for adapter in wanted:
            started[adapter] = Child(adapter, {**env, "AMQP_KIT_ADAPTERS": adapter},
                                     logs / f"{adapter}.log")
        yield started
    finally:
        for child in started.values():
            child.stop()


@pytest.mark.timeout(CHILD_TIMEOUT + 30)
@pytest.mark.parametrize("adapter", OWN_PROCESS)
def test_kit_in_its_own_process(adapter: str, children: dict[str, Child]) -> None:
    code, output = children[adapter].wait()
    lines = output.splitlines()
    failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    tail = "\n".join([*failures, "...", *lines[-30:]])
    summary = re.findall(r"(\d+) (passed|failed|error|errors)", output.splitlines()[-1]
                         if output.strip() else "")
    counts = {kind.rstrip("s"): int(n) for n, kind in summary}
    assert code == 0, f"the kit failed for {adapter} (exit {code}):\n{tail}"
    assert counts.get("passed", 0) >= 40 and not counts.get("failed") and not counts.get("error"), (
        f"unexpected summary for {adapter}:\n{tail}")
