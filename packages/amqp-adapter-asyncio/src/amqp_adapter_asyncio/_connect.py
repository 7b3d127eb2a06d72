"""``connect()``: open an :class:`~amqp_adapter_asyncio.aio.AsyncConnection` on the running loop.

Theory of operation: ``connect`` checks its argument at once and returns an
object that is both awaitable (``conn = await connect(url)``) and an async
context manager (``async with connect(url) as conn``, closed on exit).  The
connection is the callback :class:`AsyncioConnection`; its open callback wraps
it in an ``AsyncConnection`` right away (no loop turn in between, so no close
can be missed), its open-error callback fails the await with the most specific
error (``ProbableAuthenticationError`` for refused credentials).  A sequence of
parameters goes through pika's workflow (``create_connection``), tried in turn.
Cancelling the await aborts the opening; a connection that opens after its
caller gave up is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from amqp_core.parameters import ConnectionParameters, Parameters, URLParameters

from .aio import AsyncConnection, _retrieve
from .connection import AsyncioConnection

__all__ = ["connect"]


def _as_parameters(target: Any) -> Parameters:
    if target is None:
        return ConnectionParameters()
    if isinstance(target, str):
        return URLParameters(target)
    if isinstance(target, Parameters):
        return target
    raise TypeError(
        "url_or_parameters must be an amqp:// URL, a ConnectionParameters/URLParameters, a "
        f"sequence of them, or None; not {type(target).__name__}"
    )


async def _open(target: Parameters | list[Parameters]) -> AsyncConnection:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[AsyncConnection] = loop.create_future()
    future.add_done_callback(_retrieve)

    def opened(connection: AsyncioConnection) -> None:
        if future.done():  # the caller gave up meanwhile
            connection.close()
            return
        future.set_result(AsyncConnection(connection))

    def failed(error: BaseException) -> None:
        if not future.done():
            future.set_exception(error)

    if isinstance(target, list):

        def on_done(result: Any) -> None:
            if isinstance(result, AsyncioConnection):
                opened(result)
            else:
                failed(result)

        workflow = AsyncioConnection.create_connection(target, on_done, custom_ioloop=loop)
        try:
            return await future
        except asyncio.CancelledError:
            workflow.abort()  # a no-op once it has finished
            raise
    connection = AsyncioConnection(
        target,
        on_open_callback=opened,
        on_open_error_callback=lambda _connection, error: failed(error),
        custom_ioloop=loop,
    )
    try:
        return await future
    except asyncio.CancelledError:
        if not connection.is_closed and not connection.is_closing:
            connection.close()  # aborts the opening
        raise


class _Connecting:
    """What :func:`connect` returns: await it, or use it with ``async with``."""

    __slots__ = ("_connection", "_target")

    def __init__(self, target: Parameters | list[Parameters]) -> None:
        self._target = target
        self._connection: AsyncConnection | None = None

    def __await__(self) -> Any:
        return _open(self._target).__await__()

    async def __aenter__(self) -> AsyncConnection:
        self._connection = await _open(self._target)
        return self._connection

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            await self._connection.close()


def connect(
    url_or_parameters: str | Parameters | Sequence[Parameters] | None = None,
) -> _Connecting:
    """Open a connection on the running loop: ``conn = await connect(url)`` or
    ``async with connect(url) as conn``.

    :param url_or_parameters: an ``amqp://`` / ``amqps://`` URL, connection
        parameters, a sequence of them (tried in turn, pika's workflow), or None
        for the defaults
    :returns: an awaitable giving an :class:`AsyncConnection`, also an async
        context manager that closes it on exit
    :raises TypeError: ``url_or_parameters`` is of another type
    :raises ProbableAuthenticationError: the broker refused the credentials
    :raises AMQPConnectionError: the connection could not be opened
    """
    target: Parameters | list[Parameters]
    if isinstance(url_or_parameters, Sequence) and not isinstance(url_or_parameters, str):
        target = [_as_parameters(item) for item in url_or_parameters]
        if not target:
            raise ValueError("url_or_parameters must not be an empty sequence")
    else:
        target = _as_parameters(url_or_parameters)
    return _Connecting(target)
