"""``SelectConnection``: the asynchronous connection on the built-in selectors IOLoop.

``SELECT_TYPE`` chooses the poller for IOLoops created from now on: None (the
best available: epoll, kqueue, poll, select), or one of ``'select'``,
``'poll'``, ``'epoll'``, ``'kqueue'``.
"""

from __future__ import annotations

from typing import Any

from ..io.contract import EventLoop
from ._select_ioloop import IOLoop as _IOLoop
from ._select_ioloop import SelectEventLoop
from .base_connection import BaseConnection

__all__ = ["SELECT_TYPE", "IOLoop", "SelectConnection"]

#: Poller used by new IOLoops (None: best available).
SELECT_TYPE: str | None = None


class IOLoop(_IOLoop):
    """The selectors-based event loop (pika's ``select_connection.IOLoop``).

    The poller is the module global ``SELECT_TYPE`` at construction time.
    """

    def __init__(self, poller_type: str | None = None) -> None:
        super().__init__(poller_type if poller_type is not None else SELECT_TYPE)


class SelectConnection(BaseConnection):
    """An asynchronous connection on the selectors IOLoop.

    Same constructor as pika: ``(parameters=None, on_open_callback=None,
    on_open_error_callback=None, on_close_callback=None, custom_ioloop=None,
    internal_connection_workflow=True)``.
    """

    @classmethod
    def _create_event_loop(cls, custom_ioloop: Any) -> tuple[Any, EventLoop]:
        if custom_ioloop is None:
            custom_ioloop = IOLoop()
        elif not isinstance(custom_ioloop, _IOLoop):
            raise TypeError(
                f"custom_ioloop must be a select_connection.IOLoop, not "
                f"{type(custom_ioloop).__name__}"
            )
        return custom_ioloop, SelectEventLoop(custom_ioloop)
