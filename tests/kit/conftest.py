"""The project's own runs of the conformance kit (``amqp_core.testing``) for every adapter.

Theory of operation: the kit's plugin is imported here rather than enabled with
``pytest_plugins`` (pytest only honours that in the rootdir's conftest), so its hooks and
fixtures apply to this directory only.  Its live scenarios use the session's broker
(``tests/conftest.py``), or, in the child processes of ``test_kit_own_process.py``, the
parent's private node handed over in ``AMQP_KIT_BROKER_STATE``.

Adapters whose harness wants a process of its own (Twisted's reactor, gevent's hub) are
deselected here, unless the run names its adapters (``AMQP_KIT_ADAPTERS`` or
``--amqp-adapter``), which is how ``test_kit_own_process.py`` runs each of them alone.
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from amqp_core.testing.broker import PrivateBroker
from amqp_core.testing.plugin import *  # noqa: F403 - the kit's hooks and fixtures
from amqp_core.testing.plugin import own_process_adapters, selected_adapters

#: Environment variable carrying a parent's private broker (``PrivateBroker.to_state()``).
BROKER_STATE_ENV = "AMQP_KIT_BROKER_STATE"


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
