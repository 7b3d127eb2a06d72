"""Helpers for the gevent suite files (imported by them and by ``conftest.py``).

:func:`wait_for` lets the main greenlet wait, bounded, while the hub (and the loops' dispatcher
greenlets) run the connections.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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
