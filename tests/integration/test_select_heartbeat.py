"""Heartbeats and Connection.Blocked / Unblocked through ``SelectConnection``.

Theory of operation: heartbeat tests negotiate a 1 s interval.  "Sent on time" is shown by an idle
connection that the broker keeps open (RabbitMQ drops a client silent for two intervals); "peer
is dead" is shown with :class:`~amqp_core.testing.fault_proxy.FaultProxy`, a 127.0.0.1 proxy
whose ``stall(discard=False)`` stops forwarding (and reading), so the client hears nothing while
its socket stays open.  Blocking uses the private node's memory alarm (``set_memory_watermark``),
always restored in ``finally``.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from select_helpers import Harness, params_for

from amqp_core import exceptions, frame, spec
from amqp_core.testing.fault_proxy import FaultProxy

HEARTBEAT = 1


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


def open_sockets_to(port: int) -> int:
    """How many of this process's sockets are connected to 127.0.0.1:port."""
    count = 0
    for entry in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{entry}").startswith("socket:"):
                continue
            dup = socket.socket(fileno=os.dup(int(entry)))
        except OSError:
            continue
        with dup:
            try:
                if dup.family == socket.AF_INET and dup.getpeername() == ("127.0.0.1", port):
                    count += 1
            except OSError:
                pass
    return count


def test_heartbeats_keep_an_idle_connection_open(h: Harness, broker: Any) -> None:
    conn = h.connect(params_for(broker, heartbeat=HEARTBEAT), name="c")
    h.run_for(4.0)  # four intervals without a single application frame
    assert conn.is_open and h.count("c.close") == 0
    channel = h.channel(conn)
    assert h.call(channel.queue_declare, "", exclusive=True).method.queue


def test_silent_peer_ends_the_connection_with_heartbeat_timeout(h: Harness, broker: Any) -> None:
    with FaultProxy(broker.host, broker.port) as proxy:
        conn = h.connect(params_for(broker, port=proxy.port, heartbeat=HEARTBEAT), name="c")
        channel = h.channel(conn)
        channel.add_on_close_callback(h.cb("channel_closed"))
        proxy.stall(discard=False)
        stalled_at = time.monotonic()
        _, error = h.wait("c.close", timeout=8.0)
        silent_for = time.monotonic() - stalled_at
        assert isinstance(error, exceptions.AMQPHeartbeatTimeout)
        assert (error.host, error.port) == ("127.0.0.1", proxy.port)
        # about two negotiated intervals, never less than one
        assert HEARTBEAT <= silent_for <= 2 * HEARTBEAT + 1.0, silent_for
        _, channel_error = h.last("channel_closed")
        assert channel_error is error
        assert conn.is_closed and channel.is_closed
        h.run_for(0.2)
        assert open_sockets_to(proxy.port) == 0


def test_dead_peer_with_unsent_data_releases_the_socket(h: Harness, broker: Any) -> None:
    """The write buffer cannot drain to a dead peer: the timeout must not wait for it."""
    with FaultProxy(broker.host, broker.port) as proxy:
        conn = h.connect(params_for(broker, heartbeat=HEARTBEAT, port=proxy.port), name="c")
        channel = h.channel(conn)
        proxy.stall(discard=False)
        chunk = b"x" * (1 << 20)
        for _ in range(48):  # more than the kernel buffers on both sides of the proxy hold
            channel.basic_publish("", "nowhere", chunk)
        _, error = h.wait("c.close", timeout=8.0)
        assert isinstance(error, exceptions.AMQPHeartbeatTimeout)
        h.run_for(0.3)
        assert open_sockets_to(proxy.port) == 0


def test_blocked_unblocked_and_blocked_connection_timeout(h: Harness, private_broker: Any) -> None:
    timed = h.connect(params_for(private_broker, blocked_connection_timeout=1.0), name="timed")
    patient = h.connect(params_for(private_broker), name="patient")
    for name, conn in (("timed", timed), ("patient", patient)):
        conn.add_on_connection_blocked_callback(h.cb(f"{name}.blocked"))
        conn.add_on_connection_unblocked_callback(h.cb(f"{name}.unblocked"))
    timed_channel = h.channel(timed)
    patient_channel = h.channel(patient)
    queue = h.call(patient_channel.queue_declare, "", exclusive=True).method.queue
    try:
        private_broker.set_memory_watermark(0.0000001)
        timed_channel.basic_publish("", "nowhere", b"blocked?")
        patient_channel.basic_publish("", queue, b"held while blocked")
        connection, blocked = h.wait("timed.blocked", timeout=10.0)
        blocked_at = time.monotonic()
        assert connection is timed
        assert isinstance(blocked, frame.Method)
        assert isinstance(blocked.method, spec.Connection.Blocked)
        assert blocked.method.reason
        h.wait("patient.blocked", timeout=10.0)

        _, error = h.wait("timed.close", timeout=6.0)
        assert isinstance(error, exceptions.ConnectionBlockedTimeout)
        assert (error.host, error.port) == (private_broker.host, private_broker.port)
        assert 0.8 <= time.monotonic() - blocked_at <= 4.0
        assert timed.is_closed and timed_channel.is_closed
        assert patient.is_open  # no timeout configured: waits as long as it takes
    finally:
        private_broker.set_memory_watermark(0.4)
    connection, unblocked = h.wait("patient.unblocked", timeout=10.0)
    assert connection is patient
    assert isinstance(unblocked.method, spec.Connection.Unblocked)
    # the message published while blocked went through once unblocked
    name = h.fresh("get")
    h.wait(lambda: patient_channel.is_open)
    patient_channel.basic_get(queue, h.cb(name), auto_ack=True)
    _, _, _, body = h.wait(name)
    assert body == b"held while blocked"
    assert h.count("timed.unblocked") == 0
