"""The connection workflow against the real broker: configs in order, every address, retries,
timeouts, abort, and pika's workflow exception classes.

Theory of operation: failures are provoked on 127.0.0.1 only: a port nothing listens on
(refused at once), a :class:`~amqp_core.testing.fault_proxy.BlackHoleListener` (the TCP
handshake completes but nobody ever speaks: the AMQP stage hangs) and a black hole whose backlog
is full (the TCP connect itself hangs).  Every timing assertion has a lower bound (the timeout
was honoured) and a generous upper bound (it fired).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from select_helpers import Harness, params_for

import amqp_core as pika
from amqp_core import exceptions
from amqp_core.adapters.select_connection import SelectConnection
from amqp_core.adapters.utils import connection_workflow as wf
from amqp_core.testing.broker import listening_addresses
from amqp_core.testing.fault_proxy import BlackHoleListener, HangingConnectListener, unused_port


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


def _connector_errors(result: Any) -> tuple[Any, ...]:
    assert isinstance(result, wf.AMQPConnectionWorkflowFailed), repr(result)
    return result.exceptions


def _socket_peer(conn: Any) -> Any:
    """The broker address the connection's socket is connected to (found through /proc)."""
    import os

    matches = []
    for entry in os.listdir("/proc/self/fd"):
        fd = int(entry)
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            dup = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with dup:
            if dup.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                matches.append((dup.family, dup.getpeername()))
            except OSError:
                pass
    return matches


# ---------------------------------------------------------------- several configurations


def test_create_connection_tries_configs_in_order(h: Harness, broker: Any) -> None:
    dead = unused_port()
    configs = [params_for(broker, port=dead), params_for(broker)]
    workflow = h.create_connection(configs, "done")
    assert isinstance(workflow, wf.AbstractAMQPConnectionWorkflow)
    (conn,) = h.wait("done")
    assert isinstance(conn, SelectConnection), repr(conn)
    assert conn.is_open
    assert conn.params is configs[1]
    assert conn.ioloop is h.ioloop
    conn.add_on_close_callback(h.cb("closed"))
    channel = h.channel(conn)
    reply = h.call(channel.queue_declare, "", exclusive=True)
    assert reply.method.queue
    conn.close()
    _, error = h.wait("closed")
    assert isinstance(error, exceptions.ConnectionClosedByClient)


def test_all_configs_failing_records_every_error_in_order(h: Harness, broker: Any) -> None:
    first, second = unused_port(), unused_port()
    configs = [params_for(broker, port=first), params_for(broker, port=second)]
    h.create_connection(configs, "done")
    (result,) = h.wait("done")
    errors = _connector_errors(result)
    assert [type(e) for e in errors] == [wf.AMQPConnectorSocketConnectError] * 2
    assert [(e.host, e.port) for e in errors] == [("127.0.0.1", first), ("127.0.0.1", second)]
    assert all(isinstance(e.exception, ConnectionRefusedError) for e in errors)


def test_every_resolved_address_is_tried(
    h: Harness, broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "localhost" resolving to ::1 and then 127.0.0.1, the broker listening on 127.0.0.1 only."""
    assert (
        all(address.startswith("127.0.0.1") for address in listening_addresses(broker.port))
        if getattr(broker, "is_private", False)
        else True
    )
    real_getaddrinfo = socket.getaddrinfo

    def both_families(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "localhost":
            v6 = (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("::1", port, 0, 0))
            v4 = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))
            return [v6, v4]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", both_families)

    # both addresses fail on a dead port: one recorded error per address, ::1 first
    dead = unused_port()
    h.create_connection([params_for(broker, host="localhost", port=dead)], "failed")
    (result,) = h.wait("failed")
    errors = _connector_errors(result)
    assert len(errors) == 2
    assert all(isinstance(e, wf.AMQPConnectorSocketConnectError) for e in errors)
    assert [e.address[0] for e in errors] == ["::1", "127.0.0.1"]
    assert all((e.host, e.port) == ("localhost", dead) for e in errors)

    # on the broker's port ::1 is refused, then 127.0.0.1 works
    h.create_connection([params_for(broker, host="localhost")], "done")
    (conn,) = h.wait("done")
    assert isinstance(conn, SelectConnection) and conn.is_open
    peers = [peer for family, peer in _socket_peer(conn) if peer[1] == broker.port]
    assert ("127.0.0.1", broker.port) in peers
    h.close_connection(conn)

    # the internal workflow of the constructor walks the addresses too
    conn = h.connect(params_for(broker, host="localhost"))
    assert conn.is_open


# ---------------------------------------------------------------- attempts and retry delay


def test_connection_attempts_and_retry_delay(h: Harness, broker: Any) -> None:
    dead = unused_port()
    configs = [
        params_for(broker, port=dead),
        params_for(broker, port=dead, connection_attempts=3, retry_delay=0.3),
    ]
    start = time.monotonic()
    h.create_connection(configs, "done")
    (result,) = h.wait("done")
    elapsed = time.monotonic() - start
    errors = _connector_errors(result)
    # 3 passes over the 2 configurations, 2 pauses of 0.3 s in between
    assert len(errors) == 6
    assert 0.55 <= elapsed < 3.0


def test_internal_workflow_retries_then_reports(h: Harness, broker: Any) -> None:
    dead = unused_port()
    start = time.monotonic()
    conn = h.connect(
        params_for(broker, port=dead, connection_attempts=2, retry_delay=0.2),
        name="c",
        expect_open=False,
    )
    elapsed = time.monotonic() - start
    _, error = h.last("c.open_error")
    assert isinstance(error, exceptions.AMQPConnectionError)
    assert (error.host, error.port) == ("127.0.0.1", dead)
    assert 0.15 <= elapsed < 3.0
    assert conn.is_closed


# ---------------------------------------------------------------- timeouts


def test_socket_timeout_on_a_hanging_tcp_connect(h: Harness, broker: Any) -> None:
    with HangingConnectListener() as hole:
        start = time.monotonic()
        h.create_connection([params_for(broker, port=hole.port, socket_timeout=0.4)], "done")
        (result,) = h.wait("done")
        elapsed = time.monotonic() - start
    (error,) = _connector_errors(result)
    assert isinstance(error, wf.AMQPConnectorSocketConnectError)
    assert isinstance(error.exception, TimeoutError)
    assert (error.host, error.port) == ("127.0.0.1", hole.port)
    assert 0.35 <= elapsed < 3.0


def test_stack_timeout_on_a_silent_listener(h: Harness, broker: Any) -> None:
    with BlackHoleListener() as hole:
        start = time.monotonic()
        h.create_connection([params_for(broker, port=hole.port, stack_timeout=0.4)], "done")
        (result,) = h.wait("done")
        elapsed = time.monotonic() - start
    (error,) = _connector_errors(result)
    # TCP connected, the AMQP handshake never answered: a handshake-phase stack timeout
    assert isinstance(error, wf.AMQPConnectorAMQPHandshakeError), repr(error)
    assert isinstance(error.exception, wf.AMQPConnectorStackTimeout)
    assert (error.host, error.port) == ("127.0.0.1", hole.port)
    assert 0.35 <= elapsed < 3.0


def test_stack_timeout_covers_the_tcp_connect_too(h: Harness, broker: Any) -> None:
    with HangingConnectListener() as hole:
        start = time.monotonic()
        h.create_connection(
            [params_for(broker, port=hole.port, socket_timeout=10.0, stack_timeout=0.4)], "done"
        )
        (result,) = h.wait("done")
        elapsed = time.monotonic() - start
    (error,) = _connector_errors(result)
    assert isinstance(error, wf.AMQPConnectorSocketConnectError), repr(error)
    assert isinstance(error.exception, wf.AMQPConnectorStackTimeout)
    assert 0.35 <= elapsed < 3.0


def test_stack_timeout_then_retry_keeps_trying(h: Harness, broker: Any) -> None:
    """A timed-out attempt's late stream teardown must not end the next attempt."""
    with BlackHoleListener() as hole:
        start = time.monotonic()
        conn = h.connect(
            params_for(
                broker, port=hole.port, stack_timeout=0.3, connection_attempts=3, retry_delay=0.0
            ),
            name="c",
            expect_open=False,
            timeout=10.0,
        )
        elapsed = time.monotonic() - start
        h.run_for(0.3)
    assert h.count("c.open_error") == 1
    assert h.count("c.open") == 0 and h.count("c.close") == 0
    _, error = h.last("c.open_error")
    assert isinstance(error, exceptions.AMQPConnectionError)
    assert (error.host, error.port) == ("127.0.0.1", hole.port)
    # three attempts of 0.3 s each
    assert 0.85 <= elapsed < 4.0, elapsed
    assert conn.is_closed


def test_stack_timeout_then_success_on_the_next_config(h: Harness, broker: Any) -> None:
    with BlackHoleListener() as hole:
        configs = [params_for(broker, port=hole.port, stack_timeout=0.3), params_for(broker)]
        h.create_connection(configs, "done")
        (conn,) = h.wait("done")
        assert isinstance(conn, SelectConnection) and conn.is_open
        h.run_for(0.2)  # the first attempt's teardown must not disturb the open connection
        assert conn.is_open
        channel = h.channel(conn)
        assert h.call(channel.queue_declare, "", exclusive=True).method.queue
        h.close_connection(conn)


# ---------------------------------------------------------------- abort


def test_abort_during_tcp_connect(h: Harness, broker: Any) -> None:
    with HangingConnectListener() as hole:
        workflow = h.create_connection(
            [params_for(broker, port=hole.port, socket_timeout=30.0)], "done"
        )
        h.run_for(0.1)
        assert h.count("done") == 0
        workflow.abort()
        (result,) = h.wait("done", timeout=2.0)
        assert isinstance(result, wf.AMQPConnectionWorkflowAborted)
        h.run_for(0.1)
        assert h.count("done") == 1


def test_abort_during_amqp_handshake_and_during_retry_delay(h: Harness, broker: Any) -> None:
    with BlackHoleListener() as hole:
        workflow = h.create_connection(
            [params_for(broker, port=hole.port, stack_timeout=30.0)], "handshake"
        )
        h.run_for(0.2)
        workflow.abort()
        (result,) = h.wait("handshake", timeout=2.0)
        assert isinstance(result, wf.AMQPConnectionWorkflowAborted)

    workflow = h.create_connection(
        [params_for(broker, port=unused_port(), connection_attempts=5, retry_delay=30.0)], "retry"
    )
    h.run_for(0.2)  # the first attempt failed; now waiting 30 s
    workflow.abort()
    (result,) = h.wait("retry", timeout=2.0)
    assert isinstance(result, wf.AMQPConnectionWorkflowAborted)


def test_abort_reports_from_the_loop_and_wrong_states(h: Harness, broker: Any) -> None:
    workflow = wf.AMQPConnectionWorkflow()
    with pytest.raises(wf.AMQPConnectorWrongState):
        workflow.abort()  # not started
    with HangingConnectListener() as hole:
        h.create_connection(
            [params_for(broker, port=hole.port, socket_timeout=30.0)], "done", workflow=workflow
        )
        h.run_for(0.1)
        workflow.abort()
        assert h.count("done") == 0  # reported from the loop, never from inside abort()
        workflow.abort()  # while the abort is being reported: harmless
        (result,) = h.wait("done", timeout=2.0)
        assert isinstance(result, wf.AMQPConnectionWorkflowAborted)
    with pytest.raises(wf.AMQPConnectorWrongState):
        workflow.abort()  # completion was reported
    succeeded = h.create_connection([params_for(broker)], "ok")
    (conn,) = h.wait("ok")
    assert isinstance(conn, SelectConnection) and conn.is_open
    with pytest.raises(wf.AMQPConnectorWrongState):
        succeeded.abort()
    assert conn.is_open


def test_external_workflow_instance(h: Harness, broker: Any) -> None:
    workflow = wf.AMQPConnectionWorkflow()
    returned = h.create_connection([params_for(broker)], "done", workflow=workflow)
    assert returned is workflow
    assert pika.AMQPConnectionWorkflow is wf.AMQPConnectionWorkflow
    (conn,) = h.wait("done")
    assert isinstance(conn, SelectConnection) and conn.is_open
    h.close_connection(conn)


def test_handshake_failure_ends_the_workflow_with_its_cause(h: Harness, broker: Any) -> None:
    configs = [
        params_for(broker, credentials=pika.PlainCredentials("guest", "wrong-password")),
        params_for(broker),
    ]
    h.create_connection(configs, "done")
    (result,) = h.wait("done")
    errors = _connector_errors(result)
    assert isinstance(errors[0], wf.AMQPConnectorAMQPHandshakeError)
    assert isinstance(errors[0].exception, exceptions.ProbableAuthenticationError)
    assert (errors[0].exception.host, errors[0].exception.port) == (broker.host, broker.port)


def test_internal_connection_workflow_false_does_nothing_by_itself(h: Harness, broker: Any) -> None:
    conn = SelectConnection(
        params_for(broker),
        h.cb("open"),
        h.cb("open_error"),
        h.cb("close"),
        custom_ioloop=h.ioloop,
        internal_connection_workflow=False,
    )
    h.run_for(0.3)
    assert not h.calls
    assert not conn.is_open and not conn.is_closed
