"""TLS, mutual TLS with SASL EXTERNAL, and ``tcp_options`` through ``SelectConnection``.

Theory of operation: the private broker listens for AMQPS on ``tls_port`` with a throwaway CA
(``ca_path``) and accepts the ``guest`` client certificate for EXTERNAL.  Socket options are read
back with ``getsockopt`` on a duplicate of the connection's file descriptor, found through
``/proc/self/fd`` by the address it is connected to (no private attribute is touched).
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
from select_helpers import Harness, params_for, unique

import amqp_core as pika
from amqp_core import exceptions
from amqp_core.adapters.utils import connection_workflow as wf
from amqp_core.testing.fault_proxy import BlackHoleListener


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


def tls_params(broker: Any, context: ssl.SSLContext, **kwargs: Any) -> pika.ConnectionParameters:
    server_hostname = kwargs.pop("server_hostname", "localhost")
    return params_for(
        broker,
        port=broker.tls_port,
        ssl_options=pika.SSLOptions(context, server_hostname),
        **kwargs,
    )


def round_trip(h: Harness, conn: Any) -> None:
    """Declare a queue, publish to it and get the message back."""
    channel = h.channel(conn)
    queue = h.call(channel.queue_declare, "", exclusive=True).method.queue
    channel.basic_publish("", queue, b"over tls")
    name = h.fresh("get")
    channel.basic_get(queue, h.cb(name), auto_ack=True)
    _, _method, _, body = h.wait(name)
    assert body == b"over tls"
    channel.close()
    h.wait(lambda: channel.is_closed)


def _scan(port: int, keep: set[tuple[str, int]] | None = None) -> dict[tuple[str, int], Any]:
    """This process's TCP sockets connected to 127.0.0.1:port, by local address.

    With ``keep`` (a set of addresses already known), a duplicate socket is returned, open, for
    each address NOT in it; every other entry maps to None (its duplicate is closed at once).
    """
    found: dict[tuple[str, int], Any] = {}
    for entry in os.listdir("/proc/self/fd"):
        fd = int(entry)
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            dup = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        kept = False
        try:
            if dup.family == socket.AF_INET and dup.type == socket.SOCK_STREAM:
                if dup.getpeername() == ("127.0.0.1", port):
                    address = dup.getsockname()
                    if keep is not None and address not in keep and found.get(address) is None:
                        found[address] = dup
                        kept = True
                    else:
                        found.setdefault(address, None)
        except OSError:
            pass
        finally:
            if not kept:
                dup.close()
    return found


def sockets_connected_to(port: int) -> set[tuple[str, int]]:
    """Local addresses of this process's TCP sockets connected to 127.0.0.1:port."""
    return set(_scan(port))


def new_socket_to(port: int, before: set[tuple[str, int]]) -> socket.socket:
    """A duplicate of the one socket to 127.0.0.1:port opened since ``before`` was taken."""
    found = _scan(port, keep=before)
    new = [sock for address, sock in found.items() if address not in before]
    if len(new) != 1:
        for sock in new:
            sock.close()
        raise AssertionError(f"expected exactly one new socket to port {port}, found {new}")
    return new[0]  # type: ignore[no-any-return]


# ---------------------------------------------------------------- TLS


def test_tls_with_server_hostname(h: Harness, private_broker: Any) -> None:
    conn = h.connect(tls_params(private_broker, private_broker.client_ssl_context()))
    assert conn.params.ssl_options is not None
    round_trip(h, conn)


def test_tls_checks_the_ip_address_when_no_server_hostname(h: Harness, private_broker: Any) -> None:
    # the certificate names 127.0.0.1 too: the host is verified when no name is given
    conn = h.connect(
        tls_params(private_broker, private_broker.client_ssl_context(), server_hostname=None)
    )
    round_trip(h, conn)


def test_mutual_tls_with_external_credentials(h: Harness, private_broker: Any) -> None:
    marker = unique("mtls")
    conn = h.connect(
        tls_params(
            private_broker,
            private_broker.client_ssl_context(client_cert=True),
            credentials=pika.ExternalCredentials(),
            client_properties={"connection_name": marker},
        )
    )
    round_trip(h, conn)
    (row,) = [r for r in private_broker.list_connections() if marker in r["client_properties"]]
    assert row["user"] == "guest"  # the certificate's common name
    assert "amqp-core" in row["client_properties"]  # our product name is kept alongside


def test_external_without_client_certificate_is_refused(h: Harness, private_broker: Any) -> None:
    conn = h.connect(
        tls_params(
            private_broker,
            private_broker.client_ssl_context(),
            credentials=pika.ExternalCredentials(),
        ),
        name="c",
        expect_open=False,
    )
    _, error = h.last("c.open_error")
    assert isinstance(error, exceptions.ProbableAuthenticationError)
    assert (error.host, error.port) == (private_broker.host, private_broker.tls_port)
    assert conn.is_closed


@pytest.mark.parametrize("problem", ["wrong hostname", "untrusted CA"])
def test_certificate_verification_failure(h: Harness, private_broker: Any, problem: str) -> None:
    if problem == "wrong hostname":
        params = tls_params(
            private_broker, private_broker.client_ssl_context(), server_hostname="not-the-broker"
        )
    else:
        params = tls_params(private_broker, ssl.create_default_context())
    h.create_connection([params], "done")
    (result,) = h.wait("done")
    assert isinstance(result, wf.AMQPConnectionWorkflowFailed)
    (error,) = result.exceptions
    assert isinstance(error, wf.AMQPConnectorTransportSetupError), repr(error)
    assert isinstance(error.exception, ssl.SSLCertVerificationError)
    assert (error.host, error.port) == (private_broker.host, private_broker.tls_port)
    # the internal workflow reports it as a connection error with the address
    h.connect(params, name="c", expect_open=False)
    _, user_error = h.last("c.open_error")
    assert isinstance(user_error, exceptions.AMQPConnectionError)
    assert (user_error.host, user_error.port) == (private_broker.host, private_broker.tls_port)


def test_tls_against_the_plain_port_fails(h: Harness, private_broker: Any) -> None:
    params = params_for(
        private_broker,
        ssl_options=pika.SSLOptions(private_broker.client_ssl_context(), "localhost"),
        stack_timeout=5.0,
    )
    h.create_connection([params], "done")
    (result,) = h.wait("done")
    assert isinstance(result, wf.AMQPConnectionWorkflowFailed)
    (error,) = result.exceptions
    assert isinstance(
        error, wf.AMQPConnectorTransportSetupError | wf.AMQPConnectorAMQPHandshakeError
    )


def test_stack_timeout_during_a_hanging_tls_handshake(h: Harness, broker: Any) -> None:
    with BlackHoleListener() as hole:
        params = params_for(
            broker,
            port=hole.port,
            ssl_options=pika.SSLOptions(ssl.create_default_context(), "localhost"),
            stack_timeout=0.4,
        )
        start = time.monotonic()
        h.create_connection([params], "done")
        (result,) = h.wait("done")
        elapsed = time.monotonic() - start
    assert isinstance(result, wf.AMQPConnectionWorkflowFailed)
    (error,) = result.exceptions
    assert isinstance(error, wf.AMQPConnectorTransportSetupError), repr(error)
    assert isinstance(error.exception, wf.AMQPConnectorStackTimeout)
    assert 0.35 <= elapsed < 3.0


# ---------------------------------------------------------------- tcp_options


def test_tcp_options_are_applied(h: Harness, broker: Any) -> None:
    before = sockets_connected_to(broker.port)
    options = {"TCP_KEEPIDLE": 71, "TCP_KEEPINTVL": 13, "TCP_KEEPCNT": 4}
    conn = h.connect(params_for(broker, tcp_options=options))
    sock = new_socket_to(broker.port, before)
    with sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 71
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 13
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert conn.is_open
    round_trip(h, conn)


def test_tcp_options_are_applied_under_tls(h: Harness, private_broker: Any) -> None:
    before = sockets_connected_to(private_broker.tls_port)
    conn = h.connect(
        tls_params(
            private_broker,
            private_broker.client_ssl_context(),
            tcp_options={"TCP_KEEPIDLE": 33, "TCP_USER_TIMEOUT": 9000},
        )
    )
    sock = new_socket_to(private_broker.tls_port, before)
    with sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 33
        user_timeout = getattr(socket, "TCP_USER_TIMEOUT", 18)
        assert sock.getsockopt(socket.IPPROTO_TCP, user_timeout) == 9000
    round_trip(h, conn)


def test_without_tcp_options_nodelay_only(h: Harness, broker: Any) -> None:
    before = sockets_connected_to(broker.port)
    h.connect(params_for(broker))
    sock = new_socket_to(broker.port, before)
    with sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
