"""The socket side of ``BlockingConnection``: connect, then move bytes under one selector.

Theory of operation: :func:`open_socket` makes one TCP connection the way
pika's connector does (``socket_timeout`` bounds the TCP connect, the whole
stack must come up within the caller's deadline), switches Nagle off, applies
``tcp_options`` and wraps the socket in TLS when asked (the server name
defaults to the parameters' host when the context checks host names).  It
raises the connection workflow's phase errors so the caller can report them
the way pika does.

:class:`SocketTransport` owns the connected socket, switched to non-blocking,
and one :mod:`selectors` selector watching two things: the socket, and the
read end of a socket pair that :meth:`SocketTransport.wake` writes to from
any thread (the self-pipe trick behind ``add_callback_threadsafe``).  It knows
nothing of AMQP:

* :meth:`SocketTransport.write` sends at once whatever the kernel takes and
  keeps the rest (in order, each chunk retried exactly as it was, which TLS
  requires) for the next :meth:`SocketTransport.poll`, which watches for
  writability while anything is left.
* :meth:`SocketTransport.poll` waits up to ``timeout`` seconds, reads up to
  :data:`READ_SIZE` bytes when the socket is readable, drains the wake pipe,
  and returns what it read.  A TLS socket can hold decrypted bytes the
  selector cannot see (``pending()``): those are read at once and the next
  poll does not block.

The transport never sleeps: every wait is one ``select`` with the caller's
timeout.  Closing is idempotent and safe against a concurrent :meth:`wake`.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from typing import Any, Final

from ..parameters import Parameters
from ..tcp_socket_opts import apply_tcp_options, set_nodelay
from .utils.connection_workflow import (
    AMQPConnectorSocketConnectError,
    AMQPConnectorStackTimeout,
    AMQPConnectorTransportSetupError,
)

__all__ = [
    "DISPATCH_FLUSH_THRESHOLD",
    "FLUSH_THRESHOLD",
    "READ_SIZE",
    "SocketTransport",
    "TransportClosed",
    "open_socket",
]

LOGGER = logging.getLogger("amqp_core.adapters.blocking_connection")

#: Bytes asked for per ``recv`` (and the most read from a TLS socket per poll).
READ_SIZE: Final = 256 * 1024

#: Queued outbound bytes above which a publish or an ack writes at once instead of
#: leaving the write to the next wait.
FLUSH_THRESHOLD: Final = 64 * 1024

#: Queued bytes (about 400 acks) written while a batch of deliveries is being handed to the
#: application (callbacks, or the ``consume()`` generator), so the broker refills the prefetch
#: window meanwhile instead of waiting for the whole batch's acks.
DISPATCH_FLUSH_THRESHOLD: Final = 8192

_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class TransportClosed(Exception):
    """The transport was closed; nothing can be sent or woken any more."""


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return deadline - time.monotonic()


def open_socket(
    params: Parameters,
    family: int,
    socktype: int,
    proto: int,
    sockaddr: tuple[Any, ...],
    deadline: float | None,
) -> socket.socket:
    """Connect to one resolved address, set socket options, wrap in TLS if configured.

    :param params: the parameters being tried (timeouts, tcp_options, ssl_options)
    :param family: address family from ``getaddrinfo``
    :param socktype: socket type from ``getaddrinfo``
    :param proto: protocol from ``getaddrinfo``
    :param sockaddr: the address from ``getaddrinfo``
    :param deadline: ``time.monotonic()`` by which the whole stack must be up (None: none)
    :returns: a connected (and, for TLS, handshaken) socket in blocking mode
    :raises AMQPConnectorSocketConnectError: TCP connect failed or timed out
    :raises AMQPConnectorTransportSetupError: the TLS handshake failed
    :raises AMQPConnectorStackTimeout: the deadline passed
    """
    host, port = params.host, params.port
    sock = socket.socket(family, socktype, proto)
    try:
        timeout = params.socket_timeout
        left = _remaining(deadline)
        if left is not None:
            if left <= 0:
                raise AMQPConnectorStackTimeout(
                    f"Timeout while setting up the connection stack to {host}:{port}"
                )
            timeout = left if timeout is None else min(timeout, left)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
        except OSError as error:
            if isinstance(error, TimeoutError):
                error = TimeoutError(
                    errno.ETIMEDOUT, f"TCP connection attempt timed out after {timeout} s"
                )
            raise AMQPConnectorSocketConnectError(
                error, f"{error!r}", host=host, port=port
            ) from error
        set_nodelay(sock)
        if params.tcp_options:
            try:
                apply_tcp_options(sock, params.tcp_options)
            except (OSError, ValueError) as error:  # the kernel refused one: go on without
                LOGGER.warning("Could not apply tcp_options %r: %s", params.tcp_options, error)
        if params.ssl_options is not None:
            sock = _wrap_tls(sock, params, deadline)
        sock.settimeout(None)
        return sock
    except BaseException:
        sock.close()
        raise


def _wrap_tls(sock: socket.socket, params: Parameters, deadline: float | None) -> socket.socket:
    options = params.ssl_options
    assert options is not None
    context = options.context
    server_hostname = options.server_hostname
    if server_hostname is None and context.check_hostname:
        server_hostname = params.host
    left = _remaining(deadline)
    if left is not None and left <= 0:
        raise AMQPConnectorStackTimeout(
            f"Timeout while setting up the connection stack to {params.host}:{params.port}"
        )
    try:
        tls = context.wrap_socket(
            sock, server_hostname=server_hostname, do_handshake_on_connect=False
        )
    except (ssl.SSLError, OSError, ValueError) as error:
        raise AMQPConnectorTransportSetupError(
            error, f"{error!r}", host=params.host, port=params.port
        ) from error
    try:
        tls.settimeout(left)
        tls.do_handshake()
    except TimeoutError as error:
        tls.close()
        raise AMQPConnectorStackTimeout(
            f"Timeout during the TLS handshake with {params.host}:{params.port}"
        ) from error
    except (ssl.SSLError, OSError) as error:
        tls.close()
        raise AMQPConnectorTransportSetupError(
            error, f"{error!r}", host=params.host, port=params.port
        ) from error
    return tls


class SocketTransport:
    """A connected socket, its outbound backlog, and a selector with a wake pipe.

    :param sock: a connected socket (``ssl.SSLSocket`` for TLS); it is made
        non-blocking and owned by the transport from now on
    """

    __slots__ = (
        "_backlog",
        "_backlog_size",
        "_closed",
        "_lock",
        "_mask",
        "_selector",
        "_sock",
        "_sock_fd",
        "_tls",
        "_tls_pending",
        "_wake_r",
        "_wake_w",
    )

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._sock_fd = sock.fileno()
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._tls_pending = False
        self._backlog: deque[bytes | memoryview] = deque()
        self._backlog_size = 0
        self._lock = threading.Lock()
        self._closed = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._mask = selectors.EVENT_READ
        self._selector.register(self._sock_fd, selectors.EVENT_READ)
        self._selector.register(self._wake_r.fileno(), selectors.EVENT_READ)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    @property
    def backlog_size(self) -> int:
        """Bytes accepted by :meth:`write` that the kernel has not taken yet."""
        return self._backlog_size

    @property
    def socket(self) -> socket.socket:
        """The underlying socket (for ``getsockname`` and the like; do not read or write it)."""
        return self._sock

    # ------------------------------------------------------------ writing

    def write(self, data: bytes) -> None:
        """Send ``data`` now as far as the kernel takes it; keep the rest for later polls.

        :raises OSError: the socket failed (reset, broken pipe ...)
        :raises TransportClosed: the transport is closed
        """
        if self._closed:
            raise TransportClosed()
        if self._backlog:
            self._backlog.append(data)
            self._backlog_size += len(data)
            self._send_backlog()
            return
        try:
            sent = self._sock.send(data)
        except _WOULD_BLOCK:
            sent = 0
        if sent < len(data):
            rest = data if sent == 0 else memoryview(data)[sent:]
            self._backlog.append(rest)
            self._backlog_size += len(rest)

    def _send_backlog(self) -> None:
        backlog = self._backlog
        sock = self._sock
        while backlog:
            chunk = backlog[0]
            try:
                sent = sock.send(chunk)
            except _WOULD_BLOCK:
                return
            self._backlog_size -= sent
            if sent < len(chunk):
                backlog[0] = memoryview(chunk)[sent:]
                return
            backlog.popleft()

    def flush_blocking(self, data: bytes, timeout: float) -> None:
        """Best effort, for the last words of a connection: send backlog and ``data`` in time.

        Never raises; gives up silently when the socket fails or ``timeout`` passes.
        """
        if self._closed:
            return
        deadline = time.monotonic() + timeout
        try:
            if data:
                self.write(data)
            while self._backlog:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._selector.modify(self._sock_fd, selectors.EVENT_WRITE)
                self._mask = selectors.EVENT_WRITE
                if self._selector.select(left):
                    self._send_backlog()
        except (OSError, ValueError, TransportClosed):
            return

    # ------------------------------------------------------------ reading and waiting

    def poll(self, timeout: float | None) -> tuple[list[bytes], bool]:
        """Wait up to ``timeout`` seconds (None: forever) for I/O and do it.

        :returns: ``(chunks, woken)``: the bytes read (``b""`` last when the peer
            ended the stream) and whether :meth:`wake` was called since the last poll
        :raises OSError: the socket failed
        :raises TransportClosed: the transport is closed
        """
        if self._closed:
            raise TransportClosed()
        want = selectors.EVENT_READ | selectors.EVENT_WRITE if self._backlog else (
            selectors.EVENT_READ
        )
        if want != self._mask:
            self._selector.modify(self._sock_fd, want)
            self._mask = want
        if self._tls_pending:
            timeout = 0.0
        ready = self._selector.select(timeout)
        chunks: list[bytes] = []
        woken = False
        readable = self._tls_pending
        for key, mask in ready:
            if key.fd == self._sock_fd:
                if mask & selectors.EVENT_WRITE:
                    self._send_backlog()
                if mask & selectors.EVENT_READ:
                    readable = True
            else:
                woken = True
                self._drain_wake()
        if readable:
            self._read(chunks)
        return chunks, woken

    def _read(self, chunks: list[bytes]) -> None:
        sock = self._sock
        if not self._tls:
            try:
                chunks.append(sock.recv(READ_SIZE))
            except _WOULD_BLOCK:
                pass
            return
        # a TLS recv returns at most one record: read until OpenSSL wants more input
        self._tls_pending = False
        total = 0
        while total < READ_SIZE:
            try:
                data = sock.recv(READ_SIZE)
            except _WOULD_BLOCK:
                return
            chunks.append(data)
            if not data:
                return
            total += len(data)
        tls_sock: Any = sock
        self._tls_pending = tls_sock.pending() > 0

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError, OSError):
            pass

    # ------------------------------------------------------------ threads and closing

    def wake(self) -> None:
        """Make the current or next :meth:`poll` return at once.  Thread-safe.

        :raises TransportClosed: the transport is closed
        """
        with self._lock:
            if self._closed:
                raise TransportClosed()
            try:
                self._wake_w.send(b"\0")
            except (BlockingIOError, InterruptedError):
                pass  # the pipe is full: a wake-up is pending anyway

    def close(self) -> None:
        """Close the socket, the selector and the wake pipe (idempotent, thread-safe)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._backlog.clear()
            self._backlog_size = 0
            for closer in (self._selector.close, self._sock.close, self._wake_r.close,
                           self._wake_w.close):
                try:
                    closer()
                except OSError:
                    pass
