"""The test broker itself: reachable on loopback only, TLS and EXTERNAL configured, controllable.

Theory of operation: these tests speak just enough raw AMQP 0-9-1 (a few hand-encoded connection
methods, no client library) to check the harness independently of the client under test.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time

import pytest

from amqp_core.testing.broker import (
    DEFAULT_MEMORY_WATERMARK,
    ExternalBroker,
    PrivateBroker,
    listening_addresses,
    probe_connection_start,
)

CONNECTION_START = (10, 10)
CONNECTION_TUNE = (10, 30)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)


def shortstr(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!B", len(raw)) + raw


def longstr(raw: bytes) -> bytes:
    return struct.pack("!I", len(raw)) + raw


def method_frame(class_id: int, method_id: int, args: bytes) -> bytes:
    payload = struct.pack("!HH", class_id, method_id) + args
    return struct.pack("!BHI", 1, 0, len(payload)) + payload + b"\xce"


class RawConnection:
    """A hand-driven AMQP connection on channel 0, every read bounded by a deadline."""

    def __init__(self, sock: socket.socket, timeout: float = 10.0) -> None:
        self.sock = sock
        self.deadline = time.monotonic() + timeout

    def recv_exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            self.sock.settimeout(max(self.deadline - time.monotonic(), 0.01))
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("the broker closed the socket")
            data += chunk
        return data

    def read_method(self) -> tuple[tuple[int, int], bytes]:
        kind, _channel, size = struct.unpack("!BHI", self.recv_exactly(7))
        body = self.recv_exactly(size + 1)
        assert kind == 1 and body[-1] == 0xCE
        class_id, method_id = struct.unpack("!HH", body[:4])
        return (class_id, method_id), body[4:-1]

    def expect(self, method: tuple[int, int]) -> bytes:
        got, args = self.read_method()
        assert got == method, f"expected {method}, got {got}: {args[:80]!r}"
        return args

    def open(
        self, mechanism: str, response: bytes, name: str = "harness-test", vhost: str = "/"
    ) -> None:
        """Handshake up to Connection.Open-Ok (raises if the broker refuses)."""
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.expect(CONNECTION_START)
        properties = shortstr("connection_name") + b"S" + longstr(name.encode())
        start_ok = longstr(properties) + shortstr(mechanism) + longstr(response)
        self.sock.sendall(method_frame(10, 11, start_ok + shortstr("en_US")))
        method, args = self.read_method()
        if method == CONNECTION_CLOSE:
            (code,) = struct.unpack("!H", args[:2])
            raise PermissionError(f"broker refused the login: {code} {args[3 : 3 + args[2]]!r}")
        assert method == CONNECTION_TUNE
        channel_max, frame_max, _heartbeat = struct.unpack("!HIH", args)
        self.sock.sendall(method_frame(10, 31, struct.pack("!HIH", channel_max, frame_max, 0)))
        self.sock.sendall(method_frame(10, 40, shortstr(vhost) + shortstr("") + b"\x00"))
        self.expect(CONNECTION_OPEN_OK)

    def expect_forced_close(self) -> int:
        args = self.expect(CONNECTION_CLOSE)
        self.sock.sendall(method_frame(10, 51, b""))
        (code,) = struct.unpack("!H", args[:2])
        return int(code)


def test_amqp_port_answers_with_connection_start(broker: PrivateBroker | ExternalBroker) -> None:
    payload = probe_connection_start(broker.host, broker.port, timeout=10.0)
    assert payload[:4] == b"\x00\x0a\x00\x0a"  # Connection.Start
    assert payload[4:6] == b"\x00\x09"  # version 0-9


def test_listeners_are_bound_to_loopback_only(private_broker: PrivateBroker) -> None:
    for port in (private_broker.port, private_broker.tls_port, private_broker.dist_port):
        addresses = listening_addresses(port)
        assert addresses, f"nothing listens on {port}"
        assert set(addresses) == {"127.0.0.1"}, f"port {port} listens on {addresses}"


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_tls_server_certificate_verifies(private_broker: PrivateBroker, hostname: str) -> None:
    context = private_broker.client_ssl_context()
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    payload = probe_connection_start(
        private_broker.host,
        private_broker.tls_port,
        ssl_context=context,
        server_hostname=hostname,
        timeout=10.0,
    )
    assert payload[:4] == b"\x00\x0a\x00\x0a"


def test_tls_rejects_a_wrong_hostname(private_broker: PrivateBroker) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        probe_connection_start(
            private_broker.host,
            private_broker.tls_port,
            ssl_context=private_broker.client_ssl_context(),
            server_hostname="not-the-broker.example",
            timeout=10.0,
        )


def test_mutual_tls_logs_in_with_external(private_broker: PrivateBroker) -> None:
    context = private_broker.client_ssl_context(client_cert=True)
    with (
        socket.create_connection((private_broker.host, private_broker.tls_port), 10.0) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        RawConnection(sock).open("EXTERNAL", b"", name="harness-external")


def test_plain_login_over_tls(private_broker: PrivateBroker) -> None:
    context = private_broker.client_ssl_context()
    with (
        socket.create_connection((private_broker.host, private_broker.tls_port), 10.0) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        RawConnection(sock).open("PLAIN", b"\x00guest\x00guest")


def test_ctl_status_names_the_node(private_broker: PrivateBroker) -> None:
    assert private_broker.nodename in private_broker.ctl("status")


def test_list_and_close_connections(private_broker: PrivateBroker) -> None:
    with socket.create_connection((private_broker.host, private_broker.port), 10.0) as sock:
        conn = RawConnection(sock, timeout=30.0)
        conn.open("PLAIN", b"\x00guest\x00guest", name="harness-listed")
        rows = private_broker.list_connections()
        mine = [row for row in rows if "harness-listed" in str(row.get("client_properties"))]
        assert len(mine) == 1, rows
        assert mine[0]["pid"].startswith("<") and mine[0]["user"] == "guest"
        private_broker.close_connection(mine[0]["pid"], "harness test")
        assert conn.expect_forced_close() == 320


def test_close_all_connections(private_broker: PrivateBroker) -> None:
    with socket.create_connection((private_broker.host, private_broker.port), 10.0) as sock:
        conn = RawConnection(sock, timeout=30.0)
        conn.open("PLAIN", b"\x00guest\x00guest", name="harness-all")
        private_broker.close_all_connections("harness test")
        assert conn.expect_forced_close() == 320


def test_users_vhosts_and_permissions(private_broker: PrivateBroker) -> None:
    private_broker.add_vhost("harness-vhost")
    private_broker.add_user("harness-user", "harness-secret")
    try:
        private_broker.set_permissions("harness-user", "harness-vhost")
        with socket.create_connection((private_broker.host, private_broker.port), 10.0) as sock:
            login = b"\x00harness-user\x00harness-secret"
            RawConnection(sock).open("PLAIN", login, vhost="harness-vhost")
    finally:
        private_broker.delete_user("harness-user")
        private_broker.delete_vhost("harness-vhost")


def test_memory_watermark_can_be_set_and_restored(private_broker: PrivateBroker) -> None:
    try:
        private_broker.set_memory_watermark(0.0000001)
    finally:
        private_broker.set_memory_watermark(DEFAULT_MEMORY_WATERMARK)


@pytest.mark.slow
def test_stop_app_and_start_app(private_broker: PrivateBroker) -> None:
    private_broker.stop_app()
    try:
        assert not listening_addresses(private_broker.port)
    finally:
        private_broker.start_app()
    assert probe_connection_start(private_broker.host, private_broker.port)[:4] == b"\0\n\0\n"


def test_ctl_rejects_arguments_the_wrapper_would_mangle(private_broker: PrivateBroker) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        private_broker.ctl("add_vhost", "$HOME")


def test_state_round_trip_describes_the_same_node(private_broker: PrivateBroker) -> None:
    state = private_broker.to_state()
    assert state["url"] == private_broker.url
    assert state["tls_url"].startswith("amqps://guest:guest@127.0.0.1:")


def test_external_broker_from_url() -> None:
    external = ExternalBroker.from_url("amqps://u:p@rabbit.example/%2F")
    assert (external.host, external.port, external.is_private) == ("rabbit.example", 5671, False)
    with pytest.raises(ValueError, match="url"):
        ExternalBroker.from_url("http://rabbit.example/")
