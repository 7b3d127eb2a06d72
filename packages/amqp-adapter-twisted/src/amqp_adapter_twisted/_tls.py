"""TLS with a standard-library ``ssl.SSLContext`` over a Twisted TCP transport.

Theory of operation
-------------------
The connection parameters carry an ``ssl.SSLContext`` (``SSLOptions``); Twisted's
own TLS works with pyOpenSSL contexts, and one cannot be made from the other.
So :class:`TLSStreamTransport` runs the standard library's TLS engine on two
memory BIOs (what asyncio's ``sslproto`` does) between Twisted's TCP transport
and the contract protocol (the driver):

* bytes from Twisted go into the incoming BIO; while handshaking,
  ``do_handshake`` is retried; afterwards ``SSLObject.read`` is called until
  it wants more input and everything decrypted in one go is delivered in one
  ``data_received``;
* ``write`` encrypts at once (the driver writes once per loop turn) and hands
  the outgoing BIO's bytes to Twisted's ``transport.write``;
* whatever OpenSSL queues in the outgoing BIO (handshake records, session
  tickets, alerts) is sent after every step;
* the handshake outcome goes to ``on_handshake``: the transport itself, or the
  ``ssl.SSLError`` (certificate verification failed ...) after the TCP
  connection was aborted; a connection lost during the handshake is reported
  there too;
* ``close`` sends close_notify (``unwrap``) and then closes the TCP
  connection; a close_notify from the peer is end of stream
  (``eof_received``, then ``close``); a TLS error afterwards aborts the stream
  and is reported to ``connection_lost``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Any

from twisted.python.failure import Failure

from amqp_core.io.contract import StreamProtocol, StreamTransport
from amqp_core.io.fd_streams import READ_SIZE

from ._loop import TwistedStreamTransport, to_os_error

__all__ = ["TLSStreamTransport"]

LOGGER = logging.getLogger(__name__)

OnHandshake = Callable[["StreamTransport | BaseException"], None]


class TLSStreamTransport(TwistedStreamTransport):
    """A TLS stream (``ssl.MemoryBIO``) over a connected Twisted TCP transport.

    :param transport: the connected Twisted TCP transport
    :param protocol: the contract protocol (told ``connection_made`` by the caller
        once ``on_handshake`` got this transport)
    :param context: the client-side ``ssl.SSLContext``
    :param server_hostname: the name to send (SNI) and check, or None
    :param on_handshake: ``on_handshake(self)`` once the handshake is done, or
        ``on_handshake(exception)`` if it failed
    """

    __slots__ = (
        "_eof", "_error", "_handshaking", "_incoming", "_on_handshake", "_outgoing", "_ssl",
    )

    def __init__(
        self, transport: Any, protocol: StreamProtocol, context: ssl.SSLContext,
        server_hostname: str | None, on_handshake: OnHandshake,
    ) -> None:
        super().__init__(transport, protocol)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming, self._outgoing, server_side=False,
            server_hostname=server_hostname or None,
        )
        self._on_handshake: OnHandshake | None = on_handshake
        self._handshaking = True
        self._eof = False
        self._error: BaseException | None = None
        self.write = self._write_encrypted

    def __repr__(self) -> str:
        return f"<TLSStreamTransport {self.transport!r}>"

    # ------------------------------------------------------------ handshake

    def start_handshake(self) -> None:
        """Send the ClientHello."""
        self._handshake()

    def _handshake(self) -> None:
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            self._send_outgoing()
            return
        except (ssl.SSLError, OSError) as error:
            self._send_outgoing()
            self._handshake_failed(error)
            return
        self._handshaking = False
        self._send_outgoing()
        on_handshake, self._on_handshake = self._on_handshake, None
        if on_handshake is not None:
            on_handshake(self)
        if self._incoming.pending and not self._lost:
            self._read()  # application data that came with the last handshake record

    def _handshake_failed(self, error: BaseException) -> None:
        self._closing = True
        self._protocol = None  # connection_made was never called: report nothing more
        self.transport.abortConnection()
        on_handshake, self._on_handshake = self._on_handshake, None
        if on_handshake is not None:
            on_handshake(error)

    # ------------------------------------------------------------ reading

    def raw_data_received(self, data: bytes) -> None:
        """Encrypted bytes from Twisted (the relay's ``dataReceived``)."""
        self._incoming.write(data)
        if self._handshaking:
            self._handshake()
        else:
            self._read()

    def _read(self) -> None:
        chunks: list[bytes] = []
        failure: BaseException | None = None
        read = self._ssl.read
        try:
            while True:
                chunk = read(READ_SIZE)
                if not chunk:
                    self._eof = True
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self._eof = True
        except (ssl.SSLError, OSError) as error:
            failure = error
        protocol = self._protocol
        if chunks and protocol is not None:
            protocol.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if failure is not None:
            self._fatal(failure)
            return
        self._send_outgoing()
        if self._eof and self._protocol is not None and not self._closing:
            self._protocol.eof_received()
            self.close()

    # ------------------------------------------------------------ writing

    def _write_encrypted(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._lost or not data:
            return
        view = memoryview(data)
        write = self._ssl.write
        try:
            while view:
                view = view[write(view):]
        except (ssl.SSLError, OSError) as error:
            self._fatal(error)
            return
        self._send_outgoing()

    def _send_outgoing(self) -> None:
        data = self._outgoing.read()
        if data:
            self.transport.write(data)

    # ------------------------------------------------------------ closing

    def close(self) -> None:
        """Send close_notify and what is buffered, then close the TCP connection."""
        if self._closing:
            return
        self._closing = True
        if not self._handshaking:
            try:
                self._ssl.unwrap()
            except (ssl.SSLError, OSError):  # waits for the peer's close_notify: not needed
                pass
            self._send_outgoing()
        self._unregister_producer()
        self.transport.loseConnection()

    def _fatal(self, error: BaseException) -> None:
        """Abort; Twisted's ``connectionLost`` (a later turn) reports ``error``."""
        LOGGER.debug("TLS stream %r failed: %r", self, error)
        if self._error is None:
            self._error = error
        self._closing = True
        self.transport.abortConnection()

    def twisted_connection_lost(self, reason: Failure) -> None:
        """Twisted's ``connectionLost``: fails the handshake, or reports the end once."""
        if self._handshaking and self._on_handshake is not None:
            self._protocol = None
            self._lost = True
            on_handshake, self._on_handshake = self._on_handshake, None
            error = to_os_error(reason)
            on_handshake(error if isinstance(error, Exception) else ConnectionResetError())
            return
        if self._error is not None and not self._lost:
            self._lost = True
            protocol, self._protocol = self._protocol, None
            if protocol is not None:
                protocol.connection_lost(self._error)
            return
        super().twisted_connection_lost(reason)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """As :class:`TwistedStreamTransport`, plus ``"ssl_object"`` and ``"peercert"``."""
        if name == "ssl_object":
            return self._ssl
        if name == "peercert":
            return self._ssl.getpeercert()
        return super().get_extra_info(name, default)
