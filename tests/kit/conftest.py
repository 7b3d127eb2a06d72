"""The project's own runs of the conformance kit (``amqp_core.testing``) for every adapter.

Theory of operation: the kit's plugin is imported here rather than enabled with
``pytest_plugins`` (pytest only honours that in the rootdir's conftest), so its hooks and
fixtures apply to this directory only.  Its live scenarios use the session's broker
(``tests/conftest.py``), or, in the child processes of ``test_kit_own_process.py``, the
parent's private node handed over in ``AMQP_KIT_BROKER_STATE``.

Adapters whose harness wants a process of its own (Twisted's reactor, gevent's hub) are
deselected here, unless the run names its adapters (``AMQP_KIT_ADAPTERS`` or
``--amqp-adapter``): ``own_process_children`` runs each of them alone in a child pytest,
started when the first test of this directory runs (so the children overlap with the other
kit tests) and awaited by ``test_kit_suite_own_process.py``.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amqp_core.plugins import installed_adapters
from amqp_core.testing.broker import PrivateBroker
from amqp_core.testing.plugin import *  # noqa: F403 - the kit's hooks and fixtures
from amqp_core.testing.plugin import own_process_adapters, selected_adapters

#: Environment variable carrying a parent's private broker (``PrivateBroker.to_state()``).
BROKER_STATE_ENV = "AMQP_KIT_BROKER_STATE"
KIT_DIR = Path(__file__).resolve().parent
ROOT = KIT_DIR.parents[1]
#: Bound on one child run, in seconds.
CHILD_TIMEOUT = 300.0
#: The installed adapters that run in a process of their own.
OWN_PROCESS = own_process_adapters([info.name for info in installed_adapters()])


@pytest.fixture(scope="session")
def amqp_broker(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The parent's broker when handed over, else the session broker of ``tests/conftest.py``."""
    state = os.environ.get(BROKER_STATE_ENV)
    if state:
        node = PrivateBroker.from_state(json.loads(state))
        atexit.unregister(node.stop)  # the parent owns the node: never stop it here
        yield node
        return
    yield request.getfixturevalue("broker")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect own-process adapters unless this run named its adapters."""
    if selected_adapters(config).explicit:
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        adapter = callspec.params.get("amqp_adapter") if callspec is not None else None
        if adapter is not None and own_process_adapters([adapter]):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


class Child:
    """One child pytest running the whole kit for one adapter.

    :param adapter: the adapter
    :param env: the child's environment
    :param log: where its output goes
    """

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
        """Wait for the child (killed after :data:`CHILD_TIMEOUT` s); return (code, output)."""
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


@pytest.fixture(scope="session", autouse=True)
def own_process_children(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Child]]:
    """The children of the own-process adapters whose kit test was selected, started at once."""
    wanted = sorted({
        item.callspec.params["adapter"]
        for item in request.session.items
        if item.name.startswith("test_kit_in_its_own_process[")
    })
    started: dict[str, Child] = {}
    if not wanted:
        yield started
        return
    broker = request.getfixturevalue("broker")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    to_state = getattr(broker, "to_state", None)
    if callable(to_state):
        env[BROKER_STATE_ENV] = json.dumps(to_state())
    else:
        env["AMQP_URL"] = broker.url
    logs = tmp_path_factory.mktemp("kit-own-process")
    try:
        for adapter in wanted:
            started[adapter] = Child(adapter, {**env, "AMQP_KIT_ADAPTERS": adapter},
                                     logs / f"{adapter}.log")
        yield started
    finally:
        for child in started.values():
            child.stop()
