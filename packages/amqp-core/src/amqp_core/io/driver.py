"""The one driver: glues the sans-I/O core to any loop that implements the contract.

Theory of operation: the driver is the stream's protocol object
(:class:`~amqp_core.io.contract.StreamProtocol`).

* bytes arrive -> ``core.receive_data`` -> events are drained one at a time
  and handed to the handler (the user-facing connection), which runs user
  callbacks.  The core finishes parsing a frame before ``next_event``
  returns, so a callback that publishes, acks or closes never re-enters a
  half-parsed state.
* Outbound bytes are written once per loop turn: after a read is processed,
  and otherwise by one ``call_soon`` scheduled by the first command issued
  outside a read (``request_flush``).
* The core's single timer (heartbeats) is re-armed after every batch, only
  when its deadline changed.
* A handler callback that raises is logged and does not corrupt the core.
* The end is reported once (``_on_stream_terminated``): the stream is flushed
  and closed, or aborted after a heartbeat timeout (a dead peer never drains
  the buffer).  ``abandon()`` drops a stream without any report, for an
  owner that already gave up on it (a timed-out connection attempt).

The handler is duck-typed (:class:`DriverHandler`), so the same driver serves
the callback API and any future API.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ..exceptions import (
    AMQPConnectionError,
    AMQPHeartbeatTimeout,
    RemoteProtocolError,
    StreamLostError,
)
from ..protocol import NEED_DATA
from ..protocol import Connection as CoreConnection
from ..protocol.events import ConnectionFailed, Event
from .contract import EventLoop, StreamTransport, TimerHandle

LOGGER = logging.getLogger(__name__)

#: Longest wait, in seconds, for the stream to close after the connection ended;
#: then the transport is aborted and the close is reported anyway.
CLOSE_GRACE = 2.0


class DriverHandler(Protocol):
    """What the driver reports to."""

    def _on_core_event(self, event: Event) -> None: ...

    def _on_stream_terminated(self, error: Exception) -> None: ...

    def _on_writing_paused(self, paused: bool) -> None: ...


class StreamDriver:
    """Moves bytes between a stream transport and the protocol core.

    :param core: the protocol core
    :param loop: the adapter's loop
    :param handler: receives events and the final error
    :param host: broker host, attached to connection errors
    :param port: broker port, attached to connection errors
    """

    def __init__(
        self, core: CoreConnection, loop: EventLoop, handler: DriverHandler,
        host: str | None = None, port: int | None = None,
    ) -> None:
        self.core = core
        self.loop = loop
        self.handler = handler
        self.host = host
        self.port = port
        self.transport: StreamTransport | None = None
        self.writing_paused = False
        self._flush_scheduled = False
        #: inside _process, which flushes at its end: commands need no scheduled flush
        self._processing = False
        self._timer: TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._terminated = False
        #: the final error, reported once the transport is gone
        self._pending_report: Exception | None = None
        self._grace_timer: TimerHandle | None = None

    # ------------------------------------------------------------ StreamProtocol

    def connection_made(self, transport: StreamTransport) -> None:
        """Start the AMQP handshake on a fresh stream."""
        self.transport = transport
        self.core.initiate()
        self.flush()

    def data_received(self, data: bytes) -> None:
        """Feed the core, dispatch events, write the replies."""
        self.core.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        """The peer closed its side."""
        self.core.receive_data(b"")
        self._process()
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        """The stream is gone: the core learns of it as end-of-stream."""
        self.transport = None
        self._cancel_timer()
        if self._terminated:
            self._report_pending()
            return
        if not self.core.is_closed:
            self.core.receive_data(b"")
            self._process(lost=exc)
        if not self._terminated:
            # the core had already finished (clean close); nothing left to report
            self._terminated = True

    def pause_writing(self) -> None:
        """The transport's buffer is over its high-water mark."""
        self.writing_paused = True
        self._call_handler(self.handler._on_writing_paused, True)

    def resume_writing(self) -> None:
        """The transport's buffer drained."""
        self.writing_paused = False
        self._call_handler(self.handler._on_writing_paused, False)

    # ------------------------------------------------------------ commands

    def request_flush(self) -> None:
        """Called after a command queued bytes outside a read: write them this turn."""
        if not self._flush_scheduled and not self._processing and self.transport is not None:
            self._flush_scheduled = True
            self.loop.call_soon(self._scheduled_flush)

    def flush(self) -> None:
        """Write whatever the core has queued, in one write."""
        data = self.core.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)
        self._rearm_timer()

    def close_transport(self, abort: bool = False) -> None:
        """Flush and close (or abort) the stream."""
        transport = self.transport
        if transport is None:
            return
        if abort:
            transport.abort()
        else:
            self.flush()
            transport.close()

    # ------------------------------------------------------------ internals

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def _process(self, lost: BaseException | None = None) -> None:
        if self._processing:  # re-entered from a callback: the outer call drains and flushes
            self._process_events(lost)
            return
        self._processing = True
        try:
            self._process_events(lost)
        finally:
            self._processing = False

    def _process_events(self, lost: BaseException | None) -> None:
        core = self.core
        handler = self.handler
        try:
            while True:
                event = core.next_event()
                if event is NEED_DATA:
                    break
                if type(event) is ConnectionFailed:
                    error = event.error
                    if lost is not None:
                        if isinstance(error, StreamLostError):
                            error = StreamLostError(f"Stream connection lost: {lost!r}")
                        elif error.__cause__ is None:
                            # a handshake error: say how the stream ended (reset or EOF)
                            error.__cause__ = lost
                    self._terminate(error)
                    return
                try:
                    handler._on_core_event(event)  # type: ignore[arg-type]
                except Exception:
                    LOGGER.exception("Callback for %r raised; continuing", event)
        except RemoteProtocolError as error:
            self._terminate(error)
            return
        self.flush()

    def _terminate(self, error: Exception) -> None:
        """The connection is over: flush any final Close, close the stream, report once."""
        if self._terminated:
            return
        self._terminated = True
        self._cancel_timer()
        if isinstance(error, AMQPConnectionError):
            if error.host is None:
                error.host = self.host
            if error.port is None:
                error.port = self.port
        transport = self.transport
        if transport is None:
            self._call_handler(self.handler._on_stream_terminated, error)
            return
        # Report once the socket is really gone (as pika does: an application that
        # stops its loop in the close callback must not leave a half-closed transport),
        # but never wait longer than CLOSE_GRACE for a peer that does not read.
        self._pending_report = error
        self._grace_timer = self.loop.call_later(CLOSE_GRACE, self._on_close_grace_expired)
        if isinstance(error, AMQPHeartbeatTimeout):
            # Fix: the peer is dead, so a polite close (drain the buffer first) could
            # wait forever with unsent data, keeping the socket and its fd watch alive.
            transport.abort()
        else:
            self.flush()
            transport.close()

    def _on_close_grace_expired(self) -> None:
        self._grace_timer = None
        transport = self.transport
        if transport is not None:
            transport.abort()
        self._report_pending()

    def _report_pending(self) -> None:
        error, self._pending_report = self._pending_report, None
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        if error is not None:
            self._call_handler(self.handler._on_stream_terminated, error)

    def _call_handler(self, method: Any, argument: Any) -> None:
        try:
            method(argument)
        except Exception:
            LOGGER.exception("Connection handler %r raised; continuing", method)

    def _rearm_timer(self) -> None:
        deadline = self.core.get_timer()
        if deadline == self._timer_deadline:
            return
        self._cancel_timer()
        if deadline is not None:
            self._timer_deadline = deadline
            self._timer = self.loop.call_later(
                max(0.0, deadline - self.loop.time()), self._on_timer
            )

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_deadline = None
        if self._terminated:
            return
        self.core.handle_timer(self.loop.time())
        self._process()

    def mark_terminated(self, error: Exception) -> None:
        """Used by the owner when it ends the connection itself (e.g. blocked timeout)."""
        self._terminate(error)

    def abandon(self) -> None:
        """The owner gave up on this stream (a connection attempt timed out or was aborted).

        Abort the transport and report nothing more to the handler: its later
        ``connection_lost`` must not be mistaken for the end of a *newer*
        attempt the same handler may have started meanwhile.
        """
        self._terminated = True
        self._cancel_timer()
        transport = self.transport
        if transport is not None:
            transport.abort()
