"""``BlockingConnection`` when things go wrong: connect errors, TLS, closes, lost streams,
heartbeats, blocked connections, and what is written at exit.

Theory of operation: faults are made for real -- a refused port, a fake server, a TCP proxy that
cuts or freezes the stream, ``rabbitmqctl`` closing a connection or raising a memory alarm -- and
each test checks the exception pika would raise and that it is raised by the call that observes
the fault.  Every wait is bounded (``call_later`` safety nets, deadlines on every loop).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from blocking_helpers import FakeServer, amqp_url, params_for, unique, wait_until

import amqp_core as pika
from amqp_core import exceptions
from amqp_core.adapters.blocking_connection import BlockingConnection
from amqp_core.testing.fault_proxy import FaultProxy, unused_port

DEADLINE = 10.0


def fail_after(conn: BlockingConnection, seconds: float = DEADLINE) -> None:
    """A safety net: a blocked test raises instead of hanging."""

    def fail() -> None:
        raise AssertionError(f"still waiting after {seconds} s")

    conn.call_later(seconds, fail)


# ------------------------------------------------------------------ connecting


def test_refused_port_raises_amqp_connection_error() -> None:
    port = unused_port()
    params = pika.ConnectionParameters(host="127.0.0.1", port=port)
    with pytest.raises(exceptions.AMQPConnectionError) as caught:
        pika.BlockingConnection(params)
    assert type(caught.value) is exceptions.AMQPConnectionError
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", port)
    assert "ConnectionRefusedError" in repr(caught.value)


def test_wrong_password_and_unknown_vhost(broker: Any) -> None:
    bad_password = params_for(broker, credentials=pika.PlainCredentials("guest", "wrong"))
    with pytest.raises(exceptions.ProbableAuthenticationError) as caught:
        pika.BlockingConnection(bad_password)
    assert caught.value.port == broker.port
    with pytest.raises(exceptions.ProbableAccessDeniedError) as denied:
        pika.BlockingConnection(params_for(broker, virtual_host=unique("no-vhost")))
    assert denied.value.host == broker.host
    # a refused login ends the workflow: the good parameters after it are not tried
    with pytest.raises(exceptions.ProbableAuthenticationError):
        pika.BlockingConnection([bad_password, params_for(broker)])


def test_not_an_amqp_server() -> None:
    with FakeServer("bad-header") as server:
        with pytest.raises(exceptions.IncompatibleProtocolError):
            pika.BlockingConnection(pika.ConnectionParameters(host="127.0.0.1", port=server.port))
    with FakeServer("close") as server:
        with pytest.raises(exceptions.IncompatibleProtocolError):
            pika.BlockingConnection(pika.ConnectionParameters(host="127.0.0.1", port=server.port))


def test_stack_timeout() -> None:
    with FakeServer("silent") as server:
        params = pika.ConnectionParameters(host="127.0.0.1", port=server.port, stack_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(exceptions.AMQPConnectionError) as caught:
            pika.BlockingConnection(params)
        assert time.monotonic() - started < 5
        assert "Timeout" in repr(caught.value)
        assert caught.value.port == server.port


def test_attempts_and_retry_delay_come_from_the_last_parameters(broker: Any) -> None:
    with FakeServer("close") as first, FakeServer("close") as second:
        configs = [
            pika.ConnectionParameters(host="127.0.0.1", port=first.port, connection_attempts=5),
            pika.ConnectionParameters(
                host="127.0.0.1", port=second.port, connection_attempts=3, retry_delay=0.05
            ),
        ]
        with pytest.raises(exceptions.IncompatibleProtocolError):
            pika.BlockingConnection(configs)
        assert (first.accepted, second.accepted) == (3, 3)
        with pika.BlockingConnection([configs[0], params_for(broker)]) as connection:
            assert connection.is_open
        assert first.accepted == 4


def test_tls(private_broker: Any) -> None:
    context = private_broker.client_ssl_context()
    params = pika.ConnectionParameters(
        host="localhost", port=private_broker.tls_port, ssl_options=pika.SSLOptions(context)
    )
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        big = os.urandom(300_000)
        channel.basic_publish("", queue, big)
        for number in range(500):
            channel.basic_publish("", queue, b"%d" % number)
        _, _, body = channel.basic_get(queue, auto_ack=True)
        assert body == big
    url = f"{private_broker.tls_url}?cacertfile={private_broker.ca_path}"
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        assert connection.channel().is_open
    untrusting = pika.ConnectionParameters(
        host="localhost", port=private_broker.tls_port,
        ssl_options=pika.SSLOptions(__import__("ssl").create_default_context()),
    )
    with pytest.raises(exceptions.AMQPConnectionError) as caught:
        pika.BlockingConnection(untrusting)
    assert "CERTIFICATE_VERIFY_FAILED" in repr(caught.value)


def test_mutual_tls_with_external_credentials(private_broker: Any) -> None:
    context = private_broker.client_ssl_context(client_cert=True)
    params = pika.ConnectionParameters(
        host="127.0.0.1", port=private_broker.tls_port, ssl_options=pika.SSLOptions(context),
        credentials=pika.ExternalCredentials(),
    )
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.confirm_delivery()
        channel.basic_publish("", queue, b"over mutual TLS")
        assert channel.basic_get(queue, auto_ack=True)[2] == b"over mutual TLS"


# ------------------------------------------------------------------ the connection ends


@pytest.fixture
def named_conn(private_broker: Any) -> Iterator[tuple[BlockingConnection, str]]:
    name = unique("conn")
    connection = pika.BlockingConnection(
        params_for(private_broker, client_properties={"connection_name": name})
    )
    yield connection, name
    if connection.is_open:
        connection.close()


def close_by_name(broker: Any, name: str) -> None:
    def our_pid() -> str | None:
        for row in broker.list_connections():
            if name in row["client_properties"]:
                return row["pid"]
        return None

    assert wait_until(lambda: our_pid() is not None), "connection not listed by the broker"
    pid = our_pid()
    assert pid is not None
    broker.close_connection(pid, "closed by test")


def test_broker_forced_close_raises_from_start_consuming(
    private_broker: Any, named_conn: tuple[BlockingConnection, str]
) -> None:
    connection, name = named_conn
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_consume(queue, lambda *args: None)
    fail_after(connection)
    connection.call_later(0.2, lambda: close_by_name(private_broker, name))
    with pytest.raises(exceptions.ConnectionClosedByBroker) as caught:
        channel.start_consuming()
    assert caught.value.reply_code == 320
    assert (caught.value.host, caught.value.port) == (private_broker.host, private_broker.port)
    assert connection.is_closed and channel.is_closed
    with pytest.raises(exceptions.ConnectionWrongStateError):
        connection.process_data_events()
    with pytest.raises(exceptions.ChannelWrongStateError):
        channel.basic_publish("", queue, b"x")
    with pytest.raises(exceptions.ConnectionWrongStateError):
        connection.close()


def test_lost_stream_raises_stream_lost_error(broker: Any) -> None:
    with FaultProxy(broker.host, broker.port) as proxy:
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url(proxy.port)))
        channel = connection.channel()
        channel.queue_declare("", exclusive=True)
        proxy.close_all()
        fail_after(connection)
        with pytest.raises(exceptions.StreamLostError):
            connection.process_data_events(time_limit=None)
        assert connection.is_closed and channel.is_closed
        with pytest.raises(exceptions.ChannelWrongStateError):
            channel.queue_declare("", exclusive=True)


def test_lost_stream_raises_from_a_blocking_call(broker: Any) -> None:
    with FaultProxy(broker.host, broker.port) as proxy:
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url(proxy.port)))
        channel = connection.channel()
        proxy.close_all()
        assert wait_until(lambda: proxy.connections == 0)
        with pytest.raises(exceptions.StreamLostError):
            channel.queue_declare("", exclusive=True)


def test_silent_peer_raises_heartbeat_timeout(broker: Any) -> None:
    with FaultProxy(broker.host, broker.port) as proxy:
        url = amqp_url(proxy.port) + "?heartbeat=1"
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        proxy.stall(discard=False)
        started = time.monotonic()
        fail_after(connection)
        with pytest.raises(exceptions.AMQPHeartbeatTimeout):
            connection.process_data_events(time_limit=None)
        assert 1.0 <= time.monotonic() - started < 5
        assert channel.is_closed


@pytest.mark.slow
def test_worker_thread_pattern_keeps_heartbeats_alive(broker: Any) -> None:
    """Long work in a worker thread, acks through add_callback_threadsafe: the connection stays."""
    connection = pika.BlockingConnection(params_for(broker, heartbeat=2))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_qos(prefetch_count=1)
    for body in (b"slow", b"fast"):
        channel.basic_publish("", queue, body)
    done: list[bytes] = []
    workers: list[threading.Thread] = []

    def ack(delivery_tag: int, body: bytes) -> None:
        channel.basic_ack(delivery_tag)
        done.append(body)
        if len(done) == 2:
            channel.stop_consuming()

    def work(delivery_tag: int, body: bytes) -> None:
        time.sleep(8.0 if body == b"slow" else 0.1)  # the "work", on its own thread
        connection.add_callback_threadsafe(functools.partial(ack, delivery_tag, body))

    def on_message(_ch: Any, method: Any, _props: Any, body: bytes) -> None:
        worker = threading.Thread(target=work, args=(method.delivery_tag, body))
        workers.append(worker)
        worker.start()

    channel.basic_consume(queue, on_message)
    fail_after(connection, 30)
    channel.start_consuming()
    for worker in workers:
        worker.join(timeout=5)
    assert done == [b"slow", b"fast"]
    assert connection.is_open
    connection.close()


def test_blocked_connection_timeout(private_broker: Any) -> None:
    connection = pika.BlockingConnection(
        params_for(private_broker, blocked_connection_timeout=1.5)
    )
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    blocked: list[Any] = []
    connection.add_on_connection_blocked_callback(lambda conn, method: blocked.append(method))
    private_broker.set_memory_watermark(0.0000001)
    try:
        deadline = time.monotonic() + 20
        while not blocked:
            assert time.monotonic() < deadline, "the broker never blocked the connection"
            channel.basic_publish("", queue, b"while blocked")
            connection.process_data_events(0.2)
        assert isinstance(blocked[0].method, pika.spec.Connection.Blocked)
        started = time.monotonic()
        with pytest.raises(exceptions.ConnectionBlockedTimeout):
            channel.queue_declare("", exclusive=True)
        assert time.monotonic() - started < 5
        assert connection.is_closed
    finally:
        private_broker.set_memory_watermark(0.4)


def test_blocked_publisher_with_confirms_and_window(private_broker: Any) -> None:
    connection = pika.BlockingConnection(params_for(private_broker))
    timed = pika.BlockingConnection(params_for(private_broker, blocked_connection_timeout=1.0))
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        events: list[str] = []
        connection.add_on_connection_blocked_callback(lambda *args: events.append("blocked"))
        connection.add_on_connection_unblocked_callback(lambda *args: events.append("unblocked"))
        timed_channel = timed.channel()
        timed_channel.confirm_delivery()
        private_broker.set_memory_watermark(0.0000001)
        try:
            deadline = time.monotonic() + 20
            with channel.confirm_window(max_outstanding=100, timeout=20):
                while "blocked" not in events:
                    assert time.monotonic() < deadline, "never blocked"
                    channel.basic_publish("", queue, b"x")
                    connection.process_data_events(0.1)
                channel.basic_publish("", queue, b"after the block")
                with pytest.raises(TimeoutError):
                    channel.wait_for_confirms(timeout=0.5)
                # a confirmed publish on a blocked connection: pika's blocked-call timeout
                with pytest.raises(exceptions.ConnectionBlockedTimeout):
                    timed_channel.basic_publish("", queue, b"never confirmed")
                private_broker.set_memory_watermark(0.4)  # the window's exit can now succeed
        finally:
            private_broker.set_memory_watermark(0.4)
        # the window's exit waited for every confirm once the alarm cleared
        deadline = time.monotonic() + 20
        while "unblocked" not in events:
            assert time.monotonic() < deadline, "never unblocked"
            connection.process_data_events(0.1)
        assert connection.is_open
    finally:
        if connection.is_open:
            connection.close()


# ------------------------------------------------------------------ written at exit


def test_queued_publishes_are_written_at_interpreter_exit(broker: Any) -> None:
    queue = unique("exit")
    with pika.BlockingConnection(params_for(broker)) as connection:
        channel = connection.channel()
        channel.queue_declare(queue)
        script = (
            "import sys, amqp_core as pika\n"
            "conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))\n"
            "ch = conn.channel()\n"
            "for n in range(3):\n"
            "    ch.basic_publish('', sys.argv[2], b'%d' % n)\n"
            "# no close: the finalizer writes the queued frames\n"
        )
        subprocess.run([sys.executable, "-c", script, broker.url, queue], check=True,
                       timeout=60)
        deadline = time.monotonic() + DEADLINE
        while channel.queue_declare(queue, passive=True).method.message_count < 3:
            assert time.monotonic() < deadline
            connection.sleep(0.05)
        channel.queue_delete(queue)


def test_heartbeat_callable_and_tcp_options(broker: Any) -> None:
    seen: list[tuple[Any, int]] = []

    def choose(connection: Any, proposed: int) -> int:
        seen.append((connection, proposed))
        return 7

    params = params_for(broker, heartbeat=choose, tcp_options={"TCP_KEEPIDLE": 60})
    with pika.BlockingConnection(params) as connection:
        assert len(seen) == 1 and seen[0][0] is connection and seen[0][1] > 0
        assert connection.channel().is_open
