"""Fixtures for the gevent adapter's tests.

Theory of operation: gevent's monkey-patching is process-global, so the adapter's own suite
(``gevent_suite_*.py``, not collected by the outer run) is run by ``run_gevent_suite.py`` in a
subprocess per mode, ``plain`` and ``monkey`` (``gevent.monkey.patch_all()`` before anything else
is imported).  The outer tests (``test_gevent_*.py``) only start subprocesses and never import
gevent.  Inside a suite process, ``gevent_mode`` says which mode it runs in, ``params`` gives
connection parameters for the session broker and :func:`wait_for` lets the main greenlet wait
(bounded) while the hub runs the connections (``gevent_helpers.py``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from gevent_helpers import MODES

import amqp_core as pika


@pytest.fixture(scope="session")
def gevent_mode() -> str:
    """``"monkey"`` or ``"plain"``: the mode this suite process was started in."""
    mode = os.environ.get("AMQP_GEVENT_MODE", "plain")
    assert mode in MODES, mode
    from gevent import monkey

    assert monkey.is_module_patched("socket") == (mode == "monkey")
    return mode


@pytest.fixture
def params(broker: Any) -> Callable[..., pika.ConnectionParameters]:
    """``params(**overrides)``: parameters for the session broker (guest/guest on ``/``)."""

    def make(**overrides: Any) -> pika.ConnectionParameters:
        settings: dict[str, Any] = {
            "host": broker.host,
            "port": broker.port,
            "credentials": pika.PlainCredentials("guest", "guest"),
        }
        settings.update(overrides)
        return pika.ConnectionParameters(**settings)

    return make


@pytest.fixture
def unique() -> Callable[[str], str]:
    """``unique(prefix)``: a queue name no other test uses."""
    return lambda prefix="t": f"gevent-{prefix}-{uuid.uuid4().hex[:12]}"
