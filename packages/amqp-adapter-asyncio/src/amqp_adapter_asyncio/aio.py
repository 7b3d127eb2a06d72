"""The async/await API, derived from amqp_core's one callback API by one generic wrapper.

Theory of operation
-------------------
:class:`AsyncConnection` and :class:`AsyncChannel` wrap the callback objects
(:class:`~amqp_adapter_asyncio.connection.AsyncioConnection` and
:class:`amqp_core.channel.Channel`).  Nothing is re-declared per method:

* The tables :data:`CONNECTION_AWAITABLES` and :data:`CHANNEL_AWAITABLES` name
  the callback methods that get a reply, and the keyword their completion
  callback goes in.  :func:`_install` turns each entry into a coroutine method
  that creates a future, passes a resolver as that keyword, calls the callback
  method with the caller's other arguments and awaits the future.  The result
  is what the callback would have received (``frame.Method`` for most:
  ``(await ch.queue_declare("q")).method.queue``).
* Every other public attribute is the callback object's (``__getattr__``):
  ``basic_ack``, ``add_on_close_callback``, ``is_open`` ...
* Every pending future belongs to its owner; when the channel (or connection)
  closes, they fail with the close reason.
* Cancelling a waiting task cancels only its future.  The reply still
  arrives, in order, and the resolver discards it (a channel opened for a
  caller who gave up is closed), so the channel's request queue stays
  consistent and later calls work.

Written by hand, because their semantics differ from "one callback, one reply":
``basic_publish`` (a plain method returning an awaitable future, so a window
of publishes needs no task per message: the message is queued at once, in
call order, without a drain per message; with confirms on, the future is one
per delivery tag, see :mod:`._confirms`; while the transport's buffer is over
its high-water mark, publishes wait in a per-channel backlog sent in order by
one task as it drains, and one cancelled while still waiting there is never
sent), ``basic_get`` (``None`` when the queue is empty), ``consume`` (an
``async for`` consumer, see :mod:`._consumer`), ``basic_cancel`` (idempotent)
and ``close``.

``basic_get``: the callback API, like pika's, does not pass Basic.GetEmpty to
the get callback; pika's ``Channel.add_callback`` (one-shot, on GetEmpty)
reports the empty queue.

Returned messages are matched to publishes by exchange, routing key and body
among the tags the following ack settles (a return carries no delivery tag).

All of it must be used on the loop's thread.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, NamedTuple

from amqp_core import spec
from amqp_core.channel import Channel
from amqp_core.completions import REPLY_CALLBACK, REPLY_CALLBACK_METHODS
from amqp_core.exceptions import AMQPChannelError, AMQPConnectionError, ChannelWrongStateError

from ._confirms import ConfirmTracker
from ._consumer import Consumer, Message, _ConsumerState, broker_cancelled
from .connection import AsyncioConnection

__all__ = [
    "CHANNEL_AWAITABLES",
    "CONNECTION_AWAITABLES",
    "AsyncChannel",
    "AsyncConnection",
    "Awaitable",
]

LOGGER = logging.getLogger(__name__)


class Awaitable(NamedTuple):
    """How one callback method becomes a coroutine method.

    :param callback_kwarg: the keyword the completion callback goes in
    :param wrap: ``wrap(owner, result)`` turns the callback's argument into the
        awaited value (run as the reply arrives)
    :param discard: ``discard(result)`` when the reply arrives for a caller who gave up
    """

    callback_kwarg: str
    wrap: Callable[[Any, Any], Any] | None = None
    discard: Callable[[Any], None] | None = None


def _wrap_channel(owner: Any, channel: Channel) -> AsyncChannel:
    return AsyncChannel(owner, channel)


def _close_unwanted_channel(channel: Any) -> None:
    if isinstance(channel, AsyncChannel):
        channel = channel.callback_channel
    if isinstance(channel, Channel) and channel.is_open:
        channel.close()


#: AsyncConnection's awaitable methods: ``await conn.channel()`` -> :class:`AsyncChannel`.
CONNECTION_AWAITABLES: Mapping[str, Awaitable] = {
    "channel": Awaitable("on_open_callback", _wrap_channel, _close_unwanted_channel),
    "update_secret": Awaitable("callback"),
}

#: AsyncChannel's generic awaitable methods (each returns the callback's argument).
CHANNEL_AWAITABLES: Mapping[str, Awaitable] = {
    name: Awaitable(REPLY_CALLBACK) for name in REPLY_CALLBACK_METHODS
}


def _copy_outcome(source: asyncio.Future[None], target: asyncio.Future[None]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(None)


def _retrieve(future: asyncio.Future[Any]) -> None:
    # a caller who gave up never looks: mark the outcome seen so asyncio does not log it
    if not future.cancelled():
        future.exception()


class _Owner:
    """Shared machinery: futures owned by a channel or connection, failed when it closes."""

    _TARGET = ""
    _loop: asyncio.AbstractEventLoop
    _pending: set[asyncio.Future[Any]]

    def _new_future(self) -> asyncio.Future[Any]:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self._loop:
            raise RuntimeError(
                f"{type(self).__name__} must be used from a coroutine on its connection's loop"
            )
        future = self._loop.create_future()
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return future

    def _fail_pending(self, error: BaseException) -> None:
        for future in list(self._pending):
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    async def _call_awaitable(
        self, name: str, how: Awaitable, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if how.callback_kwarg in kwargs:
            raise TypeError(
                f"{name}() takes no {how.callback_kwarg!r} argument here: awaiting it returns the "
                f"reply (use .{self._TARGET}.{name}() for the callback API)"
            )
        future = self._new_future()
        wrap, discard = how.wrap, how.discard

        def resolve(*results: Any) -> None:
            value = results[0] if len(results) == 1 else results
            if wrap is not None:
                value = wrap(self, value)
            if future.done():
                if discard is not None:
                    discard(value)
                return
            future.set_result(value)

        kwargs[how.callback_kwarg] = resolve
        try:
            getattr(getattr(self, self._TARGET), name)(*args, **kwargs)
        except BaseException:
            future.cancel()
            raise
        return await future

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == self._TARGET:
            raise AttributeError(name)
        return getattr(getattr(self, self._TARGET), name)


def _awaitable_method(name: str, how: Awaitable) -> Callable[..., Any]:
    async def method(self: _Owner, *args: Any, **kwargs: Any) -> Any:
        return await self._call_awaitable(name, how, args, kwargs)

    return method


def _install(cls: type[_Owner], table: Mapping[str, Awaitable], source: type) -> None:
    """Add one coroutine method per table entry to ``cls`` (the generic wrapper)."""
    for name, how in table.items():
        original = getattr(source, name)
        method = _awaitable_method(name, how)
        method.__name__ = name
        method.__qualname__ = f"{cls.__name__}.{name}"
        method.__doc__ = (
            f"Awaitable :meth:`{source.__module__}.{source.__name__}.{name}`: same arguments "
            f"but ``{how.callback_kwarg}``; returns what that callback would receive.\n\n"
            + inspect.cleandoc(original.__doc__ or "")
        )
        signature = inspect.signature(original)
        method.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[p for p in signature.parameters.values() if p.name != how.callback_kwarg]
        )
        setattr(cls, name, method)


class AsyncConnection(_Owner):
    """An open connection with awaitable methods (made by :func:`connect`).

    ``await conn.channel()`` opens an :class:`AsyncChannel`; ``async with conn``
    closes it on exit; other attributes are the callback connection's.

    :param connection: an open :class:`AsyncioConnection`
    """

    _TARGET = "callback_connection"

    def __init__(self, connection: AsyncioConnection) -> None:
        if not isinstance(connection, AsyncioConnection):
            raise TypeError(
                f"connection must be an AsyncioConnection, not {type(connection).__name__}"
            )
        #: The callback-API connection underneath.
        self.callback_connection = connection
        self._loop = connection.ioloop
        self._pending = set()
        self._closed: asyncio.Future[BaseException] = self._loop.create_future()
        connection.add_on_close_callback(self._on_closed)

    def __repr__(self) -> str:
        return f"<AsyncConnection {self.callback_connection!r}>"

    @property
    def ioloop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop the connection runs on."""
        return self._loop

    @property
    def is_closed(self) -> bool:
        """True once the connection has ended."""
        return self.callback_connection.is_closed

    def _on_closed(self, _connection: Any, error: BaseException) -> None:
        self._fail_pending(error)
        if not self._closed.done():
            self._closed.set_result(error)

    async def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close (if not already closing or closed) and wait until closed."""
        connection = self.callback_connection
        if not connection.is_closed and not connection.is_closing:
            connection.close(reply_code, reply_text)
        await self.wait_closed()

    async def wait_closed(self) -> BaseException:
        """Wait until the connection has ended and its transport is gone.

        :returns: why it ended (``ConnectionClosedByClient`` after :meth:`close`,
            ``ConnectionClosedByBroker``, ``StreamLostError`` ...)
        """
        error = await asyncio.shield(self._closed)
        await self.callback_connection.wait_stream_closed()
        return error

    async def __aenter__(self) -> AsyncConnection:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class AsyncChannel(_Owner):
    """A channel with awaitable methods (made by ``await connection.channel()``).

    Awaitable, generic: the :data:`CHANNEL_AWAITABLES` (``queue_declare``,
    ``exchange_declare``, ``basic_qos`` ...).  Awaitable, by hand:
    :meth:`basic_publish`, :meth:`confirm_delivery`, :meth:`basic_get`,
    :meth:`basic_cancel`, :meth:`close`.  :meth:`consume` gives an ``async for``
    consumer.  Everything else is the callback channel's (``basic_ack``,
    ``is_open`` ...).

    :param connection: the :class:`AsyncConnection`
    :param channel: the open callback channel
    """

    _TARGET = "callback_channel"

    def __init__(self, connection: AsyncConnection, channel: Channel) -> None:
        #: The :class:`AsyncConnection`.
        self.connection = connection
        #: The callback-API channel underneath.
        self.callback_channel = channel
        self._loop = connection.ioloop
        self._pending = set()
        self._closed: asyncio.Future[BaseException] = self._loop.create_future()
        self._consumers: dict[str, _ConsumerState] = {}
        self._cancelling: dict[str, asyncio.Future[Any]] = {}
        self._get_in_flight: asyncio.Future[None] | None = None
        self._confirms: ConfirmTracker | None = None
        self._published: asyncio.Future[None] = self._loop.create_future()
        self._published.set_result(None)  # what an unconfirmed publish returns (shared, done)
        self._backlog: deque[tuple[asyncio.Future[None], tuple[Any, ...]]] = deque()
        self._backlog_task: asyncio.Task[None] | None = None
        self._user_return_callbacks = False
        channel.add_on_close_callback(self._on_closed)
        channel.add_on_return_callback(self._on_returned)
        channel.add_on_cancel_callback(self._on_broker_cancel)

    def __repr__(self) -> str:
        return f"<AsyncChannel {self.callback_channel!r}>"

    @property
    def channel_number(self) -> int:
        """The channel's number."""
        return self.callback_channel.channel_number

    @property
    def publisher_confirms(self) -> bool:
        """True once :meth:`confirm_delivery` was called."""
        return self._confirms is not None

    def add_on_return_callback(self, callback: Callable[..., None]) -> None:
        """``callback(channel, method, properties, body)`` for every returned message."""
        self.callback_channel.add_on_return_callback(callback)
        self._user_return_callbacks = True

    # ------------------------------------------------------------ publishing

    def basic_publish(
        self, exchange: str, routing_key: str, body: bytes | str,
        properties: spec.BasicProperties | None = None, mandatory: bool = False,
    ) -> asyncio.Future[None]:
        """Publish a message; returns an awaitable (a future, not a coroutine).

        The message is queued at once, in call order, for this loop turn's
        write; there is no drain per message.  Await the result: without
        confirms it is already done; with confirms (:meth:`confirm_delivery`)
        it completes when the broker confirms.  While the transport's write
        buffer is over its high-water mark, publishes wait in a per-channel
        backlog (still in call order) and go out when it drains.  Many
        publishes can be in flight at once: ``await asyncio.gather(*(ch.basic_publish(...)
        for ...))`` creates no task per message.

        :raises UnroutableError: (from the awaitable) confirms on, ``mandatory``
            and the broker returned the message
        :raises NackError: (from the awaitable) confirms on and the broker nacked it
        :raises ChannelClosed: (from the awaitable) the channel closed before the confirm
        :raises ChannelWrongStateError: the channel is not open (raised at once)
        """
        if self._backlog or self.connection.callback_connection.writing_paused:
            return self._enqueue_publish((exchange, routing_key, body, properties, mandatory))
        return self._publish_now(exchange, routing_key, body, properties, mandatory)

    def _publish_now(
        self, exchange: str, routing_key: str, body: bytes | str,
        properties: spec.BasicProperties | None, mandatory: bool,
    ) -> asyncio.Future[None]:
        self.callback_channel.basic_publish(exchange, routing_key, body, properties, mandatory)
        confirms = self._confirms
        if confirms is not None:
            return confirms.track(exchange, routing_key, body, properties, mandatory)
        return self._published

    def _enqueue_publish(self, arguments: tuple[Any, ...]) -> asyncio.Future[None]:
        if not self.callback_channel.is_open:
            raise ChannelWrongStateError(f"Channel is not open ({self.callback_channel!r}).")
        future: asyncio.Future[None] = self._loop.create_future()
        self._backlog.append((future, arguments))
        if self._backlog_task is None:
            self._backlog_task = self._loop.create_task(self._send_backlog())
        return future

    async def _send_backlog(self) -> None:
        """Send the waiting publishes in order, each once the transport accepts more data."""
        connection = self.connection.callback_connection
        backlog = self._backlog
        try:
            while backlog:
                if connection.writing_paused:
                    await connection.wait_writable()
                    continue
                future, arguments = backlog.popleft()
                if future.done():  # cancelled before it was sent: never published
                    continue
                try:
                    sent = self._publish_now(*arguments)
                except Exception as error:
                    future.set_exception(error)
                    continue
                sent.add_done_callback(functools.partial(_copy_outcome, target=future))
        finally:
            self._backlog_task = None

    async def confirm_delivery(self) -> Any:
        """Turn on publisher confirms; returns the ``frame.Method`` of Confirm.SelectOk.

        From now on :meth:`basic_publish` completes when the broker confirms.
        A second call returns None.
        """
        if self._confirms is not None:
            return None
        future = self._new_future()

        def on_select_ok(method_frame: Any) -> None:
            if not future.done():
                future.set_result(method_frame)

        confirms = ConfirmTracker(self._loop)
        self.callback_channel.confirm_delivery(confirms.on_ack_nack, callback=on_select_ok)
        self._confirms = confirms  # the broker counts delivery tags from the Select on
        return await future

    def _on_returned(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        if self._confirms is not None:
            self._confirms.on_returned(method, properties, body)
        elif not self._user_return_callbacks:
            LOGGER.warning(
                "Message returned by the broker (%s %s) on %r: turn on confirm_delivery() to "
                "have basic_publish raise UnroutableError, or add_on_return_callback()",
                method.reply_code, method.reply_text, self,
            )

    # ------------------------------------------------------------ getting and consuming

    async def basic_get(self, queue: str, auto_ack: bool = False) -> Message | None:
        """Fetch one message from ``queue``; None when it is empty.

        Concurrent calls on one channel run one after the other.
        """
        if not isinstance(queue, str):
            raise TypeError(f"queue must be a str, not {type(queue).__name__}")
        while self._get_in_flight is not None:
            await asyncio.shield(self._get_in_flight)
        future = self._new_future()
        in_flight: asyncio.Future[None] = self._loop.create_future()
        channel = self.callback_channel

        def finished() -> None:
            if self._get_in_flight is in_flight:
                self._get_in_flight = None
            if not in_flight.done():
                in_flight.set_result(None)

        def on_message(_channel: Any, method: Any, properties: Any, body: bytes) -> None:
            finished()
            if future.done():  # the caller gave up: give the message back
                if not auto_ack and channel.is_open:
                    channel.basic_reject(method.delivery_tag, requeue=True)
                return
            message = Message(self, method, properties, body)
            message.settled = auto_ack
            future.set_result(message)

        def on_empty(_frame: Any) -> None:
            finished()
            if not future.done():
                future.set_result(None)

        try:
            channel.basic_get(queue, on_message, auto_ack=auto_ack)
        except BaseException:
            future.cancel()
            raise
        self._get_in_flight = in_flight
        channel.add_callback(on_empty, [spec.Basic.GetEmpty], one_shot=True)
        result: Message | None = await future
        return result

    def consume(
        self, queue: str, auto_ack: bool = False, exclusive: bool = False,
        consumer_tag: str | None = None, arguments: Mapping[str, Any] | None = None,
    ) -> Consumer:
        """An ``async for`` consumer on ``queue`` (started on first use).

        ``async for message in channel.consume("q"): message.ack()``; use
        ``async with channel.consume("q") as consumer:`` to cancel it on exit.
        """
        return Consumer(self, queue, auto_ack, exclusive, consumer_tag, arguments)

    def _start_consumer(
        self, queue: str, state: _ConsumerState, kwargs: dict[str, Any]
    ) -> tuple[str, asyncio.Future[Any]]:
        future = self._new_future()

        def on_consume_ok(method_frame: Any) -> None:
            if not future.done():
                future.set_result(method_frame)

        try:
            tag = self.callback_channel.basic_consume(
                queue, state.on_message, callback=on_consume_ok, **kwargs
            )
        except BaseException:
            future.cancel()
            raise
        self._consumers[tag] = state
        return tag, future

    async def basic_cancel(self, consumer_tag: str) -> Any:
        """Cancel a consumer and wait for Basic.CancelOk (its ``frame.Method``).

        Idempotent: None for a tag that is not (or no longer) consuming, or when
        the channel closes meanwhile (the consumer is gone either way).
        """
        if not isinstance(consumer_tag, str):
            raise TypeError(f"consumer_tag must be a str, not {type(consumer_tag).__name__}")
        pending = self._cancelling.get(consumer_tag)
        if pending is None:
            channel = self.callback_channel
            state = self._consumers.pop(consumer_tag, None)
            if state is not None:
                state.end(None)
                state.reject_buffered()
            if (not channel.is_open or not self.connection.callback_connection.is_open
                    or consumer_tag not in channel.consumer_tags):
                return None  # nothing to cancel, or the connection is ending anyway
            pending = self._new_future()
            pending.add_done_callback(_retrieve)  # shared: its awaiters may all have gone
            self._cancelling[consumer_tag] = pending
            pending.add_done_callback(lambda _f: self._cancelling.pop(consumer_tag, None))

            def on_cancel_ok(method_frame: Any) -> None:
                if not pending.done():
                    pending.set_result(method_frame)

            channel.basic_cancel(consumer_tag, callback=on_cancel_ok)
        try:
            return await asyncio.shield(pending)
        except (AMQPChannelError, AMQPConnectionError):
            if self.callback_channel.is_closed:
                return None
            raise

    def _cancel_consumer_nowait(self, consumer_tag: str) -> None:
        """Cancel without awaiting (a consumer handle was garbage collected)."""
        self._consumers.pop(consumer_tag, None)
        channel = self.callback_channel
        if (channel.is_open and self.connection.callback_connection.is_open
                and consumer_tag in channel.consumer_tags
                and consumer_tag not in self._cancelling):
            try:
                channel.basic_cancel(consumer_tag, callback=lambda _frame: None)
            except (AMQPChannelError, AMQPConnectionError):  # closing meanwhile: gone anyway
                LOGGER.debug("could not cancel abandoned consumer %r", consumer_tag)

    def _on_broker_cancel(self, method_frame: Any) -> None:
        state = self._consumers.pop(method_frame.method.consumer_tag, None)
        if state is not None:
            broker_cancelled(state, method_frame)

    # ------------------------------------------------------------ closing

    def _on_closed(self, _channel: Any, error: BaseException) -> None:
        self._fail_pending(error)
        consumers, self._consumers = self._consumers, {}
        for state in consumers.values():
            state.on_channel_closed(error)
        if self._confirms is not None:
            self._confirms.fail_all(error)
        backlog = list(self._backlog)
        self._backlog.clear()
        for future, _arguments in backlog:
            if not future.done():
                future.set_exception(error)
        in_flight, self._get_in_flight = self._get_in_flight, None
        if in_flight is not None and not in_flight.done():
            in_flight.set_result(None)
        if not self._closed.done():
            self._closed.set_result(error)

    async def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> None:
        """Close (if not already closing or closed) and wait until closed.

        While the connection itself is closing, this only waits (the connection
        closes its channels).
        """
        channel = self.callback_channel
        if (not channel.is_closed and not channel.is_closing
                and self.connection.callback_connection.is_open):
            channel.close(reply_code, reply_text)
        await asyncio.shield(self._closed)

    async def wait_closed(self) -> BaseException:
        """Wait until the channel has closed; returns why (``ChannelClosedByBroker`` ...)."""
        return await asyncio.shield(self._closed)

    async def __aenter__(self) -> AsyncChannel:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


_install(AsyncConnection, CONNECTION_AWAITABLES, AsyncioConnection)
_install(AsyncChannel, CHANNEL_AWAITABLES, Channel)
