"""Publisher confirms for ``BlockingChannel``: pika's per-message mode and a windowed mode.

Theory of operation: once ``confirm_delivery()`` is acknowledged, the core
numbers every publish on the channel (1, 2, 3 ...) and the broker answers each
number with Basic.Ack or Basic.Nack, possibly several at once (``multiple``),
possibly out of order.  :class:`ConfirmTracker` keeps the unconfirmed numbers
in a dict and the lowest number that may still be unconfirmed, so a
``multiple`` confirm settles a range in time proportional to its length.

Per-message mode (pika's, the default): ``basic_publish`` waits until its own
number is settled.  A Basic.Return that arrives while it waits is for that
message (the broker sends the Return before the Ack), so the publish raises
``UnroutableError`` after an Ack, ``NackError`` after a Nack.  Each publish is
one round trip to the broker.

Windowed mode (ours, DESIGN section 6): inside ``with channel.confirm_window():``
a publish only waits while ``max_outstanding`` messages are unconfirmed, so
the broker's confirms overlap the next publishes.  The channel keeps each
unconfirmed message's arguments (bounded by the window) so that
``wait_for_confirms()`` -- called by the window's exit, or directly as a
checkpoint -- can raise ``NackError`` listing the nacked messages (as
:class:`ReturnedMessage` objects whose ``method`` is the ``spec.Basic.Publish``
that was sent), followed by the returned ones, or ``UnroutableError`` listing
returned messages.  Failures are reported once, by the next
``wait_for_confirms``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Final

from .. import spec
from ..exceptions import MethodNotImplemented, NackError, UnroutableError
from ._blocking_transport import FLUSH_THRESHOLD

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..protocol import Connection as CoreConnection
    from ..protocol import events as ev
    from .blocking_connection import BlockingConnection

__all__ = ["ConfirmTracker", "ConfirmWindow", "ReturnedMessage"]

LOGGER = logging.getLogger(__name__)

_MISSING: Final = object()
_ACK_INDEX: Final = spec.Basic.Ack.INDEX

#: What a windowed publish remembers until it is confirmed:
#: ``(exchange, routing_key, body, properties, mandatory)``
Remembered = tuple[str, str, Any, Any, bool]


class ReturnedMessage:
    """A message the broker returned or nacked: ``method``, ``properties``, ``body``.

    ``method`` is the broker's ``spec.Basic.Return`` for a returned message and
    the ``spec.Basic.Publish`` that was sent for a nacked one.

    :param method: the method
    :param properties: the message properties
    :param body: the message body
    """

    __slots__ = ("body", "method", "properties")

    def __init__(self, method: Any, properties: spec.BasicProperties, body: bytes) -> None:
        self.method = method
        self.properties = properties
        self.body = body

    def __repr__(self) -> str:
        return (
            f"<ReturnedMessage method={self.method!r} properties={self.properties!r} "
            f"body={self.body[:64]!r}>"
        )


class ConfirmWindow:
    """The context manager returned by :meth:`ConfirmTracker.confirm_window`.

    :param channel: the channel
    :param max_outstanding: most unconfirmed messages before a publish waits
    :param timeout: bound on the final wait, in seconds (None: no bound)
    """

    __slots__ = ("_channel", "_max_outstanding", "_timeout")

    def __init__(self, channel: ConfirmTracker, max_outstanding: int,
                 timeout: float | None) -> None:
        self._channel = channel
        self._max_outstanding = max_outstanding
        self._timeout = timeout

    def __enter__(self) -> Any:
        self._channel._open_window(self._max_outstanding)
        return self._channel

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        self._channel._window_max = 0
        if exc_type is None:
            self._channel.wait_for_confirms(self._timeout)


class ConfirmTracker:
    """The confirm half of ``BlockingChannel`` (a base class; not used on its own)."""

    if TYPE_CHECKING:
        _core: CoreConnection
        _connection: BlockingConnection

        def _check_open(self) -> None: ...

        def _rpc(self, method: Any) -> ev.RpcReply: ...

        def _wait(self, done: Callable[[], bool], deadline: float | None = None) -> bool: ...

        def _drain_output(self) -> None: ...

    def __init__(self) -> None:
        self._confirming = False
        self._unconfirmed: dict[int, Remembered | None] = {}
        self._lowest = 1
        self._last_sequence = 0
        self._awaiting = 0
        self._awaiting_nacked = False
        self._awaiting_returned: list[ReturnedMessage] = []
        self._window_max = 0
        self._nacked: list[ReturnedMessage] = []
        self._returned: list[ReturnedMessage] = []

    # ------------------------------------------------------------ public API

    def confirm_delivery(self) -> None:
        """Turn publisher confirms on: from now on ``basic_publish`` waits for its confirm.

        :raises MethodNotImplemented: the broker does not support confirms
        """
        if self._confirming:
            LOGGER.error("confirm_delivery: confirmation was already enabled on %r", self)
            return
        self._check_open()
        connection = self._connection
        if not (connection.publisher_confirms_supported and connection.basic_nack_supported):
            raise MethodNotImplemented("Confirm.Select not supported by the server")
        self._rpc(spec.Confirm.Select(nowait=False))
        self._confirming = True

    def confirm_window(self, max_outstanding: int = 1000,
                       timeout: float | None = None) -> ConfirmWindow:
        """Publish many messages and wait for all their confirms at once (not in pika).

        ::

            with channel.confirm_window(max_outstanding=1000):
                for body in bodies:
                    channel.basic_publish("", "jobs", body)
            # here every message is confirmed, or NackError / UnroutableError was raised

        Inside the block ``basic_publish`` returns at once unless
        ``max_outstanding`` messages are unconfirmed, then waits until one is.
        Leaving the block normally calls :meth:`wait_for_confirms` with
        ``timeout``; leaving it with an exception does not wait (the next
        :meth:`wait_for_confirms` reports what is still unconfirmed).  Enables
        confirm mode first if :meth:`confirm_delivery` was not called.

        :param max_outstanding: unconfirmed messages allowed in flight (>= 1)
        :param timeout: bound on the final wait in seconds (None: no bound)
        :returns: a context manager whose ``__enter__`` returns the channel
        :raises RuntimeError: a window is already open on this channel
        """
        if isinstance(max_outstanding, bool) or not isinstance(max_outstanding, int):
            raise TypeError(
                f"max_outstanding must be int, not {type(max_outstanding).__name__}"
            )
        if max_outstanding < 1:
            raise ValueError(f"max_outstanding must be >= 1, got {max_outstanding}")
        return ConfirmWindow(self, max_outstanding, _require_timeout(timeout))

    def wait_for_confirms(self, timeout: float | None = None) -> None:
        """Wait until every message published on this channel is confirmed (not in pika).

        :param timeout: seconds to wait at most (None: no bound)
        :raises NackError: messages were nacked since the last call: ``messages``
            lists them (``method`` is the ``spec.Basic.Publish`` sent), then any
            returned ones
        :raises UnroutableError: mandatory messages were returned since the last call
        :raises TimeoutError: ``timeout`` passed first; nothing is lost, call again
        :raises ChannelClosedByBroker: the broker closed the channel
        """
        timeout = _require_timeout(timeout)
        self._check_open()
        unconfirmed = self._unconfirmed
        if unconfirmed:
            deadline = None if timeout is None else time.monotonic() + timeout
            if not self._wait(lambda: not unconfirmed, deadline):
                raise TimeoutError(
                    f"{len(unconfirmed)} published message(s) still unconfirmed "
                    f"after {timeout} s"
                )
        nacked, returned = self._nacked, self._returned
        self._nacked, self._returned = [], []
        if nacked:
            raise NackError(nacked + returned)
        if returned:
            raise UnroutableError(returned)

    # ------------------------------------------------------------ internals

    def _open_window(self, max_outstanding: int) -> None:
        if self._window_max:
            raise RuntimeError(f"a confirm window is already open on {self!r}")
        if not self._confirming:
            self.confirm_delivery()
        self._window_max = max_outstanding

    def _after_confirmed_publish(
        self, sequence: int, exchange: str, routing_key: str, body: Any, properties: Any,
        mandatory: bool,
    ) -> None:
        """The core numbered a publish: wait for its confirm, or for room in the window."""
        self._last_sequence = sequence
        unconfirmed = self._unconfirmed
        limit = self._window_max
        if limit:
            unconfirmed[sequence] = (exchange, routing_key, body, properties, mandatory)
            if len(unconfirmed) >= limit:
                self._wait(lambda: len(unconfirmed) < limit)
            elif self._core.bytes_to_send > FLUSH_THRESHOLD:
                self._drain_output()
            return
        unconfirmed[sequence] = None
        self._awaiting = sequence
        self._awaiting_nacked = False
        returned: list[ReturnedMessage] = []
        self._awaiting_returned = returned
        try:
            self._wait(lambda: sequence not in unconfirmed)
        finally:
            self._awaiting = 0
        if self._awaiting_nacked:
            LOGGER.warning("Message was nacked by the broker: exchange=%r routing_key=%r",
                           exchange, routing_key)
            raise NackError(returned)
        if returned:
            raise UnroutableError(returned)

    def _on_confirm(self, method: Any) -> None:
        """Basic.Ack / Basic.Nack from the broker."""
        ok = method.INDEX == _ACK_INDEX
        tag = method.delivery_tag
        unconfirmed = self._unconfirmed
        if method.multiple:
            if tag == 0:
                tag = self._last_sequence
            if tag >= self._lowest:
                for sequence in range(self._lowest, tag + 1):
                    payload = unconfirmed.pop(sequence, _MISSING)
                    if not ok and payload is not _MISSING:
                        self._on_nacked(sequence, payload)
                self._lowest = tag + 1
            return
        payload = unconfirmed.pop(tag, _MISSING)
        if payload is _MISSING:
            return
        if not ok:
            self._on_nacked(tag, payload)
        if tag == self._lowest:
            lowest, last = tag + 1, self._last_sequence
            while lowest <= last and lowest not in unconfirmed:
                lowest += 1
            self._lowest = lowest

    def _on_nacked(self, sequence: int, payload: Any) -> None:
        if sequence == self._awaiting:
            self._awaiting_nacked = True
        elif payload is not None:
            exchange, routing_key, body, properties, mandatory = payload
            if isinstance(body, str):
                body = body.encode("utf-8")
            self._nacked.append(ReturnedMessage(
                spec.Basic.Publish(exchange=exchange, routing_key=routing_key,
                                   mandatory=mandatory),
                properties if properties is not None else spec.BasicProperties(),
                body,
            ))
        else:
            LOGGER.warning("Publish %d was nacked after its publisher stopped waiting", sequence)

    def _record_return(self, message: ReturnedMessage) -> None:
        """A Basic.Return: it belongs to the publish being waited for, or to the window."""
        if self._awaiting:
            self._awaiting_returned.append(message)
        elif self._unconfirmed:
            self._returned.append(message)

    def _clear_confirms(self) -> None:
        # _unconfirmed is kept: a publisher still waiting must see that its message was
        # never confirmed, so the wait raises the channel's close instead of returning
        self._window_max = 0
        self._awaiting = 0


def _require_timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"timeout must be a number or None, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"timeout must be >= 0, got {value!r}")
    return float(value)
