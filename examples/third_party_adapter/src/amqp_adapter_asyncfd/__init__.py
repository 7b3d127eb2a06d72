"""amqp_adapter_asyncfd: an example amqp_core adapter (asyncio selector loops, fd watching).

:class:`AsyncfdConnection` is amqp_core's callback connection (pika's API) bound to an
asyncio selector event loop through :class:`AsyncfdEventLoop`.
"""

from __future__ import annotations

from ._loop import AsyncfdEventLoop
from .connection import AsyncfdConnection

__version__ = "0.1.0"

__all__ = ["AsyncfdConnection", "AsyncfdEventLoop", "__version__"]
