"""Fixtures for the gevent adapter's tests.

Theory of operation: gevent's monkey-patching is process-global, so the adapter's own suite
(``gevent_suite_*.py``, not collected by the outer run) is run by ``run_gevent_suite.py`` in a
subprocess per mode, ``plain`` and ``monkey`` (``gevent.monkey.patch_all()`` before anything else
is imported).  The outer tests (``test_gevent_*.py``) only start subprocesses and never import
gevent.  Inside a suite process, ``gevent_mode`` says which mode it runs in, ``params`` gives
connection parameters for the session broker and :func:`wait_for` lets the main greenlet wait
(bounded) while the hub runs the connections.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import amqp_core as pika

#: The two modes every gevent test runs in, each in its own process.
MODES = ("plain", "monkey")
#: Default bound on one wait, in seconds.
WAIT = 20.0


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT, what: str = "condition") -> None:
    """Let the hub run (the main greenlet sleeps in small steps) until ``predicate()`` holds.

    :raises AssertionError: the predicate did not hold within ``timeout`` seconds.
    """
    import gevent

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        gevent.sleep(0.002)


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
