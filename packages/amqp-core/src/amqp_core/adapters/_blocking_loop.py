"""The I/O loop of ``BlockingConnection``: waiting, reading, routing core events, dispatching.

Theory of operation: there is no hidden event loop.  The connection owns a
protocol core (:class:`amqp_core.protocol.Connection`) and a
:class:`~._blocking_transport.SocketTransport` (the socket, one selector and a
self-pipe).  Control is inside the library only during a call, and every call
that must wait runs :meth:`BlockingLoop._wait`: write what the core queued,
then loop ``select`` (its timeout is the nearest of the caller's deadline, the
core's heartbeat timer, the blocked-connection deadline and, when
dispatching, the user timers) -> ``core.receive_data`` -> route every core
event -> ``core.handle_timer`` when due -> write, until the caller's
condition holds.  Heartbeats are therefore answered whenever a call waits.

Events change state at once (a reply fills its channel's slot, a confirm
settles a publish, a close marks the channel) but never call user code.  User
callbacks -- deliveries to ``basic_consume`` consumers, broker cancellations,
returned messages, Blocked/Unblocked, timers, ``add_callback_threadsafe`` --
become items of one FIFO *ready* queue that only :meth:`BlockingLoop._dispatch`
runs, called by ``process_data_events`` when it is not nested inside another
callback, as in pika.  While a large batch is dispatched, the acks it queues
are written every :data:`DISPATCH_FLUSH_THRESHOLD` bytes so the broker can
refill the prefetch window meanwhile (the ``consume()`` generator does the same
between the messages it yields).

Every way the connection ends (our close acknowledged, the broker's close, a
lost stream, a heartbeat or blocked-connection timeout, a protocol error)
goes through :meth:`BlockingLoop._terminate` once; the first call that
observes it raises the error (except our own close), later calls raise
``ConnectionWrongStateError`` and channel calls ``ChannelWrongStateError``.

:class:`BlockingLoop` is the base class of ``BlockingConnection``, which adds
the public API and the opening workflow; ``BlockingChannel`` uses the few
methods under "for BlockingChannel".
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Final, NoReturn

from .. import frame, spec
from ..exceptions import (
    AMQPConnectionError,
    ConnectionBlockedTimeout,
    ConnectionClosedByBroker,
    ConnectionClosedByClient,
    ConnectionWrongStateError,
    RemoteProtocolError,
    StreamLostError,
)
from ..parameters import Parameters
from ..protocol import NEED_DATA
from ..protocol import Connection as CoreConnection
from ..protocol import events as ev
from ._blocking_channel import BlockingChannel, Call
from ._blocking_transport import DISPATCH_FLUSH_THRESHOLD, SocketTransport, TransportClosed

__all__ = ["DISPATCH_FLUSH_THRESHOLD", "BlockingLoop", "ReadyItem", "Timer", "last_words"]

LOGGER = logging.getLogger("amqp_core.adapters.blocking_connection")

#: An item of the ready queue: a delivery for a ``basic_consume`` consumer, or a ``Call``.
ReadyItem = ev.Delivery | Call

_DELIVERY: Final = ev.Delivery
_RPC_REPLY: Final = ev.RpcReply
_METHOD_RECEIVED: Final = ev.MethodReceived
_CONFIRM_INDEXES: Final = frozenset({spec.Basic.Ack.INDEX, spec.Basic.Nack.INDEX})
_CANCEL_INDEX: Final = spec.Basic.Cancel.INDEX


class Timer:
    """A ``call_later`` timer; the object itself is the opaque id pika returns.

    :param deadline: ``time.monotonic()`` when it is due
    :param callback: what to call then
    """

    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], Any]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def fire(self) -> None:
        """Call the callback unless the timer was cancelled (at most once)."""
        if not self.cancelled:
            self.cancelled = True
            self.callback()


def last_words(core: CoreConnection, transport: SocketTransport) -> None:
    """Finalizer: write what is still queued (best effort, bounded) and close the socket."""
    if transport.closed:
        return
    try:
        transport.flush_blocking(core.data_to_send(), timeout=1.0)
    finally:
        transport.close()


class BlockingLoop:
    """The connection's state and I/O loop (the base class of ``BlockingConnection``).

    :param params: the parameters in use (the last of a sequence until one connects)
    """

    def __init__(self, params: Parameters) -> None:
        self._params = params
        self._core: CoreConnection | None = None
        self._transport: SocketTransport | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._channels: dict[int, BlockingChannel] = {}
        self._ready: deque[ReadyItem] = deque()
        self._threadsafe: deque[Callable[[], Any]] = deque()
        self._timers: list[tuple[float, int, Timer]] = []
        self._timer_sequence = itertools.count()
        self._dispatch_depth = 0
        self._woken = False
        self._opened = False
        self._error: BaseException | None = None
        self._error_reported = False
        self._close_reason = (200, "Normal shutdown")
        self._blocked_deadline: float | None = None
        self._blocked_callbacks: list[Callable[[Any, Any], Any]] = []
        self._unblocked_callbacks: list[Callable[[Any, Any], Any]] = []
        self._secret_updates = 0

    def _add_timer(self, delay: float, callback: Callable[[], Any]) -> Timer:
        timer = Timer(time.monotonic() + delay, callback)
        heapq.heappush(self._timers, (timer.deadline, next(self._timer_sequence), timer))
        return timer

    def _raise_error(self) -> NoReturn:
        """Raise the connection's end once (our own close excepted), then a state error."""
        error = self._error
        if not self._error_reported and not isinstance(error, ConnectionClosedByClient):
            self._error_reported = True
            assert error is not None
            raise error
        raise ConnectionWrongStateError(f"Connection is closed: {error!r}")

    # ------------------------------------------------------------ for BlockingChannel

    def _in_dispatch(self) -> bool:
        return self._dispatch_depth > 0

    def _notify(self) -> None:
        """Something a waiting ``process_data_events`` caller cares about happened."""
        self._woken = True

    def _take_ready(self, belongs: Callable[[Any], bool]) -> list[ReadyItem]:
        """Remove and return the ready items for which ``belongs(item)`` is true."""
        ready = self._ready
        kept: list[ReadyItem] = []
        taken: list[ReadyItem] = []
        for item in ready:
            (taken if belongs(item) else kept).append(item)
        if taken:
            ready.clear()
            ready.extend(kept)
        return taken

    def _write_now(self) -> None:
        """Write what is queued without waiting; raise the connection's error if that failed."""
        if self._error is None:
            self._flush()
            if self._error is not None:
                self._raise_error()

    def _drain_output(self) -> None:
        """Write what is queued, do a non-blocking round of I/O, wait while the kernel is full."""
        self._poll(0.0)
        transport = self._transport
        if self._error is None and transport is not None and transport.backlog_size:
            self._wait(lambda: not transport.backlog_size)
        if self._error is not None:
            self._raise_error()

    # ------------------------------------------------------------ the wait loop

    def _wait(self, done: Callable[[], bool], deadline: float | None = None, *,
              user_timers: bool = False, raise_error: bool = True) -> bool:
        """Do I/O until ``done()`` (True) or ``deadline`` passes (False).

        At least one round of I/O happens unless ``done()`` already holds.

        :raises: the connection's error if it ends meanwhile (unless ``raise_error`` is False)
        """
        self._flush()
        polled = False
        monotonic = time.monotonic
        while True:
            if self._error is not None:
                if raise_error:
                    self._raise_error()
                return done()
            if done():
                return True
            timeout: float | None = None
            now = monotonic()
            if deadline is not None:
                timeout = deadline - now
                if timeout <= 0:
                    if polled:
                        return False
                    timeout = 0.0
            core_deadline = self._core.get_timer() if self._core is not None else None
            if core_deadline is not None:
                left = core_deadline - now
                if timeout is None or left < timeout:
                    timeout = left
            if self._blocked_deadline is not None:
                left = self._blocked_deadline - now
                if timeout is None or left < timeout:
                    timeout = left
            if user_timers and self._timers:
                left = self._timers[0][0] - now
                if timeout is None or left < timeout:
                    timeout = left
            if timeout is not None and timeout < 0:
                timeout = 0.0
            self._poll(timeout)
            polled = True

    def _poll(self, timeout: float | None) -> None:
        """One round: write, select, read and process, timers, write."""
        transport = self._transport
        core = self._core
        if transport is None or core is None or self._error is not None:
            return
        self._flush()
        if self._error is not None:
            return
        try:
            chunks, woken = transport.poll(timeout)
        except TransportClosed:
            return
        except OSError as error:
            self._stream_failed(error)
            return
        if woken:
            threadsafe = self._threadsafe
            ready = self._ready
            while threadsafe:
                ready.append(Call(threadsafe.popleft()))
        if chunks:
            for chunk in chunks:
                core.receive_data(chunk)
            self._process_events()
        self._service_timers()
        self._flush()

    def _flush(self) -> None:
        core = self._core
        transport = self._transport
        if core is None or transport is None or transport.closed:
            return
        data = core.data_to_send()
        if data:
            try:
                transport.write(data)
            except TransportClosed:
                pass
            except OSError as error:
                self._stream_failed(error)

    def _stream_failed(self, error: OSError) -> None:
        """The socket failed: during the handshake the core names the stage, else stream lost."""
        core = self._core
        if not self._opened and core is not None:
            core.receive_data(b"")
            self._process_events()
        self._terminate(StreamLostError(f"Stream connection lost: {error!r}"))

    def _service_timers(self) -> None:
        core = self._core
        if core is None or self._error is not None:
            return
        now = time.monotonic()
        core_deadline = core.get_timer()
        if core_deadline is not None and now >= core_deadline:
            core.handle_timer(now)
            self._process_events()
        if self._blocked_deadline is not None and now >= self._blocked_deadline:
            self._blocked_deadline = None
            self._terminate(ConnectionBlockedTimeout(
                f"Blocked connection timeout expired "
                f"({self._params.blocked_connection_timeout} s)"
            ))
            return
        timers = self._timers
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)[2]
            if not timer.cancelled:
                self._ready.append(Call(timer.fire))

    def _dispatch(self) -> None:
        """Run the callbacks that were ready when it started (not those they make ready)."""
        ready = self._ready
        if not ready:
            return
        channels = self._channels
        core = self._core
        assert core is not None
        self._dispatch_depth += 1
        try:
            for _ in range(len(ready)):
                if not ready:
                    break
                item = ready.popleft()
                if type(item) is _DELIVERY:
                    channel = channels.get(item.channel_number)
                    if channel is not None:
                        channel._dispatch_delivery(item)
                else:
                    item.dispatch()  # type: ignore[union-attr]
                if core.bytes_to_send > DISPATCH_FLUSH_THRESHOLD:
                    # acks go out while the rest of a large batch is dispatched, so the
                    # broker refills the prefetch window in the meantime
                    self._flush()
        finally:
            self._dispatch_depth -= 1

    # ------------------------------------------------------------ core events

    def _process_events(self) -> None:
        core = self._core
        assert core is not None
        channels = self._channels
        while True:
            try:
                event = core.next_event()
            except RemoteProtocolError as error:
                self._terminate(error)
                return
            if event is NEED_DATA:
                return
            kind = type(event)
            if kind is _DELIVERY:
                channel = channels.get(event.channel_number)  # type: ignore[union-attr]
                if channel is not None:
                    channel._on_delivery(event)  # type: ignore[arg-type]
            elif kind is _METHOD_RECEIVED:
                channel = channels.get(event.channel_number)  # type: ignore[union-attr]
                if channel is not None:
                    method = event.method  # type: ignore[union-attr]
                    index = method.INDEX
                    if index in _CONFIRM_INDEXES:
                        channel._on_confirm(method)
                    elif index == _CANCEL_INDEX:
                        channel._on_broker_cancel(method)
            elif kind is _RPC_REPLY:
                channel = channels.get(event.channel_number)  # type: ignore[union-attr]
                if channel is not None:
                    channel._on_rpc_reply(event)  # type: ignore[arg-type]
            else:
                self._on_other_event(event)  # type: ignore[arg-type]
                if self._error is not None:
                    return

    def _on_other_event(self, event: ev.Event) -> None:
        kind = type(event)
        if kind is ev.Returned:
            assert isinstance(event, ev.Returned)
            channel = self._channels.get(event.channel_number)
            if channel is not None:
                channel._on_return(event)
        elif kind is ev.ChannelOpened:
            assert isinstance(event, ev.ChannelOpened)
            channel = self._channels.get(event.channel_number)
            if channel is not None:
                channel._on_open_ok()
        elif kind is ev.ChannelClosed:
            assert isinstance(event, ev.ChannelClosed)
            self._on_channel_closed(event)
        elif kind is ev.ConnectionOpened:
            self._opened = True
        elif kind is ev.ConnectionFailed:
            assert isinstance(event, ev.ConnectionFailed)
            self._terminate(event.error)
        elif kind is ev.ConnectionClosed:
            assert isinstance(event, ev.ConnectionClosed)
            params = self._params
            if event.by_peer:
                LOGGER.error("Connection closed by the broker: (%s) %s",
                             event.reply_code, event.reply_text)
                self._terminate(ConnectionClosedByBroker(
                    event.reply_code, event.reply_text, host=params.host, port=params.port
                ))
            else:
                code, text = self._close_reason
                self._terminate(ConnectionClosedByClient(
                    code, text, host=params.host, port=params.port
                ))
        elif kind is ev.ConnectionBlocked:
            assert isinstance(event, ev.ConnectionBlocked)
            timeout = self._params.blocked_connection_timeout
            if timeout is not None and self._blocked_deadline is None:
                self._blocked_deadline = time.monotonic() + timeout
            method = frame.Method(0, spec.Connection.Blocked(reason=event.reason))
            for callback in self._blocked_callbacks:
                self._ready.append(Call(callback, (self, method)))
        elif kind is ev.ConnectionUnblocked:
            self._blocked_deadline = None
            method = frame.Method(0, spec.Connection.Unblocked())
            for callback in self._unblocked_callbacks:
                self._ready.append(Call(callback, (self, method)))
        elif kind is ev.UpdateSecretOk:
            self._secret_updates += 1

    def _on_channel_closed(self, event: ev.ChannelClosed) -> None:
        channel = self._channels.pop(event.channel_number, None)
        if channel is None:
            return
        number = event.channel_number

        def belongs(item: Any) -> bool:
            if type(item) is _DELIVERY:
                return bool(item.channel_number == number)
            return isinstance(item, Call) and item.owner is channel

        self._take_ready(belongs)
        channel._on_closed(event.reply_code, event.reply_text, event.by_peer)

    def _terminate(self, error: BaseException) -> None:
        """The connection is over: say last words, close the socket, close every channel."""
        if self._error is not None:
            return
        params = self._params
        if isinstance(error, AMQPConnectionError):
            if error.host is None:
                error.host = params.host
            if error.port is None:
                error.port = params.port
        self._error = error
        transport = self._transport
        core = self._core
        if transport is not None and not transport.closed:
            if core is not None:
                data = core.data_to_send()  # a Close-Ok, or the Close naming a protocol error
                if data:
                    try:
                        transport.write(data)
                    except (OSError, TransportClosed):
                        pass
            transport.close()
        if self._finalizer is not None:
            self._finalizer.detach()
        self._blocked_deadline = None
        self._ready.clear()
        self._threadsafe.clear()
        self._timers.clear()
        channels = list(self._channels.values())
        self._channels.clear()
        for channel in channels:
            channel._on_connection_closed(error)
        if self._opened and not isinstance(error, ConnectionClosedByClient):
            LOGGER.error("Connection to %s:%s ended: %r", params.host, params.port, error)
