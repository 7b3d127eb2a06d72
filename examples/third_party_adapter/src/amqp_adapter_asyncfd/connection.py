"""``AsyncfdConnection``: amqp_core's callback connection on an asyncio selector loop.

Theory of operation: everything but the loop is amqp_core's
(:class:`~amqp_core.adapters.base_connection.BaseConnection`); this module only
turns ``custom_ioloop`` into ``(native loop, contract loop)``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from amqp_core.adapters.base_connection import BaseConnection
from amqp_core.io.contract import EventLoop

from ._loop import AsyncfdEventLoop

__all__ = ["AsyncfdConnection"]


class AsyncfdConnection(BaseConnection):
    """pika's asynchronous connection on an asyncio selector event loop.

    Same constructor as pika's connections; ``custom_ioloop`` is the asyncio
    loop (a new one when None; the caller runs it).

    :raises TypeError: ``custom_ioloop`` is not an asyncio loop that watches file descriptors
    """

    @classmethod
    def _create_event_loop(cls, custom_ioloop: Any) -> tuple[Any, EventLoop]:
        if custom_ioloop is None:
            custom_ioloop = asyncio.new_event_loop()
        if not isinstance(custom_ioloop, asyncio.AbstractEventLoop):
            raise TypeError(
                f"custom_ioloop must be an asyncio event loop, not {type(custom_ioloop).__name__}"
            )
        return custom_ioloop, AsyncfdEventLoop(custom_ioloop)
